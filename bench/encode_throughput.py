"""Corpus-encoding throughput: unirank BiEncoder.encode vs SentenceTransformer.encode.

Same model (the packaged all-MiniLM-L6-v2), same texts, batch size and max length. Runs
alternate which encoder goes first and repeat; the best and median texts/second of each
are reported with their ratio, and the embeddings are checked to agree.

Usage:
    .venv/bin/python bench/encode_throughput.py --n 1000 [--batch-size 32] [--rounds 2]

Appends a section to bench/RESULTS.md (``--no-record`` to skip).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

SCIFACT = str(
    Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact/corpus.jsonl"
)  # ../shared beside the repository


def read_texts(path: str, n: int) -> list[str]:
    """First ``n`` documents of a BEIR corpus.jsonl as ``title + " " + text`` (no title: text only)."""
    from unirank.data.beir import load_corpus

    return [doc.full_text for doc in list(load_corpus(path).values())[:n]]


def machine() -> str:
    import torch

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"nproc {os.cpu_count()}, CPU {cpu}, GPU {gpu}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}), python "
        f"{platform.python_version()}"
    )


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="number of texts")
    p.add_argument("--corpus", default=SCIFACT, help="BEIR corpus.jsonl")
    p.add_argument("--model", default=None, help="sentence-transformers folder (default: packaged all-MiniLM-L6-v2)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--device", default=None, help="default: CUDA when present, else CPU")
    p.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    p.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = p.parse_args(argv)

    from importlib.metadata import version

    import numpy as np
    from sentence_transformers import SentenceTransformer

    from unirank.io import write_text
    from unirank.models.backbone import pick_device, resolve_model_path
    from unirank.models.bi import BiEncoder

    device = pick_device(args.device)
    texts = read_texts(args.corpus, args.n)
    model_dir = resolve_model_path(args.model)
    ours = BiEncoder.from_pretrained(model_dir, max_length=args.max_length)
    ref = SentenceTransformer(model_dir, device=str(device))
    ref.max_seq_length = args.max_length
    load_before = os.getloadavg()

    runners = {
        "unirank": lambda t: ours.encode(t, batch_size=args.batch_size, device=device, show_progress=False),
        "sentence-transformers": lambda t: ref.encode(t, batch_size=args.batch_size, show_progress_bar=False),
    }
    for run in runners.values():  # warm-up: first-call allocations, lazy imports
        run(texts[: args.batch_size])

    seconds: dict[str, list[float]] = {k: [] for k in runners}
    cpu_seconds: dict[str, list[float]] = {k: [] for k in runners}  # all threads of this process
    out: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        names = list(runners) if r % 2 == 0 else list(reversed(runners))
        for name in names:
            t0, c0 = time.perf_counter(), time.process_time()
            out[name] = runners[name](texts)
            seconds[name].append(time.perf_counter() - t0)
            cpu_seconds[name].append(time.process_time() - c0)
            print(f"round {r + 1} {name}: {len(texts) / seconds[name][-1]:.2f} texts/s", flush=True)
    load_after = os.getloadavg()

    diff = float(np.abs(out["unirank"] - out["sentence-transformers"]).max())
    rate = {k: {"best": len(texts) / min(v), "median": len(texts) / statistics.median(v)} for k, v in seconds.items()}
    ratio = {s: rate["unirank"][s] / rate["sentence-transformers"][s] for s in ("best", "median")}
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd() + os.sep) else "python"
    command = shlex.join([python, "bench/encode_throughput.py", *(sys.argv[1:] if argv is None else argv)])
    lines = [
        "## Encode throughput: unirank BiEncoder.encode vs SentenceTransformer.encode "
        f"({dt.datetime.now():%Y-%m-%d %H:%M})",
        "",
        f"- command: `{command}`",
        f"- machine: {machine()}; device {device}",
        f"- versions: sentence-transformers {version('sentence-transformers')}, transformers {version('transformers')}",
        f"- workload: first {len(texts)} docs of `{args.corpus}` (title + text), model "
        f"{args.model or 'all-MiniLM-L6-v2'}, "
        f"batch size {args.batch_size}, max length {args.max_length}, {args.rounds} rounds alternating order",
        f"- 1-minute load average before / after the timed runs: {load_before[0]:.2f} / {load_after[0]:.2f} "
        "(the 'after' value includes this benchmark's own threads)",
        "",
        "| encoder | best texts/s | median texts/s | wall seconds per run | process CPU seconds per run |",
        "|---|---|---|---|---|",
        *(
            f"| {k} | {rate[k]['best']:.2f} | {rate[k]['median']:.2f} | {', '.join(f'{s:.1f}' for s in seconds[k])} "
            f"| {', '.join(f'{s:.1f}' for s in cpu_seconds[k])} |"
            for k in runners
        ),
        "",
        f"- ratio unirank / sentence-transformers: best {ratio['best']:.3f}, median {ratio['median']:.3f}",
        f"- max |embedding difference|: {diff:.2e}",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if not args.no_record:
        path = Path(args.results)
        old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n\n"
        write_text(path, old.rstrip("\n") + "\n\n" + report)
    return {"rate": rate, "ratio": ratio, "max_abs_diff": diff, "seconds": seconds, "cpu_seconds": cpu_seconds}


if __name__ == "__main__":
    main()
