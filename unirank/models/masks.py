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

#: a mask kind: a rule on (query segment id, key segment id) of *real* tokens -> may attend.
#: Works elementwise on broadcastable tensors, so the same rule builds the dense (B, L, L)
#: matrix (:func:`build_mask`) and a FlexAttention ``mask_mod`` (:func:`mask_mod`) that never
#: materialises it. Padding is handled by the callers, not by the rules.
MaskRule = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: mask kind name -> rule (register with ``@MASKS.register("name")``)
MASKS: Registry[MaskRule] = Registry("attention mask kind")


@MASKS.register("arrow")
def arrow_rule(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Context sees everything; a candidate sees the context and itself (official Uni-Encoder).

    Example:
        >>> seg = torch.tensor([0, 1, 2])
        >>> arrow_rule(seg[:, None], seg[None, :]).int().tolist()
        [[1, 1, 1], [1, 1, 0], [1, 0, 1]]
    """
    return (q == 0) | (k == 0) | (q == k)


@MASKS.register("arrow_strict")
def arrow_strict_rule(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Context sees only itself; a candidate sees the context and itself.

    Example:
        >>> seg = torch.tensor([0, 1, 2])
        >>> arrow_strict_rule(seg[:, None], seg[None, :]).int().tolist()
        [[1, 0, 0], [1, 1, 0], [1, 0, 1]]
    """
    return (k == 0) | (q == k)


@MASKS.register("diag")
def diag_rule(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Every segment sees only itself (block diagonal).

    Example:
        >>> seg = torch.tensor([0, 1, 2])
        >>> diag_rule(seg[:, None], seg[None, :]).int().tolist()
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    """
    return q == k


@MASKS.register("full")
def full_rule(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Every real token sees every real token.

    Example:
        >>> seg = torch.tensor([0, 1, 2])
        >>> full_rule(seg[:, None], seg[None, :]).all().item()
        True
    """
    return (q >= 0) | (k >= 0)  # true for every real pair, shaped like the broadcast of q and k


def _allowed(q: torch.Tensor, k: torch.Tensor, same_token: torch.Tensor, kind_rule: MaskRule) -> torch.Tensor:
    """The rule on real pairs; padding tokens attend only to themselves, real tokens never to padding."""
    real = (q >= 0) & (k >= 0)
    return (real & kind_rule(q, k)) | (same_token & (q < 0))


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
    rule = MASKS.get(kind)
    eye = torch.eye(segment_ids.shape[1], dtype=torch.bool, device=segment_ids.device)
    return _allowed(segment_ids[:, :, None], segment_ids[:, None, :], eye[None], rule)


def mask_mod(segment_ids: torch.Tensor, kind: str) -> Callable[..., torch.Tensor]:
    """The FlexAttention ``mask_mod(b, h, q_idx, kv_idx)`` of ``kind`` for a batch of segment ids:
    the same "may attend" entries as :func:`build_mask`, computed where the kernel needs them
    (no (B, L, L) tensor).

    Example:
        >>> seg = torch.tensor([[0, 1, -1]])
        >>> f = mask_mod(seg, "arrow")
        >>> i = torch.arange(3)
        >>> f(0, 0, i[:, None], i[None, :]).int().tolist() == build_mask(seg, "arrow")[0].int().tolist()
        True
    """
    if segment_ids.dim() != 2:
        raise ValueError(f"segment_ids must be (B, L); got shape {tuple(segment_ids.shape)}")
    rule = MASKS.get(kind)

    def mod(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        return _allowed(segment_ids[b, q_idx], segment_ids[b, kv_idx], q_idx == kv_idx, rule)

    return mod
