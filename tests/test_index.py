import numpy as np
import pytest

from unirank.index.base import hits_to_run, topk_merge
from unirank.index.dense import DenseIndex
from unirank.index.retrievers import rrf_fuse
from unirank.index.sparse import BM25Index


def test_topk_merge_equals_global_topk_over_chunks():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(7, 50)).astype(np.float32)
    scores[:, 10] = scores[:, 11]  # a tie across chunk boundary
    k = 8
    best_s = np.full((7, 0), -np.inf, dtype=np.float32)
    best_i = np.full((7, 0), -1, dtype=np.int64)
    for start in range(0, 50, 6):
        chunk = scores[:, start : start + 6]
        idx = np.broadcast_to(np.arange(start, start + chunk.shape[1]), chunk.shape)
        best_s, best_i = topk_merge(best_s, best_i, chunk, idx, k)
    order = np.lexsort((np.broadcast_to(np.arange(50), scores.shape), -scores), axis=1)[:, :k]
    assert np.array_equal(best_i, order)
    assert np.allclose(best_s, np.take_along_axis(scores, order, 1))


def test_dense_flat_is_exact_and_ivf_recovers_most(tmp_path):
    rng = np.random.default_rng(1)
    docs = rng.normal(size=(2000, 16)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    q = docs[:20] + 0.01 * rng.normal(size=(20, 16)).astype(np.float32)
    ids = [f"d{i}" for i in range(2000)]
    flat = DenseIndex("flat")
    flat.add(docs, ids)
    s, i = flat.search(q, 10)
    brute = np.argsort(-(q @ docs.T), axis=1)[:, :10]
    assert np.array_equal(i, brute)
    ivf = DenseIndex("ivf", nlist=32, nprobe=8)
    ivf.add(docs, ids)
    _, i2 = ivf.search(q, 10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(i, i2)])
    assert overlap > 0.6
    ivf.save(tmp_path / "ivf")
    again = DenseIndex.load(tmp_path / "ivf")
    assert np.array_equal(again.search(q, 10)[1], i2) and again.doc_ids == ids


def test_bm25_scores_match_lucene_formula(tmp_path):
    docs = ["apple banana apple", "banana cherry", "cherry cherry cherry date", "elderberry"]
    ix = BM25Index(k1=0.9, b=0.4, stemmer=None, stopwords=None)
    ix.build(["a", "b", "c", "d"], docs)
    s, i = ix.search(["apple cherry"], k=4)
    # Lucene BM25: idf = ln(1 + (N - df + 0.5)/(df + 0.5)); tf part = tf / (tf + k1 (1 - b + b dl/avgdl))
    toks = [d.split() for d in docs]
    avgdl = np.mean([len(t) for t in toks])

    def bm25(doc, term):
        df = sum(term in t for t in toks)
        idf = np.log(1 + (4 - df + 0.5) / (df + 0.5))
        tf = doc.count(term)
        return idf * tf / (tf + 0.9 * (1 - 0.4 + 0.4 * len(doc) / avgdl))

    expected = {n: bm25(t, "apple") + bm25(t, "cherry") for n, t in zip("abcd", toks)}
    got = {ix.doc_ids[j]: float(x) for x, j in zip(s[0], i[0]) if j >= 0}
    assert set(got) == {"a", "b", "c"}  # "d" shares no term: not returned
    for d, v in got.items():
        assert v == pytest.approx(expected[d], rel=1e-5)
    ix.save(tmp_path / "bm25")
    again = BM25Index.load(tmp_path / "bm25")
    s2, i2 = again.search(["apple cherry"], k=4)
    assert np.array_equal(i, i2) and np.allclose(s[np.isfinite(s)], s2[np.isfinite(s2)])


def test_bm25_stemming_matches_inflections():
    ix = BM25Index()
    ix.build(["a", "b"], ["running quickly through parks", "a quiet library"])
    _, i = ix.search(["runs"], k=2)
    assert ix.doc_ids[i[0, 0]] == "a" and i[0, 1] == -1


def test_rrf_and_hits_to_run():
    a = (np.array([[3.0, 2.0, 1.0]]), np.array([[0, 1, 2]]))
    b = (np.array([[3.0, 2.0, 1.0]]), np.array([[2, 1, -1]]))
    s, i = rrf_fuse([a, b], n_docs=3, k=3, k_rrf=60)
    # doc1: 1/62 + 1/62; doc0: 1/61; doc2: 1/63 + 1/61
    assert i[0].tolist() == [2, 1, 0]
    assert s[0, 0] == pytest.approx(1 / 63 + 1 / 61)
    run = hits_to_run(["q"], ["x", "y", "z"], s, i)
    assert list(run["q"]) == ["z", "y", "x"]
