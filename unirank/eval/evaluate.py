"""The evaluation pipeline: data -> first-stage retrieval (-> optional rerank) -> Run -> metrics -> report.

``run_eval(cfg)`` is what ``unirank eval`` and ``unirank demo`` call; each step is also
usable on its own (``retrieve``, ``score_run``, ``write_eval_outputs``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .. import io as uio
from ..config import to_dict
from ..index.base import hits_to_run
from ..index.retrievers import make_retriever
from ..provenance import versions
from ..types import Qrels, RetrievalDataset, Run
from . import metrics as M
from .config import OUTPUT_MARKER, EvalConfig
from .report import html_report, metrics_table


@dataclass
class EvalResult:
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    run: Run
    info: dict[str, Any] = field(default_factory=dict)


def limit_split(ds: RetrievalDataset, limit_queries: int | None) -> RetrievalDataset:
    """Keep the first ``limit_queries`` judged queries (in qrels order); corpus unchanged."""
    if not limit_queries:
        return ds
    keep = list(ds.qrels)[:limit_queries]
    return RetrievalDataset(ds.name, ds.corpus, ds.queries, {q: ds.qrels[q] for q in keep}, ds.split, ds.fingerprint)


def subsample_corpus(ds: RetrievalDataset, max_docs: int | None) -> RetrievalDataset:
    """Keep every document judged in the split plus others, in a stable hashed order, up to ``max_docs``.

    A smaller but still realistic search space for quick runs (the demo); judged documents are
    never dropped, so metrics stay meaningful (they are higher than on the full corpus).
    """
    if not max_docs or len(ds.corpus) <= max_docs:
        return ds
    import hashlib

    judged = {d for rel in ds.qrels.values() for d in rel}
    others = sorted((d for d in ds.corpus if d not in judged), key=lambda d: hashlib.sha1(d.encode()).hexdigest())
    keep = judged | set(others[: max(0, max_docs - len(judged))])
    corpus = {d: doc for d, doc in ds.corpus.items() if d in keep}
    return RetrievalDataset(ds.name, corpus, ds.queries, ds.qrels, ds.split, f"{ds.fingerprint}:docs{len(corpus)}")


def retrieve(
    ds: RetrievalDataset, retriever: Any, k: int, query_ids: Sequence[str] | None = None
) -> tuple[Run, dict[str, float]]:
    """Index the whole corpus (title + text), search the split's queries; returns (run, timings).

    ``k`` is capped at the corpus size: the result buffers grow with the data, never with a
    ``k`` typed with too many zeros (see :func:`note_k`).
    """
    doc_ids = list(ds.corpus)
    k = min(k, len(doc_ids))
    t0 = time.perf_counter()
    retriever.build(doc_ids, [ds.corpus[d].full_text for d in doc_ids])
    t1 = time.perf_counter()
    qids = list(query_ids if query_ids is not None else ds.qrels)
    scores, idx = retriever.search([ds.queries[q].text for q in qids], k)
    t2 = time.perf_counter()
    return hits_to_run(qids, retriever.doc_ids, scores, idx), {"index_s": t1 - t0, "search_s": t2 - t1}


def note_k(k: int, ds: RetrievalDataset, what: str = "k") -> str | None:
    """The note printed when ``k`` exceeds the corpus (retrieval then returns every document).

    Example:
        >>> note_k(10**12, RetrievalDataset("toy", {"d": None}, {}, {}))
        'note: k=1000000000000 is more than the 1 documents of toy; every document is retrieved'
    """
    n = len(ds.corpus)
    return (
        f"note: {what}={k} is more than the {n} documents of {ds.name}; every document is retrieved" if k > n else None
    )


def score_run(qrels: Qrels, run: Run, measures: Sequence[str]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Mean metrics (plus ``auc_global``) and per-query values for ``measures``."""
    means = M.evaluate(qrels, run, list(measures))
    if "auc" in measures:
        means["auc_global"] = M.auc_global(qrels, run)
    return means, M.per_query(qrels, run, list(measures))


def _explain(
    retriever: Any, ds: RetrievalDataset, run: Run, n_queries: int = 5, n_docs: int = 3
) -> tuple[str, list] | None:
    """A retriever's explain view (SPLADE: expansion and matched terms) for the first queries of
    the run, written as ``explain.md`` beside the report; returns its HTML section (or None)."""
    explain = getattr(retriever, "explain", None)
    if not callable(explain) or getattr(retriever, "docs", None) is None:
        return None
    from ..index.splade_retriever import explain_html

    qids = [q for q in run if run[q]][:n_queries]
    items = explain(
        [ds.queries[q].text for q in qids], [sorted(run[q], key=lambda d: -run[q][d])[:n_docs] for q in qids]
    )
    return explain_html(items), items


def write_eval_outputs(
    out: str | Path, result: EvalResult, ds: RetrievalDataset, cfg_dict: dict, title: str, extra_html: Any = None
) -> None:
    """run.trec, metrics.json, per_query.json, config.json and report.html, each written atomically
    (and ``explain.md`` / ``explain.json`` when ``extra_html`` is an explain view ``(html, items)``).

    Callers write the whole folder as a unit: ``with uio.atomic_dir(out, OUTPUT_MARKER) as tmp:
    write_eval_outputs(tmp, ...)`` (a reranked run writes its ``first_stage/`` in the same block).
    """
    from ..data.trec import write_run

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_run(result.run, out / "run.trec", tag="unirank")
    uio.write_json(out / "metrics.json", result.metrics)
    uio.write_json(out / "per_query.json", result.per_query)
    uio.write_json(out / "config.json", {"config": cfg_dict, **result.info})
    ndcg_key = next((m for m in result.per_query if m.startswith("ndcg")), None)
    section = ""
    if extra_html is not None:
        from ..index.splade_retriever import explain_markdown

        section, items = extra_html
        uio.write_json(out / "explain.json", items)
        uio.write_text(out / "explain.md", explain_markdown(items))
    uio.write_text(
        out / "report.html",
        html_report(
            title,
            result.metrics,
            ds.qrels,
            result.run,
            result.per_query.get(ndcg_key) if ndcg_key else None,
            info=result.info | {"config": cfg_dict},
            extra_html=section,
        ),
    )


def run_eval(
    cfg: EvalConfig, dataset: RetrievalDataset | None = None, retriever: Any = None, quiet: bool = False
) -> EvalResult:
    """Evaluate a first-stage retriever on ``cfg.data`` / ``cfg.split`` and write ``cfg.out`` if set."""
    from ..data.datasets import load_dataset

    ds = dataset if dataset is not None else load_dataset(cfg.data, split=cfg.split)
    ds = subsample_corpus(limit_split(ds, cfg.limit_queries), cfg.max_docs)
    retriever = retriever if retriever is not None else make_retriever(cfg.retriever)
    if not quiet and note_k(cfg.k, ds):
        print(note_k(cfg.k, ds), file=sys.stderr)
    t0 = time.perf_counter()
    run, timings = retrieve(ds, retriever, cfg.k)
    means, per_q = score_run(ds.qrels, run, cfg.measures)
    info = {
        "data": {
            "name": ds.name,
            "split": ds.split,
            "fingerprint": ds.fingerprint,
            "documents": len(ds.corpus),
            "queries": len(ds.qrels),
        },
        "retriever": cfg.retriever.name,
        "timings_s": {**{k: round(v, 3) for k, v in timings.items()}, "total_s": round(time.perf_counter() - t0, 3)},
        "versions": versions(),
    }
    if getattr(retriever, "stats", None):  # e.g. the cross-encoder calls of retriever "cur"
        info["retriever_stats"] = retriever.stats
    encoder = getattr(retriever, "encoder", None) or getattr(getattr(retriever, "dense", None), "encoder", None)
    if encoder is not None:
        info["model"] = {"source": encoder.backbone.source, "fingerprint": encoder.backbone.fingerprint()}
    if getattr(retriever, "stats", None):
        info["retriever_stats"] = retriever.stats  # e.g. SPLADE: non-zeros per query / doc, index bytes, latency
    result = EvalResult(means, per_q, run, info)
    explained = _explain(retriever, ds, run) if cfg.out else None
    if cfg.out:
        with uio.atomic_dir(cfg.out, OUTPUT_MARKER) as tmp:
            write_eval_outputs(
                tmp,
                result,
                ds,
                to_dict(cfg),
                f"unirank eval: {cfg.retriever.name} on {ds.name}/{ds.split}",
                extra_html=explained,
            )
    if not quiet:
        print(metrics_table(means, title=f"{cfg.retriever.name} on {ds.name}/{ds.split} ({len(ds.qrels)} queries)"))
    return result
