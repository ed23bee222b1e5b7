"""Cross-encoder: each (context, candidate) pair through the backbone together.

A pair is packed by the same code as the Uni-Encoder (:mod:`unirank.models.inputs`), as a
row with exactly one candidate, and run with the ``full`` mask (every real token sees
every real token). With the default ``candidate_cls=False`` the row is the standard BERT
pair encoding ``[CLS] context [SEP] candidate [SEP]`` with token types 0/1 and positions
``0..T-1`` — what ``tokenizer(context, candidate)`` gives (truncation aside: context and
candidate are capped separately, the context from the left).

With one candidate the ``arrow`` and ``full`` masks coincide, so a
:class:`~unirank.models.uni.UniEncoder` with ``mask="arrow"`` (or ``"full"``) scoring a
single candidate and a ``CrossEncoder`` with ``pooling="candidate_mean"``, the same
``candidate_cls`` and the same backbone and head weights perform the same computation
and give the same score. (``arrow_strict`` / ``diag`` differ: there the context cannot
see the candidate.)

Pooling (registry :data:`~unirank.models.heads.PACKED_POOLINGS`): ``cls`` (default; the
``[CLS]`` vector, as BERT rerankers do, but without BERT's tanh pooler layer), ``mean``
(all tokens) or ``candidate_mean`` (the candidate segment's tokens). A linear layer maps
the pooled vector to the score; with ``head_activation="tanh"`` a hidden ``H x H`` layer
and tanh come first - BERT's pooler (RoBERTa's classification head has the same form),
which is how a published cross-encoder checkpoint (``Bert/Roberta/XLMRobertaForSequenceClassification``
with one label, e.g. ``cross-encoder/ms-marco-MiniLM-L-6-v2``, ``BAAI/bge-reranker-base``)
scores. :meth:`CrossEncoder.from_pretrained` recognises such a checkpoint and loads its head
(and, for RoBERTa, its pair encoding ``<s> A </s></s> B </s>``: ``candidate_sep``), so its
scores equal the checkpoint's logits.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from .backbone import Backbone, load_pair_classifier
from .base import MODELS, Context
from .heads import MODEL_FILE, PACKED_POOLINGS, BackboneRanker
from .inputs import PackedBatch


@MODELS.register("cross")
class CrossEncoder(BackboneRanker):
    """Scores a candidate by encoding it jointly with the context.

    Args:
        backbone: the encoder and tokenizer.
        pooling: ``cls`` | ``mean`` | ``candidate_mean``.
        max_context_length: tokens of ``[CLS] context [SEP]``.
        max_candidate_length: tokens of ``candidate [SEP]`` (``[CLS] candidate [SEP]`` with
            ``candidate_cls=True``).
        chunk_size: most pairs per forward pass (``None``: all at once).
        turn_separator: between dialogue turns (see :class:`~unirank.models.inputs.TextPacker`).
        speaker_tokens: tokens marking the context's turns, e.g. ``["[unused1]", "[unused2]"]``
            (see :class:`~unirank.models.inputs.TextPacker`).
        candidate_cls: start the candidate with its own ``[CLS]`` (the Uni-Encoder layout).
        candidate_token_type: token type id of candidate tokens.
        head_activation: ``tanh`` puts a hidden ``H x H`` layer and tanh before the linear
            head (BERT's pooler / RoBERTa's classification head); ``None``: linear only.
        candidate_sep: the candidate starts with ``[SEP]``: RoBERTa's pair encoding
            ``<s> A </s></s> B </s>``.

    Shapes:
        ``score(B contexts, B lists of N_b candidates)`` -> (B, max N_b), ``-inf`` padded.

    Example:
        >>> from unirank.models.backbone import tiny_backbone
        >>> m = CrossEncoder(tiny_backbone())
        >>> m.score(["a query", "another"], [["doc one", "doc two"], ["doc three"]]).shape
        torch.Size([2, 2])
    """

    kind = "cross"

    def __init__(
        self,
        backbone: Backbone,
        *,
        pooling: str = "cls",
        max_context_length: int = 256,
        max_candidate_length: int = 256,
        chunk_size: int | None = 64,
        turn_separator: str | None = None,
        speaker_tokens: Sequence[str] | None = None,
        candidate_cls: bool = False,
        candidate_token_type: int = 1,
        head_activation: str | None = None,
        candidate_sep: bool = False,
    ) -> None:
        super().__init__(backbone)
        PACKED_POOLINGS.get(pooling)
        self.pooling = pooling
        if head_activation not in (None, "tanh"):
            raise ConfigError(
                f"head_activation: {head_activation!r} is unknown; valid: tanh (or unset for a linear head)"
            )
        self.head_activation = head_activation
        self.head_dense = (
            None if head_activation is None else torch.nn.Linear(self.backbone.hidden_size, self.backbone.hidden_size)
        )
        self._init_scoring_head(  # also sets the train/eval mode of every submodule, head_dense included
            chunk_size,
            max_context_length=max_context_length,
            max_candidate_length=max_candidate_length,
            turn_separator=turn_separator,
            speaker_tokens=speaker_tokens,
            candidate_cls=candidate_cls,
            candidate_token_type=candidate_token_type,
            candidate_sep=candidate_sep,
        )

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike | None = None, **settings: Any) -> "CrossEncoder":
        """As :meth:`BackboneRanker.from_pretrained`; a BERT or RoBERTa-family
        sequence-classification checkpoint with one label (a published cross-encoder) keeps
        its head and pair encoding (see the module docstring)."""
        if name_or_path is None or (Path(name_or_path).expanduser() / MODEL_FILE).is_file():
            return super().from_pretrained(name_or_path, **settings)
        loaded = load_pair_classifier(name_or_path, attn_implementation=settings.get("attn_implementation", "sdpa"))
        if loaded is None:
            return super().from_pretrained(name_or_path, **settings)
        backbone, head, layout = loaded
        settings.pop("attn_implementation", None)
        for key, need in (("pooling", "cls"), ("head_activation", "tanh"), *layout.items()):
            if settings.setdefault(key, need) != need:
                raise ConfigError(
                    f"{key}={settings[key]!r} does not fit the classification head of {name_or_path} (needs {need!r})"
                )
        model = cls(backbone, **settings)
        with torch.no_grad():
            model.head_dense.weight.copy_(head["dense.weight"]), model.head_dense.bias.copy_(head["dense.bias"])
            model.head.weight.copy_(head["out.weight"]), model.head.bias.copy_(head["out.bias"])
        return model

    def settings(self) -> dict[str, Any]:
        return {"pooling": self.pooling, "head_activation": self.head_activation, **self._packer_settings()}

    def forward(self, packed: PackedBatch) -> torch.Tensor:
        """Scores of packed pairs (one candidate per row). Shapes: -> (P,)."""
        hidden = self.encode_packed(packed, None)  # plain padding mask: same scores as "full", faster (sdpa fast path)
        pooled = PACKED_POOLINGS.get(self.pooling)(hidden, packed.segment_ids.to(hidden.device)).to(
            self.head.weight.dtype
        )
        if self.head_dense is not None:
            pooled = torch.tanh(self.head_dense(pooled))
        return self.head(pooled).squeeze(-1)

    def score(self, contexts: Sequence[Context], candidates: Sequence[Sequence[str]]) -> torch.Tensor:
        """Scores for each context's candidates, ``chunk_size`` pairs per pass.

        Shapes:
            B contexts, candidates[b] has N_b texts -> (B, max N_b); slots past N_b are ``-inf``.
        """
        if len(contexts) != len(candidates):
            raise ValueError(f"{len(contexts)} contexts but {len(candidates)} candidate lists")
        B = len(contexts)
        n_max = max((len(c) for c in candidates), default=0)
        ctx_ids = self.packer.context_ids(contexts)
        cand_ids = self.packer.candidate_ids([c for cands in candidates for c in cands])
        owner = [b for b, cands in enumerate(candidates) for _ in cands]
        slot = [k for cands in candidates for k in range(len(cands))]
        flat_scores = []
        step = self.chunk_size or max(len(owner), 1)
        for s in range(0, len(owner), step):
            rows = range(s, min(s + step, len(owner)))
            packed = self.packer.pack_ids([ctx_ids[owner[i]] for i in rows], [[cand_ids[i]] for i in rows])
            flat_scores.append(self(packed))
        out = torch.full((B, n_max), float("-inf"), device=self.device)
        if flat_scores:
            values = torch.cat(flat_scores)
            out = out.to(values.dtype).index_put(
                (torch.tensor(owner, device=out.device), torch.tensor(slot, device=out.device)), values
            )
        return out
