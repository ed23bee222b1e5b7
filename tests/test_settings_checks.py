"""Settings that used to be accepted unchecked (issue 18, part 4): refused by the config
loader with the YAML line, or by validate() for configs built in code; k larger than the
corpus is capped (memory grows with the data, not with k)."""

from __future__ import annotations

import math

import pytest

from unirank.config import from_dict, load_config
from unirank.errors import ConfigError
from unirank.eval.config import EvalConfig
from unirank.eval.evaluate import run_eval
from unirank.negatives.pipeline import MineConfig, run_mine
from unirank.train import TrainConfig

from .conftest import write_beir


@pytest.mark.parametrize(
    "line, expect",
    [
        ("dev: {split: dev, batch_size: 0}", r"dev\.batch_size must be >= 1, got 0"),
        ("test: {split: test, max_docs: -5}", r"test\.max_docs must be >= 1, got -5"),
        ("losses: {infonce: 1.0, mw: -0.5}", r"losses\.mw: weight must be >= 0, got -0\.5"),
        ("losses: {mw: {weight: -1, pairing: global}}", r"losses\.mw: weight must be >= 0"),
        ("save_every: -10", r"save_every must be >= 0, got -10"),
        ("keep_checkpoints: 0", r"keep_checkpoints must be >= 1, got 0"),
        ("keep_checkpoints: -3", r"keep_checkpoints must be >= 1, got -3"),
        ("max_grad_norm: .nan", r"'max_grad_norm': expected a finite number, got nan"),
        ("lr: .inf", r"'lr': expected a finite number"),
        ("seed: -1", r"seed must be in \[0, 4294967295\], got -1"),
        ("seed: 4294967296", r"seed must be in \[0, 4294967295\]"),
        ("refresh: {every_steps: -1}", r"refresh\.every_steps must be >= 0"),
    ],
)
def test_train_settings_are_refused_with_the_yaml_line(tmp_path, line, expect):
    p = tmp_path / "train.yaml"
    p.write_text(f"model: {{kind: bi}}\n{line}\nout: {tmp_path / 'run'}\n")
    with pytest.raises(ConfigError, match=expect) as e:
        load_config(TrainConfig, p).validate()
    if "losses" not in line:  # the loss table is checked as a whole by validate()
        assert str(e.value).startswith(f"{p}:2: ")


@pytest.mark.parametrize(
    "changes, expect",
    [
        ({"test": {"split": "test", "measures": ["ndcg@x"]}}, r"^test\.measures: unknown metric 'ndcg@x'; valid:"),
        ({"dev": {"split": "dev", "measures": ["recall@100", "bleu"]}}, r"^dev\.measures: unknown metric 'bleu'"),
        ({"dev": {"split": "dev", "metric": "foo@3"}}, r"^dev\.metric: 'foo@3' is not one of the dev metrics"),
        ({"dev": {"split": "dev", "metric": "ndcg@20"}}, r"add it to dev\.measures"),
        ({"test": {"split": "test", "measures": []}}, r"^test\.measures: expected a non-empty list"),
        (
            {"data": {"task": "response", "train": "mutual"}, "dev": {"split": "dev", "metric": "ndcg@10"}},
            r"^dev\.metric: 'ndcg@10' is not a response-selection metric; valid: mrr, R<n>@<k>",
        ),
    ],
)
def test_metric_names_are_checked_before_training(tmp_path, changes, expect):
    # they used to surface after training (test) or after the first epoch (dev), with a run left behind
    cfg = from_dict(TrainConfig, {"out": str(tmp_path / "run"), **changes})
    with pytest.raises(ConfigError, match=expect):
        cfg.validate()
    assert not (tmp_path / "run").exists()


def test_metric_names_that_are_reported_pass(tmp_path):
    for changes in (
        {"dev": {"split": "dev", "metric": "auc_global"}},  # reported alongside auc
        {"dev": {"split": "dev", "metric": "recall@100"}, "test": {"split": "test", "measures": ["map@100", "p@5"]}},
        {"dev": {"split": None, "metric": "whatever"}},  # no dev evaluation: nothing to pick with
        {"data": {"task": "response", "train": "mutual"}, "dev": {"split": "dev", "metric": "R4@1"}},
    ):
        from_dict(TrainConfig, {"out": str(tmp_path / "run"), **changes}).validate()
    from unirank.tasks import get_task

    with pytest.raises(ConfigError, match=r"^measures: unknown metric 'ndcg@x'"):  # unirank eval: before retrieval
        get_task("retrieval").check_eval(from_dict(EvalConfig, {"measures": ["ndcg@x"]}))


def test_configs_built_in_code_are_checked_as_well(tmp_path):
    cfg = from_dict(TrainConfig, {"out": str(tmp_path / "run")})
    cfg.validate()
    for key, value, expect in [
        ("save_every", -1, "save_every must be >= 0"),
        ("keep_checkpoints", 0, "keep_checkpoints must be >= 1"),
        ("max_grad_norm", math.nan, "expected a finite number"),
        ("seed", -1, "seed must be in"),
    ]:
        bad = from_dict(TrainConfig, {"out": str(tmp_path / "run")})
        setattr(bad, key, value)
        with pytest.raises(ConfigError, match=expect):
            bad.validate()
    cfg.dev.batch_size = 0
    with pytest.raises(ConfigError, match=r"dev\.batch_size must be >= 1"):
        cfg.validate()
    with pytest.raises(ConfigError, match="seed must be in"):
        from_dict(EvalConfig, {"seed": -1})
    with pytest.raises(ConfigError, match="seed must be in"):
        from_dict(MineConfig, {"seed": -3})
    with pytest.raises(ConfigError, match="expected a finite number"):
        from_dict(EvalConfig, {"retriever": {"bm25": {"k1": float("nan")}}})


def test_k_larger_than_the_corpus_is_capped_not_allocated(tiny_beir, tmp_path, capsys):
    """k = 10**12 would ask for terabytes of result buffers; the corpus has 5 documents."""
    huge = 10**12
    for retriever in ("bm25", "hybrid"):
        cfg = from_dict(
            EvalConfig,
            {
                "data": str(tiny_beir),
                "k": huge,
                "retriever": {"name": retriever, "bm25": {"stemmer": None}, "dense": {"model": None}},
                "measures": ["ndcg@10", "recall@100"],
            },
        )
        if retriever == "hybrid":
            from unirank.index.retrievers import DenseRetriever, HybridRetriever
            from unirank.index.sparse import BM25Index
            from unirank.models.backbone import tiny_backbone
            from unirank.models.bi import BiEncoder

            r = HybridRetriever(
                BM25Index(stemmer=None),
                DenseRetriever(model=BiEncoder(tiny_backbone(hidden=16), max_length=16), show_progress=False),
                depth=huge,
            )
            res = run_eval(cfg, retriever=r)
        else:
            res = run_eval(cfg)
        assert max(len(v) for v in res.run.values()) <= 5
    assert "note: k=1000000000000 is more than the 5 documents" in capsys.readouterr().err


def test_mining_depth_larger_than_the_corpus_is_capped(tmp_path, capsys):
    docs = {f"d{i}": ("", f"text about topic {i} and more") for i in range(6)}
    data = write_beir(
        tmp_path / "d", docs, {"q1": "topic 1", "q2": "topic 2"}, {"q1": {"d1": 1}, "q2": {"d2": 1}}, split="train"
    )
    cfg = from_dict(
        MineConfig,
        {
            "data": str(data),
            "out": str(tmp_path / "m"),
            "depth": 10**12,
            "negatives": 3,
            "miner": {"bm25": {"stemmer": None}},
        },
    )
    manifest = run_mine(cfg)
    assert manifest["counts"]["queries_written"] == 2
    assert "note: depth=1000000000000 is more than the 6 documents" in capsys.readouterr().err
