"""Peak memory and step time of one training step with and without gradient checkpointing.

The SciFact reranker recipe of ``bench/train_rankers.py`` (query 64 / document 256 tokens,
the positive + 7 mined negatives per query, listwise cross-entropy) on all-MiniLM-L6-v2:
a Uni-Encoder pass holds one query and its 8 documents (~2,100 tokens), a cross-encoder
8 pairs of ~320 tokens. Rows are the first ``--batch`` rows of epoch 0 of the mined file
(seed 42) that have 7 negatives, i.e. real SciFact texts.

Every (kind, checkpointing) runs in a fresh subprocess, so its peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own: ``load`` is the peak after
building the model and the batch, ``peak`` the peak after the steps; ``step s`` is the
median time of forward + backward over the steps after the first (warm-up).

Usage:
    .venv/bin/python bench/checkpointing_memory.py --mined bench/out/scifact_bm25/train.jsonl
        [--kinds uni,cross] [--batch 4] [--steps 3] [--modes off,on] [--data-root DIR] [--no-record]

Appends a section to bench/RESULTS.md unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

LENGTHS = {"max_context_length": 64, "max_candidate_length": 256}


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def one(
    kind: str, checkpointing: bool, batch: int, steps: int, mined: str, data_root: str | None, segmented: bool = False
) -> dict:
    """Run ``steps`` forward + backward passes in this process; return the measurements.

    ``segmented``: the Uni-Encoder's segment-factorised pass instead of one masked pass."""
    import torch

    from unirank.data.dialogue import default_data_root
    from unirank.models.backbone import enable_gradient_checkpointing
    from unirank.train import build_model
    from unirank.training.config import DataConfig, ModelConfig
    from unirank.training.data import epoch_rows, load_examples

    settings = dict(LENGTHS, **({"chunk_size": 16, "segmented": segmented} if kind == "uni" else {}))
    model = build_model(ModelConfig(kind=kind, name=None, settings=settings))
    if checkpointing:
        enable_gradient_checkpointing(model)
    model.train()
    base = str(Path(data_root or default_data_root()) / "scifact")
    examples, _ = load_examples(DataConfig(train=base, split="train", mined=mined, negatives=7))
    rows = [r for r in epoch_rows(examples, 0, 42, 7, "random") if len(r.negatives) == 7][:batch]
    contexts = [r.query for r in rows]
    candidates = [[r.positive.text] + [n.text for n in r.negatives] for r in rows]
    labels = torch.zeros(len(rows), dtype=torch.long)
    load = peak_mib()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model.score(contexts, candidates), labels)
        loss.backward()
        model.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    return {
        "kind": kind + (" segmented" if segmented else ""),
        "checkpointing": checkpointing,
        "batch": batch,
        "candidates": len(candidates[0]),
        "load_mib": round(load),
        "peak_mib": round(peak_mib()),
        "step_s": round(statistics.median(times[1:] or times), 2),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mined", required=True, help="mined SciFact train.jsonl (bench/mine_scifact.py writes it)")
    ap.add_argument("--data-root", default=os.environ.get("UNIRANK_DATA"))
    ap.add_argument("--kinds", default="uni,cross")
    ap.add_argument(
        "--modes",
        default="off,on",
        help="off | on (gradient checkpointing) | seg (uni: segmented pass, no checkpointing)",
    )
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # "kind,on|off": the subprocess
    ap.add_argument("--no-record", action="store_true")
    a = ap.parse_args()
    if a.one:
        kind, mode = a.one.split(",")
        print(
            json.dumps(one(kind, mode == "on", a.batch, a.steps, a.mined, a.data_root, segmented=mode == "seg")),
            flush=True,
        )
        return
    rows = []
    for kind in a.kinds.split(","):
        for mode in a.modes.split(","):
            if mode == "seg" and kind != "uni":
                continue
            cmd = [
                sys.executable,
                __file__,
                "--one",
                f"{kind},{mode}",
                "--mined",
                a.mined,
                "--batch",
                str(a.batch),
                "--steps",
                str(a.steps),
            ]
            if a.data_root:
                cmd += ["--data-root", a.data_root]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                why = "killed (out of memory?)" if p.returncode in (-9, 137) else p.stderr.strip().splitlines()[-1:]
                rows.append(
                    {
                        "kind": kind,
                        "checkpointing": mode == "on",
                        "batch": a.batch,
                        "error": f"exit {p.returncode}: {why}",
                    }
                )
            else:
                rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    table = [
        "| kind | checkpointing | rows x candidates | peak RSS after load (MiB) | peak RSS after steps (MiB) | step s "
        "(fwd+bwd) |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            table.append(
                f"| {r['kind']} | {'on' if r['checkpointing'] else 'off'} | {r['batch']} x 8 | - | {r['error']} | - |"
            )
        else:
            table.append(
                f"| {r['kind']} | {'on' if r['checkpointing'] else 'off'} | {r['batch']} x {r['candidates']} | "
                f"{r['load_mib']} | "
                f"{r['peak_mib']} | {r['step_s']} |"
            )
    print("\n".join(table))
    if a.no_record:
        return
    from _record import append, host, section

    machine = f"{host('cpu', rows[0].get('threads', '?'))}, all-MiniLM-L6-v2, float32; query 64 / document 256 tokens."
    append(
        section(
            "Gradient checkpointing: memory and time of one reranker training step",
            "checkpointing_memory.py",
            machine,
            table,
        )
    )


if __name__ == "__main__":
    main()
