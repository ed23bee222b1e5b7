"""Sharded encoding (resume after a crash), indexes from shards, sharded search."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from unirank.errors import ConfigError
from unirank.index.dense import DenseIndex
from unirank.index.shards import (
    ShardedIndex,
    build_index_from_shards,
    encode_corpus_shard,
    read_shard_ids,
    recall_at_k,
    shard_range,
)

DIM = 32


@pytest.fixture(autouse=True, scope="module")
def _one_faiss_thread():
    """OpenMP threads spin on a busy 2-core machine; one thread keeps this file at a few seconds."""
    import faiss

    old = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(old)


class HashEncoder:
    """Deterministic 'model': a unit vector seeded by the text (counts its calls)."""

    def __init__(self, crash_after: int | None = None) -> None:
        self.calls, self.crash_after = 0, crash_after

    def encode_docs(self, texts, **kw):
        if self.crash_after is not None and self.calls >= self.crash_after:
            raise KeyboardInterrupt("simulated crash")
        self.calls += 1
        out = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(DIM)
            out.append(v / np.linalg.norm(v))
        return np.asarray(out, dtype=np.float32)


def _docs(n: int) -> list[tuple[str, str]]:
    return [(f"doc{i}", f"text number {i}") for i in range(n)]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_shard_ranges_partition() -> None:
    for n in (0, 1, 7, 100):
        for k in (1, 3, 8):
            ranges = [shard_range(n, i, k) for i in range(k)]
            assert ranges[0][0] == 0 and ranges[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


def test_resume_after_crash_gives_identical_files(tmp_path: Path) -> None:
    docs = _docs(23)
    full, crashed = tmp_path / "full", tmp_path / "crashed"
    for i in range(2):
        encode_corpus_shard(HashEncoder(), docs, shard=(i, 2), out_dir=full, chunk_size=4)
    # shard 0 (12 docs = 3 chunks) dies in its third chunk
    with pytest.raises(KeyboardInterrupt):
        encode_corpus_shard(HashEncoder(crash_after=2), docs, shard=(0, 2), out_dir=crashed, chunk_size=4)
    assert not (crashed / "shard-00000-of-00002" / "done.json").exists()
    resumed = HashEncoder()
    encode_corpus_shard(resumed, docs, shard=(0, 2), out_dir=crashed, chunk_size=4)
    assert resumed.calls == 1  # only the missing chunk was encoded
    encode_corpus_shard(HashEncoder(), docs, shard=(1, 2), out_dir=crashed, chunk_size=4)
    assert _files(full) == _files(crashed)
    assert [len(s) for s in read_shard_ids(full)] == [12, 11]
    # the store refuses a different layout
    with pytest.raises(ConfigError, match="chunk_size"):
        encode_corpus_shard(HashEncoder(), docs, shard=(0, 2), out_dir=full, chunk_size=5)


def test_unfinished_store_is_refused(tmp_path: Path) -> None:
    encode_corpus_shard(HashEncoder(), _docs(10), shard=(0, 2), out_dir=tmp_path)
    with pytest.raises(ConfigError, match="shard-00001-of-00002"):
        ShardedIndex(tmp_path)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, np.ndarray, list[str]]:
    """3 shards of 3000 clustered vectors (retrieval-like: queries near documents)."""
    root = tmp_path_factory.mktemp("store")
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((50, DIM))
    x = centers[rng.integers(0, 50, 3000)] + 0.5 * rng.standard_normal((3000, DIM))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"d{i}" for i in range(len(x))]
    table = dict(zip(ids, x))

    class Lookup:
        def encode_docs(self, texts, **kw):
            return np.stack([table[t] for t in texts])

    for i in range(3):
        encode_corpus_shard(Lookup(), list(zip(ids, ids)), shard=(i, 3), out_dir=root, chunk_size=700)
    return root, x, ids


def _queries(x: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(1)
    q = x[rng.integers(0, len(x), 40)] + 0.3 * rng.standard_normal((40, DIM))
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def test_flat_and_sharded_equal_dense_index(store) -> None:
    root, x, ids = store
    q = _queries(x)
    dense = DenseIndex()
    dense.add(x, ids)
    s_ref, i_ref = dense.search(q, 100)
    flat = build_index_from_shards(root, "flat")
    s, i = flat.search(q, 100)
    assert flat.doc_ids == ids
    np.testing.assert_array_equal(i, i_ref)
    np.testing.assert_allclose(s, s_ref, rtol=1e-5, atol=1e-6)
    sharded = ShardedIndex(root)  # exact, streaming over memory-mapped chunks
    s2, i2 = sharded.search(q, 100)
    assert sharded.doc_ids == ids
    np.testing.assert_allclose(s2, s_ref, rtol=1e-5, atol=1e-6)
    assert recall_at_k(i_ref, i2, 100) == 1.0  # same sets (ties may order differently)


def test_compressed_indexes_recall(store, tmp_path: Path) -> None:
    root, x, ids = store
    q = _queries(x)
    _, exact = build_index_from_shards(root, "flat").search(q, 100)
    ivfpq = build_index_from_shards(root, "ivfpq", train_sample=2000, nlist=16, m=8, search_params={"nprobe": 16})
    hnsw = build_index_from_shards(root, "hnsw", M=16, search_params={"efSearch": 256})
    r_pq, r_hnsw = recall_at_k(exact, ivfpq.search(q, 100)[1]), recall_at_k(exact, hnsw.search(q, 100)[1])
    # all lists probed: PQ (8 bytes per 32-d vector) is the only loss; HNSW with a wide beam is near exact
    assert 0.3 < r_pq < 1.0
    assert r_hnsw > 0.95
    # the same kinds per shard, saved and searched shard by shard
    sh = ShardedIndex.build(root, tmp_path / "ix", kind="ivfpq", train_sample=1000, nlist=8, m=8)
    sh.set_search_params(nprobe=8)
    got = sh.search(q, 100)[1]
    assert got.max() >= 2000  # hits from the last shard carry its offset
    assert 0.3 < recall_at_k(exact, got) < 1.0
    assert json.loads((tmp_path / "ix" / "shard-00002" / "unirank_index.json").read_text())["doc_ids"][0] == "d2000"
    with pytest.raises(ConfigError, match="must divide"):
        build_index_from_shards(root, "ivfpq", m=5)
    with pytest.raises(ConfigError, match="too few to train its 65536-centroid product quantiser"):
        build_index_from_shards(root, "ivfpq", nbits=16)  # instead of faiss's RuntimeError


def test_refine_rescores_compressed_hits_exactly_from_the_store(store, tmp_path: Path) -> None:
    """refine: PQ proposes refine x k candidates, the store's float32 rows decide; scores are
    then exact inner products and recall rises to what the candidate pool holds."""
    root, x, ids = store
    q = _queries(x)
    s_exact, exact = build_index_from_shards(root, "flat").search(q, 100)
    ShardedIndex.build(root, tmp_path / "ix", kind="ivfpq", train_sample=1000, nlist=8, m=8)
    plain = ShardedIndex(root, tmp_path / "ix")
    plain.set_search_params(nprobe=8)
    refined = ShardedIndex(root, tmp_path / "ix", refine=5)
    refined.set_search_params(nprobe=8)
    s_r, i_r = refined.search(q, 100)
    ok = i_r >= 0
    np.testing.assert_allclose(
        s_r[ok],
        np.einsum("qd,qd->q", np.repeat(q, 100, 0).reshape(-1, DIM)[ok.ravel()], x[i_r[ok]]),
        rtol=1e-5,
        atol=1e-5,
    )
    assert (np.diff(s_r, axis=1)[np.isfinite(s_r[:, 1:])] <= 1e-6).all()  # sorted best first
    r_plain, r_ref = recall_at_k(exact, plain.search(q, 100)[1]), recall_at_k(exact, i_r)
    assert r_ref > r_plain and r_ref > 0.95
    everything = ShardedIndex(root, tmp_path / "ix", refine=30)  # 3000 candidates: the whole corpus
    everything.set_search_params(nprobe=8)
    s_all, i_all = everything.search(q, 100)
    assert recall_at_k(exact, i_all) == 1.0
    np.testing.assert_allclose(s_all, s_exact, rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="refine"):
        ShardedIndex(root, refine=-1)


def test_prebuilt_retriever_in_run_eval(store) -> None:
    """Evaluation through a ShardedIndex gives the run of an exact DenseIndex over the same vectors."""
    from unirank.eval.config import EvalConfig, RetrieverConfig
    from unirank.eval.evaluate import run_eval
    from unirank.index.shards import PrebuiltRetriever
    from unirank.types import Document, Query, RetrievalDataset

    root, x, ids = store
    q = _queries(x)[:5]
    qtable = {f"query {i}": v for i, v in enumerate(q)}

    class Enc:
        def encode_queries(self, texts, **kw):
            return np.stack([qtable[t] for t in texts])

    ds = RetrievalDataset(
        "synthetic",
        {d: Document(d, d) for d in ids},
        {f"q{i}": Query(f"q{i}", t) for i, t in enumerate(qtable)},
        {f"q{i}": {ids[i]: 1} for i in range(5)},
    )
    cfg = EvalConfig(data="synthetic", retriever=RetrieverConfig(name="dense"), k=10, measures=["recall@10"])
    got = run_eval(cfg, dataset=ds, retriever=PrebuiltRetriever(Enc(), ShardedIndex(root)), quiet=True)
    dense = DenseIndex()
    dense.add(x, ids)
    _, ref = dense.search(q, 10)
    for i in range(5):
        assert set(got.run[f"q{i}"]) == {ids[j] for j in ref[i]}
    with pytest.raises(ConfigError, match="1 corpus documents missing"):
        PrebuiltRetriever(Enc(), ShardedIndex(root)).build(ids + ["extra"], [])
