"""`unirank serve` as a hostile or careless client meets it (issue 18, part 5): the real CLI,
a real uvicorn on loopback, raw sockets where a client misbehaves."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import write_beir

ROOT = Path(__file__).resolve().parents[1]
KEY = "s3cret-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
    }


class Server:
    """``unirank serve ...`` in a subprocess, its log in a file."""

    def __init__(self, tmp: Path, *args: str, key: str | None = KEY) -> None:
        self.port = _free_port()
        self.log_path = tmp / f"serve-{self.port}.log"
        env = _env()
        env.pop("UNIRANK_API_KEY", None)
        cmd = [sys.executable, "-m", "unirank", "serve", "--port", str(self.port), "--log-level", "info", *args]
        if key is not None:
            cmd += ["--api-key", key]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 120) -> None:
        t_end = time.time() + timeout
        while time.time() < t_end:
            assert self.proc.poll() is None, self.log()
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("server not ready: " + self.log())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def _raw(port: int, data: bytes, read: bool = True, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if not read:
            return b""
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/") else -1


@pytest.fixture(scope="module")
def beir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("serve-data") / "beir"
    docs = {f"d{i}": (f"T{i}", f"document {i} about topic {i % 3}") for i in range(12)}
    return write_beir(folder, docs, {"q1": "topic 1"}, {"q1": {"d1": 1}}, split="test")


@pytest.fixture(scope="module")
def server(beir, tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("serve"), "--index", str(beir), "--body-timeout", "1.5")
    srv.wait_ready()
    yield srv
    srv.stop()


def test_several_api_keys_are_refused_even_if_one_matches(server):
    h = [("x-api-key", "wrong"), ("x-api-key", KEY)]
    r = httpx.post(server.url + "/search", json={"query": "topic"}, headers=h)
    assert r.status_code == 401 and "one API key" in r.json()["detail"]
    r = httpx.post(
        server.url + "/search",
        json={"query": "topic"},
        headers=[("x-api-key", KEY), ("authorization", "Bearer " + KEY)],
    )
    assert r.status_code == 401
    assert httpx.post(server.url + "/search", json={"query": "topic"}, headers={"x-api-key": KEY}).status_code == 200


def test_unauthenticated_readyz_shows_no_paths(server, beir):
    r = httpx.get(server.url + "/readyz")
    body = r.json()
    assert r.status_code == 200 and body["ready"] is True and body["status"] == "ready"
    assert {"model", "index", "documents"} <= set(body)  # the fields a key shows, blanked
    assert all(v is None for k, v in body.items() if k not in ("ready", "status")), body
    full = httpx.get(server.url + "/readyz", headers={"x-api-key": KEY}).json()
    assert full["documents"] == 12 and str(beir) in json.dumps(full)


def test_malformed_json_is_422_as_documented(server):
    h = {"x-api-key": KEY, "content-type": "application/json"}
    for body in (b'{"query": ', b'{"query": "caf\xe9"}', b"\xff\xfe{}", b"[1, 2]"):
        r = httpx.post(server.url + "/search", content=body, headers=h)
        assert r.status_code == 422, (body, r.text)


def test_a_half_sent_body_gets_408_and_a_disconnect_is_no_500(server):
    head = (
        f"POST /search HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n"
    ).encode()
    t0 = time.time()
    raw = _raw(server.port, head + b'{"query": "to', timeout=15)
    assert _status(raw) == 408 and time.time() - t0 < 10
    for _ in range(3):  # the client goes away in the middle of its body
        _raw(server.port, head + b'{"quer', read=False)
    time.sleep(0.5)
    metrics = httpx.get(server.url + "/metrics", headers={"x-api-key": KEY}).text
    assert 'route="/search",status="499"} 3.0' in metrics, metrics
    fives = [
        line
        for line in metrics.splitlines()
        if line.startswith("unirank_requests_total") and re.search(r'status="5\d\d"', line)
    ]
    assert all('route="/readyz"' in line and 'status="503"' in line for line in fives), fives  # 503 while loading only
    assert "Traceback" not in server.log() and "Exception in ASGI" not in server.log()


def test_sigterm_with_half_sent_bodies_exits_at_once_without_500s(beir, tmp_path):
    srv = Server(tmp_path, "--index", str(beir), "--graceful-timeout", "30", "--body-timeout", "60")
    srv.wait_ready()
    head = (
        f"POST /search HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n"
    ).encode()
    socks = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
        s.sendall(head + b'{"query"')
        socks.append(s)
    time.sleep(0.3)
    t0 = time.time()
    code = srv.stop()
    took = time.time() - t0
    answers = [s.recv(65536) for s in socks]
    for s in socks:
        s.close()
    assert code in (0, -signal.SIGTERM) and took < 10, (code, took, srv.log())  # uvicorn re-raises the signal it caught
    assert all(_status(a) == 503 for a in answers), answers
    assert "Traceback" not in srv.log() and "Exception in ASGI" not in srv.log() and " 500" not in srv.log()


def test_a_failed_model_load_exits_non_zero(beir, tmp_path):
    bad = tmp_path / "empty-model"
    bad.mkdir()
    srv = Server(tmp_path, "--model", str(bad), "--kind", "cross", "--index", str(beir))
    code = srv.proc.wait(timeout=120)
    log = srv.log()
    assert code == 2, log
    assert log.strip().splitlines()[-1].startswith(f"error: model folder {bad} holds no model")
    assert "Traceback" not in log
