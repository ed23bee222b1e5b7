"""False-negative filters for hard-negative mining, one query at a time.

A miner retrieves a ranked candidate list for a query (BM25 or dense), optionally
rescores it with a cross-encoder teacher, and scores the query's positives with the
same scorer(s). It packs all of that into a :class:`CandidatePool`. Each filter
looks at a pool and returns a boolean *keep* mask; :func:`apply_filters` runs a
chain of them (the ``positives`` filter always first) and counts how many
candidates each one dropped. Everything here is pure: arrays and lists in,
arrays out, no I/O.

Conventions shared by every filter:

* **Strict inequalities.** A candidate is dropped when its score is *strictly*
  greater than the filter's threshold; a score exactly at the threshold is kept.
  Thresholds are plain floating-point arithmetic with no tolerance, so for
  instance ``0.6 - 0.05 == 0.5499999999999999`` and a score of 0.55 is dropped.
* **Several positives.** Filters anchored on "the positive's score" use the
  *minimum* positive score (NV-Retriever uses the single positive's score; with
  several, the minimum gives the lowest threshold, so the filter is the most
  conservative: it drops everything the strictest positive would drop).
  Positives whose score is NaN (not scored) are ignored; if none is scored the
  filter raises ``ValueError`` rather than silently keeping everything.
* **Missing candidate scores.** A candidate whose score is NaN (e.g. the teacher
  only rescored the top 50) cannot be judged and is kept.
* **Which score.** Score-based filters take ``use="miner"`` (the retriever's
  scores, ``pool.scores``) or ``use="teacher"`` (``pool.teacher``).

Example:
    >>> pool = CandidatePool(ids=["d1", "d2", "d3", "d4"], scores=[9.9, 9.5, 9.4, 3.0],
    ...                      pos_ids=["d1"], pos_scores=[10.0])
    >>> out = apply_filters(pool, [FILTERS.get("relative_margin")(p=0.05)])
    >>> out.pool.ids, out.dropped
    (['d2', 'd3', 'd4'], {'positives': 1, 'relative_margin': 0})
    >>> build_filters([{"name": "max_score", "threshold": 9.45}])[0](out.pool).tolist()
    [False, True, True]
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..config import construct
from ..errors import ConfigError
from ..registry import Registry

__all__ = [
    "FILTERS",
    "AbsoluteMargin",
    "CandidatePool",
    "Duplicates",
    "Filter",
    "Filtered",
    "MaxScore",
    "Positives",
    "RelativeMargin",
    "Teacher",
    "apply_filters",
    "build_filters",
    "jaccard",
    "normalize_text",
    "shingles",
]

#: filter name -> filter class; ``FILTERS.get(name)(**params)`` builds one from config
FILTERS: Registry[type[Filter]] = Registry("filter", name_attribute="name")

#: ``use=`` value -> (candidate attribute, positive attribute) of CandidatePool
_SOURCES: dict[str, tuple[str, str]] = {
    "miner": ("scores", "pos_scores"),
    "teacher": ("teacher", "pos_teacher"),
}


def _float_array(values: Any, name: str, length: int) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] != length:
        raise ValueError(f"{name} must have shape ({length},), got {arr.shape}")
    return arr


@dataclass(kw_only=True)
class CandidatePool:
    """The candidates of one query, with the scores filters and samplers need.

    Candidates are in rank order (best first). ``ranks`` holds each candidate's
    1-based rank in the miner's *original* list and survives :meth:`subset`, so
    samplers can count ranks in the original list after filtering.

    Args:
        ids: candidate doc ids, best first.
        scores: miner scores (descending by convention; not enforced, since a
            miner may order by the teacher instead).
        pos_ids: the query's positive doc ids.
        pos_scores: miner scores of the positives; ``None`` means not scored (NaN).
        texts: candidate texts (needed only by ``duplicates``).
        teacher: teacher scores of the candidates, NaN where missing; ``None`` = no teacher.
        pos_texts: positive texts (needed only by ``duplicates``).
        pos_teacher: teacher scores of the positives, NaN where missing.
        ranks: 1-based original ranks; default ``1..n``.

    Shapes:
        scores, teacher, ranks: ``(n,)`` with ``n = len(ids)``;
        pos_scores, pos_teacher: ``(p,)`` with ``p = len(pos_ids)``.

    Example:
        >>> pool = CandidatePool(ids=["a", "b", "c"], scores=[3.0, 2.0, 1.0], pos_ids=["x"])
        >>> pool.ranks.tolist(), pool.pos_scores.tolist()
        ([1, 2, 3], [nan])
        >>> sub = pool.subset([0, 2])
        >>> sub.ids, sub.ranks.tolist(), sub.scores.tolist()
        (['a', 'c'], [1, 3], [3.0, 1.0])
    """

    ids: list[str]
    scores: np.ndarray
    pos_ids: list[str]
    pos_scores: np.ndarray | None = None
    texts: list[str] | None = None
    teacher: np.ndarray | None = None
    pos_texts: list[str] | None = None
    pos_teacher: np.ndarray | None = None
    ranks: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.ids = list(self.ids)
        self.pos_ids = list(self.pos_ids)
        n, p = len(self.ids), len(self.pos_ids)
        self.scores = _float_array(self.scores, "scores", n)
        if self.pos_scores is None:
            self.pos_scores = np.full(p, np.nan)
        self.pos_scores = _float_array(self.pos_scores, "pos_scores", p)
        if self.teacher is not None:
            self.teacher = _float_array(self.teacher, "teacher", n)
        if self.pos_teacher is not None:
            self.pos_teacher = _float_array(self.pos_teacher, "pos_teacher", p)
        if self.texts is not None:
            self.texts = list(self.texts)
            if len(self.texts) != n:
                raise ValueError(f"texts must have {n} entries, got {len(self.texts)}")
        if self.pos_texts is not None:
            self.pos_texts = list(self.pos_texts)
            if len(self.pos_texts) != p:
                raise ValueError(f"pos_texts must have {p} entries, got {len(self.pos_texts)}")
        if self.ranks is None:
            self.ranks = np.arange(1, n + 1, dtype=np.int64)
        ranks = np.asarray(self.ranks)
        if ranks.ndim != 1 or ranks.shape[0] != n:
            raise ValueError(f"ranks must have shape ({n},), got {ranks.shape}")
        self.ranks = ranks.astype(np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: Sequence[int] | np.ndarray) -> CandidatePool:
        """The candidates at ``index`` (ints or a boolean mask), keeping the positives.

        Ranks are carried over, so ``subset`` of a subset still reports original ranks.
        """
        idx = np.asarray(index)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(f"mask must have shape ({len(self)},), got {idx.shape}")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        return CandidatePool(
            ids=[self.ids[i] for i in idx],
            scores=self.scores[idx],
            pos_ids=self.pos_ids,
            pos_scores=self.pos_scores,
            texts=None if self.texts is None else [self.texts[i] for i in idx],
            teacher=None if self.teacher is None else self.teacher[idx],
            pos_texts=self.pos_texts,
            pos_teacher=self.pos_teacher,
            ranks=self.ranks[idx],
        )

    def values(self, use: str) -> np.ndarray:
        """Candidate scores from ``use`` ("miner" or "teacher"); raises if absent."""
        cand, _ = _source(use)
        arr = getattr(self, cand)
        if arr is None:
            raise ValueError(f"pool has no {use} scores (CandidatePool.{cand} is None)")
        return arr

    def pos_values(self, use: str) -> np.ndarray:
        """Positive scores from ``use`` ("miner" or "teacher"); raises if absent."""
        _, pos = _source(use)
        arr = getattr(self, pos)
        if arr is None:
            raise ValueError(f"pool has no {use} scores for the positives (CandidatePool.{pos} is None)")
        return arr

    def min_positive(self, use: str) -> float:
        """The smallest non-NaN positive score from ``use``; raises if none is scored.

        Example:
            >>> CandidatePool(ids=[], scores=[], pos_ids=["p", "q", "r"],
            ...               pos_scores=[4.0, float("nan"), 2.5]).min_positive("miner")
            2.5
        """
        pos = self.pos_values(use)
        finite = pos[~np.isnan(pos)]
        if finite.size == 0:
            raise ValueError(
                f"no {use} score for any positive of this query (positives: {self.pos_ids}); "
                "a filter anchored on the positive score cannot run"
            )
        return float(finite.min())


def _source(use: str) -> tuple[str, str]:
    try:
        return _SOURCES[use]
    except KeyError:
        raise ConfigError(f"use={use!r} is not a score source; valid: {', '.join(_SOURCES)}") from None


class Filter:
    """Base class: ``filter(pool) -> keep`` where ``keep`` is a bool array of shape ``(len(pool),)``."""

    name: ClassVar[str] = "filter"

    def __call__(self, pool: CandidatePool) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


@FILTERS.register("positives")
@dataclass(frozen=True)
class Positives(Filter):
    """Drop candidates whose id is one of the query's positives (always applied first).

    Example:
        >>> pool = CandidatePool(ids=["a", "p", "b"], scores=[3.0, 2.0, 1.0], pos_ids=["p"])
        >>> Positives()(pool).tolist()
        [True, False, True]
    """

    def __call__(self, pool: CandidatePool) -> np.ndarray:
        pos = set(pool.pos_ids)
        return np.array([i not in pos for i in pool.ids], dtype=bool)


_WS = re.compile(r"\s+")
_WORD = re.compile(r"\w+")


@functools.lru_cache(maxsize=1 << 16)  # corpus texts recur across queries' candidate lists
def normalize_text(text: str) -> str:
    """Lowercase and collapse runs of whitespace to one space (stripped at both ends).

    Example:
        >>> normalize_text("  The  Cat\\n sat ")
        'the cat sat'
    """
    return _WS.sub(" ", text.lower()).strip()


@functools.lru_cache(maxsize=1 << 16)  # was ~70% of BM25 mining time on SciFact uncached
def shingles(text: str, k: int = 3) -> frozenset[tuple[str, ...]]:
    """The set of word ``k``-shingles of ``text`` (lowercased ``\\w+`` tokens, punctuation ignored).

    A text with fewer than ``k`` words (but at least one) gives one shingle, the
    whole token sequence; a text without words gives the empty set.

    Example:
        >>> sorted(shingles("A b, c d!", k=3))
        [('a', 'b', 'c'), ('b', 'c', 'd')]
        >>> shingles("Hi there", k=3)
        frozenset({('hi', 'there')})
    """
    if k < 1:
        raise ValueError(f"shingle size must be >= 1, got {k}")
    tokens = _WORD.findall(text.lower())
    if not tokens:
        return frozenset()
    if len(tokens) < k:
        return frozenset([tuple(tokens)])
    return frozenset(tuple(tokens[i : i + k]) for i in range(len(tokens) - k + 1))


def jaccard(a: frozenset | set, b: frozenset | set) -> float:
    """``|a & b| / |a | b|``; 0.0 when both are empty.

    Example:
        >>> jaccard({1, 2, 3}, {2, 3, 4})
        0.5
    """
    union = len(a | b)
    return len(a & b) / union if union else 0.0


@FILTERS.register("duplicates")
@dataclass(frozen=True)
class Duplicates(Filter):
    """Drop candidates whose text duplicates a positive's text, exactly or nearly.

    * exact: ``normalize_text(candidate) == normalize_text(positive)``;
    * near: Jaccard similarity of the word ``shingle``-shingle sets (see
      :func:`shingles`) ``>= threshold``.

    Only candidate-vs-positive pairs are compared (not candidates among
    themselves). Empty texts (after normalisation) are never duplicates.

    Args:
        threshold: near-duplicate Jaccard threshold in ``[0, 1]``, inclusive (default 0.9).
        shingle: words per shingle (default 3).

    Raises:
        ValueError: when the pool has no candidate or positive texts.

    Example:
        >>> pool = CandidatePool(ids=["a", "b", "c"], scores=[3, 2, 1], pos_ids=["p"],
        ...     texts=["the cat sat on the mat", "THE  cat sat on the mat", "dogs bark"],
        ...     pos_texts=["The cat sat on the mat."])
        >>> Duplicates()(pool).tolist()
        [False, False, True]
    """

    threshold: float = 0.9
    shingle: int = 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"duplicates: threshold must be in [0, 1], got {self.threshold}")
        if self.shingle < 1:
            raise ConfigError(f"duplicates: shingle must be >= 1, got {self.shingle}")

    def __call__(self, pool: CandidatePool) -> np.ndarray:
        if pool.texts is None or pool.pos_texts is None:
            raise ValueError("the duplicates filter needs CandidatePool.texts and CandidatePool.pos_texts")
        pos_norm = {t for t in (normalize_text(x) for x in pool.pos_texts) if t}
        pos_sh = [s for s in (shingles(x, self.shingle) for x in pool.pos_texts) if s]
        keep = np.ones(len(pool), dtype=bool)
        for i, text in enumerate(pool.texts):
            norm = normalize_text(text)
            if not norm:
                continue
            if norm in pos_norm:
                keep[i] = False
                continue
            sh = shingles(text, self.shingle)
            if sh and any(jaccard(sh, p) >= self.threshold for p in pos_sh):
                keep[i] = False
        return keep


@FILTERS.register("absolute_margin")
@dataclass(frozen=True)
class AbsoluteMargin(Filter):
    """NV-Retriever TopK-MarginPos: drop a candidate if ``score > min_pos - margin``.

    ``min_pos`` is the minimum positive score (see the module notes). The margin is
    in the scorer's units, so it has no default: 0.05 suits cosine scores, BM25
    needs a much larger one.

    Args:
        margin: how far below the positive a negative must score (may be 0 or negative).
        use: "miner" or "teacher".

    Example:
        >>> pool = CandidatePool(ids=["a", "b", "c"], scores=[9.9, 9.5, 9.4],
        ...                      pos_ids=["p"], pos_scores=[10.0])
        >>> AbsoluteMargin(margin=0.5)(pool).tolist()   # threshold 9.5; 9.5 itself is kept
        [False, True, True]
    """

    margin: float
    use: str = "miner"

    def __post_init__(self) -> None:
        _source(self.use)

    def __call__(self, pool: CandidatePool) -> np.ndarray:
        threshold = pool.min_positive(self.use) - self.margin
        return ~(pool.values(self.use) > threshold)


@FILTERS.register("relative_margin")
@dataclass(frozen=True)
class RelativeMargin(Filter):
    """NV-Retriever TopK-PercPos: drop a candidate scoring above ``(1 - p)`` of the positive.

    The threshold is ``min_pos - p * |min_pos|``. For ``min_pos >= 0`` this is
    exactly NV-Retriever's ``pos_score * percentage`` with ``percentage = 1 - p``
    (their 95% is ``p = 0.05``). For a negative positive score (possible with
    cosine or dot products, never with BM25) the literal ``(1 - p) * pos`` would
    lie *above* the positive and keep negatives that outscore it, defeating the
    filter; using ``|min_pos|`` keeps the threshold ``p * |min_pos|`` below the
    positive on either side of zero. At ``min_pos = 0`` the threshold is 0.

    Args:
        p: relative margin in ``[0, 1]`` (default 0.05).
        use: "miner" or "teacher".

    Example:
        >>> pool = CandidatePool(ids=["a", "b", "c"], scores=[9.9, 9.5, 9.4],
        ...                      pos_ids=["p"], pos_scores=[10.0])
        >>> RelativeMargin(p=0.05)(pool).tolist()   # threshold 9.5; 9.5 itself is kept
        [False, True, True]
        >>> neg = CandidatePool(ids=["a", "b", "c"], scores=[-10.4, -10.5, -10.6],
        ...                     pos_ids=["p"], pos_scores=[-10.0])
        >>> RelativeMargin(p=0.05)(neg).tolist()   # threshold -10.5
        [False, True, True]
    """

    p: float = 0.05
    use: str = "miner"

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ConfigError(f"relative_margin: p must be in [0, 1], got {self.p}")
        _source(self.use)

    def threshold(self, pool: CandidatePool) -> float:
        """The score above which candidates are dropped."""
        pos = pool.min_positive(self.use)
        return pos - self.p * abs(pos)

    def __call__(self, pool: CandidatePool) -> np.ndarray:
        return ~(pool.values(self.use) > self.threshold(pool))


@FILTERS.register("max_score")
@dataclass(frozen=True)
class MaxScore(Filter):
    """Drop candidates with ``score > threshold`` (an absolute cap, no positive needed).

    Args:
        threshold: the cap, in the scorer's units.
        use: "miner" or "teacher".

    Example:
        >>> pool = CandidatePool(ids=["a", "b", "c"], scores=[0.9, 0.8, 0.7], pos_ids=[])
        >>> MaxScore(threshold=0.8)(pool).tolist()
        [False, True, True]
    """

    threshold: float
    use: str = "miner"

    def __post_init__(self) -> None:
        _source(self.use)

    def __call__(self, pool: CandidatePool) -> np.ndarray:
        return ~(pool.values(self.use) > self.threshold)


@FILTERS.register("teacher")
@dataclass(frozen=True)
class Teacher(Filter):
    """Drop negatives the teacher (cross-encoder) scores too high (RocketQA-style denoising).

    A candidate is dropped if ``teacher > threshold`` (when ``threshold`` is set)
    or ``teacher > min_pos_teacher - margin`` (when ``margin`` is set). At least
    one must be set. Candidates without a teacher score (NaN: ranked beyond
    ``teacher.depth``) are kept unless ``unscored="drop"`` - then only vetted candidates
    remain (set ``teacher.depth`` >= ``depth`` to vet them all).

    Args:
        threshold: absolute cap on the teacher score.
        margin: how far below the (minimum) positive's teacher score a negative must be.
        unscored: ``keep`` (default) or ``drop`` candidates the teacher did not score.

    Example:
        >>> pool = CandidatePool(ids=["a", "b", "c"], scores=[3, 2, 1], pos_ids=["p"],
        ...                      teacher=[0.95, 0.7, float("nan")], pos_teacher=[0.9])
        >>> Teacher(threshold=0.9)(pool).tolist()
        [False, True, True]
        >>> Teacher(margin=0.25)(pool).tolist()   # threshold 0.9 - 0.25 = 0.65
        [False, False, True]
        >>> Teacher(threshold=0.9, unscored="drop")(pool).tolist()
        [False, True, False]
    """

    threshold: float | None = None
    margin: float | None = None
    unscored: str = "keep"

    def __post_init__(self) -> None:
        if self.threshold is None and self.margin is None:
            raise ConfigError("teacher filter: set threshold, margin, or both")
        if self.unscored not in ("keep", "drop"):
            raise ConfigError(f"teacher filter: unscored={self.unscored!r}; valid: keep, drop")

    def __call__(self, pool: CandidatePool) -> np.ndarray:
        keep = np.ones(len(pool), dtype=bool)
        if self.threshold is not None:
            keep &= MaxScore(self.threshold, use="teacher")(pool)
        if self.margin is not None:
            keep &= AbsoluteMargin(self.margin, use="teacher")(pool)
        if self.unscored == "drop":
            keep &= np.isfinite(np.asarray(pool.teacher, dtype=float))
        return keep


@dataclass(frozen=True)
class Filtered:
    """The result of :func:`apply_filters`.

    Attributes:
        pool: the surviving candidates (original ranks kept).
        dropped: filter name -> how many candidates it dropped, in run order. Each
            filter sees only what earlier filters kept, so the counts add up to the
            total dropped. A name used twice gets a suffix (``max_score#2``).
        dropped_ids: ids of all dropped candidates, in rank order (a miner can
            exclude them from random draws).
    """

    pool: CandidatePool
    dropped: dict[str, int] = field(default_factory=dict)
    dropped_ids: tuple[str, ...] = ()


def apply_filters(pool: CandidatePool, filters: Iterable[Filter]) -> Filtered:
    """Run ``filters`` in order on ``pool``, with :class:`Positives` always first.

    A ``Positives`` filter is prepended unless ``filters`` already starts with one.

    Args:
        pool: one query's candidates.
        filters: filter instances, e.g. from :func:`build_filters`.

    Returns:
        :class:`Filtered` with the surviving pool and per-filter drop counts.

    Example:
        >>> pool = CandidatePool(ids=["p", "a", "b", "c"], scores=[5.0, 4.9, 4.0, 1.0],
        ...                      pos_ids=["p"], pos_scores=[5.0])
        >>> out = apply_filters(pool, [AbsoluteMargin(margin=0.5), MaxScore(threshold=2.0)])
        >>> out.pool.ids, out.pool.ranks.tolist(), out.dropped, out.dropped_ids
        (['c'], [4], {'positives': 1, 'absolute_margin': 1, 'max_score': 1}, ('p', 'a', 'b'))
    """
    chain = list(filters)
    if not chain or not isinstance(chain[0], Positives):
        chain.insert(0, Positives())
    alive = np.arange(len(pool))
    current = pool
    dropped: dict[str, int] = {}
    for f in chain:
        keep = np.asarray(f(current), dtype=bool)
        if keep.shape != (len(current),):
            raise ValueError(f"filter {f.name!r} returned shape {keep.shape}, expected ({len(current)},)")
        key, k = f.name, 2
        while key in dropped:
            key, k = f"{f.name}#{k}", k + 1
        dropped[key] = int((~keep).sum())
        alive = alive[keep]
        current = current.subset(keep)
    gone = np.ones(len(pool), dtype=bool)
    gone[alive] = False
    return Filtered(pool=current, dropped=dropped, dropped_ids=tuple(pool.ids[i] for i in np.flatnonzero(gone)))


def build_filters(specs: Iterable[Mapping[str, Any]]) -> list[Filter]:
    """Build filters from config entries ``{"name": <registered name>, **params}``.

    Raises:
        ConfigError: unknown filter name or parameters (the message names the filter).

    Example:
        >>> [f.name for f in build_filters([{"name": "relative_margin", "p": 0.1},
        ...                                 {"name": "teacher", "threshold": 0.9}])]
        ['relative_margin', 'teacher']
        >>> build_filters([{"name": "relative_margin", "q": 1}])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: filter 'relative_margin': unknown parameter(s) q; valid: ...
    """
    out: list[Filter] = []
    for spec in specs:
        params = dict(spec)
        name = params.pop("name", None)
        if name is None:
            raise ConfigError(f"filter entry {dict(spec)!r} has no 'name'; valid: {', '.join(FILTERS.names())}")
        try:
            cls = FILTERS.get(name)
        except KeyError as e:
            raise ConfigError(e.args[0]) from None
        out.append(construct(cls, params, f"filter {name!r}"))
    return out
