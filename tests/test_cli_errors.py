"""Every user error is one line naming the file, key or flag and what was expected, exit
status 2, no traceback (issue 18, part 3) - through the real ``unirank`` entry point in a
subprocess (one for the table: ``tests/_cli_cases.py``), also as an unprivileged user and on
a full disk.

How the hostile conditions are made (the machine's tests may run as root, which ignores
file permissions):

* unprivileged: the cases run under ``unshare -U --map-user=1000`` - a user namespace in
  which the process has no capabilities, so ``chmod 000`` and read-only folders bite;
* full disk: under ``unshare -Urm`` a 512 KiB tmpfs is mounted and the run writes there, so
  the kernel itself answers ENOSPC; where namespaces are not available, ``os.fsync`` is made
  to fail with ENOSPC (``--enospc-after``), the point where a full disk surfaces in an
  atomic write.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import write_beir

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


def _run(cases: list[dict], work: Path, prefix: list[str] = (), extra: list[str] = ()) -> dict[str, dict]:
    f = work / f"cases-{len(list(work.glob('cases-*.json')))}.json"
    f.write_text(json.dumps(cases))
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "tests._cli_cases", str(f), *extra],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {r["name"]: r for r in json.loads(proc.stdout.strip().splitlines()[-1])}


def _one_line(r: dict, expect: str) -> None:
    """Exit 2; stderr ends with exactly one ``error:`` line that contains ``expect``; no traceback."""
    assert r["traceback"] is None, r["traceback"]
    lines = [line for line in r["stderr"].splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert r["exit"] == 2 and len(errors) == 1 and lines[-1] == errors[0], (r["exit"], r["stderr"][-2000:])
    assert "Traceback" not in r["stderr"] and "Traceback" not in r["stdout"]
    assert expect in errors[0], (expect, errors[0])


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Data, models, configs and a damaged checkpoint for the table (built once)."""
    import torch

    from unirank.models.backbone import tiny_backbone
    from unirank.models.bi import BiEncoder

    w = tmp_path_factory.mktemp("cli-errors")
    os.chmod(w, 0o755)
    docs = {f"d{i}": (f"T{i}", f"document {i} about topic {i % 3}") for i in range(8)}
    queries = {f"q{i}": f"topic {i % 3}" for i in range(4)}
    for split in ("train", "test"):
        write_beir(w / "beir", docs, queries, {f"q{i}": {f"d{i}": 1} for i in range(4)}, split=split)
    torch.manual_seed(0)
    BiEncoder(tiny_backbone(hidden=16), max_length=16).save(w / "model")
    shutil.copytree(w / "model", w / "model_bad")
    weights = w / "model_bad" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    (w / "empty").mkdir()
    (w / "afile.txt").write_text("not a model\n")
    (w / "latin1.yaml").write_bytes(b"data: beir\nsplit: test\n# caf\xe9 au lait\nk: 3\n")
    (w / "train.yaml").write_text(
        json.dumps(
            {
                "model": {"kind": "bi", "name": str(w / "model")},
                "data": {"train": str(w / "beir"), "split": "train", "negatives": 0},
                "batch_size": 2,
                "epochs": 1,
                "dev": {"split": None},
                "threads": 1,
                "lr": 1e-3,
            }
        )
    )
    (w / "mined.jsonl").write_text(
        json.dumps(
            {
                "query_id": "q1",
                "query": "topic 1",
                "negatives": [],
                "positives": [{"id": "d1", "text": "document 1", "score": "high"}],
            }
        )
        + "\n"
    )
    # a run with a checkpoint, then its weights damaged
    from unirank.config import load_config
    from unirank.train import TrainConfig, train

    cfg = load_config(TrainConfig, w / "train.yaml", [f"out={w / 'run'}", "stop_after=1"])
    train(cfg, progress=False, log=lambda m: None)
    (ckpt,) = [p for p in (w / "run" / "checkpoints").iterdir() if p.name.startswith("step-")]
    (ckpt / "model.safetensors").write_bytes(b"\x00" * 10)
    (w / "empty.jsonl").write_text("")
    (w / "fake-run").mkdir()  # a `unirank train` output: config.json is the training config, the model in model/
    (w / "fake-run" / "config.json").write_text(json.dumps({"model": {"kind": "bi"}}))
    shutil.copytree(w / "model", w / "fake-run" / "model")
    (w / "garbled-store").mkdir()
    (w / "garbled-store" / "store.json").write_text('{"broken')
    (w / "user-folder").mkdir()
    (w / "user-folder" / "thesis.tex").write_text("years of work")
    return w


def test_user_errors_are_one_line_with_exit_2(world):
    w = str(world)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    taken = busy.getsockname()[1]
    table = {
        # name: (argv, what the line must say)
        "latin-1 yaml": (
            ["eval", "--config", f"{w}/latin1.yaml", "--data", f"{w}/beir", "--out", f"{w}/o1"],
            f"{w}/latin1.yaml:3: not UTF-8 text (byte 0xe9); save the file as UTF-8",
        ),
        "latin-1 train yaml": (["train", f"{w}/latin1.yaml"], "latin1.yaml:3: not UTF-8 text"),
        "--model a file": (
            [
                "eval",
                "--data",
                f"{w}/beir",
                "--split",
                "test",
                "--retriever",
                "dense",
                "--model",
                f"{w}/afile.txt",
                "--out",
                f"{w}/o2",
            ],
            f"model path {w}/afile.txt is a file; expected a model folder",
        ),
        "--model an empty folder": (
            [
                "eval",
                "--data",
                f"{w}/beir",
                "--split",
                "test",
                "--retriever",
                "dense",
                "--model",
                f"{w}/empty",
                "--out",
                f"{w}/o3",
            ],
            f"model folder {w}/empty holds no model",
        ),
        "--model corrupt weights": (
            [
                "eval",
                "--data",
                f"{w}/beir",
                "--split",
                "test",
                "--retriever",
                "dense",
                "--model",
                f"{w}/model_bad",
                "--out",
                f"{w}/o4",
            ],
            f"{w}/model_bad/model.safetensors: damaged weights file",
        ),
        "--model a hub name offline": (
            [
                "eval",
                "--data",
                f"{w}/beir",
                "--split",
                "test",
                "--retriever",
                "dense",
                "--model",
                "no-such-org/no-such-model",
                "--out",
                f"{w}/o5",
            ],
            "model 'no-such-org/no-such-model': not a local folder, and the Hugging Face hub does not give it",
        ),
        "unknown model.settings key": (
            ["train", f"{w}/train.yaml", "--out", f"{w}/t1", "--model.settings.max_lenght", "64"],
            "model.settings (kind bi): unknown parameter(s) max_lenght; valid: pooling",
        ),
        "seed -1": (
            ["train", f"{w}/train.yaml", "--out", f"{w}/t2", "--seed", "-1"],
            "seed must be in [0, 4294967295], got -1",
        ),
        "mine seed -1": (
            ["mine", "--data", f"{w}/beir", "--seed", "-1", "--out", f"{w}/m1"],
            "seed must be in [0, 4294967295]",
        ),
        "non-number score in a mined file": (
            ["train", f"{w}/train.yaml", "--out", f"{w}/t3", "--data.mined", f"{w}/mined.jsonl"],
            f"{w}/mined.jsonl:1: positives[0].score must be a finite number or null, got 'high'",
        ),
        "encode --chunk-size 0": (
            ["encode", "--data", f"{w}/beir", "--out", f"{w}/st", "--model", f"{w}/model", "--chunk-size", "0"],
            "--chunk-size: expected an integer >= 1, got 0",
        ),
        "serve --port 99999": (
            ["serve", "--index", f"{w}/beir", "--port", "99999"],
            "--port: expected a port number 0-65535, got 99999",
        ),
        "serve --port taken": (
            ["serve", "--index", f"{w}/beir", "--port", str(taken)],
            f"--port {taken}: cannot listen there",
        ),
        "serve --max-wait-ms -1": (
            ["serve", "--index", f"{w}/beir", "--max-wait-ms", "-1"],
            "max_wait_ms (--max-wait-ms) must be a finite",
        ),
        "serve --max-batch-size 0": (
            ["serve", "--index", f"{w}/beir", "--max-batch-size", "0"],
            "max_batch_size (--max-batch-size) must be",
        ),
        "serve --api-key ''": (
            ["serve", "--index", f"{w}/beir", "--api-key", ""],
            "api_key (--api-key / UNIRANK_API_KEY) is empty",
        ),
        "serve UNIRANK_API_KEY=''": (
            ["serve", "--index", f"{w}/beir"],
            "api_key (--api-key / UNIRANK_API_KEY) is empty",
        ),
        "damaged checkpoint on --resume": (
            ["train", f"{w}/train.yaml", "--out", f"{w}/run", "--resume"],
            "model.safetensors: damaged checkpoint",
        ),
        "dev.batch_size 0": (
            ["train", f"{w}/train.yaml", "--out", f"{w}/t4", "--dev.split", "test", "--dev.batch_size", "0"],
            "dev.batch_size must be >= 1, got 0",
        ),
        "negative loss weight": (
            ["train", f"{w}/train.yaml", "--out", f"{w}/t5", "--losses.infonce", "-1"],
            "losses.infonce: weight must be >= 0",
        ),
        "NaN max_grad_norm": (
            ["train", f"{w}/train.yaml", "--out", f"{w}/t6", "--max_grad_norm", ".nan"],
            "'max_grad_norm': expected a finite number",
        ),
        "--out a user's folder": (
            ["eval", "--data", f"{w}/beir", "--split", "test", "--out", f"{w}/user-folder"],
            f"out: {w}/user-folder is a non-empty folder that unirank did not write",
        ),
        "--out under a file": (
            ["eval", "--data", f"{w}/beir", "--split", "test", "--out", f"{w}/afile.txt/out"],
            f"out: cannot create {w}/afile.txt/out: {w}/afile.txt is a file",
        ),
        "unknown retriever": (
            ["eval", "--data", f"{w}/beir", "--retriever", "bm52"],
            "unknown retriever 'bm52'; valid:",
        ),
        "missing data": (["eval", "--data", f"{w}/nothing", "--split", "test"], f"{w}/nothing"),
        "index of no store": (["index", "--store", f"{w}/beir", "--out", f"{w}/ix"], "not an embedding store"),
        # the CLI review of 2026-12-06: each of these was a traceback
        "index of a garbled store.json": (
            ["index", "--store", f"{w}/garbled-store", "--out", f"{w}/ix2"],
            f"{w}/garbled-store/store.json:1: not valid JSON",
        ),
        "mine teacher filter, no teacher": (
            ["mine", "--data", f"{w}/beir", "--filter", "teacher:threshold=0.5", "--out", f"{w}/m2"],
            "filter 'teacher': uses teacher scores, but no teacher is set",
        ),
        "mine simans use=teacher, no teacher": (
            ["mine", "--data", f"{w}/beir", "--sampler", "simans:use=teacher", "--out", f"{w}/m3"],
            "sampler 'simans': uses teacher scores, but no teacher is set",
        ),
        "export bi ranker into a user's folder": (
            ["export", "--kind", "bi", "--format", "ranker", "--out", f"{w}/user-folder"],
            "user-folder is a non-empty folder that unirank did not write",
        ),
        "export bi ranker onto a file": (
            ["export", "--kind", "bi", "--format", "ranker", "--out", f"{w}/afile.txt"],
            "afile.txt is a file; expected an output folder",
        ),
        "fusion negative k_rrf": (
            ["eval", "--data", f"{w}/beir", "--split", "test", "--retriever", "fusion", "--set", "retriever.k_rrf=-5"],
            "retriever.k_rrf must be >= 0, got -5.0",
        ),
        "--model a training run folder": (
            ["eval", "--data", f"{w}/beir", "--split", "test", "--retriever", "dense", "--model", f"{w}/fake-run"],
            f"model folder {w}/fake-run is a training run; its trained model is {w}/fake-run/model",
        ),
        "train: a metric typo is refused before training": (
            ["train", f"{w}/train.yaml", "--out", f"{w}/t9", "--test.split", "test", "--test.measures", "[ndcg@x]"],
            "test.measures: unknown metric 'ndcg@x'",
        ),
        "eval --first-stage-run without a reranker": (
            ["eval", "--data", f"{w}/beir", "--split", "test", "--first-stage-run", f"{w}/afile.txt"],
            "rerank.first_stage_run (--first-stage-run) is the run a reranker reorders",
        ),
        # before the server starts (these used to print uvicorn's start-up and shut-down first)
        "serve --retriever cur, no index": (
            ["serve", "--index", f"{w}/beir", "--retriever", "cur"],
            "retriever cur needs retriever.cur.index",
        ),
        "serve --retriever cur, not an index": (
            ["serve", "--index", f"{w}/beir", "--retriever", "cur", "--set", f"cur.index={w}/empty"],
            f"{w}/empty: not a CUR index (no cur.json)",
        ),
        "serve --backend foo": (
            ["serve", "--index", f"{w}/beir", "--model", f"{w}/model", "--backend", "foo"],
            "backend: unknown inference backend 'foo'",
        ),
        "serve --dense-model missing": (
            ["serve", "--index", f"{w}/beir", "--retriever", "dense", "--dense-model", f"{w}/nothing"],
            f"model folder {w}/nothing does not exist",
        ),
        "serve --text-policy foo": (
            ["serve", "--index", f"{w}/beir", "--text-policy", "foo"],
            "--text-policy (Limits.text_policy) must be 'reject' or 'truncate', got 'foo'",
        ),
        "mine --filter none with another filter": (
            ["mine", "--data", f"{w}/beir", "--filter", "none", "--filter", "duplicates", "--out", f"{w}/m4"],
            "--filter none means no filter besides dropping the positives; give it alone",
        ),
        "serve --log-level loud": (
            ["serve", "--index", f"{w}/beir", "--log-level", "loud"],
            "--log-level: expected one of critical | error | warning | info | debug | trace, got 'loud'",
        ),
        "serve --max-docs 0": (["serve", "--index", f"{w}/beir", "--max-docs", "0"], "'--max-docs'"),
        "serve --rerank-depth 0": (["serve", "--index", f"{w}/beir", "--rerank-depth", "0"], "'--rerank-depth'"),
        "encode into a user's folder": (
            ["encode", "--data", f"{w}/beir", "--out", f"{w}/user-folder"],
            "is a non-empty folder but no embedding store",
        ),
        "demo steps and minutes": (
            ["demo", "--out", f"{w}/demo-out", "--finetune-steps", "3", "--finetune-minutes", "1"],
            "demo: give --finetune-steps or --finetune-minutes, not both",
        ),
        "demo negative steps": (
            ["demo", "--out", f"{w}/demo-out", "--finetune-steps", "-1"],
            "demo: --finetune-steps must be >= 0 (0 skips fine-tuning), got -1",
        ),
        "demo no queries": (
            ["demo", "--out", f"{w}/demo-out", "--limit-queries", "0"],
            "demo: --limit-queries must be >= 1, got 0",
        ),
        "demo negative docs": (
            ["demo", "--out", f"{w}/demo-out", "--max-docs", "-1"],
            "demo: --max-docs must be >= 1, got -1",
        ),
        "train into a user's folder": (
            ["train", f"{w}/train.yaml", "--out", f"{w}/user-folder"],
            f"out: {w}/user-folder is a non-empty folder that unirank did not write (no config.json,",
        ),
        "demo --out a file": (
            ["demo", "--out", f"{w}/afile.txt"],
            f"demo: --out: {w}/afile.txt is a file; expected an output folder",
        ),
        "train: a folder as data.mined": (
            ["train", f"{w}/train.yaml", "--out", f"{w}/t10", "--data.mined", f"{w}/empty"],
            f"{w}/empty: expected a mined train.jsonl file, not a folder",
        ),
        "train: an empty mined file": (
            ["train", f"{w}/train.yaml", "--out", f"{w}/t11", "--data.mined", f"{w}/empty.jsonl"],
            f"no training examples (data.mined {w}/empty.jsonl: no rows;",
        ),
        "demo nan minutes": (
            ["demo", "--out", f"{w}/demo-out", "--finetune-minutes", "nan"],
            "demo: --finetune-minutes must be >= 0 (0 skips fine-tuning), got nan",
        ),
    }
    try:
        env = {"serve UNIRANK_API_KEY=''": {"UNIRANK_API_KEY": ""}}  # set but empty: typer reads it as unset
        results = _run([{"name": n, "argv": argv, "env": env.get(n)} for n, (argv, _) in table.items()], world)
    finally:
        busy.close()
    failures = []
    for name, (argv, expect) in table.items():
        try:
            _one_line(results[name], expect)
            if argv[0] == "serve":  # refused before the server starts, not after uvicorn's start-up log
                assert "Started server process" not in results[name]["stderr"], results[name]["stderr"][-1000:]
        except AssertionError as e:
            failures.append(f"{name}: {e}")
    assert not failures, "\n".join(failures)
    assert (world / "user-folder" / "thesis.tex").read_text() == "years of work"
    assert [p.name for p in (world / "user-folder").iterdir()] == ["thesis.tex"]  # nothing added either
    assert not (world / "demo-out").exists()  # a refused demo writes nothing


def test_a_bug_still_shows_its_traceback(world, monkeypatch, capsys):
    """The guard classifies: an exception that is no user error keeps its traceback (exit 1)."""
    import unirank.index.sparse as sparse
    from unirank.cli import main

    def boom(*a, **k):
        raise KeyError("internal_field")  # a bug: a bare KeyError, not a registry's UnknownName

    monkeypatch.setattr(sparse.BM25Index, "build", boom)
    with pytest.raises(KeyError, match="internal_field"):
        main(["eval", "--data", f"{world}/beir", "--split", "test"])
    assert "error:" not in capsys.readouterr().err


def _unshare_works(*flags: str) -> bool:
    if shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", *flags, "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_permission_errors_as_an_unprivileged_user(world, tmp_path):
    if os.geteuid() == 0 and not _unshare_works("-U", "--map-user=1000"):
        pytest.skip("running as root and no user namespace to drop the privileges in")
    prefix = ["unshare", "-U", "--map-user=1000", "--map-group=1000"] if os.geteuid() == 0 else []
    locked = tmp_path / "locked"
    shutil.copytree(world / "beir", locked)
    (locked / "corpus.jsonl").chmod(0o000)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    noread = tmp_path / "noread.yaml"
    noread.write_text("k: 3\n")
    noread.chmod(0o000)
    table = {
        "unreadable input": (
            ["eval", "--data", str(locked), "--split", "test", "--out", str(tmp_path / "o")],
            f"{locked}/corpus.jsonl: Permission denied",
        ),
        "unreadable config": (
            ["eval", "--config", str(noread), "--data", str(world / "beir")],
            f"Invalid value for '--config': path '{noread}' is not readable",
        ),
        "--out not writable": (
            ["eval", "--data", str(world / "beir"), "--split", "test", "--out", str(ro / "out")],
            f"out: cannot write to {ro}: Permission denied",
        ),
        "train --out not writable": (
            ["train", str(world / "train.yaml"), "--out", str(ro / "run")],
            "out: cannot write to",
        ),
        "mine --out not writable": (
            ["mine", "--data", str(world / "beir"), "--out", str(ro / "m")],
            "out: cannot write to",
        ),
        "encode --out not writable": (
            ["encode", "--data", str(world / "beir"), "--model", str(world / "model"), "--out", str(ro / "s")],
            "--out: cannot write to",
        ),
    }
    try:
        results = _run([{"name": n, "argv": a} for n, (a, _) in table.items()], tmp_path, prefix=prefix)
    finally:
        ro.chmod(0o755)
        (locked / "corpus.jsonl").chmod(0o644)
    for name, (_, expect) in table.items():
        _one_line(results[name], expect)


def test_a_full_disk_is_one_line_and_leaves_the_previous_output(world, tmp_path):
    """ENOSPC in the middle of writing: the guard names the file; the old folder survives."""
    out = tmp_path / "full" / "eval"
    cases = [
        {"name": "eval", "argv": ["eval", "--data", str(world / "beir"), "--split", "test", "--out", str(out)]},
        {"name": "train", "argv": ["train", str(world / "train.yaml"), "--out", str(tmp_path / "full" / "run")]},
    ]
    if _unshare_works("-Urm"):
        how = "tmpfs"
        (tmp_path / "full").mkdir()
        f = tmp_path / "cases.json"
        f.write_text(json.dumps(cases))
        # a small tmpfs: room for the eval's outputs, not for a model checkpoint
        script = (
            f"mount -t tmpfs -o size=512k tmpfs {tmp_path / 'full'} && exec {sys.executable} -m tests._cli_cases {f}"
        )
        proc = subprocess.run(
            ["unshare", "-Urm", "sh", "-c", script], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        results = {r["name"]: r for r in json.loads(proc.stdout.strip().splitlines()[-1])}
        _one_line(results["train"], "No space left on device (free some space or write elsewhere)")
        assert (
            results["eval"]["exit"] == 0 and (out / "metrics.json").exists() is False
        )  # fits in the tmpfs (gone with it)
    else:
        how = "patched fsync"
        _run(cases[:1], tmp_path)  # a first, complete output
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        results = _run(cases, tmp_path, extra=["--enospc-after", "2"])
        _one_line(results["eval"], "No space left on device (free some space or write elsewhere)")
        _one_line(results["train"], "No space left on device")
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    print(f"full disk simulated with: {how}")
