"""Exports of a trained ranker: its own folder (for bi-encoders a sentence-transformers folder)
and a plain transformers folder of the backbone.

* :func:`export_ranker` - ``Ranker.save``: the folder ``MODELS[kind].from_pretrained`` loads.
  A :class:`~unirank.models.bi.BiEncoder` writes a sentence-transformers layout, so
  ``SentenceTransformer(path)`` loads it and gives the same embeddings.
* :func:`export_transformers` - ``config.json`` + ``model.safetensors`` + tokenizer files:
  ``AutoModel.from_pretrained(path)`` (the encoder only; pooling / heads are not in it).

Both write into a temporary folder beside the target and rename it into place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..io import atomic_dir
from ..models.backbone import save_tokenizer

__all__ = ["export_ranker", "export_transformers", "export_all"]


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
        save_tokenizer(backbone.tokenizer, tmp)
    return path


def export_all(model: Any, out: str | os.PathLike, name: str = "model") -> dict[str, str]:
    """``out/<name>`` (ranker folder) and ``out/<name>-transformers``; returns the paths."""
    out = Path(out)
    paths = {"model": str(export_ranker(model, out / name))}
    if getattr(model, "backbone", None) is not None:
        paths["transformers"] = str(export_transformers(model, out / f"{name}-transformers"))
    return paths
