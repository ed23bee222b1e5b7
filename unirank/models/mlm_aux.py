"""The masked-language-model auxiliary loss of packed-input rankers (the Uni-Encoder recipe).

The official Uni-Encoder code (dll-wu/Uni-Encoder) trains on a *masked* packed row: 15% of
its tokens are corrupted as BERT pre-training does (80% ``[MASK]``, 10% a random token, 10%
unchanged), the candidate scores come from that corrupted row, and the masked-LM loss of the
same forward pass is added to the candidate cross-entropy (weight 1).

Here any ranker built on :class:`~unirank.models.heads.BackboneRanker` (cross, poly, uni) can
do the same. Inside ``with model.masked_lm(prob, generator) as mlm:`` every packed batch the
model runs through its main encoder is corrupted first (:meth:`MLMPass.corrupt`), and the
hidden states of the masked positions go through the model's MLM head
(:class:`~unirank.models.mlm_head.MLMHead`, its decoder tied to the word embeddings, a new
transform layer; all-MiniLM-L6-v2 has no head of its own) into ``mlm.loss()``. Outside the
block nothing changes: the head is never used to score, so it leaves inference as it was; it
is saved in the model folder's ``head.safetensors`` (transform and bias only, the decoder is
the embedding matrix) and rebuilt by ``load``.

Only real text tokens are masked (:func:`maskable_tokens`): never padding, ``[CLS]`` /
``[SEP]`` and the other special tokens, the speaker tokens or a one-token turn separator -
the tokens that give a packed row its structure (segment boundaries the scoring pools over).

Example:
    >>> from unirank.models.backbone import tiny_backbone
    >>> from unirank.models.uni import UniEncoder
    >>> m = UniEncoder(tiny_backbone(hidden=16), max_context_length=16)
    >>> _ = m.add_mlm_head()
    >>> with m.masked_lm(0.5, torch.Generator().manual_seed(0)) as mlm:
    ...     scores = m.score([["hi there", "how are you?"]], [["fine thanks", "it is raining"]])
    >>> scores.shape, mlm.masked > 0, mlm.loss().requires_grad
    (torch.Size([1, 2]), True, True)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from .inputs import PackedBatch
from .mlm_head import MLMHead, checkpoint_head, mask_tokens

__all__ = ["maskable_tokens", "MLMPass", "MaskedLMTrainable", "TIED_KEYS"]

#: state-dict keys of the MLM head that are the backbone's own tensors (tied, saved with it)
TIED_KEYS = frozenset({"mlm_head.decoder_weight"})


def maskable_tokens(input_ids: torch.Tensor, segment_ids: torch.Tensor, structure_ids: Iterable[int]) -> torch.Tensor:
    """Which tokens of packed rows the MLM loss may mask: real tokens (segment >= 0) whose id
    is not a structure token.

    Shapes:
        input_ids, segment_ids ``(B, L)`` -> ``(B, L)`` bool.

    Example:
        >>> ids = torch.tensor([[101, 7, 2, 8, 102, 101, 9, 102, 0]])
        >>> seg = torch.tensor([[0, 0, 0, 0, 0, 1, 1, 1, -1]])
        >>> maskable_tokens(ids, seg, {0, 2, 101, 102}).int().tolist()
        [[0, 1, 0, 1, 0, 0, 1, 0, 0]]
    """
    structure = torch.tensor(sorted(set(int(i) for i in structure_ids)), dtype=input_ids.dtype, device=input_ids.device)
    return (segment_ids >= 0) & ~torch.isin(input_ids, structure)


class MLMPass:
    """The MLM loss of one training forward pass (possibly several packed batches).

    Args:
        head: the model's MLM head.
        structure_ids: token ids never masked.
        mask_token_id, vocab_size: for BERT's corruption (:func:`~unirank.models.mlm_head.mask_tokens`).
        prob: share of the maskable tokens selected.
        generator: seeded generator (reproducible masks; ``None``: torch's global one).

    Attributes:
        masked: labelled (selected) tokens so far.
    """

    def __init__(
        self,
        head: MLMHead,
        structure_ids: Iterable[int],
        mask_token_id: int,
        vocab_size: int,
        prob: float,
        generator: torch.Generator | None = None,
    ) -> None:
        self.head, self.structure_ids = head, frozenset(structure_ids)
        self.mask_token_id, self.vocab_size, self.prob, self.generator = (
            int(mask_token_id),
            int(vocab_size),
            float(prob),
            generator,
        )
        self._sum: torch.Tensor | None = None
        self.masked = 0

    def corrupt(self, packed: PackedBatch) -> tuple[PackedBatch, torch.Tensor]:
        """The batch with masked input ids, and the labels (original id where selected, -100 elsewhere)."""
        maskable = maskable_tokens(packed.input_ids, packed.segment_ids, self.structure_ids)
        ids, labels = mask_tokens(
            packed.input_ids, maskable, self.mask_token_id, self.vocab_size, self.prob, self.generator
        )
        return PackedBatch(
            ids, packed.token_type_ids, packed.position_ids, packed.segment_ids, packed.candidate_mask
        ), labels

    def observe(self, hidden: torch.Tensor, labels: torch.Tensor) -> None:
        """Add the masked-LM loss of ``hidden`` ``(B, L, H)`` at the labelled positions."""
        n = int((labels != -100).sum())
        if n == 0:
            return
        part = self.head.loss(hidden, labels.to(hidden.device)) * n
        self._sum = part if self._sum is None else self._sum + part
        self.masked += n

    def loss(self) -> torch.Tensor:
        """Mean masked-LM cross-entropy over every labelled token of the pass (a graph-connected
        zero when none was selected)."""
        if self._sum is None:
            return self.head.bias.sum() * 0.0
        return self._sum / self.masked


class MaskedLMTrainable:
    """Mixin of :class:`~unirank.models.heads.BackboneRanker`: an optional MLM head and the
    :meth:`masked_lm` training pass (see the module docstring). The host provides ``encoder``,
    ``packer``, ``tokenizer`` and calls :meth:`_mlm_corrupt` / :meth:`_mlm_observe` around its
    encoder call."""

    mlm_head: MLMHead | None  # set to None by the host's __init__ (a class attribute would hide the registered module)
    _mlm_pass: MLMPass | None = None
    #: where the MLM head came from: ``"checkpoint"`` or ``"new"`` (:meth:`add_mlm_head`), ``"saved"``
    #: (a unirank model folder's trained head); ``None``: no head
    mlm_head_origin: str | None = None

    def add_mlm_head(
        self, act: str | None = None, eps: float | None = None, seed: int = 0, from_checkpoint: bool = True
    ) -> MLMHead:
        """Give the model an MLM head decoding with its word embeddings; returns the existing
        one if it has one.

        The head is the pre-trained one of the checkpoint the backbone came from when that is
        a ``*ForMaskedLM`` / ``*ForPreTraining`` checkpoint with the same embeddings
        (:func:`~unirank.models.mlm_head.checkpoint_head`; ``mlm_head_origin`` becomes
        ``"checkpoint"``), else a new one: a new transform layer (BERT's init, seeded) and the
        decoder tied to the word embeddings (``"new"``).

        Args:
            act, eps: the new transform's activation and LayerNorm epsilon (default: the
                encoder config's ``hidden_act`` and ``layer_norm_eps``, as BERT's own head).
            seed: seeds the new transform's weights.
            from_checkpoint: look for the checkpoint's head first (``False``: always a new one,
                e.g. when saved weights are loaded into it next).
        """
        if self.mlm_head is not None:
            return self.mlm_head
        emb = self.encoder.get_input_embeddings()
        if from_checkpoint:
            source = getattr(getattr(self, "backbone", None), "source", None)
            found = checkpoint_head(str(source), emb, self.encoder) if source else None
            if found is not None:
                self.mlm_head, self.mlm_head_origin = found, "checkpoint"
                self.mlm_head.train(self.encoder.training)
                return found
        cfg = self.encoder.config
        act = act or getattr(cfg, "hidden_act", None) or "gelu"
        eps = float(eps if eps is not None else getattr(cfg, "layer_norm_eps", 1e-12))
        head = MLMHead.tied_to(emb, act=act if isinstance(act, str) else "gelu", eps=eps, seed=seed)
        head.to(emb.weight.device)
        self.mlm_head = head  # nn.Module.__setattr__ registers it: it trains, saves and moves with the model
        self.mlm_head_origin = "new"
        self.mlm_head.train(self.encoder.training)
        return head

    def mlm_head_settings(self) -> dict[str, Any] | None:
        """What :meth:`add_mlm_head` needs to rebuild the head (``None``: no head)."""
        if self.mlm_head is None:
            return None
        return {"act": self.mlm_head.act_name, "eps": float(self.mlm_head.norm.eps)}

    @contextlib.contextmanager
    def masked_lm(self, prob: float = 0.15, generator: torch.Generator | None = None) -> Iterator[MLMPass]:
        """Train on masked input inside the block; yields the :class:`MLMPass` holding the loss.

        Raises:
            ValueError: the model has no MLM head (:meth:`add_mlm_head`); the tokenizer has no
                mask token.
        """
        if self.mlm_head is None:
            raise ValueError("the model has no MLM head; call add_mlm_head() first")
        tok = self.tokenizer
        if tok.mask_token_id is None:
            raise ValueError("the tokenizer has no mask token; the MLM loss needs one")
        self._mlm_pass = MLMPass(
            self.mlm_head, self.packer.structure_ids, tok.mask_token_id, self.mlm_head.vocab_size, prob, generator
        )
        try:
            yield self._mlm_pass
        finally:
            self._mlm_pass = None

    def _mlm_corrupt(self, packed: PackedBatch, encoder: Any) -> tuple[PackedBatch, torch.Tensor | None]:
        """Inside :meth:`masked_lm`, a batch for the main encoder comes back masked, with labels."""
        if self._mlm_pass is None or (encoder is not None and encoder is not self.encoder):
            return packed, None
        return self._mlm_pass.corrupt(packed)

    def _mlm_observe(self, hidden: torch.Tensor, labels: torch.Tensor | None) -> None:
        if labels is not None and self._mlm_pass is not None:
            self._mlm_pass.observe(hidden, labels)
