"""GradCache (Gao, Zhang, Han, Callan 2021, "Scaling Deep Contrastive Learning Batch Size under
Memory Limited Setup"): the exact gradient of a large-batch contrastive loss in the memory of a
small chunk.

A contrastive loss couples every query with every document of the batch, so ordinary
gradient accumulation cannot split it. GradCache splits the *encoder* instead:

1. embed all texts ``chunk_size`` at a time **without** building a graph (remembering the
   random-number state before each chunk, so dropout can be replayed);
2. make the embeddings leaf tensors, compute the full-batch loss from them and call
   ``backward()``: this yields d loss / d embedding for every text (the "cache");
3. embed each chunk again **with** a graph, under the remembered random state (same dropout
   masks, same embeddings), and back-propagate the cached embedding gradients through it:
   ``embedding.backward(gradient=cached)``.

By the chain rule the parameter gradients are those of one forward/backward pass over the
whole batch; only one chunk's activations are alive at a time. The price is a second forward
pass. Under DDP wrap every chunk's backward but the last in ``model.no_sync()`` (not done
here: the single-process loop needs nothing).

Example:
    >>> import torch
    >>> _ = torch.manual_seed(0); enc = torch.nn.Linear(3, 2)
    >>> x = torch.randn(6, 3)
    >>> embed = lambda rows: enc(x[rows])  # "texts" are row numbers here
    >>> loss_fn = lambda q, d: ((q @ d.T).logsumexp(1) - (q * d).sum(1)).mean()
    >>> loss, _ = grad_cache_step(embed, [[0, 1, 2], [3, 4, 5]], lambda q, d: (loss_fn(q, d), None), chunk_size=2)
    >>> cached = enc.weight.grad.clone(); enc.zero_grad()
    >>> loss_fn(embed([0, 1, 2]), embed([3, 4, 5])).backward()
    >>> bool(torch.allclose(cached, enc.weight.grad, atol=1e-6))
    True
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

__all__ = ["RandContext", "embed_no_grad", "grad_cache_step"]


class RandContext:
    """The global torch random state at construction; ``with ctx:`` runs under a copy of it.

    The global generators are forked (``torch.random.fork_rng``), so replaying does not
    advance them: after a GradCache step they are where the first pass left them.
    """

    def __init__(self) -> None:
        self.cpu = torch.get_rng_state()
        self.devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        self.cuda = [torch.cuda.get_rng_state(d) for d in self.devices]
        self._fork: Any = None

    def __enter__(self) -> "RandContext":
        self._fork = torch.random.fork_rng(devices=self.devices)
        self._fork.__enter__()
        torch.set_rng_state(self.cpu)
        for d, s in zip(self.devices, self.cuda):
            torch.cuda.set_rng_state(s, d)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._fork.__exit__(*exc)
        self._fork = None


def embed_no_grad(
    embed: Callable[[Sequence[Any]], torch.Tensor], texts: Sequence[Any], chunk_size: int
) -> tuple[torch.Tensor, list[RandContext]]:
    """Embed ``texts`` in chunks without a graph; returns ``(embeddings (N, H), one RandContext per chunk)``."""
    parts, states = [], []
    for i in range(0, len(texts), chunk_size):
        states.append(RandContext())
        with torch.no_grad():
            parts.append(embed(texts[i : i + chunk_size]))
    if not parts:  # nothing to embed (e.g. this rank's share of a short batch is empty)
        with torch.no_grad():
            return embed(texts), states
    return torch.cat(parts), states


def grad_cache_step(
    embed: Callable[[Sequence[Any]], torch.Tensor],
    groups: Sequence[Sequence[Any]],
    loss_fn: Callable[..., tuple[torch.Tensor, Any]],
    chunk_size: int,
) -> tuple[torch.Tensor, Any]:
    """One GradCache forward/backward; parameter gradients are *accumulated* into ``.grad``.

    Args:
        embed: texts -> differentiable ``(n, H)`` embeddings (the model's ``embed``).
        groups: lists of texts embedded separately, e.g. ``[queries, documents]``.
        loss_fn: ``loss_fn(*embeddings) -> (scalar loss, aux)`` with one ``(N_g, H)`` tensor
            per group; it sees the whole batch.
        chunk_size: texts per forward pass.

    Returns:
        ``(loss detached, aux)``.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    cached = [embed_no_grad(embed, g, chunk_size) for g in groups]
    reps = [e.detach().requires_grad_() for e, _ in cached]
    loss, aux = loss_fn(*reps)
    loss.backward()
    for group, rep, (_, states) in zip(groups, reps, cached):
        grad = rep.grad if rep.grad is not None else torch.zeros_like(rep)
        for n, state in enumerate(states):
            lo = n * chunk_size
            with state:
                out = embed(group[lo : lo + chunk_size])
            out.backward(gradient=grad[lo : lo + len(out)].to(out.dtype))
    return loss.detach(), aux
