"""What the cross-, poly- and Uni-Encoder share on top of the backbone.

* pooling of packed hidden states (registry :data:`PACKED_POOLINGS`, :func:`segment_first` and :func:`segment_mean`
  for all candidates of a packed row at once);
* :class:`BackboneRanker`, the base class that owns the backbone, runs packed batches
  through it with a chosen attention mask, and saves / loads a model folder.

A saved model folder holds::

    unirank_model.json     {"kind": ..., "format": 1, "settings": {...},
                            "backbones": {constructor argument: sub-folder}, "versions": {...}}
                           (the same keys as :mod:`unirank.models.bi` writes)
    backbone/              the encoder (safetensors, via save_pretrained) and its tokenizer
    head.safetensors       every parameter that is not part of a backbone (linear head, codes;
                           an MLM head's transform and bias, its decoder being the tied
                           word embeddings - then unirank_model.json has "mlm_head": {act, eps})

It is written to a temporary folder beside the target and renamed into place, so a failed
save never leaves a half-written model under the final name; no pickle is involved.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, DataError
from ..io import atomic_dir, write_json
from ..registry import Registry
from .backbone import Backbone, encode_tokens, load_backbone, mean_pool, model_load_errors, save_tokenizer
from .base import FORMAT_VERSION, MODEL_FILE, Ranker, read_model_meta
from .inputs import PackedBatch, TextPacker
from .masks import build_mask
from .mlm_aux import TIED_KEYS, MaskedLMTrainable

HEAD_FILE = "head.safetensors"

#: pooling name -> function (hidden (B, L, H), segment_ids (B, L)) -> (B, H)
PACKED_POOLINGS: Registry[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = Registry("packed-row pooling")


def segment_members(segment_ids: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Which tokens belong to candidate segments 1..n_segments. Shapes: (B, L) -> (B, N, L) bool.

    Example:
        >>> segment_members(torch.tensor([[0, 1, 1, 2]]), 2)[0].int().tolist()
        [[0, 1, 1, 0], [0, 0, 0, 1]]
    """
    ks = torch.arange(1, n_segments + 1, device=segment_ids.device)
    return segment_ids[:, None, :] == ks[None, :, None]


def segment_mean(hidden: torch.Tensor, segment_ids: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Mean of the token vectors of candidate segments 1..n_segments of each row.

    All tokens of a segment count, its ``[CLS]`` and ``[SEP]`` included (as in the official
    Uni-Encoder code). An absent segment gives a zero vector.

    Args:
        hidden: (B, L, H) token vectors.
        segment_ids: (B, L) segment ids (0 context, k candidate k, -1 padding).
        n_segments: N, the number of candidate slots.

    Shapes:
        -> (B, N, H).

    Example:
        >>> h = torch.tensor([[[1.0], [2.0], [4.0], [8.0]]])
        >>> segment_mean(h, torch.tensor([[0, 1, 1, 2]]), 3)[0, :, 0].tolist()
        [3.0, 8.0, 0.0]
    """
    onehot = segment_members(segment_ids, n_segments).to(hidden.dtype)
    counts = onehot.sum(-1, keepdim=True).clamp(min=1.0)
    return torch.bmm(onehot, hidden) / counts


def segment_first(hidden: torch.Tensor, segment_ids: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Vector of the first token of candidate segments 1..n_segments of each row (the
    candidate's own ``[CLS]`` in the Uni-Encoder layout). An absent segment gives a zero vector.

    Args:
        hidden: (B, L, H) token vectors.
        segment_ids: (B, L) segment ids (0 context, k candidate k, -1 padding).
        n_segments: N, the number of candidate slots.

    Shapes:
        -> (B, N, H).

    Example:
        >>> h = torch.tensor([[[1.0], [2.0], [4.0], [8.0]]])
        >>> segment_first(h, torch.tensor([[0, 1, 1, 2]]), 3)[0, :, 0].tolist()
        [2.0, 8.0, 0.0]
    """
    member = segment_members(segment_ids, n_segments)
    first = member.to(torch.uint8).argmax(-1)  # the first maximal index: the segment's first token
    vecs = hidden.gather(1, first[..., None].expand(-1, -1, hidden.shape[-1]))
    return vecs * member.any(-1, keepdim=True).to(hidden.dtype)


@PACKED_POOLINGS.register("cls")
def cls_pool(hidden: torch.Tensor, segment_ids: torch.Tensor) -> torch.Tensor:
    """The first token's vector (the context's ``[CLS]``).

    Example:
        >>> cls_pool(torch.tensor([[[1.0], [2.0]]]), torch.tensor([[0, 1]])).tolist()
        [[1.0]]
    """
    return hidden[:, 0]


@PACKED_POOLINGS.register("mean")
def all_mean_pool(hidden: torch.Tensor, segment_ids: torch.Tensor) -> torch.Tensor:
    """Mean over every real (non-padding) token.

    Example:
        >>> all_mean_pool(torch.tensor([[[1.0], [2.0], [9.0]]]), torch.tensor([[0, 1, -1]])).tolist()
        [[1.5]]
    """
    return mean_pool(hidden, segment_ids >= 0)


@PACKED_POOLINGS.register("candidate_mean")
def candidate_mean_pool(hidden: torch.Tensor, segment_ids: torch.Tensor) -> torch.Tensor:
    """Mean over the tokens of candidate segment 1 (the same arithmetic as the Uni-Encoder).

    Example:
        >>> candidate_mean_pool(torch.tensor([[[1.0], [2.0], [4.0]]]), torch.tensor([[0, 1, 1]])).tolist()
        [[3.0]]
    """
    return segment_mean(hidden, segment_ids, 1)[:, 0]


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for package in ("unirank", "torch", "transformers"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "unknown"
    return out


def _check_target(target: Path) -> None:
    """``target`` may take a saved model: absent, empty, or an earlier saved model."""
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not (target / MODEL_FILE).is_file())):
        raise ConfigError(f"{target} exists and is not a unirank model folder; refusing to overwrite it")


class BackboneRanker(Ranker, MaskedLMTrainable):
    """A ranker built on one backbone (plus, for poly, an optional candidate backbone).

    Subclasses set ``kind``, build their head in ``__init__`` and implement
    :meth:`settings` (the JSON-able constructor keywords) and ``score``. Every such ranker
    can train with the MLM auxiliary loss (:class:`~unirank.models.mlm_aux.MaskedLMTrainable`).
    """

    #: constructor argument name -> sub-folder, for every backbone the model owns
    _backbone_folders: dict[str, str] = {"backbone": "backbone"}

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone
        self.encoder = backbone.model  # registered submodule: its parameters train with the head
        self.mlm_head = None  # MLMHead once add_mlm_head() is called (MLM auxiliary loss)

    @property
    def tokenizer(self) -> Any:
        return self.backbone.tokenizer

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def settings(self) -> dict[str, Any]:
        """Constructor keywords (besides backbones) that rebuild this model."""
        raise NotImplementedError

    def _init_scoring_head(self, chunk_size: int | None, **packer_settings: Any) -> None:
        """Shared set-up of the packed-input paradigms (cross, uni): packer, checks, linear head.

        ``packer_settings`` are :class:`~unirank.models.inputs.TextPacker` keywords.
        """
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")
        self.chunk_size = chunk_size
        self.packer = TextPacker(self.backbone.tokenizer, **packer_settings)
        self._check_positions(self.packer.max_context_length + self.packer.max_candidate_length)
        self._check_token_types(self.packer.candidate_token_type)
        self.head = torch.nn.Linear(self.backbone.hidden_size, 1)
        self.train(self.backbone.model.training)  # follow the backbone's mode (eval after loading)

    def _packer_settings(self) -> dict[str, Any]:
        """The JSON-able settings set by :meth:`_init_scoring_head`."""
        p = self.packer
        return {
            "max_context_length": p.max_context_length,
            "max_candidate_length": p.max_candidate_length,
            "chunk_size": self.chunk_size,
            "turn_separator": p.turn_separator,
            "candidate_cls": p.candidate_cls,
            "candidate_token_type": p.candidate_token_type,
            **({"candidate_sep": True} if p.candidate_sep else {}),  # only the cross-encoder takes it
            **({"speaker_tokens": list(p.speaker_tokens)} if p.speaker_tokens else {}),
        }

    def _check_positions(self, longest: int) -> None:
        if longest > self.backbone.max_positions:
            raise ConfigError(
                f"max_context_length + max_candidate_length = {longest} exceeds the backbone's "
                f"{self.backbone.max_positions} position embeddings"
            )

    def _check_token_types(self, wanted: int) -> None:
        have = int(getattr(self.encoder.config, "type_vocab_size", 0) or 0)
        if wanted >= have:
            raise ConfigError(
                f"candidate_token_type={wanted} but the backbone has type_vocab_size={have}; set candidate_token_type=0"
            )

    def encode_packed(self, packed: PackedBatch, mask: str | None, encoder: Any = None) -> torch.Tensor:
        """Run a packed batch through the encoder.

        Args:
            packed: the batch (moved to the model's device here).
            mask: a mask kind of :data:`~unirank.models.masks.MASKS`, or ``None`` for a plain
                (B, L) padding mask.
            encoder: the transformers model to use (default: the main backbone).

        Shapes:
            -> (B, L, H) last hidden states.
        """
        packed = packed.to(self.device)
        packed, mlm_labels = self._mlm_corrupt(packed, encoder)  # masked input inside masked_lm() only
        attn = packed.attention_mask if mask is None else build_mask(packed.segment_ids, mask)
        hidden = encode_tokens(
            self.encoder if encoder is None else encoder,
            packed.input_ids,
            attn,
            token_type_ids=packed.token_type_ids,
            position_ids=packed.position_ids,
        )
        self._mlm_observe(hidden, mlm_labels)
        return hidden

    # ---- persistence -------------------------------------------------------------------

    def _backbones(self) -> dict[str, Backbone]:
        return {"backbone": self.backbone}

    def _is_backbone_key(self, key: str) -> bool:
        return key.startswith("encoder.")

    def head_state(self) -> dict[str, torch.Tensor]:
        """Parameters and buffers that belong to no backbone (the head)."""
        return {
            k: v.detach().cpu().contiguous()
            for k, v in self.state_dict().items()
            if not self._is_backbone_key(k) and k not in TIED_KEYS
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the model folder atomically (see the module docstring)."""
        from safetensors.torch import save_file

        target = Path(path).expanduser()
        _check_target(target)
        with atomic_dir(target, marker=MODEL_FILE) as tmp:
            folders = {}
            for arg, bb in self._backbones().items():
                folder = self._backbone_folders[arg]
                bb.model.save_pretrained(tmp / folder)
                save_tokenizer(bb.tokenizer, tmp / folder)
                folders[arg] = folder
            save_file(self.head_state(), str(tmp / HEAD_FILE), metadata={"kind": self.kind})
            meta = {
                "kind": self.kind,
                "format": FORMAT_VERSION,
                "settings": self.settings(),
                "backbones": folders,
                "backbone_source": self.backbone.source,
                "versions": _versions(),
                **({"mlm_head": self.mlm_head_settings()} if self.mlm_head is not None else {}),
            }
            write_json(tmp / MODEL_FILE, meta)

    @classmethod
    def load(
        cls, path: str | os.PathLike, attn_implementation: str | None = "sdpa", **overrides: Any
    ) -> BackboneRanker:
        """Rebuild a model saved by :meth:`save`; ``overrides`` replace saved settings."""
        from safetensors.torch import load_file

        root = Path(path).expanduser()
        meta = read_model_meta(root)
        if meta["kind"] != cls.kind:
            raise DataError(f"folder holds a {meta['kind']!r} model, not {cls.kind!r}", path=root / MODEL_FILE)
        backbones = {
            arg: load_backbone(root / folder, attn_implementation=attn_implementation)
            for arg, folder in meta.get("backbones", {"backbone": "backbone"}).items()
        }
        model = cls(**backbones, **{**meta.get("settings", {}), **overrides})
        if meta.get("mlm_head") is not None:  # trained with the MLM auxiliary loss: its head comes back too
            model.add_mlm_head(**meta["mlm_head"], from_checkpoint=False)  # its weights come next
        with model_load_errors(str(root / HEAD_FILE)):
            head = load_file(str(root / HEAD_FILE))
        result = model.load_state_dict(head, strict=False)
        missing = [k for k in result.missing_keys if not model._is_backbone_key(k) and k not in TIED_KEYS]
        if missing or result.unexpected_keys:
            raise DataError(
                f"head weights do not fit the model: missing {missing}, unexpected {result.unexpected_keys}",
                path=root / HEAD_FILE,
            )
        if model.mlm_head is not None:
            model.mlm_head_origin = "saved"  # trained weights, neither the checkpoint's nor new
        model.eval()
        return model

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike | None = None, **settings: Any) -> BackboneRanker:
        """A new model on a pretrained backbone, or a saved unirank model folder.

        Args:
            name_or_path: ``None`` / ``"minilm"`` (the packaged all-MiniLM-L6-v2), a
                transformers model folder, a hub name, or a folder written by :meth:`save`.
            settings: constructor keywords (for a saved folder: overrides);
                ``attn_implementation`` ("sdpa" or "eager") is passed to the loader.
        """
        attn = settings.pop("attn_implementation", "sdpa")
        if name_or_path is not None and (Path(name_or_path).expanduser() / MODEL_FILE).is_file():
            return cls.load(name_or_path, attn_implementation=attn, **settings)
        return cls(load_backbone(name_or_path, attn_implementation=attn), **settings)
