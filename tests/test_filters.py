"""False-negative filters on hand-built candidate lists, checked against hand-computed thresholds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unirank.errors import ConfigError
from unirank.negatives.filters import (
    FILTERS,
    AbsoluteMargin,
    CandidatePool,
    Duplicates,
    MaxScore,
    Positives,
    RelativeMargin,
    Teacher,
    apply_filters,
    build_filters,
    jaccard,
    normalize_text,
    shingles,
)

NAN = float("nan")


def pool_of(scores, pos_scores=(10.0,), **kw) -> CandidatePool:
    ids = kw.pop("ids", [f"d{i}" for i in range(len(scores))])
    pos_ids = kw.pop("pos_ids", [f"p{i}" for i in range(len(pos_scores))])
    return CandidatePool(ids=ids, scores=scores, pos_ids=pos_ids, pos_scores=pos_scores, **kw)


def test_registry_has_every_filter():
    assert FILTERS.names() == ["absolute_margin", "duplicates", "max_score", "positives", "relative_margin", "teacher"]


# ---------------------------------------------------------------- CandidatePool


def test_pool_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="scores"):
        CandidatePool(ids=["a", "b"], scores=[1.0], pos_ids=[])
    with pytest.raises(ValueError, match="teacher"):
        CandidatePool(ids=["a"], scores=[1.0], pos_ids=[], teacher=[1.0, 2.0])
    with pytest.raises(ValueError, match="pos_scores"):
        CandidatePool(ids=["a"], scores=[1.0], pos_ids=["p"], pos_scores=[1.0, 2.0])
    with pytest.raises(ValueError, match="texts"):
        CandidatePool(ids=["a"], scores=[1.0], pos_ids=[], texts=["x", "y"])


def test_subset_keeps_original_ranks_through_two_levels():
    pool = pool_of([5.0, 4.0, 3.0, 2.0, 1.0], teacher=[0.5, 0.4, 0.3, 0.2, 0.1], texts=list("abcde"))
    sub = pool.subset(np.array([False, True, False, True, True])).subset([1, 2])
    assert sub.ids == ["d3", "d4"]
    assert sub.ranks.tolist() == [4, 5]
    assert sub.scores.tolist() == [2.0, 1.0]
    assert sub.teacher.tolist() == [0.2, 0.1]
    assert sub.texts == ["d", "e"]
    assert sub.pos_ids == pool.pos_ids


def test_min_positive_ignores_nan_and_raises_when_none_scored():
    assert pool_of([1.0], pos_scores=[7.0, NAN, 3.0]).min_positive("miner") == 3.0
    with pytest.raises(ValueError, match="no miner score for any positive"):
        pool_of([1.0], pos_scores=[NAN]).min_positive("miner")


# ---------------------------------------------------------------- positives


def test_positives_drops_exactly_the_positive_ids():
    pool = CandidatePool(ids=["a", "p1", "b", "p2"], scores=[4, 3, 2, 1], pos_ids=["p1", "p2"])
    assert Positives()(pool).tolist() == [True, False, True, False]


# ---------------------------------------------------------------- relative margin


def test_relative_margin_nv_retriever_example():
    # pos 10.0, p=0.05 -> threshold 9.5; strict ">": 9.5 itself is kept
    pool = pool_of([9.9, 9.5, 9.4])
    f = RelativeMargin(p=0.05)
    assert f.threshold(pool) == pytest.approx(9.5)
    assert f(pool).tolist() == [False, True, True]


def test_relative_margin_other_p():
    # pos 20, p=0.2 -> threshold 16
    pool = pool_of([19.0, 16.5, 16.0, 15.9], pos_scores=[20.0])
    assert RelativeMargin(p=0.2)(pool).tolist() == [False, False, True, True]


def test_relative_margin_uses_min_positive():
    # positives 10 and 8 -> anchor 8, threshold 0.95 * 8 = 7.6
    pool = pool_of([9.0, 7.7, 7.6, 7.5], pos_scores=[10.0, 8.0])
    assert RelativeMargin(p=0.05)(pool).tolist() == [False, False, True, True]


def test_relative_margin_negative_positive_score_stays_below_positive():
    # pos -10, p=0.05 -> threshold -10 - 0.5 = -10.5 (not (1-p)*pos = -9.5, which is above the positive)
    pool = pool_of([-9.8, -10.4, -10.5, -10.6], pos_scores=[-10.0])
    f = RelativeMargin(p=0.05)
    assert f.threshold(pool) == pytest.approx(-10.5)
    assert f(pool).tolist() == [False, False, True, True]


def test_relative_margin_zero_positive_score():
    pool = pool_of([0.1, 0.0, -0.1], pos_scores=[0.0])
    assert RelativeMargin(p=0.05)(pool).tolist() == [False, True, True]


def test_relative_margin_p_zero_drops_only_what_beats_the_positive():
    pool = pool_of([10.1, 10.0, 9.0])
    assert RelativeMargin(p=0.0)(pool).tolist() == [False, True, True]


def test_relative_margin_on_teacher_scores():
    pool = pool_of([9.9, 9.5, 9.4], teacher=[0.5, 0.96, NAN], pos_teacher=[1.0])
    # teacher threshold 0.95: 0.5 kept, 0.96 dropped, NaN (unscored) kept
    assert RelativeMargin(p=0.05, use="teacher")(pool).tolist() == [True, False, True]


def test_relative_margin_raises_without_positive_score():
    with pytest.raises(ValueError, match="positive"):
        RelativeMargin()(pool_of([1.0], pos_scores=[NAN]))


def test_relative_margin_bad_params():
    with pytest.raises(ConfigError, match="p must be"):
        RelativeMargin(p=1.5)
    with pytest.raises(ConfigError, match="use='bm25'"):
        RelativeMargin(use="bm25")
    with pytest.raises(ValueError, match="no teacher scores"):
        RelativeMargin(use="teacher")(pool_of([1.0]))


def test_spec_parameters_are_checked_by_name_and_type():
    """``--filter relative_margin:p=abc`` and friends: the parameter and the valid names, not a
    Python comparison error from inside the filter."""
    from unirank.negatives.filters import build_filters
    from unirank.negatives.samplers import build_sampler
    from unirank.training.batching import build_batch_sampler

    with pytest.raises(ConfigError, match=r"filter 'relative_margin': 'p': expected a number, got 'abc'"):
        build_filters([{"name": "relative_margin", "p": "abc"}])
    with pytest.raises(ConfigError, match=r"filter 'relative_margin': unknown parameter\(s\) q; valid: p, use"):
        build_filters([{"name": "relative_margin", "q": 0.05}])
    with pytest.raises(ConfigError, match=r"sampler 'top': 'range_min': expected an integer, got 'x'"):
        build_sampler({"name": "top", "range_min": "x"})
    with pytest.raises(ConfigError, match=r"batching.params for 'random': unknown parameter\(s\) foo; valid: \(none\)"):
        build_batch_sampler("random", 4, 0, params={"foo": 1})
    assert build_filters([{"name": "relative_margin", "p": 1}])[0].p == 1.0  # an int where a float is expected is fine


# ---------------------------------------------------------------- absolute margin


def test_absolute_margin_hand_example():
    # pos 10.0, margin 0.5 -> threshold 9.5; 9.5 kept
    assert AbsoluteMargin(margin=0.5)(pool_of([9.9, 9.5, 9.4])).tolist() == [False, True, True]


def test_absolute_margin_min_of_several_positives():
    # positives 0.75 and 0.5, margin 0.25 -> threshold 0.25 (values exact in binary floating point)
    pool = pool_of([0.6, 0.3, 0.25, 0.1], pos_scores=[0.75, 0.5])
    assert AbsoluteMargin(margin=0.25)(pool).tolist() == [False, False, True, True]


def test_absolute_margin_boundary_is_plain_float_arithmetic():
    # 0.6 - 0.05 == 0.5499999999999999 in floating point, so a score of 0.55 is above it: no tolerance
    assert 0.6 - 0.05 < 0.55
    assert AbsoluteMargin(margin=0.05)(pool_of([0.55], pos_scores=[0.6])).tolist() == [False]


def test_absolute_margin_zero_margin_and_negative_scores():
    pool = pool_of([-0.1, -0.2, -0.3], pos_scores=[-0.2])
    assert AbsoluteMargin(margin=0.0)(pool).tolist() == [False, True, True]


def test_absolute_margin_needs_a_margin():
    with pytest.raises(TypeError):
        AbsoluteMargin()  # type: ignore[call-arg]


# ---------------------------------------------------------------- max score


def test_max_score_miner_and_teacher():
    pool = pool_of([12.0, 11.0, 10.0], teacher=[0.1, 0.99, 0.5])
    assert MaxScore(threshold=11.0)(pool).tolist() == [False, True, True]
    assert MaxScore(threshold=0.9, use="teacher")(pool).tolist() == [True, False, True]


# ---------------------------------------------------------------- teacher


def test_teacher_threshold_margin_and_both():
    pool = pool_of([5.0, 4.0, 3.0, 2.0], pos_scores=[9.0, 9.0], teacher=[0.95, 0.8, 0.6, NAN], pos_teacher=[0.9, 0.85])
    assert Teacher(threshold=0.9)(pool).tolist() == [False, True, True, True]
    # min positive teacher 0.85, margin 0.1 -> threshold 0.75
    assert Teacher(margin=0.1)(pool).tolist() == [False, False, True, True]
    # either condition drops: threshold 0.7 catches 0.8; margin 0.3 -> 0.55 catches 0.6
    assert Teacher(threshold=0.7, margin=0.3)(pool).tolist() == [False, False, False, True]


def test_teacher_needs_an_option_and_scores():
    with pytest.raises(ConfigError, match="threshold, margin"):
        Teacher()
    with pytest.raises(ValueError, match="no teacher"):
        Teacher(threshold=0.5)(pool_of([1.0]))
    with pytest.raises(ValueError, match="positives"):
        Teacher(margin=0.1)(pool_of([1.0], teacher=[0.5]))


# ---------------------------------------------------------------- duplicates


def test_normalize_shingles_jaccard_by_hand():
    assert normalize_text("A\tB   c\n") == "a b c"
    assert shingles("One two three four") == {("one", "two", "three"), ("two", "three", "four")}
    assert shingles("One, two!", k=3) == {("one", "two")}
    assert shingles("...") == frozenset()
    assert jaccard({1, 2}, {2, 3}) == pytest.approx(1 / 3)
    assert jaccard(set(), set()) == 0.0


LONG = " ".join(f"w{i}" for i in range(30))  # 30 words -> 28 word 3-shingles


def test_duplicates_exact_near_and_unrelated():
    last_changed = LONG.rsplit(" ", 1)[0] + " other"  # 27 of 28 shingles shared, union 29 -> 0.931
    middle_changed = LONG.replace("w15", "zz")  # 3 shingles differ: 25 shared, union 31 -> 0.806
    pool = CandidatePool(
        ids=["exact", "case", "near", "mid", "unrelated", "empty"],
        scores=[6, 5, 4, 3, 2, 1],
        pos_ids=["p"],
        texts=[LONG, "  " + LONG.upper().replace(" ", "  \n"), last_changed, middle_changed, "cats purr softly", ""],
        pos_texts=[LONG],
    )
    assert jaccard(shingles(last_changed), shingles(LONG)) == pytest.approx(27 / 29)
    assert jaccard(shingles(middle_changed), shingles(LONG)) == pytest.approx(25 / 31)
    assert Duplicates()(pool).tolist() == [False, False, False, True, True, True]
    assert Duplicates(threshold=0.8)(pool).tolist() == [False, False, False, False, True, True]


def test_duplicates_threshold_is_inclusive():
    # positive "a b c d e" -> {abc, bcd, cde}; candidate "a b c d" -> {abc, bcd}: J = 2/3
    pool = CandidatePool(ids=["c"], scores=[1.0], pos_ids=["p"], texts=["a b c d"], pos_texts=["a b c d e"])
    assert Duplicates(threshold=2 / 3)(pool).tolist() == [False]
    assert Duplicates(threshold=0.67)(pool).tolist() == [True]


def test_duplicates_checks_every_positive_and_needs_texts():
    pool = CandidatePool(
        ids=["a", "b"],
        scores=[2, 1],
        pos_ids=["p", "q"],
        texts=["x y z", "k l m"],
        pos_texts=["nothing alike here", "K  L M"],
    )
    assert Duplicates()(pool).tolist() == [True, False]
    with pytest.raises(ValueError, match="texts"):
        Duplicates()(pool_of([1.0]))
    with pytest.raises(ConfigError):
        Duplicates(threshold=1.5)


# ---------------------------------------------------------------- pipeline


def test_apply_filters_counts_each_filter_on_what_is_left():
    pool = CandidatePool(
        ids=["p", "a", "b", "c", "d"],
        scores=[10.0, 9.9, 9.6, 9.0, 2.0],
        pos_ids=["p"],
        pos_scores=[10.0],
    )
    # relative: threshold 9.5 drops a, b; absolute margin 0.5 (threshold 9.5) would drop a, b too,
    # but they are gone already, so it is credited with 0; max_score 5 drops c.
    out = apply_filters(pool, [RelativeMargin(p=0.05), AbsoluteMargin(margin=0.5), MaxScore(threshold=5.0)])
    assert out.dropped == {"positives": 1, "relative_margin": 2, "absolute_margin": 0, "max_score": 1}
    assert out.pool.ids == ["d"]
    assert out.pool.ranks.tolist() == [5]
    assert out.dropped_ids == ("p", "a", "b", "c")
    assert sum(out.dropped.values()) == len(pool) - len(out.pool)


def test_apply_filters_positives_not_doubled_and_repeated_names_suffixed():
    pool = pool_of([9.0, 5.0, 1.0], teacher=[0.1, 0.9, 0.2], ids=["p0", "a", "b"])
    out = apply_filters(pool, [Positives(), MaxScore(threshold=8.0), MaxScore(threshold=0.5, use="teacher")])
    assert out.dropped == {"positives": 1, "max_score": 0, "max_score#2": 1}
    assert out.pool.ids == ["b"]


def test_apply_filters_empty_pool():
    out = apply_filters(pool_of([]), [RelativeMargin()])
    assert len(out.pool) == 0 and out.dropped == {"positives": 0, "relative_margin": 0}


def test_build_filters_from_config():
    fs = build_filters([{"name": "absolute_margin", "margin": 0.1, "use": "teacher"}, {"name": "duplicates"}])
    assert fs == [AbsoluteMargin(margin=0.1, use="teacher"), Duplicates(threshold=0.9, shingle=3)]
    with pytest.raises(ConfigError, match="valid: absolute_margin, duplicates"):
        build_filters([{"name": "nope"}])
    with pytest.raises(ConfigError, match="no 'name'"):
        build_filters([{"p": 0.1}])
    with pytest.raises(ConfigError, match="absolute_margin"):
        build_filters([{"name": "absolute_margin"}])
    assert math.isclose(build_filters([{"name": "relative_margin"}])[0].p, 0.05)
