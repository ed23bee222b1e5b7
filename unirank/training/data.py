"""Training examples and the rows a batch is made of.

Three sources give :class:`~unirank.types.TrainExample` lists (each task's
:meth:`~unirank.tasks.base.Task.load_examples` picks one):

* a retrieval split (BEIR folder or built-in name): one example per judged query with its
  relevant documents (grade > 0, present in the corpus) as positives and no negatives, so
  the batch's other documents are the only negatives ("in-batch negatives");
* a mined ``train.jsonl`` (``unirank mine``, read by
  :func:`unirank.negatives.convert.read_mined`): positives and hard negatives with miner or
  teacher scores (used as teacher scores by the distillation losses);
* response-selection data (``data.task: response``; MuTual, DailyDialog-R10, TSV, JSONL):
  one example per context, the context as a tuple of turns (oldest first, so rankers keep
  the most recent turns when they truncate), its correct replies as positives and the other
  candidates as negatives (:func:`examples_from_dialogues`).

A training **row** is one (query, positive) pair plus the negatives it brings to a batch
(sentence-transformers' convention: a query with three relevant documents gives three
rows). Which mined negatives a row uses is drawn per epoch from a generator seeded by
``(seed, epoch, query id, positive index)`` alone, so it does not depend on the order or the
number of the other rows (and a resumed run draws the same ones).

Example:
    >>> from unirank.types import Candidate, TrainExample
    >>> ex = TrainExample("q1", "what is x", [Candidate("d1", "x is y")],
    ...                   [Candidate("n1", "a"), Candidate("n2", "b"), Candidate("n3", "c")])
    >>> [r.negatives for r in epoch_rows([ex], epoch=0, seed=0, negatives=2, choice="first")]
    [(Candidate(id='n1', text='a', score=None, rank=None), Candidate(id='n2', text='b', score=None, rank=None))]
    >>> a = epoch_rows([ex], epoch=0, seed=0, negatives=1)[0].negatives
    >>> a == epoch_rows([ex], epoch=0, seed=0, negatives=1)[0].negatives  # seeded
    True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..types import Candidate, DialogueExample, RetrievalDataset, TrainExample

__all__ = ["Row", "examples_from_dataset", "examples_from_dialogues", "epoch_rows", "replace_negatives"]


@dataclass(frozen=True)
class Row:
    """One (query, positive) training row.

    Attributes:
        query_id, query: the query.
        positive: the relevant document this row trains towards.
        negatives: its hard negatives for this epoch (may be empty).
        positive_ids: every relevant document id of the query (the in-batch pool masks the
            ones that are not this row's positive instead of treating them as negatives).
    """

    query_id: str
    query: str | tuple[str, ...]
    positive: Candidate
    negatives: tuple[Candidate, ...]
    positive_ids: frozenset[str]

    @property
    def texts(self) -> list[str]:
        """Every text the row puts in a batch: query, positive, negatives."""
        return [self.query, self.positive.text, *(n.text for n in self.negatives)]


def examples_from_dataset(
    ds: RetrievalDataset, limit_queries: int | None = None
) -> tuple[list[TrainExample], dict[str, int]]:
    """One example per judged query of ``ds`` (qrels order) with its relevant documents.

    Args:
        ds: a loaded split.
        limit_queries: keep the first N usable queries.

    Returns:
        ``(examples, counts)``; counts has ``queries``, ``positives``, ``queries_without_positive``
        (all judgements <= 0 or documents missing from the corpus) and ``missing_documents``.

    Example:
        >>> from unirank.types import Document, Query
        >>> ds = RetrievalDataset("t", {"d1": Document("d1", "body", "T")}, {"q": Query("q", "Q")},
        ...                       {"q": {"d1": 1, "d9": 1}})
        >>> ex, counts = examples_from_dataset(ds)
        >>> ex[0].positives[0].text, counts["missing_documents"]
        ('T body', 1)
    """
    examples: list[TrainExample] = []
    counts = {"queries": 0, "positives": 0, "queries_without_positive": 0, "missing_documents": 0}
    for qid, rel in ds.qrels.items():
        if limit_queries is not None and len(examples) >= limit_queries:
            break
        positives = []
        for did, grade in rel.items():
            if grade <= 0:
                continue
            doc = ds.corpus.get(did)
            if doc is None:
                counts["missing_documents"] += 1
                continue
            positives.append(Candidate(id=did, text=doc.full_text))
        if not positives or qid not in ds.queries:
            counts["queries_without_positive"] += 1
            continue
        examples.append(TrainExample(query_id=qid, query=ds.queries[qid].text, positives=positives))
        counts["positives"] += len(positives)
    counts["queries"] = len(examples)
    return examples, counts


def examples_from_dialogues(dialogues: Sequence[DialogueExample]) -> tuple[list[TrainExample], dict[str, int]]:
    """One example per response-selection context: the context as a tuple of turns, the
    candidates labelled > 0 as positives, the others as negatives (in the data's order).

    Candidate ids are ``"{example id}#{candidate index}"``. Contexts without a correct
    candidate (some Douban ones) cannot be trained on and are counted, not kept.

    Example:
        >>> ex, counts = examples_from_dialogues([DialogueExample("d1", ["hi", "how are you?"], ["fine", "no"], [1, 0]),
        ...                                       DialogueExample("d2", ["x"], ["a", "b"], [0, 0])])
        >>> ex[0].query, [c.id for c in ex[0].positives], [c.text for c in ex[0].negatives]
        (('hi', 'how are you?'), ['d1#0'], ['no'])
        >>> counts
        {'queries': 1, 'positives': 1, 'negatives': 1, 'contexts_without_positive': 1}
    """
    examples: list[TrainExample] = []
    counts = {"queries": 0, "positives": 0, "negatives": 0, "contexts_without_positive": 0}
    for d in dialogues:
        pos = [Candidate(f"{d.id}#{i}", c) for i, (c, y) in enumerate(zip(d.candidates, d.labels)) if y > 0]
        neg = [Candidate(f"{d.id}#{i}", c) for i, (c, y) in enumerate(zip(d.candidates, d.labels)) if y <= 0]
        if not pos:
            counts["contexts_without_positive"] += 1
            continue
        examples.append(TrainExample(query_id=d.id, query=tuple(d.context), positives=pos, negatives=neg))
        counts["positives"] += len(pos)
        counts["negatives"] += len(neg)
    counts["queries"] = len(examples)
    return examples, counts


def _row_rng(seed: int, epoch: int, query_id: str, positive_index: int) -> np.random.Generator:
    h = int.from_bytes(hashlib.sha256(query_id.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([seed, epoch, h, positive_index])


def epoch_rows(
    examples: Sequence[TrainExample], epoch: int, seed: int, negatives: int = 1, choice: str = "random"
) -> list[Row]:
    """The rows of one epoch: one per (example, positive), in example then positive order.

    Args:
        examples: the training examples.
        epoch: 0-based epoch (changes the ``random`` draw).
        seed: base seed.
        negatives: negatives per row (fewer if the example has fewer).
        choice: ``random`` (seeded draw without replacement, kept in the mined order) or
            ``first`` (the first ``negatives`` of the mined list).

    Returns:
        The rows; their number and order do not depend on ``epoch``.
    """
    rows = []
    for ex in examples:
        pos_ids = frozenset(p.id for p in ex.positives)
        for i, pos in enumerate(ex.positives):
            k = min(negatives, len(ex.negatives))
            if choice == "first" or k == len(ex.negatives):
                picked = tuple(ex.negatives[:k])
            else:
                idx = np.sort(_row_rng(seed, epoch, ex.query_id, i).choice(len(ex.negatives), size=k, replace=False))
                picked = tuple(ex.negatives[j] for j in idx.tolist())
            rows.append(Row(ex.query_id, ex.query, pos, picked, pos_ids))
    return rows


def replace_negatives(
    examples: Sequence[TrainExample], mined: Sequence[TrainExample]
) -> tuple[list[TrainExample], int]:
    """Examples with the negatives of ``mined`` (matched by query id), positives unchanged.

    Used by the ANCE refresh so that the rows (and the epoch's batches) keep their layout.
    Queries missing from ``mined`` keep their old negatives.

    Returns:
        ``(examples, replaced)``.

    Example:
        >>> old = [TrainExample("q", "Q", [Candidate("p", "P")], [Candidate("n1", "A")])]
        >>> new = [TrainExample("q", "Q", [Candidate("p", "P")], [Candidate("n2", "B")])]
        >>> out, n = replace_negatives(old, new)
        >>> out[0].negatives[0].id, n
        ('n2', 1)
    """
    by_id = {e.query_id: e for e in mined}
    out, replaced = [], 0
    for ex in examples:
        new = by_id.get(ex.query_id)
        if new is None:
            out.append(ex)
            continue
        out.append(TrainExample(ex.query_id, ex.query, list(ex.positives), list(new.negatives)))
        replaced += 1
    return out, replaced
