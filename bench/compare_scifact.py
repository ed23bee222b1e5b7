"""`unirank compare` on SciFact test: BM25 vs zero-shot all-MiniLM-L6-v2 vs the fine-tuned model,
with the p-values checked against ``ranx.compare`` on the same runs.

The run folders come from the README's commands (run from the repository root):

    unirank eval --data ../shared/data/scifact --split test --retriever bm25  --out runs/scifact-bm25
    unirank eval --data ../shared/data/scifact --split test --retriever dense --out runs/scifact-dense
    python bench/mine_scifact.py --miner dense --data ../shared/data/scifact --no-record
    unirank train bench/configs/scifact_infonce_mw.yaml --data.mined bench/out/scifact_dense/train.jsonl \\
        --train_max_length 128 --threads 2 --out runs/scifact-finetuned      # its test run: runs/scifact-finetuned/test

Usage:
    python bench/compare_scifact.py [--run bm25=runs/scifact-bm25 --run dense=runs/scifact-dense
        --run finetuned=runs/scifact-finetuned/test] [--qrels ../shared/data/scifact] [--out bench/out/compare_scifact]
        [--permutations 10000] [--no-ranx] [--no-record]

Steps: (1) ``unirank.eval.compare.run_compare`` (what ``unirank compare`` runs; all pairs,
nDCG@10, Recall@100, MRR@10, t-test + randomization test + bootstrap CI, Holm) writing
``--out``; (2) ``ranx.compare`` on the same run files and qrels with ``stat_test="student"``
and ``"fisher"`` (same number of permutations), after checking that ranx's per-query values
equal ours; the t-test p-values must agree to 1e-6 and the randomization p-values within
the Monte-Carlo error of two independent estimates (4 standard errors); (3) a section in
bench/RESULTS.md (unless ``--no-record``).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEASURES = ["ndcg@10", "recall@100", "mrr@10"]
DEFAULT_RUNS = ["bm25=runs/scifact-bm25", "dense=runs/scifact-dense", "finetuned=runs/scifact-finetuned/test"]


def ranx_check(cmp, runs: dict[str, str], qrels: dict, permutations: int) -> tuple[list[list[str]], dict]:
    """Per pair and measure: our p-values next to ranx's; also whether the per-query values agree."""
    from importlib.metadata import version

    import numpy as np
    import ranx

    from unirank.data.trec import read_run

    rq = ranx.Qrels(qrels)
    rruns = []
    for name, folder in runs.items():
        run = read_run(Path(folder) / "run.trec")
        rruns.append(ranx.Run({q: d for q, d in run.items() if q in qrels}, name=name))
    same = {}
    for rr, name in zip(rruns, runs):
        for m in MEASURES:
            ranx.evaluate(rq, rr, m, return_mean=False)  # keeps query id -> value in rr.scores[m]
            theirs = rr.scores[m]
            qids = cmp.aligned.qids[m]
            ours = cmp.aligned.values[m][name]
            diff = np.array([abs(theirs[q] - v) for q, v in zip(qids, ours)])
            same[(name, m)] = (int((diff > 1e-6).sum()), float(diff.max()))
    t0 = time.perf_counter()
    student = ranx.compare(rq, rruns, MEASURES, stat_test="student", rounding_digits=15)
    fisher = ranx.compare(rq, rruns, MEASURES, stat_test="fisher", n_permutations=permutations, rounding_digits=15)
    ranx_s = time.perf_counter() - t0
    rows, worst_t, fisher_ok = [], 0.0, True
    for r in cmp.pairs:
        key = frozenset([r.a, r.b])
        pt = float(student.comparisons[key][r.measure]["p_value"])
        pf = float(fisher.comparisons[key][r.measure]["p_value"])
        bound = 4 * math.sqrt(2) * math.sqrt(max(pf * (1 - pf), 1e-4) / permutations) + 2 / permutations
        worst_t = max(worst_t, abs(r.p_t - pt))
        fisher_ok &= abs(r.p_fisher - pf) <= bound
        rows.append(
            [
                f"{r.a} vs {r.b}",
                r.measure,
                f"{r.p_t:.6g}",
                f"{pt:.6g}",
                f"{abs(r.p_t - pt):.1e}",
                f"{r.p_fisher:.4f}",
                f"{pf:.4f}",
                f"{abs(r.p_fisher - pf):.4f}",
                f"{bound:.4f}",
            ]
        )
    return rows, {
        "per_query_mismatch": {f"{n}/{m}": v for (n, m), v in same.items()},
        "max_abs_dp_t": worst_t,
        "fisher_within_mc_error": fisher_ok,
        "ranx_s": round(ranx_s, 1),
        "ranx": version("ranx"),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--run", action="append", default=None, help="NAME=FOLDER, repeatable, the first is the baseline")
    ap.add_argument("--qrels", default="../shared/data/scifact", help="BEIR folder (or qrels file)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "compare_scifact"))
    ap.add_argument("--permutations", type=int, default=10_000)
    ap.add_argument("--no-ranx", action="store_true", help="skip the ranx agreement check")
    ap.add_argument("--no-record", action="store_true")
    a = ap.parse_args(argv)

    from unirank.eval.compare import CompareConfig, cli_args, load_judgements, run_compare
    from unirank.eval.compare_report import comparison_markdown

    runs = dict(x.split("=", 1) for x in (a.run or DEFAULT_RUNS))
    cfg = CompareConfig(
        runs=list(runs.values()),
        names=list(runs),
        qrels=a.qrels,
        measures=MEASURES,
        all_pairs=True,
        permutations=a.permutations,
        out=a.out,
    )
    t0 = time.perf_counter()
    cmp = run_compare(cfg)
    secs = time.perf_counter() - t0
    md = comparison_markdown(cmp)
    rows, summary = [], {}
    if not a.no_ranx:
        rows, summary = ranx_check(cmp, runs, load_judgements(a.qrels).qrels, a.permutations)
        print(summary, flush=True)
        for row in rows:
            print("  ".join(row), flush=True)
    if a.no_record:
        return
    import shlex

    from _record import host, record, section

    body = [
        f"Equivalent CLI: `{shlex.join(cli_args(cfg))}` ({secs:.1f} s for 3 systems x 3 measures, all pairs, "
        f"{a.permutations} permutations and 10,000 bootstrap resamples per pair; report: "
        f"`{Path(a.out).relative_to(ROOT) if Path(a.out).is_relative_to(ROOT) else a.out}/report.html`)",
        "",
        "Runs (all on SciFact test, 300 queries; commands in the script's docstring and the README): "
        + "; ".join(f"{n} `{p}`" for n, p in runs.items()),
        "",
        md.rstrip(),
    ]
    if rows:
        mism = {k: v for k, v in summary["per_query_mismatch"].items() if v[0]}
        body += [
            "",
            f"**Agreement with ranx {summary['ranx']}** (`ranx.compare` on the same run files and qrels; "
            f'`stat_test="student"` and `"fisher"` with {a.permutations} permutations, its seed 42 vs our seed 0). '
            + (
                "ranx's per-query values equal ours on every run and measure (|difference| <= 1e-6). "
                if not mism
                else f"Per-query values that differ from ranx's (count, max |diff|): {mism}. "
            )
            + f"Largest |p(t) ours - p(t) ranx| = {summary['max_abs_dp_t']:.1e}; randomization p-values "
            + ("all within" if summary["fisher_within_mc_error"] else "NOT all within")
            + " the Monte-Carlo bound 4 sqrt(2) sqrt(p(1-p)/N) + 2/N.",
            "",
            "| pair | measure | p t (unirank) | p t (ranx) | abs diff | p Fisher (unirank) | p Fisher (ranx) | abs "
            "diff | MC bound |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        body += ["| " + " | ".join(r) + " |" for r in rows]
    record(
        section(
            "`unirank compare` on SciFact test: BM25 vs zero-shot vs fine-tuned, checked against ranx (issue 19)",
            "compare_scifact.py",
            host(),
            body,
        )
    )


if __name__ == "__main__":
    main()
