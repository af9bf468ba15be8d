"""The ``Generator`` the assistant uses: picks a trust tier, a model tier and a provider.

Routing fails closed:

===========================  ===================================================
request                      goes to
===========================  ===================================================
no provider configured       the offline extractive generator (nothing leaves)
confidential / restricted,   the private endpoint only; not configured or
or department ``private``    failing → sources only with a sentence why
public / internal, ``auto``  cloud (``cloud_order``), falling back cloud → cloud,
or ``cloud``                 then the extractive generator as last resort
public / internal, no cloud  the private endpoint, then extractive
===========================  ===================================================

Personal data (the department's ``pii`` setting, see ``bot.sensitivity.redact``):
``route_private`` (default) is the table above. ``redact``: a request that is confidential
or restricted *only* because of personal data in its question or history (e-mail, phone,
IBAN, ID, card or account numbers — no secret, keyword, topic, sensitive document, thread
label or department classification above internal) goes to the cloud with that data
replaced by placeholders, which are restored in the answer (and in streamed deltas); any
cloud call of such a department is redacted, and if a detector still fires on the
redacted text the request goes private instead. ``block``: a request with personal data
or a secret is refused before any model call. What was detected (counts, never values)
travels back in ``Generation.pii_detected`` for the audit row.

Model tier: the template's or department's ``tier`` when set; otherwise ``large`` for
templates, long questions (> ``large_question_chars``) or sources from at least
``large_source_docs`` documents, and ``small`` for the rest. On failure the router tries
the other providers of the same trust tier, then the other model tier (a provider that is
down is not retried within the request).

Before each provider call the estimated tokens/cost are reserved against the daily
budgets; over budget raises ``BudgetExceeded`` without calling anyone. Every attempt is
recorded in the usage store, including refusals and skips (open circuit, deadline).

A failed call is charged as providers bill it (``failed_charge``): a stream cut, our
deadline or a timeout mid-stream costs the input estimate plus the output streamed so
far; a non-streaming timeout keeps its whole reservation (the model may have written
the full answer); only a refusal before any output (auth, unknown model, bad request,
rate limit, connection, server error) settles at zero. Otherwise repeated failures
could stream answers forever without ever reaching a budget.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from bot.core import replies
from bot.core.labels import turn_label
from bot.core.ports import DeltaFn, Generator
from bot.core.types import Classification, Generation, GenerationRequest, Usage
from bot.errors import BudgetExceeded, ProviderError, ProviderUnavailable
from bot.llm.config import TIERS, LLMConfig
from bot.llm.prompts import Prompt, build_prompt, count_tokens, rules
from bot.llm.provider import ChatProvider, CircuitBreaker, Unavailable, failure_kind
from bot.sensitivity.redact import (
    PII_DETECTORS,
    PROMPT_NOTE,
    Redaction,
    leftover,
    scan,
)
from bot.store.usage import Attempt, BudgetLimits, UsageLedger

log = logging.getLogger(__name__)

# Failure kinds a provider refuses before generating anything (not billed by providers).
NOT_BILLED = frozenset(
    {"auth", "unknown-model", "bad-request", "too-long", "rate-limited", "connection", "server-error"}
)


def failed_charge(kind: str, *, est_in: int, seen: str, streaming: bool, max_tokens: int) -> tuple[int, int]:
    """(input, output) tokens to charge for a failed call whose failure kind is ``kind``.

    ``seen``: the output streamed before the failure. Fails closed: an unknown kind is
    charged, and a non-streaming timeout keeps the whole output reservation. Output is
    capped at ``max_tokens`` (what the provider may bill, and what was reserved), so a
    charge never exceeds its reservation and a budget is never overspent.
    """
    out = min(count_tokens(seen), max_tokens) if seen else 0
    if kind in NOT_BILLED and not seen:
        return 0, 0
    if kind == "timeout" and not streaming:
        return est_in, max_tokens
    return est_in, out


@dataclass(frozen=True)
class Plan:
    route: str  # cloud | private | local | none
    reason: str
    tier: str
    tier_reason: str
    notice: str = ""  # for route "none": why only sources are shown
    redact: bool = False  # replace personal data by placeholders before the cloud call


def redactable(request: GenerationRequest) -> bool:
    """May ``pii: redact`` send this request to the cloud once personal data is replaced?

    Only when personal data is the sole reason it is above internal: every other source
    of sensitivity (secrets, keywords, topics, a classifier error, sensitive documents,
    a labelled thread, the department's own classification, a private pin) keeps it
    private. An unknown department label counts as too sensitive (fail closed).
    """
    internal = Classification.INTERNAL
    return (
        request.pii == "redact"
        and request.route != "private"
        and request.department_label is not None
        and request.department_label <= internal
        and not set(request.label_reasons) - PII_DETECTORS
        and all(s.classification <= internal for s in request.sources)
        and all(turn_label(t) <= internal for t in request.history)
    )


def choose_tier(request: GenerationRequest, config: LLMConfig) -> tuple[str, str]:
    """(tier, why) — see the module docstring for the heuristic."""
    if request.tier in TIERS:
        return str(request.tier), "set by the template or department"
    if request.task.startswith("template:"):
        return "large", "template task"
    if len(request.question) > config.large_question_chars:
        return "large", "long question"
    docs = len({s.doc_id for s in request.sources})
    if docs >= config.large_source_docs:
        return "large", f"sources from {docs} documents"
    return "small", "short question, few sources"


class Router:
    """A ``Generator`` (``name="router"``) over the configured providers."""

    name = "router"

    def __init__(
        self,
        *,
        config: LLMConfig,
        providers: Sequence[ChatProvider],
        fallback: Generator,
        usage: UsageLedger | None = None,
        limits: BudgetLimits | None = None,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        by_name = {p.name: p for p in providers if p.trust == "cloud"}
        self.cloud = [by_name[n] for n in config.cloud_order if n in by_name]
        self.cloud += [p for n, p in by_name.items() if n not in config.cloud_order]
        self.private = next((p for p in providers if p.trust == "private"), None)
        self._fallback = fallback
        self._usage = usage
        self._limits = limits or BudgetLimits()
        self.breaker = breaker or CircuitBreaker(
            failures=config.breaker_failures, cooldown=config.breaker_cooldown_seconds, clock=monotonic
        )
        self._clock = clock
        self._mono = monotonic

    # ── deciding ─────────────────────────────────────────────────────────────────────

    def plan(self, request: GenerationRequest) -> Plan:
        tier, tier_reason = choose_tier(request, self.config)
        label = request.classification
        why = label.label + (f" ({', '.join(request.label_reasons)})" if request.label_reasons else "")
        pin = request.route or "auto"
        if not self.cloud and self.private is None:
            return Plan("local", "no LLM provider configured: offline extractive answer", tier, tier_reason)
        # Above internal, redaction needs the reasons to say why, and all of them personal data.
        explained = bool(request.label_reasons)
        if label >= Classification.CONFIDENTIAL and explained and self.cloud and redactable(request):
            return Plan(
                "cloud",
                f"{why} data; personal data replaced by placeholders → cloud",
                tier,
                tier_reason,
                redact=True,
            )
        if label >= Classification.CONFIDENTIAL or pin == "private":
            because = (
                f"{why} data" if label >= Classification.CONFIDENTIAL else "department pinned to private"
            )
            if self.private is None:
                subject = (
                    f"{label.label} information"
                    if label >= Classification.CONFIDENTIAL
                    else "this department"
                )
                return Plan(
                    "none",
                    f"{because} → private model only; none configured",
                    tier,
                    tier_reason,
                    notice=f"Answers about {subject} may only come from the private model, "
                    "and none is configured.",
                )
            return Plan("private", f"{because} → private model only", tier, tier_reason)
        if self.cloud:
            pinned = "; department pinned to cloud" if pin == "cloud" else ""
            return Plan(
                "cloud", f"{why} data → cloud{pinned}", tier, tier_reason, redact=request.pii == "redact"
            )
        if pin == "cloud":
            return Plan(
                "local", f"{why} data; pinned to cloud but none configured → extractive", tier, tier_reason
            )
        return Plan("private", f"{why} data; no cloud provider configured → private model", tier, tier_reason)

    def _candidates(self, plan: Plan) -> list[tuple[ChatProvider, str]]:
        providers = self.cloud if plan.route == "cloud" else [self.private] if self.private else []
        other = "large" if plan.tier == "small" else "small"
        out: list[tuple[ChatProvider, str]] = []
        for tier in (plan.tier, other):
            for p in providers:
                model = self.config.model(p.name, tier)
                if model and (p, model) not in out:
                    out.append((p, model))
        return out

    # ── generating ───────────────────────────────────────────────────────────────────

    def generate(self, request: GenerationRequest, *, on_delta: DeltaFn | None = None) -> Generation:
        found = scan(request.question, request.history)  # names and counts, never values
        request_id = request.request_id or secrets.token_hex(6)
        if request.pii == "block":
            blocked = self._blocked(request, request_id)
            if blocked is not None:
                return replace(blocked, pii_detected=found.to_json())
        return replace(self._generate(request, request_id, on_delta), pii_detected=found.to_json())

    def _blocked(self, request: GenerationRequest, request_id: str) -> Generation | None:
        """``pii: block``: sources only with a refusal when the question or a person's turn
        holds personal data or a secret. Earlier *answers* are not looked at: they hold
        document text (a help-desk phone number), which is not the asker's to withhold.
        What the scan misses still routes as under ``route_private`` (sensitive → private)."""
        people = [t for t in request.history if t.role != "assistant"]
        found = scan(request.question, people)
        kinds = [*found.pii, *found.secrets]
        if not kinds:
            return None
        tier, tier_reason = choose_tier(request, self.config)
        plan = Plan(
            "none", "personal data or a secret in the conversation; department blocks it", tier, tier_reason
        )
        self._record(request, request_id, plan, "none", "", "pii-blocked")
        return self._sources_only(plan, replies.pii_blocked(request.department_title, kinds), plan.reason)

    def _generate(self, request: GenerationRequest, request_id: str, on_delta: DeltaFn | None) -> Generation:
        plan = self.plan(request)
        outgoing, redaction = request, None
        if plan.redact:
            outgoing, redaction = self._redacted(request)
            if redaction is None:  # a detector still fires on the redacted text: fail closed
                at_least = max(request.classification, Classification.CONFIDENTIAL)
                plan = self.plan(replace(request, pii="route_private", classification=at_least))
                plan = replace(plan, reason=plan.reason + " (redaction incomplete)")
                outgoing = request
        if plan.route == "local":
            return self._extractive(request, plan, request_id, on_delta, notice="")
        if plan.route == "none":
            self._record(request, request_id, plan, "none", "", "sources-only")
            return self._sources_only(plan, plan.notice, plan.reason)
        prompt = build_prompt(
            outgoing, history_tokens=self.config.history_tokens, source_tokens=self.config.source_tokens
        )
        if redaction:
            head = rules(outgoing)
            prompt = replace(prompt, system=prompt.system.replace(head, head + "\n\n" + PROMPT_NOTE, 1))
            plan = replace(
                plan, reason=plan.reason + f"; {sum(redaction.counts().values())} personal detail(s) redacted"
            )
        deadline = self._mono() + self.config.deadline_seconds
        total = Usage()
        failures: list[str] = []
        down: set[str] = set()
        for provider, model in self._candidates(plan):
            if provider.name in down:
                continue
            if not self.breaker.allow(provider.name):
                self._record(request, request_id, plan, provider.name, model, "circuit-open")
                failures.append(f"{provider.name} circuit open")
                down.add(provider.name)
                continue
            remaining = deadline - self._mono()
            if remaining <= 0.05:
                self._record(request, request_id, plan, provider.name, model, "deadline")
                failures.append("deadline reached")
                break
            gen = self._attempt(
                request, request_id, plan, prompt, provider, model, remaining, on_delta, redaction
            )
            if isinstance(gen, Generation):
                usage = Usage(
                    total.input_tokens + gen.usage.input_tokens,
                    total.output_tokens + gen.usage.output_tokens,
                    round(total.cost + gen.usage.cost, 6),
                )
                fell = f"; after {', '.join(failures)}" if failures else ""
                return replace(gen, usage=usage, route_reason=gen.route_reason + fell)
            error, spent = gen
            total = Usage(total.input_tokens, total.output_tokens, round(total.cost + spent, 6))
            failures.append(f"{provider.name}/{model} {failure_kind(error)}")
            if isinstance(error, ProviderUnavailable):
                down.add(provider.name)
        reason = f"{plan.reason}; failed: {', '.join(failures) or 'no model configured'}"
        if plan.route == "cloud" or (
            plan.route == "private"
            and request.route != "private"
            and request.classification <= Classification.INTERNAL
        ):
            return self._extractive(
                request,
                replace(plan, reason=reason + " → extractive"),
                request_id,
                on_delta,
                notice="The AI model is unavailable right now, so this answer quotes the sources directly.",
            )
        self._record(request, request_id, plan, "none", "", "sources-only")
        return self._sources_only(
            plan,
            "The private model, the only one allowed for this information, is unavailable right now.",
            reason,
        )

    def _attempt(
        self,
        request: GenerationRequest,
        request_id: str,
        plan: Plan,
        prompt: Prompt,
        provider: ChatProvider,
        model: str,
        remaining: float,
        on_delta: DeltaFn | None,
        redaction: Redaction | None = None,
    ) -> Generation | tuple[ProviderError, float]:
        """One provider call with its reservation; a Generation or (error, cost spent).

        With a ``redaction``, placeholders are restored in the answer and in each streamed
        delta (held back while one may be split across deltas) before anyone sees them.
        """
        cfg = self.config
        price = cfg.price(model)
        est_in = math.ceil(prompt.input_tokens * cfg.estimate_margin)
        reservation = None
        if self._usage is not None:
            try:
                reservation = self._usage.reserve(
                    request_id=request_id,
                    user=request.user,
                    department=request.department,
                    tokens=est_in + cfg.max_tokens,
                    cost=price.cost(est_in, cfg.max_tokens),
                    limits=self._limits,
                    now=self._clock(),
                )
            except BudgetExceeded:
                self._record(request, request_id, plan, provider.name, model, "budget")
                raise
        deadline = self._mono() + remaining
        sink = on_delta
        restorer = redaction.stream(on_delta) if redaction and on_delta is not None else None
        seen: list[str] = []  # output the model produced before any failure: it is billed

        def guarded(delta: str) -> None:
            seen.append(delta)
            if self._mono() > deadline:
                raise Unavailable("deadline", "The AI model took too long to answer.")
            assert sink is not None
            (restorer or sink)(delta)

        started = self._mono()
        try:
            done = provider.complete(
                prompt,
                model=model,
                max_tokens=cfg.max_tokens,
                timeout=min(cfg.timeout_seconds, remaining),
                on_delta=guarded if on_delta is not None else None,
            )
        except Exception as exc:  # ProviderError from the provider, or a bug: never shown raw
            error = exc if isinstance(exc, ProviderError) else ProviderError("The AI model failed.")
            if not isinstance(exc, ProviderError):
                log.exception("provider %s raised an unexpected error", provider.name)
            kind = failure_kind(error)
            tokens_in, tokens_out = failed_charge(
                kind,
                est_in=est_in,
                seen="".join(seen),
                streaming=on_delta is not None,
                max_tokens=cfg.max_tokens,
            )
            charged = Usage(tokens_in, tokens_out, price.cost(tokens_in, tokens_out))
            if reservation is not None and self._usage is not None:
                self._usage.settle(reservation, tokens=tokens_in + tokens_out, cost=charged.cost)
            self.breaker.failure(provider.name)
            latency = (self._mono() - started) * 1000
            self._record(
                request, request_id, plan, provider.name, model, kind, usage=charged, latency=latency
            )
            return error, charged.cost
        if restorer is not None:
            restorer.flush()
        latency = (self._mono() - started) * 1000
        cost = price.cost(done.input_tokens, done.output_tokens)
        if reservation is not None and self._usage is not None:
            self._usage.settle(reservation, tokens=done.input_tokens + done.output_tokens, cost=cost)
        self.breaker.success(provider.name)
        self._record(
            request,
            request_id,
            plan,
            provider.name,
            done.model,
            "ok",
            usage=Usage(done.input_tokens, done.output_tokens, cost),
            latency=latency,
            reported=done.usage_reported,
        )
        return Generation(
            text=redaction.restore(done.text) if redaction else done.text,
            model=done.model,
            generator=provider.name,
            usage=Usage(done.input_tokens, done.output_tokens, cost),
            route=plan.route,
            route_reason=f"{plan.reason}; {plan.tier} tier ({plan.tier_reason})",
        )

    @staticmethod
    def _redacted(request: GenerationRequest) -> tuple[GenerationRequest, Redaction | None]:
        """The request with personal data replaced in question and history, and its
        mapping; (request, None) when a detector still fires on what would go out."""
        redaction = Redaction((request.question, *(t.text for t in request.history)))
        outgoing = replace(
            request,
            question=redaction.redact(request.question),
            history=redaction.redact_turns(request.history),
        )
        if leftover((outgoing.question, *(t.text for t in outgoing.history))):
            return request, None
        return outgoing, redaction

    def _extractive(
        self, request: GenerationRequest, plan: Plan, request_id: str, on_delta: DeltaFn | None, notice: str
    ) -> Generation:
        started = self._mono()
        gen = self._fallback.generate(request, on_delta=on_delta)
        self._record(
            request, request_id, plan, gen.generator, gen.model, "ok", latency=(self._mono() - started) * 1000
        )
        if not gen.text.strip():
            return self._sources_only(
                plan,
                (notice + " " if notice else "")
                + "No passage in the sources matched the question closely enough to quote.",
                plan.reason,
            )
        return replace(gen, route="local", route_reason=plan.reason, notice=notice or gen.notice)

    @staticmethod
    def _sources_only(plan: Plan, notice: str, reason: str) -> Generation:
        return Generation(
            text="",
            model="",
            generator="none",
            route="none",
            route_reason=reason,
            sources_only=True,
            notice=notice,
        )

    def _record(
        self,
        request: GenerationRequest,
        request_id: str,
        plan: Plan,
        provider: str,
        model: str,
        outcome: str,
        *,
        usage: Usage | None = None,
        latency: float = 0.0,
        reported: bool = True,
    ) -> None:
        if self._usage is None:
            return
        route = "local" if provider == "extractive" else plan.route if provider != "none" else "none"
        self._usage.record(
            Attempt(
                request_id=request_id,
                time=self._clock(),
                user=request.user,
                department=request.department,
                provider=provider,
                model=model,
                tier=plan.tier,
                route=route,
                outcome=outcome,
                input_tokens=usage.input_tokens if usage else 0,
                output_tokens=usage.output_tokens if usage else 0,
                cost=usage.cost if usage else 0.0,
                latency_ms=round(latency, 2),
                usage_reported=reported,
            )
        )
