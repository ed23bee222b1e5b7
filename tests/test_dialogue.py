"""Response-selection readers, the R_n task builder, DailyDialog and task folders."""

import json
from pathlib import Path

import pytest

from unirank.data.dialogue import (
    build_dailydialog_task,
    build_response_task,
    detect_format,
    load_response_data,
    normalize_utterance,
    read_dailydialog,
    read_mutual,
    read_mutual_file,
    read_response_jsonl,
    read_response_task,
    read_response_tsv,
    split_speaker_turns,
    write_response_jsonl,
    write_response_task,
)
from unirank.errors import ConfigError, DataError
from unirank.types import DialogueExample

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared data not present")


# --------------------------------------------------------------------------- MuTual


def write_mutual(folder: Path, name: str, obj) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def test_split_speaker_turns_keeps_or_strips_tags():
    art = "m : hi , anna . f : hello . it 's 5 p.m : late . m : bye ."
    assert split_speaker_turns(art) == ["m : hi , anna .", "f : hello . it 's 5 p.m : late .", "m : bye ."]
    assert split_speaker_turns(art, speaker_tags=False) == ["hi , anna .", "hello . it 's 5 p.m : late .", "bye ."]
    # text before the first marker (4 MuTual train files start "m ; f : ...") is its own turn
    assert split_speaker_turns("m ; f : amelia , what ?") == ["m ;", "f : amelia , what ?"]


def test_mutual_file_fields_and_answer_letter(tmp_path):
    p = write_mutual(
        tmp_path,
        "dev_3.txt",
        {
            "answers": "C",
            "options": ["f : a", "f : b", "f : c", "f : d"],
            "article": "m : one . f : two .",
            "id": "dev_3",
        },
    )
    ex = read_mutual_file(p)
    assert ex == DialogueExample(
        "dev_3", ["m : one .", "f : two ."], ["f : a", "f : b", "f : c", "f : d"], [0, 0, 1, 0]
    )
    ex = read_mutual_file(p, speaker_tags=False)
    assert ex.context == ["one .", "two ."] and ex.candidates == ["a", "b", "c", "d"]


def test_mutual_folder_is_read_in_numeric_order(tmp_path):
    for i in (10, 2, 1):
        write_mutual(
            tmp_path, f"dev_{i}.txt", {"answers": "A", "options": ["x", "y"], "article": "m : a", "id": f"dev_{i}"}
        )
    (tmp_path / "SHA256SUMS").write_text("not a dialogue\n")
    assert [e.id for e in read_mutual(tmp_path)] == ["dev_1", "dev_2", "dev_10"]
    assert [e.id for e in read_mutual(tmp_path, limit=2)] == ["dev_1", "dev_2"]


def test_mutual_errors_name_the_file_and_line(tmp_path):
    p = write_mutual(tmp_path, "test_1.txt", {"answers": "", "options": ["a", "b"], "article": "m : x", "id": "test_1"})
    with pytest.raises(DataError, match=r"test_1\.txt:1: 'answers' is blank"):
        read_mutual_file(p)
    p = write_mutual(tmp_path, "bad.txt", '{"answers": "A",\n "options": [}')
    with pytest.raises(DataError, match=r"bad\.txt:2: malformed JSON"):
        read_mutual_file(p)
    p = write_mutual(tmp_path, "e.txt", {"answers": "E", "options": ["a", "b", "c", "d"], "article": "m : x"})
    with pytest.raises(DataError, match=r"e\.txt:1: 'answers' must be one letter A..D"):
        read_mutual_file(p)
    with pytest.raises(DataError, match="missing_dir: MuTual folder not found"):
        read_mutual(tmp_path / "missing_dir")
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(DataError, match="a_file: expected a MuTual folder of \\*.txt files, found a file"):
        read_mutual(tmp_path / "a_file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no MuTual"):
        read_mutual(tmp_path / "empty")


@needs_data
def test_mutual_real_files():
    ex = read_mutual_file(DATA / "mutual" / "train" / "train_1.txt")
    assert ex.id == "train_1" and ex.labels == [0, 1, 0, 0]  # answers "B"
    assert len(ex.context) == 5 and ex.context[0] == "m : excuse me . how much is this suit ?"
    assert [t[:4] for t in ex.context] == ["m : ", "f : ", "m : ", "f : ", "m : "]
    assert ex.candidates[1].startswith("f : although the suit you sew")
    dev = read_mutual_file(DATA / "mutual" / "dev" / "dev_1.txt", speaker_tags=False)
    assert dev.labels == [0, 1, 0, 0] and len(dev.context) == 6
    assert dev.candidates[0] == "so you come to manchester just for watching a concert , do n't you ?"
    odd = read_mutual_file(DATA / "mutual" / "train" / "train_234.txt")
    assert odd.context[0] == "m ;" and odd.context[1].startswith("f : amelia")


@needs_data
@pytest.mark.slow
def test_mutual_full_dev_split():
    dev = read_mutual(DATA / "mutual" / "dev")
    assert len(dev) == 886 and dev[0].id == "dev_1" and dev[-1].id == "dev_886"
    # MANIFEST answer distribution of dev: A 212, B 200, C 210, D 264
    assert [sum(e.labels[k] for e in dev) for k in range(4)] == [212, 200, 210, 264]


# --------------------------------------------------------------------------- TSV


def test_tsv_blocks_split_where_the_context_changes(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text(
        "1\ta\tb\tyes\n0\ta\tb\tno\n\n0\tc\tx\r\n1\tc\ty\n1\ta\tb\tagain"
    )  # CRLF, blank line, no final newline
    got = read_response_tsv(p)
    assert [(e.id, e.context, e.candidates, e.labels) for e in got] == [
        ("1", ["a", "b"], ["yes", "no"], [1, 0]),
        ("4", ["c"], ["x", "y"], [0, 1]),
        ("6", ["a", "b"], ["again"], [1]),
    ]


def test_tsv_fixed_group_size_keeps_identical_consecutive_contexts_apart(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("1\tc\tr1\n0\tc\tr2\n1\tc\tr3\n0\tc\tr4\n")
    assert len(read_response_tsv(p)) == 1  # by context change: one block of 4
    got = read_response_tsv(p, group_size=2)
    assert [(e.id, e.candidates) for e in got] == [("1", ["r1", "r2"]), ("3", ["r3", "r4"])]


def test_tsv_errors_name_file_and_line(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("1\ta\tyes\nx\ta\tno\n")
    with pytest.raises(DataError, match=r"t\.txt:2: label must be 0 or 1"):
        read_response_tsv(p)
    p.write_text("1\ta\tyes\n0\tno\n")
    with pytest.raises(DataError, match=r"t\.txt:2: expected 'label<TAB>turn"):
        read_response_tsv(p)
    p.write_text("1\ta\tyes\n0\tb\tno\n")
    with pytest.raises(DataError, match=r"t\.txt:2: context differs from the block that starts on line 1"):
        read_response_tsv(p, group_size=2)
    p.write_text("1\ta\tyes\n0\ta\tno\n1\tb\tyes\n")
    with pytest.raises(DataError, match=r"t\.txt:3: file ends in the middle of a block \(1 of 2"):
        read_response_tsv(p, group_size=2)


@needs_data
def test_tsv_real_ecd_sample_is_100_contexts_of_10_with_positive_first():
    path = DATA / "ecd_sample" / "test.txt"
    got = read_response_tsv(path)
    assert len(got) == 100
    assert all(len(e.candidates) == 10 and e.labels == [1] + [0] * 9 for e in got)
    assert [e.id for e in got[:3]] == ["1", "11", "21"] and got[-1].id == "991"
    last = path.read_text(encoding="utf-8").split("\n")[-1].split("\t")  # the line with no newline
    assert got[-1].candidates[-1] == last[-1] and got[-1].context == last[1:-1]
    assert [e.candidates for e in read_response_tsv(path, group_size=10)] == [e.candidates for e in got]


# --------------------------------------------------------------------------- JSONL


def test_jsonl_round_trip_and_defaults(tmp_path):
    exs = [DialogueExample("a", ["hi", "hey"], ["yo", "no"], [1, 0]), DialogueExample("b", [], ["x"], [0])]
    p = tmp_path / "r.jsonl"
    write_response_jsonl(p, exs)
    assert read_response_jsonl(p) == exs
    p.write_text(
        '{"context": "one turn", "candidates": ["a", "b"], "labels": [false, true]}\n\n'
        '{"id": 7, "context": ["t"], "candidates": ["c"], "labels": [1]}\n'
    )
    got = read_response_jsonl(p)
    assert got == [DialogueExample("1", ["one turn"], ["a", "b"], [0, 1]), DialogueExample("7", ["t"], ["c"], [1])]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"context": ["a"], "candidates": ["x", "y"], "labels": [1]}', r"r\.jsonl:2: 2 candidates but 1 labels"),
        ('{"context": ["a"], "labels": [1]}', r"r\.jsonl:2: missing field 'candidates'"),
        ('{"context": ["a"], "candidates": ["x"], "labels": [2]}', r"r\.jsonl:2: field 'labels' must be a list of 0/1"),
        (
            '{"context": [1], "candidates": ["x"], "labels": [1]}',
            r"r\.jsonl:2: field 'context' must be a list of strings",
        ),
        (
            '{"id": "a", "context": [], "candidates": ["x"], "labels": [1]}',
            r"r\.jsonl:2: duplicate id 'a' \(first on line 1\)",
        ),
        ('{"context": ', r"r\.jsonl:2: malformed JSON"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path, line, message):
    p = tmp_path / "r.jsonl"
    p.write_text('{"id": "a", "context": [], "candidates": ["x"], "labels": [1]}\n' + line + "\n")
    with pytest.raises(DataError, match=message):
        read_response_jsonl(p)


# --------------------------------------------------------------------------- the builder


def toy_corpus():
    return [
        ["Hello .", "Hi there .", "How are you ?", "Fine , thanks ."],
        ["Thank you .", "You are welcome .", "Thank you ."],
        ["Where is the bank ?", "Next to the post office .", "Thanks !"],
        ["Can I help you ?", "Yes , a coffee please .", "Thank you .", "Bye ."],
        ["What time is it ?", "Five o'clock .", "thank  YOU ."],
    ]


def test_builder_examples_have_the_true_next_turn_at_the_labelled_position():
    dialogues = toy_corpus()
    task = build_response_task(dialogues, n_candidates=4, seed=3)
    expected = [(d, t) for d in range(5) for t in range(1, len(dialogues[d]))]
    assert [e.id for e in task.examples] == [f"{d}:{t}" for d, t in expected]
    for ex, (d, t) in zip(task.examples, expected):
        assert ex.context == dialogues[d][:t]
        assert ex.labels.count(1) == 1 and len(ex.candidates) == 4
        assert ex.candidates[ex.labels.index(1)] == dialogues[d][t]
    positions = {e.labels.index(1) for e in task.examples}
    assert len(positions) > 1  # candidate order really is shuffled
    assert task.manifest["counts"]["examples"] == len(expected) == 12


def test_builder_never_uses_a_distractor_equal_to_the_positive_or_twice():
    # "Thank you ." (and "thank  YOU .") make up 4 of the 16 utterances: many draws collide
    task = build_response_task(toy_corpus(), n_candidates=6, seed=0)
    for ex in task.examples:
        pos = normalize_utterance(ex.candidates[ex.labels.index(1)])
        wrong = [normalize_utterance(c) for c, y in zip(ex.candidates, ex.labels) if not y]
        assert pos not in wrong
        assert len(set(wrong)) == len(wrong)
    counts = task.manifest["counts"]
    assert counts["redraws_identical_to_positive"] > 0 and counts["redraws_duplicate_distractor"] > 0


def test_builder_is_seeded():
    a = build_response_task(toy_corpus(), n_candidates=4, seed=7).examples
    b = build_response_task(toy_corpus(), n_candidates=4, seed=7).examples
    c = build_response_task(toy_corpus(), n_candidates=4, seed=8).examples
    assert a == b
    assert [e.candidates for e in a] != [e.candidates for e in c]


def test_builder_random_one_cut_min_context_and_exclusion():
    dialogues = toy_corpus()
    task = build_response_task(dialogues, n_candidates=3, seed=0, cuts="random_one", min_context_turns=2)
    assert len(task.examples) == 5  # one per dialogue, all have >= 3 turns
    assert all(len(e.context) >= 2 for e in task.examples)
    excluded = build_response_task(
        dialogues, n_candidates=3, seed=0, exclude_dialogues=[dialogues[2], ["not", "there"]]
    )
    assert excluded.manifest["counts"]["excluded"] == 1
    assert not [e for e in excluded.examples if e.id.startswith("2:")]
    gone = {"Where is the bank ?", "Next to the post office .", "Thanks !"}
    assert not gone & {c for e in excluded.examples for c in e.candidates}  # not even as distractors


def test_builder_rejects_impossible_settings():
    with pytest.raises(ValueError, match="distinct utterances"):
        build_response_task([["a", "b"], ["A", "b"]], n_candidates=3)
    with pytest.raises(ConfigError):
        build_response_task(toy_corpus(), cuts="some")
    with pytest.raises(ConfigError):
        build_response_task(toy_corpus(), n_candidates=1)


# --------------------------------------------------------------------------- DailyDialog


def write_dd(root: Path, split: str, lines: list[str]) -> None:
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / split / f"dialogues_{split}.txt").write_text("".join(line + "\n" for line in lines))


def test_dailydialog_drops_train_overlap_and_duplicates_and_counts_them(tmp_path):
    train = [f"T{i} a . __eou__ T{i} b . __eou__ T{i} c . __eou__" for i in range(6)]
    write_dd(tmp_path, "train", train + [train[0]])  # one duplicate line in train
    test = [
        train[1],  # also in train -> dropped
        "X a . __eou__ X b ? __eou__",
        "Y a . __eou__ Y b . __eou__ Y c . __eou__",
        "X a . __eou__ X b ? __eou__",  # duplicate inside test -> dropped
    ]
    write_dd(tmp_path, "test", test)
    task = build_dailydialog_task("test", n=3, seed=0, root=tmp_path)
    c = task.manifest["counts"]
    assert (c["lines"], c["duplicate_dialogues_dropped"], c["train_overlap_dropped"]) == (4, 1, 1)
    assert [e.id for e in task.examples] == ["test:2:1", "test:3:1", "test:3:2"]
    assert task.manifest["params"]["seed"] == 0 and task.manifest["name"] == "dailydialog-test-r3"
    kept = build_dailydialog_task("test", n=3, root=tmp_path, drop_train_overlap=False)
    assert kept.manifest["counts"]["train_overlap_dropped"] == 0 and len(kept.examples) == 5
    tr = build_dailydialog_task("train", n=3, root=tmp_path)
    assert tr.manifest["counts"]["duplicate_dialogues_dropped"] == 1 and len(tr.examples) == 12


def test_read_dailydialog_reports_empty_utterance_with_line(tmp_path):
    p = tmp_path / "d.txt"
    p.write_text("a __eou__ b __eou__\na __eou__  __eou__ c __eou__\n")
    with pytest.raises(DataError, match=r"d\.txt:2: expected utterances"):
        read_dailydialog(p)


@needs_data
@pytest.mark.slow
def test_dailydialog_real_overlap_counts_match_the_manifest():
    test = build_dailydialog_task("test", root=DATA / "dailydialog")
    val = build_dailydialog_task("validation", root=DATA / "dailydialog")
    assert test.manifest["counts"]["train_overlap_dropped"] == 92
    assert test.manifest["counts"]["lines"] - test.manifest["counts"]["duplicate_dialogues_dropped"] == 996
    assert val.manifest["counts"]["train_overlap_dropped"] == 68
    assert val.manifest["counts"]["lines"] - val.manifest["counts"]["duplicate_dialogues_dropped"] == 995
    ex = test.examples[0]
    assert len(ex.candidates) == 10 and sum(ex.labels) == 1


# --------------------------------------------------------------------------- task folders and dispatch


def test_task_folder_round_trip_and_checksum(tmp_path):
    task = build_response_task(toy_corpus(), n_candidates=4, seed=1)
    write_response_task(tmp_path / "task", task)
    back = read_response_task(tmp_path / "task")
    assert back.examples == task.examples
    m = json.loads((tmp_path / "task" / "manifest.json").read_text())
    assert m["params"]["seed"] == 1 and m["n_examples"] == 12 and m["counts"] == task.manifest["counts"]
    with open(tmp_path / "task" / "examples.jsonl", "a") as f:
        f.write('{"context": [], "candidates": ["x"], "labels": [1]}\n')
    with pytest.raises(DataError, match="does not match the manifest"):
        read_response_task(tmp_path / "task")


def test_load_response_data_detects_formats(tmp_path):
    write_response_task(tmp_path / "task", build_response_task(toy_corpus(), n_candidates=3))
    write_response_jsonl(tmp_path / "x.jsonl", [DialogueExample("a", ["hi"], ["x"], [1])])
    (tmp_path / "x.tsv").write_text("1\ta\tyes\n0\ta\tno\n")
    write_mutual(tmp_path / "mut", "dev_1.txt", {"answers": "A", "options": ["x", "y"], "article": "m : a"})
    assert [detect_format(tmp_path / n) for n in ("task", "x.jsonl", "x.tsv", "mut")] == [
        "task",
        "jsonl",
        "tsv",
        "mutual",
    ]
    assert len(load_response_data(tmp_path / "task").examples) == 12
    assert load_response_data(tmp_path / "x.tsv").examples[0].labels == [1, 0]
    assert load_response_data(tmp_path / "x.tsv", fmt="tsv", group_size=1).examples[1].labels == [0]
    assert load_response_data(tmp_path / "mut").examples[0].id == "dev_1"
    with pytest.raises(DataError, match="nor a built-in name"):
        load_response_data(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigError, match="unknown response data format"):
        load_response_data(tmp_path / "x.tsv", fmt="csv")


def test_load_response_data_rejects_unknown_options(tmp_path):
    (tmp_path / "x.tsv").write_text("1\ta\tyes\n")
    with pytest.raises(ConfigError, match="format 'tsv' takes no option 'n'; valid: group_size"):
        load_response_data(tmp_path / "x.tsv", n=10)
    with pytest.raises(ConfigError, match="data set 'dailydialog' takes no option 'group_size'"):
        load_response_data("dailydialog", group_size=3)


def test_load_response_data_builds_dailydialog_by_name(tmp_path):
    write_dd(tmp_path, "train", ["A . __eou__ B . __eou__ C . __eou__"])
    write_dd(tmp_path, "validation", ["D . __eou__ E . __eou__ F . __eou__", "G . __eou__ H . __eou__"])
    task = load_response_data("dailydialog", split="validation", root=str(tmp_path), n=3, seed=2)
    assert [e.id for e in task.examples] == ["validation:1:1", "validation:1:2", "validation:2:1"]
    assert task.manifest["params"]["seed"] == 2
    # the release folder itself is recognised (it used to be read as MuTual and fail on readme.txt)
    (tmp_path / "readme.txt").write_text("DailyDialog\n")
    by_path = load_response_data(tmp_path, split="validation", n=3, seed=2)
    assert [e.id for e in by_path.examples] == [e.id for e in task.examples]
