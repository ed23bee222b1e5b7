"""k-NN search with a cross-encoder alone: CUR (ANNCUR) and adaptive multi-round CUR (adaCUR).

The pure math of Yadav et al., "Efficient Nearest Neighbor Search for Cross-Encoder Models
using Matrix Factorization" (EMNLP 2022) and "Efficient k-NN Search with Cross-Encoders
using Adaptive Multi-Round CUR Decomposition" (Findings of EMNLP 2023). No model and no
disk here: the cross-encoder comes in as a ``score`` callback and the items as an
:class:`ItemSpace`; :mod:`unirank.index.cur_store` and :mod:`unirank.index.cur_retriever`
add the index on disk and the model.

**Notation.** ``R`` is the (k_q, m) matrix of cross-encoder scores of k_q *anchor queries*
against all m items (built offline). A test query's exact scores against a set ``A`` of
*anchor items* is the vector ``s`` (len |A|). CUR approximates the query's scores on every
item as::

    s_hat = s @ pinv(R[:, A]) @ R          (1, m)

ANNCUR fixes ``A`` (seeded random) for all queries, so the item embeddings
``E = pinv(R[:, A]) @ R`` (|A|, m) go into an inner-product index once and the query
embedding is ``s`` itself; the ``budget - |A|`` best items under ``s_hat`` are then scored
exactly. adaCUR spends the budget in rounds: the first batch of anchor items at random (or
from a first stage), each later batch the best not-yet-scored items under the approximation
re-solved from every item scored so far. Equivalently ``s_hat = w @ R`` with
``w = pinv(R[:, A].T) @ s`` (k_q,), the minimum-norm least-squares solution of
``R[:, A].T @ w = s``; :class:`IncrementalLstsq` keeps that solution up to date as columns
arrive, without a fresh pseudo-inverse per round.

**Cost.** Every item a query has scored is remembered; no item is scored twice (an anchor
that the approximation ranks high again is skipped), so a query pays exactly
``min(budget, m)`` cross-encoder calls. The result ranks the scored items by exact score;
below them, the rest by the final approximate score (free).

Example (a rank-2 score matrix is recovered exactly from 2 anchor items):
    >>> rng = np.random.default_rng(0)
    >>> items = rng.normal(size=(2, 6))                  # latent item factors
    >>> R = rng.normal(size=(4, 2)) @ items             # 4 anchor queries x 6 items
    >>> S = rng.normal(size=(3, 2)) @ items             # 3 test queries' exact scores
    >>> A = np.array([1, 4])
    >>> E = cur_item_embeddings(R, A)
    >>> bool(np.allclose(S[:, A] @ E, S))
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np

__all__ = [
    "ScoreFn",
    "ItemSpace",
    "MatrixSpace",
    "IncrementalLstsq",
    "CURResult",
    "choose_anchors",
    "cur_item_embeddings",
    "round_plan",
    "top_unscored",
    "anncur_search",
    "adacur_search",
    "result_hits",
    "matrix_oracle",
]

#: default relative tolerance below which a new anchor column adds no new direction
RTOL = 1e-10

#: the cross-encoder as the search sees it: one item-index array per query -> one array of
#: exact scores per query (same lengths); called once per round for all queries
ScoreFn = Callable[[Sequence[np.ndarray]], Sequence[np.ndarray]]


class ItemSpace(Protocol):
    """The items in the anchor-query space: column access to ``R`` and inner-product search.

    ``dim`` is k_q; ``columns(idx)`` returns ``R[:, idx]`` (k_q, len(idx));
    ``search(W, n)`` returns ``(scores, indices)`` (Q, n) of the top-n items by ``W @ R``
    (-1 where fewer than n).
    """

    dim: int
    n_items: int

    def columns(self, idx: np.ndarray) -> np.ndarray: ...

    def search(self, queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]: ...


class MatrixSpace:
    """An :class:`ItemSpace` over an in-memory ``R`` (k_q, m), exact search.

    Example:
        >>> sp = MatrixSpace(np.array([[1., 0., 2.], [0., 1., 1.]]))
        >>> sp.search(np.array([[1., 0.]]), 2)[1].tolist(), sp.columns(np.array([2])).ravel().tolist()
        ([[2, 0]], [2.0, 1.0])
    """

    def __init__(self, R: np.ndarray) -> None:
        self.R = np.asarray(R, dtype=np.float64)
        self.dim, self.n_items = self.R.shape

    def columns(self, idx: np.ndarray) -> np.ndarray:
        return self.R[:, np.asarray(idx, dtype=np.int64)]

    def search(self, queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        return _exact_top(np.asarray(queries, dtype=np.float64) @ self.R, n)


def _exact_top(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-n per row, best first, ties by lower index; -1 / -inf padding past the row length."""
    Q, m = scores.shape
    take = min(n, m)
    order = np.lexsort((np.broadcast_to(np.arange(m), scores.shape), -scores), axis=1)[:, :take]
    out_s = np.full((Q, n), -np.inf)
    out_i = np.full((Q, n), -1, dtype=np.int64)
    out_s[:, :take] = np.take_along_axis(scores, order, 1)
    out_i[:, :take] = order
    return out_s, out_i


# --------------------------------------------------------------------------- anchors


def choose_anchors(n_items: int, k: int, seed: int = 0) -> np.ndarray:
    """``min(k, n_items)`` distinct item indices drawn uniformly with ``seed``, sorted.

    Example:
        >>> choose_anchors(10, 3, seed=0).tolist() == choose_anchors(10, 3, seed=0).tolist()
        True
        >>> choose_anchors(3, 5).tolist()
        [0, 1, 2]
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return np.sort(np.random.default_rng(seed).choice(n_items, size=min(k, n_items), replace=False)).astype(np.int64)


def cur_item_embeddings(R: np.ndarray, anchors: np.ndarray, rcond: float = RTOL) -> np.ndarray:
    """ANNCUR's item embeddings ``E = pinv(R[:, anchors]) @ R``.

    Args:
        R: (k_q, m) anchor-query x item scores (any array with column indexing; for a
            memory-mapped store compute it chunk by chunk: ``E[:, chunk] = U @ R[:, chunk]``
            with ``U = cur_u(R[:, anchors])``).
        anchors: (k_i,) item indices.
        rcond: singular values below ``rcond * largest`` are treated as zero.

    Shapes:
        -> (k_i, m); a test query's approximate scores are ``s @ E`` with ``s`` its (k_i,)
        exact scores on the anchor items.

    Example:
        >>> R = np.array([[1., 2., 3.], [0., 1., 1.]])
        >>> cur_item_embeddings(R, np.array([0, 1])).round(6).tolist()   # anchors 0, 1 span the rest
        [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]
    """
    R = np.asarray(R, dtype=np.float64)
    return cur_u(R[:, np.asarray(anchors, dtype=np.int64)], rcond) @ R


def cur_u(anchor_columns: np.ndarray, rcond: float = RTOL) -> np.ndarray:
    """``U = pinv(R[:, anchors])``: (k_i, k_q) from the (k_q, k_i) anchor columns.

    Example:
        >>> cur_u(np.array([[2., 0.], [0., 4.]])).tolist()
        [[0.5, 0.0], [0.0, 0.25]]
    """
    return np.linalg.pinv(np.asarray(anchor_columns, dtype=np.float64), rcond=rcond)


# --------------------------------------------------------------------------- incremental least squares


class IncrementalLstsq:
    """The minimum-norm least-squares ``w`` of ``X.T @ w = s`` as columns of ``X`` arrive.

    ``X`` (dim, n) holds the columns ``R[:, A]`` of the anchor items scored so far and ``s``
    their exact scores, so ``w @ R`` is the CUR approximation ``s @ pinv(R[:, A]) @ R``.

    How (no pseudo-inverse is recomputed): an orthonormal basis ``B`` (dim, r) of the span
    of the columns is grown by Gram-Schmidt (two passes; a column whose residual is below
    ``rtol`` times its norm adds no direction), so ``X = B @ C``. Every solution lies in that
    span (``w = B @ z``), and ``z`` solves ``C.T @ z = s`` in the least-squares sense; ``C.T``
    has full column rank, so ``z`` is unique and ``w`` is the minimum-norm solution. The
    triangular factor ``T`` and right side ``d`` of that problem (``||C.T z - s||^2 =
    ||T z - d||^2 + residual``) are updated per batch by a QR of ``[[T, d], [C_new.T,
    s_new]]`` - ``(r + b) x (r' + 1)`` numbers, not the whole system - and ``solve()`` is one
    (rank x rank) triangular solve.

    Args:
        dim: length of a column (k_q, the number of anchor queries).
        rtol: relative residual below which a column adds no new direction (the rank cut,
            like ``pinv``'s ``rcond``).

    Example:
        >>> X = np.array([[1., 0., 1.], [0., 1., 1.], [0., 0., 0.]])
        >>> ls = IncrementalLstsq(3)
        >>> ls.add(X[:, :1], np.array([2.]))
        >>> ls.solve().tolist()
        [2.0, 0.0, 0.0]
        >>> ls.add(X[:, 1:], np.array([3., 5.]))
        >>> ls.solve().round(6).tolist(), ls.rank
        ([2.0, 3.0, 0.0], 2)
        >>> bool(np.allclose(ls.solve(), np.linalg.pinv(X.T) @ [2., 3., 5.]))
        True
    """

    def __init__(self, dim: int, rtol: float = RTOL) -> None:
        self.dim = int(dim)
        self.rtol = float(rtol)
        self.basis = np.zeros((self.dim, 0))
        self.T = np.zeros((0, 0))
        self.d = np.zeros(0)
        self.n = 0
        self.residual = 0.0  # ||C.T z - s||^2 of the current solution

    @property
    def rank(self) -> int:
        return self.basis.shape[1]

    def _extend_basis(self, X: np.ndarray) -> None:
        B = self.basis
        Y = X - B @ (B.T @ X)
        Y -= B @ (B.T @ Y)  # second pass: orthogonal to working precision
        norms = np.linalg.norm(X, axis=0)
        new: list[np.ndarray] = []
        for j in range(X.shape[1]):
            y = Y[:, j]
            for _ in range(2):
                for v in new:
                    y = y - (v @ y) * v
            ny = float(np.linalg.norm(y))
            if ny > self.rtol * norms[j] and ny > 0.0:
                new.append(y / ny)
        if new:
            self.basis = np.hstack([B, np.stack(new, axis=1)])

    def add(self, columns: np.ndarray, values: np.ndarray) -> None:
        """Add ``b`` equations: ``columns`` (dim, b) with their right-hand sides ``values`` (b,)."""
        X = np.asarray(columns, dtype=np.float64).reshape(self.dim, -1)
        s = np.asarray(values, dtype=np.float64).reshape(-1)
        if X.shape[1] != len(s):
            raise ValueError(f"{X.shape[1]} columns but {len(s)} values")
        if not len(s):
            return
        r_old = self.rank
        self._extend_basis(X)
        r = self.rank
        C = self.basis.T @ X  # (r, b): the new columns in the basis
        top = np.zeros((r_old, r + 1))
        top[:, :r_old] = self.T
        top[:, r] = self.d
        stacked = np.vstack([top, np.hstack([C.T, s[:, None]])])
        F = np.linalg.qr(stacked, mode="r")
        self.T, self.d = F[:r, :r], F[:r, r]
        if F.shape[0] > r:
            self.residual += float(F[r, r] ** 2)
        self.n += len(s)

    def solve(self) -> np.ndarray:
        """``w`` (dim,): the minimum-norm least-squares solution for all equations added."""
        if self.rank == 0:
            return np.zeros(self.dim)
        return self.basis @ np.linalg.solve(self.T, self.d)  # T is (rank, rank) upper triangular


# --------------------------------------------------------------------------- search


@dataclass
class CURResult:
    """What a CUR search found for each query.

    Attributes:
        scored: per query, the item indices scored by the cross-encoder, in scoring order
            (its length is the query's cross-encoder calls).
        exact: per query, their exact scores.
        tail: per query, items not scored, best first by the final approximate score.
        rounds: per query, how many items each round scored.
    """

    scored: list[np.ndarray]
    exact: list[np.ndarray]
    tail: list[np.ndarray]
    rounds: list[list[int]] = field(default_factory=list)

    @property
    def calls(self) -> np.ndarray:
        """Cross-encoder calls per query."""
        return np.array([len(s) for s in self.scored], dtype=np.int64)


def round_plan(budget: int, rounds: int) -> list[int]:
    """Items scored per round: ``budget`` split into ``rounds`` near-equal batches, the
    remainder going to the first rounds.

    Example:
        >>> round_plan(100, 5), round_plan(25, 4)
        ([20, 20, 20, 20, 20], [7, 6, 6, 6])
    """
    if rounds < 1 or budget < rounds:
        raise ValueError(f"need 1 <= rounds <= budget, got rounds={rounds}, budget={budget}")
    base, extra = divmod(budget, rounds)
    return [base + (1 if r < extra else 0) for r in range(rounds)]


def top_unscored(
    search: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]],
    queries: np.ndarray,
    n: Sequence[int],
    exclude: Sequence[np.ndarray],
) -> list[np.ndarray]:
    """Per query the best ``n[q]`` items under ``search`` that are not in ``exclude[q]``.

    One ``search`` call for all queries (fetching ``max(n + |exclude|)``); fewer come back
    when the index has fewer items.

    Example:
        >>> sp = MatrixSpace(np.array([[3., 2., 1., 0.]]))
        >>> [x.tolist() for x in top_unscored(sp.search, np.array([[1.], [-1.]]), [2, 1],
        ...                                   [np.array([0]), np.array([])])]
        [[1, 2], [3]]
    """
    if not len(queries):
        return []
    fetch = max(int(a) + len(e) for a, e in zip(n, exclude))
    if fetch == 0:
        return [np.empty(0, dtype=np.int64) for _ in n]
    _, idx = search(np.ascontiguousarray(queries), fetch)
    out = []
    for q, (want, ex) in enumerate(zip(n, exclude)):
        row = idx[q][idx[q] >= 0]
        if len(ex):
            row = row[~np.isin(row, ex)]
        out.append(row[:want].astype(np.int64))
    return out


def _check_budget(budget: int) -> None:
    if budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")


def anncur_search(
    score: ScoreFn,
    anchors: np.ndarray,
    embedding_search: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]],
    n_queries: int,
    budget: int,
    n_items: int,
    tail: int = 0,
) -> CURResult:
    """ANNCUR: score the fixed anchor items, retrieve ``budget - len(anchors)`` more by ``s @ E``.

    Args:
        score: the cross-encoder (:data:`ScoreFn`).
        anchors: (k_i,) anchor item indices shared by all queries.
        embedding_search: top-n search over the item embeddings ``E`` (k_i, m) (e.g. a FAISS
            inner-product index over ``E.T``); its queries are the (Q, k_i) anchor scores.
        n_queries: Q.
        budget: cross-encoder calls per query (``>= len(anchors)``; capped at ``n_items``).
        n_items: m.
        tail: how many unscored items to rank below the scored ones (by ``s @ E``).

    Returns:
        A :class:`CURResult`; each query paid ``min(budget, n_items)`` calls.

    Raises:
        ValueError: ``budget < len(anchors)`` or ``budget < 1``.
    """
    _check_budget(budget)
    anchors = np.asarray(anchors, dtype=np.int64)
    if budget < len(anchors):
        raise ValueError(f"budget {budget} is smaller than the {len(anchors)} anchor items")
    budget = min(budget, n_items)
    got = score([anchors] * n_queries)
    S = np.stack([np.asarray(g, dtype=np.float64) for g in got]) if n_queries else np.zeros((0, len(anchors)))
    more = budget - len(anchors)
    picks = top_unscored(embedding_search, S.astype(np.float32), [more + tail] * n_queries, [anchors] * n_queries)
    retrieved = [p[:more] for p in picks]
    got2 = score(retrieved)
    return CURResult(
        scored=[np.concatenate([anchors, r]) for r in retrieved],
        exact=[np.concatenate([S[q], np.asarray(g, dtype=np.float64)]) for q, g in enumerate(got2)],
        tail=[p[more:] for p in picks],
        rounds=[[len(anchors), len(r)] for r in retrieved],
    )


def adacur_search(
    score: ScoreFn,
    space: ItemSpace,
    first: Sequence[np.ndarray],
    plan: Sequence[int],
    tail: int = 0,
    rtol: float = RTOL,
) -> CURResult:
    """adaCUR: rounds of anchor items, each later round the best unscored items under the
    approximation re-solved from everything scored so far.

    Args:
        score: the cross-encoder (:data:`ScoreFn`), called once per round.
        space: the items (:class:`ItemSpace`): columns of ``R`` and search by ``w @ R``.
        first: per query, the candidates of round 1 in preference order (seeded random
            items, or a first stage's ranking); the first ``plan[0]`` are scored.
        plan: items scored per round (:func:`round_plan`); its sum is the budget.
        tail: how many unscored items to rank below the scored ones (final approximation).
        rtol: rank cut of :class:`IncrementalLstsq`.

    Returns:
        A :class:`CURResult`. With ``plan == [k_i, budget - k_i]`` and the same anchors for
        every query this is ANNCUR (same items, same scores; see :func:`anncur_search`).

    Example (every item scored: the exact ranking):
        >>> R = np.random.default_rng(1).normal(size=(5, 8)); S = np.random.default_rng(2).normal(size=(2, 8))
        >>> res = adacur_search(matrix_oracle(S), MatrixSpace(R), [np.arange(3)] * 2, [3, 5])
        >>> [sorted(x.tolist()) for x in res.scored] == [list(range(8))] * 2, res.calls.tolist()
        (True, [8, 8])
    """
    Q = len(first)
    plan = [int(p) for p in plan]
    if not plan or any(p < 1 for p in plan):
        raise ValueError(f"plan must be a non-empty list of positive round sizes, got {plan}")
    solvers = [IncrementalLstsq(space.dim, rtol) for _ in range(Q)]
    scored = [np.empty(0, dtype=np.int64) for _ in range(Q)]
    exact = [np.empty(0, dtype=np.float64) for _ in range(Q)]
    rounds: list[list[int]] = [[] for _ in range(Q)]
    for r, size in enumerate(plan):
        if r == 0:
            request = []
            for f in first:
                f = np.asarray(f, dtype=np.int64)
                _, keep = np.unique(f, return_index=True)
                request.append(f[np.sort(keep)][:size])
        else:
            W = np.stack([s.solve() for s in solvers]).astype(np.float32)
            request = top_unscored(space.search, W, [size] * Q, scored)
        got = score(request)
        for q in range(Q):
            g = np.asarray(got[q], dtype=np.float64)
            if len(request[q]):
                solvers[q].add(space.columns(request[q]), g)
            scored[q] = np.concatenate([scored[q], request[q]])
            exact[q] = np.concatenate([exact[q], g])
            rounds[q].append(len(request[q]))
    tails: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * Q
    if tail > 0 and Q:
        W = np.stack([s.solve() for s in solvers]).astype(np.float32)
        tails = top_unscored(space.search, W, [tail] * Q, scored)
    return CURResult(scored, exact, tails, rounds)


def result_hits(result: CURResult, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, indices)`` (Q, k): scored items by exact score (ties: lower index first),
    then the tail in its order with scores stepping down from the lowest exact score (by at
    least 1), so score order is rank order; -1 / -inf padding.

    Example:
        >>> res = CURResult([np.array([4, 2])], [np.array([0.5, 2.0])], [np.array([7, 1])])
        >>> s, i = result_hits(res, 3)
        >>> i.tolist(), s.tolist()
        ([[2, 4, 7]], [[2.0, 0.5, -0.5]])
    """
    Q = len(result.scored)
    out_s = np.full((Q, k), -np.inf, dtype=np.float32)
    out_i = np.full((Q, k), -1, dtype=np.int64)
    for q in range(Q):
        idx, sc = result.scored[q], result.exact[q]
        order = np.lexsort((idx, -sc))
        ids = list(idx[order][:k])
        vals = list(sc[order][:k])
        finite = [v for v in vals if np.isfinite(v)]
        floor = min(finite) if finite else 0.0
        step = max(1.0, abs(floor) * 2.0**-20)
        for j in result.tail[q]:
            if len(ids) >= k:
                break
            floor -= step
            ids.append(int(j))
            vals.append(floor)
        out_i[q, : len(ids)] = ids
        out_s[q, : len(vals)] = vals
    return out_s, out_i


def matrix_oracle(S: np.ndarray, calls: list[int] | None = None) -> ScoreFn:
    """A :data:`ScoreFn` that reads exact scores from a (Q, m) matrix (the exhaustive
    cross-encoder scores): evaluation without running the model, and tests.

    ``calls`` (optional) is appended the number of scores read per query per round.

    Example:
        >>> n = []
        >>> matrix_oracle(np.array([[1., 2., 3.]]), n)([np.array([2, 0])])[0].tolist(), n
        ([3.0, 1.0], [2])
    """
    S = np.asarray(S)

    def score(requests: Sequence[np.ndarray]) -> list[np.ndarray]:
        out = []
        for q, idx in enumerate(requests):
            idx = np.asarray(idx, dtype=np.int64)
            if calls is not None:
                calls.append(len(idx))
            out.append(np.asarray(S[q, idx], dtype=np.float64))
        return out

    return score
