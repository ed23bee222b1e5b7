"""Negative samplers: choose ``n`` negatives for one query from its filtered pool.

Every sampler is called as ``sampler(pool, n, ctx) -> Picked`` where ``pool`` is
the :class:`~unirank.negatives.filters.CandidatePool` that survived the filters,
``n`` is how many negatives are wanted and ``ctx`` a :class:`SampleContext`
holding the random generator (and, for corpus-wide random negatives, the corpus
ids). Samplers are deterministic given ``ctx.rng``'s state.

A :class:`Picked` holds indices into the pool, ascending (that is, in rank
order), plus ids drawn from outside the pool (random negatives have no miner
score). If fewer than ``n`` candidates are available, a sampler returns what is
there; the caller counts queries with too few negatives.

Ranks (``range_min``, ``range_max``) count positions in the miner's *original*
candidate list, before filtering (``pool.ranks``, 1-based). A window
``[range_min, range_max)`` of 0-based positions is the candidates with
``range_min < rank <= range_max``: ``range_min=10`` skips the ten best-ranked
candidates (as in sentence-transformers' ``mine_hard_negatives``), and
``range_max=None`` means no upper limit.

Example:
    >>> import numpy as np
    >>> from unirank.negatives.filters import CandidatePool
    >>> pool = CandidatePool(ids=list("abcdef"), scores=[6, 5, 4, 3, 2, 1], pos_ids=["p"])
    >>> ctx = SampleContext(rng=np.random.default_rng(0))
    >>> SAMPLERS.get("top")(range_min=1)(pool, 2, ctx).ids(pool)
    ['b', 'c']
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..config import construct
from ..errors import ConfigError
from ..registry import Registry
from .filters import CandidatePool

__all__ = [
    "SAMPLERS",
    "Mixed",
    "Picked",
    "RandomCorpus",
    "RangeSampler",
    "SampleContext",
    "Sampler",
    "SimANS",
    "Top",
    "build_sampler",
    "draw_from_corpus",
    "gumbel_top_k",
    "simans_probs",
]

#: sampler name -> sampler class; ``SAMPLERS.get(name)(**params)`` builds one from config
SAMPLERS: Registry[type[Sampler]] = Registry("sampler", name_attribute="name")


@dataclass(frozen=True)
class SampleContext:
    """What a sampler may need besides the pool.

    Args:
        rng: the random generator (the only source of randomness).
        corpus_ids: every doc id of the corpus, indexable (needed by ``random`` and
            ``mixed``; build it once per run, e.g. ``list(corpus)``).
        exclude: ids random draws must avoid besides the positives (e.g. the
            candidates the filters dropped as likely false negatives).
    """

    rng: np.random.Generator
    corpus_ids: Sequence[str] | None = None
    exclude: Collection[str] = frozenset()


@dataclass(frozen=True)
class Picked:
    """The negatives a sampler chose for one query.

    Attributes:
        index: ``(k,)`` int64 positions in the pool, ascending (= rank order).
        outside_ids: ids drawn from the corpus that are not in the pool, in draw
            order (random negatives; they have no miner score).
    """

    index: np.ndarray
    outside_ids: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.index) + len(self.outside_ids)

    def ids(self, pool: CandidatePool) -> list[str]:
        """Pool ids at ``index`` (rank order), then ``outside_ids``."""
        return [pool.ids[i] for i in self.index] + list(self.outside_ids)


def _picked(index: Sequence[int] | np.ndarray, outside: Sequence[str] = ()) -> Picked:
    return Picked(index=np.sort(np.asarray(index, dtype=np.int64).reshape(-1)), outside_ids=tuple(outside))


def _check_n(n: int) -> None:
    if n < 0:
        raise ValueError(f"number of negatives must be >= 0, got {n}")


def _check_window(kind: str, range_min: int, range_max: int | None) -> None:
    if range_min < 0:
        raise ConfigError(f"{kind}: range_min must be >= 0, got {range_min}")
    if range_max is not None and range_max < range_min:
        raise ConfigError(f"{kind}: range_max ({range_max}) must be >= range_min ({range_min})")


def _window(pool: CandidatePool, range_min: int, range_max: int | None) -> np.ndarray:
    """Pool positions whose original 1-based rank r satisfies range_min < r <= range_max."""
    ok = pool.ranks > range_min
    if range_max is not None:
        ok &= pool.ranks <= range_max
    return np.flatnonzero(ok)


class Sampler:
    """Base class: ``sampler(pool, n, ctx) -> Picked``."""

    name: ClassVar[str] = "sampler"

    def __call__(self, pool: CandidatePool, n: int, ctx: SampleContext) -> Picked:  # pragma: no cover
        raise NotImplementedError


@SAMPLERS.register("top")
@dataclass(frozen=True)
class Top(Sampler):
    """The ``n`` best-ranked surviving candidates after skipping the first ``range_min`` ranks.

    Deterministic (``ctx.rng`` is not used).

    Args:
        range_min: original ranks ``1..range_min`` are skipped (default 0).
        range_max: only original ranks ``<= range_max`` are eligible (default: all).

    Example:
        >>> import numpy as np
        >>> from unirank.negatives.filters import CandidatePool
        >>> pool = CandidatePool(ids=["b", "d", "e"], scores=[5, 3, 2], pos_ids=[], ranks=[2, 4, 5])
        >>> Top(range_min=2)(pool, 2, SampleContext(np.random.default_rng(0))).index.tolist()
        [1, 2]
    """

    range_min: int = 0
    range_max: int | None = None

    def __post_init__(self) -> None:
        _check_window("top", self.range_min, self.range_max)

    def __call__(self, pool: CandidatePool, n: int, ctx: SampleContext) -> Picked:
        _check_n(n)
        return _picked(_window(pool, self.range_min, self.range_max)[:n])


@SAMPLERS.register("range")
@dataclass(frozen=True)
class RangeSampler(Sampler):
    """``n`` candidates uniformly without replacement from the window ``range_min < rank <= range_max``.

    Args:
        range_min: original ranks ``1..range_min`` are skipped (default 0).
        range_max: only original ranks ``<= range_max`` are eligible (default: all).

    Example:
        >>> import numpy as np
        >>> from unirank.negatives.filters import CandidatePool
        >>> pool = CandidatePool(ids=list("abcdefgh"), scores=np.arange(8.0)[::-1], pos_ids=[])
        >>> idx = RangeSampler(range_min=2, range_max=6)(pool, 3, SampleContext(np.random.default_rng(0))).index
        >>> len(idx), bool(np.all((idx >= 2) & (idx < 6)))
        (3, True)
    """

    range_min: int = 0
    range_max: int | None = None

    def __post_init__(self) -> None:
        _check_window("range", self.range_min, self.range_max)

    def __call__(self, pool: CandidatePool, n: int, ctx: SampleContext) -> Picked:
        _check_n(n)
        eligible = _window(pool, self.range_min, self.range_max)
        k = min(n, eligible.size)
        return _picked(ctx.rng.choice(eligible, size=k, replace=False) if k else [])


def draw_from_corpus(
    corpus_ids: Sequence[str], n: int, exclude: Collection[str], rng: np.random.Generator
) -> list[int]:
    """``n`` distinct positions of ``corpus_ids`` drawn uniformly, avoiding ids in ``exclude``.

    Uses rejection sampling when the corpus is large compared with ``n`` and
    ``exclude`` (no pass over the corpus), and an exact draw from the enumerated
    allowed positions otherwise. Returns fewer than ``n`` positions only if fewer
    are allowed. The result is in draw order.

    Example:
        >>> import numpy as np
        >>> pos = draw_from_corpus(["a", "b", "c", "d"], 5, {"b"}, np.random.default_rng(0))
        >>> sorted(pos)
        [0, 2, 3]
    """
    _check_n(n)
    size = len(corpus_ids)
    excluded = exclude if isinstance(exclude, (set, frozenset)) else set(exclude)
    if size <= 4 * (n + len(excluded)):
        allowed = np.array([i for i, d in enumerate(corpus_ids) if d not in excluded], dtype=np.int64)
        k = min(n, allowed.size)
        return [int(i) for i in rng.choice(allowed, size=k, replace=False)] if k else []
    # at least 3/4 of the corpus is allowed, so each batch accepts most of its draws
    chosen: list[int] = []
    seen: set[int] = set()
    while len(chosen) < n:
        for i in rng.integers(0, size, size=2 * (n - len(chosen))):
            i = int(i)
            if i not in seen and corpus_ids[i] not in excluded:
                seen.add(i)
                chosen.append(i)
                if len(chosen) == n:
                    break
    return chosen


def _random_negatives(pool: CandidatePool, n: int, ctx: SampleContext, taken: Collection[str] = ()) -> Picked:
    if ctx.corpus_ids is None:
        raise ValueError("random negatives need SampleContext.corpus_ids")
    exclude = set(pool.pos_ids) | set(ctx.exclude) | set(taken)
    where = {d: i for i, d in enumerate(pool.ids)}
    index, outside = [], []
    for c in draw_from_corpus(ctx.corpus_ids, n, exclude, ctx.rng):
        doc = ctx.corpus_ids[c]
        if doc in where:
            index.append(where[doc])
        else:
            outside.append(doc)
    return _picked(index, outside)


@SAMPLERS.register("random")
@dataclass(frozen=True)
class RandomCorpus(Sampler):
    """``n`` negatives drawn uniformly from the whole corpus, never a positive.

    Draws avoid ``pool.pos_ids`` and ``ctx.exclude``. A draw that lands on a pool
    candidate is reported by its pool index (so it keeps its score); others go to
    ``Picked.outside_ids``.

    Example:
        >>> import numpy as np
        >>> from unirank.negatives.filters import CandidatePool
        >>> pool = CandidatePool(ids=["a"], scores=[1.0], pos_ids=["p"])
        >>> ctx = SampleContext(np.random.default_rng(0), corpus_ids=["a", "p", "x", "y"])
        >>> sorted(RandomCorpus()(pool, 5, ctx).ids(pool))
        ['a', 'x', 'y']
    """

    def __call__(self, pool: CandidatePool, n: int, ctx: SampleContext) -> Picked:
        return _random_negatives(pool, n, ctx)


def simans_probs(scores: np.ndarray, pos_score: float, a: float = 1.0, b: float = 0.0) -> np.ndarray:
    """SimANS sampling probabilities ``p_i ∝ exp(-a * (s_i - s_pos - b)^2)``.

    This is the formula of the paper (Zhou et al., EMNLP 2022, "SimANS: Simple
    Ambiguous Negatives Sampling for Dense Text Retrieval", and the SimXNS README):
    the weight peaks at ``s_i = s_pos + b``, so ``b < 0`` favours negatives scoring
    a little below the positive. Beware: the official training code for MS MARCO
    documents (``SimANS/utils/MARCO_until_Doc.py``) computes
    ``exp(-(s_i - s_pos + b)^2 * a)``, i.e. its ``b`` is minus ours, and the
    passage code uses ``exp(-|s_i - s_pos| * tau)``. With the default ``b = 0``
    all of these squared forms agree.

    Computed in log space (max subtracted before ``exp``), so large ``a`` or far
    scores do not overflow or give 0/0. NaN scores get probability 0.

    Args:
        scores: candidate scores.
        pos_score: the positive's score.
        a: sharpness (> 0).
        b: offset of the peak from the positive's score.

    Shapes:
        scores: ``(n,)``; returns ``(n,)``, summing to 1 (all zeros if every score is NaN).

    Example:
        >>> import numpy as np
        >>> p = simans_probs(np.array([1.0, 0.0, 2.0]), pos_score=1.0, a=1.0, b=0.0)
        >>> w = np.exp([0.0, -1.0, -1.0]); np.allclose(p, w / w.sum())
        True
        >>> p.round(4).tolist()   # e/(e+2), 1/(e+2), 1/(e+2)
        [0.5761, 0.2119, 0.2119]
    """
    logw = _simans_logw(np.asarray(scores, dtype=np.float64), pos_score, a, b)
    if logw.size == 0 or not np.isfinite(logw).any():
        return np.zeros(logw.shape)
    w = np.exp(logw - logw.max())
    return w / w.sum()


def _simans_logw(scores: np.ndarray, pos_score: float, a: float, b: float) -> np.ndarray:
    logw = -a * (scores - pos_score - b) ** 2
    return np.where(np.isnan(logw), -np.inf, logw)


def gumbel_top_k(logw: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Sample ``k`` indices without replacement with probabilities ``∝ exp(logw)``.

    Gumbel-top-k: the ``k`` largest ``logw + Gumbel(0, 1)`` keys. This is the same
    distribution as successive sampling, i.e. ``rng.choice(len(logw), k,
    replace=False, p=softmax(logw))``, but works in log space, so weights that
    would underflow to 0 in ``p`` stay sampleable. Entries with ``logw = -inf``
    are never chosen; ``k`` is capped at the number of finite entries.

    Shapes:
        logw: ``(n,)``; returns ``(min(k, #finite),)`` indices in draw order.

    Example:
        >>> import numpy as np
        >>> gumbel_top_k(np.array([0.0, -np.inf, -1000.0]), 5, np.random.default_rng(0)).tolist()
        [0, 2]
    """
    keys = logw + rng.gumbel(size=logw.shape)
    k = min(k, int(np.isfinite(logw).sum()))
    return np.argsort(-keys, kind="stable")[:k]


_POSITIVE_CHOICES = ("mean", "min", "max", "first", "random")


@SAMPLERS.register("simans")
@dataclass(frozen=True)
class SimANS(Sampler):
    """SimANS: sample ambiguous negatives, those scoring near the positive.

    ``n`` candidates are drawn without replacement with probabilities
    :func:`simans_probs` (see it for the sign convention of ``b``), by
    :func:`gumbel_top_k` (distributed exactly like ``rng.choice(replace=False,
    p=...)``, without underflow). The official code instead redraws with
    replacement and truncates a set, which is only approximately this.
    Candidates whose score is NaN are never drawn.

    Args:
        a: sharpness (default 1.0; scale it to the scorer's units).
        b: peak offset from the positive's score (default 0.0).
        use: "miner" (the retriever's scores, as in the paper) or "teacher".
        positive: which positive score anchors the distribution when a query has
            several: "mean" (default), "min", "max", "first", or "random" (one
            positive drawn with ``ctx.rng``, as the official training code does).
            NaN positive scores are ignored.

    Example:
        >>> import numpy as np
        >>> from unirank.negatives.filters import CandidatePool
        >>> pool = CandidatePool(ids=["a", "b", "c", "d"], scores=[9.0, 5.0, 1.0, -3.0],
        ...                      pos_ids=["p"], pos_scores=[5.0])
        >>> SimANS(a=10.0)(pool, 1, SampleContext(np.random.default_rng(0))).ids(pool)
        ['b']
    """

    a: float = 1.0
    b: float = 0.0
    use: str = "miner"
    positive: str = "mean"

    def __post_init__(self) -> None:
        if not self.a > 0:
            raise ConfigError(f"simans: a must be > 0, got {self.a}")
        if self.use not in ("miner", "teacher"):
            raise ConfigError(f"simans: use={self.use!r} is not a score source; valid: miner, teacher")
        if self.positive not in _POSITIVE_CHOICES:
            raise ConfigError(f"simans: positive={self.positive!r}; valid: {', '.join(_POSITIVE_CHOICES)}")

    def anchor(self, pool: CandidatePool, rng: np.random.Generator) -> float:
        """The positive score the distribution is centred on (before ``b``)."""
        pos = pool.pos_values(self.use)
        pos = pos[~np.isnan(pos)]
        if pos.size == 0:
            raise ValueError(f"simans needs a {self.use} score for a positive (positives: {pool.pos_ids})")
        if self.positive == "random":
            return float(pos[rng.integers(pos.size)])
        reduce = {"mean": np.mean, "min": np.min, "max": np.max, "first": lambda x: x[0]}[self.positive]
        return float(reduce(pos))

    def probs(self, pool: CandidatePool, pos_score: float) -> np.ndarray:
        """Per-candidate sampling probabilities for this pool (first draw)."""
        return simans_probs(pool.values(self.use), pos_score, self.a, self.b)

    def __call__(self, pool: CandidatePool, n: int, ctx: SampleContext) -> Picked:
        _check_n(n)
        if n == 0 or len(pool) == 0:
            return _picked([])
        pos = self.anchor(pool, ctx.rng)
        logw = _simans_logw(pool.values(self.use), pos, self.a, self.b)
        return _picked(gumbel_top_k(logw, n, ctx.rng))


@SAMPLERS.register("mixed")
@dataclass(frozen=True)
class Mixed(Sampler):
    """STAR-style mix: ``n - n_random`` hard negatives from a pool sampler plus ``n_random`` random ones.

    The hard part is drawn first by the sampler named ``hard`` (built with
    ``hard_params``); the random part is drawn from the corpus avoiding the
    positives, ``ctx.exclude`` and the hard picks, so there are no duplicates.
    If the pool has too few hard candidates the random part is *not* enlarged.

    Args:
        n_random: how many of the ``n`` negatives are random (capped at ``n``).
        hard: registered name of the hard sampler (default "top").
        hard_params: its parameters, e.g. ``{"range_min": 5}``.

    Example:
        >>> import numpy as np
        >>> from unirank.negatives.filters import CandidatePool
        >>> pool = CandidatePool(ids=["a", "b", "c"], scores=[3, 2, 1], pos_ids=["p"])
        >>> ctx = SampleContext(np.random.default_rng(0), corpus_ids=["a", "b", "c", "p", "x"])
        >>> got = Mixed(n_random=2)(pool, 3, ctx).ids(pool)
        >>> got[0], len(set(got)), "p" in got
        ('a', 3, False)
    """

    n_random: int
    hard: str = "top"
    hard_params: Mapping[str, Any] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.n_random < 0:
            raise ConfigError(f"mixed: n_random must be >= 0, got {self.n_random}")
        if self.hard == "mixed":
            raise ConfigError("mixed: hard cannot be 'mixed'")
        # resolve now so a bad name or parameter fails at config time
        object.__setattr__(self, "_hard", build_sampler({"name": self.hard, **dict(self.hard_params or {})}))

    def __call__(self, pool: CandidatePool, n: int, ctx: SampleContext) -> Picked:
        _check_n(n)
        n_rand = min(self.n_random, n)
        hard = self._hard(pool, n - n_rand, ctx)  # type: ignore[attr-defined]
        taken = hard.ids(pool)
        rand = _random_negatives(pool, n_rand, ctx, taken=taken) if n_rand else _picked([])
        return _picked(np.concatenate([hard.index, rand.index]), hard.outside_ids + rand.outside_ids)


def build_sampler(spec: Mapping[str, Any]) -> Sampler:
    """Build a sampler from a config entry ``{"name": <registered name>, **params}``.

    Raises:
        ConfigError: unknown sampler name or parameters.

    Example:
        >>> build_sampler({"name": "simans", "a": 0.5, "b": -0.1})
        SimANS(a=0.5, b=-0.1, use='miner', positive='mean')
    """
    params = dict(spec)
    name = params.pop("name", None)
    if name is None:
        raise ConfigError(f"sampler entry {dict(spec)!r} has no 'name'; valid: {', '.join(SAMPLERS.names())}")
    try:
        cls = SAMPLERS.get(name)
    except KeyError as e:
        raise ConfigError(e.args[0]) from None
    return construct(cls, params, f"sampler {name!r}")
