"""/v1/embeddings (OpenAI) and /v1/rerank (Cohere / Jina) over real HTTP: the openai client and plain httpx."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import numpy as np
import pytest

from unirank.models.backbone import tiny_backbone
from unirank.models.bi import BiEncoder
from unirank.models.cross import CrossEncoder
from unirank.serve.app import ServeSettings, build_app
from unirank.serve.backend import Backend
from unirank.serve.protocol import Limits

KEY = "sk-test-123"
DOCS = ["use sorted()", "no idea", "list.sort() sorts in place", "bananas", "sorted(x, reverse=True)"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def models():
    return CrossEncoder(tiny_backbone(seed=1)).eval(), BiEncoder(tiny_backbone(hidden=16, seed=2), max_length=32).eval()


@pytest.fixture(scope="module")
def server(models):
    """uvicorn on 127.0.0.1 with an API key; yields the base URL."""
    import uvicorn

    cross, bi = models
    port = _free_port()
    be = Backend(ranker=cross, encoder=bi, info={"model": "tiny-test-model"})
    app = build_app(
        be, ServeSettings(api_key=KEY, limits=Limits(max_candidates=6, max_encode_texts=4, max_text_chars=200))
    )
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(500):
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.01)
    yield base
    srv.should_exit = True
    th.join(10)


def test_openai_client_embeddings_equal_the_bi_encoder(server, models):
    openai = pytest.importorskip("openai")
    _, bi = models
    client = openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0)
    texts = ["a query about cats", "dogs bark", "x"]
    r = client.embeddings.create(model="anything", input=texts)  # the client asks for base64 and decodes it
    assert [d.index for d in r.data] == [0, 1, 2] and r.model == "tiny-test-model"
    got = np.array([d.embedding for d in r.data], dtype=np.float32)
    assert np.abs(got - bi.encode_docs(texts)).max() < 1e-6
    assert r.usage.prompt_tokens == r.usage.total_tokens == sum(len(x) for x in bi.tokenizer(texts)["input_ids"])
    r = client.embeddings.create(model="m", input="one text", encoding_format="float")
    assert len(r.data) == 1 and np.abs(np.array(r.data[0].embedding) - bi.encode_docs(["one text"])[0]).max() < 1e-6
    q = client.embeddings.create(
        model="m", input=["a query"], encoding_format="float", extra_body={"input_type": "query"}
    )
    assert np.abs(np.array(q.data[0].embedding) - bi.encode_queries(["a query"])[0]).max() < 1e-6


def test_openai_client_errors_are_status_errors(server):
    openai = pytest.importorskip("openai")
    bad_key = openai.OpenAI(base_url=server + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad_key.embeddings.create(model="m", input="x")
    client = openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.UnprocessableEntityError) as e:
        client.embeddings.create(model="m", input=["a"] * 5)  # over max_encode_texts=4
    assert e.value.response.json()["detail"][0]["loc"] == ["body", "input"]
    with pytest.raises(openai.UnprocessableEntityError):
        client.embeddings.create(model="m", input="x", dimensions=8)  # the model has 16
    with pytest.raises(openai.UnprocessableEntityError):
        client.embeddings.create(model="m", input=[[101, 2023, 102]])  # token ids


def test_rerank_in_coheres_shape_over_httpx(server, models):
    cross, _ = models
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {
        "model": "rerank-english-v3.0",
        "query": "how do I sort a list?",
        "documents": DOCS,
        "top_n": 3,
        "return_documents": True,
    }
    r = httpx.post(server + "/v1/rerank", json=body, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()
    expect = cross.rank("how do I sort a list?", DOCS)
    best = sorted(range(len(DOCS)), key=lambda i: -expect[i])[:3]
    assert [x["index"] for x in out["results"]] == best
    assert [x["relevance_score"] for x in out["results"]] == pytest.approx([expect[i] for i in best], abs=1e-5)
    assert [x["document"]["text"] for x in out["results"]] == [DOCS[i] for i in best]
    assert out["model"] == "tiny-test-model" and out["usage"]["total_tokens"] > 0 and out["id"]
    # Jina-style objects, no top_n, no documents back
    r = httpx.post(
        server + "/v1/rerank",
        json={"query": "sort", "documents": [{"text": d} for d in DOCS[:2]]},
        headers=headers,
        timeout=30,
    )
    res = r.json()["results"]
    assert r.status_code == 200 and sorted(x["index"] for x in res) == [0, 1] and all("document" not in x for x in res)
    assert (
        httpx.post(server + "/v1/rerank", json={"query": "q", "documents": []}, headers=headers).json()["results"] == []
    )


def test_rerank_auth_and_limits(server):
    body = {"query": "q", "documents": DOCS}
    assert httpx.post(server + "/v1/rerank", json=body).status_code == 401
    assert httpx.post(server + "/v1/rerank", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.post(server + "/v1/rerank", json=body, headers={"X-API-Key": KEY}).status_code == 200
    h = {"Authorization": f"Bearer {KEY}"}
    r = httpx.post(server + "/v1/rerank", json={"query": "q", "documents": DOCS * 2}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "documents"]
    r = httpx.post(server + "/v1/rerank", json={"query": "q" * 500, "documents": DOCS}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "query"]
    r = httpx.post(server + "/v1/rerank", json={"query": "q", "documents": DOCS, "top_n": 0}, headers=h)
    assert r.status_code == 422


def test_compat_routes_answer_404_without_the_part(models):
    from fastapi.testclient import TestClient

    cross, _ = models
    with TestClient(build_app(Backend(ranker=cross))) as c:
        assert c.post("/v1/embeddings", json={"input": "x", "model": "m"}).status_code == 404
        assert c.post("/v1/rerank", json={"query": "q", "documents": ["a"]}).status_code == 200
