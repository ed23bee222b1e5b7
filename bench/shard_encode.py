"""Sharded corpus encoding throughput: 1 process vs N processes (torchrun ranks), and
compressed-index recall@100 vs exact on the resulting store or on synthetic vectors.

Usage:
    # one process, all documents
    .venv/bin/python bench/shard_encode.py encode --docs 500 --out bench/out/shard_encode/p1
    # two processes (each rank encodes its shard; shard = rank / world size)
    .venv/bin/torchrun --standalone --nproc_per_node 2 bench/shard_encode.py encode --docs 500 --out bench/out/shard_encode/p2
    # recall of IVF-PQ / HNSW vs exact
    .venv/bin/python bench/shard_encode.py recall --synthetic 50000 --dim 384
    # ... on a real store (``unirank encode``) with real query embeddings
    .venv/bin/python bench/shard_encode.py recall --store STORE --query-vectors queries.npy

Each rank prints one JSON line: rank, docs, seconds (encoding only, model already loaded).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

SCIFACT = str(
    Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact/corpus.jsonl"
)  # ../shared beside the repository


def read_docs(path: str, n: int) -> list[tuple[str, str]]:
    """First ``n`` documents of a BEIR corpus.jsonl as ``(id, title + " " + text)``."""
    from unirank.data.beir import load_corpus

    return [(doc.id, doc.full_text) for doc in list(load_corpus(path).values())[:n]]


def encode(args: argparse.Namespace) -> None:
    import torch

    from unirank.index.shards import encode_corpus_shard
    from unirank.models.bi import BiEncoder

    torch.set_num_threads(args.threads)
    model = BiEncoder.from_pretrained(None, max_length=args.max_length)
    docs = read_docs(args.corpus, args.docs)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    t0 = time.perf_counter()
    folder = encode_corpus_shard(
        model,
        docs,
        shard=None,
        out_dir=args.out,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        resume=False,
        device="cpu",
    )
    dt = time.perf_counter() - t0
    n = json.loads((folder / "done.json").read_text())["docs"]
    print(
        json.dumps(
            {
                "rank": rank,
                "world": world,
                "docs": n,
                "seconds": round(dt, 2),
                "docs_per_s": round(n / dt, 2),
                "threads": args.threads,
                "start_unix": round(time.time() - dt, 2),
            }
        ),
        flush=True,
    )


def recall(args: argparse.Namespace) -> None:
    import faiss

    from unirank.index.shards import ShardedIndex, build_index_from_shards, encode_corpus_shard, recall_at_k

    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    if args.store:
        root = args.store
        x = np.concatenate(
            [c for _, c in __import__("unirank.index.shards", fromlist=["iter_chunks"]).iter_chunks(root)]
        )
        if args.query_vectors:  # real query embeddings (e.g. SciFact test claims) instead of sampled documents
            q = np.ascontiguousarray(np.load(args.query_vectors), dtype=np.float32)
        else:
            q = x[rng.choice(len(x), min(args.queries, len(x)), replace=False)]
    else:  # clustered unit vectors: retrieval-like neighbourhoods
        centers = rng.standard_normal((args.synthetic // 50, args.dim))
        x = centers[rng.integers(0, len(centers), args.synthetic)] + 0.7 * rng.standard_normal(
            (args.synthetic, args.dim)
        )
        x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
        table = {str(i): v for i, v in enumerate(x)}

        class Lookup:
            def encode_docs(self, texts, **kw):
                return np.stack([table[t] for t in texts])

        root = tempfile.mkdtemp()
        for s in range(args.shards):
            encode_corpus_shard(
                Lookup(), [(k, k) for k in table], shard=(s, args.shards), out_dir=root, chunk_size=8192
            )
        qi = rng.choice(len(x), args.queries, replace=False)
        q = x[qi] + 0.3 * rng.standard_normal((args.queries, args.dim)).astype(np.float32)
        q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    t = time.perf_counter()
    _, exact = ShardedIndex(root).search(q, 100)
    rows = [
        {
            "index": "flat (ShardedIndex exact scan)",
            "build_s": 0.0,
            "search_s": round(time.perf_counter() - t, 2),
            "recall@100": 1.0,
            "bytes/vector": 4 * x.shape[1],
        }
    ]
    n, d = x.shape
    for kind, params, search in (
        ("ivfpq", {"m": d // 8}, {"nprobe": 16}),
        ("ivfpq", {"m": d // 8}, {"nprobe": 64}),
        ("hnsw", {"M": 32}, {"efSearch": 128}),
        ("hnsw", {"M": 32}, {"efSearch": 512}),
    ):
        t = time.perf_counter()
        ix = build_index_from_shards(root, kind, train_sample=args.train_sample, **params)
        build = time.perf_counter() - t
        ix.set_search_params(**search)
        t = time.perf_counter()
        _, got = ix.search(q, 100)
        bpv = (d // 8 + 8) if kind == "ivfpq" else (4 * d + 8 * params["M"])
        rows.append(
            {
                "index": (
                    f"{kind} {params} {search} "
                    f"nlist={faiss.extract_index_ivf(ix.index).nlist if kind == 'ivfpq' else '-'}"
                ),
                "build_s": round(build, 2),
                "search_s": round(time.perf_counter() - t, 2),
                "recall@100": round(recall_at_k(exact, got, 100), 4),
                "bytes/vector": bpv,
            }
        )
    # IVF-PQ per shard + exact re-scoring of refine x 100 candidates from the memory-mapped store
    ix_dir = tempfile.mkdtemp()
    t = time.perf_counter()
    ShardedIndex.build(root, ix_dir, kind="ivfpq", train_sample=args.train_sample, m=d // 8)
    build = time.perf_counter() - t
    for refine in (0, 4, 10):
        sh = ShardedIndex(root, ix_dir, refine=refine)
        sh.set_search_params(nprobe=64)
        t = time.perf_counter()
        _, got = sh.search(q, 100)
        rows.append(
            {
                "index": f"ShardedIndex ivfpq m={d // 8} nprobe=64 refine={refine} (exact re-score from the store)",
                "build_s": round(build, 2),
                "search_s": round(time.perf_counter() - t, 2),
                "recall@100": round(recall_at_k(exact, got, 100), 4),
                "bytes/vector": d // 8 + 8,
            }
        )
    print(json.dumps({"n": n, "dim": d, "queries": len(q), "train_sample": args.train_sample, "rows": rows}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("encode")
    e.add_argument("--docs", type=int, default=500)  # not --n: torchrun reads it as one of its own options
    e.add_argument("--corpus", default=SCIFACT)
    e.add_argument("--out", required=True)
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--chunk-size", type=int, default=128)
    e.add_argument("--max-length", type=int, default=256)
    e.add_argument("--threads", type=int, default=1)
    r = sub.add_parser("recall")
    r.add_argument("--store", default=None)
    r.add_argument("--synthetic", type=int, default=50000)
    r.add_argument("--dim", type=int, default=384)
    r.add_argument("--shards", type=int, default=2)
    r.add_argument("--queries", type=int, default=200)
    r.add_argument("--train-sample", type=int, default=50000)
    r.add_argument("--query-vectors", default=None, help="with --store: a (Q, dim) .npy of query embeddings")
    r.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    encode(args) if args.cmd == "encode" else recall(args)


if __name__ == "__main__":
    main()
