"""BEIR reader: happy paths on tiny files, every error names file + line + problem, SciFact counts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from unirank.data.beir import available_splits, load_beir, load_corpus, load_qrels, load_queries
from unirank.data.datasets import DATASETS, load_dataset
from unirank.errors import DataError
from unirank.io import file_sha256
from unirank.types import Document, Query

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"  # ../shared beside the repository

CORPUS = [
    {"_id": "d1", "title": "Cats", "text": "Cats purr."},
    {"_id": "d2", "text": "Dogs bark."},  # no title
    {"_id": "d3", "title": None, "text": "Fish swim."},  # null title
]
QUERIES = [{"_id": "q1", "text": "what purrs"}, {"_id": "q2", "text": "who barks", "metadata": {}}]


def write_jsonl(path: Path, rows: list, eol: str = "\n") -> Path:
    path.write_bytes("".join(json.dumps(r) + eol for r in rows).encode())
    return path


def make_beir(
    root: Path, qrels: bytes = b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\n", split: str = "test"
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_jsonl(root / "corpus.jsonl", CORPUS)
    write_jsonl(root / "queries.jsonl", QUERIES)
    (root / "qrels").mkdir(exist_ok=True)
    (root / "qrels" / f"{split}.tsv").write_bytes(qrels)
    return root


def assert_error(exc: pytest.ExceptionInfo, file_name: str, line: int | None, *words: str) -> None:
    msg = str(exc.value)
    assert file_name in msg, msg
    if line is not None:
        assert exc.value.line == line
        assert f"{file_name}:{line}:" in msg, msg
    for w in words:
        assert w in msg, msg


# ---------------------------------------------------------------- happy paths


def test_load_beir_reads_all_three_files(tmp_path):
    ds = load_beir(make_beir(tmp_path / "tiny"))
    assert ds.name == "tiny" and ds.split == "test"
    assert ds.corpus == {
        "d1": Document("d1", "Cats purr.", "Cats"),
        "d2": Document("d2", "Dogs bark.", ""),
        "d3": Document("d3", "Fish swim.", ""),
    }
    assert ds.queries == {"q1": Query("q1", "what purrs"), "q2": Query("q2", "who barks")}
    assert ds.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    assert list(ds.split_queries()) == ["q1", "q2"]


@pytest.mark.parametrize(
    "qrels",
    [
        b"query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\nq2\td2\t2\r\n",  # CRLF with header
        b"q1\td1\t1\r\nq2\td2\t2\r\n",  # CRLF without header
        b"\nq1\td1\t1\n\n\nq2\td2\t2",  # blank lines, no final newline
        b"\xef\xbb\xbfquery-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\n",  # BOM
        b"q1 d1 1\nq2  d2  2\n",  # space separated (no tabs)
    ],
)
def test_qrels_variants_parse_identically(tmp_path, qrels):
    assert load_beir(make_beir(tmp_path, qrels)).qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}


def test_crlf_jsonl_and_integer_ids(tmp_path):
    write_jsonl(tmp_path / "corpus.jsonl", [{"_id": 5, "text": "five"}], eol="\r\n")
    assert load_corpus(tmp_path / "corpus.jsonl") == {"5": Document("5", "five")}


def test_repeated_identical_pair_is_tolerated_and_zero_grade_kept(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("q1\td1\t1\nq1\td1\t1\nq1\td2\t0\n")
    assert load_qrels(p) == {"q1": {"d1": 1, "d2": 0}}


def test_fingerprint_is_sha256_of_the_three_files_and_tracks_content(tmp_path):
    root = make_beir(tmp_path)
    files = ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"]
    expected = hashlib.sha256("\n".join(f"{f}:{file_sha256(root / f)}" for f in files).encode()).hexdigest()[:16]
    fp = load_beir(root).fingerprint
    assert fp == expected and len(fp) == 16
    (root / "qrels" / "test.tsv").write_bytes(b"q1\td1\t1\n")
    assert load_beir(root).fingerprint != fp


def test_available_splits_and_other_split(tmp_path):
    root = make_beir(tmp_path)
    (root / "qrels" / "dev.tsv").write_text("q2\td3\t1\n")
    assert available_splits(root) == ["dev", "test"]
    assert load_beir(root, "dev").qrels == {"q2": {"d3": 1}}


def test_load_dataset_accepts_folder_and_rejects_unknown_names(tmp_path):
    root = make_beir(tmp_path / "tiny")
    assert load_dataset(str(root)).qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    assert load_dataset(root, name="x").name == "x"
    assert "stdlib-codesearch" in DATASETS
    with pytest.raises(DataError) as e:
        load_dataset("nope")
    assert_error(e, "nope", None, "unknown data set", "stdlib-codesearch")
    with pytest.raises(DataError) as e:
        load_dataset(str(tmp_path / "missing"))
    assert "stdlib-codesearch" in str(e.value)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "lines, line_no, words",
    [
        (['{"_id": "d1", "text": "a"}', '{"_id": "d2", "text": '], 2, ["malformed JSON"]),
        (['{"_id": "d1", "text": "a"}', "", '{"text": "b"}'], 3, ["missing field '_id'"]),
        (['{"_id": "d1"}'], 1, ["missing field 'text'", "d1"]),
        (['{"_id": "d1", "text": 3}'], 1, ["'text' must be a string", "int"]),
        (['{"_id": "d1", "text": "a", "title": ["x"]}'], 1, ["'title' must be a string", "list"]),
        (['{"_id": null, "text": "a"}'], 1, ["'_id' must be a non-empty string"]),
        (['["d1", "a"]'], 1, ["expected a JSON object", "list"]),
        (
            ['{"_id": "d1", "text": "a"}', '{"_id": "d2", "text": "b"}', '{"_id": "d1", "text": "c"}'],
            3,
            ["duplicate id 'd1'", "line 1"],
        ),
    ],
)
def test_corpus_errors_name_file_line_and_problem(tmp_path, lines, line_no, words):
    p = tmp_path / "corpus.jsonl"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        load_corpus(p)
    assert_error(e, "corpus.jsonl", line_no, *words)


def test_queries_errors_name_file_line_and_problem(tmp_path):
    p = tmp_path / "queries.jsonl"
    p.write_text('{"_id": "q1", "text": "a"}\n{"_id": "q1", "text": "b"}\n')
    with pytest.raises(DataError) as e:
        load_queries(p)
    assert_error(e, "queries.jsonl", 2, "duplicate id 'q1'")


def test_invalid_utf8_names_the_line(tmp_path):
    p = tmp_path / "queries.jsonl"
    p.write_bytes(b'{"_id": "q1", "text": "a"}\n{"_id": "q2", "text": "\xff"}\n')
    with pytest.raises(DataError) as e:
        load_queries(p)
    assert_error(e, "queries.jsonl", 2, "UTF-8")


@pytest.mark.parametrize(
    "qrels, line_no, words",
    [
        (b"query-id\tcorpus-id\tscore\r\nq1\td1\r\n", 2, ["expected 3 tab-separated columns", "got 2"]),
        (b"q1\td1\t1\nq2\td2\t1\textra\n", 2, ["expected 3", "got 4"]),
        (b"q1\td1\t1\nq2\td2\t0.5\n", 2, ["score must be an integer", "'0.5'"]),
        (b"q1\td1\t1\n\nq2\tdX\t1\n", 3, ["unknown corpus id 'dX'"]),
        (b"query-id\tcorpus-id\tscore\nqX\td1\t1\n", 2, ["unknown query id 'qX'"]),
        (b"q1\td1\t1\nq1\td1\t2\n", 2, ["judged twice", "1 and 2"]),
    ],
)
def test_qrels_errors_name_file_line_and_problem(tmp_path, qrels, line_no, words):
    root = make_beir(tmp_path, qrels)
    with pytest.raises(DataError) as e:
        load_beir(root)
    assert_error(e, "test.tsv", line_no, *words)
    assert e.value.path == str(root / "qrels" / "test.tsv")


@pytest.mark.parametrize("qrels", [b"", b"query-id\tcorpus-id\tscore\r\n\r\n"])
def test_empty_split(tmp_path, qrels):
    with pytest.raises(DataError) as e:
        load_beir(make_beir(tmp_path, qrels))
    assert_error(e, "test.tsv", None, "empty split")


def test_missing_split_lists_available_ones(tmp_path):
    root = make_beir(tmp_path, split="train")
    (root / "qrels" / "dev.tsv").write_text("q1\td1\t1\n")
    with pytest.raises(DataError) as e:
        load_beir(root, "test")
    assert_error(e, "test.tsv", None, "no qrels for split 'test'", "available splits: dev, train")


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(DataError) as e:
        load_beir(tmp_path / "absent")
    assert_error(e, "absent", None, "BEIR folder not found")
    root = make_beir(tmp_path / "ds")
    (root / "queries.jsonl").unlink()
    with pytest.raises(DataError) as e:
        load_beir(root)
    assert_error(e, "ds", None, "missing queries.jsonl")
    (root / "queries.jsonl").mkdir()  # a folder where the file goes is said so, not "missing"
    with pytest.raises(DataError) as e:
        load_beir(root)
    assert_error(e, "ds", None, "queries.jsonl in BEIR folder is a folder; expected a file")
    with pytest.raises(DataError) as e:
        load_corpus(tmp_path / "nothing.jsonl")
    assert_error(e, "nothing.jsonl", None, "file not found")


# ---------------------------------------------------------------- real data


@pytest.mark.slow
@pytest.mark.skipif(not SCIFACT.is_dir(), reason="SciFact not present")
def test_scifact_counts():
    import time

    t = time.perf_counter()
    ds = load_beir(SCIFACT, "test")
    elapsed = time.perf_counter() - t
    assert (len(ds.corpus), len(ds.qrels), sum(map(len, ds.qrels.values()))) == (5183, 300, 339)
    assert len(ds.queries) == 1109  # all queries; split_queries() gives the judged 300
    assert len(ds.split_queries()) == 300
    assert ds.name == "scifact" and len(ds.fingerprint) == 16
    assert elapsed < 2.0, elapsed
    assert available_splits(SCIFACT) == ["test", "train"]
