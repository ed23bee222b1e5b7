"""Attention masks for packed sequences (Uni-Encoder and friends), built from segment ids.

A packed row holds one context followed by its candidates. Every token carries a
*segment id*: ``0`` for the context, ``k`` (1..N) for the k-th candidate and ``-1`` for
padding. A mask kind maps segment ids ``(B, L)`` to a boolean "may attend" matrix
``(B, L, L)``: entry ``[b, i, j]`` is True when token ``i`` may attend to token ``j``.

Kinds (registry :data:`MASKS`):

``arrow``
    The Uni-Encoder mask of the official code (dll-wu/Uni-Encoder, ``attn_map='arrow'``):
    context tokens attend to every real token, candidates included; a candidate token
    attends to the context and to its own candidate. A candidate's score can therefore
    depend on the *other* candidates, through the context.
``arrow_strict``
    Context tokens attend only to the context; a candidate attends to the context and to
    itself. A candidate's score never depends on the other candidates, so scoring a long
    list in chunks is exact.
``diag``
    Every segment attends only to itself (official ``attn_map='diag'``): the context never
    sees candidates and candidates never see the context.
``full``
    Every real token attends to every real token (official ``attn_map='square'``; a
    cross-encoder over the whole packed row).

In every kind no real token attends to padding, and a padding token attends only to
itself, so no softmax row is empty (no NaN) and padding never leaks into real tokens.

All functions are vectorised over the batch (no per-example Python loop).

Example:
    >>> seg = torch.tensor([[0, 0, 1, 2, -1]])
    >>> build_mask(seg, "arrow_strict")[0].int().tolist()
    [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 0, 1, 0], [0, 0, 0, 0, 1]]
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..registry import Registry

#: a mask kind: segment ids (B, L) long -> "may attend" (B, L, L) bool (real tokens only;
#: :func:`build_mask` adds the padding rule)
MaskFn = Callable[[torch.Tensor], torch.Tensor]

#: mask kind name -> function of segment ids (register with ``@MASKS.register("name")``)
MASKS: Registry[MaskFn] = Registry("attention mask kind")


def _pairs(segment_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(query segment (B, L, 1), key segment (B, 1, L), both-real (B, L, L))."""
    q = segment_ids[:, :, None]
    k = segment_ids[:, None, :]
    return q, k, (q >= 0) & (k >= 0)


@MASKS.register("arrow")
def arrow_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """Context sees everything; a candidate sees the context and itself (official Uni-Encoder).

    Example:
        >>> arrow_mask(torch.tensor([[0, 1, 2]]))[0].int().tolist()
        [[1, 1, 1], [1, 1, 0], [1, 0, 1]]
    """
    q, k, real = _pairs(segment_ids)
    return real & ((q == 0) | (k == 0) | (q == k))


@MASKS.register("arrow_strict")
def arrow_strict_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """Context sees only itself; a candidate sees the context and itself.

    Example:
        >>> arrow_strict_mask(torch.tensor([[0, 1, 2]]))[0].int().tolist()
        [[1, 0, 0], [1, 1, 0], [1, 0, 1]]
    """
    q, k, real = _pairs(segment_ids)
    return real & ((k == 0) | (q == k))


@MASKS.register("diag")
def diag_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """Every segment sees only itself (block diagonal).

    Example:
        >>> diag_mask(torch.tensor([[0, 1, 2]]))[0].int().tolist()
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    """
    q, k, real = _pairs(segment_ids)
    return real & (q == k)


@MASKS.register("full")
def full_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """Every real token sees every real token.

    Example:
        >>> full_mask(torch.tensor([[0, 1, -1]]))[0].int().tolist()
        [[1, 1, 0], [1, 1, 0], [0, 0, 0]]
    """
    _, _, real = _pairs(segment_ids)
    return real


def build_mask(segment_ids: torch.Tensor, kind: str) -> torch.Tensor:
    """The (B, L, L) boolean "may attend" mask of ``kind`` for a batch of segment ids.

    Args:
        segment_ids: (B, L) integer tensor; 0 = context, 1..N = candidate k, -1 = padding.
        kind: a name registered in :data:`MASKS` (arrow, arrow_strict, diag, full).

    Shapes:
        (B, L) -> (B, L, L) bool.

    Returns:
        The mask of ``kind`` on real tokens; padding tokens attend only to themselves and
        no real token attends to padding.

    Example:
        >>> build_mask(torch.tensor([[0, 1, -1]]), "diag")[0].int().tolist()
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    """
    if segment_ids.dim() != 2:
        raise ValueError(f"segment_ids must be (B, L); got shape {tuple(segment_ids.shape)}")
    allowed = MASKS.get(kind)(segment_ids)
    pad = segment_ids < 0
    idx = torch.arange(segment_ids.shape[1], device=segment_ids.device)
    eye = idx[:, None] == idx[None, :]  # not torch.eye: ONNX Runtime has no bool EyeLike (exported graphs)
    return allowed | (eye[None] & pad[:, :, None])
