"""What the server runs: a ranker, an encoder and an index, behind batch-shaped methods.

:class:`Backend` holds already-built parts (so tests pass tiny models) and offers one method
per route, each taking a *list* of requests, because the server's dynamic batcher hands it
many requests at once:

* :meth:`Backend.rank_batch` - one ``ranker.score`` call per group of requests (groups hold
  at most ``rank_chunk`` candidates in all);
* :meth:`Backend.encode_batch` - one ``encode`` call for all texts of all requests;
* :meth:`Backend.search_batch` - one ``retriever.search`` call for all queries, then one
  reranker call for the requests that asked for reranking.

These run in the server's model thread; they are plain synchronous functions.
:func:`load_backend` builds a Backend from command-line style names (model folder, model
kind, index name or BEIR folder): that is the slow part the server runs in the background
at startup.

Example:
    >>> from unirank.index.sparse import BM25Index
    >>> bm25 = BM25Index(stemmer=None)
    >>> docs = {"a": Document("a", "the cat sat"), "b": Document("b", "dogs bark")}
    >>> bm25.build(list(docs), [d.full_text for d in docs.values()])
    >>> be = Backend(retriever=bm25, corpus=docs)
    >>> [[(be.doc_ids[h.index], h.score > 0) for h in hits] for hits in be.search_batch([SearchItem("cat", 5)])]
    [[('a', True)]]
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from ..models.base import Context, DualEncoder, Ranker
from ..types import Document

__all__ = [
    "Backend",
    "SearchItem",
    "Hit",
    "NotAvailable",
    "check_backend_args",
    "load_backend",
    "load_corpus_for_index",
    "retriever_config",
]


class NotAvailable(Exception):
    """The request needs a part this server was started without (answered with 404)."""


@dataclass(frozen=True)
class SearchItem:
    """One ``/search`` request as the backend sees it."""

    query: str
    k: int
    rerank: bool = False


@dataclass(frozen=True)
class Hit:
    """A retrieved document: row ``index`` of :attr:`Backend.doc_ids` (best first)."""

    index: int
    score: float
    retrieval_score: float | None = None


def _finite(x: float) -> float:
    """Scores are sent as JSON numbers: map +-inf to +-float max (NaN is a model bug)."""
    if math.isnan(x):
        raise FloatingPointError("the model produced a NaN score")
    return x if math.isfinite(x) else math.copysign(np.finfo(np.float64).max, x)


@dataclass
class Backend:
    """Loaded parts of a server; any may be None (its routes then answer 404).

    Args:
        ranker: any :class:`~unirank.models.base.Ranker` (bi, cross, poly, uni) for ``/rank``
            and for ``/search`` with ``rerank``.
        encoder: an object with ``encode_queries(texts)`` / ``encode_docs(texts)`` returning
            (N, H) arrays (a :class:`~unirank.models.bi.BiEncoder`) for ``/encode``.
        retriever: a built retriever (``doc_ids``, ``search(texts, k)``) for ``/search``.
        corpus: doc id -> Document, for titles and texts of hits and for reranking.
        rerank_depth: documents retrieved and reranked when a search asks for reranking
            (at least ``k``).
        rank_chunk: most candidates per ranker call (requests are grouped up to it).
        info: free-form description shown by ``/readyz`` (model, kind, index).
    """

    ranker: Ranker | None = None
    encoder: Any = None
    retriever: Any = None
    corpus: dict[str, Document] | None = None
    rerank_depth: int = 20
    rank_chunk: int = 256
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.retriever is not None and self.corpus is None:
            raise ConfigError("Backend: a retriever needs its corpus (for hit titles and texts)")
        if self.rerank_depth < 1 or self.rank_chunk < 1:
            raise ConfigError("Backend: rerank_depth and rank_chunk must be >= 1")

    @property
    def doc_ids(self) -> list[str]:
        return [] if self.retriever is None else self.retriever.doc_ids

    def document(self, index: int) -> Document:
        assert self.corpus is not None
        return self.corpus[self.doc_ids[index]]

    def describe(self) -> dict[str, Any]:
        """What ``/readyz`` reports."""
        out = dict(self.info)
        if self.retriever is not None:
            out.setdefault("documents", len(self.doc_ids))
        if self.ranker is not None:
            out.setdefault("kind", getattr(self.ranker, "kind", None))
        return out

    # ------------------------------------------------------------------ /rank

    def _scores(self, contexts: Sequence[Context], candidates: Sequence[Sequence[str]]) -> list[list[float]]:
        """``ranker.score`` in groups of at most ``rank_chunk`` candidates; one list per context."""
        import torch

        assert self.ranker is not None
        out: list[list[float]] = [[] for _ in contexts]
        groups: list[list[int]] = []
        size = 0
        for i, cands in enumerate(candidates):
            if not cands:
                continue
            if not groups or size + len(cands) > self.rank_chunk:
                groups.append([])
                size = 0
            groups[-1].append(i)
            size += len(cands)
        with torch.inference_mode():
            for g in groups:
                s = self.ranker.score([contexts[i] for i in g], [list(candidates[i]) for i in g])
                s = s.float().cpu().numpy()
                for row, i in enumerate(g):
                    out[i] = [_finite(float(x)) for x in s[row, : len(candidates[i])]]
        return out

    def rank_batch(self, items: Sequence[tuple[Context, Sequence[str]]]) -> list[list[float]]:
        """Score each ``(context, candidates)``; one float per candidate, in request order.

        Shapes:
            items[b] = (context, N_b candidates) -> list of B lists of N_b floats.
        """
        if self.ranker is None:
            raise NotAvailable("this server has no ranker model (start it with --model)")
        return self._scores([c for c, _ in items], [list(cands) for _, cands in items])

    # ------------------------------------------------------------------ /encode

    def encode_batch(self, items: Sequence[tuple[Sequence[str], str]]) -> list[np.ndarray]:
        """Embed each request's texts (``kind`` "query" or "doc"); one (N_b, H) array each."""
        if self.encoder is None:
            raise NotAvailable("this server has no bi-encoder (start it with --kind bi, or a dense index)")
        out: list[np.ndarray | None] = [None] * len(items)
        for kind in ("query", "doc"):
            idx = [i for i, (_, k) in enumerate(items) if k == kind]
            if not idx:
                continue
            flat = [t for i in idx for t in items[i][0]]
            fn = self.encoder.encode_queries if kind == "query" else self.encoder.encode_docs
            vecs = np.asarray(fn(flat), dtype=np.float32) if flat else None
            start = 0
            for i in idx:
                n = len(items[i][0])
                out[i] = vecs[start : start + n] if vecs is not None else np.zeros((0, 0), dtype=np.float32)
                start += n
        return out  # type: ignore[return-value]

    # ------------------------------------------------------------------ /search

    def search_batch(self, items: Sequence[SearchItem]) -> list[list[Hit]]:
        """Retrieve (and optionally rerank) for each item; hits best first, at most ``k`` each."""
        if self.retriever is None:
            raise NotAvailable("this server has no index (start it with --index)")
        if any(it.rerank for it in items) and self.ranker is None:
            raise NotAvailable("this server has no reranker model (start it with --model)")
        n_docs = len(self.doc_ids)
        depth = [min(max(it.k, self.rerank_depth) if it.rerank else it.k, n_docs) for it in items]
        results: list[list[Hit]] = [[] for _ in items]
        if n_docs == 0:
            return results
        scores, indices = self.retriever.search([it.query for it in items], max(depth))
        first: list[list[Hit]] = []
        for q, it in enumerate(items):
            row = [Hit(int(j), _finite(float(s))) for s, j in zip(scores[q].tolist(), indices[q].tolist()) if j >= 0]
            first.append(row[: depth[q]])
        rr = [q for q, it in enumerate(items) if it.rerank and first[q]]
        if rr:
            texts = [[self.document(h.index).full_text for h in first[q]] for q in rr]
            new = self._scores([items[q].query for q in rr], texts)
            for q, s in zip(rr, new):
                hits = [Hit(h.index, sc, h.score) for h, sc in zip(first[q], s)]
                order = sorted(range(len(hits)), key=lambda i: -hits[i].score)  # stable: ties keep retrieval order
                first[q] = [hits[i] for i in order]
        for q, it in enumerate(items):
            results[q] = first[q][: it.k]
        return results


# ---------------------------------------------------------------------- loading (I/O edge)


def load_corpus_for_index(index: str, max_docs: int | None = None) -> dict[str, Document]:
    """The corpus named by ``--index``: a built-in data set name or a BEIR folder.

    A folder needs only ``corpus.jsonl`` (no queries or qrels). ``max_docs`` keeps the first
    N documents in file order (quick demos and benchmarks).
    """
    from ..data.datasets import DATASETS, load_dataset

    path = Path(index).expanduser()
    if index in DATASETS and os.sep not in index:
        corpus = load_dataset(index).corpus
    elif path.is_dir():
        from ..data.beir import load_corpus

        if not (path / "corpus.jsonl").is_file():
            raise DataError("missing corpus.jsonl in BEIR folder", path=path)
        corpus = load_corpus(path / "corpus.jsonl")
    else:
        raise DataError(f"not a built-in data set (valid: {', '.join(DATASETS.names())}) and not a folder", path=index)
    if max_docs is not None:
        corpus = dict(list(corpus.items())[:max_docs])
    return corpus


def check_backend_args(model: str | None, kind: str | None, index: str | None, retriever: str = "bm25") -> None:
    """Fail fast, before the server starts, on names that cannot load (the slow part runs later).

    Raises:
        KeyError: unknown model kind or retriever (lists the valid names).
        ConfigError: ``kind`` differs from the kind saved in the ``model`` folder.
        DataError: ``index`` is neither a built-in data set nor a folder with ``corpus.jsonl``;
            ``model`` looks like a path but is not a folder.
    """
    import importlib

    from ..data.datasets import DATASETS
    from ..index.base import RETRIEVERS
    from ..models.base import MODELS, import_model_kinds, saved_kind

    import_model_kinds()
    if kind is not None:
        MODELS.get(kind)
    importlib.import_module("unirank.index.retrievers")
    RETRIEVERS.get(retriever)
    if (
        model is not None
        and (os.sep in model or model.startswith((".", "~")))
        and not Path(model).expanduser().is_dir()
    ):
        raise DataError("model folder not found", path=model)
    recorded = saved_kind(model)
    if kind is not None and recorded is not None and kind != recorded:
        raise ConfigError(f"--model {model} holds a {recorded!r} model, but --kind {kind} was given")
    if index is not None and not (index in DATASETS and os.sep not in index):
        if not (Path(index).expanduser() / "corpus.jsonl").is_file():
            raise DataError(
                f"not a built-in data set (valid: {', '.join(DATASETS.names())}) nor a folder holding corpus.jsonl",
                path=index,
            )


def retriever_config(retriever: str, retriever_set: Sequence[str] = ()) -> Any:
    """The :class:`~unirank.index.config.RetrieverConfig` of ``--retriever`` with ``--set key=value``
    overrides (``retriever.`` prefix optional); ConfigError on an unknown key or a bad value.

    Example:
        >>> retriever_config("cur", ["cur.budget=50", "retriever.cur.method=anncur"]).cur.budget
        50
    """
    from ..config import from_dict
    from ..index.config import RetrieverConfig

    return from_dict(RetrieverConfig, {"name": retriever}, [o.removeprefix("retriever.") for o in retriever_set])


def load_backend(
    model: str | None = None,
    kind: str | None = None,
    index: str | None = None,
    retriever: str = "bm25",
    dense_model: str | None = None,
    max_docs: int | None = None,
    device: str | None = None,
    rerank_depth: int = 20,
    backend: str = "torch",
    retriever_set: Sequence[str] = (),
) -> Backend:
    """Build a :class:`Backend` from names (the server runs this in a background thread).

    Args:
        model: ranker weights for ``/rank`` and reranking: a saved unirank model folder,
            a transformers / sentence-transformers folder, ``"minilm"`` (the packaged
            all-MiniLM-L6-v2 backbone), or None for no ranker.
        kind: model kind, a :data:`~unirank.models.base.MODELS` name (bi, cross, poly, uni);
            ``None``: the kind saved in the ``model`` folder, else ``bi``.
        index: ``stdlib-codesearch`` or a BEIR folder to index for ``/search`` (None: no search).
        retriever: a :data:`~unirank.index.base.RETRIEVERS` name (bm25, dense, hybrid, splade, fusion, cur).
        dense_model: bi-encoder of a dense / hybrid index when the ranker is not a bi-encoder
            (None: packaged all-MiniLM-L6-v2); with ``splade``, the SPLADE model (None: the
            ranker when it is of kind splade, else the packaged SPLADE-tiny).
        max_docs: index only the first N documents.
        device: cpu / cuda (default: cuda when present).
        rerank_depth: documents reranked per ``/search`` with ``rerank``.
        backend: ``torch`` or ``onnx[:quantize=int8,threads=N]`` for the model and a dense
            index's encoder (:mod:`unirank.runtime.backends`).
        retriever_set: ``key=value`` overrides of the retriever's config (a
            :class:`~unirank.index.config.RetrieverConfig`; ``retriever.`` prefix optional),
            e.g. ``cur.index=IX`` for ``retriever="cur"``.
    """
    from ..models.base import load_ranker, saved_kind

    check_backend_args(model, kind, index, retriever)
    kind = kind or saved_kind(model) or "bi"
    ranker = load_ranker(model, kind, device=device, backend=backend) if model is not None else None
    encoder = (
        ranker if isinstance(ranker, DualEncoder) and not ranker.sparse_vectors else None
    )  # /encode gives dense vectors
    built = None
    corpus = None
    if index is not None:
        from ..index.base import RETRIEVERS
        from ..index.retrievers import DenseRetriever, make_retriever, retriever_for

        cfg = retriever_config(retriever, retriever_set)
        cfg.dense.model = dense_model if dense_model is not None else cfg.dense.model
        cfg.dense.device = device if device is not None else cfg.dense.device
        cfg.cur.device = device if device is not None else cfg.cur.device
        cfg.splade.device = device if device is not None else cfg.splade.device
        if dense_model is not None:  # --dense-model also names the SPLADE model of --retriever splade
            cfg.splade.model = dense_model
        RETRIEVERS.get(retriever)  # unknown names raise, listing the valid ones
        if isinstance(ranker, DualEncoder) and ranker.retriever_name == retriever and dense_model is None:
            built = retriever_for(ranker, device=device)  # the ranker searches its own index (e.g. SPLADE)
        elif retriever in ("dense", "hybrid") and encoder is not None and dense_model is None:
            dense = DenseRetriever(encoder, device=device)
            built = (
                dense
                if retriever == "dense"
                else RETRIEVERS.get("hybrid")(RETRIEVERS.get("bm25").from_config(cfg), dense, k_rrf=cfg.k_rrf)
            )
        else:
            built = make_retriever(cfg)
        corpus = load_corpus_for_index(index, max_docs)
        built.build(list(corpus), [d.full_text for d in corpus.values()])
        if encoder is None:
            dense_part = built if retriever == "dense" else getattr(built, "dense", None)
            encoder = getattr(dense_part, "encoder", None)
    return Backend(
        ranker=ranker,
        encoder=encoder,
        retriever=built,
        corpus=corpus,
        rerank_depth=rerank_depth,
        info={
            "model": model,
            "kind": kind if model is not None else None,
            "index": index,
            "retriever": retriever if index else None,
            "backend": backend,
        },
    )
