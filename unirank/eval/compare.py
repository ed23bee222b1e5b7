"""Compare ranking systems query by query: load their runs, align the queries, test every pair.

What ``unirank compare`` runs (:func:`run_compare`), in four steps, each usable alone:

1. **load** (:func:`load_system`): a folder ``unirank eval`` wrote (``run.trec``; or
   ``scores.jsonl`` from ``unirank eval --task response``), a TREC run file, or a
   ``scores.jsonl`` file. Qrels (:func:`load_judgements`) come from a TREC qrels file, a BEIR
   ``qrels/<split>.tsv`` or a BEIR folder (which also gives the texts shown in the report).
2. **per-query values** (:func:`per_query_values`): retrieval runs through
   :func:`unirank.eval.metrics.per_query` (trec_eval semantics), response runs as R_n@k and
   reciprocal rank of each context (the pessimistic ranks of
   :func:`unirank.eval.metrics.response_metrics`).
3. **align** (:func:`align`): only queries every system has are compared. Queries dropped
   because a run lacks them are counted and named in ``notes`` (printed, written to the
   report), never silently; a run with none of the judged queries is an error.
4. **test** (:func:`compare_values`, pure): per measure, every system against the baseline
   (or all pairs): mean difference, percentile-bootstrap CI, paired t-test, Fisher
   randomization test, Holm-Bonferroni adjusted p-values (one family per measure and test:
   the pairs compared), win/tie/loss counts and the effect size d_z
   (:mod:`unirank.eval.significance`).

The output folder (``--out``) holds ``comparison.json`` (settings, means, every pair's
statistics, notes, the queries that changed most), ``comparison.md``, ``per_query.tsv`` and
``report.html``; it is built in a temporary sibling folder and renamed into place.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import io as uio
from ..errors import ConfigError, DataError
from ..types import Qrels, Run
from . import metrics as M
from . import significance as S

#: the file every ``unirank compare`` output folder holds (an existing folder without it is never replaced)
OUTPUT_MARKER = "comparison.json"

__all__ = [
    "CompareConfig",
    "RetrievalSystem",
    "ResponseSystem",
    "Judgements",
    "load_system",
    "load_judgements",
    "per_query_values",
    "align",
    "Aligned",
    "PairResult",
    "Comparison",
    "compare_values",
    "changed_queries",
    "run_compare",
    "cli_args",
    "DEFAULT_RETRIEVAL_MEASURES",
]

DEFAULT_RETRIEVAL_MEASURES = ("ndcg@10", "recall@100", "mrr@10")


@dataclass
class CompareConfig:
    """Settings of one comparison (saved in ``comparison.json``).

    Args:
        runs: run folders or files, two or more; the first is the baseline unless ``baseline``.
        qrels: TREC qrels file, BEIR qrels tsv or BEIR folder (retrieval runs only).
        split: the qrels split when ``qrels`` is a BEIR folder.
        names: one name per run (default: each path's last part, without ``.trec``/``.jsonl``).
        measures: retrieval: any :func:`unirank.eval.metrics.parse_measure` name (default
            ndcg@10, recall@100, mrr@10); response: ``R@k`` / ``R10@k`` / ``mrr`` (default
            the cutoffs below the candidate count, and mrr).
        baseline: the name of the system the others are tested against (default the first).
        all_pairs: test every pair instead of every system against the baseline.
        test: the test whose adjusted p-value marks significance: ``t`` | ``fisher``.
        alpha: significance level.
        correction: ``holm`` | ``none``.
        permutations: random sign patterns of the randomization test.
        bootstrap: resamples of the bootstrap CI.
        confidence: coverage of the bootstrap CI.
        seed: seed of the randomization test and the bootstrap.
        missing: ``skip`` (compare the queries every run has) | ``zero`` (a judged query a
            retrieval run lacks scores 0, as ``trec_eval -c``).
        top_queries: how many most-changed queries per pair the report shows.
        out: output folder (``None``: print only).
    """

    runs: list[str] = field(default_factory=list)
    qrels: str | None = None
    split: str = "test"
    names: list[str] | None = None
    measures: list[str] | None = None
    baseline: str | None = None
    all_pairs: bool = False
    test: str = "t"
    alpha: float = 0.05
    correction: str = "holm"
    permutations: int = 10_000
    bootstrap: int = 10_000
    confidence: float = 0.95
    seed: int = 0
    missing: str = "skip"
    top_queries: int = 10
    out: str | None = None

    def validate(self) -> None:
        """Raise ConfigError naming the flag when a setting cannot be used."""
        if len(self.runs) < 2:
            raise ConfigError(f"compare needs at least 2 runs, got {len(self.runs)}", key="runs")
        if self.names is not None and len(self.names) != len(self.runs):
            raise ConfigError(f"--names: {len(self.names)} names for {len(self.runs)} runs", key="names")
        if self.test not in S.TESTS:
            raise ConfigError(f"--test {self.test!r}; valid: {', '.join(S.TESTS.names())}", key="test")
        if self.correction not in S.CORRECTIONS:
            raise ConfigError(
                f"--correction {self.correction!r}; valid: {', '.join(S.CORRECTIONS.names())}", key="correction"
            )
        if not 0 < self.alpha < 1:
            raise ConfigError(f"--alpha must be in (0, 1), got {self.alpha}", key="alpha")
        if not 0 < self.confidence < 1:
            raise ConfigError(f"--confidence must be in (0, 1), got {self.confidence}", key="confidence")
        for key in ("permutations", "bootstrap"):
            if getattr(self, key) < 1:
                raise ConfigError(f"--{key} must be >= 1, got {getattr(self, key)}", key=key)
        if self.top_queries < 0:
            raise ConfigError(f"--top-queries must be >= 0, got {self.top_queries}", key="top_queries")
        if self.missing not in ("skip", "zero"):
            raise ConfigError(f"--missing {self.missing!r}; valid: skip, zero", key="missing")
        if self.measures is not None and not self.measures:
            raise ConfigError("--measures is empty", key="measures")
        if self.measures and len({m.lower() for m in self.measures}) < len(self.measures):
            raise ConfigError(f"--measures lists a measure twice: {','.join(self.measures)}", key="measures")
        from ..config import check_out_dir

        check_out_dir(self.out, marker=OUTPUT_MARKER)  # before the runs are read and resampled


# --------------------------------------------------------------------------- loading


@dataclass
class RetrievalSystem:
    """A ranked run: query id -> doc id -> score (from ``run.trec`` or a TREC file)."""

    name: str
    source: str
    run: Run

    def top(self, qid: str, k: int) -> list[tuple[str, float]]:
        """The ``k`` best documents of ``qid`` in trec_eval order, with their scores."""
        scores = self.run.get(qid, {})
        return [(d, scores[d]) for d in M.rank_docs(scores, k)]


@dataclass
class ResponseSystem:
    """Response-selection scores: context id -> (candidate scores, candidate labels)."""

    name: str
    source: str
    examples: dict[str, tuple[list[float], list[int]]]

    def top(self, qid: str, k: int) -> list[tuple[str, float]]:
        """The ``k`` best candidates of context ``qid`` as (``#index``, score), best first."""
        scores = self.examples.get(qid, ([], []))[0]
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
        return [(f"#{i}", scores[i]) for i in order]


System = RetrievalSystem | ResponseSystem


def _read_scores_jsonl(path: Path) -> dict[str, tuple[list[float], list[int]]]:
    """``scores.jsonl`` of ``unirank eval --task response``: one ``{"id", "scores", "labels"}`` per line."""
    from ..data.beir import iter_json_objects

    out: dict[str, tuple[list[float], list[int]]] = {}
    for lineno, obj in iter_json_objects(path):
        eid, scores, labels = obj.get("id"), obj.get("scores"), obj.get("labels")
        if not isinstance(eid, str) or not isinstance(scores, list) or not isinstance(labels, list):
            raise DataError('expected {"id": str, "scores": [numbers], "labels": [0/1 ...]}', path=path, line=lineno)
        if len(scores) != len(labels):
            raise DataError(f"{len(scores)} scores but {len(labels)} labels", path=path, line=lineno)
        try:
            s = [float(x) for x in scores]
            y = [int(x) for x in labels]
        except (TypeError, ValueError):
            raise DataError("scores must be numbers and labels integers", path=path, line=lineno) from None
        if any(math.isnan(x) for x in s):
            raise DataError("a score is NaN", path=path, line=lineno)
        if eid in out:
            raise DataError(f"context id {eid!r} listed twice", path=path, line=lineno)
        out[eid] = (s, y)
    if not out:
        raise DataError("no scored contexts", path=path)
    return out


def default_name(path: str | Path) -> str:
    """A system's default name: the path's last part without ``.trec`` / ``.txt`` / ``.jsonl``.

    Example:
        >>> default_name("runs/scifact-bm25/"), default_name("runs/bm25.trec")
        ('scifact-bm25', 'bm25')
    """
    p = Path(path)
    return p.name[: -len(p.suffix)] if p.suffix in (".trec", ".txt", ".jsonl", ".run") else p.name


def load_system(path: str | Path, name: str | None = None) -> System:
    """Load one system's run.

    Args:
        path: a folder with ``run.trec`` (``unirank eval``) or ``scores.jsonl`` (``unirank
            eval --task response``), a TREC run file, or a ``.jsonl`` scores file.
        name: the system's name (default :func:`default_name`).

    Raises:
        DataError: the path does not exist, holds neither kind of run, or a file is malformed
            (file + line).
    """
    from ..data.trec import read_run

    p = Path(path)
    name = name or default_name(p)
    if p.is_dir():
        if (p / "run.trec").is_file():
            return RetrievalSystem(name, str(p), _nonempty(read_run(p / "run.trec"), p / "run.trec"))
        if (p / "scores.jsonl").is_file():
            return ResponseSystem(name, str(p), _read_scores_jsonl(p / "scores.jsonl"))
        raise DataError(
            "expected a run folder holding run.trec (unirank eval) or scores.jsonl (unirank eval --task response)",
            path=p,
        )
    if p.is_file():
        if p.suffix == ".jsonl":
            return ResponseSystem(name, str(p), _read_scores_jsonl(p))
        return RetrievalSystem(name, str(p), _nonempty(read_run(p), p))
    raise DataError("run not found (expected a run folder or a TREC run file)", path=p)


def _nonempty(run: Run, path: Path) -> Run:
    if not run:
        raise DataError("empty run: no result lines", path=path)
    return run


@dataclass
class Judgements:
    """Qrels plus, when they came from a BEIR folder, the texts the report shows."""

    qrels: Qrels
    source: str
    queries: dict[str, str] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)


def load_judgements(path: str | Path, split: str = "test") -> Judgements:
    """Qrels from a TREC qrels file (``qid iter docid grade``), a BEIR tsv (``query-id corpus-id
    score``, header optional) or a BEIR folder (``qrels/<split>.tsv``; query texts and document
    titles come along).

    Raises:
        DataError: a missing path or a malformed file (file + line).
    """
    from ..data.beir import iter_text_lines, load_beir, load_qrels
    from ..data.trec import read_qrels

    p = Path(path)
    if p.is_dir():
        ds = load_beir(p, split=split)
        titles = {d: (doc.title or doc.text[:80]) for d, doc in ds.corpus.items()}
        return Judgements(
            ds.qrels, f"{p} ({split})", {q: ds.queries[q].text for q in ds.qrels if q in ds.queries}, titles
        )
    if not p.is_file():
        raise DataError("qrels not found (expected a TREC qrels file, a BEIR qrels .tsv or a BEIR folder)", path=p)
    first = next((line for _, line in iter_text_lines(p) if line.strip()), "")
    qrels = read_qrels(p) if len(first.split()) == 4 else load_qrels(p)
    if not qrels:
        raise DataError("no judgements", path=p)
    return Judgements(qrels, str(p))


# --------------------------------------------------------------------------- per-query values

_RESPONSE = re.compile(r"^r(\d*)@(\d+)$")


def _response_measure(name: str, n_candidates: set[int]) -> int | None:
    """Cutoff of an ``R@k`` / ``R10@k`` name, ``None`` for ``mrr``; ConfigError otherwise."""
    low = name.strip().lower()
    if low == "mrr":
        return None
    m = _RESPONSE.match(low)
    if not m:
        raise ConfigError(
            f"unknown response-selection measure {name!r}; valid: R@k, R<n>@k (e.g. R10@1), mrr", key="measures"
        )
    if m.group(1) and {int(m.group(1))} != n_candidates:
        raise ConfigError(
            f"measure {name!r}: the contexts have {sorted(n_candidates)} candidates, not {m.group(1)}", key="measures"
        )
    k = int(m.group(2))
    if k < 1:
        raise ConfigError(f"measure {name!r}: the cutoff must be >= 1", key="measures")
    return k


def per_query_values(
    systems: Sequence[System],
    measures: Sequence[str] | None,
    judgements: Judgements | None = None,
    missing: str = "skip",
) -> tuple[list[str], dict[str, dict[str, dict[str, float]]], list[str]]:
    """Per-query values of each measure for each system.

    Retrieval systems are scored against ``judgements`` with
    :func:`unirank.eval.metrics.per_query` (only judged queries count; ``missing="zero"``
    scores a judged query absent from a run 0). Response systems give each context with a
    correct candidate ``R@k = [rank <= k]`` and ``mrr = 1 / rank`` (pessimistic ranks);
    contexts without one are left out, as ``unirank eval`` does.

    Args:
        systems: all retrieval or all response systems.
        measures: names (``None``: the defaults of the task).
        judgements: qrels; required for retrieval, refused for response.
        missing: ``skip`` | ``zero`` (retrieval only).

    Returns:
        ``(measures, values, notes)``: ``values[system][measure][query id]``; notes for the
        report (ignored run queries, contexts without a correct candidate).

    Raises:
        ConfigError: mixed kinds, qrels missing or misplaced, unknown measures.
        DataError: a run has none of the judged queries; response runs disagree on labels.
    """
    kinds = {type(s) for s in systems}
    if len(kinds) > 1:
        listing = ", ".join(
            f"{s.name} ({'retrieval' if isinstance(s, RetrievalSystem) else 'response'})" for s in systems
        )
        raise ConfigError(f"cannot compare retrieval runs with response-selection runs: {listing}", key="runs")
    if isinstance(systems[0], RetrievalSystem):
        return _retrieval_values(systems, measures, judgements, missing)  # type: ignore[arg-type]
    if judgements is not None:
        raise ConfigError(
            "--qrels is for retrieval runs; response-selection runs (scores.jsonl) carry their labels", key="qrels"
        )
    return _response_values(systems, measures)  # type: ignore[arg-type]


def _retrieval_values(
    systems: Sequence[RetrievalSystem], measures: Sequence[str] | None, judgements: Judgements | None, missing: str
) -> tuple[list[str], dict[str, dict[str, dict[str, float]]], list[str]]:
    if judgements is None:
        raise ConfigError(
            "--qrels is required to compare retrieval runs (a TREC qrels file, a BEIR .tsv or a BEIR folder)",
            key="qrels",
        )
    names = list(measures or DEFAULT_RETRIEVAL_MEASURES)
    for m in names:
        M.parse_measure(m)
    qrels = judgements.qrels
    notes: list[str] = []
    values: dict[str, dict[str, dict[str, float]]] = {}
    for s in systems:
        judged = sum(1 for q in s.run if q in qrels)
        if judged == 0:
            example = ", ".join(list(s.run)[:3])
            raise DataError(
                f"none of the {len(qrels)} judged queries of {judgements.source} is in this run "
                f"(its queries: {example}, ...); wrong --qrels or --split?",
                path=s.source,
            )
        unjudged = len(s.run) - judged
        if unjudged:
            notes.append(f"{s.name}: {unjudged} run queries have no judgements and are ignored")
        values[s.name] = M.per_query(qrels, s.run, names, missing=missing)  # type: ignore[arg-type]
        if missing == "zero" and judged < len(qrels):
            notes.append(
                f"{s.name}: {len(qrels) - judged} of {len(qrels)} judged queries are not in the run and score 0 "
                "(--missing zero)"
            )
    nowhere = [q for q in qrels if not any(q in s.run for s in systems)]
    if nowhere and missing == "skip":  # a TREC file cannot hold a query that retrieved nothing: say it is left out
        more = ", ..." if len(nowhere) > 5 else ""
        notes.append(
            f"{len(nowhere)} of {len(qrels)} judged queries are in no run and are left out "
            f"({', '.join(nowhere[:5])}{more}); "
            "--missing zero scores them 0"
        )
    return names, values, notes


def _response_values(
    systems: Sequence[ResponseSystem], measures: Sequence[str] | None
) -> tuple[list[str], dict[str, dict[str, dict[str, float]]], list[str]]:
    from .response import response_cutoffs

    ref = systems[0]
    for s in systems[1:]:
        for eid in s.examples.keys() & ref.examples.keys():
            if s.examples[eid][1] != ref.examples[eid][1]:
                raise DataError(
                    f"context {eid!r} has labels {s.examples[eid][1]} here but {ref.examples[eid][1]} in "
                    f"{ref.source}: the runs were not made on the same data",
                    path=s.source,
                )
    sizes = {len(y) for s in systems for _, y in s.examples.values()}
    if measures is None:
        n = str(next(iter(sizes))) if len(sizes) == 1 else ""
        names = [f"R{n}@{k}" for k in response_cutoffs(sorted(sizes))] + ["mrr"]
    else:
        names = list(measures)
    cutoffs = {m: _response_measure(m, sizes) for m in names}
    notes: list[str] = []
    values: dict[str, dict[str, dict[str, float]]] = {}
    for s in systems:
        ranks: dict[str, int] = {}
        for eid, (scores, labels) in s.examples.items():
            if any(y > 0 for y in labels):
                ranks[eid] = int(M._correct_ranks([scores], [labels])[0])
        if not ranks:
            raise DataError("no context has a correct candidate; R@k and MRR are undefined", path=s.source)
        if len(ranks) < len(s.examples):
            notes.append(f"{s.name}: {len(s.examples) - len(ranks)} contexts without a correct candidate are left out")
        values[s.name] = {
            m: {eid: (1.0 / r if k is None else float(r <= k)) for eid, r in ranks.items()} for m, k in cutoffs.items()
        }
    return names, values, notes


# --------------------------------------------------------------------------- alignment


@dataclass
class Aligned:
    """Per measure, the queries every system has a value for and the values in that order."""

    qids: dict[str, list[str]]
    values: dict[str, dict[str, np.ndarray]]
    notes: list[str]
    dropped: dict[str, list[str]]


def align(
    values: Mapping[str, Mapping[str, Mapping[str, float]]],
    measures: Sequence[str],
    what: str = "queries",
    show: int = 5,
) -> Aligned:
    """Keep, per measure, the queries that every system has a value for.

    The queries of the first system fix the order. A query some run lacks is dropped from
    every system and reported: ``notes`` says how many of how many were dropped and, per
    system, how many (and which, up to ``show``) it lacks; ``dropped`` lists them. A measure
    undefined on some queries in some run (``auc`` without a retrieved positive) drops those
    too, with its own note.

    Args:
        values: ``values[system][measure][query id]``.
        measures: the measures to align.
        what: the noun for queries in the notes (``"contexts"`` for response selection).
        show: how many ids a note names.

    Raises:
        DataError: no query is shared by all systems.

    Example:
        >>> a = align({"x": {"m": {"q1": 1.0, "q2": 0.0}}, "y": {"m": {"q2": 1.0}}}, ["m"])
        >>> a.qids, a.notes
        ({'m': ['q2']}, ['1 of 2 queries dropped (the comparison uses the 1 in every run): y lacks 1 (q1)'])
    """
    systems = list(values)
    # the queries each run has at all (under any measure): what "a run lacks a query" means
    present = {s: set().union(*(set(values[s][m]) for m in measures)) for s in systems}
    union = list(dict.fromkeys(q for s in systems for m in measures for q in values[s][m]))
    common = [q for q in union if all(q in present[s] for s in systems)]
    if not common:
        listing = "; ".join(f"{s}: {len(present[s])}" for s in systems)
        raise DataError(f"the runs share no {what} ({listing}); they were made on different query sets")
    notes: list[str] = []
    dropped: dict[str, list[str]] = {}
    if len(common) < len(union):
        parts = []
        for s in systems:
            lack = [q for q in union if q not in present[s]]
            if lack:
                dropped[s] = lack
                more = ", ..." if len(lack) > show else ""
                parts.append(f"{s} lacks {len(lack)} ({', '.join(lack[:show])}{more})")
        notes.append(
            f"{len(union) - len(common)} of {len(union)} {what} dropped (the comparison uses the {len(common)} "
            f"in every run): " + "; ".join(parts)
        )
    common_set = set(common)
    qids: dict[str, list[str]] = {}
    out: dict[str, dict[str, np.ndarray]] = {}
    order = {q: i for i, q in enumerate(union)}
    for m in measures:
        keep = [q for q in common if all(q in values[s][m] for s in systems)]
        if not keep:
            raise DataError(f"measure {m}: no {what} has a value in every run")
        if len(keep) < len(common_set):
            notes.append(f"{m}: compared on {len(keep)} of {len(common)} {what} (undefined on the others in some run)")
        keep.sort(key=order.__getitem__)
        qids[m] = keep
        out[m] = {s: np.array([values[s][m][q] for q in keep], dtype=np.float64) for s in systems}
    return Aligned(qids, out, notes, dropped)


# --------------------------------------------------------------------------- statistics


@dataclass
class PairResult:
    """One system against another on one measure; ``diff = mean_a - mean_b`` (A better: > 0).

    ``p_t`` / ``p_fisher`` are raw two-sided p-values; ``p_t_adj`` / ``p_fisher_adj`` are
    corrected within the measure's family (the pairs compared); ``significant`` reads the
    adjusted p-value of the chosen test against alpha.
    """

    a: str
    b: str
    measure: str
    n: int
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    t: float
    p_t: float
    p_fisher: float
    p_t_adj: float = math.nan
    p_fisher_adj: float = math.nan
    wins: int = 0
    ties: int = 0
    losses: int = 0
    d_z: float = math.nan
    significant: bool = False


@dataclass
class Comparison:
    """Everything a comparison found (what the tables, the report and comparison.json show)."""

    systems: list[str]
    baseline: str
    measures: list[str]
    means: dict[str, dict[str, float]]
    pairs: list[PairResult]
    aligned: Aligned
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    task: str = "retrieval"

    def pair(self, a: str, b: str, measure: str) -> PairResult | None:
        """The result of ``a`` against ``b`` on ``measure`` (either orientation), or ``None``."""
        for r in self.pairs:
            if r.measure == measure and {r.a, r.b} == {a, b}:
                return r
        return None

    def beats(self, system: str, measure: str) -> list[str]:
        """The systems ``system`` is significantly better than on ``measure``."""
        out = []
        for r in self.pairs:
            if r.measure == measure and r.significant:
                if r.a == system and r.diff > 0:
                    out.append(r.b)
                elif r.b == system and r.diff < 0:
                    out.append(r.a)
        return [s for s in self.systems if s in out]

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "systems": self.systems,
            "baseline": self.baseline,
            "measures": self.measures,
            "settings": self.settings,
            "means": self.means,
            "queries": {m: len(q) for m, q in self.aligned.qids.items()},
            "dropped": self.aligned.dropped,
            "notes": self.notes,
            "pairs": [asdict(r) for r in self.pairs],
        }


def pairs_to_test(systems: Sequence[str], baseline: str, all_pairs: bool) -> list[tuple[str, str]]:
    """``(A, B)`` pairs, ``diff = A - B``: each system against the baseline, or every pair
    (the later-listed system as A).

    Example:
        >>> pairs_to_test(["bm25", "dense", "ft"], "bm25", False)
        [('dense', 'bm25'), ('ft', 'bm25')]
        >>> pairs_to_test(["bm25", "dense", "ft"], "bm25", True)
        [('dense', 'bm25'), ('ft', 'bm25'), ('ft', 'dense')]
    """
    if all_pairs:
        return [(systems[j], systems[i]) for i in range(len(systems)) for j in range(i + 1, len(systems))]
    return [(s, baseline) for s in systems if s != baseline]


def compare_values(
    aligned: Aligned,
    systems: Sequence[str],
    baseline: str,
    *,
    all_pairs: bool = False,
    test: str = "t",
    alpha: float = 0.05,
    correction: str = "holm",
    permutations: int = 10_000,
    bootstrap: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[dict[str, dict[str, float]], list[PairResult]]:
    """Means and paired statistics of aligned per-query values (pure; no I/O).

    For every measure and pair (:func:`pairs_to_test`): mean difference, bootstrap CI, paired
    t-test, randomization test, win/tie/loss and d_z; then the p-values of each test are
    corrected (``correction``) within the measure, and a pair is significant when the
    corrected p-value of ``test`` is ``<= alpha``.

    Returns:
        ``(means[system][measure], pairs)``.

    Example:
        >>> al = align({"b": {"m": {"q1": .2, "q2": .4, "q3": .1}}, "a": {"m": {"q1": .5, "q2": .6, "q3": .4}}}, ["m"])
        >>> means, (r,) = compare_values(al, ["b", "a"], "b")
        >>> round(r.diff, 4), (r.wins, r.ties, r.losses), r.p_fisher     # 3 queries: all 8 sign patterns
        (0.2667, (3, 0, 0), 0.25)
    """
    if baseline not in systems:
        raise ConfigError(f"--baseline {baseline!r} is not one of the systems: {', '.join(systems)}", key="baseline")
    S.TESTS.get(test)  # an unknown name lists the valid ones
    adjust = S.CORRECTIONS.get(correction)
    means = {s: {m: float(aligned.values[m][s].mean()) for m in aligned.values} for s in systems}
    pairs: list[PairResult] = []
    for m, vals in aligned.values.items():
        family: list[PairResult] = []
        for a, b in pairs_to_test(list(systems), baseline, all_pairs):
            x, y = vals[a], vals[b]
            tt = S.paired_t_test(x, y)
            lo, hi = S.bootstrap_ci(x, y, bootstrap, confidence, seed)
            w, t_, l_ = S.win_tie_loss(x, y)
            family.append(
                PairResult(
                    a=a,
                    b=b,
                    measure=m,
                    n=int(x.size),
                    mean_a=float(x.mean()),
                    mean_b=float(y.mean()),
                    diff=float((x - y).mean()),
                    ci_low=lo,
                    ci_high=hi,
                    t=tt.t,
                    p_t=tt.p,
                    p_fisher=S.randomization_test(x, y, permutations, seed),
                    wins=w,
                    ties=t_,
                    losses=l_,
                    d_z=S.effect_size(x, y),
                )
            )
        for r, pt, pf in zip(family, adjust([r.p_t for r in family]), adjust([r.p_fisher for r in family])):
            r.p_t_adj, r.p_fisher_adj = pt, pf
            chosen = pt if test == "t" else pf
            r.significant = bool(chosen <= alpha)
        pairs.extend(family)
    return means, pairs


# --------------------------------------------------------------------------- most-changed queries


def changed_queries(
    cmp: Comparison,
    systems: Mapping[str, System],
    judgements: Judgements | None,
    n: int = 10,
    k: int = 5,
    measure: str | None = None,
) -> list[dict[str, Any]]:
    """Per pair against the baseline, the ``n`` queries whose value changed most on ``measure``
    (default the first), with both systems' top ``k`` documents (or candidates) and their
    judgements: what a person reads to see why one system won.

    Returns:
        ``[{"a", "b", "measure", "queries": [{"qid", "text", "diff", "a", "b", "relevant",
        "top": {system: [{"id", "score", "grade", "title"}]}}]}]``.
    """
    measure = measure or cmp.measures[0]
    qids = cmp.aligned.qids[measure]
    vals = cmp.aligned.values[measure]
    qrels = judgements.qrels if judgements else {}
    out = []
    for r in cmp.pairs:
        if r.measure != measure or cmp.baseline not in (r.a, r.b):
            continue
        a, b = (r.a, r.b) if r.b == cmp.baseline else (r.b, r.a)
        d = vals[a] - vals[b]
        order = [i for i in np.argsort(-np.abs(d), kind="stable")[:n] if abs(d[i]) > S.TIE_TOL]
        rows = []
        for i in order:
            q = qids[i]
            if isinstance(systems[a], ResponseSystem):
                labels = systems[a].examples[q][1]
                grade = {f"#{j}": y for j, y in enumerate(labels)}
                relevant = [f"#{j}" for j, y in enumerate(labels) if y > 0]
                text = ""
            else:
                grade = qrels.get(q, {})
                relevant = [doc for doc, g in grade.items() if g >= M.RELEVANT]
                text = judgements.queries.get(q, "") if judgements else ""
            titles = judgements.titles if judgements else {}
            top = {
                s: [
                    {"id": doc, "score": score, "grade": grade.get(doc, 0), "title": titles.get(doc, "")}
                    for doc, score in systems[s].top(q, k)
                ]
                for s in (b, a)
            }
            rows.append(
                {
                    "qid": q,
                    "text": text,
                    "diff": float(d[i]),
                    "a": float(vals[a][i]),
                    "b": float(vals[b][i]),
                    "relevant": [{"id": doc, "title": titles.get(doc, "")} for doc in relevant],
                    "top": top,
                }
            )
        out.append({"a": a, "b": b, "measure": measure, "queries": rows})
    return out


# --------------------------------------------------------------------------- the whole command


def run_compare(cfg: CompareConfig, quiet: bool = False, warn: Any = None) -> Comparison:
    """Load, align, test, print and (``cfg.out``) write a comparison.

    Args:
        cfg: the settings (validated here).
        quiet: do not print the tables.
        warn: callable for the notes (default: print to stderr).

    Returns:
        The :class:`Comparison`.
    """
    import sys

    from ..provenance import versions
    from .compare_report import comparison_markdown, comparison_text, html_comparison

    cfg.validate()
    warn = warn or (lambda msg: print(f"note: {msg}", file=sys.stderr, flush=True))
    names = list(cfg.names) if cfg.names else [default_name(p) for p in cfg.runs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        where = "; ".join(f"{n}: {', '.join(p for p, m in zip(cfg.runs, names) if m == n)}" for n in dup)
        hint = "give distinct --names" if not cfg.names else "--names must be distinct"
        raise ConfigError(f"duplicate system name {', '.join(map(repr, dup))} ({where}); {hint}", key="names")
    baseline = cfg.baseline or names[0]
    if baseline not in names:
        raise ConfigError(f"--baseline {baseline!r} is not one of the systems: {', '.join(names)}", key="baseline")
    systems = [load_system(p, n) for p, n in zip(cfg.runs, names)]
    retrieval = all(isinstance(s, RetrievalSystem) for s in systems)  # mixed kinds: per_query_values says so
    judgements = load_judgements(cfg.qrels, cfg.split) if cfg.qrels and retrieval else None
    if cfg.qrels and not any(isinstance(s, RetrievalSystem) for s in systems):
        raise ConfigError(
            "--qrels is for retrieval runs; response-selection runs (scores.jsonl) carry their labels", key="qrels"
        )
    measures, values, notes = per_query_values(systems, cfg.measures, judgements, cfg.missing)
    task = "retrieval" if isinstance(systems[0], RetrievalSystem) else "response"
    aligned = align(values, measures, what="queries" if task == "retrieval" else "contexts")
    notes = notes + aligned.notes
    for note in notes:
        warn(note)
    means, pairs = compare_values(
        aligned,
        names,
        baseline,
        all_pairs=cfg.all_pairs,
        test=cfg.test,
        alpha=cfg.alpha,
        correction=cfg.correction,
        permutations=cfg.permutations,
        bootstrap=cfg.bootstrap,
        confidence=cfg.confidence,
        seed=cfg.seed,
    )
    settings = {**asdict(cfg), "names": names, "baseline": baseline, "measures": measures, "command": cli_args(cfg)}
    cmp = Comparison(names, baseline, measures, means, pairs, aligned, settings, notes, task)
    if not quiet:
        print(comparison_text(cmp))
    if cfg.out:
        by_name = {s.name: s for s in systems}
        changed = changed_queries(cmp, by_name, judgements, n=cfg.top_queries) if cfg.top_queries else []
        fingerprints = {s.name: uio.file_sha256(_run_file(s.source))[:16] for s in systems}
        if cfg.qrels:
            q = Path(cfg.qrels)
            fingerprints["qrels"] = uio.file_sha256(q / "qrels" / f"{cfg.split}.tsv" if q.is_dir() else q)[:16]
        write_comparison(
            cfg.out,
            cmp,
            changed,
            judgements,
            {"versions": versions(), "sources": {s.name: s.source for s in systems}, "sha256_16": fingerprints},
            markdown=comparison_markdown(cmp),
            html=html_comparison(cmp, changed),
        )
    return cmp


def cli_args(cfg: CompareConfig) -> list[str]:
    """The ``unirank compare`` arguments that reproduce ``cfg`` (defaults left out).

    Example:
        >>> cli_args(CompareConfig(runs=["runs/a", "runs/b"], qrels="data/scifact", all_pairs=True, seed=1))
        ['unirank', 'compare', 'runs/a', 'runs/b', '--qrels', 'data/scifact', '--all-pairs', '--seed', '1']
    """
    default = CompareConfig()
    args = ["unirank", "compare", *cfg.runs]
    for key in (
        "qrels",
        "split",
        "names",
        "measures",
        "baseline",
        "all_pairs",
        "test",
        "alpha",
        "correction",
        "permutations",
        "bootstrap",
        "confidence",
        "seed",
        "missing",
        "top_queries",
        "out",
    ):
        value = getattr(cfg, key)
        if value == getattr(default, key) or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag)
        else:
            args += [flag, ",".join(value) if isinstance(value, list) else str(value)]
    return args


def _run_file(source: str) -> Path:
    """The file a system was read from (``run.trec`` or ``scores.jsonl`` inside a folder)."""
    p = Path(source)
    if p.is_dir():
        return p / "run.trec" if (p / "run.trec").is_file() else p / "scores.jsonl"
    return p


def per_query_tsv(cmp: Comparison) -> str:
    """``measure <TAB> query <TAB> one column per system`` for every compared query.

    Example:
        >>> al = align({"x": {"m": {"q": 0.5}}, "y": {"m": {"q": 0.25}}}, ["m"])
        >>> per_query_tsv(Comparison(["x", "y"], "x", ["m"], {}, [], al, {})).splitlines()
        ['measure\\tquery\\tx\\ty', 'm\\tq\\t0.5\\t0.25']
    """
    lines = ["\t".join(["measure", "query", *cmp.systems])]
    for m in cmp.measures:
        for i, q in enumerate(cmp.aligned.qids[m]):
            lines.append("\t".join([m, q, *(repr(float(cmp.aligned.values[m][s][i])) for s in cmp.systems)]))
    return "\n".join(lines) + "\n"


def write_comparison(
    out: str | Path,
    cmp: Comparison,
    changed: list[dict[str, Any]],
    judgements: Judgements | None,
    info: dict[str, Any],
    markdown: str,
    html: str,
) -> None:
    """Write the output folder as a unit (:func:`unirank.io.atomic_dir`): built in a temporary
    sibling that takes ``out``'s place at the end; a failure leaves an earlier comparison as it
    was, and a non-empty folder without ``comparison.json`` is refused, never replaced."""
    with uio.atomic_dir(out, marker=OUTPUT_MARKER) as tmp:
        data = {**cmp.to_json(), "qrels": judgements.source if judgements else None, **info, "changed_queries": changed}
        uio.write_json(tmp / "comparison.json", _finite(data))
        uio.write_text(tmp / "comparison.md", markdown)
        uio.write_text(tmp / "per_query.tsv", per_query_tsv(cmp))
        uio.write_text(tmp / "report.html", html)


def _finite(obj: Any) -> Any:
    """JSON has no NaN / Infinity: write them as null / "inf" / "-inf"."""
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
