"""Errors meant for people: they name the file, the line and what was expected."""

from __future__ import annotations

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


class MissingDependency(UnirankError, ImportError):
    """An optional dependency is not installed; the message says what needs it and what to install.

    It is an ImportError too, so ``except ImportError`` around optional parts keeps working.
    """
