"""The one flow: Message → identify → route → authorize → retrieve → classify → generate
→ cite → record → Answer.

The pipeline only sequences small steps; each lives in its own module (access, routing,
labels, citations, caching, replies, records). The role check runs before any retrieval
and any generation, every time, and a denial is recorded.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.config import Company, Department
from bot.core import citations, confidence, replies, routing, skeleton, templates
from bot.core.access import CHANNEL_REASONS, AccessPolicy, GroupDirectory
from bot.core.caching import CacheGate
from bot.core.labels import DepartmentLabel, held_label, request_label
from bot.core.ports import (
    AdminNotices,
    AnswerCache,
    AuditEntry,
    AuditLog,
    DeltaFn,
    Directory,
    Generator,
    Indexer,
    IndexReport,
    IndexStatus,
    Notice,
    ProgressFn,
    Retriever,
    SensitivityClassifier,
)
from bot.core.records import MAX_QUESTION_CHARS, audit_entry
from bot.core.types import (
    AccessScope,
    Answer,
    ChannelReaders,
    Classification,
    Decision,
    Generation,
    GenerationRequest,
    Message,
    Principal,
    SourceChunk,
    Status,
    Timings,
)
from bot.errors import (
    AccessDenied,
    DeptbotError,
    KnowledgeError,
    ProviderUnavailable,
    RefreshBusy,
    UsageError,
)
from bot.observability import REQUEST_ID, ObservedIndexer, Observer, notify

if TYPE_CHECKING:
    from bot.knowledge.folder import Limits

log = logging.getLogger(__name__)

__all__ = ["MAX_QUESTION_CHARS", "Assistant", "DepartmentLabel", "new_request_id"]


INDEX_VERSION = "index_version"  # Answer.extra key: the index its sources' audiences came from


def new_request_id() -> str:
    return secrets.token_hex(6)


@dataclass(frozen=True)
class _Config:
    """One consistent configuration: a request uses the snapshot it started with, and
    ``Assistant.reconfigure`` swaps the whole object at once (one reference assignment)."""

    company: Company
    policy: AccessPolicy
    groups: GroupDirectory


def _config(company: Company) -> _Config:
    return _Config(company, AccessPolicy(company=company), GroupDirectory(groups=company.groups))


@dataclass
class _Ctx:
    """Mutable per-request scratchpad so ``record`` sees whatever was reached."""

    message: Message
    request_id: str
    started: float
    config: _Config
    principal: Principal | None = None
    department: Department | None = None
    decision: Decision | None = None
    pii_detected: str = ""  # the generator's detector counts (JSON), never values
    # Answer-level confidence (``bot.core.confidence``); None for templates, which are
    # drafting tasks judged by retrieval alone.
    assessment: confidence.Assessment | None = None
    skeleton: str = ""  # the template's skeleton, read (and checked) once before retrieval
    unreadable: bool = False  # the text held characters that are not valid Unicode (``_readable``)

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 2)


@dataclass(frozen=True)
class _Retrieved:
    """What retrieval produced for the chosen department (step 5)."""

    route: routing.Route
    scope: AccessScope
    query: str
    chunks: list[SourceChunk]
    cache_key: str | None
    ms: float
    cached: Answer | None = None  # a cache hit: nothing was retrieved


class Assistant:
    """The platform-neutral assistant every adapter holds (composition, not inheritance)."""

    def __init__(
        self,
        *,
        company: Company,
        retriever: Retriever,
        indexer: Indexer,
        generator: Generator,
        audit: AuditLog,
        directory: Directory | None = None,
        classifier: SensitivityClassifier | None = None,
        cache: AnswerCache | None = None,
        notices: AdminNotices | None = None,
        top_k: int = 6,
        auto_index: bool = True,
        check_staleness: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        knowledge_limits: Limits | None = None,
    ) -> None:
        """``knowledge_limits``: the ``[knowledge]`` settings the indexer reads folders with;
        a template's skeleton is checked with the same ones (``bot.core.templates``)."""
        self._config = _config(company)
        self._limits = knowledge_limits
        self._directory = directory  # None: the groups of the current configuration
        self._retriever = retriever
        self._indexer = indexer
        self._generator = generator
        self._audit = audit
        self._classifier: SensitivityClassifier = classifier or DepartmentLabel()
        self._cache = CacheGate(cache=cache, retriever=retriever)
        self._notices = notices
        self._top_k = top_k
        self._auto_index = auto_index
        self._check_staleness = check_staleness
        self._stale_checked: set[str] = set()
        self._clock = clock
        self.index_progress: ProgressFn | None = None  # set by the CLI to draw a bar
        # Told about every answer, vote and refresh (``bot.observability``; /metrics listens).
        self.observers: list[Observer] = []
        self._refresher = ObservedIndexer(indexer, self.observers)

    # ── configuration (swapped at run time by the config watcher) ────────────────────

    @property
    def company(self) -> Company:
        return self._config.company

    @property
    def policy(self) -> AccessPolicy:
        return self._config.policy

    @property
    def directory(self) -> Directory:
        return self._directory or self._config.groups

    def reconfigure(self, company: Company) -> None:
        """Serve ``company`` from now on. Requests in flight finish with the snapshot they
        started with; the next one sees the new groups, departments and access lists."""
        self._config = _config(company)
        self._stale_checked.clear()  # a changed knowledge folder or classification re-checks

    # ── public API used by adapters and the CLI ──────────────────────────────────────

    def ask(self, message: Message, *, on_delta: DeltaFn | None = None) -> Answer:
        """Answer a question or run a template; never raises for the person's mistakes.

        UsageError (empty/too long/unknown names) is raised so the CLI can exit 2;
        adapters catch DeptbotError and show ``user_message``.
        """
        message, unreadable = _readable(message)
        ctx = _Ctx(
            message=message,
            request_id=new_request_id(),
            started=time.perf_counter(),
            config=self._config,
            unreadable=unreadable,
        )
        token = REQUEST_ID.set(ctx.request_id)  # every log line of this request carries its id
        answer: Answer | None = None
        try:
            answer = self._answer(ctx, on_delta)
            return answer
        finally:
            REQUEST_ID.reset(token)
            notify(self.observers, "answered", message, answer)

    def _answer(self, ctx: _Ctx, on_delta: DeltaFn | None) -> Answer:
        try:
            return self._ask(ctx, on_delta)
        except DeptbotError as exc:
            self._record(ctx, status=Status.ERROR, error=type(exc).__name__)
            raise
        except Exception as exc:  # a bug or provider failure: the person sees a friendly line
            log.exception("request %s failed", ctx.request_id)
            self._record(ctx, status=Status.ERROR, error=type(exc).__name__)
            return Answer(
                text=replies.sorry(ctx.request_id),
                request_id=ctx.request_id,
                status=Status.ERROR,
                department=ctx.department.name if ctx.department else None,
            )

    def principal(self, email: str | None) -> Principal | None:
        return self.directory.principal(email) if email else None

    def _principal_of(self, config: _Config) -> Callable[[str], Principal | None]:
        return self._directory.principal if self._directory is not None else config.groups.principal

    def departments_for(self, email: str) -> list[Department]:
        p = self.principal(email)
        return self.policy.askable(p) if p else []

    def templates_for(self, email: str) -> list[tuple[Department, str]]:
        p = self.principal(email)
        return self.policy.runnable(p) if p else []

    def is_admin(self, email: str, department: str) -> bool:
        p = self.principal(email)
        return p is not None and self.policy.may_admin(p, self.company.department(department)).allowed

    def refresh(self, department: str, *, user: str, progress: ProgressFn | None = None) -> IndexReport:
        """Admin-only knowledge refresh; the denial is recorded like any other."""
        dept = self.company.department(department)
        p = self.principal(user)
        decision = self.policy.may_admin(p, dept) if p else Decision(False, "unknown-user", "Unknown user.")
        self._audit.record(
            AuditEntry(
                request_id=new_request_id(),
                time=self._clock(),
                user=user,
                platform="admin",
                decision="allowed" if decision.allowed else "denied",
                rule=decision.rule,
                status="refresh" if decision.allowed else Status.DENIED.value,
                department=dept.name,
            )
        )
        if not decision.allowed:
            raise AccessDenied(replies.denial(decision, dept, self.admins_of(dept)))
        return self._refresher.refresh(dept, progress=progress)

    def status(self, department: str | None = None) -> list[IndexStatus]:
        depts = [self.company.department(department)] if department else list(self.company)
        return [self._indexer.status(d) for d in depts]

    def missing_indexes(self) -> list[str]:
        """Departments with no index to answer from (readiness probes: no folder walk)."""
        return [d.name for d in self.company if self._retriever.index_version(d.name) is None]

    def feedback(self, request_id: str, *, user: str, value: str, reason: str = "") -> None:
        if value not in ("up", "down"):
            raise UsageError("Feedback must be 'up' or 'down'.")
        self._audit.record_feedback(request_id, user, value, reason[:1000])
        notify(self.observers, "feedback", value)

    def channel_verdict(
        self, answer: Answer, *, channel: str | None, readers: ChannelReaders | None
    ) -> Decision:
        """May ``answer`` be shown to everyone in ``channel`` now? ("Share in channel" asks
        again at click time with freshly fetched members.) Denials and errors never may."""
        config = self._config
        dept = config.company.departments.get(answer.department or "")
        if not answer.ok or dept is None:
            return Decision(False, "channel:not-an-answer")
        current = self._retriever.index_version(dept.name)
        if current is None or answer.extra.get(INDEX_VERSION) != current:
            return Decision(False, "channel:stale", CHANNEL_REASONS["stale"])
        return config.policy.channel_verdict(
            dept, channel, readers, answer.audiences, principal_of=self._principal_of(config)
        )

    def notices_for(
        self, email: str | None, department: str | None = None, *, limit: int = 5
    ) -> list[Notice]:
        """Recent admin notices this person may read: those of departments they administer
        (one, or all of them), plus company-wide ones if they administer any department.
        Notices name files and fields, so nobody else sees them."""
        if self._notices is None or not email:
            return []
        mine = [d.name for d in self.company if self.is_admin(email, d.name)]
        if department is not None:
            mine = [department] if department in mine else []
        found: dict[tuple[str | None, str, str], Notice] = {}
        for name in mine:
            for notice in self._notices.recent(name, limit=limit):
                found.setdefault((notice.department, notice.kind, notice.text), notice)
        return sorted(found.values(), key=lambda n: n.time, reverse=True)[:limit]

    def admins_of(self, dept: Department, config: _Config | None = None) -> list[str]:
        """Admin e-mails (groups expanded) to name in denials and "I don't know"."""
        groups = (config or self._config).groups
        out: list[str] = []
        for entry in dept.admins:
            if entry.startswith("group:"):
                out.extend(sorted(groups.members(entry[6:])))
            elif "*" not in entry:
                out.append(entry)
        return list(dict.fromkeys(out))

    # ── the flow ─────────────────────────────────────────────────────────────────────

    def _ask(self, ctx: _Ctx, on_delta: DeltaFn | None) -> Answer:
        message = ctx.message
        text = _checked_text(message, unreadable=ctx.unreadable)
        # 1. identify, 2. route (explicit), 3. authorize — before any retrieval
        routed = self._authorize(ctx)
        if isinstance(routed, Answer):
            return routed
        if message.template and isinstance(routed, routing.Route):  # before any cache or retrieval
            refused = self._read_skeleton(ctx, routed.department)
            if refused is not None:
                return refused
        # 5. retrieve (auto routing compares the askable departments with the asker's scope)
        got = self._retrieve(ctx, routed, text)
        if got.cached is not None:
            return self._from_cache(ctx, got.cached, text, got.route.department)
        dept = got.route.department
        # 4. classify: after retrieval so document labels count; before any generation
        label, reasons = request_label(self._classifier, text, dept, got.chunks, message.history)
        top = max((c.score for c in got.chunks), default=0.0)
        if not message.template:
            # "Is the answer here", not only "is the topic here" (bot/core/confidence.py)
            judged = got.route.assessment
            if judged is not None and got.query == text and list(got.route.probe) == got.chunks:
                ctx.assessment = judged  # routing judged these very passages (with the margin)
            else:
                margin = judged.margin if judged else None
                ctx.assessment = confidence.assess(text, got.chunks, margin=margin)
            top = ctx.assessment.score
        # A template prompt is long boilerplate around a short input, which dilutes the
        # retrieval score; templates are drafting tasks, so they need only half the bar.
        threshold = dept.dont_know_below / 2 if message.template else dept.dont_know_below
        if top < threshold:
            return self._dont_know(ctx, got, label)
        # 6. generate, 7. cite
        answer, error = self._generate(ctx, got, label, reasons, on_delta)
        if (
            answer.status is Status.ANSWERED
            and answer.generator == "extractive"
            and ctx.assessment is not None
            and confidence.supports(text, answer.text) is False
        ):
            # the question asks for a value (an amount, a date, a duration …) that the
            # quoted text does not contain: say so instead of quoting something beside it
            # (a model's paraphrase may word the value differently, so only quotes)
            return self._dont_know(ctx, got, label)
        if answer.status is Status.ANSWERED:
            self._cache.put(
                got.cache_key,
                answer,
                query=got.query,
                dept=dept,
                scope=got.scope,
                message=message,
                chunks=got.chunks,
            )
        self._record(ctx, answer=answer, error=error)
        return answer

    def _authorize(self, ctx: _Ctx) -> routing.Route | list[Department] | Answer:
        """An explicit route the person may use, the departments to compare, or a denial."""
        message = ctx.message
        email = message.email or (message.user_id if "@" in message.user_id else None)
        ctx.principal = self._principal_of(ctx.config)(email) if email else None
        if ctx.principal is None:
            return self._deny(
                ctx, Decision(False, "unknown-user", "I don't know who you are, so I can't answer.")
            )
        route = routing.explicit_route(ctx.config.company, message)
        if route is None:
            askable = ctx.config.policy.askable(ctx.principal, message.channel)  # pilots count
            if not askable:
                return self._deny(
                    ctx, Decision(False, "ask:no-department", "You can't ask any department yet.")
                )
            ctx.decision = Decision(True, "ask:auto")
            return askable
        ctx.department = route.department
        ctx.decision = (
            ctx.config.policy.may_run(ctx.principal, route.department, message.template, message.channel)
            if message.template
            else ctx.config.policy.may_ask(ctx.principal, route.department, message.channel)
        )
        return route if ctx.decision.allowed else self._deny(ctx, ctx.decision)

    def _retrieve(self, ctx: _Ctx, routed: routing.Route | list[Department], text: str) -> _Retrieved:
        assert ctx.principal is not None
        principal, message = ctx.principal, ctx.message
        t0 = time.perf_counter()
        if isinstance(routed, routing.Route):
            route, query = routed, text
            if message.template:
                query = route.department.templates[message.template].fill(text)
            self._ensure_index(route.department)
            chunks: list[SourceChunk] | None = None
        else:
            query = text
            compared: list[Department] = []
            sat_out: list[DeptbotError] = []  # why departments without a usable index sit out
            for dept in routed:
                try:
                    self._ensure_index(dept)
                except (ProviderUnavailable, KnowledgeError) as exc:
                    # Its refresh failed (the refresh told its admins). No index at all: compared
                    # anyway, the retriever leaves it out and tells its admins once (index-missing,
                    # ``bot.knowledge.outages``). Otherwise (its folder gone or unreadable, the
                    # embedder it is now set to unable to load): not searched at all, never
                    # answered from an index its own check refused, as a question named to it is
                    # refused (fail closed).
                    if self._retriever.index_version(dept.name) is None:
                        sat_out.append(exc)
                    else:
                        self._unchecked(dept, exc)
                        sat_out.append(exc)
                        continue
                compared.append(dept)
            if len(sat_out) == len(routed):
                raise sat_out[0]  # nobody left to ask: the refusal, as before
            scopes = {d.name: ctx.config.policy.scope(principal, d) for d in compared}
            route = routing.best_department(query, compared, scopes, self._retriever, top_k=self._top_k)
            ctx.department = route.department
            ctx.decision = ctx.config.policy.may_ask(principal, route.department, message.channel)
            chunks = list(route.probe)
        scope = ctx.config.policy.scope(principal, route.department)
        key = self._cache.key(query, route.department, scope, message)
        cached = self._cache.get(key)
        if cached is None and chunks is None:
            chunks = self._retriever.retrieve(query, scope, top_k=self._top_k)
        kept = _admitted(chunks or [], scope)
        return _Retrieved(route, scope, query, kept, key, (time.perf_counter() - t0) * 1000, cached)

    def _generate(
        self,
        ctx: _Ctx,
        got: _Retrieved,
        label: Classification,
        reasons: tuple[str, ...],
        on_delta: DeltaFn | None,
    ) -> tuple[Answer, str]:
        """The answer, and the error class name when generation failed (for the audit row)."""
        assert ctx.principal is not None
        message, dept, chunks = ctx.message, got.route.department, got.chunks
        t1 = time.perf_counter()
        request = GenerationRequest(
            question=got.query,
            department=dept.name,
            department_title=dept.title,
            sources=tuple(chunks),
            history=message.history,
            task=f"template:{message.template}" if message.template else "question",
            tier=(dept.templates[message.template].tier if message.template else None) or dept.tier,
            classification=label,
            user=ctx.principal.email,
            route=dept.route,
            label_reasons=reasons,
            request_id=ctx.request_id,
            pii=dept.pii,
            department_label=dept.classification,
            skeleton=ctx.skeleton,
            template_input=message.text.strip() if message.template else "",
        )
        generation: Generation | None
        failure, error = "", ""
        try:
            generation = self._generator.generate(request, on_delta=on_delta)
        except DeptbotError as exc:  # provider refused/failed: sources only, say why
            generation, failure, error = None, exc.user_message, type(exc).__name__
        if request.skeleton and generation is not None and generation.generator == "extractive":
            # Offline, a template with a skeleton is a filled document, not quoted excerpts.
            text = skeleton.offline_text(request, self._clock().date())
            generation = replace(generation, text=text, quoted=())
        ctx.pii_detected = generation.pii_detected if generation else ""
        base = Answer(
            text="",
            request_id=ctx.request_id,
            department=dept.name,
            department_title=dept.title,
            # held at least confidential under a private pin or from the private model, so as
            # history it never reaches a cloud model (``bot.core.labels.held_label``)
            classification=held_label(label, pin=dept.route, route=generation.route if generation else ""),
            created=self._clock(),
            timings=Timings(got.ms, (time.perf_counter() - t1) * 1000, ctx.elapsed_ms()),
        )
        # Every source the generator saw counts: a model may paraphrase without citing.
        base = self._placed(ctx, base, chunks)
        cited = citations.validate(generation.text, chunks, dept.link) if generation else None
        if generation is not None and not generation.sources_only and not _has_words(cited):
            # Nothing left once invalid markers are gone ("[9]", whitespace): not an answer.
            generation = replace(generation, sources_only=True, notice=replies.NO_WORDS)
        if generation is None or generation.sources_only:
            notice = failure if generation is None else generation.notice
            markers = "".join(f"[{i}]" for i in range(1, len(chunks) + 1))
            listed = citations.validate(markers, chunks, dept.link)
            sources_only = replace(
                base,
                text=replies.sources_only(dept, notice),
                status=Status.SOURCES_ONLY,
                citations=listed.citations,
                confidence=round(max((c.score for c in chunks), default=0.0), 3),
                notice=notice,
                low_confidence=True,
                generator=generation.generator if generation else "",
                model=generation.model if generation else "",
                route=generation.route if generation else "none",
                route_reason=generation.route_reason if generation else notice,
            )
            return sources_only, error
        assert cited is not None
        conf = citations.confidence(chunks, cited, assessed=ctx.assessment.score if ctx.assessment else None)
        alternative = got.route.alternative
        notice = " ".join(
            n
            for n in (generation.notice, replies.also_relevant(dept, alternative) if alternative else "")
            if n
        )
        answered = replace(
            base,
            text=cited.text,
            status=Status.ANSWERED,
            citations=cited.citations,
            confidence=conf,
            generator=generation.generator,
            model=generation.model,
            route=generation.route,
            route_reason=generation.route_reason,
            usage=generation.usage,
            notice=notice,
            alternative_department=alternative.name if alternative else None,
            low_confidence=not cited.citations or conf < dept.dont_know_below,
        )
        return answered, ""

    # ── steps ────────────────────────────────────────────────────────────────────────

    def _ensure_index(self, dept: Department) -> None:
        """Build a missing index now (first use); never stat the folder otherwise, except
        once per department per process when ``check_staleness`` is set.

        A staleness check walks every file of the folder (430–810 ms on a 1,000-file
        department, more than answering), so requests do not pay it: ``deptbot serve``
        builds the Assistant with ``check_staleness=False`` and its knowledge watcher
        (``bot.knowledge.watcher``) refreshes changed departments in the background. The
        one-shot commands (``ask``, ``run``, ``chat``) have no watcher: they keep
        ``check_staleness=True``, so the first question for a department checks it once
        before answering, and later ones in the same process do not.
        """
        if not self._auto_index:
            return
        missing = self._retriever.index_version(dept.name) is None
        first = self._check_staleness and dept.name not in self._stale_checked
        if not (missing or first):
            return
        if missing or self._indexer.status(dept).stale:
            try:
                self._refresher.refresh(dept, progress=self.index_progress)
            except RefreshBusy:  # refreshing elsewhere: answer from the index it will replace
                if missing:
                    raise  # nothing to answer from yet: "already refreshing, try again"
                log.info("%s is refreshing elsewhere; answering from its current index", dept.name)
        if first:
            # Only once the check passed: a failed one (its folder gone, its embedder unable to
            # load) is tried again by the next question, which is refused or left out in turn,
            # never answered from the index nobody could check.
            self._stale_checked.add(dept.name)

    def _unchecked(self, dept: Department, exc: DeptbotError) -> None:
        """``dept`` serves an index its refresh could not check (its folder gone or unreadable):
        it sits out auto-routed questions; its admins are told (the notice store keeps one a day)."""
        log.warning("%s left out of an auto-routed question: %s", dept.name, type(exc).__name__)
        if self._notices is None:
            return
        text = (
            f"{dept.name}: its index could not be checked ({exc.user_message}), so questions "
            f"routed automatically leave {dept.name} out and questions asked to it are refused "
            "until a refresh succeeds."
        )
        try:
            self._notices.notify(dept.name, "refresh-failed", text)
        except Exception:
            log.exception("could not record an admin notice for %s", dept.name)

    def _placed(self, ctx: _Ctx, answer: Answer, used: Sequence[SourceChunk]) -> Answer:
        """Stamp the audiences of every chunk whose text or title reached ``answer`` and
        decide whether everyone in the conversation may read it (a DM always may)."""
        signatures = tuple(dict.fromkeys(c.audiences for c in used))
        # the index version the audiences come from: a later share re-check refuses an answer
        # whose documents were re-indexed since (their audience may have narrowed)
        version = self._retriever.index_version(answer.department or "") or ""
        extra = {**answer.extra, INDEX_VERSION: version}
        return self._verdict(ctx, replace(answer, audiences=signatures, extra=extra))

    def _verdict(self, ctx: _Ctx, answer: Answer) -> Answer:
        message = ctx.message
        if not message.in_channel or answer.department is None:
            return replace(answer, channel_safe=True, private_reason="")
        dept = ctx.config.company.departments[answer.department]
        verdict = ctx.config.policy.channel_verdict(
            dept,
            message.channel,
            message.channel_readers,
            answer.audiences,
            principal_of=self._principal_of(ctx.config),
        )
        reason = "" if verdict.allowed else verdict.rule.removeprefix("channel:")
        return replace(answer, channel_safe=verdict.allowed, private_reason=reason)

    def _from_cache(self, ctx: _Ctx, hit: Answer, text: str, dept: Department) -> Answer:
        """Serve a cached answer under this request's id, readers and label.

        The label is decided again, not reused: the department's keywords and floor or the
        classifier may have changed since the answer was stored, and the key holds the
        *normalized* question while the classifier reads this request's own words. Only
        the text half is re-run (microseconds; no retrieval): the stored label already
        holds the documents' labels, which cannot change under the same key because the
        index version is part of it. The higher of the two is served, so a hit can only
        be labelled up (a loosened rule takes effect at the next refresh or expiry).
        """
        as_of = hit.created.strftime("%Y-%m-%d %H:%M UTC") if hit.created else "an earlier answer"
        label, _ = request_label(self._classifier, text, dept, (), ctx.message.history)
        answer = replace(
            hit,
            classification=max(held_label(label, pin=dept.route), hit.classification),
            request_id=ctx.request_id,
            cache_hit=True,
            timings=Timings(0.0, 0.0, ctx.elapsed_ms()),
            notice=(f"From cache, sources as of {as_of}. " + hit.notice).strip(),
        )
        answer = self._verdict(ctx, answer)  # this conversation's readers, not the first asker's
        self._record(ctx, answer=answer)
        return answer

    def _read_skeleton(self, ctx: _Ctx, dept: Department) -> Answer | None:
        """Read the template's skeleton into ``ctx``; a refusal Answer when it is set but
        cannot be used (fail closed: the template is not run; the admins get a notice)."""
        template = ctx.message.template
        try:
            ctx.skeleton = templates.skeleton_for(dept, template, self._limits)
            return None
        except templates.SkeletonError as exc:
            skeleton_file = dept.templates[template or ""].skeleton
            problem = exc.problem
        if self._notices is not None:
            try:
                self._notices.notify(
                    dept.name,
                    "template-skeleton",
                    f"{dept.name}: template {template} is refused: its skeleton {skeleton_file} {problem}",
                )
            except Exception:
                log.exception("could not record an admin notice for %s", dept.name)
        answer = Answer(
            text=replies.skeleton_refused(dept, template or "", self.admins_of(dept, ctx.config)),
            request_id=ctx.request_id,
            status=Status.ERROR,
            department=dept.name,
            department_title=dept.title,
            timings=Timings(total_ms=ctx.elapsed_ms()),
        )
        self._record(ctx, answer=answer, error="SkeletonError")
        return answer

    def _deny(self, ctx: _Ctx, decision: Decision) -> Answer:
        ctx.decision = decision
        dept = ctx.department
        answer = Answer(
            text=replies.denial(decision, dept, self.admins_of(dept, ctx.config) if dept else []),
            request_id=ctx.request_id,
            status=Status.DENIED,
            department=dept.name if dept else None,
            department_title=dept.title if dept else None,
            timings=Timings(total_ms=ctx.elapsed_ms()),
        )
        self._record(ctx, answer=answer)
        return answer

    def _dont_know(self, ctx: _Ctx, got: _Retrieved, label: Classification) -> Answer:
        dept, route = got.route.department, got.route
        named = got.chunks[:3]  # their titles are in the text, so they decide channel safety
        titles = list(dict.fromkeys(c.title for c in named))
        answer = Answer(
            text=replies.dont_know(dept, route.searched, titles, self.admins_of(dept, ctx.config)),
            request_id=ctx.request_id,
            status=Status.DONT_KNOW,
            confidence=round(
                ctx.assessment.score if ctx.assessment else max((c.score for c in got.chunks), default=0.0),
                3,
            ),
            department=dept.name,
            department_title=dept.title,
            generator="none",
            route="none",
            timings=Timings(got.ms, 0.0, ctx.elapsed_ms()),
            low_confidence=True,
            classification=held_label(label, pin=dept.route),
            created=self._clock(),
            alternative_department=route.alternative.name if route.alternative else None,
        )
        answer = self._placed(ctx, answer, named)  # the named titles decide channel safety
        self._record(ctx, answer=answer)
        return answer

    def _record(
        self, ctx: _Ctx, *, answer: Answer | None = None, status: Status | None = None, error: str = ""
    ) -> None:
        entry = audit_entry(
            request_id=ctx.request_id,
            time=self._clock(),
            message=ctx.message,
            principal=ctx.principal,
            department=ctx.department,
            decision=ctx.decision,
            answer=answer,
            status=status,
            error=error,
            latency_ms=ctx.elapsed_ms(),
        )
        if ctx.pii_detected:  # counts per detector, never values (``bot.sensitivity.redact``)
            entry = replace(entry, pii_detected=ctx.pii_detected)
        try:
            self._audit.record(entry)
        except Exception:
            log.exception("audit write failed for request %s", ctx.request_id)
            raise


_SURROGATE = re.compile("[\ud800-\udfff]")
UNREADABLE = (
    "Part of what you sent is not valid text (bytes that are not UTF-8), so I did not read it. "
    "Please type or paste it again; in a terminal, check that it is set to UTF-8."
)


def _readable(message: Message) -> tuple[Message, bool]:
    """``message`` with every lone surrogate replaced by U+FFFD, and whether its text had any.

    Python hands over undecodable input as lone surrogates (argv and stdin decode invalid
    UTF-8 with ``surrogateescape``; JSON may carry a ``\\udXXX`` escape). They cannot be
    encoded, so the audit row (sealed as UTF-8), the embedder and every store would fail on
    them: the request is recorded with U+FFFD in their place, and its text refused
    (``_checked_text``) rather than answered as a guess at what was meant.
    """
    fields: dict[str, object] = {}
    for name in ("user_id", "text", "email", "channel", "thread", "department", "template"):
        value = getattr(message, name)
        if isinstance(value, str) and _SURROGATE.search(value):
            fields[name] = _SURROGATE.sub("\ufffd", value)
    if any(_SURROGATE.search(t.text) for t in message.history):
        fields["history"] = tuple(replace(t, text=_SURROGATE.sub("\ufffd", t.text)) for t in message.history)
    return (replace(message, **fields) if fields else message), "text" in fields  # type: ignore[arg-type]


def _checked_text(message: Message, *, unreadable: bool = False) -> str:
    if unreadable:
        raise UsageError(UNREADABLE)
    text = message.text.strip()
    if not text:
        raise UsageError(
            "Please type a question." if not message.template else "Please give the template an input."
        )
    if len(text) > MAX_QUESTION_CHARS:
        raise UsageError(f"That is {len(text):,} characters; please keep it under {MAX_QUESTION_CHARS:,}.")
    return text


def _has_words(cited: citations.CitedText | None) -> bool:
    """Any letter or digit outside the ``[n]`` markers."""
    return cited is not None and re.search(r"\w", re.sub(r"\[\d+\]", " ", cited.text)) is not None


def _admitted(chunks: list[SourceChunk], scope: AccessScope) -> list[SourceChunk]:
    """Assert after retrieval: drop anything outside the scope, loudly (ids only)."""
    kept = [c for c in chunks if c.department == scope.department and scope.admits(c.audiences)]
    if len(kept) != len(chunks):
        dropped = [c.chunk_id for c in chunks if c not in kept]
        log.error("retriever returned %d chunk(s) outside the asker's scope: %s", len(dropped), dropped)
    return kept
