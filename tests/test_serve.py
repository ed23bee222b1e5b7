"""unirank.serve: the HTTP service through the real ASGI stack (httpx), and once over real HTTP (uvicorn)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time

import httpx
import numpy as np
import pytest

from unirank.index.sparse import BM25Index
from unirank.models.backbone import tiny_backbone
from unirank.models.bi import BiEncoder
from unirank.models.cross import CrossEncoder
from unirank.models.poly import PolyEncoder
from unirank.models.uni import UniEncoder
from unirank.serve.app import ServeSettings, _authorized, build_app
from unirank.serve.backend import Backend, SearchItem, load_backend
from unirank.serve.batching import BatcherClosed, DynamicBatcher, QueueFull
from unirank.serve.protocol import Limits
from unirank.types import Document

DOCS = {
    "d1": Document("d1", "cats purr and sleep on warm sofas", title="Cats"),
    "d2": Document("d2", "dogs bark at the postman every morning", title="Dogs"),
    "d3": Document("d3", "goldfish swim in a round glass bowl", title="Fish"),
    "d4": Document("d4", "parrots can learn to repeat words", title="Birds"),
    "d5": Document("d5", "cats and dogs can live together", title="Pets"),
}
CANDS = ["use sorted()", "no idea", "list.sort() sorts in place", "bananas", "sorted(x, reverse=True)"]


@pytest.fixture(scope="module")
def cross():
    return CrossEncoder(tiny_backbone(seed=1)).eval()


@pytest.fixture(scope="module")
def bi():
    return BiEncoder(tiny_backbone(hidden=16, seed=2), max_length=32).eval()


@pytest.fixture(scope="module")
def bm25():
    ix = BM25Index(stemmer=None)
    ix.build(list(DOCS), [d.full_text for d in DOCS.values()])
    return ix


@pytest.fixture(scope="module")
def backend(cross, bi, bm25):
    return Backend(ranker=cross, encoder=bi, retriever=bm25, corpus=DOCS, rerank_depth=4)


def run(app, fn):
    """Start the app's lifespan, give ``fn`` an httpx client on the app, return its result."""

    async def main():
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
                return await fn(c)

    return asyncio.run(main())


def post(app, path, body=None, **kw):
    async def go(c):
        return await c.post(path, json=body, **kw) if body is not None else await c.post(path, **kw)

    return run(app, go)


# ---------------------------------------------------------------------------- routes


def test_rank_orders_best_first_with_the_models_scores(backend, cross):
    r = post(build_app(backend), "/rank", {"context": "how do I sort a list?", "candidates": CANDS})
    assert r.status_code == 200
    res = r.json()["results"]
    expected = cross.rank("how do I sort a list?", CANDS)
    assert sorted(x["index"] for x in res) == list(range(len(CANDS)))
    assert [x["score"] for x in res] == sorted(expected, reverse=True)
    for x in res:
        assert x["text"] == CANDS[x["index"]]
        assert x["score"] == pytest.approx(expected[x["index"]], abs=1e-5)


def test_rank_top_k_turns_and_empty(backend, cross):
    app = build_app(backend)
    turns = ["hi", "how do I sort a list?"]
    r = post(app, "/rank", {"context": turns, "candidates": CANDS, "top_k": 2})
    expected = cross.rank(turns, CANDS)
    best2 = sorted(range(len(CANDS)), key=lambda i: -expected[i])[:2]
    assert [x["index"] for x in r.json()["results"]] == best2
    assert post(app, "/rank", {"context": "x", "candidates": []}).json() == {"results": [], "truncated": 0}


@pytest.mark.parametrize(
    "make",
    [
        lambda: BiEncoder(tiny_backbone(hidden=16), max_length=32),
        lambda: CrossEncoder(tiny_backbone()),
        lambda: PolyEncoder(tiny_backbone(), n_codes=4),
        lambda: UniEncoder(tiny_backbone()),
    ],
    ids=["bi", "cross", "poly", "uni"],
)
def test_rank_serves_every_paradigm(make):
    model = make().eval()
    r = post(build_app(Backend(ranker=model)), "/rank", {"context": ["hello", "any tips?"], "candidates": CANDS[:3]})
    got = {x["index"]: x["score"] for x in r.json()["results"]}
    want = model.rank(["hello", "any tips?"], CANDS[:3])
    assert got == pytest.approx(dict(enumerate(want)), abs=1e-5)


def test_search_matches_bm25_and_returns_documents(backend, bm25):
    r = post(build_app(backend), "/search", {"query": "cats dogs", "k": 3})
    assert r.status_code == 200
    hits = r.json()["hits"]
    s, i = bm25.search(["cats dogs"], 3)
    assert [h["id"] for h in hits] == [bm25.doc_ids[j] for j in i[0] if j >= 0]
    assert [h["score"] for h in hits] == pytest.approx(s[0][: len(hits)].tolist())
    assert hits[0]["id"] == "d5"  # the only document with both words
    assert hits[0]["title"] == "Pets" and hits[0]["text"] == DOCS["d5"].text
    assert all(h["retrieval_score"] is None for h in hits)
    bare = post(build_app(backend), "/search", {"query": "cats", "k": 1, "return_text": False}).json()["hits"][0]
    assert bare["title"] is None and bare["text"] is None


def test_search_rerank_rescores_the_retrieved_documents(backend, bm25, cross):
    r = post(build_app(backend), "/search", {"query": "cats dogs", "k": 2, "rerank": True})
    hits = r.json()["hits"]
    s, i = bm25.search(["cats dogs"], 4)  # rerank_depth=4 documents are retrieved, 2 returned
    pool = [bm25.doc_ids[j] for j in i[0] if j >= 0]
    first = dict(zip(pool, s[0].tolist()))
    ce = cross.rank("cats dogs", [DOCS[d].full_text for d in pool])
    want = sorted(zip(pool, ce), key=lambda t: -t[1])[:2]
    assert [h["id"] for h in hits] == [d for d, _ in want]
    assert [h["score"] for h in hits] == pytest.approx([sc for _, sc in want], abs=1e-5)
    assert [h["retrieval_score"] for h in hits] == pytest.approx([first[d] for d, _ in want])


def test_encode_equals_the_bi_encoder(backend, bi):
    texts = ["a query", "a much longer document about cats"]
    for kind, fn in (("doc", bi.encode_docs), ("query", bi.encode_queries)):
        r = post(build_app(backend), "/encode", {"texts": texts, "kind": kind})
        body = r.json()
        assert r.status_code == 200 and body["dim"] == 16
        np.testing.assert_allclose(np.array(body["embeddings"]), fn(texts), atol=1e-5)


def test_routes_missing_parts_answer_404_and_rerank_without_ranker_422(bm25):
    app = build_app(Backend(retriever=bm25, corpus=DOCS))
    assert post(app, "/rank", {"context": "x", "candidates": ["a"]}).status_code == 404
    assert post(app, "/encode", {"texts": ["a"]}).status_code == 404
    r = post(app, "/search", {"query": "cats", "rerank": True})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "rerank"]
    assert post(build_app(Backend(ranker=CrossEncoder(tiny_backbone()))), "/search", {"query": "x"}).status_code == 404


# ---------------------------------------------------------------------------- limits and errors


def _locs(r):
    return [d["loc"] for d in r.json()["detail"]]


def test_limits_give_422_naming_the_field(backend):
    lim = Limits(max_candidates=3, max_k=5, max_turns=2, max_text_chars=20, max_encode_texts=2)
    app = build_app(backend, ServeSettings(limits=lim))
    r = post(app, "/rank", {"context": "q", "candidates": ["a"] * 4})
    assert r.status_code == 422 and _locs(r) == [["body", "candidates"]]
    assert "at most 3 candidates" in r.json()["detail"][0]["msg"]
    assert _locs(post(app, "/rank", {"context": ["a", "b", "c"], "candidates": ["a"]})) == [["body", "context"]]
    assert _locs(post(app, "/search", {"query": "q", "k": 6})) == [["body", "k"]]
    assert post(app, "/search", {"query": "q", "k": 5}).status_code == 200
    assert _locs(post(app, "/encode", {"texts": ["a", "b", "c"]})) == [["body", "texts"]]
    r = post(app, "/rank", {"context": "q", "candidates": ["ok", "x" * 21]})
    assert r.status_code == 422 and _locs(r) == [["body", "candidates", 1]]
    assert _locs(post(app, "/search", {"query": "y" * 21})) == [["body", "query"]]
    assert post(app, "/rank", {"context": "q", "candidates": ["x" * 20]}).status_code == 200  # exactly at the limit


def test_truncate_policy_cuts_texts_and_counts_them(backend, cross):
    lim = Limits(max_text_chars=8, text_policy="truncate")
    app = build_app(backend, ServeSettings(limits=lim))
    long = "bananas are yellow fruit"
    r = post(app, "/rank", {"context": "tell me about fruit", "candidates": [long, "no"]})
    assert r.status_code == 200 and r.json()["truncated"] == 2  # the context and one candidate
    got = {x["index"]: x["score"] for x in r.json()["results"]}
    want = cross.rank("ut fruit", [long[:8], "no"])  # context keeps its end, candidates their start
    assert got == pytest.approx(dict(enumerate(want)), abs=1e-5)


def test_bad_json_types_and_unknown_fields_are_422(backend):
    app = build_app(backend)
    r = post(app, "/rank", content=b'{"context": "q", "candidates": [', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    r = post(app, "/rank", {"context": "q", "candidates": ["a", 3]})
    assert r.status_code == 422 and ["body", "candidates", 1] in _locs(r)
    r = post(app, "/search", {"query": "q", "k": "10"})  # strict: no string -> int coercion
    assert r.status_code == 422 and _locs(r) == [["body", "k"]]
    r = post(app, "/search", {"query": "q", "k": 0})
    assert r.status_code == 422 and _locs(r) == [["body", "k"]]
    r = post(app, "/rank", {"context": "q", "candidates": ["a"], "topk": 1})
    assert r.status_code == 422 and _locs(r) == [["body", "topk"]]
    r = post(app, "/search", content=b'{"query": "\\ud800"}', headers={"content-type": "application/json"})
    assert r.status_code == 422 and _locs(r) == [["body", "query"]]
    assert post(app, "/search", [1, 2]).status_code == 422
    assert post(app, "/nowhere", {}).status_code == 404


def test_body_size_limit_is_413_with_or_without_content_length(backend):
    app = build_app(backend, ServeSettings(limits=Limits(max_body_bytes=200)))
    big = {"context": "q", "candidates": ["word"] * 60}
    assert len(json.dumps(big)) > 200
    assert post(app, "/rank", big).status_code == 413

    async def chunked(c):
        async def gen():
            for _ in range(10):
                yield b" " * 50  # whitespace: only the size can make it fail

        return await c.post("/rank", content=gen(), headers={"content-type": "application/json"})

    r = run(app, chunked)
    assert r.status_code == 413 and "200 bytes" in r.json()["detail"]
    assert post(app, "/rank", {"context": "q", "candidates": ["a"]}).status_code == 200


# ---------------------------------------------------------------------------- auth


def test_api_key_via_header_or_bearer(backend):
    app = build_app(backend, ServeSettings(api_key="s3cret"))
    body = {"context": "q", "candidates": ["a", "b"]}

    async def go(c):
        out = {
            "none": await c.post("/rank", json=body),
            "wrong": await c.post("/rank", json=body, headers={"X-API-Key": "s3cre"}),
            "header": await c.post("/rank", json=body, headers={"X-API-Key": "s3cret"}),
            "bearer": await c.post("/rank", json=body, headers={"Authorization": "Bearer s3cret"}),
            "basic": await c.post("/rank", json=body, headers={"Authorization": "Basic s3cret"}),
            "bad_json_no_key": await c.post("/rank", content=b"{", headers={"content-type": "application/json"}),
            "metrics": await c.get("/metrics"),
            "healthz": await c.get("/healthz"),
            "readyz": await c.get("/readyz"),
            "openapi": await c.get("/openapi.json", headers={"X-API-Key": "s3cret"}),
        }
        return out

    r = run(app, go)
    assert r["none"].status_code == 401 and r["none"].headers["www-authenticate"] == "Bearer"
    assert r["wrong"].status_code == 401 and r["basic"].status_code == 401
    assert r["bad_json_no_key"].status_code == 401  # auth is checked before the body is read
    assert r["header"].status_code == 200 and r["bearer"].status_code == 200
    assert r["metrics"].status_code == 401
    assert r["healthz"].status_code == 200 and r["readyz"].status_code == 200
    schema = r["openapi"].json()
    assert "APIKeyHeader" in schema["components"]["securitySchemes"]
    assert schema["paths"]["/rank"]["post"]["security"] and "security" not in schema["paths"]["/healthz"]["get"]


def test_authorized_compares_exactly():
    key = b"k3y"
    assert _authorized([(b"X-API-Key", b"k3y")], key)
    assert _authorized([(b"authorization", b"bearer k3y")], key)
    assert not _authorized([(b"x-api-key", b"k3y2")], key)
    assert not _authorized([(b"x-api-key", b"")], key)
    assert not _authorized([], key)


# ---------------------------------------------------------------------------- readiness, metrics


def test_loading_in_background_health_ready_and_503(backend):
    gate = threading.Event()

    def loader():
        gate.wait(10)
        return backend

    app = build_app(loader)

    async def go(c):
        h = await c.get("/healthz")
        rz = await c.get("/readyz")
        rk = await c.post("/rank", json={"context": "q", "candidates": ["a"]})
        gate.set()
        for _ in range(200):
            if (await c.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.01)
        return h, rz, rk, await c.get("/readyz"), await c.post("/rank", json={"context": "q", "candidates": ["a"]})

    h, rz, rk, rz2, rk2 = run(app, go)
    assert h.status_code == 200 and h.json() == {"status": "ok"}
    assert rz.status_code == 503 and rz.json()["status"] == "loading" and rz.json()["ready"] is False
    assert rk.status_code == 503 and rk.headers["retry-after"] == "5"
    assert rz2.status_code == 200 and rz2.json()["documents"] == 5 and rz2.json()["kind"] == "cross"
    assert rk2.status_code == 200


def test_failed_load_is_reported_by_readyz():
    def loader():
        raise FileNotFoundError("no model at /x")

    async def go(c):
        for _ in range(200):
            r = await c.get("/readyz")
            if r.json()["status"] != "loading":
                return r
            await asyncio.sleep(0.01)

    r = run(build_app(loader), go)
    assert r.status_code == 503 and r.json()["status"] == "failed: FileNotFoundError: no model at /x"


def _metric(text, name, **labels):
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            got = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if got == {k: str(v) for k, v in labels.items()}:
                return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_count_requests_latencies_and_batches(backend):
    app = build_app(backend)

    async def go(c):
        await c.post("/rank", json={"context": "q", "candidates": ["a", "b"]})
        await c.post("/rank", json={"context": "q", "candidates": ["a", "b"]})
        await c.post("/rank", json={"context": 1})
        await c.post("/search", json={"query": "cats", "k": 2})
        await c.get("/nowhere")
        return await c.get("/metrics")

    r = run(app, go)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    t = r.text
    assert _metric(t, "unirank_requests_total", method="POST", route="/rank", status="200") == 2
    assert _metric(t, "unirank_requests_total", method="POST", route="/rank", status="422") == 1
    assert _metric(t, "unirank_requests_total", method="POST", route="/search", status="200") == 1
    assert _metric(t, "unirank_requests_total", method="GET", route="other", status="404") == 1
    assert _metric(t, "unirank_request_duration_seconds_count", route="/rank") == 3
    assert _metric(t, "unirank_batch_size_count", queue="rank") == 2  # the 422 never reached the model
    assert _metric(t, "unirank_batch_size_sum", queue="rank") == 2
    assert _metric(t, "unirank_batch_size_bucket", le="1.0", queue="rank") == 2
    assert _metric(t, "unirank_ready") == 1
    assert _metric(t, "unirank_queue_depth", queue="rank") == 0


# ---------------------------------------------------------------------------- dynamic batching


def _concurrent_rank(app, bodies):
    async def go(c):
        rs = await asyncio.gather(*(c.post("/rank", json=b) for b in bodies))
        return rs, app.state.unirank.batchers["rank"].calls

    return run(app, go)


def test_concurrent_requests_share_model_calls_and_equal_unbatched(cross):
    bodies = [{"context": f"question number {i}", "candidates": CANDS[: 2 + i % 4]} for i in range(8)]
    batched = build_app(Backend(ranker=cross), ServeSettings(max_batch_size=32, max_wait_ms=200))
    rs, calls = _concurrent_rank(batched, bodies)
    assert all(r.status_code == 200 for r in rs)
    assert calls < len(bodies)  # typically 1
    for b, r in zip(bodies, rs):
        want = cross.rank(b["context"], b["candidates"])
        got = {x["index"]: x["score"] for x in r.json()["results"]}
        assert got == pytest.approx(dict(enumerate(want)), abs=1e-5)
    solo = build_app(Backend(ranker=cross), ServeSettings(batching=False))
    rs2, calls2 = _concurrent_rank(solo, bodies)
    assert calls2 == len(bodies)
    for r, r2 in zip(rs, rs2):
        got = {x["index"]: x["score"] for x in r2.json()["results"]}
        assert got == pytest.approx({x["index"]: x["score"] for x in r.json()["results"]}, abs=1e-5)


def test_backend_batches_equal_one_by_one(backend, cross, bm25):
    items = [("q one", ["a", "b"]), (["t1", "t2"], ["c"]), ("q3", []), ("q4", CANDS)]
    together = backend.rank_batch(items)
    alone = [backend.rank_batch([it])[0] for it in items]
    assert [len(x) for x in together] == [2, 1, 0, 5]
    for a, b in zip(together, alone):
        assert a == pytest.approx(b, abs=1e-5)
    small = Backend(ranker=cross, rank_chunk=3)  # groups of whole requests, <= 3 candidates each
    for a, b in zip(small.rank_batch(items), together):
        assert a == pytest.approx(b, abs=1e-5)
    s_items = [SearchItem("cats", 2), SearchItem("cats dogs", 10), SearchItem("zzz", 3)]
    got = backend.search_batch(s_items)
    assert [[h.index for h in hits] for hits in got] == [
        [h.index for h in backend.search_batch([it])[0]] for it in s_items
    ]
    assert len(got[0]) == 2 and len(got[1]) == 3 and got[2] == []  # d1, d2, d5 match; k past them; no match


def _arun(coro):
    return asyncio.run(coro)


def test_batcher_collects_and_isolates_a_failing_item():
    sizes = []

    def fn(xs):
        sizes.append(len(xs))
        if any(x < 0 for x in xs):
            raise ValueError("negative")
        return [x * 10 for x in xs]

    async def go():
        b = DynamicBatcher(fn, max_batch_size=3, max_wait_ms=100)
        b.start()
        res = await asyncio.gather(*(b.submit(x) for x in [1, 2, -1, 4, 5]), return_exceptions=True)
        await b.stop()
        return res

    res = _arun(go())
    assert res[:2] == [10, 20] and isinstance(res[2], ValueError) and res[3:] == [40, 50]
    assert sizes == [3, 1, 1, 1, 2]  # batch of 3 failed, retried alone; then the last two together


def test_batcher_stop_drains_queue_and_then_refuses():
    def fn(xs):
        time.sleep(0.05)
        return xs

    async def go():
        b = DynamicBatcher(fn, max_batch_size=2, max_wait_ms=0)
        b.start()
        tasks = [asyncio.ensure_future(b.submit(i)) for i in range(6)]
        await asyncio.sleep(0)  # all six are queued
        await b.stop()
        done = [t.result() for t in tasks]
        try:
            await b.submit(9)
        except BatcherClosed:
            return done, "closed"

    assert _arun(go()) == ([0, 1, 2, 3, 4, 5], "closed")


def test_batcher_queue_limit_and_event_loop_stays_free():
    def slow(xs):
        time.sleep(0.3)  # a model call: runs in the executor thread
        return xs

    async def go():
        b = DynamicBatcher(slow, max_batch_size=1, max_wait_ms=0, max_queue=1)
        b.start()
        first = asyncio.ensure_future(b.submit(1))
        await asyncio.sleep(0.01)  # the worker picked it up
        second = asyncio.ensure_future(b.submit(2))  # waits in the queue
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await b.submit(3)
        ticks, t0 = 0, time.perf_counter()
        while not first.done():
            await asyncio.sleep(0.01)
            ticks += 1
        await b.stop()
        return await first, await second, ticks, time.perf_counter() - t0

    a, b2, ticks, took = _arun(go())
    assert (a, b2) == (1, 2)
    assert ticks >= 10, (ticks, took)  # the loop kept ticking while the 0.6 s of model work ran (blocked: ~2 ticks)


# ---------------------------------------------------------------------------- real HTTP (uvicorn)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_uvicorn_over_loopback_and_graceful_shutdown(cross):
    import uvicorn

    port = _free_port()
    app = build_app(Backend(ranker=cross), ServeSettings(max_wait_ms=400))  # a request waits 0.4 s for company
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=10)
    )
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(500):
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.01)
    assert httpx.get(base + "/readyz").json()["ready"] is True
    body = {"context": "how do I sort?", "candidates": CANDS}
    r = httpx.post(base + "/rank", json=body, timeout=10)
    assert r.status_code == 200 and len(r.json()["results"]) == len(CANDS)

    out = {}

    def slow_client():
        out["r"] = httpx.post(base + "/rank", json=body, timeout=10)

    c = threading.Thread(target=slow_client)
    c.start()
    deadline = time.time() + 5
    while app.state.unirank.in_flight < 1 and time.time() < deadline:
        time.sleep(0.005)
    assert app.state.unirank.in_flight == 1  # in flight: waiting 0.4 s in the batcher
    server.should_exit = True  # what uvicorn does on SIGTERM
    c.join(10)
    th.join(10)
    assert out["r"].status_code == 200 and len(out["r"].json()["results"]) == len(CANDS)
    assert not th.is_alive()
    with pytest.raises(httpx.TransportError):
        httpx.get(base + "/healthz", timeout=1)


def test_load_backend_from_a_beir_folder(tiny_beir):
    be = load_backend(model=None, index=str(tiny_beir), retriever="bm25")
    assert be.ranker is None and be.encoder is None and len(be.doc_ids) == 5
    hits = be.search_batch([SearchItem("why do cats purr", 1)])[0]
    assert be.doc_ids[hits[0].index] == "d1"
    with pytest.raises(KeyError, match="valid: bi, cross, poly, splade, uni"):
        load_backend(model="minilm", kind="nope")


def test_bad_names_fail_before_the_server_starts(tiny_beir):
    from unirank.errors import DataError
    from unirank.serve.app import serve_main
    from unirank.serve.backend import check_backend_args

    check_backend_args("minilm", "cross", str(tiny_beir), "bm25")  # fine: nothing raised, nothing loaded
    with pytest.raises(KeyError, match="valid: bm25, cur, dense, fusion, hybrid"):
        check_backend_args(None, "bi", str(tiny_beir), "sparse")
    with pytest.raises(DataError, match="corpus.jsonl"):
        check_backend_args(None, "bi", str(tiny_beir / "nope"))
    with pytest.raises(DataError, match="model folder not found"):
        check_backend_args("./no/such/model", "bi", None)
    with pytest.raises(TypeError, match="max_cands"):
        serve_main("minilm", None, "cross", max_cands=3)
    with pytest.raises(ValueError, match="nothing to serve"):
        serve_main(None, None, "bi")


def test_bad_limit_values_are_config_errors():
    from unirank.errors import ConfigError

    with pytest.raises(ConfigError, match="max_k"):
        Limits(max_k=0)
    with pytest.raises(ConfigError, match="text_policy"):
        Limits(text_policy="cut")
