"""Exports of a trained ranker: its own folder (for bi-encoders a sentence-transformers folder)
and a plain transformers folder of the backbone.

* :func:`export_ranker` - ``Ranker.save``: the folder ``MODELS[kind].from_pretrained`` loads.
  A :class:`~unirank.models.bi.BiEncoder` writes a sentence-transformers layout, so
  ``SentenceTransformer(path)`` loads it and gives the same embeddings.
* :func:`export_transformers` - ``config.json`` + ``model.safetensors`` + tokenizer files:
  ``AutoModel.from_pretrained(path)`` (the encoder only; pooling / heads are not in it).
* ``onnx`` - :func:`unirank.runtime.onnx_export.export_onnx`: the scoring graphs for ONNX
  Runtime (``unirank export --format onnx [--quantize int8]``).

:data:`EXPORT_FORMATS` names them for ``unirank export --format``.

Both write into a temporary folder beside the target and rename it into place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..io import atomic_dir
from ..models.backbone import add_pooler, save_tokenizer
from ..registry import Registry

__all__ = ["EXPORT_FORMATS", "export_ranker", "export_transformers", "export_all"]


def export_ranker(model: Any, path: str | os.PathLike) -> Path:
    """``model.save(path)`` (every ranker kind writes its own loadable folder)."""
    path = Path(path)
    model.save(path)
    return path


def export_transformers(model: Any, path: str | os.PathLike) -> Path:
    """The backbone encoder and tokenizer as a plain transformers folder (safetensors weights).

    Raises:
        TypeError: the model has no ``backbone``.
    """
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        raise TypeError(f"{type(model).__name__} has no backbone to export")
    path = Path(path).expanduser().resolve()
    with atomic_dir(path, marker="config.json") as tmp:
        backbone.model.save_pretrained(str(tmp))  # safetensors (the transformers default)
        add_pooler(tmp, backbone)  # AutoModel.from_pretrained then finds every weight (no random pooler)
        save_tokenizer(backbone.tokenizer, tmp)
    return path


def export_all(model: Any, out: str | os.PathLike, name: str = "model") -> dict[str, str]:
    """``out/<name>`` (ranker folder) and ``out/<name>-transformers``; returns the paths."""
    out = Path(out)
    paths = {"model": str(export_ranker(model, out / name))}
    if getattr(model, "backbone", None) is not None:
        paths["transformers"] = str(export_transformers(model, out / f"{name}-transformers"))
    return paths


def _export_onnx(model: Any, path: str | os.PathLike, quantize: str | None = None, optimize: bool = False) -> Path:
    from ..runtime.onnx_export import export_onnx

    return export_onnx(model, path, quantize=quantize, optimize=optimize)


def _no_options(fn: Any) -> Any:
    def export(model: Any, path: str | os.PathLike, quantize: str | None = None, optimize: bool = False) -> Path:
        from ..errors import ConfigError

        if quantize is not None:
            raise ConfigError(f"--quantize applies to --format onnx only, not {fn.__name__.removeprefix('export_')}")
        return fn(model, path)

    return export


#: ``unirank export --format`` name -> function(model, path, quantize=None, optimize=False) -> folder
EXPORT_FORMATS: Registry[Any] = Registry("export format")
EXPORT_FORMATS.register("onnx")(_export_onnx)
EXPORT_FORMATS.register("ranker")(_no_options(export_ranker))
EXPORT_FORMATS.register("transformers")(_no_options(export_transformers))
