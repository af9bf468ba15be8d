"""Background refresh of stale department indexes while the server runs.

apscheduler runs one interval job in a thread; each tick stats the knowledge folders
(cheap) and refreshes only departments whose files changed, so edits on disk reach
answers without an admin running ``/kb refresh``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from apscheduler.schedulers.background import BackgroundScheduler

from bot.config import Department
from bot.core.ports import Indexer
from bot.settings import Settings

log = logging.getLogger(__name__)


def refresh_stale(indexer: Indexer, departments: Sequence[Department]) -> list[str]:
    """Refresh every stale department; one failure never stops the others."""
    done: list[str] = []
    for dept in departments:
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
            log.exception("background refresh of %s failed; the previous index keeps serving", dept.name)
    return done


def start_refresher(
    indexer: Indexer, departments: Sequence[Department], settings: Settings
) -> BackgroundScheduler | None:
    """Start the interval job; ``knowledge.refresh_minutes = 0`` disables it."""
    minutes = float(settings.section("knowledge").get("refresh_minutes", 15))
    if minutes <= 0:
        return None
    scheduler = BackgroundScheduler(daemon=True)
    scheduler.add_job(
        refresh_stale,
        "interval",
        minutes=minutes,
        args=[indexer, list(departments)],
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    return scheduler
