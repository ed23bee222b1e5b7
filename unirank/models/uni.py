"""Uni-Encoder (Song et al., Findings of ACL 2023): all candidates in one forward pass.

A row packs ``[CLS] context [SEP]`` followed by every candidate as ``[CLS] cand [SEP]``
(layout in :mod:`unirank.models.inputs`): token type 0 for the context and 1 for
candidates, context positions ``0..c-1`` and every candidate's positions restarting at
``c``. An attention mask (:mod:`unirank.models.masks`, default ``arrow`` as in the paper)
keeps candidates from seeing each other. Each candidate's score is a linear layer on the
mean of its token vectors, its own ``[CLS]`` and ``[SEP]`` included — the tokens the
official code (dll-wu/Uni-Encoder, ``uni_encoder.py``) averages — or, with
``candidate_pooling="cls"``, on the vector of its own ``[CLS]`` (one token that attends to
the whole candidate; a mean over a 256-token document dilutes what a reply-sized
candidate keeps). Training is cross-entropy over a context's candidate set (the loss
lives in ``unirank.losses``).

Long lists are scored ``chunk_size`` candidates per forward pass. With ``arrow_strict``
(or ``diag``) chunking is exact. With ``arrow`` (or ``full``) the context attends to the
candidates of its chunk only, so scores depend on how the list is chunked — as they
depend on the candidate set in the paper's setting.

Memory grows with the square of the packed length ``c + sum of candidate lengths``;
``chunk_size`` bounds it. Positions need ``max_context_length + max_candidate_length <=``
the backbone's position embeddings (512 for BERT / MiniLM).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ConfigError
from .backbone import Backbone, mean_pool
from .base import MODELS, Context
from .heads import BackboneRanker, segment_first, segment_mean
from .inputs import PackedBatch
from .masks import MASKS
from .segmented import segmented_candidate_states, segmented_hidden_states, supports_segmented

#: ``segmented="auto"``: the shortest longest-candidate segment (tokens, ``[CLS]``/``[SEP]``
#: included) from which the segmented pass is taken, per (device type, half precision).
#: Measured with bench/uni_pass_sweep.py (bench/RESULTS.md, 10 equal-length candidates,
#: contexts of 64 and 256 tokens): on an H100 the segmented pass overtakes the masked one
#: between 64 and 128 tokens in fp32 and between 128 and 256 in bf16 (fp16 assumed alike); on
#: the 2-core CPU between 32 and 64. Other device types (mps, xpu) use the CPU values, unmeasured.
SEGMENTED_MIN_WIDTH = {("cuda", False): 128, ("cuda", True): 256, ("cpu", False): 64, ("cpu", True): 64}

#: ``segmented="auto"`` also needs the candidates to fill at least this share of the padded
#: (candidates x longest candidate) grid the segmented pass computes: one long reply among short
#: ones makes it pad them all. ``bench/uni_pass_sweep.py --mixed 12`` on the CPU: one candidate
#: of 128 tokens and nine of 12 (18% filled) - segmented at 0.63x the masked pass's speed; one of
#: 64 (27%) - 0.74x; equal lengths fill 100%. The 0.5 itself is a guard between those, not a
#: measured crossover.
SEGMENTED_MIN_FILL = 0.5


def candidate_layout(segment_ids: torch.Tensor) -> tuple[int, float]:
    """(tokens of the longest candidate segment, share of the padded (real candidates x longest)
    grid that real candidate tokens fill) of a packed batch (segment ids > 0 are candidates).

    Example:
        >>> candidate_layout(torch.tensor([[0, 0, 1, 1, 1, 2, -1], [0, 1, 2, 2, -1, -1, -1]]))
        (3, 0.5833333333333334)
    """
    seg = segment_ids.clamp(min=0)
    counts = torch.zeros(seg.shape[0], int(seg.max()) + 1, dtype=torch.long, device=seg.device)
    counts.scatter_add_(1, seg, torch.ones_like(seg))
    cand = counts[:, 1:]
    if cand.numel() == 0 or int(cand.max()) == 0:
        return 0, 1.0
    width = int(cand.max())
    return width, float(cand.sum()) / (int((cand > 0).sum()) * width)


def segmented_pays_off(device_type: str, half: bool, width: int, fill: float = 1.0) -> bool:
    """``segmented="auto"``'s choice: is the segmented pass expected to be faster than the
    masked one for a batch whose longest candidate segment has ``width`` tokens and whose
    candidates fill ``fill`` of the padded grid (:data:`SEGMENTED_MIN_WIDTH`,
    :data:`SEGMENTED_MIN_FILL`; device types other than ``cuda`` follow the CPU)?

    Example:
        >>> segmented_pays_off("cuda", False, 32), segmented_pays_off("cuda", False, 256), segmented_pays_off(
        ...     "cuda", True, 128)
        (False, True, False)
        >>> segmented_pays_off("cpu", False, 128, fill=0.18)
        False
    """
    key = (device_type if device_type == "cuda" else "cpu", bool(half))
    return width >= SEGMENTED_MIN_WIDTH[key] and fill >= SEGMENTED_MIN_FILL


def _cuda_autocast_on() -> bool:
    """Whether CUDA autocast is active (torch < 2.4 takes no device argument and means CUDA)."""
    try:
        return bool(torch.is_autocast_enabled("cuda"))
    except TypeError:
        return bool(torch.is_autocast_enabled())


@MODELS.register("uni")
class UniEncoder(BackboneRanker):
    """Scores all of a context's candidates in one pass over one packed sequence.

    Args:
        backbone: the encoder and tokenizer (:func:`~unirank.models.backbone.load_backbone`).
        mask: attention mask kind: ``arrow`` (paper), ``arrow_strict``, ``diag`` or ``full``.
        max_context_length: tokens of the context segment, ``[CLS]``/``[SEP]`` included.
        max_candidate_length: tokens of one candidate segment, its specials included.
        chunk_size: most candidates per context in one forward pass (``None``: no limit).
        turn_separator: between dialogue turns (see :class:`~unirank.models.inputs.TextPacker`).
        speaker_tokens: tokens marking the context's turns, e.g. ``["[unused1]", "[unused2]"]``
            (see :class:`~unirank.models.inputs.TextPacker`).
        candidate_cls: candidates are ``[CLS] cand [SEP]`` (paper) or ``cand [SEP]``.
        candidate_pooling: ``mean`` (the paper: mean of the candidate's tokens) or ``cls`` (the
            candidate's own ``[CLS]``; needs ``candidate_cls``).
        candidate_token_type: token type id of candidate tokens (1; 0 for models with one
            token type).
        segmented: with ``arrow`` / ``arrow_strict`` on a BERT-family backbone, compute the
            same scores segment by segment (:mod:`unirank.models.segmented`: the context once,
            candidates as short rows attending to its keys) instead of one masked pass over
            the packed row. ``True`` / ``False`` force one pass; ``"auto"`` (default) picks per
            batch by :func:`segmented_pays_off` - the segmented pass for long candidates
            (reranking documents), the masked one for short replies, where it is faster on a
            GPU (``bench/uni_pass_sweep.py``).

    Shapes:
        ``score(B contexts, B lists of N_b candidates)`` -> (B, max N_b), ``-inf`` padded.

    Example:
        >>> from unirank.models.backbone import tiny_backbone
        >>> m = UniEncoder(tiny_backbone(), mask="arrow_strict")
        >>> m.score(["how do I sort a list?"], [["use sorted()", "no idea", "list.sort()"]]).shape
        torch.Size([1, 3])
    """

    kind = "uni"

    def __init__(
        self,
        backbone: Backbone,
        *,
        mask: str = "arrow",
        max_context_length: int = 256,
        max_candidate_length: int = 128,
        chunk_size: int | None = 32,
        turn_separator: str | None = None,
        speaker_tokens: Sequence[str] | None = None,
        candidate_cls: bool = True,
        candidate_pooling: str = "mean",
        candidate_token_type: int = 1,
        segmented: bool | str = "auto",
    ) -> None:
        super().__init__(backbone)
        MASKS.get(mask)  # unknown kinds fail here, listing the valid ones
        if segmented not in (True, False, "auto"):  # 1 / 0 are True / False here, as in YAML
            raise ConfigError(f"uni: segmented must be true, false or auto; got {segmented!r}")
        if candidate_pooling not in ("mean", "cls"):
            raise ConfigError(f"uni: candidate_pooling must be 'mean' or 'cls'; got {candidate_pooling!r}")
        if candidate_pooling == "cls" and not candidate_cls:
            raise ConfigError("uni: candidate_pooling 'cls' needs candidate_cls true (the candidate's own [CLS])")
        self.mask = mask
        self.candidate_pooling = candidate_pooling
        self.segmented: bool | str = segmented if segmented == "auto" else bool(segmented)
        self._init_scoring_head(
            chunk_size,
            max_context_length=max_context_length,
            max_candidate_length=max_candidate_length,
            turn_separator=turn_separator,
            speaker_tokens=speaker_tokens,
            candidate_cls=candidate_cls,
            candidate_token_type=candidate_token_type,
        )

    def settings(self) -> dict[str, Any]:
        return {
            "mask": self.mask,
            "segmented": self.segmented,
            "candidate_pooling": self.candidate_pooling,
            **self._packer_settings(),
        }

    @property
    def uses_segmented_pass(self) -> bool:
        """Whether :meth:`candidate_vectors` can take the segment-factorised pass
        (:mod:`unirank.models.segmented`): ``segmented`` is not ``False``, the mask is ``arrow`` /
        ``arrow_strict`` and the backbone is BERT-family. With ``"auto"`` each batch decides
        (:meth:`takes_segmented_pass`)."""
        return (
            self.segmented is not False and self.mask in ("arrow", "arrow_strict") and supports_segmented(self.encoder)
        )

    def takes_segmented_pass(self, packed: PackedBatch) -> bool:
        """Whether this batch goes through the segmented pass (see ``segmented``). Inside
        :meth:`masked_lm` too: the MLM loss then reads every token's state from
        :func:`~unirank.models.segmented.segmented_hidden_states`."""
        if not self.uses_segmented_pass:
            return False
        if self.segmented is True:
            return True
        return segmented_pays_off(self.device.type, self._half(), *candidate_layout(packed.segment_ids))

    def _half(self) -> bool:
        dtype = next(self.encoder.parameters()).dtype
        return dtype in (torch.float16, torch.bfloat16) or (self.device.type == "cuda" and _cuda_autocast_on())

    @property
    def may_take_segmented_pass(self) -> bool:
        """Whether any batch can go through the segmented pass: ``segmented=True``, or ``"auto"``
        and candidates as long as ``max_candidate_length`` would reach the threshold."""
        if not self.uses_segmented_pass:
            return False
        widest = self.packer.max_candidate_length
        return self.segmented is True or any(segmented_pays_off(self.device.type, h, widest) for h in (False, True))

    def candidate_vectors(self, packed: PackedBatch) -> torch.Tensor:
        """Pooled vector of every candidate slot (``candidate_pooling``). Shapes: -> (B, N, H)."""
        segmented = self.takes_segmented_pass(packed)
        if segmented and self._mlm_pass is not None:  # masked input; the loss needs context states too
            packed, labels = self._mlm_corrupt(packed.to(self.device), None)
            hidden = segmented_hidden_states(self.encoder, packed, self.mask == "arrow")
            self._mlm_observe(hidden, labels)
        elif segmented:
            states, valid = segmented_candidate_states(self.encoder, packed.to(self.device), self.mask == "arrow")
            B, N, R, H = states.shape
            if self.candidate_pooling == "cls":  # a segment's tokens are in order, [CLS] first
                first = states[:, :, :1].sum(2).float()  # (B, N, H); no candidate at all -> (B, 0, H)
                return first * valid[:, :, :1].any(2, keepdim=True).to(torch.float32)
            return mean_pool(states.reshape(B * N, R, H).float(), valid.reshape(B * N, R)).view(B, N, H)
        else:
            hidden = self.encode_packed(packed, self.mask)
        pool = segment_first if self.candidate_pooling == "cls" else segment_mean
        return pool(hidden, packed.segment_ids.to(hidden.device), packed.candidate_mask.shape[1])

    def forward(self, packed: PackedBatch) -> torch.Tensor:
        """Scores of a packed batch. Shapes: -> (B, N); absent candidate slots are ``-inf``."""
        vecs = self.candidate_vectors(packed)
        scores = self.head(vecs.to(self.head.weight.dtype)).squeeze(-1)
        return scores.masked_fill(~packed.candidate_mask.to(scores.device), float("-inf"))

    def score(self, contexts: Sequence[Context], candidates: Sequence[Sequence[str]]) -> torch.Tensor:
        """Scores for each context's candidates, ``chunk_size`` candidates per pass.

        Shapes:
            B contexts, candidates[b] has N_b texts -> (B, max N_b); slots past N_b are ``-inf``.
        """
        if len(contexts) != len(candidates):
            raise ValueError(f"{len(contexts)} contexts but {len(candidates)} candidate lists")
        n_max = max((len(c) for c in candidates), default=0)
        if n_max == 0:
            return torch.full((len(contexts), 0), float("-inf"), device=self.device)
        ctx_ids = self.packer.context_ids(contexts)
        cand_ids = self.packer.candidate_groups(candidates)
        step = self.chunk_size or n_max
        columns = []
        for start in range(0, n_max, step):
            rows = [b for b, cands in enumerate(cand_ids) if len(cands) > start]
            packed = self.packer.pack_ids([ctx_ids[b] for b in rows], [cand_ids[b][start : start + step] for b in rows])
            scores = self(packed)
            chunk = torch.full(
                (len(contexts), scores.shape[1]), float("-inf"), device=scores.device, dtype=scores.dtype
            )
            chunk = chunk.index_copy(0, torch.tensor(rows, device=scores.device), scores)
            columns.append(chunk)
        return torch.cat(columns, dim=1) if len(columns) > 1 else columns[0]
