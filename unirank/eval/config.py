"""Configs for first-stage retrieval and evaluation (shared by eval, mine and serve)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..index.cur_retriever import CURConfig


@dataclass
class BM25Config:
    k1: float = 0.9
    b: float = 0.4
    method: str = "lucene"
    stemmer: str | None = "english"
    stopwords: str | None = "en"


@dataclass
class DenseConfig:
    model: str | None = None  # None = packaged all-MiniLM-L6-v2
    index_kind: str = "flat"  # flat | ivf
    nprobe: int = 16
    batch_size: int = 64
    device: str | None = None  # None = cuda if available else cpu
    dtype: str | None = None  # None | fp16 | bf16
    store: str | None = None  # retriever "prebuilt": embedding store written by `unirank encode`
    index_dir: str | None = None  # retriever "prebuilt": per-shard FAISS indexes (`unirank index`); None = exact scan
    refine: int = 0  # retriever/miner "prebuilt" with index_dir: re-score refine x k compressed hits exactly from the store


#: DenseRetriever's in-memory index kinds (``unirank index`` builds the others)
DENSE_INDEX_KINDS = ("flat", "ivf")


@dataclass
class RetrieverConfig:
    name: str = "bm25"  # bm25 | dense | hybrid | prebuilt | cur
    bm25: BM25Config = field(default_factory=BM25Config)
    dense: DenseConfig = field(default_factory=DenseConfig)
    k_rrf: float = 60.0
    cur: CURConfig = field(default_factory=CURConfig)  # retriever "cur": cross-encoder-only search (unirank.index.cur_retriever)


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


DEFAULT_MEASURES = ["ndcg@10", "mrr@10", "recall@10", "recall@100", "map@100", "p@10", "auc"]


@dataclass
class EvalConfig:
    data: str = "stdlib-codesearch"
    split: str = "test"
    task: str = "retrieval"  # retrieval (first stage, optional rerank) | response (response selection) | budget (retriever.cur)
    retriever: RetrieverConfig = field(default_factory=RetrieverConfig)
    k: int = 100
    measures: list[str] = field(default_factory=lambda: list(DEFAULT_MEASURES))
    limit_queries: int | None = None  # first N judged queries of the split
    max_docs: int | None = None  # judged docs + a stable sample of others (quick runs)
    out: str | None = None
    seed: int = 0
    rerank: RerankConfig = field(default_factory=RerankConfig)
    response: ResponseConfig = field(default_factory=ResponseConfig)

    def validate(self) -> None:
        """Check names, ranges, devices and the output folder before any work (ConfigError)."""
        from ..config import check_devices, check_out_dir, check_positive
        from ..errors import ConfigError
        from .tasks import EVAL_TASKS

        if self.task not in EVAL_TASKS:
            raise ConfigError(f"task: unknown eval task {self.task!r}; valid: {', '.join(EVAL_TASKS.names())}")
        check_positive({"k": self.k, "limit_queries": self.limit_queries, "max_docs": self.max_docs,
                        "rerank.depth": self.rerank.depth, "rerank.chunk_size": self.rerank.chunk_size,
                        "rerank.batch_size": self.rerank.batch_size, "response.batch_size": self.response.batch_size,
                        "response.chunk_size": self.response.chunk_size, "retriever.dense.batch_size": self.retriever.dense.batch_size})
        if self.task == "retrieval" and self.rerank.first_stage_run is None:
            from ..index.retrievers import RETRIEVERS  # importing it registers every retriever

            if self.retriever.name not in RETRIEVERS:
                raise ConfigError(f"retriever.name: unknown retriever {self.retriever.name!r}; valid: {', '.join(RETRIEVERS.names())}")
            if self.retriever.name in ("dense", "hybrid") and self.retriever.dense.index_kind not in DENSE_INDEX_KINDS:
                raise ConfigError(f"retriever.dense.index_kind: {self.retriever.dense.index_kind!r} is unknown; valid: "
                                  f"{', '.join(DENSE_INDEX_KINDS)} (compressed or HNSW indexes: `unirank index`, then "
                                  f"--retriever prebuilt --set retriever.dense.index_dir=DIR)")
        reranking = self.rerank.kind is not None or self.rerank.model is not None
        dense_first_stage = self.rerank.first_stage_run is None and self.retriever.name != "bm25"
        devices = {"retrieval": {"retriever.dense.device": self.retriever.dense.device if dense_first_stage else None,
                                 "rerank.device": self.rerank.device if reranking else None},
                   "response": {"response.device": self.response.device}}.get(self.task, {})
        check_devices(devices)
        check_out_dir(self.out)
