"""Second-stage reranking: rescore a first-stage run's top-k documents with any Ranker.

``rerank_run`` is the core: for each query it takes the ``depth`` best documents of the
first-stage run (trec_eval order: score descending, ties by doc id descending), scores
``(query, title + text)`` with the ranker and returns a run holding only those documents
with the ranker's scores — the BEIR reranking protocol (rerank the top 100, evaluate the
reranked list). Memory stays bounded: at most ``batch_size`` queries times ``chunk_size``
documents go through one ``ranker.score`` call (see
:func:`unirank.eval.response.score_lists`).

``rerank_eval`` is the whole "first stage + rerank + metrics" pipeline, built from the
pieces of :mod:`unirank.eval.evaluate` (``retrieve``, ``score_run``,
``write_eval_outputs``); the first stage can also come from a TREC run file.

With a Uni-Encoder ``arrow`` mask a document's score depends on the other documents scored
in the same pass (the context attends to all of them); ``arrow_strict`` makes reranking
independent of ``chunk_size``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..models.base import Ranker
from ..types import RetrievalDataset, Run
from .metrics import rank_docs
from .response import ranker_info, score_lists

__all__ = ["rerank_run", "rerank_eval"]


def rerank_run(
    ranker: Ranker,
    dataset: RetrievalDataset,
    run: Run,
    depth: int = 100,
    chunk_size: int | None = 64,
    batch_size: int = 1,
    progress: bool | None = None,
) -> Run:
    """Rescore each query's top ``depth`` documents of ``run`` with ``ranker``.

    Args:
        ranker: any :class:`~unirank.models.base.Ranker`.
        dataset: gives query texts and documents (``Document.full_text``: title + text).
        run: the first-stage run; every query in it is reranked.
        depth: documents per query to rerank (the rest are dropped).
        chunk_size: most documents of one query per ``ranker.score`` call (``None``: all).
        batch_size: queries per call.
        progress: tqdm bar (``None``: when stderr is a terminal).

    Returns:
        query id -> the top-``depth`` doc ids -> ranker score; queries with an empty run
        stay empty.

    Raises:
        DataError: a query or document of the run is missing from ``dataset``.
        ValueError: ``depth`` < 1.

    Example:
        >>> from unirank.models.backbone import tiny_backbone
        >>> from unirank.models.cross import CrossEncoder
        >>> from unirank.types import Document, Query
        >>> ds = RetrievalDataset("t", {d: Document(d, f"text {d}") for d in "abc"}, {"q": Query("q", "text")}, {})
        >>> out = rerank_run(CrossEncoder(tiny_backbone()), ds, {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}, depth=2,
        ...                  progress=False)
        >>> sorted(out["q"])
        ['a', 'b']
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    qids = list(run)
    top: list[list[str]] = []
    for qid in qids:
        if qid not in dataset.queries:
            raise DataError(f"the run has query {qid!r}, which is not among the data set's queries")
        docs = rank_docs(run[qid], depth)
        missing = [d for d in docs if d not in dataset.corpus]
        if missing:
            raise DataError(f"the run has doc(s) {missing[:3]} for query {qid!r}, which are not in the corpus")
        top.append(docs)
    scores = score_lists(
        ranker,
        [dataset.queries[q].text for q in qids],
        [[dataset.corpus[d].full_text for d in docs] for docs in top],
        batch_size=batch_size,
        chunk_size=chunk_size,
        progress=progress,
        desc="rerank",
    )
    return {qid: dict(zip(docs, map(float, s))) for qid, docs, s in zip(qids, top, scores)}


def append_tail(reranked: Run, first: Run, k: int) -> Run:
    """Below each query's reranked documents, the first stage's next ones in its order, up to
    ``k`` in all: the evaluated run stays a full ranking, so a cutoff beyond the rerank depth
    (recall@100 after reranking 10) measures the pipeline, not a truncated list.

    The tail's scores step down from the lowest finite reranked score (by at least 1, more
    for large magnitudes so that every step is representable), so score order - which
    trec_eval sorts by - is reranked documents first, then the first stage's order.

    Example:
        >>> append_tail({"q": {"b": 0.9, "a": 0.2}}, {"q": {"a": 5.0, "b": 4.0, "c": 3.0, "d": 2.0}}, k=3)
        {'q': {'b': 0.9, 'a': 0.2, 'c': -0.8}}
    """
    out: Run = {}
    for qid, top in reranked.items():
        row = dict(top)
        finite = [v for v in top.values() if math.isfinite(v)]
        floor = min(finite) if finite else 0.0
        step = max(1.0, abs(floor) * 2.0**-20)
        for doc in rank_docs(first.get(qid, {})):
            if len(row) >= k:
                break
            if doc not in row:
                floor -= step
                row[doc] = floor
        out[qid] = row
    return out


#: measures that read raw scores (calibration): computed on the reranked documents only,
#: never on the made-up scores of a kept tail
SCORE_MEASURES = ("auc",)


def rerank_eval(
    cfg: Any,
    ranker: Ranker,
    depth: int = 100,
    chunk_size: int | None = 64,
    batch_size: int = 1,
    dataset: RetrievalDataset | None = None,
    retriever: Any = None,
    first_stage: Run | str | Path | None = None,
    quiet: bool = False,
    progress: bool | None = None,
    keep_tail: bool = True,
) -> tuple[Any, Any]:
    """First stage (a retriever, or a given run) -> rerank the top ``depth`` -> metrics -> outputs.

    Args:
        cfg: an :class:`~unirank.eval.config.EvalConfig` (data, split, retriever, k,
            measures, limit_queries, max_docs, out).
        ranker: the second-stage model.
        depth: documents reranked per query; the first stage retrieves
            ``max(cfg.k, depth)``.
        chunk_size, batch_size: see :func:`rerank_run`.
        dataset: a loaded data set (default: ``cfg.data`` / ``cfg.split``).
        retriever: a built first-stage retriever (default: from ``cfg.retriever``).
        first_stage: a run (or a TREC run file) to rerank instead of retrieving. Only the
            split's judged queries are kept; a judged query missing from it counts as
            having retrieved nothing (it scores 0, as an empty retrieval does).
        quiet: do not print the comparison table.
        keep_tail: below the reranked ``depth`` documents keep the first stage's next ones
            (up to ``max(cfg.k, depth)`` per query, :func:`append_tail`); ``False``: the
            reranked run holds only the reranked documents. ``auc`` / ``auc_global`` read
            raw scores and are computed on the reranked documents either way.

    Returns:
        ``(first_stage_result, reranked_result)``, two
        :class:`~unirank.eval.evaluate.EvalResult`. With ``cfg.out`` the reranked outputs
        (run.trec, metrics.json, per_query.json, config.json, report.html) go to
        ``cfg.out`` and the first stage's to ``cfg.out/first_stage``.
    """
    from ..config import to_dict
    from ..data.datasets import load_dataset
    from ..index.retrievers import make_retriever
    from ..provenance import versions
    from .evaluate import EvalResult, limit_split, note_k, retrieve, score_run, subsample_corpus, write_eval_outputs
    from .report import comparison_markdown

    ds = dataset if dataset is not None else load_dataset(cfg.data, split=cfg.split)
    ds = subsample_corpus(limit_split(ds, cfg.limit_queries), cfg.max_docs)
    t0 = time.perf_counter()
    if first_stage is None:
        retriever = retriever if retriever is not None else make_retriever(cfg.retriever)
        if not quiet and note_k(max(cfg.k, depth), ds, "max(k, rerank depth)"):
            print(note_k(max(cfg.k, depth), ds, "max(k, rerank depth)"), file=sys.stderr)
        run, timings = retrieve(ds, retriever, max(cfg.k, depth))
        first_name = cfg.retriever.name
    else:
        if not isinstance(first_stage, dict):
            from ..data.trec import read_run

            first_name = str(first_stage)
            first_stage = read_run(first_stage)
        else:
            first_name = "given run"
        run = {q: dict(first_stage.get(q, {})) for q in ds.qrels}
        covered = sum(1 for docs in run.values() if docs)
        if ds.qrels and covered == 0:
            raise DataError(
                f"first-stage run {first_name}: none of its {len(first_stage)} queries is among the "
                f"{len(ds.qrels)} judged queries of {ds.name} {ds.split} (a run of another split or data set?)"
            )
        if covered < len(ds.qrels) and not quiet:
            print(
                f"note: first-stage run {first_name} has no documents for {len(ds.qrels) - covered} of the "
                f"{len(ds.qrels)} judged queries; they score 0",
                file=sys.stderr,
            )
        timings = {}
    t1 = time.perf_counter()
    reranked = rerank_run(ranker, ds, run, depth, chunk_size, batch_size, progress)
    t2 = time.perf_counter()
    full = append_tail(reranked, run, max(cfg.k, depth)) if keep_tail else reranked

    data_info = {
        "name": ds.name,
        "split": ds.split,
        "fingerprint": ds.fingerprint,
        "documents": len(ds.corpus),
        "queries": len(ds.qrels),
    }
    first_means, first_pq = score_run(ds.qrels, run, cfg.measures)
    means, per_q = score_run(ds.qrels, full, cfg.measures)
    if full is not reranked and any(m in SCORE_MEASURES for m in cfg.measures):
        own_means, own_pq = score_run(ds.qrels, reranked, [m for m in cfg.measures if m in SCORE_MEASURES])
        means.update(own_means)
        per_q.update(own_pq)  # {measure: {query: value}}: the reranked-only values replace the whole measure
    common = {"data": data_info, "versions": versions()}
    settings = {"depth": depth, "chunk_size": chunk_size, "batch_size": batch_size, "keep_tail": keep_tail}
    first = EvalResult(
        first_means,
        first_pq,
        run,
        {**common, "retriever": first_name, "timings_s": {k: round(v, 3) for k, v in timings.items()}},
    )
    rr_info = {
        **common,
        "retriever": first_name,
        "first_stage_metrics": first_means,
        "reranker": {**ranker_info(ranker), **settings},
        "timings_s": {
            **{k: round(v, 3) for k, v in timings.items()},
            "first_stage_s": round(t1 - t0, 3),
            "rerank_s": round(t2 - t1, 3),
            "reranked_docs": sum(min(len(v), depth) for v in run.values()),
        },
    }
    result = EvalResult(means, per_q, full, rr_info)
    if cfg.out:
        from .. import io as uio
        from .config import OUTPUT_MARKER

        cfg_dict = {**to_dict(cfg), "rerank": {"kind": ranker.kind, **settings}}
        with uio.atomic_dir(cfg.out, OUTPUT_MARKER) as tmp:  # both runs or neither
            write_eval_outputs(
                tmp / "first_stage", first, ds, to_dict(cfg), f"unirank eval: {first_name} on {ds.name}/{ds.split}"
            )
            write_eval_outputs(
                tmp,
                result,
                ds,
                cfg_dict,
                f"unirank eval: {first_name} + {ranker.kind} rerank@{depth} on {ds.name}/{ds.split}",
            )
    if not quiet:
        measures = [m for m in means]
        print(comparison_markdown({first_name: first_means, f"+ {ranker.kind} rerank@{depth}": means}, measures))
    return first, result
