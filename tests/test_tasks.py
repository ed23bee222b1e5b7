"""One task, one evaluation: the training loop's dev evaluation and ``unirank eval`` agree.

For each task (retrieval with a bi-encoder, retrieval reranked by a cross-encoder, response
selection) a tiny model is trained for one epoch with a dev evaluation, exported, and the
exported folder is evaluated by the CLI on the same split: the metrics must be equal.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from unirank.cli import app
from unirank.config import from_dict
from unirank.models.backbone import tiny_backbone
from unirank.train import TrainConfig, train

from .conftest import write_beir

QUIET = {"progress": False, "log": lambda m: None}
TOPICS = [
    "cats purr softly",
    "dogs bark loudly",
    "fish swim in bowls",
    "birds sing at dawn",
    "cars need fuel",
    "rain falls in spring",
    "bread is baked daily",
    "chess needs strategy",
]
runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _beir(tmp_path: Path) -> Path:
    docs = {
        f"d{i}": (t.split()[0].title(), f"a note about {t} and {TOPICS[(i + 3) % 8]}") for i, t in enumerate(TOPICS)
    }
    queries = {f"q{i}": f"question on {t.split()[0]} {t.split()[-1]}" for i, t in enumerate(TOPICS)}
    folder = tmp_path / "beir"
    write_beir(folder, docs, queries, {f"q{i}": {f"d{i}": 1} for i in range(8)}, split="train")
    write_beir(folder, docs, queries, {f"q{i}": {f"d{i}": 1, f"d{(i + 1) % 8}": 1} for i in range(8)}, split="dev")
    return folder


def _cfg(tmp_path: Path, **kw) -> TrainConfig:
    base = {
        "batch_size": 4,
        "epochs": 1,
        "lr": 1e-3,
        "log_every": 1,
        "out": str(tmp_path / "run"),
        "warmup_ratio": 0.0,
        "export": "last",
    }
    base.update(kw)
    return from_dict(TrainConfig, base)


def _cli_metrics(args: list[str], out: Path) -> dict[str, float]:
    r = runner.invoke(app, ["eval", *args, "--out", str(out)])
    assert r.exit_code == 0, r.output
    return json.loads((out / "metrics.json").read_text())


def test_retrieval_dense_dev_evaluation_equals_unirank_eval(tmp_path):
    from unirank.models.bi import BiEncoder

    folder = _beir(tmp_path)
    measures = ["ndcg@10", "recall@100", "mrr@10", "auc"]
    cfg = _cfg(
        tmp_path,
        data={"train": str(folder), "split": "train", "negatives": 0},
        dev={"split": "dev", "measures": measures},
        test={"split": None},
    )
    summary = train(cfg, model=BiEncoder(tiny_backbone(hidden=32), max_length=24), **QUIET)
    dev = {k: v for k, v in summary["dev"][-1].items() if k not in ("step", "epoch")}
    cli = _cli_metrics(
        [
            "--data",
            str(folder),
            "--split",
            "dev",
            "--retriever",
            "dense",
            "--model",
            summary["export"]["model"],
            "--set",
            f"measures=[{','.join(measures)}]",
        ],
        tmp_path / "eval",
    )
    assert set(measures) <= set(dev)
    assert {m: cli[m] for m in dev} == pytest.approx(dev, abs=1e-6)


def test_retrieval_rerank_dev_evaluation_equals_unirank_eval(tmp_path):
    from unirank.models.cross import CrossEncoder

    folder = _beir(tmp_path)
    measures = ["ndcg@10", "recall@100", "mrr@10"]
    cfg = _cfg(
        tmp_path,
        in_batch_negatives=True,
        losses={"ce": 1.0},
        data={"train": str(folder), "split": "train", "negatives": 0},
        dev={"split": "dev", "measures": measures, "rerank_depth": 5},
        test={"split": None},
    )
    model = CrossEncoder(tiny_backbone(hidden=32), max_context_length=16, max_candidate_length=16)
    summary = train(cfg, model=model, **QUIET)
    dev = {k: v for k, v in summary["dev"][-1].items() if k not in ("step", "epoch")}
    cli = _cli_metrics(
        [
            "--data",
            str(folder),
            "--split",
            "dev",
            "--retriever",
            "bm25",
            "--reranker-model",
            summary["export"]["model"],
            "--rerank-depth",
            "5",
            "--set",
            f"measures=[{','.join(measures)}]",
        ],
        tmp_path / "eval",
    )
    assert set(measures) == set(dev)
    assert {m: cli[m] for m in dev} == pytest.approx(dev, abs=1e-5)


def test_response_dev_evaluation_equals_unirank_eval(tmp_path):
    from unirank.models.uni import UniEncoder

    rows = []
    for i, t in enumerate(TOPICS):
        cands = [f"yes, {t}"] + [f"yes, {TOPICS[(i + j) % len(TOPICS)]}" for j in (1, 2, 3)]
        rows.append(
            {
                "id": f"c{i}",
                "context": ["hello there", f"tell me: {t.split()[0]}?"],
                "candidates": cands,
                "labels": [1, 0, 0, 0],
            }
        )
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = _cfg(
        tmp_path,
        in_batch_negatives=False,
        losses={"ce": 1.0},
        batching={"name": "random"},
        data={"task": "response", "train": str(data), "negatives": 3, "negative_choice": "first"},
        dev={"split": "dev", "data": str(data)},
        test={"split": None},
    )
    model = UniEncoder(tiny_backbone(hidden=32), max_context_length=16, max_candidate_length=12)
    summary = train(cfg, model=model, **QUIET)
    dev = {k: v for k, v in summary["dev"][-1].items() if k not in ("step", "epoch")}
    cli = _cli_metrics(
        ["--task", "response", "--data", str(data), "--response-model", summary["export"]["model"]], tmp_path / "eval"
    )
    assert set(dev) == {"R4@1", "R4@2", "mrr"}
    assert {m: cli[m] for m in dev} == pytest.approx(dev, abs=1e-6)
