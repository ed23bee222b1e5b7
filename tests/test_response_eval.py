"""Response-selection evaluation: batched scoring, metrics, outputs, ranker loading."""

import json

import numpy as np
import pytest
import torch

from unirank.data.dialogue import write_response_jsonl
from unirank.eval.metrics import response_metrics
from unirank.eval.response import (
    evaluate_response,
    response_cutoffs,
    run_response_eval,
    score_lists,
    write_response_outputs,
)
from unirank.models.backbone import tiny_backbone
from unirank.models.uni import UniEncoder
from unirank.types import DialogueExample

from .conftest import OverlapRanker


def _cfg(data: str, **kw):
    from unirank.config import from_dict
    from unirank.eval.config import EvalConfig

    return from_dict(EvalConfig, {"task": "response", "data": data, **kw})


EXAMPLES = [
    # scores [2, 1, 0] -> correct first: rank 1
    DialogueExample("e1", ["a b c"], ["a b", "a", "z"], [1, 0, 0]),
    # scores [1, 1, 0] -> correct tied with a wrong one: pessimistic rank 2
    DialogueExample("e2", ["a", "b"], ["x a", "b", "q"], [0, 1, 0]),
    # scores [0, 3, 1, 2] -> correct ranks 4th
    DialogueExample("e3", ["p q r"], ["z", "p q r", "p", "q r"], [1, 0, 0, 0]),
]


def test_metrics_are_hand_computed_and_input_order_is_kept():
    ranker = OverlapRanker()
    metrics, scores = evaluate_response(ranker, EXAMPLES, batch_size=2, progress=False)
    assert scores == [[2.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 3.0, 1.0, 2.0]]
    # ranks 1, 2, 4 -> R@1 = 1/3, R@2 = 2/3, MRR = (1 + 1/2 + 1/4) / 3; mixed sizes -> "R@k"; k=5 >= 4 dropped
    assert metrics == pytest.approx({"R@1": 1 / 3, "R@2": 2 / 3, "mrr": 1.75 / 3})
    assert sorted(n for call in ranker.calls for n in call) == [3, 3, 4]
    assert [len(call) for call in ranker.calls] == [2, 1]


def test_chunk_size_bounds_candidates_per_call_without_changing_scores():
    ranker = OverlapRanker()
    _, scores = evaluate_response(ranker, EXAMPLES, batch_size=3, chunk_size=2, progress=False)
    assert scores == [[2.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 3.0, 1.0, 2.0]]
    assert max(n for call in ranker.calls for n in call) == 2


def test_examples_without_a_correct_candidate_are_scored_but_not_counted():
    extra = DialogueExample("none", ["a"], ["a", "b", "c"], [0, 0, 0])
    m_all, s_all = evaluate_response(OverlapRanker(), EXAMPLES + [extra], progress=False)
    m, _ = evaluate_response(OverlapRanker(), EXAMPLES, progress=False)
    assert m_all == m and s_all[-1] == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="no example has a correct candidate"):
        evaluate_response(OverlapRanker(), [extra], progress=False)


def test_cutoffs_follow_the_candidate_count():
    assert response_cutoffs([4] * 3) == [1, 2]
    assert response_cutoffs([10]) == [1, 2, 5]
    mutual_like = [DialogueExample(str(i), ["a"], ["a", "b", "c", "d"], [1, 0, 0, 0]) for i in range(2)]
    assert sorted(evaluate_response(OverlapRanker(), mutual_like, progress=False)[0]) == ["R4@1", "R4@2", "mrr"]


def uni_examples():
    rng = np.random.default_rng(0)
    words = "the cat sat on a mat dog ran far away sun hot cold".split()
    out = []
    for i in range(5):
        n = 4 if i % 2 else 6
        cands = [" ".join(rng.choice(words, size=int(rng.integers(1, 6)))) for _ in range(n)]
        labels = [0] * n
        labels[int(rng.integers(n))] = 1
        out.append(DialogueExample(f"u{i}", [" ".join(rng.choice(words, size=4)), "and then"], cands, labels))
    return out


def test_uni_model_metrics_match_response_metrics_of_its_own_scores():
    model = UniEncoder(tiny_backbone(), mask="arrow_strict")
    model.train()
    exs = uni_examples()
    metrics, scores = evaluate_response(model, exs, batch_size=2, progress=False)
    assert model.training  # mode restored
    assert metrics == response_metrics(scores, [e.labels for e in exs], ks=(1, 2, 5))
    model.eval()
    with torch.inference_mode():
        for ex, s in zip(exs, scores):
            alone = model.score([ex.context], [ex.candidates])[0].tolist()
            assert s == pytest.approx(alone, abs=1e-5)  # batching/padding does not change scores
    _, chunked = evaluate_response(model, exs, batch_size=3, chunk_size=2, progress=False)
    assert np.allclose(np.concatenate(chunked), np.concatenate(scores), atol=1e-5)  # exact for arrow_strict


def test_score_lists_handles_empty_candidate_lists():
    assert score_lists(OverlapRanker(), ["a", "b"], [[], ["b", "c"]]) == [[], [1.0, 0.0]]


def test_outputs_and_run_response_eval(tmp_path):
    data = tmp_path / "d.jsonl"
    write_response_jsonl(data, EXAMPLES)
    res = run_response_eval(
        _cfg(str(data), out=str(tmp_path / "out"), response={"batch_size": 2}),
        ranker=OverlapRanker(),
        quiet=True,
        progress=False,
    )
    assert res.metrics == pytest.approx({"R@1": 1 / 3, "R@2": 2 / 3, "mrr": 1.75 / 3})
    rows = [json.loads(line) for line in (tmp_path / "out" / "scores.jsonl").read_text().splitlines()]
    assert [(r["id"], r["rank"]) for r in rows] == [("e1", 1), ("e2", 2), ("e3", 4)]
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == res.metrics
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["config"]["response"]["batch_size"] == 2 and cfg["counts"] == {
        "examples": 3,
        "candidates": 10,
        "without_correct_candidate": 0,
    }
    assert cfg["data"]["manifest"]["source"]["sha256"] and cfg["ranker"]["kind"] == "overlap"
    write_response_outputs(tmp_path / "o2", [DialogueExample("n", [], ["x"], [0])], [[0.5]], {}, {})
    assert json.loads((tmp_path / "o2" / "scores.jsonl").read_text())["rank"] is None


def test_generic_seed_reaches_built_data_but_not_files(tmp_path):
    root = tmp_path / "dd"
    for split, lines in {
        "train": ["A . __eou__ B . __eou__"],
        "test": ["C . __eou__ D . __eou__ E . __eou__", "F . __eou__ G . __eou__ H . __eou__"],
    }.items():
        (root / split).mkdir(parents=True)
        (root / split / f"dialogues_{split}.txt").write_text("\n".join(lines) + "\n")
    res = run_response_eval(
        _cfg("dailydialog", seed=3, response={"data_options": {"root": str(root)}, "n_candidates": 3}),
        ranker=OverlapRanker(),
        quiet=True,
        progress=False,
    )
    assert res.info["data"]["manifest"]["params"]["seed"] == 3 and len(res.examples[0].candidates) == 3
    data = tmp_path / "d.jsonl"
    write_response_jsonl(data, EXAMPLES)
    res = run_response_eval(
        _cfg(str(data), seed=3, response={"n_candidates": 3}), ranker=OverlapRanker(), quiet=True, progress=False
    )
    assert res.info["counts"]["examples"] == 3  # seed / n ignored: a file is not built
