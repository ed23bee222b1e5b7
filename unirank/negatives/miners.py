"""Miners: a scored candidate list per query, plus the scores of chosen documents (positives).

A miner is the first stage of hard-negative mining. It indexes the corpus once
(:meth:`Miner.build`), then works on chunks of queries:

1. ``state = miner.prepare(query_texts)`` encodes / tokenizes one chunk of queries;
2. ``hits = miner.search(state, k, rows)`` returns the top ``k`` corpus rows per query
   **and** the same scorer's score for each query's extra ``rows`` (its positives), so
   margin filters can compare negatives with the positive;
3. ``miner.score(state, rows)`` scores more rows later (random negatives).

Registered miners (:data:`MINERS`):

* ``bm25`` - bm25s through :class:`~unirank.index.sparse.BM25Index`. One query's
  scores over the whole corpus are one length-N vector (bm25s computes exactly that
  inside ``retrieve``); the top ``k`` and the positives' scores are read from it, so
  they are the same numbers. Documents with score 0 (no query term) are not
  candidates, as in ``BM25Index.search``.
* ``dense`` - a bi-encoder and either a FAISS index (``search="faiss"``: flat = exact,
  or IVF) or a chunked exact scan of the document vectors (``search="scan"``: a
  ``query_chunk x doc_chunk`` block at a time, merged with
  :func:`~unirank.index.base.topk_merge`; the document matrix may be a ``np.memmap``).
  Neither path ever builds a queries x corpus matrix. A positive's score is ``q . p``.
* ``hybrid`` - reciprocal-rank fusion (:func:`~unirank.index.retrievers.rrf_fuse`) of the
  two, each side retrieving ``depth`` candidates. A positive's score is computed by the
  same formula: ``sum over sides of 1 / (k_rrf + rank)``, a side where it is not among the
  ``depth`` retrieved contributing 0 (as for any candidate).

Ties are broken by the lower corpus row everywhere, so results do not depend on chunk sizes.

:class:`TeacherScorer` rescores candidates and positives with any
:class:`~unirank.models.base.Ranker` (cross-encoder, Uni-Encoder, bi-encoder, ...).

Example:
    >>> import numpy as np
    >>> m = DenseMiner(encoder=None, search="scan", doc_chunk=2)
    >>> m.build_from_vectors(["a", "b", "c"], np.eye(3, dtype="float32"))
    >>> hits = m.search(np.array([[0.2, 0.9, 0.1]], dtype="float32"), k=2, rows=[[2]])
    >>> [m.doc_ids[j] for j in hits.indices[0]], [round(float(x), 2) for x in hits.row_scores[0]]
    (['b', 'a'], [0.1])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError
from ..index.base import stable_topk, topk_merge
from ..index.retrievers import rrf_fuse
from ..index.sparse import BM25Index
from ..registry import Registry

__all__ = [
    "MINERS",
    "BM25Miner",
    "DenseMiner",
    "HybridMiner",
    "Miner",
    "MinedHits",
    "TeacherScorer",
    "build_miner",
    "dense_scan_topk",
    "inner_products",
    "stable_topk",
]

#: miner name -> Miner class; ``MINERS.get(name).from_config(cfg)`` builds one
MINERS: Registry[type["Miner"]] = Registry("miner", name_attribute="name")

#: dense search backends
DENSE_SEARCHES = ("faiss", "scan")


@dataclass
class MinedHits:
    """What :meth:`Miner.search` returns for a chunk of Q queries.

    Attributes:
        scores: ``(Q, k)`` float32, best first; ``-inf`` where fewer than k docs matched.
        indices: ``(Q, k)`` int64 corpus rows; ``-1`` where fewer than k docs matched.
        row_scores: per query, float32 scores of the rows asked for (same order).
    """

    scores: np.ndarray
    indices: np.ndarray
    row_scores: list[np.ndarray]


# ---------------------------------------------------------------------------- top-k kernels


def inner_products(queries: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """``queries @ docs.T`` accumulated in float64, returned as float32.

    BLAS sums in an order that depends on the matrix shapes, so float32 products of the
    same pair can differ in the last bit between block sizes, and near-ties then swap.
    Accumulating in float64 and rounding once makes a pair's score independent of the
    chunking (up to a float64 rounding landing on a float32 midpoint, ~2**-29 per pair).

    Shapes:
        queries ``(Q, H)``, docs ``(N, H)`` -> ``(Q, N)`` float32.

    Example:
        >>> inner_products(np.array([[1.0, 2.0]]), np.array([[3.0, 4.0], [0.5, 0.0]])).tolist()
        [[11.0, 0.5]]
    """
    q = np.asarray(queries, dtype=np.float64)
    d = np.asarray(docs, dtype=np.float64)
    return (q @ d.T).astype(np.float32)


def dense_scan_topk(
    queries: np.ndarray, docs: np.ndarray, k: int, query_chunk: int = 1024, doc_chunk: int = 16384
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top ``k`` by scanning ``docs`` in chunks; never a Q x N matrix.

    Scores come from :func:`inner_products` (float64 accumulation), so they do not depend
    on the chunk sizes. Peak extra memory is a few ``query_chunk x doc_chunk`` blocks
    (float64 while multiplying). ``docs`` may be a ``np.memmap``: one chunk is read at a time.

    Args:
        queries: query vectors.
        docs: document vectors.
        k: hits per query.
        query_chunk, doc_chunk: block sizes.

    Shapes:
        queries ``(Q, H)``, docs ``(N, H)`` -> scores ``(Q, k)`` float32, indices ``(Q, k)``
        int64 (``-inf`` / ``-1`` past N).

    Example:
        >>> d = np.array([[1, 0], [0, 1], [0.6, 0.8]], dtype="float32")
        >>> s, i = dense_scan_topk(np.array([[0.0, 1.0]], dtype="float32"), d, k=2, doc_chunk=1)
        >>> i.tolist(), [round(float(x), 2) for x in s[0]]
        ([[1, 2]], [1.0, 0.8])
    """
    if query_chunk < 1 or doc_chunk < 1:
        raise ValueError(f"chunk sizes must be >= 1, got query_chunk={query_chunk}, doc_chunk={doc_chunk}")
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n_q, n_d = len(queries), len(docs)
    out_s = np.full((n_q, k), -np.inf, dtype=np.float32)
    out_i = np.full((n_q, k), -1, dtype=np.int64)
    for qs in range(0, n_q, query_chunk):
        qb = queries[qs : qs + query_chunk]
        best_s = np.empty((len(qb), 0), dtype=np.float32)
        best_i = np.empty((len(qb), 0), dtype=np.int64)
        for ds in range(0, n_d, doc_chunk):
            block = inner_products(qb, docs[ds : ds + doc_chunk])
            s, i = stable_topk(block, k, offset=ds)
            del block
            best_s, best_i = topk_merge(best_s, best_i, s, i, k)
        w = best_s.shape[1]
        out_s[qs : qs + len(qb), :w], out_i[qs : qs + len(qb), :w] = best_s, best_i
    return out_s, out_i


def _rows(rows: Sequence[Any], n: int) -> list[np.ndarray]:
    if rows is None:
        return [np.empty(0, dtype=np.int64) for _ in range(n)]
    if len(rows) != n:
        raise ValueError(f"{n} queries but {len(rows)} row lists")
    return [np.asarray(r, dtype=np.int64).reshape(-1) for r in rows]


# ---------------------------------------------------------------------------- miners


class Miner:
    """Interface: ``build`` once, then ``prepare`` / ``search`` / ``score`` per query chunk."""

    name: ClassVar[str] = "miner"

    @property
    def doc_ids(self) -> list[str]:  # pragma: no cover - interface
        raise NotImplementedError

    def build(self, doc_ids: Sequence[str], texts: Sequence[str]) -> None:  # pragma: no cover
        """Index the corpus (row ``j`` is ``doc_ids[j]``)."""
        raise NotImplementedError

    def prepare(self, queries: Sequence[str]) -> Any:  # pragma: no cover
        """Encode or tokenize a chunk of query texts; the result is opaque."""
        raise NotImplementedError

    def search(self, state: Any, k: int, rows: Sequence[Sequence[int]] | None = None) -> MinedHits:  # pragma: no cover
        """Top ``k`` rows per query, and the scores of each query's ``rows``."""
        raise NotImplementedError

    def score(self, state: Any, rows: Sequence[Sequence[int]]) -> list[np.ndarray]:  # pragma: no cover
        """Scores of each query's ``rows`` (float32, one array per query)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:  # pragma: no cover
        """Index type, settings and model fingerprint, for the run manifest."""
        raise NotImplementedError


@MINERS.register("bm25")
class BM25Miner(Miner):
    """BM25 candidates and positive scores from one exact score vector per query.

    Args:
        index: an unbuilt :class:`~unirank.index.sparse.BM25Index` (its k1, b, method,
            stemmer and stop words apply); default Pyserini's BEIR settings.

    Example:
        >>> m = BM25Miner(BM25Index(stemmer=None))
        >>> m.build(["a", "b", "c"], ["the cat sat", "dogs bark loudly", "a cat and a dog"])
        >>> hits = m.search(m.prepare(["cat sat"]), k=3, rows=[[1, 2]])
        >>> hits.indices.tolist(), float(hits.row_scores[0][0])
        ([[0, 2, -1]], 0.0)
    """

    def __init__(self, index: BM25Index | None = None) -> None:
        self.index = index if index is not None else BM25Index()

    @classmethod
    def from_config(cls, cfg: Any) -> "BM25Miner":
        """Build from a MineConfig (uses ``cfg.miner.bm25``)."""
        return cls(BM25Index.from_config(cfg.miner))

    @property
    def doc_ids(self) -> list[str]:
        return self.index.doc_ids

    def build(self, doc_ids: Sequence[str], texts: Sequence[str]) -> None:
        self.index.build(doc_ids, texts)

    def prepare(self, queries: Sequence[str]) -> list[list[int]]:
        """Index-vocabulary token ids per query (terms not in the corpus are dropped)."""
        return self.index.query_token_ids(list(queries))

    def _all_scores(self, token_ids: list[int]) -> np.ndarray:
        return self.index.score_all(token_ids)

    def search(self, state: list[list[int]], k: int, rows: Sequence[Sequence[int]] | None = None) -> MinedHits:
        rows_ = _rows(rows, len(state))
        out_s = np.full((len(state), k), -np.inf, dtype=np.float32)
        out_i = np.full((len(state), k), -1, dtype=np.int64)
        row_scores = []
        for q, tokens in enumerate(state):
            full = self._all_scores(tokens)
            s, i = stable_topk(full[None], k)
            keep = s[0] > 0
            w = int(keep.sum())
            out_s[q, :w], out_i[q, :w] = s[0][keep], i[0][keep]
            row_scores.append(full[rows_[q]])
        return MinedHits(out_s, out_i, row_scores)

    def score(self, state: list[list[int]], rows: Sequence[Sequence[int]]) -> list[np.ndarray]:
        rows_ = _rows(rows, len(state))
        return [self._all_scores(t)[r] if len(r) else np.empty(0, np.float32) for t, r in zip(state, rows_)]

    def describe(self) -> dict[str, Any]:
        return {"miner": "bm25", "index": "bm25s", "settings": dict(self.index.settings), "model": None}


@MINERS.register("dense")
class DenseMiner(Miner):
    """Bi-encoder vectors searched by FAISS or by a chunked exact scan.

    Args:
        encoder: a :class:`~unirank.models.bi.BiEncoder` (or any object with
            ``encode_queries`` / ``encode_docs`` returning float32 arrays). ``None`` is
            allowed when vectors are supplied (``build_from_vectors``, query vectors
            passed straight to ``search``).
        search: ``"faiss"`` (a :class:`~unirank.index.dense.DenseIndex`, which keeps its own
            copy of the vectors) or ``"scan"`` (exact, chunked, no copy).
        index_kind: FAISS index for ``search="faiss"``: ``"flat"`` (exact) or ``"ivf"``.
        nprobe: IVF cells probed.
        query_chunk, doc_chunk: block sizes of the search.
        encode_kw: passed to the encoder (``batch_size``, ``device``, ``dtype``, ...).

    Scores are inner products of the vectors the encoder returns. A bi-encoder with
    ``similarity="cosine"`` that does not normalise its vectors has them normalised here,
    so the scores are its cosine similarities.
    """

    def __init__(
        self,
        encoder: Any = None,
        search: str = "faiss",
        index_kind: str = "flat",
        nprobe: int = 16,
        query_chunk: int = 1024,
        doc_chunk: int = 16384,
        encode_kw: dict[str, Any] | None = None,
    ) -> None:
        if search not in DENSE_SEARCHES:
            raise ConfigError(f"dense search {search!r} is unknown; valid: {', '.join(DENSE_SEARCHES)}")
        if index_kind not in ("flat", "ivf"):
            raise ConfigError(f"dense index_kind {index_kind!r} is unknown; valid: flat, ivf")
        self.encoder, self.search_kind, self.index_kind, self.nprobe = encoder, search, index_kind, nprobe
        self.query_chunk, self.doc_chunk = int(query_chunk), int(doc_chunk)
        self.encode_kw = dict(encode_kw or {})
        self._doc_ids: list[str] = []
        self.doc_vectors: np.ndarray | None = None
        self._faiss = None

    @classmethod
    def from_config(cls, cfg: Any, encoder: Any = None) -> "DenseMiner":
        """Build from a MineConfig (``cfg.miner.dense``, ``cfg.dense_search``, chunk sizes)."""
        d = cfg.miner.dense
        if encoder is None:
            from ..models.base import load_ranker

            encoder = load_ranker(d.model, "bi", device="cpu", backend=d.backend)
        return cls(
            encoder,
            search=cfg.dense_search,
            index_kind=d.index_kind,
            nprobe=d.nprobe,
            query_chunk=cfg.query_chunk,
            doc_chunk=cfg.doc_chunk,
            encode_kw={"batch_size": d.batch_size, "device": d.device, "dtype": d.dtype},
        )

    @property
    def doc_ids(self) -> list[str]:
        return self._doc_ids

    def _fix(self, vectors: np.ndarray) -> np.ndarray:
        if getattr(self.encoder, "similarity", None) == "cosine" and not getattr(self.encoder, "normalize", True):
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        return np.asarray(vectors, dtype=np.float32)

    def build(self, doc_ids: Sequence[str], texts: Sequence[str]) -> None:
        if self.encoder is None:
            raise RuntimeError("DenseMiner.build needs an encoder (or use build_from_vectors)")
        self.build_from_vectors(doc_ids, self._fix(self.encoder.encode_docs(list(texts), **self.encode_kw)))

    def build_from_vectors(self, doc_ids: Sequence[str], vectors: np.ndarray) -> None:
        """Use precomputed ``(N, H)`` float32 document vectors (an array or a ``np.memmap``)."""
        if vectors.ndim != 2 or len(vectors) != len(doc_ids):
            raise ValueError(f"expected ({len(doc_ids)}, H) vectors, got shape {vectors.shape}")
        self._doc_ids = list(doc_ids)
        self.doc_vectors = vectors
        self._faiss = None
        if self.search_kind == "faiss":
            from ..index.dense import DenseIndex

            self._faiss = DenseIndex(kind=self.index_kind, nprobe=self.nprobe)
            # IVF is trained on the first batch added, so it gets all vectors at once
            step = self.doc_chunk if self.index_kind == "flat" else max(len(vectors), 1)
            for start in range(0, len(vectors), step):
                block = np.asarray(vectors[start : start + step], dtype=np.float32)
                self._faiss.add(block, self._doc_ids[start : start + len(block)])

    def prepare(self, queries: Sequence[Any]) -> np.ndarray:
        """Query vectors ``(Q, H)``; already-encoded vectors pass through."""
        if isinstance(queries, np.ndarray):
            return np.ascontiguousarray(queries, dtype=np.float32)
        if self.encoder is None:
            raise RuntimeError("DenseMiner.prepare needs an encoder for query texts")
        return self._fix(self.encoder.encode_queries(list(queries), **self.encode_kw))

    def search(self, state: np.ndarray, k: int, rows: Sequence[Sequence[int]] | None = None) -> MinedHits:
        if self.doc_vectors is None:
            raise RuntimeError("DenseMiner.search before build()")
        q = np.ascontiguousarray(state, dtype=np.float32)
        if self._faiss is not None:
            kk = min(k, len(self._doc_ids))
            s = np.full((len(q), k), -np.inf, dtype=np.float32)
            i = np.full((len(q), k), -1, dtype=np.int64)
            if kk:
                s[:, :kk], i[:, :kk] = self._faiss.search(q, kk, chunk_size=self.query_chunk)
            s = np.where(i < 0, -np.inf, s).astype(np.float32)
        else:
            s, i = dense_scan_topk(q, self.doc_vectors, k, self.query_chunk, self.doc_chunk)
        return MinedHits(s, i, self.score(q, rows if rows is not None else [[] for _ in range(len(q))]))

    def score(self, state: np.ndarray, rows: Sequence[Sequence[int]]) -> list[np.ndarray]:
        q = np.asarray(state, dtype=np.float32)
        out = []
        for vec, r in zip(q, _rows(rows, len(q))):
            if len(r):
                # sorted unique rows keep memmap reads sequential
                uniq, inv = np.unique(r, return_inverse=True)
                out.append(inner_products(vec[None], self.doc_vectors[uniq])[0][inv])
            else:
                out.append(np.empty(0, dtype=np.float32))
        return out

    def describe(self) -> dict[str, Any]:
        if self.search_kind == "faiss":
            index = f"faiss-{self.index_kind}" + (f" (nprobe={self.nprobe})" if self.index_kind == "ivf" else "")
        else:
            index = "exact-scan"
        backbone = getattr(self.encoder, "backbone", None)
        model = None
        if backbone is not None:
            model = {
                "source": backbone.source,
                "fingerprint": backbone.fingerprint(),
                "settings": dict(getattr(self.encoder, "settings", {})),
            }
        elif self.encoder is not None:
            model = {"source": type(self.encoder).__name__, "fingerprint": None}
        return {
            "miner": "dense",
            "index": index,
            "settings": {
                "query_chunk": self.query_chunk,
                "doc_chunk": self.doc_chunk,
                "dim": None if self.doc_vectors is None else int(self.doc_vectors.shape[1]),
            },
            "model": model,
        }


@dataclass
class _HybridState:
    bm25: Any
    dense: Any
    sides: list[tuple[np.ndarray, np.ndarray]] | None = None


@MINERS.register("prebuilt")
class PrebuiltMiner(DenseMiner):
    """Dense mining against a prebuilt embedding store (``unirank encode``) and optional
    per-shard FAISS indexes (``unirank index``): the corpus is never encoded again and never
    held in one process's memory (search goes shard by shard through
    :class:`~unirank.index.shards.ShardedIndex`; positives and random negatives are scored
    from the memory-mapped store rows).

    The store must hold exactly the corpus being mined, in the corpus order (what ``unirank
    encode`` writes for that corpus); queries are embedded by ``encoder`` (the model that
    wrote the store).

    Args:
        encoder: the bi-encoder for the queries.
        store: the embedding store folder.
        index_dir: per-shard FAISS indexes, or ``None`` for an exact streaming scan.
        encode_kw: passed to ``encoder.encode_queries``.
        refine: re-score ``refine x k`` compressed hits exactly from the store (see
            :class:`~unirank.index.shards.ShardedIndex`).
    """

    def __init__(
        self,
        encoder: Any = None,
        store: str | None = None,
        index_dir: str | None = None,
        encode_kw: dict[str, Any] | None = None,
        refine: int = 0,
    ) -> None:
        super().__init__(encoder, search="scan", encode_kw=encode_kw)
        if not store:
            raise ConfigError("miner prebuilt needs miner.dense.store (a folder written by `unirank encode`)")
        self.store, self.index_dir, self.refine = str(store), (str(index_dir) if index_dir else None), int(refine)
        self._index: Any = None

    @classmethod
    def from_config(cls, cfg: Any, encoder: Any = None) -> "PrebuiltMiner":
        """From a MineConfig: ``miner.dense.store`` / ``index_dir`` / ``model`` / encoding settings."""
        d = cfg.miner.dense
        if encoder is None:
            from ..models.base import load_ranker

            encoder = load_ranker(d.model, "bi", device="cpu", backend=d.backend)
        return cls(
            encoder, d.store, d.index_dir, {"batch_size": d.batch_size, "device": d.device, "dtype": d.dtype}, d.refine
        )

    def build(self, doc_ids: Sequence[str], texts: Sequence[str]) -> None:
        """Open the store and check it holds ``doc_ids`` in this order; nothing is encoded."""
        from ..index.shards import ShardedIndex

        if getattr(self.encoder, "similarity", None) == "cosine" and not getattr(self.encoder, "normalize", True):
            raise ConfigError(
                "miner prebuilt: the store holds the encoder's raw vectors, but this encoder scores by cosine "
                "without normalising them; use a normalising encoder (or the dense miner)"
            )

        index = ShardedIndex(self.store, self.index_dir, refine=self.refine)
        if index.doc_ids != list(doc_ids):
            have, want = set(index.doc_ids), set(doc_ids)
            why = (
                f"{len(want - have)} corpus documents missing, {len(have - want)} extra"
                if have != want
                else "same documents in another order"
            )
            raise ConfigError(
                f"{self.store}: the store does not match the corpus being mined ({why}); "
                "encode this corpus with `unirank encode`"
            )
        self._index, self._doc_ids, self.doc_vectors = index, list(doc_ids), index.vectors

    def build_from_vectors(self, doc_ids: Sequence[str], vectors: np.ndarray) -> None:
        raise ConfigError("the prebuilt miner reads its vectors from miner.dense.store")

    def search(self, state: np.ndarray, k: int, rows: Sequence[Sequence[int]] | None = None) -> MinedHits:
        if self._index is None:
            raise RuntimeError("PrebuiltMiner.search before build()")
        q = np.ascontiguousarray(state, dtype=np.float32)
        s, i = self._index.search(q, k)
        s = np.where(i < 0, -np.inf, s).astype(np.float32)
        return MinedHits(s, i, self.score(q, rows if rows is not None else [[] for _ in range(len(q))]))

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(
            {
                "miner": "prebuilt",
                "index": f"store {self.store}" + (f" + faiss {self.index_dir}" if self.index_dir else " (exact scan)"),
            }
        )
        return out


@MINERS.register("hybrid")
class HybridMiner(Miner):
    """Reciprocal-rank fusion of a BM25 and a dense miner over the same corpus.

    ``score(d) = sum over sides of 1 / (k_rrf + rank_side(d))`` with 1-based ranks among
    each side's ``max(k, depth)`` hits; a side that did not retrieve ``d`` adds 0. Positives
    and random negatives are scored by the same formula, so a positive that neither side
    retrieved scores 0 (margin filters then drop every candidate; prefer ``duplicates``
    and ``teacher`` filters with this miner).

    Args:
        bm25, dense: the two miners (built together by :meth:`build`).
        k_rrf: the RRF constant (60, Cormack et al. 2009).
        depth: hits per side before fusion.
    """

    def __init__(self, bm25: BM25Miner, dense: DenseMiner, k_rrf: float = 60.0, depth: int = 100) -> None:
        self.bm25, self.dense, self.k_rrf, self.depth = bm25, dense, float(k_rrf), int(depth)

    @classmethod
    def from_config(cls, cfg: Any, encoder: Any = None) -> "HybridMiner":
        """Build from a MineConfig (``cfg.miner`` for both sides, ``cfg.hybrid_depth``)."""
        return cls(BM25Miner.from_config(cfg), DenseMiner.from_config(cfg, encoder), cfg.miner.k_rrf, cfg.hybrid_depth)

    @property
    def doc_ids(self) -> list[str]:
        return self.bm25.doc_ids

    def build(self, doc_ids: Sequence[str], texts: Sequence[str]) -> None:
        self.bm25.build(doc_ids, texts)
        self.dense.build(doc_ids, texts)

    def prepare(self, queries: Sequence[str]) -> _HybridState:
        return _HybridState(self.bm25.prepare(queries), self.dense.prepare(queries))

    def _sides(self, state: _HybridState, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        d = min(max(k, self.depth), len(self.doc_ids))
        if state.sides is None or state.sides[0][1].shape[1] < d:
            b, n = self.bm25.search(state.bm25, d), self.dense.search(state.dense, d)
            state.sides = [(b.scores, b.indices), (n.scores, n.indices)]
        return state.sides

    def search(self, state: _HybridState, k: int, rows: Sequence[Sequence[int]] | None = None) -> MinedHits:
        sides = self._sides(state, k)
        s, i = rrf_fuse(sides, len(self.doc_ids), k, self.k_rrf)
        return MinedHits(s, i, self.score(state, rows if rows is not None else [[] for _ in range(len(i))]))

    def score(self, state: _HybridState, rows: Sequence[Sequence[int]]) -> list[np.ndarray]:
        sides = self._sides(state, 0)
        out = []
        for q, r in enumerate(_rows(rows, len(sides[0][1]))):
            vals = np.zeros(len(r), dtype=np.float64)
            if not len(r):
                out.append(vals.astype(np.float32))
                continue
            for _, idx in sides:  # same summation order as rrf_fuse
                rank = {int(j): n for n, j in enumerate(idx[q].tolist(), start=1) if j >= 0}
                vals = vals + np.array([1.0 / (self.k_rrf + rank[j]) if j in rank else 0.0 for j in r.tolist()])
            out.append(vals.astype(np.float32))
        return out

    def describe(self) -> dict[str, Any]:
        b, d = self.bm25.describe(), self.dense.describe()
        return {
            "miner": "hybrid",
            "index": f"rrf({b['index']}, {d['index']})",
            "settings": {"k_rrf": self.k_rrf, "depth": self.depth, "bm25": b["settings"], "dense": d["settings"]},
            "model": d["model"],
        }


@MINERS.register("splade")
class SpladeMiner(Miner):
    """Negatives from a SPLADE model (the self-mined negatives of SPLADE++): documents and
    queries are sparse vectors, candidates come from an exact sparse search
    (:class:`~unirank.index.learned_sparse.SparseExactIndex`) and a positive's score is the
    same dot product ``q . d``.

    Args:
        encoder: a :class:`~unirank.models.splade.Splade` (``encode_queries`` / ``encode_docs``
            returning ``scipy.sparse`` rows).
        encode_kw: passed to the encoder (``batch_size``, ``device``, ``dtype``).
    """

    def __init__(self, encoder: Any, encode_kw: dict[str, Any] | None = None) -> None:
        self.encoder = encoder
        self.encode_kw = dict(encode_kw or {})
        self._index: Any = None

    @classmethod
    def from_config(cls, cfg: Any, encoder: Any = None) -> "SpladeMiner":
        """From a MineConfig: ``miner.splade.model`` (default the packaged SPLADE-tiny) and its settings."""
        s = cfg.miner.splade
        if encoder is None:
            from ..models.splade import Splade

            encoder = Splade.from_pretrained(s.model, **s.settings)
        return cls(encoder, {"batch_size": s.batch_size, "device": s.device, "dtype": s.dtype})

    @property
    def doc_ids(self) -> list[str]:
        return [] if self._index is None else self._index.doc_ids

    def build(self, doc_ids: Sequence[str], texts: Sequence[str]) -> None:
        from ..index.learned_sparse import SparseExactIndex

        self._index = SparseExactIndex(vocab_fingerprint=self.encoder.vocab_fingerprint())
        self._index.add(self.encoder.encode_docs(list(texts), **self.encode_kw), list(doc_ids))

    def prepare(self, queries: Sequence[str]) -> Any:
        from ..index.learned_sparse import warn_empty_queries

        q = self.encoder.encode_queries(list(queries), **self.encode_kw)
        warn_empty_queries(q, "miner splade")
        return q

    def search(self, state: Any, k: int, rows: Sequence[Sequence[int]] | None = None) -> MinedHits:
        if self._index is None:
            raise RuntimeError("SpladeMiner.search before build()")
        s, i = self._index.search(state, k)
        return MinedHits(s, i, self.score(state, rows if rows is not None else [[] for _ in range(state.shape[0])]))

    def score(self, state: Any, rows: Sequence[Sequence[int]]) -> list[np.ndarray]:
        docs = self._index.matrix
        out = []
        for r, want in enumerate(_rows(rows, state.shape[0])):
            if len(want):
                out.append(np.asarray((docs[want] @ state[r].T).toarray()).reshape(-1).astype(np.float32))
            else:
                out.append(np.empty(0, dtype=np.float32))
        return out

    def describe(self) -> dict[str, Any]:
        backbone = getattr(self.encoder, "backbone", None)
        return {
            "miner": "splade",
            "index": "splade-exact (scipy sparse)",
            "settings": {"vocab_fingerprint": self.encoder.vocab_fingerprint()},
            "model": {
                "source": backbone.source,
                "fingerprint": backbone.fingerprint(),
                "settings": dict(getattr(self.encoder, "settings", {})),
            }
            if backbone is not None
            else None,
        }


def build_miner(cfg: Any, encoder: Any = None) -> Miner:
    """The miner named by ``cfg.miner.name`` (a MineConfig), through :data:`MINERS`.

    Raises:
        ConfigError: unknown miner name (lists the valid ones).
    """
    try:
        cls = MINERS.get(cfg.miner.name)
    except KeyError as e:
        raise ConfigError(e.args[0]) from None
    return cls.from_config(cfg) if cls is BM25Miner else cls.from_config(cfg, encoder)


# ---------------------------------------------------------------------------- teacher


class TeacherScorer:
    """Rescore a query's candidates (and positives) with any :class:`~unirank.models.base.Ranker`.

    Args:
        ranker: e.g. a cross-encoder; its ``rank(context, texts, chunk_size)`` is used.
        depth: only the best ``depth`` candidates of each query are rescored (the
            others get NaN, which filters keep and samplers using teacher scores skip).
        chunk_size: pairs per forward pass.

    Example:
        >>> class Len:  # a stand-in ranker: longer texts score higher
        ...     def rank(self, context, texts, chunk_size=64):
        ...         return [float(len(t)) for t in texts]
        >>> TeacherScorer(Len(), depth=2)("q", ["a", "bbb", "cc"]).tolist()
        [1.0, 3.0, nan]
    """

    def __init__(self, ranker: Any, depth: int = 50, chunk_size: int = 32) -> None:
        if depth < 0:
            raise ConfigError(f"teacher depth must be >= 0, got {depth}")
        self.ranker, self.depth, self.chunk_size = ranker, int(depth), int(chunk_size)

    def __call__(self, query: str, texts: Sequence[str], limit: bool = True) -> np.ndarray:
        """Teacher scores of ``texts`` (the first ``depth`` if ``limit``; NaN for the rest)."""
        n = min(len(texts), self.depth) if limit else len(texts)
        out = np.full(len(texts), np.nan)
        if n:
            out[:n] = np.asarray(self.ranker.rank(query, list(texts[:n]), chunk_size=self.chunk_size), dtype=np.float64)
        return out

    def describe(self) -> dict[str, Any]:
        backbone = getattr(self.ranker, "backbone", None)
        return {
            "kind": getattr(self.ranker, "kind", type(self.ranker).__name__),
            "source": getattr(backbone, "source", None),
            "fingerprint": backbone.fingerprint() if backbone is not None else None,
            "depth": self.depth,
        }
