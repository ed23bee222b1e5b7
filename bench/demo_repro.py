"""Is ``unirank demo`` reproducible? Run it twice and compare every number it reports.

Each run writes ``<out>/run<i>/summary.json`` (the BM25, zero-shot and fine-tuned rows) and
``<out>/run<i>/finetune/run/metrics.jsonl`` (the training log). The report lists each row's
metrics from both runs (wall-clock ``seconds`` left out: they measure the machine), the largest
difference of any metric and of any logged training loss, and the step counts.

Usage:
    python bench/demo_repro.py [--out bench/out/demo_repro] [--runs 2] [--record] [-- DEMO FLAGS...]
    python bench/demo_repro.py --compare-only DIR1 DIR2 [--record]   # two existing demo folders
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load(folder: Path) -> dict:
    """The numbers of one demo folder: rows (metrics without seconds) and the training losses."""
    summary = json.loads((folder / "summary.json").read_text())
    rows = {name: {k: v for k, v in m.items() if k != "seconds"} for name, m in summary["rows"].items()}
    log = folder / "finetune" / "run" / "metrics.jsonl"
    losses = [r["loss"] for r in map(json.loads, log.read_text().splitlines()) if "loss" in r] if log.is_file() else []
    return {"rows": rows, "losses": losses}


def compare(runs: list[dict]) -> dict:
    """Largest absolute difference of each row's metrics and of the training losses, run 1 vs the others.

    Example:
        >>> a = {"rows": {"x": {"m": 0.5}}, "losses": [1.0, 0.5]}
        >>> b = {"rows": {"x": {"m": 0.25}}, "losses": [1.0, 0.5]}
        >>> compare([a, b])
        {'same_rows': True, 'metric_max_diff': 0.25, 'loss_max_diff': 0.0, 'same_loss_count': True}
    """
    first, diffs, loss_diffs = runs[0], [], []
    same_rows = all(r["rows"].keys() == first["rows"].keys() for r in runs)
    for r in runs[1:]:
        for name, m in first["rows"].items():
            for k, v in m.items():
                other = r["rows"].get(name, {}).get(k)
                if isinstance(v, (int, float)) and isinstance(other, (int, float)):
                    diffs.append(abs(v - other))
        loss_diffs += [abs(a - b) for a, b in zip(first["losses"], r["losses"])]
    return {
        "same_rows": same_rows,
        "metric_max_diff": max(diffs, default=0.0),
        "loss_max_diff": max(loss_diffs, default=0.0),
        "same_loss_count": all(len(r["losses"]) == len(first["losses"]) for r in runs),
    }


def table(runs: list[dict], folders: list[Path]) -> list[str]:
    names = list(runs[0]["rows"])
    keys = [k for k in runs[0]["rows"][names[0]] if k in ("ndcg@10", "mrr@10", "recall@100", "auc_global")]
    lines = ["| run | row | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
    for i, r in enumerate(runs):
        for name in names:
            m = r["rows"].get(name, {})
            lines.append(
                f"| {folders[i].name} | {name} | " + " | ".join(f"{m.get(k, float('nan')):.4f}" for k in keys) + " |"
            )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "demo_repro"))
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--compare-only", nargs="+", default=None, metavar="DIR")
    ap.add_argument("--record", action="store_true", help="append the report to bench/RESULTS.md")
    ap.add_argument("demo_flags", nargs="*", help="after --: flags for unirank demo")
    a = ap.parse_args()
    walls = []
    if a.compare_only:
        folders = [Path(d) for d in a.compare_only]
    else:
        folders = [Path(a.out) / f"run{i + 1}" for i in range(a.runs)]
        unirank = Path(sys.executable).parent / "unirank"
        for f in folders:
            t = time.perf_counter()
            subprocess.run([str(unirank), "demo", "--out", str(f), *a.demo_flags], check=True)
            walls.append(round(time.perf_counter() - t, 1))
    runs = [load(f) for f in folders]
    result = compare(runs)
    body = table(runs, folders) + [
        "",
        f"Largest difference between runs: any metric {result['metric_max_diff']:.3g}, any logged training loss "
        f"{result['loss_max_diff']:.3g} ({len(runs[0]['losses'])} logged losses per run"
        + ("" if result["same_loss_count"] else ", counts differ")
        + ")"
        + (f"; wall time per run {walls} s" if walls else "")
        + ".",
    ]
    print("\n".join(body))
    if a.record:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _record import append, host, section

        append(section("`unirank demo` twice: are the numbers the same?", "demo_repro.py", host(), body))


if __name__ == "__main__":
    main()
