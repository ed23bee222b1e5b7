"""Configs of the first-stage retrievers and miners (BM25, dense, hybrid, prebuilt, splade, cur),
shared by ``unirank eval``, ``unirank mine`` and ``unirank serve``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from ..config import Range
from ..errors import ConfigError
from .cur import RTOL

__all__ = ["BM25Config", "DenseConfig", "SpladeConfig", "CURConfig", "RetrieverConfig", "DENSE_INDEX_KINDS"]


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
    dtype: Literal["fp16", "bf16"] | None = None  # None: float32
    store: str | None = None  # retriever "prebuilt": embedding store written by `unirank encode`
    index_dir: str | None = None  # retriever "prebuilt": per-shard FAISS indexes (`unirank index`); None = exact scan
    refine: int = (
        0  # retriever/miner "prebuilt" with index_dir: re-score refine x k compressed hits exactly from the store
    )
    backend: str = "torch"  # torch | onnx[:quantize=int8,threads=N] (unirank.runtime.backends)


@dataclass
class SpladeConfig:
    """Retriever / miner ``splade``: a SPLADE model and its index (:mod:`unirank.index.splade_retriever`)."""

    model: str | None = "splade-tiny"  # kind-splade folder, *ForMaskedLM checkpoint or hub name; splade-tiny = packaged
    index: Literal["exact", "seismic"] = "exact"  # exact (scipy sparse matrix) | seismic (pyseismic-lsr)
    seismic: dict = field(
        default_factory=dict
    )  # build: n_postings, summary_energy, ...; search: query_cut, heap_factor
    batch_size: int = 32
    device: str | None = None
    dtype: Literal["fp16", "bf16"] | None = None  # autocast for encoding; None: float32
    store: str | None = None  # a sparse store from `unirank encode --kind splade` (then nothing is encoded)
    index_dir: str | None = (
        None  # per-shard indexes from `unirank index --kind seismic|exact`; None = exact scan of the store
    )
    settings: dict = field(
        default_factory=dict
    )  # Splade.from_pretrained settings (top_k_doc, max_length, tied_head, ...)


@dataclass
class CURConfig:
    """``retriever.cur.*``: the CUR retriever (:mod:`unirank.index.cur_retriever`) and the budget
    comparison (``unirank eval --task budget``, :mod:`unirank.tasks.budget`).

    Example:
        >>> CURConfig(method="anncur", budget=10, anchors=20).validate()
        Traceback (most recent call last):
        ...
        unirank.errors.ConfigError: retriever.cur.budget=10 is smaller than retriever.cur.anchors=20: ANNCUR scores its anchor items first (raise the budget or lower the anchors)
    """

    index: str | None = None  # folder written by `unirank index --kind cur`
    model: str | None = None  # the cross-encoder; None = the one recorded in the index
    method: str = "adacur"  # anncur | adacur (CUR_METHODS)
    budget: int = 100  # cross-encoder calls per query
    anchors: int | None = None  # anncur: anchor items (default budget // 2)
    rounds: int = 5  # adacur: rounds the budget is spent in
    first_stage: str | None = None  # None: seeded random anchors; a retriever name (bm25, dense): its top documents
    seed: int = 0
    rcond: float = RTOL  # rank cut of the pseudo-inverse / least squares
    keep_tail: bool = True  # rank the unscored documents below the scored ones by the approximation
    index_dir: str | None = None  # adacur: FAISS indexes of IX/R (`unirank index --store IX/R ...`); None = exact scan
    batch_size: int = 16  # queries per cross-encoder call
    chunk_size: int | None = 64  # documents of one query per call
    device: str | None = None
    budgets: list[int] = field(default_factory=lambda: [25, 50, 100, 200])  # --task budget: the budgets compared
    methods: list[str] = field(default_factory=lambda: ["anncur", "adacur"])  # --task budget: CUR methods compared
    baselines: list[str] = field(
        default_factory=lambda: ["bm25", "dense"]
    )  # --task budget: first stages reranked top-B
    exhaustive: str | None = (
        None  # --task budget: CUR index of the split's queries (exact scores); None = OUT/exhaustive
    )

    def anchor_count(self) -> int:
        return self.anchors if self.anchors is not None else max(1, self.budget // 2)

    def validate(self) -> None:
        """One-line ConfigError for settings that cannot work (before anything is loaded); the
        method name is checked against ``CUR_METHODS`` by :func:`unirank.index.cur_retriever.check_cur_config`."""
        for key, v in {
            "budget": self.budget,
            "rounds": self.rounds,
            "batch_size": self.batch_size,
            "chunk_size": self.chunk_size,
            "anchors": self.anchors,
        }.items():
            if v is not None and v < 1:
                raise ConfigError(f"retriever.cur.{key} must be >= 1, got {v}")
        if self.method == "anncur" and self.budget < self.anchor_count():
            raise ConfigError(
                f"retriever.cur.budget={self.budget} is smaller than retriever.cur.anchors={self.anchor_count()}: "
                "ANNCUR scores its anchor items first (raise the budget or lower the anchors)"
            )
        if self.method == "adacur" and self.budget < self.rounds:
            raise ConfigError(
                f"retriever.cur.budget={self.budget} is smaller than retriever.cur.rounds={self.rounds}: "
                "each adaCUR round scores at least one document"
            )
        if self.first_stage == "cur":
            raise ConfigError(
                "retriever.cur.first_stage: 'cur' cannot be its own first stage; use bm25, dense, ... or leave it unset"
            )
        if self.rcond < 0:
            raise ConfigError(f"retriever.cur.rcond must be >= 0, got {self.rcond}")


#: DenseRetriever's in-memory index kinds (``unirank index`` builds the others)
DENSE_INDEX_KINDS = ("flat", "ivf")


@dataclass
class RetrieverConfig:
    name: str = "bm25"  # bm25 | dense | hybrid | prebuilt | splade | fusion | cur
    bm25: BM25Config = field(default_factory=BM25Config)
    dense: DenseConfig = field(default_factory=DenseConfig)
    k_rrf: Annotated[float, Range(0)] = 60.0  # 1 / (k_rrf + rank): a negative k_rrf divides by zero
    splade: SpladeConfig = field(default_factory=SpladeConfig)
    fuse: list = field(default_factory=lambda: ["splade", "bm25"])  # retriever "fusion": RRF of these retrievers
    cur: CURConfig = field(
        default_factory=CURConfig
    )  # retriever "cur": cross-encoder-only search (unirank.index.cur_retriever)
