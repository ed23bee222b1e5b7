"""unirank.eval.metrics: hand-computed values, and agreement with pytrec_eval / scikit-learn."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import pytrec_eval
from sklearn.metrics import roc_auc_score

from unirank.errors import ConfigError
from unirank.eval import metrics as M

L2_3 = math.log2(3)

# One query: ranking d1(2) d2(0) d3(1) d5(unjudged) d4(1); relevant d1, d3, d4 (num_rel 3);
# d6 is judged 0 and never retrieved.
QRELS = {"q1": {"d1": 2, "d2": 0, "d3": 1, "d4": 1, "d6": 0}}
RUN = {"q1": {"d1": 0.9, "d2": 0.8, "d3": 0.7, "d5": 0.6, "d4": 0.1}}


def value(name, qrels=QRELS, run=RUN, qid="q1"):
    return M.per_query(qrels, run, [name])[name][qid]


# ----------------------------------------------------------------- rank_docs


def test_rank_docs_ties_by_doc_id_descending():
    # a and b tie at 1.0 -> "b" > "a" first; "d9" > "d10" byte-wise, so d9 first
    assert M.rank_docs({"a": 1.0, "b": 1.0, "c": 0.5}) == ["b", "a", "c"]
    assert M.rank_docs({"d10": 0.5, "d9": 0.5, "x": 0.7}) == ["x", "d9", "d10"]
    # byte order: "b" (0x62) > "a" (0x61) > "B" (0x42)
    assert M.rank_docs({"B": 1.0, "b": 1.0, "a": 1.0}) == ["b", "a", "B"]
    assert M.rank_docs({"a": 3.0, "b": 2.0, "c": 1.0}, k=2) == ["a", "b"]
    assert M.rank_docs({}) == []
    with pytest.raises(ValueError, match="NaN"):
        M.rank_docs({"a": float("nan")})


@pytest.mark.parametrize("docs", [["a", "b"], ["b10", "b", "b2"], ["B", "b", "a"], ["d1", "d01", "d001"]])
def test_rank_docs_tie_rule_matches_pytrec_eval(docs):
    # all tied: the doc pytrec_eval puts first is the only relevant one that gets recip_rank 1
    first = M.rank_docs({d: 1.0 for d in docs})[0]
    for rel in docs:
        got = pytrec_eval.RelevanceEvaluator({"q": {rel: 1}}, {"recip_rank"}).evaluate({"q": {d: 1.0 for d in docs}})
        assert (got["q"]["recip_rank"] == 1.0) == (rel == first)


# ----------------------------------------------------------------- hand values


def test_ndcg_hand():
    # ndcg@3: DCG = 2/log2(2) + 0/log2(3) + 1/log2(4) = 2.5
    #         IDCG (grades 2,1,1) = 2/1 + 1/log2(3) + 1/log2(4) = 2.5 + 1/log2(3)
    assert value("ndcg@3") == pytest.approx(2.5 / (2.5 + 1 / L2_3), abs=1e-12)
    # ndcg@5 adds d4 (grade 1) at rank 5: DCG = 2.5 + 1/log2(6); IDCG unchanged (3 relevant)
    assert value("ndcg@5") == pytest.approx((2.5 + 1 / math.log2(6)) / (2.5 + 1 / L2_3), abs=1e-12)
    # ndcg@1: 2/1 over 2/1
    assert value("ndcg@1") == 1.0
    # no cutoff == cutoff beyond the run
    assert value("ndcg") == value("ndcg@1000")


def test_ndcg_negative_grades_gain_nothing():
    # ranking a(-1) c(-2) b(1): DCG = 1/log2(4) = 0.5, IDCG = 1
    assert value("ndcg@10", {"q": {"a": -1, "b": 1, "c": -2}}, {"q": {"a": 3.0, "c": 2.0, "b": 1.0}}, "q") == 0.5


def test_mrr_hand():
    assert value("mrr@10") == 1.0  # d1 relevant at rank 1
    run = {"q1": {"d2": 0.9, "d5": 0.8, "d3": 0.7, "d1": 0.1}}  # first relevant d3 at rank 3
    assert value("mrr@10", run=run) == pytest.approx(1 / 3)
    assert value("mrr@3", run=run) == pytest.approx(1 / 3)
    assert value("mrr@2", run=run) == 0.0  # cut before the first relevant doc
    assert value("mrr", run=run) == pytest.approx(1 / 3)


def test_recall_precision_map_hand():
    # top 3 = d1(rel) d2 d3(rel): 2 of 3 relevant
    assert value("recall@3") == pytest.approx(2 / 3)
    assert value("p@3") == pytest.approx(2 / 3)
    assert value("p@5") == pytest.approx(3 / 5)
    # p@10 divides by 10 even though only 5 docs were retrieved
    assert value("p@10") == pytest.approx(3 / 10)
    assert value("recall@5") == 1.0
    # map@3: precisions at relevant ranks 1 and 3 = 1/1, 2/3, over num_rel 3 -> 5/9
    assert value("map@3") == pytest.approx(5 / 9)
    # map@5 adds rank 5 with precision 3/5: (1 + 2/3 + 3/5) / 3 = 34/45
    assert value("map@5") == pytest.approx(34 / 45)
    assert value("map") == pytest.approx(34 / 45)
    assert value("recall") == 1.0


def test_ties_change_the_hand_values():
    # d1 (grade 1) and z (unjudged) tie; z > d1 so z ranks first
    qrels, run = {"q": {"d1": 1}}, {"q": {"d1": 1.0, "z": 1.0}}
    assert value("mrr@10", qrels, run, "q") == 0.5
    assert value("p@1", qrels, run, "q") == 0.0
    assert value("ndcg@10", qrels, run, "q") == pytest.approx(1 / L2_3)  # 1/log2(3) over 1


def test_evaluate_query_sets():
    qrels = {
        "a": {"x": 1},  # perfect
        "b": {"x": 0, "y": 0},  # no relevant doc: scores 0, still counted
        "c": {"x": 1},  # empty run: scores 0, counted
        "d": {"x": 1},  # absent from run: skip or 0
    }
    run = {"a": {"x": 1.0}, "b": {"x": 1.0}, "c": {}, "zz": {"x": 1.0}}  # zz not in qrels: ignored
    pq = M.per_query(qrels, run, ["ndcg@10"])
    assert pq == {"ndcg@10": {"a": 1.0, "b": 0.0, "c": 0.0}}
    assert M.evaluate(qrels, run, ["ndcg@10"]) == {"ndcg@10": pytest.approx(1 / 3)}
    assert M.per_query(qrels, run, ["ndcg@10"], missing="zero")["ndcg@10"] == {"a": 1.0, "b": 0.0, "c": 0.0, "d": 0.0}
    assert M.evaluate(qrels, run, ["ndcg@10"], missing="zero") == {"ndcg@10": 0.25}
    assert math.isnan(M.evaluate(qrels, {}, ["p@1"])["p@1"])
    with pytest.raises(ConfigError, match="missing"):
        M.evaluate(qrels, run, ["p@1"], missing="drop")


def test_measure_names():
    measure, k = M.parse_measure("ndcg@10")
    assert measure is M.MEASURES.get("ndcg") and k == 10
    assert M.parse_measure("P@5") == (M.MEASURES.get("p"), 5)
    assert M.parse_measure("auc") == (M.MEASURES.get("auc"), None)
    assert set(M.MEASURES.names()) == {"ndcg", "mrr", "recall", "map", "p", "auc"}
    with pytest.raises(ConfigError, match=r"valid: auc, map\[@k\], mrr\[@k\], ndcg\[@k\], p@k, recall\[@k\]"):
        M.parse_measure("bleu@4")
    for bad in ["ndcg@x", "ndcg@0", "auc@10", "p", "ndcg_cut_10", ""]:
        with pytest.raises(ConfigError):
            M.parse_measure(bad)
    # a single string is one name, not a list of letters; keys keep the name as given
    assert list(M.evaluate(QRELS, RUN, "P@3")) == ["P@3"]


# ----------------------------------------------------------------- agreement with pytrec_eval

PAIRS = [  # our name, pytrec_eval name
    ("ndcg@10", "ndcg_cut_10"),
    ("ndcg@3", "ndcg_cut_3"),
    ("ndcg", "ndcg"),
    ("mrr", "recip_rank"),
    ("recall@100", "recall_100"),
    ("recall@5", "recall_5"),
    ("map@100", "map_cut_100"),
    ("map@5", "map_cut_5"),
    ("map", "map"),
    ("p@5", "P_5"),
    ("p@1", "P_1"),
]
PYTREC_MEASURES = {"ndcg_cut.3,10", "ndcg", "recip_rank", "recall.5,100", "map_cut.5,100", "map", "P.1,5"}


def random_case(seed: int, n_queries: int = 50):
    """Graded qrels (-1..3), runs with ties (scores rounded), and every edge case."""
    rng = random.Random(seed)
    qrels, run = {}, {}
    for q in range(n_queries):
        qid = f"q{q}"
        pool = [f"d{rng.randrange(300)}" for _ in range(rng.randrange(1, 40))]
        qrels[qid] = {d: rng.choice([-1, 0, 0, 0, 1, 1, 2, 3]) for d in pool}
        retrieved = set(rng.sample(pool, rng.randrange(len(pool) + 1)))
        retrieved |= {f"d{rng.randrange(300)}" for _ in range(rng.randrange(120))}  # mostly unjudged
        run[qid] = {
            d: round(rng.random(), 1) for d in sorted(retrieved)
        }  # 11 distinct values -> many ties; sorted: set order varies with PYTHONHASHSEED
    qrels["q0"] = {"d1": 0, "d2": 0}  # no relevant doc
    run["q0"] = {"d1": 0.5, "d2": 0.5, "d3": 0.1}
    qrels["q1"] = {"d1": 0, "d2": 0}  # no relevant doc, nothing retrieved
    run["q1"] = {}
    run["q2"] = {}  # relevant docs, empty run
    del run["q3"]  # absent from run
    run["extra"] = {"d1": 1.0}  # not in qrels
    qrels["q4"] = {"d1": 1, "d2": 2}  # all tied, relevant and not
    run["q4"] = {"d0": 0.3, "d1": 0.3, "d2": 0.3, "d3": 0.3}
    return qrels, run


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_pytrec_eval(seed):
    qrels, run = random_case(seed)
    ref = pytrec_eval.RelevanceEvaluator(qrels, PYTREC_MEASURES).evaluate(run)
    ours = M.per_query(qrels, run, [name for name, _ in PAIRS])
    assert set(ref) == set(qrels) - {"q3"}  # pytrec_eval's query set; the edge cases are all in play
    for name, ref_name in PAIRS:
        assert set(ours[name]) == set(ref), name
        for qid in ref:
            assert ours[name][qid] == pytest.approx(ref[qid][ref_name], abs=1e-6), (name, qid)
        # BEIR's mean: sum of pytrec_eval's per-query values / number of them
        mean = sum(ref[q][ref_name] for q in ref) / len(ref)
        assert M.evaluate(qrels, run, [name])[name] == pytest.approx(mean, abs=1e-6)
        # trec_eval -c: missing queries count 0 and the mean is over every query in qrels
        mean_c = sum(ref[q][ref_name] for q in ref) / len(qrels)
        assert M.evaluate(qrels, run, [name], missing="zero")[name] == pytest.approx(mean_c, abs=1e-6)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_mrr_at_k_is_recip_rank_of_the_run_cut_at_k(k):
    # trec_eval has no cut recip_rank; mrr@k equals its recip_rank on the top k (same tie rule)
    qrels, run = random_case(3)
    cut = {q: {d: docs[d] for d in M.rank_docs(docs, k)} for q, docs in run.items()}
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut)
    ours = M.per_query(qrels, run, [f"mrr@{k}"])[f"mrr@{k}"]
    assert ours == pytest.approx({q: v["recip_rank"] for q, v in ref.items()}, abs=1e-12)
    # the cut matters: some queries hit, some miss, and (k > 1) some hit below rank 1
    assert any(v == 1 for v in ours.values()) and any(v == 0 for v in ours.values())
    assert k == 1 or any(0 < v < 1 for v in ours.values())


# ----------------------------------------------------------------- ROC-AUC


def test_roc_auc_hand():
    # pairs: 0.9 beats 0.5, 0.1, 0.3 (3); 0.5 ties 0.5 (0.5), beats 0.1, 0.3 (2) -> 5.5 / 6
    assert M.roc_auc([0.9, 0.5], [0.5, 0.1, 0.3]) == pytest.approx(5.5 / 6)
    assert M.roc_auc([1.0, 2.0], [0.0]) == 1.0
    assert M.roc_auc([0.0], [1.0, 2.0]) == 0.0
    assert M.roc_auc([1.0, 1.0], [1.0]) == 0.5
    assert math.isnan(M.roc_auc([], [1.0])) and math.isnan(M.roc_auc([1.0], []))
    with pytest.raises(ValueError, match="NaN"):
        M.roc_auc([float("nan")], [1.0])


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_agrees_with_sklearn(seed):
    rng = np.random.default_rng(seed)
    pos = np.round(rng.normal(0.5, 1, size=rng.integers(1, 300)), 1)  # rounding -> ties
    neg = np.round(rng.normal(0.0, 1, size=rng.integers(1, 300)), 1)
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    assert M.roc_auc(pos, neg) == pytest.approx(roc_auc_score(y, np.r_[pos, neg]), abs=1e-12)


def test_auc_per_query_and_global_hand():
    qrels = {"q1": {"d1": 1, "d2": 0, "d3": 2}, "q2": {"d1": 0}, "q3": {"d1": 1}, "q4": {"d1": 1}}
    run = {
        "q1": {"d1": 0.9, "d2": 0.8, "d3": 0.7, "d5": 0.6},  # pos 0.9, 0.7 vs neg 0.8, 0.6 (d5 unjudged)
        "q2": {"d1": 0.3, "d2": 0.4},  # no positive retrieved: undefined
        "q3": {"d1": 0.2, "d9": 0.5},  # pos 0.2 vs neg 0.5
        "q4": {"d1": 0.1},  # no negative retrieved: undefined
        "zz": {"d1": 5.0},  # not in qrels: ignored
    }
    # q1: 0.9 > 0.8, 0.9 > 0.6, 0.7 < 0.8, 0.7 > 0.6 -> 3/4; q3: 0/1; mean over q1, q3 = 3/8
    assert M.auc_per_query(qrels, run) == pytest.approx(3 / 8)
    assert M.per_query(qrels, run, ["auc"], missing="zero") == {"auc": {"q1": 0.75, "q3": 0.0}}
    # pooled pos 0.9, 0.7, 0.2, 0.1 vs neg 0.8, 0.6, 0.3, 0.4, 0.5:
    # 0.9 beats 5, 0.7 beats 4, 0.2 beats 0, 0.1 beats 0 -> 9 / 20
    assert M.auc_global(qrels, run) == pytest.approx(9 / 20)
    assert math.isnan(M.auc_per_query({"q": {"a": 1}}, {"q": {"a": 1.0}}))
    assert math.isnan(M.auc_global({"q": {"a": 1}}, {"q": {"a": 1.0}}))


# ----------------------------------------------------------------- response selection

RAGGED_SCORES = [[0.9, 0.5, 0.1], [0.5, 0.5, 0.1], [0.3, 0.8, 0.6, 0.2], [0.1, 0.2, 0.3]]
RAGGED_LABELS = [[1, 0, 0], [0, 1, 0], [0, 0, 1, 1], [1, 0, 0]]
# ranks (pessimistic): 1; 2 (tied wrong 0.5 goes first); 2 (best correct 0.6 under wrong 0.8); 3


def test_response_metrics_ragged_hand():
    assert M.recall_at_k_response(RAGGED_SCORES, RAGGED_LABELS, 1) == 0.25
    assert M.recall_at_k_response(RAGGED_SCORES, RAGGED_LABELS, 2) == 0.75
    assert M.recall_at_k_response(RAGGED_SCORES, RAGGED_LABELS, 3) == 1.0
    assert M.mrr_response(RAGGED_SCORES, RAGGED_LABELS) == pytest.approx((1 + 1 / 2 + 1 / 2 + 1 / 3) / 4)
    assert M.response_metrics(RAGGED_SCORES, RAGGED_LABELS) == pytest.approx(
        {"R@1": 0.25, "R@2": 0.75, "R@5": 1.0, "mrr": (1 + 1 / 2 + 1 / 2 + 1 / 3) / 4}
    )


def test_response_metrics_array_hand():
    idx = [0, 1, 3]  # the three 3-candidate examples: ranks 1, 2, 3
    scores = np.array([RAGGED_SCORES[i] for i in idx])
    labels = np.array([RAGGED_LABELS[i] for i in idx])
    assert M.response_metrics(scores, labels, ks=(1, 2)) == pytest.approx(
        {"R3@1": 1 / 3, "R3@2": 2 / 3, "mrr": (1 + 1 / 2 + 1 / 3) / 3}
    )


def test_response_ties_and_multiple_correct():
    # correct candidates tied with each other do not push each other down...
    assert M.mrr_response([[0.5, 0.5]], [[1, 1]]) == 1.0
    # ...but a tied wrong one ranks above both
    assert M.mrr_response([[0.5, 0.5, 0.5]], [[1, 1, 0]]) == 0.5
    # the best-scored correct candidate counts, wherever it sits
    assert M.recall_at_k_response([[0.1, 0.9, 0.5, 0.7]], [[1, 0, 0, 1]], 1) == 0.0
    assert M.recall_at_k_response([[0.1, 0.9, 0.5, 0.7]], [[1, 0, 0, 1]], 2) == 1.0
    # a constant scorer gets the worst rank, not the best
    assert M.response_metrics([[0.0] * 10], [[1] + [0] * 9], ks=(1, 10)) == {"R10@1": 0.0, "R10@10": 1.0, "mrr": 0.1}


def test_response_bad_input():
    with pytest.raises(ValueError, match="example 1: no correct candidate"):
        M.mrr_response([[1.0, 0.0], [1.0, 0.0]], [[1, 0], [0, 0]])
    with pytest.raises(ValueError, match="example 0"):
        M.mrr_response([[1.0, 0.0]], [[1, 0, 0]])
    with pytest.raises(ValueError, match="label rows"):
        M.mrr_response([[1.0]], [[1], [1]])
    with pytest.raises(ValueError):
        M.recall_at_k_response([[1.0]], [[1]], 0)
