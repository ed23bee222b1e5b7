"""Reading text and JSON files with errors a person can act on (``file:line: problem``).

Every reader of the package goes through these: UTF-8 with an optional byte-order mark,
``\\n`` or ``\\r\\n`` line ends, and a :class:`~unirank.errors.DataError` naming the file and
the line for a missing file, a folder, bad UTF-8, malformed JSON or a JSON value that is not
an object.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator

from ..errors import DataError

__all__ = ["iter_text_lines", "iter_json_objects", "parse_json_object", "read_json_object"]


def parse_json_object(text: str, path: str | os.PathLike, line: int | None = None) -> dict[str, Any]:
    """Parse ``text``, which must hold one JSON object.

    Args:
        text: the JSON text (a whole file, or one line of a JSONL file).
        path: the file it came from (for the message).
        line: the line ``text`` is on (one JSONL line); ``None``: ``text`` is a whole file and
            the JSON error's own line is reported.

    Raises:
        DataError: ``path:line: malformed JSON: ... (column c)`` or ``expected a JSON object, got list``.

    Example:
        >>> parse_json_object('{"a": 1}', "x.json")
        {'a': 1}
        >>> parse_json_object('{\\n"a": }', "x.json")
        Traceback (most recent call last):
        ...
        unirank.errors.DataError: x.json:2: malformed JSON: Expecting value (column 6)
        >>> parse_json_object("[1]", "x.jsonl", line=7)
        Traceback (most recent call last):
        ...
        unirank.errors.DataError: x.jsonl:7: expected a JSON object, got list
    """
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(
            f"malformed JSON: {e.msg} (column {e.colno})", path=path, line=e.lineno if line is None else line
        ) from None
    if not isinstance(obj, dict):
        raise DataError(
            f"expected a JSON object, got {type(obj).__name__}", path=path, line=1 if line is None else line
        )
    return obj


def read_json_object(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON object a whole file holds (UTF-8, optional byte-order mark).

    Raises:
        DataError: missing file, a folder, bad UTF-8, malformed JSON, not an object.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except IsADirectoryError:
        raise DataError("expected a file, found a folder", path=path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"not valid UTF-8 ({e.reason} at byte {e.start})", path=path) from None
    return parse_json_object(text, path)


def iter_text_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each line of a UTF-8 file, line ends removed.

    Line numbers start at 1; ``\\n`` and ``\\r\\n`` ends are stripped; a leading UTF-8
    byte-order mark is dropped. Blank lines are yielded too (callers decide).

    Args:
        path: the file to read.

    Returns:
        An iterator of ``(lineno, line)`` pairs.

    Raises:
        DataError: the file is missing, or a line is not valid UTF-8 (names the line).

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "x.txt")
        >>> _ = open(p, "wb").write(b"a\\r\\n\\nb")
        >>> list(iter_text_lines(p))
        [(1, 'a'), (2, ''), (3, 'b')]
    """
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except IsADirectoryError:
        raise DataError("expected a file, found a folder", path=path) from None
    with f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"not valid UTF-8 ({e.reason} at byte {e.start})", path=path, line=lineno) from None
            yield lineno, text.rstrip("\r\n")


def iter_json_objects(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(lineno, object)`` for each non-blank line of a JSONL file; DataError on a bad line."""
    for lineno, line in iter_text_lines(path):
        if not line.strip():
            continue
        yield lineno, parse_json_object(line, path, line=lineno)
