"""The mining pipeline end to end on tiny BEIR folders: outputs, counts, reproducibility, audit, formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from unirank.config import from_dict
from unirank.errors import ConfigError, DataError
from unirank.negatives.convert import CONVERTERS, convert_file, read_mined
from unirank.negatives.pipeline import MineConfig, parse_spec, query_rng, run_mine

from .conftest import write_beir
from .test_miners import BagOfWords

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"  # ../shared beside the repository

WORDS = "cat dog bird fish tree river stone cloud rain snow wind fire sand moss leaf root".split()


def corpus_folder(tmp_path: Path, n_docs: int = 60, n_queries: int = 12) -> Path:
    """A small synthetic BEIR folder (split train) where every query shares words with many docs."""
    rng = np.random.default_rng(0)
    docs = {}
    for i in range(n_docs):
        words = rng.choice(WORDS, size=6, replace=True)
        docs[f"d{i:03d}"] = (f"T{i}", " ".join(words))
    docs["d900"] = ("T0", docs["d000"][1])  # an exact duplicate of d000's text
    queries, qrels = {}, {}
    for q in range(n_queries):
        target = f"d{q:03d}"
        queries[f"q{q:02d}"] = " ".join(docs[target][1].split()[:3])
        qrels[f"q{q:02d}"] = {target: 1}
    queries["qx"] = "orphan"
    qrels["qx"] = {"d001": 0}  # judged, but no positive: counted, skipped
    return write_beir(tmp_path / "data", docs, queries, qrels, split="train")


def cfg_for(data: Path, out: Path, **kw) -> MineConfig:
    base = {"data": str(data), "split": "train", "out": str(out), "depth": 20, "negatives": 4}
    base.update(kw)
    return from_dict(MineConfig, base)


def read_lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


# ---------------------------------------------------------------------------- bm25 end to end


def test_bm25_mining_outputs_and_counts_add_up(tmp_path):
    data = corpus_folder(tmp_path)
    out = tmp_path / "out"
    m = run_mine(cfg_for(data, out))
    rows = read_lines(out / "train.jsonl")
    c = m["counts"]
    assert c["queries_in_split"] == 13 and c["queries_without_positive"] == 1
    assert c["queries_mined"] == 12 == c["queries_written"] == len(rows)
    assert c["candidates_seen"] == sum(c["dropped"].values()) + c["candidates_kept"]
    assert list(c["dropped"]) == ["positives", "duplicates", "relative_margin"]
    assert c["negatives_written"] == sum(len(r["negatives"]) for r in rows)
    assert c["negatives_written"] == c["negatives_from_candidates"] + c["negatives_from_corpus"]
    assert c["queries_with_too_few_negatives"] == sum(len(r["negatives"]) < 4 for r in rows)
    assert c["dropped"]["duplicates"] >= 1  # d900 duplicates d000 (positive of q00)
    q00 = next(r for r in rows if r["query_id"] == "q00")
    assert "d900" not in [n["id"] for n in q00["negatives"]]
    for r in rows:
        assert set(r) == {"query_id", "query", "positives", "negatives"}
        pos = r["positives"][0]
        pos_ids = {p["id"] for p in r["positives"]}
        assert set(pos) == {"id", "text", "score", "rank"}
        ranks = [n["rank"] for n in r["negatives"]]
        assert ranks == sorted(ranks)  # top sampler: rank order
        for n in r["negatives"]:
            assert set(n) == {"id", "text", "score", "rank"} and n["id"] not in pos_ids
            # relative_margin p=0.05: every kept negative is at most 95% of the positive's BM25 score
            assert n["score"] <= pos["score"] - 0.05 * abs(pos["score"]) + 1e-9
    # manifest: config, seed, fingerprints, index type
    assert m["config"]["miner"]["name"] == "bm25" and m["seed"] == 0
    assert m["miner"]["index"] == "bm25s" and m["miner"]["model"] is None
    assert len(m["data"]["corpus_fingerprint"]) == 16 and len(m["data"]["qrels_fingerprint"]) == 16
    assert json.loads((out / "mine.json").read_text()) == m
    assert (out / "audit.html").read_text().startswith("<!doctype html>")
    assert (out / "timings.json").is_file()


def test_positive_scores_equal_their_retrieval_scores(tmp_path):
    data = corpus_folder(tmp_path)
    run_mine(cfg_for(data, tmp_path / "o", filters=[], negatives=20, depth=20))
    for r in read_lines(tmp_path / "o" / "train.jsonl"):
        p = r["positives"][0]
        assert p["rank"] is not None  # each query is a prefix of its positive's text
        # the positive's score sits exactly where its rank says among the candidates
        for n in r["negatives"]:
            assert (n["score"] >= p["score"]) if n["rank"] < p["rank"] else (n["score"] <= p["score"])


def test_too_few_negatives_counted_and_optionally_dropped(tiny_beir, tmp_path):
    # 5 documents: asking for 7 negatives can never be satisfied
    cfg = from_dict(
        MineConfig, {"data": str(tiny_beir), "split": "test", "out": str(tmp_path / "a"), "negatives": 7, "filters": []}
    )
    m = run_mine(cfg)
    c = m["counts"]
    assert c["queries_mined"] == 4 and c["queries_with_too_few_negatives"] == 4
    assert c["queries_written"] == 4
    cfg.keep_incomplete, cfg.out = False, str(tmp_path / "b")
    m2 = run_mine(cfg)
    assert m2["counts"]["queries_written"] == 0 and (tmp_path / "b" / "train.jsonl").read_text() == ""
    # q4 ("unrelated xyzzy") shares no term with any document: no BM25 candidate at all
    assert read_lines(tmp_path / "a" / "train.jsonl")[3]["negatives"] == []
    assert c["queries_without_negatives"] >= 1


# ---------------------------------------------------------------------------- reproducibility


FILES = ("train.jsonl", "mine.json", "audit.jsonl", "audit.html")


@pytest.mark.parametrize(
    "sampler",
    [{"name": "simans", "a": 1.0}, {"name": "mixed", "n_random": 2, "hard": "range", "hard_params": {"range_max": 15}}],
)
def test_same_seed_is_byte_identical_and_another_seed_differs(tmp_path, sampler):
    data = corpus_folder(tmp_path)
    outs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        run_mine(cfg_for(data, tmp_path / name, sampler=sampler, seed=seed, filters=[{"name": "duplicates"}]))
        outs[name] = {f: (tmp_path / name / f).read_bytes() for f in FILES}
    for f in FILES:
        assert outs["a"][f] == outs["b"][f], f
    assert outs["a"]["train.jsonl"] != outs["c"]["train.jsonl"]


def test_output_does_not_depend_on_chunking_or_limit(tmp_path):
    data = corpus_folder(tmp_path)
    sampler = {"name": "random"}
    run_mine(cfg_for(data, tmp_path / "a", sampler=sampler, query_chunk=1024))
    run_mine(cfg_for(data, tmp_path / "b", sampler=sampler, query_chunk=5))
    run_mine(cfg_for(data, tmp_path / "c", sampler=sampler, query_chunk=3, limit_queries=4))
    a = (tmp_path / "a" / "train.jsonl").read_text()
    assert a == (tmp_path / "b" / "train.jsonl").read_text()
    assert a.splitlines()[:4] == (tmp_path / "c" / "train.jsonl").read_text().splitlines()


def test_query_rng_depends_on_seed_and_query_only():
    a = query_rng(0, "q1").integers(0, 1 << 30, size=4)
    assert np.array_equal(a, query_rng(0, "q1").integers(0, 1 << 30, size=4))
    assert not np.array_equal(a, query_rng(1, "q1").integers(0, 1 << 30, size=4))
    assert not np.array_equal(a, query_rng(0, "q2").integers(0, 1 << 30, size=4))


# ---------------------------------------------------------------------------- dense and hybrid


def test_dense_mining_chunked_scan_equals_unchunked_and_faiss(tmp_path):
    data = corpus_folder(tmp_path)
    enc = BagOfWords(dim=24)
    kw = {"miner": {"name": "dense"}, "filters": [{"name": "relative_margin", "p": 0.05}]}
    run_mine(cfg_for(data, tmp_path / "scan1", dense_search="scan", doc_chunk=7, query_chunk=5, **kw), encoder=enc)
    run_mine(
        cfg_for(data, tmp_path / "scan2", dense_search="scan", doc_chunk=100000, query_chunk=1024, **kw), encoder=enc
    )
    m = run_mine(cfg_for(data, tmp_path / "faiss", dense_search="faiss", **kw), encoder=enc)
    a = read_lines(tmp_path / "scan1" / "train.jsonl")
    f = read_lines(tmp_path / "faiss" / "train.jsonl")
    # exact ties abound (hashed word counts): chunking must not reorder them
    assert (tmp_path / "scan1" / "train.jsonl").read_bytes() == (tmp_path / "scan2" / "train.jsonl").read_bytes()
    # FAISS sums in float32, so exactly tied documents may come out in another order; the
    # score sequences must still agree
    assert len(a) == len(f)
    for ra, rf in zip(a, f):
        assert [n["score"] for n in ra["negatives"]] == pytest.approx([n["score"] for n in rf["negatives"]], abs=1e-5)
    assert m["miner"]["index"] == "faiss-flat"
    # positive score is q . p of the encoder's vectors
    from unirank.data.beir import load_beir

    ds = load_beir(data, split="train")
    r = a[0]
    q = enc.encode_queries([r["query"]])[0]
    p = enc.encode_docs([ds.corpus[r["positives"][0]["id"]].full_text])[0]
    assert r["positives"][0]["score"] == pytest.approx(float(q @ p), abs=1e-6)


@pytest.mark.parametrize("compressed", [False, True])
def test_mining_from_a_prebuilt_sharded_store_equals_dense_scan(tmp_path, compressed):
    """miner prebuilt: the store written by sharded encoding (2 shards, small chunks) mines the
    same rows as the dense miner encoding the corpus itself; with a per-shard flat FAISS index too."""
    from unirank.data.beir import load_beir
    from unirank.index.shards import ShardedIndex, encode_corpus_shard

    data = corpus_folder(tmp_path)
    enc = BagOfWords(dim=24)
    ds = load_beir(data, split="train")
    docs = [(d, ds.corpus[d].full_text) for d in ds.corpus]
    store = tmp_path / "store"
    for s in range(2):
        encode_corpus_shard(enc, docs, shard=(s, 2), out_dir=store, chunk_size=7)
    index_dir = None
    if compressed:
        index_dir = tmp_path / "ix"
        ShardedIndex.build(store, index_dir, kind="flat")
    kw = {"filters": [{"name": "relative_margin", "p": 0.05}], "sampler": {"name": "mixed", "n_random": 1}}
    run_mine(cfg_for(data, tmp_path / "scan", miner={"name": "dense"}, dense_search="scan", **kw), encoder=enc)
    m = run_mine(
        cfg_for(
            data,
            tmp_path / "pre",
            miner={
                "name": "prebuilt",
                "dense": {"store": str(store), "index_dir": str(index_dir) if index_dir else None},
            },
            **kw,
        ),
        encoder=enc,
    )
    a, b = read_lines(tmp_path / "scan" / "train.jsonl"), read_lines(tmp_path / "pre" / "train.jsonl")
    assert len(a) == len(b) and m["miner"]["miner"] == "prebuilt"
    for ra, rb in zip(a, b):
        assert [p["id"] for p in ra["positives"]] == [p["id"] for p in rb["positives"]]
        assert [p["score"] for p in ra["positives"]] == pytest.approx([p["score"] for p in rb["positives"]], abs=1e-5)
        assert [n["score"] for n in ra["negatives"]] == pytest.approx([n["score"] for n in rb["negatives"]], abs=1e-5)
    # the random negatives come from the same seeded draw over the same corpus order
    assert [[n["id"] for n in r["negatives"] if n["rank"] is None] for r in a] == [
        [n["id"] for n in r["negatives"] if n["rank"] is None] for r in b
    ]


def test_prebuilt_miner_refuses_a_store_of_another_corpus(tmp_path):
    from unirank.index.shards import encode_corpus_shard

    data = corpus_folder(tmp_path)
    store = tmp_path / "store"
    encode_corpus_shard(BagOfWords(dim=8), [("x1", "a"), ("x2", "b")], shard=(0, 1), out_dir=store)
    with pytest.raises(ConfigError, match="does not match the corpus"):
        run_mine(
            cfg_for(data, tmp_path / "o", miner={"name": "prebuilt", "dense": {"store": str(store)}}),
            encoder=BagOfWords(dim=8),
        )
    with pytest.raises(ConfigError, match="needs miner.dense.store"):
        run_mine(cfg_for(data, tmp_path / "o2", miner={"name": "prebuilt"}), encoder=BagOfWords(dim=8))


def test_dense_mining_with_a_tiny_bi_encoder_records_its_fingerprint(tmp_path):
    from unirank.models.backbone import tiny_backbone
    from unirank.models.bi import BiEncoder

    data = corpus_folder(tmp_path, n_docs=20, n_queries=4)
    backbone = tiny_backbone(hidden=16)
    enc = BiEncoder(backbone, max_length=32)
    m = run_mine(cfg_for(data, tmp_path / "o", miner={"name": "dense"}, dense_search="scan", negatives=3), encoder=enc)
    assert m["miner"]["model"]["fingerprint"] == backbone.fingerprint()
    rows = read_lines(tmp_path / "o" / "train.jsonl")
    q = enc.encode_queries([rows[0]["query"]])
    for n in rows[0]["negatives"]:
        d = enc.encode_docs([next(t for t in [n["text"]])])
        assert n["score"] == pytest.approx(float(q[0] @ d[0]), abs=1e-5)


def test_hybrid_mining_runs_end_to_end(tmp_path):
    data = corpus_folder(tmp_path)
    m = run_mine(
        cfg_for(
            data,
            tmp_path / "h",
            miner={"name": "hybrid"},
            filters=[{"name": "duplicates"}],
            sampler={"name": "mixed", "n_random": 1},
        ),
        encoder=BagOfWords(),
    )
    c = m["counts"]
    assert m["miner"]["index"].startswith("rrf(bm25s, ")
    assert c["candidates_seen"] == sum(c["dropped"].values()) + c["candidates_kept"]
    for r in read_lines(tmp_path / "h" / "train.jsonl"):
        for n in r["negatives"]:
            assert 0.0 <= n["score"] <= 2.0 / 61.0 + 1e-7  # RRF with k_rrf = 60, two sides


# ---------------------------------------------------------------------------- teacher


def test_teacher_scores_saved_and_teacher_filter_applied(tmp_path):
    from unirank.models.backbone import tiny_backbone
    from unirank.models.cross import CrossEncoder
    from unirank.negatives.miners import TeacherScorer

    data = corpus_folder(tmp_path, n_docs=25, n_queries=3)
    cross = CrossEncoder(tiny_backbone(hidden=16), max_context_length=32, max_candidate_length=32)
    teacher = TeacherScorer(cross, depth=5)
    m = run_mine(
        cfg_for(data, tmp_path / "t", filters=[{"name": "teacher", "margin": 0.0}], negatives=10), teacher=teacher
    )
    rows = read_lines(tmp_path / "t" / "train.jsonl")
    for r in rows:
        pt = r["positives"][0]["teacher"]
        assert pt == pytest.approx(cross.rank(r["query"], [r["positives"][0]["text"]])[0], abs=1e-5)
        for n in r["negatives"]:
            if n["rank"] <= 5:  # rescored
                assert n["teacher"] == pytest.approx(cross.rank(r["query"], [n["text"]])[0], abs=1e-5)
                assert n["teacher"] <= pt + 1e-6  # margin 0: nothing above the positive survives
            else:
                assert n["teacher"] is None
    assert m["teacher"]["kind"] == "cross" and m["teacher"]["depth"] == 5
    # the audit ranks by teacher margin
    audit = read_lines(tmp_path / "t" / "audit.jsonl")
    margins = [a["teacher_margin"] for a in audit if a["teacher_margin"] is not None]
    assert margins == sorted(margins, reverse=True) and margins


# ---------------------------------------------------------------------------- audit


def test_audit_lists_the_most_suspicious_negatives_first(tmp_path):
    data = corpus_folder(tmp_path)
    run_mine(cfg_for(data, tmp_path / "o", filters=[], audit_top=5))
    audit = read_lines(tmp_path / "o" / "audit.jsonl")
    rows = read_lines(tmp_path / "o" / "train.jsonl")
    assert len(audit) == 5
    rel = [a["relative"] for a in audit]
    assert rel == sorted(rel, reverse=True)
    # the first entry is the written negative with the largest (neg - pos) / |pos| overall
    best = max(
        ((n["score"] - r["positives"][0]["score"]) / abs(r["positives"][0]["score"]), r["query_id"], n["id"])
        for r in rows
        for n in r["negatives"]
    )
    assert audit[0]["relative"] == pytest.approx(best[0]) and audit[0]["neg_id"] in {
        n["id"] for r in rows for n in r["negatives"] if r["query_id"] == audit[0]["query_id"]
    }
    a0 = audit[0]
    assert a0["margin"] == pytest.approx(a0["neg_score"] - a0["pos_score"])
    page = (tmp_path / "o" / "audit.html").read_text()
    assert "<svg" in page and a0["neg_id"] in page and "Negatives most likely to be false" in page


# ---------------------------------------------------------------------------- formats


def test_flag_format_and_read_mined(tmp_path):
    data = corpus_folder(tmp_path)
    out = tmp_path / "o"
    m = run_mine(cfg_for(data, out, format="flag"))
    rows = read_lines(out / "train.jsonl")
    flag = read_lines(out / "train.flag.jsonl")
    assert "train.flag.jsonl" in m["outputs"]
    assert len(flag) == len(rows)
    for r, f in zip(rows, flag):
        assert set(f) == {"query", "pos", "neg", "pos_scores", "neg_scores"}
        assert f["query"] == r["query"]
        assert f["neg"] == [n["text"] for n in r["negatives"]]
        assert f["neg_scores"] == [n["score"] for n in r["negatives"]]
        assert f["pos_scores"] == [p["score"] for p in r["positives"]]
    ex = read_mined(out / "train.jsonl")
    assert [e.query_id for e in ex] == [r["query_id"] for r in rows]
    assert ex[0].negatives[0].text == rows[0]["negatives"][0]["text"]
    assert ex[0].negatives[0].score == rows[0]["negatives"][0]["score"]
    assert ex[0].positives[0].rank == rows[0]["positives"][0]["rank"]


def test_teacher_scores_preferred_by_auto(tmp_path):
    row = {
        "query_id": "q",
        "query": "Q",
        "positives": [{"id": "p", "text": "P", "score": 3.0, "teacher": 9.0}],
        "negatives": [
            {"id": "a", "text": "A", "score": 2.0, "rank": 1, "teacher": None},
            {"id": "b", "text": "B", "score": 1.0, "rank": 2, "teacher": 4.0},
        ],
    }
    src = tmp_path / "t.jsonl"
    src.write_text(json.dumps(row) + "\n")
    assert [c.score for c in read_mined(src)[0].negatives] == [2.0, 4.0]
    assert [c.score for c in read_mined(src, scores="teacher")[0].negatives] == [None, 4.0]
    assert [c.score for c in read_mined(src, scores="miner")[0].negatives] == [2.0, 1.0]
    assert convert_file(src, tmp_path / "f.jsonl", "flag") == 1
    assert read_lines(tmp_path / "f.jsonl")[0]["pos_scores"] == [9.0]
    assert convert_file(src, tmp_path / "s.jsonl", "st-triplet") == 2
    assert read_lines(tmp_path / "s.jsonl")[1] == {"query": "Q", "positive": "P", "negative": "B"}
    assert convert_file(src, tmp_path / "n.jsonl", "st-ntuple") == 1
    assert read_lines(tmp_path / "n.jsonl")[0] == {"query": "Q", "positive": "P", "negative_1": "A", "negative_2": "B"}


def test_read_mined_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    good = {"query_id": "q", "query": "Q", "positives": [], "negatives": []}
    p.write_text(json.dumps(good) + "\n\n{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl:3: malformed JSON"):
        read_mined(p)
    p.write_text(json.dumps({"query_id": "q"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1: missing key 'query'"):
        read_mined(p)


# ---------------------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    "override,match",
    [
        ({"miner": {"name": "colbert"}}, "unknown miner 'colbert'; valid: bm25, dense, hybrid"),
        ({"filters": [{"name": "nope"}]}, "unknown filter 'nope'; valid: absolute_margin, duplicates"),
        ({"sampler": {"name": "nope"}}, "unknown sampler 'nope'; valid: mixed, random, range, simans, top"),
        ({"format": "parquet"}, "valid: unirank, flag, st-ntuple, st-triplet"),
        ({"dense_search": "annoy"}, "valid: faiss, scan"),
        ({"teacher": {"kind": "oracle"}}, "unknown model kind 'oracle'"),
        ({"teacher": {"kind": "cross"}}, "a cross teacher needs trained weights"),
        ({"limit_queries": -2}, "limit_queries must be >= 1"),
        ({"depth": 0}, "depth must be >= 1"),
        ({"negatives": 0, "format": "st-triplet"}, "format st-triplet: every row holds a negative"),
        # teacher-reading steps without a teacher: one line before any work, not a ValueError mid-mine
        ({"filters": [{"name": "teacher", "threshold": 0.5}]}, "filter 'teacher': uses teacher scores, but no teacher"),
        (
            {"filters": [{"name": "duplicates"}, {"name": "relative_margin", "p": 0.1, "use": "teacher"}]},
            "^filter 'relative_margin': uses teacher scores",
        ),
        ({"sampler": {"name": "simans", "use": "teacher"}}, "sampler 'simans': uses teacher scores.*--teacher KIND"),
    ],
)
def test_bad_config_names_list_valid_ones_and_write_nothing(tmp_path, tiny_beir, override, match):
    cfg = from_dict(MineConfig, {"data": str(tiny_beir), "split": "test", "out": str(tmp_path / "o"), **override})
    with pytest.raises(ConfigError, match=match):
        run_mine(cfg)
    assert not (tmp_path / "o").exists()


def test_parse_spec():
    assert parse_spec("top:range_min=3") == {"name": "top", "range_min": 3}
    assert parse_spec("mixed:n_random=2,hard=range") == {"name": "mixed", "n_random": 2, "hard": "range"}
    with pytest.raises(ConfigError):
        parse_spec("top:range_min")
    with pytest.raises(ConfigError):
        parse_spec(":p=1")


def test_converters_registry():
    assert CONVERTERS.names() == ["flag", "st-ntuple", "st-triplet"]


# ---------------------------------------------------------------------------- real data


@pytest.mark.slow
@pytest.mark.skipif(not SCIFACT.is_dir(), reason="SciFact not available")
def test_scifact_train_bm25_mining(tmp_path):
    m = run_mine(from_dict(MineConfig, {"data": str(SCIFACT), "split": "train", "out": str(tmp_path / "o")}))
    c = m["counts"]
    assert c["queries_mined"] == 809
    assert c["candidates_seen"] == sum(c["dropped"].values()) + c["candidates_kept"]
    assert c["positives_retrieved"] > 0.6 * c["positives"]


def test_build_mine_config_from_yaml_overrides_and_specs(tmp_path):
    from unirank.negatives.pipeline import build_mine_config

    y = tmp_path / "m.yaml"
    y.write_text("miner:\n  name: hybrid\nnegatives: 5\nfilters:\n  - name: duplicates\n")
    cfg = build_mine_config(y, ["negatives=9"])
    assert (cfg.miner.name, cfg.negatives, cfg.filters) == ("hybrid", 9, [{"name": "duplicates"}])
    assert build_mine_config(y, filters=["none"]).filters == []
    cfg = build_mine_config(
        None, filters=["duplicates:threshold=0.8", "teacher:margin=0.5"], sampler="simans:a=2,b=-0.1"
    )
    assert cfg.filters == [{"name": "duplicates", "threshold": 0.8}, {"name": "teacher", "margin": 0.5}]
    assert cfg.sampler == {"name": "simans", "a": 2, "b": -0.1}
    with pytest.raises(ConfigError, match="unknown sampler 'topk'"):
        build_mine_config(None, sampler="topk")
    with pytest.raises(ConfigError, match="unknown config key 'negative'"):
        build_mine_config(None, ["negative=3"])


def test_prebuilt_miner_refuses_cosine_encoders_that_do_not_normalise(tmp_path):
    """The store holds raw vectors, so inner products would not be the encoder's cosine scores."""
    from unirank.index.shards import encode_corpus_shard
    from unirank.models.backbone import tiny_backbone
    from unirank.models.bi import BiEncoder

    data = corpus_folder(tmp_path, n_docs=10, n_queries=2)
    enc = BiEncoder(tiny_backbone(hidden=16), max_length=16, normalize=False, similarity="cosine")
    store = tmp_path / "store"
    from unirank.data.beir import load_beir

    ds = load_beir(data, split="train")
    encode_corpus_shard(enc, [(d, ds.corpus[d].full_text) for d in ds.corpus], shard=(0, 1), out_dir=store)
    with pytest.raises(ConfigError, match="without normalising"):
        run_mine(cfg_for(data, tmp_path / "o", miner={"name": "prebuilt", "dense": {"store": str(store)}}), encoder=enc)
