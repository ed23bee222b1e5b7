"""Configs of the first-stage retrievers and miners (BM25, dense, hybrid, prebuilt), shared by
``unirank eval``, ``unirank mine`` and ``unirank serve``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["BM25Config", "DenseConfig", "SpladeConfig", "RetrieverConfig", "DENSE_INDEX_KINDS"]


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
    refine: int = 0  # retriever/miner "prebuilt" with index_dir: re-score refine x k compressed hits exactly from the store
    backend: str = "torch"  # torch | onnx[:quantize=int8,threads=N] (unirank.runtime.backends)


@dataclass
class SpladeConfig:
    """Retriever / miner ``splade``: a SPLADE model and its index (:mod:`unirank.index.splade_retriever`)."""

    model: str | None = "splade-tiny"  # kind-splade folder, *ForMaskedLM checkpoint or hub name; splade-tiny = packaged
    index: Literal["exact", "seismic"] = "exact"  # exact (scipy sparse matrix) | seismic (pyseismic-lsr)
    seismic: dict = field(default_factory=dict)  # build: n_postings, summary_energy, ...; search: query_cut, heap_factor
    batch_size: int = 32
    device: str | None = None
    dtype: Literal["fp16", "bf16"] | None = None  # autocast for encoding; None: float32
    store: str | None = None  # a sparse store from `unirank encode --kind splade` (then nothing is encoded)
    index_dir: str | None = None  # per-shard indexes from `unirank index --kind seismic|exact`; None = exact scan of the store
    settings: dict = field(default_factory=dict)  # Splade.from_pretrained settings (top_k_doc, max_length, tied_head, ...)


#: DenseRetriever's in-memory index kinds (``unirank index`` builds the others)
DENSE_INDEX_KINDS = ("flat", "ivf")


@dataclass
class RetrieverConfig:
    name: str = "bm25"  # bm25 | dense | hybrid | prebuilt | splade | fusion
    bm25: BM25Config = field(default_factory=BM25Config)
    dense: DenseConfig = field(default_factory=DenseConfig)
    k_rrf: float = 60.0
    splade: SpladeConfig = field(default_factory=SpladeConfig)
    fuse: list = field(default_factory=lambda: ["splade", "bm25"])  # retriever "fusion": RRF of these retrievers
