"""Ports: the Protocols the pipeline depends on, implemented outside ``bot/core``.

``bot/wiring.py`` picks the implementations; tests pass fakes with the same shape instead
of patching import paths.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from bot.core.types import (
    AccessScope,
    Answer,
    Classification,
    Generation,
    GenerationRequest,
    Principal,
    SourceChunk,
)

if TYPE_CHECKING:
    from bot.config import Department

ProgressFn = Callable[[int, int, str], None]
"""Indexing progress: (files done, files total, current file)."""

DeltaFn = Callable[[str], None]
"""Receives text deltas while a generator streams."""


class Directory(Protocol):
    """Identity: e-mail → groups. Adapters resolve platform ids to e-mail first."""

    def principal(self, email: str) -> Principal | None:
        """The person for this e-mail, or None when the address is not valid."""
        ...


class Retriever(Protocol):
    """Access-filtered retrieval over one department's index."""

    def retrieve(self, query: str, scope: AccessScope, *, top_k: int = 8) -> list[SourceChunk]:
        """Chunks visible to ``scope`` only, best first.

        ``SourceChunk.score`` is a calibrated relevance in 0..1 that is comparable across
        queries and departments (the pipeline uses it for confidence and routing).
        Implementations must filter inside the query, not only afterwards.
        """
        ...

    def index_version(self, department: str) -> str | None:
        """Opaque version of the department's current index; None when there is none."""
        ...

    def audience_entries(self, department: str) -> frozenset[str]:
        """Every access entry used by any document audience in the department's index.

        Two people who match the same subset of these entries see exactly the same
        documents, so that subset is a safe access fingerprint for the answer cache.
        """
        ...


class MultiRetriever(Retriever, Protocol):
    """A ``Retriever`` that can search several departments for one question in one call.

    Routing uses it when the retriever has it and loops over ``retrieve`` otherwise, so
    implementing it is optional (``bot.core.routing.retrieve_each``).
    """

    def retrieve_many(
        self, query: str, scopes: Sequence[AccessScope], *, top_k: int = 8
    ) -> list[list[SourceChunk]]:
        """One list per scope, in order, each exactly what ``retrieve`` returns for it alone.

        Scores must stay identical to single-department retrieval (routing compares them
        across departments), with each scope's own access filter inside the query and the
        check after it; sharing the query's tokens and embedding is the point.
        """
        ...


@dataclass(frozen=True)
class FailedFile:
    path: str
    reason: str  # short, human: "not a valid PDF", "empty file", "not UTF-8 text"


@dataclass(frozen=True)
class IndexReport:
    """What one refresh changed; rendered by the CLI, Slack and Teams alike."""

    department: str
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: tuple[FailedFile, ...] = ()
    chunks: int = 0
    seconds: float = 0.0
    version: str = ""
    # Indexed, but an audience names a group missing from groups.yaml, so that entry admits
    # nobody (``bot.knowledge.audiences``); the path carries ":line" when known.
    warnings: tuple[FailedFile, ...] = ()

    @property
    def total_files(self) -> int:
        return self.added + self.changed + self.unchanged + len(self.failed)


@dataclass(frozen=True)
class IndexStatus:
    department: str
    version: str | None
    documents: int = 0
    chunks: int = 0
    built_at: datetime | None = None
    stale: bool = True  # files changed since the last build (or never built)
    failed: tuple[FailedFile, ...] = field(default_factory=tuple)


class Indexer(Protocol):
    """Builds and refreshes department indexes (incremental, crash-safe)."""

    def refresh(self, department: Department, *, progress: ProgressFn | None = None) -> IndexReport: ...

    def status(self, department: Department) -> IndexStatus: ...


@runtime_checkable
class Generator(Protocol):
    """Turns numbered sources into an answer that cites them as [n]."""

    name: str

    def generate(self, request: GenerationRequest, *, on_delta: DeltaFn | None = None) -> Generation:
        """Answer from ``request.sources`` only. Streamers call ``on_delta`` per chunk."""
        ...


@dataclass(frozen=True)
class AuditEntry:
    """One row per request, allowed or denied. Document ids, never document text."""

    request_id: str
    time: datetime
    user: str
    platform: str
    decision: str  # "allowed" | "denied"
    rule: str
    status: str
    department: str | None = None
    template: str | None = None
    question: str = ""  # the asker's own words (erasable; encryptable later)
    doc_ids: Sequence[str] = ()
    generator: str = ""
    model: str = ""
    route: str = ""
    route_reason: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    confidence: float = 0.0
    retrieve_ms: float = 0.0
    generate_ms: float = 0.0
    latency_ms: float = 0.0
    cache_hit: bool = False
    channel: str | None = None
    error: str = ""  # error class name only, never exception text
    pii_detected: str = ""  # JSON counts per detector, e.g. {"email-address":1}; never values


class AuditLog(Protocol):
    def record(self, entry: AuditEntry) -> None: ...

    def record_feedback(self, request_id: str, user: str, value: str, reason: str = "") -> None:
        """Store 👍/👎 ("up"/"down") for an answer, keyed by its request id."""
        ...


class SensitivityClassifier(Protocol):
    """Labels a request's own text (PII, secrets, department keywords).

    The pipeline takes the highest of this, the department's classification and the
    retrieved documents' labels; an exception here counts as RESTRICTED (fail closed).
    """

    def classify(self, text: str, department: Department) -> tuple[Classification, tuple[str, ...]]:
        """(label, reasons) — reasons are detector names like "payment-card", never matched text."""
        ...


class AnswerCache(Protocol):
    """Answers keyed by ``bot.core.cachekey``; implementations own TTL and eviction."""

    def get(self, key: str) -> Answer | None: ...

    def put(self, key: str, answer: Answer) -> None: ...


@dataclass(frozen=True)
class Notice:
    """Something a department's admins must know (a skipped file, a refused reload, ...).

    ``text`` names files, fields and counts, never document text; ``department`` None means
    it concerns every department (groups.yaml, the whole configuration).
    """

    department: str | None
    kind: str  # e.g. "refresh-failed", "files-skipped", "config-invalid", "config-reloaded"
    text: str
    time: datetime


class AdminNotices(Protocol):
    """Where fail-closed decisions are reported so admins hear of them once.

    ``notify`` is idempotent for the same (department, kind, text) within a day, so a
    problem that persists across refreshes is told once, not every tick.
    """

    def notify(self, department: str | None, kind: str, text: str) -> bool:
        """Record a notice; True when it is new (not told in the last day)."""
        ...

    def recent(self, department: str | None = None, *, limit: int = 20) -> list[Notice]:
        """Newest first; with ``department``, its notices plus company-wide ones."""
        ...
