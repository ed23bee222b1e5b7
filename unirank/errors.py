"""Errors meant for people: they name the file, the line and what was expected."""

from __future__ import annotations

import errno
from pathlib import Path


class UnirankError(Exception):
    """Base class; the CLI prints these without a traceback and exits non-zero."""


class DataError(UnirankError, ValueError):
    """Bad input data.

    Example:
        >>> str(DataError("duplicate id 'd1'", path="corpus.jsonl", line=3))
        "corpus.jsonl:3: duplicate id 'd1'"
        >>> str(DataError("empty split", path="qrels/test.tsv"))
        'qrels/test.tsv: empty split'
    """

    def __init__(self, problem: str, path: str | Path | None = None, line: int | None = None) -> None:
        self.problem, self.path, self.line = problem, None if path is None else str(path), line
        where = "" if path is None else f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{problem}")


class ConfigError(UnirankError, ValueError):
    """A configuration value that cannot be used (names the key and the valid choices).

    ``key``, when given, is the dotted config key at fault (lets a config loader point at
    the line of the YAML file that set it).
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        self.key = key
        super().__init__(message)


class UnknownName(ConfigError, KeyError):
    """A name no registry knows (lists the valid ones). A ``KeyError`` too, for callers that
    look names up; the CLI reports it like every :class:`ConfigError` - while a bare
    ``KeyError`` from a bug still shows its traceback.

    Example:
        >>> str(UnknownName("unknown colour 'blue'; valid: red"))
        "unknown colour 'blue'; valid: red"
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


#: errno values that describe the user's files, folders, disk or addresses - not a bug in
#: unirank: reported in one line naming the file, exit status 2
USER_ERRNOS = frozenset(
    {
        errno.ENOENT,
        errno.EACCES,
        errno.EPERM,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.ENAMETOOLONG,
        errno.EEXIST,
        errno.ELOOP,
        errno.EFBIG,
        errno.ENOTEMPTY,
        errno.EMFILE,
        errno.ENFILE,
        errno.EIO,
        errno.EADDRINUSE,
        errno.EADDRNOTAVAIL,
    }
)
_HINTS = {
    errno.ENOSPC: "free some space or write elsewhere",
    errno.EDQUOT: "free some space or write elsewhere",
    errno.EACCES: "check its permissions",
    errno.EPERM: "check its permissions",
    errno.EROFS: "write elsewhere",
}


def user_error(e: BaseException) -> str | None:
    """The one-line message of an error a user can fix (bad input, config, files, disk), or
    ``None`` for anything else - a bug, which keeps its traceback.

    Example:
        >>> user_error(PermissionError(13, "Permission denied", "/data/corpus.jsonl"))
        '/data/corpus.jsonl: Permission denied (check its permissions)'
        >>> user_error(OSError(28, "No space left on device", "runs/x/.run.trec.tmp"))
        'runs/x/.run.trec.tmp: No space left on device (free some space or write elsewhere)'
        >>> user_error(KeyError("a key a bug looked up")) is None
        True
    """
    if isinstance(e, UnirankError):
        msg = str(e)
    elif isinstance(e, OSError) and (e.errno in USER_ERRNOS or (isinstance(e, FileNotFoundError) and e.errno is None)):
        if e.errno is None:  # raised by unirank with a message of its own
            msg = str(e)
        else:
            where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
            msg = f"{where}: {e.strerror}" if where else str(e.strerror)
            if e.errno in _HINTS:
                msg += f" ({_HINTS[e.errno]})"
    else:
        return None
    return " ".join(msg.split())  # one line


class MissingDependency(UnirankError, ImportError):
    """An optional dependency is not installed; the message says what needs it and what to install.

    It is an ImportError too, so ``except ImportError`` around optional parts keeps working.
    """
