"""``unirank train``: one training loop for every ranker kind, read top to bottom.

    config ─► model (MODELS registry) ─► examples (qrels split or mined train.jsonl)
           ─► each epoch: rows (one per query-positive pair, seeded negatives)
                          ─► batches (BATCH_SAMPLERS: random / no_duplicates / tas_balanced)
                          ─► per batch: scores ─► LossInputs ─► losses.combine ─► backward
                          ─► AdamW + warmup/decay schedule + clipping ─► metrics.jsonl
                          ─► (every N steps: ANCE refresh of the negatives; checkpoint)
           ─► after each epoch: dev evaluation (the task's, unirank.tasks) ─► best checkpoint
           ─► export (sentence-transformers + transformers folders) ─► test evaluation

**Scores.** A batch of ``B`` rows becomes a :class:`~unirank.losses.LossInputs`:

* with in-batch negatives (default) the columns are the *shared pool* in the
  positives-first layout of :mod:`unirank.losses`: the ``B`` positives, then every row's
  mined negatives. Query ``i``'s positive is column ``i``; its other relevant documents
  (same query, other rows, or the same document id elsewhere in the batch) are masked out
  rather than used as negatives. Teacher scores (from a mined file) fill the entries of a
  row's own positive and negatives; ``hard_negative_mask`` marks its own mined negatives.
  A bi-encoder embeds queries and documents once (:func:`pool_scores`); a model with
  ``score_shared`` (poly-encoder) scores the pool directly; any other ranker scores every
  query against the whole pool through ``Ranker.score``.
* without in-batch negatives each row is scored against its own ``[positive, negatives]``
  list (``Ranker.score``), the listwise layout of cross-encoders and Uni-Encoders.
* ``shuffle_pool: true`` puts the pool's columns in a seeded order (:func:`shuffle_columns`).
  With ``data.negatives: 0`` the pool is the batch's gold replies: the *in-batch candidates*
  the Uni-Encoder paper (and ParlAI's poly-encoder) trains with.

**Auxiliary MLM loss** (``mlm.weight > 0``; cross, poly, uni): the batch is scored inside
``model.masked_lm(...)`` (:mod:`unirank.models.mlm_aux`), which corrupts every packed input
BERT-style with a generator seeded per batch; ``weight x`` its masked-LM loss joins the
ranking loss and is logged as ``mlm``. The head is the backbone checkpoint's pre-trained one
when it has one (``*ForMaskedLM`` checkpoints such as ``bert-base-uncased``), else a new one
(all-MiniLM-L6-v2), with a note in the log: a new head's loss starts near ln(vocab).

**Accumulation and GradCache.** ``accumulate: k`` averages the gradients of ``k`` batches
per optimizer step; each batch keeps its own pool of ``batch_size`` rows, exactly as a
Hugging Face / sentence-transformers trainer does, so it grows the step but *not* the
contrastive pool. ``grad_cache: true`` (bi-encoders) computes the loss of the whole
``batch_size`` pool from embeddings built ``chunk_size`` texts at a time and
back-propagates cached embedding gradients chunk by chunk
(:mod:`unirank.training.gradcache`): large pools in the memory of a small chunk, the same
gradient as one pass over the pool. ``gradient_checkpointing: true`` (every kind) keeps only
each layer's input and recomputes the layer in the backward pass: what long Uni-Encoder and
cross-encoder inputs need (same gradient, ~40% more time per step).

**Reproducibility and resume.** Batches, negative draws and the epoch's batch list are
functions of the seed and the epoch; a checkpoint stores weights, optimizer, scheduler,
every random generator and the loop position, so ``--resume`` after a kill finishes with
the same weights as an uninterrupted run (bit-exact on CPU; tested).

**Distributed training** (``torchrun --nproc_per_node N -m unirank train CONFIG.yaml``;
:mod:`unirank.training.distributed`): every rank builds the same global batches; a
bi-encoder with in-batch negatives embeds its share of the batch's texts and
:meth:`Dist.gather` all-gathers them (local part keeping its gradient), so every query sees
the documents of the whole global batch and the labels are those of the *global*
positives-first pool; other models train on their rank's share of each batch. Gradients are
averaged over ranks after the backward pass; only rank 0 writes checkpoints, logs, exports
and reports (each rank adds its own random-generator state to a checkpoint for resume).

Example (tiny random model, two steps)::

    >>> import tempfile
    >>> from unirank.models.backbone import tiny_backbone
    >>> from unirank.models.bi import BiEncoder
    >>> from unirank.types import Candidate, TrainExample
    >>> ex = [TrainExample(f"q{i}", f"question {i}", [Candidate(f"d{i}", f"answer {i}")]) for i in range(4)]
    >>> cfg = from_dict(TrainConfig, {"batch_size": 2, "dev": {"split": None}, "out": tempfile.mkdtemp(),
    ...                               "log_every": 1})
    >>> summary = train(cfg, model=BiEncoder(tiny_backbone(hidden=16), max_length=16), examples=ex, progress=False,
    ...                 log=lambda m: None)
    >>> summary["steps"], sorted(summary["export"])
    (2, ['model', 'transformers'])
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from . import io as uio
from .config import check_params, from_dict, load_config, to_dict
from .errors import ConfigError, DataError
from .losses import LossInputs, combine
from .models.base import DualEncoder, SharedPoolScorer
from .models.mlm_aux import MaskedLMTrainable
from .provenance import seed_everything, text_fingerprint, versions
from .tasks import SplitEvaluator, get_task
from .training.batching import build_batch_sampler
from .training.checkpoint import (
    clean_checkpoint_leftovers,
    latest_checkpoint,
    load_checkpoint,
    load_weights,
    prune_checkpoints,
    read_trainer_state,
    save_checkpoint,
)
from .training.config import RESUME_SAFE_KEYS, ModelConfig, TrainConfig
from .training.data import Row, epoch_rows, replace_negatives
from .training.distributed import Dist
from .training.gradcache import grad_cache_step
from .training.schedules import SCHEDULES, warmup_steps_for
from .types import TrainExample

__all__ = [
    "TrainConfig",
    "train",
    "train_main",
    "build_model",
    "batch_inputs",
    "pool_scores",
    "Dist",
    "normalize_overrides",
]


# --------------------------------------------------------------------------- model


def build_model(cfg: ModelConfig) -> Any:
    """The ranker ``cfg`` names, through :func:`unirank.models.base.load_ranker` (on the CPU; the loop moves it)."""
    from .models.base import MODELS, import_model_kinds, load_ranker

    import_model_kinds()
    try:
        cls = MODELS.get(cfg.kind)
    except KeyError as e:
        raise ConfigError(f"model.kind: {e.args[0]}") from None
    settings = check_params(
        cls,
        cfg.settings,
        f"model.settings (kind {cfg.kind})",
        extra=cls.load_options,
        exclude={n for n in inspect.signature(cls).parameters if "backbone" in n},
    )  # before the weights load
    return load_ranker(cfg.name, cfg.kind, device="cpu", **settings)


# --------------------------------------------------------------------------- batch -> LossInputs


@dataclass
class Layout:
    """Texts to score and the masks of one batch.

    Shapes: ``positive_mask``, ``valid_mask``, ``teacher``, ``hard_mask``: ``(B, N)``.
    ``candidates`` is ``None`` for the shared pool (every row scores ``docs``) or the
    per-row candidate lists of the listwise layout.
    """

    queries: list[str | tuple[str, ...]]
    docs: list[str]
    candidates: list[list[str]] | None
    positive_mask: torch.Tensor
    valid_mask: torch.Tensor
    teacher: torch.Tensor | None
    hard_mask: torch.Tensor


def _score_or_nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def pool_layout(rows: Sequence[Row]) -> Layout:
    """Positives-first shared pool: columns ``0..B-1`` the rows' positives, then all negatives.

    Example:
        >>> from unirank.types import Candidate
        >>> r = [Row("q1", "Q1", Candidate("a", "A", 2.0), (Candidate("n", "N", 1.0),), frozenset({"a", "b"})),
        ...      Row("q2", "Q2", Candidate("b", "B"), (), frozenset({"b"}))]
        >>> lay = pool_layout(r)
        >>> lay.docs, lay.positive_mask.tolist(), lay.valid_mask.tolist()
        (['A', 'B', 'N'], [[True, False, False], [False, True, False]], [[True, False, True], [True, True, True]])
        >>> lay.teacher.tolist()[0], lay.hard_mask.tolist()
        ([2.0, nan, 1.0], [[False, False, True], [False, False, False]])
    """
    b = len(rows)
    ids = [r.positive.id for r in rows]
    docs = [r.positive.text for r in rows]
    owner = list(range(b))
    scores = [_score_or_nan(r.positive.score) for r in rows]
    for i, r in enumerate(rows):
        for n in r.negatives:
            ids.append(n.id)
            docs.append(n.text)
            owner.append(i)
            scores.append(_score_or_nan(n.score))
    n_cols = len(ids)
    pos = torch.zeros(b, n_cols, dtype=torch.bool)
    teacher = torch.full((b, n_cols), math.nan)
    # another relevant document of the row's query (or a copy of its own positive) is no negative
    index = {d: k for k, d in enumerate(dict.fromkeys(ids))}
    relevant = torch.zeros(b, len(index), dtype=torch.bool)  # (B, distinct ids)
    for i, r in enumerate(rows):
        relevant[i, [index[d] for d in r.positive_ids if d in index]] = True
    valid = ~relevant[:, torch.tensor([index[d] for d in ids])]
    pos[torch.arange(b), torch.arange(b)] = True
    valid |= pos
    own = torch.tensor(owner)
    rows_idx = torch.arange(b)[:, None]
    mine = own[None, :] == rows_idx  # (B, N): the row's own positive and negatives
    teacher = torch.where(mine, torch.tensor(scores)[None, :].expand(b, n_cols), teacher)
    hard = mine & (torch.arange(n_cols)[None, :] >= b)
    has_teacher = any(not math.isnan(s) for s in scores)
    return Layout([r.query for r in rows], docs, None, pos, valid, teacher if has_teacher else None, hard)


def list_layout(rows: Sequence[Row]) -> Layout:
    """Per-row lists ``[positive, *negatives]``, padded; column 0 is the positive.

    Example:
        >>> from unirank.types import Candidate
        >>> r = [Row("q", "Q", Candidate("a", "A"), (Candidate("n", "N"),), frozenset({"a"})),
        ...      Row("p", "P", Candidate("b", "B"), (), frozenset({"b"}))]
        >>> lay = list_layout(r)
        >>> lay.candidates, lay.valid_mask.tolist()
        ([['A', 'N'], ['B']], [[True, True], [True, False]])
    """
    cands = [[r.positive.text, *(n.text for n in r.negatives)] for r in rows]
    width = max(len(c) for c in cands)
    b = len(rows)
    valid = torch.arange(width)[None, :] < torch.tensor([len(c) for c in cands])[:, None]
    pos = torch.zeros(b, width, dtype=torch.bool)
    pos[:, 0] = True
    teacher = torch.full((b, width), math.nan)
    has_teacher = False
    for i, r in enumerate(rows):
        for j, c in enumerate([r.positive, *r.negatives]):
            if c.score is not None:
                teacher[i, j] = float(c.score)
                has_teacher = True
    hard = valid & ~pos
    return Layout(
        [r.query for r in rows],
        [t for c in cands for t in c],
        cands,
        pos,
        valid,
        teacher if has_teacher else None,
        hard,
    )


def shuffle_columns(layout: Layout, order: Sequence[int]) -> Layout:
    """The pool ``layout`` with its columns (documents and every mask) in ``order``.

    Example:
        >>> from unirank.types import Candidate
        >>> r = [Row("q1", "Q1", Candidate("a", "A"), (), frozenset({"a"})),
        ...      Row("q2", "Q2", Candidate("b", "B"), (), frozenset({"b"}))]
        >>> lay = shuffle_columns(pool_layout(r), [1, 0])
        >>> lay.docs, lay.positive_mask.tolist()
        (['B', 'A'], [[False, True], [True, False]])
    """
    if layout.candidates is not None:
        raise ValueError("shuffle_columns orders a shared pool; this layout has per-row candidate lists")
    idx = torch.as_tensor(list(order), dtype=torch.long)
    if sorted(idx.tolist()) != list(range(len(layout.docs))):
        raise ValueError(f"order must be a permutation of the {len(layout.docs)} columns")
    return Layout(
        layout.queries,
        [layout.docs[i] for i in idx.tolist()],
        None,
        layout.positive_mask[:, idx],
        layout.valid_mask[:, idx],
        None if layout.teacher is None else layout.teacher[:, idx],
        layout.hard_mask[:, idx],
    )


def batch_seed(seed: int, step: int | None, rows: Sequence[Row], salt: int) -> int:
    """A seed for one batch's random choices (pool order, MLM masks): a function of the run's
    seed, the step, the batch's rows and ``salt`` only, so a resumed run draws the same ones.

    Example:
        >>> from unirank.types import Candidate
        >>> r = [Row("q1", "Q1", Candidate("a", "A"), (), frozenset({"a"}))]
        >>> batch_seed(0, 3, r, 1) == batch_seed(0, 3, r, 1) != batch_seed(0, 4, r, 1)
        True
    """
    import hashlib

    key = "\t".join([str(seed), str(step), str(salt), *(f"{r.query_id}|{r.positive.id}" for r in rows)])
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little") >> 1


def pool_scores(
    model: Any, layout: Layout, dist: Dist = Dist(), reps: dict[str, torch.Tensor] | None = None
) -> torch.Tensor:
    """Differentiable ``(B, N)`` scores of the layout's queries against its documents.

    ``reps``: when given, a bi-encoder-like model's query and document vectors are stored in
    it (``"query"``, ``"doc"``) for the regularisers that read them (SPLADE's ``flops``).
    """
    if layout.candidates is not None:
        return model.score(layout.queries, layout.candidates)
    if isinstance(model, DualEncoder):
        d_texts = [model.doc_prefix + t for t in layout.docs]
        q, d = (
            dist.gather(model.embed_contexts(dist.share(list(layout.queries)))),
            dist.gather(model.embed(dist.share(d_texts))),
        )
        if reps is not None:
            reps.update(query=q, doc=d)
        return model.similarity_fn(q, d)
    if isinstance(model, SharedPoolScorer):
        return model.score_shared(layout.queries, layout.docs)
    return model.score(layout.queries, [layout.docs] * len(layout.queries))


def batch_inputs(
    scores: torch.Tensor, layout: Layout, reps: dict[str, torch.Tensor] | None = None, step: int | None = None
) -> LossInputs:
    """The :class:`LossInputs` of a batch (padding ``-inf`` entries become invalid); ``reps``
    and ``step`` feed the representation regularisers (``flops``, ``l1``)."""
    dev = scores.device
    valid = layout.valid_mask.to(dev) & torch.isfinite(scores.detach())
    teacher = layout.teacher.to(dev) if layout.teacher is not None else None
    reps = reps or {}
    return LossInputs(
        scores,
        positive_mask=layout.positive_mask.to(dev),
        valid_mask=valid,
        teacher_scores=teacher,
        hard_negative_mask=layout.hard_mask.to(dev),
        query_reps=reps.get("query"),
        doc_reps=reps.get("doc"),
        step=step,
    )


def _sparsity(reps: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mean non-zeros per query / document vector (logged for sparse models)."""
    return {f"nnz_{k[0]}": (v.detach() > 0).sum(1).float().mean() for k, v in reps.items() if v.shape[0]}


def batch_layout(rows: Sequence[Row], cfg: TrainConfig, step: int) -> Layout:
    """How training lays out a batch's rows: one shared pool (``in_batch_negatives``) or each
    row's own candidate list, the pool's columns in a seeded order with ``shuffle_pool``
    (:func:`batch_seed` of ``step``, salt 1)."""
    layout = pool_layout(rows) if cfg.in_batch_negatives else list_layout(rows)
    if cfg.shuffle_pool:
        gen = torch.Generator().manual_seed(batch_seed(cfg.seed, step, rows, 1))
        layout = shuffle_columns(layout, torch.randperm(len(layout.docs), generator=gen).tolist())
    return layout


def batch_backward(
    model: Any, rows: Sequence[Row], cfg: TrainConfig, weight: float, dist: Dist = Dist(), step: int | None = None
) -> dict[str, float]:
    """Forward + backward of one batch (gradients accumulate, scaled by ``weight``).

    Under data parallelism ``rows`` is the *global* batch: a bi-encoder with in-batch
    negatives computes the global loss from gathered embeddings (scaled by
    ``dist.loss_scale`` for the gradient average); other models use this rank's share.

    Returns:
        ``{"loss": total, label: unweighted part, ...}`` as floats.
    """
    gathers = dist.active and cfg.in_batch_negatives and isinstance(model, DualEncoder)
    local = dist.active and not gathers  # this rank scores only its share of the rows
    share = 1.0  # this rank's fraction of the global rows (1 with gathering or one process)
    if local:
        n_global = len(rows)
        rows = dist.share(rows)
        share = len(rows) / n_global
    scale = weight * (dist.loss_scale if gathers else share * dist.world_size)
    if not rows:  # a short last batch with fewer rows than ranks: nothing here, but join the loss sum
        return _global_parts({}, 0.0, dist)
    layout = batch_layout(rows, cfg, step)
    if cfg.grad_cache and layout.candidates is None and isinstance(model, DualEncoder):
        # tagged items so one embed function serves both groups: queries / dialogue contexts go
        # through embed_contexts (prefix, most recent tokens kept), documents through embed
        q_items = [("q", c) for c in layout.queries]
        d_items = [("d", model.doc_prefix + t) for t in layout.docs]

        def embed_items(items: Sequence[tuple[str, Any]]) -> torch.Tensor:
            values = [v for _, v in items]
            if not values:  # this rank's share of a short batch is empty
                return model.embed([])
            return model.embed_contexts(values) if items[0][0] == "q" else model.embed(values)

        def loss_fn(q: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, Any]:
            reps = {"query": dist.gather(q), "doc": dist.gather(d)}
            total, parts = combine(
                cfg.losses, batch_inputs(model.similarity_fn(reps["query"], reps["doc"]), layout, reps, step)
            )
            if isinstance(model, DualEncoder) and model.sparse_vectors:
                parts.update(_sparsity(reps))
            return total * scale, (total.detach(), parts)

        _, (total, parts) = grad_cache_step(
            embed_items, [dist.share(q_items), dist.share(d_items)], loss_fn, cfg.chunk_size
        )
    else:
        reps: dict[str, torch.Tensor] = {}
        mlm_gen = torch.Generator().manual_seed(batch_seed(cfg.seed, step, rows, 2)) if cfg.mlm.weight > 0 else None
        with model.masked_lm(cfg.mlm.prob, mlm_gen) if mlm_gen is not None else contextlib.nullcontext() as mlm:
            scores = pool_scores(model, layout, dist, reps)
        total, parts = combine(cfg.losses, batch_inputs(scores, layout, reps, step))
        if mlm is not None:
            mlm_loss = mlm.loss()
            total = total + cfg.mlm.weight * mlm_loss
            parts["mlm"] = mlm_loss.detach()
        if isinstance(model, DualEncoder) and model.sparse_vectors:
            parts.update(_sparsity(reps))
        if total.requires_grad:  # False only for a rank whose share of a short batch is empty
            (total * scale).backward()
        total = total.detach()
    out = {"loss": float(total), **{k: float(v) for k, v in parts.items()}}
    return _global_parts(out, share, dist) if local else out


def warm_mlm_head(
    model: Any, batches: Sequence[Sequence[Row]], cfg: TrainConfig, dist: Dist | None = None
) -> list[float]:
    """Fit the model's MLM head alone on ``batches`` (``mlm.head_warmup_steps``); returns the
    MLM loss of each step (this rank's).

    Each batch is laid out as training lays it out (this rank's share of the global batch,
    :func:`batch_layout`; gradients averaged over ranks), masked with a seed of its own
    (:func:`batch_seed`, salt 3) and scored in train mode; AdamW at ``mlm.head_warmup_lr`` (no weight decay) updates the head's transform and bias only -
    the encoder, the tied decoder (the word embeddings) and the ranking head are frozen, so
    the encoder runs forward only and keeps no activations for a backward pass. The masks
    are seeded; dropout draws from the global generator, which :func:`train` forks around
    this call (the run after it draws what it would have drawn without a warm-up).
    """
    head = model.mlm_head
    own = [p for name, p in head.named_parameters() if name != "decoder_weight"]
    own_ids = {id(p) for p in own}
    frozen = [p for p in model.parameters() if p.requires_grad and id(p) not in own_ids]
    optimizer = torch.optim.AdamW(own, lr=cfg.mlm.head_warmup_lr, weight_decay=0.0)
    losses: list[float] = []
    for p in frozen:
        p.requires_grad_(False)
    try:
        model.train()
        for i, rows in enumerate(batches):
            optimizer.zero_grad(set_to_none=True)
            mine = dist.share(rows) if dist is not None else list(rows)
            if mine:  # a rank with no share of a short batch still joins the gradient average
                gen = torch.Generator().manual_seed(batch_seed(cfg.seed, -1 - i, mine, 3))
                with model.masked_lm(cfg.mlm.prob, gen) as mlm:
                    pool_scores(model, batch_layout(mine, cfg, -1 - i))
                loss = mlm.loss()
                if loss.requires_grad:
                    loss.backward()
                losses.append(loss.item())
            if dist is not None:
                dist.sync_gradients(own)
            optimizer.step()
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return losses


def _global_parts(parts: dict[str, float], share: float, dist: Dist) -> dict[str, float]:
    """The global row mean of per-rank mean losses (every rank takes part, also with no rows)."""
    keys = sorted(k for k in parts)
    names = dist.broadcast(keys)  # rank 0 always has rows (shares are contiguous, rank 0 first)
    sums = dist.sum_floats([share * parts.get(k, 0.0) for k in names])
    return dict(zip(names, sums))


# --------------------------------------------------------------------------- optimisation


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases and LayerNorm weights (the BERT / HF convention)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@contextlib.contextmanager
def _train_length(model: Any, max_length: int | None) -> Iterator[None]:
    """Temporarily cap the model's token limit (training only)."""
    old = getattr(model, "max_length", None)
    if max_length is None or old is None:
        yield
        return
    model.max_length = min(int(max_length), int(old))
    try:
        yield
    finally:
        model.max_length = old


@contextlib.contextmanager
def _eval_threads(cfg: TrainConfig, device: torch.device) -> Iterator[None]:
    """While rank 0 evaluates on the CPU the other local ranks wait idle: give it their
    threads too (``threads`` x ``LOCAL_WORLD_SIZE``), then restore."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if device.type != "cpu" or not cfg.threads or local <= 1:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(cfg.threads * local)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _autocast(cfg: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    if cfg.dtype == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# --------------------------------------------------------------------------- evaluation / refresh


def refresh_negatives(
    model: Any, cfg: TrainConfig, examples: list[TrainExample], step: int, out: Path
) -> tuple[list[TrainExample], str]:
    """ANCE refresh: mine new negatives with the current model; returns (examples, mined file)."""
    from .negatives.convert import read_mined
    from .negatives.pipeline import MineConfig, run_mine

    folder = out / "refresh" / f"step-{step:06d}"
    mine = {
        "data": cfg.data.train,
        "split": cfg.data.split,
        "miner": {"name": model.retriever_name},
        "seed": cfg.seed,
        "negatives": max(cfg.data.negatives, 1),
        **cfg.refresh.mine,
        "out": str(folder),
    }
    mcfg = from_dict(MineConfig, mine)
    run_mine(mcfg, encoder=model)
    path = folder / "train.jsonl"
    examples, _ = replace_negatives(examples, read_mined(path, scores=cfg.data.teacher_scores))
    return examples, str(path)


# --------------------------------------------------------------------------- logging


class MetricsLog:
    """Append-only ``metrics.jsonl``.

    On resume from a checkpoint at step ``keep_until_step`` the file is cut back to what that
    checkpoint had seen: training lines up to its step, dev lines of the evaluations it
    holds (``dev_rows``, the state's ``dev`` list: a run killed after an epoch's dev line but
    before the epoch-end checkpoint evaluates again and must not log the line twice), no test
    lines (the test evaluation runs again at the end). A line cut short by a kill is dropped.
    """

    def __init__(self, path: Path, keep_until_step: int | None = None, dev_rows: Sequence[dict] = ()) -> None:
        self.path = path
        if keep_until_step is not None and path.is_file():
            done = {(d.get("step"), d.get("epoch")) for d in dev_rows}
            lines = path.read_text(encoding="utf-8").splitlines()
            kept = []
            for n, line in enumerate(lines):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    if n == len(lines) - 1:  # the last line, cut short by a kill
                        continue
                    raise DataError("not a JSON line (was the file edited?)", path=path, line=n + 1) from None
                keys = [k for k in row if "/" in k]
                if any(k.startswith("test/") for k in keys):
                    continue
                if any(k.startswith("dev/") for k in keys):
                    if (row.get("step"), row.get("epoch")) in done:
                        kept.append(line)
                elif row.get("step", 0) <= keep_until_step:
                    kept.append(line)
            uio.write_text(path, "".join(line + "\n" for line in kept))
        elif keep_until_step is None and path.exists():
            path.unlink()

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _round(d: dict[str, float], n: int = 6) -> dict[str, float]:
    return {k: round(float(v), n) for k, v in d.items()}


# --------------------------------------------------------------------------- the loop


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    model: Any = None,
    examples: list[TrainExample] | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    dist: Dist | None = None,
) -> dict[str, Any]:
    """Train ``cfg.model`` on ``cfg.data`` and write ``cfg.out`` (see the module docstring).

    Args:
        cfg: the run's settings.
        resume: continue from the latest checkpoint in ``cfg.out`` (start fresh if none).
        model: a ranker to train instead of building ``cfg.model`` (tests, notebooks).
        examples: training examples instead of loading ``cfg.data``.
        progress: tqdm bar (``None``: when stderr is a terminal).
        log: receives progress lines (default: print).
        dist: this process's place in a data-parallel run (default: from the torchrun
            environment, joining its process group; rank 0 of 1 without torchrun).

    Returns:
        The summary also written to ``summary.json``: steps, dev history, best, test
        metrics, export paths, wall time, ``stopped`` (``stop_after`` reached).

    Raises:
        ConfigError: bad config; ``cfg.out`` already holds a run and ``resume`` is false; the
            checkpoint's config differs from ``cfg`` in a key that changes the result.
    """
    dist = dist if dist is not None else Dist.from_env()
    try:
        return _train(cfg, resume=resume, model=model, examples=examples, progress=progress, log=log, dist=dist)
    finally:
        dist.close()


def _train(
    cfg: TrainConfig,
    *,
    resume: bool,
    model: Any,
    examples: list[TrainExample] | None,
    progress: bool | None,
    log: Callable[[str], None] | None,
    dist: Dist,
) -> dict[str, Any]:
    from tqdm.auto import tqdm

    main = dist.is_main
    say = (log or (lambda msg: print(msg, flush=True))) if main else (lambda msg: None)
    cfg.validate()
    if not cfg.out:
        raise ConfigError("out: an output folder is required")
    t_start = time.perf_counter()
    out = Path(cfg.out)
    ckpt_root = out / "checkpoints"
    if main and (resume or ckpt_root.is_dir() or (out / "config.json").is_file()):
        # what a killed run of ours left: temporary checkpoints, half-pruned folders, temp files
        clean_checkpoint_leftovers(ckpt_root)
        for folder in (out, out / "refresh"):
            uio.clean_leftovers(folder)
    latest = dist.broadcast(latest_checkpoint(ckpt_root))  # rank 0 decides (the folder must be shared for resume)
    if latest is not None and not resume:
        raise ConfigError(
            f"{out} already holds a run (checkpoint {latest.name}); pass --resume to continue it or choose another out"
        )
    if latest is not None:
        saved_config = read_trainer_state(latest).get("config")
        if not isinstance(saved_config, dict):
            raise ConfigError(f"{latest / 'trainer_state.json'}: holds no config; not a checkpoint of unirank train")
        _check_resume_config(cfg, saved_config, latest)
    if main:
        out.mkdir(parents=True, exist_ok=True)

    # ---- model, data, batching
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    device = dist.device(cfg.device)
    model = model if model is not None else build_model(cfg.model)
    if cfg.mlm.weight > 0:
        if not isinstance(model, MaskedLMTrainable):
            raise ConfigError(
                "mlm.weight: the MLM auxiliary loss needs a packed-input ranker (cross, poly, uni); got "
                f"{type(model).__name__}"
            )
        if model.mlm_head is None:
            head = model.add_mlm_head(seed=cfg.seed)  # the checkpoint's own head, or a new one tied to the embeddings
            if model.mlm_head_origin == "new":
                say(
                    f"note: mlm: {model.backbone.source} has no usable pre-trained MLM head (none saved with it, or "
                    "its weights differ from the backbone's); training a new one tied to the word embeddings, whose "
                    f"loss starts at or above ln(vocab) = {math.log(head.vocab_size):.1f} - at mlm.weight "
                    f"{cfg.mlm.weight:g} it can drown the ranking loss on a small budget; mlm.head_warmup_steps "
                    "fits it alone first (bench/RESULTS.md, issue 17)"
                )
    model.to(device)
    start_fingerprint = _model_fingerprint(model)
    if cfg.gradient_checkpointing:
        from .models.backbone import enable_gradient_checkpointing

        try:
            enable_gradient_checkpointing(model)
        except ValueError as e:
            raise ConfigError(f"gradient_checkpointing: {e}") from None
        if model.may_take_segmented_pass:
            say(
                "note: gradient_checkpointing does not act inside the Uni-Encoder's segmented pass "
                "(it drives the layers' parts itself; segmented: auto takes it for long candidates); "
                "that pass already needs far less memory"
            )
    task = get_task(cfg.data.task, key="data.task")
    if examples is None:
        examples, data_info = task.load_examples(cfg.data)
    else:
        data_info = {
            "source": "given",
            "fingerprint": text_fingerprint(
                f"{e.query_id}\t{e.query}\t{[p.id for p in e.positives]}\t{[n.id for n in e.negatives]}"
                for e in examples
            ),
        }
    if not examples:
        where = f"data.mined {cfg.data.mined}: no rows" if cfg.data.mined else f"data.train {cfg.data.train}"
        raise ConfigError(f"no training examples ({where}; no query has a relevant document in the corpus)")
    if not isinstance(model, DualEncoder):
        for needed, why in (
            (cfg.refresh.every_steps, "refresh.every_steps (ANCE re-mining)"),
            (cfg.batching.name == "tas_balanced", "batching tas_balanced"),
        ):
            if needed:
                raise ConfigError(
                    f"{why} needs a bi-encoder (a model with encode_queries); model.kind is {cfg.model.kind!r}"
                )
    sampler = build_batch_sampler(
        cfg.batching.name, cfg.batch_size, cfg.seed, cfg.batching.drop_last, cfg.batching.params
    )
    dev_eval = task.evaluator(cfg.dev, cfg.data, device)
    test_eval = task.evaluator(cfg.test, cfg.data, device)

    def rows_of(epoch: int) -> list[Row]:
        return epoch_rows(examples, epoch, cfg.seed, cfg.data.negatives, cfg.data.negative_choice)

    # ---- optimizer, schedule, loop state
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.adam_betas))
    state: dict[str, Any] = {
        "step": 0,
        "epoch": 0,
        "batch": 0,
        "batches": None,
        "best": None,
        "best_step": None,
        "negatives": None,
        "sampler": None,
        "total_steps": None,
        "dev": [],
    }
    if latest is not None:
        saved = read_trainer_state(latest)
        state.update({k: saved[k] for k in state if k in saved})
    else:
        if main:  # e.g. TAS clusters: fitted once, shared, so that every rank builds the same global batches
            sampler.fit(rows_of(0), lambda texts: model.encode_queries(texts, device=str(device), show_progress=False))
        sampler.load_state_dict(dist.broadcast(sampler.state_dict()))
        plan = [len(sampler.batches(rows_of(e), e)) for e in range(cfg.epochs)]
        total = sum(math.ceil(n / cfg.accumulate) for n in plan)
        state["total_steps"] = min(total, cfg.max_steps) if cfg.max_steps else total
    total_steps = int(state["total_steps"])
    warmup = warmup_steps_for(total_steps, cfg.warmup_ratio, cfg.warmup_steps)
    schedule = SCHEDULES.get(cfg.schedule)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: schedule(s, warmup, total_steps))
    if latest is not None:
        load_checkpoint(latest, model, optimizer, scheduler)
        _load_rank_rng(latest, dist, say)
        sampler.load_state_dict(state["sampler"] or {})
        if state["negatives"]:
            from .negatives.convert import read_mined

            examples, _ = replace_negatives(examples, read_mined(state["negatives"], scores=cfg.data.teacher_scores))
        say(f"resumed from {latest} at step {state['step']}/{total_steps}")
    state["sampler"] = sampler.state_dict()
    if latest is None and cfg.mlm.head_warmup_steps:
        origin = getattr(model, "mlm_head_origin", None)
        rows0 = rows_of(0) if origin == "new" else []
        first = getattr(sampler, "global_batches", sampler.batches)(rows0, 0) if rows0 else []
        if origin != "new":
            whose = "the checkpoint's own" if origin == "checkpoint" else "loaded with the model's saved weights"
            say(f"note: mlm.head_warmup_steps: the MLM head is not a new one ({whose}); not warmed")
        elif not first:
            say("note: mlm.head_warmup_steps: the first epoch has no batches; the MLM head is not warmed")
        else:
            n = cfg.mlm.head_warmup_steps
            picked = [[rows0[j] for j in first[i % len(first)]] for i in range(n)]  # epoch 0's batches, cycled
            with (
                torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
                _train_length(model, cfg.train_max_length),
                _autocast(cfg, device),
            ):
                losses = warm_mlm_head(model, picked, cfg, dist)
            if losses:  # rank 0 always has rows; a later rank may have had none
                say(
                    f"mlm: fitted the new MLM head alone for {n} step{'' if n == 1 else 's'} (encoder frozen): "
                    f"MLM loss {losses[0]:.3f} -> {sum(losses[-10:]) / len(losses[-10:]):.3f} (mean of the last "
                    f"{len(losses[-10:])})"
                )
    metrics = (
        MetricsLog(
            out / "metrics.jsonl", keep_until_step=state["step"] if latest is not None else None, dev_rows=state["dev"]
        )
        if main
        else None
    )
    if resume and latest is None:
        say(f"--resume: no checkpoint in {ckpt_root}; starting a new run")
    if main:
        _write_provenance(out, cfg, data_info, start_fingerprint, dev_eval, test_eval, resumed_from=latest)

    written = {"name": latest.name if latest is not None else None}

    def checkpoint(epoch_end: bool = False) -> None:
        # every checkpoint gets its own name - a complete one is never rewritten: step-N is the
        # state after step N, step-N-end the state after step N and the epoch's end (dev
        # evaluation) when that step closed an epoch
        name = f"step-{state['step']:07d}" + ("-end" if epoch_end else "")
        if name == written["name"]:  # already written with this very state (save_every and stop_after on one step)
            return
        written["name"] = name
        state["sampler"] = sampler.state_dict()
        if main:
            save_checkpoint(
                ckpt_root,
                name,
                model,
                optimizer,
                scheduler,
                {**state, "config": to_dict(cfg), "world_size": dist.world_size},
            )
            prune_checkpoints(ckpt_root, "step-", cfg.keep_checkpoints)
        _save_rank_rng(ckpt_root / name, dist)

    say(
        f"training {type(model).__name__} on {len(examples)} queries: {total_steps} "
        f"step{'' if total_steps == 1 else 's'}, batch {cfg.batch_size}"
        f" x accumulate {cfg.accumulate}, warmup {warmup}, device {device}"
        + (f", {dist.world_size} processes" if dist.active else "")
    )
    bar = tqdm(
        total=total_steps,
        initial=state["step"],
        desc="train",
        unit="step",
        disable=True if not main else ((not progress) if progress is not None else None),
    )
    stopped = False
    t_train = time.perf_counter()
    # the last step done but its epoch's end not yet (a run resumed from the checkpoint of its
    # last step): the epoch end - dev evaluation, best, checkpoint - still runs
    while state["epoch"] < cfg.epochs and (state["step"] < total_steps or state["batches"] is not None) and not stopped:
        epoch = state["epoch"]
        rows = rows_of(epoch)
        if state["batches"] is None:
            state["batches"], state["batch"] = sampler.batches(rows, epoch), 0
        batches = state["batches"]
        while state["batch"] < len(batches) and state["step"] < total_steps:
            group = batches[state["batch"] : state["batch"] + cfg.accumulate]
            model.train()
            optimizer.zero_grad(set_to_none=True)
            sums: dict[str, float] = {}
            with _train_length(model, cfg.train_max_length), _autocast(cfg, device):
                for b in group:
                    for k, v in batch_backward(
                        model, [rows[i] for i in b], cfg, 1.0 / len(group), dist, step=state["step"]
                    ).items():
                        sums[k] = sums.get(k, 0.0) + v / len(group)
            dist.sync_gradients(list(model.parameters()))
            grad_norm = torch.nn.utils.clip_grad_norm_(
                model.parameters(), cfg.max_grad_norm if cfg.max_grad_norm > 0 else math.inf
            )
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            state["step"] += 1
            state["batch"] += len(group)
            bar.update(1)
            if main:
                bar.set_postfix(loss=f"{sums.get('loss', math.nan):.4f}")
            if main and (state["step"] % cfg.log_every == 0 or state["step"] == total_steps):
                metrics.write(
                    {
                        "step": state["step"],
                        "epoch": epoch,
                        "lr": lr,
                        "grad_norm": round(float(grad_norm), 6),
                        **_round(sums),
                        "elapsed_s": round(time.perf_counter() - t_train, 3),
                    }
                )
            if cfg.refresh.every_steps and state["step"] % cfg.refresh.every_steps == 0 and state["step"] < total_steps:
                say(f"step {state['step']}: refreshing negatives with the current model")
                mined_path = None
                if main:  # rank 0 mines with its replica (identical on every rank); the others wait
                    examples, mined_path = refresh_negatives(model, cfg, examples, state["step"], out)
                state["negatives"] = dist.broadcast(mined_path)
                if not main:
                    from .negatives.convert import read_mined

                    examples, _ = replace_negatives(
                        examples, read_mined(state["negatives"], scores=cfg.data.teacher_scores)
                    )
                rows = rows_of(epoch)
            if cfg.save_every and state["step"] % cfg.save_every == 0:
                checkpoint()
            if cfg.stop_after is not None and state["step"] >= cfg.stop_after and state["step"] < total_steps:
                stopped = True
                break
        if stopped:
            checkpoint()
            break
        # ---- end of epoch: dev evaluation, best checkpoint
        state["epoch"], state["batches"], state["batch"] = epoch + 1, None, 0
        with _eval_threads(cfg, device):
            dev = dist.broadcast(dev_eval(model) if main else None)
        if dev is not None:
            value = dev.get(dev_eval.metric)
            if value is None:
                raise ConfigError(f"dev.metric {dev_eval.metric!r} is not among the dev metrics {sorted(dev)}")
            if main:
                metrics.write(
                    {"step": state["step"], "epoch": epoch, **{f"dev/{k}": round(v, 6) for k, v in dev.items()}}
                )
            state["dev"].append({"step": state["step"], "epoch": epoch, **_round(dev)})
            say(f"epoch {epoch}: dev {dev_eval.metric} = {value:.4f}")
            if state["best"] is None or value > state["best"]:
                state["best"], state["best_step"] = value, state["step"]
                if main:
                    save_checkpoint(
                        ckpt_root,
                        "best",
                        model,
                        None,
                        None,
                        {**state, "config": to_dict(cfg)},
                        update_latest=False,
                        replace=True,
                    )
        checkpoint(epoch_end=True)
    bar.close()
    train_s = time.perf_counter() - t_train
    if cfg.gradient_checkpointing:
        from .models.backbone import disable_gradient_checkpointing

        disable_gradient_checkpointing(model)

    summary: dict[str, Any] = {
        "out": str(out),
        "steps": state["step"],
        "total_steps": total_steps,
        "stopped": stopped,
        "train_s": round(train_s, 2),
        "dev": state["dev"],
        "best": state["best"],
        "best_step": state["best_step"],
    }
    if stopped:
        say(f"stopped after step {state['step']} (stop_after); continue with --resume")
    elif not main:
        summary["rank"] = dist.rank
        dist.barrier()  # rank 0 exports and evaluates
        return summary
    else:
        if cfg.export == "best" and state["best_step"] is not None and (ckpt_root / "best").is_dir():
            load_weights(model, ckpt_root / "best" / "model.safetensors")
            summary["exported_step"] = state["best_step"]
        else:
            summary["exported_step"] = state["step"]
        model.eval()
        from .training.export import export_all

        summary["export"] = export_all(model, out, "model")
        summary["model_fingerprint"] = _model_fingerprint(model)
        with _eval_threads(cfg, device):
            test = test_eval(model, out / "test") if test_eval.enabled else None
        if test is not None:
            summary["test"] = _round(test)
            metrics.write({"step": state["step"], **{f"test/{k}": round(v, 6) for k, v in test.items()}})
            say("test: " + ", ".join(f"{k} {v:.4f}" for k, v in test.items()))
    summary["wall_s"] = round(time.perf_counter() - t_start, 2)
    if main:
        uio.write_json(out / "summary.json", summary)
    if not stopped:
        dist.barrier()
    return summary


def _rank_rng_path(ckpt: Path, rank: int) -> Path:
    return ckpt / f"rng-rank{rank}.json"


def _save_rank_rng(ckpt: Path, dist: Dist) -> None:
    """Ranks > 0 add their random-generator state to rank 0's checkpoint (after it exists)."""
    if not dist.active:
        return
    dist.barrier()
    if not dist.is_main:
        from .training.checkpoint import rng_state

        tensors, meta = rng_state()
        uio.write_json(
            _rank_rng_path(ckpt, dist.rank), {"tensors": {k: v.tolist() for k, v in tensors.items()}, "meta": meta}
        )
    dist.barrier()


def _load_rank_rng(ckpt: Path, dist: Dist, say: Callable[[str], None]) -> None:
    if not dist.active or dist.is_main:
        return
    from .training.checkpoint import set_rng_state

    path = _rank_rng_path(ckpt, dist.rank)
    if not path.is_file():
        print(f"rank {dist.rank}: {path} missing; continuing with rank 0's random state", flush=True)
        return
    saved = json.loads(path.read_text(encoding="utf-8"))
    set_rng_state({k: torch.tensor(v, dtype=torch.uint8) for k, v in saved["tensors"].items()}, saved["meta"])


def _model_fingerprint(model: Any) -> str | None:
    backbone = getattr(model, "backbone", None)
    return backbone.fingerprint() if backbone is not None else None


def _write_provenance(
    out: Path,
    cfg: TrainConfig,
    data_info: dict,
    model_fp: str | None,
    dev_eval: SplitEvaluator,
    test_eval: SplitEvaluator,
    resumed_from: Path | None,
) -> None:
    uio.write_json(out / "config.json", to_dict(cfg))
    prov_path = out / "provenance.json"
    resumes = []
    if resumed_from is not None and prov_path.is_file():
        resumes = json.loads(prov_path.read_text(encoding="utf-8")).get("resumed_from", [])
        resumes.append(resumed_from.name)
        old = json.loads(prov_path.read_text(encoding="utf-8"))
        model_fp = old.get("model", {}).get("start_fingerprint", model_fp)
    uio.write_json(
        prov_path,
        {
            "seed": cfg.seed,
            "data": data_info,
            "dev_data": {"name": dev_eval.data, "split": dev_eval.cfg.split, "fingerprint": dev_eval.fingerprint()},
            "test_data": {"name": test_eval.data, "split": test_eval.cfg.split, "fingerprint": test_eval.fingerprint()},
            "model": {"kind": cfg.model.kind, "name": cfg.model.name, "start_fingerprint": model_fp},
            "versions": versions(),
            "resumed_from": resumes,
        },
    )


def _check_resume_config(cfg: TrainConfig, saved: dict, where: Path) -> None:
    now = to_dict(cfg)
    try:  # a checkpoint written before a field existed holds that field's default
        saved = to_dict(from_dict(TrainConfig, saved))
    except ConfigError:
        pass  # a field since removed: compare as saved (and refuse below)
    diff = sorted(k for k in set(now) | set(saved) if k not in RESUME_SAFE_KEYS and now.get(k) != saved.get(k))
    if diff:
        raise ConfigError(
            f"{where}: cannot resume: the config differs in {', '.join(diff)} (only "
            f"{', '.join(sorted(RESUME_SAFE_KEYS))} may change)"
        )


# --------------------------------------------------------------------------- CLI entry


_EXPONENT_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _value(v: str) -> str:
    """YAML 1.1 (PyYAML) reads ``1e-5`` as a string; write such numbers so they parse as floats."""
    return repr(float(v)) if _EXPONENT_FLOAT.fullmatch(v.strip()) else v


def normalize_overrides(args: Sequence[str]) -> list[str]:
    """``["--lr", "1e-5", "--data.negatives=2", "epochs=3"]`` -> ``["lr=1e-05", "data.negatives=2", "epochs=3"]``.

    ``--key value``, ``--key=value`` and ``key=value`` are accepted; numbers in exponent
    notation are rewritten so that the YAML parser reads them as floats.

    Example:
        >>> normalize_overrides(["--lr", "1e-5", "--batching.name=random", "epochs=3"])
        ['lr=1e-05', 'batching.name=random', 'epochs=3']
        >>> normalize_overrides(["--lr"])
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: override --lr has no value
    """
    out, i = [], 0
    args = list(args)
    while i < len(args):
        a = args[i]
        key = a[2:] if a.startswith("--") else a
        if "=" in key:
            k, v = key.split("=", 1)
            out.append(f"{k}={_value(v)}")
            i += 1
        elif a.startswith("--"):
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise ConfigError(f"override {a} has no value")
            out.append(f"{key}={_value(args[i + 1])}")
            i += 2
        else:
            raise ConfigError(f"override {a!r} is not --key value or key=value")
    return out


def train_main(config_path: str | None, overrides: Sequence[str] = (), resume: bool = False) -> dict[str, Any]:
    """``unirank train CONFIG.yaml [--key value ...] [--resume]``: load, override, train.

    Returns:
        The run summary (see :func:`train`).
    """
    cfg = load_config(TrainConfig, config_path, normalize_overrides(overrides))
    return train(cfg, resume=resume)
