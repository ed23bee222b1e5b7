"""Ranking metrics with trec_eval semantics, ROC-AUC, and response-selection metrics.

Everything here is a pure function of plain dicts / arrays (no model knowledge, no I/O).

IR measures follow trec_eval (as run by ``pytrec_eval``), checked in ``tests/test_metrics.py``:

* A run is ranked by score descending; ties are broken by doc id descending (byte-wise
  string order, so ``"d9"`` ranks above ``"d10"``). Ranks given elsewhere are ignored.
* A doc is relevant when its grade is ``>= 1``; grade 0, negative grades and unjudged
  docs are non-relevant. nDCG's gain is the grade itself (non-relevant docs gain 0); its
  ideal ranking uses every relevant judged doc, retrieved or not.

=============  ======================  ===================================================
name           trec_eval               per-query value
=============  ======================  ===================================================
``ndcg@k``     ``ndcg_cut_k``          DCG@k / ideal DCG@k, discount ``log2(rank + 1)``
``mrr@k``      ``recip_rank`` on the   1 / rank of the first relevant doc if that rank is
               run cut at k            ``<= k``, else 0
``recall@k``   ``recall_k``            relevant docs in the top k / all relevant docs
``map@k``      ``map_cut_k``           sum of precision@rank over relevant docs in the top
                                       k, divided by the number of relevant docs
``p@k``        ``P_k``                 relevant docs in the top k / k
``auc``        (none)                  ROC-AUC of the query's retrieved docs (see below)
=============  ======================  ===================================================

``ndcg``, ``mrr``, ``recall`` and ``map`` without ``@k`` use the whole run (``ndcg``,
``recip_rank``, ``map`` in trec_eval); ``p`` needs a cutoff and ``auc`` takes none.
Names are case-insensitive. A query with no relevant doc scores 0 on every IR measure.

Example:
    >>> qrels = {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2}}
    >>> run = {"q1": {"d1": 0.2, "d2": 0.9}, "q2": {"d3": 1.0}, "q9": {"d1": 1.0}}
    >>> evaluate(qrels, run, ["mrr@10", "p@1"])   # q1: d2 then d1; q2: d3 first
    {'mrr@10': 0.75, 'p@1': 0.5}
    >>> per_query(qrels, run, ["mrr@10"])
    {'mrr@10': {'q1': 0.5, 'q2': 1.0}}
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from ..errors import ConfigError
from ..registry import Registry
from ..types import Qrels, Run

__all__ = [
    "MEASURES",
    "Measure",
    "parse_measure",
    "rank_docs",
    "per_query",
    "evaluate",
    "roc_auc",
    "auc_per_query",
    "auc_global",
    "recall_at_k_response",
    "mrr_response",
    "response_metrics",
]

#: grade at or above which a judged doc counts as relevant (trec_eval's default ``-l1``)
RELEVANT = 1

# --------------------------------------------------------------------------- ranking


def rank_docs(scores: Mapping[str, float], k: int | None = None) -> list[str]:
    """Doc ids ordered as trec_eval orders them: score descending, ties by doc id descending.

    Args:
        scores: doc id -> score (higher is better).
        k: keep only the first ``k`` ids (``None``: all).

    Returns:
        Doc ids, best first.

    Raises:
        ValueError: a score is NaN (it has no place in an order).

    Example:
        >>> rank_docs({"a": 1.0, "b": 1.0, "c": 3.0, "d9": 0.5, "d10": 0.5})
        ['c', 'b', 'a', 'd9', 'd10']
        >>> rank_docs({"a": 1.0, "b": 2.0}, k=1)
        ['b']
    """
    bad = [d for d, s in scores.items() if s != s]
    if bad:
        raise ValueError(f"NaN score for doc(s) {bad[:5]}")
    ranked = sorted(scores, key=lambda d: (scores[d], d), reverse=True)
    return ranked if k is None else ranked[:k]


# --------------------------------------------------------------------------- IR measures

#: fn(judgements of one query, its run, rank_docs(run), cutoff or None) -> value (NaN = undefined)
MeasureFn = Callable[[Mapping[str, int], Mapping[str, float], list[str], int | None], float]


@dataclass(frozen=True)
class Measure:
    """A registered measure family.

    Args:
        fn: per-query function ``fn(qrels_q, run_q, ranked, k) -> float``, where ``ranked`` is
            ``rank_docs(run_q)`` (computed once per query and shared by all measures). It
            returns NaN where the value is undefined; such queries are left out.
        cutoff: whether ``@k`` is ``"optional"`` (absent: whole run), ``"required"`` or ``"none"``.
    """

    fn: MeasureFn
    cutoff: Literal["optional", "required", "none"] = "optional"


MEASURES: Registry[Measure] = Registry("metric")


def _measure(
    name: str, cutoff: Literal["optional", "required", "none"] = "optional"
) -> Callable[[MeasureFn], MeasureFn]:
    def deco(fn: MeasureFn) -> MeasureFn:
        MEASURES.register(name)(Measure(fn, cutoff))
        return fn

    return deco


def _top_grades(qrels_q: Mapping[str, int], ranked: list[str], k: int | None) -> list[int]:
    return [qrels_q.get(d, 0) for d in (ranked if k is None else ranked[:k])]


def _num_rel(qrels_q: Mapping[str, int]) -> int:
    return sum(g >= RELEVANT for g in qrels_q.values())


def _dcg(grades: Iterable[int]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(grades) if g >= RELEVANT)


@_measure("ndcg")
def _ndcg(qrels_q, run_q, ranked, k):
    ideal = sorted((g for g in qrels_q.values() if g >= RELEVANT), reverse=True)
    idcg = _dcg(ideal if k is None else ideal[:k])
    return _dcg(_top_grades(qrels_q, ranked, k)) / idcg if idcg > 0 else 0.0


@_measure("mrr")
def _mrr(qrels_q, run_q, ranked, k):
    for i, g in enumerate(_top_grades(qrels_q, ranked, k)):
        if g >= RELEVANT:
            return 1.0 / (i + 1)
    return 0.0


@_measure("recall")
def _recall(qrels_q, run_q, ranked, k):
    n_rel = _num_rel(qrels_q)
    return sum(g >= RELEVANT for g in _top_grades(qrels_q, ranked, k)) / n_rel if n_rel else 0.0


@_measure("map")
def _map(qrels_q, run_q, ranked, k):
    n_rel = _num_rel(qrels_q)
    hits, total = 0, 0.0
    for i, g in enumerate(_top_grades(qrels_q, ranked, k)):
        if g >= RELEVANT:
            hits += 1
            total += hits / (i + 1)
    return total / n_rel if n_rel else 0.0


@_measure("p", cutoff="required")
def _precision(qrels_q, run_q, ranked, k):
    return sum(g >= RELEVANT for g in _top_grades(qrels_q, ranked, k)) / k


@_measure("auc", cutoff="none")
def _auc(qrels_q, run_q, ranked, k):
    pos = [s for d, s in run_q.items() if qrels_q.get(d, 0) >= RELEVANT]
    neg = [s for d, s in run_q.items() if qrels_q.get(d, 0) < RELEVANT]
    return roc_auc(pos, neg)


_NAME = re.compile(r"^([a-z_]+)(?:@(\d+))?$")


def parse_measure(name: str) -> tuple[Measure, int | None]:
    """Resolve ``"ndcg@10"``-style names through :data:`MEASURES`.

    Args:
        name: ``family`` or ``family@k`` (case-insensitive), e.g. ``"recall@100"``, ``"auc"``.

    Returns:
        The registered :class:`Measure` and the cutoff (``None`` when absent).

    Raises:
        ConfigError: unknown family (the valid ones are listed), malformed name, ``k < 1``,
            or a cutoff given where none is taken / missing where one is required.

    Example:
        >>> parse_measure("NDCG@10")[1]
        10
        >>> parse_measure("bleu@4")
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: unknown metric 'bleu@4'; valid: auc, map[@k], mrr[@k], ndcg[@k], p@k, recall[@k]
    """
    m = _NAME.match(name.strip().lower())
    family = m.group(1) if m else None
    if family not in MEASURES:
        raise ConfigError(f"unknown metric {name!r}; valid: {', '.join(_valid_names())}")
    measure, k = MEASURES.get(family), None if m.group(2) is None else int(m.group(2))
    if k is not None and k < 1:
        raise ConfigError(f"metric {name!r}: the cutoff must be >= 1")
    if k is not None and measure.cutoff == "none":
        raise ConfigError(f"metric {name!r}: {family} takes no cutoff; use {family!r}")
    if k is None and measure.cutoff == "required":
        raise ConfigError(f"metric {name!r}: {family} needs a cutoff, e.g. '{family}@10'")
    return measure, k


def _valid_names() -> list[str]:
    forms = {"optional": "{}[@k]", "required": "{}@k", "none": "{}"}
    return [forms[MEASURES.get(f).cutoff].format(f) for f in MEASURES.names()]


def per_query(
    qrels: Qrels, run: Run, measures: Iterable[str] | str, missing: Literal["skip", "zero"] = "skip"
) -> dict[str, dict[str, float]]:
    """Per-query values of each measure: exactly the numbers :func:`evaluate` averages.

    Which queries get a value (the same rules as pytrec_eval, which BEIR averages):

    * Only queries in ``qrels`` count; run queries without judgements are ignored.
    * A query judged only non-relevant (all grades ``<= 0``) is evaluated and scores 0 on
      every IR measure (pytrec_eval does the same; sentence-transformers' evaluator drops such
      queries instead: filter ``qrels`` first to get its numbers).
    * A query present in ``run`` with an empty dict retrieved nothing: it scores 0
      (pytrec_eval evaluates it too).
    * A query in ``qrels`` but absent from ``run``: ``missing="skip"`` leaves it out (plain
      trec_eval; pytrec_eval returns nothing for it), ``missing="zero"`` scores it 0 on the IR
      measures, so the mean is over every query in ``qrels`` (like ``trec_eval -c``).
    * ``auc`` has no value (the query is left out) unless the query retrieved at least one
      relevant and one non-relevant doc; see :func:`auc_per_query`.

    Args:
        qrels: query id -> doc id -> grade.
        run: query id -> doc id -> score.
        measures: names such as ``"ndcg@10"`` (see :func:`parse_measure`); a single string is
            one name.
        missing: ``"skip"`` or ``"zero"`` for queries in ``qrels`` absent from ``run``.

    Returns:
        ``{measure name as given: {query id: value}}``, queries in ``qrels`` order.

    Example:
        >>> per_query({"q1": {"d1": 1}, "q2": {"d2": 1}}, {"q1": {"d1": 1.0}}, ["ndcg@10"], missing="zero")
        {'ndcg@10': {'q1': 1.0, 'q2': 0.0}}
    """
    if missing not in ("skip", "zero"):
        raise ConfigError(f"missing={missing!r}; valid: 'skip', 'zero'")
    names = [measures] if isinstance(measures, str) else list(measures)
    parsed = [(name, *parse_measure(name)) for name in names]
    out: dict[str, dict[str, float]] = {name: {} for name in names}
    for qid, qrels_q in qrels.items():
        if qid not in run and missing == "skip":
            continue
        run_q = run.get(qid, {})
        ranked = rank_docs(run_q)
        for name, measure, k in parsed:
            value = float(measure.fn(qrels_q, run_q, ranked, k))
            if not math.isnan(value):
                out[name][qid] = value
    return out


def evaluate(
    qrels: Qrels, run: Run, measures: Iterable[str] | str, missing: Literal["skip", "zero"] = "skip"
) -> dict[str, float]:
    """Mean of each measure over the queries :func:`per_query` gives a value.

    With the default ``missing="skip"`` the means equal BEIR's (the mean of pytrec_eval's
    per-query values): every query in both ``qrels`` and ``run``, including queries with an
    empty run and queries with no relevant doc (both score 0). ``missing="zero"`` also counts
    queries absent from ``run`` as 0, averaging over all of ``qrels`` (``trec_eval -c``).
    A measure with no query to average is NaN.

    Args:
        qrels: query id -> doc id -> grade.
        run: query id -> doc id -> score.
        measures: names such as ``"ndcg@10"``, ``"recall@100"``, ``"auc"``.
        missing: ``"skip"`` or ``"zero"``, see :func:`per_query`.

    Returns:
        ``{measure name as given: mean value}``.

    Example:
        >>> qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
        >>> evaluate(qrels, {"q1": {"d1": 1.0}}, ["recall@10"])
        {'recall@10': 1.0}
        >>> evaluate(qrels, {"q1": {"d1": 1.0}}, ["recall@10"], missing="zero")
        {'recall@10': 0.5}
    """
    values = per_query(qrels, run, measures, missing=missing)
    return {name: float(np.mean(list(v.values()))) if v else math.nan for name, v in values.items()}


# --------------------------------------------------------------------------- ROC-AUC


def roc_auc(pos_scores: Sequence[float] | np.ndarray, neg_scores: Sequence[float] | np.ndarray) -> float:
    """ROC-AUC as the Mann-Whitney U statistic: P(positive scores above negative), ties 0.5.

    Computed by sorting the negatives and binary-searching each positive, O((n+m) log m).

    Args:
        pos_scores: scores of the positives, shape (n,).
        neg_scores: scores of the negatives, shape (m,).

    Returns:
        AUC in [0, 1]; NaN when either side is empty (undefined).

    Example:
        >>> roc_auc([0.9, 0.5], [0.5, 0.1, 0.3])   # (3 + 0.5 + 2) / (2 * 3)
        0.9166666666666666
        >>> roc_auc([1.0], [])
        nan
    """
    pos = np.asarray(pos_scores, dtype=np.float64).ravel()
    neg = np.sort(np.asarray(neg_scores, dtype=np.float64).ravel())
    if np.isnan(pos).any() or np.isnan(neg).any():
        raise ValueError("roc_auc: NaN score")
    if pos.size == 0 or neg.size == 0:
        return math.nan
    below = np.searchsorted(neg, pos, side="left")  # negatives strictly below each positive
    tied = np.searchsorted(neg, pos, side="right") - below
    return float((below.sum() + 0.5 * tied.sum()) / (pos.size * neg.size))


def auc_per_query(qrels: Qrels, run: Run) -> float:
    """Mean per-query ROC-AUC of the retrieved docs: does the scorer put relevant over non-relevant?

    For each query in both ``qrels`` and ``run``, the retrieved docs are split into positives
    (grade ``>= 1``) and negatives (everything else, unjudged docs included), and
    :func:`roc_auc` compares them. Docs that were not retrieved take no part. Queries without
    at least one retrieved positive and one retrieved negative are undefined and left out.

    Args:
        qrels: query id -> doc id -> grade.
        run: query id -> doc id -> score.

    Returns:
        The mean over the defined queries; NaN when no query is defined.

    Example:
        >>> qrels = {"q1": {"a": 1, "b": 0}, "q2": {"c": 1}}
        >>> auc_per_query(qrels, {"q1": {"a": 0.9, "b": 0.1, "x": 0.95}, "q2": {"c": 1.0}})   # q1: 1/2; q2 undefined
        0.5
    """
    return evaluate(qrels, run, ["auc"])["auc"]


def auc_global(qrels: Qrels, run: Run) -> float:
    """ROC-AUC of all retrieved (query, doc) scores pooled across queries.

    Positives and negatives are defined as in :func:`auc_per_query`, over the queries in both
    ``qrels`` and ``run``. Pooling asks whether one threshold separates relevant from
    non-relevant across queries: a calibration diagnostic, unlike the per-query mean.

    Args:
        qrels: query id -> doc id -> grade.
        run: query id -> doc id -> score.

    Returns:
        AUC in [0, 1]; NaN if the pool lacks positives or negatives.

    Example:
        >>> qrels = {"q1": {"a": 1}, "q2": {"c": 1}}
        >>> auc_global(qrels, {"q1": {"a": 0.9, "b": 0.1}, "q2": {"c": 0.2, "d": 0.5}})  # 0.9 beats both, 0.2 beats 0.1
        0.75
    """
    pos: list[float] = []
    neg: list[float] = []
    for qid, qrels_q in qrels.items():
        for d, s in run.get(qid, {}).items():
            (pos if qrels_q.get(d, 0) >= RELEVANT else neg).append(s)
    return roc_auc(pos, neg)


# --------------------------------------------------------------------------- response selection

Ragged = Sequence[Sequence[float]] | np.ndarray


def _correct_ranks(scores: Ragged, labels: Ragged) -> np.ndarray:
    """Pessimistic rank of each example's best-scored correct candidate (1 = first).

    rank = 1 + number of wrong candidates scoring >= the best correct score, i.e. a wrong
    candidate tied with it ranks above it; other correct candidates never push it down.
    """
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} score rows but {len(labels)} label rows")
    ranks = np.empty(len(scores), dtype=np.int64)
    for i, (s, y) in enumerate(zip(scores, labels)):
        s, y = np.asarray(s, dtype=np.float64), np.asarray(y) > 0
        if s.shape != y.shape or s.ndim != 1:
            raise ValueError(f"example {i}: {s.shape} scores but {y.shape} labels (1-D each)")
        if np.isnan(s).any():
            raise ValueError(f"example {i}: NaN score")
        if not y.any():
            raise ValueError(f"example {i}: no correct candidate (R@k and MRR are undefined; drop it)")
        ranks[i] = 1 + int(np.count_nonzero(~y & (s >= s[y].max())))
    return ranks


def recall_at_k_response(scores: Ragged, labels: Ragged, k: int) -> float:
    """R_n@k: the fraction of examples with a correct candidate among the top ``k``.

    Ties are pessimistic: a wrong candidate tied with the best correct one ranks above it.
    This gives the lower bound of what a random tie-break could report, is reproducible, and
    cannot be gamed: a scorer that gives every candidate the same score gets
    R@1 = 0 rather than 1 (ranking libraries that break ties by index order would reward it
    whenever the correct reply comes first in the file, as it does in Ubuntu/Douban data).

    Args:
        scores: per example, the scores of its candidates; ragged lists or an array of shape
            (examples, candidates).
        labels: same shape; > 0 marks a correct candidate (several may be correct; each
            example needs at least one).
        k: cutoff, >= 1.

    Returns:
        Mean over examples of 1 if the best correct candidate ranks <= k else 0.

    Example:
        >>> recall_at_k_response([[0.9, 0.5], [0.5, 0.5, 0.1]], [[1, 0], [0, 1, 0]], k=1)   # tie -> rank 2
        0.5
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return float(np.mean(_correct_ranks(scores, labels) <= k))


def mrr_response(scores: Ragged, labels: Ragged) -> float:
    """Mean reciprocal rank of each example's best-ranked correct candidate (pessimistic ties).

    Args:
        scores: as in :func:`recall_at_k_response`.
        labels: as in :func:`recall_at_k_response`.

    Returns:
        Mean of 1 / rank.

    Example:
        >>> mrr_response([[0.9, 0.5], [0.5, 0.5, 0.1]], [[1, 0], [0, 1, 0]])   # (1 + 1/2) / 2
        0.75
    """
    return float(np.mean(1.0 / _correct_ranks(scores, labels)))


def response_metrics(scores: Ragged, labels: Ragged, ks: Sequence[int] = (1, 2, 5)) -> dict[str, float]:
    """R_n@k for each k plus MRR, named as in the response-selection literature.

    Args:
        scores: as in :func:`recall_at_k_response`.
        labels: as in :func:`recall_at_k_response`.
        ks: cutoffs.

    Returns:
        ``{"R10@1": ..., "R10@2": ..., "R10@5": ..., "mrr": ...}`` where 10 is the number of
        candidates per example; ``"R@1"`` etc. when examples have different numbers.

    Example:
        >>> response_metrics([[0.9, 0.5], [0.2, 0.6]], [[1, 0], [1, 0]], ks=(1,))
        {'R2@1': 0.5, 'mrr': 0.75}
    """
    if any(k < 1 for k in ks):
        raise ValueError(f"cutoffs must be >= 1, got {tuple(ks)}")
    ranks = _correct_ranks(scores, labels)
    sizes = {len(s) for s in scores}
    n = str(sizes.pop()) if len(sizes) == 1 else ""
    out = {f"R{n}@{k}": float(np.mean(ranks <= k)) for k in ks}
    out["mrr"] = float(np.mean(1.0 / ranks))
    return out
