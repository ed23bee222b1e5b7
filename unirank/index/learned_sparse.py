"""Search over learned sparse vectors (SPLADE): exact, or with the Seismic engine; sharded stores.

* :class:`SparseExactIndex` - a ``scipy.sparse`` document-term matrix; queries are scored a
  chunk at a time (``chunk x N`` scores at most, sized by ``max_block``), exact top-k with
  ties to the lower row. Documents that share no term with a query (score 0) are not returned.
* :class:`SeismicIndex` - the Seismic inverted index for learned sparse vectors
  (``pip install pyseismic-lsr``; Bruch et al., SIGIR 2024), approximate, with its knobs:
  ``n_postings``, ``centroid_fraction``, ``summary_energy``, ``doc_cut`` at build time and
  ``query_cut``, ``heap_factor`` at search time.
* a sparse *store*: :func:`encode_sparse_shard` writes shard ``i`` of ``n`` of a corpus in
  resumable chunks (the layout of :mod:`unirank.index.shards`, with ``.npz`` CSR chunks),
  :class:`SparseShardedIndex` searches it shard by shard (exact, or one Seismic index per
  shard built by :meth:`SparseShardedIndex.build`) and merges the per-shard top-k.

Every index records the vocabulary fingerprint of the model that wrote it
(:meth:`~unirank.models.splade.Splade.vocab_fingerprint`) and refuses queries from a model
with another vocabulary; all-zero query vectors are reported (:func:`warn_empty_queries`), not
silently answered with nothing.

Example:
    >>> import scipy.sparse as sp
    >>> docs = sp.csr_matrix(np.array([[1.0, 0, 2], [0, 3, 0], [1, 1, 0]], dtype="float32"))
    >>> ix = SparseExactIndex()
    >>> ix.add(docs, ["a", "b", "c"])
    >>> s, i = ix.search(sp.csr_matrix(np.array([[0, 1.0, 1]], dtype="float32")), k=3)
    >>> [ix.doc_ids[j] for j in i[0] if j >= 0], s[0][:2].tolist()
    (['b', 'a', 'c'], [3.0, 2.0])
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ConfigError
from ..io import read_json, write_json
from .base import topk_merge

__all__ = [
    "SparseExactIndex",
    "SeismicIndex",
    "warn_empty_queries",
    "check_vocab",
    "encode_sparse_shard",
    "SparseShardedIndex",
    "is_sparse_store",
    "sparse_topk",
    "SEISMIC_BUILD_DEFAULTS",
    "SEISMIC_SEARCH_DEFAULTS",
]

SPARSE_FORMAT = "unirank-sparse/1"
#: Seismic build parameters and the defaults used here (Seismic's own, sized for MS MARCO, are
#: n_postings 3500 / summary_energy 0.4; for small corpora fewer postings keep recall high)
SEISMIC_BUILD_DEFAULTS = {
    "n_postings": 3500,
    "centroid_fraction": 0.1,
    "min_cluster_size": 2,
    "summary_energy": 0.4,
    "max_fraction": 1.5,
    "doc_cut": 15,
}
SEISMIC_SEARCH_DEFAULTS = {"query_cut": 10, "heap_factor": 0.7}


def _sp() -> Any:
    import scipy.sparse as sp

    return sp


def warn_empty_queries(queries: Any, where: str = "splade") -> int:
    """Warn when some query vectors have no non-zero weight (they can retrieve nothing).

    Returns the number of such queries.

    Example:
        >>> import scipy.sparse as sp, warnings
        >>> with warnings.catch_warnings(record=True) as w:
        ...     warnings.simplefilter("always")
        ...     warn_empty_queries(sp.csr_matrix(np.array([[0.0, 1.0], [0.0, 0.0]])))
        1
        >>> "all-zero" in str(w[0].message)
        True
    """
    nnz = np.diff(queries.indptr)
    empty = int((nnz == 0).sum())
    if empty:
        rows = np.flatnonzero(nnz == 0)[:5].tolist()
        warnings.warn(
            f"{where}: {empty} of {len(nnz)} queries have an all-zero sparse vector (rows {rows}"
            f"{', ...' if empty > 5 else ''}) and retrieve nothing; the model gives their terms no weight "
            f"(check the query text, top_k_query, or whether the model was trained with too strong a FLOPS "
            f"regulariser)",
            stacklevel=2,
        )
    return empty


def check_vocab(stored: str | None, model: Any, where: str) -> None:
    """Refuse a model whose vocabulary differs from the one a stored index was written with.

    Raises:
        ConfigError: the fingerprints differ (both given).
    """
    have = model.vocab_fingerprint() if callable(getattr(model, "vocab_fingerprint", None)) else None
    if stored and have and stored != have:
        raise ConfigError(
            f"{where}: the index was written with another vocabulary (fingerprint {stored}) than this "
            f"model's ({have}); its term ids would mean other tokens - re-encode the corpus with this model"
        )


def sparse_topk(scores: Any, k: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of each row of a dense ``(Q, N)`` score block, zeros dropped (``-inf`` / ``-1``),
    ties to the lower column. Shapes: -> ``(Q, k)`` float32 scores, int64 indices.

    Example:
        >>> s, i = sparse_topk(np.array([[0.0, 2.0, 2.0, 1.0]]), 3)
        >>> i.tolist(), s.tolist()
        ([[1, 2, 3]], [[2.0, 2.0, 1.0]])
    """
    from .base import stable_topk

    block = np.asarray(scores, dtype=np.float32)
    s, i = stable_topk(block, k)
    keep = s > 0
    out_s = np.full((block.shape[0], k), -np.inf, dtype=np.float32)
    out_i = np.full((block.shape[0], k), -1, dtype=np.int64)
    w = s.shape[1]
    out_s[:, :w] = np.where(keep, s, -np.inf)
    out_i[:, :w] = np.where(keep, i + offset, -1)
    return out_s, out_i


class SparseExactIndex:
    """Exact dot-product search over a ``scipy.sparse`` document-term matrix.

    Args:
        max_block: most query x document scores held at once (sets the query chunk).
        vocab_fingerprint: the writing model's vocabulary fingerprint (checked on search).
    """

    def __init__(self, max_block: int = 32_000_000, vocab_fingerprint: str | None = None) -> None:
        self.max_block = int(max_block)
        self.vocab_fingerprint = vocab_fingerprint
        self.doc_ids: list[str] = []
        self._parts: list[Any] = []
        self._matrix: Any = None

    def __len__(self) -> int:
        return len(self.doc_ids)

    def add(self, docs: Any, doc_ids: Sequence[str]) -> None:
        """Append ``(n, V)`` sparse document vectors."""
        docs = _sp().csr_matrix(docs, dtype=np.float32)
        if docs.shape[0] != len(doc_ids):
            raise ValueError(f"{docs.shape[0]} vectors for {len(doc_ids)} ids")
        self._parts.append(docs)
        self.doc_ids.extend(doc_ids)
        self._matrix = None

    @property
    def matrix(self) -> Any:
        """The ``(N, V)`` CSR document-term matrix."""
        if self._matrix is None:
            self._matrix = _sp().vstack(self._parts, format="csr") if len(self._parts) != 1 else self._parts[0]
            self._parts = [self._matrix]
        return self._matrix

    @property
    def nbytes(self) -> int:
        """Bytes of the matrix (values + column ids + row pointers)."""
        m = self.matrix
        return int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes)

    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k`` per query: ``(scores, indices)`` each ``(Q, k)``; -1 past the matches."""
        q = _sp().csr_matrix(queries, dtype=np.float32)
        d = self.matrix
        if q.shape[1] != d.shape[1]:
            raise ConfigError(f"query vectors have {q.shape[1]} dimensions, the index {d.shape[1]}: another vocabulary")
        n = max(d.shape[0], 1)
        chunk = max(1, self.max_block // n)
        dt = d.T.tocsr()
        out_s = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
        out_i = np.full((q.shape[0], k), -1, dtype=np.int64)
        for a in range(0, q.shape[0], chunk):
            block = (q[a : a + chunk] @ dt).toarray()
            out_s[a : a + chunk], out_i[a : a + chunk] = sparse_topk(block, k)
        return out_s, out_i

    def save(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        _sp().save_npz(folder / "matrix.npz", self.matrix)
        write_json(
            folder / "unirank_index.json",
            {"kind": "splade-exact", "doc_ids": self.doc_ids, "vocab_fingerprint": self.vocab_fingerprint},
        )

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "SparseExactIndex":
        folder = Path(folder)
        meta = json.loads((folder / "unirank_index.json").read_text(encoding="utf-8"))
        ix = cls(vocab_fingerprint=meta.get("vocab_fingerprint"))
        ix.add(_sp().load_npz(folder / "matrix.npz"), meta["doc_ids"])
        return ix


def _seismic() -> Any:
    from ..optional import optional_import

    return optional_import(
        "seismic", "the seismic index", "pip install 'unirank[splade]' (or pip install pyseismic-lsr)"
    )


class SeismicIndex:
    """Approximate search with Seismic (``pyseismic-lsr``) over sparse document vectors.

    Args:
        build: Seismic build parameters (:data:`SEISMIC_BUILD_DEFAULTS` fills the rest):
            ``n_postings`` (postings kept per term), ``centroid_fraction`` (clusters per
            posting list), ``summary_energy`` (mass kept in each block summary), ``doc_cut``,
            ``max_fraction``, ``min_cluster_size``.
        search: ``query_cut`` (query terms used) and ``heap_factor`` (block-pruning
            aggressiveness; 1.0 prunes least) - :data:`SEISMIC_SEARCH_DEFAULTS`.
        num_threads: Seismic's threads (0: Rayon's default, one per core - slow on a busy machine).
        vocab_fingerprint: the writing model's vocabulary fingerprint.
    """

    def __init__(
        self,
        build: dict[str, Any] | None = None,
        search: dict[str, Any] | None = None,
        num_threads: int = 1,
        vocab_fingerprint: str | None = None,
    ) -> None:
        unknown = sorted(set(build or {}) - set(SEISMIC_BUILD_DEFAULTS)) + sorted(
            set(search or {}) - set(SEISMIC_SEARCH_DEFAULTS)
        )
        if unknown:
            raise ConfigError(
                f"seismic: unknown parameter(s) {', '.join(unknown)}; build: {', '.join(SEISMIC_BUILD_DEFAULTS)}; "
                f"search: {', '.join(SEISMIC_SEARCH_DEFAULTS)}"
            )
        self.build_params = {**SEISMIC_BUILD_DEFAULTS, **(build or {})}
        self.search_params = {**SEISMIC_SEARCH_DEFAULTS, **(search or {})}
        self.num_threads = int(num_threads)
        self.vocab_fingerprint = vocab_fingerprint
        self.doc_ids: list[str] = []
        self._index: Any = None
        self._dim = 0

    def __len__(self) -> int:
        return len(self.doc_ids)

    def add(self, docs: Any, doc_ids: Sequence[str]) -> None:
        """Index ``(N, V)`` sparse vectors (all at once: Seismic builds a static index)."""
        seismic = _seismic()
        if self._index is not None:
            raise RuntimeError("SeismicIndex.add: the index is built once; put every document in one call")
        docs = _sp().csr_matrix(docs, dtype=np.float32)
        docs.sort_indices()
        if docs.shape[0] != len(doc_ids):
            raise ValueError(f"{docs.shape[0]} vectors for {len(doc_ids)} ids")
        self._dim = int(docs.shape[1])
        ds = seismic.SeismicDataset()
        # Seismic names a document by a string; its row number keeps the lookup trivial
        ds.add_documents_by_id(
            [str(i) for i in range(docs.shape[0])],
            docs.indices.astype(np.int64),
            docs.data.astype(np.float32),
            docs.indptr.astype(np.int64),
        )
        p = self.build_params
        self._index = seismic.SeismicIndex.build_from_dataset(
            ds,
            n_postings=int(p["n_postings"]),
            centroid_fraction=float(p["centroid_fraction"]),
            min_cluster_size=int(p["min_cluster_size"]),
            summary_energy=float(p["summary_energy"]),
            max_fraction=float(p["max_fraction"]),
            doc_cut=int(p["doc_cut"]),
            num_threads=self.num_threads,
        )
        self.doc_ids = list(doc_ids)

    def search(self, queries: Any, k: int, **params: Any) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top ``k``: ``(scores, indices)`` each ``(Q, k)``; ``params`` override
        ``query_cut`` / ``heap_factor`` for this call."""
        seismic = _seismic()
        if self._index is None:
            raise RuntimeError("SeismicIndex.search before add/load")
        sp_ = {**self.search_params, **params}
        q = _sp().csr_matrix(queries, dtype=np.float32)
        if self._dim and q.shape[1] != self._dim:
            raise ConfigError(f"query vectors have {q.shape[1]} dimensions, the index {self._dim}: another vocabulary")
        string = seismic.get_seismic_string()
        out_s = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
        out_i = np.full((q.shape[0], k), -1, dtype=np.int64)
        live = [r for r in range(q.shape[0]) if q.indptr[r + 1] > q.indptr[r]]
        if not live:
            return out_s, out_i
        comps = [np.array([str(c) for c in q.indices[q.indptr[r] : q.indptr[r + 1]]], dtype=string) for r in live]
        vals = [np.ascontiguousarray(q.data[q.indptr[r] : q.indptr[r + 1]], dtype=np.float32) for r in live]
        res = self._index.batch_search(
            np.array([str(r) for r in live], dtype=string),
            comps,
            vals,
            k=int(k),
            query_cut=int(sp_["query_cut"]),
            heap_factor=float(sp_["heap_factor"]),
            num_threads=self.num_threads,
        )
        for hits in res:  # results are not in query order: each hit names its query
            hits = [h for h in hits if h[1] > 0]
            for j, (qid, score, doc) in enumerate(hits[:k]):
                out_s[int(qid), j], out_i[int(qid), j] = score, int(doc)
        return out_s, out_i

    @property
    def nbytes(self) -> int | None:
        """Size of the saved index file in bytes (``None`` before it is saved)."""
        return getattr(self, "_file_bytes", None)

    def save(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._index.save(str(folder / "index"))
        self._file_bytes = (folder / "index.index.seismic").stat().st_size
        write_json(
            folder / "unirank_index.json",
            {
                "kind": "seismic",
                "doc_ids": self.doc_ids,
                "dim": self._dim,
                "build": self.build_params,
                "search": self.search_params,
                "vocab_fingerprint": self.vocab_fingerprint,
            },
        )

    @classmethod
    def load(cls, folder: str | os.PathLike, **search: Any) -> "SeismicIndex":
        seismic = _seismic()
        folder = Path(folder)
        meta = json.loads((folder / "unirank_index.json").read_text(encoding="utf-8"))
        ix = cls(meta["build"], {**meta["search"], **search}, vocab_fingerprint=meta.get("vocab_fingerprint"))
        ix._index = seismic.SeismicIndex.load(str(folder / "index.index.seismic"))
        ix._file_bytes = (folder / "index.index.seismic").stat().st_size
        ix.doc_ids, ix._dim = list(meta["doc_ids"]), int(meta["dim"])
        return ix


# --------------------------------------------------------------------------- sharded sparse store


def is_sparse_store(root: str | os.PathLike) -> bool:
    """Whether ``root`` is a store written by :func:`encode_sparse_shard`."""
    store = Path(root) / "store.json"
    if not store.is_file():
        return False
    meta = read_json(store)  # a garbled store.json is a DataError naming it, not a traceback
    return isinstance(meta, dict) and meta.get("format") == SPARSE_FORMAT


def encode_sparse_shard(
    model: Any,
    corpus: Any,
    shard: tuple[int, int] | None = None,
    out_dir: str | os.PathLike = "sparse-store",
    batch_size: int = 32,
    chunk_size: int = 8192,
    resume: bool = True,
    device: str | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> Path:
    """Encode shard ``i`` of ``n`` of a corpus with a SPLADE model into ``out_dir`` (resumable).

    The layout of :func:`unirank.index.shards.encode_corpus_shard` (``store.json``, one folder
    per shard, ``chunk-NNNNNN.ids.json`` then ``chunk-NNNNNN.npz``, ``done.json``); chunks are
    CSR matrices. A killed run leaves only whole chunks; ``resume`` skips them.

    Raises:
        ConfigError: the store holds another model's, corpus's or layout's vectors.
    """
    from .shards import _atomic_save, _corpus_items, _fingerprint, _shard_dir, chunk_done, open_store, shard_range

    sp = _sp()
    if shard is None:
        from ..training.distributed import env_world

        rank, world, _ = env_world()
        shard = (rank, world)
    i, n = shard
    if not 0 <= i < n:
        raise ConfigError(f"shard {i}/{n}: expected 0 <= i < n")
    items = _corpus_items(corpus)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": SPARSE_FORMAT,
        "n_docs": len(items),
        "shards": n,
        "chunk_size": int(chunk_size),
        "corpus_fingerprint": _fingerprint([d for d, _ in items]),
        "model_fingerprint": model.backbone.fingerprint(),
        "vocab_fingerprint": model.vocab_fingerprint(),
        "dim": int(model.vocab_size),
    }
    open_store(root, meta)
    folder = _shard_dir(root, i, n)
    folder.mkdir(exist_ok=True)
    start, stop = shard_range(len(items), i, n)
    mine = items[start:stop]
    n_chunks = (len(mine) + chunk_size - 1) // chunk_size
    for c in range(n_chunks):
        part = mine[c * chunk_size : (c + 1) * chunk_size]
        ids = [d for d, _ in part]
        ids_path, vec_path = folder / f"chunk-{c:06d}.ids.json", folder / f"chunk-{c:06d}.npz"
        if resume and chunk_done(ids_path, vec_path, ids):
            continue
        kw: dict[str, Any] = {"batch_size": batch_size, "show_progress": False}
        if device is not None:
            kw["device"] = device
        vecs = model.encode_docs([t for _, t in part], **kw)
        _atomic_save(ids_path, lambda p: Path(p).write_text(json.dumps(ids), encoding="utf-8"))
        _atomic_save(vec_path, lambda p: sp.save_npz(open(p, "wb"), vecs))
        if on_chunk is not None:
            on_chunk(c, n_chunks)
    write_json(folder / "done.json", {"shard": i, "of": n, "docs": len(mine), "chunks": n_chunks, "start": start})
    return folder


class SparseShardedIndex:
    """Search a sparse store shard by shard (exact, or one Seismic index per shard) and merge.

    Args:
        root: the store (:func:`encode_sparse_shard`).
        index_dir: per-shard Seismic indexes (``shard-00000/`` ...) from :meth:`build`;
            ``None``: exact search, one shard's matrix in memory at a time.
        search: Seismic search parameters (``query_cut``, ``heap_factor``).
        max_block: as in :class:`SparseExactIndex`.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        index_dir: str | os.PathLike | None = None,
        search: dict[str, Any] | None = None,
        max_block: int = 32_000_000,
    ) -> None:
        from .shards import _chunk_paths, _shards

        self.root = Path(root)
        if not is_sparse_store(self.root):
            raise ConfigError(f"{self.root}: not a sparse store (write one with `unirank encode --kind splade`)")
        self.meta = json.loads((self.root / "store.json").read_text(encoding="utf-8"))
        self.vocab_fingerprint = self.meta.get("vocab_fingerprint")
        self.index_dir = Path(index_dir) if index_dir is not None else None
        self.search_params = dict(search or {})
        self.max_block = max_block
        self._chunks = [[(ids, vec.with_suffix(".npz")) for ids, vec in _chunk_paths(f)] for f in _shards(self.root)]
        self._shard_ids = [
            [d for ids, _ in chunks for d in json.loads(ids.read_text(encoding="utf-8"))] for chunks in self._chunks
        ]
        self._offsets = np.cumsum([0] + [len(s) for s in self._shard_ids])[:-1].tolist()
        self.doc_ids = [d for part in self._shard_ids for d in part]
        self._loaded: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.doc_ids)

    def shard_matrix(self, s: int) -> Any:
        """Shard ``s``'s ``(n, V)`` CSR matrix."""
        sp = _sp()
        return sp.vstack([sp.load_npz(v) for _, v in self._chunks[s]], format="csr")

    @classmethod
    def build(
        cls,
        root: str | os.PathLike,
        index_dir: str | os.PathLike,
        kind: str = "seismic",
        params: dict[str, Any] | None = None,
        num_threads: int = 1,
        resume: bool = True,
    ) -> "SparseShardedIndex":
        """Build and save one index per shard (``kind``: ``seismic`` or ``exact``); with
        ``resume`` a shard whose index is already saved is skipped."""
        if kind not in ("seismic", "exact"):
            raise ConfigError(f"sparse index kind {kind!r}; valid: exact, seismic")
        store = cls(root)
        index_dir = Path(index_dir)
        for s, ids in enumerate(store._shard_ids):
            out = index_dir / f"shard-{s:05d}"
            if resume and (out / "unirank_index.json").is_file():
                continue
            ix: Any = (
                SeismicIndex(params, num_threads=num_threads, vocab_fingerprint=store.vocab_fingerprint)
                if kind == "seismic"
                else SparseExactIndex(vocab_fingerprint=store.vocab_fingerprint)
            )
            ix.add(store.shard_matrix(s), ids)
            tmp = index_dir / f".shard-{s:05d}.tmp"
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            ix.save(tmp)
            shutil.rmtree(out, ignore_errors=True)
            os.replace(tmp, out)
        return cls(root, index_dir)

    def _shard_index(self, s: int) -> Any:
        if s not in self._loaded:
            folder = self.index_dir / f"shard-{s:05d}"  # type: ignore[operator]
            kind = json.loads((folder / "unirank_index.json").read_text(encoding="utf-8"))["kind"]
            self._loaded[s] = (
                SeismicIndex.load(folder, **self.search_params) if kind == "seismic" else SparseExactIndex.load(folder)
            )
        return self._loaded[s]

    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` over all shards: ``(scores, indices)`` each ``(Q, k)``, indices into :attr:`doc_ids`."""
        q = _sp().csr_matrix(queries, dtype=np.float32)
        best_s = np.full((q.shape[0], 0), -np.inf, dtype=np.float32)
        best_i = np.full((q.shape[0], 0), -1, dtype=np.int64)
        for s, off in enumerate(self._offsets):
            if self.index_dir is not None:
                sc, ix = self._shard_index(s).search(q, k)
            else:
                exact = SparseExactIndex(self.max_block)
                exact.add(self.shard_matrix(s), self._shard_ids[s])
                sc, ix = exact.search(q, k)
            best_s, best_i = topk_merge(best_s, best_i, sc, np.where(ix >= 0, ix + off, -1), k)
        best_s = np.where(best_i < 0, -np.inf, best_s).astype(np.float32)
        return best_s, best_i
