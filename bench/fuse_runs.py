"""Reciprocal-rank fusion of saved TREC runs, without re-encoding anything.

    .venv/bin/python bench/fuse_runs.py RUN_A.trec RUN_B.trec [...] --out fused.trec \\
        --qrels ../shared/data/scifact --split test

Each run keeps its top ``--depth`` documents per query; a document's fused score is the sum
over the runs that hold it of 1 / (``--k-rrf`` + rank), through
:func:`unirank.index.base.rrf_fuse` (the fusion ``unirank eval --retriever fusion`` and
``bench/splade_scifact.py --fuse-dense`` use). Queries missing from a run get nothing from it.
Writes the fused top ``--k`` as a TREC run (for ``unirank compare``) and prints nDCG@10 and
Recall@100 of every input and of the fusion. A bench helper, not a test.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def fuse(
    runs: list[dict[str, dict[str, float]]], depth: int = 100, k: int = 100, k_rrf: float = 60.0
) -> dict[str, dict[str, float]]:
    """RRF of several runs (query id -> doc id -> score) into one run of the top ``k`` per query."""
    import numpy as np

    from unirank.data.trec import rank_order
    from unirank.index.base import hits_to_run, rrf_fuse

    qids = sorted(set().union(*runs))
    doc_ids = sorted({d for r in runs for row in r.values() for d in row})
    pos = {d: i for i, d in enumerate(doc_ids)}
    hits = []
    for r in runs:
        idx = np.full((len(qids), depth), -1, dtype=np.int64)
        for qi, q in enumerate(qids):
            ranked = [pos[d] for d, _ in rank_order(r.get(q, {}))[:depth]]
            idx[qi, : len(ranked)] = ranked
        hits.append((np.zeros(idx.shape, dtype=np.float32), idx))
    s, i = rrf_fuse(hits, len(doc_ids), k, k_rrf)
    return hits_to_run(qids, doc_ids, s, i)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="TREC run files (or run folders holding run.trec)")
    ap.add_argument("--out", required=True, help="fused TREC run to write")
    ap.add_argument("--qrels", default="../shared/data/scifact", help="BEIR folder or TREC qrels file")
    ap.add_argument("--split", default="test")
    ap.add_argument("--depth", type=int, default=100, help="documents taken from each run per query")
    ap.add_argument("--k", type=int, default=100, help="documents kept in the fused run per query")
    ap.add_argument("--k-rrf", type=float, default=60.0)
    args = ap.parse_args(argv)

    from unirank.data.trec import read_run, write_run
    from unirank.eval.compare import load_judgements
    from unirank.eval.evaluate import score_run

    paths = [Path(p) / "run.trec" if Path(p).is_dir() else Path(p) for p in args.runs]
    runs = [read_run(p) for p in paths]
    fused = fuse(runs, args.depth, args.k, args.k_rrf)
    write_run(fused, args.out)
    qrels = load_judgements(args.qrels, args.split).qrels
    report = {}
    for name, run in [*((str(p), r) for p, r in zip(paths, runs)), (args.out, fused)]:
        means, _ = score_run({q: qrels[q] for q in qrels if q in run}, run, ["ndcg@10", "recall@100"])
        report[name] = {m: round(v, 4) for m, v in means.items()}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
