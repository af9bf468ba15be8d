"""Background refresh of stale department indexes while the server runs.

apscheduler runs one interval job in a thread; each tick stats the knowledge folders
(cheap) and refreshes only departments whose files changed, so edits on disk reach
answers without an admin running ``/kb refresh``.

Departments are read again at every tick (pass a callable such as
``lambda: list(assistant.company)``): configurations are reloaded at run time, and a
department added, removed or re-pointed must not keep the list from start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from apscheduler.schedulers.background import BackgroundScheduler

from bot.config import Department
from bot.core.ports import Indexer
from bot.settings import Settings

log = logging.getLogger(__name__)

Departments = Iterable[Department] | Callable[[], Iterable[Department]]


def _current(departments: Departments) -> list[Department]:
    return list(departments() if callable(departments) else departments)


def refresh_stale(indexer: Indexer, departments: Departments) -> list[str]:
    """Refresh every stale department; one failure never stops the others."""
    try:
        current = _current(departments)
    except Exception:
        log.exception("background refresh: cannot read the current departments; skipping this tick")
        return []
    done: list[str] = []
    for dept in current:
        try:
            if indexer.status(dept).stale:
                report = indexer.refresh(dept)
                done.append(dept.name)
                log.info(
                    "refreshed %s: %d added, %d changed, %d removed, %d failed",
                    dept.name,
                    report.added,
                    report.changed,
                    report.removed,
                    len(report.failed),
                )
        except Exception:
            log.exception("background refresh of %s failed (see admin notices)", dept.name)
    return done


def start_refresher(
    indexer: Indexer, departments: Departments, settings: Settings
) -> BackgroundScheduler | None:
    """Start the interval job; ``knowledge.refresh_minutes = 0`` disables it.

    ``departments`` is a callable returning the current departments (preferred), or a
    fixed collection (then read once, as before).
    """
    minutes = settings.values.knowledge.refresh_minutes
    if minutes <= 0:
        return None
    source = departments if callable(departments) else list(departments)
    scheduler = BackgroundScheduler(daemon=True)
    scheduler.add_job(
        refresh_stale,
        "interval",
        minutes=minutes,
        args=[indexer, source],
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    return scheduler
