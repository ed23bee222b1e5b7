"""--resume never loses progress or repeats a log line (issue 18, part 1), in-process and fast.

The kill -9 scenarios are in test_kill_anywhere.py; these pin the loop's side of them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from unirank.errors import DataError
from unirank.train import MetricsLog, train

from .test_train import QUIET, _beir, _cfg, _metric_lines, _model, _weights


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _dev_cfg(tmp_path: Path, **kw):
    folder = _beir(tmp_path)
    return _cfg(
        tmp_path,
        epochs=2,
        batch_size=3,
        data={"train": str(folder), "split": "train", "negatives": 0},
        dev={"split": "dev", "measures": ["ndcg@10", "mrr@10"]},
        test={"split": "dev", "measures": ["ndcg@10"]},
        **kw,
    )


def test_checkpoint_names_are_never_reused(tmp_path):
    """save_every on an epoch's last step and the epoch end: two checkpoints, two names."""
    cfg = _dev_cfg(tmp_path, save_every=1, keep_checkpoints=10)
    train(cfg, model=_model(), **QUIET)
    names = sorted(p.name for p in (Path(cfg.out) / "checkpoints").iterdir() if p.name.startswith("step-"))
    assert names == [
        "step-0000001",
        "step-0000002",
        "step-0000002-end",
        "step-0000003",
        "step-0000004",
        "step-0000004-end",
    ]
    state = json.loads((Path(cfg.out) / "checkpoints" / "step-0000002-end" / "trainer_state.json").read_text())
    assert state["epoch"] == 1 and state["batches"] is None and [d["epoch"] for d in state["dev"]] == [0]


@pytest.mark.parametrize("last", ["step-0000002", "step-0000004"])
def test_resuming_at_an_epoch_end_step_runs_the_epoch_end_once(tmp_path, last):
    """A run killed after step N's checkpoint but before step N-end's (its dev line already
    written): the resume evaluates again, logs the dev line once, and - at the last epoch -
    still runs that epoch's end at all."""
    ref = train(_dev_cfg(tmp_path / "a"), model=_model(), **QUIET)
    cfg = _dev_cfg(tmp_path / "b", save_every=1, keep_checkpoints=10)
    train(cfg, model=_model(), **QUIET)
    run = Path(cfg.out)
    for p in sorted((run / "checkpoints").iterdir()):  # roll the disk back to just after `last`
        if p.name.startswith("step-") and p.name > last:
            shutil.rmtree(p)
    (run / "checkpoints" / "latest.json").write_text(json.dumps({"checkpoint": last}))
    shutil.rmtree(run / "model")
    done = train(cfg, resume=True, model=_model(seed=9), **QUIET)
    assert done["dev"] == ref["dev"] and done["best_step"] == ref["best_step"] and done["test"] == ref["test"]
    lines = _metric_lines(run)
    assert lines == _metric_lines(Path(ref["out"]))
    assert len([r for r in lines if "dev/ndcg@10" in r]) == 2 and len([r for r in lines if "test/ndcg@10" in r]) == 1
    wa, wb = _weights(Path(ref["out"]) / "model"), _weights(run / "model")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_metrics_log_drops_a_torn_last_line_and_refuses_a_garbled_one(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text(
        '{"step": 1, "loss": 1.0}\n{"step": 1, "epoch": 0, "dev/ndcg@10": 0.5}\n{"step": 2, "epoch": 0, '
        '"dev/ndcg@10": 0.6}\n'
        '{"step": 2, "test/ndcg@10": 0.6}\n{"step": 3, "lo'
    )
    MetricsLog(p, keep_until_step=2, dev_rows=[{"step": 1, "epoch": 0}])
    assert p.read_text() == '{"step": 1, "loss": 1.0}\n{"step": 1, "epoch": 0, "dev/ndcg@10": 0.5}\n'
    p.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(DataError, match=r"metrics\.jsonl:2: not a JSON line"):
        MetricsLog(p, keep_until_step=2)


def test_a_saved_tokenizer_does_not_depend_on_the_last_call(tmp_path):
    """tokenizer.json must not carry the truncation / padding of whatever encoded last (a
    resumed run that exports without encoding wrote another file than an uninterrupted one)."""
    from unirank.models.backbone import tiny_backbone
    from unirank.models.bi import BiEncoder
    from unirank.models.cross import CrossEncoder

    for make in (
        lambda: BiEncoder(tiny_backbone(hidden=16), max_length=24),
        lambda: CrossEncoder(tiny_backbone(hidden=16)),
    ):
        a, b = make(), make()
        a.save(tmp_path / "a")
        b.tokenizer(["some text to encode"], truncation=True, max_length=7, padding="max_length")
        b.save(tmp_path / "b")
        fa = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("tokenizer.json"))
        assert fa and all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in fa)
        # and encoding is unchanged after a save
        ids = a.tokenizer(["some text to encode"], truncation=True, max_length=3)["input_ids"]
        assert len(ids[0]) == 3
        shutil.rmtree(tmp_path / "a"), shutil.rmtree(tmp_path / "b")
