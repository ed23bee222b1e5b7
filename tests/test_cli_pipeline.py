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
    r = runner.invoke(app, ["mine", "--data", str(folder), "--split", "train", "--miner", "bm25", "--filter", "none",
                            "--sampler", "top:range_min=1", "--negatives", "2", "--seed", "3", "--out", str(tmp_path / "mined"),
                            "--set", "miner.bm25.stemmer=null"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (tmp_path / "mined" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(len(row["negatives"]) <= 2 for row in rows)
    assert all(n["rank"] > 1 for row in rows for n in row["negatives"])  # range_min=1 skips the top rank
    manifest = json.loads((tmp_path / "mined" / "mine.json").read_text())
    assert manifest["config"]["seed"] == 3

    model_dir = tmp_path / "tiny"
    BiEncoder(tiny_backbone(hidden=32), max_length=24).save(model_dir)
    cfg = {"model": {"kind": "bi", "name": str(model_dir)},
           "data": {"train": str(folder), "split": "train", "mined": str(tmp_path / "mined" / "train.jsonl"), "negatives": 2},
           "dev": {"split": None}, "batch_size": 4, "out": str(tmp_path / "run")}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(cfg))
    r = runner.invoke(app, ["train", str(tmp_path / "t.yaml"), "--epochs", "1"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "metrics.jsonl").exists()

    exported = next(p.parent for p in (tmp_path / "run").rglob("unirank_model.json"))
    r = runner.invoke(app, ["eval", "--data", str(folder), "--split", "test", "--retriever", "dense", "--model", str(exported),
                            "--out", str(tmp_path / "ev")])
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
