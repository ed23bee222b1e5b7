"""A masked-language-model head: ``transform`` (dense -> activation -> LayerNorm), then a
decoder onto the vocabulary tied to the encoder's word embeddings, plus a bias.

This is BERT's ``BertLMPredictionHead`` (and DistilBERT's / RoBERTa's head, which have the
same shape under other names), as a module of its own so that any backbone can get one:

* :meth:`MLMHead.tied_to` - a *new* head on a backbone that has none (all-MiniLM-L6-v2 is a
  ``BertModel``): the decoder reuses the word-embedding matrix, only the transform and the
  bias are new parameters. SPLADE on MiniLM (``kind: splade`` with ``tied_head: true``) and
  the Uni-Encoder's MLM auxiliary loss build it this way.
* :meth:`MLMHead.from_masked_lm` - the head of a published ``*ForMaskedLM`` checkpoint
  (BERT, DistilBERT, RoBERTa/XLM-R layouts), same weights, same logits.
* :func:`checkpoint_head` - the pre-trained head of the checkpoint a backbone was loaded
  from (a ``*ForMaskedLM`` / ``*ForPreTraining`` folder or hub name), its decoder tied to the
  backbone's own word embeddings; the MLM auxiliary loss starts from it when there is one.
* :meth:`MLMHead.hf_state_dict` - its weights under the checkpoint's own names, so a
  backbone + head can be written back as a ``*ForMaskedLM`` folder.

Calling the head gives logits; :meth:`MLMHead.loss` is the MLM cross-entropy on labels made
by :func:`mask_tokens` (BERT's 80/10/10 corruption).

Example:
    >>> from unirank.models.backbone import tiny_backbone
    >>> bb = tiny_backbone(hidden=16)
    >>> head = MLMHead.tied_to(bb.model.get_input_embeddings())
    >>> head(torch.zeros(2, 3, 16)).shape
    torch.Size([2, 3, 30522])
    >>> head.decoder_weight is bb.model.get_input_embeddings().weight
    True
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

__all__ = ["MLMHead", "HEAD_LAYOUTS", "mask_tokens", "checkpoint_head"]

#: model_type -> names of the head's parts inside a ``*ForMaskedLM`` state dict
HEAD_LAYOUTS: dict[str, dict[str, str]] = {
    "bert": {
        "dense": "cls.predictions.transform.dense",
        "norm": "cls.predictions.transform.LayerNorm",
        "decoder": "cls.predictions.decoder",
        "bias": "cls.predictions.bias",
    },
    "distilbert": {
        "dense": "vocab_transform",
        "norm": "vocab_layer_norm",
        "decoder": "vocab_projector",
        "bias": "vocab_projector.bias",
    },
    "roberta": {
        "dense": "lm_head.dense",
        "norm": "lm_head.layer_norm",
        "decoder": "lm_head.decoder",
        "bias": "lm_head.bias",
    },
}
HEAD_LAYOUTS["xlm-roberta"] = HEAD_LAYOUTS["camembert"] = HEAD_LAYOUTS["roberta"]


def _activation(name: str) -> Any:
    from transformers.activations import ACT2FN

    if name not in ACT2FN:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(sorted(ACT2FN))}")
    return ACT2FN[name]


class MLMHead(nn.Module):
    """``logits = LayerNorm(act(dense(h))) @ W_dec.T + bias``.

    Args:
        decoder_weight: the ``(V, H)`` vocabulary matrix; pass the word-embedding parameter to
            tie the decoder to it (the same tensor, trained once), or a new parameter.
        act: activation name (``transformers.activations.ACT2FN``), BERT's ``gelu`` by default.
        eps: LayerNorm epsilon.

    Shapes:
        hidden ``(..., H)`` -> logits ``(..., V)``.
    """

    def __init__(self, decoder_weight: nn.Parameter, act: str = "gelu", eps: float = 1e-12) -> None:
        super().__init__()
        v, h = decoder_weight.shape
        self.dense = nn.Linear(h, h)
        self.act_name = act
        self.act = _activation(act)
        self.norm = nn.LayerNorm(h, eps=eps)
        self.decoder_weight = decoder_weight
        self.bias = nn.Parameter(torch.zeros(v, dtype=decoder_weight.dtype, device=decoder_weight.device))

    @property
    def vocab_size(self) -> int:
        return int(self.decoder_weight.shape[0])

    @property
    def hidden_size(self) -> int:
        return int(self.decoder_weight.shape[1])

    @classmethod
    def tied_to(
        cls,
        word_embeddings: nn.Embedding,
        act: str = "gelu",
        eps: float = 1e-12,
        init: str = "normal",
        std: float = 0.02,
        seed: int | None = 0,
    ) -> "MLMHead":
        """A new head whose decoder is ``word_embeddings.weight`` (tied, not copied).

        Args:
            word_embeddings: the encoder's input embedding (``model.get_input_embeddings()``).
            act, eps: as in the constructor.
            init: the new transform's weights: ``normal`` (BERT's init, ``N(0, std)``) or
                ``identity`` (``dense`` starts as the identity, so the first logits are
                ``LayerNorm(act(h)) . e_v``).
            std: standard deviation of the ``normal`` init.
            seed: seeds the ``normal`` init (``None``: torch's global generator).

        Example:
            >>> emb = nn.Embedding(5, 4)
            >>> h = MLMHead.tied_to(emb, init="identity")
            >>> bool(torch.equal(h.dense.weight, torch.eye(4))), h.vocab_size
            (True, 5)
        """
        # every value is set below (unless seed is None): keep nn.Linear's init draws off the global stream
        keep = seed is not None or init == "identity"
        with torch.random.fork_rng(devices=[]) if keep else contextlib.nullcontext():
            head = cls(word_embeddings.weight, act=act, eps=eps)
        with torch.no_grad():
            if init == "normal":
                g = torch.Generator().manual_seed(seed) if seed is not None else None
                head.dense.weight.copy_(torch.randn(head.dense.weight.shape, generator=g) * std)
            elif init == "identity":
                head.dense.weight.copy_(torch.eye(head.hidden_size))
            else:
                raise ValueError(f"unknown head init {init!r}; valid: identity, normal")
            head.dense.bias.zero_()
        return head

    @classmethod
    def from_masked_lm(cls, mlm: Any) -> "MLMHead":
        """The head of a transformers ``*ForMaskedLM`` model, with its weights.

        The decoder stays tied to the model's input embeddings when the checkpoint ties them
        (the usual case); otherwise it gets its own copy of the decoder matrix.

        Raises:
            ValueError: a model type whose head layout is not in :data:`HEAD_LAYOUTS`.
        """
        cfg = mlm.config
        layout = HEAD_LAYOUTS.get(cfg.model_type)
        if layout is None:
            raise ValueError(
                f"MLM head of model type {cfg.model_type!r} is not supported; "
                f"supported: {', '.join(sorted(HEAD_LAYOUTS))}"
            )
        act = getattr(cfg, "hidden_act", None) if cfg.model_type != "distilbert" else getattr(cfg, "activation", "gelu")
        if cfg.model_type in ("roberta", "xlm-roberta", "camembert"):
            act = "gelu"  # RobertaLMHead applies gelu whatever hidden_act says
        eps = float(getattr(cfg, "layer_norm_eps", 1e-12))
        emb, out = mlm.get_input_embeddings(), mlm.get_output_embeddings()
        tied = out.weight is emb.weight
        head = cls(emb.weight if tied else nn.Parameter(out.weight.detach().clone()), act=act or "gelu", eps=eps)
        state = mlm.state_dict()
        with torch.no_grad():
            head.dense.weight.copy_(state[layout["dense"] + ".weight"])
            head.dense.bias.copy_(state[layout["dense"] + ".bias"])
            head.norm.weight.copy_(state[layout["norm"] + ".weight"])
            head.norm.bias.copy_(state[layout["norm"] + ".bias"])
            bias = state.get(layout["bias"])
            if bias is None:
                bias = getattr(out, "bias", None)
            if bias is not None:
                head.bias.copy_(bias)
        return head

    def hf_state_dict(self, model_type: str) -> dict[str, torch.Tensor]:
        """The head's weights under a ``*ForMaskedLM`` checkpoint's names (decoder included).

        Example:
            >>> h = MLMHead.tied_to(nn.Embedding(5, 4))
            >>> sorted(h.hf_state_dict("bert"))[:2]
            ['cls.predictions.bias', 'cls.predictions.decoder.bias']
        """
        layout = HEAD_LAYOUTS.get(model_type)
        if layout is None:
            raise ValueError(
                f"MLM head of model type {model_type!r} is not supported; supported: {', '.join(sorted(HEAD_LAYOUTS))}"
            )
        out = {
            layout["dense"] + ".weight": self.dense.weight,
            layout["dense"] + ".bias": self.dense.bias,
            layout["norm"] + ".weight": self.norm.weight,
            layout["norm"] + ".bias": self.norm.bias,
            layout["decoder"] + ".weight": self.decoder_weight,
            layout["decoder"] + ".bias": self.bias,
            layout["bias"]: self.bias,
        }
        return {k: v.detach() for k, v in out.items()}

    def transform(self, hidden: torch.Tensor) -> torch.Tensor:
        """``LayerNorm(act(dense(hidden)))``. Shapes: ``(..., H)`` -> ``(..., H)``."""
        return self.norm(self.act(self.dense(hidden)))

    def decode(self, transformed: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits of transformed states. Shapes: ``(..., H)`` -> ``(..., V)``."""
        return torch.nn.functional.linear(transformed, self.decoder_weight, self.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decode(self.transform(hidden))

    def loss(self, hidden: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
        """MLM cross-entropy over the positions whose label is not ``ignore_index``.

        Only those positions go through the decoder (a ``(M, V)`` logit matrix for ``M``
        masked tokens, not ``(B, L, V)``). A batch without a labelled position gives a
        graph-connected zero.

        Shapes:
            hidden ``(B, L, H)``, labels ``(B, L)`` -> scalar.

        Example:
            >>> h = MLMHead.tied_to(nn.Embedding(5, 4))
            >>> x = torch.randn(1, 3, 4)
            >>> lab = torch.tensor([[-100, 2, -100]])
            >>> ref = torch.nn.functional.cross_entropy(h(x)[0, 1:2], lab[0, 1:2])
            >>> bool(torch.isclose(h.loss(x, lab), ref))
            True
        """
        keep = labels != ignore_index
        if not bool(keep.any()):
            return hidden.sum() * 0.0
        logits = self(hidden[keep])
        return torch.nn.functional.cross_entropy(logits.float(), labels[keep])


def mask_tokens(
    input_ids: torch.Tensor,
    maskable: torch.Tensor,
    mask_token_id: int,
    vocab_size: int,
    prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's MLM corruption: pick ``prob`` of the maskable tokens; of those 80% become
    ``[MASK]``, 10% a random token, 10% stay; labels hold the original id there, -100 elsewhere.

    Args:
        input_ids: token ids.
        maskable: ``True`` where a token may be picked (not padding, not special tokens).
        mask_token_id: the tokenizer's ``[MASK]`` id.
        vocab_size: random replacements are drawn from ``[0, vocab_size)``.
        prob: selection probability.
        generator: seeded generator for reproducible masks.

    Shapes:
        input_ids, maskable ``(B, L)`` -> corrupted ids, labels ``(B, L)``.

    Example:
        >>> ids = torch.arange(10).view(1, 10)
        >>> x, lab = mask_tokens(ids, torch.ones(1, 10, dtype=torch.bool), 99, 10, prob=1.0,
        ...                      generator=torch.Generator().manual_seed(0))
        >>> bool((lab == ids).all()), int((x == 99).sum()) > 0
        (True, True)
    """
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"prob must be in [0, 1], got {prob}")
    dev = input_ids.device
    u = torch.rand(input_ids.shape, generator=generator).to(dev)
    picked = (u < prob) & maskable.bool()
    labels = torch.where(picked, input_ids, torch.full_like(input_ids, -100))
    r = torch.rand(input_ids.shape, generator=generator).to(dev)
    rand_ids = torch.randint(0, vocab_size, input_ids.shape, generator=generator).to(dev)
    out = torch.where(picked & (r < 0.8), torch.full_like(input_ids, mask_token_id), input_ids)
    out = torch.where(picked & (r >= 0.8) & (r < 0.9), rand_ids, out)
    return out, labels


def checkpoint_head(source: str, word_embeddings: nn.Embedding, encoder: nn.Module | None = None) -> MLMHead | None:
    """The pre-trained MLM head of the checkpoint at ``source``, decoding with ``word_embeddings``.

    A backbone loaded from a ``*ForMaskedLM`` / ``*ForPreTraining`` checkpoint (``bert-base-
    uncased``, a folder written by transformers) leaves its MLM head behind; this reads it back
    (transform, LayerNorm, bias) and ties its decoder to the backbone's embedding parameter, so
    the head and the encoder train as one model, as BERT's own do.

    Returns ``None`` - the caller then builds a new head (:meth:`MLMHead.tied_to`) - when the
    checkpoint cannot be read as a config (e.g. a test backbone's made-up name), has no MLM
    head (``BertModel`` folders such as all-MiniLM-L6-v2, or a config naming
    ``BertForMaskedLM`` over weights without the head's tensors), is of a layout not in
    :data:`HEAD_LAYOUTS`, keeps an untied decoder, or its encoder weights are not
    ``encoder``'s (or, without ``encoder``, its word embeddings not ``word_embeddings``'):
    the backbone changed since, and its head would decode for other hidden states.

    Only local files are read (a folder, or a hub name already in the cache - the backbone's
    own loading put it there), and the global random state is left as it was, so adding a
    head never changes the draws of the run around it.
    """
    from transformers import AutoConfig, AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging

    try:
        cfg = AutoConfig.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError):
        return None
    archs = list(getattr(cfg, "architectures", None) or [])
    layout = HEAD_LAYOUTS.get(cfg.model_type)
    if layout is None or not any(a.endswith(("ForMaskedLM", "ForPreTraining")) for a in archs):
        return None
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with torch.random.fork_rng(devices=[]):  # transformers initialises weights before it loads them
            mlm, info = AutoModelForMaskedLM.from_pretrained(source, local_files_only=True, output_loading_info=True)
    except (OSError, ValueError):
        return None
    finally:
        hf_logging.set_verbosity(verbosity)
    parts = (layout["dense"] + ".", layout["norm"] + ".")
    if any(k.startswith(parts) for k in info.get("missing_keys", ())):
        return None  # the config names a masked LM, the weights hold no head: transformers made one up
    emb, out = mlm.get_input_embeddings(), mlm.get_output_embeddings()
    mine = word_embeddings.weight
    if out is None or out.weight is not emb.weight or emb.weight.shape != mine.shape:
        return None
    if not torch.equal(emb.weight.detach().to(mine.device, mine.dtype), mine.detach()):
        return None
    if encoder is not None and not _same_weights(mlm.base_model, encoder):
        return None
    with torch.random.fork_rng(devices=[]):  # both inits are overwritten; no draw leaves this function
        loaded = MLMHead.from_masked_lm(mlm)
        head = MLMHead(mine, act=loaded.act_name, eps=float(loaded.norm.eps))
    with torch.no_grad():
        for name, param in head.named_parameters():
            if name != "decoder_weight":  # the transform, LayerNorm and bias; the decoder is ``mine``
                param.copy_(loaded.get_parameter(name))
    return head.to(mine.device)


def _same_weights(theirs: nn.Module, mine: nn.Module) -> bool:
    """Every tensor of ``theirs`` is in ``mine`` under the same name with equal values (``mine``
    may hold more, e.g. a pooler a masked LM drops)."""
    ours = mine.state_dict()
    for name, t in theirs.state_dict().items():
        o = ours.get(name)
        if o is None or o.shape != t.shape or not torch.equal(t.to(o.device, o.dtype), o):
            return False
    return True
