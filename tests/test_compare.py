"""`unirank compare`: loading, query alignment, the statistics table, outputs and bad input."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import write_beir
from unirank.cli import app
from unirank.data.trec import write_qrels, write_run
from unirank.errors import ConfigError, DataError
from unirank.eval import metrics as M
from unirank.eval.compare import (
    CompareConfig,
    align,
    cli_args,
    compare_values,
    load_judgements,
    load_system,
    per_query_values,
    run_compare,
    write_comparison,
)
from unirank.eval.significance import holm, paired_t_test, randomization_test

runner = CliRunner()


def _runs(n_queries: int = 30, systems: int = 3, seed: int = 0, docs: int = 15) -> tuple[dict, list[dict]]:
    """Qrels (2 relevant docs per query) and runs without score ties; system s lifts relevant docs by 0.25 s."""
    rng = np.random.default_rng(seed)
    qrels = {f"q{i}": {f"d{i}_0": 1, f"d{i}_1": 2} for i in range(n_queries)}
    runs = []
    for s in range(systems):
        runs.append(
            {
                f"q{i}": {f"d{i}_{j}": float(rng.random() + 0.25 * s * (j < 2)) for j in range(docs)}
                for i in range(n_queries)
            }
        )
    return qrels, runs


def _write(tmp_path: Path, qrels: dict, runs: list[dict], names=("bm25", "dense", "tuned")) -> tuple[Path, list[Path]]:
    write_qrels(qrels, tmp_path / "qrels.txt")
    paths = []
    for name, run in zip(names, runs):
        (tmp_path / name).mkdir()
        write_run(run, tmp_path / name / "run.trec")
        paths.append(tmp_path / name)
    return tmp_path / "qrels.txt", paths


# ---------------------------------------------------------------- loading


def test_load_system_folder_file_and_scores(tmp_path):
    qrels, (run, _, _) = _runs()
    _, (folder, *_) = _write(tmp_path, qrels, [run])
    s = load_system(folder)
    assert s.name == "bm25" and s.run == run  # scores round-trip exactly
    f = load_system(folder / "run.trec", name="x")
    assert f.name == "x" and f.run == s.run
    (tmp_path / "resp").mkdir()
    (tmp_path / "resp" / "scores.jsonl").write_text('{"id": "c1", "scores": [0.1, 0.9], "labels": [1, 0], "rank": 2}\n')
    r = load_system(tmp_path / "resp")
    assert r.examples == {"c1": ([0.1, 0.9], [1, 0])} and r.top("c1", 1) == [("#1", 0.9)]


def test_load_system_errors_name_the_path(tmp_path):
    with pytest.raises(DataError, match="run not found"):
        load_system(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: expected a run folder holding run.trec"):
        load_system(tmp_path / "empty")
    (tmp_path / "bad.jsonl").write_text('{"id": "c1", "scores": [0.1], "labels": [1, 0]}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: 1 scores but 2 labels"):
        load_system(tmp_path / "bad.jsonl")
    (tmp_path / "bad.trec").write_text("q1 Q0 d1 1 high x\n")
    with pytest.raises(DataError, match=r"bad.trec:1: score must be a number"):
        load_system(tmp_path / "bad.trec")


def test_load_judgements_trec_beir_tsv_and_folder(tmp_path):
    write_qrels({"q1": {"d1": 1}}, tmp_path / "q.txt")
    assert load_judgements(tmp_path / "q.txt").qrels == {"q1": {"d1": 1}}
    (tmp_path / "q.tsv").write_text("query-id\tcorpus-id\tscore\r\nq1\td1\t2\r\n")
    assert load_judgements(tmp_path / "q.tsv").qrels == {"q1": {"d1": 2}}
    beir = write_beir(tmp_path / "b", {"d1": ("Cats", "cats purr")}, {"q1": "why purr"}, {"q1": {"d1": 1}})
    j = load_judgements(beir, "test")
    assert j.qrels == {"q1": {"d1": 1}} and j.queries == {"q1": "why purr"} and j.titles == {"d1": "Cats"}
    with pytest.raises(DataError, match="qrels not found"):
        load_judgements(tmp_path / "missing.txt")


# ---------------------------------------------------------------- values and alignment


def test_retrieval_values_are_trec_eval_per_query(tmp_path):
    qrels, runs = _runs(systems=2)
    qpath, paths = _write(tmp_path, qrels, runs)
    systems = [load_system(p) for p in paths]
    measures, values, notes = per_query_values(systems, ["ndcg@10", "map"], load_judgements(qpath))
    assert measures == ["ndcg@10", "map"] and notes == []
    assert values["dense"] == M.per_query(qrels, runs[1], ["ndcg@10", "map"])


def test_response_values_by_hand(tmp_path):
    # c1: correct candidate ranked 2nd; c2: tied with a wrong one -> pessimistic rank 2; c3: first; c4: no correct one
    rows = [
        {"id": "c1", "scores": [0.2, 0.9, 0.1], "labels": [1, 0, 0]},
        {"id": "c2", "scores": [0.5, 0.5, 0.1], "labels": [0, 1, 0]},
        {"id": "c3", "scores": [0.9, 0.5, 0.1], "labels": [1, 0, 0]},
        {"id": "c4", "scores": [0.9, 0.5, 0.1], "labels": [0, 0, 0]},
    ]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = load_system(tmp_path / "a.jsonl")
    measures, values, notes = per_query_values([s, s], None)
    assert measures == ["R3@1", "R3@2", "mrr"]
    assert values["a"]["R3@1"] == {"c1": 0.0, "c2": 0.0, "c3": 1.0}
    assert values["a"]["R3@2"] == {"c1": 1.0, "c2": 1.0, "c3": 1.0}
    assert values["a"]["mrr"] == {"c1": 0.5, "c2": 0.5, "c3": 1.0}
    assert notes == ["a: 1 contexts without a correct candidate are left out"] * 2
    ref = M.response_metrics([r["scores"] for r in rows[:3]], [r["labels"] for r in rows[:3]], ks=(1, 2))
    assert np.mean(list(values["a"]["mrr"].values())) == pytest.approx(ref["mrr"])
    with pytest.raises(ConfigError, match="candidates, not 10"):
        per_query_values([s, s], ["R10@1"])
    with pytest.raises(ConfigError, match="unknown response-selection measure 'ndcg@10'"):
        per_query_values([s, s], ["ndcg@10"])


def test_align_reports_what_it_drops():
    values = {
        "a": {"m": {"q1": 1.0, "q2": 0.5, "q3": 0.0}},
        "b": {"m": {"q1": 0.0, "q3": 1.0}},
        "c": {"m": {"q1": 0.2, "q2": 0.1, "q3": 0.3, "q4": 0.4}},
    }
    al = align(values, ["m"])
    assert al.qids == {"m": ["q1", "q3"]}
    assert al.dropped == {"a": ["q4"], "b": ["q2", "q4"]}
    assert al.notes == [
        "2 of 4 queries dropped (the comparison uses the 2 in every run): a lacks 1 (q4); b lacks 2 (q2, q4)"
    ]
    assert al.values["m"]["b"].tolist() == [0.0, 1.0]
    with pytest.raises(DataError, match="share no queries"):
        align({"a": {"m": {"q1": 1.0}}, "b": {"m": {"q2": 1.0}}}, ["m"])


def test_align_per_measure_undefined_values_are_noted():
    values = {
        "a": {"ndcg": {"q1": 1.0, "q2": 0.5}, "auc": {"q1": 1.0}},
        "b": {"ndcg": {"q1": 0.0, "q2": 0.5}, "auc": {"q1": 0.5, "q2": 0.5}},
    }
    al = align(values, ["ndcg", "auc"])
    assert al.qids == {"ndcg": ["q1", "q2"], "auc": ["q1"]}
    assert al.notes == ["auc: compared on 1 of 2 queries (undefined on the others in some run)"]


# ---------------------------------------------------------------- statistics table


def test_compare_values_pairs_holm_and_marks():
    qrels, runs = _runs(n_queries=40, systems=3, seed=1)
    values = {name: M.per_query(qrels, run, ["ndcg@10", "mrr@10"]) for name, run in zip(["a", "b", "c"], runs)}
    al = align(values, ["ndcg@10", "mrr@10"])
    means, pairs = compare_values(al, ["a", "b", "c"], "a", permutations=2000, bootstrap=2000)
    assert [(r.a, r.b, r.measure) for r in pairs] == [
        ("b", "a", "ndcg@10"),
        ("c", "a", "ndcg@10"),
        ("b", "a", "mrr@10"),
        ("c", "a", "mrr@10"),
    ]
    for r in pairs:
        x, y = al.values[r.measure][r.a], al.values[r.measure][r.b]
        assert r.diff == pytest.approx(means[r.a][r.measure] - means[r.b][r.measure])
        assert r.p_t == pytest.approx(paired_t_test(x, y).p)
        assert r.p_fisher == randomization_test(x, y, 2000, 0)
        assert r.wins + r.ties + r.losses == r.n == 40
        assert r.ci_low <= r.diff <= r.ci_high
    fam = [r for r in pairs if r.measure == "ndcg@10"]
    assert [r.p_t_adj for r in fam] == pytest.approx(holm([r.p_t for r in fam]))
    assert all(r.significant == (r.p_t_adj <= 0.05) for r in pairs)
    _, all_pairs = compare_values(al, ["a", "b", "c"], "a", all_pairs=True, permutations=100, bootstrap=100)
    assert [(r.a, r.b) for r in all_pairs if r.measure == "mrr@10"] == [("b", "a"), ("c", "a"), ("c", "b")]
    with pytest.raises(ConfigError, match="--baseline 'z' is not one of the systems: a, b, c"):
        compare_values(al, ["a", "b", "c"], "z")


def test_fisher_as_the_deciding_test_uses_its_own_adjusted_p():
    qrels, runs = _runs(n_queries=12, systems=2, seed=2)
    values = {n: M.per_query(qrels, r, ["ndcg@10"]) for n, r in zip(["a", "b"], runs)}
    _, (r,) = compare_values(
        align(values, ["ndcg@10"]), ["a", "b"], "a", test="fisher", permutations=4096, bootstrap=100
    )
    assert r.p_fisher == r.p_fisher_adj  # one comparison: Holm leaves it alone; 2**12 patterns, exact
    assert r.significant == (r.p_fisher <= 0.05)


# ---------------------------------------------------------------- the command


def test_compare_end_to_end_writes_the_folder(tmp_path):
    qrels, runs = _runs(n_queries=25, systems=3, seed=4)
    docs = {f"d{i}_{j}": (f"title {i}-{j}", "text") for i in range(25) for j in range(15)}
    beir = write_beir(tmp_path / "data", docs, {q: f"question {q}" for q in qrels}, qrels)
    _, paths = _write(tmp_path, qrels, runs)
    out = tmp_path / "cmp"
    r = runner.invoke(
        app,
        [
            "compare",
            *map(str, paths),
            "--qrels",
            str(beir),
            "--out",
            str(out),
            "--permutations",
            "500",
            "--bootstrap",
            "500",
            "--top-queries",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["comparison.json", "comparison.md", "per_query.tsv", "report.html"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cmp")]  # no temporary folder left
    data = json.loads((out / "comparison.json").read_text())
    assert data["systems"] == ["bm25", "dense", "tuned"] and data["baseline"] == "bm25"
    assert set(data["sha256_16"]) == {"bm25", "dense", "tuned", "qrels"} and "torch" in data["versions"]
    assert data["means"]["tuned"]["ndcg@10"] == pytest.approx(M.evaluate(qrels, runs[2], ["ndcg@10"])["ndcg@10"])
    assert len(data["pairs"]) == 2 * 3 and data["dropped"] == {}
    changed = data["changed_queries"][0]
    assert (changed["a"], changed["b"], len(changed["queries"])) == ("dense", "bm25", 3)
    q = changed["queries"][0]
    assert (
        q["text"] == f"question {q['qid']}"
        and len(q["top"]["bm25"]) == 5
        and q["top"]["dense"][0]["title"].startswith("title")
    )
    assert abs(q["diff"]) >= abs(changed["queries"][-1]["diff"])
    html = (out / "report.html").read_text()
    assert html.count("<img") == 2 and "Queries that changed most" in html and f"question {q['qid']}" in html
    tsv = (out / "per_query.tsv").read_text().splitlines()
    assert tsv[0] == "measure\tquery\tbm25\tdense\ttuned" and len(tsv) == 1 + 3 * 25
    md = (out / "comparison.md").read_text()
    assert "| (a) bm25 (baseline) |" in md and "Holm-Bonferroni over the 2 comparison(s)" in md
    # the terminal table marks the tuned system (relevant docs lifted by 0.5) as better than the baseline (a); against
    # the baseline only, tuned vs dense is not tested, so no b
    tuned_line = next(line for line in r.output.splitlines() if "(c) tuned" in line)
    assert "ᵃ" in tuned_line and "ᵇ" not in tuned_line


def test_different_query_sets_are_compared_on_the_intersection_and_said(tmp_path):
    qrels, runs = _runs(n_queries=10, systems=2)
    del runs[1]["q3"], runs[1]["q7"]
    qpath, paths = _write(tmp_path, qrels, runs)
    notes = []
    cmp = run_compare(
        CompareConfig(runs=[str(p) for p in paths], qrels=str(qpath), bootstrap=50), quiet=True, warn=notes.append
    )
    assert notes == ["2 of 10 queries dropped (the comparison uses the 8 in every run): dense lacks 2 (q3, q7)"]
    assert all(r.n == 8 for r in cmp.pairs)
    r = runner.invoke(app, ["compare", *map(str, paths), "--qrels", str(qpath), "--bootstrap", "50"])
    assert r.exit_code == 0 and "note: 2 of 10 queries dropped" in r.output
    # --missing zero keeps every judged query, scoring the absent ones 0 (trec_eval -c), and says so
    notes = []
    cmp = run_compare(
        CompareConfig(runs=[str(p) for p in paths], qrels=str(qpath), missing="zero", bootstrap=50),
        quiet=True,
        warn=notes.append,
    )
    assert all(r.n == 10 for r in cmp.pairs)
    assert notes == ["dense: 2 of 10 judged queries are not in the run and score 0 (--missing zero)"]


@pytest.mark.parametrize(
    "case, expect",
    [
        ("single", "compare needs at least 2 runs, got 1"),
        ("duplicate", "duplicate system name 'bm25'"),
        ("duplicate_names", "duplicate system name 'x'"),
        ("no_qrels_queries", "none of the 30 judged queries"),
        ("no_qrels", "--qrels is required"),
        ("mixed", "cannot compare retrieval runs with response-selection runs"),
        ("measure", "unknown metric 'bleu'"),
        ("test", "--test 'z'; valid: fisher, t"),
        ("baseline", "--baseline 'nope' is not one of the systems"),
        ("names", "--names: 1 names for 2 runs"),
        ("twice", "--measures lists a measure twice"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, case, expect):
    qrels, runs = _runs(systems=2)
    qpath, paths = _write(tmp_path, qrels, runs)
    base = ["compare", str(paths[0]), str(paths[1]), "--qrels", str(qpath)]
    if case == "no_qrels_queries":
        (tmp_path / "other").mkdir()
        write_run({"x1": {"d": 1.0}}, tmp_path / "other" / "run.trec")
        base[2] = str(tmp_path / "other")
    (tmp_path / "resp").mkdir()
    (tmp_path / "resp" / "scores.jsonl").write_text('{"id": "c1", "scores": [0.1, 0.9], "labels": [1, 0]}\n')
    args = {
        "single": ["compare", str(paths[0]), "--qrels", str(qpath)],
        "duplicate": ["compare", str(paths[0]), str(paths[0]), "--qrels", str(qpath)],
        "duplicate_names": base + ["--names", "x,x"],
        "no_qrels": base[:3],
        "mixed": ["compare", str(paths[0]), str(tmp_path / "resp"), "--qrels", str(qpath)],
        "measure": base + ["--measures", "ndcg@10,bleu"],
        "test": base + ["--test", "z"],
        "baseline": base + ["--baseline", "nope"],
        "names": base + ["--names", "x"],
        "twice": base + ["--measures", "ndcg@10,NDCG@10"],
    }.get(case, base)
    out = tmp_path / "out"
    r = runner.invoke(app, [*args, "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert expect in r.output and "Traceback" not in r.output
    assert len([line for line in r.output.splitlines() if line.startswith("error:")]) == 1
    assert not out.exists()


def test_response_runs_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    labels = [[1, 0, 0, 0]] * 60
    for name, lift in (("bi", 0.0), ("uni", 0.6)):
        (tmp_path / name).mkdir()
        with open(tmp_path / name / "scores.jsonl", "w") as f:
            for i, y in enumerate(labels):
                s = (rng.random(4) + lift * np.array(y)).tolist()
                f.write(json.dumps({"id": f"c{i}", "scores": s, "labels": y, "rank": None}) + "\n")
    out = tmp_path / "out"
    r = runner.invoke(
        app, ["compare", str(tmp_path / "bi"), str(tmp_path / "uni"), "--out", str(out), "--bootstrap", "200"]
    )
    assert r.exit_code == 0, r.output
    data = json.loads((out / "comparison.json").read_text())
    assert data["task"] == "response" and data["measures"] == ["R4@1", "R4@2", "mrr"]
    rows = [json.loads(x) for x in (tmp_path / "uni" / "scores.jsonl").read_text().splitlines()]
    ref = M.response_metrics([x["scores"] for x in rows], [x["labels"] for x in rows], ks=(1, 2))
    assert data["means"]["uni"] == pytest.approx(ref)
    assert data["changed_queries"][0]["queries"][0]["relevant"] == [{"id": "#0", "title": ""}]
    r = runner.invoke(app, ["compare", str(tmp_path / "bi"), str(tmp_path / "uni"), "--qrels", str(tmp_path / "x")])
    assert r.exit_code == 2 and "carry their labels" in r.output
    # labels that disagree: the runs were made on different data
    rows[0]["labels"] = [0, 1, 0, 0]
    (tmp_path / "uni" / "scores.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    r = runner.invoke(app, ["compare", str(tmp_path / "bi"), str(tmp_path / "uni")])
    assert r.exit_code == 2 and "not made on the same data" in r.output


def test_output_folder_is_replaced_whole_or_not_at_all(tmp_path):
    qrels, runs = _runs(systems=2)
    qpath, paths = _write(tmp_path, qrels, runs)
    out = tmp_path / "out"
    cmp = run_compare(
        CompareConfig(runs=[str(p) for p in paths], qrels=str(qpath), bootstrap=20, permutations=20, out=str(out)),
        quiet=True,
        warn=lambda m: None,
    )
    written = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(written) == ["comparison.json", "comparison.md", "per_query.tsv", "report.html"]
    with pytest.raises(TypeError):  # a failure half-way: markdown that is not text
        write_comparison(out, cmp, [], None, {}, markdown=None, html="<html/>")  # type: ignore[arg-type]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    assert {p.name: p.read_bytes() for p in out.iterdir()} == written  # the earlier comparison, as it was
    write_comparison(out, cmp, [], None, {}, markdown="m", html="<html/>")
    assert (out / "comparison.md").read_text() == "m"


def test_a_folder_compare_did_not_write_is_refused_before_any_work(tmp_path):
    qrels, runs = _runs(systems=2)
    qpath, paths = _write(tmp_path, qrels, runs)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "old.txt").write_text("old")
    cfg = CompareConfig(runs=[str(p) for p in paths], qrels=str(qpath), bootstrap=20, permutations=20, out=str(mine))
    with pytest.raises(
        ConfigError,
        match=r"^out: .*mine is a non-empty folder that unirank did not write \(it has no comparison.json\)",
    ):
        run_compare(cfg, quiet=True, warn=lambda m: None)
    assert sorted(p.name for p in mine.iterdir()) == ["old.txt"]
    r = CliRunner().invoke(app, ["compare", *map(str, paths), "--qrels", str(qpath), "--out", str(mine)])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "did not write" in r.output, r.output


def test_eval_run_folders_compare_directly(tiny_beir, tmp_path):
    """The folders `unirank eval` writes are what compare reads (run.trec + the BEIR qrels)."""
    for name, k in (("k1", "1"), ("k3", "3")):
        r = runner.invoke(
            app,
            [
                "eval",
                "--data",
                str(tiny_beir),
                "--retriever",
                "bm25",
                "--k",
                k,
                "--out",
                str(tmp_path / name),
                "--set",
                "retriever.bm25.stemmer=null",
            ],
        )
        assert r.exit_code == 0, r.output
    # q4 retrieved nothing: run.trec cannot hold it, so (as trec_eval without -c) it is left out - and said so
    notes = []
    cmp = run_compare(
        CompareConfig(
            runs=[str(tmp_path / "k1"), str(tmp_path / "k3")],
            qrels=str(tiny_beir),
            bootstrap=50,
            measures=["ndcg@10", "recall@3"],
        ),
        quiet=True,
        warn=notes.append,
    )
    assert notes == ["1 of 4 judged queries are in no run and are left out (q4); --missing zero scores them 0"]
    assert all(r.n == 3 for r in cmp.pairs)
    # --missing zero gives the numbers unirank eval reported (an empty result scores 0)
    cmp = run_compare(
        CompareConfig(
            runs=[str(tmp_path / "k1"), str(tmp_path / "k3")],
            qrels=str(tiny_beir),
            bootstrap=50,
            measures=["ndcg@10", "recall@3"],
            missing="zero",
        ),
        quiet=True,
        warn=lambda m: None,
    )
    for name in ("k1", "k3"):
        per_q = json.loads((tmp_path / name / "per_query.json").read_text())
        assert cmp.means[name]["ndcg@10"] == pytest.approx(np.mean(list(per_q["ndcg@10"].values())))
    r = cmp.pair("k3", "k1", "recall@3")
    assert r.losses == 0 and r.n == 4  # a deeper run never loses recall


# ---------------------------------------------------------------- agreement with ranx


@pytest.mark.slow  # ranx compiles its kernels with numba on first use (tens of seconds)
def test_p_values_agree_with_ranx_compare(tmp_path):
    ranx = pytest.importorskip("ranx")
    qrels, runs = _runs(n_queries=120, systems=3, seed=9, docs=30)
    names = ["bm25", "dense", "tuned"]
    # small lifts so that some p-values are far from 0
    runs[1] = {q: {d: s - 0.2 * ("_0" in d or "_1" in d) for d, s in docs.items()} for q, docs in runs[1].items()}
    runs[2] = {q: {d: s - 0.42 * ("_0" in d or "_1" in d) for d, s in docs.items()} for q, docs in runs[2].items()}
    qpath, paths = _write(tmp_path, qrels, runs, names)
    measures = ["ndcg@10", "mrr@10", "recall@10"]
    n_perm = 20_000
    ours = run_compare(
        CompareConfig(
            runs=[str(p) for p in paths],
            qrels=str(qpath),
            measures=measures,
            all_pairs=True,
            permutations=n_perm,
            bootstrap=100,
        ),
        quiet=True,
        warn=lambda m: None,
    )
    rq = ranx.Qrels(qrels)
    rruns = [ranx.Run(r, name=n) for r, n in zip(runs, names)]
    for run, name in zip(rruns, names):  # the same per-query values first (ranx names these measures as we do)
        for m in measures:
            ranx.evaluate(rq, run, m, return_mean=False)  # run.scores[m]: query id -> value
            theirs = [run.scores[m][q] for q in ours.aligned.qids[m]]
            assert np.allclose(theirs, ours.aligned.values[m][name], atol=1e-6), (name, m)
    student = ranx.compare(rq, rruns, measures, stat_test="student", rounding_digits=12)
    fisher = ranx.compare(rq, rruns, measures, stat_test="fisher", n_permutations=n_perm, rounding_digits=12)
    checked = 0
    for r in ours.pairs:
        key = frozenset([r.a, r.b])
        p_t = float(student.comparisons[key][r.measure]["p_value"])
        p_f = float(fisher.comparisons[key][r.measure]["p_value"])
        assert r.p_t == pytest.approx(p_t, abs=1e-6, rel=1e-6)
        se = math.sqrt(max(p_f * (1 - p_f), 1e-4) / n_perm)  # two independent Monte-Carlo estimates
        assert abs(r.p_fisher - p_f) <= 4 * math.sqrt(2) * se + 2 / n_perm, (r, p_f)
        checked += 1
    assert checked == 9
    assert any(0.001 < r.p_t < 0.9 for r in ours.pairs)  # not only trivially tiny p-values


def test_cli_args_reproduce_the_config(tmp_path):
    qrels, runs = _runs(systems=2)
    qpath, paths = _write(tmp_path, qrels, runs)
    cfg = CompareConfig(
        runs=[str(p) for p in paths],
        qrels=str(qpath),
        names=["x", "y"],
        measures=["ndcg@5", "map"],
        all_pairs=True,
        test="fisher",
        alpha=0.01,
        permutations=300,
        bootstrap=200,
        seed=3,
        top_queries=2,
        out=str(tmp_path / "o"),
    )
    args = cli_args(cfg)
    assert args[:2] == ["unirank", "compare"]
    r = runner.invoke(app, args[1:])
    assert r.exit_code == 0, r.output
    settings = json.loads((tmp_path / "o" / "comparison.json").read_text())["settings"]
    assert {
        k: settings[k]
        for k in ("names", "measures", "all_pairs", "test", "alpha", "permutations", "bootstrap", "seed", "top_queries")
    } == {
        "names": ["x", "y"],
        "measures": ["ndcg@5", "map"],
        "all_pairs": True,
        "test": "fisher",
        "alpha": 0.01,
        "permutations": 300,
        "bootstrap": 200,
        "seed": 3,
        "top_queries": 2,
    }
    assert settings["command"] == args
