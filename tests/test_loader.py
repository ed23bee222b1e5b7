"""``load_ranker``: the one way training, evaluation, mining and serving build a ranker."""

from __future__ import annotations

import pytest
import torch

from unirank.errors import ConfigError
from unirank.models.backbone import tiny_backbone
from unirank.models.base import MODELS, import_model_kinds, load_ranker, saved_kind

import_model_kinds()
SETTINGS = {
    "bi": {"max_length": 24},
    "poly": {"n_codes": 4},
    "cross": {"max_candidate_length": 12},
    "uni": {"mask": "arrow_strict", "max_candidate_length": 12},
}


@pytest.mark.parametrize("kind", ["bi", "poly", "cross", "uni"])
def test_a_saved_folder_loads_as_its_own_kind_and_refuses_another(tmp_path, kind):
    model = MODELS.get(kind)(tiny_backbone(hidden=32), **SETTINGS[kind]).eval()
    model.save(tmp_path / "m")
    assert saved_kind(tmp_path / "m") == kind
    for asked in (None, kind):
        back = load_ranker(tmp_path / "m", asked, device="cpu")
        assert type(back) is type(model) and not back.training
        with torch.inference_mode():
            torch.testing.assert_close(
                back.score(["a query"], [["x y", "z"]]), model.score(["a query"], [["x y", "z"]])
            )
    other = "cross" if kind != "cross" else "bi"
    with pytest.raises(ConfigError, match=f"holds a '{kind}' model, but kind '{other}' was asked for"):
        load_ranker(tmp_path / "m", other)


def test_without_a_saved_folder_the_kind_is_required_and_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"say which kind to build \(--kind"):
        load_ranker(None)  # the packaged MiniLM
    with pytest.raises(ConfigError, match="holds no model"):
        load_ranker(tmp_path)  # an empty folder is named as that, not as a missing kind
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_ranker(tmp_path / "gone")
    (tmp_path / "run" / "model").mkdir(parents=True)
    (tmp_path / "run" / "model" / "unirank_model.json").write_text("{}")
    with pytest.raises(ConfigError, match="is a training run; its trained model is"):
        load_ranker(tmp_path / "run")
    with pytest.raises(ConfigError, match="unknown model kind 'nope'; valid: bi, cross, poly, splade, uni"):
        load_ranker(None, "nope")


def test_settings_override_the_saved_ones(tmp_path):
    MODELS.get("uni")(tiny_backbone(hidden=32), mask="arrow").save(tmp_path / "u")
    assert load_ranker(tmp_path / "u", mask="arrow_strict", device="cpu").mask == "arrow_strict"


def test_serve_takes_the_saved_kind_and_refuses_a_contradicting_flag(tmp_path):
    from unirank.serve.backend import check_backend_args, load_backend

    MODELS.get("cross")(tiny_backbone(hidden=32)).save(tmp_path / "c")
    backend = load_backend(model=str(tmp_path / "c"), device="cpu")
    assert backend.ranker.kind == "cross" and backend.info["kind"] == "cross" and backend.encoder is None
    with pytest.raises(ConfigError, match="holds a 'cross' model, but --kind bi"):
        check_backend_args(str(tmp_path / "c"), "bi", None)


def test_capabilities_are_declared_by_class():
    from unirank.models.base import DualEncoder, SharedPoolScorer

    declared = {
        k: (issubclass(MODELS.get(k), DualEncoder), issubclass(MODELS.get(k), SharedPoolScorer)) for k in MODELS.names()
    }
    assert declared == {
        "bi": (True, False),
        "poly": (False, True),
        "cross": (False, False),
        "uni": (False, False),
        "splade": (True, False),
    }
    assert (MODELS.get("bi").retriever_name, MODELS.get("splade").retriever_name) == ("dense", "splade")
    assert MODELS.get("splade").sparse_vectors and not MODELS.get("bi").sparse_vectors
    assert not MODELS.get("cross")(tiny_backbone(hidden=32)).may_take_segmented_pass
