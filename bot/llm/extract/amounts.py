"""Numbers as people write them in questions and in policy tables.

A question says "12,000 euros", "€12k" or "a 100,000 euro contract"; a table row says
"up to €5,000", "€5,000.01 – €25,000" or "above €500,000". Sentence matching cannot tell
those rows apart (they share every word), so rows are matched on the number instead: the
row whose range contains the question's amount is the answer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_CURRENCY = r"(?:[€$£¥]|EUR|USD|GBP|CHF)"
_NUMBER = r"\d{1,3}(?:[,\u202f\u00a0 ]\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_SUFFIX = r"(?:\s?(?:k|K|m|M|bn|million|thousand)\b)?"
AMOUNT_RE = re.compile(
    rf"(?<![\w.,])(?:{_CURRENCY}\s?)?(?P<num>{_NUMBER})(?P<suffix>{_SUFFIX})(?:\s?{_CURRENCY})?(?![\w])",
)
_MULTIPLIERS = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "bn": 1e9}

_LOWER_WORDS = r"(?:over|above|more than|greater than|exceeding|from|at least|min(?:imum)?\.?|>=?|≥)"
_UPPER_WORDS = (
    r"(?:up to|upto|under|below|less than|not more than|no more than|at most|max(?:imum)?\.?|<=?|≤)"
)
_DASH = r"\s*(?:–|—|-|to|until)\s*"
_AMOUNT = rf"(?:{_CURRENCY}\s?)?(?:{_NUMBER}){_SUFFIX}(?:\s?{_CURRENCY})?"
BETWEEN_RE = re.compile(rf"(?:between\s+)?(?P<a>{_AMOUNT})(?:{_DASH}|\s+and\s+)(?P<b>{_AMOUNT})", re.I)
UPPER_RE = re.compile(rf"{_UPPER_WORDS}\s*(?P<a>{_AMOUNT})", re.I)
LOWER_RE = re.compile(
    rf"{_LOWER_WORDS}\s*(?P<a>{_AMOUNT})|(?P<b>{_AMOUNT})\s*(?:\+|or more|and above|and over)", re.I
)
_YEAR_RE = re.compile(r"^(?:19|20)\d{2}$")


@dataclass(frozen=True)
class Range:
    """A closed-ish interval; ``low_open`` for "over X" (X itself is not in it)."""

    low: float
    high: float
    low_open: bool = False

    def contains(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high


def parse_amount(text: str) -> float | None:
    """The first amount in ``text`` as a float ("€5,000.01" → 5000.01, "12k" → 12000)."""
    m = AMOUNT_RE.search(text)
    return _value(m.group("num"), m.group("suffix")) if m else None


def _value(num: str, suffix: str) -> float:
    value = float(re.sub(r"[,\u202f\u00a0 ]", "", num))
    return value * _MULTIPLIERS.get(suffix.strip().lower(), 1.0)


def question_amounts(question: str) -> list[float]:
    """Amounts a question asks about; a bare year ("in 2026") is a date, not an amount."""
    found: list[float] = []
    for m in AMOUNT_RE.finditer(question):
        raw = m.group(0).strip()
        if _YEAR_RE.fullmatch(raw):
            continue
        found.append(_value(m.group("num"), m.group("suffix")))
    return found


def ranges(cell: str) -> list[Range]:
    """Every range a table cell states: "X – Y", "up to X", "above X", "X+"; [] for none.

    A lone number is not a range: "3 written quotes" must not match a question about 3.
    """
    found: list[Range] = []
    taken: list[tuple[int, int]] = []

    def free(span: tuple[int, int]) -> bool:
        return all(span[1] <= a or span[0] >= b for a, b in taken)

    for m in BETWEEN_RE.finditer(cell):
        a, b = parse_amount(m.group("a")), parse_amount(m.group("b"))
        if a is not None and b is not None and a <= b:
            found.append(Range(a, b))
            taken.append(m.span())
    for m in UPPER_RE.finditer(cell):
        a = parse_amount(m.group("a"))
        if a is not None and free(m.span()):
            found.append(Range(0.0, a))
            taken.append(m.span())
    for m in LOWER_RE.finditer(cell):
        raw = m.group("a") or m.group("b")
        a = parse_amount(raw)
        if a is None or not free(m.span()):
            continue
        inclusive = bool(m.group("b")) or re.match(r"\s*(?:from|at least|min|>=|≥)", m.group(0), re.I)
        found.append(Range(a, math.inf, low_open=not inclusive))
        taken.append(m.span())
    return found


def row_contains(cells: list[str], amounts: list[float]) -> bool:
    """True when some cell's range contains one of ``amounts``."""
    return any(r.contains(v) for cell in cells for r in ranges(cell) for v in amounts)
