"""The model registry, the interface every paradigm implements, and the one loader.

A *ranker* scores candidate texts for a context (a query, or dialogue turns oldest first).
All paradigms share one backbone loader (:mod:`unirank.models.backbone`) and one
scoring contract so that training, evaluation and serving never dispatch on the kind.

**Capabilities are declared, never probed.** Every kind implements :class:`Ranker`
(``score``, ``rank``, ``save``). What else a kind can do it says by its classes:

* :class:`DualEncoder` - contexts and documents are embedded independently
  (bi-encoder): the training loop embeds a batch once and compares every query with every
  document; evaluation, mining and serving can index a corpus with it. Verbs: ``embed*``
  return differentiable tensors, ``encode*`` no-grad numpy arrays.
* :class:`SharedPoolScorer` - scores all contexts of a batch against one shared candidate
  list in one call (the poly-encoder's in-batch pool).
* :attr:`Ranker.may_take_segmented_pass` - its forward can take a pass that activation
  checkpointing does not reach (the Uni-Encoder's segmented pass).

A new kind subclasses :class:`Ranker` (or one of the classes above), registers with
``@MODELS.register("name")`` and is added to ``_KIND_MODULES``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NoReturn, Sequence, Union

import torch
from torch import nn

from ..errors import ConfigError, DataError
from ..registry import Registry

#: a query string, or a dialogue context as a list of turns (oldest first)
Context = Union[str, Sequence[str]]

#: model kind name -> Ranker subclass (classes register themselves: ``@MODELS.register("uni")``)
MODELS: Registry[type["Ranker"]] = Registry("model kind")


_KIND_MODULES = ("bi", "cross", "poly", "uni", "splade")

#: the file that marks a saved unirank model folder (written by every kind's ``save``)
MODEL_FILE = "unirank_model.json"
#: value of "format" in unirank_model.json
FORMAT_VERSION = 1
#: the file that marks an ONNX export folder (``unirank export --format onnx``; :mod:`unirank.runtime.onnx_export`)
ONNX_MODEL_FILE = "unirank_onnx.json"


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
    #: keyword options of ``from_pretrained`` that are not constructor settings but may be given
    #: in ``model.settings`` (checked by the training config like the settings)
    load_options: tuple[str, ...] = ("attn_implementation",)

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

    @property
    def may_take_segmented_pass(self) -> bool:
        """True when a forward pass may bypass the backbone's own layer calls (so activation
        checkpointing does not act there); the Uni-Encoder's segmented pass."""
        return False


class DualEncoder(Ranker):
    """A ranker that embeds contexts and documents independently and compares the vectors.

    Training embeds a batch's queries and documents once and scores every pair with
    ``similarity_fn``; evaluation, mining and serving encode a corpus with ``encode_docs``
    and search it with ``encode_queries``.

    Attributes:
        doc_prefix: prepended to every document text before ``embed`` / ``encode``.
        retriever_name: the retriever / miner (:data:`unirank.index.base.RETRIEVERS`,
            :data:`unirank.negatives.miners.MINERS`) that searches a corpus with this model's
            vectors (:func:`unirank.index.retrievers.retriever_for` builds it around the model;
            the ANCE refresh mines with it).
        default_model: what ``unirank encode`` / a retriever of this kind loads when no model is
            named (``None``: the packaged all-MiniLM-L6-v2).
        sparse_vectors: vectors are vocabulary-wide and sparse (``encode_*`` return scipy CSR
            matrices, not dense numpy arrays); the loop logs their non-zeros per text.
    """

    doc_prefix: str = ""
    retriever_name: str = "dense"
    default_model: str | None = None
    sparse_vectors: bool = False

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Differentiable document-side vectors. Shapes: N texts -> (N, H)."""
        raise NotImplementedError

    def embed_contexts(self, contexts: Sequence[Context]) -> torch.Tensor:
        """Differentiable context-side vectors. Shapes: B contexts -> (B, H)."""
        raise NotImplementedError

    def similarity_fn(self, queries: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
        """Scores of every query vector against every document vector. Shapes: (B, H), (N, H) -> (B, N)."""
        raise NotImplementedError

    def encode_queries(self, queries: Sequence[Context], **kw: Any) -> Any:
        """No-grad query vectors for search (one row per query: numpy, or scipy CSR when ``sparse_vectors``)."""
        raise NotImplementedError

    def encode_docs(self, docs: Sequence[Any], **kw: Any) -> Any:
        """No-grad document vectors for indexing (one row per document: numpy, or scipy CSR when ``sparse_vectors``)."""
        raise NotImplementedError


class SharedPoolScorer:
    """Mixin of a ranker that scores B contexts against one shared list of N candidates in one
    call - cheaper than ``score`` with the list repeated B times (the poly-encoder embeds each
    candidate once)."""

    def score_shared(self, contexts: Sequence[Context], candidates: Sequence[str]) -> torch.Tensor:
        """Shapes: B contexts, N candidates -> (B, N) differentiable scores."""
        raise NotImplementedError


# --------------------------------------------------------------------------- saved folders and the one loader


def read_model_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``unirank_model.json`` of a saved model folder (DataError if unusable)."""
    from ..data.files import read_json_object

    f = Path(path).expanduser() / MODEL_FILE
    if not f.is_file():
        raise DataError(f"not a unirank model folder (no {MODEL_FILE})", path=path)
    meta = read_json_object(f)
    if not isinstance(meta.get("kind"), str):
        raise DataError('expected a JSON object with a "kind"', path=f)
    if meta.get("format") != FORMAT_VERSION:
        raise DataError(f"unsupported format {meta.get('format')!r}; expected {FORMAT_VERSION}", path=f)
    return meta


def raise_kind_needed(model: str | os.PathLike | None) -> NoReturn:
    """The error for a model that records no kind: a missing path, a file or a training run
    folder is named as such first (:func:`~unirank.models.backbone.resolve_model_path`);
    anything else needs the kind said.

    Example:
        >>> raise_kind_needed(None)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: the packaged MiniLM is not a saved unirank model; say which kind to build (--kind...
    """
    from .backbone import resolve_model_path

    if model is not None:
        resolve_model_path(model)
    import_model_kinds()
    raise ConfigError(
        f"{model or 'the packaged MiniLM'} is not a saved unirank model; say which kind to build "
        f"(--kind, or --reranker in unirank eval: {', '.join(MODELS.names())})"
    )


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
    backend: str | None = "torch",
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
        backend: the inference runtime: ``torch`` (the PyTorch model, trainable) or
            ``onnx[:quantize=int8,threads=N,optimize=true]`` (ONNX Runtime; an export folder, or
            any model exported on the fly into the cache; see :mod:`unirank.runtime.backends`).
        settings: constructor keywords (for a saved folder: overrides of its saved settings).

    Raises:
        ConfigError: unknown kind; a kind that differs from the saved folder's; no kind for
            something that is not a saved unirank folder.
        DataError: a damaged ``unirank_model.json``.

    Example:
        >>> load_ranker(None, "nope")
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: unknown model kind 'nope'; valid: bi, cross, poly, splade, uni
        >>> load_ranker("no/such/folder")
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: no/such/folder is not a saved unirank model; say which kind to build (--kind, or --reranker in unirank eval: bi, cross, poly, splade, uni)
    """
    import importlib

    from .backbone import pick_device

    if backend is not None and str(backend).strip() not in ("", "torch"):
        # another runtime (a registry of backends, imported like the model kinds); it resolves
        # the kind the same way and builds the PyTorch model with this function when it needs one
        runtime = importlib.import_module("unirank.runtime.backends")
        return runtime.load_model(kind, model, backend, None if device is None else str(device), **settings)
    if model is not None and (Path(model).expanduser() / ONNX_MODEL_FILE).is_file():
        raise ConfigError(f"{model} is an ONNX export; load it with --backend onnx (or --set ...backend=onnx)")
    import_model_kinds()
    recorded = saved_kind(model)
    if recorded is not None:
        if kind is not None and kind != recorded:
            raise ConfigError(f"{model} holds a {recorded!r} model, but kind {kind!r} was asked for")
        kind = recorded
    if kind is None:
        raise_kind_needed(model)
    try:
        cls = MODELS.get(kind)
    except KeyError as e:
        raise ConfigError(str(e.args[0])) from None
    ranker = cls.from_pretrained(model, **settings)
    ranker.to(pick_device(device))
    ranker.eval()
    return ranker
