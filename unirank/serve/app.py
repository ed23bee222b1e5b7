"""The HTTP service: ``build_app(backend, settings)`` and ``serve_main`` behind ``unirank serve``.

Routes (the OpenAPI schema at ``/openapi.json`` and ``/docs`` documents the bodies):

* ``POST /search`` ``{query, k, rerank?}`` -> ``{hits: [{id, score, title, text}]}``
* ``POST /rank`` ``{context: str | [turns], candidates: [str], top_k?}`` -> ``{results}`` best first
* ``POST /encode`` ``{texts, kind?}`` -> ``{embeddings, dim}``
* ``POST /v1/embeddings`` (OpenAI) and ``POST /v1/rerank`` (Cohere / Jina): see :mod:`unirank.serve.compat`
* ``GET /healthz`` liveness (always 200 while the process serves);
  ``GET /readyz`` 200 once model and index are loaded, 503 before (or if loading failed);
  ``GET /metrics`` Prometheus text (see :mod:`unirank.serve.metrics`).

Behaviour:

* Nothing loads at import or in :func:`build_app`. Given a loader (a zero-argument callable
  returning a :class:`~unirank.serve.backend.Backend`), the app starts it in a background
  thread when it starts up, so ``/healthz`` answers at once; model routes answer 503 with
  ``Retry-After`` until it is done.
* Model work goes through one :class:`~unirank.serve.batching.DynamicBatcher` per route,
  all sharing one model thread: the event loop never runs a model, and concurrent requests
  are scored together (``ServeSettings.batching=False`` sends each request alone).
* Client errors are 4xx with a JSON ``detail``: 401 (API key), 404 (route needs a part
  the server was started without), 408 (the body did not arrive within
  ``body_timeout_s``), 413 (body over ``max_body_bytes``), 422 (malformed JSON - also a
  body that is not UTF-8 -, wrong types, unknown fields, over a
  :class:`~unirank.serve.protocol.Limits` limit; ``detail[*].loc`` names the field). 503
  means loading, overloaded or shutting down. In ``/metrics`` a request whose client went
  away before its answer counts as status 499 (never as a 5xx).
* With ``api_key`` set, every route except ``/healthz`` and ``/readyz`` needs
  ``X-API-Key: <key>`` or ``Authorization: Bearer <key>`` (constant-time comparison); a
  request carrying more than one key (several headers) is refused; ``/readyz`` without a
  valid key says only whether the server is ready (no paths, no error text). An empty key
  is refused, never taken as "no authentication".
* A model or index that fails to load stops the process with a non-zero status (a
  supervisor restarts it); ``/readyz`` answers 503 meanwhile.
* Shutdown (SIGINT / SIGTERM under uvicorn): uvicorn stops accepting connections and waits
  for in-flight requests; a request still sending its body is answered 503 at once (it
  neither holds the exit for the grace period nor ends as a 500); then the lifespan handler
  lets every batcher finish its queue.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, fields
from typing import Any, Callable

from ..config import check_devices
from ..errors import ConfigError
from .backend import Backend, NotAvailable, SearchItem
from .batching import BatcherClosed, DynamicBatcher, QueueFull
from .protocol import (
    EncodeRequest,
    EncodeResponse,
    ErrorResponse,
    HealthResponse,
    Limits,
    RankedCandidate,
    RankRequest,
    RankResponse,
    ReadyResponse,
    SearchHit,
    SearchRequest,
    SearchResponse,
    apply_text_policy,
    check_limits,
    count_truncated,
)

__all__ = ["ServeSettings", "build_app", "serve_main"]

log = logging.getLogger("unirank.serve")

#: routes reachable without an API key (probes)
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
#: documents returned by /search when the request gives no k (capped by Limits.max_k)
DEFAULT_K = 10


@dataclass(frozen=True)
class ServeSettings:
    """Server behaviour (model and index choice live in the backend).

    Args:
        limits: request limits (:class:`~unirank.serve.protocol.Limits`).
        api_key: when set, required on every route but ``/healthz`` and ``/readyz``.
        batching: collect concurrent requests into one model call (False: one call each).
        max_batch_size: most requests per model call.
        max_wait_ms: how long the first request of a batch waits for others to join it. Requests
            that queue up while the model is busy join the next batch whatever this is, so
            even 0 batches under load; 1 ms measured best on an H100 (bench/RESULTS.md).
        max_queue: most requests waiting per route; beyond it 503 + Retry-After.
        body_timeout_s: a request body must arrive within this many seconds (408 after),
            so half-sent bodies are not held forever.
    """

    limits: Limits = field(default_factory=Limits)
    api_key: str | None = None
    batching: bool = True
    max_batch_size: int = 32
    max_wait_ms: float = 1.0
    max_queue: int = 1024
    body_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError(
                "api_key (--api-key / UNIRANK_API_KEY) is empty: that would turn authentication off; "
                "give a key, or unset it to serve without one"
            )
        if self.api_key is not None and self.api_key != self.api_key.strip():
            raise ConfigError(
                "api_key (--api-key / UNIRANK_API_KEY) starts or ends with white space; no request could send it"
            )
        for name, low in (("max_batch_size", 1), ("max_queue", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} (--{name.replace('_', '-')}) must be an integer >= {low}, got {value!r}")
        for name in ("max_wait_ms", "body_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ConfigError(f"{name} (--{name.replace('_', '-')}) must be a finite number >= 0, got {value!r}")


def _fastapi():
    from ..optional import optional_import

    return optional_import("fastapi", "serving", "pip install 'unirank[serve]'")


class _State:
    """Mutable per-app state (the app object is built once; no module globals)."""

    def __init__(self, source: Backend | Callable[[], Backend], settings: ServeSettings) -> None:
        from .metrics import ServerMetrics

        self.settings = settings
        self.loader = None if isinstance(source, Backend) else source
        self.backend: Backend | None = source if isinstance(source, Backend) else None
        self.status = "ready" if self.backend is not None else "loading"
        self.metrics = ServerMetrics()
        self.batchers: dict[str, DynamicBatcher] = {}
        self.executor: ThreadPoolExecutor | None = None
        self.load_future: asyncio.Future | None = None
        self.in_flight = 0  # requests being served (also exported as a gauge)
        self.on_load_failed: Callable[[BaseException], None] | None = None  # serve_main stops the server
        self.loop: asyncio.AbstractEventLoop | None = None
        self.shutting_down: asyncio.Event | None = None

    def begin_shutdown(self) -> None:
        """The server is stopping (called from the signal handler): requests still waiting for
        their body are answered 503 at once. Safe to call from any thread."""
        if self.loop is not None and self.shutting_down is not None:
            self.loop.call_soon_threadsafe(self.shutting_down.set)

    def _run(self, method: str) -> Callable[[list], list]:
        def call(items: list) -> list:
            assert self.backend is not None
            return getattr(self.backend, method)(items)

        return call

    async def start(self) -> None:
        s = self.settings
        self.loop, self.shutting_down = asyncio.get_running_loop(), asyncio.Event()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unirank-model")
        size, wait = (s.max_batch_size, s.max_wait_ms) if s.batching else (1, 0.0)
        for name, method in (("rank", "rank_batch"), ("search", "search_batch"), ("encode", "encode_batch")):
            b = DynamicBatcher(
                self._run(method),
                max_batch_size=size,
                max_wait_ms=wait,
                max_queue=s.max_queue,
                executor=self.executor,
                name=name,
                on_batch=lambda n, sec, q=name: self.metrics.observe_batch(q, n, sec),
            )
            b.start()
            self.metrics.track_queue(name, lambda b=b: b.pending)
            self.batchers[name] = b
        if self.loader is not None and self.backend is None:
            self.load_future = self._load_in_thread()

    def _load_in_thread(self) -> asyncio.Future:
        """Run the loader in a daemon thread (a shutdown during loading does not wait for it)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()

        def done(backend: Backend | None, error: BaseException | None) -> None:
            if fut.done():
                return
            if error is None:
                self.backend, self.status = backend, "ready"
                log.info("ready: %s", backend.describe() if backend else {})
                fut.set_result(None)
            else:
                from ..errors import user_error

                self.status = f"failed: {type(error).__name__}: {error}"
                if self.on_load_failed is not None:  # serve_main: one line here, then the process exits non-zero
                    log.error("loading failed: %s; stopping", user_error(error) or self.status.removeprefix("failed: "))
                    self.on_load_failed(error)
                else:
                    log.error("loading failed: %s", self.status, exc_info=error)
                fut.set_result(None)

        def work() -> None:
            try:
                backend = self.loader()  # type: ignore[misc]
                err = None
            except BaseException as e:  # noqa: BLE001 - reported by /readyz
                backend, err = None, e
            try:
                loop.call_soon_threadsafe(done, backend, err)
            except RuntimeError:  # the loop has closed: the server stopped while loading
                pass

        threading.Thread(target=work, name="unirank-load", daemon=True).start()
        return fut

    async def stop(self) -> None:
        for b in self.batchers.values():
            await b.stop()  # serves everything still queued
        if self.executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.executor.shutdown)
            self.executor = None


def _credentials(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    """Every API key a request carries (``X-API-Key`` headers, ``Authorization`` headers)."""
    out = []
    for name, value in headers:
        name = name.lower()
        if name == b"x-api-key":
            out.append(value.strip())
        elif name == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            out.append(token.strip() if scheme.lower() == b"bearer" else b"")
    return out


def _authorized(headers: list[tuple[bytes, bytes]], key: bytes) -> bool:
    """True when the request carries exactly one key, in ``X-API-Key`` or ``Authorization:
    Bearer``, and it is ``key`` (constant-time comparison). Several keys are refused even if
    one matches: a proxy that adds its own header must not let a guessed one through."""
    given = _credentials(headers)
    return len(given) == 1 and hmac.compare_digest(given[0], key)


class _Guard:
    """Pure ASGI middleware: metrics for every request, then API key, then body size.

    The body is read here (up to ``max_body_bytes``; past it: 413) and replayed to the app,
    so an over-long chunked body is refused without being held in full.
    """

    def __init__(self, app: Any, state: _State, routes: set[str]) -> None:
        self.app, self.state, self.routes = app, state, routes
        key = state.settings.api_key
        self.key = None if key is None else key.encode("utf-8")

    @staticmethod
    async def _reply(send: Callable, status: int, detail: str, headers: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
        import json

        body = json.dumps({"detail": detail}).encode()
        hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
        await send({"type": "http.response.start", "status": status, "headers": hdrs})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        route = path if path in self.routes else "other"
        status = {"code": 500, "started": False, "gone": False}
        t0 = time.perf_counter()
        m = self.state.metrics

        async def send_(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
            await send(message)

        async def receive_() -> dict:
            message = await receive()
            if message["type"] == "http.disconnect":
                status["gone"] = True
            return message

        m.in_flight.inc()
        self.state.in_flight += 1
        try:
            await self._handle(scope, receive_, send_, path)
        finally:
            if status["gone"] and not status["started"]:
                status["code"] = 499  # the client went away before its answer: not a server error
            self.state.in_flight -= 1
            m.in_flight.dec()
            m.observe_request(route, scope.get("method", "?"), status["code"], time.perf_counter() - t0)

    async def _receive_body_message(self, receive: Callable, deadline: float) -> dict | None:
        """The next request message, ``None`` when the body deadline passes or the server
        begins shutting down first."""
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return None
        get = asyncio.ensure_future(receive())
        waits = {get}
        stop = self.state.shutting_down
        if stop is not None:
            waits.add(asyncio.ensure_future(stop.wait()))
        done, pending = await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        return get.result() if get in done else None

    async def _handle(self, scope: dict, receive: Callable, send: Callable, path: str) -> None:
        if self.key is not None and path not in OPEN_PATHS and not _authorized(scope.get("headers", []), self.key):
            if len(_credentials(scope.get("headers", []))) > 1:
                return await self._reply(
                    send,
                    401,
                    "send one API key (one X-API-Key or Authorization: Bearer header), not several",
                    [(b"www-authenticate", b"Bearer")],
                )
            return await self._reply(
                send,
                401,
                "missing or wrong API key (send X-API-Key or Authorization: Bearer)",
                [(b"www-authenticate", b"Bearer")],
            )
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        limit = self.state.settings.limits.max_body_bytes
        for name, value in scope.get("headers", []):
            if name.lower() == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return await self._reply(send, 400, "invalid Content-Length header")
                if declared > limit:
                    return await self._reply(send, 413, f"request body over {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        deadline = time.perf_counter() + self.state.settings.body_timeout_s
        while True:
            message = await self._receive_body_message(receive, deadline)
            if message is None:  # a half-sent body: never held past the deadline or into the shutdown
                stopping = self.state.shutting_down is not None and self.state.shutting_down.is_set()
                if stopping:
                    return await self._reply(
                        send, 503, "server is shutting down", [(b"connection", b"close"), (b"retry-after", b"5")]
                    )
                return await self._reply(
                    send,
                    408,
                    f"request body not received within {self.state.settings.body_timeout_s:g} s",
                    [(b"connection", b"close")],
                )
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await self._reply(send, 413, f"request body over {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, sent = b"".join(chunks), False
        if body and _is_json(scope.get("headers", [])):
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as e:  # FastAPI would answer 400; malformed JSON is 422 everywhere else
                import json

                detail = [
                    {
                        "loc": ["body", e.start],
                        "msg": f"JSON decode error: the body is not UTF-8 (byte {e.start})",
                        "type": "json_invalid",
                    }
                ]
                payload = json.dumps({"detail": detail}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 422,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()),
                        ],
                    }
                )
                return await send({"type": "http.response.body", "body": payload})

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    """The request declares a JSON body (or no content type, which FastAPI reads as JSON)."""
    for name, value in headers:
        if name.lower() == b"content-type":
            media = value.split(b";")[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return True


def _clean_errors(errors: Any) -> list[dict]:
    """Validation errors without the echoed input, with JSON-safe context values."""
    out = []
    for e in errors:
        d = {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        if e.get("ctx"):
            d["ctx"] = {
                k: v if isinstance(v, (int, float, str, bool)) or v is None else str(v) for k, v in e["ctx"].items()
            }
        out.append(d)
    return out


def build_app(backend: Backend | Callable[[], Backend], settings: ServeSettings | None = None) -> Any:
    """Make the FastAPI app.

    Args:
        backend: a loaded :class:`~unirank.serve.backend.Backend`, or a zero-argument
            callable building one (run in a background thread at startup).
        settings: limits, auth and batching (:class:`ServeSettings`).

    Returns:
        A ``fastapi.FastAPI`` app (ASGI); run it with uvicorn, or test it with httpx.

    Example:
        >>> app = build_app(lambda: Backend())  # nothing is loaded until the app starts
        >>> sorted(r.path for r in app.routes if r.path in ("/search", "/rank", "/encode", "/readyz"))
        ['/encode', '/rank', '/readyz', '/search']
    """
    fastapi = _fastapi()
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response

    settings = settings or ServeSettings()
    state = _State(backend, settings)

    @asynccontextmanager
    async def lifespan(app: Any):
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    app = fastapi.FastAPI(
        title="unirank",
        summary="Search, rerank and response selection with neural rankers.",
        version=_version(),
        lifespan=lifespan,
        responses={422: {"description": "invalid request; detail[*].loc names the field"}},
    )
    app.state.unirank = state
    limits = settings.limits
    busy = {503: {"model": ErrorResponse, "description": "loading, overloaded or shutting down (see Retry-After)"}}
    missing = {404: {"model": ErrorResponse, "description": "the server was started without the part this route needs"}}

    def invalid(errors: list[dict]) -> RequestValidationError:
        return RequestValidationError(errors)

    def prepare(req: Any) -> tuple[Any, int]:
        errs = check_limits(req, limits)
        fixed, text_errs = apply_text_policy(req, limits)
        if errs or text_errs:
            raise invalid(errs + text_errs)
        return fixed, count_truncated(req, limits)

    def ready(part: str, absent: str) -> Backend:
        """The loaded backend (503 while loading), 404 naming ``absent`` when it lacks ``part``."""
        if state.backend is None:
            raise fastapi.HTTPException(503, f"not ready: {state.status}", headers={"Retry-After": "5"})
        if getattr(state.backend, part) is None:
            raise fastapi.HTTPException(404, f"this server has no {absent}")
        return state.backend

    async def submit(queue: str, item: Any) -> Any:
        try:
            return await state.batchers[queue].submit(item)
        except QueueFull:
            raise fastapi.HTTPException(503, "server overloaded; retry later", headers={"Retry-After": "1"}) from None
        except BatcherClosed:
            raise fastapi.HTTPException(503, "server is shutting down", headers={"Retry-After": "5"}) from None
        except NotAvailable as e:
            raise fastapi.HTTPException(404, str(e)) from None

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _clean_errors(exc.errors())}, status_code=422)

    @app.post("/search", response_model=SearchResponse, responses={**busy, **missing})
    async def search(req: SearchRequest) -> SearchResponse:
        """Retrieve the top ``k`` documents; with ``rerank`` the server's ranker reorders them."""
        req, n_cut = prepare(req)
        be = ready("retriever", "index (start it with --index)")
        if req.rerank and be.ranker is None:
            raise invalid(
                [
                    {
                        "loc": ["body", "rerank"],
                        "msg": "this server has no reranker model (start it with --model)",
                        "type": "value_error",
                    }
                ]
            )
        k = req.k if req.k is not None else min(DEFAULT_K, limits.max_k)
        hits = await submit("search", SearchItem(req.query, k, req.rerank))
        out = []
        for h in hits:
            doc = be.document(h.index)
            out.append(
                SearchHit(
                    id=doc.id,
                    score=h.score,
                    retrieval_score=h.retrieval_score,
                    title=doc.title if req.return_text else None,
                    text=doc.text if req.return_text else None,
                )
            )
        return SearchResponse(hits=out, truncated=n_cut)

    @app.post("/rank", response_model=RankResponse, responses={**busy, **missing})
    async def rank(req: RankRequest) -> RankResponse:
        """Score candidates for a query or dialogue context; best first (ties keep request order)."""
        req, n_cut = prepare(req)
        ready("ranker", "ranker model (start it with --model)")
        scores = await submit("rank", (req.context, list(req.candidates))) if req.candidates else []
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        if req.top_k is not None:
            order = order[: req.top_k]
        return RankResponse(
            results=[RankedCandidate(index=i, text=req.candidates[i], score=scores[i]) for i in order], truncated=n_cut
        )

    @app.post("/encode", response_model=EncodeResponse, responses={**busy, **missing})
    async def encode(req: EncodeRequest) -> EncodeResponse:
        """Embed texts with the server's bi-encoder (as queries or as documents)."""
        req, n_cut = prepare(req)
        ready("encoder", "bi-encoder (start it with --model DIR --kind bi, or with a dense --retriever)")
        if not req.texts:
            return EncodeResponse(embeddings=[], dim=0, truncated=n_cut)
        vecs = await submit("encode", (list(req.texts), req.kind))
        return EncodeResponse(embeddings=vecs.tolist(), dim=int(vecs.shape[1]), truncated=n_cut)

    @app.get("/healthz", response_model=HealthResponse)
    async def healthz() -> HealthResponse:
        """Liveness: the process answers."""
        return HealthResponse()

    async def readyz(request):  # annotated below: Request is imported here, not at module level
        """Readiness: 200 once model and index are loaded, 503 while loading or after a failure.
        With an API key set, a request without it sees only ``ready`` and the status word."""
        info = state.backend.describe() if state.backend is not None else {}
        body = ReadyResponse(
            ready=state.backend is not None,
            status=state.status,
            **{k: v for k, v in info.items() if k in ReadyResponse.model_fields},
        )
        key = settings.api_key
        if key is not None and not _authorized(request.scope.get("headers", []), key.encode("utf-8")):
            body = ReadyResponse(ready=body.ready, status=body.status.split(":")[0])  # no paths, no error text
        return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)

    readyz.__annotations__["request"] = Request
    app.get("/readyz", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})(readyz)

    @app.get("/metrics", response_class=Response)
    async def metrics():
        """Prometheus text format: request counts and latencies by route, batch sizes."""
        from .metrics import CONTENT_TYPE

        state.metrics.ready.set(1 if state.backend is not None else 0)
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    from .compat import add_compat_routes

    add_compat_routes(app, prepare=prepare, ready=ready, submit=submit, invalid=invalid)  # /v1/embeddings, /v1/rerank
    if settings.api_key is not None:
        _document_auth(app)
    routes = {r.path for r in app.routes if hasattr(r, "path")}
    app.add_middleware(_Guard, state=state, routes=routes)
    return app


def _document_auth(app: Any) -> None:
    """Declare the API-key schemes in the OpenAPI schema (enforcement is in the middleware)."""
    base = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = base()
            comps = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            comps["APIKeyHeader"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
            comps["Bearer"] = {"type": "http", "scheme": "bearer"}
            for path, ops in schema.get("paths", {}).items():
                if path not in OPEN_PATHS:
                    for op in ops.values():
                        op["security"] = [{"APIKeyHeader": []}, {"Bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("unirank")
    except Exception:  # noqa: BLE001 - not installed (source checkout)
        return "0"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_LOAD_KEYS = ("retriever", "dense_model", "max_docs", "device", "rerank_depth", "backend", "retriever_set")


#: uvicorn's log levels (``--log-level``)
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def serve_main(
    model: str | None,
    index: str | None,
    kind: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    **options: Any,
) -> None:
    """Load nothing, start uvicorn, load model and index in the background, serve until stopped.

    Args:
        model: ranker for ``/rank`` and reranking (folder, ``minilm``, hub name; None: none).
        index: ``stdlib-codesearch`` or a BEIR folder for ``/search`` (None: no search).
        kind: model kind (bi, cross, poly, uni; ``None``: the saved folder's kind, else bi).
        host, port: where to listen (loopback by default; a warning is logged when another
            interface is used without an API key).
        api_key: require this key (see :class:`ServeSettings`).
        **options: any :class:`~unirank.serve.protocol.Limits` field (``max_candidates``,
            ``max_text_chars``, ``max_turns``, ``max_k``, ``max_body_bytes``,
            ``max_encode_texts``, ``text_policy``), any :class:`ServeSettings` field
            (``batching``, ``max_batch_size``, ``max_wait_ms``, ``max_queue``), any
            :func:`~unirank.serve.backend.load_backend` setting (``retriever``,
            ``dense_model``, ``max_docs``, ``device``, ``rerank_depth``, ``backend``, ``retriever_set``), and
            ``log_level`` / ``graceful_timeout`` (seconds to wait for in-flight requests).
            ``None`` values mean "default".
    """
    import uvicorn

    from .backend import check_backend_args, load_backend

    options = {k: v for k, v in options.items() if v is not None}
    log_level = options.pop("log_level", "info")
    graceful = float(options.pop("graceful_timeout", 30.0))
    limit_keys = {f.name for f in fields(Limits)}
    setting_keys = {f.name for f in fields(ServeSettings)} - {"limits", "api_key"}
    unknown = set(options) - limit_keys - setting_keys - set(_LOAD_KEYS)
    if unknown:
        raise TypeError(f"serve_main: unknown option(s) {', '.join(sorted(unknown))}")
    if model is None and index is None:
        raise ConfigError("nothing to serve: give a model (--model) and/or an index (--index)")
    if api_key is None and "UNIRANK_API_KEY" in os.environ:  # set but empty: typer reads it as unset
        api_key = os.environ["UNIRANK_API_KEY"]
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"--port: expected a port number 0-65535, got {port!r}")
    if not 0 <= graceful < math.inf:
        raise ConfigError(f"--graceful-timeout: expected a number of seconds >= 0, got {graceful!r}")
    if str(log_level).lower() not in LOG_LEVELS:  # uvicorn would raise KeyError once the server is built
        raise ConfigError(f"--log-level: expected one of {' | '.join(LOG_LEVELS)}, got {log_level!r}")
    settings = ServeSettings(
        limits=Limits(**{k: v for k, v in options.items() if k in limit_keys}),
        api_key=api_key,  # an empty key is refused, never read as "no authentication"
        **{k: v for k, v in options.items() if k in setting_keys},
    )
    load_kw = {k: v for k, v in options.items() if k in _LOAD_KEYS}
    check_backend_args(model, kind, index, load_kw.get("retriever", "bm25"))  # bad names fail before the server starts
    from ..runtime.backends import parse_backend
    from .backend import retriever_config

    parse_backend(load_kw.get("backend"))  # so do an unknown --backend,
    rcfg = retriever_config(load_kw.get("retriever", "bm25"), load_kw.get("retriever_set", ()))  # bad --set keys,
    if rcfg.name == "cur":  # a CUR retriever without its index
        from ..index.cur_retriever import check_cur_retriever_config

        check_cur_retriever_config(rcfg.cur)
    dense_model = load_kw.get("dense_model")
    if dense_model and rcfg.name in ("dense", "hybrid", "splade", "fusion"):
        from ..models.backbone import resolve_model_path

        resolve_model_path(dense_model)  # and a --dense-model path that is missing, a file or a run folder
    check_devices({"--device": load_kw.get("device")})
    logging.basicConfig(
        level=getattr(logging, str(log_level).upper(), logging.INFO),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if not _is_loopback(host) and settings.api_key is None:
        log.warning("listening on %s without an API key: anyone who can reach it can use it (set --api-key)", host)
    _check_listen(host, port)  # a taken or foreign address fails here, in one line, not after the model loaded
    app = build_app(lambda: load_backend(model=model, kind=kind, index=index, **load_kw), settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=str(log_level).lower(),
        timeout_graceful_shutdown=graceful,
        access_log=False,
    )
    server = _make_server(config, app.state.unirank)
    failed: list[BaseException] = []

    def load_failed(error: BaseException) -> None:  # on the event loop: stop serving, exit non-zero below
        failed.append(error)
        server.should_exit = True

    app.state.unirank.on_load_failed = load_failed
    server.run()
    if failed:  # a user's error (bad model path, damaged weights): one line, exit 2; a bug: its traceback
        raise failed[0]
    if not server.started:  # uvicorn could not start (it logged why)
        raise SystemExit(3)


def _check_listen(host: str, port: int) -> None:
    """``host:port`` can be listened on (not taken, an address of this machine)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ConfigError(f"--host {host}: not an address of this machine ({e.strerror})") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(addr)
        except OSError as e:
            raise ConfigError(f"--host {host} --port {port}: cannot listen there: {e.strerror}") from None


def _make_server(config: Any, state: _State) -> Any:
    """A uvicorn server that also tells the app when a shutdown signal arrives, so requests
    still waiting for their body are answered (503) instead of holding the exit."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            state.begin_shutdown()
            super().handle_exit(sig, frame)

    return Server(config)
