"""Export a ranker's tensor part to ONNX (``unirank export --format onnx [--quantize int8]``).

Tokenisation and packing stay in Python (shared with the PyTorch path); what is exported is
everything after them, so ONNX Runtime computes the scores themselves:

==========  ===========================================================================
kind        graphs (inputs -> outputs; every axis but the hidden size is dynamic)
==========  ===========================================================================
``bi``      ``encoder``: input_ids, attention_mask (B, L) -> embeddings (B, H):
            backbone, pooling (mean / cls) and L2 normalisation.
``cross``   ``scorer``: input_ids, token_type_ids, position_ids, segment_ids (P, L) ->
            scores (P,): backbone over the packed pair, pooling, (tanh dense) and head.
``uni``     ``scorer``: the same four (B, L) tensors plus candidate_mask (B, N) ->
            scores (B, N): the attention mask (``arrow`` ...) is built from the segment ids
            inside the graph as a (B, 1, L, L) additive mask, with the packed rows' shared
            position ids - one pass scores all candidates of a row, as in PyTorch's masked
            pass (the segment-by-segment pass is not exported).
``poly``    ``context``: packed contexts -> codes (B, m, H); ``candidate``: packed candidates
            -> vectors (N, H); ``score``: codes, candidates (B, N, H), candidate_mask (B, N)
            -> scores (B, N).
==========  ===========================================================================

The graphs are traced with ``torch.onnx.export`` (TorchScript exporter, opset 17), then,
optionally, BERT-family graphs get ONNX Runtime's offline transformer fusions
(``onnxruntime.transformers.optimizer``; off by default) and/or
``onnxruntime.quantization.quantize_dynamic`` (int8 weights with per-channel scales,
activations quantised per call). ONNX Runtime applies its own graph optimisations when it
opens a graph. The folder holds the graphs, the tokenizer, and ``unirank_onnx.json`` (kind, settings,
precision, graph files, the source model's fingerprint, versions); it is written beside the
target and renamed into place.

Needs the ``onnx`` extra: ``pip install 'unirank[onnx]'``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, DataError, MissingDependency
from ..io import atomic_dir, write_json
from ..models.base import ONNX_MODEL_FILE as ONNX_FILE
from ..optional import optional_import
from ..registry import Registry

__all__ = [
    "ONNX_FILE",
    "ONNX_FORMAT",
    "QUANTIZATIONS",
    "MissingDependency",
    "export_onnx",
    "is_onnx_folder",
    "read_onnx_meta",
    "require_onnx",
]

#: the metadata file of an exported folder
#: value of "format" in :data:`ONNX_FILE`
ONNX_FORMAT = 1
#: how the graphs are traced; part of the on-the-fly export cache key (2: eager attention)
GRAPH_REVISION = 2
#: ONNX opset of the exported graphs
OPSET = 17
#: ``quantize`` values: None (fp32 weights) or "int8" (dynamic quantisation)
QUANTIZATIONS = (None, "int8")

INSTALL_HINT = "pip install 'unirank[onnx]'"


def require_onnx() -> Any:
    """Import onnxruntime, or raise :class:`~unirank.errors.MissingDependency` (an ImportError) with the
    install hint."""
    optional_import("onnx", "the ONNX backend", INSTALL_HINT)
    return optional_import("onnxruntime", "the ONNX backend", INSTALL_HINT)


@dataclass
class Graph:
    """One graph to export: a module, example inputs and the names / dynamic axes of its I/O."""

    name: str
    module: torch.nn.Module
    inputs: dict[str, torch.Tensor]
    outputs: dict[str, dict[int, str]]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """Every input's and output's dynamic axes (all but the hidden size and the codes' m)."""
        return {**{k: dict(_INPUT_AXES[k]) for k in self.inputs}, **self.outputs}


_PACKED_INPUTS = ("input_ids", "token_type_ids", "position_ids", "segment_ids")
_INPUT_AXES = {
    **{k: {0: "batch", 1: "length"} for k in (*_PACKED_INPUTS, "attention_mask")},
    "candidate_mask": {0: "batch", 1: "slots"},
    "codes": {0: "batch"},
    "candidates": {0: "batch", 1: "slots"},
}

#: model kind -> function(model) -> graphs to export
ONNX_GRAPHS: Registry[Callable[[Any], list[Graph]]] = Registry("ONNX-exportable model kind")


class _Call(torch.nn.Module):
    """A module whose forward is ``fn(*inputs)`` (the ranker is registered as a submodule)."""

    def __init__(self, model: torch.nn.Module, fn: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.fn(*args)


def _packed(
    ids: torch.Tensor, tt: torch.Tensor, pos: torch.Tensor, seg: torch.Tensor, cand: torch.Tensor | None = None
) -> Any:
    from ..models.inputs import PackedBatch

    return PackedBatch(ids, tt, pos, seg, seg[:, :1] >= 0 if cand is None else cand)


def _packed_inputs(packed: Any) -> dict[str, torch.Tensor]:
    return {k: getattr(packed, k) for k in _PACKED_INPUTS}


_SAMPLE_CONTEXTS = ["how do I sort a list in python", ["hi there", "hello, how are you doing today?"]]
_SAMPLE_CANDIDATES = [
    ["use sorted() or list.sort()", "no idea", "a much longer candidate text with more words"],
    ["fine thanks"],
]


@ONNX_GRAPHS.register("bi")
def _bi_graphs(model: Any) -> list[Graph]:
    ids, mask = model._pad(
        model._token_ids(["a short text", "a somewhat longer text than the first one"], 32), torch.device("cpu")
    )
    return [
        Graph(
            "encoder",
            _Call(model, model._vectors),
            {"input_ids": ids, "attention_mask": mask},
            {"embeddings": {0: "batch"}},
        )
    ]


@ONNX_GRAPHS.register("cross")
def _cross_graphs(model: Any) -> list[Graph]:
    packed = model.packer.pack_ids(
        model.packer.context_ids(["a query", "another longer query text"]),
        [[x] for x in model.packer.candidate_ids(["doc one", "a longer second document"])],
    )
    return [
        Graph("scorer", _Call(model, lambda *t: model(_packed(*t))), _packed_inputs(packed), {"scores": {0: "batch"}})
    ]


@ONNX_GRAPHS.register("uni")
def _uni_graphs(model: Any) -> list[Graph]:
    packed = model.packer.pack(_SAMPLE_CONTEXTS, _SAMPLE_CANDIDATES)
    inputs = {**_packed_inputs(packed), "candidate_mask": packed.candidate_mask}
    return [Graph("scorer", _Call(model, lambda *t: model(_packed(*t))), inputs, {"scores": {0: "batch", 1: "slots"}})]


@ONNX_GRAPHS.register("poly")
def _poly_graphs(model: Any) -> list[Graph]:
    ctx = model.packer.pack_contexts(_SAMPLE_CONTEXTS)
    cand = model.packer.pack_single(["a reply", "a somewhat longer reply"], model.packer.max_candidate_length)
    with torch.no_grad():
        codes = model.context_codes(ctx)
        vecs = model.candidate_vectors(cand)[None].expand(2, -1, -1).contiguous()
    cand_mask = torch.tensor([[True, True], [True, False]])
    return [
        Graph(
            "context",
            _Call(model, lambda *t: model.context_codes(_packed(*t))),
            _packed_inputs(ctx),
            {"codes": {0: "batch"}},
        ),
        Graph(
            "candidate",
            _Call(model, lambda *t: model.candidate_vectors(_packed(*t))),
            _packed_inputs(cand),
            {"vectors": {0: "batch"}},
        ),
        Graph(
            "score",
            _Call(model, model.score_embeddings),
            {"codes": codes, "candidates": vecs, "candidate_mask": cand_mask},
            {"scores": {0: "batch", 1: "slots"}},
        ),
    ]


@contextlib.contextmanager
def _export_mode(model: Any):
    """Eval mode; the Uni-Encoder on its masked pass (data-dependent branches cannot be traced);
    the backbone traced with eager attention: the SDPA path traces into an IsNaN / Where guard
    around the softmax that ONNX Runtime runs slower (eager: 1.21x fp32, 1.31x int8 encoding on
    the 2-core CPU, ``bench/onnx_session_options.py``; same scores within 1e-5)."""
    was_training, seg = model.training, getattr(model, "segmented", None)
    hf = model.backbone.model
    attn = getattr(hf.config, "_attn_implementation", None)
    switch = attn not in (None, "eager") and hasattr(hf, "set_attn_implementation")
    model.eval()
    if seg is not None:
        model.segmented = False
    if switch:
        hf.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.train(was_training)
        if seg is not None:
            model.segmented = seg
        if switch:
            hf.set_attn_implementation(attn)


def _backbone_config(model: Any) -> Any:
    return model.backbone.model.config


def _optimize(path: Path, cfg: Any) -> None:
    """ONNX Runtime's transformer fusions for a BERT-family graph, in place."""
    from onnxruntime.transformers.optimizer import optimize_model

    opt = optimize_model(
        str(path), model_type="bert", num_heads=int(cfg.num_attention_heads), hidden_size=int(cfg.hidden_size)
    )
    opt.save_model_to_file(str(path))


def _quantize(path: Path) -> None:
    """Dynamic int8 quantisation (weights int8; activations quantised per call), in place."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = path.with_name(path.stem + ".int8.onnx")
    # fused (contrib) ops defeat ONNX shape inference; their outputs are float tensors
    # per-channel weights: per-tensor scales cost all-MiniLM-L6-v2 embeddings a cosine of 0.90 to fp32, per-channel 0.99
    quantize_dynamic(
        str(path),
        str(tmp),
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": TensorProto.FLOAT},
    )
    os.replace(tmp, path)


def _fingerprint(model: Any) -> str:
    """sha256 of the backbone fingerprint(s) and the head parameters (first 16 hex digits)."""
    h = hashlib.sha256()
    for bb in (getattr(model, "_backbones", lambda: {"backbone": model.backbone})()).values():
        h.update(bb.fingerprint().encode())
    for name, t in sorted(model.state_dict().items()):
        if name.startswith(("encoder.", "candidate_encoder.", "model.")):
            continue
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()[:16]


def _settings(model: Any) -> dict[str, Any]:
    s = model.settings
    return dict(s() if callable(s) else s)


def export_onnx(model: Any, out: str | os.PathLike, quantize: str | None = None, optimize: bool = False) -> Path:
    """Write ``model``'s ONNX graphs, tokenizer and :data:`ONNX_FILE` to the folder ``out``.

    Args:
        model: a bi, cross, uni or poly ranker (PyTorch).
        out: the folder; replaced if it holds an earlier export, refused if it holds anything else.
        quantize: ``None`` (fp32) or ``"int8"`` (dynamic quantisation).
        optimize: apply ``onnxruntime.transformers``' offline BERT fusions before quantising
            (BERT-family backbones). Off by default: on the 2-core CPU the fused all-MiniLM-L6-v2
            graph encoded slower than the plain one, which ONNX Runtime optimises when it loads it.

    Returns:
        The folder's path.

    Example:
        >>> from unirank.models.bi import BiEncoder
        >>> from unirank.models.backbone import tiny_backbone
        >>> import tempfile
        >>> d = export_onnx(BiEncoder(tiny_backbone(hidden=16)), tempfile.mkdtemp() + "/bi")  # doctest: +SKIP
        >>> sorted(p.name for p in d.iterdir())  # doctest: +SKIP
        ['encoder.onnx', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json', 'unirank_onnx.json', 'vocab.txt']
    """
    require_onnx()
    if quantize not in QUANTIZATIONS:
        raise ConfigError(f"quantize: {quantize!r} is unknown; valid: int8 (or unset for fp32)")
    kind = getattr(model, "kind", None)
    try:
        build = ONNX_GRAPHS.get(str(kind))
    except KeyError as e:
        raise ConfigError(str(e.args[0])) from None
    target = Path(out).expanduser().resolve()
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not (target / ONNX_FILE).is_file())):
        raise ConfigError(f"{target} exists and is not an ONNX export folder; refusing to replace it")
    cfg = _backbone_config(model)
    fuse = optimize and getattr(cfg, "model_type", "") in ("bert",)
    with atomic_dir(target, marker=ONNX_FILE) as tmp:  # the whole export or the earlier one
        model.to("cpu")
        graphs: dict[str, dict[str, Any]] = {}
        with _export_mode(model), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on shape arithmetic (the axes stay dynamic: tested)
            for g in build(model):
                path = tmp / f"{g.name}.onnx"
                torch.onnx.export(
                    g.module,
                    tuple(g.inputs.values()),
                    str(path),
                    input_names=list(g.inputs),
                    output_names=list(g.outputs),
                    dynamic_axes=g.dynamic_axes(),
                    opset_version=OPSET,
                    dynamo=False,
                )
                if fuse and g.name != "score":
                    _optimize(path, cfg)
                if quantize == "int8":
                    _quantize(path)
                graphs[g.name] = {"file": path.name, "inputs": list(g.inputs), "outputs": list(g.outputs)}
        model.tokenizer.save_pretrained(str(tmp))
        meta = {
            "kind": kind,
            "format": ONNX_FORMAT,
            "settings": _settings(model),
            "graphs": graphs,
            "precision": quantize or "fp32",
            "optimized": bool(fuse),
            "opset": OPSET,
            "backbone": {
                "hidden_size": int(cfg.hidden_size),
                "max_positions": int(model.backbone.max_positions),
                "type_vocab_size": int(getattr(cfg, "type_vocab_size", 0) or 0),
                "model_type": str(getattr(cfg, "model_type", "")),
            },
            "source": {"model": model.backbone.source, "fingerprint": _fingerprint(model)},
            "versions": _versions(),
        }
        write_json(tmp / ONNX_FILE, meta)
    return target


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for p in ("unirank", "torch", "transformers", "onnx", "onnxruntime"):
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "unknown"
    return out


def is_onnx_folder(path: str | os.PathLike | None) -> bool:
    """Whether ``path`` is a folder written by :func:`export_onnx`."""
    return path is not None and (Path(path).expanduser() / ONNX_FILE).is_file()


def read_onnx_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed :data:`ONNX_FILE` of an export folder (DataError if unusable)."""
    f = Path(path).expanduser() / ONNX_FILE
    if not f.is_file():
        raise DataError(
            f"not an ONNX export folder (no {ONNX_FILE}; write one with `unirank export --format onnx`)", path=path
        )
    try:
        meta = json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg}", path=f, line=e.lineno) from None
    if not isinstance(meta, dict) or meta.get("format") != ONNX_FORMAT or not isinstance(meta.get("graphs"), dict):
        raise DataError(f'expected a JSON object with "format": {ONNX_FORMAT} and "graphs"', path=f)
    for g in meta["graphs"].values():
        if not (Path(path).expanduser() / g["file"]).is_file():
            raise DataError(f"graph file {g['file']} is missing", path=path)
    return meta
