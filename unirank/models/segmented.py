"""Segment-factorised encoder pass for the Uni-Encoder's ``arrow`` masks (BERT-style backbones).

With an ``arrow`` or ``arrow_strict`` mask a candidate token only attends to the context and
to its own candidate. Run as one packed sequence with a ``(L, L)`` mask (the generic path),
every candidate query still multiplies against all ``c + N r`` keys, most of them masked, and
the additive mask keeps the fused attention kernels out. This module computes the *same*
function segment by segment, layer by layer, with the backbone's own weights:

* the context's ``c`` tokens attend to the context (``arrow_strict``) or to every real token
  (``arrow``: context keys plus all candidates' keys);
* the ``N`` candidates are a batch of ``N`` short rows of ``r`` tokens; each attends to the
  context's keys/values of the same layer (shared, not recomputed) and its own.

Linear layers and feed-forward blocks then run on ``c + N r`` tokens per context and
attention on ``c (c [+ N r]) + N r (c + r)`` query-key pairs instead of ``(c + N r)^2`` -
the cost the token ratio ``N (c + r) / (c + N r)`` promises against a cross-encoder - and
attention calls carry only key-padding masks (none when nothing is padded), so PyTorch's
``scaled_dot_product_attention`` can use its fused kernels.

Only the layer structure of Hugging Face BERT-family encoders is assumed (``embeddings``;
``encoder.layer[i].attention.self.{query,key,value}``, ``attention.output``,
``feed_forward_chunk``; absolute position embeddings). :func:`supports_segmented` checks it;
other backbones fall back to the masked pass. Equality with the masked pass is tested.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from .inputs import PackedBatch

__all__ = ["supports_segmented", "segment_layout", "segmented_candidate_states", "segmented_hidden_states"]


def supports_segmented(model: Any) -> bool:
    """True when ``model`` has the BERT layer structure this module drives.

    Example:
        >>> from unirank.models.backbone import tiny_backbone
        >>> supports_segmented(tiny_backbone().model), supports_segmented(torch.nn.Linear(2, 2))
        (True, False)
    """
    cfg = getattr(model, "config", None)
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if cfg is None or layers is None or not hasattr(model, "embeddings") or getattr(cfg, "is_decoder", False):
        return False
    if getattr(cfg, "position_embedding_type", "absolute") not in (None, "absolute"):
        return False
    for layer in layers:
        sa = getattr(getattr(layer, "attention", None), "self", None)
        if sa is None or not all(
            hasattr(sa, a) for a in ("query", "key", "value", "num_attention_heads", "attention_head_size")
        ):
            return False
        if not hasattr(layer.attention, "output") or not callable(getattr(layer, "feed_forward_chunk", None)):
            return False
    return True


def segment_layout(packed: PackedBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where each segment sits in the packed rows.

    Returns:
        ``(ctx_index (B, C), ctx_valid (B, C), cand_index (B, N, R), cand_valid (B, N, R))``:
        token positions in the packed row (clamped into range where not valid) and which of
        them are real, for ``C`` / ``R`` the longest context / candidate segment.

    Example:
        >>> from unirank.models.inputs import pack_segments
        >>> b = pack_segments([[7]], [[[5], [6, 6]]], cls_id=1, sep_id=2, pad_id=0)
        >>> ci, cv, ki, kv = segment_layout(b)
        >>> ci.tolist(), ki.tolist(), kv.tolist()
        ([[0, 1, 2]], [[[3, 4, 5, 6], [6, 7, 8, 9]]], [[[True, True, True, False], [True, True, True, True]]])
    """
    seg = packed.segment_ids
    B, L = seg.shape
    N = packed.candidate_mask.shape[1]
    counts = torch.zeros(B, N + 1, dtype=torch.long, device=seg.device)
    counts.scatter_add_(1, seg.clamp(min=0), (seg >= 0).long())
    starts = torch.cumsum(counts, 1) - counts
    C = int(counts[:, 0].max())
    R = int(counts[:, 1:].max()) if N else 0
    ar_c = torch.arange(C, device=seg.device)
    ctx_index = ar_c[None, :].expand(B, C).clamp(max=L - 1)
    ctx_valid = ar_c[None, :] < counts[:, :1]
    ar_r = torch.arange(R, device=seg.device)
    cand_index = (starts[:, 1:, None] + ar_r).clamp(max=L - 1)
    cand_valid = ar_r[None, None, :] < counts[:, 1:, None]
    return ctx_index, ctx_valid, cand_index, cand_valid


def _padded_heads(flat: torch.Tensor, pos: torch.Tensor, rows: int, width: int, heads: int, size: int) -> torch.Tensor:
    """Real-token vectors (T, heads * size) placed at ``pos`` of a zero (rows * width) grid
    -> (rows, heads, width, size) for attention."""
    grid = flat.new_zeros(rows * width, flat.shape[-1]).index_copy(0, pos, flat)
    return grid.view(rows, width, heads, size).transpose(1, 2)


def _real_tokens(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """(rows, heads, width, size) attention output -> (T, heads * size) at the real positions."""
    return x.transpose(1, 2).flatten(2).flatten(0, 1).index_select(0, pos)


def _key_mask(valid: torch.Tensor) -> torch.Tensor | None:
    """(rows, T) bool -> SDPA boolean mask (rows, 1, 1, T), or None when nothing is padded."""
    return None if bool(valid.all()) else valid[:, None, None, :]


def segmented_candidate_states(
    model: Any, packed: PackedBatch, context_sees_candidates: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Last hidden states of every candidate token, computed segment by segment.

    Args:
        model: a BERT-family encoder (:func:`supports_segmented`).
        packed: a Uni-Encoder batch (:mod:`unirank.models.inputs` layout) on the model's device.
        context_sees_candidates: ``True`` for the ``arrow`` mask (context attends to all real
            tokens), ``False`` for ``arrow_strict`` (context attends to itself).

    Shapes:
        -> ``(states (B, N, R, H), valid (B, N, R) bool)``.

    Returns:
        The states the masked pass would give the candidate tokens (padding slots hold
        values to be ignored).
    """
    run = _segmented_pass(model, packed, context_sees_candidates, context_states=False)
    B, N, R = run.cand_valid.shape
    H = run.x_k.shape[-1]
    states = run.x_k.new_zeros(B * N * R, H).index_copy(0, run.cand_pos, run.x_k)
    return states.view(B, N, R, H), run.cand_valid


def segmented_hidden_states(model: Any, packed: PackedBatch, context_sees_candidates: bool) -> torch.Tensor:
    """Last hidden states of every token of the packed rows, computed segment by segment.

    What the masked pass returns (``(B, L, H)``; padding positions hold zeros), for consumers
    that need the context's states too - the MLM auxiliary loss
    (:mod:`unirank.models.mlm_aux`) reads every masked token, context or candidate. Costs
    :func:`segmented_candidate_states` plus the context's last layer.

    Shapes:
        -> ``(B, L, H)``.
    """
    run = _segmented_pass(model, packed, context_sees_candidates, context_states=True)
    B, L = packed.input_ids.shape
    C = run.ctx_index.shape[1]
    N, R = run.cand_valid.shape[1:]
    dev = run.x_k.device
    rows_c = torch.arange(B, device=dev).repeat_interleave(C)[run.ctx_pos]
    rows_k = torch.arange(B, device=dev).repeat_interleave(N * R)[run.cand_pos]
    at_c = rows_c * L + run.ctx_index.flatten()[run.ctx_pos]  # flat (B * L) positions of the real tokens
    at_k = rows_k * L + run.cand_index.flatten()[run.cand_pos]
    hidden = run.x_k.new_zeros(B * L, run.x_k.shape[-1])
    hidden = hidden.index_copy(0, at_c, run.x_c.to(hidden.dtype)).index_copy(0, at_k, run.x_k)
    return hidden.view(B, L, hidden.shape[-1])


class _SegmentedRun(NamedTuple):
    x_c: torch.Tensor  # (T_c, H) context tokens' states (last layer only with context_states)
    x_k: torch.Tensor  # (T_k, H) candidate tokens' last-layer states
    ctx_index: torch.Tensor
    ctx_pos: torch.Tensor  # real context tokens' positions in the (B * C) grid
    cand_index: torch.Tensor
    cand_pos: torch.Tensor  # real candidate tokens' positions in the (B * N * R) grid
    cand_valid: torch.Tensor


def _segmented_pass(
    model: Any, packed: PackedBatch, context_sees_candidates: bool, context_states: bool
) -> _SegmentedRun:
    """The layer loop of :func:`segmented_candidate_states`; with ``context_states`` the
    context's last layer is computed too (otherwise ``x_c`` holds its second-to-last states,
    which no score needs)."""
    ctx_index, ctx_valid, cand_index, cand_valid = segment_layout(packed)
    B, N, R = cand_index.shape
    C = ctx_index.shape[1]
    from .backbone import position_offset

    emb = model.embeddings(
        input_ids=packed.input_ids,
        token_type_ids=packed.token_type_ids,
        position_ids=packed.position_ids + position_offset(model),
    )
    # linear and feed-forward layers run on real tokens only (T_c context + T_k candidate tokens);
    # attention runs on (rows, width) grids with key-padding masks
    ctx_pos = ctx_valid.flatten().nonzero().squeeze(1)  # positions in the (B * C) grid
    cand_pos = cand_valid.flatten().nonzero().squeeze(1)  # positions in the (B * N * R) grid
    rows_c = torch.arange(B, device=emb.device).repeat_interleave(C)[ctx_pos]
    x_c = emb[rows_c, ctx_index.flatten()[ctx_pos]]  # (T_c, H)
    rows_k = torch.arange(B, device=emb.device).repeat_interleave(N * R)[cand_pos]
    x_k = emb[rows_k, cand_index.flatten()[cand_pos]]  # (T_k, H)
    ctx_keys_valid = torch.cat([ctx_valid, cand_valid.reshape(B, N * R)], 1) if context_sees_candidates else ctx_valid
    ctx_mask = _key_mask(ctx_keys_valid)
    cand_mask = _key_mask(torch.cat([ctx_valid.repeat_interleave(N, 0), cand_valid.reshape(B * N, R)], 1))
    layers = list(model.encoder.layer)
    for i, layer in enumerate(layers):
        sa = layer.attention.self
        h, d = sa.num_attention_heads, sa.attention_head_size
        p = sa.dropout.p if model.training else 0.0
        scale = getattr(sa, "scaling", d**-0.5)
        qc, kc, vc = (
            _padded_heads(lin(x_c), ctx_pos, B, C, h, d) for lin in (sa.query, sa.key, sa.value)
        )  # (B, h, C, d)
        qk, kk, vk = (
            _padded_heads(lin(x_k), cand_pos, B * N, R, h, d) for lin in (sa.query, sa.key, sa.value)
        )  # (B*N, h, R, d)
        update_context = context_states or i < len(layers) - 1  # scores never use the context's last layer
        if update_context:
            if context_sees_candidates:  # keys of the context, then of every candidate of the row
                k_all = torch.cat([kc, kk.view(B, N, h, R, d).permute(0, 2, 1, 3, 4).reshape(B, h, N * R, d)], 2)
                v_all = torch.cat([vc, vk.view(B, N, h, R, d).permute(0, 2, 1, 3, 4).reshape(B, h, N * R, d)], 2)
            else:
                k_all, v_all = kc, vc
            a_c = F.scaled_dot_product_attention(qc, k_all, v_all, attn_mask=ctx_mask, dropout_p=p, scale=scale)
            x_c_next = layer.feed_forward_chunk(layer.attention.output(_real_tokens(a_c, ctx_pos), x_c))
        kc_n = kc[:, None].expand(B, N, h, C, d).reshape(B * N, h, C, d)
        vc_n = vc[:, None].expand(B, N, h, C, d).reshape(B * N, h, C, d)
        a_k = F.scaled_dot_product_attention(
            qk, torch.cat([kc_n, kk], 2), torch.cat([vc_n, vk], 2), attn_mask=cand_mask, dropout_p=p, scale=scale
        )
        x_k = layer.feed_forward_chunk(layer.attention.output(_real_tokens(a_k, cand_pos), x_k))
        if update_context:
            x_c = x_c_next
    return _SegmentedRun(x_c, x_k, ctx_index, ctx_pos, cand_index, cand_pos, cand_valid)
