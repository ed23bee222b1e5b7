"""Checkpoints without pickle: safetensors for tensors, JSON for everything else.

A checkpoint is a folder::

    model.safetensors       the ranker's state_dict (safetensors.torch.save_model: shared
                            tensors are handled)
    optimizer.safetensors   every tensor of the optimizer state ("state.<param>.<name>")
    optimizer.json          the rest of the optimizer state (param groups, scalars)
    scheduler.json          the LR scheduler's state_dict
    rng.safetensors         torch CPU (and CUDA) generator states
    rng.json                Python ``random`` and NumPy global generator states
    trainer_state.json      step, epoch, position in the epoch, best metric, sampler state ...

It is written into a temporary folder beside its final name and renamed into place, and
``latest.json`` (the pointer ``--resume`` follows) is replaced atomically afterwards, so a
run killed at any moment leaves either the previous or the new checkpoint, never half of
one. Nothing here calls ``torch.load``; loading uses ``safetensors.torch.load_file``.

Example:
    >>> import tempfile, torch
    >>> m = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.AdamW(m.parameters(), lr=0.1)
    >>> m(torch.ones(1, 2)).sum().backward(); opt.step()
    >>> root = tempfile.mkdtemp()
    >>> path = save_checkpoint(root, "step-1", m, opt, None, {"step": 1})
    >>> sorted(p.name for p in path.iterdir())  # doctest: +NORMALIZE_WHITESPACE
    ['model.safetensors', 'optimizer.json', 'optimizer.safetensors', 'rng.json', 'rng.safetensors',
     'scheduler.json', 'trainer_state.json']
    >>> m2 = torch.nn.Linear(2, 1); opt2 = torch.optim.AdamW(m2.parameters(), lr=0.1)
    >>> load_checkpoint(latest_checkpoint(root), m2, opt2, None)["step"]
    1
    >>> bool(torch.equal(m.weight, m2.weight)), bool(torch.equal(opt.state[m.weight]["exp_avg"], opt2.state[m2.weight]["exp_avg"]))
    (True, True)
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import normal_permissions, replace_dir, write_json

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
    "save_weights",
    "load_weights",
    "rng_state",
    "set_rng_state",
    "prune_checkpoints",
    "LATEST",
]

#: pointer file in the checkpoint root naming the newest complete checkpoint
LATEST = "latest.json"


# --------------------------------------------------------------------------- weights


def save_weights(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """``model``'s state_dict as safetensors (atomically)."""
    from safetensors.torch import save_model

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_model(model, tmp)
        normal_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load safetensors weights into ``model`` (strict: names and shapes must match)."""
    from safetensors.torch import load_model

    load_model(model, str(path), strict=True, device=str(next(model.parameters()).device))


# --------------------------------------------------------------------------- optimizer


def _split_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    per_param: dict[str, dict[str, Any]] = {}
    for idx, entry in state["state"].items():
        scalars = {}
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[name] = value
        per_param[str(idx)] = scalars
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"state": per_param, "param_groups": groups}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in meta["state"].items()}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


# --------------------------------------------------------------------------- RNG


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every global generator's state: (tensors, JSON-able)."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    py = random.getstate()
    npy = np.random.get_state()
    meta = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [npy[0], npy[1].tolist(), int(npy[2]), int(npy[3]), float(npy[4])],
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Restore :func:`rng_state`."""
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("torch_cuda_"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    v, state, gauss = meta["python"]
    random.setstate((v, tuple(state), gauss))
    name, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


# --------------------------------------------------------------------------- checkpoints


def _json_safe(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def save_checkpoint(
    root: str | os.PathLike,
    name: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any,
    trainer_state: dict[str, Any],
    update_latest: bool = True,
) -> Path:
    """Write checkpoint ``root/name`` atomically and (optionally) point ``latest.json`` at it.

    Args:
        root: checkpoint folder (created).
        name: sub-folder name, e.g. ``step-000100``; an existing one is replaced.
        model, optimizer, scheduler: what to save (optimizer / scheduler may be ``None``).
        trainer_state: JSON-serialisable loop state.
        update_latest: rewrite ``latest.json`` to name this checkpoint.

    Returns:
        The checkpoint folder.
    """
    from safetensors.torch import save_file

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=root))
    try:
        save_weights(model, tmp / "model.safetensors")
        if optimizer is not None:
            tensors, meta = _split_optimizer(optimizer.state_dict())
            save_file(tensors, str(tmp / "optimizer.safetensors"))
            write_json(tmp / "optimizer.json", meta)
        if scheduler is not None or optimizer is not None:
            write_json(tmp / "scheduler.json", _json_safe(scheduler.state_dict()) if scheduler is not None else None)
        rng_t, rng_m = rng_state()
        save_file(rng_t, str(tmp / "rng.safetensors"))
        write_json(tmp / "rng.json", rng_m)
        write_json(tmp / "trainer_state.json", trainer_state)
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if update_latest:
        write_json(root / LATEST, {"checkpoint": name, "step": trainer_state.get("step")})
    return final


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The folder ``latest.json`` names, or ``None`` when there is no complete checkpoint."""
    pointer = Path(root) / LATEST
    if not pointer.is_file():
        return None
    path = Path(root) / json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
    return path if (path / "trainer_state.json").is_file() else None


def load_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Load a checkpoint into ``model`` / ``optimizer`` / ``scheduler``; returns the trainer state."""
    from safetensors.torch import load_file

    path = Path(path)
    load_weights(model, path / "model.safetensors")
    if optimizer is not None:
        meta = json.loads((path / "optimizer.json").read_text(encoding="utf-8"))
        optimizer.load_state_dict(_join_optimizer(load_file(str(path / "optimizer.safetensors")), meta))
    if scheduler is not None:
        state = json.loads((path / "scheduler.json").read_text(encoding="utf-8"))
        if state is not None:
            scheduler.load_state_dict(state)
    if restore_rng:
        set_rng_state(load_file(str(path / "rng.safetensors")), json.loads((path / "rng.json").read_text(encoding="utf-8")))
    return json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))


def prune_checkpoints(root: str | os.PathLike, prefix: str, keep: int) -> list[str]:
    """Delete all but the ``keep`` newest ``prefix*`` checkpoints (by name); never the latest one.

    Returns:
        The deleted folder names.
    """
    root = Path(root)
    latest = latest_checkpoint(root)
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith(prefix))
    doomed = names[: max(0, len(names) - max(1, keep))]
    out = []
    for n in doomed:
        if latest is not None and latest.name == n:
            continue
        shutil.rmtree(root / n, ignore_errors=True)
        out.append(n)
    return out
