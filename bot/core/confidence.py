"""Does the retrieved text *answer* the question, or only share its topic?

The retriever's calibrated score (``SourceChunk.score``: cosine ramp + idf-weighted term
coverage) says how close the best passage is to the question. That is the right signal for
"is this about the same thing" but a poor one for "is the answer here": a page that says
*where* the cafeteria is scores well for "what is on the cafeteria menu", and "who is my
finance business partner" matches a sentence that only names the role. This module looks at
the question and the passages themselves and turns the retrieval score into an answer-level
confidence with three checks that hold for any document collection (no word lists about one
company):

* **Answer type.** "How much / how many / how long / how often / when / which day / what
  time / phone number / e-mail address" ask for a typed value (an amount, a duration, a
  date, a contact). The value must appear in a unit of text (a line, sentence or table
  row) that also mentions the question's key terms. Found: the score is raised towards 1
  (the answer is there); not found anywhere in the top passages: it is lowered.
* **Named entities.** Years, numbers and proper names in the question ("2028", "Kafka",
  "Meridian") are what the asker is specifically after; a passage that lacks them answers a
  neighbouring question. Each missing one lowers the score.
* **What a "which X" question asks for.** "Which bike shop …" asks for one particular X,
  a name: found when a table has a column named X ("Which category …" → the ``category``
  column) or a unit naming X next to the key terms carries a proper name the question does
  not ("the GlobalProtect VPN client"); not found, it is treated like a missing typed
  value. A "what is the X" question whose X names a table column is answered by that row.
* **An entry for what the question names.** A table row or section labelled with the
  question's proper name ("Grammarly" in the software list), in the only retrieved document
  that mentions it, is evidence of the answer as strong as a clear routing margin — and
  it holds when the asker named the department, where there is no margin.
* **Where the value sits.** A unit is read with its section heading ("Expense policy ›
  How to claim" makes "submit within 30 days of the expense" about claims), a year the
  question names must sit next to the value, and a value counts only where the top
  passages cover half the question's key terms ("when does the parking garage car wash
  open?" is not answered by the garage's hours).
* **Live or personal state.** "the status of my order", "this week", "today", "who is my
  buddy", "how many days do I have left": documents hold policies, not live or per-person
  data (that is in the HR system or the directory), so the score is lowered.

**Margin over the next department** (auto routing only) says "the topic is here and not
elsewhere". That is evidence of the answer only when no particular value is asked for
("how do I undo a release?", "can I work from home?"), so it raises the score of those
questions only; for typed questions an on-topic page without the value is exactly the
false answer this module exists to stop (bench.calibration shows margin separating topics,
not answers, when applied to every question).

Everything here is pure text processing on what the asker may already see (the passages
were retrieved within their scope), so it cannot leak anything across access boundaries,
and it costs well under a millisecond per question.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from bot.core.types import SourceChunk

# How far each check moves the retrieval score (see bench.calibration for the effect on
# four question sets: two natural sets for the sample company, their unanswerable
# counterparts, and a public handbook).
FOUND_BOOST = 0.35  # answer type found next to the key terms: s + (1 - s) * FOUND_BOOST
MISSING_TYPE = 0.4  # typed question, no value of that type next to its key terms
MISSING_ENTITY = 0.5  # per missing year/number/proper name of the question (at most two)
LIVE_STATE = 0.35  # the question asks for live or personal state
BOOST_MIN_COVERAGE = 0.5  # ...and only when one passage covers half the key terms
LOW_COVERAGE = 0.7  # no top passage covers half the question's key terms
MARGIN_BOOST = 0.3  # untyped question, one department clearly ahead of the next...
MARGIN_SPAN = 0.3  # ...by this much (route score) or more: the full boost
TOP_PASSAGES = 3  # passages inspected (the generator quotes from the first few)

_WORD = re.compile(r"[^\W\d_][^\W\d_'’]*(?:['’][a-z]+)?|\d[\d.,:/%]*")
# fmt: off
_STOP = frozenset({
    "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are",
    "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but",
    "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for",
    "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "him",
    "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me", "more",
    "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or",
    "other", "our", "ours", "out", "over", "own", "same", "she", "should", "so", "some", "such",
    "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those",
    "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when",
    "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your",
    "yours", "yourself", "i'm", "i've", "it's", "what's", "who's", "there's", "don't", "get",
    "got", "need", "needs", "want", "allowed", "allow", "may", "must", "much", "many", "long",
    "often", "soon", "quickly", "fast", "way", "ways", "kind", "sort", "thing", "things",
    "anything", "something", "someone", "people", "person", "company", "tell", "know", "please",
    "also", "still", "really", "actually", "ever", "per", "new"
})
# fmt: on
# fmt: off
_PREPOSITIONS = frozenset({
    "on", "in", "at", "for", "of", "to", "from", "with", "by", "per", "via", "about", "across",
    "after", "before", "during", "within"
})
# fmt: on
_HEAD_BREAK = _PREPOSITIONS | {"today", "tomorrow", "tonight", "yesterday", "now", "currently"}
# Heads that name the answer's type ("the phone number"): the answer-type check covers them.
_TYPE_HEADS = frozenset(["number", "amount", "date", "time", "day", "days", "price", "cost", "address"])
_NUMBER_WORDS = (
    "zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|"
    "forty|fifty|sixty|hundred|thousand|million|half|double|twice|once"
)
_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekday|weekend"

_NUMBER = re.compile(rf"\d|\b(?:{_NUMBER_WORDS})\b", re.I)
_AMOUNT = re.compile(
    rf"\d|\b(?:{_NUMBER_WORDS}|free|no cost|nothing|unlimited|full pay|paid in full)\b", re.I
)
_UNIT = (
    r"(?:minutes?|mins?|hours?|hrs?|days?|nights?|weeks?|months?|years?|quarters?|characters?|"
    r"pages?|sessions?|times?|km|kilometres?|kilometers?|miles?)"
)
_DURATION = re.compile(
    rf"(?:(?<![\d/])\d[\d.,]*|\b(?:{_NUMBER_WORDS}|a|an|one|few|several))[\s-]+(?:\w+[\s-]+)?{_UNIT}\b|"
    r"\b(?:immediately|same day|next day|never|daily|weekly|fortnightly|monthly|quarterly|"
    r"yearly|annually|hourly|every|per (?:day|week|month|year)|do not expire|no limit|"
    r"indefinitely|permanently)\b",
    re.I,
)
_MONEY = re.compile(
    r"[€$£]\s?\d|\d[\d.,]*\s?(?:%|€|eur\b|euros?\b|usd\b|dollars?\b|gbp\b|pounds?\b|k\b)|"
    r"\b(?:free|free of charge|no cost|at no cost|nothing|paid in full|full pay|fully paid|"
    r"actual cost|reasonable)\b",
    re.I,
)
_DATE = re.compile(
    rf"\d|\b(?:{_MONTHS}|{_DAYS}|today|tomorrow|tonight|daily|weekly|monthly|yearly|annually|"
    r"working days?|business days?|(?:end|start|beginning|middle) of (?:the |each |every )?"
    r"(?:day|week|month|quarter|year))\b",
    re.I,
)
_PHONE = re.compile(r"(?:\+?\d[\d ()-]{5,}\d)|\bextension \d+|\bext\.? ?\d+", re.I)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_URL = re.compile(r"https?://\S+|\b[\w-]+\.(?:com|org|net|io)\b", re.I)

# (expected answer type, pattern of the question that asks for it), first match wins.
_QUESTION_TYPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("phone", re.compile(r"\b(?:phone|telephone)\s+number\b|\bwhat number\b|\bhotline\b", re.I)),
    ("email", re.compile(r"\be-?mail address\b", re.I)),
    ("url", re.compile(r"\b(?:website|web address|url|link)\b(?! to)", re.I)),
    ("duration", re.compile(r"\bhow (?:long|often|soon|quickly|fast|frequently)\b", re.I)),
    (
        "money",
        re.compile(
            r"\bhow much (?:does|do|did|will|would|is|are|was)\b.*\b(?:cost|costs|price|pay|paid|charge|fee|"
            r"worth|allowance|salary|budget|reimburs\w*)\b|\bhow much (?:money|budget)\b|"
            r"\bwhat (?:is|are|'s) the (?:\w+ ){0,3}(?:price|cost|fee|salary|allowance|budget)\b|"
            r"\bin (?:euros?|dollars?|pounds?)\b",
            re.I,
        ),
    ),
    (
        "amount",
        re.compile(
            r"\bhow (?:much|many|big|large|high|low|small)\b|\bwhat (?:is|are|'s) the "
            r"(?:\w+ ){0,3}(?:limit|rate|price|cost|amount|maximum|minimum|percentage|"
            r"allowance|budget|fee|deductible|number of)\b|\bhow much does\b",
            re.I,
        ),
    ),
    (
        "date",
        re.compile(
            r"^\s*when\b|\bby when\b|\bwhat (?:date|day|time|hours?|month|year)\b|"
            r"\bwhat (?:is|are|'s) the (?:\w+ ){0,3}(?:date|dates|deadline|due date)\b|"
            r"\b(?:which|what) days?\b|\bdeadline\b|\bat what time",
            re.I,
        ),
    ),
)
TYPE_PATTERNS: dict[str, re.Pattern[str]] = {
    "phone": _PHONE,
    "email": _EMAIL,
    "url": _URL,
    "money": _MONEY,
    "duration": _DURATION,
    "amount": _AMOUNT,
    "date": _DATE,
}
# Live or personal state no policy document holds ("status of my order", "this week").
_LIVE = re.compile(
    r"\b(?:status of my|my (?:current )?(?:order|ticket|request|balance|claim)'?s? status|"
    r"right now|currently|at the moment|this week|last week|next week|today|tonight|"
    r"yesterday|tomorrow|last night|so far this|^\s*who(?:'s| is| are) my|"
    r"(?:do|does|have|has) (?:i|we|you|my \w+) (?:have |got )?left)\b",
    re.I,
)
_MARKERS = re.compile(r"\[\d{1,3}(?:\s*,\s*\d{1,3})*\]")
_ANSWER_BLOCK = re.compile(r"\n(?=From .+:\s*$)", re.M)
_YEAR = re.compile(r"\b(?:19|20)\d\d\b")
# Units of meaning: paragraphs, list items, table rows and cells, sentences, CSV fields.
# A single line break inside a paragraph (wrapped text) does not end a unit.
_SPLIT_UNITS = re.compile(r"\n\s*\n|\n(?=\s*(?:[-*•|]|\d+[.)]\s|\[ \]))|(?<=[.!?])\s+")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}")


def _units(text: str) -> list[str]:
    """Paragraphs, list items and sentences; a table row carries its header row with it
    ("| City | Limit per night |" + "| London … | €260 |"), so a row is judged with the
    words that say what its cells are."""
    lines = text.split("\n")
    header = ""
    rows: list[str] = []
    for i, line in enumerate(lines):
        if line.lstrip().startswith("|") and i + 1 < len(lines) and _TABLE_RULE.match(lines[i + 1]):
            header = line
        elif _TABLE_RULE.match(line):
            continue
        elif header and line.lstrip().startswith("|"):
            rows.append(f"{header} {line}")
            continue
        else:
            header = ""
        rows.append(line)
    return [u for u in _SPLIT_UNITS.split("\n".join(rows)) if u.strip()]


def _labels(chunk: SourceChunk) -> list[str]:
    """What a passage's units are named by: its section (the anchor's last part) and the
    first cell of each table row."""
    out = [chunk.anchor.split("›")[-1].strip()]
    lines = chunk.text.split("\n")
    for i, line in enumerate(lines):
        if not line.lstrip().startswith("|") or _TABLE_RULE.match(line):
            continue
        if i + 1 < len(lines) and _TABLE_RULE.match(lines[i + 1]):
            continue  # the header row names columns, not a subject
        out.append(line.strip().strip("|").split("|")[0].strip())
    return [x for x in out if x]


def entry_for(names: Sequence[str], chunks: Sequence[SourceChunk]) -> bool:
    """Does the knowledge have an entry *for* the thing the question names?

    True when a top passage has a table row or a section labelled with every name of the
    question ("Grammarly" as a row of the software list), and only one document among the
    retrieved ones mentions the names at all. A name that several documents mention in
    passing ("Lisbon Street" in the printer list and the backup scope) is context, not the
    subject of an entry.
    """
    if not names:
        return False
    lowered = [n.lower() for n in names]
    mentioning = {c.doc_id for c in chunks if all(n in f"{c.anchor} {c.text}".lower() for n in lowered)}
    if len(mentioning) != 1:
        return False
    top = sorted(chunks, key=lambda c: c.score, reverse=True)[:TOP_PASSAGES]
    return any(
        label.lower().startswith(lowered[0]) and all(n in label.lower() for n in lowered)
        for c in top
        if c.doc_id in mentioning
        for label in _labels(c)
    )


def section_for(terms: Sequence[str], top: Sequence[SourceChunk]) -> bool:
    """Is a top passage's section (or table row) labelled with every key term of the
    question ("What should I do in my first week?" → "Onboarding › First week")?

    A section named for exactly what is asked is an entry for it, as a row named after a
    product is (``entry_for``); it takes two terms at least, so one shared word ("Travel")
    is not mistaken for an entry.
    """
    if len(terms) < 2:
        return False
    return any(_matches(terms, _words(label)) == len(terms) for c in top for label in _labels(c))


@dataclass(frozen=True)
class Assessment:
    """The answer-level confidence and the evidence behind it (for logs and benches)."""

    score: float  # 0..1, compared with the department's ``dont_know_below``
    retrieval: float  # the retriever's calibrated top score
    answer_type: str  # "" when the question does not ask for a typed value
    type_found: bool  # a value of that type next to the question's key terms
    key_coverage: float  # largest share of the question's key terms in one top passage
    missing_entities: tuple[str, ...]  # years, numbers, names of the question not found
    live: bool  # asks for live or personal state
    margin: float | None = None  # over the next department (auto routing), if known


_VOWEL = re.compile(r"[aeiouy]")


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    """A light stemmer that removes inflection only ("quotes" and "quote", "buying" and
    "buys", "paged" and "page" meet) and keeps derivations apart ("allowance" is not
    "allowed", which the index's Snowball stemmer conflates): a question's word must meet
    the same word in the answer, not a relative.

    "-es" goes only after s, x, z, ch, sh ("taxes", "matches"); elsewhere it is a plural
    "-s" ("quotes", "changes"). "-ing" goes when at least three letters with a vowel stay
    ("buying", "paying"; not "string", "doing"). Then a doubled final consonant and a
    final silent "e" go, on every word alike. The result is a matching key, not a word.
    """
    w = _strip_inflection(word.lower().strip("'’-.,:/%"))
    # "travelling"/"travel", "installing"/"install": one letter of a final double
    # consonant goes, on every word alike
    if len(w) >= 5 and w[-1] == w[-2] and w[-1] not in "aeiouy":
        w = w[:-1]
    # and a final silent "e", so "page" meets "paged" and "pages"
    if len(w) >= 4 and w.endswith("e") and not w.endswith("ee"):
        w = w[:-1]
    return w


def _strip_inflection(w: str) -> str:
    for suffix in ("'s", "’s"):
        w = w.removesuffix(suffix)
    if len(w) > 6 and w.endswith("ies"):
        return w[:-3] + "y"
    if w.endswith("ing") and len(w) >= 6 and _VOWEL.search(w[:-3]):
        return w[:-3]
    if len(w) > 4 and w.endswith("ed") and not w.endswith("eed"):
        return w[:-2]
    if len(w) > 4 and w.endswith("es") and w[:-2].endswith(("s", "x", "z", "ch", "sh")):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    if len(w) > 5 and w.endswith("ly"):
        return w[:-2]
    return w


_TYPE_STEMS = frozenset(_stem(w) for w in _TYPE_HEADS)


def key_terms(question: str) -> list[str]:
    """The question's content words, stemmed (stop words and question words removed).

    Numbers are not among them: a year is checked as an entity (``entities``), an amount
    is answered by a row holding its range without repeating it ("12,000 euros" →
    "€5,000.01 – €25,000"), and digits pasted as context (a card number) say nothing
    about where the answer is.
    """
    out: list[str] = []
    for m in _WORD.finditer(question):
        word = m.group(0)
        if word.lower() in _STOP or len(word) < 2 or word[0].isdigit():
            continue
        stem = _stem(word)
        if stem and stem not in out:
            out.append(stem)
    return out


def entities(question: str) -> list[str]:
    """Years, standalone numbers and proper names the asker is specifically after.

    A proper name is a capitalised word that is not the first word of the question and not
    "I"; amounts ("12,000 euros") are left out because a table row holding a range
    ("€5,000.01 – €25,000") answers them without repeating them.
    """
    found: list[str] = _YEAR.findall(question)
    words = list(_WORD.finditer(question))
    for i, m in enumerate(words):
        w = m.group(0)
        if i == 0 or not w[:1].isupper() or w.lower() in _STOP or len(w) < 3:
            continue
        prev = question[: m.start()].rstrip()
        if prev.endswith((".", "?", "!", ":")):
            continue  # a new sentence starts here
        found.append(w)
    return list(dict.fromkeys(found))


def answer_type(question: str) -> str:
    for name, pattern in _QUESTION_TYPES:
        if pattern.search(question):
            return name
    return ""


def _matches(stems: Sequence[str], words: set[str]) -> int:
    """How many of ``stems`` occur in ``words`` (same stem, or a shared prefix of six
    letters: "reimburse"/"reimbursement", not "allowance"/"allowed")."""
    n = 0
    for s in stems:
        if s in words or (len(s) >= 6 and any(len(w) >= 6 and w[:6] == s[:6] for w in words)):
            n += 1
    return n


def _words(text: str) -> set[str]:
    return {_stem(w) for w in set(_WORD.findall(text))}


def _type_near_terms(
    kind: str,
    terms: Sequence[str],
    texts: Sequence[str],
    names: Sequence[str] = (),
    *,
    headings: Sequence[str] = (),
    years: Sequence[str] = (),
) -> bool:
    """A value of ``kind`` in a line, sentence or table cell that names a key term of the
    question, or in the unit right after it (a row names its subject before its value).

    A unit is read with its passage's heading (``headings[i]``: document title and
    section), as a table row is read with its header: "Submit within 30 days of the
    expense" under "Expense policy › How to claim" is about expense *claims*. The unit
    itself must still name one key term, so a heading alone never makes every value of
    its section an answer. A year the question names ("holidays in 2027") must be next to
    the value too (in its unit, the next one or the heading): a date in a unit about
    another year answers another question.
    """
    pattern = TYPE_PATTERNS[kind]
    # a term that is itself a value of the type ("December" for a date) shows where a value
    # is, not what it is about: the unit must also name one of the other terms
    subject = [t for t in terms if not pattern.fullmatch(t)] or list(terms)
    # a year is checked on its own (below) and a word naming the value's type ("which
    # days", "the phone number") says what the value is, not what it is about
    subject = [t for t in subject if t not in years and t not in _TYPE_STEMS] or subject
    need = max(1, -(-len(subject) // 3))
    for k, text in enumerate(texts):
        heading = headings[k] if k < len(headings) else ""
        context = _words(heading)
        units = _units(text)
        for i, unit in enumerate(units):
            own = _words(unit)
            if not _matches(subject, own) or _matches(subject, own | context) < min(need, len(subject)):
                continue
            # a table row is complete with its header; other units may hold the value in
            # the unit right after the one naming the subject
            window = unit if unit.lstrip().startswith("|") else " ".join(units[i : i + 2])
            if names and not all(n.lower() in window.lower() for n in names):
                continue  # the question names something; the answer unit must be about it
            if not all(y in f"{heading} {window}" for y in years):
                continue  # "holidays in 2027": a date in a unit about another year
            if pattern.search(window):
                return True
    return False


def _column_near_terms(head: str, terms: Sequence[str], texts: Sequence[str], question: str = "") -> bool:
    """A table with a column named like what a "which X / what is the X" question asks for
    ("category", "GL account", "owner") and a row that names the question's other key
    terms: that row's cell in that column is the answer, as a typed value is for "how long"
    (``_type_near_terms``)."""
    want = _stem(head)
    subject = [t for t in terms if t != want]
    need = max(1, -(-len(subject) // 3))
    for text in texts:
        lines = text.split("\n")
        for i, line in enumerate(lines[:-1]):
            if not (line.lstrip().startswith("|") and _TABLE_RULE.match(lines[i + 1])):
                continue
            if not any(want in _words(cell) for cell in line.strip().strip("|").split("|")):
                continue
            for row in lines[i + 2 :]:
                if not row.lstrip().startswith("|"):
                    break
                if _matches(subject, _words(row)) >= min(need, len(subject)):
                    return True
    return False


# A capitalised word in mid-sentence (after a letter, digit or comma and a space): a name,
# not the first word of a sentence, list item, cell or bold label.
_NAME = re.compile(r"(?<=[\w,] )[A-Z][\w-]*[A-Za-z]")


def _instance_near_terms(head: str, terms: Sequence[str], texts: Sequence[str], question: str) -> bool:
    """A "which X …" question asks for one particular X (a supplier, a tool, a format): a
    name. Found when a table column is named X (``_column_near_terms``), or a sentence,
    item or row that says X next to the question's other key terms also carries a proper
    name the question does not ("the GlobalProtect client", "the Conventional Commits
    format")."""
    if _column_near_terms(head, terms, texts):
        return True
    want = _stem(head)
    subject = [t for t in terms if t != want]
    need = max(1, -(-len(subject) // 3))
    asked = question.lower()
    for text in texts:
        units = _units(text)
        for i, unit in enumerate(units):
            words = _words(" ".join(units[i : i + 2]))
            if want not in _words(unit) or _matches(subject, words) < min(need, len(subject)):
                continue
            if any(m.group(0).lower() not in asked for m in _NAME.finditer(unit)):
                return True
    return False


_ASKED_WHAT = re.compile(
    r"^\s*what(?:'s|\s+is|\s+are|\s+was|\s+were)\s+(?:(?:on|in|at)\s+)?(?:the|a|an|our|my|your)\s+(.*)", re.I
)
_ASKED_WHICH = re.compile(r"^\s*which\s+([^\W\d_][\w-]*)", re.I)
# "What is the name of the external investigation firm …" asks for one particular firm:
# a "which X" question in other words (X is the head of the phrase after "name of").
_NAME_OF = re.compile(
    r"^\s*what(?:'s|\s+is|\s+are|\s+was|\s+were)\s+the\s+names?\s+of\s+(?:the|a|an|our|my|your)?\s*(.*)", re.I
)


def _head(phrase: str) -> str:
    """The head word of a noun phrase: its last word before a stop word or preposition."""
    head = ""
    for w in _WORD.finditer(phrase):
        word = w.group(0)
        if word.lower() in _STOP or word.lower() in _HEAD_BREAK or word[0].isdigit():
            break
        head = word
    return head


def asked_for(question: str) -> str:
    """The thing a "what is the X …" / "which X …" question asks about (X's head word).

    "What is the cafeteria menu on Tuesday?" asks for a *menu*; a passage about the
    cafeteria that never says "menu" is about the topic, not the answer. Empty when the
    question has another shape.
    """
    m = _ASKED_WHICH.match(question)
    if m:
        return m.group(1)
    m = _NAME_OF.match(question)
    if m and _head(m.group(1)):
        return _head(m.group(1))
    m = _ASKED_WHAT.match(question)
    return _head(m.group(1)) if m else ""


def supports(question: str, answer: str) -> bool | None:
    """Does ``answer`` (the generated text) carry the value ``question`` asks for, next to
    its key terms? None when the question asks for no typed value.

    The passages can hold the value while the answer quotes the wrong unit of them (a
    neighbouring table row, the section before); the pipeline then says "I don't know"
    rather than show a confident answer without the value.
    """
    question = question_part(question)
    kind = answer_type(question)
    if not kind:
        return None
    names = [e for e in entities(question) if not _YEAR.fullmatch(e)]
    terms = key_terms(question)
    pattern = TYPE_PATTERNS[kind]
    answer = _MARKERS.sub("", answer)  # "[1]" is a citation, not a value
    subject = [t for t in terms if not pattern.fullmatch(t)] or terms
    need = max(1, -(-len(subject) // 3))
    # An answer is judged per quoted block ("From <document> › <section> [n]:" and what
    # follows it): the heading says what the quoted list or table is about.
    for block in _ANSWER_BLOCK.split(answer):
        if not pattern.search(block) or _matches(subject, _words(block)) < min(need, len(subject)):
            continue
        if not names or all(n.lower() in block.lower() for n in names):
            return True
    return False


def question_part(text: str) -> str:
    """The sentences that ask (end with "?"), or the whole text when none does.

    "How many days carry over? I am jane@example.com, IBAN …" asks about carry-over; the
    context around a question is not what the answer has to contain.
    """
    asked = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.rstrip().endswith("?")]
    return " ".join(asked) if asked else text


def may_raise(question: str) -> bool:
    """Can ``assess`` (without a margin) score ``question`` above its retrieval score?

    Only by at most ``FOUND_BOOST`` (``MARGIN_BOOST`` is smaller), and only when the
    question asks for a typed value, names the thing it asks for ("which category …": a
    table column may hold it) or names an entity (an entry may be named after it).
    ``bot.core.routing.score_bound`` relies on this to stop assessing departments early.
    """
    question = question_part(question)
    names = [e for e in entities(question) if not _YEAR.fullmatch(e)]
    return bool(answer_type(question) or asked_for(question) or names)


def assess(question: str, chunks: Sequence[SourceChunk], *, margin: float | None = None) -> Assessment:
    """Answer-level confidence for ``question`` given the passages retrieved for it."""
    question = question_part(question)
    retrieval = max((c.score for c in chunks), default=0.0)
    if not chunks:
        return Assessment(0.0, 0.0, "", False, 0.0, (), False, margin)
    top = sorted(chunks, key=lambda c: c.score, reverse=True)[:TOP_PASSAGES]
    texts = [f"{c.title}\n{c.anchor}\n{c.text}" for c in top]
    terms = key_terms(question)
    joined = " ".join(texts).lower()
    missing = tuple(e for e in entities(question) if e.lower() not in joined)
    kind = answer_type(question)
    head = asked_for(question)
    if kind and head.lower() in _TYPE_HEADS:
        head = ""
    if head and head not in missing and _matches([_stem(head)], _words(" ".join(texts))) == 0:
        missing = (*missing, head)
    names = [e for e in entities(question) if not _YEAR.fullmatch(e)]
    headings = [f"{c.title}\n{c.anchor}" for c in top]
    years = [e for e in entities(question) if _YEAR.fullmatch(e)]
    bodies = [c.text for c in top]  # the headings are read with each unit, not as units
    found = bool(kind) and _type_near_terms(kind, terms, bodies, names, headings=headings, years=years)
    asks_name = _ASKED_WHICH.match(question) is not None or _NAME_OF.match(question) is not None
    which = bool(head) and not kind and asks_name
    if head and not kind and not missing:
        found = (_instance_near_terms if which else _column_near_terms)(head, terms, texts, question)
    coverage = max(_matches(terms, _words(t)) for t in texts) / len(terms) if terms else 0.0
    live = _LIVE.search(question) is not None
    score = retrieval
    # a value counts only where the passages cover half the question, as for the boost:
    # "when does the parking garage car wash open?" is not answered by garage hours
    if (kind or which) and not (found and coverage >= BOOST_MIN_COVERAGE):
        score *= MISSING_TYPE  # a value, or for "which X" a particular X, is asked for
    for _ in missing[:2]:
        score *= MISSING_ENTITY
    if live:
        score *= LIVE_STATE
    if terms and coverage < BOOST_MIN_COVERAGE:
        score *= LOW_COVERAGE
    if found and not missing and not live and coverage >= BOOST_MIN_COVERAGE:
        score += (1.0 - score) * FOUND_BOOST
    elif not (kind or head or missing or live):
        # "How do I …", "can I …": no single value is asked for, so a department that
        # clearly holds the topic while the others do not is evidence of the answer, and
        # so is an entry named after what the question names ("Is Grammarly allowed?").
        evidence = min(1.0, margin / MARGIN_SPAN) if margin is not None and margin > 0 else 0.0
        # A section named for the question stands in for the margin once routing has
        # chosen (``margin`` given): while departments are still being ranked it must not
        # raise a score, or ``routing.score_bound`` would stop assessing too early.
        if entry_for(names, chunks) or (margin is not None and section_for(terms, top)):
            evidence = 1.0
        score += (1.0 - score) * MARGIN_BOOST * evidence
    return Assessment(
        score=round(max(0.0, min(1.0, score)), 4),
        retrieval=round(retrieval, 4),
        answer_type=kind,
        type_found=found,
        key_coverage=round(coverage, 3),
        missing_entities=missing,
        live=live,
        margin=margin,
    )
