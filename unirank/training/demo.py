"""The fine-tuning step of ``unirank demo``: a short training run on stdlib-codesearch train.

:func:`finetune_demo` evaluates zero-shot all-MiniLM-L6-v2 on a test subset (the same
subset as the rest of the demo), trains a fixed number of steps (in-batch negatives,
InfoNCE, tokens cut to 128 during training, seed 42), evaluates again and writes
``summary.md`` / ``summary.json`` with the gain. A fixed step count makes the demo's numbers
the same on every run and every machine that computes alike; ``minutes_budget`` instead
sizes the run to a measured step time (faster machines train more steps, so the numbers
then vary from run to run).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from .. import io as uio
from ..config import from_dict, to_dict

__all__ = ["finetune_demo", "DEMO_STEPS", "DEMO_TRAIN"]

MEASURES = ["ndcg@10", "mrr@10", "recall@10", "recall@100", "auc"]

#: training steps of the demo by default (160-281 s of training on two shared CPU cores,
#: bench/RESULTS.md "unirank demo twice")
DEMO_STEPS = 24

#: the demo's training settings (``max_steps`` is the step count, or set from a time budget)
DEMO_TRAIN: dict[str, Any] = {
    "model": {"kind": "bi"},
    "data": {"train": "stdlib-codesearch", "split": "train", "negatives": 0},
    "losses": {"infonce": 1.0},
    "batching": {"name": "no_duplicates"},
    "batch_size": 32,
    "lr": 1e-4,
    "warmup_ratio": 0.1,
    "train_max_length": 128,
    "dev": {"split": None},
    "export": "last",
    "log_every": 5,
}


def _eval(model: Any, ds: Any, limit_queries: int, max_docs: int, out: Path | None) -> dict[str, float]:
    from ..eval.config import EvalConfig
    from ..eval.evaluate import run_eval
    from ..index.config import RetrieverConfig
    from ..index.retrievers import DenseRetriever

    cfg = EvalConfig(
        data="stdlib-codesearch",
        split="test",
        retriever=RetrieverConfig(name="dense"),
        measures=list(MEASURES),
        limit_queries=limit_queries,
        max_docs=max_docs,
        out=str(out) if out else None,
    )
    return run_eval(cfg, dataset=ds, retriever=DenseRetriever(model=model, show_progress=False), quiet=True).metrics


def finetune_demo(
    out_dir: str | Path,
    steps: int | None = DEMO_STEPS,
    minutes_budget: float | None = None,
    limit_queries: int = 300,
    max_docs: int = 3000,
    zero_shot: dict[str, float] | None = None,
    model_name: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fine-tune briefly on stdlib-codesearch train and show the gain on the test subset.

    Args:
        out_dir: output folder (``run/`` holds the training run, ``fine_tuned/`` the report).
        steps: training steps of ``batch_size`` queries (reproducible); ignored when
            ``minutes_budget`` is given.
        minutes_budget: wall-clock budget for the whole step (evaluations included); the
            number of training steps is then chosen from a measured step time (at least 5).
        limit_queries, max_docs: the test subset (as in ``unirank demo``).
        zero_shot: metrics of the base model on the same subset if already computed (skips
            that evaluation).
        model_name: base model (default: packaged all-MiniLM-L6-v2).
        log: progress lines (default: print).

    Returns:
        ``{"zero_shot": metrics, "fine_tuned": metrics, "gain": {metric: delta}, "steps": n,
        "train_s": s, "total_s": s, "out": folder}``.
    """
    from ..data.datasets import load_dataset
    from ..models.bi import BiEncoder
    from ..train import TrainConfig, train

    say = log or (lambda m: print(m, flush=True))
    t0 = time.perf_counter()
    out = Path(out_dir)
    ds = load_dataset("stdlib-codesearch", split="test")
    model = BiEncoder.from_pretrained(model_name)
    if zero_shot is None:
        say("fine-tune demo: zero-shot evaluation ...")
        zero_shot = _eval(model, ds, limit_queries, max_docs, None)
    t_eval = time.perf_counter() - t0

    cfg = from_dict(TrainConfig, {**DEMO_TRAIN, "model": {"kind": "bi", "name": model_name}, "out": str(out / "run")})
    if minutes_budget is not None:
        steps = _steps_for_budget(model, cfg, minutes_budget, time.perf_counter() - t0, t_eval)
    if steps is None or steps < 1:
        raise ValueError(f"finetune_demo: steps must be >= 1 (or give minutes_budget), got {steps!r}")
    cfg.max_steps = steps
    say(f"fine-tune demo: {steps} steps of {cfg.batch_size} queries on stdlib-codesearch train ...")

    import shutil

    shutil.rmtree(cfg.out, ignore_errors=True)
    if minutes_budget is not None:  # a fresh copy: the timing steps changed no weights, but be explicit
        model = BiEncoder.from_pretrained(model_name)
    summary = train(cfg, model=model, progress=None, log=lambda m: None)
    fine = _eval(model, ds, limit_queries, max_docs, out / "fine_tuned")
    gain = {k: fine[k] - zero_shot[k] for k in fine if k in zero_shot}
    result = {
        "zero_shot": zero_shot,
        "fine_tuned": fine,
        "gain": gain,
        "steps": summary["steps"],
        "train_s": summary["train_s"],
        "total_s": round(time.perf_counter() - t0, 1),
        "out": str(out),
        "config": to_dict(cfg),
    }
    rows_md = ["| | " + " | ".join(MEASURES[:-1] + ["auc_global"]) + " |", "|---|" + "---|" * len(MEASURES)]
    for name, m in (("zero-shot", zero_shot), (f"fine-tuned ({summary['steps']} steps)", fine)):
        rows_md.append(
            f"| {name} | " + " | ".join(f"{m.get(k, float('nan')):.4f}" for k in MEASURES[:-1] + ["auc_global"]) + " |"
        )
    base = model_name or "all-MiniLM-L6-v2"
    text = (
        f"# Fine-tuning {base} on stdlib-codesearch train ({summary['steps']} steps, {summary['train_s']:.0f} s of "
        "training)\n\n"
        + "\n".join(rows_md)
        + f"\n\nnDCG@10 gain: {gain.get('ndcg@10', 0.0):+.4f}. Test subset: {limit_queries} queries, "
        f"{max_docs} documents. Model: {out / 'run' / 'model'}. Total {result['total_s']:.0f} s.\n"
    )
    uio.write_text(out / "summary.md", text)
    uio.write_json(out / "summary.json", result)
    say(text)
    return result


def _steps_for_budget(model: Any, cfg: Any, minutes_budget: float, spent_s: float, t_eval: float) -> int:
    """How many training steps fit ``minutes_budget`` (one evaluation still to come), from the
    time of one training step measured after a warm-up step (at least 5, at most one epoch)."""
    from ..data.datasets import load_dataset
    from ..train import batch_backward
    from ..training.data import epoch_rows, examples_from_dataset

    t0 = time.perf_counter()
    examples, _ = examples_from_dataset(load_dataset("stdlib-codesearch", split="train"))
    rows = epoch_rows(examples, 0, cfg.seed, negatives=0)[: cfg.batch_size]
    model.train()
    old = model.max_length
    model.max_length = cfg.train_max_length
    times = []
    for _ in range(2):
        t = time.perf_counter()
        batch_backward(model, rows, cfg, 1.0)
        times.append(time.perf_counter() - t)
    model.max_length = old
    model.zero_grad(set_to_none=True)
    step_s = times[-1] * 1.2  # optimizer step, logging
    spent_s += time.perf_counter() - t0
    train_budget = minutes_budget * 60 - spent_s - 1.2 * max(t_eval, 1.0) - 10
    return int(max(5, min(len(examples) // cfg.batch_size, train_budget // step_s)))
