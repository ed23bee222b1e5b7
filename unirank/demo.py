"""``unirank demo``: BM25 vs zero-shot all-MiniLM-L6-v2 on the embedded stdlib-codesearch set."""

from __future__ import annotations

import time
from pathlib import Path

from . import io as uio
from .config import from_dict, to_dict
from .eval.config import EvalConfig
from .eval.evaluate import run_eval
from .eval.report import comparison_markdown

MEASURES = ["ndcg@10", "mrr@10", "recall@10", "recall@100", "map@100", "auc"]


def run_demo(
    out: Path,
    limit_queries: int = 300,
    max_docs: int = 3000,
    finetune_steps: int | None = None,
    finetune_minutes: float | None = None,
) -> dict[str, dict[str, float]]:
    """Build/load the data set, evaluate BM25 and the dense model, fine-tune briefly, write reports under ``out``.

    Fine-tuning runs ``finetune_steps`` steps (default
    :data:`~unirank.training.demo.DEMO_STEPS`, reproducible), or as many as fit
    ``finetune_minutes``; either one at 0 skips it. Giving both is an error.
    """
    from .data.datasets import load_dataset
    from .errors import ConfigError
    from .training.demo import DEMO_STEPS

    for flag, value in (("--limit-queries", limit_queries), ("--max-docs", max_docs)):
        if value < 1:
            raise ConfigError(f"demo: {flag} must be >= 1, got {value}")
    if finetune_steps is not None and finetune_minutes is not None:
        raise ConfigError("demo: give --finetune-steps or --finetune-minutes, not both")
    if finetune_steps is not None and finetune_steps < 0:
        raise ConfigError(f"demo: --finetune-steps must be >= 0 (0 skips fine-tuning), got {finetune_steps}")
    if finetune_minutes is not None and not finetune_minutes >= 0:
        raise ConfigError(f"demo: --finetune-minutes must be >= 0 (0 skips fine-tuning), got {finetune_minutes}")
    from .config import check_out_dir

    check_out_dir(out, key="demo: --out", inside=True)  # a file there was a bare "File exists"
    if finetune_steps is None and finetune_minutes is None:
        finetune_steps = DEMO_STEPS
    finetune = bool(finetune_steps) if finetune_minutes is None else finetune_minutes > 0

    t0 = time.perf_counter()
    print("loading stdlib-codesearch (built from this Python's standard library on first use) ...", flush=True)
    ds = load_dataset("stdlib-codesearch", split="test")
    rows: dict[str, dict[str, float]] = {}
    for name in ("bm25", "dense"):
        cfg = from_dict(
            EvalConfig,
            {
                "data": "stdlib-codesearch",
                "split": "test",
                "retriever": {"name": name},
                "limit_queries": limit_queries,
                "max_docs": max_docs,
                "measures": MEASURES,
                "out": str(out / name),
            },
        )
        t = time.perf_counter()
        res = run_eval(cfg, dataset=ds)
        rows[name] = {**res.metrics, "seconds": time.perf_counter() - t}
    if finetune:
        from .training.demo import finetune_demo

        t = time.perf_counter()
        ft = finetune_demo(
            out / "finetune",
            steps=finetune_steps,
            minutes_budget=finetune_minutes,
            limit_queries=limit_queries,
            max_docs=max_docs,
            zero_shot={k: v for k, v in rows["dense"].items() if k != "seconds"},
        )
        rows[f"dense fine-tuned ({ft['steps']} steps)"] = {**ft["fine_tuned"], "seconds": time.perf_counter() - t}
    table = comparison_markdown(rows, MEASURES + ["auc_global", "seconds"])
    text = (
        f"# unirank demo: stdlib-codesearch test ({limit_queries} queries, {max_docs} documents)\n\n{table}\n\n"
        f"Reports: {out}/bm25/report.html, {out}/dense/report.html, {out}/finetune/fine_tuned/report.html. Total "
        f"{time.perf_counter() - t0:.0f} s.\n"
    )
    uio.write_text(out / "summary.md", text)
    uio.write_json(out / "summary.json", {"rows": rows, "config": to_dict(cfg)})
    print(text)
    return rows
