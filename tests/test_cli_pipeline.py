"""mine -> train -> eval through the real command line on a tiny BEIR folder and a tiny model."""

import json

import yaml
from typer.testing import CliRunner

from unirank.cli import app
from unirank.models.backbone import tiny_backbone
from unirank.models.bi import BiEncoder

from .conftest import write_beir

runner = CliRunner()


def _folder(tmp_path):
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split()
    docs = {f"d{i}": ("", " ".join(words[(i + j) % len(words)] for j in range(6))) for i in range(12)}
    queries = {f"q{i}": " ".join(words[(i + j) % len(words)] for j in range(3)) for i in range(8)}
    folder = write_beir(tmp_path / "b", docs, queries, {f"q{i}": {f"d{i}": 1} for i in range(8)}, split="train")
    write_beir(folder, docs, queries, {f"q{i}": {f"d{i}": 1} for i in range(6, 8)}, split="test")
    return folder


def test_mine_then_train_then_eval(tmp_path):
    folder = _folder(tmp_path)
    r = runner.invoke(
        app,
        [
            "mine",
            "--data",
            str(folder),
            "--split",
            "train",
            "--miner",
            "bm25",
            "--filter",
            "none",
            "--sampler",
            "top:range_min=1",
            "--negatives",
            "2",
            "--seed",
            "3",
            "--out",
            str(tmp_path / "mined"),
            "--set",
            "miner.bm25.stemmer=null",
        ],
    )
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (tmp_path / "mined" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(len(row["negatives"]) <= 2 for row in rows)
    assert all(n["rank"] > 1 for row in rows for n in row["negatives"])  # range_min=1 skips the top rank
    manifest = json.loads((tmp_path / "mined" / "mine.json").read_text())
    assert manifest["config"]["seed"] == 3

    model_dir = tmp_path / "tiny"
    BiEncoder(tiny_backbone(hidden=32), max_length=24).save(model_dir)
    cfg = {
        "model": {"kind": "bi", "name": str(model_dir)},
        "data": {
            "train": str(folder),
            "split": "train",
            "mined": str(tmp_path / "mined" / "train.jsonl"),
            "negatives": 2,
        },
        "dev": {"split": None},
        "batch_size": 4,
        "out": str(tmp_path / "run"),
    }
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(cfg))
    r = runner.invoke(app, ["train", str(tmp_path / "t.yaml"), "--epochs", "1"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "metrics.jsonl").exists()

    exported = next(p.parent for p in (tmp_path / "run").rglob("unirank_model.json"))
    r = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(folder),
            "--split",
            "test",
            "--retriever",
            "dense",
            "--model",
            str(exported),
            "--out",
            str(tmp_path / "ev"),
        ],
    )
    assert r.exit_code == 0, r.output
    cfg_out = json.loads((tmp_path / "ev" / "config.json").read_text())
    assert cfg_out["model"]["fingerprint"] and cfg_out["data"]["queries"] == 2


def test_mine_bad_sampler_lists_valid_names(tmp_path):
    folder = _folder(tmp_path)
    r = runner.invoke(app, ["mine", "--data", str(folder), "--sampler", "topp", "--out", str(tmp_path / "m")])
    assert r.exit_code == 2 and "simans" in r.output
    assert not (tmp_path / "m").exists()


def test_train_unknown_key_exits_2(tmp_path):
    (tmp_path / "t.yaml").write_text("batch_size: 4\n")
    r = runner.invoke(app, ["train", str(tmp_path / "t.yaml"), "--epoch", "2"])
    assert r.exit_code == 2 and "unknown config key 'epoch'" in r.output
    r = runner.invoke(app, ["train", str(tmp_path / "missing.yaml")])
    assert r.exit_code == 2 and "missing.yaml" in r.output


def _tiny_saved(kind, path):
    from unirank.models.base import model_class

    model_class(kind)(tiny_backbone(hidden=32)).save(path)
    return path


def test_eval_rerank_with_cross_encoder_through_cli(tiny_beir, tmp_path):
    model = _tiny_saved("cross", tmp_path / "cross")
    out = tmp_path / "rr"
    r = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(tiny_beir),
            "--retriever",
            "bm25",
            "--reranker",
            "cross",
            "--reranker-model",
            str(model),
            "--rerank-depth",
            "2",
            "--out",
            str(out),
            "--set",
            "retriever.bm25.stemmer=null",
        ],
    )
    assert r.exit_code == 0, r.output
    run = {}
    for line in (out / "run.trec").read_text().splitlines():
        q, _, d, *_ = line.split()
        run.setdefault(q, []).append(d)
    assert max(len(v) for v in run.values()) <= 2  # only the top `depth` first-stage docs are kept
    assert (out / "first_stage" / "metrics.json").exists() and (out / "metrics.json").exists()


def test_eval_response_task_on_real_ecd_sample(tmp_path):
    import pathlib

    data = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "ecd_sample" / "test.txt"
    if not data.exists():
        import pytest

        pytest.skip("shared data not present")
    model = _tiny_saved("uni", tmp_path / "uni")
    out = tmp_path / "resp"
    r = runner.invoke(
        app,
        [
            "eval",
            "--task",
            "response",
            "--data",
            str(data),
            "--format",
            "tsv",
            "--kind",
            "uni",
            "--response-model",
            str(model),
            "--limit-queries",
            "4",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"R10@1", "R10@2", "R10@5", "mrr"}
    assert 0.0 <= metrics["R10@1"] <= metrics["R10@2"] <= metrics["R10@5"] <= 1.0


def test_eval_unknown_task_lists_valid(tiny_beir):
    r = runner.invoke(app, ["eval", "--data", str(tiny_beir), "--task", "qa"])
    assert r.exit_code == 2 and "response" in r.output and "retrieval" in r.output


def test_encode_index_then_eval_prebuilt_equals_dense(tmp_path):
    folder = _folder(tmp_path)
    model = tmp_path / "bi"
    BiEncoder(tiny_backbone(hidden=32), max_length=24).save(model)
    store, ix = tmp_path / "store", tmp_path / "ix"
    for i in (0, 1):  # two shards, as two machines would run them
        r = runner.invoke(
            app,
            [
                "encode",
                "--data",
                str(folder),
                "--model",
                str(model),
                "--shard",
                f"{i}/2",
                "--chunk-size",
                "5",
                "--out",
                str(store),
            ],
        )
        assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["index", "--store", str(store), "--out", str(ix), "--kind", "flat"])
    assert r.exit_code == 0, r.output
    runs = {}
    for name, extra in (
        ("dense", []),
        ("prebuilt", ["--set", f"retriever.dense.store={store}", "--set", f"retriever.dense.index_dir={ix}"]),
    ):
        r = runner.invoke(
            app,
            [
                "eval",
                "--data",
                str(folder),
                "--split",
                "test",
                "--retriever",
                name,
                "--model",
                str(model),
                "--k",
                "5",
                "--out",
                str(tmp_path / name),
                *extra,
            ],
        )
        assert r.exit_code == 0, r.output
        runs[name] = (tmp_path / name / "run.trec").read_text().split()
    dense, pre = runs["dense"], runs["prebuilt"]
    assert dense[2::6] == pre[2::6]  # same documents in the same order
    assert [float(x) for x in dense[4::6]] == __import__("pytest").approx([float(x) for x in pre[4::6]], abs=1e-5)
    # mining reads the same store (no re-encoding), through the CLI
    r = runner.invoke(
        app,
        [
            "mine",
            "--data",
            str(folder),
            "--split",
            "train",
            "--miner",
            "prebuilt",
            "--model",
            str(model),
            "--set",
            f"miner.dense.store={store}",
            "--set",
            f"miner.dense.index_dir={ix}",
            "--filter",
            "none",
            "--negatives",
            "2",
            "--out",
            str(tmp_path / "mined"),
        ],
    )
    assert r.exit_code == 0, r.output
    mined = json.loads((tmp_path / "mined" / "mine.json").read_text())
    assert mined["miner"]["miner"] == "prebuilt" and mined["counts"]["negatives_written"] > 0
