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


def stable_topk(scores: np.ndarray, k: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``k`` of each row of a score block, ties broken by the lower column.

    Runs in O(Q * N) with :func:`numpy.partition` (no full sort); a row whose k-th
    value is tied with values outside the top k is redone with a stable sort, so the
    result equals a full sort by ``(-score, column)``. NaN counts as ``-inf``.

    Args:
        scores: ``(Q, N)`` block.
        k: how many per row (capped at N).
        offset: added to the returned column numbers (the block's first corpus row).

    Shapes:
        returns ``(Q, min(k, N))`` scores (input dtype) and int64 indices.

    Example:
        >>> s = np.array([[1.0, 3.0, 3.0, 2.0, 3.0]])
        >>> v, i = stable_topk(s, 2, offset=10)
        >>> v.tolist(), i.tolist()
        ([[3.0, 3.0]], [[11, 12]])
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (Q, N), got shape {scores.shape}")
    q, n = scores.shape
    k = min(int(k), n)
    if k <= 0 or q == 0:
        return np.empty((q, 0), dtype=scores.dtype), np.empty((q, 0), dtype=np.int64)
    if np.isnan(scores).any():
        scores = np.where(np.isnan(scores), -np.inf, scores).astype(scores.dtype)
    if k == n:
        order = np.argsort(-scores, axis=1, kind="stable")
    else:
        kth = np.partition(scores, n - k, axis=1)[:, n - k]  # k-th largest per row
        above = scores > kth[:, None]
        equal = scores == kth[:, None]
        need = k - above.sum(axis=1)
        n_equal = equal.sum(axis=1)
        chosen = above | equal
        for r in np.flatnonzero(n_equal > need):  # ties cross the boundary: keep the first `need`
            eq_cols = np.flatnonzero(equal[r])
            chosen[r, eq_cols[need[r] :]] = False
        cols = np.nonzero(chosen)[1].reshape(q, k)  # ascending per row
        vals = np.take_along_axis(scores, cols, 1)
        order = np.take_along_axis(cols, np.argsort(-vals, axis=1, kind="stable"), 1)
    return np.take_along_axis(scores, order, 1), order.astype(np.int64) + offset


def rrf_fuse(
    runs: Sequence[tuple[np.ndarray, np.ndarray]], n_docs: int, k: int, k_rrf: float = 60.0
) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal-rank fusion of several (scores, indices) hit lists over the same doc ids.

    score(d) = sum over lists containing d of 1 / (k_rrf + rank), rank from 1.

    Example:
        >>> a = (np.array([[9., 8.]]), np.array([[0, 1]]))
        >>> b = (np.array([[5., 4.]]), np.array([[1, 2]]))
        >>> s, i = rrf_fuse([a, b], n_docs=3, k=3, k_rrf=0)
        >>> i.tolist(), s.round(3).tolist()
        ([[1, 0, 2]], [[1.5, 1.0, 0.5]])
    """
    n_q = len(runs[0][1])
    out_s = np.full((n_q, k), -np.inf, dtype=np.float32)
    out_i = np.full((n_q, k), -1, dtype=np.int64)
    for q in range(n_q):
        fused: dict[int, float] = {}
        for _, idx in runs:
            for r, j in enumerate(idx[q].tolist(), start=1):
                if j >= 0:
                    fused[j] = fused.get(j, 0.0) + 1.0 / (k_rrf + r)
        if fused:
            ids = np.fromiter(fused.keys(), dtype=np.int64)
            sc = np.fromiter(fused.values(), dtype=np.float64)
            s, i = topk_merge(
                np.empty((1, 0)), np.empty((1, 0), dtype=np.int64), sc[None].astype(np.float32), ids[None], k
            )
            out_s[q, : s.shape[1]], out_i[q, : i.shape[1]] = s[0], i[0]
    return out_s, out_i
