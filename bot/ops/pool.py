"""The worker pool the operations scheduler runs its jobs on, and how it stops.

Why not apscheduler's own ``ThreadPoolExecutor``: it wraps ``concurrent.futures``, whose
worker threads are joined when the interpreter exits, so an eval still running when
``deptbot serve`` stops keeps the process alive for as long as the eval takes, and
``shutdown(wait=False)`` still runs every job already queued. Here the workers are daemon
threads, ``close`` drops the queued jobs at once, and ``join`` waits a bounded time,
returning what was dropped and what was still running (the caller logs it). A job left
running is cut off when the process exits; what it wrote is in SQLite transactions, and
the department lease it held lapses by itself (``bot.ops.locks``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from apscheduler.executors.pool import BasePoolExecutor

_Item = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


@dataclass
class Abandoned:
    """What a stop left undone, by job id: never started, and cut off while running."""

    cancelled: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)


def _name(fn: Callable[..., Any], args: tuple[Any, ...]) -> str:
    job = args[0] if args else None  # apscheduler submits run_job(job, jobstore, run_times, logger)
    return str(getattr(job, "id", None) or getattr(fn, "__name__", "job"))


class DaemonPool:
    """``submit`` → ``Future`` like ``concurrent.futures.ThreadPoolExecutor``, on ``workers``
    daemon threads started on first use."""

    def __init__(self, workers: int, *, prefix: str = "deptbot-ops") -> None:
        self._workers = workers
        self._prefix = prefix
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._running: dict[int, str] = {}  # worker thread ident → the job it runs
        self._lock = threading.Lock()
        self._closed = False
        self.cancelled: list[str] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._lock:
            if self._closed:  # handed over while stopping: dropped like a queued job, and named
                self.cancelled.append(_name(fn, args))
                raise RuntimeError("the operations pool is shut down")
            if len(self._threads) < self._workers:
                worker = threading.Thread(
                    target=self._work, name=f"{self._prefix}-{len(self._threads)}", daemon=True
                )
                self._threads.append(worker)
                worker.start()
            future: Future[Any] = Future()
            self._queue.put((future, fn, args, kwargs))
            return future

    def _work(self) -> None:
        me = threading.get_ident()
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            if not future.set_running_or_notify_cancel():
                continue
            with self._lock:
                if self._closed:  # dropped by close() while this worker was picking it up
                    self.cancelled.append(_name(fn, args))
                    continue
                self._running[me] = _name(fn, args)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
            finally:
                with self._lock:
                    self._running.pop(me, None)

    def shutdown(self, wait: bool = True) -> None:
        """What apscheduler calls: close now; ``wait`` joins without bound (tests only)."""
        self.close()
        if wait:
            for worker in list(self._threads):
                worker.join()

    def close(self) -> None:
        """Take no more jobs and drop the queued ones (their futures never complete: the
        scheduler that would hear of them is shutting down)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    self.cancelled.append(_name(item[1], item[2]))
            for _ in self._threads:
                self._queue.put(None)

    def join(self, timeout: float) -> Abandoned:
        """Wait up to ``timeout`` seconds for running jobs; what is left undone."""
        self.close()
        deadline = time.monotonic() + timeout
        for worker in list(self._threads):
            worker.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            return Abandoned(cancelled=list(self.cancelled), running=sorted(self._running.values()))


class DaemonExecutor(BasePoolExecutor):
    """apscheduler's pool executor over a ``DaemonPool``."""

    def __init__(self, pool: DaemonPool) -> None:
        super().__init__(pool)
        self.pool = pool
