"""Dynamic batching: concurrent requests are collected for a few ms and run as one model call.

A :class:`DynamicBatcher` owns a queue and one asyncio worker task. ``await submit(item)``
enqueues an item and waits for its result. The worker takes the first waiting item, then
keeps collecting until ``max_batch_size`` items are queued or ``max_wait_ms`` has passed
since the first one, and runs ``fn(items) -> results`` **in an executor thread**, so model
calls never block the event loop. Under light load a batch holds one item and waits at most
``max_wait_ms``; under heavy load batches fill up and throughput rises.

If a batched call raises, each item of that batch is retried alone, so one bad input fails
only its own request. ``stop()`` finishes every queued item before returning (graceful
shutdown), and refuses new ones. ``max_batch_size=1, max_wait_ms=0`` turns batching off.

Example:
    >>> import asyncio
    >>> seen = []
    >>> def double(xs):
    ...     seen.append(len(xs))
    ...     return [2 * x for x in xs]
    >>> async def demo():
    ...     b = DynamicBatcher(double, max_batch_size=8, max_wait_ms=20)
    ...     b.start()
    ...     out = await asyncio.gather(*(b.submit(i) for i in range(5)))
    ...     await b.stop()
    ...     return out
    >>> asyncio.run(demo()), seen
    ([0, 2, 4, 6, 8], [5])
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Callable, Generic, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

__all__ = ["DynamicBatcher", "QueueFull", "BatcherClosed"]


class QueueFull(Exception):
    """More than ``max_queue`` items are waiting (the server answers 503 + Retry-After)."""


class BatcherClosed(Exception):
    """``submit`` after ``stop`` (the server is shutting down; answered with 503)."""


@dataclass
class _Job(Generic[T]):
    item: T
    future: asyncio.Future
    enqueued: float


class DynamicBatcher(Generic[T, R]):
    """Collect concurrent ``submit`` calls into batches for ``fn``.

    Args:
        fn: ``fn(items) -> results``, one result per item, in order; runs in ``executor``.
        max_batch_size: most items per call.
        max_wait_ms: how long the first item of a batch waits for company.
        max_queue: most items waiting; beyond it ``submit`` raises :class:`QueueFull`.
        executor: where ``fn`` runs (None: the loop's default thread pool). Share one
            single-thread executor between batchers to serialise model calls.
        on_batch: called on the event loop after each batch with ``(size, seconds)``.
        name: used in error messages and metrics labels.
    """

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        max_batch_size: int = 32,
        max_wait_ms: float = 1.0,
        max_queue: int = 4096,
        executor: Executor | None = None,
        on_batch: Callable[[int, float], None] | None = None,
        name: str = "batch",
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.fn, self.max_batch_size, self.max_wait = fn, max_batch_size, max_wait_ms / 1000.0
        self.max_queue, self.executor, self.on_batch, self.name = max_queue, executor, on_batch, name
        self._queue: asyncio.Queue[_Job[T] | None] | None = None
        self._worker: asyncio.Task | None = None
        self._closed = False
        self.calls = 0  # number of fn calls made (batches, plus solo retries)

    @property
    def pending(self) -> int:
        """Items waiting in the queue (not counting the batch being run)."""
        return 0 if self._queue is None else self._queue.qsize()

    def start(self) -> None:
        """Start the worker task; call from inside the running event loop."""
        if self._worker is None:
            self._queue = asyncio.Queue()
            self._closed = False
            self._worker = asyncio.get_running_loop().create_task(self._run(), name=f"batcher-{self.name}")

    async def submit(self, item: T) -> R:
        """Queue ``item`` and wait for its result (re-raises ``fn``'s exception for it)."""
        if self._closed or self._queue is None:
            raise BatcherClosed(f"{self.name} batcher is not running")
        if self._queue.qsize() >= self.max_queue:
            raise QueueFull(f"{self.name} queue holds {self.max_queue} items")
        fut = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(item, fut, time.perf_counter()))
        return await fut

    async def stop(self) -> None:
        """Refuse new items, finish every queued one, then end the worker."""
        if self._worker is None:
            return
        self._closed = True
        assert self._queue is not None
        self._queue.put_nowait(None)  # sentinel: everything before it is still served
        await self._worker
        self._worker = None

    async def _collect(self, first: _Job[T]) -> tuple[list[_Job[T]], bool]:
        """The first job plus whatever arrives within the wait window; True if the sentinel came."""
        assert self._queue is not None
        jobs = [first]
        deadline = time.perf_counter() + self.max_wait
        while len(jobs) < self.max_batch_size:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            if job is None:
                return jobs, True
            jobs.append(job)
        return jobs, False

    async def _call(self, items: list[T]) -> Sequence[R]:
        self.calls += 1
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.fn, items)

    async def _run_batch(self, jobs: list[_Job[T]]) -> None:
        live = [j for j in jobs if not j.future.done()]  # a client that went away is cancelled
        if not live:
            return
        t0 = time.perf_counter()
        try:
            results = await self._call([j.item for j in live])
            if len(results) != len(live):
                raise RuntimeError(f"{self.name}: fn returned {len(results)} results for {len(live)} items")
            for j, r in zip(live, results):
                if not j.future.done():
                    j.future.set_result(r)
        except Exception as batch_error:  # noqa: BLE001 - handed to the waiting requests
            if len(live) == 1:
                if not live[0].future.done():
                    live[0].future.set_exception(batch_error)
            else:
                for j in live:  # isolate the bad item: each alone
                    try:
                        (r,) = await self._call([j.item])
                        if not j.future.done():
                            j.future.set_result(r)
                    except Exception as e:  # noqa: BLE001
                        if not j.future.done():
                            j.future.set_exception(e)
        if self.on_batch is not None:
            self.on_batch(len(live), time.perf_counter() - t0)

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            first = await self._queue.get()
            if first is None:
                return
            jobs, stop = await self._collect(first)
            await self._run_batch(jobs)
            if stop:  # the sentinel is last: submit refuses items once stop() has begun
                return
