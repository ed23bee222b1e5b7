"""Reproduce BEIR SciFact test: BM25 and zero-shot all-MiniLM-L6-v2 (issue 3's must-show).

    .venv/bin/python bench/scifact_zero_shot.py [--data ../shared/data/scifact] [--device cpu|cuda] [--append]

Prints nDCG@10, Recall@100 and wall time for both retrievers, then ``unirank compare`` (paired
tests, all pairs) on the run folders under --out; with --append adds a section to
bench/RESULTS.md with the command, machine, date and the significance table. References: MTEB lists 0.6451
nDCG@10 for all-MiniLM-L6-v2; Pyserini's BM25 flat reports 0.679.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> str:
    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch

    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{os.cpu_count()} cores ({cpu}){gpu}, {platform.system()} {platform.release()}, torch {torch.__version__}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "scifact"))
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", default=str(HERE / "out" / "scifact"))
    ap.add_argument("--retrievers", default="bm25,dense", help="comma-separated: bm25, dense, hybrid")
    ap.add_argument("--append", action="store_true", help="append a section to bench/RESULTS.md")
    args = ap.parse_args(argv)

    from unirank.config import from_dict
    from unirank.data.datasets import load_dataset
    from unirank.eval.config import EvalConfig
    from unirank.eval.evaluate import run_eval

    ds = load_dataset(args.data, split="test")
    rows = []
    for name in args.retrievers.split(","):
        cfg = from_dict(
            EvalConfig,
            {
                "data": args.data,
                "split": "test",
                "out": f"{args.out}/{name}",
                "retriever": {
                    "name": name,
                    "dense": {"device": args.device, "dtype": args.dtype, "batch_size": args.batch_size},
                },
            },
        )
        t = time.perf_counter()
        res = run_eval(cfg, dataset=ds, quiet=True)
        secs = time.perf_counter() - t
        m = res.metrics
        rows.append((name, m["ndcg@10"], m["recall@100"], m["auc_global"], secs))
        print(
            f"{name:6s} nDCG@10 {m['ndcg@10']:.4f}  Recall@100 {m['recall@100']:.4f}  AUC(global) "
            f"{m['auc_global']:.4f}  {secs:.1f} s",
            flush=True,
        )

    # paired tests between the retrievers whose run folders are under --out (this call's and earlier ones')
    from _compare import compare_runs, markdown_block

    cmp = compare_runs(
        {n: f"{args.out}/{n}" for n in ("bm25", "dense", "hybrid")},
        f"{args.out}/compare",
        qrels=args.data,
        measures=["ndcg@10", "recall@100", "mrr@10"],
    )
    if cmp:
        print(cmp["markdown"], flush=True)

    if args.append:
        cmd = "python bench/scifact_zero_shot.py " + " ".join(argv if argv is not None else sys.argv[1:])
        lines = [
            f"\n## SciFact test, zero-shot (issue 3) — {dt.date.today().isoformat()}\n",
            f"Command: `{cmd.strip()}`  ",
            f"Machine: {machine()}\n",
            "| retriever | nDCG@10 | Recall@100 | AUC (global) | wall time (index + search) |",
            "|---|---|---|---|---|",
        ]
        lines += [f"| {n} | {a:.4f} | {b:.4f} | {c:.4f} | {s:.1f} s |" for n, a, b, c, s in rows]
        lines += markdown_block(cmp, "Significance (all pairs)")
        lines.append("\nReferences: all-MiniLM-L6-v2 on MTEB SciFact 0.6451; Pyserini BM25 flat 0.679.\n")
        with open(HERE / "RESULTS.md", "a") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
