"""What every first-stage index returns, and turning hits into a :data:`~unirank.types.Run`.

Hits are two (Q, k) arrays: ``scores`` (float32, best first) and ``indices`` (int64 row
numbers into the index's doc id list; -1 where fewer than k documents matched).
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from ..registry import Registry
from ..types import Run


class Index(Protocol):
    doc_ids: list[str]

    def search(self, queries: Sequence, k: int) -> tuple[np.ndarray, np.ndarray]: ...


#: retriever name -> factory(**settings) building an object with ``build(doc_ids, texts)`` and
#: ``search(query_texts, k) -> (scores, indices)``
RETRIEVERS: Registry = Registry("retriever")


def hits_to_run(query_ids: Sequence[str], doc_ids: Sequence[str], scores: np.ndarray, indices: np.ndarray) -> Run:
    """Build a Run from (Q, k) hit arrays, skipping -1 slots.

    Example:
        >>> hits_to_run(["q1"], ["a", "b", "c"], np.array([[0.9, 0.5]]), np.array([[2, -1]]))
        {'q1': {'c': 0.9}}
    """
    run: Run = {}
    for qi, qid in enumerate(query_ids):
        row = {}
        for s, j in zip(scores[qi].tolist(), indices[qi].tolist()):
            if j >= 0:
                row[doc_ids[j]] = float(s)
        run[qid] = row
    return run


def topk_merge(
    best_s: np.ndarray, best_i: np.ndarray, new_s: np.ndarray, new_i: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Merge two (Q, *) candidate sets into the top k per row (ties: lower index first).

    Used to search a corpus chunk by chunk without a queries x corpus matrix.

    Example:
        >>> s, i = topk_merge(np.array([[3., 1.]]), np.array([[0, 1]]), np.array([[2.]]), np.array([[7]]), 2)
        >>> s.tolist(), i.tolist()
        ([[3.0, 2.0]], [[0, 7]])
    """
    s = np.concatenate([best_s, new_s], axis=1)
    i = np.concatenate([best_i, new_i], axis=1)
    s_sort = np.where(i < 0, -np.inf, s)
    # sort by (-score, index): lexsort's last key is the primary one
    order = np.lexsort((np.where(i < 0, np.iinfo(np.int64).max, i), -s_sort), axis=1)[:, :k]
    return np.take_along_axis(s, order, 1), np.take_along_axis(i, order, 1)
