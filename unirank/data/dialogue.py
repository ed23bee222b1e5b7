"""Response-selection data: readers, an R_n task builder, and built tasks on disk.

Every reader returns ``list[DialogueExample]`` (context turns oldest first, candidate
replies, 0/1 labels) and reports bad input as :class:`~unirank.errors.DataError` naming the
file and the 1-based line.

Formats
-------
``mutual``
    A folder of MuTual files (Cui et al., ACL 2020), one JSON object per file:
    ``{"answers": "B", "options": [4 replies], "article": "m : ... f : ...", "id": ...}``.
    The article is split into turns at the speaker markers ``m :`` / ``f :`` (at the start
    of the text or after whitespace). **Speaker tags are kept by default**
    (``"m : excuse me ."``): every option carries one too (``"f : ..."``), so context and
    candidates stay in one format and who says what remains visible — several MuTual
    questions turn on it. ``speaker_tags=False`` strips the tags from turns *and* options.
    Text before the first marker (4 train files start ``"m ; f : ..."``) is kept as a turn
    of its own. Files are read in numeric id order (``dev_2`` before ``dev_10``).
``tsv``
    The Ubuntu V1 / Douban / E-commerce format: ``label \\t turn_1 \\t ... \\t turn_k \\t response``
    per line, the candidates of one context on consecutive lines. A block ends where the
    context changes, or every ``group_size`` lines when that is given (then a block whose
    lines disagree on the context is an error). A last line without a newline, CRLF line
    ends and blank lines are accepted. Example ids are the block's first line number.
``jsonl``
    ``{"context": [turns] | "text", "candidates": [...], "labels": [0/1 ...], "id"?: ...}``
    per line; a missing id becomes the line number.
``task``
    A folder written by :func:`write_response_task`: ``examples.jsonl`` (generic JSONL) and
    ``manifest.json`` (how it was built: seed, parameters, counts, source checksums).

Building an R_n task from dialogues
-----------------------------------
:func:`build_response_task` turns any multi-turn corpus into the Ubuntu-style task: for a
cut point ``t`` the context is ``turns[:t]``, the positive is ``turns[t]`` and ``n - 1``
distractors are drawn (seeded, uniformly over utterance occurrences, so frequent replies
are drawn more often) from the utterances of the same corpus — the dialogue's own other
turns included — as the Ubuntu corpus drew its false responses from the whole corpus. A drawn utterance is rejected when
its normalised text (:func:`normalize_utterance`) equals the positive's or an already
chosen distractor's, so "Thank you ." can never be a wrong answer to "Thank you .".
Candidate order is shuffled with the same generator; ``labels`` records where the positive
went. ``cuts="all"`` uses every cut point (every turn after the first ``min_context_turns``
is a positive once); ``cuts="random_one"`` takes one random cut per dialogue, as the Ubuntu
V1 test set did. The default is ``"all"``: DailyDialog's test split is small (1,000
dialogues), and all cuts give ~6.7k test contexts instead of ~900.

:func:`build_dailydialog_task` applies it to DailyDialog (``dialogues_<split>.txt``, turns
separated by ``__eou__``), first dropping duplicate dialogues inside the split and, for
validation and test, dialogues that also occur in train (exact match of the turn list, the
MANIFEST's "exact line match": 92 of the 996 distinct test dialogues and 68 of the 995
distinct validation dialogues). The counts go into the task's manifest.

Example:
    >>> task = build_response_task([["hi", "hello", "how are you?"], ["yes", "no", "maybe", "ok"]],
    ...                            n_candidates=3, seed=0)
    >>> len(task.examples), task.examples[0].context, sum(task.examples[0].labels)
    (5, ['hi'], 1)
    >>> ex = task.examples[1]
    >>> ex.candidates[ex.labels.index(1)]
    'how are you?'
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ConfigError, DataError
from ..io import file_sha256, write_json, write_jsonl
from ..registry import Registry
from ..types import DialogueExample
from .files import iter_json_objects, iter_text_lines, read_json_object

__all__ = [
    "ResponseTask",
    "normalize_utterance",
    "split_speaker_turns",
    "read_mutual_file",
    "read_mutual",
    "read_response_tsv",
    "read_response_jsonl",
    "write_response_jsonl",
    "build_response_task",
    "read_dailydialog",
    "dedup_dialogues",
    "build_dailydialog_task",
    "write_response_task",
    "read_response_task",
    "RESPONSE_FORMATS",
    "RESPONSE_DATASETS",
    "detect_format",
    "response_data_options",
    "load_response_data",
    "default_data_root",
    "examples_fingerprint",
]

#: format version written into a task's manifest.json
TASK_FORMAT = "unirank-response-task/1"
EXAMPLES_FILE = "examples.jsonl"
MANIFEST_FILE = "manifest.json"
CUT_MODES = ("all", "random_one")


@dataclass
class ResponseTask:
    """Response-selection examples plus how they were made.

    Attributes:
        examples: the examples, in a deterministic order.
        manifest: JSON-able provenance: name, source files and checksums, parameters
            (seed, n, cuts, ...), counts (dialogues read, dropped, examples built, ...).
    """

    examples: list[DialogueExample]
    manifest: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- text helpers


_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})


def normalize_utterance(text: str) -> str:
    """The form in which two utterances count as identical: NFKC, case-folded, straight
    quotes, whitespace collapsed.

    Example:
        >>> normalize_utterance("  Thank  you\u2019ll .") == normalize_utterance("thank you'll .")
        True
    """
    return " ".join(unicodedata.normalize("NFKC", text).translate(_QUOTES).casefold().split())


_SPEAKER = re.compile(r"(?:^|(?<=\s))([mf]) : ")


def split_speaker_turns(article: str, speaker_tags: bool = True) -> list[str]:
    """Split a MuTual article ``"m : ... f : ..."`` into turns at the speaker markers.

    Args:
        article: the dialogue as one string.
        speaker_tags: keep ``"m : "`` / ``"f : "`` at the start of each turn.

    Returns:
        The turns, oldest first, stripped; text before the first marker is a turn of its own.

    Example:
        >>> split_speaker_turns("m : hi . f : hello , tom . m : bye .")
        ['m : hi .', 'f : hello , tom .', 'm : bye .']
        >>> split_speaker_turns("m ; f : hi", speaker_tags=False)
        ['m ;', 'hi']
    """
    marks = list(_SPEAKER.finditer(article))
    turns: list[str] = []
    head = article[: marks[0].start()] if marks else article
    if head.strip():
        turns.append(head.strip())
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(article)
        body = article[m.end() : end].strip()
        turns.append(f"{m.group(1)} : {body}" if speaker_tags else body)
    return turns


def _strip_speaker(text: str) -> str:
    m = _SPEAKER.match(text)
    return text[m.end() :].strip() if m else text


# --------------------------------------------------------------------------- MuTual


_ANSWER_LETTERS = "ABCDEFGHIJ"


def read_mutual_file(path: str | os.PathLike, speaker_tags: bool = True) -> DialogueExample:
    """One MuTual file as a :class:`DialogueExample` (see the module docstring).

    Raises:
        DataError: invalid JSON, a missing or mistyped field, or a blank / out-of-range
            ``answers`` (MuTual's test split has blank answers).
    """
    path = Path(path)
    obj = read_json_object(path)
    for key, kind in (("article", str), ("options", list), ("answers", str)):
        if not isinstance(obj.get(key), kind):
            raise DataError(f"field {key!r} must be a {kind.__name__}, got {obj.get(key)!r:.60}", path=path, line=1)
    options = obj["options"]
    if len(options) < 2 or not all(isinstance(o, str) for o in options):
        raise DataError(f"'options' must be >= 2 strings, got {options!r:.80}", path=path, line=1)
    answer = obj["answers"].strip()
    if not answer:
        raise DataError(
            "'answers' is blank (MuTual's test answers are not released; use train or dev)", path=path, line=1
        )
    if len(answer) != 1 or answer not in _ANSWER_LETTERS[: len(options)]:
        raise DataError(
            f"'answers' must be one letter A..{_ANSWER_LETTERS[len(options) - 1]}, got {answer!r}", path=path, line=1
        )
    turns = split_speaker_turns(obj["article"], speaker_tags)
    if not turns:
        raise DataError("'article' is empty", path=path, line=1)
    candidates = list(options) if speaker_tags else [_strip_speaker(o) for o in options]
    idx = _ANSWER_LETTERS.index(answer)
    return DialogueExample(
        id=str(obj.get("id") or path.stem),
        context=turns,
        candidates=candidates,
        labels=[int(i == idx) for i in range(len(options))],
    )


def _numeric_key(path: Path) -> tuple[str, int, str]:
    m = re.match(r"^(.*?)(\d+)$", path.stem)
    return (m.group(1), int(m.group(2)), path.name) if m else (path.stem, -1, path.name)


def read_mutual(
    folder: str | os.PathLike, speaker_tags: bool = True, limit: int | None = None
) -> list[DialogueExample]:
    """Every ``*.txt`` file of a MuTual split folder, in numeric id order.

    Args:
        folder: e.g. ``.../mutual/dev``.
        speaker_tags: keep the ``m :`` / ``f :`` tags (see the module docstring).
        limit: read only the first ``limit`` files (in id order).

    Raises:
        DataError: the folder is missing or holds no ``.txt`` file, or a file is bad.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(
            "MuTual folder not found"
            if not folder.exists()
            else "expected a MuTual folder of *.txt files, found a file",
            path=folder,
        )
    files = sorted(folder.glob("*.txt"), key=_numeric_key)
    if not files:
        raise DataError("no MuTual *.txt files in this folder", path=folder)
    if limit is not None:
        files = files[:limit]
    return [read_mutual_file(f, speaker_tags) for f in files]


# --------------------------------------------------------------------------- Ubuntu / Douban / E-commerce TSV


def read_response_tsv(path: str | os.PathLike, group_size: int | None = None) -> list[DialogueExample]:
    """Read the ``label \\t turn ... \\t response`` format (Ubuntu V1, Douban, E-commerce).

    Args:
        path: the file.
        group_size: candidates per context. ``None``: a block ends where the context
            changes. With a number, every ``group_size`` lines form a block and must share
            one context (use it when two consecutive contexts can be identical).

    Returns:
        One example per block; its id is the block's first line number (as a string).

    Raises:
        DataError: fewer than 3 tab-separated fields, a label other than 0/1, a block whose
            lines disagree on the context, or a file that ends in the middle of a block.

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "t.txt")
        >>> _ = open(p, "w").write("1\\ta\\tb\\tyes\\n0\\ta\\tb\\tno\\n1\\tc\\tok")
        >>> [(e.id, e.context, e.candidates, e.labels) for e in read_response_tsv(p)]
        [('1', ['a', 'b'], ['yes', 'no'], [1, 0]), ('3', ['c'], ['ok'], [1])]
    """
    if group_size is not None and group_size < 1:
        raise ConfigError(f"group_size must be >= 1 or None, got {group_size}")
    out: list[DialogueExample] = []
    block: list[tuple[int, int, str]] = []  # (line, label, response)
    block_ctx: tuple[str, ...] | None = None

    def flush() -> None:
        nonlocal block, block_ctx
        if block:
            out.append(
                DialogueExample(
                    str(block[0][0]), list(block_ctx or ()), [r for _, _, r in block], [y for _, y, _ in block]
                )
            )
        block, block_ctx = [], None

    last_line = 0
    for lineno, line in iter_text_lines(path):
        if not line.strip():
            continue
        last_line = lineno
        cols = line.split("\t")
        if len(cols) < 3:
            raise DataError(
                f"expected 'label<TAB>turn ...<TAB>response' (>= 3 tab-separated fields), got {len(cols)}",
                path=path,
                line=lineno,
            )
        if cols[0].strip() not in ("0", "1"):
            raise DataError(f"label must be 0 or 1, got {cols[0]!r}", path=path, line=lineno)
        ctx = tuple(cols[1:-1])
        if group_size is None:
            if block and ctx != block_ctx:
                flush()
        elif block and ctx != block_ctx:
            raise DataError(
                f"context differs from the block that starts on line {block[0][0]} (blocks of {group_size} lines "
                "expected)",
                path=path,
                line=lineno,
            )
        block_ctx = ctx
        block.append((lineno, int(cols[0]), cols[-1]))
        if group_size is not None and len(block) == group_size:
            flush()
    if group_size is not None and block:
        raise DataError(
            f"file ends in the middle of a block ({len(block)} of {group_size} lines from line {block[0][0]})",
            path=path,
            line=last_line,
        )
    flush()
    return out


# --------------------------------------------------------------------------- generic JSONL


def _example_row(ex: DialogueExample) -> dict[str, Any]:
    return {
        "id": ex.id,
        "context": list(ex.context),
        "candidates": list(ex.candidates),
        "labels": [int(y) for y in ex.labels],
    }


def write_response_jsonl(path: str | os.PathLike, examples: Iterable[DialogueExample]) -> None:
    """Write examples as generic JSONL (one ``{"id", "context", "candidates", "labels"}`` per line), atomically."""
    write_jsonl(path, (_example_row(e) for e in examples))


def _str_list(value: Any, key: str, path: Path, lineno: int, allow_empty: bool) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise DataError(f"field {key!r} must be a list of strings, got {value!r:.80}", path=path, line=lineno)
    if not value and not allow_empty:
        raise DataError(f"field {key!r} is empty", path=path, line=lineno)
    return list(value)


def read_response_jsonl(path: str | os.PathLike) -> list[DialogueExample]:
    """Read generic response-selection JSONL (see the module docstring).

    ``context`` may be a list of turns or one string (one turn); ``labels`` are 0/1 (or
    booleans), one per candidate.

    Raises:
        DataError: malformed JSON, a missing or mistyped field, labels and candidates of
            different lengths, or a duplicate id (names both lines).

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "r.jsonl")
        >>> write_response_jsonl(p, [DialogueExample("a", ["hi"], ["yo", "no"], [1, 0])])
        >>> read_response_jsonl(p)
        [DialogueExample(id='a', context=['hi'], candidates=['yo', 'no'], labels=[1, 0])]
    """
    path = Path(path)
    out: list[DialogueExample] = []
    seen: dict[str, int] = {}
    for lineno, obj in iter_json_objects(path):
        for key in ("context", "candidates", "labels"):
            if key not in obj:
                raise DataError(f"missing field {key!r}", path=path, line=lineno)
        ctx = obj["context"]
        context = [ctx] if isinstance(ctx, str) else _str_list(ctx, "context", path, lineno, allow_empty=True)
        candidates = _str_list(obj["candidates"], "candidates", path, lineno, allow_empty=False)
        labels = obj["labels"]
        if not isinstance(labels, list) or not all(isinstance(y, (bool, int)) and int(y) in (0, 1) for y in labels):
            raise DataError(f"field 'labels' must be a list of 0/1, got {labels!r:.80}", path=path, line=lineno)
        if len(labels) != len(candidates):
            raise DataError(f"{len(candidates)} candidates but {len(labels)} labels", path=path, line=lineno)
        raw_id = obj.get("id", lineno)
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or raw_id == "":
            raise DataError(
                f"field 'id' must be a non-empty string or an integer, got {raw_id!r}", path=path, line=lineno
            )
        ex_id = str(raw_id)
        if ex_id in seen:
            raise DataError(f"duplicate id {ex_id!r} (first on line {seen[ex_id]})", path=path, line=lineno)
        seen[ex_id] = lineno
        out.append(DialogueExample(ex_id, context, candidates, [int(y) for y in labels]))
    return out


# --------------------------------------------------------------------------- building an R_n task


def dedup_dialogues(dialogues: Sequence[Sequence[str]]) -> tuple[list[int], int]:
    """Indices of the first occurrence of each distinct dialogue (exact turn lists), and how many were dropped.

    Example:
        >>> dedup_dialogues([["a", "b"], ["c"], ["a", "b"]])
        ([0, 1], 1)
    """
    seen: set[tuple[str, ...]] = set()
    keep = []
    for i, d in enumerate(dialogues):
        key = tuple(d)
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return keep, len(dialogues) - len(keep)


def build_response_task(
    dialogues: Sequence[Sequence[str]],
    n_candidates: int = 10,
    seed: int = 0,
    min_context_turns: int = 1,
    exclude_dialogues: Iterable[Sequence[str]] = (),
    cuts: str = "all",
    ids: Sequence[str] | None = None,
) -> ResponseTask:
    """Turn a multi-turn dialogue corpus into an R_n response-selection task.

    Args:
        dialogues: turn lists, oldest first (utterances of one split).
        n_candidates: n; each example has the true next turn and ``n - 1`` distractors.
        seed: seeds one ``numpy`` generator that draws the cuts, the distractors and the
            candidate order, in dialogue order: the same inputs and seed give the same task.
        min_context_turns: the shortest context; cut points are ``t = min_context_turns ..
            len(turns) - 1``. Shorter dialogues give no example.
        exclude_dialogues: dialogues to leave out entirely (exact match of the turn list),
            e.g. those that also occur in the training split. Their utterances are not
            used as distractors either.
        cuts: ``"all"`` (every cut point) or ``"random_one"`` (one per dialogue, uniform).
        ids: one id per dialogue (default: its index); example ids are ``"{id}:{t}"``.

    Returns:
        A :class:`ResponseTask`; ``manifest["counts"]`` has ``dialogues`` (given),
        ``excluded``, ``too_short``, ``dialogues_used``, ``examples``, ``utterance_pool``,
        ``distinct_utterances``, ``redraws_identical_to_positive`` and
        ``redraws_duplicate_distractor`` (draws rejected and drawn again).

    Raises:
        ConfigError: bad ``n_candidates`` / ``min_context_turns`` / ``cuts``.
        ValueError: the corpus has fewer than ``n`` distinct utterances (no distractor set
            could be drawn), or ``ids`` has the wrong length.

    Example:
        >>> t = build_response_task([["a", "b", "c"], ["d", "e"], ["f", "g"]], n_candidates=4, seed=1)
        >>> [(e.id, e.context, len(e.candidates), e.labels.count(1)) for e in t.examples]
        [('0:1', ['a'], 4, 1), ('0:2', ['a', 'b'], 4, 1), ('1:1', ['d'], 4, 1), ('2:1', ['f'], 4, 1)]
        >>> t.manifest["counts"]["examples"]
        4
    """
    if n_candidates < 2:
        raise ConfigError(f"n_candidates must be >= 2, got {n_candidates}")
    if min_context_turns < 1:
        raise ConfigError(f"min_context_turns must be >= 1, got {min_context_turns}")
    if cuts not in CUT_MODES:
        raise ConfigError(f"cuts must be one of {', '.join(CUT_MODES)}; got {cuts!r}")
    if ids is not None and len(ids) != len(dialogues):
        raise ValueError(f"{len(ids)} ids for {len(dialogues)} dialogues")
    excluded_set = {tuple(d) for d in exclude_dialogues}
    used = [i for i, d in enumerate(dialogues) if tuple(d) not in excluded_set]
    n_excluded = len(dialogues) - len(used)

    # distractor pool: every utterance occurrence of the used dialogues, as ids of normalised text
    pool_text: list[str] = []
    pool_norm: list[int] = []
    norm_id: dict[str, int] = {}
    for i in used:
        for turn in dialogues[i]:
            pool_text.append(turn)
            pool_norm.append(norm_id.setdefault(normalize_utterance(turn), len(norm_id)))
    if len(norm_id) < n_candidates:
        raise ValueError(f"only {len(norm_id)} distinct utterances; {n_candidates} candidates need at least that many")
    pool_norm_arr = np.asarray(pool_norm, dtype=np.int64)

    rng = np.random.default_rng(seed)
    examples: list[DialogueExample] = []
    too_short = redraw_pos = redraw_dup = 0
    for i in used:
        turns = list(dialogues[i])
        if len(turns) <= min_context_turns:
            too_short += 1
            continue
        points = list(range(min_context_turns, len(turns)))
        if cuts == "random_one":
            points = [points[int(rng.integers(len(points)))]]
        for t in points:
            positive = turns[t]
            pos_norm = norm_id[normalize_utterance(positive)]
            chosen_norm = {pos_norm}
            distractors: list[str] = []
            while len(distractors) < n_candidates - 1:
                for j in rng.integers(len(pool_text), size=2 * (n_candidates - 1)).tolist():
                    nid = int(pool_norm_arr[j])
                    if nid == pos_norm:
                        redraw_pos += 1
                    elif nid in chosen_norm:
                        redraw_dup += 1
                    else:
                        chosen_norm.add(nid)
                        distractors.append(pool_text[j])
                        if len(distractors) == n_candidates - 1:
                            break
            order = rng.permutation(n_candidates).tolist()
            cands = [positive, *distractors]
            dialogue_id = str(i) if ids is None else str(ids[i])
            examples.append(
                DialogueExample(
                    id=f"{dialogue_id}:{t}",
                    context=turns[:t],
                    candidates=[cands[k] for k in order],
                    labels=[int(k == 0) for k in order],
                )
            )
    manifest = {
        "params": {
            "n_candidates": n_candidates,
            "seed": seed,
            "min_context_turns": min_context_turns,
            "cuts": cuts,
            "normalisation": "NFKC, casefold, curly quotes -> straight, whitespace collapsed",
        },
        "counts": {
            "dialogues": len(dialogues),
            "excluded": n_excluded,
            "too_short": too_short,
            "dialogues_used": len(used) - too_short,
            "examples": len(examples),
            "utterance_pool": len(pool_text),
            "distinct_utterances": len(norm_id),
            "redraws_identical_to_positive": redraw_pos,
            "redraws_duplicate_distractor": redraw_dup,
        },
    }
    return ResponseTask(examples, manifest)


# --------------------------------------------------------------------------- DailyDialog


DAILYDIALOG_SPLITS = ("train", "validation", "test")


def examples_fingerprint(examples: Iterable[DialogueExample]) -> str:
    """Short sha256 of response-selection examples (ids, contexts, candidates, labels, in order).

    Example:
        >>> ex = [DialogueExample("a", ["hi"], ["x", "y"], [1, 0])]
        >>> examples_fingerprint(ex) == examples_fingerprint(ex), examples_fingerprint(ex) == examples_fingerprint(
        ...     ex[:0])
        (True, False)
    """
    from ..provenance import text_fingerprint

    return text_fingerprint(f"{d.id}\t{d.context}\t{d.candidates}\t{d.labels}" for d in examples)


def default_data_root() -> Path:
    """Where the shared data sets live: ``$UNIRANK_DATA`` if set, else ``<checkout>/../shared/data``.

    (The second choice fits an editable install next to the project's ``shared/`` folder.)
    """
    env = os.environ.get("UNIRANK_DATA")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def _dailydialog_file(root: str | os.PathLike | None, split: str) -> Path:
    if split not in DAILYDIALOG_SPLITS:
        raise ConfigError(f"DailyDialog split must be one of {', '.join(DAILYDIALOG_SPLITS)}; got {split!r}")
    base = Path(root).expanduser() if root is not None else default_data_root() / "dailydialog"
    return base / split / f"dialogues_{split}.txt"


def read_dailydialog(path: str | os.PathLike) -> tuple[list[list[str]], list[int]]:
    """Read a ``dialogues_<split>.txt`` file: one dialogue per line, turns separated by ``__eou__``.

    Turns are stripped; the empty piece after the final ``__eou__`` is dropped.

    Returns:
        ``(dialogues, line_numbers)``; blank lines are skipped.

    Raises:
        DataError: a line with no turn text.

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "d.txt")
        >>> _ = open(p, "w").write("Hi . __eou__ Hello ! __eou__\\n\\nBye __eou__ \\n")
        >>> read_dailydialog(p)
        ([['Hi .', 'Hello !'], ['Bye']], [1, 3])
    """
    dialogues: list[list[str]] = []
    lines: list[int] = []
    for lineno, line in iter_text_lines(path):
        if not line.strip():
            continue
        turns = [t.strip() for t in line.split("__eou__")]
        if turns and not turns[-1]:
            turns.pop()
        if not turns or any(not t for t in turns):
            raise DataError(
                "expected utterances separated by ' __eou__ ' (found an empty utterance)", path=path, line=lineno
            )
        dialogues.append(turns)
        lines.append(lineno)
    return dialogues, lines


def build_dailydialog_task(
    split: str,
    n: int = 10,
    seed: int = 0,
    drop_train_overlap: bool = True,
    *,
    root: str | os.PathLike | None = None,
    cuts: str = "all",
    min_context_turns: int = 1,
    dedup: bool = True,
) -> ResponseTask:
    """An R_n task from one DailyDialog split (see the module docstring).

    Args:
        split: ``train``, ``validation`` or ``test``.
        n: candidates per context.
        seed: sampling seed (recorded in the manifest).
        drop_train_overlap: for validation / test, leave out dialogues that also occur in
            train (exact match of the turn list).
        root: the ``dailydialog`` folder (default: :func:`default_data_root` / dailydialog).
        cuts, min_context_turns: as in :func:`build_response_task`.
        dedup: keep only the first of identical dialogues within the split.

    Returns:
        A :class:`ResponseTask`; example ids are ``"{split}:{line}:{t}"`` (the source line
        and the index of the positive turn). ``manifest["counts"]`` adds ``lines``,
        ``duplicate_dialogues_dropped`` and ``train_overlap_dropped``.
    """
    path = _dailydialog_file(root, split)
    dialogues, lines = read_dailydialog(path)
    n_lines = len(dialogues)
    n_dups = 0
    if dedup:
        keep, n_dups = dedup_dialogues(dialogues)
        dialogues, lines = [dialogues[i] for i in keep], [lines[i] for i in keep]
    exclude: list[list[str]] = []
    train_info = None
    if drop_train_overlap and split != "train":
        train_path = _dailydialog_file(root, "train")
        exclude, _ = read_dailydialog(train_path)
        train_info = {"path": str(train_path), "sha256": file_sha256(train_path)}
    task = build_response_task(
        dialogues,
        n_candidates=n,
        seed=seed,
        min_context_turns=min_context_turns,
        exclude_dialogues=exclude,
        cuts=cuts,
        ids=[f"{split}:{ln}" for ln in lines],
    )
    counts = task.manifest["counts"]
    overlap = counts.pop("excluded")
    task.manifest = {
        "name": f"dailydialog-{split}-r{n}",
        "source": {"path": str(path), "sha256": file_sha256(path), "train_for_overlap": train_info},
        "params": {**task.manifest["params"], "split": split, "dedup": dedup, "drop_train_overlap": drop_train_overlap},
        "counts": {
            "lines": n_lines,
            "duplicate_dialogues_dropped": n_dups,
            "train_overlap_dropped": overlap,
            **counts,
        },
    }
    return task


# --------------------------------------------------------------------------- built tasks on disk


def write_response_task(folder: str | os.PathLike, task: ResponseTask) -> None:
    """Write ``examples.jsonl`` and ``manifest.json`` (with the examples' sha256 and count).

    Each file is written atomically; the manifest is written last, so a folder with a
    manifest always has the examples it describes.
    """
    from .. import __version__

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_response_jsonl(folder / EXAMPLES_FILE, task.examples)
    manifest = {
        "format": TASK_FORMAT,
        **task.manifest,
        "examples_file": EXAMPLES_FILE,
        "examples_sha256": file_sha256(folder / EXAMPLES_FILE),
        "n_examples": len(task.examples),
        "unirank_version": __version__,
    }
    write_json(folder / MANIFEST_FILE, manifest)


def read_response_task(folder: str | os.PathLike, verify: bool = True) -> ResponseTask:
    """Read a folder written by :func:`write_response_task`.

    Args:
        folder: the task folder.
        verify: check the examples file against the manifest's sha256 (a changed file
            would silently change a benchmark).

    Raises:
        DataError: no or invalid manifest, or a checksum / count mismatch.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> write_response_task(d, build_response_task([["a", "b"], ["c", "d"]], n_candidates=3))
        >>> t = read_response_task(d)
        >>> len(t.examples), t.manifest["params"]["seed"]
        (2, 0)
    """
    folder = Path(folder)
    mpath = folder / MANIFEST_FILE
    if not mpath.is_file():
        raise DataError(f"not a response task folder (no {MANIFEST_FILE})", path=folder)
    manifest = read_json_object(mpath)
    if manifest.get("format") != TASK_FORMAT:
        raise DataError(f'expected "format": {TASK_FORMAT!r}', path=mpath)
    epath = folder / str(manifest.get("examples_file", EXAMPLES_FILE))
    if verify and "examples_sha256" in manifest:
        got = file_sha256(epath) if epath.is_file() else "missing"
        if got != manifest["examples_sha256"]:
            raise DataError(
                f"examples file does not match the manifest (sha256 {got[:12]}, expected "
                f"{manifest['examples_sha256'][:12]}); rebuild the task",
                path=epath,
            )
    examples = read_response_jsonl(epath)
    if "n_examples" in manifest and manifest["n_examples"] != len(examples):
        raise DataError(f"{len(examples)} examples but the manifest says {manifest['n_examples']}", path=epath)
    return ResponseTask(examples, manifest)


# --------------------------------------------------------------------------- one entry point


def _folder_fingerprint(folder: Path, pattern: str) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.glob(pattern)):
        h.update(f.name.encode())
        h.update(bytes.fromhex(file_sha256(f)))
    return h.hexdigest()[:16]


def _load_mutual(path: Path, speaker_tags: bool = True, limit: int | None = None) -> ResponseTask:
    ex = read_mutual(path, speaker_tags=speaker_tags, limit=limit)
    source = {"path": str(path), "fingerprint": _folder_fingerprint(path, "*.txt")}
    return ResponseTask(
        ex, {"name": f"mutual-{path.name}", "source": source, "params": {"speaker_tags": speaker_tags, "limit": limit}}
    )


def _load_tsv(path: Path, group_size: int | None = None) -> ResponseTask:
    ex = read_response_tsv(path, group_size=group_size)
    source = {"path": str(path), "sha256": file_sha256(path)}
    return ResponseTask(ex, {"name": path.stem, "source": source, "params": {"group_size": group_size}})


def _load_jsonl(path: Path) -> ResponseTask:
    ex = read_response_jsonl(path)
    return ResponseTask(ex, {"name": path.stem, "source": {"path": str(path), "sha256": file_sha256(path)}})


def _load_task(path: Path, verify: bool = True) -> ResponseTask:
    return read_response_task(path, verify=verify)


#: format name -> loader(path, **options) -> ResponseTask
RESPONSE_FORMATS: Registry[Callable[..., ResponseTask]] = Registry("response data format")
RESPONSE_FORMATS.register("mutual")(_load_mutual)
RESPONSE_FORMATS.register("tsv")(_load_tsv)
RESPONSE_FORMATS.register("jsonl")(_load_jsonl)
RESPONSE_FORMATS.register("task")(_load_task)


def _named_dailydialog(
    split: str,
    n: int = 10,
    seed: int = 0,
    drop_train_overlap: bool = True,
    root: str | None = None,
    cuts: str = "all",
    min_context_turns: int = 1,
    dedup: bool = True,
) -> ResponseTask:
    return build_dailydialog_task(
        split, n, seed, drop_train_overlap, root=root, cuts=cuts, min_context_turns=min_context_turns, dedup=dedup
    )


def _named_mutual(
    split: str, root: str | None = None, speaker_tags: bool = True, limit: int | None = None
) -> ResponseTask:
    base = Path(root).expanduser() if root else default_data_root() / "mutual"
    if split == "test":
        raise DataError("MuTual's test answers are not released; use split 'dev'", path=base / "test")
    return _load_mutual(base / split, speaker_tags=speaker_tags, limit=limit)


#: built-in name -> builder(split, **options) -> ResponseTask (data under :func:`default_data_root`)
RESPONSE_DATASETS: Registry[Callable[..., ResponseTask]] = Registry("response data set")
RESPONSE_DATASETS.register("dailydialog")(_named_dailydialog)
RESPONSE_DATASETS.register("mutual")(_named_mutual)


def _check_options(fn: Callable[..., Any], options: dict[str, Any], what: str) -> None:
    import inspect

    valid = [p for p in list(inspect.signature(fn).parameters)[1:]]
    bad = sorted(k for k in options if k not in valid)
    if bad:
        raise ConfigError(f"{what} takes no option {', '.join(map(repr, bad))}; valid: {', '.join(valid) or '(none)'}")


def _resolve_loader(name_or_path: str | os.PathLike, fmt: str | None) -> tuple[str, Callable[..., ResponseTask], bool]:
    """(what, loader, is_builtin) for a name or path (see :func:`load_response_data`)."""
    name = os.fspath(name_or_path)
    if fmt is None and name in RESPONSE_DATASETS and not Path(name).exists():
        return f"data set {name!r}", RESPONSE_DATASETS.get(name), True
    path = Path(name).expanduser()
    if not path.exists():
        raise DataError(
            f"not a response data file or folder, nor a built-in name (valid: {', '.join(RESPONSE_DATASETS.names())})",
            path=path,
        )
    if fmt is None and (path / "train" / "dialogues_train.txt").is_file():  # the DailyDialog release folder
        import functools

        return f"DailyDialog folder {path}", functools.partial(RESPONSE_DATASETS.get("dailydialog"), root=path), True
    fmt = fmt or detect_format(path)
    try:
        return f"format {fmt!r}", RESPONSE_FORMATS.get(fmt), False
    except KeyError as e:
        raise ConfigError(str(e.args[0])) from None


def response_data_options(name_or_path: str | os.PathLike, fmt: str | None = None) -> list[str]:
    """The option names :func:`load_response_data` accepts for this data (e.g. to pass a
    global ``seed`` only where it means something).

    Example:
        >>> response_data_options("dailydialog")[:3]
        ['n', 'seed', 'drop_train_overlap']
    """
    import inspect

    _, loader, _ = _resolve_loader(name_or_path, fmt)
    return list(inspect.signature(loader).parameters)[1:]


def detect_format(path: str | os.PathLike) -> str:
    """The format of a path: a folder with ``manifest.json`` is a ``task``, another folder
    ``mutual``; a ``.jsonl`` / ``.json`` file ``jsonl``; any other file ``tsv``.

    Example:
        >>> detect_format("x/test.txt"), detect_format("x/dev.jsonl")
        ('tsv', 'jsonl')
    """
    p = Path(path)
    if p.is_dir():
        return "task" if (p / MANIFEST_FILE).is_file() else "mutual"
    return "jsonl" if p.suffix.lower() in (".jsonl", ".json") else "tsv"


def load_response_data(
    name_or_path: str | os.PathLike, split: str = "test", fmt: str | None = None, **options: Any
) -> ResponseTask:
    """Load response-selection data by built-in name or by path.

    Args:
        name_or_path: ``"dailydialog"`` (built with ``n``/``seed``/``cuts`` options; dropped
            dialogues are counted in the manifest), ``"mutual"`` (``split`` ``train`` or
            ``dev``), or a path to a MuTual folder, a TSV file, a JSONL file, a task folder or
            the DailyDialog release folder (built like ``"dailydialog"`` from that folder).
        split: split of a built-in data set or of a DailyDialog folder (ignored for other paths).
        fmt: a :data:`RESPONSE_FORMATS` name; ``None`` = :func:`detect_format`.
        options: passed to the loader: ``group_size`` (tsv); ``speaker_tags``, ``limit``
            (mutual); ``verify`` (task); for ``dailydialog`` the keywords of
            :func:`build_dailydialog_task` (``n``, ``seed``, ``cuts``, ``root``, ...); for
            ``mutual`` by name ``root``, ``speaker_tags``, ``limit``.

    Raises:
        DataError: a path that does not exist and is not a built-in name, or bad data.
        ConfigError: an unknown format or an option the loader does not take.
    """
    what, loader, builtin = _resolve_loader(name_or_path, fmt)
    _check_options(loader, options, what)
    if builtin:
        return loader(split, **options)
    return loader(Path(os.fspath(name_or_path)).expanduser(), **options)
