"""Poly-encoder (Humeau et al., ICLR 2020), following ParlAI's ``polyencoder_type=codes``.

* The context ``[CLS] context [SEP]`` is encoded alone; ``m`` learned codes (queries)
  attend over its token vectors (keys = values; padding masked) -> ``m`` context vectors.
  ``codes_attention="basic"`` is ParlAI's default (plain dot products); ``"sqrt"``
  divides them by sqrt(H). Codes are initialised uniform in [0, 1) as in ParlAI.
* Each candidate ``[CLS] cand [SEP]`` is encoded alone and pooled (``candidate_pooling``:
  ``mean`` by default — all-MiniLM-L6-v2 was trained with mean pooling — or ``cls``, the
  choice of the BERT-based poly-encoder of the paper).
* The candidate vector attends over the ``m`` context vectors (``poly_attention``, basic by
  default) -> one context vector per candidate; the score is its dot product with the
  candidate vector.

By default context and candidates share one backbone (one set of weights, half the
memory); ``shared_encoder=False`` gives the candidates their own copy of the backbone, as
ParlAI does (``encoder_ctxt`` / ``encoder_cand``, both starting from the same weights).
ParlAI's ``multihead`` attention types and ``n_first`` poly type are not implemented.

Candidate vectors do not depend on the context, so they can be computed once with
:meth:`PolyEncoder.embed_candidates` and reused (:meth:`PolyEncoder.score_embeddings`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry
from .backbone import Backbone
from .base import MODELS, Context, SharedPoolScorer
from .heads import PACKED_POOLINGS, BackboneRanker
from .inputs import PackedBatch, TextPacker

#: attention type -> scale applied to dot products, as a function of the vector size H
ATTENTION_SCALES: Registry[Callable[[int], float]] = Registry("poly attention type")
ATTENTION_SCALES.register("basic")(lambda dim: 1.0)
ATTENTION_SCALES.register("sqrt")(lambda dim: dim**-0.5)


def poly_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    scale: float = 1.0,
) -> torch.Tensor:
    """Dot-product attention of each query over keys/values (ParlAI's BasicAttention).

    Args:
        queries: (B, Q, H).
        keys: (B, K, H).
        values: (B, K, D).
        key_mask: (B, K) bool/int, True (1) where a key may be attended to; None = all.
        scale: multiplies the dot products (1 for "basic", 1/sqrt(H) for "sqrt").

    Shapes:
        -> (B, Q, D): ``softmax(scale * queries @ keys^T, masked) @ values``.

    Example:
        >>> q = torch.tensor([[[1.0, 0.0]]])
        >>> k = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [9.0, 0.0]]])
        >>> v = torch.tensor([[[0.0], [1.0], [100.0]]])
        >>> round(poly_attention(q, k, v, torch.tensor([[1, 1, 0]])).item(), 4)  # e^2/(1+e^2)
        0.8808
    """
    logits = torch.bmm(queries, keys.transpose(1, 2)) * scale
    if key_mask is not None:
        logits = logits.masked_fill(~key_mask.bool()[:, None, :], torch.finfo(logits.dtype).min)
    return torch.bmm(torch.softmax(logits, dim=-1), values)


@MODELS.register("poly")
class PolyEncoder(BackboneRanker, SharedPoolScorer):
    """Poly-encoder with ``n_codes`` learned context codes.

    Args:
        backbone: the (context) encoder and tokenizer.
        candidate_backbone: the candidate encoder when ``shared_encoder=False`` (default: a
            copy of ``backbone``).
        n_codes: m, the number of codes (ParlAI's default is 64; 16 here for MiniLM).
        codes_attention: ``basic`` | ``sqrt`` (codes over context tokens).
        poly_attention: ``basic`` | ``sqrt`` (candidate over the m context vectors).
        candidate_pooling: ``mean`` | ``cls``.
        shared_encoder: one backbone for contexts and candidates.
        max_context_length: tokens of ``[CLS] context [SEP]`` (most recent turns kept).
        max_candidate_length: tokens of ``[CLS] candidate [SEP]``.
        turn_separator: between dialogue turns (see :class:`~unirank.models.inputs.TextPacker`).
        speaker_tokens: tokens marking the context's turns, e.g. ``["[unused1]", "[unused2]"]``
            (see :class:`~unirank.models.inputs.TextPacker`).
        chunk_size: candidates encoded per forward pass in :meth:`embed_candidates`.

    Shapes:
        ``score(B contexts, B lists of N_b candidates)`` -> (B, max N_b), ``-inf`` padded;
        ``score_shared(B contexts, N candidates)`` -> (B, N).

    Example:
        >>> from unirank.models.backbone import tiny_backbone
        >>> m = PolyEncoder(tiny_backbone(), n_codes=4)
        >>> m.embed_contexts(["hi", ["hello", "how are you?"]]).shape
        torch.Size([2, 4, 32])
        >>> m.score_shared(["hi", "hello"], ["a", "b", "c"]).shape
        torch.Size([2, 3])
    """

    kind = "poly"
    _backbone_folders = {"backbone": "backbone", "candidate_backbone": "candidate_backbone"}

    def __init__(
        self,
        backbone: Backbone,
        candidate_backbone: Backbone | None = None,
        *,
        n_codes: int = 16,
        codes_attention: str = "basic",
        poly_attention: str = "basic",
        candidate_pooling: str = "mean",
        shared_encoder: bool = True,
        max_context_length: int = 256,
        max_candidate_length: int = 128,
        turn_separator: str | None = None,
        chunk_size: int = 256,
        speaker_tokens: Sequence[str] | None = None,
    ) -> None:
        super().__init__(backbone)
        ATTENTION_SCALES.get(codes_attention)
        ATTENTION_SCALES.get(poly_attention)
        PACKED_POOLINGS.get(candidate_pooling)
        if candidate_pooling not in ("mean", "cls"):
            raise ConfigError(f"poly candidate_pooling must be 'mean' or 'cls'; got {candidate_pooling!r}")
        if n_codes < 1 or chunk_size < 1:
            raise ConfigError(f"n_codes and chunk_size must be >= 1; got {n_codes}, {chunk_size}")
        if shared_encoder and candidate_backbone is not None:
            raise ConfigError("candidate_backbone given but shared_encoder=True")
        if not shared_encoder and candidate_backbone is None:
            candidate_backbone = Backbone(copy.deepcopy(backbone.model), backbone.tokenizer, backbone.source)
        self.candidate_backbone = candidate_backbone
        self.candidate_encoder = None if candidate_backbone is None else candidate_backbone.model
        self.n_codes = n_codes
        self.codes_attention = codes_attention
        self.poly_attention = poly_attention
        self.candidate_pooling = candidate_pooling
        self.shared_encoder = shared_encoder
        self.chunk_size = chunk_size
        self.packer = TextPacker(
            backbone.tokenizer,
            max_context_length=max_context_length,
            max_candidate_length=max_candidate_length,
            turn_separator=turn_separator,
            candidate_token_type=0,
            speaker_tokens=speaker_tokens,
        )
        for length in (max_context_length, max_candidate_length):
            self._check_positions(length)
        self.codes = nn.Parameter(torch.empty(n_codes, backbone.hidden_size).uniform_())
        self.train(backbone.model.training)  # follow the backbone's mode (eval after loading)

    def settings(self) -> dict[str, Any]:
        p = self.packer
        return {
            "n_codes": self.n_codes,
            "codes_attention": self.codes_attention,
            "poly_attention": self.poly_attention,
            "candidate_pooling": self.candidate_pooling,
            "shared_encoder": self.shared_encoder,
            "max_context_length": p.max_context_length,
            "max_candidate_length": p.max_candidate_length,
            "turn_separator": p.turn_separator,
            "chunk_size": self.chunk_size,
            **({"speaker_tokens": list(p.speaker_tokens)} if p.speaker_tokens else {}),
        }

    def _backbones(self) -> dict[str, Backbone]:
        out = {"backbone": self.backbone}
        if self.candidate_backbone is not None:
            out["candidate_backbone"] = self.candidate_backbone
        return out

    def _is_backbone_key(self, key: str) -> bool:
        return key.startswith(("encoder.", "candidate_encoder."))

    def _check_positions(self, longest: int) -> None:
        if longest > self.backbone.max_positions:
            raise ConfigError(
                f"a segment of {longest} tokens exceeds the backbone's {self.backbone.max_positions} positions"
            )

    def embed_contexts(self, contexts: Sequence[Context]) -> torch.Tensor:
        """The m code vectors of each context.

        Shapes:
            B contexts -> (B, m, H).
        """
        return self.context_codes(self.packer.pack_contexts(contexts))

    def context_codes(self, packed: PackedBatch) -> torch.Tensor:
        """The m code vectors of packed single contexts (:meth:`encode_contexts` after packing).

        Shapes:
            (B, L) packed rows -> (B, m, H).
        """
        hidden = self.encode_packed(packed, None)
        mask = packed.segment_ids.to(hidden.device) >= 0
        codes = self.codes.to(hidden.dtype).unsqueeze(0).expand(hidden.shape[0], -1, -1)
        scale = ATTENTION_SCALES.get(self.codes_attention)(hidden.shape[-1])
        return poly_attention(codes, hidden, hidden, mask, scale)

    def embed_candidates(self, texts: Sequence[str]) -> torch.Tensor:
        """Candidate vectors, ``chunk_size`` texts per forward pass; compute once, reuse.

        Shapes:
            N texts -> (N, H).
        """
        out = []
        for i in range(0, len(texts), self.chunk_size):
            out.append(
                self.candidate_vectors(
                    self.packer.pack_single(texts[i : i + self.chunk_size], self.packer.max_candidate_length)
                )
            )
        if not out:
            return torch.zeros(0, self.backbone.hidden_size, device=self.device)
        return torch.cat(out)

    def candidate_vectors(self, packed: PackedBatch) -> torch.Tensor:
        """Pooled vectors of packed single candidates (:meth:`embed_candidates` after packing).

        Shapes:
            (N, L) packed rows -> (N, H).
        """
        hidden = self.encode_packed(packed, None, encoder=self.candidate_encoder)
        return PACKED_POOLINGS.get(self.candidate_pooling)(hidden, packed.segment_ids.to(hidden.device))

    def score_embeddings(
        self,
        context_codes: torch.Tensor,
        candidate_vectors: torch.Tensor,
        candidate_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scores from precomputed context codes and candidate vectors.

        Args:
            context_codes: (B, m, H) from :meth:`embed_contexts`.
            candidate_vectors: (N, H) shared by all contexts (e.g. in-batch negatives or a
                fixed candidate set) or (B, N, H) per context.
            candidate_mask: optional (B, N) bool, False for padding slots (scored ``-inf``).

        Shapes:
            -> (B, N).
        """
        B = context_codes.shape[0]
        cand = candidate_vectors.to(context_codes.dtype)
        if cand.dim() == 2:
            cand = cand.unsqueeze(0).expand(B, -1, -1)
        scale = ATTENTION_SCALES.get(self.poly_attention)(cand.shape[-1])
        final = poly_attention(cand, context_codes, context_codes, None, scale)  # (B, N, H)
        scores = (final * cand).sum(-1)
        if candidate_mask is not None:
            scores = scores.masked_fill(~candidate_mask.to(scores.device).bool(), float("-inf"))
        return scores

    def score_shared(self, contexts: Sequence[Context], candidates: Sequence[str]) -> torch.Tensor:
        """Every context against the same N candidates (in-batch negatives). Shapes: -> (B, N)."""
        return self.score_embeddings(self.embed_contexts(contexts), self.embed_candidates(candidates))

    def score(self, contexts: Sequence[Context], candidates: Sequence[Sequence[str]]) -> torch.Tensor:
        """Scores for each context's own candidates.

        Shapes:
            B contexts, candidates[b] has N_b texts -> (B, max N_b); slots past N_b are ``-inf``.
        """
        if len(contexts) != len(candidates):
            raise ValueError(f"{len(contexts)} contexts but {len(candidates)} candidate lists")
        B, n_max = len(contexts), max((len(c) for c in candidates), default=0)
        codes = self.embed_contexts(contexts)
        flat = self.embed_candidates([c for cands in candidates for c in cands])
        owner = torch.tensor([b for b, cands in enumerate(candidates) for _ in cands], dtype=torch.long)
        slot = torch.tensor([k for cands in candidates for k in range(len(cands))], dtype=torch.long)
        padded = flat.new_zeros(B, n_max, flat.shape[-1]).index_put((owner.to(flat.device), slot.to(flat.device)), flat)
        mask = torch.zeros(B, n_max, dtype=torch.bool).index_put(
            (owner, slot), torch.ones(len(owner), dtype=torch.bool)
        )
        return self.score_embeddings(codes, padded, mask)
