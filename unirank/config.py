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
import os
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

from .errors import ConfigError

C = TypeVar("C")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any or tp is typing.Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"config key {key!r}: {value!r} does not fit {tp}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r}: expected a mapping, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        return [_coerce(v, inner, key) for v in value]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r}: expected true/false, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML (YAML 1.1) reads "1e-5" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"config key {key!r}: expected a number, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r}: expected an integer, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"config key {key!r}: expected a string, got {value!r}")
    return value


def _set_dotted(d: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            raise ConfigError(f"override {dotted!r}: {p!r} is not a section")
    d[parts[-1]] = value


def parse_overrides(overrides: Sequence[str]) -> dict:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}`` (values parsed as YAML)."""
    out: dict = {}
    for o in overrides:
        if "=" not in o:
            raise ConfigError(f"override {o!r} is not key=value")
        k, v = o.split("=", 1)
        _set_dotted(out, k.strip().lstrip("-").replace("-", "_"), yaml.safe_load(v) if v != "" else "")
    return out


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def from_dict(cls: type[C], data: dict | None, overrides: Sequence[str] = (), prefix: str = "") -> C:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types raise ConfigError."""
    data = _deep_merge(data or {}, parse_overrides(overrides))
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key {prefix + unknown[0]!r} (in {cls.__name__}); valid: {', '.join(sorted(fields))}")
    kwargs = {name: _coerce(v, hints[name], prefix + name) for name, v in data.items()}
    return cls(**kwargs)


def load_config(cls: type[C], path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> C:
    """Read YAML ``path`` (optional) into ``cls`` and apply ``key=value`` overrides."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
    return from_dict(cls, data, overrides)


def to_dict(cfg: Any) -> dict:
    """A JSON/YAML-ready dict of a config dataclass."""
    return dataclasses.asdict(cfg)
