"""The model registry and the interface every paradigm (bi, poly, cross, uni) implements.

A *ranker* scores candidate texts for a context (a query, or dialogue turns oldest first).
All paradigms share one backbone loader (:mod:`unirank.models.backbone`) and one
scoring contract so that training, evaluation and serving never dispatch on the kind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence, Union

import torch
from torch import nn

from ..errors import ConfigError, DataError
from ..registry import Registry

#: a query string, or a dialogue context as a list of turns (oldest first)
Context = Union[str, Sequence[str]]

#: model kind name -> Ranker subclass (classes register themselves: ``@MODELS.register("uni")``)
MODELS: Registry[type["Ranker"]] = Registry("model kind")


_KIND_MODULES = ("bi", "cross", "poly", "uni")

#: the file that marks a saved unirank model folder (written by every kind's ``save``)
MODEL_FILE = "unirank_model.json"
#: value of "format" in unirank_model.json
FORMAT_VERSION = 1


def import_model_kinds() -> None:
    """Import the built-in model modules so that every kind is registered in :data:`MODELS`."""
    import importlib

    for m in _KIND_MODULES:
        importlib.import_module(f"{__package__}.{m}")


def model_class(kind: str) -> type["Ranker"]:
    """The Ranker class registered as ``kind`` (imports the built-in model modules on first use).

    Example:
        >>> model_class("uni").__name__
        'UniEncoder'
    """
    import_model_kinds()
    return MODELS.get(kind)


class Ranker(nn.Module):
    """Interface of every paradigm.

    ``score(contexts, candidates)`` is differentiable and used by training; ``rank`` is the
    no-grad inference entry point (chunks long candidate lists).
    """

    kind: str = "?"

    def score(self, contexts: Sequence[Context], candidates: Sequence[Sequence[str]]) -> torch.Tensor:
        """Scores for each context's candidates.

        Shapes: B contexts, candidates[b] has N_b texts -> (B, max N_b) float tensor; slots past
        N_b hold ``-inf``.
        """
        raise NotImplementedError

    @torch.inference_mode()
    def rank(self, context: Context, candidates: Sequence[str], chunk_size: int = 64) -> list[float]:
        """Score one context's candidates, ``chunk_size`` at a time; returns one float each."""
        out: list[float] = []
        for i in range(0, len(candidates), chunk_size):
            out.extend(self.score([context], [list(candidates[i : i + chunk_size])])[0].tolist())
        return out

    def save(self, path: str) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------- saved folders and the one loader


def read_model_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``unirank_model.json`` of a saved model folder (DataError if unusable)."""
    f = Path(path).expanduser() / MODEL_FILE
    if not f.is_file():
        raise DataError(f"not a unirank model folder (no {MODEL_FILE})", path=path)
    try:
        meta = json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg}", path=f, line=e.lineno) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("kind"), str):
        raise DataError('expected a JSON object with a "kind"', path=f)
    if meta.get("format") != FORMAT_VERSION:
        raise DataError(f"unsupported format {meta.get('format')!r}; expected {FORMAT_VERSION}", path=f)
    return meta


def saved_kind(model: str | os.PathLike | None) -> str | None:
    """The kind recorded in a saved unirank model folder; ``None`` for anything else
    (a transformers folder, a hub name, ``None`` for the packaged MiniLM).

    Example:
        >>> saved_kind(None), saved_kind("sentence-transformers/all-MiniLM-L6-v2")
        (None, None)
    """
    if model is None or not (Path(model).expanduser() / MODEL_FILE).is_file():
        return None
    return read_model_meta(model)["kind"]


def load_ranker(
    model: str | os.PathLike | None = None,
    kind: str | None = None,
    *,
    device: str | torch.device | None = None,
    **settings: Any,
) -> "Ranker":
    """The one way to build a ranker from a kind and a folder (training, evaluation, mining, serving).

    Args:
        model: a saved unirank model folder (its kind is read from ``unirank_model.json``), a
            transformers / sentence-transformers folder, a hub name, or ``None`` / ``"minilm"``
            for the packaged all-MiniLM-L6-v2. (A fresh cross/poly/uni head on a plain backbone
            is random - except a published BERT / RoBERTa cross-encoder, whose head ``cross``
            loads.)
        kind: a :data:`MODELS` name; optional for a saved folder (if given it must match
            the folder's), required otherwise.
        device: where the ranker goes (``None``: CUDA when present, else CPU); it is returned
            in eval mode.
        settings: constructor keywords (for a saved folder: overrides of its saved settings).

    Raises:
        ConfigError: unknown kind; a kind that differs from the saved folder's; no kind for
            something that is not a saved unirank folder.
        DataError: a damaged ``unirank_model.json``.

    Example:
        >>> load_ranker(None, "nope")
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: unknown model kind 'nope'; valid: bi, cross, poly, uni
        >>> load_ranker("no/such/folder")
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: no/such/folder is not a saved unirank model; say which kind to build (bi, cross, poly, uni)
    """
    from .backbone import pick_device

    import_model_kinds()
    recorded = saved_kind(model)
    if recorded is not None:
        if kind is not None and kind != recorded:
            raise ConfigError(f"{model} holds a {recorded!r} model, but kind {kind!r} was asked for")
        kind = recorded
    if kind is None:
        raise ConfigError(f"{model or 'the packaged MiniLM'} is not a saved unirank model; say which kind to build "
                          f"({', '.join(MODELS.names())})")
    try:
        cls = MODELS.get(kind)
    except KeyError as e:
        raise ConfigError(str(e.args[0])) from None
    ranker = cls.from_pretrained(model, **settings)
    ranker.to(pick_device(device))
    ranker.eval()
    return ranker
