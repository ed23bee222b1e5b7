"""Reports people can read: a terminal table, markdown, and a self-contained HTML page.

The HTML embeds its plots as PNG (matplotlib, imported lazily): metrics table, ROC curve
of pooled scores, histogram of positive vs negative scores, and per-query nDCG
distribution. The data for the plots comes in as plain arrays and dicts.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Mapping, Sequence

import numpy as np

from ..types import Qrels, Run


def pooled_scores(qrels: Qrels, run: Run) -> tuple[np.ndarray, np.ndarray]:
    """Scores of retrieved relevant (grade >= 1) and retrieved non-relevant docs, pooled.

    Unjudged retrieved documents count as non-relevant.

    Example:
        >>> pos, neg = pooled_scores({"q": {"a": 1, "b": 0}}, {"q": {"a": 0.9, "b": 0.5, "c": 0.1}})
        >>> pos.tolist(), sorted(neg.tolist())
        ([0.9], [0.1, 0.5])
    """
    pos, neg = [], []
    for qid, docs in run.items():
        rel = qrels.get(qid)
        if rel is None:
            continue
        for d, s in docs.items():
            (pos if rel.get(d, 0) >= 1 else neg).append(s)
    return np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)


def roc_points(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold (ties move together).

    Example:
        >>> fpr, tpr = roc_points(np.array([3., 1.]), np.array([2., 0.]))
        >>> fpr.tolist(), tpr.tolist()
        ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    last_of_tie = np.r_[np.diff(scores) != 0, True]
    tp = np.cumsum(labels)[last_of_tie]
    fp = np.cumsum(1 - labels)[last_of_tie]
    tpr = np.r_[0.0, tp / max(len(pos), 1)]
    fpr = np.r_[0.0, fp / max(len(neg), 1)]
    return fpr, tpr


def metrics_table(metrics: Mapping[str, float], title: str = "") -> str:
    """Render metrics with rich to a string (what the CLI prints)."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title or None)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in metrics.items():
        t.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    buf = io.StringIO()
    Console(file=buf, width=100, force_terminal=False).print(t)
    return buf.getvalue()


def comparison_markdown(rows: Mapping[str, Mapping[str, float]], measures: Sequence[str]) -> str:
    """A markdown table, one row per system.

    Example:
        >>> print(comparison_markdown({"bm25": {"ndcg@10": 0.5}}, ["ndcg@10"]))
        | system | ndcg@10 |
        |---|---|
        | bm25 | 0.5000 |
    """
    lines = ["| system | " + " | ".join(measures) + " |", "|---|" + "---|" * len(measures)]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.4f}" if k in m else "-" for k in measures) + " |")
    return "\n".join(lines)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _plots(qrels: Qrels, run: Run, per_query_ndcg: Mapping[str, float] | None) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out = []
    pos, neg = pooled_scores(qrels, run)
    if len(pos) and len(neg):
        fpr, tpr = roc_points(pos, neg)
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.plot(fpr, tpr, lw=1.5)
        ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
        auc = float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else float(np.trapz(tpr, fpr))
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC of pooled scores (AUC {auc:.3f})")
        out.append(("ROC curve (all queries' retrieved docs pooled)", _png(fig)))
        fig, ax = plt.subplots(figsize=(6, 3.5))
        bins = np.histogram_bin_edges(np.concatenate([pos, neg]), bins=40)
        ax.hist(neg, bins=bins, alpha=0.6, density=True, label=f"non-relevant ({len(neg)})")
        ax.hist(pos, bins=bins, alpha=0.6, density=True, label=f"relevant ({len(pos)})")
        ax.set(xlabel="score", ylabel="density", title="Scores of relevant vs non-relevant retrieved docs")
        ax.legend()
        out.append(("Score histogram", _png(fig)))
    if per_query_ndcg:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.hist(list(per_query_ndcg.values()), bins=20, range=(0, 1))
        ax.set(xlabel="nDCG@10", ylabel="queries", title="Per-query nDCG@10")
        out.append(("Per-query nDCG@10 distribution", _png(fig)))
    return out


def html_report(
    title: str,
    metrics: Mapping[str, float],
    qrels: Qrels,
    run: Run,
    per_query_ndcg: Mapping[str, float] | None = None,
    info: Mapping[str, object] | None = None,
    extra_html: str = "",
) -> str:
    """A self-contained HTML page: metrics table, run info, the plots (and ``extra_html``,
    e.g. SPLADE's explain view)."""
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in metrics.items())
    info_rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in (info or {}).items()
    )
    imgs = "".join(
        f"<h2>{html.escape(t)}</h2><img alt='{html.escape(t)}' src='data:image/png;base64,{b}'/>"
        for t, b in _plots(qrels, run, per_query_ndcg)
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}\
td{{padding:2px 12px;border-bottom:1px solid #ddd}}</style>
</head><body><h1>{html.escape(title)}</h1><h2>Metrics</h2><table>{rows}</table>
<h2>Run</h2><table>{info_rows}</table>{imgs}{extra_html}</body></html>
"""
