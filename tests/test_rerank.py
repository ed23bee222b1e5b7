"""Reranking a first-stage run with a Ranker, and the first stage + rerank + metrics pipeline."""

import json

import pytest
import torch

from unirank.config import from_dict
from unirank.data.beir import load_beir
from unirank.data.trec import write_run
from unirank.errors import DataError
from unirank.eval.config import EvalConfig
from unirank.eval.evaluate import score_run
from unirank.eval.metrics import rank_docs
from unirank.eval.rerank import rerank_eval, rerank_run
from unirank.models.backbone import tiny_backbone
from unirank.models.cross import CrossEncoder
from unirank.types import Document, Query, RetrievalDataset

from .conftest import OverlapRanker


def toy_dataset():
    docs = {
        "d1": Document("d1", "nothing in common"),
        "d2": Document("d2", "red"),
        "d3": Document("d3", "red green blue", title="colours"),  # full_text "colours red green blue"
        "d4": Document("d4", "red green"),
        "d5": Document("d5", "red green blue yellow"),
    }
    queries = {"q1": Query("q1", "red green blue yellow"), "q2": Query("q2", "green")}
    return RetrievalDataset("toy", docs, queries, {"q1": {"d5": 1, "d3": 1}, "q2": {"d4": 1}})


FIRST = {
    # first-stage order: d1 > d2 > d3 > d4 > d5
    "q1": {"d1": 5.0, "d2": 4.0, "d3": 3.0, "d4": 2.0, "d5": 1.0},
    # tie on 1.0: trec_eval order puts d4 before d2 (doc id descending)
    "q2": {"d2": 1.0, "d4": 1.0, "d1": 0.5},
}


def test_rerank_keeps_the_top_k_of_the_first_stage_and_rescores_them():
    out = rerank_run(OverlapRanker(), toy_dataset(), FIRST, depth=3, progress=False)
    # q1 top 3 = d1, d2, d3: overlaps 0, 1, 3 -> d3 first; d4 and d5 (better matches) are cut
    assert out["q1"] == {"d1": 0.0, "d2": 1.0, "d3": 3.0}
    # q2 top 3 = d4, d2, d1 (tie order) -> all three kept
    assert out["q2"] == {"d4": 1.0, "d2": 0.0, "d1": 0.0}
    out = rerank_run(OverlapRanker(), toy_dataset(), FIRST, depth=2, progress=False)
    assert set(out["q1"]) == {"d1", "d2"} and set(out["q2"]) == {"d4", "d2"}


def test_chunking_and_batching_bound_each_call():
    ranker = OverlapRanker()
    out = rerank_run(ranker, toy_dataset(), FIRST, depth=5, chunk_size=2, batch_size=2, progress=False)
    assert out["q1"] == {"d1": 0.0, "d2": 1.0, "d3": 3.0, "d4": 2.0, "d5": 4.0}
    assert max(n for call in ranker.calls for n in call) == 2 and max(len(call) for call in ranker.calls) == 2


def test_cross_encoder_rerank_matches_direct_scoring_at_any_chunk_size():
    ds = toy_dataset()
    model = CrossEncoder(tiny_backbone())
    a = rerank_run(model, ds, FIRST, depth=4, chunk_size=1, progress=False)
    b = rerank_run(model, ds, FIRST, depth=4, chunk_size=None, batch_size=2, progress=False)
    with torch.inference_mode():
        direct = model.score([ds.queries["q1"].text], [[ds.corpus[d].full_text for d in ("d1", "d2", "d3", "d4")]])[0]
    assert list(a["q1"].values()) == pytest.approx(direct.tolist(), abs=1e-5)
    for q in a:
        assert a[q] == pytest.approx(b[q], abs=1e-5)


def test_missing_query_or_document_is_a_data_error():
    ds = toy_dataset()
    with pytest.raises(DataError, match="doc\\(s\\) \\['d9'\\] for query 'q1'"):
        rerank_run(OverlapRanker(), ds, {"q1": {"d9": 1.0}}, progress=False)
    with pytest.raises(DataError, match="query 'q7'"):
        rerank_run(OverlapRanker(), ds, {"q7": {"d1": 1.0}}, progress=False)
    with pytest.raises(ValueError):
        rerank_run(OverlapRanker(), ds, FIRST, depth=0)


def test_rerank_eval_first_stage_plus_rerank_writes_both(tiny_beir, tmp_path):
    cfg = from_dict(
        EvalConfig,
        {
            "data": str(tiny_beir),
            "k": 5,
            "out": str(tmp_path / "out"),
            "measures": ["ndcg@10", "mrr@10"],
            "retriever": {"bm25": {"stemmer": None}},
        },
    )
    first, rr = rerank_eval(cfg, OverlapRanker(), depth=2, quiet=True, progress=False, keep_tail=False)
    assert all(len(v) <= 2 for v in rr.run.values())
    assert all(set(rr.run[q]) <= set(first.run[q]) for q in rr.run)
    assert rr.metrics == score_run(load_beir(tiny_beir).qrels, rr.run, ["ndcg@10", "mrr@10"])[0]
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved == pytest.approx(rr.metrics)  # written by the keep_tail=False call
    assert json.loads((tmp_path / "out" / "first_stage" / "metrics.json").read_text()) == pytest.approx(first.metrics)
    cfg_out = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg_out["reranker"]["depth"] == 2 and cfg_out["config"]["rerank"]["kind"] == "overlap"
    assert (tmp_path / "out" / "run.trec").is_file()


def test_keep_tail_keeps_the_first_stage_below_the_reranked_documents():
    """depth 3 of a 5-document first stage: the tail keeps recall@5 at the first stage's value
    (without it q1's d5 is lost), and AUC is computed on the reranked documents only."""
    cfg = from_dict(EvalConfig, {"data": "toy", "k": 5, "measures": ["recall@5", "ndcg@10", "auc"]})
    first, cut = rerank_eval(
        cfg,
        OverlapRanker(),
        depth=3,
        dataset=toy_dataset(),
        first_stage=FIRST,
        quiet=True,
        progress=False,
        keep_tail=False,
    )
    _, full = rerank_eval(
        cfg, OverlapRanker(), depth=3, dataset=toy_dataset(), first_stage=FIRST, quiet=True, progress=False
    )
    for q in FIRST:
        order = rank_docs(full.run[q])
        assert order[:3] == rank_docs(cut.run[q]) and set(order) == set(FIRST[q])
        assert order[3:] == [d for d in rank_docs(FIRST[q]) if d not in cut.run[q]]
    assert rank_docs(full.run["q1"])[3:] == ["d4", "d5"]
    assert full.metrics["recall@5"] == first.metrics["recall@5"] == 1.0 and cut.metrics["recall@5"] < 1.0
    assert 0 <= cut.metrics["auc"] <= 1 and 0 <= cut.metrics["auc_global"] <= 1
    assert full.metrics["auc"] == cut.metrics["auc"] and full.metrics["auc_global"] == cut.metrics["auc_global"]
    assert full.per_query["auc"] == cut.per_query["auc"] and full.per_query["recall@5"] != cut.per_query["recall@5"]


def test_rerank_eval_from_a_run_file(tiny_beir, tmp_path):
    write_run({"q1": {"d5": 2.0, "d1": 1.0}, "q2": {"d2": 1.0}, "qX": {"d1": 1.0}}, tmp_path / "first.trec")
    cfg = from_dict(EvalConfig, {"data": str(tiny_beir), "measures": ["mrr@10"]})
    first, rr = rerank_eval(
        cfg, OverlapRanker(), depth=10, first_stage=tmp_path / "first.trec", quiet=True, progress=False
    )
    assert set(first.run) == {"q1", "q2", "q3", "q4"} and first.run["q3"] == {}  # judged queries only
    # "why do cats purr" shares "cats" and "purr" with d1 ("Cats cats purr and sleep ...") and nothing with d5
    assert rr.run["q1"]["d1"] > rr.run["q1"]["d5"]
    assert rr.metrics["mrr@10"] == pytest.approx((1.0 + 1.0) / 4)  # q1 d1@1, q2 d2@1, q3/q4 absent -> 0


def test_a_run_of_other_queries_is_a_data_error_and_a_partial_one_a_note(tiny_beir, tmp_path, capsys):
    # a train-split run given for the test split used to give a 0-byte run.trec and all-zero metrics
    write_run({"qX": {"d1": 1.0}, "qY": {"d2": 1.0}}, tmp_path / "other.trec")
    cfg = from_dict(EvalConfig, {"data": str(tiny_beir), "measures": ["mrr@10"]})
    with pytest.raises(DataError, match=r"other\.trec: none of its 2 queries is among the 4 judged queries"):
        rerank_eval(cfg, OverlapRanker(), depth=10, first_stage=tmp_path / "other.trec", progress=False)
    write_run({"q1": {"d1": 1.0}, "qX": {"d1": 1.0}}, tmp_path / "part.trec")
    rerank_eval(cfg, OverlapRanker(), depth=10, first_stage=tmp_path / "part.trec", progress=False)
    assert "has no documents for 3 of the 4 judged queries; they score 0" in capsys.readouterr().err
