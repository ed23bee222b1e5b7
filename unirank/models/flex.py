"""The masked Uni-Encoder pass on PyTorch FlexAttention: no (B, L, L) mask, blocks skipped.

The masked pass (:meth:`~unirank.models.heads.ScoringHead.encode_packed`) hands the backbone
an additive (B, 1, L, L) mask, so the attention kernel reads the whole mask and computes every
query-key pair. FlexAttention instead takes a ``mask_mod`` (:func:`unirank.models.masks.mask_mod`,
the same rule as the dense mask) and a :class:`~torch.nn.attention.flex_attention.BlockMask`
that says which ``block_size`` x ``block_size`` tiles hold any allowed pair: with ``arrow`` /
``arrow_strict`` the tiles between different candidates are skipped, and the kernel is a
fused, compiled one whatever the mask.

What it costs: the first call per shape compiles the kernel (seconds on a GPU, ~30 s on a
2-core CPU); rows are padded to a multiple of ``block_size`` so that few shapes occur.
transformers' FlexAttention path has no attention dropout, so it is used for scoring
(``model.eval()``) only; a training step in train mode takes the dense masked pass (same
function, with dropout).

Only the backbone's attention implementation is switched, for the duration of the call
(:func:`flex_encode`); the outputs equal the dense masked pass up to float rounding (tests).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch

from .backbone import position_offset
from .masks import mask_mod
from .inputs import PackedBatch


def flex_available() -> bool:
    """Whether this torch has FlexAttention (``torch.nn.attention.flex_attention``, torch >= 2.5)."""
    try:
        from torch.nn.attention.flex_attention import create_block_mask  # noqa: F401
    except ImportError:
        return False
    return True


def supports_flex(model: Any) -> bool:
    """Whether the transformers model declares a FlexAttention path (``_supports_flex_attn``)."""
    return bool(getattr(model, "_supports_flex_attn", False)) and flex_available()


@contextlib.contextmanager
def attention_implementation(model: Any, name: str) -> Iterator[None]:
    """Run the body with ``model.config._attn_implementation = name``, then restore it.

    transformers reads the attribute from the (shared) config at every forward, so switching
    it is free; nothing else of the model changes.
    """
    before = model.config._attn_implementation
    model.config._attn_implementation = name
    try:
        yield
    finally:
        model.config._attn_implementation = before


def pad_rows(packed: PackedBatch, multiple: int) -> PackedBatch:
    """``packed`` with every row padded to a multiple of ``multiple`` tokens (segment id -1).

    Example:
        >>> p = PackedBatch(torch.ones(1, 3, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long),
        ...                 torch.arange(3)[None], torch.tensor([[0, 1, 1]]), torch.ones(1, 1, dtype=torch.bool))
        >>> pad_rows(p, 4).segment_ids.tolist()
        [[0, 1, 1, -1]]
    """
    L = packed.input_ids.shape[1]
    extra = math.ceil(L / multiple) * multiple - L
    if extra == 0:
        return packed

    def grow(t: torch.Tensor, value: int) -> torch.Tensor:
        return torch.nn.functional.pad(t, (0, extra), value=value)

    return PackedBatch(
        input_ids=grow(packed.input_ids, 0),
        token_type_ids=grow(packed.token_type_ids, 0),
        position_ids=grow(packed.position_ids, 0),
        segment_ids=grow(packed.segment_ids, -1),
        candidate_mask=packed.candidate_mask,
    )


def flex_encode(model: Any, packed: PackedBatch, kind: str, block_size: int = 128) -> torch.Tensor:
    """Last hidden states (B, L, H) of a packed batch under mask ``kind``, via FlexAttention.

    Args:
        model: a transformers encoder with a FlexAttention path (:func:`supports_flex`).
        packed: the batch, on the model's device.
        kind: a mask kind of :data:`~unirank.models.masks.MASKS`.
        block_size: FlexAttention's tile size (rows are padded to a multiple of it).

    Shapes:
        -> (B, L, H), L = ``packed.input_ids.shape[1]`` (the padding added here is cut off).
    """
    from torch.nn.attention.flex_attention import create_block_mask

    B, L = packed.input_ids.shape
    padded = pad_rows(packed, block_size)
    Lp = padded.input_ids.shape[1]
    block_mask = create_block_mask(
        mask_mod(padded.segment_ids, kind), B, None, Lp, Lp, device=padded.input_ids.device, BLOCK_SIZE=block_size
    )
    with attention_implementation(model, "flex_attention"):
        out = model(
            input_ids=padded.input_ids,
            attention_mask=block_mask,
            token_type_ids=padded.token_type_ids,
            position_ids=padded.position_ids + position_offset(model),
        ).last_hidden_state
    return out[:, :L]
