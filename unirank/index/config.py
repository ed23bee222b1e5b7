"""Configs of the first-stage retrievers and miners (BM25, dense, hybrid, prebuilt), shared by
``unirank eval``, ``unirank mine`` and ``unirank serve``."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BM25Config", "DenseConfig", "RetrieverConfig", "DENSE_INDEX_KINDS"]


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
    name: str = "bm25"  # bm25 | dense | hybrid | prebuilt
    bm25: BM25Config = field(default_factory=BM25Config)
    dense: DenseConfig = field(default_factory=DenseConfig)
    k_rrf: float = 60.0
