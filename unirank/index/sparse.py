"""BM25 over ``bm25s`` (sparse matrices; document text = title + text).

Defaults follow Pyserini's BM25 "flat" baseline for BEIR (k1=0.9, b=0.4, Lucene IDF),
with English stop words removed and Snowball (Porter-family) stemming.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..io import read_json
from .base import RETRIEVERS


def _stemmer(language: str | None):
    if not language:
        return None
    import Stemmer  # PyStemmer

    return Stemmer.Stemmer(language)


@RETRIEVERS.register("bm25")
class BM25Index:
    """BM25 index.

    Args:
        k1, b: BM25 parameters (Pyserini defaults 0.9 / 0.4).
        method: bm25s scoring variant ("lucene", "robertson", "atire", "bm25l", "bm25+").
        stemmer: Snowball language for stemming, or None.
        stopwords: stop word list name understood by bm25s ("en"), or None.

    Example:
        >>> ix = BM25Index(stemmer=None)
        >>> ix.build(["a", "b", "c"], ["the cat sat", "dogs bark loudly", "a cat and a dog"])
        >>> scores, idx = ix.search(["cat sat"], k=2)
        >>> [ix.doc_ids[j] for j in idx[0]]
        ['a', 'c']
    """

    def __init__(
        self,
        k1: float = 0.9,
        b: float = 0.4,
        method: str = "lucene",
        stemmer: str | None = "english",
        stopwords: str | None = "en",
    ) -> None:
        self.settings = {"k1": k1, "b": b, "method": method, "stemmer": stemmer, "stopwords": stopwords}
        self.doc_ids: list[str] = []
        self._bm25 = None

    @classmethod
    def from_config(cls, cfg) -> "BM25Index":
        """Build from a :class:`unirank.index.config.RetrieverConfig`."""
        b = cfg.bm25
        return cls(k1=b.k1, b=b.b, method=b.method, stemmer=b.stemmer, stopwords=b.stopwords)

    def _tokenize(self, texts: Sequence[str], show_progress: bool = False):
        import bm25s

        return bm25s.tokenize(
            list(texts),
            stopwords=self.settings["stopwords"],
            stemmer=_stemmer(self.settings["stemmer"]),
            show_progress=show_progress,
        )

    def build(self, doc_ids: Sequence[str], texts: Sequence[str], show_progress: bool = False) -> None:
        import bm25s

        if len(doc_ids) != len(texts):
            raise ValueError(f"{len(doc_ids)} ids but {len(texts)} texts")
        self.doc_ids = list(doc_ids)
        s = self.settings
        self._bm25 = bm25s.BM25(k1=s["k1"], b=s["b"], method=s["method"])
        self._bm25.index(self._tokenize(texts, show_progress), show_progress=show_progress)

    def search(
        self, queries: Sequence[str], k: int, chunk_size: int = 1024, show_progress: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k per query: ``(scores, indices)``, each (Q, k); -1 indices where fewer docs match.

        Documents with a zero score (no query term in common) are not returned.
        """
        if self._bm25 is None:
            raise RuntimeError("BM25Index.search before build/load")
        k_eff = min(k, len(self.doc_ids))
        out_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_i = np.full((len(queries), k), -1, dtype=np.int64)
        for start in range(0, len(queries), chunk_size):
            chunk = list(queries[start : start + chunk_size])
            tok = self._tokenize(chunk)
            idx, sc = self._bm25.retrieve(tok, k=k_eff, show_progress=show_progress, n_threads=0)
            idx = np.asarray(idx, dtype=np.int64)
            sc = np.asarray(sc, dtype=np.float32)
            keep = sc > 0
            out_s[start : start + len(chunk), :k_eff] = np.where(keep, sc, -np.inf)
            out_i[start : start + len(chunk), :k_eff] = np.where(keep, idx, -1)
        return out_s, out_i

    def query_token_ids(self, queries: Sequence[str]) -> list[list[int]]:
        """Index-vocabulary token ids of each query (same tokenizer, stemmer and stop words as
        the documents; terms the corpus never uses are dropped).

        Example:
            >>> ix = BM25Index(stemmer=None)
            >>> ix.build(["a", "b"], ["the cat sat", "dogs bark"])
            >>> [len(t) for t in ix.query_token_ids(["cat sat", "unicorn"])]
            [2, 0]
        """
        import bm25s

        if self._bm25 is None:
            raise RuntimeError("BM25Index.query_token_ids before build/load")
        tok = self._tokenize(list(queries))
        return [self._bm25.get_tokens_ids(q) for q in bm25s.tokenization.convert_tokenized_to_string_list(tok)]

    def score_all(self, token_ids: Sequence[int]) -> np.ndarray:
        """BM25 score of every document (in :attr:`doc_ids` order) for one query's token ids.

        Example:
            >>> ix = BM25Index(stemmer=None)
            >>> ix.build(["a", "b"], ["the cat sat", "dogs bark"])
            >>> s = ix.score_all(ix.query_token_ids(["cat"])[0])
            >>> bool(s[0] > 0), float(s[1])
            (True, 0.0)
        """
        if self._bm25 is None:
            raise RuntimeError("BM25Index.score_all before build/load")
        if not len(token_ids):
            return np.zeros(len(self.doc_ids), dtype=np.float32)
        return np.asarray(self._bm25.get_scores_from_ids(list(token_ids)), dtype=np.float32)

    def save(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        self._bm25.save(str(folder), show_progress=False)
        (folder / "unirank_index.json").write_text(
            json.dumps({"kind": "bm25", "settings": self.settings, "doc_ids": self.doc_ids})
        )

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "BM25Index":
        import bm25s

        folder = Path(folder)
        meta = read_json(folder / "unirank_index.json")
        ix = cls(**meta["settings"])
        ix.doc_ids = meta["doc_ids"]
        ix._bm25 = bm25s.BM25.load(str(folder), show_progress=False)
        return ix
