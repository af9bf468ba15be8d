"""Which units answer the question, and which rows of a table.

A unit's score is the share of the question's key terms it covers, each term weighted by
how rare it is among the retrieved units (an IDF over this answer's own candidates, so a
word every passage shares decides nothing), with the document title and section heading
counting half: "How often to change it" is context for the list under it. A question's
amount ("12,000 euros") is matched against the ranges in table rows rather than as a word.

Two signals of the answer itself, not of the topic, are added after the retrieval-rank
discount, so they reach every retrieved source: when the question asks for a kind of value
(``bot.core.confidence.answer_type``: a duration for "how long", money, a date …), a unit
with a sentence, item or row holding such a value next to the question's key terms scores
higher ("stored … for 10 years" over "captured within 1 working day"); and a table whose
labels (section heading, header, first column) name the question's qualifier, a key term
the document title lacks ("engineers" in "salary bands for engineers" of "Salary bands"),
beats prose that mentions it in passing. A permission question ("Can I expense …?") is
answered by a ruling: a sentence or item that names its key terms and says allowed, not
reimbursed, must, only … (or sits under a heading that does) is raised like a value, and a
unit that rules on none of them is lowered: the how-to-claim steps mention a dinner in an
example, the "What is not reimbursable" list rules on alcohol.

Rows: the rows whose range contains the question's amount; else the rows whose first cell
(what the row is about) best covers the question's distinguishing terms; else, when the
question does not single rows out, the whole table when it is small.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.core.confidence import TYPE_PATTERNS, answer_type, question_part
from bot.core.types import SourceChunk
from bot.llm.extract.amounts import question_amounts, ranges, row_contains
from bot.llm.extract.text import question_words, related, terms
from bot.llm.extract.units import LIST, TABLE, Unit, split_units

SYNONYM_WEIGHT = 0.6  # a unit that has only the synonym ("parent" for "fathers") covers less
WHOLE_TABLE_ROWS = 8  # a table this small is quoted whole when no row is singled out
MAX_ROWS = 8  # never more rows than this from a bigger table
MAX_ITEMS = 10  # a longer list is quoted with its intro and the items that match, in order
VALUE_WEIGHT = 0.6  # a sentence/row holding the asked-for kind of value, times its term share
QUALIFIER_WEIGHT = 0.35  # a table whose labels name the question's qualifier ("engineers")
PIECE_RE = re.compile(r"(?<=[.!?;])\s+(?=[A-Z(])")
# A quantity a "how many/much/long" question wants: a number with a unit, not a year.
MEASURE_RE = re.compile(
    r"\d+(?:[.,]\d+)?\s*(?:%|percent|days?|weeks?|months?|years?|hours?|minutes?|h\b|times|"
    r"characters|digits|quotes?|working|business|calendar)|[€$£]\s?\d|\b\d{1,2}:\d{2}\b|"
    r"\b(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day\b|\b(?:January|February|March|April|May|June|July|"
    r"August|September|October|November|December) \d{1,2}\b",
    re.I,
)
OVERVIEW_RE = re.compile(
    r"^(?:This|The) (?:policy|procedure|document|page|guide|handbook|standard|process)\b[^.]{0,40}?"
    r"\b(?:explains|describes|defines|sets out|sets|covers|outlines)\b",
    re.I,
)
DEFINE_Q_RE = re.compile(r"^\s*what(?:'s| is| are| does)\b|\bmean(?:s|ing)?\b|\bdefin", re.I)
DEFINITION_RE = re.compile(r"\bdefin|\bglossary\b|\bterms\b", re.I)
# "Can I / may we / am I allowed to …" asks whether something is permitted: the answer is a
# ruling about it (allowed, not reimbursed, needs approval), not any passage that names it.
PERMISSION_Q_RE = re.compile(
    r"^\s*(?:can|may|could) (?:i|we|employees|staff|contractors)\b|"
    r"\b(?:am i|are we|is it|are employees) (?:allowed|permitted|ok|okay)\b",
    re.I,
)
RULING_RE = re.compile(
    r"\b(?:allowed|permitted|prohibited|forbidden|reimburs(?:ed|able)|eligible|not accepted|"
    r"may|must|cannot|can't|never|only|requires?|required|needs? (?:prior |written )?approval|"
    r"approved? (?:by|in advance))\b",
    re.I,
)
RULING_WEIGHT = 0.6  # a piece ruling on the question's key terms, times their share
NO_RULING = 0.7  # a permission question's unit that rules on none of its key terms
QUANTITY_RE = re.compile(
    r"\b(how (many|much|long|often|far|soon)|when|what (date|time|day)|deadline)\b", re.I
)


@dataclass(frozen=True)
class Scored:
    """A candidate unit: ``source`` is its 1-based source number."""

    source: int
    unit: Unit
    score: float
    coverage: float  # share of the question's key-term weight the unit (or its heading) has
    rows: tuple[int, ...] = ()  # table rows to quote (indices into ``unit.rows``)
    rows_by: str = ""  # "amount" | "terms" | "whole" | "first" (list items: "terms" | "first")
    groups: frozenset[int] = frozenset()  # which of the question's key terms it covers


@dataclass(frozen=True)
class _Question:
    groups: list[frozenset[str]]
    word: dict[frozenset[str], str]  # the stem of the word the question used, per group
    idf: dict[frozenset[str], float]
    amounts: list[float]
    quantity: bool
    definition: bool
    value: re.Pattern[str] | None = None  # the kind of value the question asks for, if any
    permission: bool = False  # "can I …": a ruling on the key terms answers it

    @property
    def total(self) -> float:
        return sum(self.idf.values()) or 1.0

    def covered(self, stems: set[str]) -> float:
        """Weight of the groups ``stems`` covers; by a synonym only, a group counts 0.6."""
        return sum(
            self.idf[g] * (1.0 if self.word[g] in stems else SYNONYM_WEIGHT) for g in self.groups if g & stems
        )

    def stems(self, text: str) -> set[str]:
        """``text``'s stems, plus each question stem of the same word family ("respons" in
        the text stands for the question's "respond")."""
        own = set(terms(text))
        wanted = {x for g in self.groups for x in g} - own
        return own | {x for x in wanted if any(related(x, s) for s in own)}

    def literal(self, stems: set[str]) -> frozenset[int]:
        """The groups ``stems`` has the question's own word for."""
        return frozenset(n for n, g in enumerate(self.groups) if self.word[g] in stems)


def candidates(question: str, sources: Sequence[SourceChunk]) -> list[Scored]:
    """Every unit of every source that says something about the question, best first."""
    words = question_words(question)
    groups = list(words)
    amounts = question_amounts(question)
    if not groups and not amounts:
        return []
    per_source = [split_units(s.text) for s in sources]
    kind = answer_type(question_part(question))
    q = _Question(
        groups,
        words,
        {},
        amounts,
        bool(QUANTITY_RE.search(question)),
        bool(DEFINE_Q_RE.search(question)),
        TYPE_PATTERNS.get(kind),
        bool(PERMISSION_Q_RE.search(question)),
    )
    stems = {
        (i, k): q.stems(u.plain() + " " + u.heading)
        for i, us in enumerate(per_source)
        for k, u in enumerate(us)
    }
    n = max(1, len(stems))
    q.idf.update({g: math.log(1 + n / (1 + sum(1 for s in stems.values() if g & s))) + 0.5 for g in groups})
    seen: set[str] = set()
    out: list[Scored] = []
    for i, (source, units) in enumerate(zip(sources, per_source, strict=True), start=1):
        title = q.stems(source.title)
        anchor = q.stems(source.anchor)
        rank_weight = 1.0 / (1 + 0.06 * (i - 1))  # retrieval order: earlier is more relevant
        for k, unit in enumerate(units):
            key = " ".join(unit.plain().lower().split())
            if key in seen:
                continue  # the same words from an overlapping chunk
            seen.add(key)
            # The section heading is part of what a unit says ("SEV1 — Critical" over its
            # definition); the document title is context, so it counts half.
            own = stems[(i - 1, k)] | anchor
            covered = q.covered(own) + 0.5 * sum(q.idf[g] for g in q.groups if g & title and not g & own)
            coverage = covered / q.total if q.groups else 0.0
            amount_hit = bool(amounts) and _amount_hit(unit, amounts)
            if coverage <= 0 and not amount_hit:
                continue
            # A section whose own heading names what is asked is about it, not a mention.
            last = q.stems(unit.heading or source.anchor.split("›")[-1])
            score = coverage + 0.3 * q.covered(last) / q.total + 0.15 * q.covered(title | anchor) / q.total
            if q.definition and DEFINITION_RE.search(source.anchor + " " + unit.heading):
                score += 0.25  # "What is a SEV1?" is answered by the definitions section
            if amount_hit:
                score += 0.35 if unit.kind == TABLE else 0.1
            if q.quantity and MEASURE_RE.search(unit.plain()):
                score *= 1.15
            if not source.anchor and OVERVIEW_RE.match(unit.text):
                score *= 0.8  # "This policy explains …": says what the document covers, not the answer
            if unit.words() > 150 and unit.kind != TABLE:
                score *= 0.85  # a wall of text answers less directly
            score *= rank_weight
            # Evidence of the answer itself, not of the topic, so it is not discounted by
            # retrieval rank: a lower-ranked passage that holds the value wins.
            score += VALUE_WEIGHT * _value_share(unit, q, last | title)
            if q.permission:
                ruling = _ruling_share(unit, q, unit.heading or source.anchor.split("›")[-1])
                score = score * NO_RULING if ruling == 0 else score + RULING_WEIGHT * ruling
            if unit.kind == TABLE:
                score += QUALIFIER_WEIGHT * _qualifier_share(unit, q, title, last)
            rows, rows_by = _rows(unit, q) if unit.kind == TABLE else ((), "")
            if unit.kind == LIST and len(unit.items) > MAX_ITEMS:
                rows, rows_by = _items(unit, q)
            has = q.literal(own)
            out.append(Scored(i, unit, round(score, 6), round(min(1.0, coverage), 4), rows, rows_by, has))
    out.sort(key=lambda c: (-c.score, c.source, c.unit.position))
    return out


def _pieces(unit: Unit) -> list[str]:
    """Sentences, list items and table rows (each with its header): where a value and
    what it is about sit together."""
    if unit.kind == TABLE:
        return [" ".join(unit.header) + " " + " ".join(r) for r in unit.rows]
    texts = [unit.intro, unit.text, *unit.items]
    return [p for t in texts if t for p in PIECE_RE.split(t)]


def _value_share(unit: Unit, q: _Question, context: set[str]) -> float:
    """The largest share of the question's key-term weight in one piece of ``unit`` that
    holds a value of the kind asked for ("10 years" for "how long"), with what the piece
    is about (``context``: its section heading and document title). A synonym counts in
    full here ("stored" for "keep" is how policies say it), and a value without a digit
    ("every", "never") half: those words are as often not an answer.
    0 when the question asks for no typed value."""
    if q.value is None or not q.groups:
        return 0.0
    best = 0.0
    for piece in _pieces(unit):
        found = [m.group(0) for m in q.value.finditer(piece)]
        if not found:
            continue
        stems = q.stems(piece) | context
        share = sum(q.idf[g] for g in q.groups if g & stems) / q.total
        best = max(best, share * (1.0 if any(c.isdigit() for v in found for c in v) else 0.5))
    return best


def _ruling_share(unit: Unit, q: _Question, heading: str) -> float:
    """The largest share of the question's key-term weight in one piece of ``unit`` that
    rules on them: the piece names the terms itself (not through its document title, which
    every piece of "Expense policy" shares) and it, or the unit's section ``heading`` ("What is
    not reimbursable" over a list of items), says allowed, not reimbursed, must, only …
    A "Can I expense X with Y?" question is answered by the sentence that rules on Y, not
    by the how-to-claim steps whose example mentions X."""
    heading_rules = bool(RULING_RE.search(heading))
    best = 0.0
    for piece in _pieces(unit):
        if not (heading_rules or RULING_RE.search(piece)):
            continue
        stems = q.stems(piece)
        best = max(best, sum(q.idf[g] for g in q.groups if g & stems) / q.total)
    return best


def _qualifier_share(unit: Unit, q: _Question, title: set[str], heading: set[str]) -> float:
    """Share of the question's qualifiers (key terms its document title lacks: "engineers"
    in "salary bands for engineers" of "Salary bands 2026") that the table's labels name:
    its section heading, header or first column. Such a table is the one about them;
    prose that mentions them in passing is not."""
    qualifiers = [g for g in q.groups if not g & title]
    if not title or len(qualifiers) == len(q.groups) or not qualifiers:
        return 0.0  # no topic/qualifier split to go by
    labels = heading | q.stems(" ".join(unit.header) + " " + " ".join(r[0] for r in unit.rows if r))
    weight = sum(q.idf[g] for g in qualifiers)
    return sum(q.idf[g] for g in qualifiers if g & labels) / weight


def _amount_hit(unit: Unit, amounts: list[float]) -> bool:
    if unit.kind == TABLE:
        return any(row_contains(list(r), amounts) for r in unit.rows)
    return any(r.contains(v) for r in ranges(unit.plain()) for v in amounts)


def _rows(unit: Unit, q: _Question) -> tuple[tuple[int, ...], str]:
    rows = unit.rows
    everything = tuple(range(len(rows)))
    if q.amounts:
        hits = tuple(k for k, r in enumerate(rows) if row_contains(list(r), q.amounts))
        if hits:
            return hits[:MAX_ROWS], "amount"
    header = q.stems(" ".join(unit.header))
    row_stems = [(q.stems(r[0]), q.stems(" ".join(r[1:]))) for r in rows]
    # Terms that are in the header or in every row single nothing out.
    common = [g for g in q.groups if g & header or all(g & (a | b) for a, b in row_stems)]
    useful = [g for g in q.groups if g not in common]
    scores = [
        sum(q.idf[g] for g in useful if g & label)
        + 0.5 * sum(q.idf[g] for g in useful if g & rest and not g & label)
        for label, rest in row_stems
    ]
    best = max(scores, default=0.0)
    if best > 0:
        top = tuple(k for k, s in enumerate(scores) if s >= best * 0.999)
        if len(top) <= max(1, len(rows) // 2) or len(rows) > WHOLE_TABLE_ROWS:
            return top[:MAX_ROWS], "terms"
    if len(rows) <= WHOLE_TABLE_ROWS:
        return everything, "whole"
    if best > 0:
        ranked = sorted(everything, key=lambda k: -scores[k])[:MAX_ROWS]
        return tuple(sorted(ranked)), "terms"
    return everything[:MAX_ROWS], "first"


def _items(unit: Unit, q: _Question) -> tuple[tuple[int, ...], str]:
    """A long list's items that cover the most question terms (up to ``MAX_ROWS``), in order."""
    stems = [q.stems(item) for item in unit.items]
    # Terms every item has ("rule" in a list of rules) single nothing out.
    useful = [g for g in q.groups if not all(g & st for st in stems)]
    scores = [sum(q.idf[g] for g in useful if g & st) for st in stems]
    if max(scores, default=0.0) <= 0:
        return tuple(range(MAX_ROWS)), "first"
    ranked = sorted(range(len(scores)), key=lambda k: (-scores[k], k))
    return tuple(sorted(k for k in ranked[:MAX_ROWS] if scores[k] > 0)), "terms"
