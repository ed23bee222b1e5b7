"""Hard-negative mining on SciFact train (809 queries, 5,183 documents): BM25 and dense, end to end.

Runs :func:`unirank.negatives.pipeline.run_mine` (what ``unirank mine`` calls) with

* miner ``bm25`` (bm25s, Pyserini BEIR settings) or ``dense`` (packaged all-MiniLM-L6-v2,
  exact FAISS flat index), 100 candidates per query;
* filters ``duplicates`` (exact / near-duplicate texts of a positive) and
  ``relative_margin`` p=0.05 (NV-Retriever TopK-PercPos: drop a candidate scoring above
  95% of the positive);
* sampler ``top`` skipping the 3 best-ranked candidates; 7 negatives per query; seed 0;

and writes ``bench/out/scifact_<miner>/`` (train.jsonl, train.flag.jsonl, mine.json,
audit.html, audit.jsonl, timings.json).

Usage:
    .venv/bin/python bench/mine_scifact.py --miner bm25|dense [--data ../shared/data/scifact] [--no-record]

The equivalent command line, once ``unirank mine`` is wired::

    unirank mine --data ../shared/data/scifact --split train --miner dense \\
        --filter duplicates --filter relative_margin:p=0.05 --sampler top:range_min=3 \\
        --negatives 7 --seed 0 --format flag --out bench/out/scifact_dense

Appends a section to bench/RESULTS.md (manifest counts and the top of the audit) unless
``--no-record``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact")  # ../shared beside the repository


def config_dict(miner: str, data: str, out: str) -> dict:
    return {
        "data": data,
        "split": "train",
        "miner": {"name": miner},
        "depth": 100,
        "filters": [{"name": "duplicates"}, {"name": "relative_margin", "p": 0.05}],
        "sampler": {"name": "top", "range_min": 3},
        "negatives": 7,
        "seed": 0,
        "format": "flag",
        "out": out,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--miner", choices=["bm25", "dense", "hybrid"], required=True)
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--out", default=None, help="default bench/out/scifact_<miner>")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)

    from unirank.config import from_dict
    from unirank.negatives.pipeline import MineConfig, run_mine

    out = args.out or str(ROOT / "bench" / "out" / f"scifact_{args.miner}")
    cfg = from_dict(MineConfig, config_dict(args.miner, args.data, out))
    manifest = run_mine(cfg, log=lambda m: print(m, flush=True))
    timings = json.loads((Path(out) / "timings.json").read_text())
    print(json.dumps(manifest["counts"], indent=2))
    print(timings)
    if not args.no_record:
        record(manifest, timings, out, argv if argv is not None else sys.argv[1:])
    return manifest


def _short(text: str, n: int = 160) -> str:
    text = " ".join(text.split()).replace("|", "/")
    return text if len(text) <= n else text[: n - 1] + "…"


def record(manifest: dict, timings: dict, out: str, argv: list[str], audit_rows: int = 5) -> None:
    c = manifest["counts"]
    audit = [json.loads(x) for x in (Path(out) / "audit.jsonl").read_text().splitlines()[:audit_rows]]
    cmd = ".venv/bin/python bench/mine_scifact.py " + " ".join(shlex.quote(a) for a in argv)
    miner = manifest["miner"]
    model = miner.get("model") or {}
    rel = os.path.relpath(out, ROOT)
    lines = [
        "",
        f"## Mining SciFact train with {manifest['config']['miner']['name']} ({dt.date.today().isoformat()})",
        "",
        f"Command: `{cmd.strip()}`",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared), {platform.platform()}, Python "
        f"{platform.python_version()}",
        f"Data: {manifest['data']['name']} / train, {manifest['data']['documents']} documents, fingerprint "
        f"{manifest['data']['fingerprint']}",
        f"Miner: {miner['index']}"
        + (f", model {model.get('source')}, fingerprint {model.get('fingerprint')}" if model else ""),
        "Settings: depth 100; filters duplicates + relative_margin p=0.05; sampler top, range_min=3; 7 negatives; "
        "seed 0",
        f"Outputs: `{rel}/` (train.jsonl, train.flag.jsonl, mine.json, audit.html, audit.jsonl); "
        f"wall time {timings.get('total_s')} s (index {timings.get('index_s')} s, mining {timings.get('mine_s')} s)",
        "",
        "| count | value |",
        "|---|---|",
    ]
    for k, v in c.items():
        if k == "dropped":
            for name, n in v.items():
                lines.append(f"| dropped by `{name}` | {n} |")
        else:
            lines.append(f"| {k} | {v} |")
    lines += [
        "",
        f"Audit excerpt: the {len(audit)} written negatives scoring closest to their positive (relative margin = (neg "
        "- pos) / |pos|):",
        "",
        "| query | positive (score) | negative (rank, score) | relative |",
        "|---|---|---|---|",
    ]
    for a in audit:
        lines.append(
            f"| {a['query_id']}: {_short(a['query'], 90)} | {a['pos_id']} ({a['pos_score']:.4g}): "
            f"{_short(a['pos_text'])} "
            f"| {a['neg_id']} (rank {a['neg_rank']}, {a['neg_score']:.4g}): {_short(a['neg_text'])} | "
            f"{a['relative']:.4f} |"
        )
    with open(ROOT / "bench" / "RESULTS.md", "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
