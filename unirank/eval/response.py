"""Response-selection evaluation: score every candidate of every context, then R_n@k and MRR.

``evaluate_response(ranker, examples)`` is the core (no I/O): examples are scored in
batches through the :class:`~unirank.models.base.Ranker` contract
(``ranker.score(contexts, candidates)``) under ``torch.inference_mode`` and the metrics are
:func:`unirank.eval.metrics.response_metrics` of those scores (pessimistic ties).
``run_response_eval(cfg)`` (what ``unirank eval --task response`` runs) adds loading (data by
name or path, a ranker by kind / folder), timings and the output folder (:func:`write_response_outputs`).

Batching: examples are sorted by text length (longest first) so a batch pads little, scored
``batch_size`` contexts per call, and written back in input order. ``chunk_size`` caps the
candidates of one context per call (memory); with a Uni-Encoder ``arrow`` mask scores
depend on which candidates share a pass, so leave it ``None`` (all candidates together, the
paper's setting) unless lists are long. Models also chunk internally (their own
``chunk_size``).

Examples without a correct candidate (e.g. some Douban test contexts) are scored but left
out of the metrics, as the Douban evaluation scripts do; their number is reported.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import io as uio
from ..errors import ConfigError
from ..models.base import Context, Ranker
from ..types import DialogueExample
from .config import EvalConfig
from .metrics import _correct_ranks, response_metrics

__all__ = [
    "score_lists",
    "evaluate_response",
    "response_cutoffs",
    "write_response_outputs",
    "ranker_info",
    "ResponseEvalResult",
    "run_response_eval",
]


def _show_progress(progress: bool | None) -> bool:
    return bool(progress) if progress is not None else sys.stderr.isatty()


def score_lists(
    ranker: Ranker,
    contexts: Sequence[Context],
    candidates: Sequence[Sequence[str]],
    batch_size: int = 16,
    chunk_size: int | None = None,
    progress: bool | None = False,
    desc: str = "score",
) -> list[list[float]]:
    """Score each context's candidate list, ``batch_size`` contexts and at most
    ``chunk_size`` candidates per context in one ``ranker.score`` call.

    The ranker is put in eval mode for the call (and restored afterwards); work runs under
    ``torch.inference_mode``. Contexts are processed longest first (by characters) so a
    batch pads little; results come back in input order.

    Args:
        ranker: any :class:`~unirank.models.base.Ranker`.
        contexts: B queries or turn lists.
        candidates: B candidate lists (may differ in length; may be empty).
        batch_size: contexts per call (>= 1).
        chunk_size: most candidates of one context per call (``None``: all).
        progress: tqdm bar over contexts (``None``: when stderr is a terminal).
        desc: the bar's label.

    Shapes:
        -> B lists, list b has ``len(candidates[b])`` floats.

    Example:
        >>> import numpy as np
        >>> from unirank.models.backbone import tiny_backbone
        >>> from unirank.models.uni import UniEncoder
        >>> m = UniEncoder(tiny_backbone(), mask="arrow_strict")
        >>> s = score_lists(m, ["hi", ["a", "b"]], [["x", "y", "z"], ["w"]], batch_size=1, chunk_size=2)
        >>> [len(x) for x in s]
        [3, 1]
        >>> bool(np.allclose(s[0], m.score(["hi"], [["x", "y", "z"]])[0].tolist(), atol=1e-5))
        True
    """
    from tqdm.auto import tqdm

    if len(contexts) != len(candidates):
        raise ValueError(f"{len(contexts)} contexts but {len(candidates)} candidate lists")
    if batch_size < 1 or (chunk_size is not None and chunk_size < 1):
        raise ConfigError(f"batch_size and chunk_size must be >= 1; got {batch_size}, {chunk_size}")

    def length(i: int) -> int:
        c = contexts[i]
        return (len(c) if isinstance(c, str) else sum(len(t) for t in c)) + sum(len(t) for t in candidates[i])

    order = sorted(range(len(contexts)), key=lambda i: (-length(i), i))
    out: list[list[float]] = [[] for _ in contexts]
    was_training = ranker.training
    ranker.eval()
    try:
        with (
            torch.inference_mode(),
            tqdm(total=len(order), desc=desc, unit="ctx", disable=not _show_progress(progress)) as bar,
        ):
            for s in range(0, len(order), batch_size):
                idx = order[s : s + batch_size]
                n_max = max(len(candidates[i]) for i in idx)
                step = chunk_size or max(n_max, 1)
                for off in range(0, n_max, step):
                    rows = [i for i in idx if len(candidates[i]) > off]
                    cands = [list(candidates[i][off : off + step]) for i in rows]
                    scores = ranker.score([contexts[i] for i in rows], cands).float().cpu()
                    for r, i in enumerate(rows):
                        out[i].extend(scores[r, : len(cands[r])].tolist())
                bar.update(len(idx))
    finally:
        ranker.train(was_training)
    return out


def response_cutoffs(n_candidates: Sequence[int], ks: Sequence[int] = (1, 2, 5)) -> list[int]:
    """The cutoffs worth reporting: those below the largest candidate count (R_n@k with
    k >= n is 1 by construction).

    Example:
        >>> response_cutoffs([4, 4]), response_cutoffs([10])
        ([1, 2], [1, 2, 5])
    """
    n = max(n_candidates, default=0)
    return [k for k in ks if k < n] or [1]


def evaluate_response(
    ranker: Ranker,
    examples: Sequence[DialogueExample],
    batch_size: int = 16,
    chunk_size: int | None = None,
    ks: Sequence[int] = (1, 2, 5),
    progress: bool | None = None,
) -> tuple[dict[str, float], list[list[float]]]:
    """Score every example's candidates with ``ranker`` and compute R_n@k and MRR.

    Args:
        ranker: any :class:`~unirank.models.base.Ranker`.
        examples: contexts with candidates and 0/1 labels.
        batch_size: contexts per ``ranker.score`` call.
        chunk_size: most candidates of one context per call (``None``: all at once).
        ks: cutoffs; those ``>=`` the largest candidate count are dropped
            (:func:`response_cutoffs`).
        progress: tqdm bar (``None``: when stderr is a terminal).

    Returns:
        ``(metrics, scores)``: ``metrics`` as :func:`~unirank.eval.metrics.response_metrics`
        gives them (``R10@1``, ..., ``mrr``) over the examples that have a correct
        candidate; ``scores[i]`` holds one float per candidate of ``examples[i]``.

    Raises:
        ValueError: no example has a correct candidate, or a score is NaN.

    Example:
        >>> from unirank.models.backbone import tiny_backbone
        >>> from unirank.models.uni import UniEncoder
        >>> ex = [DialogueExample("a", ["hi"], ["yo", "no", "x"], [1, 0, 0])]
        >>> m, s = evaluate_response(UniEncoder(tiny_backbone()), ex, progress=False)
        >>> sorted(m), len(s[0])
        (['R3@1', 'R3@2', 'mrr'], 3)
    """
    for ex in examples:
        if len(ex.labels) != len(ex.candidates):
            raise ValueError(f"example {ex.id!r}: {len(ex.candidates)} candidates but {len(ex.labels)} labels")
    scores = score_lists(
        ranker,
        [ex.context for ex in examples],
        [ex.candidates for ex in examples],
        batch_size,
        chunk_size,
        progress,
        "response",
    )
    kept = [i for i, ex in enumerate(examples) if any(y > 0 for y in ex.labels)]
    if not kept:
        raise ValueError("no example has a correct candidate; R@k and MRR are undefined")
    cut = response_cutoffs([len(examples[i].candidates) for i in kept], ks)
    metrics = response_metrics([scores[i] for i in kept], [examples[i].labels for i in kept], cut)
    return metrics, scores


def write_response_outputs(
    out: str | Path,
    examples: Sequence[DialogueExample],
    scores: Sequence[Sequence[float]],
    metrics: dict[str, float],
    config: dict[str, Any],
    info: dict[str, Any] | None = None,
) -> None:
    """Write ``scores.jsonl``, ``metrics.json`` and ``config.json`` into ``out``, the folder as
    a unit (:func:`unirank.io.atomic_dir`: a failure leaves an earlier ``out`` as it was).

    ``scores.jsonl`` has one ``{"id", "scores", "labels", "rank"}`` per example, ``rank``
    being the (pessimistic) rank of its best correct candidate, ``null`` if it has none.
    ``config.json`` is ``{"config": config, **info}`` (as ``unirank eval`` writes it).

    Example:
        >>> import json, os, tempfile
        >>> d = tempfile.mkdtemp()
        >>> write_response_outputs(d, [DialogueExample("a", ["hi"], ["x", "y"], [0, 1])], [[0.9, 0.1]],
        ...                        {"R2@1": 0.0}, {"seed": 0})
        >>> json.loads(open(os.path.join(d, "scores.jsonl")).readline())["rank"]
        2
    """
    if len(examples) != len(scores):
        raise ValueError(f"{len(examples)} examples but {len(scores)} score lists")
    from .config import OUTPUT_MARKER

    def rows():
        for ex, s in zip(examples, scores):
            has_pos = any(y > 0 for y in ex.labels)
            rank = int(_correct_ranks([s], [ex.labels])[0]) if has_pos else None
            yield {"id": ex.id, "scores": [float(x) for x in s], "labels": list(ex.labels), "rank": rank}

    with uio.atomic_dir(out, OUTPUT_MARKER) as tmp:
        uio.write_jsonl(tmp / "scores.jsonl", rows())
        uio.write_json(tmp / "metrics.json", metrics)
        uio.write_json(tmp / "config.json", {"config": config, **(info or {})})


# --------------------------------------------------------------------------- loading + the whole run


def ranker_info(ranker: Ranker) -> dict[str, Any]:
    """Kind, settings, backbone source and weight fingerprint of a ranker (for config.json)."""
    settings = getattr(ranker, "settings", None)
    settings = settings() if callable(settings) else settings
    bb = getattr(ranker, "backbone", None)
    info: dict[str, Any] = {"kind": ranker.kind, "settings": settings or {}}
    if getattr(ranker, "backend", None) == "onnx":
        info["backend"] = {
            "name": "onnx",
            "precision": ranker.precision,
            "folder": str(ranker.onnx_folder),
            "source_fingerprint": ranker.onnx_meta["source"]["fingerprint"],
        }
    if bb is not None:
        info["source"] = bb.source
        info["fingerprint"] = bb.fingerprint()
    return info


@dataclass
class ResponseEvalResult:
    metrics: dict[str, float]
    scores: list[list[float]]
    examples: list[DialogueExample]
    info: dict[str, Any] = field(default_factory=dict)


def run_response_eval(
    cfg: EvalConfig,
    *,
    ranker: Ranker | None = None,
    quiet: bool = False,
    progress: bool | None = None,
) -> ResponseEvalResult:
    """Load response-selection data and a ranker, evaluate, print and write the results.

    Args:
        cfg: an :class:`~unirank.eval.config.EvalConfig` with ``task: response``: ``data`` (a
            built-in name - ``dailydialog``, ``mutual`` - or a path: MuTual folder, TSV, JSONL,
            task folder; see :func:`unirank.data.dialogue.load_response_data`), ``split``,
            ``limit_queries`` (first N contexts), ``out``, ``seed`` and ``response`` (format,
            loader options, the ranker's kind / model / device, batch and chunk sizes, cutoffs).
            ``seed`` and ``response.n_candidates`` reach only data built on the fly (e.g.
            ``dailydialog``) as its ``seed`` / ``n`` (``response.data_options`` wins); an option
            the data does not take is a ConfigError.
        ranker: score with this ranker instead of loading ``response.kind`` / ``response.model``.
        quiet: do not print the metrics table.
        progress: tqdm bar (``None``: when stderr is a terminal).

    Returns:
        A :class:`ResponseEvalResult`; ``info`` holds the data manifest, counts, the ranker
        (kind, settings, fingerprint), timings and versions; ``cfg.out`` (when set) gets
        :func:`write_response_outputs` with ``config.json`` = the resolved ``cfg``.
    """
    from ..config import to_dict
    from ..data.dialogue import load_response_data, response_data_options
    from ..provenance import versions
    from .report import metrics_table

    r = cfg.response
    accepted = response_data_options(cfg.data, r.format)
    generic = {k: v for k, v in (("seed", cfg.seed), ("n", r.n_candidates)) if v is not None and k in accepted}
    data_options = {**generic, **(r.data_options or {})}
    task = load_response_data(cfg.data, split=cfg.split, fmt=r.format, **data_options)
    examples = task.examples[: cfg.limit_queries] if cfg.limit_queries else list(task.examples)
    if ranker is None:
        from ..models.base import load_ranker

        ranker = load_ranker(r.model, r.kind, device=r.device, backend=r.backend)
    t0 = time.perf_counter()
    metrics, scores = evaluate_response(ranker, examples, r.batch_size, r.chunk_size, r.ks, progress)
    secs = time.perf_counter() - t0
    n_cands = sum(len(e.candidates) for e in examples)
    info = {
        "data": {"name": task.manifest.get("name", str(cfg.data)), "split": cfg.split, "manifest": task.manifest},
        "counts": {
            "examples": len(examples),
            "candidates": n_cands,
            "without_correct_candidate": sum(1 for e in examples if not any(y > 0 for y in e.labels)),
        },
        "ranker": ranker_info(ranker),
        "timings_s": {
            "score_s": round(secs, 3),
            "candidates_per_s": round(n_cands / secs, 1) if secs > 0 else math.inf,
        },
        "versions": versions(),
    }
    if cfg.out is not None:
        write_response_outputs(cfg.out, examples, scores, metrics, to_dict(cfg), info)
    if not quiet:
        print(metrics_table(metrics, title=f"{ranker.kind} on {info['data']['name']} ({len(examples)} contexts)"))
    return ResponseEvalResult(metrics, scores, examples, info)
