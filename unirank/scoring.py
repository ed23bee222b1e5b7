"""Pure similarity functions between query and document vectors.

Every function here takes a (Q, H) and a (D, H) tensor and returns the (Q, D) matrix of
scores, where entry [i, j] compares query i with document j. They are differentiable and
device-agnostic. Configs name them through :data:`SIMILARITIES`:

Example:
    >>> import torch
    >>> SIMILARITIES.names()
    ['cosine', 'dot']
    >>> q = torch.tensor([[1.0, 0.0]])
    >>> d = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    >>> SIMILARITIES.get("dot")(q, d).tolist()
    [[2.0, 0.0]]
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .registry import Registry

#: a similarity: (Q, H), (D, H) -> (Q, D)
Similarity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: similarity name -> function
SIMILARITIES: Registry[Similarity] = Registry("similarity")


def _check(q: torch.Tensor, d: torch.Tensor) -> None:
    if q.dim() != 2 or d.dim() != 2:
        raise ValueError(f"expected 2-D (Q, H) and (D, H) tensors; got shapes {tuple(q.shape)} and {tuple(d.shape)}")
    if q.shape[1] != d.shape[1]:
        raise ValueError(f"hidden sizes differ: queries have {q.shape[1]}, documents have {d.shape[1]}")


@SIMILARITIES.register("dot")
def dot(q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Inner product of every query with every document.

    Args:
        q: query vectors.
        d: document vectors.

    Shapes:
        q (Q, H), d (D, H) -> (Q, D)

    Returns:
        ``q @ d.T``.

    Example:
        >>> q = torch.tensor([[1.0, 2.0], [0.0, 1.0]])
        >>> d = torch.tensor([[3.0, 4.0], [1.0, -1.0], [0.0, 0.0]])
        >>> dot(q, d).tolist()
        [[11.0, -1.0, 0.0], [4.0, -1.0, 0.0]]
    """
    _check(q, d)
    return q @ d.T


@SIMILARITIES.register("cosine")
def cosine(q: torch.Tensor, d: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Cosine similarity of every query with every document.

    Vectors are L2-normalised first (norms clamped at ``eps``, so a zero vector scores 0
    against everything, as in ``torch.nn.functional.normalize`` and sentence-transformers'
    ``cos_sim``).

    Args:
        q: query vectors.
        d: document vectors.
        eps: smallest norm used when dividing.

    Shapes:
        q (Q, H), d (D, H) -> (Q, D), values in [-1, 1]

    Returns:
        ``normalize(q) @ normalize(d).T``.

    Example:
        >>> q = torch.tensor([[3.0, 4.0]])
        >>> d = torch.tensor([[6.0, 8.0], [4.0, -3.0], [-3.0, -4.0], [0.0, 0.0]])
        >>> torch.allclose(cosine(q, d), torch.tensor([[1.0, 0.0, -1.0, 0.0]]), atol=1e-6)  # FMA kernels leave ~1e-8
        True
    """
    _check(q, d)
    return F.normalize(q, p=2, dim=-1, eps=eps) @ F.normalize(d, p=2, dim=-1, eps=eps).T
