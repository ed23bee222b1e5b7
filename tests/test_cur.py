"""CUR / adaCUR math (unirank.index.cur): hand-checked cases, agreement with numpy's pinv,
exact recovery of low-rank matrices, exhaustive search at full budget, seeds, costs."""

import numpy as np
import pytest

from unirank.index.cur import (
    CURResult,
    IncrementalLstsq,
    MatrixSpace,
    adacur_search,
    anncur_search,
    choose_anchors,
    cur_item_embeddings,
    matrix_oracle,
    result_hits,
    round_plan,
    top_unscored,
)
from unirank.index.shards import recall_at_k


def low_rank(rank=3, k_q=12, m=40, n_test=7, seed=0):
    rng = np.random.default_rng(seed)
    items = rng.normal(size=(rank, m))
    return rng.normal(size=(k_q, rank)) @ items, rng.normal(size=(n_test, rank)) @ items


def counting_oracle(S):
    """A matrix oracle that records every (query, item) pair it is asked for."""
    asked = []

    def score(requests):
        out = []
        for q, idx in enumerate(requests):
            asked.extend((q, int(j)) for j in idx)
            out.append(S[q, np.asarray(idx, dtype=np.int64)])
        return out

    return score, asked


def exact_top(S, k):
    return np.argsort(-S, axis=1, kind="stable")[:, :k]


# ---------------------------------------------------------------- hand-checked


def test_item_embeddings_hand_checked():
    # R = [[1, 2, 3], [0, 1, 1]]; anchors {0, 1}: R[:, A] = [[1, 2], [0, 1]], inverse [[1, -2], [0, 1]]
    R = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 1.0]])
    E = cur_item_embeddings(R, np.array([0, 1]))
    np.testing.assert_allclose(E, [[1, 0, 1], [0, 1, 1]], atol=1e-12)
    # a query scoring 5 on item 0 and 7 on item 1 is approximated as 5 * col0 + 7 * col1 -> item 2: 12
    np.testing.assert_allclose(np.array([5.0, 7.0]) @ E, [5, 7, 12], atol=1e-12)


def test_incremental_lstsq_hand_checked_overdetermined():
    # one unknown direction (dim 1), equations w = 1, w = 3 -> least squares w = 2, residual 2
    ls = IncrementalLstsq(1)
    ls.add(np.array([[1.0]]), np.array([1.0]))
    assert ls.solve().tolist() == [1.0]
    ls.add(np.array([[1.0]]), np.array([3.0]))
    assert ls.solve().tolist() == pytest.approx([2.0])
    assert ls.residual == pytest.approx(2.0)
    assert ls.rank == 1 and ls.n == 2


def test_incremental_lstsq_minimum_norm_underdetermined():
    # dim 2, one equation [1, 1] . w = 2 -> minimum norm w = [1, 1]
    ls = IncrementalLstsq(2)
    ls.add(np.array([[1.0], [1.0]]), np.array([2.0]))
    np.testing.assert_allclose(ls.solve(), [1.0, 1.0])


@pytest.mark.parametrize("k_q,batches", [(20, [3, 4, 5]), (6, [4, 4, 5]), (10, [10, 1, 7])])
def test_incremental_lstsq_equals_pinv_every_round(k_q, batches):
    rng = np.random.default_rng(k_q)
    X = rng.normal(size=(k_q, sum(batches)))
    s = rng.normal(size=sum(batches))
    ls = IncrementalLstsq(k_q)
    n = 0
    for b in batches:
        ls.add(X[:, n : n + b], s[n : n + b])
        n += b
        want = np.linalg.pinv(X[:, :n].T) @ s[:n]
        np.testing.assert_allclose(ls.solve(), want, rtol=1e-9, atol=1e-9)


def test_incremental_lstsq_rank_deficient_equals_truncated_pinv():
    R, _ = low_rank(rank=3, k_q=12, m=20)
    s = np.random.default_rng(5).normal(size=20)
    ls = IncrementalLstsq(12)
    for a in range(0, 20, 6):
        ls.add(R[:, a : a + 6], s[a : a + 6])
    assert ls.rank == 3
    np.testing.assert_allclose(ls.solve(), np.linalg.pinv(R.T, rcond=1e-10) @ s, rtol=1e-7, atol=1e-8)


def test_incremental_lstsq_rejects_mismatch():
    with pytest.raises(ValueError, match="2 columns but 1 values"):
        IncrementalLstsq(3).add(np.zeros((3, 2)), np.zeros(1))


# ---------------------------------------------------------------- low-rank recovery


def test_cur_reconstructs_every_score_of_a_low_rank_matrix():
    R, S = low_rank(rank=4, k_q=10, m=50, n_test=6)
    A = choose_anchors(50, 4, seed=3)
    E = cur_item_embeddings(R, A)
    np.testing.assert_allclose(S[:, A] @ E, S, atol=1e-8)
    # the anchor queries' own rows too
    np.testing.assert_allclose(R[:, A] @ E, R, atol=1e-8)


def test_adacur_reconstruction_low_rank_finds_exact_topk_with_small_budget():
    # rank 3: after one round of 3 random anchors the approximation is exact, so the second
    # round retrieves the true top items and Top-k-Recall is 1
    R, S = low_rank(rank=3, k_q=8, m=60, n_test=5, seed=1)
    first = [choose_anchors(60, 3, seed=0)] * 5
    res = adacur_search(matrix_oracle(S), MatrixSpace(R), first, [3, 10])
    _, idx = result_hits(res, 10)
    assert recall_at_k(exact_top(S, 10), idx, 10) == 1.0


# ---------------------------------------------------------------- exhaustive and equivalences


def test_every_item_an_anchor_equals_exhaustive_ranking():
    rng = np.random.default_rng(0)
    R, S = rng.normal(size=(6, 25)), rng.normal(size=(4, 25))
    want = exact_top(S, 25)
    # ANNCUR with all items as anchors
    E = cur_item_embeddings(R, np.arange(25))
    res = anncur_search(matrix_oracle(S), np.arange(25), MatrixSpace(E).search, 4, budget=25, n_items=25)
    np.testing.assert_array_equal(result_hits(res, 25)[1], want)
    # adaCUR whose budget covers the corpus (rounds beyond the corpus are capped by the index)
    res = adacur_search(matrix_oracle(S), MatrixSpace(R), [choose_anchors(25, 5)] * 4, round_plan(25, 5))
    s, i = result_hits(res, 25)
    np.testing.assert_array_equal(i, want)
    np.testing.assert_allclose(s, np.take_along_axis(S, want, 1), rtol=1e-6)


def test_anncur_equals_two_round_adacur_with_the_same_anchors():
    rng = np.random.default_rng(3)
    R, S = rng.normal(size=(15, 80)), rng.normal(size=(6, 80))
    A = choose_anchors(80, 10, seed=1)
    a = anncur_search(
        matrix_oracle(S), A, MatrixSpace(cur_item_embeddings(R, A)).search, 6, budget=30, n_items=80, tail=20
    )
    b = adacur_search(matrix_oracle(S), MatrixSpace(R), [A] * 6, [10, 20], tail=20)
    for q in range(6):
        np.testing.assert_array_equal(a.scored[q], b.scored[q])
        np.testing.assert_allclose(a.exact[q], b.exact[q])
    # (the tails differ by design: adaCUR re-solves its approximation from all 30 scored items)


def test_same_seed_same_results_other_seed_other_anchors():
    rng = np.random.default_rng(4)
    R, S = rng.normal(size=(10, 100)), rng.normal(size=(3, 100))

    def run(seed):
        res = adacur_search(
            matrix_oracle(S), MatrixSpace(R), [choose_anchors(100, 8, seed)] * 3, round_plan(32, 4), tail=10
        )
        return result_hits(res, 20)

    s1, i1 = run(7)
    s2, i2 = run(7)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(s1, s2)
    assert not np.array_equal(choose_anchors(100, 8, 7), choose_anchors(100, 8, 8))


# ---------------------------------------------------------------- cost accounting


@pytest.mark.parametrize("budget,rounds", [(12, 1), (12, 3), (30, 5), (40, 4)])
def test_adacur_pays_each_item_once_and_exactly_the_budget(budget, rounds):
    rng = np.random.default_rng(budget)
    R, S = rng.normal(size=(8, 40)), rng.normal(size=(5, 40))
    score, asked = counting_oracle(S)
    res = adacur_search(score, MatrixSpace(R), [choose_anchors(40, 40, seed=2)] * 5, round_plan(budget, rounds), tail=5)
    assert len(asked) == len(set(asked)) == 5 * budget
    assert res.calls.tolist() == [budget] * 5
    for q in range(5):
        assert not set(res.tail[q].tolist()) & set(res.scored[q].tolist())
        assert sum(res.rounds[q]) == budget


def test_anncur_does_not_pay_twice_for_an_anchor_it_retrieves_again():
    # item 0 is an anchor and the best item under the approximation: it must not be scored again
    R = np.array([[10.0, 1.0, 2.0, 3.0, 0.0]])
    S = np.array([[10.0, 1.0, 2.0, 3.0, 0.0]])
    score, asked = counting_oracle(S)
    A = np.array([0])
    res = anncur_search(score, A, MatrixSpace(cur_item_embeddings(R, A)).search, 1, budget=3, n_items=5, tail=2)
    assert sorted(asked) == [(0, 0), (0, 2), (0, 3)]
    assert res.scored[0].tolist() == [0, 3, 2] and res.tail[0].tolist() == [1, 4]


def test_anncur_budget_smaller_than_anchors_is_refused():
    with pytest.raises(ValueError, match="budget 3 is smaller than the 5 anchor items"):
        anncur_search(
            matrix_oracle(np.zeros((1, 9))), np.arange(5), MatrixSpace(np.eye(5, 9)).search, 1, budget=3, n_items=9
        )


def test_round_plan_and_bad_plans():
    assert round_plan(7, 3) == [3, 2, 2]
    with pytest.raises(ValueError):
        round_plan(2, 3)
    with pytest.raises(ValueError):
        adacur_search(matrix_oracle(np.zeros((1, 3))), MatrixSpace(np.eye(3)), [np.arange(3)], [0, 2])


def test_first_round_duplicates_are_scored_once():
    S = np.arange(6.0)[None]
    score, asked = counting_oracle(S)
    res = adacur_search(score, MatrixSpace(np.eye(6)), [np.array([2, 2, 3, 1])], [3])
    assert res.scored[0].tolist() == [2, 3, 1] and len(asked) == 3


def test_top_unscored_and_result_hits_padding():
    sp = MatrixSpace(np.array([[1.0, 3.0, 2.0]]))
    assert [x.tolist() for x in top_unscored(sp.search, np.array([[1.0]]), [5], [np.array([1])])] == [[2, 0]]
    s, i = result_hits(CURResult([np.array([1])], [np.array([4.0])], [np.array([2])]), 4)
    assert i.tolist() == [[1, 2, -1, -1]] and s[0, 1] == 3.0 and np.isinf(s[0, 2])


def test_cur_beats_random_items_on_a_noisy_low_rank_matrix():
    # scores of rank 5 plus noise: spending the budget on CUR-retrieved items finds far more of
    # the true top-10 than scoring as many random items
    R, S = low_rank(rank=5, k_q=30, m=300, n_test=40, seed=9)
    rng = np.random.default_rng(0)
    R = R + 0.3 * rng.normal(size=R.shape)
    S = S + 0.3 * rng.normal(size=S.shape)
    first = [choose_anchors(300, 40, seed=0)] * 40
    exact = exact_top(S, 10)
    one = result_hits(adacur_search(matrix_oracle(S), MatrixSpace(R), first, [10, 30]), 10)[1]
    ada = result_hits(adacur_search(matrix_oracle(S), MatrixSpace(R), first, round_plan(40, 4)), 10)[1]
    rand = result_hits(adacur_search(matrix_oracle(S), MatrixSpace(R), first, [40]), 10)[1]
    r_one, r_ada, r_rand = (recall_at_k(exact, x, 10) for x in (one, ada, rand))
    assert r_rand < 0.3 and r_one > 0.9 and r_ada > 0.9
