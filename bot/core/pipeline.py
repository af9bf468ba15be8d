"""The one flow: Message → identify → route → authorize → classify → retrieve → generate
→ cite → record → Answer.

The pipeline only sequences small steps; each lives in its own module. The role check
runs before any retrieval and any generation, every time, and a denial is recorded.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from bot.config import Company, Department
from bot.core import citations, routing
from bot.core.access import AccessPolicy, GroupDirectory
from bot.core.cachekey import cache_key
from bot.core.ports import (
    AnswerCache,
    AuditEntry,
    AuditLog,
    DeltaFn,
    Directory,
    Generator,
    Indexer,
    IndexReport,
    IndexStatus,
    ProgressFn,
    Retriever,
    SensitivityClassifier,
)
from bot.core.types import (
    AccessScope,
    Answer,
    Classification,
    Decision,
    Generation,
    GenerationRequest,
    Message,
    Principal,
    SourceChunk,
    Status,
    Timings,
    Turn,
)
from bot.errors import AccessDenied, DeptbotError, UsageError

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 4000


def new_request_id() -> str:
    return secrets.token_hex(6)


class DepartmentLabel:
    """Fallback classifier: the request is as sensitive as its department."""

    def classify(self, text: str, department: Department) -> tuple[Classification, tuple[str, ...]]:
        return department.classification, ()


@dataclass
class _Ctx:
    """Mutable per-request scratchpad so ``record`` sees whatever was reached."""

    message: Message
    request_id: str
    started: float
    principal: Principal | None = None
    department: Department | None = None
    decision: Decision | None = None


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
        top_k: int = 6,
        auto_index: bool = True,
        stale_check_seconds: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.company = company
        self.policy = AccessPolicy(company=company)
        self._groups = GroupDirectory(groups=company.groups)
        self.directory: Directory = directory or self._groups
        self._retriever = retriever
        self._indexer = indexer
        self._generator = generator
        self._audit = audit
        self._classifier: SensitivityClassifier = classifier or DepartmentLabel()
        self._cache = cache
        self._top_k = top_k
        self._auto_index = auto_index
        self._stale_check_seconds = stale_check_seconds
        self._stale_checked: dict[str, float] = {}
        self._clock = clock
        self.index_progress: ProgressFn | None = None  # set by the CLI to draw a bar

    # ── public API used by adapters and the CLI ──────────────────────────────────────

    def ask(self, message: Message, *, on_delta: DeltaFn | None = None) -> Answer:
        """Answer a question or run a template; never raises for the person's mistakes.

        UsageError (empty/too long/unknown names) is raised so the CLI can exit 2;
        adapters catch DeptbotError and show ``user_message``.
        """
        ctx = _Ctx(message=message, request_id=new_request_id(), started=time.perf_counter())
        try:
            return self._ask(ctx, on_delta)
        except DeptbotError as exc:
            self._record(ctx, status=Status.ERROR, error=type(exc).__name__)
            raise
        except Exception as exc:  # a bug or provider failure: the person sees a friendly line
            log.exception("request %s failed", ctx.request_id)
            self._record(ctx, status=Status.ERROR, error=type(exc).__name__)
            return Answer(
                text=f"Sorry, I couldn't answer that just now (request {ctx.request_id}). "
                "Try again in a minute.",
                request_id=ctx.request_id,
                status=Status.ERROR,
                department=ctx.department.name if ctx.department else None,
            )

    def principal(self, email: str | None) -> Principal | None:
        return self.directory.principal(email) if email else None

    def departments_for(self, email: str) -> list[Department]:
        p = self.principal(email)
        return self.policy.askable(p) if p else []

    def templates_for(self, email: str) -> list[tuple[Department, str]]:
        p = self.principal(email)
        return self.policy.runnable(p) if p else []

    def is_admin(self, email: str, department: str) -> bool:
        p = self.principal(email)
        return bool(p) and self.policy.may_admin(p, self.company.department(department)).allowed  # type: ignore[arg-type]

    def refresh(self, department: str, *, user: str, progress: ProgressFn | None = None) -> IndexReport:
        """Admin-only knowledge refresh; the denial is recorded like any other."""
        dept = self.company.department(department)
        p = self.principal(user)
        decision = self.policy.may_admin(p, dept) if p else Decision(False, "unknown-user", "Unknown user.")
        rid = new_request_id()
        self._audit.record(
            AuditEntry(
                request_id=rid,
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
            raise AccessDenied(self._denial_text(decision, dept))
        return self._indexer.refresh(dept, progress=progress)

    def status(self, department: str | None = None) -> list[IndexStatus]:
        depts = [self.company.department(department)] if department else list(self.company)
        return [self._indexer.status(d) for d in depts]

    def feedback(self, request_id: str, *, user: str, value: str, reason: str = "") -> None:
        if value not in ("up", "down"):
            raise UsageError("Feedback must be 'up' or 'down'.")
        self._audit.record_feedback(request_id, user, value, reason[:1000])

    def admins_of(self, dept: Department) -> list[str]:
        """Admin e-mails (groups expanded) to name in denials and "I don't know"."""
        out: list[str] = []
        for entry in dept.admins:
            if entry.startswith("group:"):
                out.extend(sorted(self._groups.members(entry[6:])))
            elif "*" not in entry:
                out.append(entry)
        return list(dict.fromkeys(out))

    # ── the flow ─────────────────────────────────────────────────────────────────────

    def _ask(self, ctx: _Ctx, on_delta: DeltaFn | None) -> Answer:
        message = ctx.message
        text = message.text.strip()
        if not text:
            raise UsageError(
                "Please type a question." if not message.template else "Please give the template an input."
            )
        if len(text) > MAX_QUESTION_CHARS:
            raise UsageError(
                f"That is {len(text):,} characters; please keep it under {MAX_QUESTION_CHARS:,}."
            )

        # 1. identify
        email = message.email or (message.user_id if "@" in message.user_id else None)
        ctx.principal = self.principal(email)
        if ctx.principal is None:
            return self._deny(
                ctx, Decision(False, "unknown-user", "I don't know who you are, so I can't answer.")
            )
        principal = ctx.principal

        # 2. route (explicit) and 3. authorize — before any retrieval
        route = routing.explicit_route(self.company, message)
        if route is not None:
            ctx.department = route.department
            decision = (
                self.policy.may_run(principal, route.department, message.template)
                if message.template
                else self.policy.may_ask(principal, route.department)
            )
            ctx.decision = decision
            if not decision.allowed:
                return self._deny(ctx, decision)
        else:
            askable = self.policy.askable(principal)
            if not askable:
                return self._deny(
                    ctx, Decision(False, "ask:no-department", "You can't ask any department yet.")
                )
            ctx.decision = Decision(True, "ask:auto")

        query = text
        if message.template and route is not None:
            query = route.department.templates[message.template].fill(text)

        # 5. retrieve (auto routing retrieves in each askable department with the asker's scope)
        t0 = time.perf_counter()
        if route is None:
            for dept in askable:
                self._ensure_index(dept)
            scopes = {d.name: self.policy.scope(principal, d) for d in askable}
            route = routing.best_department(query, askable, scopes, self._retriever, top_k=self._top_k)
            ctx.department = route.department
            ctx.decision = self.policy.may_ask(principal, route.department)
            chunks = list(route.probe)
        else:
            self._ensure_index(route.department)
            chunks = []
        dept = route.department
        scope = self.policy.scope(principal, dept)
        cache_k = self._cache_key(query, dept, scope, message)
        if self._cache is not None and cache_k is not None:
            hit = self._cache.get(cache_k)
            if hit is not None:
                return self._from_cache(ctx, hit)
        if not chunks and route.how != "auto" and route.how != "only":
            chunks = self._retriever.retrieve(query, scope, top_k=self._top_k)
        chunks = self._admitted(chunks, scope)
        retrieve_ms = (time.perf_counter() - t0) * 1000

        # 4. classify (after retrieval so document labels count; before generation)
        label, reasons = self._classify(text, dept, chunks, message.history)

        top = max((c.score for c in chunks), default=0.0)
        # A template prompt is long boilerplate around a short input, which dilutes the
        # retrieval score; templates are drafting tasks, so they need only half the bar.
        threshold = dept.dont_know_below / 2 if message.template else dept.dont_know_below
        if top < threshold:
            return self._dont_know(ctx, dept, chunks, retrieve_ms, route, label)

        # 6. generate
        t1 = time.perf_counter()
        request = GenerationRequest(
            question=query,
            department=dept.name,
            department_title=dept.title,
            sources=tuple(chunks),
            history=message.history,
            task=f"template:{message.template}" if message.template else "question",
            tier=(dept.templates[message.template].tier if message.template else None) or dept.tier,
            classification=label,
            user=principal.email,
            route=dept.route,
            label_reasons=reasons,
            request_id=ctx.request_id,
        )
        failure, error_name = "", ""
        generation: Generation | None
        try:
            generation = self._generator.generate(request, on_delta=on_delta)
        except DeptbotError as exc:  # provider refused/failed: sources only, say why
            generation = None
            failure = exc.user_message
            error_name = type(exc).__name__
        generate_ms = (time.perf_counter() - t1) * 1000

        # 7. cite
        if generation is None or generation.sources_only:
            notice = failure if generation is None else generation.notice
            answer = self._sources_only(ctx, dept, chunks, notice, label)
            answer = replace(
                answer,
                timings=Timings(retrieve_ms, generate_ms, self._elapsed(ctx)),
                generator=generation.generator if generation else "",
                model=generation.model if generation else "",
                route=generation.route if generation else "none",
                route_reason=generation.route_reason if generation else notice,
            )
            self._record(ctx, answer=answer, error="" if generation else error_name)
            return answer
        cited = citations.validate(generation.text, chunks)
        conf = citations.confidence(chunks, cited)
        notice = generation.notice
        if route.alternative is not None:
            notice = (
                f"Answered from {dept.title}; {route.alternative.title} also looked relevant "
                f"(ask there with --department {route.alternative.name})."
            )
        answer = Answer(
            text=cited.text,
            request_id=ctx.request_id,
            status=Status.ANSWERED,
            citations=cited.citations,
            confidence=conf,
            department=dept.name,
            department_title=dept.title,
            generator=generation.generator,
            model=generation.model,
            route=generation.route,
            route_reason=generation.route_reason,
            timings=Timings(retrieve_ms, generate_ms, self._elapsed(ctx)),
            usage=generation.usage,
            notice=notice,
            alternative_department=route.alternative.name if route.alternative else None,
            low_confidence=not cited.citations or conf < dept.dont_know_below,
            classification=label,
            created=self._clock(),
            channel_safe=self._channel_safe(message, dept, chunks),
        )
        if (
            self._cache is not None
            and cache_k is not None
            and self._cacheable(cache_k, query, dept, scope, message, chunks)
        ):
            self._cache.put(cache_k, answer)
        self._record(ctx, answer=answer)
        return answer

    # ── steps ────────────────────────────────────────────────────────────────────────

    def _ensure_index(self, dept: Department) -> None:
        """Build a missing index now; re-check staleness at most every ``stale_check_seconds``.

        A staleness check stats every file in the folder, which costs more than answering
        on large departments, so it is not done per request (the server's background
        refresher and ``/kb refresh`` cover changes in between).
        """
        if not self._auto_index:
            return
        now = time.monotonic()
        missing = self._retriever.index_version(dept.name) is None
        last = self._stale_checked.get(dept.name)
        if not missing and last is not None and now - last < self._stale_check_seconds:
            return
        self._stale_checked[dept.name] = now
        if missing or self._indexer.status(dept).stale:
            self._indexer.refresh(dept, progress=self.index_progress)

    @staticmethod
    def _admitted(chunks: list[SourceChunk], scope: AccessScope) -> list[SourceChunk]:
        """Assert after retrieval: drop anything outside the scope, loudly (ids only)."""
        kept = [c for c in chunks if c.department == scope.department and scope.admits(c.audiences)]
        if len(kept) != len(chunks):
            dropped = [c.chunk_id for c in chunks if c not in kept]
            log.error("retriever returned %d chunk(s) outside the asker's scope: %s", len(dropped), dropped)
        return kept

    def _classify(
        self, text: str, dept: Department, chunks: list[SourceChunk], history: tuple[Turn, ...] = ()
    ) -> tuple[Classification, tuple[str, ...]]:
        """The request's label: its own text *and* the thread history that goes into the prompt.

        History turns count twice: their text through the classifier, and the label the
        adapter recorded with them (an earlier answer's documents' labels).
        """
        label = Classification.PUBLIC
        reasons: list[str] = []
        try:
            for part in (text, *(t.text for t in history)):
                found, why = self._classifier.classify(part, dept)
                label = max(label, found)
                reasons += [r for r in why if r not in reasons]
        except Exception:
            log.exception("classifier failed; treating the request as restricted")
            return Classification.RESTRICTED, ("classifier-error",)
        label = max(label, dept.classification, *(c.classification for c in chunks))
        carried = max((t.label for t in history if t.label is not None), default=Classification.PUBLIC)
        if carried > label:
            label = carried
            reasons.append("thread-history")
        return label, tuple(reasons)

    def _channel_safe(self, message: Message, dept: Department, used: Sequence[SourceChunk]) -> bool:
        """May everyone in the channel read every chunk whose text or title reached the answer?

        ``used`` is every source a generator was given (a model may paraphrase a source it
        does not cite) or every document an answer names; checking only the cited ones
        would let a paraphrased, uncited restricted source into the channel.
        """
        if not message.in_channel:
            return True
        readers = self.policy.channel_audience(dept, message.channel, message.channel_audience)
        return all(self.policy.channel_admits(readers, c.audiences) for c in used)

    def _cache_key(self, query: str, dept: Department, scope: AccessScope, message: Message) -> str | None:
        version = self._retriever.index_version(dept.name)
        if version is None:
            return None
        # Only the entries some document in this department names decide what the asker
        # sees; people equal on those share cache entries, everyone else never does.
        relevant = scope.keys & self._retriever.audience_entries(dept.name)
        return cache_key(
            question=query,
            department=dept.name,
            access_keys=relevant,
            index_version=version,
            template=message.template or "",
            in_channel=message.in_channel,
            channel_readers=(
                self.policy.channel_audience(dept, message.channel, message.channel_audience)
                if message.in_channel
                else ()
            ),
            history=tuple(t.text for t in message.history),
            history_labels=tuple(t.label.label if t.label is not None else "" for t in message.history),
        )

    def _cacheable(
        self,
        key: str,
        query: str,
        dept: Department,
        scope: AccessScope,
        message: Message,
        chunks: list[SourceChunk],
    ) -> bool:
        """Store only when the key still describes what the answer was built from.

        The key is computed before retrieval; a refresh in between (or before the routing
        probe) could add documents whose audience entries the key's access fingerprint does
        not distinguish, and people with narrower access would then share the entry.
        """
        if self._cache_key(query, dept, scope, message) != key:
            return False
        known = self._retriever.audience_entries(dept.name)
        return all(entry in known for c in chunks for level in c.audiences for entry in level)

    def _from_cache(self, ctx: _Ctx, hit: Answer) -> Answer:
        as_of = hit.created.strftime("%Y-%m-%d %H:%M UTC") if hit.created else "an earlier answer"
        answer = replace(
            hit,
            request_id=ctx.request_id,
            cache_hit=True,
            timings=Timings(0.0, 0.0, self._elapsed(ctx)),
            notice=(f"From cache, sources as of {as_of}. " + hit.notice).strip(),
        )
        self._record(ctx, answer=answer)
        return answer

    def _deny(self, ctx: _Ctx, decision: Decision) -> Answer:
        ctx.decision = decision
        text = self._denial_text(decision, ctx.department)
        answer = Answer(
            text=text,
            request_id=ctx.request_id,
            status=Status.DENIED,
            department=ctx.department.name if ctx.department else None,
            department_title=ctx.department.title if ctx.department else None,
            timings=Timings(total_ms=self._elapsed(ctx)),
        )
        self._record(ctx, answer=answer)
        return answer

    def _denial_text(self, decision: Decision, dept: Department | None) -> str:
        text = decision.reason or "You don't have access to that."
        if dept is not None:
            admins = self.admins_of(dept)
            if admins:
                text += f" {dept.title} admins ({', '.join(admins)}) can give you access."
        return text

    def _dont_know(
        self,
        ctx: _Ctx,
        dept: Department,
        chunks: list[SourceChunk],
        retrieve_ms: float,
        route: routing.Route,
        label: Classification,
    ) -> Answer:
        text = f"I couldn't find this in the {dept.title} knowledge."
        if len(route.searched) > 1:
            text = f"I couldn't find this in the knowledge you can ask ({', '.join(route.searched)})."
        named = chunks[:3]  # their titles are in the text, so they decide channel safety
        titles = list(dict.fromkeys(c.title for c in named))
        if titles:
            text += " The closest documents are " + _join(titles) + "."
        admins = self.admins_of(dept)
        if admins:
            text += f" For anything else, ask a {dept.title} admin: {', '.join(admins)}."
        answer = Answer(
            text=text,
            request_id=ctx.request_id,
            status=Status.DONT_KNOW,
            confidence=round(max((c.score for c in chunks), default=0.0), 3),
            department=dept.name,
            department_title=dept.title,
            generator="none",
            route="none",
            timings=Timings(retrieve_ms, 0.0, self._elapsed(ctx)),
            low_confidence=True,
            classification=label,
            created=self._clock(),
            alternative_department=route.alternative.name if route.alternative else None,
            channel_safe=self._channel_safe(ctx.message, dept, named),
        )
        self._record(ctx, answer=answer)
        return answer

    def _sources_only(
        self, ctx: _Ctx, dept: Department, chunks: list[SourceChunk], notice: str, label: Classification
    ) -> Answer:
        cited = citations.validate("".join(f"[{i}]" for i in range(1, len(chunks) + 1)), chunks)
        answer = Answer(
            text=f"{notice} Here are the most relevant {dept.title} sources.".strip(),
            request_id=ctx.request_id,
            status=Status.SOURCES_ONLY,
            citations=cited.citations,
            confidence=round(max((c.score for c in chunks), default=0.0), 3),
            department=dept.name,
            department_title=dept.title,
            notice=notice,
            low_confidence=True,
            classification=label,
            created=self._clock(),
            channel_safe=self._channel_safe(ctx.message, dept, chunks),
        )
        return answer

    def _record(
        self, ctx: _Ctx, *, answer: Answer | None = None, status: Status | None = None, error: str = ""
    ) -> None:
        decision = ctx.decision
        st = status or (answer.status if answer else Status.ERROR)
        allowed = decision.allowed if decision else False
        entry = AuditEntry(
            request_id=ctx.request_id,
            time=self._clock(),
            user=ctx.principal.email if ctx.principal else (ctx.message.email or ctx.message.user_id),
            platform=ctx.message.platform,
            decision="allowed"
            if allowed and st != Status.DENIED
            else "denied"
            if st == Status.DENIED
            else "error",
            rule=decision.rule if decision else "",
            status=st.value,
            department=ctx.department.name if ctx.department else None,
            template=ctx.message.template,
            question=ctx.message.text[:MAX_QUESTION_CHARS],
            doc_ids=tuple(dict.fromkeys(c.doc_id for c in answer.citations)) if answer else (),
            generator=answer.generator if answer else "",
            model=answer.model if answer else "",
            route=answer.route if answer else "",
            route_reason=answer.route_reason if answer else "",
            input_tokens=answer.usage.input_tokens if answer else 0,
            output_tokens=answer.usage.output_tokens if answer else 0,
            cost=answer.usage.cost if answer else 0.0,
            confidence=answer.confidence if answer else 0.0,
            retrieve_ms=answer.timings.retrieve_ms if answer else 0.0,
            generate_ms=answer.timings.generate_ms if answer else 0.0,
            latency_ms=self._elapsed(ctx),
            cache_hit=answer.cache_hit if answer else False,
            channel=ctx.message.channel,
            error=error,
        )
        try:
            self._audit.record(entry)
        except Exception:
            log.exception("audit write failed for request %s", ctx.request_id)
            raise

    @staticmethod
    def _elapsed(ctx: _Ctx) -> float:
        return round((time.perf_counter() - ctx.started) * 1000, 2)


def _join(items: list[str]) -> str:
    quoted = [f"“{t}”" for t in items]
    if len(quoted) == 1:
        return quoted[0]
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]
