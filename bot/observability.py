"""What the running process tells operators about itself: the request id of the current
log line, and the events ``/metrics`` counts (``bot.adapters.metrics``).

Why here and not in an adapter: every answer, feedback click and refresh passes through
the core (``Assistant.ask``/``feedback``/``refresh``) or the knowledge watcher, whatever
the platform. Recording at those few points — one ``notify`` each — means a new adapter
cannot forget to count, and nothing is counted twice. Observers receive the neutral
``Message``/``Answer`` values; what they keep from them (labels only from closed sets, no
text, no people) is theirs to decide, and their failures never reach the person asking.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.config import Department
    from bot.core.ports import Indexer, IndexReport, IndexStatus, ProgressFn
    from bot.core.types import Answer, Message

log = logging.getLogger(__name__)

REQUEST_ID: ContextVar[str] = ContextVar("deptbot_request_id", default="")
"""The request id of the answer being computed (set by ``Assistant.ask``), so log lines can
carry it (``bot.logs.JsonFormatter``) without any call site passing it along."""


class Observer(Protocol):
    """Told about each finished answer, feedback vote and knowledge refresh."""

    def answered(self, message: Message, answer: Answer | None) -> None:
        """``answer`` is None when ``ask`` raised (a UsageError the adapter shows)."""

    def feedback(self, value: str) -> None:
        """``value`` is "up" or "down" (already checked)."""

    def refreshed(self, department: str, seconds: float, ok: bool) -> None:
        """One refresh of ``department`` took ``seconds``; ``ok`` is False when it raised."""


def notify(observers: Iterable[Observer], event: str, *args: object) -> None:
    """Call ``event`` on every observer; a failing observer is logged and skipped (ids only)."""
    for observer in list(observers):
        try:
            getattr(observer, event)(*args)
        except Exception:
            log.warning("observer %s failed on %s", type(observer).__name__, event, exc_info=True)


class ObservedIndexer:
    """An ``Indexer`` that tells ``observers`` how long each refresh took and whether it
    failed. The list is read at each refresh, so observers added later (a server's
    metrics, attached when it starts) hear refreshes started by a watcher made earlier."""

    def __init__(self, inner: Indexer, observers: list[Observer]) -> None:
        self._inner = inner
        self._observers = observers

    def refresh(self, department: Department, *, progress: ProgressFn | None = None) -> IndexReport:
        """A refresh refused because one is already running (``RefreshBusy``) did not run:
        observers hear nothing (no failure alert, no evals queued, no duration counted)."""
        from bot.errors import RefreshBusy

        started, ok, ran = time.perf_counter(), False, True
        try:
            report = self._inner.refresh(department, progress=progress)
            ok = True
            return report
        except RefreshBusy:
            ran = False
            raise
        finally:
            if ran:
                notify(self._observers, "refreshed", department.name, time.perf_counter() - started, ok)

    def status(self, department: Department) -> IndexStatus:
        return self._inner.status(department)
