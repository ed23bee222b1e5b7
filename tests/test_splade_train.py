"""SPLADE in the training loop (FLOPS / L1 regularisers, logged sparsity), as a miner, in the
CLI (eval, encode, index) and in the server."""

import json

import numpy as np
import pytest
import torch

from unirank.config import from_dict
from unirank.errors import ConfigError
from unirank.losses import LossInputs, combine, flops, flops_value, l1, l1_value, quadratic_warmup
from unirank.models.backbone import tiny_backbone
from unirank.models.mlm_head import MLMHead
from unirank.models.splade import Splade


def tiny_splade(seed=0, **kw):
    bb = tiny_backbone(hidden=16, seed=seed)
    return Splade(
        bb, MLMHead.tied_to(bb.model.get_input_embeddings(), seed=seed), max_length=kw.pop("max_length", 32), **kw
    )


# --------------------------------------------------------------------------- regulariser math


def test_flops_and_l1_by_hand():
    w = torch.tensor([[1.0, 0.0, 3.0], [1.0, 2.0, 0.0]])
    # column means 1, 1, 1.5 -> 1 + 1 + 2.25
    assert flops_value(w).item() == pytest.approx(4.25)
    assert l1_value(w).item() == pytest.approx(3.5)  # (4 + 3) / 2
    assert flops_value(torch.zeros(0, 3)).item() == 0.0
    x = LossInputs(torch.zeros(2, 2), torch.eye(2, dtype=torch.bool), query_reps=w, doc_reps=2 * w, step=3)
    # warm-up (3 / 6)^2 = 0.25; 0.25 * (0.1 * 4.25 + 0.01 * 17)
    assert flops(x, query=0.1, doc=0.01, warmup_steps=6).item() == pytest.approx(0.25 * (0.425 + 0.17))
    assert l1(x, query=1.0, doc=0.0).item() == pytest.approx(3.5)
    assert [quadratic_warmup(s, 10) for s in (0, 5, 10, 20)] == [0.0, 0.25, 1.0, 1.0]
    assert quadratic_warmup(None, 10) == 1.0 and quadratic_warmup(3, 0) == 1.0


def test_flops_gradient_is_two_mean_over_n():
    w = torch.tensor([[1.0, 0.5], [3.0, 2.0]], requires_grad=True)
    flops_value(w).backward()
    # d/dw_iv (mean_i w_iv)^2 = 2 * mean_v / N
    torch.testing.assert_close(w.grad, torch.tensor([[2.0, 1.25], [2.0, 1.25]]))


def test_regulariser_errors():
    x = LossInputs(torch.zeros(1, 1), torch.ones(1, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="needs the batch's query and document representations"):
        flops(x)
    y = LossInputs(
        torch.zeros(1, 1), torch.ones(1, 1, dtype=torch.bool), query_reps=torch.ones(1, 2), doc_reps=torch.ones(1, 2)
    )
    with pytest.raises(ValueError, match="query weight"):
        flops(y, query=-1.0)
    with pytest.raises(ValueError, match="query_reps"):
        LossInputs(torch.zeros(1, 1), torch.ones(1, 1, dtype=torch.bool), query_reps=torch.ones(3))
    total, parts = combine({"infonce": 1.0, "flops": {"weight": 1.0, "query": 1.0, "doc": 0.0}}, y)
    assert set(parts) == {"infonce", "flops"} and parts["flops"].item() == pytest.approx(2.0)


# --------------------------------------------------------------------------- training loop


def _examples(n=6):
    from unirank.types import Candidate, TrainExample

    topics = [
        "cats purr on the sofa",
        "dogs bark at the postman",
        "fish swim in bowls",
        "birds sing in trees",
        "cars need fuel",
        "trains run on rails",
    ]
    return [
        TrainExample(
            f"q{i}",
            f"question about {topics[i % 6].split()[0]}",
            [Candidate(f"d{i}", topics[i % 6])],
            [Candidate(f"n{i}", topics[(i + 1) % 6], score=0.0)],
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("grad_cache", [False, True])
def test_training_logs_flops_and_non_zeros_and_regulariser_sparsifies(tmp_path, grad_cache):
    from unirank.train import TrainConfig, train

    torch.manual_seed(0)
    cfg = from_dict(
        TrainConfig,
        {
            "batch_size": 3,
            "epochs": 2,
            "dev": {"split": None},
            "out": str(tmp_path / "run"),
            "log_every": 1,
            "lr": 1e-3,
            "warmup_ratio": 0.0,
            "grad_cache": grad_cache,
            "chunk_size": 2,
            "losses": {
                "infonce": {"weight": 1.0, "tau": 1.0},
                "flops": {"weight": 1.0, "query": 3.0, "doc": 3.0, "warmup_steps": 2},
            },
        },
    )
    model = tiny_splade()
    before = model.encode(["cats purr on the sofa"]).nnz
    summary = train(cfg, model=model, examples=_examples(), progress=False, log=lambda m: None)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert {"flops", "nnz_q", "nnz_d", "infonce"} <= set(steps[0])
    assert steps[0]["flops"] == 0.0  # quadratic warm-up: weight 0 at step 0
    assert steps[-1]["flops"] > 0
    after = model.encode(["cats purr on the sofa"]).nnz
    assert after < before  # a strong FLOPS weight prunes terms
    assert summary["export"]["model"].endswith("model")
    again = Splade.from_pretrained(summary["export"]["model"])
    np.testing.assert_allclose(again.encode(["cats"]).toarray(), model.encode(["cats"]).toarray(), atol=1e-5)


def test_training_with_margin_mse_teacher_scores(tmp_path):
    from unirank.train import TrainConfig, train
    from unirank.types import Candidate, TrainExample

    ex = [
        TrainExample(e.query_id, e.query, [Candidate(p.id, p.text, score=5.0) for p in e.positives], e.negatives)
        for e in _examples()
    ]
    cfg = from_dict(
        TrainConfig,
        {
            "batch_size": 3,
            "epochs": 1,
            "dev": {"split": None},
            "out": str(tmp_path / "run"),
            "log_every": 1,
            "losses": {"margin_mse": 1.0, "infonce": 1.0, "flops": 1.0},
        },
    )
    train(cfg, model=tiny_splade(), examples=ex, progress=False, log=lambda m: None)
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["margin_mse"] > 0 and "nnz_d" in row


def test_dev_evaluation_of_a_splade_model_uses_sparse_retrieval(tmp_path, tiny_beir):
    from unirank.train import TrainConfig, train

    cfg = from_dict(
        TrainConfig,
        {
            "batch_size": 2,
            "epochs": 1,
            "out": str(tmp_path / "run"),
            "log_every": 1,
            "data": {"train": str(tiny_beir), "split": "test"},
            "dev": {"split": "test"},
            "losses": {"infonce": 1.0},
        },
    )
    summary = train(cfg, model=tiny_splade(), progress=False, log=lambda m: None)
    assert summary["dev"] and "ndcg@10" in summary["dev"][0]


# --------------------------------------------------------------------------- miner, CLI, server


def test_splade_miner_scores_match_the_dot_product(tmp_path, tiny_beir):
    from unirank.negatives.miners import SpladeMiner
    from unirank.negatives.pipeline import MineConfig, run_mine

    model = tiny_splade()
    m = SpladeMiner(model)
    texts = ["cats purr", "dogs bark loudly", "fish swim"]
    m.build(["a", "b", "c"], texts)
    state = m.prepare(["do cats purr"])
    hits = m.search(state, k=3, rows=[[1, 2]])
    d = model.encode_docs(texts).toarray()
    q = model.encode_queries(["do cats purr"]).toarray()[0]
    np.testing.assert_allclose(hits.row_scores[0], (d @ q)[[1, 2]], rtol=1e-5)
    order = [j for j in hits.indices[0] if j >= 0]
    assert order == [j for j in np.argsort(-(d @ q), kind="stable") if (d @ q)[j] > 0]
    cfg = from_dict(
        MineConfig,
        {
            "data": str(tiny_beir),
            "split": "test",
            "miner": {"name": "splade"},
            "negatives": 1,
            "filters": [{"name": "duplicates"}],
            "out": str(tmp_path / "mined"),
        },
    )
    manifest = run_mine(cfg, encoder=model)
    assert manifest["miner"]["miner"] == "splade" and (tmp_path / "mined" / "train.jsonl").is_file()


def test_cli_encode_index_and_eval_with_a_sparse_store(tmp_path, tiny_beir):
    from typer.testing import CliRunner

    from unirank.cli import app

    model_dir = tmp_path / "m"
    tiny_splade().save(model_dir)
    runner = CliRunner()
    for i in range(2):
        r = runner.invoke(
            app,
            [
                "encode",
                "--data",
                str(tiny_beir),
                "--kind",
                "splade",
                "--model",
                str(model_dir),
                "--out",
                str(tmp_path / "store"),
                "--shard",
                f"{i}/2",
                "--chunk-size",
                "2",
            ],
        )
        assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        [
            "index",
            "--store",
            str(tmp_path / "store"),
            "--kind",
            "seismic",
            "--set",
            "n_postings",
            "--out",
            str(tmp_path / "bad"),
        ],
    )
    assert r.exit_code == 2 and "--set 'n_postings': expected key=value" in r.output, r.output
    r = runner.invoke(
        app, ["index", "--store", str(tmp_path / "store"), "--kind", "exact", "--out", str(tmp_path / "ix")]
    )
    assert r.exit_code == 0, r.output
    outs = {}
    for name, extra in (
        ("direct", []),
        ("store", ["--set", f"retriever.splade.store={tmp_path / 'store'}"]),
        (
            "indexed",
            [
                "--set",
                f"retriever.splade.store={tmp_path / 'store'}",
                "--set",
                f"retriever.splade.index_dir={tmp_path / 'ix'}",
            ],
        ),
    ):
        r = runner.invoke(
            app,
            [
                "eval",
                "--data",
                str(tiny_beir),
                "--split",
                "test",
                "--retriever",
                "splade",
                "--model",
                str(model_dir),
                "--out",
                str(tmp_path / f"eval-{name}"),
                *extra,
            ],
        )  # not into the store itself
        assert r.exit_code == 0, r.output
        outs[name] = json.loads((tmp_path / f"eval-{name}" / "metrics.json").read_text())
    assert outs["direct"]["ndcg@10"] == pytest.approx(outs["store"]["ndcg@10"], abs=1e-6)
    assert outs["direct"]["ndcg@10"] == pytest.approx(outs["indexed"]["ndcg@10"], abs=1e-6)
    r = runner.invoke(app, ["eval", "--data", str(tiny_beir), "--retriever", "splade", "--model", "minilm"])
    assert r.exit_code == 2 and "no MLM head" in r.output and "tied_head" in r.output


def test_store_written_with_another_vocabulary_is_refused(tmp_path, tiny_beir):
    from unirank.index.learned_sparse import encode_sparse_shard
    from unirank.index.splade_retriever import SpladeRetriever

    model = tiny_splade()
    encode_sparse_shard(model, str(tiny_beir), shard=(0, 1), out_dir=tmp_path / "store")
    meta = json.loads((tmp_path / "store" / "store.json").read_text())
    meta["vocab_fingerprint"] = "0000000000000000"
    (tmp_path / "store" / "store.json").write_text(json.dumps(meta))
    r = SpladeRetriever(model, store=str(tmp_path / "store"))
    with pytest.raises(ConfigError, match="another vocabulary"):
        r.build(["d1"], ["x"])


def test_server_backend_with_splade_retriever(tmp_path, tiny_beir):
    from unirank.serve.backend import SearchItem, load_backend

    model_dir = tmp_path / "m"
    tiny_splade().save(model_dir)
    be = load_backend(model=str(model_dir), kind="splade", index=str(tiny_beir), retriever="splade")
    hits = be.search_batch([SearchItem("why do cats purr", 3, rerank=True)])[0]
    assert hits and all(h.score >= 0 for h in hits)
    be2 = load_backend(model=None, index=str(tiny_beir), retriever="splade", dense_model=str(model_dir))
    assert [h.index for h in be2.search_batch([SearchItem("why do cats purr", 3)])[0]] == [
        h.index for h in be.search_batch([SearchItem("why do cats purr", 3)])[0]
    ]
