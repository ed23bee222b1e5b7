"""The ``backend`` setting: which runtime computes a model's scores.

A backend is named by a spec ``NAME[:key=value,...]`` (the syntax of ``--filter`` and
``--sampler``), resolved through :data:`BACKENDS`:

``torch`` (default)
    the PyTorch model itself (:func:`unirank.models.base.load_ranker`).
``onnx[:quantize=int8,threads=N,optimize=true]``
    ONNX Runtime. A folder written by ``unirank export --format onnx`` is opened as it is;
    any other model (a saved unirank folder, ``minilm``, a transformers folder) is exported
    first (:func:`~unirank.runtime.onnx_export.export_onnx`) into the cache
    (``$UNIRANK_CACHE/onnx/<key>``, the key a hash of the weights, settings and options), so
    the next run opens the cached graphs. ``threads`` sets ONNX Runtime's intra-op threads
    (default: one per physical core); on a small shared CPU give the cores the job may use.

Example:
    >>> parse_backend("onnx:quantize=int8,threads=2")
    ('onnx', {'quantize': 'int8', 'threads': 2})
    >>> parse_backend("torch")
    ('torch', {})
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..registry import Registry

__all__ = ["BACKENDS", "backend_names", "load_model", "parse_backend"]

# Callers load models through unirank.models.base.load_ranker(model, kind, backend=...), which
# hands any backend but plain torch to load_model here.

#: backend name -> loader(kind, model, device, settings, **options) -> Ranker
BACKENDS: Registry[Callable[..., Any]] = Registry("inference backend")


def parse_backend(spec: str | None) -> tuple[str, dict[str, Any]]:
    """``"name:key=value,..."`` -> ``(name, options)``; values are parsed as YAML scalars.

    Example:
        >>> parse_backend("onnx:optimize=false")
        ('onnx', {'optimize': False})
        >>> parse_backend("onnx:threads")
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: backend: 'onnx:threads': 'threads' is not key=value
    """
    import yaml

    text = "torch" if spec is None or not str(spec).strip() else str(spec).strip()
    name, _, rest = text.partition(":")
    options: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        if "=" not in part:
            raise ConfigError(f"backend: {text!r}: {part!r} is not key=value")
        k, v = part.split("=", 1)
        options[k.strip()] = yaml.safe_load(v) if v.strip() else ""
    if name not in BACKENDS:
        raise ConfigError(f"backend: unknown inference backend {name!r}; valid: {', '.join(BACKENDS.names())}")
    return name, options


def backend_names() -> list[str]:
    """The registered backend names."""
    return BACKENDS.names()


def load_model(
    kind: str | None,
    model: str | os.PathLike | None,
    backend: str | None = "torch",
    device: str | None = None,
    **settings: Any,
) -> Any:
    """A ranker of ``kind`` from ``model``, computed by ``backend``.

    Args:
        kind: a model kind (bi, cross, poly, uni); ``None`` for a folder that records its kind
            (a saved unirank model or an ONNX export).
        model: folder or name (``None``: the packaged all-MiniLM-L6-v2).
        backend: a backend spec (see the module docstring).
        device: where to run (torch: the torch device; onnx: cpu, or cuda with onnxruntime-gpu).
        settings: constructor keywords / overrides of the model.

    Raises:
        ConfigError: unknown backend or option, a kind that does not match the folder's, or an
            ONNX export asked for with the torch backend.
    """
    name, options = parse_backend(backend)
    return BACKENDS.get(name)(kind, model, device, settings, **options)


def _resolve_kind(kind: str | None, model: Any) -> str:
    """The kind recorded in an ONNX export folder or a saved unirank folder (a given ``kind``
    must match it); ``kind`` for anything else, which then must be given."""
    from ..models.base import import_model_kinds, saved_kind
    from .onnx_export import is_onnx_folder, read_onnx_meta

    found = read_onnx_meta(model)["kind"] if is_onnx_folder(model) else saved_kind(model)
    if kind is not None and found is not None and kind != found:
        raise ConfigError(f"{model} holds a {found!r} model, but kind {kind!r} was asked for")
    kind = kind or found
    import_model_kinds()
    if kind is None:
        from ..models.base import raise_kind_needed

        raise_kind_needed(model)
    return kind


@BACKENDS.register("torch")
def torch_backend(kind: str | None, model: Any, device: str | None, settings: dict[str, Any], **options: Any) -> Any:
    """The PyTorch model (:func:`unirank.models.base.load_ranker`) on ``device``, in eval mode."""
    from ..models.base import load_ranker

    if options:
        raise ConfigError(f"backend: torch takes no options, got {', '.join(sorted(options))}")
    return load_ranker(model, kind, device=device, **settings)


_ONNX_OPTIONS = ("quantize", "threads", "optimize")


@BACKENDS.register("onnx")
def onnx_backend(
    kind: str | None,
    model: Any,
    device: str | None,
    settings: dict[str, Any],
    quantize: str | None = None,
    threads: int | None = None,
    optimize: bool = False,
    **unknown: Any,
) -> Any:
    """ONNX Runtime: open an export folder, or export ``model`` into the cache first (see the module docstring)."""
    from .onnx_export import QUANTIZATIONS, is_onnx_folder, read_onnx_meta, require_onnx
    from .onnx_models import load_onnx_ranker

    if unknown:
        raise ConfigError(
            f"backend: onnx has no option {', '.join(sorted(unknown))}; valid: {', '.join(_ONNX_OPTIONS)}"
        )
    if quantize not in QUANTIZATIONS:
        raise ConfigError(f"backend: onnx quantize={quantize!r} is unknown; valid: int8 (or unset for fp32)")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ConfigError(f"backend: onnx threads must be an integer >= 1, got {threads!r}")
    require_onnx()
    kind = _resolve_kind(kind, model)
    if is_onnx_folder(model):
        meta = read_onnx_meta(model)
        if quantize is not None and meta["precision"] != quantize:
            raise ConfigError(
                f"{model} is a {meta['precision']} export; quantize={quantize} needs a new export "
                f"(`unirank export --format onnx --quantize {quantize}`)"
            )
        return load_onnx_ranker(model, threads=threads, device=device, **settings)
    torch_model = torch_backend(kind, model, "cpu", settings)
    folder = _cached_export(torch_model, quantize, bool(optimize))
    return load_onnx_ranker(folder, threads=threads, device=device)


def onnx_cache_dir() -> Path:
    """Where exports made on the fly are kept: ``$UNIRANK_CACHE/onnx`` (or the user cache dir)."""
    from ..data.codesearch import cache_root

    return cache_root() / "onnx"


def _cached_export(model: Any, quantize: str | None, optimize: bool) -> Path:
    """The cached export of ``model`` with these options (made now when absent)."""
    from .onnx_export import GRAPH_REVISION, ONNX_FILE, _fingerprint, _settings, _versions, export_onnx

    v = _versions()
    key_src = json.dumps(
        {
            "kind": model.kind,
            "weights": _fingerprint(model),
            "settings": _settings(model),
            "quantize": quantize,
            "optimize": optimize,
            "graph": GRAPH_REVISION,
            "unirank": v["unirank"],
            "onnxruntime": v["onnxruntime"],
            "torch": v["torch"],
        },
        sort_keys=True,
        default=str,
    )
    folder = onnx_cache_dir() / f"{model.kind}-{quantize or 'fp32'}-{hashlib.sha256(key_src.encode()).hexdigest()[:16]}"
    if not (folder / ONNX_FILE).is_file():
        export_onnx(model, folder, quantize=quantize, optimize=optimize)
    return folder
