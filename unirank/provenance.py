"""What made an output: versions, seeds, fingerprints, and the process's place in a torchrun group."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
import platform
import random
import sys

import numpy as np

_PACKAGES = ("unirank", "torch", "transformers", "numpy", "faiss-cpu", "bm25s", "sentence-transformers")


def versions() -> dict[str, str]:
    """Installed versions of the packages that affect results."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for p in _PACKAGES:
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            pass
    return out


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def text_fingerprint(parts) -> str:
    """Short sha256 over an iterable of strings (order matters).

    Example:
        >>> text_fingerprint(["a", "b"]) != text_fingerprint(["b", "a"])
        True
    """
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def env_world() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from the torchrun environment (``(0, 1, 0)`` without it).

    Example:
        >>> import os
        >>> env_world() if "WORLD_SIZE" not in os.environ else (0, 1, 0)
        (0, 1, 0)
    """
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
