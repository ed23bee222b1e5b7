"""The config of ``unirank eval`` (retrieval with an optional rerank, or response selection).

The retriever configs it embeds live with the retrievers (:mod:`unirank.index.config`); the
task-specific checks with the tasks (:meth:`unirank.tasks.base.Task.check_eval`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import Seed
from ..index.config import BM25Config, DenseConfig, RetrieverConfig, SpladeConfig

__all__ = [
    "BM25Config",
    "DenseConfig",
    "SpladeConfig",
    "RetrieverConfig",
    "RerankConfig",
    "ResponseConfig",
    "EvalConfig",
    "DEFAULT_MEASURES",
]


@dataclass
class RerankConfig:
    """Optional second stage over the first-stage run (any ranker kind)."""

    kind: str | None = None  # bi | poly | cross | uni; None with model=None: no reranking
    model: str | None = None  # saved unirank folder, transformers folder or hub name
    depth: int = 100
    chunk_size: int = 64
    batch_size: int = 1
    first_stage_run: str | None = None  # a TREC run file instead of running the retriever
    device: str | None = None
    keep_tail: bool = True  # below the reranked depth keep the first stage's next documents (up to k)
    backend: str = "torch"  # torch | onnx[:quantize=int8,threads=N] (unirank.runtime.backends)


@dataclass
class ResponseConfig:
    """Response selection (task: response): data format and the ranker."""

    format: str | None = None  # mutual | tsv | jsonl | task (default: guessed from the path)
    kind: str | None = None
    model: str | None = None
    batch_size: int = 16
    chunk_size: int | None = None
    ks: list[int] = field(default_factory=lambda: [1, 2, 5])
    n_candidates: int | None = None  # for data built on the fly (dailydialog)
    data_options: dict = field(default_factory=dict)
    device: str | None = None
    backend: str = "torch"  # torch | onnx[:quantize=int8,threads=N] (unirank.runtime.backends)


#: files every ``unirank eval`` output folder holds (an existing folder without them is never replaced)
OUTPUT_MARKER = ("config.json", "metrics.json")

DEFAULT_MEASURES = ["ndcg@10", "mrr@10", "recall@10", "recall@100", "map@100", "p@10", "auc"]


@dataclass
class EvalConfig:
    data: str = "stdlib-codesearch"
    split: str = "test"
    task: str = (
        "retrieval"  # retrieval (first stage, optional rerank) | response (response selection) | budget (retriever.cur)
    )
    retriever: RetrieverConfig = field(default_factory=RetrieverConfig)
    k: int = 100
    measures: list[str] = field(default_factory=lambda: list(DEFAULT_MEASURES))
    limit_queries: int | None = None  # first N judged queries of the split
    max_docs: int | None = None  # judged docs + a stable sample of others (quick runs)
    out: str | None = None
    seed: Seed = 0
    rerank: RerankConfig = field(default_factory=RerankConfig)
    response: ResponseConfig = field(default_factory=ResponseConfig)

    def validate(self) -> None:
        """Generic checks (ranges, the output folder) before any work (ConfigError); the task's own
        checks are :meth:`unirank.tasks.base.Task.check_eval` (:func:`unirank.tasks.run_eval_task` runs both)."""
        from ..config import check_out_dir, check_positive, check_ranges

        check_ranges(self)
        check_positive(
            {
                "k": self.k,
                "limit_queries": self.limit_queries,
                "max_docs": self.max_docs,
                "rerank.depth": self.rerank.depth,
                "rerank.chunk_size": self.rerank.chunk_size,
                "rerank.batch_size": self.rerank.batch_size,
                "response.batch_size": self.response.batch_size,
                "response.chunk_size": self.response.chunk_size,
                "retriever.dense.batch_size": self.retriever.dense.batch_size,
            }
        )
        check_out_dir(self.out, marker=OUTPUT_MARKER)
