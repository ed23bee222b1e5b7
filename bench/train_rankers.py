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

Rows (``--rows``, issue 17): a row is a model kind plus what it changes in the suite's
shared config (:data:`ROWS`). ``bi``, ``poly``, ``cross``, ``uni`` are the kinds as above
(``--kinds`` runs exactly those); ``uni_recipe`` is the Uni-Encoder as its paper trains it
(in-batch candidates in a seeded order, MLM auxiliary loss weight 1 at 15%, speaker tokens
``[unused1]``/``[unused2]``, Noam schedule with AdamW betas 0.9/0.98); ``uni_recipe-no_X``
switches one of the four off (``no_inbatch``, ``no_mlm``, ``no_speakers``, ``no_noam``);
``uni_recipe-mlm_0.1`` has the MLM loss at weight 0.1; ``uni_recipe-head_warmup`` fits the new MLM head
alone for 150 batches first (``mlm.head_warmup_steps``; extra forward passes beyond the budget);
``poly_inbatch`` is ParlAI's recipe: the poly-encoder on in-batch candidates. ``uni_cls``
scores each candidate from its own ``[CLS]`` (``candidate_pooling: cls``) instead of the mean
of its tokens, ``uni_strict`` uses the ``arrow_strict`` mask and ``uni_strict_cls`` both, ``uni_mlm_0.1`` adds
the MLM loss at weight 0.1 and ``uni_mlm_0.1-head_warmup`` fits its head alone first (the SciFact
reranker hypotheses). Every row
keeps the suite's lr, batch size (= in-batch candidate count), steps, token limits and
test set.

Budgets (``--budget``): ``full`` (the suites as above, GPU-sized) or ``cpu`` (:data:`BUDGETS`:
what two shared CPU cores allow - 128-token contexts / 32-token replies, 8 contexts per
batch, 150 steps, lr 5e-5, DailyDialog evaluated on its first 500 test contexts, MuTual on all 886
dev contexts; SciFact: 256-token documents kept, 1 positive + 3 mined negatives per query,
8 queries per batch, 150 steps at lr 1e-4, the BM25 top 20 of the first 100 test queries
reranked; the same for every row). ``--skip-done`` keeps the rows already in ``results.json``, so a killed chain resumes
where it stopped (a row cut off mid-way restarts from its last checkpoint).

Usage:
    python bench/train_rankers.py --suite mutual --model DIR [--kinds bi,poly,cross,uni | --rows ROW,...] [--out DIR]
        [--budget full|cpu] [--device cuda] [--max-steps N] [--set key=value ...] [--skip-done]
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
            "data": {
                "task": "response",
                "train": "mutual",
                "split": "train",
                "negatives": 3,
                "negative_choice": "first",
            },
            "test": {"data": "mutual", "split": "dev"},
            "epochs": 3,
            "batch_size": 16,
        },
        "lengths": {"context": 256, "candidate": 64},
        "metrics": ["R4@1", "R4@2", "mrr"],
    },
    "dailydialog": {
        "config": {
            "data": {
                "task": "response",
                "train": "dailydialog",
                "split": "train",
                "negatives": 9,
                "negative_choice": "first",
                "options": {"n": 10, "seed": 0},
            },
            "test": {"data": "dailydialog", "split": "test"},
            "epochs": 1,
            "batch_size": 32,
            "max_steps": 600,
        },
        "lengths": {"context": 256, "candidate": 64},
        "metrics": ["R10@1", "R10@2", "R10@5", "mrr"],
    },
    "scifact": {
        "config": {
            "data": {"train": "scifact", "split": "train", "negatives": 7, "negative_choice": "random"},
            "test": {
                "data": "scifact",
                "split": "test",
                "rerank_depth": 100,
                "measures": ["ndcg@10", "recall@100", "mrr@10"],
            },
            "epochs": 3,
            "batch_size": 16,
        },
        "lengths": {"context": 64, "candidate": 256},
        "metrics": ["ndcg@10", "mrr@10"],
    },
}
COMMON = {
    "in_batch_negatives": False,
    "losses": {"ce": 1.0},
    "batching": {"name": "random"},
    "lr": 3.0e-5,
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "max_grad_norm": 1.0,
    "seed": 42,
    "dev": {"split": None},
    "export": "last",
    "log_every": 20,
}


#: the in-batch candidates of the Uni-Encoder paper / ParlAI: every context against the gold
#: replies of its batch (no own negatives), in a seeded order; batches without repeated texts,
#: so that a reply such as "Thank you ." is never the wrong answer of a context it answers
IN_BATCH = {
    "in_batch_negatives": True,
    "shuffle_pool": True,
    "data": {"negatives": 0},
    "batching": {"name": "no_duplicates"},
}
MLM = {"mlm": {"weight": 1.0, "prob": 0.15}}
NOAM = {"schedule": "noam", "adam_betas": [0.9, 0.98]}
SPEAKERS = {"speaker_tokens": ["[unused1]", "[unused2]"]}


def _merge(*parts: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts merged left to right (later values win).

    Example:
        >>> _merge({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}})
        {'a': {'x': 1, 'y': 3}, 'b': 1}
    """
    out: dict[str, Any] = {}
    for part in parts:
        for k, v in part.items():
            out[k] = (
                _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else json.loads(json.dumps(v))
            )
    return out


#: row name -> (model kind, extra model settings, config changes); what each row changes in the suite's config
ROWS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "bi": ("bi", {}, {}),
    "poly": ("poly", {}, {}),
    "cross": ("cross", {}, {}),
    "uni": ("uni", {}, {}),
    "poly_inbatch": ("poly", {}, IN_BATCH),
    "uni_recipe": ("uni", SPEAKERS, _merge(IN_BATCH, MLM, NOAM)),
    "uni_recipe-no_inbatch": ("uni", SPEAKERS, _merge(MLM, NOAM)),
    "uni_recipe-no_mlm": ("uni", SPEAKERS, _merge(IN_BATCH, NOAM)),
    "uni_recipe-no_speakers": ("uni", {}, _merge(IN_BATCH, MLM, NOAM)),
    "uni_recipe-no_noam": ("uni", SPEAKERS, _merge(IN_BATCH, MLM)),
    # the MLM loss at a tenth of the paper's weight: on the CPU budget a freshly initialised
    # MLM head at weight 1 outweighs the ranking loss (bench/RESULTS.md, issue 17)
    "uni_recipe-mlm_0.1": ("uni", SPEAKERS, _merge(IN_BATCH, {"mlm": {"weight": 0.1, "prob": 0.15}}, NOAM)),
    # the recipe with its new MLM head first fitted alone for 150 batches (encoder frozen;
    # bench/mlm_head_probe.py: the MLM/ranking gradient ratio falls from 16.5x to 3.0x). Those
    # are extra forward passes beyond the equal training budget of the other rows.
    "uni_recipe-head_warmup": ("uni", SPEAKERS, _merge(IN_BATCH, MLM, {"mlm": {"head_warmup_steps": 150}}, NOAM)),
    # the SciFact reranker hypotheses (issue 17): each candidate scored from its own [CLS]
    # instead of the mean of its (up to 256) tokens; and with arrow_strict as well
    "uni_cls": ("uni", {"candidate_pooling": "cls"}, {}),
    "uni_strict": ("uni", {"mask": "arrow_strict"}, {}),
    "uni_strict_cls": ("uni", {"mask": "arrow_strict", "candidate_pooling": "cls"}, {}),
    # the MLM regulariser hypothesis, at a tenth of the paper's weight (weight 1 from a new
    # head sank every dialogue row at the CPU budget)
    "uni_mlm_0.1": ("uni", {}, {"mlm": {"weight": 0.1, "prob": 0.15}}),
    # ... with the new head first fitted alone for 150 batches (as uni_recipe-head_warmup)
    "uni_mlm_0.1-head_warmup": ("uni", {}, {"mlm": {"weight": 0.1, "prob": 0.15, "head_warmup_steps": 150}}),
}

#: budget -> suite -> {lengths, config changes}; ``cpu`` is one equal reduced budget for every row
BUDGETS: dict[str, dict[str, dict[str, Any]]] = {
    "full": {},
    "cpu": {
        "mutual": {
            "lengths": {"context": 128, "candidate": 32},
            "config": {"epochs": 1, "max_steps": 150, "batch_size": 8, "lr": 5.0e-5, "threads": 2, "save_every": 50},
        },
        "dailydialog": {
            "lengths": {"context": 128, "candidate": 32},
            "config": {
                "epochs": 1,
                "max_steps": 150,
                "batch_size": 8,
                "lr": 5.0e-5,
                "threads": 2,
                "save_every": 50,
                "test": {"limit_queries": 500},
            },
        },
        # SciFact reranking on two CPU cores: documents keep their 256 tokens (the pooling
        # hypothesis is about long candidates), but 1 positive + 3 mined negatives per query,
        # 8 queries per batch, 150 steps (about 1.5 epochs of the 809 train queries) at lr 1e-4
        # (at 100 steps and 5e-5 the uni loss stayed at ln 4: nothing learnt) and the BM25 top
        # 20 of the first 100 test queries
        "scifact": {
            "config": {
                "epochs": 2,
                "max_steps": 150,
                "batch_size": 8,
                "lr": 1.0e-4,
                "threads": 2,
                "save_every": 50,
                "data": {"negatives": 3},
                "test": {"limit_queries": 100, "rerank_depth": 20},
            },
        },
    },
}


def row_config(suite: str, row: str, budget: str = "full") -> dict[str, Any]:
    """The config of one row of a suite (``model.name``, ``device`` and ``out`` are set by the caller).

    Example:
        >>> cfg = row_config("mutual", "uni_recipe", "cpu")
        >>> cfg["model"]["settings"]["speaker_tokens"], cfg["data"]["negatives"], cfg["batch_size"], cfg["schedule"]
        (['[unused1]', '[unused2]'], 0, 8, 'noam')
        >>> row_config("mutual", "uni_recipe-no_inbatch", "cpu")["in_batch_negatives"]
        False
    """
    if row not in ROWS:
        raise SystemExit(f"unknown row {row!r}; valid: {', '.join(ROWS)}")
    spec = SUITES[suite]
    plan = BUDGETS[budget].get(suite, {})
    kind, settings, changes = ROWS[row]
    cfg = _merge(COMMON, spec["config"], plan.get("config", {}), changes)
    cfg["model"] = {
        "kind": kind,
        "settings": {**model_settings(kind, plan.get("lengths", spec["lengths"])), **settings},
    }
    return cfg


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

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_suite(
    suite: str,
    kinds: list[str],
    model: str | None,
    out: Path,
    device: str | None,
    data_root: str | None,
    mined: str | None,
    overrides: list[str],
    max_steps: int | None,
    budget: str = "full",
    skip_done: bool = False,
) -> dict:
    from unirank.config import from_dict, to_dict
    from unirank.data.dialogue import default_data_root
    from unirank.train import TrainConfig, train

    spec = SUITES[suite]
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {"runs": {}}
    results.update(
        {
            "suite": suite,
            "machine": _machine(),
            "command": " ".join(sys.argv),
            "metrics": spec["metrics"],
            "budget": budget,
        }
    )
    for kind in kinds:  # a row name (a kind is a row)
        if skip_done and kind in results["runs"]:
            print(f"{kind}: done, skipped (--skip-done)", flush=True)
            continue
        cfg_dict = row_config(suite, kind, budget)
        cfg_dict["model"]["name"] = model
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
        summary = train(
            cfg, progress=False, resume=skip_done
        )  # --skip-done: a row cut off mid-way continues from its checkpoint
        logged = [json.loads(x) for x in (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()]
        losses = [r["loss"] for r in logged if "loss" in r]
        results["runs"][kind] = {
            "test": summary.get("test"),
            "loss_first_last": [losses[0], losses[-1]] if losses else None,
            "steps": summary["steps"],
            "train_s": summary["train_s"],
            "wall_s": round(time.perf_counter() - t, 1),
            "settings": cfg_dict["model"]["settings"],
            "kind": cfg_dict["model"]["kind"],
            "changes": ROWS[kind][2] if kind in ROWS else {},
            "mlm_first_last": [m[0], m[-1]] if (m := [r["mlm"] for r in logged if "mlm" in r]) else None,
            "config": {k: v for k, v in to_dict(cfg).items() if k not in ("model", "out")},
        }
        results["date"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        results_path.write_text(json.dumps(results, indent=1))
        print(json.dumps({kind: results["runs"][kind]["test"], "train_s": summary["train_s"]}), flush=True)
    # paired tests between the kinds over the same test contexts / queries
    # (each test run folder: scores.jsonl or run.trec)
    from _compare import compare_runs

    qrels = str(Path(data_root or default_data_root()) / "scifact") if suite == "scifact" else None
    results["comparison"] = compare_runs(
        {k: out / f"{suite}-{k}" / "test" for k in results["runs"]},
        out / "compare",
        qrels=qrels,
        measures=[spec["metrics"][0], "mrr"] if suite != "scifact" else spec["metrics"],
    )
    results_path.write_text(json.dumps(results, indent=1))
    return results


def _changes(r: dict) -> str:
    """What a row changes in the suite's config, in words, for the table."""
    c, said = r.get("changes") or {}, []
    if c.get("in_batch_negatives"):
        said.append("in-batch candidates")
    if c.get("mlm", {}).get("weight"):
        said.append(f"MLM x{c['mlm']['weight']:g}")
    if c.get("mlm", {}).get("head_warmup_steps"):
        said.append(f"MLM head fitted alone first ({c['mlm']['head_warmup_steps']} steps)")
    if r.get("settings", {}).get("speaker_tokens"):
        said.append("speaker tokens")
    if r.get("settings", {}).get("candidate_pooling") == "cls":
        said.append("candidate's own [CLS] pooled")
    if r.get("settings", {}).get("mask"):
        said.append(f"mask {r['settings']['mask']}")
    if c.get("schedule") == "noam":
        said.append(f"Noam, betas {tuple(c.get('adam_betas', ()))}")
    return ", ".join(said) or "-"


def report(results: dict) -> str:
    m = results["metrics"]
    plain = [results["runs"][k] for k in ("uni", "cross", "poly", "bi") if k in results["runs"]]  # no extra settings
    base = plain[0] if plain else next(iter(results["runs"].values()))
    first = base["config"]
    test = first.get("test") or {}
    lines = [
        f"Suite `{results['suite']}` ({results['date']}; {results['machine'].get('gpu', 'CPU')}, torch "
        f"{results['machine']['torch']})",
        f"Command: `{results['command']}`",
        f"Budget (all rows, `--budget {results.get('budget', 'full')}`): {first.get('epochs')} epoch(s), max_steps "
        f"{first.get('max_steps')},"
        f" batch {first['batch_size']} contexts, lr {first['lr']}, losses {first['losses']}, schedule "
        f"{first['schedule']} (warmup ratio"
        f" {first['warmup_ratio']}), token limits {base['settings']}; test {test.get('data')} {test.get('split')}"
        + (f", first {test['limit_queries']} contexts" if test.get("limit_queries") else "")
        + ". Rows without changes: each context's own candidate list, random batches.",
        "",
        "| row | kind | changes | " + " | ".join(m) + " | steps | train s | loss first -> last | MLM first -> last |",
        "|---" * (len(m) + 7) + "|",
    ]
    for name, r in results["runs"].items():
        vals = " | ".join(f"{r['test'][k]:.4f}" if r.get("test") and k in r["test"] else "-" for k in m)
        loss = "{:.3f} -> {:.3f}".format(*r["loss_first_last"]) if r.get("loss_first_last") else "-"
        mlm = "{:.3f} -> {:.3f}".format(*r["mlm_first_last"]) if r.get("mlm_first_last") else "-"
        lines.append(
            f"| {name} | {r.get('kind', name)} | {_changes(r)} | {vals} | {r['steps']} | {r['train_s']:.0f} | {loss} "
            f"| {mlm} |"
        )
    from _compare import markdown_block

    lines += markdown_block(results.get("comparison"), "Significance, all pairs of rows")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", choices=sorted(SUITES))
    ap.add_argument("--kinds", default="bi,poly,cross,uni")
    ap.add_argument("--rows", default=None, help=f"rows to run instead of --kinds (valid: {', '.join(ROWS)})")
    ap.add_argument("--budget", choices=sorted(BUDGETS), default="full")
    ap.add_argument(
        "--skip-done", action="store_true", help="keep the rows already in results.json; resume a cut-off row"
    )
    ap.add_argument("--model", default=None, help="backbone folder (default: packaged all-MiniLM-L6-v2)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "train_rankers"))
    ap.add_argument("--device", default=None)
    ap.add_argument(
        "--data-root", default=os.environ.get("UNIRANK_DATA"), help="folder holding scifact/ (scifact suite)"
    )
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
            from _record import append

            append("\n" + text + "\n")
        return
    if not a.suite:
        ap.error("--suite or --report is required")
    if a.suite == "scifact" and not a.mined:
        ap.error("--mined is required for the scifact suite (bench/train_scifact.py or unirank mine writes it)")
    out = Path(a.out) / a.suite
    out.mkdir(parents=True, exist_ok=True)
    rows = (a.rows or a.kinds).split(",")
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        ap.error(f"unknown row(s) {', '.join(unknown)}; valid: {', '.join(ROWS)}")
    if a.budget != "full" and a.suite not in BUDGETS[a.budget]:
        ap.error(f"budget {a.budget!r} has no plan for suite {a.suite!r}")
    res = run_suite(
        a.suite, rows, a.model, out, a.device, a.data_root, a.mined, a.set, a.max_steps, a.budget, a.skip_done
    )
    print(report(res))


if __name__ == "__main__":
    main()
