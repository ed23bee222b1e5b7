"""Output folders are the unit (issue 18, part 2): a failed run into an existing folder
leaves the previous run's folder exactly as it was; a successful one leaves only its own
files; a folder unirank did not write is refused before any work."""

from __future__ import annotations

import errno
import json

import pytest

from unirank.config import from_dict
from unirank.errors import ConfigError
from unirank.eval.config import EvalConfig
from unirank.eval.evaluate import run_eval
from unirank.index.shards import ShardedIndex, encode_corpus_shard
from unirank.negatives.pipeline import run_mine

from .conftest import OverlapRanker
from .test_mine import cfg_for, corpus_folder
from .test_shards import HashEncoder, _docs, _files


def _disk_full(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


def _eval_cfg(data, out, **kw):
    return from_dict(
        EvalConfig, {"data": str(data), "k": 3, "out": str(out), "retriever": {"bm25": {"stemmer": None}}, **kw}
    )


def test_a_failed_eval_leaves_the_previous_folder_as_it_was(tiny_beir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run_eval(_eval_cfg(tiny_beir, out), quiet=True)
    before = _files(out)
    monkeypatch.setattr("unirank.eval.evaluate.html_report", _disk_full)  # report.html is written last
    with pytest.raises(OSError, match="No space"):
        run_eval(_eval_cfg(tiny_beir, out, k=2), quiet=True)
    assert _files(out) == before  # not the new run.trec beside the old report.html
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "tiny"]


def test_a_rerank_eval_writes_both_runs_or_neither_and_a_rerun_drops_old_files(tiny_beir, tmp_path, monkeypatch):
    from unirank.eval.rerank import rerank_eval

    out = tmp_path / "out"
    rerank_eval(_eval_cfg(tiny_beir, out), OverlapRanker(), depth=3, quiet=True, progress=False)
    assert (out / "first_stage" / "metrics.json").is_file()
    before = _files(out)
    calls = []
    real = __import__("unirank.eval.evaluate", fromlist=["x"]).write_eval_outputs

    def second_fails(folder, *a, **k):
        calls.append(folder)
        if len(calls) == 2:
            _disk_full()
        return real(folder, *a, **k)

    monkeypatch.setattr("unirank.eval.evaluate.write_eval_outputs", second_fails)
    with pytest.raises(OSError):
        rerank_eval(_eval_cfg(tiny_beir, out), OverlapRanker(), depth=2, quiet=True, progress=False)
    assert _files(out) == before
    monkeypatch.undo()
    run_eval(_eval_cfg(tiny_beir, out), quiet=True)  # a first-stage run into the reranked run's folder
    assert not (out / "first_stage").exists()


def test_a_failed_response_eval_leaves_the_previous_folder(tmp_path, monkeypatch):
    from unirank.data.dialogue import write_response_jsonl
    from unirank.eval import response

    from .test_response_eval import EXAMPLES, _cfg

    data = tmp_path / "d.jsonl"
    write_response_jsonl(data, EXAMPLES)
    out = tmp_path / "out"
    response.run_response_eval(_cfg(str(data), out=str(out)), ranker=OverlapRanker(), quiet=True, progress=False)
    before = _files(out)
    monkeypatch.setattr(response.uio, "write_json", _disk_full)
    with pytest.raises(OSError):
        response.run_response_eval(
            _cfg(str(data), out=str(out), limit_queries=2), ranker=OverlapRanker(), quiet=True, progress=False
        )
    assert _files(out) == before


def test_a_failed_mine_leaves_the_previous_folder(tmp_path, monkeypatch):
    data = corpus_folder(tmp_path)
    out = tmp_path / "mined"
    run_mine(cfg_for(data, out))
    before = _files(out)
    monkeypatch.setattr("unirank.negatives.pipeline.write_audit", _disk_full)
    with pytest.raises(OSError):
        run_mine(cfg_for(data, out, negatives=2))
    assert _files(out) == before


def test_an_index_is_built_for_every_shard_or_not_at_all(tmp_path, monkeypatch):
    from unirank.index import shards

    store = tmp_path / "store"
    for i in range(2):
        encode_corpus_shard(HashEncoder(), _docs(40), shard=(i, 2), out_dir=store, chunk_size=8)
    ShardedIndex.build(store, tmp_path / "ix", kind="flat")
    before = _files(tmp_path / "ix")
    real = shards.FaissIndex.save
    saved = []

    def second_fails(self, folder):
        saved.append(folder)
        if len(saved) == 2:
            _disk_full()
        return real(self, folder)

    monkeypatch.setattr(shards.FaissIndex, "save", second_fails)
    with pytest.raises(OSError):
        ShardedIndex.build(store, tmp_path / "ix", kind="hnsw")
    assert _files(tmp_path / "ix") == before and sorted(p.name for p in tmp_path.iterdir()) == ["ix", "store"]


def test_a_failed_re_encoding_keeps_the_old_shard_and_resume_cleans_leftovers(tmp_path):
    store = tmp_path / "store"
    encode_corpus_shard(HashEncoder(), _docs(40), shard=(0, 1), out_dir=store, chunk_size=8)
    before = _files(store)
    with pytest.raises(KeyboardInterrupt):
        encode_corpus_shard(
            HashEncoder(crash_after=2), _docs(40), shard=(0, 1), out_dir=store, chunk_size=8, resume=False
        )
    assert _files(store) == before and sorted(p.name for p in store.iterdir()) == ["shard-00000-of-00001", "store.json"]
    shard = store / "shard-00000-of-00001"
    (shard / ".chunk-000009.npy.999999999-abcdefgh.tmp").write_bytes(b"half a chunk")  # a killed writer's
    encode_corpus_shard(HashEncoder(), _docs(40), shard=(0, 1), out_dir=store, chunk_size=8)
    assert _files(store) == before


def test_outputs_that_are_not_unirank_folders_are_refused_before_any_work(tiny_beir, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(
        ConfigError,
        match=r"^out: .* non-empty folder that unirank did not write \(it has no config.json / metrics.json\)",
    ):
        _eval_cfg(tiny_beir, mine).validate()
    with pytest.raises(ConfigError, match=r"non-empty folder but no embedding store"):
        encode_corpus_shard(HashEncoder(), _docs(4), out_dir=mine)
    with pytest.raises(ConfigError, match=r"chunk_size: expected an integer >= 1, got 0"):
        encode_corpus_shard(HashEncoder(), _docs(4), out_dir=tmp_path / "s", chunk_size=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"^out: cannot create .*file/sub: .*file is a file"):
        _eval_cfg(tiny_beir, tmp_path / "file" / "sub").validate()
    assert (mine / "notes.txt").read_text() == "mine" and not (tmp_path / "s").exists()


def test_a_saved_model_replaces_only_an_earlier_saved_model(tmp_path):
    from unirank.models.backbone import tiny_backbone
    from unirank.models.cross import CrossEncoder

    m = CrossEncoder(tiny_backbone(hidden=16))
    m.save(tmp_path / "m")
    m.save(tmp_path / "m")  # an earlier save is replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a unirank model folder"):
        m.save(tmp_path / "other")
    assert json.loads((tmp_path / "m" / "unirank_model.json").read_text())["kind"] == "cross"
