"""Atomic output: write to a temporary file (or folder) beside the target, then rename.

A crash or an exception never leaves a half-written file under the final name
(:func:`atomic_open`), and an output folder is replaced as a unit (:func:`atomic_dir`): a
failed run leaves the previous folder as it was, never old and new files side by side.

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
import ctypes
import errno
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import IO, Any, Iterator, Sequence


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
    fd, tmp = tempfile.mkstemp(prefix=tmp_prefix(path.name), suffix=".tmp", dir=path.parent)
    normal_permissions(tmp)  # mkstemp creates 0600; give the final file normal permissions
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None and e.errno is not None:
            # a failed write or flush (a full disk) names no file: name the one being written
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


def os_error_from(error: BaseException, path: str | os.PathLike) -> OSError | None:
    """The :class:`OSError` (with ``path`` as its file) behind an error of a library that
    reports I/O failures only in its message - safetensors' Rust code says
    ``I/O error: No space left on device (os error 28)`` - or ``None``.

    Example:
        >>> e = os_error_from(RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)"),
        ...                   "m.safetensors")
        >>> type(e).__name__, e.errno, e.filename
        ('OSError', 28, 'm.safetensors')
        >>> os_error_from(RuntimeError("invalid header"), "m.safetensors") is None
        True
    """
    if isinstance(error, OSError):
        return None
    m = re.search(r"\(os error (\d+)\)", str(error))
    if m is None:
        return None
    code = int(m.group(1))
    return OSError(code, os.strerror(code), str(path))


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


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; a missing, unreadable-as-UTF-8 or garbled one raises
    :class:`~unirank.errors.DataError` naming it (and the line) - for the metadata files
    unirank writes and later reads back from folders a user names (stores, indexes, models).

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "store.json"
        >>> _ = p.write_text('{"dim": 8,')
        >>> read_json(p)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        unirank.errors.DataError: .../store.json:1: not valid JSON (Expecting property name enclosed in double quotes)
    """
    from .errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError("file does not exist" if not path.exists() else "expected a file", path=path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text (byte {e.start})", path=path) from None
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON ({e.msg})", path=path, line=e.lineno) from None


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def tmp_prefix(name: str) -> str:
    """Prefix of a temporary sibling of ``name``: ``.<name>.<pid>-`` (the pid lets a later
    run tell a dead writer's leftover from a live writer's folder)."""
    return f".{name}.{os.getpid()}-"


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2: Any = None


def _exchange(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap the two existing paths ``a`` and ``b`` in one step (Linux ``renameat2`` with
    ``RENAME_EXCHANGE``); ``False`` where the system or the file system cannot."""
    global _renameat2
    if not sys.platform.startswith("linux"):
        return False
    if _renameat2 is None:
        try:
            fn = ctypes.CDLL(None, use_errno=True).renameat2
        except (OSError, AttributeError):
            fn = False
        else:
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            fn.restype = ctypes.c_int
        _renameat2 = fn
    if _renameat2 is False:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_dir(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move the finished folder ``tmp`` to ``target``, replacing a folder already there, so
    that ``target`` names a complete folder at every moment (the folder-level counterpart of
    :func:`atomic_open`; :func:`atomic_dir` wraps it).

    On Linux the two folders are swapped in one step (``renameat2(RENAME_EXCHANGE)``) and the
    previous one, now under ``tmp``'s name, is deleted. Elsewhere the previous folder is
    first renamed aside to ``.<target>.old-<pid>-<hex>``; a process killed between the two
    renames leaves it there, and :func:`clean_leftovers` puts it back on the next run.

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
    if not os.path.lexists(target):
        os.replace(tmp, target)
        return
    if _exchange(tmp, target):
        shutil.rmtree(tmp, ignore_errors=True)  # the previous folder, now under the temporary name
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)  # put the previous folder back
        raise
    shutil.rmtree(old, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: alive
        return True
    return True


_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?:(?P<pid>\d+)-)?[a-z0-9_]{8}\.tmp$")
_OLD_RE = re.compile(r"^\.(?P<name>.+)\.old-(?:(?P<pid>\d+)-)?[0-9a-f]{8}$")


def clean_leftovers(folder: str | os.PathLike, name: str | None = None) -> list[str]:
    """Remove what interrupted atomic writes left in ``folder``; returns the names handled.

    A writer killed between creating its temporary sibling and renaming it into place
    leaves ``.<name>.<pid>-<random>.tmp`` (a file or a whole folder: a checkpoint, a model,
    an output folder); the rename-aside fallback of :func:`replace_dir` can leave
    ``.<name>.old-<pid>-<hex>``, the previous complete folder, which is put back when
    ``<name>`` is missing and deleted otherwise. Entries of a process that is still running
    are left alone. ``name`` limits the clean-up to the leftovers of that one target.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / ".out.999999999-abcdefgh.tmp").mkdir(); _ = (d / ".out.old-999999999-0123abcd").mkdir()
        >>> _ = (d / ".keep.txt").write_text("a user's file")
        >>> clean_leftovers(d), sorted(p.name for p in d.iterdir())
        (['.out.999999999-abcdefgh.tmp', '.out.old-999999999-0123abcd'], ['.keep.txt', 'out'])
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    done = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        m = _TMP_RE.match(entry.name) or _OLD_RE.match(entry.name)
        if m is None or (name is not None and m.group("name") != name):
            continue
        if m.group("pid") is not None and _pid_alive(int(m.group("pid"))):
            continue
        target = folder / m.group("name")
        if m.re is _OLD_RE and not os.path.lexists(target) and entry.is_dir():
            os.replace(entry, target)  # the previous complete folder: put it back
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        done.append(entry.name)
    return done


def is_leftover(name: str) -> bool:
    """Whether ``name`` is what an interrupted atomic write leaves (:func:`clean_leftovers`).

    Example:
        >>> is_leftover(".config.json.123-abcdefgh.tmp"), is_leftover("config.json")
        (True, False)
    """
    return bool(_TMP_RE.match(name) or _OLD_RE.match(name))


def _has_markers(folder: Path, marker: str | Sequence[str] | None) -> bool:
    names = [marker] if isinstance(marker, str) else list(marker or ())
    return bool(names) and all((folder / m).exists() for m in names)


def check_replaceable(
    path: str | os.PathLike, marker: str | Sequence[str] | None = None, key: str | None = None
) -> None:
    """``path`` may be replaced by :func:`atomic_dir`: it does not exist, is an empty folder,
    or holds every ``marker`` file (an output the same kind of writer made). Anything else -
    a file, a folder of the user's - raises :class:`~unirank.errors.ConfigError` rather than
    being deleted (``unirank eval --out ~`` must not empty the home folder). ``marker=None``
    checks only that ``path`` is no file (a folder the caller owns, e.g. a checkpoint).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); _ = (d / "notes.txt").write_text("mine")
        >>> check_replaceable(d, ("metrics.json", "config.json"), key="out")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: out: ... is a non-empty folder that unirank did not write (it has no metrics.json / config.json); ...
    """
    from .errors import ConfigError

    path = Path(path)
    where = f"{key}: {path}" if key else str(path)
    if not os.path.lexists(path):
        return
    if not path.is_dir():
        raise ConfigError(f"{where} is a file; expected an output folder")
    if marker is not None and any(path.iterdir()) and not _has_markers(path, marker):
        names = [marker] if isinstance(marker, str) else list(marker or ())
        what = f" (it has no {' / '.join(names)})" if names else ""
        raise ConfigError(
            f"{where} is a non-empty folder that unirank did not write{what}; refusing to replace it: "
            "choose a new folder or remove it"
        )


@contextlib.contextmanager
def atomic_dir(
    path: str | os.PathLike, marker: str | Sequence[str] | None = None, replace: bool = True
) -> Iterator[Path]:
    """Build a folder as a unit: yield a temporary sibling folder to write into; when the
    block ends without an error it takes ``path``'s place (:func:`replace_dir`: ``path``
    names the old or the new complete folder at every moment), on an error it is deleted
    and the old folder stays as it was. The folder twin of :func:`atomic_open`.

    Args:
        path: the final folder.
        marker: file name(s) every folder this writer produces holds; an existing non-empty
            folder without them is refused (:func:`check_replaceable`), never deleted.
            ``None``: any existing folder is replaced (one the caller owns).
        replace: ``False``: a ``path`` that exists when the block ends wins (the new folder is
            dropped) - for caches that concurrent processes may fill with the same content.

    Leftovers of writers of ``path`` that were killed are removed first (:func:`clean_leftovers`).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> with atomic_dir(d / "out") as tmp:
        ...     _ = (tmp / "a.txt").write_text("first")
        >>> try:
        ...     with atomic_dir(d / "out") as tmp:
        ...         _ = (tmp / "b.txt").write_text("half of a second run")
        ...         raise OSError("disk full")
        ... except OSError:
        ...     pass
        >>> sorted(p.name for p in (d / "out").iterdir()), sorted(p.name for p in d.iterdir())
        (['a.txt'], ['out'])
    """
    path = Path(path)
    check_replaceable(path, marker)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path.parent, path.name)
    tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix(path.name), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if not replace and os.path.lexists(path):
            shutil.rmtree(tmp, ignore_errors=True)
            return
        check_replaceable(path, marker)  # something else may have appeared there meanwhile
        replace_dir(tmp, path)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        os_error = os_error_from(e, path)  # e.g. safetensors: "No space left on device (os error 28)"
        if os_error is not None:
            raise os_error from e
        raise


def check_writable_dir(path: str | os.PathLike, key: str = "out", inside: bool = False) -> None:
    """Before any work: the output folder ``path`` can be created and written.

    Writes and removes a probe file where the output's first file will go - beside ``path``
    (where :func:`atomic_dir` builds its temporary folder), or in ``path`` itself with
    ``inside`` (a folder written in place: a training run, an embedding store) - or, when
    that folder does not exist yet, in its nearest existing ancestor. Nothing is created, so
    a bad ``--out`` (no permission, a read-only or full file system, a file in the way)
    fails in a second with a :class:`~unirank.errors.ConfigError` naming ``key``, not after
    hours of work.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> check_writable_dir(d / "a" / "b"); sorted(d.iterdir())
        []
        >>> _ = (d / "f").write_text("x")
        >>> check_writable_dir(d / "f" / "out")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: out: cannot create .../f/out: .../f is a file, not a folder
    """
    from .errors import ConfigError

    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise ConfigError(f"{key}: {path} is a file; expected an output folder")
    probe_in = path if inside else path.parent
    while not os.path.lexists(probe_in) and probe_in != probe_in.parent:
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise ConfigError(f"{key}: cannot create {path}: {probe_in} is a file, not a folder")
    try:
        clean_leftovers(probe_in, "write-probe")  # a probe of a process killed right then
        fd, probe = tempfile.mkstemp(prefix=tmp_prefix("write-probe"), suffix=".tmp", dir=probe_in)
        try:
            os.write(fd, b"unirank")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise ConfigError(f"{key}: cannot write to {probe_in}: {e.strerror or e}") from None
