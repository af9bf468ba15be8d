"""``/livez`` (= ``/healthz``) and ``/readyz`` for orchestrators and load balancers.

Liveness is constant: the process answers. Readiness asks a few cheap questions:

- ``config``: the settings loaded without problems and the company has departments;
- ``indexes``: every department has an index to answer from (one stat each, no folder walk);
- ``databases``: the state folder takes a write, and every SQLite file in it (top level
  only) takes a write lock (``BEGIN IMMEDIATE``, rolled back at once);
- ``postgresql`` (only with ``DEPTBOT_DATABASE_URL``): the shared database answers and its
  schema is current (``bot.store.pg_health``).

The result is cached for ``ttl`` seconds and computed on the runtime's quick threads, one
computation at a time however many probes arrive, so a probe never blocks the event loop.
Not on the report threads: a probe that waited behind the console's multi-second reports
would time out, and the orchestrator would take a healthy replica out of service.
Both endpoints are unauthenticated, so they reveal only ``{"status": ...}`` and the names of
failing checks, never department names, counts or paths.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from bot.adapters.runtime import Runtime
from bot.core.pipeline import Assistant
from bot.settings import Settings

log = logging.getLogger(__name__)

READY_TTL = 5.0  # seconds a readiness result is reused
DB_PATTERNS = ("*.db", "*.sqlite", "*.sqlite3")


async def livez(request: web.Request) -> web.Response:
    """Liveness: the process answers. Constant time, no I/O, and it reveals nothing — no
    department names, document counts or versions to an unauthenticated caller."""
    return web.json_response({"status": "ok"})


@dataclass(frozen=True)
class Readiness:
    failing: tuple[str, ...]  # names of failed checks; empty = ready

    @property
    def ready(self) -> bool:
        return not self.failing


class ReadyChecks:
    """The checks behind ``/readyz`` and their cache (see the module text)."""

    def __init__(
        self,
        *,
        assistant: Assistant,
        settings: Settings,
        runtime: Runtime,
        ttl: float = READY_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._assistant = assistant
        self._settings = settings
        self._runtime = runtime
        self._ttl = ttl
        self._clock = clock
        self._last: tuple[float, Readiness] | None = None
        self._running: asyncio.Future[Readiness] | None = None

    async def current(self) -> Readiness:
        """The cached result while fresh; otherwise one computation shared by every caller."""
        if self._last is not None and self._clock() - self._last[0] < self._ttl:
            return self._last[1]
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._runtime.quick(self.check))
        try:
            result = await asyncio.shield(self._running)
        except Exception:
            log.exception("readiness checks failed")
            result = Readiness(("checks",))
        self._last = (self._clock(), result)
        return result

    def check(self) -> Readiness:
        """Run every check now (on a worker thread: it touches the disk)."""
        failing = []
        for name, check in (
            ("config", self._config),
            ("indexes", self._indexes),
            ("databases", self._databases),
            ("postgresql", self._postgresql),
        ):
            try:
                ok = check()
            except Exception:
                log.warning("readiness check %s raised", name, exc_info=True)
                ok = False
            if not ok:
                failing.append(name)
        return Readiness(tuple(failing))

    def _config(self) -> bool:
        if self._settings.problems:
            return False
        self._settings.values  # noqa: B018 — raises when the settings do not validate
        return any(True for _ in self._assistant.company)

    def _indexes(self) -> bool:
        missing = self._assistant.missing_indexes()
        if missing:
            log.info("not ready: %d department(s) without an index", len(missing))
        return not missing

    def _databases(self) -> bool:
        state = Path(self._settings.state_dir)
        probe = state / f".readyz-{os.getpid()}"
        try:
            fd = os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
            os.close(fd)
            probe.unlink()
        except OSError:
            log.warning("not ready: the state folder takes no writes")
            return False
        return all(_writable(db) for pattern in DB_PATTERNS for db in state.glob(pattern))

    def _postgresql(self) -> bool:
        """With ``DEPTBOT_DATABASE_URL``: the shared database answers on this replica's pool
        and its schema is what this release needs (one round trip; a replica whose database
        is down stops taking traffic — its answers would refuse anyway)."""
        from bot.errors import StoreError
        from bot.store.backend import database_for
        from bot.store.pg_health import database_health

        try:
            db = database_for(self._settings)  # the pool every store of this process shares
        except StoreError as exc:  # down since start: migrations not applied yet
            log.warning("not ready: %s", exc.user_message)
            return False
        if db is None:
            return True
        health = database_health(db)
        if not health.ok:
            log.warning("not ready: %s", health.problem)  # the URL without its password
        return health.ok


def _writable(path: Path) -> bool:
    """Whether SQLite may write ``path``: take the write lock and give it back at once."""
    try:
        conn = sqlite3.connect(path, timeout=1.0, isolation_level=None)
    except sqlite3.Error:
        return False
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as exc:  # busy with another writer still means writable
        ok = "locked" in str(exc) or "busy" in str(exc)
        if not ok:
            log.warning("not ready: %s takes no writes (%s)", path.name, exc)
        return ok
    finally:
        conn.close()


READY = web.AppKey("deptbot.ready", ReadyChecks)


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 ``{"status": "ready"}``, or 503 with the names of the failing checks."""
    result = await request.app[READY].current()
    if result.ready:
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "not ready", "failing": list(result.failing)}, status=503)
