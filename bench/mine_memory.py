"""Peak memory of hard-negative mining at scale: 10k queries x 200k documents (synthetic vectors).

The whole ``unirank mine`` pipeline runs (dense miner -> duplicates + relative_margin
filters -> top sampler -> train.jsonl, manifest, audit) on a synthetic corpus: unit-norm
random document vectors, and for each query a random positive document plus noise
(re-normalised). Documents and queries get short placeholder texts; a small lookup
"encoder" maps a query text to its vector, so the miner gets vectors without a model.

``--search scan`` (the bounded path: a ``query_chunk x doc_chunk`` block at a time, merged
with ``topk_merge``) keeps one copy of the document matrix; ``--search faiss`` adds FAISS's
own copy. Peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of this process.

Usage:
    .venv/bin/python bench/mine_memory.py [--queries 10000] [--docs 200000] [--dim 384]
        [--search scan|faiss] [--query-chunk 1024] [--doc-chunk 16384] [--no-record]

Appends a section to bench/RESULTS.md unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def unit_rows(rng: np.random.Generator, n: int, dim: int, chunk: int = 65536) -> np.ndarray:
    """``(n, dim)`` float32 unit vectors, generated in chunks (no float64 copy of the whole)."""
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, chunk):
        block = rng.standard_normal((min(chunk, n - s), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[s : s + len(block)] = block
    return out


class LookupEncoder:
    """Maps the text ``"query <i>"`` to row ``i`` of a query matrix (a stand-in for a bi-encoder)."""

    similarity, normalize = "dot", True

    def __init__(self, query_vectors: np.ndarray) -> None:
        self.q = query_vectors

    def encode_queries(self, texts, **kw) -> np.ndarray:
        return self.q[[int(t.split()[1]) for t in texts]]

    def encode_docs(self, texts, **kw) -> np.ndarray:  # pragma: no cover - vectors are given
        raise RuntimeError("documents are given as vectors")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--search", choices=["scan", "faiss"], default="scan")
    ap.add_argument("--query-chunk", type=int, default=1024)
    ap.add_argument("--doc-chunk", type=int, default=16384)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--out", default=None, help="output folder (default bench/out/mine_memory_<search>)")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)

    from unirank.config import from_dict
    from unirank.negatives.miners import DenseMiner
    from unirank.negatives.pipeline import MineConfig, run_mine
    from unirank.types import Document, Query, RetrievalDataset

    rss_start = rss_mb()
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    docs = unit_rows(rng, args.docs, args.dim)
    pos = rng.integers(0, args.docs, size=args.queries)
    queries = docs[pos] + 0.6 * unit_rows(rng, args.queries, args.dim)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    doc_ids = [f"d{i}" for i in range(args.docs)]
    ds = RetrievalDataset(
        name=f"synthetic-{args.queries}x{args.docs}x{args.dim}",
        corpus={d: Document(id=d, text=f"document number {i}") for i, d in enumerate(doc_ids)},
        queries={f"q{i}": Query(id=f"q{i}", text=f"query {i}") for i in range(args.queries)},
        qrels={f"q{i}": {doc_ids[int(p)]: 1} for i, p in enumerate(pos)},
        split="train",
        fingerprint="synthetic-seed0",
    )
    rss_data = rss_mb()
    out = Path(args.out or ROOT / "bench" / "out" / f"mine_memory_{args.search}")
    cfg = from_dict(
        MineConfig,
        {
            "data": ds.name,
            "miner": {"name": "dense"},
            "dense_search": args.search,
            "depth": args.depth,
            "query_chunk": args.query_chunk,
            "doc_chunk": args.doc_chunk,
            "filters": [{"name": "duplicates"}, {"name": "relative_margin", "p": 0.05}],
            "sampler": {"name": "top", "range_min": 3},
            "negatives": 7,
            "seed": 0,
            "out": str(out),
        },
    )
    miner = DenseMiner(
        LookupEncoder(queries), search=args.search, query_chunk=args.query_chunk, doc_chunk=args.doc_chunk
    )
    miner.build_from_vectors(doc_ids, docs)
    rss_index = rss_mb()
    t1 = time.perf_counter()
    manifest = run_mine(cfg, dataset=ds, miner=miner, log=lambda m: print(m, flush=True))
    t2 = time.perf_counter()
    result = {
        "queries": args.queries,
        "docs": args.docs,
        "dim": args.dim,
        "search": args.search,
        "query_chunk": args.query_chunk,
        "doc_chunk": args.doc_chunk,
        "doc_matrix_mib": round(docs.nbytes / 2**20, 1),
        "peak_rss_mib": round(rss_mb(), 1),
        "rss_after_imports_mib": round(rss_start, 1),
        "rss_after_data_mib": round(rss_data, 1),
        "rss_after_index_mib": round(rss_index, 1),
        "setup_s": round(t1 - t0, 1),
        "mine_s": round(t2 - t1, 1),
        "counts": manifest["counts"],
    }
    print(result)
    if not args.no_record:
        record(result, argv if argv is not None else sys.argv[1:])
    return result


def record(r: dict, argv: list[str]) -> None:
    c = r["counts"]
    cmd = ".venv/bin/python bench/mine_memory.py " + " ".join(shlex.quote(a) for a in argv)
    text = f"""
## Mining memory: {r["queries"]:,} queries x {r["docs"]:,} documents, dim {r["dim"]}, \
search={r["search"]} ({dt.date.today().isoformat()})

Command: `{cmd.strip()}`
Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared), {platform.platform()}, \
Python {platform.python_version()}, numpy {np.__version__}

The full `run_mine` pipeline (dense miner, depth 100 -> duplicates + relative_margin p=0.05 ->
top sampler skipping 3 ranks, 7 negatives -> train.jsonl + mine.json + audit) on synthetic
unit vectors (each query = its positive + noise). Blocks of {r["query_chunk"]} queries x
{r["doc_chunk"]} documents; no queries x corpus matrix.

| | value |
|---|---|
| document matrix (float32) | {r["doc_matrix_mib"]} MiB |
| RSS after imports | {r["rss_after_imports_mib"]} MiB |
| RSS after building the synthetic data set | {r["rss_after_data_mib"]} MiB |
| RSS after building the index | {r["rss_after_index_mib"]} MiB |
| **peak RSS (ru_maxrss)** | **{r["peak_rss_mib"]} MiB** |
| mining wall time | {r["mine_s"]} s (setup {r["setup_s"]} s) |
| queries mined / written | {c["queries_mined"]} / {c["queries_written"]} |
| candidates seen / kept | {c["candidates_seen"]} / {c["candidates_kept"]} |
| dropped | {c["dropped"]} |
| positives retrieved in top 100 | {c["positives_retrieved"]} / {c["positives"]} |
| negatives written | {c["negatives_written"]} |
"""
    with open(ROOT / "bench" / "RESULTS.md", "a", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
