"""Load test of ``unirank serve``: throughput and latency with and without dynamic batching.

For each mode (``batched``, ``unbatched``) it starts the server in a subprocess on
127.0.0.1 (a free port), waits for ``/readyz``, then for each route runs a closed-loop
client: ``--concurrency`` asyncio workers (httpx, one connection each) send requests back to
back for ``--duration`` seconds. It reports requests/s, p50 / p99 latency, the count of
5xx answers and transport errors, and the server's mean batch size (from ``/metrics``),
then stops the server with SIGTERM (graceful shutdown) and checks that it exits.

Requests:

* ``/rank``: a test query of the data set as context and ``--candidates`` documents
  (their first ``--candidate-chars`` characters) as candidates;
* ``/search``: a test query, ``k=10``.

Only loopback traffic; bounded in time (``--duration`` per route and mode, plus server
start-up under ``--ready-timeout``) and in count (``--max-requests`` per run).

Usage::

    python bench/load_test.py --duration 60 --concurrency 32
    python bench/load_test.py --duration 20 --retriever bm25 --markdown out.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SERVER_CODE = "import json, sys; from unirank.serve.app import serve_main; serve_main(**json.loads(sys.argv[1]))"


@dataclass
class RunStats:
    route: str
    mode: str
    concurrency: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0
    mean_batch: float | None = None
    backend: str = "torch"

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if 200 <= s < 300)

    @property
    def five_xx(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    def pct(self, q: float) -> float:
        """Latency percentile in ms (nearest rank)."""
        if not self.latencies:
            return float("nan")
        xs = sorted(self.latencies)
        return 1000 * xs[min(len(xs) - 1, max(0, int(round(q / 100 * len(xs) + 0.5)) - 1))]

    def row(self) -> str:
        mb = "-" if self.mean_batch is None else f"{self.mean_batch:.1f}"
        return (
            f"| {self.backend} | {self.route} | {self.mode} | {self.concurrency} | {self.ok} | "
            f"{self.ok / self.seconds:.1f} | "
            f"{self.pct(50):.0f} | {self.pct(99):.0f} | {self.five_xx} | {self.transport_errors} | {mb} |"
        )


HEADER = (
    "| backend | route | batching | clients | ok requests | req/s | p50 ms | p99 ms | 5xx | transport errors | mean "
    "batch |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(kwargs: dict, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "w")
    return subprocess.Popen(
        [sys.executable, "-c", SERVER_CODE, json.dumps(kwargs)], stdout=log, stderr=subprocess.STDOUT
    )


def wait_ready(base: str, proc: subprocess.Popen, timeout: float) -> float:
    import httpx

    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before it was ready")
        try:
            r = httpx.get(base + "/readyz", timeout=2)
            if r.status_code == 200:
                return time.time() - t0
            if r.json().get("status", "").startswith("failed"):
                raise RuntimeError(f"server failed to load: {r.json()['status']}")
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"server not ready after {timeout} s")


async def closed_loop(
    base: str, route: str, bodies: list[dict], concurrency: int, duration: float, max_requests: int, stats: RunStats
) -> None:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    stop_at = time.perf_counter() + duration
    sent = 0

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:

        async def worker(w: int) -> None:
            nonlocal sent
            rng = random.Random(w)
            while time.perf_counter() < stop_at and sent < max_requests:
                sent += 1
                body = bodies[rng.randrange(len(bodies))]
                t0 = time.perf_counter()
                try:
                    r = await client.post(route, json=body)
                except httpx.TransportError:
                    stats.transport_errors += 1
                    continue
                stats.latencies.append(time.perf_counter() - t0)
                stats.statuses[r.status_code] = stats.statuses.get(r.status_code, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        stats.seconds = time.perf_counter() - t0


def make_bodies(index: str, n_candidates: int, candidate_chars: int, seed: int = 0) -> dict[str, list[dict]]:
    from unirank.data.datasets import load_dataset

    ds = load_dataset(index, split="test")
    rng = random.Random(seed)
    queries = [q.text for q in ds.split_queries().values()][:500]
    docs = list(ds.corpus.values())
    rank = [
        {"context": q, "candidates": [d.full_text[:candidate_chars] for d in rng.sample(docs, n_candidates)]}
        for q in queries[:200]
    ]
    search = [{"query": q, "k": 10, "return_text": False} for q in queries]
    return {"/rank": rank, "/search": search}


def run_mode(
    mode: str, args: argparse.Namespace, bodies: dict[str, list[dict]], out_dir: Path, backend: str = "torch"
) -> tuple[list[RunStats], float, str]:
    import httpx

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    kwargs = dict(
        model=args.rank_model,
        kind=args.rank_kind,
        index=args.index,
        host="127.0.0.1",
        port=port,
        retriever=args.retriever,
        batching=(mode == "batched"),
        max_batch_size=args.max_batch_size,
        max_wait_ms=args.max_wait_ms,
        max_docs=args.max_docs,
        log_level="info",
        max_queue=4096,
        device=args.device,
        backend=backend,
    )
    log_name = (
        f"server-{mode}.log"
        if backend == "torch"
        else f"server-{mode}-{backend.replace(':', '_').replace(',', '_')}.log"
    )
    proc = start_server(kwargs, out_dir / log_name)
    results: list[RunStats] = []
    try:
        ready_s = wait_ready(base, proc, args.ready_timeout)
        print(f"[{mode}] server ready after {ready_s:.0f} s", flush=True)
        for route in args.routes:
            for c in args.concurrency:
                # warm-up (not measured): a few requests so first-call costs are paid
                for b in bodies[route][:3]:
                    httpx.post(base + route, json=b, timeout=120)
                before = _batch_counts(base)
                st = RunStats(route, mode, c, args.duration, backend=backend)
                asyncio.run(closed_loop(base, route, bodies[route], c, args.duration, args.max_requests, st))
                st.mean_batch = _window_mean(before, _batch_counts(base), route.strip("/"))
                results.append(st)
                print(st.row(), flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
    # uvicorn re-raises the SIGTERM it handled once shutdown is done, so the status is -15;
    # the log tells whether the lifespan shutdown (batchers drained) completed
    log = (out_dir / log_name).read_text(errors="replace")
    graceful = "Application shutdown complete" in log
    return results, ready_s, f"status {code}, graceful shutdown {'completed' if graceful else 'NOT completed'}"


def _batch_counts(base: str) -> dict[str, tuple[float, float]]:
    import httpx

    text = httpx.get(base + "/metrics", timeout=10).text
    sums = dict(re.findall(r'unirank_batch_size_sum\{queue="(\w+)"\} (\S+)', text))
    counts = dict(re.findall(r'unirank_batch_size_count\{queue="(\w+)"\} (\S+)', text))
    return {q: (float(sums[q]), float(counts.get(q, 0))) for q in sums}


def _window_mean(before: dict, after: dict, queue: str) -> float | None:
    s0, c0 = before.get(queue, (0.0, 0.0))
    s1, c1 = after.get(queue, (0.0, 0.0))
    return (s1 - s0) / (c1 - c0) if c1 > c0 else None


def machine() -> str:
    cores = os.cpu_count()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return (
        f"{cpu}, {cores} CPU cores, {platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"torch {torch.__version__} (threads {torch.get_num_threads()})"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=60.0, help="seconds per route, mode and concurrency")
    p.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[32], help="clients, e.g. 32 or 1,32"
    )
    p.add_argument(
        "--routes",
        type=lambda s: [r if r.startswith("/") else "/" + r for r in s.split(",")],
        default=["/rank", "/search"],
    )
    p.add_argument("--modes", type=lambda s: s.split(","), default=["batched", "unbatched"])
    p.add_argument("--candidates", type=int, default=10, help="candidates per /rank request")
    p.add_argument("--candidate-chars", type=int, default=300, help="characters kept of each candidate document")
    p.add_argument("--rank-model", default="minilm", help="ranker weights (default: packaged MiniLM backbone)")
    p.add_argument("--rank-kind", default="cross", help="bi | cross | poly | uni")
    p.add_argument("--index", default="stdlib-codesearch", help="built-in data set name or BEIR folder")
    p.add_argument(
        "--retriever", default="dense", help="bm25 | dense | hybrid (dense uses the packaged MiniLM bi-encoder)"
    )
    p.add_argument("--max-docs", type=int, default=None, help="index only the first N documents")
    p.add_argument("--device", default=None, help="server device: cpu | cuda (default: cuda when present)")
    p.add_argument(
        "--backends",
        type=lambda s: s.split(";"),
        default=["torch"],
        help="inference backends run in turn, ';'-separated, e.g. 'torch;onnx:threads=2'",
    )
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=1.0)
    p.add_argument("--max-requests", type=int, default=1_000_000, help="hard cap on requests per run")
    p.add_argument("--ready-timeout", type=float, default=900.0)
    p.add_argument("--out", type=Path, default=Path("bench/out/load_test"), help="server logs and results.json")
    p.add_argument("--markdown", type=Path, default=None, help="also write the results table here")
    p.add_argument(
        "--record", action="store_true", help="also append a dated section to bench/RESULTS.md (bench/_record.py)"
    )
    args = p.parse_args(argv)
    if args.duration <= 0 or args.duration > 3600 or any(c < 1 or c > 256 for c in args.concurrency):
        p.error("--duration must be in (0, 3600] and --concurrency in 1..256")
    args.out.mkdir(parents=True, exist_ok=True)

    bodies = make_bodies(args.index, args.candidates, args.candidate_chars)
    all_stats: list[RunStats] = []
    meta: dict = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    for backend in args.backends:
        for mode in args.modes:
            stats, ready_s, code = run_mode(mode, args, bodies, args.out, backend)
            meta[f"{backend} {mode}_ready_seconds"] = round(ready_s, 1)
            meta[f"{backend} {mode}_after_sigterm"] = code
            all_stats.extend(stats)
    table = "\n".join([HEADER, *(s.row() for s in all_stats)])
    print("\n" + table)
    print(json.dumps(meta, indent=2))
    results = {
        "meta": meta,
        "args": {k: str(v) for k, v in vars(args).items()},
        "runs": [
            {
                "backend": s.backend,
                "route": s.route,
                "mode": s.mode,
                "concurrency": s.concurrency,
                "seconds": s.seconds,
                "ok": s.ok,
                "rps": s.ok / s.seconds,
                "p50_ms": s.pct(50),
                "p99_ms": s.pct(99),
                "statuses": s.statuses,
                "five_xx": s.five_xx,
                "transport_errors": s.transport_errors,
                "mean_batch": s.mean_batch,
            }
            for s in all_stats
        ],
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    if args.markdown:
        args.markdown.write_text(table + "\n")
    if args.record:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _record import append, section

        notes = [f"{k}: {v}" for k, v in meta.items() if k not in ("command", "machine", "date")]
        append(
            section(
                "Serving load test: `unirank serve` (bench/load_test.py)",
                "load_test.py",
                f"2 shared CPU cores; {meta['machine']}",
                [
                    f"{args.duration:g} s per route, batching mode and client count; /rank: {args.candidates} "
                    "candidates of "
                    f"{args.candidate_chars} characters, ranker `{args.rank_model}` ({args.rank_kind}).",
                    "",
                    table,
                    "",
                    "; ".join(notes),
                ],
            )
        )
    return 1 if any(s.five_xx or s.transport_errors for s in all_stats) else 0


if __name__ == "__main__":
    sys.exit(main())
