"""TREC run and qrels files, the formats trec_eval reads.

* run:   ``qid Q0 docid rank score tag`` (whitespace separated)
* qrels: ``qid iter docid grade``

:func:`write_run` orders each query's documents the way trec_eval does when it reads
them back (score descending, ties by doc id descending) and numbers ranks from 1, so the
rank column agrees with trec_eval's own ordering. Scores are written with ``repr`` so they
round-trip exactly. Both writers are atomic (temp file + rename).

Example:
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "run.trec")
    >>> write_run({"q1": {"a": 0.5, "b": 0.5, "c": 0.9}}, p, tag="demo")
    >>> print(open(p).read(), end="")
    q1 Q0 c 1 0.9 demo
    q1 Q0 b 2 0.5 demo
    q1 Q0 a 3 0.5 demo
    >>> read_run(p)
    {'q1': {'c': 0.9, 'b': 0.5, 'a': 0.5}}
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from ..errors import DataError
from ..io import atomic_open
from ..types import Qrels, Run
from .files import iter_text_lines

__all__ = ["rank_order", "read_run", "write_run", "read_qrels", "write_qrels"]


def rank_order(scores: dict[str, float]) -> list[tuple[str, float]]:
    """Sort ``doc id -> score`` the way trec_eval does: score descending, then doc id descending.

    Args:
        scores: doc id -> score for one query.

    Returns:
        ``(doc_id, score)`` pairs, best first.

    Example:
        >>> rank_order({"d1": 1.0, "d3": 2.0, "d2": 1.0})
        [('d3', 2.0), ('d2', 1.0), ('d1', 1.0)]
    """
    # trec_eval compares docnos with strcmp (bytes); for UTF-8 that equals code-point order
    return sorted(scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)


def _check_token(value: str, what: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise DataError(f"{what} {value!r} cannot be written to a TREC file (empty or contains whitespace)")


def read_run(path: str | os.PathLike) -> Run:
    """Read a TREC run file ``qid Q0 docid rank score tag``.

    The rank column is ignored, as trec_eval does: order comes from the score.

    Args:
        path: the run file.

    Returns:
        query id -> doc id -> score (float), in file order.

    Raises:
        DataError: wrong column count, a non-numeric score, or a doc listed twice for a
            query (file + line).
    """
    path = Path(path)
    run: Run = {}
    for lineno, line in iter_text_lines(path):
        cols = line.split()
        if not cols:
            continue
        if len(cols) != 6:
            raise DataError(
                f"expected 6 columns (qid Q0 docid rank score tag), got {len(cols)}", path=path, line=lineno
            )
        qid, _, did, _, score_s, _ = cols
        try:
            score = float(score_s)
        except ValueError:
            raise DataError(f"score must be a number, got {score_s!r}", path=path, line=lineno) from None
        if math.isnan(score):
            raise DataError("score is NaN", path=path, line=lineno)
        per_query = run.setdefault(qid, {})
        if did in per_query:
            raise DataError(f"doc {did!r} listed twice for query {qid!r}", path=path, line=lineno)
        per_query[did] = score
    return run


def write_run(run: Run, path: str | os.PathLike, tag: str = "unirank", k: int | None = None) -> None:
    """Write a run as ``qid Q0 docid rank score tag`` lines, atomically.

    Queries are written in sorted id order; within a query documents follow
    :func:`rank_order` and ranks start at 1.

    Args:
        run: query id -> doc id -> score.
        path: output file (parent folders are created).
        tag: the run tag (last column); no whitespace.
        k: keep only the top ``k`` documents per query (``None``: all).

    Raises:
        DataError: an id or the tag is empty or contains whitespace, or a score is NaN.
        ValueError: ``k`` < 1.
    """
    if k is not None and k < 1:
        raise ValueError(f"k must be >= 1 or None, got {k}")
    _check_token(tag, "run tag")
    with atomic_open(path, "w") as f:
        for qid in sorted(run):
            _check_token(qid, "query id")
            ranked = rank_order({d: float(s) for d, s in run[qid].items()})
            for rank, (did, score) in enumerate(ranked[:k] if k is not None else ranked, 1):
                _check_token(did, "doc id")
                if math.isnan(score):
                    raise DataError(f"score of ({qid!r}, {did!r}) is NaN")
                f.write(f"{qid} Q0 {did} {rank} {score!r} {tag}\n")


def read_qrels(path: str | os.PathLike) -> Qrels:
    """Read TREC qrels ``qid iter docid grade`` (the ``iter`` column is ignored).

    Args:
        path: the qrels file.

    Returns:
        query id -> doc id -> integer grade, in file order.

    Raises:
        DataError: wrong column count, a non-integer grade, or a pair judged twice with
            different grades (file + line).

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "qrels.txt")
        >>> write_qrels({"q2": {"d1": 1}, "q1": {"d9": 0, "d2": 2}}, p)
        >>> print(open(p).read(), end="")
        q1 0 d2 2
        q1 0 d9 0
        q2 0 d1 1
        >>> read_qrels(p)
        {'q1': {'d2': 2, 'd9': 0}, 'q2': {'d1': 1}}
    """
    path = Path(path)
    qrels: Qrels = {}
    for lineno, line in iter_text_lines(path):
        cols = line.split()
        if not cols:
            continue
        if len(cols) != 4:
            raise DataError(f"expected 4 columns (qid iter docid grade), got {len(cols)}", path=path, line=lineno)
        qid, _, did, grade_s = cols
        try:
            grade = int(grade_s)
        except ValueError:
            raise DataError(f"grade must be an integer, got {grade_s!r}", path=path, line=lineno) from None
        per_query = qrels.setdefault(qid, {})
        if did in per_query and per_query[did] != grade:
            raise DataError(f"pair ({qid!r}, {did!r}) judged twice with different grades", path=path, line=lineno)
        per_query[did] = grade
    return qrels


def write_qrels(qrels: Qrels, path: str | os.PathLike) -> None:
    """Write qrels as ``qid 0 docid grade`` lines (sorted by query id, then doc id), atomically.

    Args:
        qrels: query id -> doc id -> integer grade.
        path: output file.

    Raises:
        DataError: an id is empty or contains whitespace, or a grade is not an integer.
    """
    with atomic_open(path, "w") as f:
        for qid in sorted(qrels):
            _check_token(qid, "query id")
            for did in sorted(qrels[qid]):
                _check_token(did, "doc id")
                grade = qrels[qid][did]
                if isinstance(grade, bool) or int(grade) != grade:
                    raise DataError(f"grade of ({qid!r}, {did!r}) must be an integer, got {grade!r}")
                f.write(f"{qid} 0 {did} {int(grade)}\n")
