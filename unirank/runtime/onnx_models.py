"""Rankers that score through ONNX Runtime: the graphs of :mod:`unirank.runtime.onnx_export`.

Each class subclasses its PyTorch counterpart and replaces only the tensor part, so
tokenisation, truncation, packing, chunking and :meth:`BiEncoder.encode`'s length-sorted
batching are the same code on both backends:

* :class:`OnnxBiEncoder` - ``_vectors`` (encoder + pooling + normalisation) is the ``encoder`` graph;
* :class:`OnnxCrossEncoder` / :class:`OnnxUniEncoder` - ``forward(packed)`` is the ``scorer`` graph;
* :class:`OnnxPolyEncoder` - ``context_codes``, ``candidate_vectors`` and ``score_embeddings``
  are the ``context``, ``candidate`` and ``score`` graphs.

They hold no torch weights; ``save`` is refused (the export folder is the saved form).
:func:`load_onnx_ranker` opens an export folder with a thread setting for small CPUs.

Example:
    >>> from unirank.models.bi import BiEncoder
    >>> from unirank.models.backbone import tiny_backbone
    >>> from unirank.runtime.onnx_export import export_onnx
    >>> import tempfile, numpy as np
    >>> torch_model = BiEncoder(tiny_backbone(hidden=16))
    >>> folder = export_onnx(torch_model, tempfile.mkdtemp() + "/bi")  # doctest: +SKIP
    >>> ort_model = load_onnx_ranker(folder, threads=1)  # doctest: +SKIP
    >>> texts = ["a query", "a longer document text"]
    >>> bool(np.allclose(ort_model.encode(texts), torch_model.encode(texts), atol=1e-5))  # doctest: +SKIP
    True
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..models.bi import BiEncoder
from ..models.cross import CrossEncoder
from ..models.poly import PolyEncoder
from ..models.uni import UniEncoder
from ..registry import Registry
from .onnx_export import read_onnx_meta, require_onnx

__all__ = ["OnnxBiEncoder", "OnnxCrossEncoder", "OnnxPolyEncoder", "OnnxUniEncoder", "OrtGraph", "load_onnx_ranker"]


class OrtGraph:
    """One ONNX Runtime session.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (``None``: ONNX Runtime's default, one per physical core);
            inter-op parallelism is off (one graph runs at a time).
        device: ``None`` / ``"cpu"``, or ``"cuda"`` (needs onnxruntime-gpu).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None, device: str | None = None) -> None:
        ort = require_onnx()
        so = ort.SessionOptions()
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.inter_op_num_threads = 1
        if threads is not None:
            if int(threads) < 1:
                raise ConfigError(f"threads: expected an integer >= 1, got {threads!r}")
            so.intra_op_num_threads = int(threads)
        providers = ["CPUExecutionProvider"]
        if device is not None and str(device).startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ConfigError(
                    f"device: {device!r} asked for, but this onnxruntime has no CUDA provider (pip install "
                    "onnxruntime-gpu); use cpu"
                )
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), so, providers=providers)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, **inputs: torch.Tensor | np.ndarray) -> np.ndarray:
        """Run the graph on the named inputs it declares (others are ignored: the exporter drops
        inputs a graph does not read); returns its first output."""
        feed = {k: _numpy(inputs[k]) for k in self.input_names}
        return self.session.run(None, feed)[0]


def _numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x)


class _GraphHolder(torch.nn.Module):
    """Stands where a transformers encoder would: its config, no weights (the graphs have them)."""

    def __init__(self, backbone_meta: dict[str, Any]) -> None:
        super().__init__()
        self.config = SimpleNamespace(
            hidden_size=int(backbone_meta["hidden_size"]),
            max_position_embeddings=int(backbone_meta["max_positions"]),
            type_vocab_size=int(backbone_meta.get("type_vocab_size", 0)),
            model_type=backbone_meta.get("model_type", ""),
            num_attention_heads=1,
        )


def _onnx_backbone(folder: Path, meta: dict[str, Any]) -> Any:
    from ..models.backbone import Backbone, load_tokenizer

    @dataclass
    class OnnxBackbone(Backbone):
        """A backbone whose weights live in ONNX graphs. Its fingerprint hashes the source model's
        with the export's precision (an int8 export computes other vectors than the fp32 one)."""

        onnx_fingerprint: str = ""

        @property
        def max_positions(self) -> int:
            return int(meta["backbone"]["max_positions"])

        def fingerprint(self) -> str:
            return self.onnx_fingerprint

    import hashlib

    fp = hashlib.sha256(
        f"{meta['source']['fingerprint']}|onnx|{meta['precision']}|{meta.get('optimized')}".encode()
    ).hexdigest()[:16]
    return OnnxBackbone(
        model=_GraphHolder(meta["backbone"]),
        tokenizer=load_tokenizer(folder),
        source=f"{meta['source']['model']} (onnx {meta['precision']})",
        onnx_fingerprint=fp,
    )


class _OnnxMixin:
    """What every ONNX ranker shares: its graphs, CPU tensors in and out, no saving."""

    backend = "onnx"
    graphs: dict[str, OrtGraph]
    onnx_meta: dict[str, Any]

    def _attach(self, folder: Path, meta: dict[str, Any], threads: int | None, device: str | None) -> None:
        self.onnx_meta = meta
        self.onnx_folder = folder
        self.graphs = {
            name: OrtGraph(folder / g["file"], threads=threads, device=device) for name, g in meta["graphs"].items()
        }
        self.eval()

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")  # inputs are made on the host; ONNX Runtime places them

    @property
    def precision(self) -> str:
        return str(self.onnx_meta["precision"])

    def save(self, path: str | os.PathLike) -> None:
        raise ConfigError(
            f"an ONNX ranker is saved by `unirank export --format onnx` from its PyTorch model "
            f"(this one was loaded from {self.onnx_folder})"
        )


#: model kind -> ONNX ranker class
ONNX_RANKERS: Registry[Callable[..., Any]] = Registry("ONNX model kind")


@ONNX_RANKERS.register("bi")
class OnnxBiEncoder(_OnnxMixin, BiEncoder):
    """:class:`~unirank.models.bi.BiEncoder` whose encoder + pooling run in ONNX Runtime."""

    def _vectors(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.graphs["encoder"](input_ids=input_ids, attention_mask=mask))

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, device: Any = None, dtype: str | None = None, **kw: Any
    ) -> np.ndarray:
        """:meth:`BiEncoder.encode` (same length-sorted batching) through the ``encoder`` graph;
        ``dtype`` is the export's precision, not an autocast (``None`` only)."""
        if dtype is not None:
            raise ConfigError(
                f"dtype: {dtype!r} is an autocast of the PyTorch backend; an ONNX export has its own "
                f"precision ({self.precision}); unset dtype"
            )
        return super().encode(texts, batch_size=batch_size, device="cpu", dtype=None, **kw)


@ONNX_RANKERS.register("cross")
class OnnxCrossEncoder(_OnnxMixin, CrossEncoder):
    """:class:`~unirank.models.cross.CrossEncoder` whose packed-pair scoring runs in ONNX Runtime."""

    def forward(self, packed: Any) -> torch.Tensor:
        return torch.from_numpy(self.graphs["scorer"](**_packed_feed(packed)))


@ONNX_RANKERS.register("uni")
class OnnxUniEncoder(_OnnxMixin, UniEncoder):
    """:class:`~unirank.models.uni.UniEncoder` whose masked packed pass runs in ONNX Runtime."""

    def forward(self, packed: Any) -> torch.Tensor:
        return torch.from_numpy(self.graphs["scorer"](**_packed_feed(packed), candidate_mask=packed.candidate_mask))


@ONNX_RANKERS.register("poly")
class OnnxPolyEncoder(_OnnxMixin, PolyEncoder):
    """:class:`~unirank.models.poly.PolyEncoder` whose encoders, codes and poly attention run in ONNX Runtime."""

    def context_codes(self, packed: Any) -> torch.Tensor:
        return torch.from_numpy(self.graphs["context"](**_packed_feed(packed)))

    def candidate_vectors(self, packed: Any) -> torch.Tensor:
        return torch.from_numpy(self.graphs["candidate"](**_packed_feed(packed)))

    def score_embeddings(
        self, context_codes: torch.Tensor, candidate_vectors: torch.Tensor, candidate_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        B = context_codes.shape[0]
        cand = candidate_vectors if candidate_vectors.dim() == 3 else candidate_vectors.unsqueeze(0).expand(B, -1, -1)
        mask = torch.ones(cand.shape[:2], dtype=torch.bool) if candidate_mask is None else candidate_mask.bool()
        return torch.from_numpy(
            self.graphs["score"](codes=context_codes.float(), candidates=cand.float(), candidate_mask=mask)
        )


def _packed_feed(packed: Any) -> dict[str, torch.Tensor]:
    return {
        "input_ids": packed.input_ids,
        "token_type_ids": packed.token_type_ids,
        "position_ids": packed.position_ids,
        "segment_ids": packed.segment_ids,
    }


def onnx_class(kind: str) -> Any:
    """The ONNX ranker class of ``kind``.

    Example:
        >>> onnx_class("uni").__name__
        'OnnxUniEncoder'
    """
    return ONNX_RANKERS.get(kind)


def load_onnx_ranker(
    folder: str | os.PathLike, threads: int | None = None, device: str | None = None, **overrides: Any
) -> Any:
    """Open an export folder as a ranker of its kind.

    Args:
        folder: written by :func:`~unirank.runtime.onnx_export.export_onnx`.
        threads: ONNX Runtime intra-op threads (``None``: its default).
        device: ``None`` / ``"cpu"`` or ``"cuda"``.
        overrides: settings that do not change the graphs (``chunk_size``, ``max_length``, ...).
            Settings baked into a graph (pooling, mask, head) cannot be overridden.

    Raises:
        DataError: not an export folder, or a graph file is missing.
        ConfigError: an override of a setting the graphs fixed.
    """
    folder = Path(folder).expanduser()
    meta = read_onnx_meta(folder)
    cls = onnx_class(meta["kind"])
    settings = dict(meta["settings"])
    baked = {
        "pooling",
        "normalize",
        "similarity",
        "mask",
        "head_activation",
        "n_codes",
        "codes_attention",
        "poly_attention",
        "candidate_pooling",
        "shared_encoder",
        "candidate_token_type",
    }
    defaults = {n: p.default for n, p in inspect.signature(cls.__init__).parameters.items()}
    for k, v in overrides.items():
        # an export older than a setting was made with that setting's default
        exported = settings.get(k, defaults.get(k))
        if k in baked and v != exported:
            raise ConfigError(
                f"{k}: {v!r} differs from the exported graphs' {exported!r}; export the model again with it"
            )
        settings[k] = v
    backbone = _onnx_backbone(folder, meta)
    if meta["kind"] == "poly":
        shared = settings.pop("shared_encoder", True)
        model = cls(backbone, shared_encoder=True, **settings)  # the candidate graph holds its own encoder either way
        model.shared_encoder = shared
    else:
        model = cls(backbone, **settings)
    model._attach(folder, meta, threads, device)
    return model
