"""The offline CUR index: the cross-encoder's scores of anchor queries x every item, on disk.

**Layout** (``unirank index --kind cur ... --out IX``)::

    IX/
      cur.json          format, the cross-encoder (source, kind, fingerprint), the anchor
                        queries (count, fingerprint, where from), the corpus (documents,
                        id and text fingerprints), dtype
      anchors.jsonl     the anchor queries, {"_id", "text"} per line, in R's row order
      R/                R transposed: item -> its k_q anchor-query scores, as an embedding
                        store of :mod:`unirank.index.shards` (shards, chunk files written
                        atomically, float32 or float16, memory-mapped when read)
      cost-shard-i-of-n.json   cross-encoder calls and seconds spent on each shard (kept
                        across kills and resumes)
      anncur/<key>/     cached FAISS indexes of ANNCUR item embeddings E = U R (one per
                        anchor-item set), made on first use

R is stored item-major - each item's row holds its scores against the anchor queries - so
it *is* an embedding store: ``--shard i/n`` partitions the items between machines, a killed
build resumes by skipping the chunks already written (same bytes as an uninterrupted run),
:class:`~unirank.index.shards.StoreVectors` reads columns of R without loading it, and
``unirank index --store IX/R --kind hnsw --out DIR`` builds FAISS indexes of it that
adaCUR can search (``retriever.cur.index_dir``).

Scoring goes through :func:`unirank.eval.response.score_lists` (the cross-encoder's own
batching): per chunk of items, ``batch_size`` anchor queries x ``chunk_size`` items per call.

Example:
    >>> import tempfile, torch
    >>> from unirank.models.backbone import tiny_backbone
    >>> from unirank.models.cross import CrossEncoder
    >>> from unirank.types import Document
    >>> ce = CrossEncoder(tiny_backbone())
    >>> docs = {f"d{i}": Document(f"d{i}", f"text number {i}") for i in range(5)}
    >>> ix = tempfile.mkdtemp()
    >>> stats = build_cur_index(ce, docs, [("a", "text"), ("b", "number")], ix, chunk_size=2)
    >>> stats["pairs_scored"], CURIndex(ix).R_T.shape
    (10, (5, 2))
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from ..io import read_json, write_json, write_jsonl
from ..provenance import text_fingerprint

__all__ = [
    "CUR_FILE",
    "cur_index_file",
    "ranker_fingerprint",
    "read_anchor_queries",
    "corpus_fingerprints",
    "build_cur_index",
    "CURIndex",
    "StoreSpace",
]

CUR_FILE = "cur.json"
FORMAT = "unirank-cur/1"


# --------------------------------------------------------------------------- the model


def ranker_fingerprint(ranker: Any) -> str:
    """sha256 over a ranker's kind, settings, backbone weights and head (16 hex digits):
    two cross-encoders give the same value only if they score every pair the same.

    Example:
        >>> from unirank.models.backbone import tiny_backbone
        >>> from unirank.models.cross import CrossEncoder
        >>> ranker_fingerprint(CrossEncoder(tiny_backbone(seed=0))) != ranker_fingerprint(
        ...     CrossEncoder(tiny_backbone(seed=1)))
        True
    """
    h = hashlib.sha256()
    settings = ranker.settings() if callable(getattr(ranker, "settings", None)) else {}
    h.update(
        json.dumps({"kind": getattr(ranker, "kind", "?"), "settings": settings}, sort_keys=True, default=str).encode()
    )
    bb = getattr(ranker, "backbone", None)
    if bb is not None:
        h.update(bb.fingerprint().encode())
    head = ranker.head_state() if callable(getattr(ranker, "head_state", None)) else {}
    for name, t in sorted(head.items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- anchor queries and corpus


def read_anchor_queries(spec: str, data: str | None = None, limit: int | None = None) -> list[tuple[str, str]]:
    """The anchor queries named by ``--anchor-queries``: a file or a split of ``data``.

    Args:
        spec: a ``.jsonl`` file (BEIR ``{"_id", "text"}`` lines), a ``.tsv`` file
            (``id<TAB>text`` lines), or the name of a qrels split of ``data`` (its judged
            queries, in qrels order).
        data: the data set (name or BEIR folder) whose split is meant.
        limit: keep the first ``limit`` queries.

    Returns:
        ``(query id, text)`` pairs.

    Raises:
        DataError: a bad file line, no queries, or a split that does not exist.

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "q.tsv")
        >>> _ = open(p, "w").write("1\\twhat is x\\n2\\twhy y\\n")
        >>> read_anchor_queries(p, limit=1)
        [('1', 'what is x')]
    """
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix == ".jsonl":
            from ..data.beir import load_queries

            pairs = [(q.id, q.text) for q in load_queries(path).values()]
        else:
            from ..data.beir import iter_text_lines

            pairs = []
            for lineno, line in iter_text_lines(path):
                if not line.strip():
                    continue
                parts = line.split("\t")
                if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
                    raise DataError("expected 'id<TAB>text'", path=path, line=lineno)
                pairs.append((parts[0].strip(), parts[1]))
    else:
        if data is None:
            raise ConfigError(f"--anchor-queries {spec!r} is not a file; as a split name it needs --data")
        from ..data.datasets import load_dataset

        ds = load_dataset(data, split=spec)
        pairs = [(q.id, q.text) for q in ds.split_queries().values()]
    if limit is not None:
        pairs = pairs[:limit]
    if not pairs:
        raise DataError("no anchor queries", path=spec)
    return pairs


def corpus_fingerprints(ids: Sequence[str], texts: Sequence[str]) -> dict[str, Any]:
    """``{"documents", "ids", "texts"}``: the count and fingerprints of the ids (in order)
    and of the (id, text) pairs sorted by id (independent of order).

    Example:
        >>> corpus_fingerprints(["a", "b"], ["x", "y"])["texts"] == corpus_fingerprints(["b", "a"], ["y", "x"])["texts"]
        True
    """
    pairs = sorted(zip(ids, texts))
    return {
        "documents": len(ids),
        "ids": text_fingerprint(ids),
        "texts": text_fingerprint(p for pair in pairs for p in pair),
    }


def load_corpus_of(data: str) -> dict[str, Any]:
    """The corpus of a data set: a BEIR folder's ``corpus.jsonl`` (no qrels needed) or a built-in name's."""
    folder = Path(data).expanduser()
    if (folder / "corpus.jsonl").is_file():
        from ..data.beir import load_corpus

        return load_corpus(folder / "corpus.jsonl")
    from ..data.datasets import load_dataset

    return load_dataset(data).corpus


def _corpus_pairs(corpus: Any) -> list[tuple[str, str]]:
    """(id, title + text) pairs from a ``{id: Document}`` dict, a data set, or (id, text) pairs."""
    if hasattr(corpus, "corpus"):
        corpus = corpus.corpus
    items = corpus.items() if isinstance(corpus, dict) else corpus
    return [(str(i), d.full_text if hasattr(d, "full_text") else str(d)) for i, d in items]


# --------------------------------------------------------------------------- building R


class _AnchorScorer:
    """Looks like a bi-encoder to :func:`unirank.index.shards.encode_corpus_shard`: a document's
    "embedding" is its cross-encoder scores against the anchor queries."""

    class _Fingerprint:
        def __init__(self, value: str) -> None:
            self.value = value

        def fingerprint(self) -> str:
            return self.value

    def __init__(
        self, ranker: Any, queries: Sequence[str], fingerprint: str, batch_size: int, chunk_size: int | None
    ) -> None:
        self.ranker, self.queries = ranker, list(queries)
        self.batch_size, self.chunk_size = batch_size, chunk_size
        self.backbone = self._Fingerprint(fingerprint)
        self.pairs = 0

    def encode_docs(self, texts: Sequence[str], **_: Any) -> np.ndarray:
        from ..eval.response import score_lists

        texts = list(texts)
        scores = score_lists(
            self.ranker,
            self.queries,
            [texts] * len(self.queries),
            batch_size=self.batch_size,
            chunk_size=self.chunk_size,
            progress=False,
            desc="cur index",
        )
        self.pairs += len(texts) * len(self.queries)
        return np.asarray(scores, dtype=np.float32).T.reshape(len(texts), len(self.queries))


def _meta(
    ranker: Any,
    source: str | None,
    anchors: Sequence[tuple[str, str]],
    anchor_source: str | None,
    docs: Sequence[tuple[str, str]],
    dtype: str,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "ranker": {
            "kind": getattr(ranker, "kind", "?"),
            "source": source,
            "fingerprint": ranker_fingerprint(ranker),
            "settings": ranker.settings() if callable(getattr(ranker, "settings", None)) else {},
        },
        "anchors": {
            "queries": len(anchors),
            "fingerprint": text_fingerprint(p for a in anchors for p in a),
            "from": anchor_source,
        },
        "corpus": corpus_fingerprints([d for d, _ in docs], [t for _, t in docs]),
        "dtype": dtype,
    }


def _check_meta(path: Path, old: dict, new: dict) -> None:
    """One line naming what differs between an existing index and the one asked for."""
    what = {
        "ranker": ("fingerprint", "another cross-encoder"),
        "anchors": ("fingerprint", "other anchor queries"),
        "corpus": ("texts", "another corpus"),
        "dtype": (None, "another dtype"),
    }
    for key, (sub, words) in what.items():
        a, b = old.get(key), new.get(key)
        if sub is not None:
            a, b = (a or {}).get(sub), (b or {}).get(sub)
        if a != b:
            raise ConfigError(
                f"{path}: this CUR index was built with {words} ({key}: {a} here, {b} asked for); "
                f"use a new --out or the same inputs"
            )


def build_cur_index(
    ranker: Any,
    corpus: Any,
    anchors: Sequence[tuple[str, str]],
    out: str | os.PathLike,
    *,
    source: str | None = None,
    anchor_source: str | None = None,
    dtype: str = "float32",
    batch_size: int = 16,
    chunk_size: int = 512,
    score_chunk: int | None = 64,
    shard: tuple[int, int] | None = None,
    resume: bool = True,
    on_chunk: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Score every anchor query against every item (of one shard) into ``out`` (resumable).

    Args:
        ranker: the cross-encoder (any :class:`~unirank.models.base.Ranker`).
        corpus: ``{id: Document}``, a data set, or ``(id, text)`` pairs; its order is R's
            column order and defines the shards.
        anchors: ``(query id, text)`` pairs (:func:`read_anchor_queries`).
        out: the index folder.
        source: where the ranker came from (recorded, and loaded again at search time).
        anchor_source: where the anchors came from (recorded).
        dtype: ``float32`` or ``float16`` (half the disk; scores keep ~3 significant digits).
        batch_size: anchor queries per cross-encoder call.
        chunk_size: items per chunk file (the unit of resume).
        score_chunk: most items of one query per call (``None``: the whole chunk).
        shard: ``(i, n)``: build shard i of n (``None``: rank / world size under torchrun,
            else all).
        resume: skip the chunks already written.
        on_chunk: ``on_chunk(chunk, n_chunks)`` after each chunk written.

    Returns:
        ``{"pairs_scored", "seconds", "shard", "total_pairs"}``: the cross-encoder calls and
        wall time of this call, and the calls the whole index needs.

    Raises:
        ConfigError: ``out`` holds an index of another cross-encoder, anchor set, corpus or dtype.
    """
    from .shards import encode_corpus_shard

    out = Path(out)
    docs = _corpus_pairs(corpus)
    if not docs:
        raise DataError("the corpus is empty")
    meta = _meta(ranker, source, anchors, anchor_source, docs, dtype)
    f = out / CUR_FILE
    if f.is_file():
        _check_meta(out, json.loads(f.read_text(encoding="utf-8")), meta)
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_jsonl(out / "anchors.jsonl", ({"_id": qid, "text": text} for qid, text in anchors))
        write_json(f, meta)  # last: a folder with cur.json is a whole index header
    scorer = _AnchorScorer(
        ranker,
        [t for _, t in anchors],
        meta["ranker"]["fingerprint"] + ":" + meta["anchors"]["fingerprint"],
        batch_size,
        score_chunk,
    )
    if shard is None:
        from ..training.distributed import env_world

        rank, world, _ = env_world()
        shard = (rank, world)
    cost_file = out / f"cost-shard-{shard[0]:05d}-of-{shard[1]:05d}.json"
    cost = (
        json.loads(cost_file.read_text(encoding="utf-8"))
        if cost_file.is_file() and resume
        else {"pairs": 0, "seconds": 0.0}
    )
    t0 = last = time.perf_counter()
    seen = 0

    def chunk_done(c: int, n: int) -> None:  # the cost so far survives a kill (at most one chunk's work is lost)
        nonlocal last, seen
        now = time.perf_counter()
        cost["pairs"] += scorer.pairs - seen
        cost["seconds"] = round(cost["seconds"] + now - last, 3)
        last, seen = now, scorer.pairs
        write_json(cost_file, cost)
        if on_chunk is not None:
            on_chunk(c, n)

    try:
        encode_corpus_shard(
            scorer,
            docs,
            shard=shard,
            out_dir=out / "R",
            batch_size=batch_size,
            chunk_size=chunk_size,
            resume=resume,
            dtype=dtype,
            on_chunk=chunk_done,
        )
    except ConfigError as e:  # the store's own layout check (chunk size, shards)
        raise ConfigError(f"{out}: {e}") from None
    if not cost_file.is_file():  # nothing left to score: record the (zero) cost of this shard
        write_json(cost_file, cost)
    return {
        "pairs_scored": scorer.pairs,
        "seconds": round(time.perf_counter() - t0, 3),
        "shard": list(shard),
        "total_pairs": len(docs) * len(anchors),
    }


# --------------------------------------------------------------------------- reading it


class StoreSpace:
    """The :class:`~unirank.index.cur.ItemSpace` of a CUR index: columns of R read from the
    memory-mapped store, search by ``w @ R`` over the store (exact scan) or over FAISS
    indexes built from it (``index_dir``, see :class:`~unirank.index.shards.ShardedIndex`)."""

    def __init__(self, root: Path, index_dir: str | os.PathLike | None = None) -> None:
        from .shards import ShardedIndex, StoreVectors

        self.vectors = StoreVectors(root)
        self.index = ShardedIndex(root, index_dir)
        self.n_items, self.dim = self.vectors.shape

    def columns(self, idx: np.ndarray) -> np.ndarray:
        return self.vectors[np.asarray(idx, dtype=np.int64)].T.astype(np.float64)

    def search(self, queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), n)


def cur_index_file(folder: str | os.PathLike) -> Path:
    """``folder``'s ``cur.json``; ConfigError when ``folder`` is no CUR index (checked before loading anything)."""
    f = Path(folder) / CUR_FILE
    if not f.is_file():
        raise ConfigError(f"{folder}: not a CUR index (no {CUR_FILE}); build one with `unirank index --kind cur`")
    return f


class CURIndex:
    """A CUR index folder, opened for search (nothing is loaded until used).

    Attributes:
        meta: ``cur.json``.
        anchors: the anchor queries ``(id, text)`` in R's row order.
        doc_ids: the items in R's column order.
        R_T: (m, k_q) memory-mapped rows of R transposed (:class:`~unirank.index.shards.StoreVectors`).

    Raises:
        ConfigError: not a CUR index, or its shards are not all built.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        from .shards import StoreVectors, read_shard_ids

        self.folder = Path(folder)
        f = cur_index_file(self.folder)
        self.meta = read_json(f)  # a garbled cur.json: one DataError line
        if self.meta.get("format") != FORMAT:
            raise ConfigError(f"{f}: unsupported format {self.meta.get('format')!r}; expected {FORMAT}")
        try:
            self.doc_ids = [d for part in read_shard_ids(self.folder / "R") for d in part]
        except (ConfigError, FileNotFoundError) as e:
            raise ConfigError(
                f"{self.folder}: the index is not finished ({e}); run `unirank index --kind cur` again to resume"
            ) from None
        from ..data.beir import load_queries

        self.anchors = [(q.id, q.text) for q in load_queries(self.folder / "anchors.jsonl").values()]
        self.R_T = StoreVectors(self.folder / "R")

    @property
    def n_items(self) -> int:
        return len(self.doc_ids)

    @property
    def n_anchor_queries(self) -> int:
        return len(self.anchors)

    def cost(self) -> dict[str, float]:
        """Cross-encoder calls and seconds spent building the index (all shards, all resumes)."""
        pairs, seconds = 0, 0.0
        for f in sorted(self.folder.glob("cost-shard-*.json")):
            c = json.loads(f.read_text(encoding="utf-8"))
            pairs += int(c.get("pairs", 0))
            seconds += float(c.get("seconds", 0.0))
        return {"pairs": pairs, "seconds": round(seconds, 3)}

    def check_corpus(self, doc_ids: Sequence[str], texts: Sequence[str]) -> None:
        """ConfigError (one line) unless ``(doc_ids, texts)`` is the corpus the index was built on."""
        have = self.meta["corpus"]
        got = corpus_fingerprints(list(doc_ids), list(texts))
        if got["texts"] != have["texts"]:
            missing = len(set(doc_ids) - set(self.doc_ids))
            extra = len(set(self.doc_ids) - set(doc_ids))
            detail = (
                f"{missing} documents not in the index, {extra} index documents not in the corpus"
                if missing or extra
                else "same ids, other texts"
            )
            raise ConfigError(
                f"{self.folder}: this CUR index was built on another corpus ({have['documents']} documents; "
                f"this one has {got['documents']}: {detail}); build one for it with `unirank index --kind cur`"
            )

    def check_ranker(self, ranker: Any) -> None:
        """ConfigError (one line) unless ``ranker`` is the cross-encoder the index was built with."""
        fp = ranker_fingerprint(ranker)
        want = self.meta["ranker"]["fingerprint"]
        if fp != want:
            raise ConfigError(
                f"{self.folder}: this CUR index was built with another cross-encoder "
                f"({self.meta['ranker'].get('source')}, "
                f"fingerprint {want}; the model given has {fp}); use that model or rebuild the index"
            )

    def space(self, index_dir: str | os.PathLike | None = None) -> StoreSpace:
        """The items as an :class:`~unirank.index.cur.ItemSpace` (for adaCUR)."""
        return StoreSpace(self.folder / "R", index_dir)

    def item_embeddings(self, anchors: np.ndarray, rcond: float, cache: bool = True) -> Any:
        """ANNCUR's ``E = pinv(R[:, anchors]) @ R`` in a FAISS inner-product index
        (:class:`~unirank.index.shards.FaissIndex`, rows in :attr:`doc_ids` order), computed
        chunk by chunk from the memory-mapped store and cached under ``anncur/``."""
        from .cur import cur_u
        from .shards import FaissIndex, _faiss, iter_chunks

        anchors = np.asarray(anchors, dtype=np.int64)
        key = text_fingerprint([",".join(map(str, anchors.tolist())), repr(float(rcond))])
        folder = self.folder / "anncur" / f"k{len(anchors)}-{key}"
        if cache and (folder / "faiss.index").is_file():
            return FaissIndex.load(folder)
        faiss = _faiss()
        U = cur_u(self.R_T[anchors].T, rcond)  # (k_i, k_q)
        index = faiss.IndexFlatIP(len(anchors))
        for _, x in iter_chunks(self.folder / "R"):
            index.add(np.ascontiguousarray((x.astype(np.float64) @ U.T).astype(np.float32)))
        out = FaissIndex(index, list(self.doc_ids), "flat")
        if cache:
            try:
                out.save(folder)
            except OSError:  # a read-only index folder: keep it in memory
                pass
        return out


def build_cur_index_cli(
    data: str | None,
    model: str | None,
    anchor_queries: str | None,
    out: str | os.PathLike,
    max_anchor_queries: int | None = None,
    dtype: str = "float32",
    batch_size: int = 16,
    chunk_size: int = 512,
    shard: str | None = None,
    device: str | None = None,
) -> str:
    """What ``unirank index --kind cur`` runs: check the flags, load, build (resumable); the line to print."""
    from .shards import parse_shard

    missing = [
        flag
        for flag, v in (("--data", data), ("--reranker-model", model), ("--anchor-queries", anchor_queries))
        if not v
    ]
    if missing:
        raise ConfigError(
            f"--kind cur needs {', '.join(missing)} (the corpus, the cross-encoder and the anchor queries)"
        )
    if dtype not in ("float32", "float16"):
        raise ConfigError(f"--dtype {dtype!r}: expected float32 or float16")
    for flag, v in (
        ("--batch-size", batch_size),
        ("--chunk-size", chunk_size),
        ("--max-anchor-queries", max_anchor_queries),
    ):
        if v is not None and v < 1:
            raise ConfigError(f"{flag} must be >= 1, got {v}")
    shard_t = parse_shard(shard) if shard else None
    anchors = read_anchor_queries(str(anchor_queries), data, max_anchor_queries)
    corpus = load_corpus_of(str(data))
    from ..models.base import load_ranker

    ranker = load_ranker(str(model), "cross", device=device)
    stats = build_cur_index(
        ranker,
        corpus,
        anchors,
        out,
        source=str(model),
        anchor_source=str(anchor_queries),
        dtype=dtype,
        batch_size=batch_size,
        chunk_size=chunk_size,
        shard=shard_t,
    )
    cost = CURIndex(out).cost() if _all_shards_done(Path(out)) else None
    line = (
        f"wrote {out}: {len(anchors)} anchor queries x {len(corpus)} documents; this run scored "
        f"{stats['pairs_scored']:,} pairs "
        f"in {stats['seconds']:.1f} s"
    )
    if cost is not None:
        line += f" (whole index: {cost['pairs']:,} cross-encoder calls, {cost['seconds']:.1f} s)"
    return line


def _all_shards_done(out: Path) -> bool:
    from .shards import read_shard_ids

    try:
        read_shard_ids(out / "R")
    except (ConfigError, FileNotFoundError):
        return False
    return True
