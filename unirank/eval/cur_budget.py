"""``unirank eval --task budget``: every method at every cross-encoder budget, on one plot.

At a budget of B cross-encoder calls per query it compares

* the CUR methods (``retriever.cur.methods``: ``anncur``, ``adacur``) searching the CUR index
  ``retriever.cur.index``, and
* retrieve-and-rerank baselines (``retriever.cur.baselines``: any retriever name, e.g.
  ``bm25``, ``dense``): the first stage's top B reranked by the cross-encoder, its next
  documents kept below (as ``unirank eval --reranker`` does),

against the **exhaustive** cross-encoder ranking of the whole corpus: Top-k-Recall (the
fraction of the exhaustive top k that a method's top k holds, k = 1, 10, 100; the measure of
Yadav et al.) and the usual measures against the qrels (nDCG@10, Recall@100, ...).

The exhaustive scores (queries x documents) are a CUR index too - one whose anchor queries
are the split's queries - built resumably in ``retriever.cur.exhaustive`` (default
``OUT/exhaustive``) and reused. Since a cross-encoder's score of a pair is the same whenever
it is computed, every method's calls are read from that matrix
(:func:`unirank.index.cur.matrix_oracle`) instead of run again: the same search code as the
``cur`` retriever, with the model replaced by a lookup (a test checks that both agree).

Outputs in ``OUT``: ``budget.json`` (one row per method and budget), ``budget.md`` (the
tables), ``report.html`` (recall against cross-encoder calls, every method on each plot),
``config.json``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from ..types import RetrievalDataset, Run

__all__ = ["TOPK", "topk_recall", "rerank_hits", "budget_table", "check_budget_config", "run_budget_eval"]

#: the k of Top-k-Recall against the exhaustive cross-encoder
TOPK = (1, 10, 100)


def topk_recall(exact_order: np.ndarray, found: np.ndarray, k: int) -> float:
    """Mean over queries of |exact top k  &  found top k| / k (-1 entries of ``found`` miss).

    Example:
        >>> topk_recall(np.array([[3, 1, 2], [0, 1, 2]]), np.array([[1, 3, -1], [1, 5, 0]]), 2)  # 2/2 and 1/2
        0.75
    """
    e, f = np.asarray(exact_order)[:, :k], np.asarray(found)[:, :k]
    return (
        float(np.mean([len(set(a.tolist()) & set(b[b >= 0].tolist())) / len(a) for a, b in zip(e, f)]))
        if len(e)
        else 0.0
    )


def rerank_hits(first: np.ndarray, S: np.ndarray, budget: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Retrieve-and-rerank from a first stage's hits, with exact scores read from ``S``.

    Args:
        first: (Q, n) first-stage hits (index positions, best first; -1 = none).
        S: (Q, m) exact cross-encoder scores.
        budget: documents reranked per query (its cross-encoder calls).
        k: length of the returned ranking: the reranked documents by exact score, then the
            first stage's next ones in its order.

    Returns:
        ``(scores, indices, calls)``: (Q, k) each (tail scores step down below the exact
        ones), and (Q,) calls.

    Example:
        >>> S = np.array([[0., 5., 1., 9.]])
        >>> s, i, c = rerank_hits(np.array([[0, 1, 2, 3]]), S, budget=2, k=3)
        >>> i.tolist(), c.tolist()
        ([[1, 0, 2]], [2])
    """
    from ..index.cur import CURResult, result_hits

    scored, exact, tails = [], [], []
    for q, row in enumerate(first):
        row = row[row >= 0]
        top = row[:budget]
        scored.append(top)
        exact.append(S[q, top].astype(np.float64))
        tails.append(row[budget:])
    res = CURResult(scored, exact, tails)
    s, i = result_hits(res, k)
    return s, i, res.calls


def _hits_run(qids: Sequence[str], doc_ids: Sequence[str], scores: np.ndarray, idx: np.ndarray) -> Run:
    from ..index.base import hits_to_run

    return hits_to_run(qids, doc_ids, scores, idx)


def budget_table(rows: Sequence[dict[str, Any]], measures: Sequence[str]) -> str:
    """Markdown: one table per budget, a row per method (calls, Top-k-Recall, measures).

    Example:
        >>> print(budget_table([{"method": "adacur", "budget": 10, "ce_calls": 10.0, "top10_recall": 0.5,
        ...                      "ndcg@10": 0.4}], ["ndcg@10"]))
        | budget | method | CE calls / query | Top-10-Recall | ndcg@10 |
        |---|---|---|---|---|
        | 10 | adacur | 10.0 | 0.5000 | 0.4000 |
    """
    tk = [k for k in TOPK if any(f"top{k}_recall" in r for r in rows)]
    head = ["budget", "method", "CE calls / query", *[f"Top-{k}-Recall" for k in tk], *measures]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vals = [
            str(r.get("budget", "-")),
            r["method"],
            f"{r['ce_calls']:.1f}",
            *[f"{r[f'top{k}_recall']:.4f}" if f"top{k}_recall" in r else "-" for k in tk],
            *[f"{r[m]:.4f}" if m in r else "-" for m in measures],
        ]
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines)


def _plot_html(title: str, rows: Sequence[dict[str, Any]], table_md: str, info: dict[str, Any]) -> str:
    """report.html: Top-1/10/100-Recall vs the exhaustive cross-encoder and Recall@100 /
    nDCG@10 vs the qrels, each against cross-encoder calls per query, every method a line."""
    import html

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from .report import _png

    panels = [(f"top{k}_recall", f"Top-{k}-Recall (vs exhaustive CE)") for k in TOPK] + [
        ("recall@100", "Recall@100 (qrels)"),
        ("ndcg@10", "nDCG@10 (qrels)"),
    ]
    panels = [p for p in panels if any(p[0] in r for r in rows)]
    methods = list(dict.fromkeys(r["method"] for r in rows if r.get("budget")))
    budgets = sorted({r["budget"] for r in rows if r.get("budget")})
    fig, axes = plt.subplots(1, len(panels), figsize=(3.9 * len(panels), 3.6), squeeze=False)
    colors = {m: f"C{i}" for i, m in enumerate(methods)}
    for ax, (key, label) in zip(axes[0], panels):
        for m in methods:
            pts = sorted((r["ce_calls"], r[key]) for r in rows if r["method"] == m and key in r and r.get("budget"))
            if pts:
                ax.plot(*zip(*pts), marker="o", label=m, c=colors[m])
        for r in rows:
            if key not in r:
                continue
            if r.get("budget") is None:  # the exhaustive cross-encoder: the ceiling
                ax.axhline(r[key], ls="--", c="grey", lw=0.8, label="exhaustive CE")
            elif r.get("budget") == 0:  # a first stage alone (no cross-encoder call)
                ax.axhline(
                    r[key],
                    ls=":",
                    lw=1.2,
                    c=colors.get(f"{r['method']} + CE rerank", "black"),
                    label=f"{r['method']} alone",
                )
        ax.set_xscale("log", base=2)
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.minorticks_off()
        ax.set(xlabel="cross-encoder calls per query", title=label)
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8, bbox_to_anchor=(0.5, -0.12))
    fig.tight_layout()
    img = _png(fig)
    info_rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in info.items()
    )
    table = "<pre>" + html.escape(table_md) + "</pre>"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:90em;margin:2em auto}}\
td{{padding:2px 12px;border-bottom:1px solid #ddd}}</style>
</head><body><h1>{html.escape(title)}</h1>
<h2>Recall against cross-encoder calls (dashed: exhaustive cross-encoder)</h2>
<img alt="recall vs cross-encoder calls" src="data:image/png;base64,{img}"/>
<h2>Numbers</h2>{table}<h2>Run</h2><table>{info_rows}</table></body></html>
"""


def _exhaustive_matrix(
    c: Any, ix: Any, ds: RetrievalDataset, qids: list[str], texts: list[str], out: Path | None, quiet: bool
) -> tuple[np.ndarray, dict[str, Any]]:
    """(Q, m) exact scores of the split's queries in the index's document order (built if missing)."""
    from ..index.cur_store import CURIndex, build_cur_index
    from ..models.base import load_ranker

    folder = Path(c.exhaustive) if c.exhaustive else (out / "exhaustive" if out is not None else None)
    if folder is None:
        raise ConfigError("--task budget needs retriever.cur.exhaustive (a folder for the exhaustive scores) or --out")
    queries = [(q, ds.queries[q].text) for q in qids]
    built = {}
    try:
        ex = CURIndex(folder)
    except ConfigError:  # not there yet, or a killed build: (re)build, resuming what exists
        source = c.model or ix.meta["ranker"].get("source")
        if not source:
            raise ConfigError(
                f"{ix.folder}: the index does not record its cross-encoder; set retriever.cur.model"
            ) from None
        ranker = load_ranker(source, "cross", device=c.device)
        ix.check_ranker(ranker)
        if not quiet:
            print(f"scoring {len(queries)} queries x {len(texts)} documents exhaustively into {folder} (resumable)")
        built = build_cur_index(
            ranker,
            list(zip(ix.doc_ids, texts)),
            queries,
            folder,
            source=source,
            anchor_source=f"{ds.name}/{ds.split}",
            batch_size=c.batch_size,
            score_chunk=c.chunk_size,
        )
        ex = CURIndex(folder)
    if ex.meta["ranker"]["fingerprint"] != ix.meta["ranker"]["fingerprint"]:
        raise ConfigError(
            f"{folder}: the exhaustive scores come from another cross-encoder than {ix.folder}'s; use another folder"
        )
    ex.check_corpus(ix.doc_ids, texts)
    row = {q: i for i, (q, _) in enumerate(ex.anchors)}
    missing = [q for q in qids if q not in row]
    if missing:
        raise ConfigError(
            f"{folder}: the exhaustive scores lack {len(missing)} of the split's queries (e.g. {missing[0]!r}); "
            "use a new folder"
        )
    col = np.array([{d: j for j, d in enumerate(ex.doc_ids)}[d] for d in ix.doc_ids])
    S = ex.R_T[col].T[[row[q] for q in qids]].astype(np.float64)
    return S, {"folder": str(folder), **ex.cost(), **({"this_run": built} if built else {})}


def check_budget_config(cfg: Any) -> None:
    """The checks of ``--task budget`` before any work (one-line ConfigError naming the key).

    Args:
        cfg: an :class:`~unirank.eval.config.EvalConfig` (``retriever.cur``: index, budgets,
            methods, baselines, first_stage and the CUR settings).

    Example:
        >>> from unirank.eval.config import EvalConfig
        >>> cfg = EvalConfig(task="budget")
        >>> cfg.retriever.cur.index, cfg.retriever.cur.methods = "IX", ["anncur", "cure"]
        >>> check_budget_config(cfg)
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: retriever.cur.methods: unknown CUR method 'cure'; valid: adacur, anncur
    """
    from ..index.base import RETRIEVERS
    from ..index.cur_retriever import CUR_METHODS
    from ..index.retrievers import make_retriever  # noqa: F401  (registers every retriever)

    c = cfg.retriever.cur
    if not c.index:
        raise ConfigError("--task budget needs retriever.cur.index (a folder written by `unirank index --kind cur`)")
    if not c.budgets or any(b < 1 for b in c.budgets):
        raise ConfigError(f"retriever.cur.budgets must be positive integers, got {c.budgets}")
    for m in c.methods:
        if m not in CUR_METHODS:
            raise ConfigError(
                f"retriever.cur.methods: unknown CUR method {m!r}; valid: {', '.join(CUR_METHODS.names())}"
            )
    for b in c.baselines + ([c.first_stage] if c.first_stage else []):
        if b not in RETRIEVERS or b == "cur":
            raise ConfigError(
                f"retriever.cur.baselines / first_stage: {b!r} is not a first-stage retriever; valid: "
                f"{', '.join(n for n in RETRIEVERS.names() if n != 'cur')}"
            )
    for b in c.budgets:
        for m in c.methods:
            dataclasses.replace(c, budget=b, method=m).validate()


def run_budget_eval(cfg: Any, dataset: RetrievalDataset | None = None, quiet: bool = False) -> list[dict[str, Any]]:
    """Compare the CUR methods and retrieve-and-rerank baselines at every budget (module doc).

    Args:
        cfg: an :class:`~unirank.eval.config.EvalConfig`; ``retriever.cur`` holds the index,
            ``budgets``, ``methods``, ``baselines``, ``exhaustive``, and the CUR settings
            (``anchors``, ``rounds``, ``seed``, ``first_stage``, ``rcond``); ``retriever.bm25`` /
            ``retriever.dense`` configure the baselines.
        dataset: a loaded data set (default: ``cfg.data`` / ``cfg.split``).
        quiet: do not print the table.

    Returns:
        The rows: ``{"method", "budget", "ce_calls", "top1_recall", "top10_recall",
        "top100_recall", <measures>}``; budget ``None`` for the exhaustive cross-encoder,
        0 for a first stage alone.
    """
    from .. import io as uio
    from ..config import to_dict
    from ..data.datasets import load_dataset
    from ..index.base import RETRIEVERS
    from ..index.cur import matrix_oracle, result_hits
    from ..index.cur_retriever import CUR_METHODS, CURContext, first_stage_lists
    from ..index.cur_store import CURIndex
    from ..provenance import versions
    from .evaluate import limit_split, score_run, subsample_corpus

    check_budget_config(cfg)
    c = cfg.retriever.cur
    out = Path(cfg.out) if cfg.out else None
    ds = dataset if dataset is not None else load_dataset(cfg.data, split=cfg.split)
    ds = subsample_corpus(limit_split(ds, cfg.limit_queries), cfg.max_docs)
    ix = CURIndex(c.index)
    by_id = {d: doc.full_text for d, doc in ds.corpus.items()}
    ix.check_corpus(list(by_id), list(by_id.values()))
    texts = [by_id[d] for d in ix.doc_ids]
    qids = list(ds.qrels)
    qtexts = [ds.queries[q].text for q in qids]
    t0 = time.perf_counter()
    S, exhaustive_info = _exhaustive_matrix(c, ix, ds, qids, texts, out, quiet)
    exact = np.lexsort((np.broadcast_to(np.arange(S.shape[1]), S.shape), -S), axis=1)
    k = max(cfg.k, max(TOPK))
    rows: list[dict[str, Any]] = []
    runs: dict[str, Run] = {}

    def add(
        method: str, budget: int | None, scores: np.ndarray, idx: np.ndarray, calls: np.ndarray, **extra: Any
    ) -> None:
        run = _hits_run(qids, ix.doc_ids, scores[:, : cfg.k], idx[:, : cfg.k])
        means, _ = score_run(ds.qrels, run, [m for m in cfg.measures if m != "auc"])
        row = {
            "method": method,
            "budget": budget,
            "ce_calls": float(np.mean(calls)) if len(calls) else 0.0,
            **{f"top{t}_recall": topk_recall(exact, idx, t) for t in TOPK if t <= S.shape[1]},
            **means,
            **extra,
        }
        rows.append(row)
        runs[f"{method}@{budget}"] = run

    order = exact
    add(
        "exhaustive cross-encoder",
        None,
        np.take_along_axis(S, order[:, :k], 1),
        order[:, :k],
        np.full(len(qids), S.shape[1]),
    )
    first_hits: dict[str, np.ndarray] = {}
    timings: dict[str, float] = {}
    for name in dict.fromkeys(c.baselines + ([c.first_stage] if c.first_stage else [])):
        t = time.perf_counter()
        r = RETRIEVERS.get(name).from_config(dataclasses.replace(cfg.retriever, name=name))
        r.build(list(ix.doc_ids), texts)
        s, h = r.search(qtexts, max(k, max(c.budgets)))
        pos = {d: j for j, d in enumerate(ix.doc_ids)}
        first_hits[name] = np.array([[pos[r.doc_ids[j]] if j >= 0 else -1 for j in row] for row in h], dtype=np.int64)
        timings[f"{name}_s"] = round(time.perf_counter() - t, 3)
        if name in c.baselines:
            add(name, 0, s[:, :k], first_hits[name][:, :k], np.zeros(len(qids)))
    for b in sorted(c.budgets):
        for name in c.baselines:
            s, i, calls = rerank_hits(first_hits[name], S, b, k)
            add(f"{name} + CE rerank", b, s, i, calls)
        for m in c.methods:
            cm = dataclasses.replace(c, budget=b, method=m)
            first = None
            if c.first_stage:
                first = first_stage_lists(first_hits[c.first_stage], ix.doc_ids, ix.doc_ids, c.seed)
            t = time.perf_counter()
            res = CUR_METHODS.get(m)(CURContext(ix, cm, first), matrix_oracle(S), len(qids), k)
            timings[f"{m}@{b}_search_s"] = round(time.perf_counter() - t, 3)
            s, i = result_hits(res, k)
            add(
                m,
                b,
                s,
                i,
                res.calls,
                **({"anchors": min(cm.anchor_count(), b)} if m == "anncur" else {"rounds": min(cm.rounds, b)}),
            )
    measures = [m for m in cfg.measures if m != "auc" and any(m in r for r in rows)]
    table = budget_table(rows, measures)
    info = {
        "data": {
            "name": ds.name,
            "split": ds.split,
            "fingerprint": ds.fingerprint,
            "documents": len(ds.corpus),
            "queries": len(qids),
        },
        "index": {
            "folder": str(ix.folder),
            "anchor_queries": ix.n_anchor_queries,
            "cost": ix.cost(),
            "ranker": ix.meta["ranker"].get("source"),
        },
        "exhaustive": exhaustive_info,
        "timings_s": {**timings, "total_s": round(time.perf_counter() - t0, 3)},
        "versions": versions(),
    }
    if out is not None:
        from ..data.trec import write_run

        out.mkdir(parents=True, exist_ok=True)
        uio.write_json(out / "budget.json", {"rows": rows, **info})
        uio.write_text(out / "budget.md", table + "\n")
        uio.write_json(out / "config.json", {"config": to_dict(cfg), **info})
        uio.write_text(
            out / "report.html", _plot_html(f"unirank eval --task budget on {ds.name}/{ds.split}", rows, table, info)
        )
        for name, run in runs.items():
            write_run(
                run,
                out / "runs" / (name.replace(" ", "_").replace("+", "plus").replace("@", "_at_") + ".trec"),
                tag="unirank",
            )
    if not quiet:
        print(table)
    return rows
