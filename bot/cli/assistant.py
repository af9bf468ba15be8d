"""The assistant the answering commands share: built once per command (directory groups
read first), asked behind a progress bar, one ``-v`` line per request."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from bot.cli.output import _err, _progress
from bot.core.types import Answer, Message
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.wiring import Wired

log = logging.getLogger(__name__)


def _build(settings: Settings) -> Wired:
    """The wired assistant; with ``-v`` says what it was built from and how long it took."""
    from bot.wiring import build

    started = time.perf_counter()
    wired = build(settings)
    _sync_directory(wired)
    log.info(
        "ready in %.0f ms: %d departments from %s, state in %s, settings %s",
        (time.perf_counter() - started) * 1000,
        len(wired.company.departments),
        settings.departments_dir,
        settings.state_dir,
        settings.settings_file or "defaults",
    )
    return wired


def _sync_directory(wired: Wired) -> None:
    """One read of the directory groups before answering (bounded by
    ``directory.timeout_seconds``); a group that cannot be read stays empty and is named
    on stderr. Admin notices are left to ``deptbot serve``."""
    company = wired.assistant.company
    if wired.directory is None or not company.sources:
        return
    wired.assistant.reconfigure(wired.directory.refresh(company, notify=False))
    for s in wired.directory.status(company):
        if s.state != "ok":
            _err(
                f"warning: group {s.group} ({s.source}) cannot be read ({s.error}); "
                "nobody gets access through it"
            )


def _log_answer(answer: Answer) -> None:
    """One ``-v`` line per request: what happened and where the time went (never the
    question, the answer or document names)."""
    t = answer.timings
    log.info(
        "request %s: %s, department %s, route %s, %d sources, confidence %.2f%s; "
        "retrieve %.0f ms, generate %.0f ms, total %.0f ms",
        answer.request_id,
        answer.status.value,
        answer.department or "-",
        answer.route or "-",
        len(answer.citations),
        answer.confidence,
        ", cached" if answer.cache_hit else "",
        t.retrieve_ms,
        t.generate_ms,
        t.total_ms,
    )


def _ask(wired: Wired, message: Message) -> Answer:
    with _progress("Indexing") as progress:
        wired.assistant.index_progress = progress
        answer = wired.assistant.ask(message)
    _log_answer(answer)
    return answer
