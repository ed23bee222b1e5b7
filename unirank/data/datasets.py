"""Named built-in data sets and one entry point that also takes a BEIR folder.

``load_dataset(name_or_dir)`` resolves a registered name through :data:`DATASETS`; anything
else must be a BEIR folder. A string that contains a path separator or starts with ``.``
is always treated as a path, so ``./stdlib-codesearch`` reaches a folder of that name.

Example:
    >>> DATASETS.names()
    ['stdlib-codesearch']
    >>> load_dataset("no-such-set")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    unirank.errors.DataError: no-such-set: unknown data set: not a registered name (valid: stdlib-codesearch) and not a folder (relative paths resolve from the current folder, ...)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from ..errors import DataError
from ..registry import Registry
from ..types import RetrievalDataset
from .beir import load_beir
from .codesearch import load_codesearch

__all__ = ["DATASETS", "load_dataset"]

#: name -> loader(split="test", **kw) -> RetrievalDataset
DATASETS: Registry[Callable[..., RetrievalDataset]] = Registry("dataset")
DATASETS.register("stdlib-codesearch")(load_codesearch)


def _looks_like_path(name: str) -> bool:
    return (
        os.sep in name or (os.altsep is not None and os.altsep in name) or name.startswith(".") or name.startswith("~")
    )


def load_dataset(name_or_dir: str | os.PathLike, split: str = "test", **kw: Any) -> RetrievalDataset:
    """Load a built-in data set by name, or a BEIR folder by path.

    Args:
        name_or_dir: a name in :data:`DATASETS` (e.g. ``"stdlib-codesearch"``) or a folder
            holding ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.
        split: the qrels split to load.
        **kw: passed to the loader (e.g. ``limit_queries=`` for stdlib-codesearch,
            ``name=`` for a BEIR folder).

    Returns:
        A :class:`RetrievalDataset`.

    Raises:
        DataError: an unknown name that is not a folder (lists the registered names), or
            any problem reading the data.
    """
    name = os.fspath(name_or_dir)
    if not isinstance(name_or_dir, Path) and not _looks_like_path(name) and name in DATASETS:
        return DATASETS.get(name)(split=split, **kw)
    path = Path(name).expanduser()
    if path.is_dir():
        return load_beir(path, split=split, **kw)
    valid = ", ".join(DATASETS.names())
    where = "" if Path(name).is_absolute() else f" (relative paths resolve from the current folder, {Path.cwd()})"
    raise DataError(f"unknown data set: not a registered name (valid: {valid}) and not a folder{where}", path=name)
