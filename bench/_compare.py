"""What the bench scripts that compare systems share: ``unirank compare`` on the run folders
they wrote, so every table they record says which differences are significant.

``compare_runs`` runs :func:`unirank.eval.compare.run_compare` (what ``unirank compare``
runs) on the folders that exist and returns what goes into ``results.json`` and
``bench/RESULTS.md``: the equivalent command line, the markdown (means with significance
letters, the pairs table with p-values, CIs and win/tie/loss) and the output folder
(``report.html`` with the per-query plots).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Mapping, Sequence


def run_folder(path: str | Path) -> bool:
    """Whether ``path`` is a run folder ``unirank compare`` reads (run.trec or scores.jsonl)."""
    p = Path(path)
    return (p / "run.trec").is_file() or (p / "scores.jsonl").is_file()


def compare_runs(
    runs: Mapping[str, str | Path],
    out: str | Path,
    qrels: str | None = None,
    measures: Sequence[str] | None = None,
    all_pairs: bool = True,
    **settings: Any,
) -> dict[str, Any] | None:
    """Compare the run folders of ``runs`` (name -> folder) that exist; ``None`` when fewer than two do.

    The first name is the baseline; ``all_pairs`` (default) tests every pair. ``settings``
    are further :class:`~unirank.eval.compare.CompareConfig` fields (``permutations``, ``seed``, ...).

    Returns:
        ``{"command", "markdown", "out", "significant": [[A, B, measure, diff, adjusted p], ...]}``.
    """
    from unirank.eval.compare import CompareConfig, cli_args, run_compare
    from unirank.eval.compare_report import comparison_markdown

    found = {name: str(path) for name, path in runs.items() if run_folder(path)}
    missing = [name for name in runs if name not in found]
    if missing:
        print(f"compare: no run folder for {', '.join(missing)}; comparing the others", flush=True)
    if len(found) < 2:
        return None
    cfg = CompareConfig(
        runs=list(found.values()),
        names=list(found),
        qrels=qrels,
        measures=list(measures) if measures else None,
        all_pairs=all_pairs,
        out=str(out),
        **settings,
    )
    cmp = run_compare(cfg, quiet=True)
    return {
        "command": shlex.join(cli_args(cfg)),
        "markdown": comparison_markdown(cmp),
        "out": str(out),
        "significant": [
            [r.a, r.b, r.measure, round(r.diff, 6), r.p_t_adj if cfg.test == "t" else r.p_fisher_adj]
            for r in cmp.pairs
            if r.significant
        ],
    }


def markdown_block(result: dict[str, Any] | None, title: str = "Significance") -> list[str]:
    """Lines for RESULTS.md: the command, then the comparison's markdown (nothing if ``None``)."""
    if not result:
        return []
    return [
        "",
        f"**{title}** (`{result['command']}`; report: `{result['out']}/report.html`):",
        "",
        result["markdown"].rstrip(),
    ]
