"""TREC run/qrels I/O: round trips, trec_eval's tie order, errors with file:line."""

from __future__ import annotations

import pytest

from unirank.data.trec import rank_order, read_qrels, read_run, write_qrels, write_run
from unirank.errors import DataError


def test_write_run_exact_text_and_tie_order(tmp_path):
    p = tmp_path / "run.txt"
    # d10 and d9 and d2 tie at 0.5: trec_eval orders ties by docno descending (strcmp)
    write_run({"q2": {"x": 1.0}, "q1": {"d2": 0.5, "d10": 0.5, "d1": 2.0, "d9": 0.5}}, p, tag="t")
    assert p.read_text() == (
        "q1 Q0 d1 1 2.0 t\nq1 Q0 d9 2 0.5 t\nq1 Q0 d2 3 0.5 t\nq1 Q0 d10 4 0.5 t\nq2 Q0 x 1 1.0 t\n"
    )


def test_write_run_order_matches_pytrec_eval():
    """The ranks we write must be the order trec_eval sees: check via a rank-sensitive metric."""
    pytrec_eval = pytest.importorskip("pytrec_eval")
    run = {"q": {"a": 1.0, "b": 1.0, "c": 1.0, "d": 0.5}}
    for rel in "abc":
        qrels = {"q": {rel: 1}}
        got = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)["q"]["recip_rank"]
        rank = [d for d, _ in rank_order(run["q"])].index(rel) + 1
        assert got == pytest.approx(1.0 / rank)


def test_run_round_trip_is_exact_and_k_truncates(tmp_path):
    run = {"q1": {"a": 0.1 + 0.2, "b": -3.5e-9, "c": 1e300}, "q:2": {"doc/1": 0.0}}
    p = tmp_path / "sub" / "run.trec"
    write_run(run, p)
    assert read_run(p) == run
    write_run(run, p, k=2)
    assert read_run(p) == {"q1": {"c": 1e300, "a": 0.1 + 0.2}, "q:2": {"doc/1": 0.0}}
    assert p.read_text().splitlines()[0].endswith(" unirank")


def test_write_run_accepts_numpy_scores(tmp_path):
    np = pytest.importorskip("numpy")
    p = tmp_path / "r"
    write_run({"q": {"a": np.float32(0.25), "b": np.float64(0.75)}}, p)
    assert p.read_text() == "q Q0 b 1 0.75 unirank\nq Q0 a 2 0.25 unirank\n"


def test_write_run_refuses_unwritable_ids_and_leaves_no_file(tmp_path):
    p = tmp_path / "run"
    with pytest.raises(DataError, match="contains whitespace"):
        write_run({"q1": {"a b": 1.0}}, p)
    assert not p.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="NaN"):
        write_run({"q1": {"a": float("nan")}}, p)
    with pytest.raises(DataError, match="run tag"):
        write_run({"q1": {"a": 1.0}}, p, tag="my tag")
    with pytest.raises(ValueError):
        write_run({"q1": {"a": 1.0}}, p, k=0)


def test_read_run_tolerates_crlf_and_blank_lines(tmp_path):
    p = tmp_path / "run"
    p.write_bytes(b"q1 Q0 d1 1 3 tag\r\n\r\nq1\tQ0\td2\t2\t1.5\ttag\r\n")
    assert read_run(p) == {"q1": {"d1": 3.0, "d2": 1.5}}


@pytest.mark.parametrize(
    "text, line_no, words",
    [
        ("q1 Q0 d1 1 1.0 t\nq1 Q0 d2 2 1.0\n", 2, ["expected 6 columns", "got 5"]),
        ("q1 Q0 d1 1 1.0 t\n\nq1 Q0 d2 2 high t\n", 3, ["score must be a number", "'high'"]),
        ("q1 Q0 d1 1 1.0 t\nq1 Q0 d1 2 0.5 t\n", 2, ["listed twice"]),
    ],
)
def test_read_run_errors(tmp_path, text, line_no, words):
    p = tmp_path / "bad.run"
    p.write_text(text)
    with pytest.raises(DataError) as e:
        read_run(p)
    assert f"bad.run:{line_no}:" in str(e.value) and e.value.line == line_no
    for w in words:
        assert w in str(e.value)


def test_qrels_round_trip_and_format(tmp_path):
    qrels = {"q2": {"b": 1}, "q1": {"z": 0, "a": 3}}
    p = tmp_path / "qrels"
    write_qrels(qrels, p)
    assert p.read_text() == "q1 0 a 3\nq1 0 z 0\nq2 0 b 1\n"
    assert read_qrels(p) == qrels


@pytest.mark.parametrize(
    "text, line_no, words",
    [
        ("q1 0 d1 1\nq1 0 d2\n", 2, ["expected 4 columns", "got 3"]),
        ("q1 0 d1 1\nq1 0 d2 1.5\n", 2, ["grade must be an integer"]),
        ("q1 0 d1 1\r\n\r\nq1 0 d1 2\r\n", 3, ["judged twice"]),
    ],
)
def test_read_qrels_errors(tmp_path, text, line_no, words):
    p = tmp_path / "bad.qrels"
    p.write_bytes(text.encode())
    with pytest.raises(DataError) as e:
        read_qrels(p)
    assert f"bad.qrels:{line_no}:" in str(e.value)
    for w in words:
        assert w in str(e.value)


def test_read_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.run: file not found"):
        read_run(tmp_path / "nope.run")
