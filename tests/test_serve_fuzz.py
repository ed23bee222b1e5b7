"""Fuzzing the serve API with hypothesis: no request body, however odd, gets a 5xx.

Bodies are drawn three ways: arbitrary JSON values; objects that use the routes' field
names with arbitrary JSON values (so validation, limits and the model are all reached);
and arbitrary bytes, including JSON strings with lone-surrogate escapes. Every answer must
be a 2xx or 4xx with a JSON body, and 2xx answers must have the documented shape.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from unirank.index.sparse import BM25Index
from unirank.models.backbone import tiny_backbone
from unirank.models.bi import BiEncoder
from unirank.models.uni import UniEncoder
from unirank.serve.app import ServeSettings, build_app
from unirank.serve.backend import Backend
from unirank.serve.protocol import EncodeResponse, Limits, RankResponse, SearchResponse
from unirank.types import Document

LIMITS = dict(max_candidates=8, max_encode_texts=4, max_text_chars=64, max_turns=4, max_k=20, max_body_bytes=4096)
ROUTES = {"/rank": RankResponse, "/search": SearchResponse, "/encode": EncodeResponse}
FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module", params=["reject", "truncate"])
def client(request):
    from fastapi.testclient import TestClient

    docs = {
        f"d{i}": Document(f"d{i}", t, title=f"T{i}")
        for i, t in enumerate(["cats purr", "dogs bark loudly", "", "fish swim"])
    }
    bm25 = BM25Index(stemmer=None)
    bm25.build(list(docs), [d.full_text for d in docs.values()])
    backend = Backend(
        ranker=UniEncoder(tiny_backbone(), max_context_length=32, max_candidate_length=16).eval(),
        encoder=BiEncoder(tiny_backbone(hidden=16), max_length=16).eval(),
        retriever=bm25,
        corpus=docs,
        rerank_depth=3,
    )
    app = build_app(backend, ServeSettings(limits=Limits(text_policy=request.param, **LIMITS), max_wait_ms=1))
    with TestClient(app, raise_server_exceptions=False) as c:
        c.app_policy = request.param
        yield c


def unicode_text(max_size=80):
    # any code point, lone surrogates included (they reach the server as \\udXXX escapes);
    # sometimes longer than max_text_chars
    chars = st.characters(codec=None, exclude_categories=())
    return st.text(chars, max_size=max_size) | st.text(chars, min_size=60, max_size=max(60, max_size))


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | unicode_text()
)
json_values = st.recursive(
    json_scalars, lambda c: st.lists(c, max_size=10) | st.dictionaries(unicode_text(8), c, max_size=5), max_leaves=30
)
texts = st.lists(unicode_text(), max_size=12)
FIELDS = {
    "/rank": {
        "context": unicode_text() | texts | json_values,
        "candidates": texts | json_values,
        "top_k": st.integers(-3, 30) | json_values,
    },
    "/search": {
        "query": unicode_text() | json_values,
        "k": st.integers(-3, 40) | json_values,
        "rerank": st.booleans() | json_values,
        "return_text": st.booleans(),
    },
    "/encode": {"texts": texts | json_values, "kind": st.sampled_from(["query", "doc", "both"]) | json_values},
}


def field_bodies(route):
    names = FIELDS[route]
    extra = st.dictionaries(st.sampled_from(["topk", "extra", "K"]), json_values, max_size=1)
    return st.tuples(st.fixed_dictionaries({}, optional=names), extra).map(lambda t: {**t[0], **t[1]})


def send(client, route, body: bytes):
    r = client.post(route, content=body, headers={"content-type": "application/json"})
    assert r.status_code < 500, (route, body[:300], r.status_code, r.text[:500])
    payload = r.json()  # every answer is JSON
    if r.status_code == 200:
        ROUTES[route].model_validate(payload)
    else:
        assert "detail" in payload
    return r


def dump(value) -> bytes:
    return json.dumps(value, ensure_ascii=True).encode()  # lone surrogates become escapes


@FUZZ
@given(route=st.sampled_from(sorted(ROUTES)), body=json_values)
def test_arbitrary_json_never_5xx(client, route, body):
    send(client, route, dump(body))


@FUZZ
@given(data=st.data(), route=st.sampled_from(sorted(ROUTES)))
def test_field_shaped_bodies_never_5xx(client, data, route):
    body = data.draw(field_bodies(route))
    r = send(client, route, dump(body))
    if r.status_code == 200 and route == "/rank":
        scores = [x["score"] for x in r.json()["results"]]
        assert scores == sorted(scores, reverse=True)


@FUZZ
@given(
    route=st.sampled_from(sorted(ROUTES)),
    body=st.binary(max_size=300) | st.builds(lambda s: s.encode("utf-8", "surrogatepass"), unicode_text(300)),
)
def test_arbitrary_bytes_never_5xx(client, route, body):
    send(client, route, body)


@settings(FUZZ, max_examples=20)
@given(
    context=unicode_text() | st.lists(unicode_text(), max_size=4),
    candidates=st.lists(unicode_text(), max_size=8),
    top_k=st.none() | st.integers(1, 10),
)
@example(context=["\U0001f600" * 60] * 4, candidates=["\U0001f600" * 60] * 8, top_k=None)  # ~8.6 kB escaped: 413
@example(context="cats?", candidates=["cats purr", "dogs bark"], top_k=1)
def test_valid_rank_requests_succeed(client, context, candidates, top_k):
    body = {"context": context, "candidates": candidates, **({"top_k": top_k} if top_k else {})}
    all_text = ([context] if isinstance(context, str) else context) + candidates
    payload = dump(body)
    r = send(client, "/rank", payload)
    too_long = any(len(t) > LIMITS["max_text_chars"] for t in all_text) and client.app_policy == "reject"
    if len(payload) > LIMITS["max_body_bytes"]:
        # 12 texts of up to 80 astral code points escape to ~12 bytes each: the size limit
        # is checked before the body is parsed
        assert r.status_code == 413
    elif any(not _utf8_ok(t) for t in all_text) or too_long:
        assert r.status_code == 422
    else:
        assert r.status_code == 200, r.text
        assert len(r.json()["results"]) == min(len(candidates), top_k or len(candidates))


def _utf8_ok(s: str) -> bool:
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False
