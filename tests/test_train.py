"""The training loop on tiny random models: learning, resume equality, GradCache, export, logs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from unirank.config import from_dict
from unirank.errors import ConfigError
from unirank.losses import combine
from unirank.models.backbone import tiny_backbone
from unirank.models.bi import BiEncoder
from unirank.train import TrainConfig, batch_backward, batch_inputs, pool_layout, pool_scores, train, train_main
from unirank.training.data import Row, epoch_rows
from unirank.training.gradcache import RandContext, embed_no_grad
from unirank.types import Candidate, TrainExample

from .conftest import write_beir

QUIET = {"progress": False, "log": lambda m: None}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run ~10x faster on one thread than on two contended ones."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


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


def _model(seed: int = 0, hidden: int = 32) -> BiEncoder:
    return BiEncoder(tiny_backbone(hidden=hidden, seed=seed), max_length=24)


def _examples(negatives: int = 2) -> list[TrainExample]:
    out = []
    for i, t in enumerate(TOPICS):
        negs = [
            Candidate(
                f"n{i}-{j}", f"remark {j} on {TOPICS[(i + j + 1) % len(TOPICS)].split()[-1]} {i}", score=float(-j)
            )
            for j in range(negatives)
        ]
        out.append(
            TrainExample(
                f"q{i}", f"question on {t.split()[0]}", [Candidate(f"d{i}", f"a note about {t}", score=5.0)], negs
            )
        )
    return out


def _cfg(tmp_path: Path, **kw) -> TrainConfig:
    base = {
        "batch_size": 4,
        "epochs": 2,
        "lr": 1e-3,
        "dev": {"split": None},
        "log_every": 1,
        "out": str(tmp_path / "run"),
        "data": {"negatives": 1},
        "warmup_ratio": 0.0,
    }
    for k, v in kw.items():
        base[k] = {**base[k], **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return from_dict(TrainConfig, base)


def _full_loss(model: BiEncoder, examples: list[TrainExample]) -> float:
    model.eval()
    with torch.no_grad():
        rows = epoch_rows(examples, 0, 0, negatives=1, choice="first")
        layout = pool_layout(rows)
        return float(combine({"infonce": 1.0}, batch_inputs(pool_scores(model, layout), layout))[0])


def test_loss_decreases_on_a_toy_task(tmp_path):
    model, ex = _model(), _examples()
    before = _full_loss(model, ex)
    summary = train(_cfg(tmp_path, epochs=6), model=model, examples=ex, **QUIET)
    after = _full_loss(model, ex)
    assert summary["steps"] == 12
    assert after < 0.7 * before, (before, after)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def _metric_lines(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("elapsed_s", None)
    return rows


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path):
    """Dropout on, random negative draws, no_duplicates batches, 2 epochs: stop at steps 2 and 3, resume."""
    common = {
        "epochs": 2,
        "batch_size": 3,
        "data": {"negatives": 1, "negative_choice": "random"},
        "losses": {"infonce": 1.0, "mw": 0.5},
    }
    full = train(_cfg(tmp_path / "a", **common), model=_model(), examples=_examples(3), **QUIET)
    assert full["steps"] == 6 and not full["stopped"]

    cfg_b = _cfg(tmp_path / "b", **common, stop_after=2)
    part = train(cfg_b, model=_model(), examples=_examples(3), **QUIET)
    assert part["stopped"] and part["steps"] == 2 and "export" not in part
    # the killed run's later log lines (none here) and its config are replaced on resume
    cfg_b.stop_after = 3  # the epoch boundary
    assert train(cfg_b, resume=True, model=_model(seed=9), examples=_examples(3), **QUIET)["steps"] == 3
    cfg_b.stop_after = None
    done = train(cfg_b, resume=True, model=_model(seed=9), examples=_examples(3), **QUIET)
    assert done["steps"] == 6 and not done["stopped"]

    wa, wb = _weights(tmp_path / "a" / "run" / "model"), _weights(tmp_path / "b" / "run" / "model")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert _metric_lines(tmp_path / "a" / "run") == _metric_lines(tmp_path / "b" / "run")
    prov = json.loads((tmp_path / "b" / "run" / "provenance.json").read_text())
    assert prov["resumed_from"] == ["step-0000002", "step-0000003"]


def test_resume_guards(tmp_path):
    cfg = _cfg(tmp_path, epochs=1, stop_after=1)
    train(cfg, model=_model(), examples=_examples(), **QUIET)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(cfg, model=_model(), examples=_examples(), **QUIET)
    cfg.lr = 5e-4
    with pytest.raises(ConfigError, match="config differs in lr"):
        train(cfg, resume=True, model=_model(), examples=_examples(), **QUIET)


def test_metrics_log_and_outputs(tmp_path):
    out = train(
        _cfg(tmp_path, losses={"infonce": 1.0, "mw": {"weight": 0.5, "pairing": "global"}, "margin_mse": 0.1}),
        model=_model(),
        examples=_examples(),
        **QUIET,
    )
    run = Path(out["out"])
    lines = _metric_lines(run)
    assert [r["step"] for r in lines] == [1, 2, 3, 4]
    for r in lines:
        assert {"loss", "infonce", "mw", "margin_mse", "lr", "grad_norm", "epoch"} <= set(r)
        assert r["loss"] == pytest.approx(r["infonce"] + 0.5 * r["mw"] + 0.1 * r["margin_mse"], abs=1e-5)
    assert lines[0]["lr"] == pytest.approx(1e-3) and lines[-1]["lr"] == pytest.approx(
        1e-3 / 4
    )  # linear decay, no warmup
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["seed"] == 42 and prov["data"]["fingerprint"] and prov["model"]["start_fingerprint"]
    assert {"torch", "transformers", "python"} <= set(prov["versions"])
    assert json.loads((run / "config.json").read_text())["losses"]["mw"]["pairing"] == "global"
    ckpts = run / "checkpoints"
    (latest,) = [p for p in ckpts.iterdir() if p.name.startswith("step-")]  # keep_checkpoints=1
    assert {p.suffix for p in latest.iterdir()} == {".safetensors", ".json"}
    assert (run / "model" / "modules.json").is_file() and (run / "model-transformers" / "model.safetensors").is_file()
    assert not list(run.rglob("*.bin")) and not list(run.rglob("*.pt"))


def test_export_loads_in_sentence_transformers_and_transformers(tmp_path):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    model = _model()
    summary = train(_cfg(tmp_path, epochs=1), model=model, examples=_examples(), **QUIET)
    texts = ["question on cats", "a note about dogs bark loudly"]
    ours = BiEncoder.from_pretrained(summary["export"]["model"]).encode(texts)
    st = SentenceTransformer(summary["export"]["model"], device="cpu").encode(texts)
    np.testing.assert_allclose(st, ours, atol=1e-5)
    np.testing.assert_allclose(model.encode(texts), ours, atol=1e-6)
    plain = AutoModel.from_pretrained(summary["export"]["transformers"])
    for (k, v), (k2, v2) in zip(sorted(plain.state_dict().items()), sorted(model.model.state_dict().items())):
        assert k == k2 and torch.equal(v, v2)


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("losses", [{"infonce": 1.0}, {"infonce": 1.0, "mw": {"weight": 0.5, "pairing": "global"}}])
def test_grad_cache_gives_the_full_batch_gradient(tmp_path, losses):
    model = _model()
    model.eval()  # no dropout: one full forward and the chunked ones see identical activations
    rows = epoch_rows(_examples(2), 0, 0, negatives=2, choice="first")  # 8 queries, 24 documents
    cfg = _cfg(tmp_path, losses=losses, data={"negatives": 2})
    full = batch_backward(model, rows, cfg, weight=1.0)
    g_full = _grads(model)
    model.zero_grad()
    cfg.grad_cache, cfg.chunk_size = True, 5
    cached = batch_backward(model, rows, cfg, weight=1.0)
    g_cached = _grads(model)
    assert cached["loss"] == pytest.approx(full["loss"], abs=1e-6)
    assert g_full.keys() == g_cached.keys() and len(g_full) > 10
    for n in g_full:
        torch.testing.assert_close(g_cached[n], g_full[n], atol=1e-6, rtol=1e-4, msg=n)
    assert any(g.abs().sum() > 0 for g in g_full.values())


def test_grad_cache_replays_dropout():
    model = _model()
    model.train()
    texts = [f"text number {i}" for i in range(7)]
    torch.manual_seed(3)
    first, states = embed_no_grad(model.embed, texts, chunk_size=3)
    again = []
    for n, s in enumerate(states):
        with s:
            again.append(model.embed(texts[3 * n : 3 * n + 3]).detach())
    torch.testing.assert_close(torch.cat(again), first, atol=1e-6, rtol=0)
    assert not torch.allclose(model.embed(texts[:3]).detach(), first[:3])  # dropout is really on
    assert isinstance(states[0], RandContext)


def test_accumulate_averages_batch_gradients(tmp_path):
    model = _model()
    model.eval()
    rows = epoch_rows(_examples(1), 0, 0, negatives=1, choice="first")
    cfg = _cfg(tmp_path)
    batch_backward(model, rows[:4], cfg, weight=0.5)
    batch_backward(model, rows[4:], cfg, weight=0.5)
    acc = _grads(model)
    model.zero_grad()
    batch_backward(model, rows[:4], cfg, weight=1.0)
    g1 = _grads(model)
    model.zero_grad()
    batch_backward(model, rows[4:], cfg, weight=1.0)
    g2 = _grads(model)
    for n in acc:
        torch.testing.assert_close(acc[n], (g1[n] + g2[n]) / 2, atol=1e-7, rtol=1e-5)


def test_pool_masks_other_positives_of_the_same_query():
    rows = [
        Row("q1", "Q1", Candidate("a", "A"), (Candidate("b", "B"),), frozenset({"a", "b"})),
        Row("q1", "Q1", Candidate("b", "B"), (Candidate("c", "C"),), frozenset({"a", "b"})),
        Row("q2", "Q2", Candidate("c", "C"), (), frozenset({"c"})),
    ]
    lay = pool_layout(rows)
    assert lay.docs == ["A", "B", "C", "B", "C"]
    # q1 rows: "a" / "b" columns other than the row's own positive are excluded (other positive or a
    # duplicate of its own); q2: the second "c" column duplicates its positive -> excluded
    assert lay.valid_mask.tolist() == [
        [True, False, True, False, True],
        [False, True, True, False, True],
        [True, True, True, True, False],
    ]
    assert lay.positive_mask.nonzero().tolist() == [[0, 0], [1, 1], [2, 2]]
    assert lay.hard_mask.nonzero().tolist() == [[0, 3], [1, 4]]


def test_listwise_training_without_in_batch_negatives(tmp_path):
    model, ex = _model(), _examples(3)
    before = _full_loss(model, ex)
    cfg = _cfg(
        tmp_path, epochs=6, in_batch_negatives=False, data={"negatives": 3}, losses={"ce": {"weight": 1.0, "tau": 0.05}}
    )
    train(cfg, model=model, examples=ex, **QUIET)
    assert _full_loss(model, ex) < before


def _beir(tmp_path: Path) -> Path:
    docs = {f"d{i}": (t.split()[0].title(), f"a note about {t}") for i, t in enumerate(TOPICS)}
    queries = {f"q{i}": f"question on {t.split()[0]}" for i, t in enumerate(TOPICS)}
    folder = tmp_path / "beir"
    write_beir(folder, docs, queries, {f"q{i}": {f"d{i}": 1} for i in range(6)}, split="train")
    write_beir(folder, docs, queries, {f"q{i}": {f"d{i}": 1} for i in range(6, 8)}, split="dev")
    return folder


def test_dev_evaluation_each_epoch_keeps_the_best(tmp_path):
    folder = _beir(tmp_path)
    cfg = _cfg(
        tmp_path,
        epochs=3,
        batch_size=3,
        data={"train": str(folder), "split": "train", "negatives": 0},
        dev={"split": "dev", "measures": ["ndcg@10", "recall@100", "auc"]},
        test={"split": "dev"},
        batching={"name": "tas_balanced", "params": {"clusters": 2}},
    )
    summary = train(cfg, model=_model(), **QUIET)
    assert [d["epoch"] for d in summary["dev"]] == [0, 1, 2]
    best = max(summary["dev"], key=lambda d: d["ndcg@10"])
    assert (
        summary["best"] == pytest.approx(best["ndcg@10"], abs=1e-6)
        and summary["exported_step"] == summary["best_step"] == best["step"]
    )
    dev_lines = [r for r in _metric_lines(Path(summary["out"])) if "dev/ndcg@10" in r]
    assert len(dev_lines) == 3 and {"dev/auc_global", "dev/recall@100"} <= set(dev_lines[0])
    assert summary["test"]["ndcg@10"] == pytest.approx(best["ndcg@10"], abs=1e-6)  # the exported (best) weights
    assert (Path(summary["out"]) / "checkpoints" / "best" / "model.safetensors").is_file()
    prov = json.loads((Path(summary["out"]) / "provenance.json").read_text())
    assert prov["data"]["source"] == "qrels" and prov["dev_data"]["fingerprint"]


def test_ance_refresh_mines_with_the_current_model(tmp_path):
    folder = _beir(tmp_path)
    cfg = _cfg(
        tmp_path,
        epochs=1,
        batch_size=2,
        data={"train": str(folder), "split": "train", "negatives": 1},
        refresh={"every_steps": 1, "mine": {"negatives": 2, "depth": 5, "filters": [], "audit_top": 0}},
    )
    summary = train(cfg, model=_model(), **QUIET)
    assert summary["steps"] == 3
    mined = sorted((Path(summary["out"]) / "refresh").iterdir())
    assert [p.name for p in mined] == ["step-000001", "step-000002"]  # not after the last step
    rows = [json.loads(line) for line in (mined[-1] / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(len(r["negatives"]) == 2 for r in rows)
    assert all(n["id"] != r["positives"][0]["id"] for r in rows for n in r["negatives"])


def test_train_main_reads_yaml_and_overrides(tmp_path):
    folder = _beir(tmp_path)
    model_dir = tmp_path / "tiny-model"
    _model().save(model_dir)
    cfg = {
        "model": {"kind": "bi", "name": str(model_dir)},
        "data": {"train": str(folder), "split": "train", "negatives": 0},
        "dev": {"split": None},
        "batch_size": 3,
        "out": str(tmp_path / "run"),
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    summary = train_main(str(path), ["--epochs", "2", "--lr=1e-4", "log_every=1"], resume=False)
    assert summary["steps"] == 4
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["epochs"] == 2 and saved["lr"] == 1e-4
    with pytest.raises(ConfigError, match="unknown config key 'epoch'"):
        train_main(str(path), ["--epoch", "2"])


def _listwise_loss(model, examples, in_batch: bool) -> float:
    from unirank.train import list_layout

    model.eval()
    with torch.no_grad():
        rows = epoch_rows(examples, 0, 0, negatives=2, choice="first")
        layout = pool_layout(rows) if in_batch else list_layout(rows)
        return float(combine({"ce": 1.0}, batch_inputs(pool_scores(model, layout), layout))[0])


@pytest.mark.parametrize("kind,in_batch", [("cross", False), ("uni", False), ("poly", True)])
def test_other_model_kinds_train_with_the_same_loop(tmp_path, kind, in_batch):
    """Rerankers go through Ranker.score (listwise) and the poly-encoder through score_shared (in-batch)."""
    from unirank.models.base import MODELS, import_model_kinds

    import_model_kinds()

    kw = {"max_context_length": 16, "max_candidate_length": 16}
    model = MODELS.get(kind)(tiny_backbone(hidden=32), **kw)
    ex = _examples(2)
    before = _listwise_loss(model, ex, in_batch)
    cfg = _cfg(
        tmp_path,
        epochs=5,
        in_batch_negatives=in_batch,
        data={"negatives": 2, "negative_choice": "first"},
        losses={"ce": 1.0, "mw": {"weight": 0.5, "scale": 1.0}},
    )
    summary = train(cfg, model=model, examples=ex, **QUIET)
    assert _listwise_loss(model, ex, in_batch) < before
    reloaded = MODELS.get(kind).from_pretrained(summary["export"]["model"])
    reloaded.eval()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            reloaded.score(["question on cats"], [["a note about cats purr softly", "x"]]),
            model.score(["question on cats"], [["a note about cats purr softly", "x"]]),
        )


def _layer_calls(model) -> list[int]:
    """Count calls of the first transformer layer's feed-forward block in every encoder of ``model``
    (transformers checkpoints the layer's ``forward``, so hooks on the layer itself fire once;
    its submodules run again in the recomputation)."""
    from transformers import PreTrainedModel

    calls = [0]
    for m in model.modules():
        if isinstance(m, PreTrainedModel):
            m.encoder.layer[0].intermediate.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("kind", ["uni", "cross", "poly", "bi"])
def test_gradient_checkpointing_recomputes_layers_and_keeps_the_gradient(kind):
    """Same seed, dropout on: the checkpointed backward gives the plain gradient, and the layers
    really run twice (forward + recomputation) - so the option is not silently ignored."""
    from unirank.models.backbone import enable_gradient_checkpointing
    from unirank.models.base import MODELS, import_model_kinds

    import_model_kinds()
    kw = {"max_length": 24} if kind == "bi" else {"max_context_length": 16, "max_candidate_length": 16}
    grads, calls = [], []
    for checkpointing in (False, True):
        model = MODELS.get(kind)(tiny_backbone(hidden=32, seed=3), **kw)
        if checkpointing:
            assert enable_gradient_checkpointing(model) >= 1
        counter = _layer_calls(model)
        model.train()
        torch.manual_seed(7)
        scores = model.score(
            ["question on cats", "dogs?"],
            [["a note about cats purr", "fish swim", "x"], ["dogs bark", "rain", "bread"]],
        )
        torch.nn.functional.cross_entropy(scores, torch.tensor([0, 0])).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        calls.append(counter[0])
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], msg=name)
    assert calls[1] == 2 * calls[0] > 0, calls


def test_gradient_checkpointing_in_the_loop_gives_the_same_weights(tmp_path):
    from unirank.models.backbone import is_checkpointing
    from unirank.models.uni import UniEncoder

    outs, calls = [], []
    for checkpointing in (False, True):
        model = UniEncoder(tiny_backbone(hidden=32, seed=2), max_context_length=16, max_candidate_length=16)
        counter = _layer_calls(model)
        cfg = _cfg(
            tmp_path / str(checkpointing),
            epochs=2,
            in_batch_negatives=False,
            gradient_checkpointing=checkpointing,
            data={"negatives": 2, "negative_choice": "first"},
            losses={"ce": 1.0},
        )
        export = Path(train(cfg, model=model, examples=_examples(2), **QUIET)["export"]["model"])
        outs.append({k: v.clone() for k, v in model.state_dict().items()})
        calls.append(counter[0])
        assert not is_checkpointing(model.encoder)  # switched off again once training is done
        assert "checkpointing" not in (export / "backbone" / "config.json").read_text()  # a training-only setting
    assert calls[1] > calls[0], calls  # the loop switched it on: layers recomputed in the backward passes
    for name in outs[0]:
        torch.testing.assert_close(outs[1][name], outs[0][name], msg=name)


def test_an_override_without_value_is_named_even_before_another_flag():
    from unirank.train import normalize_overrides

    with pytest.raises(ConfigError, match="override --max_steps has no value"):
        normalize_overrides(["--max_steps", "--out", "x"])
    assert normalize_overrides(["--lr", "-1"]) == ["lr=-1"]  # a negative number is a value


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).resolve().parent.parent / "examples").glob("train_*.yaml")), ids=lambda p: p.name
)
def test_example_configs_are_valid(path):
    from unirank.config import load_config

    load_config(TrainConfig, path).validate()


@pytest.mark.slow
def test_finetune_demo_runs_within_its_budget(tmp_path):
    """Reads the real stdlib-codesearch set (built and cached on first use)."""
    import time

    from unirank.training.demo import finetune_demo

    model_dir = tmp_path / "tiny"
    _model().save(model_dir)
    t = time.perf_counter()
    res = finetune_demo(
        tmp_path / "demo",
        minutes_budget=0.5,
        limit_queries=20,
        max_docs=200,
        model_name=str(model_dir),
        log=lambda m: None,
    )
    assert res["steps"] >= 5 and set(res["gain"]) >= {"ndcg@10", "auc_global"}
    assert (tmp_path / "demo" / "summary.md").is_file() and (
        tmp_path / "demo" / "run" / "model" / "modules.json"
    ).is_file()
    assert time.perf_counter() - t < 300


@pytest.mark.slow
def test_finetune_demo_with_a_step_count_gives_the_same_numbers_twice(tmp_path):
    """The default demo trains a fixed number of steps, so two runs agree (a time budget did not)."""
    from unirank.training.demo import finetune_demo

    model_dir = tmp_path / "tiny"
    _model().save(model_dir)
    runs = [
        finetune_demo(
            tmp_path / f"demo{i}",
            steps=4,
            limit_queries=20,
            max_docs=200,
            model_name=str(model_dir),
            log=lambda m: None,
        )
        for i in range(2)
    ]
    assert runs[0]["steps"] == runs[1]["steps"] == 4
    assert runs[0]["fine_tuned"] == runs[1]["fine_tuned"] and runs[0]["fine_tuned"] != runs[0]["zero_shot"]


def _response_jsonl(path: Path, n: int) -> Path:
    """A tiny response-selection set: the right reply repeats the context's last topic word."""
    rows = []
    for i in range(n):
        t = TOPICS[i % len(TOPICS)]
        cands = [f"yes, {t}"] + [f"yes, {TOPICS[(i + j) % len(TOPICS)]}" for j in (1, 2, 3)]
        rows.append(
            {
                "id": f"c{i}",
                "context": ["hello there", f"tell me: {t.split()[0]}?"],
                "candidates": cands,
                "labels": [1, 0, 0, 0],
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("kind", ["bi", "poly", "cross", "uni"])
def test_response_selection_data_trains_every_kind(tmp_path, kind):
    """data.task response: contexts are turn tuples, candidates the row's list; dev/test report R4@k and MRR."""
    from unirank.models.base import MODELS, import_model_kinds

    import_model_kinds()
    data = _response_jsonl(tmp_path / "train.jsonl", 8)
    kw = {"max_length": 24} if kind == "bi" else {"max_context_length": 16, "max_candidate_length": 12}
    model = MODELS.get(kind)(tiny_backbone(hidden=32), **kw)
    cfg = _cfg(
        tmp_path,
        epochs=4,
        in_batch_negatives=False,
        data={"task": "response", "train": str(data), "negatives": 3, "negative_choice": "first"},
        losses={"ce": 1.0},
        dev={"split": "dev", "data": str(data)},
        test={"split": "test", "data": str(data)},
        batching={"name": "random"},
    )
    summary = train(cfg, model=model, **QUIET)
    assert summary["steps"] == 8 and [d["epoch"] for d in summary["dev"]] == [0, 1, 2, 3]
    assert set(summary["test"]) == {"R4@1", "R4@2", "mrr"} and summary["best"] == pytest.approx(
        max(d["mrr"] for d in summary["dev"]), abs=1e-6
    )
    scores = [json.loads(x) for x in (Path(summary["out"]) / "test" / "scores.jsonl").read_text().splitlines()]
    assert len(scores) == 8 and all(len(s["scores"]) == 4 for s in scores)
    prov = json.loads((Path(summary["out"]) / "provenance.json").read_text())
    assert prov["data"]["source"] == "response" and prov["data"]["counts"] == {
        "queries": 8,
        "positives": 8,
        "negatives": 24,
        "contexts_without_positive": 0,
    }


def test_response_training_learns(tmp_path):
    """Listwise CE over each context's own candidates lifts MRR (a wrong positive index would sink it)."""
    from unirank.data.dialogue import read_response_jsonl
    from unirank.eval.response import evaluate_response
    from unirank.models.cross import CrossEncoder

    rows = [
        {
            "id": f"c{i}",
            "context": ["hi", f"about {t}?"],
            "labels": [0, 0, 1, 0][-(i % 4) :] + [0, 0, 1, 0][: -(i % 4)] if i % 4 else [0, 0, 1, 0],
            "candidates": [],
        }
        for i, t in enumerate(TOPICS)
    ]
    for r in rows:  # the correct reply agrees ("sure"), the others do not
        r["candidates"] = [
            ("sure, " if y else "no, ") + TOPICS[(k + 3) % len(TOPICS)] for k, y in enumerate(r["labels"])
        ]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = CrossEncoder(tiny_backbone(hidden=32, seed=1), max_context_length=16, max_candidate_length=12)
    ex = read_response_jsonl(data)
    before = evaluate_response(model, ex, progress=False)[0]["mrr"]
    cfg = _cfg(
        tmp_path,
        epochs=25,
        in_batch_negatives=False,
        data={"task": "response", "train": str(data), "negatives": 3, "negative_choice": "first"},
        losses={"ce": 1.0},
        batching={"name": "random"},
    )
    train(cfg, model=model, **QUIET)
    assert evaluate_response(model, ex, progress=False)[0]["mrr"] > max(before, 0.9)


def test_response_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="dev.data: response data given as a path"):
        _cfg(tmp_path, data={"task": "response", "train": str(tmp_path / "x.jsonl")}, dev={"split": "dev"}).validate()
    _cfg(
        tmp_path, data={"task": "response", "train": "dailydialog"}, dev={"split": "validation"}
    ).validate()  # built-in: fine
    with pytest.raises(ConfigError, match="refresh.every_steps"):
        _cfg(tmp_path, data={"task": "response", "train": "mutual"}, refresh={"every_steps": 5}).validate()
    with pytest.raises(ConfigError, match="rerank_depth"):
        _cfg(tmp_path, test={"split": "test", "rerank_depth": 0}).validate()
    with pytest.raises(ConfigError, match="first_stage"):
        _cfg(tmp_path, test={"split": "test", "first_stage": "dense"}).validate()
    with pytest.raises(ConfigError, match="data.task"):
        _cfg(tmp_path, data={"task": "chat"}).validate()
    with pytest.raises(ConfigError, match="data.options"):
        _cfg(tmp_path, data={"options": {"n": 10}}).validate()
    with pytest.raises(ConfigError, match="exclude each other"):
        _cfg(tmp_path, data={"task": "response", "mined": "x.jsonl"}).validate()


def test_rerankers_are_evaluated_by_reranking_bm25(tmp_path):
    """A cross-encoder's dev/test evaluation reranks the BM25 top-k of the split (one first stage for all epochs)."""
    from unirank.data.beir import load_beir
    from unirank.eval.config import RetrieverConfig
    from unirank.eval.evaluate import retrieve, score_run
    from unirank.eval.rerank import rerank_run
    from unirank.index.retrievers import make_retriever
    from unirank.models.cross import CrossEncoder

    folder = _beir(tmp_path)
    model = CrossEncoder(tiny_backbone(hidden=32), max_context_length=16, max_candidate_length=16)
    cfg = _cfg(
        tmp_path,
        epochs=2,
        batch_size=3,
        in_batch_negatives=False,
        losses={"ce": 1.0},
        data={"train": str(folder), "split": "train", "negatives": 0},
        dev={"split": "dev", "rerank_depth": 5},
        test={"split": "dev", "rerank_depth": 5, "measures": ["ndcg@10", "mrr@10"]},
    )
    cfg.in_batch_negatives = True  # no mined negatives: the other rows' positives are the candidates
    summary = train(cfg, model=model, **QUIET)
    assert len(summary["dev"]) == 2 and "ndcg@10" in summary["dev"][0]
    ds = load_beir(folder, split="dev")
    first, _ = retrieve(ds, make_retriever(RetrieverConfig(name="bm25")), 5)
    model.eval()
    expected = score_run(ds.qrels, rerank_run(model, ds, first, depth=5, progress=False), ["ndcg@10", "mrr@10"])[0]
    assert summary["test"] == pytest.approx(expected, abs=1e-6)
    assert (Path(summary["out"]) / "test" / "run.trec").is_file()


def test_rank0_evaluates_with_the_idle_local_ranks_threads(tmp_path, monkeypatch):
    from unirank.train import _eval_threads

    cfg = _cfg(tmp_path, threads=1)
    torch.set_num_threads(1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with _eval_threads(cfg, torch.device("cpu")):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    with _eval_threads(cfg, torch.device("cpu")):
        assert torch.get_num_threads() == 1


def test_dialogue_contexts_keep_their_most_recent_tokens_everywhere(tmp_path):
    """Training (in-batch and GradCache), scoring and encode_queries embed a turn list the same way."""
    model = BiEncoder(tiny_backbone(hidden=16, seed=0), max_length=5)
    model.eval()
    ctx = ("alpha beta gamma", "delta epsilon zeta")
    tok = model.tokenizer.convert_ids_to_tokens
    assert tok(model._context_token_ids([ctx], 5)[0]) == ["[CLS]", "delta", "epsilon", "zeta", "[SEP]"]
    with torch.no_grad():
        ref = model.embed_contexts([ctx])[0].numpy()
    np.testing.assert_allclose(model.encode_queries([ctx])[0], ref, atol=1e-5)
    np.testing.assert_allclose(model.encode_queries([list(ctx), "plain"])[0], ref, atol=1e-5)
    long_prefix = BiEncoder(tiny_backbone(hidden=16, seed=0), max_length=6, query_prefix="query: the a b c ")
    assert len(long_prefix._context_token_ids([ctx], 6)[0]) == 6  # a long prefix is cut, specials kept


def test_grad_cache_with_dialogue_contexts_equals_the_plain_batch(tmp_path):
    ex = [
        TrainExample(f"c{i}", ("old turn " * 5, f"new turn about {t.split()[0]}"), [Candidate(f"d{i}", f"reply {t}")])
        for i, t in enumerate(TOPICS[:4])
    ]
    grads = []
    for gc in (False, True):
        model = _model()
        model.train()
        for mod in model.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.p = 0.0
        cfg = _cfg(tmp_path, grad_cache=gc, chunk_size=2, data={"negatives": 0})
        model.zero_grad()
        batch_backward(model, epoch_rows(ex, 0, 0, negatives=0), cfg, 1.0)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], atol=1e-5, rtol=1e-4)


def test_resume_accepts_a_checkpoint_written_before_new_config_fields(tmp_path):
    from unirank.config import to_dict
    from unirank.train import _check_resume_config

    cfg = _cfg(tmp_path)
    saved = to_dict(cfg)
    del saved["data"]["task"], saved["data"]["options"], saved["test"]["rerank_depth"]
    _check_resume_config(cfg, saved, tmp_path)  # missing keys = their defaults
    saved["lr"] = 1.0
    with pytest.raises(ConfigError, match="differs in lr"):
        _check_resume_config(cfg, saved, tmp_path)
