"""Refreshing stale department indexes in the background (``deptbot serve``).

``KnowledgeWatcher`` (``bot.knowledge.watcher``) decides WHEN — a changed folder, after a
quiet moment — and calls ``refresh_if_stale`` here for the one department that changed.
``refresh_stale`` checks every department at once; ``serve``'s start-up loop calls
``refresh_if_stale`` per department so it can draw progress.

Departments are read when called (pass a callable such as
``lambda: list(assistant.company)``): configurations are reloaded at run time, and a
department added, removed or re-pointed must not keep the list from start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from bot.config import Department
from bot.core.ports import AdminNotices, Indexer, ProgressFn
from bot.errors import RefreshBusy

log = logging.getLogger(__name__)

Departments = Iterable[Department] | Callable[[], Iterable[Department]]


def _current(departments: Departments) -> list[Department]:
    return list(departments() if callable(departments) else departments)


def refresh_if_stale(
    indexer: Indexer,
    dept: Department,
    notices: AdminNotices | None = None,
    *,
    progress: ProgressFn | None = None,
    when: str = "background",
    busy: Callable[[], object] | None = None,
) -> bool:
    """Refresh ``dept`` when its index is stale; True when it was refreshed.

    A failure is logged and told to the department's admins (``refresh-failed``); the
    previous index keeps serving until the next change. ``when`` names the occasion in
    that notice ("background", "start-up"); ``progress`` draws the CLI's bar. A refresh
    already running elsewhere (``RefreshBusy``) is no failure: ``busy`` is called (the
    watcher tries again later: the running one may have scanned before this change).
    """
    try:
        if not indexer.status(dept).stale:
            return False
        report = indexer.refresh(dept, progress=progress)
    except RefreshBusy:  # another refresh of it runs now (console, chat, schedule): not a failure
        log.info("%s refresh of %s skipped: it is already refreshing", when, dept.name)
        if busy is not None:
            busy()
        return False
    except Exception as exc:
        log.exception("%s refresh of %s failed (see admin notices)", when, dept.name)
        if notices is not None:
            try:
                notices.notify(
                    dept.name,
                    "refresh-failed",
                    f"{dept.name}: a {when} refresh failed ({type(exc).__name__}); "
                    "the previous index serves until the next change",
                )
            except Exception:
                log.exception("could not record an admin notice for %s", dept.name)
        return False
    log.info(
        "refreshed %s: %d added, %d changed, %d removed, %d failed",
        dept.name,
        report.added,
        report.changed,
        report.removed,
        len(report.failed),
    )
    return True


def refresh_stale(
    indexer: Indexer, departments: Departments, notices: AdminNotices | None = None
) -> list[str]:
    """Refresh every stale department; one failure never stops the others."""
    try:
        current = _current(departments)
    except Exception:
        log.exception("background refresh: cannot read the current departments; skipping")
        return []
    return [dept.name for dept in current if refresh_if_stale(indexer, dept, notices)]
