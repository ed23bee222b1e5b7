"""Bi-encoder (dual encoder): contexts and candidates are embedded separately, then compared.

One backbone encodes both sides; a text's vector is the mean (or [CLS]) of its last hidden
states, optionally L2-normalised; a score is a similarity from :data:`unirank.scoring.SIMILARITIES`.
With the defaults this is exactly sentence-transformers' all-MiniLM-L6-v2 pipeline
(Transformer -> mean Pooling -> Normalize, max_seq_length 256).

Three entry points:

* :meth:`BiEncoder.embed` - differentiable (N, H) tensor, for training;
* :meth:`BiEncoder.score` - the :class:`~unirank.models.base.Ranker` contract, for reranking;
* :meth:`BiEncoder.encode` - fast no-grad corpus encoding to a float32 numpy array.

Dialogue contexts (lists of turns, oldest first) are joined into one text with the
tokenizer's separator token surrounded by spaces (``" [SEP] "`` for BERT tokenizers; a plain
space when the tokenizer has none).

:meth:`BiEncoder.save` writes a folder that both :meth:`BiEncoder.from_pretrained` and
``sentence_transformers.SentenceTransformer(path)`` load to the same embeddings.

Example:
    >>> from unirank.models.backbone import tiny_backbone
    >>> model = BiEncoder(tiny_backbone(hidden=16), max_length=32)
    >>> model.encode(["a query", "a somewhat longer document text"]).shape
    (2, 16)
    >>> model.score(["q1", ["turn one", "turn two"]], [["a", "b", "c"], ["d"]]).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

import contextlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import __version__
from ..errors import ConfigError
from ..io import atomic_dir, read_json, write_json
from ..registry import Registry
from ..scoring import SIMILARITIES
from ..types import Document
from .backbone import (
    Backbone,
    add_pooler,
    encode_tokens,
    load_backbone,
    mean_pool,
    pick_device,
    resolve_model_path,
    save_tokenizer,
)
from .base import MODELS, Context, DualEncoder

#: file in a saved folder that records the unirank model kind and its settings
UNIRANK_CONFIG = "unirank_model.json"
#: format version of :data:`UNIRANK_CONFIG`
FORMAT_VERSION = 1


def _cls_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """First token's vector. Shapes: (B, L, H), (B, L) -> (B, H) (inputs are right-padded)."""
    return hidden[:, 0]


#: pooling name -> function (B, L, H), (B, L) -> (B, H)
TEXT_POOLINGS: Registry[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = Registry("text pooling")
TEXT_POOLINGS.register("mean")(mean_pool)
TEXT_POOLINGS.register("cls")(_cls_pool)

#: ``encode(dtype=...)`` name -> autocast dtype
AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}

#: show a progress bar by default when encoding takes more batches than this (and stderr is a tty)
PROGRESS_MIN_BATCHES = 20


def _registered(registry: Registry[Any], name: str, key: str) -> Any:
    try:
        return registry.get(name)
    except KeyError as e:
        raise ConfigError(f"{key}: {e.args[0]}") from None


@MODELS.register("bi")
class BiEncoder(DualEncoder):
    """Dual encoder on one shared backbone.

    Args:
        backbone: encoder and tokenizer (:func:`~unirank.models.backbone.load_backbone`).
        pooling: ``"mean"`` over non-padding tokens or ``"cls"`` (first token).
        normalize: L2-normalise the pooled vectors.
        max_length: tokens per text, special tokens included; longer texts are truncated.
        similarity: a :data:`~unirank.scoring.SIMILARITIES` name (``"cosine"`` or ``"dot"``).
        query_prefix: prepended to every query / context text (e.g. ``"query: "``).
        doc_prefix: prepended to every candidate / document text.
    """

    kind = "bi"

    def __init__(
        self,
        backbone: Backbone,
        pooling: str = "mean",
        normalize: bool = True,
        max_length: int = 256,
        similarity: str = "cosine",
        query_prefix: str = "",
        doc_prefix: str = "",
    ) -> None:
        super().__init__()
        self._pool_fn = _registered(TEXT_POOLINGS, pooling, "pooling")
        self.similarity_fn = _registered(SIMILARITIES, similarity, "similarity")
        if not 2 <= int(max_length) <= backbone.max_positions:
            raise ConfigError(
                f"max_length: {max_length} is outside 2..{backbone.max_positions} (the backbone's position limit)"
            )
        self.backbone = backbone
        self.model = backbone.model  # registered as a submodule: .to(), .parameters(), state_dict()
        self.tokenizer = backbone.tokenizer
        self.pooling, self.normalize, self.max_length = pooling, bool(normalize), int(max_length)
        self.similarity = similarity
        self.query_prefix, self.doc_prefix = query_prefix, doc_prefix
        self.train(bool(self.model.training))  # start in the backbone's mode (eval after load_backbone)

    # ------------------------------------------------------------------ settings / loading

    @property
    def settings(self) -> dict[str, Any]:
        """The constructor arguments other than the backbone (what ``save`` records)."""
        return {
            "pooling": self.pooling,
            "normalize": self.normalize,
            "max_length": self.max_length,
            "similarity": self.similarity,
            "query_prefix": self.query_prefix,
            "doc_prefix": self.doc_prefix,
        }

    @property
    def hidden_size(self) -> int:
        return self.backbone.hidden_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike | None = None, **kw: Any) -> "BiEncoder":
        """Load a bi-encoder.

        ``name_or_path`` resolves as in :func:`~unirank.models.backbone.resolve_model_path`
        (``None``: the packaged all-MiniLM-L6-v2). Settings are taken, in increasing priority,
        from the class defaults, a sentence-transformers folder's own files (max_seq_length,
        pooling mode, Normalize module, similarity_fn_name, query/document prompts), the
        folder's ``unirank_model.json`` (written by :meth:`save`) and finally ``kw``.
        ``attn_implementation`` in ``kw`` is passed to ``load_backbone``.

        Raises:
            ConfigError: the folder was saved for another model kind, or is a
                sentence-transformers pipeline this class cannot reproduce (e.g. a Dense layer).
        """
        attn = kw.pop("attn_implementation", "sdpa")
        src = resolve_model_path(name_or_path)
        settings: dict[str, Any] = {}
        folder = Path(src)
        if folder.is_dir():
            settings.update(_sentence_transformers_settings(folder))
            cfg_path = folder / UNIRANK_CONFIG
            if cfg_path.is_file():
                cfg = read_json(cfg_path)
                if cfg.get("kind") != cls.kind:
                    raise ConfigError(f"{cfg_path}: kind is {cfg.get('kind')!r}; BiEncoder loads kind {cls.kind!r}")
                settings.update(cfg.get("settings", {}))
        settings.update(kw)
        return cls(load_backbone(src, attn_implementation=attn), **settings)

    # ------------------------------------------------------------------ text -> tensors

    def context_text(self, context: Context) -> str:
        """One string for a query or a dialogue context (turns joined by `` <sep> ``).

        Example:
            >>> from unirank.models.backbone import tiny_backbone
            >>> BiEncoder(tiny_backbone(hidden=16)).context_text(["hi", "hello there"])
            'hi [SEP] hello there'
        """
        if isinstance(context, str):
            return context
        sep = getattr(self.tokenizer, "sep_token", None)
        return f" {sep} ".join(context) if sep else " ".join(context)

    def _token_ids(self, texts: list[str], max_length: int) -> list[list[int]]:
        """Token ids per text (special tokens added, truncated to ``max_length``), unpadded."""
        return self.tokenizer(
            texts,
            truncation=True,
            max_length=max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]

    def _pad(self, ids: Sequence[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-pad id lists into (B, L) ``input_ids`` and 0/1 ``attention_mask`` on ``device``."""
        lengths = [len(x) for x in ids]
        width = max(lengths)
        pad_id = self.tokenizer.pad_token_id or 0
        input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, (x, n) in enumerate(zip(ids, lengths)):
            input_ids[row, :n] = x
            mask[row, :n] = 1
        ids_t, mask_t = torch.from_numpy(input_ids), torch.from_numpy(mask)
        if device.type == "cuda":  # pinned + non_blocking: the copy does not wait for queued kernels
            return ids_t.pin_memory().to(device, non_blocking=True), mask_t.pin_memory().to(device, non_blocking=True)
        return ids_t.to(device), mask_t.to(device)

    def _vectors(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Encoder -> pooling (in float32) -> optional L2 normalisation. Shapes: (B, L) -> (B, H)."""
        hidden = encode_tokens(self.model, input_ids, mask).float()
        pooled = self._pool_fn(hidden, mask)
        return F.normalize(pooled, p=2, dim=-1) if self.normalize else pooled

    # ------------------------------------------------------------------ training / reranking

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Differentiable embeddings of ``texts`` (no prefix added), on the model's device.

        Shapes:
            N texts -> (N, H) float32

        Example:
            >>> from unirank.models.backbone import tiny_backbone
            >>> e = BiEncoder(tiny_backbone(hidden=16)).embed(["one", "two words"])
            >>> e.shape, [round(float(x), 4) for x in e.detach().norm(dim=-1)]
            (torch.Size([2, 16]), [1.0, 1.0])
        """
        texts = list(texts)
        if not texts:
            return torch.zeros(0, self.hidden_size, device=self.device)
        input_ids, mask = self._pad(self._token_ids(texts, self.max_length), self.device)
        return self._vectors(input_ids, mask)

    def _context_token_ids(self, contexts: Sequence[Context], max_length: int) -> list[list[int]]:
        """Token ids of ``query_prefix + context``: a string is cut at the end like any text;
        a dialogue (turn list) keeps its most recent tokens, so the reply's immediate
        context survives truncation."""
        ids: list[list[int] | None] = [None] * len(contexts)
        plain = [i for i, c in enumerate(contexts) if isinstance(c, str)]
        for i, x in zip(
            plain, self._token_ids([self.query_prefix + contexts[i] for i in plain], max_length) if plain else []
        ):
            ids[i] = x
        turns = [i for i, c in enumerate(contexts) if not isinstance(c, str)]
        if turns:
            raw = self.tokenizer(
                [self.context_text(contexts[i]) for i in turns],
                add_special_tokens=False,
                return_attention_mask=False,
                return_token_type_ids=False,
            )["input_ids"]
            prefix = (
                self.tokenizer(self.query_prefix, add_special_tokens=False)["input_ids"] if self.query_prefix else []
            )
            wrap = self.tokenizer("", return_attention_mask=False, return_token_type_ids=False)[
                "input_ids"
            ]  # e.g. [CLS] [SEP]
            head = 1 if wrap and wrap[0] in (self.tokenizer.cls_token_id, self.tokenizer.bos_token_id) else 0
            budget = max_length - len(wrap) - len(prefix)
            for i, x in zip(turns, raw):
                body = prefix + x[len(x) - budget :] if budget > 0 else prefix[: max(max_length - len(wrap), 0)]
                ids[i] = wrap[:head] + body + wrap[head:]
        return ids  # type: ignore[return-value]

    def embed_contexts(self, contexts: Sequence[Context]) -> torch.Tensor:
        """Differentiable embeddings of queries or dialogue contexts (``query_prefix`` added;
        a turn list keeps its most recent tokens when it is too long).

        Example:
            >>> from unirank.models.backbone import tiny_backbone
            >>> m = BiEncoder(tiny_backbone(hidden=16), max_length=4)
            >>> m.tokenizer.convert_ids_to_tokens(m._context_token_ids([["old turn", "hello world"]], 4)[0])
            ['[CLS]', 'hello', 'world', '[SEP]']
        """
        contexts = list(contexts)
        if not contexts:
            return torch.zeros(0, self.hidden_size, device=self.device)
        input_ids, mask = self._pad(self._context_token_ids(contexts, self.max_length), self.device)
        return self._vectors(input_ids, mask)

    def score(self, contexts: Sequence[Context], candidates: Sequence[Sequence[str]]) -> torch.Tensor:
        """Similarity of each context (with ``query_prefix``) to its own candidates (with ``doc_prefix``).

        Shapes:
            B contexts, candidates[b] with N_b texts -> (B, max N_b); slots past N_b are ``-inf``.

        Example:
            >>> from unirank.models.backbone import tiny_backbone
            >>> s = BiEncoder(tiny_backbone(hidden=16)).score(["q"], [["x", "y"]])
            >>> s.shape, bool((s.abs() <= 1 + 1e-6).all())
            (torch.Size([1, 2]), True)
        """
        if len(contexts) != len(candidates):
            raise ValueError(f"{len(contexts)} contexts but {len(candidates)} candidate lists")
        counts = [len(c) for c in candidates]
        width = max(counts, default=0)
        q = self.embed_contexts(contexts)
        flat = [self.doc_prefix + t for cands in candidates for t in cands]
        out = torch.full((len(contexts), width), float("-inf"), device=q.device)
        if not flat:
            return out
        d = self.embed(flat)
        full = self.similarity_fn(q, d)  # (B, sum N_b)
        rows = torch.repeat_interleave(
            torch.arange(len(counts), device=q.device), torch.tensor(counts, device=q.device)
        )
        cols = torch.cat([torch.arange(n, device=q.device) for n in counts])
        return out.index_put((rows, cols), full[rows, torch.arange(len(flat), device=q.device)])

    # ------------------------------------------------------------------ fast inference

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        device: str | torch.device | None = None,
        dtype: str | None = None,
        show_progress: bool | None = None,
        max_length: int | None = None,
        token_ids: Sequence[list[int]] | None = None,
    ) -> np.ndarray:
        """Embed many texts without gradients, as fast as the backbone allows.

        Texts are sorted by character length (longest first); then, ``16 * batch_size`` at a
        time, tokenized in one call of the (Rust, multi-threaded) tokenizer and re-sorted by
        exact token count, so each batch is padded only to its own longest text. Rows are
        written back in input order. Each text is tokenized once. On an accelerator the next
        slice is tokenized in a background thread while the current one runs, inputs are copied
        from pinned memory, and results are copied back one slice late, so the device is not
        left waiting for the host.

        Args:
            texts: strings (no prefix is added; see :meth:`encode_queries`, :meth:`encode_docs`).
            batch_size: texts per forward pass.
            device: where to run; default CUDA when present, else CPU. The model is moved
                there once and stays there.
            dtype: ``None`` (float32), ``"bf16"`` (CUDA or CPU autocast) or ``"fp16"`` (CUDA
                autocast). Pooling and normalisation always run in float32.
            show_progress: tqdm bar; ``None`` shows it when there are more than
                ``PROGRESS_MIN_BATCHES`` batches and stderr is a terminal.
            max_length: token limit for this call (default: the model's ``max_length``).
            token_ids: already tokenised inputs, one per text (special tokens included,
                within the limit); ``texts`` then only give the count and are not read.

        Shapes:
            N texts -> (N, H)

        Returns:
            float32 numpy array, row i for ``texts[i]``.

        Example:
            >>> from unirank.models.backbone import tiny_backbone
            >>> m = BiEncoder(tiny_backbone(hidden=16))
            >>> e = m.encode(["short", "a much longer text than that", "mid text"], batch_size=2)
            >>> e.shape, e.dtype, bool(np.allclose(e[1], m.encode(["a much longer text than that"])[0], atol=1e-5))
            ((3, 16), dtype('float32'), True)
        """
        texts = list(texts)
        if token_ids is not None:
            token_ids = list(token_ids)
            if len(token_ids) != len(texts):
                raise ValueError(f"{len(token_ids)} token id lists for {len(texts)} texts")
        for i, t in enumerate(texts):
            if token_ids is None and not isinstance(t, str):
                raise TypeError(f"texts[{i}] is {type(t).__name__}; encode takes strings")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        limit = self.max_length if max_length is None else int(max_length)
        if not 2 <= limit <= self.backbone.max_positions:
            raise ValueError(f"max_length {limit} is outside 2..{self.backbone.max_positions}")
        out = np.empty((len(texts), self.hidden_size), dtype=np.float32)
        if not texts:
            return out

        dev = pick_device(str(device) if device is not None else None)
        autocast: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if dtype is not None:
            if dtype not in AUTOCAST_DTYPES:
                raise ConfigError(
                    f"dtype: unknown {dtype!r}; valid: {', '.join(AUTOCAST_DTYPES)} (or unset for float32)"
                )
            if dtype == "fp16" and dev.type == "cpu":
                raise ConfigError("dtype: 'fp16' needs CUDA; use 'bf16' on CPU")
            autocast = torch.autocast(device_type=dev.type, dtype=AUTOCAST_DTYPES[dtype])
        if show_progress is None:
            show_progress = -(-len(texts) // batch_size) > PROGRESS_MIN_BATCHES and sys.stderr.isatty()

        from tqdm.auto import tqdm

        self.to(dev)
        was_training = self.training
        self.eval()
        sizes = token_ids if token_ids is not None else texts
        order = np.argsort(np.fromiter((-len(t) for t in sizes), dtype=np.int64, count=len(texts)), kind="stable")
        chunks = self._tokenized_chunks(
            texts, order, 16 * batch_size, limit, prefetch=dev.type != "cpu", token_ids=token_ids
        )
        pending: tuple[np.ndarray, list[torch.Tensor]] | None = None  # last chunk's rows, still on the device

        def flush() -> None:
            rows, vecs = pending
            out[rows] = torch.cat(vecs).cpu().numpy()
            bar.update(len(rows))

        try:
            with (
                torch.inference_mode(),
                autocast,
                tqdm(total=len(texts), unit="text", desc="encode", disable=not show_progress) as bar,
            ):
                for idx, ids in chunks:
                    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
                    by_tokens = np.argsort(-lengths, kind="stable")
                    vecs = []
                    for b in range(0, len(by_tokens), batch_size):
                        input_ids, mask = self._pad([ids[r] for r in by_tokens[b : b + batch_size]], dev)
                        vecs.append(self._vectors(input_ids, mask))
                    if pending is not None:
                        flush()  # copied back only now, so an accelerator never waits for the host
                    pending = (idx[by_tokens], vecs)
                if pending is not None:
                    flush()
        finally:
            chunks.close()
            self.train(was_training)
        return out

    def _tokenized_chunks(
        self,
        texts: list[str],
        order: np.ndarray,
        size: int,
        limit: int,
        prefetch: bool,
        token_ids: Sequence[list[int]] | None = None,
    ) -> Iterator[tuple[np.ndarray, list[list[int]]]]:
        """Yield ``(indices, token ids)`` for consecutive ``size``-slices of ``order``.

        With ``prefetch`` the next slice is tokenized in a background thread (the Rust
        tokenizer releases the GIL) while the caller runs the model on the current one.
        """
        slices = [order[s : s + size] for s in range(0, len(order), size)]

        def tokenize(idx: np.ndarray) -> list[list[int]]:
            if token_ids is not None:
                return [list(token_ids[i]) for i in idx]
            return self._token_ids([texts[i] for i in idx], limit)

        if not prefetch:
            for idx in slices:
                yield idx, tokenize(idx)
            return
        with ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(tokenize, slices[0])
            for k, idx in enumerate(slices):
                ids = future.result()
                if k + 1 < len(slices):
                    future = pool.submit(tokenize, slices[k + 1])
                yield idx, ids

    def encode_queries(self, queries: Sequence[Context], **kw: Any) -> np.ndarray:
        """:meth:`encode` of ``query_prefix + text``; a dialogue context (turn list) keeps its
        most recent tokens, as in :meth:`score` and training."""
        queries = list(queries)
        if all(isinstance(q, str) for q in queries):
            return self.encode([self.query_prefix + q for q in queries], **kw)
        limit = self.max_length if kw.get("max_length") is None else int(kw["max_length"])
        ids = self._context_token_ids(queries, limit)
        return self.encode([""] * len(queries), token_ids=ids, **kw)

    def encode_docs(self, docs: Sequence[str | Document], **kw: Any) -> np.ndarray:
        """:meth:`encode` of ``doc_prefix + text``; a :class:`~unirank.types.Document` gives its ``full_text``."""
        return self.encode([self.doc_prefix + (d if isinstance(d, str) else d.full_text) for d in docs], **kw)

    # ------------------------------------------------------------------ saving

    def save(self, path: str | os.PathLike) -> None:
        """Write a folder that :meth:`from_pretrained` and ``SentenceTransformer(path)`` both load.

        Contents: ``config.json``, ``model.safetensors`` and tokenizer files (transformers
        ``save_pretrained``); the sentence-transformers pipeline (``modules.json``,
        ``sentence_bert_config.json``, ``1_Pooling/config.json``, ``2_Normalize/`` when
        normalising, ``config_sentence_transformers.json`` with the prefixes as the ``query`` /
        ``document`` prompts and the similarity name); and ``unirank_model.json`` (kind,
        settings, backbone source and fingerprint, library versions).

        The folder is built beside ``path`` and renamed into place, so a failure leaves no
        half-written model. An existing folder is replaced only if it holds a previous
        unirank save (``unirank_model.json``) - never an unrelated non-empty folder.
        """
        path = Path(path).expanduser().resolve()
        with atomic_dir(path, marker=UNIRANK_CONFIG) as tmp:  # refuses a file or a folder of the user's (ConfigError)
            self._write_folder(tmp)

    def _write_folder(self, folder: Path) -> None:
        self.model.save_pretrained(str(folder))
        add_pooler(folder, self.backbone)  # else SentenceTransformer(folder) reports a randomly initialised pooler
        save_tokenizer(self.tokenizer, folder)
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        ]
        if self.normalize:
            modules.append(
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
            )
            (folder / "2_Normalize").mkdir()
        write_json(folder / "modules.json", modules)
        write_json(folder / "sentence_bert_config.json", {"max_seq_length": self.max_length, "do_lower_case": False})
        write_json(
            folder / "1_Pooling" / "config.json",
            {
                "word_embedding_dimension": self.hidden_size,
                "pooling_mode_cls_token": self.pooling == "cls",
                "pooling_mode_mean_tokens": self.pooling == "mean",
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
                "pooling_mode_weightedmean_tokens": False,
                "pooling_mode_lasttoken": False,
                "include_prompt": True,
            },
        )
        write_json(
            folder / "config_sentence_transformers.json",
            {
                "model_type": "SentenceTransformer",
                "prompts": {"query": self.query_prefix, "document": self.doc_prefix},
                "default_prompt_name": None,
                "similarity_fn_name": self.similarity,
            },
        )
        write_json(
            folder / UNIRANK_CONFIG,
            {
                "kind": self.kind,
                "format": FORMAT_VERSION,
                "settings": self.settings,
                "backbone": {"source": self.backbone.source, "fingerprint": self.backbone.fingerprint()},
                "versions": {
                    "unirank": __version__,
                    "torch": torch.__version__,
                    "transformers": _version("transformers"),
                },
            },
        )


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def _read_json(path: Path) -> Any:
    return read_json(path) if path.is_file() else None


#: sentence-transformers pooling config -> our pooling name
_ST_POOLING_KEYS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}


def _sentence_transformers_settings(folder: Path) -> dict[str, Any]:
    """BiEncoder settings implied by a sentence-transformers folder's files (empty if it is not one).

    Reads ``modules.json`` (Transformer -> Pooling -> optional Normalize; anything else is
    refused), ``sentence_bert_config.json`` (``max_seq_length``), the Pooling config (classic
    boolean flags or the newer ``pooling_mode`` string) and ``config_sentence_transformers.json``
    (``similarity_fn_name``; the ``query`` and ``document``/``passage``/``corpus`` prompts).
    """
    modules = _read_json(folder / "modules.json")
    if modules is None:
        return {}
    settings: dict[str, Any] = {"normalize": False}
    where = folder / "modules.json"
    for m in modules:
        kind = str(m.get("type", "")).rsplit(".", 1)[-1]
        if kind == "Normalize":
            settings["normalize"] = True
        elif kind == "Pooling":
            pcfg = _read_json(folder / m.get("path", "") / "config.json") or {}
            mode = pcfg.get("pooling_mode")
            if mode is None:
                on = [k for k, v in pcfg.items() if k.startswith("pooling_mode_") and v is True]
                mode = _ST_POOLING_KEYS.get(on[0], on[0]) if len(on) == 1 else "+".join(on)
            if mode not in TEXT_POOLINGS:
                raise ConfigError(
                    f"{where}: pooling {mode!r} is not supported; valid: {', '.join(TEXT_POOLINGS.names())}"
                )
            settings["pooling"] = mode
        elif kind != "Transformer":
            raise ConfigError(f"{where}: module {m.get('type')!r} is not supported by BiEncoder")
    sbert = _read_json(folder / "sentence_bert_config.json") or {}
    if sbert.get("max_seq_length"):
        settings["max_length"] = int(sbert["max_seq_length"])
    st_cfg = _read_json(folder / "config_sentence_transformers.json") or {}
    if st_cfg.get("similarity_fn_name") in SIMILARITIES:
        settings["similarity"] = st_cfg["similarity_fn_name"]
    prompts = st_cfg.get("prompts") or {}
    if prompts.get("query"):
        settings["query_prefix"] = prompts["query"]
    doc = next((prompts[k] for k in ("document", "passage", "corpus") if prompts.get(k)), None)
    if doc:
        settings["doc_prefix"] = doc
    return settings
