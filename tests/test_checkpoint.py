"""Checkpoints: safetensors + JSON only, exact round trip, atomic writes, pruning."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from unirank.training import checkpoint as ck


def _trained(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.Linear(3, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    for _ in range(3):
        model(torch.randn(5, 4)).pow(2).sum().backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    return model, opt, sched


def test_files_are_safetensors_and_json_only(tmp_path):
    model, opt, sched = _trained()
    path = ck.save_checkpoint(tmp_path, "step-3", model, opt, sched, {"step": 3})
    files = sorted(p.name for p in path.iterdir())
    assert {p.rsplit(".", 1)[1] for p in files} == {"safetensors", "json"}
    for p in path.iterdir():
        head = p.read_bytes()[:2]
        assert head != b"\x80\x04" and head != b"PK", f"{p.name} looks like a pickle / torch.save zip"
        if p.suffix == ".json":
            json.loads(p.read_text())
    assert json.loads((tmp_path / ck.LATEST).read_text()) == {"checkpoint": "step-3", "step": 3}


def test_round_trip_restores_training_exactly(tmp_path):
    model, opt, sched = _trained()
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    ck.save_checkpoint(tmp_path, "a", model, opt, sched, {"step": 3, "note": "x"})
    expected_draws = (random.random(), float(np.random.rand()), torch.rand(3))
    # continue the original for one step
    x = torch.randn(5, 4)
    model(x).pow(2).sum().backward()
    opt.step()
    sched.step()

    m2, o2, s2 = _trained(seed=1)  # different weights and state
    random.seed(0)
    state = ck.load_checkpoint(ck.latest_checkpoint(tmp_path), m2, o2, s2)
    assert state == {"step": 3, "note": "x"}
    draws = (random.random(), float(np.random.rand()), torch.rand(3))
    assert draws[0] == expected_draws[0] and draws[1] == expected_draws[1] and torch.equal(draws[2], expected_draws[2])
    assert o2.param_groups[0]["betas"] == (0.9, 0.999)
    m2(x).pow(2).sum().backward()
    o2.step()
    s2.step()
    for a, b in zip(model.parameters(), m2.parameters()):
        assert torch.equal(a, b)
    assert s2.get_last_lr() == sched.get_last_lr()


def test_a_failed_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    model, opt, sched = _trained()
    ck.save_checkpoint(tmp_path, "step-1", model, opt, sched, {"step": 1})
    before = sorted(p.name for p in tmp_path.iterdir())

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ck, "write_json", boom)
    with pytest.raises(OSError, match="disk full"):
        ck.save_checkpoint(tmp_path, "step-2", model, opt, sched, {"step": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temp folder, no half checkpoint
    assert ck.latest_checkpoint(tmp_path).name == "step-1"


def test_latest_ignores_a_pointer_to_an_incomplete_folder(tmp_path):
    assert ck.latest_checkpoint(tmp_path) is None
    (tmp_path / ck.LATEST).write_text(json.dumps({"checkpoint": "step-9"}))
    (tmp_path / "step-9").mkdir()
    assert ck.latest_checkpoint(tmp_path) is None


def test_prune_keeps_the_newest(tmp_path):
    model = torch.nn.Linear(2, 2)
    for s in (1, 2, 3):
        ck.save_checkpoint(tmp_path, f"step-{s:03d}", model, None, None, {"step": s})
    ck.save_checkpoint(tmp_path, "best", model, None, None, {"step": 1}, update_latest=False)
    assert ck.prune_checkpoints(tmp_path, "step-", keep=2) == ["step-001"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["best", "step-002", "step-003"]


def test_load_weights_is_strict(tmp_path):
    ck.save_weights(torch.nn.Linear(2, 2), tmp_path / "w.safetensors")
    with pytest.raises(Exception):
        ck.load_weights(torch.nn.Linear(2, 3), tmp_path / "w.safetensors")


def test_a_complete_checkpoint_is_never_rewritten(tmp_path):
    model, opt, sched = _trained()
    first = ck.save_checkpoint(tmp_path, "step-0000002", model, opt, sched, {"step": 2})
    before = (first / "model.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="never rewritten"):
        ck.save_checkpoint(tmp_path, "step-0000002", model, opt, sched, {"step": 2, "epoch": 1})
    assert (first / "model.safetensors").read_bytes() == before
    # "best" is replaced on purpose; an incomplete folder under a name is replaced too
    ck.save_checkpoint(tmp_path, "best", model, None, None, {"step": 1}, update_latest=False)
    ck.save_checkpoint(tmp_path, "best", model, None, None, {"step": 2}, update_latest=False, replace=True)
    assert json.loads((tmp_path / "best" / "trainer_state.json").read_text()) == {"step": 2}
    (tmp_path / "step-0000004").mkdir()
    ck.save_checkpoint(tmp_path, "step-0000004", model, opt, sched, {"step": 4})
    assert ck.latest_checkpoint(tmp_path).name == "step-0000004"


def test_latest_falls_back_to_the_newest_complete_checkpoint(tmp_path):
    """The issue's case: the pointer names a folder a killed rewrite left missing."""
    model, opt, sched = _trained()
    for s in (2, 4):
        ck.save_checkpoint(tmp_path, f"step-{s:07d}", model, opt, sched, {"step": s})
    (tmp_path / ck.LATEST).write_text(json.dumps({"checkpoint": "step-0000006"}))
    assert ck.latest_checkpoint(tmp_path).name == "step-0000004"
    (tmp_path / ck.LATEST).write_text("{not json")
    assert ck.latest_checkpoint(tmp_path).name == "step-0000004"
    (tmp_path / ck.LATEST).unlink()
    assert ck.latest_checkpoint(tmp_path).name == "step-0000004"
    # killed after the checkpoint was renamed into place, before the pointer moved: it is complete
    (tmp_path / ck.LATEST).write_text(json.dumps({"checkpoint": "step-0000002"}))
    assert ck.latest_checkpoint(tmp_path).name == "step-0000004"
    # the epoch-end checkpoint of a step is newer than the step's own
    ck.save_checkpoint(tmp_path, "step-0000004-end", model, opt, sched, {"step": 4})
    assert ck.latest_checkpoint(tmp_path).name == "step-0000004-end"


def test_leftovers_of_killed_writes_are_cleaned_and_old_folders_restored(tmp_path):
    model, opt, sched = _trained()
    ck.save_checkpoint(tmp_path, "step-0000002", model, opt, sched, {"step": 2})
    ck.save_checkpoint(tmp_path, "best", model, None, None, {"step": 2}, update_latest=False)
    dead = "999999999"
    (tmp_path / f".step-0000004.{dead}-abcdefgh.tmp").mkdir()  # a checkpoint being written
    (tmp_path / f".step-0000004.{dead}-abcdefgh.tmp" / "model.safetensors").write_bytes(b"x" * 100)
    (tmp_path / "best").rename(tmp_path / f".best.old-{dead}-0123abcd")  # killed mid-replace of best
    (tmp_path / "step-0000002" / f".rng-rank1.json.{dead}-zzzzzzzz.tmp").write_text("{")
    done = ck.clean_checkpoint_leftovers(tmp_path)
    assert len(done) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", ck.LATEST, "step-0000002"]
    assert json.loads((tmp_path / "best" / "trainer_state.json").read_text()) == {"step": 2}
    assert not [p for p in (tmp_path / "step-0000002").iterdir() if p.name.startswith(".")]


def test_prune_renames_before_deleting(tmp_path, monkeypatch):
    """A kill during the deletion leaves a leftover, never a half-deleted folder under a checkpoint's name."""
    model = torch.nn.Linear(2, 2)
    for s in (1, 2):
        ck.save_checkpoint(tmp_path, f"step-{s:07d}", model, None, None, {"step": s})
    seen = []
    monkeypatch.setattr(ck.shutil, "rmtree", lambda p, **k: seen.append(p.name))  # "killed" before deleting anything
    assert ck.prune_checkpoints(tmp_path, "step-", keep=1) == ["step-0000001"]
    assert seen and seen[0].startswith(".step-0000001.") and seen[0].endswith(".tmp")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [ck.LATEST, "step-0000002"]


@pytest.mark.parametrize("damage", ["truncate_model", "garble_state", "drop_optimizer", "other_model"])
def test_a_damaged_checkpoint_is_a_data_error_naming_the_file(tmp_path, damage):
    from unirank.errors import DataError

    model, opt, sched = _trained()
    path = ck.save_checkpoint(tmp_path, "step-0000003", model, opt, sched, {"step": 3})
    target = model
    if damage == "truncate_model":
        f = path / "model.safetensors"
        f.write_bytes(f.read_bytes()[:50])
        name = "model.safetensors"
    elif damage == "garble_state":
        (path / "trainer_state.json").write_text('{"step": 3')
        name = "trainer_state.json"
    elif damage == "drop_optimizer":
        (path / "optimizer.safetensors").unlink()
        name = "optimizer.safetensors"
    else:
        target = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.LayerNorm(5), torch.nn.Linear(5, 2))
        opt = torch.optim.AdamW(target.parameters())
        name = "model.safetensors"
    with pytest.raises(DataError) as e:
        ck.load_checkpoint(path, target, opt, sched)
    msg = str(e.value)
    assert msg.startswith(str(path / name) + ": damaged checkpoint") and "\n" not in msg and "delete" in msg
