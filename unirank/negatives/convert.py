"""Read mined ``train.jsonl`` files and convert them for other tools.

The unirank format (written by ``unirank mine``) has one JSON object per line::

    {"query_id": "q1", "query": "...",
     "positives": [{"id": "d1", "text": "...", "score": 12.3, "rank": 1, "teacher": 4.1}],
     "negatives": [{"id": "d7", "text": "...", "score": 9.8, "rank": 4, "teacher": -1.2}]}

(``teacher`` only when a teacher rescored; ``rank`` is null for a positive the miner did not
retrieve and for a random negative drawn from outside the candidate list.)

Converters (:data:`CONVERTERS`), one output row per input row unless said otherwise:

* ``flag`` - FlagEmbedding's fine-tuning format: ``{"query", "pos": [...], "neg": [...],
  "pos_scores": [...], "neg_scores": [...]}`` (its ``hn_mine.py`` / distillation input;
  scores are the teacher's when present, else the miner's);
* ``st-triplet`` - sentence-transformers triplets ``{"query", "positive", "negative"}``: one
  row per (positive, negative) pair, as ``mine_hard_negatives(output_format="triplet")``;
* ``st-ntuple`` - ``{"query", "positive", "negative_1", ..., "negative_n"}`` with ``n`` the
  largest negative count; one row per positive; rows with fewer negatives are skipped (as
  ``mine_hard_negatives(output_format="n-tuple")`` does).

Example:
    >>> row = {"query_id": "q", "query": "Q", "positives": [{"id": "p", "text": "P", "score": 2.0}],
    ...        "negatives": [{"id": "n", "text": "N", "score": 1.0, "rank": 3}]}
    >>> list(CONVERTERS.get("flag")([row]))
    [{'query': 'Q', 'pos': ['P'], 'neg': ['N'], 'pos_scores': [2.0], 'neg_scores': [1.0]}]
    >>> read_rows([row])[0].negatives[0]
    Candidate(id='n', text='N', score=1.0, rank=3)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..data.files import iter_json_objects
from ..errors import ConfigError, DataError
from ..io import atomic_open
from ..registry import Registry
from ..types import Candidate, TrainExample

__all__ = ["CONVERTERS", "SCORE_SOURCES", "convert_file", "iter_mined", "read_mined", "read_rows"]

#: format name -> function(rows) -> iterator of output rows
CONVERTERS: Registry[Callable[[Iterable[dict]], Iterator[dict]]] = Registry("mined-data format")

#: which score ``read_mined`` / the converters put in ``Candidate.score``
SCORE_SOURCES = ("auto", "teacher", "miner")


def _check_row(row: Any, path: str | None, line: int | None) -> dict:
    def bad(problem: str) -> DataError:
        return DataError(problem, path=path, line=line)

    if not isinstance(row, dict):
        raise bad(f"expected a JSON object, got {type(row).__name__}")
    for key, tp in (("query_id", str), ("query", str), ("positives", list), ("negatives", list)):
        if key not in row:
            raise bad(f"missing key {key!r} (a mined row has query_id, query, positives, negatives)")
        if not isinstance(row[key], tp):
            raise bad(f"{key!r} must be a {tp.__name__}")
    for key in ("positives", "negatives"):
        for n, c in enumerate(row[key]):
            if not isinstance(c, dict) or not isinstance(c.get("id"), str) or not isinstance(c.get("text"), str):
                raise bad(f"{key}[{n}] must be an object with string 'id' and 'text'")
            for field in ("score", "teacher"):
                v = c.get(field)
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                    raise bad(f"{key}[{n}].{field} must be a finite number or null, got {v!r}")
            if c.get("rank") is not None and (isinstance(c["rank"], bool) or not isinstance(c["rank"], int)):
                raise bad(f"{key}[{n}].rank must be an integer or null, got {c['rank']!r}")
    return row


def iter_mined(path: str | os.PathLike) -> Iterator[dict]:
    """Yield the rows of a mined ``train.jsonl``, checked; blank lines are skipped.

    Raises:
        DataError: missing file, malformed JSON or a row without the expected keys
            (names the file and line).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(
            "mined file does not exist" if not p.exists() else "expected a mined train.jsonl file, not a folder", path=p
        )
    for n, row in iter_json_objects(p):
        yield _check_row(row, str(p), n)


def _score(c: dict, scores: str) -> float | None:
    if scores not in SCORE_SOURCES:
        raise ConfigError(f"scores={scores!r}; valid: {', '.join(SCORE_SOURCES)}")
    if scores in ("auto", "teacher") and c.get("teacher") is not None:
        return float(c["teacher"])
    if scores == "teacher":
        return None
    return None if c.get("score") is None else float(c["score"])


def _candidate(c: dict, scores: str) -> Candidate:
    return Candidate(id=c["id"], text=c["text"], score=_score(c, scores), rank=c.get("rank"))


def read_rows(rows: Iterable[dict], scores: str = "auto") -> list[TrainExample]:
    """Turn mined rows into :class:`~unirank.types.TrainExample` records.

    Args:
        rows: dicts in the unirank mined format.
        scores: ``"auto"`` (teacher score where present, else miner score), ``"teacher"``
            (None where absent) or ``"miner"``.
    """
    out = []
    for row in rows:
        row = _check_row(row, None, None)
        out.append(
            TrainExample(
                query_id=row["query_id"],
                query=row["query"],
                positives=[_candidate(c, scores) for c in row["positives"]],
                negatives=[_candidate(c, scores) for c in row["negatives"]],
            )
        )
    return out


def read_mined(path: str | os.PathLike, scores: str = "auto") -> list[TrainExample]:
    """Read a mined ``train.jsonl`` as training examples (see :func:`read_rows` for ``scores``).

    Raises:
        DataError: see :func:`iter_mined`.
    """
    return read_rows(iter_mined(path), scores=scores)


@CONVERTERS.register("flag")
def to_flag(rows: Iterable[dict], scores: str = "auto") -> Iterator[dict]:
    """FlagEmbedding rows ``{query, pos, neg, pos_scores, neg_scores}``."""
    for row in rows:
        yield {
            "query": row["query"],
            "pos": [c["text"] for c in row["positives"]],
            "neg": [c["text"] for c in row["negatives"]],
            "pos_scores": [_score(c, scores) for c in row["positives"]],
            "neg_scores": [_score(c, scores) for c in row["negatives"]],
        }


@CONVERTERS.register("st-triplet")
def to_st_triplet(rows: Iterable[dict], scores: str = "auto") -> Iterator[dict]:
    """sentence-transformers triplets ``{query, positive, negative}``, one per pair.

    Example:
        >>> row = {"query": "Q", "positives": [{"text": "P1"}, {"text": "P2"}], "negatives": [{"text": "N"}]}
        >>> [r["positive"] for r in to_st_triplet([row])]
        ['P1', 'P2']
    """
    for row in rows:
        for p in row["positives"]:
            for n in row["negatives"]:
                yield {"query": row["query"], "positive": p["text"], "negative": n["text"]}


@CONVERTERS.register("st-ntuple")
def to_st_ntuple(rows: Iterable[dict], scores: str = "auto") -> Iterator[dict]:
    """sentence-transformers n-tuples ``{query, positive, negative_1..negative_n}``.

    ``n`` is the largest negative count of any row (rows are read twice, so pass a list).

    Example:
        >>> rows = [{"query": "Q", "positives": [{"text": "P"}], "negatives": [{"text": "A"}, {"text": "B"}]},
        ...         {"query": "R", "positives": [{"text": "S"}], "negatives": [{"text": "C"}]}]
        >>> list(to_st_ntuple(rows))
        [{'query': 'Q', 'positive': 'P', 'negative_1': 'A', 'negative_2': 'B'}]
    """
    rows = list(rows)
    n = max((len(r["negatives"]) for r in rows), default=0)
    for row in rows:
        if len(row["negatives"]) < n or n == 0:
            continue
        for p in row["positives"]:
            out = {"query": row["query"], "positive": p["text"]}
            out.update({f"negative_{i}": c["text"] for i, c in enumerate(row["negatives"], start=1)})
            yield out


def convert_file(src: str | os.PathLike, dst: str | os.PathLike, fmt: str, scores: str = "auto") -> int:
    """Convert a mined ``train.jsonl`` to format ``fmt`` (a :data:`CONVERTERS` name); returns rows written.

    Raises:
        ConfigError: unknown format (lists the valid ones).
        DataError: bad input (file and line).
    """
    try:
        conv = CONVERTERS.get(fmt)
    except KeyError as e:
        raise ConfigError(e.args[0]) from None
    if scores not in SCORE_SOURCES:
        raise ConfigError(f"scores={scores!r}; valid: {', '.join(SCORE_SOURCES)}")
    n = 0
    with atomic_open(dst, "w") as f:
        for row in conv(iter_mined(src), scores=scores):
            f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
            n += 1
    return n
