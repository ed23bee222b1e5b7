"""Negative samplers: ranks, reproducibility, SimANS probabilities and sampling frequencies."""

from __future__ import annotations

import math
from itertools import permutations

import numpy as np
import pytest
from scipy.stats import chisquare

from unirank.errors import ConfigError
from unirank.negatives.filters import CandidatePool
from unirank.negatives.samplers import (
    SAMPLERS,
    Mixed,
    RandomCorpus,
    RangeSampler,
    SampleContext,
    SimANS,
    Top,
    build_sampler,
    draw_from_corpus,
    gumbel_top_k,
    simans_probs,
)


def ctx(seed=0, **kw) -> SampleContext:
    return SampleContext(rng=np.random.default_rng(seed), **kw)


def pool_n(n, pos_scores=(0.0,), **kw) -> CandidatePool:
    return CandidatePool(
        ids=[f"d{i}" for i in range(n)], scores=np.linspace(1.0, -1.0, n), pos_ids=["p"], pos_scores=pos_scores, **kw
    )


def test_registry_has_every_sampler():
    assert SAMPLERS.names() == ["mixed", "random", "range", "simans", "top"]


# ---------------------------------------------------------------- top / range


def test_top_counts_ranks_in_the_original_list():
    # original ranks 1..8; the filters dropped ranks 1, 3, 6
    pool = pool_n(8).subset([1, 3, 4, 6, 7])
    assert pool.ranks.tolist() == [2, 4, 5, 7, 8]
    assert Top()(pool, 2, ctx()).index.tolist() == [0, 1]  # ranks 2, 4
    assert Top(range_min=4)(pool, 2, ctx()).index.tolist() == [2, 3]  # ranks 5, 7 (ranks 1-4 skipped)
    assert Top(range_min=4, range_max=7)(pool, 5, ctx()).index.tolist() == [2, 3]  # window too small
    assert Top(range_min=4)(pool, 10, ctx()).ids(pool) == ["d4", "d6", "d7"]  # fewer than n
    assert Top()(pool, 0, ctx()).index.tolist() == []


def test_range_stays_in_window_and_covers_it_uniformly():
    pool = pool_n(20).subset(np.arange(1, 20))  # rank 1 dropped
    s = RangeSampler(range_min=5, range_max=10)  # ranks 6..10 -> pool positions 4..8
    counts = np.zeros(len(pool))
    for seed in range(2000):
        idx = s(pool, 2, ctx(seed)).index
        assert len(idx) == 2 and len(set(idx.tolist())) == 2
        assert np.all(np.diff(idx) > 0)  # rank order
        counts[idx] += 1
    assert counts.nonzero()[0].tolist() == [4, 5, 6, 7, 8]
    assert chisquare(counts[4:9]).pvalue > 1e-3  # each of the 5 ranks equally likely
    assert s(pool, 50, ctx()).index.tolist() == [4, 5, 6, 7, 8]  # fewer than n: the whole window


def test_window_config_errors():
    with pytest.raises(ConfigError):
        Top(range_min=-1)
    with pytest.raises(ConfigError):
        RangeSampler(range_min=5, range_max=2)
    with pytest.raises(ValueError):
        Top()(pool_n(3), -1, ctx())


# ---------------------------------------------------------------- SimANS probabilities


def test_simans_probs_match_formula_by_hand():
    # a=2, b=-0.5, pos=1.0: peak at 0.5; log-weights -2*(s-0.5)^2 = [0, -0.5, -4.5]
    p = simans_probs(np.array([0.5, 1.0, 2.0]), pos_score=1.0, a=2.0, b=-0.5)
    w = [1.0, math.exp(-0.5), math.exp(-4.5)]
    assert p.tolist() == pytest.approx([x / sum(w) for x in w], rel=1e-12)
    assert p.tolist() == pytest.approx([0.618185, 0.374947, 0.006867], abs=1e-6)


def test_simans_probs_sign_of_b_moves_the_peak_above_the_positive():
    scores = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    assert int(np.argmax(simans_probs(scores, pos_score=1.0, a=1.0, b=0.5))) == 3  # s = pos + b
    assert int(np.argmax(simans_probs(scores, pos_score=1.0, a=1.0, b=-0.5))) == 1
    assert int(np.argmax(simans_probs(scores, pos_score=1.0))) == 2


def test_simans_probs_stable_and_nan():
    p = simans_probs(np.array([0.0, 100.0, 200.0]), pos_score=0.0, a=1e6)  # exp(-1e10) underflows
    assert np.all(np.isfinite(p)) and p.tolist() == [1.0, 0.0, 0.0]
    p = simans_probs(np.array([1.0, float("nan"), 1.0]), pos_score=1.0)
    assert p.tolist() == [0.5, 0.0, 0.5]
    assert simans_probs(np.array([float("nan")]), pos_score=1.0).tolist() == [0.0]
    assert simans_probs(np.array([]), pos_score=1.0).shape == (0,)


# ---------------------------------------------------------------- SimANS sampling


def test_simans_single_draw_frequencies_follow_probs():
    pool = CandidatePool(ids=["a", "b", "c"], scores=[1.0, 0.0, 2.0], pos_ids=["p"], pos_scores=[1.0])
    s = SimANS(a=1.0, b=0.0)
    probs = s.probs(pool, 1.0)
    rng = np.random.default_rng(123)
    draws = 8000
    counts = np.zeros(3)
    for _ in range(draws):
        counts[s(pool, 1, SampleContext(rng)).index[0]] += 1
    assert chisquare(counts, probs * draws).pvalue > 1e-3
    assert counts / draws == pytest.approx(probs, abs=0.02)


def _successive_inclusion(p: np.ndarray, k: int) -> np.ndarray:
    """Inclusion probabilities of sampling k without replacement, successively ∝ p (by enumeration)."""
    incl = np.zeros(len(p))
    for seq in permutations(range(len(p)), k):
        prob, left = 1.0, 1.0
        for i in seq:
            prob *= p[i] / left
            left -= p[i]
        incl[list(seq)] += prob
    return incl


def test_simans_two_draws_match_successive_sampling_without_replacement():
    pool = CandidatePool(ids=list("abcd"), scores=[0.2, 0.9, -0.5, 1.5], pos_ids=["p"], pos_scores=[0.5])
    s = SimANS(a=2.0, b=0.1)
    p = s.probs(pool, 0.5)
    expected = _successive_inclusion(p, 2)
    assert expected.sum() == pytest.approx(2.0)
    rng = np.random.default_rng(7)
    draws = 6000
    counts = np.zeros(4)
    for _ in range(draws):
        idx = s(pool, 2, SampleContext(rng)).index
        assert len(set(idx.tolist())) == 2
        counts[idx] += 1
    assert counts / draws == pytest.approx(expected, abs=0.025)
    # and numpy's own sampler without replacement agrees with the same formula
    ref = np.zeros(4)
    for _ in range(draws):
        ref[rng.choice(4, 2, replace=False, p=p)] += 1
    assert ref / draws == pytest.approx(expected, abs=0.025)


def test_gumbel_top_k_keeps_underflowing_weights_and_skips_minus_inf():
    got = gumbel_top_k(np.array([0.0, -5000.0, -np.inf, -4000.0]), 3, np.random.default_rng(0))
    assert got.tolist() == [0, 3, 1]  # in draw order: by weight, since the gaps dwarf the noise


def test_simans_fewer_than_n_nan_scores_and_anchor():
    pool = CandidatePool(
        ids=list("abc"),
        scores=[1.0, float("nan"), 0.0],
        pos_ids=["p", "q"],
        pos_scores=[2.0, 0.0],
        teacher=[0.1, 0.2, 0.3],
        pos_teacher=[0.5, float("nan")],
    )
    assert SimANS()(pool, 5, ctx()).index.tolist() == [0, 2]  # NaN score never drawn
    rng = np.random.default_rng(0)
    assert SimANS(positive="mean").anchor(pool, rng) == 1.0
    assert SimANS(positive="min").anchor(pool, rng) == 0.0
    assert SimANS(positive="max").anchor(pool, rng) == 2.0
    assert SimANS(positive="first").anchor(pool, rng) == 2.0
    assert {SimANS(positive="random").anchor(pool, np.random.default_rng(s)) for s in range(20)} == {0.0, 2.0}
    assert SimANS(use="teacher").anchor(pool, rng) == 0.5  # NaN positive ignored
    assert SimANS(use="teacher")(pool, 3, ctx()).index.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="positive"):
        SimANS()(CandidatePool(ids=["a"], scores=[1.0], pos_ids=["p"]), 1, ctx())
    with pytest.raises(ConfigError):
        SimANS(a=0.0)
    with pytest.raises(ConfigError):
        SimANS(positive="median")


def test_simans_prefers_negatives_near_the_positive():
    pool = pool_n(41, pos_scores=[0.0])  # scores 1.0 .. -1.0, position 20 has score 0.0
    counts = np.zeros(41)
    for seed in range(300):
        counts[SimANS(a=50.0)(pool, 4, ctx(seed)).index] += 1
    assert int(np.argmax(counts)) in (19, 20, 21)
    assert counts[:5].sum() == 0 and counts[-5:].sum() == 0  # |s - s_pos| >= 0.75 -> weight <= e^-28


# ---------------------------------------------------------------- reproducibility


CORPUS = [f"d{i}" for i in range(60)] + ["p"] + [f"x{i}" for i in range(40)]


@pytest.mark.parametrize(
    "sampler",
    [RangeSampler(range_min=2), SimANS(a=0.5), RandomCorpus(), Mixed(n_random=3, hard="range")],
    ids=lambda s: s.name,
)
def test_same_seed_same_picks_different_seed_different(sampler):
    pool = pool_n(50)
    a = sampler(pool, 6, ctx(11, corpus_ids=CORPUS))
    b = sampler(pool, 6, ctx(11, corpus_ids=CORPUS))
    c = sampler(pool, 6, ctx(12, corpus_ids=CORPUS))
    assert a.ids(pool) == b.ids(pool)
    assert a.index.tolist() == b.index.tolist() and a.outside_ids == b.outside_ids
    assert a.ids(pool) != c.ids(pool)


# ---------------------------------------------------------------- random


def test_random_never_returns_positives_or_excluded():
    pool = CandidatePool(ids=["a", "b"], scores=[2.0, 1.0], pos_ids=["p", "q"])
    corpus = ["a", "b", "p", "q", "x", "y", "z"]
    seen = set()
    for seed in range(200):
        got = RandomCorpus()(pool, 3, ctx(seed, corpus_ids=corpus, exclude={"z"}))
        ids = got.ids(pool)
        assert len(ids) == 3 and len(set(ids)) == 3
        assert not set(ids) & {"p", "q", "z"}
        assert not set(got.outside_ids) & set(pool.ids)  # pool hits are reported by index
        seen |= set(ids)
    assert seen == {"a", "b", "x", "y"}
    assert sorted(RandomCorpus()(pool, 10, ctx(0, corpus_ids=corpus)).ids(pool)) == ["a", "b", "x", "y", "z"]
    with pytest.raises(ValueError, match="corpus_ids"):
        RandomCorpus()(pool, 1, ctx())


def test_draw_from_large_corpus_is_uniform_and_avoids_excluded():
    corpus = [f"c{i}" for i in range(100)]  # 100 > 4 * (n + |exclude|): rejection path
    rng = np.random.default_rng(5)
    counts = np.zeros(100)
    for _ in range(5000):
        got = draw_from_corpus(corpus, 3, {"c0", "c1"}, rng)
        assert len(set(got)) == 3
        counts[got] += 1
    assert counts[:2].sum() == 0
    assert chisquare(counts[2:]).pvalue > 1e-3


# ---------------------------------------------------------------- mixed


def test_mixed_hard_then_random_without_duplicates():
    pool = pool_n(10)
    corpus = [f"d{i}" for i in range(10)] + ["p"] + [f"x{i}" for i in range(5)]
    for seed in range(200):
        got = Mixed(n_random=3)(pool, 5, ctx(seed, corpus_ids=corpus))
        ids = got.ids(pool)
        assert len(ids) == 5 and len(set(ids)) == 5
        assert "p" not in ids
        assert {"d0", "d1"} <= set(ids)  # the two hard ones: top ranks
        assert np.all(np.diff(got.index) > 0)


def test_mixed_with_range_hard_sampler_and_caps():
    pool = pool_n(10)
    corpus = [f"d{i}" for i in range(10)] + ["p"]
    m = build_sampler({"name": "mixed", "n_random": 1, "hard": "range", "hard_params": {"range_min": 5}})
    for seed in range(50):
        got = m(pool, 3, ctx(seed, corpus_ids=corpus))
        assert len(set(got.ids(pool))) == 3
        assert (got.index >= 5).sum() >= 2  # the two hard picks are in ranks 6..10
    # n_random larger than n: all random
    assert len(Mixed(n_random=9)(pool, 2, ctx(corpus_ids=corpus))) == 2
    # too few hard candidates: not backfilled with random ones
    assert len(Mixed(n_random=1, hard_params={"range_min": 9})(pool, 4, ctx(corpus_ids=corpus))) == 2
    with pytest.raises(ConfigError, match="unknown sampler"):
        Mixed(n_random=1, hard="nope")
    with pytest.raises(ConfigError, match="'top'"):
        Mixed(n_random=1, hard_params={"a": 1})


def test_build_sampler_errors():
    assert build_sampler({"name": "top", "range_min": 3}) == Top(range_min=3)
    with pytest.raises(ConfigError, match="valid: mixed, random, range, simans, top"):
        build_sampler({"name": "hardest"})
    with pytest.raises(ConfigError, match="no 'name'"):
        build_sampler({})
