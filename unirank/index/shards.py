"""Corpora larger than one process: sharded, resumable encoding; indexes built from shards.

**Store layout** (one folder, written by any number of machines or ranks)::

    store/
      store.json                          dim, dtype, model + corpus fingerprints, shards, chunk_size
      shard-00000-of-00004/
        chunk-000000.ids.json             document ids of the chunk (written first)
        chunk-000000.npy                  (n, dim) float32 / float16 embeddings (written last)
        ...
        done.json                         every chunk of the shard is written

Shard ``i`` of ``n`` is the ``i``-th contiguous slice of the corpus in its iteration order,
so ``--shard i/n`` on separate machines and ranks of ``torchrun`` (``shard=None``: rank /
world size from the environment) partition the corpus without talking to each other. Each
chunk file is written to a temporary name and renamed, so a killed encoding leaves only
whole chunks and ``resume=True`` skips them (checking their ids): the result is
byte-identical to an uninterrupted run.

**Atomicity.** The store cannot be replaced as one folder - many processes write it, and
resuming means keeping what is there - so its units are smaller: ``store.json`` is written
once, atomically; a shard is complete only once ``done.json`` is written, after its last
chunk (readers refuse a store with an unfinished shard); a chunk is whole or absent. With
``resume=False`` a shard is re-encoded into a temporary folder that replaces the old shard
only when complete (:func:`unirank.io.atomic_dir`), so a failed re-encoding leaves the old
shard as it was. Temporary chunk files of a killed writer are removed when the shard is
resumed, and a non-empty ``out_dir`` that is not a store is refused before any work.

**Indexes.** :func:`build_index_from_shards` streams the chunks into a FAISS index of a
kind from :data:`SHARD_INDEX_KINDS` (``flat`` exact, ``ivfpq`` compressed, ``hnsw`` graph),
trained on a seeded sample. :class:`ShardedIndex` searches shard by shard - exact search
over memory-mapped chunks, or one FAISS index per shard - and merges the per-shard top-k with
:func:`unirank.index.base.topk_merge`, so no process ever holds the whole corpus. Both have
the ``search(query_vectors, k) -> (scores, indices)`` and ``doc_ids`` of
:class:`unirank.index.dense.DenseIndex` and can stand in for it.

Example:
    >>> import tempfile, numpy as np
    >>> class Toy:  # anything with encode_docs(texts, **kw) -> (n, dim) array
    ...     def encode_docs(self, texts, **kw):
    ...         return np.array([[len(t), 1.0] for t in texts], dtype="float32")
    >>> docs = [(f"d{i}", "x" * i) for i in range(5)]
    >>> root = tempfile.mkdtemp()
    >>> for i in range(2):
    ...     _ = encode_corpus_shard(Toy(), docs, shard=(i, 2), out_dir=root, chunk_size=2)
    >>> ix = ShardedIndex(root)
    >>> s, i = ix.search(np.array([[1.0, 0.0]], dtype="float32"), k=2)
    >>> [ix.doc_ids[j] for j in i[0]], s[0].tolist()
    (['d4', 'd3'], [4.0, 3.0])
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..errors import ConfigError
from ..io import atomic_dir, check_writable_dir, clean_leftovers, read_json, tmp_prefix, write_json
from ..registry import Registry
from .base import topk_merge
from .dense import search_in_chunks

__all__ = [
    "check_store_dir",
    "parse_shard",
    "shard_range",
    "encode_corpus_shard",
    "read_shard_ids",
    "iter_chunks",
    "chunk_arrays",
    "StoreVectors",
    "SHARD_INDEX_KINDS",
    "build_index_from_shards",
    "FaissIndex",
    "ShardedIndex",
    "recall_at_k",
    "PrebuiltRetriever",
]

STORE = "store.json"
#: what every folder of per-shard indexes (``unirank index --out``) holds
INDEX_MARKER = "shard-00000/unirank_index.json"


# --------------------------------------------------------------------------- shards


def parse_shard(spec: str) -> tuple[int, int]:
    """``"2/8"`` -> ``(2, 8)`` (0-based shard of ``n``).

    Example:
        >>> parse_shard("1/4")
        (1, 4)
        >>> parse_shard("4/4")
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: --shard '4/4': expected i/n with 0 <= i < n
    """
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {spec!r}: expected i/n, e.g. 0/4") from None
    if not 0 <= i < n:
        raise ConfigError(f"--shard {spec!r}: expected i/n with 0 <= i < n")
    return i, n


def shard_range(n_docs: int, shard: int, n_shards: int) -> tuple[int, int]:
    """``[start, stop)`` of shard ``shard`` of ``n_shards`` contiguous slices (sizes differ by <= 1).

    Example:
        >>> [shard_range(10, i, 3) for i in range(3)]
        [(0, 4), (4, 7), (7, 10)]
    """
    base, extra = divmod(n_docs, n_shards)
    start = shard * base + min(shard, extra)
    return start, start + base + (1 if shard < extra else 0)


def _shard_dir(root: Path, i: int, n: int) -> Path:
    return root / f"shard-{i:05d}-of-{n:05d}"


def _corpus_items(corpus: Any) -> list[tuple[str, Any]]:
    """``(id, text or Document)`` pairs from a dataset, a dataset name/folder, a dict or pairs."""
    if isinstance(corpus, (str, os.PathLike)):
        from ..data.datasets import load_dataset

        corpus = load_dataset(corpus)
    if hasattr(corpus, "corpus"):
        corpus = corpus.corpus
    if isinstance(corpus, dict):
        return list(corpus.items())
    return [(str(i), t) for i, t in corpus]


def open_store(root: Path, meta: dict[str, Any]) -> None:
    """A store's ``store.json``: written by the first shard to start, and checked by every later
    one against its own ``meta`` (:class:`ConfigError` naming the keys that differ)."""
    store = root / STORE
    if store.is_file():
        old = read_json(store)
        diff = sorted(k for k in meta if old.get(k) != meta[k])
        if diff:
            raise ConfigError(f"{store}: the store was written with other {', '.join(diff)}; use a new out_dir")
    else:
        try:
            write_json(store, meta)
        except FileExistsError:  # pragma: no cover - another shard wrote it first
            pass


def chunk_done(ids_path: Path, vec_path: Path, ids: list[str]) -> bool:
    """Whether a chunk of these document ids is already on disk: both files (each written
    atomically) are there and the ids file names the same documents."""
    return vec_path.is_file() and ids_path.is_file() and json.loads(ids_path.read_text(encoding="utf-8")) == ids


def check_store_dir(out_dir: str | os.PathLike, key: str = "--out") -> None:
    """Before any work: ``out_dir`` is an embedding store, an empty folder or no folder yet,
    and can be written (:class:`ConfigError` naming ``key`` otherwise).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); _ = (d / "notes.txt").write_text("mine")
        >>> check_store_dir(d)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: --out: ... is a non-empty folder but no embedding store (no store.json); choose a new folder
    """
    root = Path(out_dir)
    if root.is_dir() and any(root.iterdir()) and not (root / STORE).is_file():
        raise ConfigError(
            f"{key}: {root} is a non-empty folder but no embedding store (no {STORE}); choose a new folder"
        )
    check_writable_dir(root, key, inside=True)


def _atomic_save(path: Path, write: Callable[[str], None]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=tmp_prefix(path.name), suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fingerprint(ids: Sequence[str]) -> str:
    import hashlib

    h = hashlib.sha256()
    for i in ids:
        h.update(i.encode("utf-8") + b"\n")
    return h.hexdigest()[:16]


def encode_corpus_shard(
    model: Any,
    corpus: Any,
    shard: tuple[int, int] | None = None,
    out_dir: str | os.PathLike = "embeddings",
    batch_size: int = 64,
    chunk_size: int = 8192,
    resume: bool = True,
    dtype: str = "float32",
    device: str | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> Path:
    """Encode shard ``i`` of ``n`` of a corpus into ``out_dir`` chunk by chunk (resumable).

    Args:
        model: a bi-encoder (``encode_docs(texts, batch_size=..., device=..., show_progress=...)``).
        corpus: a :class:`~unirank.types.RetrievalDataset`, a data set name / BEIR folder, a
            ``{id: Document}`` dict or ``(id, text)`` pairs; its order defines the shards.
        shard: ``(i, n)``; ``None``: this process's rank and world size under torchrun (else ``(0, 1)``).
        out_dir: the store folder (shared by all shards).
        batch_size: texts per forward pass.
        chunk_size: documents per chunk file (the unit of resume).
        resume: skip chunks already written (their ids must match); ``False`` re-encodes.
        dtype: stored precision, ``float32`` or ``float16``.
        device: encoding device (model default when ``None``).
        on_chunk: ``on_chunk(chunk, n_chunks)`` after each chunk written (progress, tests).

    Returns:
        The shard folder.

    Raises:
        ConfigError: the store holds another model's / corpus's / layout's embeddings.
    """
    if shard is None:
        from ..provenance import env_world

        rank, world, _ = env_world()
        shard = (rank, world)
    i, n = shard
    if not 0 <= i < n:
        raise ConfigError(f"shard {i}/{n}: expected 0 <= i < n")
    if dtype not in ("float32", "float16"):
        raise ConfigError(f"dtype {dtype!r}: expected float32 or float16")
    for key, value in (("chunk_size", chunk_size), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key}: expected an integer >= 1, got {value!r}")
    check_store_dir(out_dir, "out_dir")
    items = _corpus_items(corpus)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    backbone = getattr(model, "backbone", None)
    meta = {
        "format": "unirank-embeddings/1",
        "n_docs": len(items),
        "shards": n,
        "chunk_size": int(chunk_size),
        "dtype": dtype,
        "corpus_fingerprint": _fingerprint([d for d, _ in items]),
        "model_fingerprint": backbone.fingerprint()
        if backbone is not None and hasattr(backbone, "fingerprint")
        else None,
    }
    open_store(root, meta)
    folder = _shard_dir(root, i, n)
    start, stop = shard_range(len(items), i, n)
    mine = items[start:stop]
    n_chunks = (len(mine) + chunk_size - 1) // chunk_size

    def write_chunks(into: Path) -> None:
        dim = None
        for c in range(n_chunks):
            part = mine[c * chunk_size : (c + 1) * chunk_size]
            ids = [d for d, _ in part]
            ids_path, vec_path = into / f"chunk-{c:06d}.ids.json", into / f"chunk-{c:06d}.npy"
            if resume and chunk_done(ids_path, vec_path, ids):
                if dim is None:
                    dim = int(np.load(vec_path, mmap_mode="r").shape[1])
                continue
            kw: dict[str, Any] = {"batch_size": batch_size, "show_progress": False}
            if device is not None:
                kw["device"] = device
            vecs = np.ascontiguousarray(model.encode_docs([t for _, t in part], **kw), dtype=dtype)
            if vecs.shape[0] != len(part):
                raise ValueError(f"encode_docs returned {vecs.shape[0]} vectors for {len(part)} texts")
            dim = int(vecs.shape[1])
            _atomic_save(ids_path, lambda p: Path(p).write_text(json.dumps(ids), encoding="utf-8"))
            _atomic_save(vec_path, lambda p: np.save(open(p, "wb"), vecs))
            if on_chunk is not None:
                on_chunk(c, n_chunks)
        write_json(
            into / "done.json", {"shard": i, "of": n, "docs": len(mine), "chunks": n_chunks, "start": start, "dim": dim}
        )

    if resume:  # in place, chunk by chunk: what a killed run wrote is kept
        folder.mkdir(exist_ok=True)
        clean_leftovers(folder)
        write_chunks(folder)
    else:  # re-encoded from scratch: the old shard stays whole until the new one is
        with atomic_dir(folder) as tmp:
            write_chunks(tmp)
    return folder


# --------------------------------------------------------------------------- reading a store


def _shards(root: Path) -> list[Path]:
    root = Path(root)
    store = root / STORE
    if not store.is_file():
        raise FileNotFoundError(f"{store}: not an embedding store (write one with `unirank encode`)")
    n = read_json(store)["shards"]
    folders = [_shard_dir(root, i, n) for i in range(n)]
    missing = [f.name for f in folders if not (f / "done.json").is_file()]
    if missing:
        raise ConfigError(f"{root}: shards not finished: {', '.join(missing)}")
    return folders


def _chunk_paths(folder: Path) -> list[tuple[Path, Path]]:
    n = read_json(folder / "done.json")["chunks"]
    return [(folder / f"chunk-{c:06d}.ids.json", folder / f"chunk-{c:06d}.npy") for c in range(n)]


def read_shard_ids(root: str | os.PathLike) -> list[list[str]]:
    """The document ids of every shard, in store order."""
    return [[d for ids, _ in _chunk_paths(f) for d in read_json(ids)] for f in _shards(Path(root))]


def chunk_arrays(root: str | os.PathLike) -> list[np.ndarray]:
    """Every chunk of the store as a read-only memory map, in store order."""
    return [np.load(vec_path, mmap_mode="r") for folder in _shards(Path(root)) for _, vec_path in _chunk_paths(folder)]


def iter_chunks(root: str | os.PathLike, shard: int | None = None) -> Iterable[tuple[int, np.ndarray]]:
    """``(global offset, float32 vectors)`` per chunk (memory-mapped, one chunk at a time)."""
    offset = 0
    for s, folder in enumerate(_shards(Path(root))):
        for _, vec_path in _chunk_paths(folder):
            x = np.load(vec_path, mmap_mode="r")
            if shard is None or shard == s:
                yield offset, np.asarray(x, dtype=np.float32)
            offset += x.shape[0]


class StoreVectors:
    """Row access to an embedding store (``unirank encode``) without loading it: ``x[rows]``
    gathers the rows from the memory-mapped chunk files.

    Example:
        >>> import tempfile
        >>> class Toy:
        ...     def encode_docs(self, texts, **kw):
        ...         return np.array([[len(t), 1.0] for t in texts], dtype="float32")
        >>> root = tempfile.mkdtemp()
        >>> _ = encode_corpus_shard(Toy(), [(f"d{i}", "x" * i) for i in range(5)], shard=(0, 1), out_dir=root,
        ...                         chunk_size=2)
        >>> v = StoreVectors(root)
        >>> v.shape, v[np.array([4, 0])][:, 0].tolist()
        ((5, 2), [4.0, 0.0])
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self._chunks = chunk_arrays(root)
        sizes = [c.shape[0] for c in self._chunks]
        self._starts = np.cumsum([0] + sizes)
        dim = self._chunks[0].shape[1] if self._chunks else 0
        self.shape = (int(self._starts[-1]), int(dim))
        self.ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: Any) -> np.ndarray:
        if isinstance(rows, slice):
            rows = np.arange(*rows.indices(self.shape[0]))
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.shape[1]), dtype=np.float32)
        which = np.searchsorted(self._starts, rows, side="right") - 1
        for c in np.unique(which):
            sel = which == c
            out[sel] = self._chunks[c][rows[sel] - self._starts[c]]
        return out


# --------------------------------------------------------------------------- FAISS indexes


def _faiss() -> Any:
    from ..optional import optional_import

    return optional_import("faiss", "index building", "pip install faiss-cpu")


#: index kind -> ``factory(dim, n_vectors, **params) -> (faiss index_factory string, needs training)``
SHARD_INDEX_KINDS: Registry[Callable[..., tuple[str, bool]]] = Registry("index kind")


@SHARD_INDEX_KINDS.register("flat")
def _flat(dim: int, n: int) -> tuple[str, bool]:
    """Exact inner product: ``4 * dim`` bytes per vector."""
    return "Flat", False


@SHARD_INDEX_KINDS.register("ivfpq")
def _ivfpq(dim: int, n: int, nlist: int | None = None, m: int | None = None, nbits: int = 8) -> tuple[str, bool]:
    """IVF with product quantisation: ``m * nbits / 8`` bytes per vector (+ 8 for the id).

    ``nlist`` defaults to ``4 * sqrt(n)`` (at most ``n / 39``, FAISS's minimum training points
    per centroid); ``m`` (sub-quantisers, must divide ``dim``) to ``dim / 8``.
    """
    if n < 2**nbits:
        raise ConfigError(
            f"ivfpq: {n} vectors in this shard are too few to train its {2**nbits}-centroid product quantiser "
            f"(at least {2**nbits}); use kind flat (exact) or hnsw, fewer shards, or a smaller nbits"
        )
    nlist = nlist or max(1, min(int(4 * np.sqrt(n)), n // 39))
    m = m or max(1, dim // 8)
    if dim % m:
        raise ConfigError(f"ivfpq: m={m} must divide the dimension {dim}")
    return f"IVF{nlist},PQ{m}x{nbits}np", True  # np: no polysemous training (slow; only for Hamming filtering)


@SHARD_INDEX_KINDS.register("hnsw")
def _hnsw(dim: int, n: int, M: int = 32) -> tuple[str, bool]:
    """HNSW graph over full vectors: ``4 * dim + 8 * M`` bytes per vector (roughly)."""
    return f"HNSW{M}", False


_SEARCH_PARAMS = {"nprobe", "efSearch"}


@dataclass
class FaissIndex:
    """A FAISS index with the ``doc_ids`` / ``search`` of :class:`~unirank.index.dense.DenseIndex`."""

    index: Any
    doc_ids: list[str]
    kind: str = "flat"

    def __len__(self) -> int:
        return len(self.doc_ids)

    def search(self, queries: np.ndarray, k: int, chunk_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product: ``(scores, indices)`` each ``(Q, k)``; -1 where fewer than k."""
        return search_in_chunks(self.index, queries, k, chunk_size)

    def set_search_params(self, **params: Any) -> None:
        """``nprobe`` (IVF) / ``efSearch`` (HNSW) through ``faiss.ParameterSpace``."""
        faiss = _faiss()
        for k, v in params.items():
            if k not in _SEARCH_PARAMS:
                raise ConfigError(f"search parameter {k!r}; valid: {', '.join(sorted(_SEARCH_PARAMS))}")
            faiss.ParameterSpace().set_index_parameter(self.index, k, v)

    def save(self, folder: str | os.PathLike) -> None:
        faiss = _faiss()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_save(folder / "faiss.index", lambda p: faiss.write_index(self.index, p))
        write_json(folder / "unirank_index.json", {"kind": self.kind, "doc_ids": self.doc_ids})

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "FaissIndex":
        faiss = _faiss()
        folder = Path(folder)
        meta = read_json(folder / "unirank_index.json")
        return cls(faiss.read_index(str(folder / "faiss.index")), list(meta["doc_ids"]), meta["kind"])


def _train_sample(root: Path, n_total: int, size: int, seed: int, shard: int | None) -> np.ndarray:
    """A seeded uniform sample of ``size`` rows (of the shard, or of all), read chunk by chunk."""
    pick = np.sort(np.random.default_rng(seed).choice(n_total, size=min(size, n_total), replace=False))
    parts, base = [], 0
    for _, x in iter_chunks(root, shard):
        sel = pick[(pick >= base) & (pick < base + len(x))] - base
        if len(sel):
            parts.append(x[sel])
        base += len(x)
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def build_index_from_shards(
    root: str | os.PathLike,
    kind: str = "flat",
    train_sample: int = 100_000,
    seed: int = 0,
    shard: int | None = None,
    search_params: dict[str, Any] | None = None,
    **params: Any,
) -> FaissIndex:
    """Stream a store's chunks into a FAISS inner-product index.

    Args:
        root: the store folder (every shard finished).
        kind: a :data:`SHARD_INDEX_KINDS` name: ``flat`` (exact), ``ivfpq``, ``hnsw``.
        train_sample: vectors drawn (seeded, uniformly) to train a kind that needs training.
        seed: sample and k-means seed.
        shard: only this shard (``ShardedIndex`` builds one index per shard); ``None``: all.
        search_params: ``{"nprobe": 32}`` (ivfpq) / ``{"efSearch": 128}`` (hnsw).
        **params: the kind's build parameters (``nlist``, ``m``, ``nbits``; ``M``).

    Returns:
        A :class:`FaissIndex` whose row numbers are positions in the (shard's) store order.
    """
    faiss = _faiss()
    root = Path(root)
    try:
        make = SHARD_INDEX_KINDS.get(kind)
    except KeyError as e:
        raise ConfigError(f"index kind: {e.args[0]}") from None
    shard_ids = read_shard_ids(root)
    ids = [d for s, part in enumerate(shard_ids) if shard is None or s == shard for d in part]
    if not ids:
        raise ConfigError(f"{root}: no vectors to index")
    dim = next(x for _, x in iter_chunks(root, shard)).shape[1]
    try:
        spec, needs_training = make(dim, len(ids), **params)
    except TypeError as e:
        raise ConfigError(f"index parameters for {kind!r}: {e}") from None
    index = faiss.index_factory(int(dim), spec, faiss.METRIC_INNER_PRODUCT)
    if needs_training:
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.seed = seed
        index.train(_train_sample(root, len(ids), train_sample, seed, shard))
    for _, x in iter_chunks(root, shard):
        index.add(np.ascontiguousarray(x))
    out = FaissIndex(index, ids, kind)
    if search_params:
        out.set_search_params(**search_params)
    return out


class ShardedIndex:
    """Search a store shard by shard and merge the top-k (no process holds the whole corpus).

    Args:
        root: the embedding store.
        index_dir: a folder of per-shard FAISS indexes (``shard-00000/`` ...), as written by
            :meth:`build`; ``None``: exact search streaming over the memory-mapped chunks.
        keep_loaded: keep per-shard FAISS indexes in memory between searches.
        refine: with ``index_dir``, fetch ``refine * k`` candidates from the compressed
            indexes and re-score them exactly from the memory-mapped store (the vectors stay
            on disk; only the compressed codes are in memory); ``0``: no re-scoring.

    ``indices`` returned by :meth:`search` are positions in :attr:`doc_ids` (the store order).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        index_dir: str | os.PathLike | None = None,
        keep_loaded: bool = True,
        refine: int = 0,
    ) -> None:
        if refine < 0:
            raise ConfigError(f"refine must be >= 0, got {refine}")
        self.refine = int(refine)
        self._vectors: StoreVectors | None = None
        self.root = Path(root)
        self.index_dir = Path(index_dir) if index_dir is not None else None
        self.keep_loaded = keep_loaded
        self._shard_ids = read_shard_ids(self.root)
        self._offsets = np.cumsum([0] + [len(s) for s in self._shard_ids])[:-1].tolist()
        self._loaded: dict[int, FaissIndex] = {}
        self._doc_ids: list[str] | None = None

    @property
    def doc_ids(self) -> list[str]:
        if self._doc_ids is None:
            self._doc_ids = [d for part in self._shard_ids for d in part]
        return self._doc_ids

    def __len__(self) -> int:
        return sum(len(s) for s in self._shard_ids)

    @classmethod
    def build(
        cls, root: str | os.PathLike, index_dir: str | os.PathLike, kind: str = "ivfpq", **kw: Any
    ) -> "ShardedIndex":
        """Build and save one FAISS index per shard (each trained on a sample of its shard)."""
        root, index_dir = Path(root), Path(index_dir)
        n = len(read_shard_ids(root))
        with atomic_dir(index_dir, marker=INDEX_MARKER) as tmp:  # every shard's index or none
            for s in range(n):
                build_index_from_shards(root, kind, shard=s, **kw).save(tmp / f"shard-{s:05d}")
        return cls(root, index_dir)

    def _shard_index(self, s: int) -> FaissIndex:
        if s in self._loaded:
            return self._loaded[s]
        ix = FaissIndex.load(self.index_dir / f"shard-{s:05d}")
        if self.keep_loaded:
            self._loaded[s] = ix
        return ix

    def set_search_params(self, **params: Any) -> None:
        """Set ``nprobe`` / ``efSearch`` on every per-shard index (loads them)."""
        for s in range(len(self._shard_ids)):
            self._shard_index(s).set_search_params(**params)

    @property
    def vectors(self) -> StoreVectors:
        """Row access to the store's vectors (memory-mapped; opened on first use)."""
        if self._vectors is None:
            self._vectors = StoreVectors(self.root)
        return self._vectors

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product over all shards: ``(scores, indices)`` each ``(Q, k)``."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
        best_i = np.full((len(q), 0), -1, dtype=np.int64)
        if self.index_dir is not None:
            fetch = k * self.refine if self.refine else k
            for s, off in enumerate(self._offsets):
                sc, ix = self._shard_index(s).search(q, fetch)
                best_s, best_i = topk_merge(best_s, best_i, sc, np.where(ix >= 0, ix + off, -1), fetch)
            if self.refine:
                best_s, best_i = _exact_topk(q, best_i, self.vectors, k)
        else:
            for off, x in iter_chunks(self.root):
                sc = q @ x.T
                kk = min(k, x.shape[0])
                part = np.argpartition(-sc, kk - 1, axis=1)[:, :kk]
                best_s, best_i = topk_merge(best_s, best_i, np.take_along_axis(sc, part, 1), part + off, k)
        if best_s.shape[1] < k:  # fewer than k documents in total
            pad = k - best_s.shape[1]
            best_s = np.concatenate([best_s, np.full((len(q), pad), -np.inf, dtype=np.float32)], 1)
            best_i = np.concatenate([best_i, np.full((len(q), pad), -1, dtype=np.int64)], 1)
        return best_s.astype(np.float32), best_i


def _exact_topk(
    q: np.ndarray, cand: np.ndarray, vectors: "StoreVectors", k: int, chunk: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner products of each query with its candidate rows (-1 = none), best ``k`` first
    (``chunk`` queries at a time, so memory is ``chunk x candidates x dim`` floats)."""
    out_s = np.full((len(q), k), -np.inf, dtype=np.float32)
    out_i = np.full((len(q), k), -1, dtype=np.int64)
    for a in range(0, len(q), chunk):
        c = cand[a : a + chunk]
        flat = np.unique(c[c >= 0])
        if not len(flat):
            continue
        vec = vectors[flat]  # sorted rows: sequential reads of the memory maps
        pos = np.searchsorted(flat, np.where(c >= 0, c, flat[0]))
        sc = np.where(c >= 0, np.einsum("qd,qcd->qc", q[a : a + chunk], vec[pos]), -np.inf).astype(np.float32)
        order = np.argsort(-sc, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(sc, order, 1)
        out_s[a : a + chunk, : top.shape[1]] = top
        out_i[a : a + chunk, : top.shape[1]] = np.where(np.isfinite(top), np.take_along_axis(c, order, 1), -1)
    return out_s, out_i


def recall_at_k(exact: np.ndarray, approx: np.ndarray, k: int = 100) -> float:
    """Mean fraction of the exact top-``k`` ids that the approximate top-``k`` also returns.

    Example:
        >>> recall_at_k(np.array([[1, 2], [3, 4]]), np.array([[2, 9], [3, 4]]), k=2)
        0.75
    """
    e, a = np.asarray(exact)[:, :k], np.asarray(approx)[:, :k]
    hits = [len(set(x[x >= 0].tolist()) & set(y[y >= 0].tolist())) / max(1, int((x >= 0).sum())) for x, y in zip(e, a)]
    return float(np.mean(hits)) if hits else 0.0


class PrebuiltRetriever:
    """A retriever (``build`` / ``search`` / ``doc_ids``, as :class:`unirank.index.retrievers.DenseRetriever`)
    over a prebuilt index: ``build`` checks the corpus instead of encoding it.

    Pass it to :func:`unirank.eval.evaluate.run_eval` as ``retriever=`` to evaluate against a
    :class:`ShardedIndex` or a :class:`FaissIndex` built from a store.

    Args:
        model: the bi-encoder that wrote the store (its ``encode_queries`` embeds the queries).
        index: anything with ``doc_ids`` and ``search(vectors, k)``.
        batch_size, device: query encoding settings.

    Example:
        >>> class Toy:
        ...     def encode_queries(self, qs, **kw):
        ...         return np.array([[1.0, 0.0]] * len(qs), dtype="float32")
        >>> ix = FaissIndex(_faiss().IndexFlatIP(2), ["a", "b"])
        >>> ix.index.add(np.array([[0.1, 0.0], [0.9, 0.0]], dtype="float32"))
        >>> r = PrebuiltRetriever(Toy(), ix)
        >>> r.build(["b", "a"], ["B", "A"])
        >>> [r.doc_ids[j] for j in r.search(["q"], k=2)[1][0]]
        ['b', 'a']
    """

    def __init__(self, model: Any, index: Any, batch_size: int = 64, device: str | None = None) -> None:
        self.model, self.index, self.batch_size, self.device = model, index, batch_size, device

    @classmethod
    def from_config(cls, cfg: Any) -> "PrebuiltRetriever":
        """From a RetrieverConfig: ``dense.store`` (embedding store), optional ``dense.index_dir``."""
        from ..models.base import load_ranker

        d = cfg.dense
        if not d.store:
            raise ConfigError("retriever prebuilt needs retriever.dense.store (a folder written by `unirank encode`)")

        return cls(
            load_ranker(d.model, "bi", device="cpu", backend=d.backend),
            ShardedIndex(d.store, d.index_dir, refine=d.refine),
            batch_size=d.batch_size,
            device=d.device,
        )

    @property
    def doc_ids(self) -> list[str]:
        return self.index.doc_ids

    def build(self, doc_ids: Sequence[str], texts: Sequence[str]) -> None:
        """Check that the index covers exactly ``doc_ids`` (any order); nothing is encoded."""
        have, want = set(self.index.doc_ids), set(doc_ids)
        if have != want:
            raise ConfigError(
                f"prebuilt index and corpus differ: {len(want - have)} corpus documents missing from the index, "
                f"{len(have - want)} index documents not in the corpus"
            )

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        kw: dict[str, Any] = {"batch_size": self.batch_size, "show_progress": False}
        if self.device is not None:
            kw["device"] = self.device
        return self.index.search(
            np.ascontiguousarray(self.model.encode_queries(list(queries), **kw), dtype=np.float32), k
        )
