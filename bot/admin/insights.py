"""What a department admin sees: usage, knowledge gaps, documents, feedback and evals.

Read-only views over the audit log, usage store, index metadata and eval runs, always for
ONE department (every query filters on it), returned as the frozen values of
``bot.admin.reports`` (re-exported here) that the console renders. Question and feedback
text is personal and sealed (``bot.governance.vault``): it is returned only when the
caller passes ``show_text=True`` (the department's ``admins_see_questions``, decided by
the console's authorization layer); otherwise only counts and topics — and a topic is
then the titles of the closest documents, never words taken from the questions, because
even a single term ("pregnancy", a name) can expose who asked what.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.admin import documents as docs_mod
from bot.admin import gaps as gaps_mod
from bot.admin.auditread import ASKED_R, ConsoleRecords, parse_time, records_for, window
from bot.admin.overview import build_overview
from bot.admin.reports import (
    PERIODS,
    BudgetUse,
    CitedDoc,
    ClosestDoc,
    DayPoint,
    DocRef,
    DocumentReport,
    EvalTrend,
    FailedDoc,
    FeedbackItem,
    FeedbackPage,
    GapGroup,
    Overview,
    PilotComparison,
    Regression,
    RestrictedCounts,
    RouteMix,
    Satisfaction,
    StaleDoc,
    StatusCounts,
    WeekStats,
)
from bot.config.models import Department
from bot.core.types import AccessScope, Principal, SourceChunk
from bot.store.evalruns import REGRESSION_DROP, dropped

if TYPE_CHECKING:
    from bot.core.pipeline import Assistant
    from bot.core.ports import Retriever
    from bot.governance.vault import Vault
    from bot.settings import Settings

__all__ = [
    "PERIODS",
    "BudgetUse",
    "CitedDoc",
    "ClosestDoc",
    "DayPoint",
    "DocRef",
    "DocumentReport",
    "EvalTrend",
    "FailedDoc",
    "FeedbackItem",
    "FeedbackPage",
    "GapGroup",
    "Insights",
    "Overview",
    "PilotComparison",
    "Regression",
    "RestrictedCounts",
    "RouteMix",
    "Satisfaction",
    "StaleDoc",
    "StatusCounts",
    "WeekStats",
]

log = logging.getLogger(__name__)

EVAL_TOLERANCE = REGRESSION_DROP
"""A drop between two runs of this much or more is highlighted: the alerts' rule
(``bot.store.evalruns.dropped``), so the page marks what admins were told about."""


class Insights:
    """The data behind the console pages; every method reads one department only.

    ``department`` must be a configured department (an unknown name raises UsageError,
    like the rest of the bot); the console has already checked that the signed-in person
    administers it. Nothing here writes anything.
    """

    def __init__(
        self,
        *,
        assistant: Assistant,
        settings: Settings,
        clock: Callable[[], datetime] | None = None,
        retriever: Retriever | None = None,
        stale_after_days: int = docs_mod.STALE_AFTER_DAYS,
        eval_tolerance: float = EVAL_TOLERANCE,
        records: ConsoleRecords | None = None,
    ) -> None:
        """``retriever``: where closest documents come from (default: the assistant's own,
        so the console sees exactly the index the bot answers from). ``records``: the
        audit and usage records (default: those of ``settings`` — PostgreSQL with
        ``DEPTBOT_DATABASE_URL``, else the state folder)."""
        self._assistant = assistant
        self._settings = settings
        self._clock = clock or (lambda: datetime.now(UTC))
        self._retriever: Retriever | None = retriever or getattr(assistant, "_retriever", None)
        self._stale_after_days = stale_after_days
        self._tolerance = eval_tolerance
        self._state_dir = Path(settings.state_dir)
        self._index = docs_mod.IndexDocs(self._state_dir)
        self._records = records or records_for(settings)

    # ── helpers ──────────────────────────────────────────────────────────────────────

    def _dept(self, department: str) -> Department:
        return self._assistant.company.department(department)

    def _today(self) -> date:
        return self._clock().astimezone(UTC).date()

    def _vault(self) -> Vault:
        from bot.governance.vault import vault_for

        return vault_for(self._settings)

    def _opener(self, context: str) -> Callable[[str, str, Any], str | None]:
        """Opens sealed text under its writer's data key; None when erased, tampered or
        unreadable — never an exception, never the blob."""
        vault: list[Vault] = []  # opened at the first sealed text: an empty page creates no key store

        def open_(user: str, rid: str, blob: Any) -> str | None:
            if isinstance(blob, str):
                return blob or None  # not sealed yet (the audit log seals legacy text on open)
            try:
                if not vault:
                    vault.append(self._vault())
                return vault[0].open(user, blob, f"{context}:{rid}")
            except Exception:
                return None

        return open_

    def _admins(self, dept: Department) -> list[Principal | None]:
        admins: list[Principal | None] = [
            self._assistant.principal(e) for e in self._assistant.admins_of(dept)
        ]
        if any("*" in e and not e.startswith("group:") for e in dept.admins):
            admins.append(None)  # a wildcard admin entry: nobody to narrow to, fail closed
        return admins

    def _readable(self, dept: Department) -> gaps_mod.Readable:
        """Documents every admin of ``dept`` may read: the only ones these pages name."""
        return gaps_mod.admin_reader(self._admins(dept))[1]

    def _doc_ref(self, dept: Department, readable: gaps_mod.Readable) -> Callable[[str], DocRef | None]:
        """A cited document as the pages may name it; None when not every admin may read
        it, or when it is no longer indexed (its audience is unknown) — fail closed."""
        snap = self._index.snapshot(dept)
        live = snap.by_id() if snap else {}

        def ref(doc_id: str) -> DocRef | None:
            found = live.get(doc_id)
            return found.ref if found is not None and readable(found.audiences) else None

        return ref

    # ── pages ────────────────────────────────────────────────────────────────────────

    def overview(self, department: str, days: int) -> Overview:
        from bot.llm.config import budget_limits

        dept = self._dept(department)
        with self._records.audit() as audit, self._records.usage() as usage:
            return build_overview(
                audit,
                usage,
                dept,
                _days(days),
                self._today(),
                budget_limits(self._settings),
            )

    def gaps(self, department: str, days: int, *, show_text: bool) -> list[GapGroup]:
        dept = self._dept(department)
        _, since = window(self._today(), _days(days))
        with self._records.audit() as audit:
            rows = gaps_mod.load_rows(
                audit,
                dept.name,
                since,
                dept.dont_know_below,
                opener=self._opener("request_text") if show_text else None,
            )
        admins = self._admins(dept)
        ref = self._doc_ref(dept, gaps_mod.admin_reader(admins)[1])
        return gaps_mod.build_groups(
            rows, show_text=show_text, closest=self._closest(dept, admins, ref), doc_ref=ref
        )

    def _closest(
        self, dept: Department, admins: list[Principal | None], ref: Callable[[str], DocRef | None]
    ) -> Callable[[str], tuple[ClosestDoc, ...]]:
        retriever = self._retriever
        if retriever is None:
            return lambda query: ()
        scope, admits = gaps_mod.admin_scope(dept.name, admins)

        def retrieve(query: str, s: AccessScope, k: int) -> list[SourceChunk]:
            return retriever.retrieve(query, s, top_k=k)

        def named(doc_id: str, title: str, path: str) -> DocRef:
            # the chunk passed ``admits``; a document the index snapshot lacks keeps its own title
            return ref(doc_id) or DocRef(doc_id=doc_id, title=title, path=path, link=dept.link(doc_id))

        return lambda query: gaps_mod.closest_for(query, retrieve, scope, admits, named)

    def documents(self, department: str, days: int) -> DocumentReport:
        dept = self._dept(department)
        with self._records.audit() as audit:
            return docs_mod.build_report(
                self._index.snapshot(dept),
                audit,
                dept,
                _days(days),
                self._today(),
                readable=self._readable(dept),
                stale_after_days=self._stale_after_days,
            )

    def feedback(self, department: str, *, limit: int = 50, show_text: bool) -> FeedbackPage:
        """👎 votes on this department's answers (who voted or asked is never returned).

        With ``show_text``: each vote, newest first (at most ``limit``), with its request
        id, time, the question and the voter's comment. Without it, the gaps page's rule
        (``bot.admin.gaps``): votes grouped by the document their answer leaned on, groups
        smaller than ``MIN_HIDDEN_GROUP`` folded into one, whole days, no request ids, only
        titles every admin may read — one vote with its exact time and a title can point
        at one person's question. No text is opened then."""
        dept = self._dept(department)
        ref = self._doc_ref(dept, self._readable(dept))
        with self._records.audit() as audit:
            if audit is None or not (audit.has_table("feedback") and audit.has_table("requests")):
                return FeedbackPage()
            text = show_text and audit.has_table("request_text")
            question = (
                "(select t.question from request_text t where t.request_id = r.request_id)"
                if text
                else "null"
            )
            people = ("f.user", "r.user") if show_text else ("null", "null")  # only to open text
            rows = audit.execute(
                f"select f.request_id, f.time, {people[0]}, "
                + ("f.reason" if show_text else "null")
                + f", {people[1]}, {question}, r.status, r.route, r.generator, r.doc_ids "
                f"from feedback f {audit.driven_join} requests r on r.request_id = f.request_id "
                f"where r.department = ? and f.value = 'down' and {ASKED_R} "
                f"order by {audit.newest_first('f')} limit ?",
                [dept.name, max(0, int(limit)) if show_text else gaps_mod.MAX_ROWS],
            ).fetchall()
        if not show_text:
            votes = [
                gaps_mod.GapRow(
                    request_id=str(rid),
                    time=when,
                    dont_know=status == "dont_know",
                    low_confidence=status == "sources_only",
                    down=True,
                    doc_ids=gaps_mod.doc_ids_of(doc_ids),
                )
                for rid, t, _, _, _, _, status, _, _, doc_ids in rows
                if (when := parse_time(t)) is not None
            ]
            groups = gaps_mod.build_groups(votes, show_text=False, closest=lambda _q: (), doc_ref=ref)
            return FeedbackPage(groups=tuple(groups))
        reason_of = self._opener("feedback")
        question_of = self._opener("request_text") if text else None
        out = []
        for rid, t, voter, reason, asker, sealed, status, route, generator, doc_ids in rows:
            cited = [ref(d) for d in gaps_mod.doc_ids_of(doc_ids)]
            out.append(
                FeedbackItem(
                    request_id=str(rid),
                    time=parse_time(t) or datetime.min.replace(tzinfo=UTC),
                    status=str(status or ""),
                    route="extractive" if generator == "extractive" else str(route or ""),
                    sources=tuple(d for d in cited if d is not None),
                    unnamed_sources=sum(1 for d in cited if d is None),
                    reason=reason_of(str(voter or ""), str(rid), reason)
                    if reason not in (None, "", b"")
                    else None,
                    question=question_of(str(asker or ""), str(rid), sealed)
                    if question_of is not None and sealed is not None
                    else None,
                )
            )
        return FeedbackPage(items=tuple(out))

    def evals(self, department: str, *, limit: int = 30) -> EvalTrend:
        from bot.store.backend import database_for
        from bot.store.evalruns import EvalRunStore

        dept = self._dept(department)
        runs: list[Any] = []
        db = database_for(self._settings)
        if db is not None:
            from bot.store.pg_ops import PgEvalRunStore

            runs = PgEvalRunStore(db).recent(dept.name, limit=max(1, int(limit)))
        elif (path := self._state_dir / EvalRunStore.FILE).is_file():  # reading must not create it
            store = EvalRunStore(path=path)
            try:
                runs = store.recent(dept.name, limit=max(1, int(limit)))
            finally:
                store.close()
        return EvalTrend(
            department=dept.name,
            runs=tuple(runs),
            regressions=regressions(runs, self._tolerance),
            tolerance=self._tolerance,
        )


def regressions(runs: list[Any], tolerance: float) -> tuple[Regression, ...]:
    """Each run against the one before it (``runs`` newest first): every share that fell
    by ``tolerance`` or more (``bot.store.evalruns.dropped``). A metric one of the two runs
    did not measure is skipped."""
    return tuple(
        Regression(time=newer.time, metric=metric, before=before, after=after)
        for newer, older in itertools.pairwise(runs)
        for metric, before, after in dropped(older, newer, tolerance)
    )


def _days(days: int) -> int:
    """The console offers 7/30/90; anything else is clamped to 1..366 rather than refused."""
    return max(1, min(366, int(days)))
