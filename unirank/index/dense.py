"""Dense retrieval with FAISS: exact inner product by default, IVF for large corpora.

Vectors are float32 and, for cosine models, already L2-normalised by the encoder, so
inner product equals cosine. Search runs over query chunks so memory stays bounded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..io import read_json


def _faiss():
    from ..optional import optional_import

    return optional_import("faiss", "dense retrieval", "pip install faiss-cpu")


def search_in_chunks(index, queries: np.ndarray, k: int, chunk_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """``index.search`` (a FAISS index) over query chunks: ``(scores, indices)`` each (Q, k).

    Keeps FAISS's per-call result buffers bounded; -1 indices where fewer than k documents.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    out_s = np.empty((len(queries), k), dtype=np.float32)
    out_i = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), chunk_size):
        s, i = index.search(queries[start : start + chunk_size], k)
        out_s[start : start + len(s)], out_i[start : start + len(s)] = s, i
    return out_s, out_i


class DenseIndex:
    """A FAISS inner-product index over ``doc_ids``.

    Args:
        kind: "flat" (exact) or "ivf" (IVF-Flat, trained on the vectors; ``nlist`` cells,
            ``nprobe`` probed at search time).
        nlist: number of IVF cells; default 4 * sqrt(N).
        nprobe: cells visited per query (recall/speed trade-off).

    Example:
        >>> ix = DenseIndex()
        >>> ix.add(np.eye(3, dtype="float32"), ["a", "b", "c"])
        >>> s, i = ix.search(np.array([[0.1, 0.9, 0.0]], dtype="float32"), k=2)
        >>> [ix.doc_ids[j] for j in i[0]], [round(x, 2) for x in s[0].tolist()]
        (['b', 'a'], [0.9, 0.1])
    """

    def __init__(self, kind: str = "flat", nlist: int | None = None, nprobe: int = 16, seed: int = 0) -> None:
        if kind not in ("flat", "ivf"):
            raise ValueError(f"unknown dense index kind {kind!r}; valid: flat, ivf")
        self.kind, self.nlist, self.nprobe, self.seed = kind, nlist, nprobe, seed
        self.doc_ids: list[str] = []
        self._index = None

    def add(self, vectors: np.ndarray, doc_ids: Sequence[str]) -> None:
        """Add (N, H) float32 vectors. IVF indexes are trained on the first batch added."""
        faiss = _faiss()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(doc_ids):
            raise ValueError(f"expected ({len(doc_ids)}, H) vectors, got {vectors.shape}")
        if self._index is None:
            dim = vectors.shape[1]
            if self.kind == "flat":
                self._index = faiss.IndexFlatIP(dim)
            else:
                nlist = self.nlist or max(1, int(4 * np.sqrt(len(vectors))))
                quantizer = faiss.IndexFlatIP(dim)
                self._index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
                self._index.cp.seed = self.seed
                self._index.train(vectors)
                self._index.nprobe = self.nprobe
        self._index.add(vectors)
        self.doc_ids.extend(doc_ids)

    def __len__(self) -> int:
        return len(self.doc_ids)

    def search(self, queries: np.ndarray, k: int, chunk_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product: ``(scores, indices)`` each (Q, k); -1 where fewer than k docs."""
        if self._index is None:
            raise RuntimeError("DenseIndex.search before add/load")
        return search_in_chunks(self._index, queries, k, chunk_size)

    def save(self, folder: str | os.PathLike) -> None:
        faiss = _faiss()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self._index, str(folder / "faiss.index"))
        meta = {
            "kind": self.kind,
            "nlist": self.nlist,
            "nprobe": self.nprobe,
            "seed": self.seed,
            "doc_ids": self.doc_ids,
        }
        (folder / "unirank_index.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "DenseIndex":
        faiss = _faiss()
        folder = Path(folder)
        meta = read_json(folder / "unirank_index.json")
        ix = cls(kind=meta["kind"], nlist=meta["nlist"], nprobe=meta["nprobe"], seed=meta["seed"])
        ix._index = faiss.read_index(str(folder / "faiss.index"))
        if meta["kind"] == "ivf":
            ix._index.nprobe = meta["nprobe"]
        ix.doc_ids = list(meta["doc_ids"])
        return ix
