"""SciFact fine-tuning benchmark: zero-shot vs unirank (infonce, mw, infonce+mw) vs sentence-transformers.

Steps (all through the library's own functions):

1. **zero-shot**: all-MiniLM-L6-v2 on SciFact test (dense, exact search) - nDCG@10, Recall@100,
   global AUC (``unirank.eval``).
2. **mining** (unless ``--mined``): dense hard negatives for the train split with
   ``unirank.negatives.pipeline.run_mine`` and the settings of ``bench/mine_scifact.py``
   (depth 100; duplicates + relative_margin p=0.05 filters; top sampler skipping 3 ranks;
   7 negatives; seed 0).
3. **unirank runs**: ``unirank.train.train`` with ``bench/configs/scifact_<run>.yaml``
   (``--runs infonce,mw,infonce_mw``), each evaluated on test by the loop.
4. **parity** (``--runs ... ,parity``): the same triplets (each train row with its first
   mined negative; rows without one dropped), batch size, epochs, learning rate, warmup steps,
   weight decay, clipping and no-duplicates batching, trained once by unirank (infonce) and
   once by sentence-transformers' ``SentenceTransformerTrainer`` with
   ``MultipleNegativesRankingLoss``; both evaluated by the same code; nDCG@10 and wall
   time side by side.

Writes ``<out>/results.json`` (and the run folders). Then ``unirank compare`` (all pairs, t-test +
randomization test, Holm) on the run folders present, into ``<out>/compare`` (and
``<out>/compare_parity``); the report marks the significant differences.
``--report results.json`` prints the markdown section for bench/RESULTS.md (``--record`` appends it).

Usage:
    python bench/train_scifact.py [--model DIR] [--data DIR] [--out DIR] [--runs infonce,mw,infonce_mw,parity]
        [--mined train.jsonl] [--device cuda] [--set key=value ...]
    python bench/train_scifact.py --report bench/out/train_scifact/results.json [--record]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact")  # ../shared beside the repository
MEASURES = ["ndcg@10", "recall@100", "mrr@10", "auc"]


def _machine() -> dict:
    import torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def evaluate(
    model_or_path, data: str, device: str | None, limit_queries=None, max_docs=None, out: str | None = None
) -> dict:
    from unirank.config import from_dict
    from unirank.eval.config import EvalConfig
    from unirank.eval.evaluate import run_eval
    from unirank.index.retrievers import DenseRetriever
    from unirank.models.bi import BiEncoder

    model = model_or_path if isinstance(model_or_path, BiEncoder) else BiEncoder.from_pretrained(model_or_path)
    cfg = from_dict(
        EvalConfig,
        {
            "data": data,
            "split": "test",
            "retriever": {"name": "dense"},
            "measures": MEASURES,
            "limit_queries": limit_queries,
            "max_docs": max_docs,
            "out": out,
        },
    )
    t = time.perf_counter()
    res = run_eval(cfg, retriever=DenseRetriever(model=model, device=device, show_progress=False), quiet=True)
    return {**{k: round(v, 4) for k, v in res.metrics.items()}, "eval_s": round(time.perf_counter() - t, 1)}


def mine(model: str | None, data: str, out: Path) -> str:
    from unirank.config import from_dict
    from unirank.models.bi import BiEncoder
    from unirank.negatives.pipeline import MineConfig, run_mine

    cfg = from_dict(
        MineConfig,
        {
            "data": data,
            "split": "train",
            "miner": {"name": "dense"},
            "dense_search": "scan",
            "depth": 100,
            "filters": [{"name": "duplicates"}, {"name": "relative_margin", "p": 0.05}],
            "sampler": {"name": "top", "range_min": 3},
            "negatives": 7,
            "seed": 0,
            "out": str(out),
        },
    )
    t = time.perf_counter()
    manifest = run_mine(cfg, encoder=BiEncoder.from_pretrained(model))
    print(f"mined in {time.perf_counter() - t:.1f} s: {json.dumps(manifest['counts'])}", flush=True)
    return str(out / "train.jsonl")


def unirank_run(config: Path, overrides: list[str]) -> dict:
    import shutil

    from unirank.config import load_config
    from unirank.train import TrainConfig, normalize_overrides, train

    cfg = load_config(TrainConfig, config, normalize_overrides(overrides))
    shutil.rmtree(cfg.out, ignore_errors=True)  # a fresh run each time
    t = time.perf_counter()
    summary = train(cfg, progress=False)
    return {
        "config": str(config.relative_to(ROOT)) if config.is_relative_to(ROOT) else str(config),
        "overrides": overrides,
        "test": summary.get("test"),
        "steps": summary["steps"],
        "train_s": summary["train_s"],
        "wall_s": round(time.perf_counter() - t, 1),
        "out": summary["out"],
    }


def write_triplets(mined: str, path: Path) -> int:
    """Each (query, positive) with the query's first mined negative, as a unirank mined file."""
    rows = 0
    with open(mined, encoding="utf-8") as f, open(path, "w", encoding="utf-8") as g:
        for line in f:
            r = json.loads(line)
            if r["negatives"]:
                g.write(json.dumps({**r, "negatives": r["negatives"][:1]}) + "\n")
                rows += len(r["positives"])
    return rows


def st_run(
    model: str | None, triplets: Path, out: Path, batch_size: int, epochs: int, lr: float, warmup_steps: int, seed: int
) -> dict:
    """sentence-transformers' own trainer + MultipleNegativesRankingLoss on the same triplets."""
    import pyarrow as pa
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
        losses,
    )
    from sentence_transformers.training_args import BatchSamplers

    from unirank.models.backbone import resolve_model_path

    anchors, positives, negatives = [], [], []
    for line in open(triplets, encoding="utf-8"):
        r = json.loads(line)
        for p in r["positives"]:
            anchors.append(r["query"])
            positives.append(p["text"])
            negatives.append(r["negatives"][0]["text"])
    t0 = time.perf_counter()
    st = SentenceTransformer(resolve_model_path(model))
    # Dataset(table, fingerprint=...) rather than from_dict: some datasets/pyarrow pairs cannot hash a new table
    ds = Dataset(
        pa.table({"anchor": anchors, "positive": positives, "negative": negatives}), fingerprint="scifact-triplets"
    )
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "trainer"),
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        learning_rate=lr,
        warmup_steps=warmup_steps,
        weight_decay=0.01,
        max_grad_norm=1.0,
        lr_scheduler_type="linear",
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        seed=seed,
        save_strategy="no",
        logging_steps=10,
        report_to="none",
    )
    trainer = SentenceTransformerTrainer(
        model=st, args=args, train_dataset=ds, loss=losses.MultipleNegativesRankingLoss(st)
    )
    t1 = time.perf_counter()
    result = trainer.train()
    train_s = time.perf_counter() - t1
    st.save(str(out / "model"))
    return {
        "steps": int(result.global_step),
        "train_s": round(train_s, 2),
        "wall_s": round(time.perf_counter() - t0, 1),
        "rows": len(anchors),
        "model": str(out / "model"),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--model", default=None, help="base model folder (default: packaged all-MiniLM-L6-v2)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "train_scifact"))
    ap.add_argument("--mined", default=None, help="a mined train.jsonl (default: mine with the base model)")
    ap.add_argument("--runs", default="zero_shot,infonce,mw,infonce_mw,parity")
    ap.add_argument("--device", default=None)
    ap.add_argument("--set", action="append", default=[], help="extra train overrides key=value (all unirank runs)")
    ap.add_argument("--limit-queries", type=int, default=None, help="smoke tests: evaluate fewer queries")
    ap.add_argument("--max-docs", type=int, default=None, help="smoke tests: search fewer documents")
    ap.add_argument("--report", default=None, help="print the RESULTS.md section of a results.json")
    ap.add_argument("--record", action="store_true", help="with --report: append it to bench/RESULTS.md")
    args = ap.parse_args(argv)
    if args.report:
        text = report(json.loads(Path(args.report).read_text()))
        print(text)
        if args.record:
            with open(ROOT / "bench" / "RESULTS.md", "a", encoding="utf-8") as f:
                f.write(text)
        return {}

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = args.runs.split(",")
    results: dict = {
        "date": dt.date.today().isoformat(),
        "machine": _machine(),
        "argv": argv if argv is not None else sys.argv[1:],
        "runs": {},
    }
    save = lambda: (out / "results.json").write_text(json.dumps(results, indent=2))  # noqa: E731
    small = {"limit_queries": args.limit_queries, "max_docs": args.max_docs}
    common = [
        f"data.train={args.data}",
        f"test.data={args.data}",
        *([f"model.name={args.model}"] if args.model else []),
        *([f"device={args.device}"] if args.device else []),
        *([f"test.limit_queries={args.limit_queries}"] if args.limit_queries else []),
        *([f"test.max_docs={args.max_docs}"] if args.max_docs else []),
        *args.set,
    ]
    if "zero_shot" in runs:
        results["runs"]["zero_shot"] = {
            "test": evaluate(args.model, args.data, args.device, out=str(out / "zero_shot"), **small)
        }
        print("zero-shot", results["runs"]["zero_shot"], flush=True)
        save()
    mined = args.mined or mine(args.model, args.data, out / "mined")
    results["mined"] = mined
    for name in ("infonce", "mw", "infonce_mw"):
        if name in runs:
            cfg = ROOT / "bench" / "configs" / f"scifact_{name}.yaml"
            results["runs"][name] = unirank_run(cfg, [*common, f"data.mined={mined}", f"out={out / name}"])
            print(name, results["runs"][name]["test"], flush=True)
            save()
    if "parity" in runs:
        from unirank.config import load_config
        from unirank.train import TrainConfig, normalize_overrides

        triplets = out / "triplets.jsonl"
        n_rows = write_triplets(mined, triplets)
        cfg_path = ROOT / "bench" / "configs" / "scifact_infonce.yaml"
        over = [*common, f"data.mined={triplets}", "data.negative_choice=first", f"out={out / 'parity_unirank'}"]
        ours = unirank_run(cfg_path, over)
        cfg = load_config(TrainConfig, cfg_path, normalize_overrides(over))
        warmup = math.ceil(cfg.warmup_ratio * ours["steps"])
        st = st_run(args.model, triplets, out / "parity_st", cfg.batch_size, cfg.epochs, cfg.lr, warmup, cfg.seed)
        st["test"] = evaluate(st["model"], args.data, args.device, out=str(out / "parity_st" / "test"), **small)
        results["runs"]["parity"] = {
            "rows": n_rows,
            "warmup_steps": warmup,
            "unirank": ours,
            "sentence_transformers": st,
        }
        print("parity", json.dumps(results["runs"]["parity"], indent=1), flush=True)
        save()
    # paired tests over the test queries between the runs that have a run folder (this session's and earlier ones')
    from _compare import compare_runs

    measures = ["ndcg@10", "recall@100", "mrr@10"]
    results["comparison"] = compare_runs(
        {"zero_shot": out / "zero_shot", **{n: out / n / "test" for n in ("infonce", "mw", "infonce_mw")}},
        out / "compare",
        qrels=args.data,
        measures=measures,
    )
    results["parity_comparison"] = compare_runs(
        {"sentence_transformers": out / "parity_st" / "test", "unirank": out / "parity_unirank" / "test"},
        out / "compare_parity",
        qrels=args.data,
        measures=measures,
    )
    save()
    return results


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.4f}" if isinstance(x, float) else str(x)


def report(res: dict) -> str:
    runs = res["runs"]
    m = res["machine"]
    lines = [
        "",
        f"## Training on SciFact: unirank losses vs zero-shot vs sentence-transformers ({res['date']})",
        "",
        f"Command: `python bench/train_scifact.py {' '.join(res['argv'])}`",
        f"Machine: {m.get('gpu', 'CPU')}, {m['cpus']} CPUs, {m['platform']}, Python {m['python']}, torch {m['torch']}",
        "",
        "| run | steps | nDCG@10 | Recall@100 | MRR@10 | AUC (global) | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    labels = {
        "zero_shot": "zero-shot all-MiniLM-L6-v2",
        "infonce": "unirank infonce",
        "mw": "unirank mw",
        "infonce_mw": "unirank infonce + 0.5 mw",
    }
    for key, label in labels.items():
        r = runs.get(key)
        if not r:
            continue
        t = r.get("test") or {}
        lines.append(
            f"| {label} | {r.get('steps', 0)} | {_fmt(t.get('ndcg@10'))} | {_fmt(t.get('recall@100'))} | "
            f"{_fmt(t.get('mrr@10'))} "
            f"| {_fmt(t.get('auc_global'))} | {_fmt(r.get('train_s'))} |"
        )
    p = runs.get("parity")
    if p:
        u, s = p["unirank"], p["sentence_transformers"]
        lines += [
            "",
            f"Parity: the same {p['rows']} triplets (query, positive, first mined negative), batch 32, no-duplicates "
            "batches, "
            f"lr 2e-5 linear, warmup {p['warmup_steps']} steps, weight decay 0.01, clip 1.0, seed 42:",
            "",
            "| trainer | steps | nDCG@10 | Recall@100 | train s | wall s (load + train) |",
            "|---|---|---|---|---|---|",
            f"| unirank infonce | {u['steps']} | {_fmt(u['test']['ndcg@10'])} | {_fmt(u['test']['recall@100'])} | "
            f"{u['train_s']} | {u['wall_s']} |",
            f"| sentence-transformers MNRL | {s['steps']} | {_fmt(s['test']['ndcg@10'])} | "
            f"{_fmt(s['test']['recall@100'])} | {s['train_s']} | {s['wall_s']} |",
            f"| ratio unirank / ST | | {u['test']['ndcg@10'] / s['test']['ndcg@10']:.3f} | | "
            f"{u['train_s'] / s['train_s']:.2f} | |",
        ]
    from _compare import markdown_block

    lines += markdown_block(res.get("comparison"), "Significance, all pairs")
    lines += markdown_block(res.get("parity_comparison"), "Significance, unirank vs sentence-transformers")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
