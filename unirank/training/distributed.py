"""Data-parallel training under ``torchrun`` (torch.distributed: gloo on CPU, NCCL on CUDA).

Run ``torchrun --nproc_per_node N -m unirank train CONFIG.yaml`` (multi-node: the usual
``--nnodes / --node_rank / --rdzv_*`` flags); :meth:`Dist.from_env` reads ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` and joins the process group. Without them (a plain
``python -m unirank train``) it is rank 0 of 1 and every method is the identity.

**Batches.** Every rank builds the *same* global batches (samplers are pure functions of
seed and epoch) and embeds its contiguous share (:func:`~unirank.training.batching.local_part`),
so the global batch keeps its sampler's property (no duplicates, one TAS cluster).
:class:`DistributedBatchSampler` exposes the same thing as a sampler of local batches.

**Cross-device negatives** (bi-encoders with in-batch negatives). Each rank embeds its
share of the queries and of the documents of the global batch; :func:`all_gather_with_grad`
concatenates every rank's embeddings in rank order, the local slice keeping its autograd
graph (other slices are detached copies). Because shares are contiguous and in rank order,
the gathered matrices are exactly the single-process ones: local query ``i`` of rank ``r`` is
global row ``offset(r) + i`` and its positive is column ``offset(r) + i`` of the
positives-first pool (``offset(r) = r * local_batch`` when the batch divides evenly). Every
rank then computes the loss of the *whole* global batch (as DPR and Tevatron do), which
depends on its parameters only through its own slice, so the sum over ranks of the local
gradients is the full gradient.

**Gradients.** :meth:`Dist.sync_gradients` all-reduces the parameter gradients and divides
by the world size - what ``DistributedDataParallel`` does, done explicitly after the backward
pass so that it composes with ``embed`` / ``score`` methods, GradCache (several forward passes
per backward) and accumulation. With all-gathered embeddings the loss is therefore
multiplied by ``world_size`` (:meth:`Dist.loss_scale`): ``mean_r(W * dL/dθ|_r) = Σ_r dL/dθ|_r``.
Without gathering (cross-encoders, poly-encoders, listwise training) each rank trains on its
local rows only (the pool is then the local batch); its mean loss is weighted by
``world_size * n_local / n_global`` so that the averaged gradient is the gradient of the
global row mean even when the last batch splits unevenly, and the logged loss is the global
row mean (:meth:`Dist.sum_floats`). This is exact when every row counts in its loss's mean
(InfoNCE leaves out rows without a negative, MW averages over pairs: with such rows the
weighting by rows is an approximation, as DDP's equal weighting of ranks is). With
gathering every rank already holds the global loss.

**ANCE refresh** (``refresh.every_steps``) mines on rank 0 with its replica (identical on
every rank after each step), writes the new ``train.jsonl`` under ``out/refresh/`` and
broadcasts its path; the other ranks wait, then read it. Checkpoints, resume and the
refresh need the output folder on a file system every rank sees. A refresh over a large
corpus holds the other ranks in a collective for its whole length: raise the process-group
timeout (``UNIRANK_DIST_TIMEOUT_MIN``) accordingly.

Example (one process: every method is the identity):
    >>> import torch
    >>> d = Dist()
    >>> d.world_size, d.is_main, d.share(["a", "b", "c"]), d.gather(torch.ones(2, 3)).shape
    (1, True, ['a', 'b', 'c'], torch.Size([2, 3]))
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..provenance import env_world
from .batching import BatchSampler, local_part

__all__ = ["Dist", "init_from_env", "all_gather_with_grad", "DistributedBatchSampler", "env_world"]


def init_from_env(backend: str | None = None, timeout_s: float | None = None) -> bool:
    """Join the process group torchrun describes; returns ``True`` if this call created it.

    Args:
        backend: ``None``: ``nccl`` when CUDA is available, else ``gloo``.
        timeout_s: collective timeout (rank 0 evaluates dev/test and mines ANCE refreshes
            while the others wait); ``None``: ``$UNIRANK_DIST_TIMEOUT_MIN`` minutes, else 30.

    Returns:
        ``False`` when there is nothing to do (one process, or a group already exists).
    """
    import torch.distributed as tdist

    _, world, local = env_world()
    if world <= 1 or tdist.is_initialized():
        return False
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local)
    if timeout_s is None:
        timeout_s = 60.0 * float(os.environ.get("UNIRANK_DIST_TIMEOUT_MIN", "30"))
    tdist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return True


def _sizes_offsets(sizes: Sequence[int]) -> list[int]:
    out, acc = [], 0
    for s in sizes:
        out.append(acc)
        acc += s
    return out


def all_gather_with_grad(x: torch.Tensor, group: Any = None) -> torch.Tensor:
    """Concatenate every rank's ``x`` along dim 0 in rank order; only the local slice has a graph.

    The other ranks' slices are detached copies (``torch.distributed.all_gather`` has no
    autograd); the local tensor is put back into its slot, so gradients reach this rank's
    encoder. Ranks may hold different numbers of rows (sizes are exchanged, slices padded).

    Args:
        x: ``(n_r, ...)`` on this rank.
        group: process group (default: the world).

    Shapes:
        ``(n_r, *rest)`` -> ``(sum_r n_r, *rest)``.

    Returns:
        ``x`` itself when there is one process.
    """
    import torch.distributed as tdist

    if not (tdist.is_available() and tdist.is_initialized()) or tdist.get_world_size(group) == 1:
        return x
    world, rank = tdist.get_world_size(group), tdist.get_rank(group)
    n = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    sizes_t = [torch.zeros_like(n) for _ in range(world)]
    tdist.all_gather(sizes_t, n, group=group)
    sizes = [int(s.item()) for s in sizes_t]
    width = max(sizes)
    padded = x.detach()
    if x.shape[0] < width:
        padded = torch.cat([padded, padded.new_zeros((width - x.shape[0], *x.shape[1:]))])
    slots = [torch.empty_like(padded) for _ in range(world)]
    tdist.all_gather(slots, padded.contiguous(), group=group)
    parts = [s[:k] for s, k in zip(slots, sizes)]
    parts[rank] = x
    return torch.cat(parts)


@dataclass
class Dist:
    """This process's place in a data-parallel run (default: rank 0 of 1).

    Attributes:
        rank, world_size, local_rank: as torchrun sets them.
        owns_group: this object created the process group (and :meth:`close` destroys it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @classmethod
    def from_env(cls, backend: str | None = None) -> "Dist":
        """Join (or reuse) the process group; rank 0 of 1 without torchrun."""
        import torch.distributed as tdist

        created = init_from_env(backend)
        if tdist.is_available() and tdist.is_initialized():
            _, _, local = env_world()
            return cls(tdist.get_rank(), tdist.get_world_size(), local, created)
        return cls()

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes checkpoints, logs and reports."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def device(self, configured: str | None) -> torch.device:
        """``configured``, else ``cuda:LOCAL_RANK`` when CUDA is available, else CPU."""
        if configured:
            dev = torch.device(configured)
            if dev.type == "cuda" and dev.index is None and self.active:
                dev = torch.device("cuda", self.local_rank)
            return dev
        return torch.device("cuda", self.local_rank) if torch.cuda.is_available() else torch.device("cpu")

    # ---- data
    def share(self, items: Sequence[Any]) -> list[Any]:
        """This rank's contiguous share of a global list (all of it with one process)."""
        return list(items) if not self.active else local_part(items, self.rank, self.world_size)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """:func:`all_gather_with_grad` (identity with one process)."""
        return all_gather_with_grad(x) if self.active else x

    @property
    def loss_scale(self) -> float:
        """Factor on a loss computed from gathered embeddings (see the module docstring)."""
        return float(self.world_size)

    # ---- collectives
    def sync_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Average ``.grad`` over ranks (one flat all-reduce). Parameters without a gradient on
        every rank keep ``None``; one with a gradient somewhere gets zeros where it had none."""
        if not self.active:
            return
        import torch.distributed as tdist

        params = [p for p in params if p.requires_grad]
        if not params:
            return
        dev = params[0].device
        has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=dev)
        tdist.all_reduce(has, op=tdist.ReduceOp.MAX)
        live = [p for p, h in zip(params, has.tolist()) if h > 0]
        for p in live:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if not live:
            return
        flat = torch.cat([p.grad.reshape(-1) for p in live])
        tdist.all_reduce(flat, op=tdist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for p in live:
            k = p.grad.numel()
            p.grad.copy_(flat[offset : offset + k].view_as(p.grad))
            offset += k

    def sum_floats(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of ``values`` over ranks (float64 all-reduce; identity with one process).

        Example:
            >>> Dist().sum_floats([1.5, 2.0])
            [1.5, 2.0]
        """
        if not self.active:
            return [float(v) for v in values]
        import torch.distributed as tdist

        dev = (
            torch.device("cuda", torch.cuda.current_device()) if tdist.get_backend() == "nccl" else torch.device("cpu")
        )
        t = torch.tensor(list(values), dtype=torch.float64, device=dev)
        tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return t.cpu().tolist()

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as tdist

            tdist.barrier()

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """Rank ``src``'s Python object on every rank (pickle-free JSON-able values are expected)."""
        if not self.active:
            return obj
        import torch.distributed as tdist

        box = [obj if self.rank == src else None]
        tdist.broadcast_object_list(box, src=src)
        return box[0]

    def close(self) -> None:
        """Destroy the process group if :meth:`from_env` created it."""
        if self.owns_group:
            import torch.distributed as tdist

            if tdist.is_initialized():
                tdist.destroy_process_group()
            self.owns_group = False


class DistributedBatchSampler(BatchSampler):
    """Local batches of a global sampler: rank ``r`` gets its contiguous share of each global batch.

    Every rank builds the same global batches (same seed), so the shares partition them;
    it composes with any :data:`~unirank.training.batching.BATCH_SAMPLERS` entry
    (``no_duplicates``, ``tas_balanced`` ...). State (e.g. TAS clusters) is the wrapped one's.

    Args:
        base: the global sampler (its ``batch_size`` is the *global* batch size).
        rank, world_size: this process's place.

    Example:
        >>> from unirank.training.batching import RandomSampler
        >>> g = RandomSampler(batch_size=4, seed=0)
        >>> parts = [DistributedBatchSampler(g, r, 2).batches([None] * 8, epoch=0) for r in range(2)]
        >>> [a + b for a, b in zip(*parts)] == g.batches([None] * 8, epoch=0)
        True
    """

    def __init__(self, base: BatchSampler, rank: int, world_size: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        super().__init__(base.batch_size, base.seed, base.drop_last)
        self.base, self.rank, self.world_size = base, int(rank), int(world_size)

    def fit(self, rows: Any, encode_queries: Any) -> None:
        self.base.fit(rows, encode_queries)

    def global_batches(self, rows: Sequence[Any], epoch: int) -> list[list[int]]:
        return self.base.batches(rows, epoch)

    def batches(self, rows: Sequence[Any], epoch: int) -> list[list[int]]:
        return [local_part(b, self.rank, self.world_size) for b in self.base.batches(rows, epoch)]

    def state_dict(self) -> dict[str, Any]:
        return self.base.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base.load_state_dict(state)
