"""The typed configuration of ``unirank train`` (YAML + ``--key value`` overrides).

Every field has a default, so the smallest config names only what differs::

    model: {kind: bi}                      # packaged all-MiniLM-L6-v2
    data: {train: /data/scifact, mined: bench/out/scifact-mined/train.jsonl, negatives: 1}
    losses: {infonce: 1.0, mw: 0.5}
    batch_size: 32
    epochs: 1
    out: runs/scifact-infonce-mw

The resolved config is saved as ``config.json`` in the output folder and inside every
checkpoint; ``--resume`` refuses a checkpoint whose config differs in a field that changes
the result (see :data:`RESUME_SAFE_KEYS` for the ones that may change).

Example:
    >>> from unirank.config import from_dict
    >>> cfg = from_dict(TrainConfig, {"losses": {"infonce": 1.0, "mw": 0.5}}, ["batch_size=8"])
    >>> cfg.batch_size, cfg.model.kind, cfg.batching.name
    (8, 'bi', 'no_duplicates')
    >>> cfg.validate()
    >>> from_dict(TrainConfig, {"losses": {"nce": 1.0}}).validate()
    Traceback (most recent call last):
    ...
    unirank.errors.ConfigError: losses.nce: unknown loss 'nce'; valid: ce, cprd, flops, infonce, kl, l1, margin_mse, multi_positive, mw
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..config import NonNegative, Positive, Seed
from ..errors import ConfigError

__all__ = [
    "ModelConfig",
    "DataConfig",
    "BatchingConfig",
    "EvalSplitConfig",
    "RefreshConfig",
    "MLMConfig",
    "TrainConfig",
    "RESUME_SAFE_KEYS",
]


@dataclass
class ModelConfig:
    """Which ranker to train.

    Attributes:
        kind: a :data:`unirank.models.base.MODELS` name (``bi``, ``poly``, ``cross``, ``uni``).
        name: folder or name for the class's ``from_pretrained`` (``None``: packaged
            all-MiniLM-L6-v2).
        settings: extra keyword arguments of ``from_pretrained`` (e.g. ``max_length``,
            ``pooling``, ``query_prefix``).
    """

    kind: str = "bi"
    name: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Where training examples come from.

    Attributes:
        train: BEIR folder or built-in data set name (``stdlib-codesearch``).
        split: its qrels split; every (query, relevant document) pair is one training row.
        mined: a ``train.jsonl`` written by ``unirank mine``; when set, the rows come from it
            (its positives and hard negatives) and ``train``/``split`` name the corpus only
            for the ANCE refresh and the provenance.
        teacher_scores: which score of the mined file is the teacher score for distillation
            losses: ``auto`` (teacher when present, else miner), ``teacher`` or ``miner``.
        negatives: mined negatives per row in a batch (0: in-batch negatives only).
        negative_choice: ``random`` (a fresh seeded draw from each query's mined list every
            epoch, as Tevatron does) or ``first`` (the best-ranked ``negatives``, fixed).
        limit_queries: train on the first N queries only (quick runs, tests).
        task: a :data:`unirank.tasks.TASKS` name: ``retrieval`` (``train`` is a BEIR folder or data set name)
            or ``response`` (``train`` is response-selection data for
            :func:`unirank.data.dialogue.load_response_data`: ``mutual``, ``dailydialog``
            or a MuTual/TSV/JSONL/task path; each context becomes a query whose correct
            replies are positives and whose other candidates are its negatives).
        options: keyword options of the response loader, shared by training and the
            dev/test evaluations (e.g. ``{n: 10, seed: 0}`` for ``dailydialog``).
    """

    train: str = "stdlib-codesearch"
    split: str = "train"
    mined: str | None = None
    teacher_scores: Literal["auto", "teacher", "miner"] = "auto"
    negatives: int = 1
    negative_choice: Literal["random", "first"] = "random"
    limit_queries: int | None = None
    task: str = "retrieval"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchingConfig:
    """How rows are grouped into batches (see :mod:`unirank.training.batching`).

    Attributes:
        name: a :data:`~unirank.training.batching.BATCH_SAMPLERS` name: ``random``,
            ``no_duplicates`` or ``tas_balanced``.
        params: extra constructor arguments (``tas_balanced``: ``clusters``).
        drop_last: drop a final short batch.
    """

    name: str = "no_duplicates"
    params: dict[str, Any] = field(default_factory=dict)
    drop_last: bool = False


@dataclass
class EvalSplitConfig:
    """An evaluation run by the loop (dev after each epoch, test at the end), of the kind
    ``data.task`` names.

    Retrieval data: a bi-encoder retrieves from the whole corpus (exact dense search); any
    other ranker reranks the top ``rerank_depth`` documents of ``first_stage``. Response
    data: every context's candidates are scored (R_n@k and MRR).

    Attributes:
        data: BEIR folder / data set name, or response data; ``None``: ``data.train``.
        split: qrels (or response) split; ``None`` disables this evaluation.
        metric: the metric that picks the best checkpoint (dev only); ``None``:
            ``ndcg@10`` for retrieval, ``mrr`` for response selection.
        measures: what a retrieval evaluation computes (``unirank.eval`` names); response
            selection always reports R_n@1/2/5 (below n) and MRR.
        limit_queries, max_docs: smaller evaluations for quick runs (``limit_queries`` also
            caps response contexts).
        batch_size: encoding batch size (queries per scoring call when reranking or
            scoring candidate lists is a quarter of it).
        first_stage: the run a reranker reorders: ``bm25`` (built on the split's corpus)
            or a TREC run file.
        rerank_depth: documents per query the reranker rescores.
    """

    data: str | None = None
    split: str | None = None
    metric: str | None = None
    measures: list[str] = field(default_factory=lambda: ["ndcg@10", "recall@100", "mrr@10", "auc"])
    limit_queries: Positive | None = None
    max_docs: Positive | None = None
    batch_size: Positive = 64
    first_stage: str = "bm25"
    rerank_depth: Positive = 100


@dataclass
class RefreshConfig:
    """ANCE-style periodic re-mining with the model being trained.

    Every ``every_steps`` optimizer steps the corpus is re-encoded with the current model and
    negatives are mined again with ``mine`` (a :class:`unirank.negatives.pipeline.MineConfig`
    mapping: miner, filters, sampler, negatives, depth ...; ``data``/``split`` default to
    the training data, the miner to ``dense``). Bi-encoders only.
    """

    every_steps: NonNegative = 0
    mine: dict[str, Any] = field(default_factory=dict)


@dataclass
class MLMConfig:
    """The masked-language-model auxiliary loss (:mod:`unirank.models.mlm_aux`; cross, poly, uni).

    With ``weight > 0`` every training batch is corrupted BERT-style (``prob`` of the real
    text tokens selected: 80% ``[MASK]``, 10% random, 10% kept; never special, speaker or
    separator tokens), the candidate scores come from the corrupted input and
    ``weight * MLM loss`` is added to the ranking loss - the Uni-Encoder paper's recipe
    (``weight: 1``, ``prob: 0.15``). The head is the backbone checkpoint's pre-trained one
    when it has one (a ``*ForMaskedLM`` checkpoint), else a new one tied to the word
    embeddings (all-MiniLM-L6-v2 has none); it is saved with the model and never used to score.

    A new head starts no better than uniform over the vocabulary (ln V = 10.3 for BERT's;
    10.8 measured on all-MiniLM-L6-v2) and its gradient is many times the ranking loss's
    (16.5x, counting the tied word embeddings, ``bench/mlm_head_probe.py``).
    ``head_warmup_steps`` fits such a head alone first - that many batches of the first
    epoch, cycled when the epoch has fewer, laid out and masked as in training, AdamW at
    ``head_warmup_lr`` on the head's transform and bias, everything else frozen (forward
    passes only through the encoder) - before the first training step (3.0x after 150 steps
    in the probe). A head from the checkpoint is not warmed.

    Attributes:
        weight: weight of the MLM loss (0: off).
        prob: share of the maskable tokens selected.
        head_warmup_steps: head-only steps before training (0: none; new heads only).
        head_warmup_lr: their learning rate (constant).
    """

    weight: float = 0.0
    prob: float = 0.15
    head_warmup_steps: NonNegative = 0
    head_warmup_lr: float = 2.0e-3


@dataclass
class TrainConfig:
    """Everything ``unirank train`` needs.

    Attributes:
        model, data, batching, dev, test, refresh: see their classes.
        losses: ``{name: weight}`` or ``{label: {weight, loss, **params}}`` (see
            :func:`unirank.losses.combine`), e.g. ``{infonce: 1.0, mw: 0.5}``.
        in_batch_negatives: score every query against the documents of the whole batch
            (``False``: only against its own positive and mined negatives, as a listwise
            reranker is trained). With ``data.negatives: 0`` and ``shuffle_pool: true`` this
            is the Uni-Encoder's (and ParlAI's poly-encoder's) *in-batch candidates*: every
            context is scored against the gold replies of every context of its batch (batch
            size = candidate count), label = its own reply; evaluation keeps the data's own
            candidate lists.
        shuffle_pool: put the columns of the in-batch pool in a seeded order (per batch, from
            ``seed``, the step and the batch's rows) instead of positives first, so a model
            that could see where a candidate sits learns nothing from it.
        mlm: the MLM auxiliary loss (:class:`MLMConfig`).
        batch_size: rows (queries) per batch; with in-batch negatives this is the pool
            every query is contrasted with.
        accumulate: batches per optimizer step. Each batch keeps its own in-batch pool of
            ``batch_size`` rows; gradients are averaged over the batches. This does *not*
            enlarge the contrastive pool - use ``grad_cache`` for that.
        grad_cache: compute the full-batch loss from embeddings built ``chunk_size`` texts
            at a time, then back-propagate chunk by chunk with the cached embedding gradients
            (GradCache, Gao et al. 2021): the gradient of the whole ``batch_size`` pool in
            the memory of one chunk (bi-encoders).
        chunk_size: texts per forward pass under ``grad_cache``.
        gradient_checkpointing: keep only each transformer layer's input during the forward
            pass and recompute the layer in the backward pass (transformers' activation
            checkpointing, non-reentrant; dropout masks are replayed, so the gradient is the
            same). For long concatenations - a Uni-Encoder pass over 8 documents of 256 tokens,
            a cross-encoder on long pairs. Measured on SciFact reranker batches (2-core CPU,
            ``bench/checkpointing_memory.py``): uni peak memory 18.0 -> 4.8 GB at +38% step
            time, cross 4.8 -> 2.1 GB at +42%. Training only; evaluation and export are unchanged.
        epochs, max_steps: training length (``max_steps`` caps the total optimizer steps).
        lr, weight_decay, warmup_ratio, warmup_steps, schedule, max_grad_norm: AdamW with a
            warmup then ``linear`` / ``cosine`` / ``constant`` / ``noam`` (inverse square
            root) schedule; bias and LayerNorm weights get no weight decay;
            ``max_grad_norm`` <= 0 disables clipping.
        adam_betas: AdamW's ``(beta1, beta2)``; the Uni-Encoder code uses ``[0.9, 0.98]``.
        train_max_length: token limit of every text during training only (evaluation and
            export keep the model's own ``max_length``); ``None``: the model's.
        device: ``cpu`` / ``cuda`` (``None``: CUDA when present).
        threads: CPU threads for torch (``torch.set_num_threads``; ``None``: torch's default).
            On a shared, busy CPU one thread can be several times faster than two.
        dtype: ``None`` (float32) or ``bf16`` (autocast on CUDA).
        seed: seeds Python, NumPy and torch; batches and negative draws derive from it.
        log_every: steps between ``metrics.jsonl`` lines.
        save_every: steps between checkpoints (0: only at epoch ends).
        keep_checkpoints: how many step checkpoints to keep (the best is kept apart).
        stop_after: stop (after writing a checkpoint) once this many steps are done - for
            tests and time-sliced runs; ``--resume`` continues.
        export: which weights ``model/`` gets at the end: ``best`` (best dev checkpoint, the
            last weights when there is no dev evaluation) or ``last``.
        out: output folder (required).
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    losses: dict[str, Any] = field(default_factory=lambda: {"infonce": 1.0})
    in_batch_negatives: bool = True
    shuffle_pool: bool = False
    mlm: MLMConfig = field(default_factory=MLMConfig)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    batch_size: int = 32
    accumulate: int = 1
    grad_cache: bool = False
    chunk_size: int = 32
    gradient_checkpointing: bool = False
    epochs: int = 1
    max_steps: int | None = None
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    warmup_steps: int | None = None
    schedule: str = "linear"
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    max_grad_norm: float = 1.0
    train_max_length: int | None = None
    device: str | None = None
    threads: int | None = None
    dtype: Literal["bf16"] | None = None
    seed: Seed = 42
    dev: EvalSplitConfig = field(default_factory=lambda: EvalSplitConfig(split="dev"))
    test: EvalSplitConfig = field(default_factory=EvalSplitConfig)
    refresh: RefreshConfig = field(default_factory=RefreshConfig)
    log_every: int = 10
    save_every: NonNegative = 0
    keep_checkpoints: Positive = 1
    stop_after: int | None = None
    export: Literal["best", "last"] = "best"
    out: str | None = None

    def validate(self) -> None:
        """Check names and ranges before any work; raises :class:`ConfigError` naming the key."""
        from ..config import check_devices, check_out_dir, check_positive, check_ranges
        from ..losses import resolve_loss_weights
        from .batching import BATCH_SAMPLERS
        from .schedules import SCHEDULES

        check_ranges(self)

        resolve_loss_weights(self.losses)
        from ..models.base import MODELS, import_model_kinds

        import_model_kinds()
        if self.model.kind not in MODELS:
            raise ConfigError(f"model.kind: unknown model kind {self.model.kind!r}; valid: {', '.join(MODELS.names())}")
        if self.batching.name not in BATCH_SAMPLERS:
            raise ConfigError(
                f"batching.name: unknown batch sampler {self.batching.name!r}; valid: "
                f"{', '.join(BATCH_SAMPLERS.names())}"
            )
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule: unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES.names())}")
        check_positive(
            {
                key: getattr(self, key)
                for key in (
                    "batch_size",
                    "accumulate",
                    "chunk_size",
                    "epochs",
                    "log_every",
                    "max_steps",
                    "stop_after",
                    "train_max_length",
                    "threads",
                )
            }
        )
        check_positive({"data.limit_queries": self.data.limit_queries})
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.data.negatives < 0:
            raise ConfigError(f"data.negatives must be >= 0, got {self.data.negatives}")
        if not self.in_batch_negatives and self.data.negatives == 0:
            raise ConfigError("in_batch_negatives is false and data.negatives is 0: the rows would have no negatives")
        if self.shuffle_pool and not self.in_batch_negatives:
            raise ConfigError("shuffle_pool orders the in-batch pool; it needs in_batch_negatives: true")
        betas = self.adam_betas
        if not (
            isinstance(betas, (list, tuple))
            and len(betas) == 2
            and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)
        ):
            raise ConfigError(f"adam_betas must be two numbers in [0, 1), e.g. [0.9, 0.98]; got {betas!r}")
        if not self.mlm.weight >= 0:
            raise ConfigError(f"mlm.weight must be >= 0, got {self.mlm.weight}")
        if not 0 < self.mlm.prob <= 1:
            raise ConfigError(f"mlm.prob must be in (0, 1], got {self.mlm.prob}")
        if self.mlm.head_warmup_steps and not self.mlm.weight > 0:
            raise ConfigError("mlm.head_warmup_steps fits the MLM head of the MLM loss; it needs mlm.weight > 0")
        if not self.mlm.head_warmup_lr > 0:
            raise ConfigError(f"mlm.head_warmup_lr must be > 0, got {self.mlm.head_warmup_lr}")

        from ..tasks import get_task

        get_task(self.data.task, key="data.task").check_train(self)
        for key in ("dev", "test"):
            split = getattr(self, key)
            if split.rerank_depth < 1:
                raise ConfigError(f"{key}.rerank_depth must be >= 1, got {split.rerank_depth}")
            if split.first_stage != "bm25" and not Path(split.first_stage).is_file():
                raise ConfigError(
                    f"{key}.first_stage: {split.first_stage!r} is neither 'bm25' nor an existing TREC run file"
                )
        if self.refresh.every_steps < 0:
            raise ConfigError(f"refresh.every_steps must be >= 0, got {self.refresh.every_steps}")
        check_devices({"device": self.device})
        check_out_dir(self.out, inside=True)
        check_run_folder(self.out)


#: what a run of ``unirank train`` writes at the top of its ``out`` (any one marks the folder as ours)
RUN_ENTRIES = (
    "config.json",
    "checkpoints",
    "metrics.jsonl",
    "provenance.json",
    "summary.json",
    "model",
    "model-transformers",
    "test",
    "dev",
    "refresh",
)


def check_run_folder(out: str | None) -> None:
    """``out`` is absent, empty, or holds a run of ours (an entry of :data:`RUN_ENTRIES`, or
    what an interrupted atomic write of one left) - a run is never written into a folder of
    the user's (ConfigError).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); _ = (d / "thesis.tex").write_text("years of work")
        >>> check_run_folder(str(d))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: out: ... is a non-empty folder that unirank did not write (no config.json, ...
        >>> _ = (d / ".config.json.123-abcdefgh.tmp").write_text("{"); check_run_folder(str(d))  # a killed run's
    """
    from ..io import is_leftover

    if out is None or not Path(out).is_dir():
        return
    names = [p.name for p in Path(out).iterdir()]
    if names and not any(n in RUN_ENTRIES or is_leftover(n) for n in names):
        raise ConfigError(
            f"out: {out} is a non-empty folder that unirank did not write (no {', '.join(RUN_ENTRIES[:3])}, ...); "
            "refusing to write a run into it: choose a new folder or remove it"
        )


#: top-level keys that may differ between a checkpoint's config and the config given to
#: ``--resume`` (they do not change the weights of the steps already taken)
RESUME_SAFE_KEYS = frozenset(
    {"out", "stop_after", "log_every", "save_every", "keep_checkpoints", "device", "threads", "test", "export"}
)
