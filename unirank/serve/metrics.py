"""Prometheus metrics of one server, exposed as text at ``GET /metrics``.

Each app gets its own :class:`prometheus_client.CollectorRegistry` (no process-global
state, so several apps in one process, e.g. tests, do not mix their counts).

Exposed series:

* ``unirank_requests_total{route, method, status}``: requests answered;
* ``unirank_request_duration_seconds{route}``: latency histogram (whole request);
* ``unirank_batch_size{queue}``: items per model call, histogram;
* ``unirank_batch_duration_seconds{queue}``: time of each model call, histogram;
* ``unirank_queue_depth{queue}``: items waiting for a batch (sampled at scrape time);
* ``unirank_in_flight_requests``, ``unirank_ready`` (1 when model and index are loaded).

``route`` is the route's path template (``/rank``), or ``other`` for unknown paths, so the
label set stays small whatever clients send.

Example:
    >>> m = ServerMetrics()
    >>> m.observe_request("/rank", "POST", 200, 0.012)
    >>> m.observe_batch("rank", 4, 0.05)
    >>> text = m.render().decode()
    >>> 'unirank_requests_total{method="POST",route="/rank",status="200"} 1.0' in text
    True
    >>> 'unirank_batch_size_bucket{le="4.0",queue="rank"} 1.0' in text
    True
"""

from __future__ import annotations

from typing import Callable

__all__ = ["ServerMetrics", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _prom():
    from ..optional import optional_import

    return optional_import("prometheus_client", "serving metrics", "pip install 'unirank[serve]'")


class ServerMetrics:
    """The metric families of one app, in their own registry."""

    def __init__(self) -> None:
        p = _prom()
        self.registry = p.CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = p.Counter("unirank_requests", "Requests answered", ["route", "method", "status"], registry=r)
        self.latency = p.Histogram(
            "unirank_request_duration_seconds", "Request latency", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.batch_size = p.Histogram(
            "unirank_batch_size", "Items per model call", ["queue"], buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_time = p.Histogram(
            "unirank_batch_duration_seconds", "Model call time", ["queue"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.queue_depth = p.Gauge("unirank_queue_depth", "Items waiting for a batch", ["queue"], registry=r)
        self.in_flight = p.Gauge("unirank_in_flight_requests", "Requests being served", registry=r)
        self.ready = p.Gauge("unirank_ready", "1 when model and index are loaded", registry=r)
        self._depth_sources: dict[str, Callable[[], int]] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, method=method, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def observe_batch(self, queue: str, size: int, seconds: float) -> None:
        self.batch_size.labels(queue=queue).observe(size)
        self.batch_time.labels(queue=queue).observe(seconds)

    def track_queue(self, queue: str, depth: Callable[[], int]) -> None:
        """Sample ``depth()`` into ``unirank_queue_depth{queue}`` at every scrape."""
        self._depth_sources[queue] = depth

    def render(self) -> bytes:
        """The Prometheus text exposition (format 0.0.4) of every series."""
        for queue, depth in self._depth_sources.items():
            self.queue_depth.labels(queue=queue).set(depth())
        return _prom().generate_latest(self.registry)
