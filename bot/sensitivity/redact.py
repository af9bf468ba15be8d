"""Personal data out of a cloud request, and back into the answer the asker sees.

A department with ``pii: redact`` lets a question that is sensitive *only* because it
contains personal data go to a cloud model with that data replaced by typed, numbered
placeholders (``[EMAIL_1]``, ``[PHONE_1]``, ``[IBAN_1]``, ``[ID_1]``, ``[CARD_1]``,
``[ACCOUNT_1]``), in the question and in every history turn. The model answers with the
placeholders; :class:`Redaction` puts the values back, also while streaming (a placeholder
may arrive split over several deltas, so :class:`StreamRestorer` holds back a trailing
``[EMA…`` until it is complete or clearly not a placeholder).

Why the mapping is an object per request and never stored or logged: it *is* the personal
data. It lives in the router's call frame and is dropped with the request; its ``repr``
shows counts only.

The spans come from the same detectors and rules as :mod:`bot.sensitivity.identifiers`
(which only answers yes/no): the regexes of ``bot.core.sensitivity``, python-stdnum's
checksums and phonenumbers' matcher. There is no ``[PERSON_…]``: no name detector runs
offline without a language-model download (see ``bot.sensitivity``'s docstring), and a
placeholder scheme that misses names must not claim to cover them.

Secrets (detect-secrets and the credential rules) are never redacted-and-sent: they are
reported by :func:`scan` so the router keeps such a request on the private model (or
refuses it), because a credential whose placeholder hides only part of it (a key split
over two lines, a password the prose rule half-matched) would be leaked for good, and a
pasted secret is not something a cloud model needs in order to answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from bot.core.types import Turn
from bot.sensitivity import credentials, identifiers
from bot.sensitivity.identifiers import Span

# Detector name → placeholder type. Order is priority when two detectors claim overlapping
# text (an IBAN's digits also look like a phone number to phonenumbers).
PLACEHOLDER_TYPES: dict[str, str] = {
    "email-address": "EMAIL",
    "iban": "IBAN",
    "payment-card": "CARD",
    "national-id": "ID",
    "bank-account": "ACCOUNT",
    "phone-number": "PHONE",
}
PII_DETECTORS = frozenset(PLACEHOLDER_TYPES)

PLACEHOLDER_RE = re.compile(r"\[([A-Za-z]{2,10})_(\d{1,4})\]")
# A tail that may still become a placeholder once more text arrives: "[", "[EMA", "[EMAIL_1".
_PARTIAL_RE = re.compile(r"\[[A-Za-z]{0,10}(?:_\d{0,4})?\Z")

PROMPT_NOTE = (
    "Personal details in the conversation were replaced by placeholders such as [EMAIL_1] or "
    "[PHONE_1] before it reached you. Where your answer needs such a detail, write its "
    "placeholder exactly as given; never guess the value behind it."
)


def find(text: str, regions: Sequence[str] = identifiers.DEFAULT_PHONE_REGIONS) -> list[Span]:
    """Non-overlapping personal-data spans in ``text``, in text order.

    Same rules as ``identifiers.findings``; when two detectors claim overlapping text, the
    one earlier in :data:`PLACEHOLDER_TYPES` wins (an IBAN is not also a phone number).
    """
    digits = sum(c.isdigit() for c in text)
    found: list[Iterable[Span]] = [identifiers.email_spans(text)]
    if digits >= 6:
        found.append(identifiers.iban_spans(text))
    if digits >= 13:
        found.append(identifiers.card_spans(text))
    if digits >= 6:
        found += [identifiers.national_id_spans(text), identifiers.bank_account_spans(text)]
    if digits >= 7 and regions:
        found.append(identifiers.phone_spans(text, regions))
    kept: list[Span] = []
    for spans in found:  # priority order
        for s in spans:
            if all(s.end <= k.start or s.start >= k.end for k in kept):
                kept.append(s)
    return sorted(kept, key=lambda s: s.start)


def _key(detector: str, value: str) -> str:
    """The same person's e-mail written twice gets one placeholder."""
    if detector == "email-address":
        return value.lower()
    if detector == "phone-number":
        return ("+" if value.lstrip().startswith("+") else "") + "".join(c for c in value if c.isdigit())
    return "".join(c for c in value if c.isalnum()).upper()


class Redaction:
    """One request's placeholders: ``redact`` text going out, ``restore`` text coming back.

    ``reserved`` texts are scanned for placeholder-shaped strings already present (a
    person may type "[EMAIL_1]"), so numbering never collides with them.
    """

    def __init__(
        self, reserved: Iterable[str] = (), *, regions: Sequence[str] = identifiers.DEFAULT_PHONE_REGIONS
    ) -> None:
        self._regions = tuple(regions)
        self._by_key: dict[tuple[str, str], str] = {}
        self._values: dict[str, str] = {}
        self._next: dict[str, int] = {}
        self._taken = {m.group(0).upper() for text in reserved for m in PLACEHOLDER_RE.finditer(text)}

    def __repr__(self) -> str:  # never the values
        return f"Redaction({self.counts()})"

    def _placeholder(self, detector: str, value: str) -> str:
        key = (detector, _key(detector, value))
        if key not in self._by_key:
            kind = PLACEHOLDER_TYPES[detector]
            n = self._next.get(kind, 0)
            while True:
                n += 1
                name = f"[{kind}_{n}]"
                if name not in self._taken:
                    break
            self._next[kind] = n
            self._by_key[key] = name
            self._values[name] = value
        return self._by_key[key]

    def redact(self, text: str) -> str:
        out, last = [], 0
        for span in find(text, self._regions):
            out += [text[last : span.start], self._placeholder(span.detector, text[span.start : span.end])]
            last = span.end
        out.append(text[last:])
        return "".join(out)

    def redact_turns(self, turns: Iterable[Turn]) -> tuple[Turn, ...]:
        return tuple(Turn(t.role, self.redact(t.text), t.label) for t in turns)

    def restore(self, text: str) -> str:
        """Known placeholders back to their values ("[email_1]" too); unknown ones stay."""
        if not self._values or "[" not in text:
            return text
        return PLACEHOLDER_RE.sub(lambda m: self._values.get(m.group(0).upper(), m.group(0)), text)

    def counts(self) -> dict[str, int]:
        """Distinct values replaced, per detector name (what the audit row may hold)."""
        out: dict[str, int] = {}
        for detector, _ in self._by_key:
            out[detector] = out.get(detector, 0) + 1
        return out

    def __bool__(self) -> bool:
        return bool(self._values)

    def stream(self, sink: Callable[[str], None]) -> StreamRestorer:
        return StreamRestorer(self, sink)


class StreamRestorer:
    """Restores placeholders in streamed deltas before they reach ``sink``.

    A delta ending in something that could still become a placeholder ("… at [EMA") is
    held back until the next delta completes it (or shows it is not one); ``flush`` sends
    what is left when the stream ends. A hold never exceeds 16 characters.
    """

    def __init__(self, redaction: Redaction, sink: Callable[[str], None]) -> None:
        self._redaction = redaction
        self._sink = sink
        self._held = ""

    def __call__(self, delta: str) -> None:
        text = self._held + delta
        partial = _PARTIAL_RE.search(text, max(0, len(text) - 16))
        cut = partial.start() if partial else len(text)
        self._held = text[cut:]
        if cut:
            self._sink(self._redaction.restore(text[:cut]))

    def flush(self) -> None:
        if self._held:
            held, self._held = self._held, ""
            self._sink(self._redaction.restore(held))


@dataclass(frozen=True)
class Scan:
    """What was detected in a request's question and history: names and counts only."""

    pii: dict[str, int]  # detector name → distinct values
    secrets: tuple[str, ...]  # secret detector names found

    @property
    def found(self) -> bool:
        return bool(self.pii or self.secrets)

    def to_json(self) -> str:
        """``{"email-address": 1, "api-key": 1}`` for the audit row; "" when nothing."""
        counts = {**self.pii, **dict.fromkeys(self.secrets, 1)}
        return json.dumps(dict(sorted(counts.items())), separators=(",", ":")) if counts else ""


def scan(
    question: str, history: Iterable[Turn] = (), *, regions: Sequence[str] = identifiers.DEFAULT_PHONE_REGIONS
) -> Scan:
    """Detect (never keep) personal data and secrets in the question and history."""
    texts = [question, *(t.text for t in history)]
    probe = Redaction(regions=regions)
    for text in texts:
        probe.redact(text)
    secrets = tuple(dict.fromkeys(name for text in texts for name in credentials.findings(text)))
    return Scan(probe.counts(), secrets)


def leftover(
    texts: Iterable[str], regions: Sequence[str] = identifiers.DEFAULT_PHONE_REGIONS
) -> tuple[str, ...]:
    """Detector names that still fire on redacted text (should be none: the router's
    fail-closed check before anything goes out)."""
    found: list[str] = []
    for text in texts:
        found += identifiers.findings(text, regions)
        found += credentials.findings(text)
    return tuple(dict.fromkeys(found))
