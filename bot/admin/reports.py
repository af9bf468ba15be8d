"""The frozen values the admin console renders (``bot.admin.insights`` builds them).

Kept apart from the code that computes them so the console, the benches and the tests
share one vocabulary, and so a field's docstring says what may be in it: no field ever
holds another department's data, and question or comment text only appears in fields
documented "only with show_text".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from bot.store.evalruns import EvalRun

PERIODS = (7, 30, 90)
"""The day windows the console offers."""


# ── overview ─────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class StatusCounts:
    """Requests by ``bot.core.types.Status`` ("sources_only" = generation refused/failed)."""

    answered: int = 0
    dont_know: int = 0
    denied: int = 0
    sources_only: int = 0
    error: int = 0

    @property
    def total(self) -> int:
        return self.answered + self.dont_know + self.denied + self.sources_only + self.error


@dataclass(frozen=True)
class Satisfaction:
    """👍/👎 votes on answers of the period; ``share`` is None without votes."""

    up: int = 0
    down: int = 0

    @property
    def votes(self) -> int:
        return self.up + self.down

    @property
    def share(self) -> float | None:
        return self.up / self.votes if self.votes else None


@dataclass(frozen=True)
class DayPoint:
    """One UTC day of the series (every day of the window is present, zeros included)."""

    day: date
    status: StatusCounts
    up: int = 0
    down: int = 0
    tokens: int = 0
    cost: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None

    @property
    def questions(self) -> int:
        return self.status.total


@dataclass(frozen=True)
class RouteMix:
    """Where answers were generated: a cloud provider, the private model, or extractive
    (no model: passages quoted); ``none`` = no generation (denied, don't know, cache)."""

    cloud: int = 0
    private: int = 0
    extractive: int = 0
    none: int = 0


@dataclass(frozen=True)
class BudgetUse:
    """Spend against the department's daily limits (``[budgets]``; 0 = no limit).

    Budgets are per UTC day, so the comparison is today's spend and the period's busiest
    day against the daily limit; ``period_*`` are the totals of the window."""

    daily_tokens_limit: int
    daily_cost_limit: float
    today_tokens: int
    today_cost: float
    peak_day_tokens: int
    peak_day_cost: float
    period_tokens: int
    period_cost: float

    @property
    def today_cost_share(self) -> float | None:
        return self.today_cost / self.daily_cost_limit if self.daily_cost_limit > 0 else None

    @property
    def today_tokens_share(self) -> float | None:
        return self.today_tokens / self.daily_tokens_limit if self.daily_tokens_limit > 0 else None


@dataclass(frozen=True)
class WeekStats:
    """One 7-day window of the pilot comparison."""

    start: date
    end: date  # inclusive
    questions: int
    answered: int
    dont_know: int
    satisfaction: Satisfaction
    p50_ms: float | None
    askers: int  # distinct askers (a count, never who)


@dataclass(frozen=True)
class PilotComparison:
    """The last 7 days against the 7 before, for a department with ``pilot:``."""

    this_week: WeekStats
    last_week: WeekStats
    entries: int  # pilot access entries
    channels: int  # pilot channels


@dataclass(frozen=True)
class Overview:
    department: str
    days: int
    start: date  # first UTC day of the window
    end: date  # last UTC day (today)
    series: tuple[DayPoint, ...]
    totals: StatusCounts
    satisfaction: Satisfaction
    p50_ms: float | None
    p95_ms: float | None
    input_tokens: int
    output_tokens: int
    cost: float
    budget: BudgetUse
    routes: RouteMix
    cache_hits: int
    cache_rate: float | None  # cache hits / allowed requests; None without requests
    pilot: PilotComparison | None = None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


# ── knowledge gaps ───────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class DocRef:
    """A document of the department's index: id ("hr/time-off.md"), title, path within
    the knowledge folder, and its ``docs_url`` link ("" when unset)."""

    doc_id: str
    title: str
    path: str
    link: str = ""


@dataclass(frozen=True)
class ClosestDoc:
    """A document near a gap group. ``score`` 0..1: the retrieval relevance for a group
    of questions, or the share of the group's answers citing it for a "sources" group."""

    doc: DocRef
    score: float


@dataclass(frozen=True)
class GapGroup:
    """Similar unanswered ("don't know"), low-confidence and 👎 questions, biggest first.

    ``topic`` is always safe to show: with hidden text it is the titles of the group's
    documents (or a fixed phrase), never words of the questions. ``basis`` says how the
    group was formed: "questions" (similar question text — only with show_text),
    "sources" (the same cited documents: low-confidence and 👎 answers cite some),
    "none" (one count: no readable text and no cited document, e.g. "don't know" with
    hidden text, or text already purged by retention or erased), or "other" (hidden text:
    groups smaller than ``bot.admin.gaps.MIN_HIDDEN_GROUP`` folded into one, listed last).
    With hidden text, times are whole UTC days. A row can be both "don't know"/low-confidence and 👎, so
    the three kind counts may add up to more than ``count``."""

    key: str  # stable id (for anchors): a hash of request ids, no text in it
    count: int
    dont_know: int
    low_confidence: int
    down: int
    first_seen: datetime
    last_seen: datetime
    topic: str
    closest: tuple[ClosestDoc, ...]
    basis: str = "questions"  # questions | sources | none | other
    request_ids: tuple[str, ...] = ()  # newest first, capped: only with show_text
    examples: tuple[str, ...] = ()  # question text, most frequent first: only with show_text
    terms: tuple[str, ...] = ()  # key terms of the questions: only with show_text


# ── documents ────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class CitedDoc:
    doc: DocRef
    citations: int
    last_cited: datetime | None


@dataclass(frozen=True)
class StaleDoc:
    doc: DocRef
    updated: date | None  # the document's real updated date (``bot.knowledge.dates``)
    age_days: int | None


@dataclass(frozen=True)
class FailedDoc:
    path: str  # within the knowledge folder
    reason: str  # what the indexer recorded (a short phrase, never file content)


@dataclass(frozen=True)
class RestrictedCounts:
    """Documents narrower than the department default: a classification above it, or
    an audience of their own."""

    above_default: int
    with_audience: int
    by_classification: tuple[tuple[str, int], ...]  # ("confidential", 3), … all documents
    unlisted: int = 0  # not every admin may read them: counted here, never named on these pages


@dataclass(frozen=True)
class DocumentReport:
    department: str
    days: int
    indexed: bool  # False: no index yet (the rest is empty)
    documents: int
    chunks: int
    built_at: datetime | None
    most_cited: tuple[CitedDoc, ...]
    never_cited: tuple[DocRef, ...]
    stale: tuple[StaleDoc, ...]  # oldest first: real updated date older than stale_after_days
    stale_after_days: int
    undated: int  # documents with no real updated date (only "first indexed"): never called stale
    failed: tuple[FailedDoc, ...]
    restricted: RestrictedCounts
    never_cited_total: int = 0  # the lists above are capped; these are the full counts
    stale_total: int = 0


# ── feedback ─────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class FeedbackItem:
    """One 👎 (newest first), linked to its answer (request id) and sources."""

    request_id: str
    time: datetime
    status: str
    route: str
    sources: tuple[DocRef, ...]  # the cited documents every admin may read
    reason: str | None = None  # the voter's words: only with show_text (None: none/erased)
    question: str | None = None  # only with show_text (None: purged/erased)
    unnamed_sources: int = 0  # cited documents not named: not every admin may read them, or gone


@dataclass(frozen=True)
class FeedbackPage:
    """The feedback page: ``items`` (one per 👎) only with show_text; without it
    ``groups``, folded and rounded exactly as the gaps page's (``basis`` "sources",
    "none" or "other"; whole days; no request ids; only titles every admin may read)."""

    items: tuple[FeedbackItem, ...] = ()
    groups: tuple[GapGroup, ...] = ()


# ── evals ────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Regression:
    """A share that dropped by more than the tolerance between two consecutive runs."""

    time: datetime  # of the later run
    metric: str  # source_hit | fact_hit | answered | refusal
    before: float
    after: float

    @property
    def drop(self) -> float:
        return self.before - self.after


@dataclass(frozen=True)
class EvalTrend:
    department: str
    runs: tuple[EvalRun, ...]  # newest first
    regressions: tuple[Regression, ...]  # newest first
    tolerance: float

    @property
    def latest(self) -> EvalRun | None:
        return self.runs[0] if self.runs else None
