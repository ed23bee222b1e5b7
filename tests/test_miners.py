"""Miners: exact chunked top-k, positives scored by the same scorer, BM25 / dense / hybrid agreement."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from unirank.errors import ConfigError
from unirank.index.dense import DenseIndex
from unirank.index.sparse import BM25Index
from unirank.negatives.miners import (
    MINERS,
    BM25Miner,
    DenseMiner,
    HybridMiner,
    TeacherScorer,
    build_miner,
    dense_scan_topk,
    stable_topk,
)
from unirank.negatives.pipeline import MineConfig


class BagOfWords:
    """A tiny deterministic text encoder: hashed bag of words, L2-normalised (a real scorer, no model)."""

    def __init__(self, dim: int = 32) -> None:
        self.dim = dim
        self.calls = 0

    def _enc(self, texts):
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for r, t in enumerate(texts):
            for w in t.lower().split():
                out[r, zlib.crc32(w.encode()) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def encode_queries(self, texts, **kw):
        return self._enc(texts)

    def encode_docs(self, texts, **kw):
        return self._enc(texts)


def full_order(scores: np.ndarray, k: int) -> np.ndarray:
    """Reference: sort each row by (-score, column)."""
    cols = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    return np.lexsort((cols, -scores), axis=1)[:, :k]


# ---------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("k", [1, 3, 7, 12])
def test_stable_topk_equals_full_sort_with_ties(k):
    rng = np.random.default_rng(0)
    s = rng.integers(0, 4, size=(9, 12)).astype(np.float32)  # many ties
    v, i = stable_topk(s, k, offset=100)
    ref = full_order(s, k)
    assert np.array_equal(i, ref + 100)
    assert np.array_equal(v, np.take_along_axis(s, ref, 1))


def test_stable_topk_hand_example_and_nan_is_lowest():
    v, i = stable_topk(np.array([[2.0, np.nan, 5.0, 2.0]]), 3)
    assert i.tolist() == [[2, 0, 3]]
    assert v.tolist() == [[5.0, 2.0, 2.0]]
    v, i = stable_topk(np.zeros((2, 0)), 3)
    assert v.shape == (2, 0) and i.shape == (2, 0)


@pytest.mark.parametrize("qc,dc", [(1, 1), (2, 3), (5, 7), (64, 1000)])
def test_dense_scan_equals_brute_force_for_any_chunking(qc, dc):
    rng = np.random.default_rng(1)
    docs = rng.normal(size=(53, 8)).astype(np.float32)
    docs[10] = docs[40]  # an exact tie that straddles chunks
    q = rng.normal(size=(11, 8)).astype(np.float32)
    q[3] = docs[10]
    s, i = dense_scan_topk(q, docs, k=9, query_chunk=qc, doc_chunk=dc)
    full = q @ docs.T
    ref = full_order(full, 9)
    assert np.array_equal(i, ref)
    assert np.allclose(s, np.take_along_axis(full, ref, 1), atol=1e-5)
    row = [int(x) for x in i[3]]
    assert row[row.index(10) + 1] == 40  # the tie: lower row first, next to each other


def test_dense_scan_pads_when_corpus_is_smaller_than_k():
    s, i = dense_scan_topk(np.ones((1, 2), np.float32), np.eye(2, dtype=np.float32), k=4, doc_chunk=1)
    assert i.tolist() == [[0, 1, -1, -1]]
    assert s[0, 2:].tolist() == [-np.inf, -np.inf]


def test_dense_scan_reads_a_memmap(tmp_path):
    rng = np.random.default_rng(2)
    docs = rng.normal(size=(40, 6)).astype(np.float32)
    mm = np.lib.format.open_memmap(tmp_path / "d.npy", mode="w+", dtype=np.float32, shape=docs.shape)
    mm[:] = docs
    mm.flush()
    q = rng.normal(size=(4, 6)).astype(np.float32)
    _, i = dense_scan_topk(q, np.load(tmp_path / "d.npy", mmap_mode="r"), k=5, doc_chunk=7)
    assert np.array_equal(i, full_order(q @ docs.T, 5))


# ---------------------------------------------------------------------------- dense miner


def _vectors(n=200, dim=16, seed=3):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_dense_miner_faiss_and_scan_agree_and_positive_score_is_dot_product():
    docs = _vectors()
    ids = [f"d{i}" for i in range(len(docs))]
    q = docs[:6] * 0.7 + _vectors(6, seed=9) * 0.3
    rows = [[0, 150], [1], [2], [3], [4], [5, 6, 7]]
    results = []
    for search in ("faiss", "scan"):
        m = DenseMiner(search=search, doc_chunk=33, query_chunk=4)
        m.build_from_vectors(ids, docs)
        results.append(m.search(q, 10, rows))
    (fa, sc) = results
    assert np.array_equal(fa.indices, sc.indices)
    assert np.allclose(fa.scores, sc.scores, atol=1e-5)
    for qi, r in enumerate(rows):
        assert np.allclose(sc.row_scores[qi], docs[r] @ q[qi], atol=1e-6)
    # the reference: FAISS's own exact index
    ix = DenseIndex("flat")
    ix.add(docs, ids)
    assert np.array_equal(ix.search(q, 10)[1], sc.indices)


def test_dense_miner_normalises_for_an_unnormalised_cosine_encoder():
    class Raw(BagOfWords):
        similarity, normalize = "cosine", False

        def _enc(self, texts):
            return 3.0 * super()._enc(texts)

    m = DenseMiner(encoder=Raw(), search="scan")
    m.build(["a", "b"], ["red apple", "green pear"])
    hits = m.search(m.prepare(["red apple"]), 2, [[1]])
    assert hits.indices[0].tolist() == [0, 1]
    assert hits.scores[0][0] == pytest.approx(1.0, abs=1e-6)  # cosine, not 9.0


def test_dense_miner_rejects_bad_names():
    with pytest.raises(ConfigError, match="valid: faiss, scan"):
        DenseMiner(search="annoy")
    with pytest.raises(ConfigError, match="valid: flat, ivf"):
        DenseMiner(index_kind="hnsw")


# ---------------------------------------------------------------------------- bm25 miner

DOCS = ["the cat sat on the mat", "dogs bark at the cat", "a bird sings", "cat cat cat", "fish swim", "the dog sleeps"]


def test_bm25_miner_matches_bm25_index_and_scores_positives_like_candidates():
    ids = [f"d{i}" for i in range(len(DOCS))]
    ix = BM25Index(stemmer=None)
    ix.build(ids, DOCS)
    m = BM25Miner(BM25Index(stemmer=None))
    m.build(ids, DOCS)
    queries = ["cat on a mat", "dog", "zebra"]
    hits = m.search(m.prepare(queries), 4, [[0, 2], [5, 1], [0]])
    ref_s, ref_i = ix.search(queries, 4)
    for q in range(3):
        got = {int(i): float(s) for s, i in zip(hits.scores[q], hits.indices[q]) if i >= 0}
        ref = {int(i): float(s) for s, i in zip(ref_s[q], ref_i[q]) if i >= 0}
        assert got.keys() == ref.keys()
        for d in got:
            assert got[d] == pytest.approx(ref[d], rel=1e-6)
    # positives: d0 was retrieved for q0 -> the same score; d2 shares no term -> 0
    assert float(hits.row_scores[0][0]) == pytest.approx(
        float(hits.scores[0][list(hits.indices[0]).index(0)]), rel=1e-6
    )
    assert float(hits.row_scores[0][1]) == 0.0
    # "zebra" is not in the vocabulary: no candidates at all, score 0
    assert hits.indices[2].tolist() == [-1, -1, -1, -1]
    assert hits.row_scores[2].tolist() == [0.0]
    # later scoring of arbitrary rows agrees with the search
    again = m.score(m.prepare(queries), [[0, 2], [], [0]])
    assert np.array_equal(again[0], hits.row_scores[0]) and again[1].size == 0


def test_bm25_miner_positive_score_hand_computed_lucene():
    # two docs; query "cat": idf = ln(1 + (N - df + 0.5) / (df + 0.5)), Lucene BM25 with k1=0.9, b=0.4
    ids, docs = ["a", "b"], ["cat dog", "dog dog fish"]
    m = BM25Miner(BM25Index(stemmer=None, stopwords=None))
    m.build(ids, docs)
    hits = m.search(m.prepare(["cat"]), 2, [[0]])
    idf = math.log(1 + (2 - 1 + 0.5) / (1 + 0.5))
    avgdl = (2 + 3) / 2
    tf, dl = 1, 2
    expected = idf * tf / (tf + 0.9 * (1 - 0.4 + 0.4 * dl / avgdl))
    assert float(hits.row_scores[0][0]) == pytest.approx(expected, rel=1e-6)
    assert hits.indices[0].tolist() == [0, -1]


# ---------------------------------------------------------------------------- hybrid miner


def test_hybrid_miner_rrf_scores_for_candidates_and_positives():
    ids = [f"d{i}" for i in range(len(DOCS))]
    bm = BM25Miner(BM25Index(stemmer=None))
    de = DenseMiner(encoder=BagOfWords(), search="scan")
    h = HybridMiner(bm, de, k_rrf=60.0, depth=3)  # each side retrieves max(k, depth) = 3
    h.build(ids, DOCS)
    st = h.prepare(["cat mat"])
    hits = h.search(st, 2, [[0, 4]])
    b = bm.search(bm.prepare(["cat mat"]), 3)
    d = de.search(de.prepare(["cat mat"]), 3)

    def rrf(row):
        total = 0.0
        for idx in (b.indices[0], d.indices[0]):
            lst = [int(x) for x in idx]
            if row in lst:
                total += 1.0 / (60.0 + lst.index(row) + 1)
        return total

    for s, i in zip(hits.scores[0], hits.indices[0]):
        if i >= 0:
            assert float(s) == pytest.approx(rrf(int(i)), rel=1e-6)
    assert float(hits.row_scores[0][0]) == pytest.approx(rrf(0), rel=1e-6)
    assert rrf(0) > 0
    assert float(hits.row_scores[0][1]) == 0.0  # "fish swim" is retrieved by neither side


# ---------------------------------------------------------------------------- registry, teacher


def test_miner_registry_and_unknown_name():
    assert MINERS.names() == ["bm25", "dense", "hybrid", "prebuilt", "splade"]
    cfg = MineConfig()
    cfg.miner.name = "colbert"
    with pytest.raises(ConfigError, match="unknown miner 'colbert'; valid: bm25, dense, hybrid"):
        build_miner(cfg)


def test_teacher_scorer_rescores_only_depth():
    class Overlap:
        def rank(self, context, texts, chunk_size=64):
            q = set(context.split())
            return [float(len(q & set(t.split()))) for t in texts]

    t = TeacherScorer(Overlap(), depth=2)
    got = t("cat mat", ["the cat", "cat on mat", "cat"])
    assert got[:2].tolist() == [1.0, 2.0] and math.isnan(got[2])
    assert t("cat mat", ["the cat", "cat on mat", "cat"], limit=False).tolist() == [1.0, 2.0, 1.0]
    with pytest.raises(ConfigError):
        TeacherScorer(Overlap(), depth=-1)
