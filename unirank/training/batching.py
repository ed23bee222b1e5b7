"""Batch samplers: which training rows form each batch of an epoch.

Every sampler turns the epoch's rows into a list of batches (lists of row indices) that is a
pure function of ``(seed, epoch, rows)`` and the sampler's fitted state, so

* a resumed run rebuilds the same batches and skips the ones already done;
* under data parallelism every process builds the same *global* batches and takes its
  part with :func:`local_part` (this is how the samplers compose with
  ``torch.utils.data.DistributedSampler``-style sharding: the global batch keeps its
  property - no duplicates, one cluster - and cross-device negatives see all of it).

Samplers (:data:`BATCH_SAMPLERS`):

* ``random`` - a seeded shuffle cut into batches.
* ``no_duplicates`` - no text appears twice in a batch (query, positive or negative
  texts), so a repeated document never becomes an accidental negative of the query it is
  relevant to; the algorithm of sentence-transformers' ``NoDuplicatesBatchSampler``: walk the
  shuffled rows, put a row into the open batch unless one of its texts is already there, and
  leave skipped rows for the next batch.
* ``tas_balanced`` - topic-aware sampling (Hofstätter et al. 2021, TAS-B): k-means over the
  queries' embeddings (``faiss.Kmeans``, fitted once with the model at the start and saved in
  the checkpoint); each batch draws all its rows from one cluster, so in-batch negatives are
  on-topic. Within a cluster rows are grouped without duplicates unless
  ``no_duplicates=False``. (TAS-B's second idea, balancing pairs by teacher margin, is not
  implemented.) A cluster's short last batch is kept (smaller) unless ``drop_last``.

Example:
    >>> from unirank.types import Candidate
    >>> from unirank.training.data import Row
    >>> rows = [Row(f"q{i}", f"query {i}", Candidate("d", "same doc" if i < 2 else f"doc {i}"), (), frozenset())
    ...         for i in range(4)]
    >>> s = BATCH_SAMPLERS.get("no_duplicates")(batch_size=2, seed=0)
    >>> batches = s.batches(rows, epoch=0)
    >>> sorted(i for b in batches for i in b), any({0, 1} <= set(b) for b in batches)
    ([0, 1, 2, 3], False)
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..config import construct
from ..errors import ConfigError
from ..registry import Registry
from .data import Row

__all__ = [
    "BATCH_SAMPLERS",
    "BatchSampler",
    "RandomSampler",
    "NoDuplicatesSampler",
    "TASBalancedSampler",
    "local_part",
    "build_batch_sampler",
]

#: sampler name -> class; ``BATCH_SAMPLERS.get(name)(batch_size=..., seed=..., **params)``
BATCH_SAMPLERS: Registry[type["BatchSampler"]] = Registry("batch sampler")


def _epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(epoch), 0xBA7C4])


def _chunks(order: Sequence[int], size: int, drop_last: bool) -> list[list[int]]:
    out = [list(order[i : i + size]) for i in range(0, len(order), size)]
    if drop_last and out and len(out[-1]) < size:
        out.pop()
    return out


def _no_duplicate_groups(
    order: Sequence[int], keys: Sequence[frozenset[str]], size: int, drop_last: bool
) -> list[list[int]]:
    """Greedy grouping in ``order``: a row joins the open batch unless it shares a key with it."""
    remaining = list(order)
    out: list[list[int]] = []
    while remaining:
        batch: list[int] = []
        seen: set[str] = set()
        for i in remaining:
            if keys[i] & seen:
                continue
            batch.append(i)
            seen |= keys[i]
            if len(batch) == size:
                break
        if len(batch) == size or not drop_last:
            out.append(batch)
        taken = set(batch)
        remaining = [i for i in remaining if i not in taken]
        if len(batch) < size:  # every remaining row clashes with this batch: it was the last one possible
            if drop_last:
                break
    return out


def _text_keys(rows: Sequence[Row]) -> list[frozenset[str]]:
    return [frozenset(r.texts) for r in rows]


class BatchSampler:
    """Interface: ``batches(rows, epoch) -> list of lists of row indices``.

    Args:
        batch_size: rows per batch.
        seed: base seed; ``(seed, epoch)`` fixes an epoch's batches.
        drop_last: drop short batches.
    """

    def __init__(self, batch_size: int, seed: int = 0, drop_last: bool = False) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size, self.seed, self.drop_last = int(batch_size), int(seed), bool(drop_last)

    def fit(self, rows: Sequence[Row], encode_queries: Callable[[list[str]], np.ndarray]) -> None:
        """Prepare from the data and the initial model (only ``tas_balanced`` needs it)."""

    def batches(self, rows: Sequence[Row], epoch: int) -> list[list[int]]:  # pragma: no cover - interface
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable fitted state (saved in checkpoints)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


@BATCH_SAMPLERS.register("random")
class RandomSampler(BatchSampler):
    """A seeded permutation of the rows, cut into batches.

    Example:
        >>> RandomSampler(batch_size=2, seed=1).batches([None] * 5, epoch=0)
        [[2, 3], [0, 4], [1]]
    """

    def batches(self, rows: Sequence[Row], epoch: int) -> list[list[int]]:
        order = _epoch_rng(self.seed, epoch).permutation(len(rows)).tolist()
        return _chunks(order, self.batch_size, self.drop_last)


@BATCH_SAMPLERS.register("no_duplicates")
class NoDuplicatesSampler(BatchSampler):
    """Shuffled rows grouped so that no text (query, positive, negative) occurs twice in a batch."""

    def batches(self, rows: Sequence[Row], epoch: int) -> list[list[int]]:
        order = _epoch_rng(self.seed, epoch).permutation(len(rows)).tolist()
        return _no_duplicate_groups(order, _text_keys(rows), self.batch_size, self.drop_last)


@BATCH_SAMPLERS.register("tas_balanced")
class TASBalancedSampler(BatchSampler):
    """Every batch from one k-means cluster of the query embeddings.

    Args:
        clusters: number of clusters; ``None``: about four batches' worth of rows per cluster.
        no_duplicates: group a cluster's rows without repeated texts.
        niter: k-means iterations.
    """

    def __init__(
        self,
        batch_size: int,
        seed: int = 0,
        drop_last: bool = False,
        clusters: int | None = None,
        no_duplicates: bool = True,
        niter: int = 20,
    ) -> None:
        super().__init__(batch_size, seed, drop_last)
        self.clusters, self.no_duplicates, self.niter = clusters, bool(no_duplicates), int(niter)
        self.labels: list[int] | None = None

    def fit(self, rows: Sequence[Row], encode_queries: Callable[[list[str]], np.ndarray]) -> None:
        """Cluster the distinct query texts of ``rows`` (embedded by ``encode_queries``)."""
        texts = sorted({r.query for r in rows})
        vectors = np.ascontiguousarray(encode_queries(texts), dtype=np.float32)
        self.fit_vectors(rows, dict(zip(texts, vectors)))

    def fit_vectors(self, rows: Sequence[Row], vectors: dict[str, np.ndarray]) -> None:
        """Cluster with given query vectors (``{query text: vector}``)."""
        from ..optional import optional_import

        faiss = optional_import("faiss", "tas_balanced batching", "pip install faiss-cpu")
        texts = sorted(vectors)
        x = np.ascontiguousarray(np.stack([vectors[t] for t in texts]), dtype=np.float32)
        k = self.clusters or max(1, round(len(rows) / (4 * self.batch_size)))
        k = max(1, min(int(k), len(texts)))
        if k == 1:
            label = {t: 0 for t in texts}
        else:
            km = faiss.Kmeans(x.shape[1], k, niter=self.niter, seed=self.seed, verbose=False, min_points_per_centroid=1)
            km.train(x)
            _, assign = km.index.search(x, 1)
            label = dict(zip(texts, assign[:, 0].tolist()))
        self.labels = [int(label[r.query]) for r in rows]

    def batches(self, rows: Sequence[Row], epoch: int) -> list[list[int]]:
        if self.labels is None or len(self.labels) != len(rows):
            raise RuntimeError("tas_balanced: call fit() on these rows before batches()")
        rng = _epoch_rng(self.seed, epoch)
        keys = _text_keys(rows) if self.no_duplicates else None
        labels = np.asarray(self.labels)
        out: list[list[int]] = []
        for c in np.unique(labels).tolist():
            members = np.flatnonzero(labels == c)
            order = members[rng.permutation(len(members))].tolist()
            if keys is None:
                out.extend(_chunks(order, self.batch_size, self.drop_last))
            else:
                out.extend(_no_duplicate_groups(order, keys, self.batch_size, self.drop_last))
        return [out[i] for i in rng.permutation(len(out)).tolist()]

    def state_dict(self) -> dict[str, Any]:
        return {"labels": self.labels}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.labels = state.get("labels")


def build_batch_sampler(
    name: str, batch_size: int, seed: int, drop_last: bool = False, params: dict[str, Any] | None = None
) -> BatchSampler:
    """Build a registered sampler; unknown names or parameters raise :class:`ConfigError`."""
    try:
        cls = BATCH_SAMPLERS.get(name)
    except KeyError as e:
        raise ConfigError(f"batching.name: {e.args[0]}") from None
    return construct(
        cls, dict(params or {}), f"batching.params for {name!r}", batch_size=batch_size, seed=seed, drop_last=drop_last
    )


def local_part(batch: Sequence[int], rank: int, world_size: int) -> list[int]:
    """This process's contiguous share of a global batch (sizes differ by at most one).

    Example:
        >>> [local_part(list(range(7)), r, 3) for r in range(3)]
        [[0, 1, 2], [3, 4], [5, 6]]
    """
    n = len(batch)
    start = rank * (n // world_size) + min(rank, n % world_size)
    size = n // world_size + (1 if rank < n % world_size else 0)
    return list(batch[start : start + size])
