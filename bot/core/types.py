"""The neutral value types that flow through the pipeline.

Every adapter turns a platform event into a ``Message`` and renders an ``Answer``; every
provider speaks in ``SourceChunk``/``Generation``. They are frozen so a step cannot
quietly change what an earlier step decided.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class Classification(enum.IntEnum):
    """Data sensitivity, ordered: a higher value is more sensitive."""

    PUBLIC = 0
    INTERNAL = 1
    CONFIDENTIAL = 2
    RESTRICTED = 3

    @classmethod
    def parse(cls, value: str) -> Classification:
        return cls[value.strip().upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


class Status(enum.StrEnum):
    """What kind of answer this is; adapters render each differently."""

    ANSWERED = "answered"
    DONT_KNOW = "dont_know"
    DENIED = "denied"
    SOURCES_ONLY = "sources_only"  # generation refused or failed; sources still shown
    ERROR = "error"


@dataclass(frozen=True)
class Turn:
    """One earlier exchange in a thread, passed as bounded history.

    ``label`` is the sensitivity an adapter recorded for the turn (an assistant answer's
    ``Answer.classification``): an answer can be confidential because of its documents
    alone, which the text classifier cannot see when the text comes back as history.
    """

    role: str  # "user" | "assistant"
    text: str
    label: Classification | None = None


Signature = tuple[tuple[str, ...], ...]
"""A document's audience levels (``SourceChunk.audiences``): a reader must match every level."""


@dataclass(frozen=True)
class ChannelReaders:
    """Who can read a shared conversation, as the platform reported it — never guessed.

    Adapters fill this from the platform (Slack ``conversations.members``, the Teams
    roster). ``unknown`` is set when the list cannot be trusted, and then no answer is
    posted there: ``"unavailable"`` (API error), ``"external"`` (Slack Connect, another
    tenant, anonymous guests), ``"too-large"`` (more members than the setting allows),
    ``"unresolved"`` (a member without a usable e-mail, e.g. another bot). ``public`` means
    people outside ``emails`` can read it too (a public Slack channel is readable by the
    whole workspace); then only a declared channel ``audience``, or ``stand_in`` (the
    access entries an operator says cover everyone who can browse public channels, setting
    ``access.slack_workspace_audience``), can stand for them.
    """

    emails: frozenset[str] = frozenset()
    unknown: str = ""
    public: bool = False
    stand_in: tuple[str, ...] = ()

    @classmethod
    def unavailable(cls, why: str = "unavailable") -> ChannelReaders:
        return cls(unknown=why)


@dataclass(frozen=True)
class Message:
    """A question from a known person, as every adapter delivers it."""

    user_id: str
    text: str
    platform: str = "cli"  # cli | slack | teams | http
    email: str | None = None  # set when the adapter already knows it
    channel: str | None = None
    thread: str | None = None
    department: str | None = None  # explicit choice (flag, slash command argument)
    template: str | None = None  # run this department template with ``text`` as input
    history: tuple[Turn, ...] = ()
    in_channel: bool = False  # posted where others read it (not a DM): channel-safe rule applies
    # The channel's actual readers; None in a channel means unknown, so nothing is posted there.
    channel_readers: ChannelReaders | None = None


@dataclass(frozen=True)
class Principal:
    """Who is asking: e-mail plus the groups the directory knows for it."""

    email: str
    groups: frozenset[str] = frozenset()

    @property
    def keys(self) -> frozenset[str]:
        """Access-entry strings this person matches ("*", the e-mail, "*@domain", groups).

        Document audiences are stored as the same strings, so visibility is a set
        intersection that a retriever can evaluate inside its query.
        """
        email = self.email.lower()
        keys = {"*", email}
        if "@" in email:
            keys.add("*@" + email.split("@", 1)[1])
        keys.update("group:" + g.lower() for g in self.groups)
        return frozenset(keys)


@dataclass(frozen=True)
class Decision:
    """Outcome of an access check; denials carry what was missing and who can help."""

    allowed: bool
    rule: str  # e.g. "ask:group:finance-team", "no-match", "unknown-user"
    reason: str = ""  # human sentence for denials
    admins: tuple[str, ...] = ()


@dataclass(frozen=True)
class AccessScope:
    """What a principal may see inside one department's knowledge.

    ``keys`` are the principal's access-entry strings. A chunk is visible when every one
    of its audience lists (department ``ask`` is checked earlier; folder ``_access.yaml``
    files and front-matter ``audience`` narrow it) shares at least one entry with ``keys``.
    """

    department: str
    keys: frozenset[str]

    def admits(self, audiences: tuple[tuple[str, ...], ...]) -> bool:
        return all(any(entry in self.keys for entry in audience) for audience in audiences)


@dataclass(frozen=True)
class SourceChunk:
    """One retrieved passage with everything needed to cite it."""

    chunk_id: str
    doc_id: str  # stable id of the document: "<department>/<relative path>"
    department: str
    title: str
    path: str  # path shown to people, e.g. knowledge/hr/time-off.md
    text: str
    score: float  # fused retrieval score, 0..1 (higher is better)
    anchor: str = ""  # heading path ("Time off › Annual vacation") or "page 2"
    modified: datetime | None = None
    classification: Classification = Classification.INTERNAL
    audiences: tuple[tuple[str, ...], ...] = ()
    # What ``modified`` means: "updated" (the document's own date, or its last commit) or
    # "indexed" (first indexed with this content: nothing better was known). Never the mtime.
    date_kind: str = "updated"


@dataclass(frozen=True)
class Citation:
    """A numbered source as shown under an answer."""

    n: int
    title: str
    path: str
    department: str
    score: float
    snippet: str
    anchor: str = ""
    modified: datetime | None = None
    doc_id: str = ""
    chunk_id: str = ""
    url: str = ""  # where people can open the document (department ``docs_url``), if set
    date_kind: str = "updated"  # "updated" or "indexed": the word shown before ``modified``

    @property
    def dated(self) -> str:
        """ "updated 2025-03-01" / "indexed 2026-11-30", or "" without a date."""
        return f"{self.date_kind} {self.modified:%Y-%m-%d}" if self.modified else ""


@dataclass(frozen=True)
class Timings:
    retrieve_ms: float = 0.0
    generate_ms: float = 0.0
    total_ms: float = 0.0


@dataclass(frozen=True)
class Usage:
    """Tokens and cost of one generation (zero for the extractive generator)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0


@dataclass(frozen=True)
class GenerationRequest:
    """Everything a generator may see: already filtered to what the asker may read."""

    question: str
    department: str
    department_title: str
    sources: tuple[SourceChunk, ...]  # numbered [1]..[n] in this order
    history: tuple[Turn, ...] = ()
    task: str = "question"  # "question" | "template:<name>"
    tier: str | None = None  # "small" | "large" | None (router decides)
    classification: Classification = Classification.INTERNAL
    user: str = ""  # asker's e-mail, for budgets and usage rows
    route: str | None = None  # department pin: "auto" | "cloud" | "private"
    label_reasons: tuple[str, ...] = ()  # why the classification is what it is
    request_id: str = ""  # the pipeline's request id, so usage rows join audit rows
    # The department's ``pii`` setting ("route_private" | "redact" | "block") and its own
    # classification: with "redact" the router may send a request that is sensitive only
    # because of personal data to the cloud with placeholders (``bot.sensitivity.redact``).
    pii: str = "route_private"
    department_label: Classification | None = None  # None: unknown, never redacted to cloud
    # A template's skeleton document (``bot.core.templates``): a model fills it from the
    # sources; offline the pipeline fills its fields from ``template_input``.
    skeleton: str = ""
    template_input: str = ""


@dataclass(frozen=True)
class QuotedUnit:
    """One unit an extractive answer quoted, so later steps know what the answer rests on.

    ``source`` is the 1-based number of the source in the request (before citations are
    renumbered); ``kind`` is "paragraph", "list" or "table"; ``coverage`` is the share of
    the question's key-term weight the unit (with its heading) covers, 0..1; ``rows_by``
    says how table rows were chosen ("amount", "terms", "whole", "first"; "" otherwise).
    """

    source: int
    chunk_id: str
    doc_id: str
    anchor: str
    kind: str
    coverage: float
    score: float
    rows_by: str = ""


@dataclass(frozen=True)
class Generation:
    """What a generator returns: text with [n] markers, and what it cost."""

    text: str
    model: str
    generator: str  # "extractive", "anthropic", "openai", "private"
    usage: Usage = Usage()
    route: str = "local"  # local | cloud | private
    route_reason: str = ""
    sources_only: bool = False  # generation was refused/failed; only sources are shown
    notice: str = ""  # one sentence for the person (why sources only, cache, ...)
    pii_detected: str = ""  # JSON counts per detector, never values (audit row)
    quoted: tuple[QuotedUnit, ...] = ()  # extractive only: the units the text quotes, best first


@dataclass(frozen=True)
class Answer:
    """The pipeline's single output, rendered by every adapter."""

    text: str
    request_id: str
    status: Status = Status.ANSWERED
    citations: tuple[Citation, ...] = ()
    confidence: float = 0.0
    department: str | None = None
    department_title: str | None = None
    generator: str = ""
    model: str = ""
    route: str = ""
    route_reason: str = ""
    timings: Timings = Timings()
    usage: Usage = Usage()
    notice: str = ""  # e.g. "Answered from Finance; IT also looked relevant."
    alternative_department: str | None = None
    low_confidence: bool = False
    channel_safe: bool = True  # False: uses sources not everyone in the channel may see
    # Why it is not channel-safe (``bot.core.access.CHANNEL_REASONS`` key), "" when it is.
    private_reason: str = ""
    # Audience signatures of every source the generator saw or the answer names, so a later
    # "share in channel" can be re-checked against the channel's members at click time.
    audiences: tuple[Signature, ...] = ()
    cache_hit: bool = False
    classification: Classification = Classification.INTERNAL
    created: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in (Status.ANSWERED, Status.DONT_KNOW, Status.SOURCES_ONLY)
