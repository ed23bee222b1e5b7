"""Typed dataclass configs: from YAML + ``key=value`` overrides, saved beside every output.

Example:
    >>> from unirank.eval.config import EvalConfig
    >>> cfg = from_dict(EvalConfig, {"data": "scifact"}, overrides=["retriever.bm25.k1=1.2", "measures=[ndcg@10]"])
    >>> cfg.data, cfg.retriever.bm25.k1, cfg.measures
    ('scifact', 1.2, ['ndcg@10'])
    >>> from_dict(EvalConfig, {}, overrides=["retriever.bm25.b=4e-1"]).retriever.bm25.b
    0.4
    >>> from_dict(EvalConfig, {"dta": "typo"})
    Traceback (most recent call last):
    ...
    unirank.errors.ConfigError: unknown config key 'dta' (in EvalConfig); valid: data, k, limit_queries, max_docs, measures, out, rerank, response, retriever, seed, split, task
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

from .errors import ConfigError

C = TypeVar("C")


@dataclasses.dataclass(frozen=True)
class Range:
    """Bounds of a numeric config field, declared with ``typing.Annotated`` and checked by the
    loader (which names the YAML line) and by :func:`check_ranges` (configs built in code).

    Example:
        >>> @dataclasses.dataclass
        ... class C:
        ...     seed: Seed = 0
        ...     every: typing.Optional[Positive] = None
        >>> from_dict(C, {"seed": -1})
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: seed must be in [0, 4294967295], got -1
        >>> check_ranges(C(every=0))
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: every must be >= 1, got 0
    """

    low: float | None = None
    high: float | None = None

    def check(self, value: Any, key: str) -> None:
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            if self.high is None:
                raise ConfigError(f"{key} must be >= {self.low}, got {value!r}", key=key)
            if self.low is None:
                raise ConfigError(f"{key} must be <= {self.high}, got {value!r}", key=key)
            raise ConfigError(f"{key} must be in [{self.low}, {self.high}], got {value!r}", key=key)


#: an integer >= 1 (sizes, counts)
Positive = typing.Annotated[int, Range(1)]
#: an integer >= 0 (0 usually means "off")
NonNegative = typing.Annotated[int, Range(0)]
#: a seed every generator accepts (NumPy's legacy seeding takes 0 .. 2**32 - 1)
Seed = typing.Annotated[int, Range(0, 2**32 - 1)]


def _ranges(tp: Any) -> tuple[Any, list[Range]]:
    """``(inner type, [Range, ...])`` of an ``Annotated`` type (else ``(tp, [])``)."""
    if typing.get_origin(tp) is typing.Annotated:
        inner, *meta = typing.get_args(tp)
        return inner, [m for m in meta if isinstance(m, Range)]
    return tp, []


def _coerce(value: Any, tp: Any, key: str) -> Any:
    tp, ranges = _ranges(tp)
    if ranges:
        out = _coerce(value, tp, key)
        for r in ranges:
            r.check(out, key)
        return out
    origin = typing.get_origin(tp)
    if tp is Any or tp is typing.Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors: list[ConfigError] = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(e)
        if len(errors) == 1:  # Optional[X]: X's own message ("expected a number, got ...")
            literal = [a for a in args if typing.get_origin(a) is typing.Literal]
            if literal and type(None) in args:  # Optional[Literal[...]]: null is one of the choices
                raise ConfigError(f"{errors[0]}, null", key=key)
            raise errors[0]
        wanted = " or ".join(getattr(a, "__name__", str(a)) for a in args)
        raise ConfigError(f"config key {key!r}: {value!r} is none of {wanted}", key=key)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value in choices and not (isinstance(value, bool) and True not in choices and False not in choices):
            return value
        valid = ", ".join("null" if c is None else str(c) for c in sorted(choices, key=str))
        raise ConfigError(f"config key {key!r}: {value!r} is unknown; valid: {valid}", key=key)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r}: expected a mapping, got {value!r}", key=key)
        return from_dict(tp, value, prefix=f"{key}.")
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r}: expected a list, got {value!r}", key=key)
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        return [_coerce(v, inner, key) for v in value]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r}: expected a mapping, got {value!r}", key=key)
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r}: expected true/false, got {value!r}", key=key)
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # PyYAML (YAML 1.1) reads "1e-5" as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"config key {key!r}: expected a number, got {value!r}", key=key)
        if not math.isfinite(number):  # NaN compares false with everything: a NaN bound silently switches a check off
            raise ConfigError(f"config key {key!r}: expected a finite number, got {value!r}", key=key)
        return number
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r}: expected an integer, got {value!r}", key=key)
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"config key {key!r}: expected a string, got {value!r}", key=key)
    return value


def _set_dotted(d: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            raise ConfigError(f"override {dotted!r}: {p!r} is not a section")
    d[parts[-1]] = value


def _override_key(override: str) -> str:
    """The dotted config key of a ``key=value`` override (``--a-b.c`` -> ``a_b.c``)."""
    return override.split("=", 1)[0].strip().lstrip("-").replace("-", "_")


def parse_overrides(overrides: Sequence[str]) -> dict:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}`` (values parsed as YAML)."""
    out: dict = {}
    for o in overrides:
        if "=" not in o:
            raise ConfigError(f"override {o!r} is not key=value")
        v = o.split("=", 1)[1]
        _set_dotted(out, _override_key(o), yaml.safe_load(v) if v != "" else "")
    return out


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def from_dict(cls: type[C], data: dict | None, overrides: Sequence[str] = (), prefix: str = "") -> C:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types raise ConfigError."""
    data = _deep_merge(data or {}, parse_overrides(overrides))
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown config key {prefix + unknown[0]!r} (in {cls.__name__}); valid: {', '.join(sorted(fields))}",
            key=prefix + unknown[0],
        )
    kwargs = {name: _coerce(v, hints[name], prefix + name) for name, v in data.items()}
    return cls(**kwargs)


def load_config(cls: type[C], path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> C:
    """Read YAML ``path`` (optional) into ``cls`` and apply ``key=value`` overrides.

    Errors name the file and line: ``cfg.yaml:3:5: not valid YAML: ...`` and, for a bad key
    or value that the file (not an override) set, ``cfg.yaml:7: unknown config key ...``.
    """
    data: dict = {}
    text = ""
    p = None
    if path is not None:
        p = Path(path)
        if p.is_dir():
            raise ConfigError(f"config file {p} is a folder; expected a YAML file")
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        raw = p.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = raw.count(b"\n", 0, e.start) + 1
            raise ConfigError(
                f"{p}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x}); save the file as UTF-8"
            ) from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(p)
            raise ConfigError(f"{where}: not valid YAML: {getattr(e, 'problem', None) or e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
    try:
        return from_dict(cls, data, overrides)
    except ConfigError as e:
        overridden = {_override_key(o) for o in overrides}
        if (
            p is None
            or e.key is None
            or any(e.key == k or e.key.startswith(k + ".") or k.startswith(e.key + ".") for k in overridden)
        ):
            raise
        line = yaml_key_line(text, e.key)
        if line is None:
            raise
        raise ConfigError(f"{p}:{line}: {e}", key=e.key) from None


def yaml_key_line(text: str, dotted: str) -> int | None:
    """1-based line of the (nested) mapping key ``dotted`` in YAML ``text``; None if absent.

    Example:
        >>> yaml_key_line("a: 1\\nb:\\n  c: 2\\n", "b.c")
        3
        >>> yaml_key_line("a: 1\\n", "b") is None
        True
        >>> yaml_key_line("k: 1\\nk: 2\\n", "k")
        2
    """
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in dotted.split("."):
        if not isinstance(node, yaml.MappingNode):
            return None
        hits = [(k, v) for k, v in node.value if getattr(k, "value", None) == part]
        if not hits:
            return None
        k, node = hits[-1]  # a repeated key: the loader keeps the last one
        line = k.start_mark.line + 1
    return line


def construct(cls: Any, params: dict[str, Any], what: str, **fixed: Any) -> Any:
    """``cls(**fixed, **params)`` for a component named in a config (filter, sampler, ...).

    ``params`` come from users: unknown names are listed with the valid ones, values are
    checked against the constructor's annotations like config keys (so ``p=abc`` says
    "expected a number" rather than failing deep inside), and a ``TypeError`` / ``ValueError``
    raised by the constructor becomes a :class:`ConfigError` prefixed with ``what``.

    Example:
        >>> @dataclasses.dataclass
        ... class Margin:
        ...     p: float = 0.05
        >>> construct(Margin, {"p": 1}, "filter 'margin'")
        Margin(p=1.0)
        >>> construct(Margin, {"q": 1}, "filter 'margin'")
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: filter 'margin': unknown parameter(s) q; valid: p
        >>> construct(Margin, {"p": "abc"}, "filter 'margin'")
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: filter 'margin': 'p': expected a number, got 'abc'
    """
    values = check_params(cls, params, what, exclude=fixed)
    try:
        return cls(**fixed, **values)
    except ConfigError:
        raise  # already names the component and the parameter
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{what}: {e}") from None


def check_params(
    cls: Any, params: dict[str, Any], what: str, exclude: Any = (), extra: Sequence[str] = ()
) -> dict[str, Any]:
    """The keyword arguments ``params`` a user gives ``cls(...)``, checked: unknown names are
    listed with the valid ones (``exclude``: parameters the caller fills itself; ``extra``:
    names accepted besides the constructor's), values are coerced and checked against the
    constructor's annotations like config keys. Returns the coerced values.

    Example:
        >>> class Model:
        ...     def __init__(self, backbone, max_length: int = 128, pooling: str = "mean"): ...
        >>> check_params(Model, {"max_length": 64}, "model.settings", exclude={"backbone"})
        {'max_length': 64}
        >>> check_params(Model, {"max_lenght": 64}, "model.settings", exclude={"backbone"})
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: model.settings: unknown parameter(s) max_lenght; valid: max_length, pooling
    """
    sig = inspect.signature(cls)
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    accepted = [n for n, p in sig.parameters.items() if p.kind in kinds and n not in exclude] + [n for n in extra]
    open_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    unknown = sorted(set(params) - set(accepted))
    if unknown and not open_kwargs:
        raise ConfigError(
            f"{what}: unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(accepted) or '(none)'}"
        )
    try:
        hints = typing.get_type_hints(cls if dataclasses.is_dataclass(cls) else cls.__init__)
    except Exception:  # noqa: BLE001 - unresolvable annotations: pass the values unchecked
        hints = {}
    values = {}
    for name, value in params.items():
        try:
            values[name] = _coerce(value, hints[name], name) if name in hints else value
        except ConfigError as e:
            raise ConfigError(f"{what}: {str(e).removeprefix('config key ')}") from None
    return values


def check_out_dir(
    out: str | os.PathLike | None, key: str = "out", marker: str | Sequence[str] | None = None, inside: bool = False
) -> None:
    """Before any work is done: the output folder ``out`` is a folder or does not exist yet,
    can be created and written (:func:`unirank.io.check_writable_dir`; ``inside``: it is
    written in place, not replaced), and - with ``marker``, for outputs replaced as a unit -
    holds nothing but an earlier output of the same kind (:func:`unirank.io.check_replaceable`).

    Example:
        >>> import tempfile
        >>> f = tempfile.mkstemp()[1]
        >>> check_out_dir(f)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: out: ... is a file; expected an output folder
    """
    if out is None:
        return
    from .io import check_replaceable, check_writable_dir

    if Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"{key}: {out} is a file; expected an output folder")
    if marker is not None:
        check_replaceable(out, marker, key)
    check_writable_dir(out, key, inside=inside)


def check_ranges(cfg: Any, prefix: str = "") -> None:
    """Check a config built in code as the loader checks one read from YAML: every
    ``Annotated[..., Range]`` field in its bounds and no float field NaN or infinite, in
    nested configs too. ``validate()`` methods call it first."""
    hints = typing.get_type_hints(type(cfg), include_extras=True)
    for f in dataclasses.fields(cfg):
        value, tp = getattr(cfg, f.name), hints.get(f.name)
        key = prefix + f.name
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_ranges(value, key + ".")
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config key {key!r}: expected a finite number, got {value!r}", key=key)
        options = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
        for option in options:
            for r in _ranges(option)[1]:
                r.check(value, key)


def check_positive(values: dict[str, int | None]) -> None:
    """Each set value must be >= 1 (``None`` means unset).

    Example:
        >>> check_positive({"k": 10, "limit_queries": None})
        >>> check_positive({"k": 0})
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: k must be >= 1, got 0
    """
    for key, v in values.items():
        if v is not None and v < 1:
            raise ConfigError(f"{key} must be >= 1, got {v}")


def check_devices(devices: dict[str, str | None]) -> None:
    """Each set device (``{config key: device}``) must be usable by this torch; torch is
    imported only when one is set (see :func:`unirank.models.backbone.check_device`)."""
    if any(devices.values()):
        from .models.backbone import check_device

        for key, device in devices.items():
            check_device(device, key)


def to_dict(cfg: Any) -> dict:
    """A JSON/YAML-ready dict of a config dataclass."""
    return dataclasses.asdict(cfg)
