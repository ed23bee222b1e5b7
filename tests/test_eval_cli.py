import json

import pytest
from typer.testing import CliRunner

from unirank.cli import app
from unirank.config import from_dict, load_config
from unirank.errors import ConfigError
from unirank.eval.config import EvalConfig
from unirank.eval.evaluate import run_eval

runner = CliRunner()


def test_eval_bm25_end_to_end_writes_all_outputs(tiny_beir, tmp_path):
    out = tmp_path / "out"
    r = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(tiny_beir),
            "--retriever",
            "bm25",
            "--k",
            "3",
            "--out",
            str(out),
            "--set",
            "retriever.bm25.stemmer=null",
        ],
    )
    assert r.exit_code == 0, r.output
    metrics = json.loads((out / "metrics.json").read_text())
    # q1 -> d1, q2 -> d2, q3 -> d4, each at rank 1; q4 ("unrelated xyzzy") shares no term with any
    # document, so its run is empty and, as in pytrec_eval, scores 0: mean = 3/4
    assert metrics["mrr@10"] == pytest.approx(0.75)
    assert metrics["recall@100"] == pytest.approx(0.75)
    lines = (out / "run.trec").read_text().splitlines()
    assert lines[0].split()[:4] == ["q1", "Q0", "d1", "1"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["retriever"]["name"] == "bm25" and cfg["data"]["fingerprint"]
    assert "versions" in cfg and cfg["data"]["queries"] == 4
    html = (out / "report.html").read_text()
    assert "ndcg@10" in html and "<table>" in html
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_eval_missing_query_counted_as_skip_like_trec_eval(tiny_beir):
    cfg = from_dict(EvalConfig, {"data": str(tiny_beir), "k": 3, "retriever": {"bm25": {"stemmer": None}}})
    res = run_eval(cfg, quiet=True)
    assert set(res.run) == {"q1", "q2", "q3", "q4"}
    assert res.run["q4"] == {}


def test_bad_data_exits_2_with_file_and_line(tiny_beir, tmp_path):
    (tiny_beir / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": \n')
    r = runner.invoke(app, ["eval", "--data", str(tiny_beir), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "corpus.jsonl:2" in r.output
    assert not (tmp_path / "o").exists()


def test_unknown_retriever_and_config_key_are_clear_errors(tiny_beir, tmp_path):
    r = runner.invoke(app, ["eval", "--data", str(tiny_beir), "--retriever", "bm26"])
    assert r.exit_code == 2 and "valid: bm25, cur, dense, " in r.output and "hybrid" in r.output
    r = runner.invoke(app, ["eval", "--data", str(tiny_beir), "--set", "retriever.bm25.k=1"])
    assert r.exit_code == 2 and "retriever.bm25.k" in r.output


def test_yaml_config_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: x\nretriever:\n  name: dense\n  dense:\n    batch_size: 8\n")
    cfg = load_config(EvalConfig, p, ["k=5"])
    assert (cfg.data, cfg.retriever.name, cfg.retriever.dense.batch_size, cfg.k) == ("x", "dense", 8, 5)
    with pytest.raises(ConfigError, match="expected an integer"):
        load_config(EvalConfig, p, ["k=five"])
    # an Optional key reports its own type's message, not the Union's repr
    with pytest.raises(ConfigError, match=r"^config key 'limit_queries': expected an integer, got 'some'$"):
        load_config(EvalConfig, p, ["limit_queries=some"])


def test_union_of_two_types_names_both():
    import dataclasses

    from unirank.config import from_dict

    @dataclasses.dataclass
    class C:
        x: int | str = 1

    assert from_dict(C, {"x": "s"}).x == "s"
    with pytest.raises(ConfigError, match=r"^config key 'x': \[1\] is none of int or str$"):
        from_dict(C, {"x": [1]})


def test_serve_rejects_bad_kind_before_starting(tiny_beir):
    r = runner.invoke(app, ["serve", "--kind", "tri", "--index", str(tiny_beir)])
    assert r.exit_code == 2 and "tri" in r.output and "uni" in r.output
    r = runner.invoke(app, ["serve", "--index", str(tiny_beir), "--device", "tpu"])
    assert r.exit_code == 2 and "'tpu' is not a torch device" in r.output


def test_atomic_writes_get_normal_permissions(tmp_path):
    import os

    from unirank.io import write_text

    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    "args,expect",
    [
        (["--k", "0"], "k must be >= 1, got 0"),
        (["--set", "k=-5"], "k must be >= 1, got -5"),
        (["--limit-queries", "0"], "limit_queries must be >= 1"),
        (["--limit-queries", "-3"], "limit_queries must be >= 1"),
        (["--retriever", "dense", "--index", "hnsw"], "'hnsw' is unknown; valid: flat, ivf"),
        (["--retriever", "dense", "--device", "tpu"], "'tpu' is not a torch device"),
    ],
)
def test_bad_values_exit_2_before_any_work(tiny_beir, tmp_path, args, expect):
    out = tmp_path / "o"
    r = runner.invoke(app, ["eval", "--data", str(tiny_beir), "--out", str(out), *args])
    assert r.exit_code == 2 and expect in r.output, r.output
    assert not out.exists()


def test_cuda_asked_for_without_cuda_is_a_config_error(tiny_beir):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = runner.invoke(app, ["eval", "--data", str(tiny_beir), "--retriever", "dense", "--device", "cuda"])
    assert r.exit_code == 2 and "no CUDA device is available" in r.output, r.output


def test_out_that_is_a_file_is_refused_before_any_work(tiny_beir, tmp_path):
    f = tmp_path / "afile"
    f.write_text("")
    for cmd in (
        ["eval", "--data", str(tiny_beir)],
        ["mine", "--data", str(tiny_beir), "--split", "test", "--miner", "bm25"],
    ):
        r = runner.invoke(app, [*cmd, "--out", str(f)])
        assert r.exit_code == 2 and "is a file; expected an output folder" in r.output, r.output


def test_config_errors_name_the_file_and_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: x\nretriever:\n  name: bm25\n  bm25:\n    bb: 0.4\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:5: unknown config key 'retriever\.bm25\.bb'"):
        load_config(EvalConfig, p)
    p.write_text("data: x\nk: abc\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:2: config key 'k': expected an integer"):
        load_config(EvalConfig, p)
    with pytest.raises(
        ConfigError, match=r"^config key 'k': expected an integer, got 'x'$"
    ):  # the override, not the file
        load_config(EvalConfig, p, ["k=x"])
    p.write_text("data: x\nk: [1,\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:3:1: not valid YAML"):
        load_config(EvalConfig, p)
    with pytest.raises(ConfigError, match="is a folder; expected a YAML file"):
        load_config(EvalConfig, tmp_path)


def test_saved_model_folders_get_normal_permissions(tmp_path):
    import os

    from unirank.models.backbone import tiny_backbone
    from unirank.models.bi import BiEncoder
    from unirank.training.checkpoint import save_weights

    old = os.umask(0o022)
    try:
        model = BiEncoder(tiny_backbone(hidden=16), max_length=16)
        model.save(tmp_path / "m")
        save_weights(model, tmp_path / "w.safetensors")
    finally:
        os.umask(old)
    paths = [tmp_path / "m", *(tmp_path / "m").rglob("*"), tmp_path / "w.safetensors"]
    modes = {str(p.relative_to(tmp_path)): p.stat().st_mode & 0o777 for p in paths}
    assert all(m == (0o755 if (tmp_path / p).is_dir() else 0o644) for p, m in modes.items()), modes


def test_replace_dir_puts_the_old_folder_back_when_the_move_fails(tmp_path, monkeypatch):
    import os

    from unirank import io as uio

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "f").write_text("old")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "f").write_text("new")
    real = os.replace

    def failing(src, dst):
        if str(src).endswith("new"):
            raise OSError("disk full")
        return real(src, dst)

    monkeypatch.setattr(uio.os, "replace", failing)
    monkeypatch.setattr(uio, "_exchange", lambda a, b: False)  # the rename-aside path (no renameat2)
    with pytest.raises(OSError, match="disk full"):
        uio.replace_dir(tmp_path / "new", tmp_path / "out")
    assert (tmp_path / "out" / "f").read_text() == "old"


def test_an_override_is_never_blamed_on_the_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: x\nout: runs/x\nk: 10\nk: abc\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:4: config key 'k'"):  # the repeated key's last occurrence
        load_config(EvalConfig, p)
    with pytest.raises(ConfigError, match=r"^config key 'out'"):  # the override set out.dir, not the file
        load_config(EvalConfig, p, ["k=1", "out.dir=foo"])
