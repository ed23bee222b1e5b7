"""kill -9 at every stage of a checkpoint write, then ``unirank train --resume``: it continues
from the newest complete checkpoint and ends byte-identical to an uninterrupted run.

The driver (``tests/_kill_anywhere.py``) counts every file-system mutation of a tiny training
run through the real ``unirank train`` command and kills a forked copy of it right before
the chosen one. The default run kills at six moments: the first file of a fresh run, and the
five most likely to lose progress around an epoch end that coincides with a ``save_every``
checkpoint; the slow test kills before every one of the run's ~400 mutations.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _drive(work: Path, points: str, timeout: int, *extra: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, "-m", "tests._kill_anywhere", str(work), "--points", points, *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _check(report: dict, at_least: int) -> None:
    results = report["results"]
    assert len(results) >= at_least, report["event_names"]
    bad = [r for r in results if r["problems"]]
    assert not bad, json.dumps(bad[:5], indent=1)
    assert all(r["killed"] for r in results)
    # progress is never lost: after the first checkpoint, every resume starts from one
    first_ckpt = next(i for i, e in enumerate(report["event_names"], 1) if e.startswith("replace .latest.json"))
    assert all(r["resumed_from"] is not None for r in results if r["event"] > first_ckpt + 1)


def test_kill_at_the_epoch_end_stages_then_resume(tmp_path):
    report = _drive(tmp_path, "fast", 300, "--no-test")
    names = [r["what"] for r in report["results"]]
    assert any(n.startswith("open(a) metrics.jsonl") for n in names)  # right after the dev line
    assert any("step-0000002-end" in n for n in names)  # the epoch-end checkpoint's swap
    assert any(n.startswith("rmtree .step-0000002.") for n in names)  # pruning the step checkpoint
    assert any(n.startswith("replace .config.json") for n in names)  # a fresh run's first file
    _check(report, at_least=5)


@pytest.mark.slow
def test_kill_before_every_file_system_change_then_resume(tmp_path):
    report = _drive(tmp_path, "all", timeout=3600)
    assert report["events"] > 300
    _check(report, at_least=report["events"])
