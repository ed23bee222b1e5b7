"""Read BEIR-format retrieval data sets: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.

The layout (https://github.com/beir-cellar/beir) is::

    folder/
      corpus.jsonl     {"_id": "d1", "title": "...", "text": "..."}   (title optional)
      queries.jsonl    {"_id": "q1", "text": "..."}
      qrels/test.tsv   query-id <TAB> corpus-id <TAB> score            (header line optional)

Every problem is reported as a :class:`~unirank.errors.DataError` naming the file, the
1-based line and what was expected. CRLF line ends, a UTF-8 byte-order mark and blank
lines are tolerated.

Example:
    >>> import json, os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> with open(os.path.join(d, "corpus.jsonl"), "w") as f:
    ...     _ = f.write(json.dumps({"_id": "d1", "title": "T", "text": "Body"}) + "\\n")
    >>> with open(os.path.join(d, "queries.jsonl"), "w") as f:
    ...     _ = f.write(json.dumps({"_id": "q1", "text": "a question"}) + "\\n")
    >>> os.mkdir(os.path.join(d, "qrels"))
    >>> with open(os.path.join(d, "qrels", "test.tsv"), "w") as f:
    ...     _ = f.write("query-id\\tcorpus-id\\tscore\\nq1\\td1\\t1\\n")
    >>> ds = load_beir(d)
    >>> ds.qrels, ds.corpus["d1"].full_text, len(ds.fingerprint)
    ({'q1': {'d1': 1}}, 'T Body', 16)
    >>> available_splits(d)
    ['test']
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Container, Iterator

from ..errors import DataError
from ..io import file_sha256
from ..types import Document, Qrels, Query, RetrievalDataset
from .files import iter_json_objects, iter_text_lines

__all__ = [
    "iter_text_lines",
    "load_corpus",
    "load_queries",
    "load_qrels",
    "available_splits",
    "beir_fingerprint",
    "load_beir",
]

_QRELS_HEADER_FIRST = {"query-id", "query_id", "queryid", "qid", "query"}


def _read_jsonl_records(
    path: Path, required: tuple[str, ...], optional: tuple[str, ...]
) -> Iterator[tuple[int, str, dict[str, str]]]:
    """Yield ``(lineno, id, fields)`` from a BEIR jsonl file, checking ids, types and duplicates."""
    seen: dict[str, int] = {}
    for lineno, obj in iter_json_objects(path):
        if "_id" not in obj:
            raise DataError("missing field '_id'", path=path, line=lineno)
        raw_id = obj["_id"]
        # integer ids are common in hand-made files and map unambiguously to the qrels' text ids
        if isinstance(raw_id, int) and not isinstance(raw_id, bool):
            raw_id = str(raw_id)
        if not isinstance(raw_id, str) or not raw_id:
            raise DataError(f"field '_id' must be a non-empty string, got {obj['_id']!r}", path=path, line=lineno)
        if raw_id in seen:
            raise DataError(f"duplicate id {raw_id!r} (first on line {seen[raw_id]})", path=path, line=lineno)
        seen[raw_id] = lineno
        fields: dict[str, str] = {}
        for key in required:
            if key not in obj:
                raise DataError(f"missing field {key!r} (id {raw_id!r})", path=path, line=lineno)
            if not isinstance(obj[key], str):
                raise DataError(
                    f"field {key!r} must be a string, got {type(obj[key]).__name__} (id {raw_id!r})",
                    path=path,
                    line=lineno,
                )
            fields[key] = obj[key]
        for key in optional:
            value = obj.get(key)
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise DataError(
                    f"field {key!r} must be a string, got {type(value).__name__} (id {raw_id!r})",
                    path=path,
                    line=lineno,
                )
            fields[key] = value
        yield lineno, raw_id, fields


def load_corpus(path: str | os.PathLike) -> dict[str, Document]:
    """Read a BEIR ``corpus.jsonl``.

    Args:
        path: the jsonl file; each line ``{"_id": str, "text": str, "title": str (optional)}``.

    Returns:
        doc id -> :class:`Document`, in file order.

    Raises:
        DataError: malformed JSON, a missing or mistyped field, or a duplicate id (file + line).

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "corpus.jsonl")
        >>> _ = open(p, "w").write('{"_id": "d1", "text": "x"}\\n')
        >>> load_corpus(p)
        {'d1': Document(id='d1', text='x', title='')}
    """
    path = Path(path)
    return {
        i: Document(id=i, text=f["text"], title=f["title"])
        for _, i, f in _read_jsonl_records(path, ("text",), ("title",))
    }


def load_queries(path: str | os.PathLike) -> dict[str, Query]:
    """Read a BEIR ``queries.jsonl``.

    Args:
        path: the jsonl file; each line ``{"_id": str, "text": str}`` (other keys are ignored).

    Returns:
        query id -> :class:`Query`, in file order.

    Raises:
        DataError: malformed JSON, a missing or mistyped field, or a duplicate id (file + line).

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "queries.jsonl")
        >>> _ = open(p, "w").write('{"_id": 7, "text": "why?"}\\n')
        >>> load_queries(p)
        {'7': Query(id='7', text='why?')}
    """
    path = Path(path)
    return {i: Query(id=i, text=f["text"]) for _, i, f in _read_jsonl_records(path, ("text",), ())}


def _is_qrels_header(cols: list[str]) -> bool:
    if len(cols) != 3:
        return False
    try:
        int(cols[2])
        return False
    except ValueError:
        return cols[0].strip().lower() in _QRELS_HEADER_FIRST or cols[2].strip().lower() == "score"


def load_qrels(
    path: str | os.PathLike,
    doc_ids: Container[str] | None = None,
    query_ids: Container[str] | None = None,
) -> Qrels:
    """Read a BEIR qrels file ``query-id <TAB> corpus-id <TAB> score``.

    A header line (``query-id corpus-id score``) is optional. Lines without a tab are split
    on whitespace. Repeating a pair with the same score is tolerated; with a different
    score it is an error.

    Args:
        path: the tsv file.
        doc_ids: if given, every corpus-id must be in it.
        query_ids: if given, every query-id must be in it.

    Returns:
        query id -> doc id -> integer grade, in file order.

    Raises:
        DataError: wrong column count, non-integer score, unknown id, conflicting duplicate,
            or no judgement lines at all ("empty split") - naming file and line.

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "test.tsv")
        >>> _ = open(p, "wb").write(b"q1\\td1\\t2\\r\\nq1\\td2\\t0\\r\\n")
        >>> load_qrels(p)
        {'q1': {'d1': 2, 'd2': 0}}
    """
    path = Path(path)
    qrels: Qrels = {}
    first = True
    for lineno, line in iter_text_lines(path):
        if not line.strip():
            continue
        cols = line.split("\t") if "\t" in line else line.split()
        if first:
            first = False
            if _is_qrels_header(cols):
                continue
        if len(cols) != 3:
            raise DataError(
                f"expected 3 tab-separated columns (query-id, corpus-id, score), got {len(cols)}",
                path=path,
                line=lineno,
            )
        qid, did, score_s = (c.strip() for c in cols)
        if not qid or not did:
            raise DataError("empty query-id or corpus-id", path=path, line=lineno)
        try:
            score = int(score_s)
        except ValueError:
            raise DataError(f"score must be an integer, got {score_s!r}", path=path, line=lineno) from None
        if query_ids is not None and qid not in query_ids:
            raise DataError(f"unknown query id {qid!r} (not in queries.jsonl)", path=path, line=lineno)
        if doc_ids is not None and did not in doc_ids:
            raise DataError(f"unknown corpus id {did!r} (not in corpus.jsonl)", path=path, line=lineno)
        per_query = qrels.setdefault(qid, {})
        if did in per_query and per_query[did] != score:
            raise DataError(
                f"pair ({qid!r}, {did!r}) judged twice with different scores ({per_query[did]} and {score})",
                path=path,
                line=lineno,
            )
        per_query[did] = score
    if not qrels:
        raise DataError("empty split: no qrels lines", path=path)
    return qrels


def available_splits(folder: str | os.PathLike) -> list[str]:
    """Names of the ``qrels/<split>.tsv`` files in a BEIR folder, sorted (``[]`` if none).

    Example:
        >>> import tempfile
        >>> available_splits(tempfile.mkdtemp())
        []
    """
    qdir = Path(folder) / "qrels"
    if not qdir.is_dir():
        return []
    return sorted(p.stem for p in qdir.glob("*.tsv") if p.is_file())


def beir_fingerprint(folder: str | os.PathLike, split: str) -> str:
    """Short sha256 (16 hex) over the bytes of ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

    Each file is hashed with :func:`unirank.io.file_sha256`; the three digests are hashed
    together with their names, so renaming a split changes the fingerprint.
    """
    folder = Path(folder)
    parts = [f"{name}:{file_sha256(folder / name)}" for name in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv")]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def load_beir(folder: str | os.PathLike, split: str = "test", name: str | None = None) -> RetrievalDataset:
    """Load one split of a BEIR folder, checking that every judgement points at a known id.

    Args:
        folder: the data set folder (holding corpus.jsonl, queries.jsonl, qrels/).
        split: which ``qrels/<split>.tsv`` to read.
        name: the data set name (default: the folder's name).

    Returns:
        A :class:`RetrievalDataset` with the whole corpus, all queries, the split's qrels
        and a 16-hex ``fingerprint`` of the three files' bytes.

    Raises:
        DataError: a missing folder, file or split (listing the available splits), or any
            problem inside the files (file + line).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(
            "BEIR folder not found" if not folder.exists() else "expected a BEIR folder, found a file", path=folder
        )
    for fname in ("corpus.jsonl", "queries.jsonl"):
        if not (folder / fname).is_file():
            if (folder / fname).is_dir():
                raise DataError(f"{fname} in BEIR folder is a folder; expected a file", path=folder)
            raise DataError(f"missing {fname} in BEIR folder", path=folder)
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        splits = available_splits(folder)
        listed = ", ".join(splits) if splits else "none (no qrels/*.tsv files)"
        raise DataError(f"no qrels for split {split!r}; available splits: {listed}", path=qrels_path)
    corpus = load_corpus(folder / "corpus.jsonl")
    queries = load_queries(folder / "queries.jsonl")
    qrels = load_qrels(qrels_path, doc_ids=corpus, query_ids=queries)
    return RetrievalDataset(
        name=name or folder.resolve().name,
        corpus=corpus,
        queries=queries,
        qrels=qrels,
        split=split,
        fingerprint=beir_fingerprint(folder, split),
    )
