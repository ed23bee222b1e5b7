"""Kill-anywhere driver for ``tests/test_kill_anywhere.py`` (run as ``python -m tests._kill_anywhere``).

Trains a tiny bi-encoder through the real ``unirank train`` command (2 epochs x 2 steps, a
checkpoint after every step and at every epoch end, ``keep_checkpoints: 1`` so every save
also prunes, a dev evaluation per epoch that rewrites ``best``, a test evaluation and the
exports at the end) and counts every file-system mutation it makes: ``os.replace`` /
``rename`` / ``unlink`` / ``rmdir`` / ``mkdir``, ``shutil.rmtree``, ``tempfile.mkstemp`` /
``mkdtemp``, ``os.fsync``, the folder swap of :func:`unirank.io.replace_dir`, safetensors
writes and every ``open`` for writing or appending. Then, for each chosen event number
``K``, a forked child runs the same command and sends itself ``SIGKILL`` right before its
``K``-th mutation (no ``finally``, no ``atexit``: what a ``kill -9`` or a power cut leaves),
and another child runs it again with ``--resume`` to the end.

Each scenario checks that the resumed run started from the newest complete checkpoint the
killed one left (never from step 0 when one exists), ends with exported model folders and a
``best`` checkpoint byte-identical to the uninterrupted run's and the same
``metrics.jsonl`` (apart from wall-clock times: no dev or test line twice), and leaves no
temporary leftovers. The result is one JSON object on stdout.

Forking keeps one scenario well under a second: the parent imports torch and unirank once
and never runs a torch operation itself (threads are set to 1 before anything runs).
"""

from __future__ import annotations

import argparse
import builtins
import io
import json
import os
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import torch

torch.set_num_threads(1)

from unirank import io as uio  # noqa: E402


def _preload() -> None:
    """Import once in the parent what every child would import again (no torch op runs)."""
    import matplotlib

    matplotlib.use("Agg")
    import faiss  # noqa: F401
    import matplotlib.pyplot  # noqa: F401
    import pydantic  # noqa: F401
    import transformers  # noqa: F401
    import transformers.models.bert.tokenization_bert  # noqa: F401
    from transformers import AutoTokenizer, BertModel  # noqa: F401

    import unirank.cli  # noqa: F401
    import unirank.data.datasets  # noqa: F401
    import unirank.eval.evaluate  # noqa: F401
    import unirank.eval.report  # noqa: F401
    import unirank.index.retrievers  # noqa: F401
    import unirank.models.base  # noqa: F401
    import unirank.models.bi  # noqa: F401

    unirank.models.base.import_model_kinds()
    import unirank.train  # noqa: F401
    import unirank.training.export  # noqa: F401


TOPICS = [
    "cats purr softly",
    "dogs bark loudly",
    "fish swim in bowls",
    "birds sing at dawn",
    "cars need fuel",
    "rain falls in spring",
    "bread is baked daily",
    "chess needs strategy",
]

#: (module, attribute) pairs whose calls are counted as events
PATCHED = [
    (os, "replace"),
    (os, "rename"),
    (os, "unlink"),
    (os, "remove"),
    (os, "rmdir"),
    (os, "mkdir"),
    (os, "fsync"),
    (shutil, "rmtree"),
    (tempfile, "mkstemp"),
    (tempfile, "mkdtemp"),
    (uio, "_exchange"),
]


def _install(kill_at: int | None, events: list[str]) -> None:
    """Count mutations into ``events``; SIGKILL this process right before event ``kill_at``."""

    def hit(what: str) -> None:
        events.append(what)
        if kill_at is not None and len(events) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(mod, name):
        orig = getattr(mod, name)

        def f(*a, **k):
            paths = [Path(str(x)).name for x in (*a, k.get("prefix")) if isinstance(x, (str, os.PathLike))]
            hit(" ".join([name, *paths]))
            return orig(*a, **k)

        setattr(mod, name, f)

    for mod, name in PATCHED:
        wrap(mod, name)
    orig_open = io.open

    def open_(file, mode="r", *a, **k):
        if any(c in mode for c in "wax+"):
            hit(f"open({mode}) {Path(str(file)).name if isinstance(file, (str, os.PathLike)) else file}")
        return orig_open(file, mode, *a, **k)

    builtins.open = io.open = open_
    import safetensors.torch as st

    for name in ("save_file", "save_model"):
        wrap(st, name)


def _fork(fn) -> int:
    """Run ``fn()`` in a forked child; returns its wait status."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            fn()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 - reported through the exit status
            import traceback

            traceback.print_exc()
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return status


def _setup(work: Path, with_test: bool = True) -> None:
    from tests.conftest import write_beir
    from unirank.models.backbone import tiny_backbone
    from unirank.models.bi import BiEncoder

    docs = {f"d{i}": (t.split()[0].title(), f"a note about {t}") for i, t in enumerate(TOPICS)}
    queries = {f"q{i}": f"question on {t.split()[0]}" for i, t in enumerate(TOPICS)}
    write_beir(work / "beir", docs, queries, {f"q{i}": {f"d{i}": 1} for i in range(6)}, split="train")
    write_beir(work / "beir", docs, queries, {f"q{i}": {f"d{i}": 1} for i in range(6, 8)}, split="dev")
    BiEncoder(tiny_backbone(hidden=32, seed=0), max_length=24).save(work / "tiny-model")
    cfg = {
        "model": {"kind": "bi", "name": str(work / "tiny-model")},
        "data": {"train": str(work / "beir"), "split": "train", "negatives": 0},
        "batch_size": 3,
        "epochs": 2,
        "lr": 1e-3,
        "warmup_ratio": 0.0,
        "threads": 1,
        "log_every": 1,
        "save_every": 1,
        "keep_checkpoints": 1,
        "dev": {"split": "dev", "measures": ["ndcg@10", "mrr@10"]},
        "test": {"split": "dev" if with_test else None, "measures": ["ndcg@10"]},
    }
    (work / "train.yaml").write_text(json.dumps(cfg))  # JSON is YAML


def _quiet(log: Path) -> None:
    """Send this process's stdout and stderr to ``log``."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)


def _train(work: Path, out: Path, resume: bool, log: Path) -> None:
    from unirank.cli import main

    _quiet(log)
    main(["train", str(work / "train.yaml"), "--out", str(out), *(["--resume"] if resume else [])])


def _killed_run(work: Path, out: Path, kill_at: int | None, events_file: Path | None) -> None:
    events: list[str] = []
    _install(kill_at, events)
    try:
        _train(work, out, False, out.parent / f"{out.name}.log")
    finally:
        if events_file is not None:
            # written with the original functions: the run is over
            import json as j

            data = j.dumps(events).encode()
            fd = os.open(events_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, data)
            os.close(fd)


def _step_of(name: str) -> tuple[int, int]:
    m = re.fullmatch(r"step-(\d+)(-end)?", name)
    return (int(m.group(1)), 1 if m.group(2) else 0) if m else (-1, -1)


def newest_complete(ckpts: Path) -> str | None:
    """The newest complete step checkpoint the killed run left (a ``.old`` copy whose
    checkpoint is missing counts: the next start puts it back)."""
    names = []
    if ckpts.is_dir():
        for p in ckpts.iterdir():
            m = re.fullmatch(r"\.(step-\d+(?:-end)?)\.old-[\d-]*[0-9a-f]{8}", p.name)
            name = m.group(1) if m and not (ckpts / m.group(1)).exists() else p.name
            if _step_of(name)[0] >= 0 and (p / "trainer_state.json").is_file():
                names.append(name)
    return max(names, key=_step_of) if names else None


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _metrics(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("elapsed_s", None)
    return rows


def _outputs(run: Path) -> dict[str, bytes]:
    out = {}
    for sub in ("model", "model-transformers", "checkpoints/best", *(["test"] if (run / "test").exists() else [])):
        out.update(
            {
                f"{sub}/{k}": v
                for k, v in _files(run / sub).items()  # these name the out folder:
                if not (k == "trainer_state.json" or (sub == "test" and k in ("config.json", "report.html")))
            }
        )
    return out


def _leftovers(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob(".*") if p.name.endswith(".tmp") or ".old-" in p.name)


def fast_points(events: list[str]) -> list[int]:
    """A few event numbers (1-based) at the moments most likely to lose progress: the first
    file of the run half written, then, around the first epoch end where ``save_every`` and
    the epoch end fall on the same step: the dev line
    just written, the epoch-end checkpoint swapped into place, the pointer moved to it, the
    older checkpoint half pruned, and a ``best`` folder being replaced by a better one."""

    def first(pattern: str, after: int = 0) -> int | None:
        rx = re.compile(pattern)
        return next((i + 1 for i, e in enumerate(events) if i >= after and rx.search(e)), None)

    swap = first(r"^(replace|_exchange) \.step-0000002-end\.\S+ step-0000002-end$")
    pointer = first(r"^replace \.latest\.json\.\S+ latest\.json$", after=swap or 0)
    pre = first(r"^replace \.latest\.json\.\S+ latest\.json$", after=(first(r"step-0000002$") or 0))
    dev_line = first(r"^open\(a\) metrics\.jsonl$", after=pre or 0)
    prune = first(r"^rmtree \.step-0000002\.", after=swap or 0)
    best = first(r"^_exchange \.best\.\S+ best$")
    config = first(r"^replace \.config\.json\.\S+ config\.json$")  # before any checkpoint: a fresh start, no leftovers
    return sorted({p for p in (config, dev_line, swap, pointer, prune, best) if p is not None})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("work", type=Path)
    ap.add_argument("--points", default="all", help="'all', 'fast', comma-separated event numbers, or 'stride:N'")
    ap.add_argument(
        "--no-test", action="store_true", help="no test evaluation at the end (its HTML report is the slowest part)"
    )
    args = ap.parse_args(argv)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    _preload()
    assert _fork(lambda: (_quiet(work / "setup.log"), _setup(work, not args.no_test))) == 0, "setup failed"
    ref = work / "ref"
    assert _fork(lambda: _killed_run(work, ref, None, work / "events.json")) == 0, (ref.parent / "ref.log").read_text()
    events = json.loads((work / "events.json").read_text())
    if args.points == "all":
        points = list(range(1, len(events) + 1))
    elif args.points == "fast":
        points = fast_points(events)
    elif args.points.startswith("stride:"):
        step = int(args.points.split(":")[1])
        points = list(range(1, len(events) + 1, step))
    else:
        points = [int(x) for x in args.points.split(",")]
    ref_out, ref_metrics = _outputs(ref), _metrics(ref)
    results = []
    for k in points:
        run = work / f"k{k:04d}"
        status = _fork(lambda: _killed_run(work, run, k, None))
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        expected = newest_complete(run / "checkpoints")
        status = _fork(lambda: _train(work, run, True, work / f"k{k:04d}.resume.log"))
        log = (work / f"k{k:04d}.resume.log").read_text()
        m = re.search(r"resumed from \S*/(step-\d+(?:-end)?) at step", log)
        r = {
            "event": k,
            "what": events[k - 1],
            "killed": killed,
            "expected": expected,
            "resumed_from": m.group(1) if m else None,
            "exit": os.waitstatus_to_exitcode(status),
        }
        problems = []
        if not killed:
            problems.append("the run was not killed")
        if r["exit"] != 0:
            problems.append(f"--resume exited {r['exit']}: {log[-2000:]}")
        else:
            if r["resumed_from"] != expected:
                problems.append(f"resumed from {r['resumed_from']}, expected {expected}")
            outs = _outputs(run)
            diff = sorted(n for n in set(outs) | set(ref_out) if outs.get(n) != ref_out.get(n))
            if diff:
                problems.append(f"outputs differ from the uninterrupted run: {diff[:6]}")
            if _metrics(run) != ref_metrics:
                problems.append("metrics.jsonl differs from the uninterrupted run")
            if _leftovers(run):
                problems.append(f"leftovers: {_leftovers(run)}")
        r["problems"] = problems
        results.append(r)
        if not problems:
            shutil.rmtree(run, ignore_errors=True)
    print(json.dumps({"events": len(events), "event_names": events, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
