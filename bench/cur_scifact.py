"""Cross-encoder-only k-NN search on a SciFact subset: ANNCUR and adaCUR vs BM25 / dense top-B
reranked by the same cross-encoder, at cross-encoder budgets B (issue 16).

The CPU subset (documented, deterministic):

* test queries: the first ``--test-queries`` (50) judged SciFact test queries (qrels order);
* anchor queries: the first ``--anchor-queries`` (50) judged SciFact *train* queries;
* documents: every document judged for those test queries, plus distractors drawn with
  ``--seed`` from the rest of the corpus, up to ``--docs`` (1,000) documents;
* the cross-encoder's own truncation (the SciFact cross-encoder of
  ``examples/train_cross_listwise.yaml`` run with ``max_candidate_length 128``: documents
  cut to 128 tokens, queries to 64).

Size: the cross-encoder scores ~25 pairs/s on these 2 CPU cores when they are free (7.6 with
the machine loaded 3x), so the defaults need 50 x 1,000 pairs for the index, 50 x 1,000 for
the exhaustive reference and 2 x 50 x 50 for the live check: ~105,000 pairs, about an hour.

It writes that subset as a BEIR folder (``OUT/data``) and runs the commands a user would:

1. ``unirank index --kind cur --data OUT/data --reranker-model CE --anchor-queries
   OUT/data/anchors.tsv --out OUT/index`` (anchor queries x documents, resumable; the anchor
   queries go as a file because most of their judged documents are outside the subset);
2. ``unirank eval --task budget ... --out OUT/budget`` (exhaustive scores of the test queries,
   then every method at every budget; report.html with the plots);
3. ``unirank eval --retriever cur`` with each CUR method at ``--live-budget``: the live
   retriever, timed, and checked against the simulated run of step 2.

Usage:
    flock /tmp/unirank-cpu.lock .venv/bin/python bench/cur_scifact.py --cross-encoder DIR \\
        [--data ../shared/data/scifact] [--out bench/out/cur_scifact] [--no-record]

Appends a section to bench/RESULTS.md unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def make_subset(
    data: str, out: Path, test_queries: int, anchor_queries: int, docs: int, seed: int, source: str | None = None
) -> dict:
    """Write the subset BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) and anchors.tsv."""
    import numpy as np

    from unirank.data.datasets import load_dataset
    from unirank.io import write_json, write_jsonl, write_text

    test = load_dataset(data, split="test")
    train = load_dataset(data, split="train")
    tq = list(test.qrels)[:test_queries]
    aq = list(train.qrels)[:anchor_queries]
    judged = sorted({d for q in tq for d in test.qrels[q] if d in test.corpus})
    others = sorted(d for d in test.corpus if d not in set(judged))
    rng = np.random.default_rng(seed)
    extra = rng.choice(len(others), size=max(0, docs - len(judged)), replace=False)
    keep = set(judged) | {others[i] for i in extra}
    corpus = [doc for d, doc in test.corpus.items() if d in keep]  # corpus file order
    write_jsonl(out / "corpus.jsonl", ({"_id": d.id, "title": d.title, "text": d.text} for d in corpus))
    write_jsonl(out / "queries.jsonl", ({"_id": q, "text": test.queries[q].text} for q in tq))
    rows = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{g}" for q in tq for d, g in test.qrels[q].items()]
    write_text(out / "qrels" / "test.tsv", "\n".join(rows) + "\n")
    # the anchor queries as a query file (their judged documents are mostly outside the subset)
    write_text(out / "anchors.tsv", "".join(f"{q}\t{train.queries[q].text}\n" for q in aq))
    manifest = {
        "source": source or data,
        "test_queries": len(tq),
        "anchor_queries": len(aq),
        "documents": len(corpus),
        "judged_documents": len(judged),
        "distractors": len(corpus) - len(judged),
        "seed": seed,
    }
    write_json(out / "subset.json", manifest)
    return manifest


def run(cmd: list[str], log: Path) -> float:
    """Run ``unirank`` with this checkout on the path; returns wall seconds; stops on failure."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t = time.perf_counter()
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"\n$ unirank {shlex.join(cmd)}\n")
        f.flush()
        p = subprocess.run(
            [sys.executable, "-m", "unirank", *cmd], cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT
        )
    if p.returncode:
        sys.exit(f"failed ({p.returncode}): unirank {shlex.join(cmd)}; see {log}")
    return time.perf_counter() - t


def same_run(a: Path, b: Path, depth: int) -> float:
    """Fraction of queries whose top-``depth`` document lists are identical in two TREC runs."""
    from unirank.data.trec import read_run
    from unirank.eval.metrics import rank_docs

    ra, rb = read_run(a), read_run(b)
    return sum(rank_docs(ra[q], depth) == rank_docs(rb.get(q, {}), depth) for q in ra) / max(1, len(ra))


#: systems of the significance step: (name, run file stem at budget B)
COMPARED = (
    ("adacur", "adacur_at_{B}"),
    ("dense_rerank", "dense_plus_CE_rerank_at_{B}"),
    ("bm25_rerank", "bm25_plus_CE_rerank_at_{B}"),
    ("anncur", "anncur_at_{B}"),
)


def compare_step(out: Path, budgets: list[int], log: Path, cmds: dict, seed: int) -> None:
    """`unirank compare` at each budget, adaCUR as the baseline: (a) on judgements made of each
    query's exhaustive cross-encoder top 10 (so recall@10 = the papers' Top-10-Recall), (b) on
    the qrels (nDCG@10, Recall@100). No model runs: seconds."""
    from unirank.data.trec import read_run, write_qrels
    from unirank.eval.metrics import rank_docs

    runs = out / "budget" / "runs"
    top10 = out / "compare" / "exhaustive_top10.qrels"
    exhaustive = read_run(runs / "exhaustive_cross-encoder_at_None.trec")
    write_qrels({q: {d: 1 for d in rank_docs(docs, 10)} for q, docs in exhaustive.items()}, top10)
    for B in budgets:
        files = [str(runs / f"{stem.format(B=B)}.trec") for _, stem in COMPARED]
        names = ",".join(n for n, _ in COMPARED)
        for tag, qrels, measures in (("top10", top10, "recall@10"), ("qrels", out / "data", "ndcg@10,recall@100")):
            cmd = [
                "compare",
                *files,
                "--names",
                names,
                "--qrels",
                str(qrels),
                "--measures",
                measures,
                "--seed",
                str(seed),
                "--out",
                str(out / "compare" / f"{tag}_at_{B}"),
            ]
            cmds[f"compare {tag} B={B}"] = cmd
            print(f"running compare {tag} at B={B}", flush=True)
            run(cmd, log)


def reproduce_argv(argv: list[str]) -> list[str]:
    """The arguments that rerun the whole benchmark (without --report-only, --skip, --no-record, --markdown).

    >>> reproduce_argv(["--cross-encoder", "CE", "--skip", "index,budget", "--report-only", "--test-queries", "50"])
    ['--cross-encoder', 'CE', '--test-queries', '50']
    """
    out, skip_next = [], False
    for a in argv:
        if skip_next:
            skip_next = False
        elif a in ("--skip", "--markdown"):
            skip_next = True
        elif a in ("--report-only", "--no-record") or a.startswith(("--skip=", "--markdown=")):
            continue
        else:
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cross-encoder", required=True, help="the SciFact cross-encoder folder")
    ap.add_argument("--data", default="../shared/data/scifact")
    ap.add_argument("--out", default="bench/out/cur_scifact")
    ap.add_argument("--test-queries", type=int, default=50)
    ap.add_argument("--anchor-queries", type=int, default=50)
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--budgets", default="25,50,100,200")
    ap.add_argument("--rounds", type=int, default=5, help="adaCUR rounds")
    ap.add_argument("--live-budget", type=int, default=50, help="budget of the live `--retriever cur` runs (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--report-only", action="store_true", help="only format (and record) the finished run in --out")
    ap.add_argument(
        "--skip",
        default="",
        help="comma list of steps (index, budget, live) already finished in --out: "
        "their outputs are reused, not run again (e.g. to finish a run stopped after the budget step)",
    )
    ap.add_argument("--markdown", help="write the section to this file instead of bench/RESULTS.md")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    out = (ROOT / args.out).resolve() if not Path(args.out).is_absolute() else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budget_list = [int(b) for b in args.budgets.split(",")]
    if args.report_only:  # record the finished run of this folder (only the model-free compare step runs, if missing)
        st = json.loads((out / "bench_state.json").read_text())
        if not any(k.startswith("compare ") for k in st["cmds"]):
            compare_step(out, budget_list, out / "commands.log", st["cmds"], args.seed)
            (out / "bench_state.json").write_text(json.dumps(st, indent=2))
        return report(args, out, st["manifest"], st["cmds"], st["wall"], st["live"])
    log = out / "commands.log"
    data = out / "data"
    manifest = make_subset(
        str(ROOT / args.data) if not Path(args.data).is_absolute() else args.data,
        data,
        args.test_queries,
        args.anchor_queries,
        args.docs,
        args.seed,
        source=args.data,
    )
    print("subset:", manifest, flush=True)

    budgets = f"[{args.budgets}]"
    cmds: dict[str, list[str]] = {
        "index": [
            "index",
            "--kind",
            "cur",
            "--data",
            str(data),
            "--reranker-model",
            args.cross_encoder,
            "--anchor-queries",
            str(data / "anchors.tsv"),
            "--out",
            str(out / "index"),
            "--batch-size",
            "16",
        ],
        "budget": [
            "eval",
            "--task",
            "budget",
            "--data",
            str(data),
            "--split",
            "test",
            "--k",
            "100",
            "--out",
            str(out / "budget"),
            "--set",
            f"retriever.cur.index={out / 'index'}",
            "--set",
            f"retriever.cur.budgets={budgets}",
            "--set",
            f"retriever.cur.rounds={args.rounds}",
            "--set",
            f"retriever.cur.seed={args.seed}",
            "--set",
            f"retriever.cur.exhaustive={out / 'exhaustive'}",
        ],
    }
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - {"index", "budget", "live"}:
        sys.exit(f"--skip: unknown step(s) {sorted(skip - {'index', 'budget', 'live'})}; expected index, budget, live")
    state_file = out / "bench_state.json"
    state = json.loads(state_file.read_text()) if skip and state_file.is_file() else {}
    wall = {k: v for k, v in state.get("wall", {}).items() if k in skip}  # timings of the skipped steps, where saved
    for name, cmd in cmds.items():
        if name in skip:
            print(f"skipping {name} (finished earlier in {out}): unirank {shlex.join(cmd)}", flush=True)
            continue
        print(f"running {name}: unirank {shlex.join(cmd)}", flush=True)
        wall[name] = run(cmd, log)
    live = state.get("live", {}) if "live" in skip else {}
    if args.live_budget and "live" not in skip:
        for m in ("anncur", "adacur"):
            cmd = [
                "eval",
                "--data",
                str(data),
                "--split",
                "test",
                "--retriever",
                "cur",
                "--k",
                "100",
                "--out",
                str(out / f"live_{m}"),
                "--set",
                f"retriever.cur.index={out / 'index'}",
                "--set",
                f"retriever.cur.budget={args.live_budget}",
                "--set",
                f"retriever.cur.method={m}",
                "--set",
                f"retriever.cur.rounds={args.rounds}",
                "--set",
                f"retriever.cur.seed={args.seed}",
            ]
            cmds[f"live {m}"] = cmd
            print(f"running live {m}", flush=True)
            secs = run(cmd, log)
            cfg = json.loads((out / f"live_{m}" / "config.json").read_text())
            sim = out / "budget" / "runs" / f"{m}_at_{args.live_budget}.trec"
            live[m] = {
                "wall_s": secs,
                "search_s": cfg["retriever_stats"]["search_s"],
                "calls": cfg["retriever_stats"]["ce_calls_per_query"],
                "same_top10": same_run(sim, out / f"live_{m}" / "run.trec", 10) if sim.is_file() else None,
                "same_top100": same_run(sim, out / f"live_{m}" / "run.trec", 100) if sim.is_file() else None,
            }
    # ablations (cheap: the exhaustive scores are reused, only the CUR search runs): adaCUR rounds,
    # and round 1 from a first stage instead of random items
    min_b = min(int(b) for b in args.budgets.split(","))
    ablations = {
        f"adacur rounds={r}": ["--set", f"retriever.cur.rounds={r}", "--set", "retriever.cur.methods=[adacur]"]
        for r in (2, 10)
        if r != args.rounds and r <= min_b
    }
    ablations.update(
        {
            f"anncur/adacur, anchors from {fs}": [
                "--set",
                f"retriever.cur.rounds={args.rounds}",
                "--set",
                f"retriever.cur.first_stage={fs}",
                "--set",
                "retriever.cur.methods=[anncur,adacur]",
            ]
            for fs in ("bm25", "dense")
        }
    )
    for name, extra in ablations.items():
        tag = name.replace(" ", "_").replace("/", "_").replace(",", "").replace("=", "")
        cmd = [
            "eval",
            "--task",
            "budget",
            "--data",
            str(data),
            "--split",
            "test",
            "--k",
            "100",
            "--out",
            str(out / "ablations" / tag),
            "--set",
            f"retriever.cur.index={out / 'index'}",
            "--set",
            f"retriever.cur.budgets={budgets}",
            "--set",
            f"retriever.cur.seed={args.seed}",
            "--set",
            f"retriever.cur.exhaustive={out / 'exhaustive'}",
            "--set",
            "retriever.cur.baselines=[]",
            *extra,
        ]
        cmds[f"ablation {name}"] = cmd
        print(f"running ablation {name}", flush=True)
        wall[f"ablation {tag}"] = run(cmd, log)
    compare_step(out, budget_list, log, cmds, args.seed)
    state_file.write_text(json.dumps({"manifest": manifest, "cmds": cmds, "wall": wall, "live": live}, indent=2))
    report(args, out, manifest, cmds, wall, live)


def report(args, out: Path, manifest: dict, cmds: dict, wall: dict, live: dict) -> None:
    from _record import host, record, section

    from unirank.eval.cur_budget import budget_table

    b = json.loads((out / "budget" / "budget.json").read_text())
    rows = b["rows"]
    measures = ["ndcg@10", "recall@100"]
    ix_cost = b["index"]["cost"]
    ex_cost = {k: v for k, v in b["exhaustive"].items() if k in ("pairs", "seconds")}
    pps = ix_cost["pairs"] / max(ix_cost["seconds"], 1e-9)
    by = {(r["method"], r["budget"]): r for r in rows}
    budgets = sorted({r["budget"] for r in rows if r["budget"]})
    verdict = []
    for B in budgets:
        ada = by.get(("adacur", B), {}).get("top10_recall")
        base = {m: by[(m, B)]["top10_recall"] for m in ("bm25 + CE rerank", "dense + CE rerank") if (m, B) in by}
        if ada is not None and base:
            best = max(base, key=base.get)
            verdict.append(
                f"B={B}: adaCUR {ada:.3f} vs best baseline {best} {base[best]:.3f} -> "
                f"{'adaCUR ahead' if ada > base[best] else 'baseline ahead' if ada < base[best] else 'tie'}"
            )
    ce = (
        json.loads((Path(args.cross_encoder) / "unirank_model.json").read_text())
        if (Path(args.cross_encoder) / "unirank_model.json").is_file()
        else {}
    )
    st = ce.get("settings", {})
    body = [
        "Subset: "
        + ", ".join(f"{k} {v}" for k, v in manifest.items())
        + ". Cross-encoder: "
        + f"`{args.cross_encoder}`"
        + (
            f" ({ce.get('kind')}, {Path(str(ce.get('backbone_source', '?'))).name} backbone, queries cut to "
            f"{st.get('max_context_length')} tokens, documents to {st.get('max_candidate_length')})"
            if ce
            else ""
        )
        + ".",
        "",
        "Commands (run by the script in this order; `OUT` = " + f"`{args.out}`):",
        "",
        "```",
        *[f"unirank {shlex.join(c)}".replace(str(out), "OUT") for c in cmds.values()],
        "```",
        "",
        "Every method at every budget B (cross-encoder calls per query). Top-k-Recall: share of the exhaustive "
        "cross-encoder top k in the method's top k (for k > B the scored part holds at most B of them; the rest of "
        "each list is the method's free order: the first stage for rerank baselines, the CUR approximation for CUR). "
        "ANNCUR: B/2 seeded-random anchor items + B/2 retrieved; adaCUR: "
        f"{args.rounds} rounds of B/{args.rounds} (round 1 seeded random). The CUR runs read the cross-encoder scores "
        "from the exhaustive matrix (same search code as the live retriever; see the live check below).",
        "",
        budget_table(rows, measures),
        "",
        "Top-10-Recall, adaCUR vs the best retrieve-and-rerank baseline at each budget: " + "; ".join(verdict) + ".",
        "",
        f"Index cost: {ix_cost['pairs']:,} cross-encoder calls ({b['index']['anchor_queries']} anchor queries x "
        f"{manifest['documents']} documents) in {ix_cost['seconds']:.0f} s wall = {pps:.0f} pairs/s"
        + (
            f" (`unirank index` took {wall['index']:.0f} s with loading)"
            if "index" in wall
            else " (as timed by `unirank index`)"
        )
        + ". Exhaustive scores of the test queries (the reference, not needed in use): "
        f"{ex_cost.get('pairs', 0):,} calls in {ex_cost.get('seconds', 0):.0f} s."
        + (f" `--task budget` in all: {wall['budget']:.0f} s." if "budget" in wall else ""),
    ]
    if live:
        body += [
            "",
            f"Live `unirank eval --retriever cur` at B={args.live_budget} ({manifest['test_queries']} queries, the "
            "cross-encoder "
            "called for real):",
            "",
            "| method | CE calls / query | search s (all queries) | s / query | same top-10 as simulated | same "
            "top-100 |",
            "|---|---|---|---|---|---|",
        ]
        for m, v in live.items():
            body.append(
                f"| {m} | {v['calls']:.1f} | {v['search_s']:.1f} | {v['search_s'] / manifest['test_queries']:.2f} | "
                f"{v['same_top10']:.2f} | {v['same_top100']:.2f} |"
            )
    abl = sorted((out / "ablations").glob("*/budget.json")) if (out / "ablations").is_dir() else []
    if abl:
        body += [
            "",
            "Ablations (same subset and exhaustive scores; Top-10-Recall / Top-100-Recall vs the exhaustive "
            "cross-encoder, nDCG@10; `rounds` changes adaCUR only, `first_stage` makes round 1 (adaCUR) or the anchors "
            "(ANNCUR, then solved per query) the first stage's top items instead of seeded random ones):",
            "",
            "| variant | " + " | ".join(f"B={B}" for B in budgets) + " |",
            "|---|" + "---|" * len(budgets),
        ]
        for f in abl:
            ab = json.loads(f.read_text())
            cfg = json.loads((f.parent / "config.json").read_text())["config"]["retriever"]["cur"]
            for m in dict.fromkeys(r["method"] for r in ab["rows"] if r["budget"]):
                label = f"{m}, rounds={cfg['rounds']}" if m == "adacur" else m
                if cfg.get("first_stage"):
                    label += f", first stage {cfg['first_stage']}"
                cells = []
                for B in budgets:
                    r = next((r for r in ab["rows"] if r["method"] == m and r["budget"] == B), None)
                    cells.append(
                        f"{r['top10_recall']:.3f} / {r.get('top100_recall', float('nan')):.3f} / {r['ndcg@10']:.3f}"
                        if r
                        else "-"
                    )
                body.append(f"| {label} | " + " | ".join(cells) + " |")
    body += significance(out, budgets, by)
    body += diagnose(out, budgets)
    # the Command line shows what reruns the whole benchmark (not --report-only / --skip)
    sys.argv = [sys.argv[0], *reproduce_argv(sys.argv[1:])]
    text = section(
        "Cross-encoder-only k-NN search on a SciFact subset: ANNCUR and adaCUR vs reranked BM25 / dense (issue 16)",
        "cur_scifact.py",
        f"{host('cpu')}, 2 shared CPU cores",
        body,
    )
    print(text)
    if not args.no_record:
        record(text, args.markdown)


def significance(out: Path, budgets: list[int], by: dict) -> list[str]:
    """The compare step's results: each system against adaCUR, per budget, with Holm-adjusted
    paired t-test p-values; checks that recall@10 on the exhaustive-top-10 judgements equals
    the budget task's Top-10-Recall."""
    rows, mismatch = [], []
    names = {
        "dense_rerank": "dense + CE rerank",
        "bm25_rerank": "bm25 + CE rerank",
        "anncur": "anncur",
        "adacur": "adacur",
    }
    for B in budgets:
        for tag, measure in (("top10", "recall@10"), ("qrels", "ndcg@10")):
            f = out / "compare" / f"{tag}_at_{B}" / "comparison.json"
            if not f.is_file():
                continue
            cmp = json.loads(f.read_text())
            if tag == "top10":
                for n, m in names.items():
                    want = by.get((m, B), {}).get("top10_recall")
                    if want is not None and abs(cmp["means"][n][measure] - want) > 1e-9:
                        mismatch.append(f"{m}@{B}")
            cells = []
            for pr in (p for p in cmp["pairs"] if p["measure"] == measure):
                other = pr["b"] if pr["a"] == "adacur" else pr["a"]
                diff = pr["diff"] if pr["a"] == "adacur" else -pr["diff"]  # adaCUR minus the other system
                cells.append(f"{other} {diff:+.3f} (p {pr['p_t_adj']:.2g}{', sig.' if pr['significant'] else ''})")
            label = "Top-10-Recall" if tag == "top10" else "nDCG@10 (qrels)"
            rows.append(f"| {B} | {label} | {cmp['means']['adacur'][measure]:.3f} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return [
        "",
        "Significance (`unirank compare`, adaCUR as the baseline, paired t-test, Holm-adjusted over the three pairs "
        "of each budget and measure, alpha 0.05; Top-10-Recall is recall@10 on judgements made of each query's "
        "exhaustive "
        "cross-encoder top 10, which equals the table's Top-10-Recall"
        + (f" - except {', '.join(mismatch)}!" if mismatch else ", checked for every system and budget")
        + "). "
        "Cells: adaCUR minus the system, (adjusted p):",
        "",
        "| B | measure | adaCUR | vs | vs | vs |",
        "|---|---|---|---|---|---|",
        *rows,
    ]


def diagnose(out: Path, budgets: list[int]) -> list[str]:
    """Why Top-10-Recall and the qrels measures disagree: per budget, the queries with a judged
    relevant document in the top 10 of the exhaustive cross-encoder / adaCUR / dense + rerank,
    and those where adaCUR never scored it; and how concentrated the exhaustive top 10s are."""
    from collections import Counter

    from unirank.data.beir import load_qrels
    from unirank.data.trec import read_run
    from unirank.eval.metrics import rank_docs

    runs = out / "budget" / "runs"
    qrels = load_qrels(out / "data" / "qrels" / "test.tsv")
    ex = read_run(runs / "exhaustive_cross-encoder_at_None.trec")
    rel = {q: {d for d, g in j.items() if g > 0} for q, j in qrels.items()}
    lines = [
        "",
        "Where the judged relevant document goes (queries out of "
        + f"{len(qrels)}; adaCUR's top B = the documents it scored):",
        "",
        "| B | relevant in top 10: exhaustive CE | adaCUR | dense + CE rerank | in exhaustive top 10, never scored by "
        "adaCUR |",
        "|---|---|---|---|---|",
    ]
    for B in budgets:
        ad, de = read_run(runs / f"adacur_at_{B}.trec"), read_run(runs / f"dense_plus_CE_rerank_at_{B}.trec")
        n = Counter()
        for q, r in rel.items():
            e10, a10, d10 = (set(rank_docs(x.get(q, {}), 10)) for x in (ex, ad, de))
            n["ex"] += bool(r & e10)
            n["ad"] += bool(r & a10)
            n["de"] += bool(r & d10)
            n["lost"] += bool(r & e10) and not (r & set(rank_docs(ad.get(q, {}), B)))
        lines.append(f"| {B} | {n['ex']} | {n['ad']} | {n['de']} | {n['lost']} |")
    c = Counter(d for q in ex for d in rank_docs(ex[q], 10))
    lines += [
        "",
        f"The exhaustive cross-encoder's top 10s hold {len(c)} distinct documents in {10 * len(ex)} places; the most "
        f"frequent is in the top 10 of {c.most_common(1)[0][1]} of the {len(ex)} queries.",
    ]
    return lines


if __name__ == "__main__":
    main()
