"""Fine-tune bi, poly, cross and uni from the same backbone with the same budget, then evaluate.

Suites (each one ``unirank.train.train`` per model kind, identical except ``model.kind``):

* ``mutual``: MuTual train (7,088 contexts, 4 candidates) -> R4@1, R4@2, MRR on MuTual dev
  (the test answers are not released, so dev is what every MuTual paper reports on).
* ``dailydialog``: the R10 task built from DailyDialog's own splits (true next turn + 9
  seeded distractors from the same split; test dialogues that also occur in train are
  dropped, see the manifest) -> R10@1/2/5, MRR on test.
* ``scifact``: SciFact train with the mined hard negatives (``--mined``, as in
  ``bench/train_scifact.py``) -> test nDCG@10 after reranking the BM25 top-100 (cross, uni;
  the loop's evaluator reranks the first stage for any non-bi model).

Every run: listwise cross-entropy over each context's own candidates (no in-batch
negatives, so every paradigm sees exactly the same candidates), AdamW, linear warmup 10%
then decay, the same steps / batch / lr / token limits for every kind, seed 42, fp32 unless
``--set dtype=bf16``. ``results.json`` is rewritten after each run, so a cut-off job keeps
what it finished. At the end ``unirank compare`` tests every pair of kinds on the same test
contexts (t-test + randomization test, Holm) into ``<out>/<suite>/compare``; the report marks
the significant differences.

Usage:
    python bench/train_rankers.py --suite mutual --model DIR [--kinds bi,poly,cross,uni] [--out DIR]
        [--device cuda] [--max-steps N] [--set key=value ...]
    python bench/train_rankers.py --report bench/out/train_rankers/results.json [--record]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: per suite: the shared config (model.kind is filled per run) and the metrics to report
SUITES: dict[str, dict[str, Any]] = {
    "mutual": {
        "config": {
            "data": {"task": "response", "train": "mutual", "split": "train", "negatives": 3, "negative_choice": "first"},
            "test": {"data": "mutual", "split": "dev"},
            "epochs": 3, "batch_size": 16,
        },
        "lengths": {"context": 256, "candidate": 64},
        "metrics": ["R4@1", "R4@2", "mrr"],
    },
    "dailydialog": {
        "config": {
            "data": {"task": "response", "train": "dailydialog", "split": "train", "negatives": 9, "negative_choice": "first",
                     "options": {"n": 10, "seed": 0}},
            "test": {"data": "dailydialog", "split": "test"},
            "epochs": 1, "batch_size": 32, "max_steps": 600,
        },
        "lengths": {"context": 256, "candidate": 64},
        "metrics": ["R10@1", "R10@2", "R10@5", "mrr"],
    },
    "scifact": {
        "config": {
            "data": {"train": "scifact", "split": "train", "negatives": 7, "negative_choice": "random"},
            "test": {"data": "scifact", "split": "test", "rerank_depth": 100, "measures": ["ndcg@10", "recall@100", "mrr@10"]},
            "epochs": 3, "batch_size": 16,
        },
        "lengths": {"context": 64, "candidate": 256},
        "metrics": ["ndcg@10", "mrr@10"],
    },
}
COMMON = {"in_batch_negatives": False, "losses": {"ce": 1.0}, "batching": {"name": "random"}, "lr": 3.0e-5,
          "warmup_ratio": 0.1, "weight_decay": 0.01, "max_grad_norm": 1.0, "seed": 42, "dev": {"split": None},
          "export": "last", "log_every": 20}


def model_settings(kind: str, lengths: dict[str, int]) -> dict[str, Any]:
    """Token limits per kind, chosen so every kind reads the same tokens of context and candidate."""
    c, r = lengths["context"], lengths["candidate"]
    if kind == "bi":  # one limit for both sides: the longer; the context keeps its most recent turns
        return {"max_length": max(c, r)}
    settings: dict[str, Any] = {"max_context_length": c, "max_candidate_length": r}
    if kind == "uni":
        settings["chunk_size"] = 16 if r > 128 else 32  # candidates per pass when a list is long (reranking 100 docs)
    return settings


def _machine() -> dict:
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(), "torch": torch.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_suite(suite: str, kinds: list[str], model: str | None, out: Path, device: str | None, data_root: str | None,
              mined: str | None, overrides: list[str], max_steps: int | None) -> dict:
    from unirank.config import from_dict, to_dict
    from unirank.data.dialogue import default_data_root
    from unirank.train import TrainConfig, train

    spec = SUITES[suite]
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {"runs": {}}
    results.update({"suite": suite, "machine": _machine(), "command": " ".join(sys.argv), "metrics": spec["metrics"]})
    for kind in kinds:
        cfg_dict = json.loads(json.dumps({**COMMON, **spec["config"]}))
        cfg_dict["model"] = {"kind": kind, "name": model, "settings": model_settings(kind, spec["lengths"])}
        cfg_dict["device"] = device
        cfg_dict["out"] = str(out / f"{suite}-{kind}")
        if max_steps:
            cfg_dict["max_steps"] = max_steps
        if suite == "scifact":
            base = str(Path(data_root or default_data_root()) / "scifact")
            cfg_dict["data"]["train"] = cfg_dict["test"]["data"] = base
            cfg_dict["data"]["mined"] = mined
        cfg = from_dict(TrainConfig, cfg_dict, overrides)
        t = time.perf_counter()
        summary = train(cfg, progress=False)
        logged = [json.loads(x) for x in (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()]
        losses = [r["loss"] for r in logged if "loss" in r]
        results["runs"][kind] = {"test": summary.get("test"), "loss_first_last": [losses[0], losses[-1]] if losses else None, "steps": summary["steps"], "train_s": summary["train_s"],
                                 "wall_s": round(time.perf_counter() - t, 1), "settings": cfg_dict["model"]["settings"],
                                 "config": {k: v for k, v in to_dict(cfg).items() if k not in ("model", "out")}}
        results["date"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        results_path.write_text(json.dumps(results, indent=1))
        print(json.dumps({kind: results["runs"][kind]["test"], "train_s": summary["train_s"]}), flush=True)
    # paired tests between the kinds over the same test contexts / queries (each test run folder: scores.jsonl or run.trec)
    from _compare import compare_runs

    qrels = str(Path(data_root or default_data_root()) / "scifact") if suite == "scifact" else None
    results["comparison"] = compare_runs({k: out / f"{suite}-{k}" / "test" for k in results["runs"]}, out / "compare", qrels=qrels,
                                         measures=spec["metrics"])
    results_path.write_text(json.dumps(results, indent=1))
    return results


def report(results: dict) -> str:
    m = results["metrics"]
    first = next(iter(results["runs"].values()))["config"]
    lines = [f"Suite `{results['suite']}` ({results['date']}; {results['machine'].get('gpu', 'CPU')}, torch {results['machine']['torch']})",
             f"Command: `{results['command']}`",
             f"Budget (all kinds): {first.get('epochs')} epoch(s), max_steps {first.get('max_steps')}, batch {first['batch_size']},"
             f" lr {first['lr']}, losses {first['losses']}, in-batch negatives {first['in_batch_negatives']}",
             "", "| kind | " + " | ".join(m) + " | steps | train s | token limits |", "|---" * (len(m) + 4) + "|"]
    for kind, r in results["runs"].items():
        vals = " | ".join(f"{r['test'][k]:.4f}" if r.get("test") and k in r["test"] else "-" for k in m)
        lines.append(f"| {kind} | {vals} | {r['steps']} | {r['train_s']:.0f} | {r['settings']} |")
    from _compare import markdown_block

    lines += markdown_block(results.get("comparison"), "Significance, all pairs of kinds")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", choices=sorted(SUITES))
    ap.add_argument("--kinds", default="bi,poly,cross,uni")
    ap.add_argument("--model", default=None, help="backbone folder (default: packaged all-MiniLM-L6-v2)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "train_rankers"))
    ap.add_argument("--device", default=None)
    ap.add_argument("--data-root", default=os.environ.get("UNIRANK_DATA"), help="folder holding scifact/ (scifact suite)")
    ap.add_argument("--mined", default=None, help="mined SciFact train.jsonl (scifact suite)")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--set", action="append", default=[], help="config override key=value (all runs)")
    ap.add_argument("--report", default=None, help="print the markdown of a results.json")
    ap.add_argument("--record", action="store_true", help="with --report: append it to bench/RESULTS.md")
    a = ap.parse_args()
    if a.report:
        text = report(json.loads(Path(a.report).read_text()))
        print(text)
        if a.record:
            with open(ROOT / "bench" / "RESULTS.md", "a", encoding="utf-8") as f:
                f.write("\n" + text + "\n")
        return
    if not a.suite:
        ap.error("--suite or --report is required")
    if a.suite == "scifact" and not a.mined:
        ap.error("--mined is required for the scifact suite (bench/train_scifact.py or unirank mine writes it)")
    out = Path(a.out) / a.suite
    out.mkdir(parents=True, exist_ok=True)
    res = run_suite(a.suite, a.kinds.split(","), a.model, out, a.device, a.data_root, a.mined, a.set, a.max_steps)
    print(report(res))


if __name__ == "__main__":
    main()
