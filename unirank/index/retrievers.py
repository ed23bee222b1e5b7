"""First-stage retrievers behind one interface: ``build(doc_ids, texts)`` then ``search(texts, k)``.

``bm25`` lives in :mod:`unirank.index.sparse`; this module adds ``dense`` (a bi-encoder +
FAISS) and ``hybrid`` (reciprocal-rank fusion of the two). Look them up by name through
:data:`unirank.index.base.RETRIEVERS` (see :func:`make_retriever`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import splade_retriever  # noqa: F401,E402  (registers "splade" and "fusion")
from .base import RETRIEVERS, rrf_fuse  # noqa: F401  (rrf_fuse: also imported from here)
from .cur_retriever import CURRetriever  # noqa: F401  (registers "cur")
from .dense import DenseIndex
from .shards import PrebuiltRetriever
from .sparse import BM25Index  # noqa: F401  (registers "bm25")

#: search a store written by ``unirank encode`` (optionally through ``unirank index``'s FAISS indexes)
RETRIEVERS.register("prebuilt")(PrebuiltRetriever)


@RETRIEVERS.register("dense")
class DenseRetriever:
    """Encode documents with a bi-encoder and search them with a FAISS index.

    Args:
        model: a model name/folder for :meth:`BiEncoder.from_pretrained`, or a BiEncoder.
        index_kind: "flat" (exact inner product) or "ivf".
        batch_size, device, dtype: passed to the encoder.
        backend: ``torch`` or ``onnx[:options]`` (:mod:`unirank.runtime.backends`) for a model given by name.
    """

    def __init__(
        self,
        model: Any = None,
        index_kind: str = "flat",
        batch_size: int = 64,
        device: str | None = None,
        dtype: str | None = None,
        nprobe: int = 16,
        show_progress: bool | None = None,
        backend: str = "torch",
    ) -> None:
        from ..models.base import load_ranker
        from ..models.bi import BiEncoder

        self.encoder = (
            model if isinstance(model, BiEncoder) else load_ranker(model, "bi", device="cpu", backend=backend)
        )
        self.index = DenseIndex(kind=index_kind, nprobe=nprobe)
        self.enc_kw = {"batch_size": batch_size, "device": device, "dtype": dtype, "show_progress": show_progress}

    @classmethod
    def from_config(cls, cfg) -> "DenseRetriever":
        """Build from a :class:`unirank.index.config.RetrieverConfig`."""
        d = cfg.dense
        return cls(
            d.model,
            index_kind=d.index_kind,
            batch_size=d.batch_size,
            device=d.device,
            dtype=d.dtype,
            nprobe=d.nprobe,
            backend=d.backend,
        )

    @property
    def doc_ids(self) -> list[str]:
        return self.index.doc_ids

    def build(self, doc_ids: Sequence[str], texts: Sequence[str]) -> None:
        self.doc_vectors = self.encoder.encode_docs(list(texts), **self.enc_kw)
        self.index.add(self.doc_vectors, list(doc_ids))

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        q = self.encoder.encode_queries(list(queries), **self.enc_kw)
        return self.index.search(q, k)


@RETRIEVERS.register("hybrid")
class HybridRetriever:
    """BM25 + dense, fused by reciprocal rank (k_rrf=60 as in Cormack et al. 2009).

    Each side retrieves ``depth`` candidates (default max(k, 100)) before fusion.
    """

    def __init__(self, bm25: BM25Index, dense: DenseRetriever, k_rrf: float = 60.0, depth: int = 100) -> None:
        self.bm25, self.dense, self.k_rrf, self.depth = bm25, dense, k_rrf, depth

    @classmethod
    def from_config(cls, cfg) -> "HybridRetriever":
        """Build from a :class:`unirank.index.config.RetrieverConfig`."""
        return cls(BM25Index.from_config(cfg), DenseRetriever.from_config(cfg), k_rrf=cfg.k_rrf)

    @property
    def doc_ids(self) -> list[str]:
        return self.bm25.doc_ids

    def build(self, doc_ids: Sequence[str], texts: Sequence[str]) -> None:
        self.bm25.build(doc_ids, texts)
        self.dense.build(doc_ids, texts)

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        d = min(max(k, self.depth), len(self.doc_ids))  # never more hits than documents
        return rrf_fuse([self.bm25.search(queries, d), self.dense.search(queries, d)], len(self.doc_ids), k, self.k_rrf)


def make_retriever(cfg) -> Any:
    """Build the retriever named by ``cfg.name`` (a RetrieverConfig) through the registry."""
    return RETRIEVERS.get(cfg.name).from_config(cfg)


def retriever_for(model: Any, **kw: Any) -> Any:
    """An unbuilt retriever that searches a corpus with ``model``, a
    :class:`~unirank.models.base.DualEncoder` (the retriever its ``retriever_name`` names:
    ``dense`` for a bi-encoder, ``splade`` for SPLADE); ``kw``: the retriever's options
    (``batch_size``, ``device``, ``show_progress``, ...)."""
    return RETRIEVERS.get(model.retriever_name)(model=model, **kw)
