"""The CUR index on disk (unirank.index.cur_store) and the ``cur`` retriever (eval, CLI, serve)
with a tiny random cross-encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from unirank.cli import app
from unirank.config import from_dict
from unirank.errors import ConfigError
from unirank.eval.config import EvalConfig
from unirank.eval.evaluate import run_eval
from unirank.eval.response import score_lists
from unirank.index.config import CURConfig
from unirank.index.cur import (
    MatrixSpace,
    adacur_search,
    anncur_search,
    choose_anchors,
    cur_item_embeddings,
    matrix_oracle,
    result_hits,
)
from unirank.index.cur_retriever import CURRetriever, check_cur_config
from unirank.index.cur_store import CURIndex, build_cur_index, ranker_fingerprint, read_anchor_queries
from unirank.models.cross import CrossEncoder
from unirank.types import Document

from .conftest import lively_backbone, write_beir

runner = CliRunner()

WORDS = "cat dog fish bird tree rock river cloud sun moon star leaf road car boat train".split()


def make_docs(n: int = 24) -> dict[str, Document]:
    rng = np.random.default_rng(0)
    return {
        f"d{i:02d}": Document(f"d{i:02d}", " ".join(rng.choice(WORDS, size=6)), title=WORDS[i % len(WORDS)])
        for i in range(n)
    }


ANCHORS = [(f"a{i}", f"{WORDS[i]} and {WORDS[i + 3]}") for i in range(6)]
TEST_QUERIES = ["cat on a boat", "moon and star", "river rock", "a train in the cloud"]


@pytest.fixture(scope="module")
def ce() -> CrossEncoder:
    return CrossEncoder(lively_backbone(seed=3), max_candidate_length=32).eval()


@pytest.fixture(scope="module")
def ce_folder(ce, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ce") / "model"
    ce.save(folder)
    return folder


@pytest.fixture(scope="module")
def built(ce, ce_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cur") / "ix"
    build_cur_index(ce, make_docs(), ANCHORS, out, source=str(ce_folder), chunk_size=5)
    return out


def exhaustive(ce, queries, docs):
    texts = [d.full_text for d in docs.values()]
    return np.asarray(score_lists(ce, queries, [texts] * len(queries), batch_size=2, chunk_size=7), dtype=np.float64)


# ---------------------------------------------------------------- the store


def test_index_holds_the_cross_encoder_scores(ce, built):
    ix = CURIndex(built)
    docs = make_docs()
    assert ix.doc_ids == list(docs) and ix.anchors == ANCHORS
    R = ix.R_T[np.arange(ix.n_items)].T
    np.testing.assert_allclose(R, exhaustive(ce, [t for _, t in ANCHORS], docs), atol=1e-5)
    assert ix.cost()["pairs"] == 24 * 6
    assert ix.meta["ranker"]["fingerprint"] == ranker_fingerprint(ce)


def test_resume_after_a_kill_gives_identical_files_and_counts_each_pair_once(ce, built, tmp_path):
    out = tmp_path / "ix"

    def die(c, n):
        if c == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_cur_index(ce, make_docs(), ANCHORS, out, source="x", chunk_size=5, on_chunk=die)
    with pytest.raises(ConfigError, match="not finished"):
        CURIndex(out)
    stats = build_cur_index(ce, make_docs(), ANCHORS, out, source="x", chunk_size=5)
    assert stats["pairs_scored"] == (24 - 15) * 6  # chunks 0-2 (15 documents) were kept
    assert CURIndex(out).cost()["pairs"] == 24 * 6
    for a, b in zip(sorted((built / "R").rglob("*.npy")), sorted((out / "R").rglob("*.npy"))):
        assert a.read_bytes() == b.read_bytes()


def test_sharded_build_and_float16(ce, tmp_path):
    out = tmp_path / "ix"
    for i in range(2):
        build_cur_index(ce, make_docs(), ANCHORS, out, chunk_size=4, shard=(i, 2), dtype="float16")
    ix = CURIndex(out)
    assert ix.n_items == 24 and np.load(next((out / "R").rglob("*.npy"))).dtype == np.float16
    np.testing.assert_allclose(ix.R_T[np.arange(24)].T, exhaustive(ce, [t for _, t in ANCHORS], make_docs()), atol=2e-2)


def test_an_index_folder_refuses_another_cross_encoder_anchor_set_or_corpus(ce, built, tmp_path):
    other = CrossEncoder(lively_backbone(seed=4), max_candidate_length=32).eval()
    with pytest.raises(ConfigError, match="another cross-encoder"):
        build_cur_index(other, make_docs(), ANCHORS, built)
    with pytest.raises(ConfigError, match="other anchor queries"):
        build_cur_index(ce, make_docs(), ANCHORS[:3], built)
    with pytest.raises(ConfigError, match="another corpus"):
        build_cur_index(ce, make_docs(20), ANCHORS, built)


def test_read_anchor_queries_from_split_and_files(tiny_beir, tmp_path):
    assert read_anchor_queries("test", str(tiny_beir), limit=2) == [
        ("q1", "why do cats purr"),
        ("q2", "dog barking at postman"),
    ]
    (tmp_path / "q.jsonl").write_text('{"_id": "x", "text": "hello"}\n')
    assert read_anchor_queries(str(tmp_path / "q.jsonl")) == [("x", "hello")]
    (tmp_path / "bad.tsv").write_text("1\thi\n2 no tab\n")
    with pytest.raises(Exception, match="bad.tsv:2: expected 'id<TAB>text'"):
        read_anchor_queries(str(tmp_path / "bad.tsv"))


# ---------------------------------------------------------------- the retriever


def retriever(built, ce, **kw):
    r = CURRetriever(built, CURConfig(**kw), ranker=ce)
    docs = make_docs()
    r.build(list(docs), [d.full_text for d in docs.values()])
    return r


@pytest.mark.parametrize("method", ["anncur", "adacur"])
def test_full_budget_equals_exhaustive_cross_encoder_ranking(ce, built, method):
    r = retriever(built, ce, method=method, budget=24, anchors=6, rounds=3)
    s, i = r.search(TEST_QUERIES, 24)
    S = exhaustive(ce, TEST_QUERIES, make_docs())
    np.testing.assert_array_equal(i, np.argsort(-S, axis=1, kind="stable"))
    np.testing.assert_allclose(s, -np.sort(-S, axis=1), atol=1e-5)
    assert r.stats["ce_calls_per_query"] == 24


@pytest.mark.parametrize("method", ["anncur", "adacur"])
def test_live_search_equals_the_search_simulated_on_the_exhaustive_matrix(ce, built, method):
    """The retriever (cross-encoder called live) and the matrix oracle make the same choices."""
    r = retriever(built, ce, method=method, budget=10, anchors=4, rounds=3, seed=2)
    s, i = r.search(TEST_QUERIES, 15)
    assert r.stats["ce_calls_total"] == 40
    S = exhaustive(ce, TEST_QUERIES, make_docs())
    R = CURIndex(built).R_T[np.arange(24)].T
    if method == "anncur":
        A = choose_anchors(24, 4, seed=2)
        res = anncur_search(matrix_oracle(S), A, MatrixSpace(cur_item_embeddings(R, A)).search, 4, 10, 24, tail=15)
    else:
        res = adacur_search(matrix_oracle(S), MatrixSpace(R), [choose_anchors(24, 4, seed=2)] * 4, [4, 3, 3], tail=15)
    s2, i2 = result_hits(res, 15)
    np.testing.assert_array_equal(i, i2)
    np.testing.assert_allclose(s[:, :10], s2[:, :10], atol=1e-5)


def test_anncur_item_embeddings_are_cached_in_the_index(ce, built):
    retriever(built, ce, method="anncur", budget=8, anchors=4).search(TEST_QUERIES[:1], 5)
    cached = list((built / "anncur").iterdir())
    assert len(cached) >= 1 and (cached[0] / "faiss.index").is_file()
    a = retriever(built, ce, method="anncur", budget=8, anchors=4).search(TEST_QUERIES, 5)
    b = retriever(built, ce, method="anncur", budget=8, anchors=4).search(TEST_QUERIES, 5)
    np.testing.assert_array_equal(a[1], b[1])


def test_first_stage_seeds_the_first_round(ce, built):
    from unirank.index.sparse import BM25Index

    bm25 = BM25Index(stemmer=None)
    r = CURRetriever(built, CURConfig(method="adacur", budget=6, rounds=2), ranker=ce, first_stage=bm25)
    docs = make_docs()
    r.build(list(docs), [d.full_text for d in docs.values()])
    r.search(["moon and star"], 6)
    _, top = bm25.search(["moon and star"], 3)
    first_round = set(r._ctx.first[0][:3].tolist())
    assert first_round == {r.doc_ids.index(bm25.doc_ids[j]) for j in top[0] if j >= 0} and r.stats["rounds"] == [3, 3]


def test_retriever_errors_are_one_line(ce, built):
    other = CrossEncoder(lively_backbone(seed=4), max_candidate_length=32).eval()
    with pytest.raises(ConfigError, match="built with another cross-encoder"):
        CURRetriever(built, CURConfig(), ranker=other)
    r = CURRetriever(built, CURConfig(), ranker=ce)
    docs = make_docs(23)
    with pytest.raises(ConfigError, match="built on another corpus .*1 index documents not in the corpus"):
        r.build(list(docs), [d.full_text for d in docs.values()])
    docs = make_docs()
    with pytest.raises(ConfigError, match="same ids, other texts"):
        r.build(list(docs), [d.full_text + "!" for d in docs.values()])
    with pytest.raises(ConfigError, match="budget=5 is smaller than retriever.cur.anchors=6"):
        CURConfig(method="anncur", budget=5, anchors=6).validate()
    with pytest.raises(ConfigError, match="budget=2 is smaller than retriever.cur.rounds=3"):
        CURConfig(method="adacur", budget=2, rounds=3).validate()
    with pytest.raises(ConfigError, match="unknown CUR method 'cure'; valid: adacur, anncur"):
        check_cur_config(CURConfig(method="cure"))
    with pytest.raises(ConfigError, match="not a CUR index"):
        CURIndex(built.parent)


# ---------------------------------------------------------------- CLI: index, eval, serve


@pytest.fixture(scope="module")
def beir_and_index(ce_folder, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("beir")
    docs = {d: (doc.title, doc.text) for d, doc in make_docs().items()}
    data = write_beir(
        root / "data",
        docs,
        {f"q{i}": t for i, t in enumerate(TEST_QUERIES)},
        {"q0": {"d01": 1}, "q1": {"d05": 1}, "q2": {"d07": 2}, "q3": {"d11": 1}},
    )
    anchors = root / "anchors.tsv"
    anchors.write_text("".join(f"{q}\t{t}\n" for q, t in ANCHORS))
    ix = root / "ix"
    r = runner.invoke(
        app,
        [
            "index",
            "--kind",
            "cur",
            "--data",
            str(data),
            "--reranker-model",
            str(ce_folder),
            "--anchor-queries",
            str(anchors),
            "--out",
            str(ix),
            "--chunk-size",
            "10",
            "--dtype",
            "float16",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "6 anchor queries x 24 documents" in r.output and "whole index: 144 cross-encoder calls" in r.output
    return data, ix


def test_cli_eval_with_the_cur_retriever(beir_and_index, tmp_path):
    data, ix = beir_and_index
    out = tmp_path / "out"
    r = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(data),
            "--retriever",
            "cur",
            "--k",
            "10",
            "--out",
            str(out),
            "--set",
            f"retriever.cur.index={ix}",
            "--set",
            "retriever.cur.budget=8",
            "--set",
            "retriever.cur.method=anncur",
            "--set",
            "retriever.cur.anchors=4",
        ],
    )
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["retriever_stats"]["ce_calls_per_query"] == 8 and cfg["retriever_stats"]["method"] == "anncur"
    lines = (out / "run.trec").read_text().splitlines()
    assert len(lines) == 4 * 10


def one_error_line(output: str) -> bool:
    """One ``error:`` line and no traceback (model loading may print progress bars before it)."""
    return sum(line.startswith("error:") for line in output.splitlines()) == 1 and "Traceback" not in output


def test_cli_errors_exit_2_with_one_line(beir_and_index, ce_folder, tmp_path):
    data, ix = beir_and_index
    r = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(data),
            "--retriever",
            "cur",
            "--set",
            f"retriever.cur.index={ix}",
            "--set",
            "retriever.cur.budget=3",
            "--set",
            "retriever.cur.method=anncur",
            "--set",
            "retriever.cur.anchors=4",
        ],
    )
    assert r.exit_code == 2 and "budget=3 is smaller than retriever.cur.anchors=4" in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = runner.invoke(app, ["eval", "--data", str(data), "--retriever", "cur"])
    assert r.exit_code == 2 and "needs retriever.cur.index" in r.output
    other = tmp_path / "other"
    write_beir(other, {"x": ("t", "some text")}, {"q": "x"}, {"q": {"x": 1}})
    r = runner.invoke(app, ["eval", "--data", str(other), "--retriever", "cur", "--set", f"retriever.cur.index={ix}"])
    assert r.exit_code == 2 and "built on another corpus" in r.output and one_error_line(r.output)
    r = runner.invoke(app, ["index", "--kind", "cur", "--data", str(data), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--kind cur needs --reranker-model, --anchor-queries" in r.output
    other_ce = tmp_path / "other_ce"
    CrossEncoder(lively_backbone(seed=4), max_candidate_length=32).save(other_ce)
    r = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(data),
            "--retriever",
            "cur",
            "--set",
            f"retriever.cur.index={ix}",
            "--set",
            f"retriever.cur.model={other_ce}",
        ],
    )
    assert r.exit_code == 2 and "built with another cross-encoder" in r.output and one_error_line(r.output)
    r = runner.invoke(
        app,
        [
            "index",
            "--kind",
            "cur",
            "--data",
            str(data),
            "--reranker-model",
            str(other_ce),
            "--anchor-queries",
            "test",
            "--out",
            str(ix),
        ],
    )
    assert r.exit_code == 2 and "another cross-encoder" in r.output and one_error_line(r.output)
    r = runner.invoke(app, ["index", "--kind", "hnsw", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--store is required for --kind hnsw" in r.output


def test_cur_retriever_behind_serve_search(beir_and_index):
    from unirank.serve.backend import SearchItem, load_backend

    data, ix = beir_and_index
    be = load_backend(
        model=None, index=str(data), retriever="cur", retriever_set=[f"cur.index={ix}", "cur.budget=6", "cur.rounds=2"]
    )
    hits = be.search_batch([SearchItem("moon and star", 5), SearchItem("cat on a boat", 3)])
    assert [len(h) for h in hits] == [5, 3]
    assert be.retriever.stats["ce_calls_total"] == 12
    with pytest.raises(ConfigError, match="retriever.cur.budgett|cur.budgett"):
        load_backend(model=None, index=str(data), retriever="cur", retriever_set=[f"cur.index={ix}", "cur.budgett=6"])


def test_run_eval_reports_the_cross_encoder_calls(beir_and_index):
    data, ix = beir_and_index
    cfg = from_dict(
        EvalConfig,
        {"data": str(data), "k": 5},
        ["retriever.name=cur", f"retriever.cur.index={ix}", "retriever.cur.budget=10"],
    )
    res = run_eval(cfg, quiet=True)
    assert res.info["retriever_stats"]["ce_calls_per_query"] == 10 and set(res.run) == {"q0", "q1", "q2", "q3"}


# ---------------------------------------------------------------- --task budget


def test_budget_task_compares_every_method_and_matches_the_live_retriever(beir_and_index, tmp_path):
    data, ix = beir_and_index
    out = tmp_path / "budget"
    r = runner.invoke(
        app,
        [
            "eval",
            "--task",
            "budget",
            "--data",
            str(data),
            "--k",
            "24",
            "--out",
            str(out),
            "--set",
            f"retriever.cur.index={ix}",
            "--set",
            "retriever.cur.budgets=[8,24]",
            "--set",
            "retriever.cur.baselines=[bm25]",
            "--set",
            "retriever.cur.rounds=2",
            "--set",
            "retriever.bm25.stemmer=null",
        ],
    )
    assert r.exit_code == 0, r.output
    rows = json.loads((out / "budget.json").read_text())["rows"]
    by = {(x["method"], x["budget"]): x for x in rows}
    assert set(by) == {
        ("exhaustive cross-encoder", None),
        ("bm25", 0),
        ("bm25 + CE rerank", 8),
        ("bm25 + CE rerank", 24),
        ("anncur", 8),
        ("adacur", 8),
        ("anncur", 24),
        ("adacur", 24),
    }
    assert by[("exhaustive cross-encoder", None)]["top10_recall"] == 1.0
    for m in ("anncur", "adacur"):
        assert by[(m, 8)]["ce_calls"] == 8 and by[(m, 24)]["ce_calls"] == 24
        assert by[(m, 24)]["top1_recall"] == by[(m, 24)]["top10_recall"] == 1.0  # every document scored
        assert by[(m, 24)]["ndcg@10"] == pytest.approx(by[("exhaustive cross-encoder", None)]["ndcg@10"])
    assert by[("bm25 + CE rerank", 8)]["ce_calls"] <= 8
    assert "data:image/png;base64," in (out / "report.html").read_text()
    assert "| 8 | adacur | 8.0 |" in (out / "budget.md").read_text()
    # the exhaustive scores are reused, not recomputed
    r = runner.invoke(
        app,
        [
            "eval",
            "--task",
            "budget",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "again"),
            "--set",
            f"retriever.cur.index={ix}",
            "--set",
            "retriever.cur.budgets=[8]",
            "--set",
            "retriever.cur.baselines=[]",
            "--set",
            f"retriever.cur.exhaustive={out / 'exhaustive'}",
            "--set",
            "retriever.cur.rounds=2",
        ],
    )
    assert r.exit_code == 0, r.output
    # the live retriever makes the same run as the simulation read from the exhaustive matrix
    live = tmp_path / "live"
    r = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(data),
            "--retriever",
            "cur",
            "--k",
            "24",
            "--out",
            str(live),
            "--set",
            f"retriever.cur.index={ix}",
            "--set",
            "retriever.cur.budget=8",
            "--set",
            "retriever.cur.rounds=2",
        ],
    )
    assert r.exit_code == 0, r.output
    from unirank.data.trec import read_run

    sim, got = read_run(out / "runs" / "adacur_at_8.trec"), read_run(live / "run.trec")
    for q in sim:
        assert list(sim[q]) == list(got[q])
        np.testing.assert_allclose(list(sim[q].values())[:8], list(got[q].values())[:8], atol=1e-3)


def test_budget_task_errors(beir_and_index, tmp_path):
    data, ix = beir_and_index
    r = runner.invoke(app, ["eval", "--task", "budget", "--data", str(data), "--set", f"retriever.cur.index={ix}"])
    assert r.exit_code == 2 and "needs retriever.cur.exhaustive" in r.output

    def budget(setting: str):
        args = ["eval", "--task", "budget", "--data", str(data), "--out", str(tmp_path / "o")]
        return runner.invoke(app, [*args, "--set", f"retriever.cur.index={ix}", "--set", setting])

    r = budget("retriever.cur.baselines=[cur]")
    assert r.exit_code == 2 and "'cur' is not a first-stage retriever" in r.output
    r = budget("retriever.cur.budgets=[3,10]")
    assert r.exit_code == 2 and "budget=3 is smaller than retriever.cur.rounds=5" in r.output


def test_budget_is_a_registered_evaluation_task_checked_before_any_work(tmp_path):
    from unirank.config import load_config
    from unirank.tasks import get_task, run_eval_task
    from unirank.train import TrainConfig

    task = get_task("budget")
    assert type(task).__name__ == "BudgetTask" and task.name == "budget"
    with pytest.raises(ConfigError, match="data.task: budget is an evaluation task"):
        load_config(TrainConfig, None, ["data.task=budget"]).validate()
    # bad settings stop before the (missing) data or index is read
    cfg = from_dict(
        EvalConfig,
        {"data": str(tmp_path / "no-such-data"), "task": "budget", "out": str(tmp_path / "o")},
        [f"retriever.cur.index={tmp_path / 'no-such-index'}", "retriever.cur.methods=[anncur,cure]"],
    )
    with pytest.raises(ConfigError, match="retriever.cur.methods: unknown CUR method 'cure'"):
        run_eval_task(cfg)
    cfg.retriever.cur.methods = ["adacur"]
    cfg.retriever.cur.device = "tpu"
    with pytest.raises(ConfigError, match="retriever.cur.device"):
        run_eval_task(cfg)
