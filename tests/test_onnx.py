"""ONNX export and the ONNX Runtime backend: score parity with PyTorch on tiny random models."""

import json
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")

from unirank.cli import app
from unirank.errors import ConfigError
from unirank.models.base import load_ranker
from unirank.models.bi import BiEncoder
from unirank.models.cross import CrossEncoder
from unirank.models.poly import PolyEncoder
from unirank.models.uni import UniEncoder
from unirank.runtime import onnx_export
from unirank.runtime.backends import parse_backend
from unirank.runtime.onnx_export import ONNX_FILE, export_onnx
from unirank.runtime.onnx_models import OnnxUniEncoder, load_onnx_ranker

from .conftest import lively_backbone

CONTEXTS = ["how do I sort a list", ["hi", "hello there, how are you?"], "x"]
CANDIDATES = [
    ["sorted()", "no", "list.sort() sorts the list in place, a longer one"],
    ["fine", "bad day"],
    ["only one candidate here"],
]
# other batch sizes and lengths than the export's example inputs: the axes must be dynamic
CONTEXTS2 = ["a much longer question about the difference between lists and tuples in python code"]
CANDIDATES2 = [["tuples are immutable", "?", "lists can change size, tuples cannot; both hold any objects", "a", "b"]]

MODELS = {
    "bi": lambda: BiEncoder(lively_backbone()),
    "bi_cls_dot": lambda: BiEncoder(lively_backbone(), pooling="cls", normalize=False, similarity="dot"),
    "cross": lambda: CrossEncoder(lively_backbone()),
    "cross_tanh_candmean": lambda: CrossEncoder(lively_backbone(), pooling="candidate_mean", head_activation="tanh"),
    "uni_arrow": lambda: UniEncoder(lively_backbone()),
    "uni_strict_chunked": lambda: UniEncoder(lively_backbone(), mask="arrow_strict", chunk_size=2),
    "uni_cls_pooling": lambda: UniEncoder(lively_backbone(), candidate_pooling="cls"),
    "poly": lambda: PolyEncoder(lively_backbone(), n_codes=4),
    "poly_separate_sqrt": lambda: PolyEncoder(
        lively_backbone(), n_codes=3, shared_encoder=False, codes_attention="sqrt", poly_attention="sqrt"
    ),
}


def _close(a: torch.Tensor, b: torch.Tensor, tol: float) -> None:
    fin = torch.isfinite(a)
    assert torch.equal(fin, torch.isfinite(b)), "padding slots differ"
    assert float((a[fin] - b[fin]).abs().max()) <= tol


@pytest.mark.parametrize("name", list(MODELS))
def test_fp32_scores_match_pytorch(name, tmp_path):
    model = MODELS[name]()
    attn = model.backbone.model.config._attn_implementation
    folder = export_onnx(model, tmp_path / name)
    assert model.backbone.model.config._attn_implementation == attn  # traced with eager attention, then restored
    ort_model = load_onnx_ranker(folder, threads=1)
    assert ort_model.kind == model.kind and ort_model.backend == "onnx" and ort_model.precision == "fp32"
    with torch.no_grad():
        for ctx, cands in ((CONTEXTS, CANDIDATES), (CONTEXTS2, CANDIDATES2)):
            _close(model.score(ctx, cands), ort_model.score(ctx, cands), 1e-4)


def test_bi_encode_matches_pytorch_with_length_sorted_batches(tmp_path):
    model = BiEncoder(lively_backbone(), max_length=24)
    ort_model = load_onnx_ranker(export_onnx(model, tmp_path / "bi"))
    texts = ["a", "a longer text with many words " * 10, "mid text here", "", "two words"]
    ref = model.encode(texts, batch_size=2)
    out = ort_model.encode(texts, batch_size=2)
    assert out.shape == ref.shape and out.dtype == np.float32
    assert np.abs(out - ref).max() <= 1e-4
    q = [["old turn", "the newest turn of the dialogue"], "plain query"]
    assert np.abs(ort_model.encode_queries(q) - model.encode_queries(q)).max() <= 1e-4
    with pytest.raises(ConfigError, match="precision"):
        ort_model.encode(texts, dtype="bf16")


def test_uni_export_is_one_packed_pass_with_the_mask_inside(tmp_path):
    model = UniEncoder(lively_backbone(), segmented=True)  # the export takes the masked pass whatever this says
    folder = export_onnx(model, tmp_path / "uni")
    meta = json.loads((folder / ONNX_FILE).read_text())
    assert meta["graphs"]["scorer"]["inputs"] == [
        "input_ids",
        "token_type_ids",
        "position_ids",
        "segment_ids",
        "candidate_mask",
    ]
    assert model.segmented is True  # restored after the export
    ort_model = load_onnx_ranker(folder)
    assert isinstance(ort_model, OnnxUniEncoder)
    packed = ort_model.packer.pack(CONTEXTS, CANDIDATES)
    with torch.no_grad():
        _close(model.forward(packed), ort_model.forward(packed), 1e-4)


@pytest.mark.parametrize(
    "name",
    ["bi", "cross", pytest.param("uni_arrow", marks=pytest.mark.slow), pytest.param("poly", marks=pytest.mark.slow)],
)
def test_int8_export_runs_and_stays_near_fp32(name, tmp_path):
    model = MODELS[name]()
    ort8 = load_onnx_ranker(export_onnx(model, tmp_path / name, quantize="int8"))
    assert ort8.precision == "int8"
    with torch.no_grad():
        a, b = model.score(CONTEXTS, CANDIDATES), ort8.score(CONTEXTS, CANDIDATES)
    fin = torch.isfinite(a)
    assert torch.equal(fin, torch.isfinite(b))
    err = float((a[fin] - b[fin]).abs().max())
    assert 0 < err < 0.25 * float(a[fin].abs().max()) + 0.05  # quantised: not exact, but close


def test_export_refuses_a_foreign_folder_and_unknown_quantization(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="refusing"):
        export_onnx(BiEncoder(lively_backbone()), tmp_path / "x")
    with pytest.raises(ConfigError, match="int8"):
        export_onnx(BiEncoder(lively_backbone()), tmp_path / "y", quantize="int4")


def test_missing_onnxruntime_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"pip install 'unirank\[onnx\]'"):
        onnx_export.require_onnx()


def test_backend_specs():
    assert parse_backend(None) == ("torch", {})
    assert parse_backend("onnx:quantize=int8,threads=2") == ("onnx", {"quantize": "int8", "threads": 2})
    with pytest.raises(ConfigError, match="valid: onnx, torch"):
        parse_backend("tensorrt")
    with pytest.raises(ConfigError, match="no option"):
        load_ranker(None, "bi", backend="onnx:bogus=1")
    with pytest.raises(ConfigError, match="threads"):
        load_ranker(None, "bi", backend="onnx:threads=0")
    with pytest.raises(ConfigError, match="no options"):
        load_ranker(None, "bi", backend="torch:threads=2")


def test_onnx_backend_exports_on_the_fly_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNIRANK_CACHE", str(tmp_path / "cache"))
    saved = tmp_path / "cross"
    CrossEncoder(lively_backbone()).save(saved)
    torch_model = load_ranker(saved, None, device="cpu", backend="torch")
    a = load_ranker(saved, None, backend="onnx:threads=1")
    b = load_ranker(saved, "cross", backend="onnx")
    assert len(list((tmp_path / "cache" / "onnx").iterdir())) == 1  # the second load opened the cached export
    with torch.no_grad():
        _close(torch_model.score(CONTEXTS, CANDIDATES), a.score(CONTEXTS, CANDIDATES), 1e-4)
    assert torch.equal(a.score(CONTEXTS, CANDIDATES), b.score(CONTEXTS, CANDIDATES))
    with pytest.raises(ConfigError, match="holds a 'cross' model"):
        load_ranker(saved, "uni", backend="onnx")


def test_an_export_folder_is_refused_by_torch_and_checked_by_onnx(tmp_path):
    folder = export_onnx(CrossEncoder(lively_backbone()), tmp_path / "x")
    with pytest.raises(ConfigError, match="--backend onnx"):
        load_ranker(folder, None, backend="torch")
    with pytest.raises(ConfigError, match="fp32 export"):
        load_ranker(folder, None, backend="onnx:quantize=int8")
    with pytest.raises(ConfigError, match="differs from the exported"):
        load_ranker(folder, None, backend="onnx", pooling="mean")
    assert load_ranker(folder, None, backend="onnx", chunk_size=1).chunk_size == 1
    with pytest.raises(ConfigError, match="unirank export"):
        load_ranker(folder, None, backend="onnx").save(tmp_path / "again")


def test_an_export_older_than_a_setting_counts_as_its_default(tmp_path):
    """A uni export made before ``candidate_pooling`` existed holds no such key: it was made with
    the default (mean), so asking for mean is fine and cls is refused."""
    folder = export_onnx(UniEncoder(lively_backbone()), tmp_path / "old")
    meta_file = folder / ONNX_FILE
    meta = json.loads(meta_file.read_text())
    del meta["settings"]["candidate_pooling"]
    meta_file.write_text(json.dumps(meta))
    assert load_ranker(folder, None, backend="onnx", candidate_pooling="mean").candidate_pooling == "mean"
    with pytest.raises(ConfigError, match="candidate_pooling: 'cls' differs from the exported graphs' 'mean'"):
        load_ranker(folder, None, backend="onnx", candidate_pooling="cls")


def test_cli_export_then_rerank_eval_with_onnx_backend_equals_torch(tiny_beir, tmp_path):
    runner = CliRunner()
    saved = tmp_path / "cross"
    CrossEncoder(lively_backbone()).save(saved)
    r = runner.invoke(app, ["export", "--model", str(saved), "--format", "onnx", "--out", str(tmp_path / "onnx")])
    assert r.exit_code == 0, r.output
    metrics = {}
    for name, model, backend in (("torch", saved, "torch"), ("onnx", tmp_path / "onnx", "onnx:threads=1")):
        out = tmp_path / f"run-{name}"
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
                "3",
                "--k",
                "3",
                "--backend",
                backend,
                "--out",
                str(out),
            ],
        )
        assert r.exit_code == 0, r.output
        metrics[name] = json.loads((out / "metrics.json").read_text())
    assert metrics["onnx"] == pytest.approx(metrics["torch"], abs=1e-6, nan_ok=True)
    cfg = json.loads((tmp_path / "run-onnx" / "config.json").read_text())
    assert cfg["reranker"]["backend"]["name"] == "onnx" and cfg["reranker"]["backend"]["precision"] == "fp32"
    r = runner.invoke(
        app, ["export", "--model", str(saved), "--format", "onnx", "--quantize", "int4", "--out", str(tmp_path / "o2")]
    )
    assert r.exit_code == 2 and "int8" in r.output
    r = runner.invoke(app, ["export", "--model", str(saved), "--format", "tflite", "--out", str(tmp_path / "o3")])
    assert r.exit_code == 2 and "valid: onnx, ranker, transformers" in r.output


def test_sentence_transformers_loads_the_saved_folder_without_random_weights(tmp_path, capfd):
    from sentence_transformers import SentenceTransformer

    model = BiEncoder(lively_backbone())
    model.save(tmp_path / "st")
    capfd.readouterr()
    st = SentenceTransformer(str(tmp_path / "st"), device="cpu")
    captured = capfd.readouterr()
    report = captured.out + captured.err
    assert "MISSING" not in report and "newly initialized" not in report, report
    texts = ["one text", "another, longer text"]
    assert np.abs(st.encode(texts) - model.encode(texts)).max() < 1e-5


def test_packaged_minilm_keeps_its_own_pooler_when_saved(tmp_path):
    from safetensors.torch import load_file

    from unirank.models.backbone import packaged_model_dir

    BiEncoder.from_pretrained(None).save(tmp_path / "m")
    saved = load_file(str(tmp_path / "m" / "model.safetensors"))
    ref = load_file(str(packaged_model_dir() / "model.safetensors"))
    assert torch.equal(saved["pooler.dense.weight"], ref["pooler.dense.weight"])


@pytest.mark.parametrize("quantize", [None, pytest.param("int8", marks=pytest.mark.slow)])
def test_offline_bert_fusions_keep_the_scores(quantize, tmp_path):
    model = CrossEncoder(lively_backbone())
    folder = export_onnx(model, tmp_path / "fused", optimize=True, quantize=quantize)
    assert json.loads((folder / ONNX_FILE).read_text())["optimized"] is True
    with torch.no_grad():
        a, b = model.score(CONTEXTS, CANDIDATES), load_onnx_ranker(folder).score(CONTEXTS, CANDIDATES)
    _close(a, b, 1e-4 if quantize is None else 0.1)


def test_fp32_and_int8_exports_have_different_fingerprints(tmp_path):
    model = BiEncoder(lively_backbone())
    a = load_onnx_ranker(export_onnx(model, tmp_path / "a")).backbone.fingerprint()
    b = load_onnx_ranker(export_onnx(model, tmp_path / "b", quantize="int8")).backbone.fingerprint()
    c = load_onnx_ranker(export_onnx(model, tmp_path / "c")).backbone.fingerprint()
    assert a == c != b and len(a) == 16


def test_encode_and_mine_cli_with_the_onnx_backend_match_torch(tiny_beir, tmp_path, monkeypatch):
    monkeypatch.setenv("UNIRANK_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    model = tmp_path / "bi"
    BiEncoder(lively_backbone(), max_length=32).save(model)
    vecs = {}
    for backend in ("torch", "onnx:threads=1"):
        out = tmp_path / f"store-{backend[:4]}"
        r = runner.invoke(
            app, ["encode", "--data", str(tiny_beir), "--model", str(model), "--backend", backend, "--out", str(out)]
        )
        assert r.exit_code == 0, r.output
        vecs[backend] = np.concatenate([np.load(p) for p in sorted(out.rglob("*.npy"))])
    assert (
        vecs["torch"].shape == vecs["onnx:threads=1"].shape
        and np.abs(vecs["torch"] - vecs["onnx:threads=1"]).max() < 1e-4
    )
    mined = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / f"mined-{backend}"
        r = runner.invoke(
            app,
            [
                "mine",
                "--data",
                str(tiny_beir),
                "--split",
                "test",
                "--miner",
                "dense",
                "--model",
                str(model),
                "--backend",
                backend,
                "--filter",
                "none",
                "--negatives",
                "2",
                "--out",
                str(out),
            ],
        )
        assert r.exit_code == 0, r.output
        mined[backend] = [
            [n["id"] for n in json.loads(line)["negatives"]] for line in (out / "train.jsonl").read_text().splitlines()
        ]
    assert mined["torch"] == mined["onnx"] and any(mined["onnx"])


def test_serve_backend_loads_model_and_dense_index_through_onnx(tiny_beir, tmp_path, monkeypatch):
    from unirank.runtime.onnx_models import OnnxBiEncoder
    from unirank.serve.backend import SearchItem, load_backend

    monkeypatch.setenv("UNIRANK_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "bi"
    torch_model = BiEncoder(lively_backbone(), max_length=32)
    torch_model.save(model)
    be = load_backend(model=str(model), kind="bi", index=str(tiny_beir), retriever="dense", backend="onnx:threads=1")
    assert (
        isinstance(be.ranker, OnnxBiEncoder)
        and be.encoder is be.ranker
        and be.describe()["backend"] == "onnx:threads=1"
    )
    (vecs,) = be.encode_batch([(["cats purr"], "query")])
    assert np.abs(vecs - torch_model.encode_queries(["cats purr"])).max() < 1e-4
    hits = be.search_batch([SearchItem("why do cats purr", 2)])[0]
    assert len(hits) == 2
