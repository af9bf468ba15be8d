"""The pure half of request classification: detector names, levels, regexes and checksums.

Pure Python so it can live in the core (no third-party import; see
tests/core/test_sensitivity.py). The classifier that implements the
``SensitivityClassifier`` port is ``bot.sensitivity.PatternClassifier``: it adds the
library detectors (detect-secrets, phonenumbers, python-stdnum) and stemmed keywords to
what is here, and ``PatternClassifier(libraries=False)`` is exactly :data:`DETECTORS` plus
:func:`keyword_pattern` — the regex-only baseline that ``bench/sensitivity.py`` compares
against.

Each detector has a name and a level; a result is the highest level found plus the
detector names — never the matched text, so the reasons can go into audit rows and route
explanations. Checks that have a checksum use it (Luhn for payment cards, mod-97 for
IBANs) to keep false positives down.

Default levels: contact details (e-mail, phone), department keywords and built-in
sensitive topics are confidential; identity numbers, payment cards, bank details, keys,
tokens, passwords and other secrets are restricted. Pass ``levels`` to change them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from bot.core.types import Classification

C, R = Classification.CONFIDENTIAL, Classification.RESTRICTED

DEFAULT_LEVELS: Mapping[str, Classification] = {
    "email-address": C,
    "phone-number": C,
    "department-keyword": C,
    "sensitive-topic": C,
    "national-id": R,
    "payment-card": R,
    "iban": R,
    "bank-account": R,
    "api-key": R,
    "private-key": R,
    "jwt": R,
    "password": R,
    "secret": R,
}

EMAIL_RE = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# International (+CC …) or North-American (555) 123-4567 / 555-123-4567 shapes.
PHONE_RE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]?\d{2,4}){2,4}"
    r"|\(\d{3}\)\s?\d{3}[\s.-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w-])"
)
SSN_RE = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
UK_NINO_RE = re.compile(
    r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b"
)
CARD_RE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]){11,30}\b")
API_KEY_RE = re.compile(
    r"(?<![A-Za-z0-9])(?:sk-[A-Za-z0-9_-]{20,}|xox[bpas]-[A-Za-z0-9-]{10,}|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{30,})"
)
PRIVATE_KEY_RE = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----")

Detector = Callable[[str], bool]


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    s = candidate.replace(" ", "").upper()
    if not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    try:
        return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1
    except ValueError:
        return False


def phone(text: str) -> bool:
    for m in PHONE_RE.finditer(text):
        n = sum(ch.isdigit() for ch in m.group())
        if 7 <= n <= 15 and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", m.group()):
            return True
    return False


def card(text: str) -> bool:
    """A 13-19 digit run on a card network's first digit (2-6) that passes Luhn."""
    for m in CARD_RE.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_ok(digits):
            return True
    return False


def iban_candidates(text: str) -> Iterable[str]:
    """Compact IBAN-shaped runs, longest prefix first (trailing words may stick to a run)."""
    for m in IBAN_RE.finditer(text.upper()):
        compact = m.group().replace(" ", "")
        for n in range(min(34, len(compact)), 14, -1):
            yield compact[:n]


def iban(text: str) -> bool:
    """Any IBAN-shaped run whose prefix passes mod-97."""
    return any(iban_ok(c) for c in iban_candidates(text))


DETECTORS: tuple[tuple[str, Detector], ...] = (
    ("private-key", lambda t: PRIVATE_KEY_RE.search(t) is not None),
    ("api-key", lambda t: API_KEY_RE.search(t) is not None),
    ("payment-card", card),
    ("iban", iban),
    ("national-id", lambda t: SSN_RE.search(t) is not None or UK_NINO_RE.search(t) is not None),
    ("email-address", lambda t: EMAIL_RE.search(t) is not None),
    ("phone-number", phone),
)
"""The regex-only detectors (the baseline); ``bot.sensitivity`` reuses some of them."""


def keyword_pattern(words: Sequence[str]) -> re.Pattern[str] | None:
    """Whole-word, case-insensitive, exact-form match of any keyword (the baseline's rule)."""
    alts = [r"\s+".join(map(re.escape, w.split())) for w in words if w.strip()]
    return re.compile(r"\b(?:" + "|".join(alts) + r")\b", re.I) if alts else None


def label_for(found: Iterable[str], levels: Mapping[str, Classification]) -> Classification:
    """The highest level among the detectors that fired (PUBLIC when none did)."""
    return max((levels[name] for name in found), default=Classification.PUBLIC)
