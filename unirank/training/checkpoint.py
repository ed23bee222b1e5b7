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

It is written into a temporary folder beside its final name and renamed into place
(``trainer_state.json`` last: a folder under a checkpoint's name that holds it is
complete), and ``latest.json`` (the pointer ``--resume`` follows) is replaced atomically
afterwards. A complete checkpoint is never rewritten (the loop gives every checkpoint its
own name; :func:`save_checkpoint` refuses to replace one unless told to, as for ``best``)
and a pruned one is renamed away before it is deleted, so a run killed at any moment leaves
every complete checkpoint it had and at most a temporary leftover, which
:func:`clean_checkpoint_leftovers` removes on the next start. :func:`latest_checkpoint`
returns the newest complete checkpoint even when the pointer is missing or stale. Nothing
here calls ``torch.load``; loading uses ``safetensors.torch.load_file``, and a damaged file
raises :class:`~unirank.errors.DataError` naming it.

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
    >>> bool(torch.equal(m.weight, m2.weight)), bool(torch.equal(opt.state[m.weight]["exp_avg"],
    ...                                                           opt2.state[m2.weight]["exp_avg"]))
    (True, True)
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..io import atomic_dir, clean_leftovers, normal_permissions, os_error_from, tmp_prefix, write_json

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
    "save_weights",
    "load_weights",
    "rng_state",
    "set_rng_state",
    "prune_checkpoints",
    "clean_checkpoint_leftovers",
    "is_complete",
    "read_trainer_state",
    "LATEST",
]

#: pointer file in the checkpoint root naming the newest complete checkpoint
LATEST = "latest.json"


# --------------------------------------------------------------------------- weights


def save_weights(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """``model``'s state_dict as safetensors (atomically)."""
    from safetensors.torch import save_model

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=tmp_prefix(path.name), suffix=".tmp", dir=path.parent)
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
    replace: bool = False,
) -> Path:
    """Write checkpoint ``root/name`` atomically and (optionally) point ``latest.json`` at it.

    Args:
        root: checkpoint folder (created).
        name: sub-folder name, e.g. ``step-000100``.
        model, optimizer, scheduler: what to save (optimizer / scheduler may be ``None``).
        trainer_state: JSON-serialisable loop state.
        update_latest: rewrite ``latest.json`` to name this checkpoint.
        replace: replace a complete checkpoint of the same name (``best``); without it an
            existing complete checkpoint is never touched (``FileExistsError``). An
            incomplete folder under the name is always replaced.

    Returns:
        The checkpoint folder.
    """
    from safetensors.torch import save_file

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    if not replace and is_complete(final):
        raise FileExistsError(f"{final}: a complete checkpoint is never rewritten; give the new one another name")
    with atomic_dir(final) as tmp:
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
        write_json(tmp / "trainer_state.json", trainer_state)  # last: its presence marks a complete checkpoint
    if update_latest:
        write_json(root / LATEST, {"checkpoint": name, "step": trainer_state.get("step")})
    return final


#: the loop's checkpoint names start with this; their name order is their age order
STEP_PREFIX = "step-"


def is_complete(path: str | os.PathLike) -> bool:
    """True for a checkpoint folder that was written to the end (it holds ``trainer_state.json``)."""
    return (Path(path) / "trainer_state.json").is_file()


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint, or ``None`` when there is none.

    ``latest.json`` names it; when the pointer is missing, unreadable, names a folder that
    is gone or incomplete, or is older than a complete ``step-*`` checkpoint (a run killed
    between writing a checkpoint and moving the pointer), the newest complete ``step-*``
    folder is taken instead.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for n in ("step-0000002", "step-0000004", "step-0000006"):
        ...     (root / n).mkdir(); _ = (root / n / "trainer_state.json").write_text("{}")
        >>> (root / "step-0000006" / "trainer_state.json").unlink()  # killed while being written
        >>> _ = (root / LATEST).write_text('{"checkpoint": "step-0000009"}')  # names a folder that is gone
        >>> latest_checkpoint(root).name
        'step-0000004'
    """
    root = Path(root)
    named = None
    try:
        pointer = json.loads((root / LATEST).read_text(encoding="utf-8"))
        named = root / str(pointer["checkpoint"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if named is not None and not is_complete(named):
        named = None
    steps = sorted(p for p in root.glob(f"{STEP_PREFIX}*") if p.is_dir() and is_complete(p)) if root.is_dir() else []
    newest = steps[-1] if steps else None
    if named is None or (newest is not None and named.name.startswith(STEP_PREFIX) and newest.name > named.name):
        return newest
    return named


def clean_checkpoint_leftovers(root: str | os.PathLike) -> list[str]:
    """Remove what killed checkpoint writes left in ``root`` (``.step-*.tmp`` folders that can
    each hold a whole checkpoint, ``.*.old-*`` folders, which are put back when their
    checkpoint is missing, half-deleted pruned folders, temporary files inside checkpoints).

    Returns:
        The names removed or restored.
    """
    root = Path(root)
    done = clean_leftovers(root)
    if root.is_dir():
        for p in sorted(root.iterdir()):
            if p.is_dir() and not p.name.startswith("."):
                done += [f"{p.name}/{n}" for n in clean_leftovers(p)]
    return done


def read_trainer_state(path: str | os.PathLike) -> dict[str, Any]:
    """``trainer_state.json`` of checkpoint ``path`` (:class:`DataError` naming it when damaged)."""
    return _read(Path(path) / "trainer_state.json", lambda f: json.loads(f.read_text(encoding="utf-8")))


def _read(path: Path, reader: Any) -> Any:
    """``reader(path)``; a missing, truncated or garbled file is a :class:`DataError` naming it."""
    from safetensors import SafetensorError

    try:
        return reader(path)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as e:
        os_error = e if isinstance(e, OSError) else os_error_from(e, path)
        if os_error is not None and os_error.errno not in (None, errno.ENOENT):
            raise os_error from None  # unreadable (permissions, I/O), not damaged: the CLI names the file
        detail = " ".join(str(e).split()) or type(e).__name__
        raise DataError(
            f"damaged checkpoint ({detail}); delete {path.parent} to resume from the checkpoint before it", path=path
        ) from None


def load_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Load a checkpoint into ``model`` / ``optimizer`` / ``scheduler``; returns the trainer state.

    Raises:
        DataError: a file of the checkpoint is missing, damaged or does not fit the model.
    """
    from safetensors.torch import load_file

    path = Path(path)

    def text(name: str) -> Any:
        return _read(path / name, lambda f: json.loads(f.read_text(encoding="utf-8")))

    state = read_trainer_state(path)
    _read(path / "model.safetensors", lambda f: load_weights(model, f))
    if optimizer is not None:
        meta = text("optimizer.json")
        tensors = _read(path / "optimizer.safetensors", lambda f: load_file(str(f)))
        _read(path / "optimizer.json", lambda f: optimizer.load_state_dict(_join_optimizer(tensors, meta)))
    if scheduler is not None:
        sched = text("scheduler.json")
        if sched is not None:
            _read(path / "scheduler.json", lambda f: scheduler.load_state_dict(sched))
    if restore_rng:
        rng_t = _read(path / "rng.safetensors", lambda f: load_file(str(f)))
        rng_m = text("rng.json")
        _read(path / "rng.json", lambda f: set_rng_state(rng_t, rng_m))
    return state


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
        # renamed away first: a kill during the deletion leaves a leftover, never a
        # half-deleted folder under a checkpoint's name
        gone = root / f"{tmp_prefix(n)}{uuid.uuid4().hex[:8]}.tmp"
        os.replace(root / n, gone)
        shutil.rmtree(gone, ignore_errors=True)
        out.append(n)
    return out
