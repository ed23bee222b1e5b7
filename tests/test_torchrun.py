"""The real launcher: ``torchrun ... -m unirank train`` as users run it (slow: starts processes).

Two rendezvous shapes on this one machine: one node with two processes, and two "nodes"
(two ``torchrun`` invocations with ``--nnodes 2 --node_rank 0/1`` and a c10d rendezvous
endpoint, as on a cluster) with one process each. Both must end with the weights of a
single-process run over the same global batches.
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
import torch
import yaml

from .conftest import write_beir

pytestmark = pytest.mark.slow

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _setup(tmp_path: Path) -> Path:
    from unirank.models.backbone import tiny_backbone
    from unirank.models.bi import BiEncoder

    docs = {f"d{i}": (f"T{i}", f"answer about topic {i}") for i in range(10)}
    queries = {f"q{i}": f"question on topic {i}" for i in range(10)}
    data = write_beir(tmp_path / "beir", docs, queries, {f"q{i}": {f"d{i}": 1} for i in range(10)}, split="train")
    model = BiEncoder(tiny_backbone(hidden=16, seed=0), max_length=16)
    for mod in model.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
    model.backbone.model.config.attention_probs_dropout_prob = 0.0
    model.backbone.model.config.hidden_dropout_prob = 0.0
    model.save(tmp_path / "model")
    cfg = {
        "model": {"kind": "bi", "name": str(tmp_path / "model")},
        "data": {"train": str(data), "split": "train", "negatives": 0},
        "batch_size": 4,
        "epochs": 2,
        "lr": 1.0e-3,
        "warmup_ratio": 0.0,
        "dev": {"split": None},
        "test": {"split": None},
        "batching": {"name": "random"},
        "threads": 1,
        "log_every": 1,
        "export": "last",
    }
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "train.yaml"


def _weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    name = json.loads((out / "checkpoints" / "latest.json").read_text())["checkpoint"]
    return load_file(str(out / "checkpoints" / name / "model.safetensors"))


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed")
def test_torchrun_one_node_and_two_nodes_equal_one_process(tmp_path):
    cfg = _setup(tmp_path)
    one = subprocess.run(
        [sys.executable, "-m", "unirank", "train", str(cfg), "--out", str(tmp_path / "p1")],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    node = subprocess.run(
        [
            TORCHRUN,
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "unirank",
            "train",
            str(cfg),
            "--out",
            str(tmp_path / "n1p2"),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert node.returncode == 0, node.stderr[-3000:]
    port = _port()
    common = [
        "--nnodes",
        "2",
        "--nproc_per_node",
        "1",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"127.0.0.1:{port}",
        "--rdzv-id",
        "unirank-test",
    ]
    procs = [
        subprocess.Popen(
            [
                TORCHRUN,
                *common,
                "--node_rank",
                str(r),
                "-m",
                "unirank",
                "train",
                str(cfg),
                "--out",
                str(tmp_path / "n2p1"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for r in (0, 1)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-3000:] for o in outs]
    ref = _weights(tmp_path / "p1")
    for run in ("n1p2", "n2p1"):
        got = _weights(tmp_path / run)
        for k in ref:
            torch.testing.assert_close(got[k], ref[k], rtol=1e-4, atol=1e-5, msg=f"{run}: {k}")
        summary = json.loads((tmp_path / run / "summary.json").read_text())
        assert summary["steps"] == json.loads((tmp_path / "p1" / "summary.json").read_text())["steps"]
