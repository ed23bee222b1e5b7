"""Atomic file output: write to a temporary file beside the target, then rename.

A crash or an exception never leaves a half-written file under the final name.

Example:
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> p = os.path.join(d, "x.json")
    >>> write_json(p, {"a": 1})
    >>> open(p).read()
    '{\\n  "a": 1\\n}\\n'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import IO, Any, Iterator


def normal_permissions(path: str | os.PathLike) -> None:
    """Give ``path`` - a file, or a folder and everything in it - the permissions a plain
    ``open`` / ``mkdir`` would (0666 / 0777 less the umask). ``mkstemp`` and ``mkdtemp``,
    used for atomic writes, create 0600 files and 0700 folders, which would otherwise stay
    on the final outputs.

    Example:
        >>> import tempfile, stat
        >>> d = tempfile.mkdtemp(); normal_permissions(d)
        >>> stat.S_IMODE(os.stat(d).st_mode) == 0o777 & ~_umask()
        True
    """
    umask = _umask()
    p = Path(path)
    os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~umask)
    if p.is_dir():
        for root, dirs, files in os.walk(p):  # does not descend into linked folders
            for name, mode in [(d, 0o777) for d in dirs] + [(f, 0o666) for f in files]:
                full = os.path.join(root, name)
                if not os.path.islink(full):  # never change what a link points to
                    os.chmod(full, mode & ~umask)


def _umask() -> int:
    """The process umask, read without changing it where Linux tells it (``os.umask`` can only
    be read by setting it, which would race with files other threads create meanwhile)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temp file in the target's folder; on success fsync and rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    normal_permissions(tmp)  # mkstemp creates 0600; give the final file normal permissions
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Pretty JSON (sorted keys are the caller's choice), atomically."""
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Any) -> None:
    """One compact JSON object per line, atomically."""
    with atomic_open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def replace_dir(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move the finished folder ``tmp`` to ``target``, replacing a folder already there:
    the old one is renamed aside first and deleted last, so ``target`` always names a
    complete folder (the folder-level counterpart of :func:`atomic_open`).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> for text in ("old", "new"):
        ...     t = Path(tempfile.mkdtemp(dir=d)); _ = (t / "f").write_text(text)
        ...     replace_dir(t, d / "out")
        >>> (d / "out" / "f").read_text(), sorted(p.name for p in d.iterdir())
        ('new', ['out'])
    """
    tmp, target = Path(tmp), Path(target)
    normal_permissions(tmp)  # a mkdtemp folder is 0700; files written into it may be 0600
    if not target.exists():
        os.replace(tmp, target)
        return
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)  # put the previous folder back
        raise
    shutil.rmtree(old, ignore_errors=True)
