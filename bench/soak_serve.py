"""Soak test of ``unirank serve``: hostile and careless clients, then SIGTERM in the middle.

It starts the real command (``python -m unirank serve ... --api-key K``) on 127.0.0.1 at a
free port, waits for ``/readyz``, then runs ``--concurrency`` client workers for
``--duration`` seconds. Each worker opens one connection per request (raw asyncio sockets,
HTTP/1.1, ``Connection: close``) and draws, with a seeded generator, one of:

* well-formed: ``/search``, ``/rank`` (needs ``--model``), ``/encode`` (needs a bi-encoder);
* malformed: truncated JSON, a body that is not UTF-8, a wrong type, an unknown field, an
  oversized body (413), no API key (401), two API keys (401);
* slow: a body sent in pieces over about a third of the body timeout (must succeed), or
  stalled past it (must be 408);
* disconnecting: the client closes in the middle of its body, or right after sending the
  request without reading the answer.

After ``--sigterm-after`` seconds the server gets SIGTERM while the clients keep going; they
stop when connections are refused. The checks:

* zero 5xx answers other than 503 (overloaded / shutting down / not ready: documented);
* zero tracebacks (``Traceback``, ``Exception in ASGI``) in the server's log;
* every request that was fully sent before SIGTERM got an answer (requests started after it
  may find the listener closed: counted apart, never an error);
* every answer has the status its kind must get (200/503 for well-formed and slow-ok, 422,
  413, 401, 408);
* the server exits, and how long it took after SIGTERM.

It prints a table and, with ``--record``, appends it to ``bench/RESULTS.md``; the exit status is
1 when a check fails. Loopback only; bounded in time (``--duration``) and clients.

Usage::

    python bench/soak_serve.py --index ../shared/data/scifact --duration 60 --concurrency 16 --record
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY = "soak-key"
#: the status every request kind must get (besides 503 where noted)
EXPECTED = {
    "search": {200, 503},
    "rank": {200, 503},
    "encode": {200, 503},
    "slow_ok": {200, 503},
    "bad_json": {422},
    "not_utf8": {422},
    "wrong_type": {422},
    "unknown_field": {422},
    "too_big": {413},
    "no_key": {401},
    "two_keys": {401},
    "slow_stall": {408, 503},
}
DISCONNECTS = ("drop_mid_body", "drop_before_answer")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request_bytes(
    path: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    length: int | None = None,
    keys: list[str] | None = None,
) -> tuple[bytes, bytes]:
    """(head, body) of an HTTP/1.1 POST."""
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Connection: close",
        "Content-Type: application/json",
        f"Content-Length: {len(body) if length is None else length}",
    ]
    lines += [f"X-API-Key: {k}" for k in (keys if keys is not None else [KEY])]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), body


class Soak:
    def __init__(self, args: argparse.Namespace, port: int, queries: list[str], texts: list[str]) -> None:
        self.args, self.port, self.queries, self.texts = args, port, queries, texts
        self.rng = random.Random(args.seed)
        self.outcomes: list[dict] = []
        self.sigterm_at: float | None = None
        self.stop = False
        kinds = ["search"] * 6 + [
            "bad_json",
            "not_utf8",
            "wrong_type",
            "unknown_field",
            "too_big",
            "no_key",
            "two_keys",
        ]
        kinds += ["slow_ok", "slow_stall", *DISCONNECTS]
        if args.model:
            kinds += ["rank"] * 4
            if args.kind == "bi":
                kinds += ["encode"] * 2
        self.kinds = kinds

    def make(self, kind: str) -> tuple[bytes, bytes]:
        q = self.rng.choice(self.queries)
        if kind in ("search", "slow_ok", "slow_stall", *DISCONNECTS):
            return request_bytes("/search", json.dumps({"query": q, "k": 10}).encode())
        if kind == "rank":
            cands = self.rng.sample(self.texts, min(5, len(self.texts)))
            return request_bytes("/rank", json.dumps({"context": q, "candidates": cands}).encode())
        if kind == "encode":
            return request_bytes("/encode", json.dumps({"texts": [q, self.rng.choice(self.texts)]}).encode())
        if kind == "bad_json":
            return request_bytes("/search", b'{"query": "' + q.encode()[:20])
        if kind == "not_utf8":
            return request_bytes("/search", b'{"query": "caf\xe9 ' + q.encode()[:20] + b'"}')
        if kind == "wrong_type":
            return request_bytes("/search", json.dumps({"query": q, "k": "ten"}).encode())
        if kind == "unknown_field":
            return request_bytes("/search", json.dumps({"query": q, "kk": 3}).encode())
        if kind == "too_big":
            return request_bytes("/search", json.dumps({"query": "x" * (2 << 20)}).encode())
        if kind == "no_key":
            return request_bytes("/search", json.dumps({"query": q}).encode(), keys=[])
        if kind == "two_keys":
            return request_bytes("/search", json.dumps({"query": q}).encode(), keys=["wrong", KEY])
        raise ValueError(kind)

    async def one(self, kind: str) -> dict:
        head, body = self.make(kind)
        t0 = time.perf_counter()
        out = {"kind": kind, "t0": t0, "sent": False, "status": None, "error": None, "detail": ""}
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 10)
        except (OSError, asyncio.TimeoutError) as e:
            out["error"] = f"connect: {type(e).__name__}"
            return out
        try:
            bt = self.args.body_timeout
            if kind == "slow_ok":
                writer.write(head)
                pieces = [body[i : i + max(1, len(body) // 4)] for i in range(0, len(body), max(1, len(body) // 4))]
                for p in pieces:
                    writer.write(p)
                    await writer.drain()
                    await asyncio.sleep(bt / 3 / len(pieces))
            elif kind == "slow_stall":
                writer.write(head + body[: len(body) // 2])
                await writer.drain()  # and never the rest: the server must give up (408)
            elif kind == "drop_mid_body":
                writer.write(head + body[: len(body) // 2])
                await writer.drain()
                await asyncio.sleep(0.05)
                writer.close()
                return out
            elif kind == "too_big":  # the declared length is refused before the body is read: send the head only
                writer.write(head)
                await writer.drain()
            else:
                writer.write(head + body)
                await writer.drain()
            out["sent"] = kind != "slow_stall"
            if kind == "drop_before_answer":
                writer.close()
                return out
            data = await asyncio.wait_for(reader.read(), timeout=max(60.0, 3 * bt))
            if data.startswith(b"HTTP/1.1 "):
                out["status"] = int(data[9:12])
                out["detail"] = data.split(b"\r\n\r\n", 1)[-1][:200].decode("utf-8", "replace")
            else:
                out["error"] = "no answer" if not data else "garbled answer"
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            out["error"] = type(e).__name__
            if not out["sent"] and isinstance(
                e, OSError
            ):  # refused while still sending (e.g. 503 at shutdown): read the answer
                try:
                    data = await asyncio.wait_for(reader.read(), timeout=5)
                    if data.startswith(b"HTTP/1.1 "):
                        out["status"], out["error"] = int(data[9:12]), None
                        out["detail"] = data.split(b"\r\n\r\n", 1)[-1][:200].decode("utf-8", "replace")
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                    out["error"] += " while sending"
        finally:
            writer.close()
        out["seconds"] = time.perf_counter() - t0
        return out

    async def worker(self) -> None:
        while not self.stop:
            r = await self.one(self.rng.choice(self.kinds))
            self.outcomes.append(r)
            if r["error"] and r["error"].startswith("connect") and self.sigterm_at is not None:
                return  # the server has closed its listener

    async def run(self, proc: subprocess.Popen) -> None:
        workers = [asyncio.ensure_future(self.worker()) for _ in range(self.args.concurrency)]
        await asyncio.sleep(self.args.sigterm_after)
        self.metrics_before = await asyncio.get_running_loop().run_in_executor(None, self.scrape)
        self.sigterm_at = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        t_end = self.sigterm_at + self.args.duration
        while time.perf_counter() < t_end and proc.poll() is None:
            await asyncio.sleep(0.05)
        self.exit_seconds = time.perf_counter() - self.sigterm_at if proc.poll() is not None else None
        self.stop = True
        await asyncio.wait(workers, timeout=120)

    def scrape(self) -> str:
        import httpx

        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/metrics", headers={"x-api-key": KEY}, timeout=30).text
        except httpx.HTTPError as e:
            return f"# scrape failed: {e}"


def load_texts(index: str, n: int) -> tuple[list[str], list[str]]:
    """Some queries and document texts of the served data (for realistic requests)."""
    from unirank.data.datasets import load_dataset

    ds = load_dataset(index, split="test")
    queries = [q.text for q in list(ds.queries.values())[:n]]
    texts = [d.full_text[:300] for d in list(ds.corpus.values())[:n]]
    return queries, texts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", default="stdlib-codesearch", help="what /search serves (BM25)")
    ap.add_argument("--model", default=None, help="a ranker for /rank (and /encode with --kind bi), e.g. minilm")
    ap.add_argument("--kind", default="bi")
    ap.add_argument(
        "--duration", type=float, default=60.0, help="seconds of load in all; SIGTERM after --sigterm-after"
    )
    ap.add_argument("--sigterm-after", type=float, default=None, help="default: 2/3 of --duration")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--body-timeout", type=float, default=2.0)
    ap.add_argument("--max-queue", type=int, default=64, help="small, so that overload (503) happens too")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log", default=None, help="server log file (default: a temporary file)")
    ap.add_argument("--record", action="store_true", help="append the result to bench/RESULTS.md")
    args = ap.parse_args()
    if args.sigterm_after is None:
        args.sigterm_after = args.duration * 2 / 3
    queries, texts = load_texts(args.index, 200)
    port = free_port()
    log_path = Path(args.log or f"/tmp/unirank-soak-{port}.log")
    cmd = [
        sys.executable,
        "-m",
        "unirank",
        "serve",
        "--index",
        args.index,
        "--retriever",
        "bm25",
        "--port",
        str(port),
        "--api-key",
        KEY,
        "--body-timeout",
        str(args.body_timeout),
        "--max-queue",
        str(args.max_queue),
        "--graceful-timeout",
        "30",
        "--log-level",
        "info",
    ]
    if args.model:
        cmd += ["--model", args.model, "--kind", args.kind]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("UNIRANK_API_KEY", None)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
    import httpx

    t_ready = time.time() + 600
    while True:
        if proc.poll() is not None:
            print(log_path.read_text(errors="replace")[-3000:])
            return 1
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.time() > t_ready:
            proc.kill()
            raise SystemExit("server not ready in 10 minutes")
        time.sleep(0.2)
    soak = Soak(args, port, queries, texts)
    asyncio.run(soak.run(proc))
    if proc.poll() is None:
        proc.kill()
    code = proc.wait()
    log = log_path.read_text(errors="replace")

    by_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    problems = []
    unanswered_before, closed_after = 0, 0
    for r in soak.outcomes:
        label = r["status"] if r["status"] is not None else (r["error"] or "closed by client")
        by_kind[r["kind"]][label] += 1
        before = r["t0"] < soak.sigterm_at
        if r["kind"] in DISCONNECTS:
            continue
        if r["status"] is None:
            if r["sent"] and before:
                unanswered_before += 1
                problems.append(f"{r['kind']} sent before SIGTERM got no answer ({r['error']})")
            else:  # refused by the closed listener, or reset while still sending its body at shutdown
                closed_after += 1
            continue
        if 500 <= r["status"] and r["status"] != 503:
            problems.append(f"{r['kind']}: {r['status']} {r['detail'][:100]}")
        elif r["status"] == 503 and not re.search(r"overloaded|shutting down|not ready", r["detail"]):
            problems.append(f"{r['kind']}: undocumented 503 {r['detail'][:100]}")
        elif r["status"] not in EXPECTED[r["kind"]]:
            problems.append(
                f"{r['kind']}: status {r['status']}, expected {sorted(EXPECTED[r['kind']])}: {r['detail'][:100]}"
            )
    tracebacks = len(re.findall(r"Traceback|Exception in ASGI", log))
    if tracebacks:
        problems.append(f"{tracebacks} traceback(s) in the server log")
    if soak.exit_seconds is None:
        problems.append("the server did not exit within --duration after SIGTERM")
    fives = sum(
        n
        for line in soak.metrics_before.splitlines()
        if line.startswith("unirank_requests_total")
        for n in [float(line.rsplit(" ", 1)[1])]
        if re.search(r'status="5\d\d"', line) and 'status="503"' not in line
    )
    answered = sum(1 for r in soak.outcomes if r["status"] is not None)
    statuses = collections.Counter(r["status"] for r in soak.outcomes if r["status"] is not None)
    rows = ["| request kind | sent | answers by status (or outcome) |", "|---|---|---|"]
    for kind in sorted(by_kind):
        rows.append(
            f"| {kind} | {sum(by_kind[kind].values())} | "
            + ", ".join(f"{k}: {v}" for k, v in sorted(by_kind[kind].items(), key=lambda kv: str(kv[0])))
            + " |"
        )
    summary = [
        f"- requests: {len(soak.outcomes)} ({answered} answered); statuses: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())),
        f"- 5xx other than 503 (client side, all run): {sum(n for s, n in statuses.items() if s >= 500 and s != 503)}; "
        f"in /metrics before SIGTERM: {int(fives)}",
        f"- 503 answers: {statuses.get(503, 0)} (overloaded / shutting down / not ready)",
        f"- tracebacks in the server log: {tracebacks}",
        f"- fully sent before SIGTERM and not answered: {unanswered_before}; not fully sent when the server stopped "
        f"(refused by the closed listener, or reset while still sending): {closed_after}",
        "- server exit after SIGTERM: "
        f"{'%.2f s' % soak.exit_seconds if soak.exit_seconds is not None else 'did not exit'}"
        f" (exit status {code}; uvicorn re-raises the SIGTERM it caught)",
        f"- checks: {'all passed' if not problems else f'{len(problems)} FAILED'}",
    ]
    print("\n".join(rows + [""] + summary))
    for p in problems[:20]:
        print("PROBLEM:", p)
    if args.record:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _record import host, record, section

        body = [
            f"`unirank serve --index {args.index} --retriever bm25"
            + (f" --model {args.model} --kind {args.kind}" if args.model else "")
            + f" --api-key K --body-timeout {args.body_timeout:g} --max-queue {args.max_queue}` on 127.0.0.1; "
            f"{args.concurrency} "
            f"client workers, one connection per request, {args.duration:g} s of load, SIGTERM at "
            f"{args.sigterm_after:g} s "
            "while the clients keep going. Request kinds are drawn at random (seed "
            f"{args.seed}); see `bench/soak_serve.py` for what each sends and must get.",
            "",
            *rows,
            "",
            *summary,
        ]
        record(
            section(
                "unirank serve soak: hostile clients, then SIGTERM under load",
                "soak_serve.py",
                host("cpu", args.threads) + ", 2 shared CPU cores, client and server on the same machine",
                body,
            )
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
