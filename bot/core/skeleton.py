"""Fill a template's skeleton offline: the fields the input names, the rest left visible.

A skeleton is a document (e.g. ``knowledge/hr/templates/offer-letter.md``) whose fields
are written in square brackets, as HR templates usually are: ``[Candidate full name]``,
``[Start date]``, ``[Amount and currency]``. Why brackets rather than ``{{name}}``: the
same file reads naturally as a document, survives every format (Liquid-style braces are
stripped from Markdown at ingest) and needs no escaping. A bracket whose text has no
letter (``[1]``, a citation marker) or that is a Markdown link (``[text](url)``) is not
a field.

Without a model, ``draft`` fills what simple, predictable rules can find in the input —
"Jane Doe, data analyst, starts May 1, 65,000 EUR" gives a name, a job title, a start date
and an amount; ``field: value`` pairs fill the field with that label; ``[Date]`` is today
and ``[Date + 7 calendar days]`` a week later — and leaves every other field as it was,
so a person sees what is still to do. Pure: no I/O, ``today`` is passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta

from bot.core.types import GenerationRequest

FIELD_RE = re.compile(r"\[([^\[\]\n]{1,80})\](?!\()")
MONTHS = ("january february march april may june july august september october november december").split()  # noqa: SIM905 - a word list reads better as text
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_DATE_PATTERNS = (
    re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b"),  # 2026-05-01
    re.compile(rf"\b({_MONTH})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(\d{{4}}))?\b", re.I),  # May 1, 2026
    re.compile(
        rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH})\.?(?:,?\s+(\d{{4}}))?\b", re.I
    ),  # 1 May
)
_CURRENCY = {
    "€": "EUR",
    "$": "USD",
    "£": "GBP",
    "eur": "EUR",
    "euro": "EUR",
    "euros": "EUR",
    "usd": "USD",
    "dollars": "USD",
    "gbp": "GBP",
    "pounds": "GBP",
    "chf": "CHF",
    "sek": "SEK",
    "dkk": "DKK",
}
_NUMBER = r"\d{1,3}(?:[,'’ ]\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d+)?"
_AMOUNT_RE = re.compile(
    rf"(?:(?P<pre>[€$£]|\b(?:EUR|USD|GBP|CHF|SEK|DKK)\b)\s?(?P<n1>{_NUMBER})(?P<k1>k\b)?)"
    rf"|(?:\b(?P<n2>{_NUMBER})(?P<k2>k\b)?\s?(?P<post>€|\b(?:EUR|USD|GBP|CHF|SEK|DKK|euros?|dollars|pounds)\b))",
    re.I,
)
ROLE_WORDS = frozenset(
    """
    analyst engineer developer manager designer scientist specialist coordinator director lead
    officer assistant accountant consultant administrator intern representative recruiter
    architect partner controller associate advisor adviser executive technician writer editor
    researcher head owner counsel lawyer nurse operator agent strategist marketer
    """.split()  # noqa: SIM905 - a word list reads better as text
)
_NAME_STOP = frozenset(MONTHS) | {
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "draft",
    "offer",
    "letter",
    "for",
    "the",
    "starts",
    "start",
    "starting",
    "from",
    "level",
    "salary",
    "eur",
    "usd",
}
_PAIR_RE = re.compile(r"(?:^|[;\n]|,\s)\s*([A-Za-z][A-Za-z /-]{1,40}?)\s*[:=]\s*([^;\n]+?)\s*(?=$|[;\n])")


@dataclass(frozen=True)
class Filled:
    """The skeleton with fields filled, and which fields were filled or are still open."""

    text: str
    filled: dict[str, str] = field(default_factory=dict)  # field label → value used
    missing: tuple[str, ...] = ()  # labels still in brackets, in order of appearance


def fields(skeleton: str) -> list[str]:
    """Every field label in order of first appearance."""
    seen: dict[str, None] = {}
    for m in FIELD_RE.finditer(skeleton):
        label = m.group(1).strip()
        if re.search(r"[A-Za-z]", label):
            seen.setdefault(label, None)
    return list(seen)


def _fmt(d: date) -> str:
    return f"{MONTHS[d.month - 1].title()} {d.day}, {d.year}"


def _month(word: str) -> int:
    return next(i for i, m in enumerate(MONTHS, 1) if m.startswith(word.lower()[:3]))


def find_dates(text: str, today: date) -> list[date]:
    """Dates in ``text`` in order; a date without a year is the next such day from ``today``."""
    found: list[tuple[int, date]] = []
    for pattern in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            a, b, c = m.groups()
            try:
                if pattern is _DATE_PATTERNS[0]:
                    d = date(int(a), int(b), int(c))
                else:
                    month, day = (_month(a), int(b)) if pattern is _DATE_PATTERNS[1] else (_month(b), int(a))
                    d = date(int(c) if c else today.year, month, day)
                    if not c and d < today:
                        d = date(today.year + 1, month, day)
            except ValueError:
                continue
            if all(abs(pos - m.start()) > 2 for pos, _ in found):
                found.append((m.start(), d))
    return [d for _, d in sorted(found)]


def find_amount(text: str) -> str:
    """The first money amount as "65,000 EUR" ("€65k" → "65,000 EUR"); "" when none."""
    m = _AMOUNT_RE.search(text)
    if not m:
        return ""
    raw = re.sub(r"[ '’]", "", m.group("n1") or m.group("n2") or "")
    unit = _CURRENCY.get(
        (m.group("pre") or m.group("post") or "").lower(), (m.group("pre") or m.group("post") or "").upper()
    )
    digits = raw.replace(",", "")
    if m.group("k1") or m.group("k2"):
        try:
            digits = str(int(float(digits) * 1000))
        except ValueError:
            return ""
    if re.fullmatch(r"\d+", digits):
        raw = f"{int(digits):,}"
    return f"{raw} {unit}".strip()


def find_name(text: str) -> str:
    """A person's name: the first run of 2–4 capitalised words that are not dates or roles."""
    for m in re.finditer(
        r"\b([A-Z][a-z'’-]+(?:\s+(?:[A-Z][a-z'’-]+|van|von|de|da|del|di|le|la)){1,3})\b", text
    ):
        words = m.group(1).split()
        while words and (words[0].lower() in _NAME_STOP or words[0].lower() in ROLE_WORDS):
            words = words[1:]
        while words and (words[-1].lower() in _NAME_STOP or words[-1].lower() in ROLE_WORDS):
            words = words[:-1]
        if len(words) >= 2 and words[0][0].isupper():
            return " ".join(words)
    return ""


def find_role(text: str) -> str:
    """A job title: "as a data analyst", "position of …", or a comma-separated part that
    ends with a role word ("senior data analyst")."""
    m = re.search(
        r"\b(?:as an?|as|position of|role of|job title:?|title:?|role:?)\s+([A-Za-z][A-Za-z -]{2,60})",
        text,
        re.I,
    )
    if m:
        role = re.split(r"\s+(?:in|at|for|from|starting|starts|on|reporting|with)\b|[,;.]", m.group(1))[
            0
        ].strip()
        if role:
            return role
    for part in re.split(r"[,;\n]|\s+-\s+", text):
        words = re.findall(r"[A-Za-z][A-Za-z-]*", part)
        for end in range(len(words), 0, -1):
            if words[end - 1].lower().rstrip("s") in ROLE_WORDS:
                start = end - 1
                while (
                    start > 0
                    and end - start < 5
                    and words[start - 1][:1].islower()
                    and words[start - 1].lower()
                    not in _NAME_STOP | {"a", "an", "our", "new", "hire", "hiring", "is", "will", "be"}
                ):
                    start -= 1
                return " ".join(words[start:end])
    return ""


def _pairs(text: str) -> dict[str, str]:
    """``label: value`` pairs typed in the input ("start date: June 2; level: 3")."""
    return {k.strip().casefold(): v.strip() for k, v in _PAIR_RE.findall(text)}


def _words(label: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", label.casefold()) if w not in {"and", "or", "the", "of", "a"}}


def extract(text: str, today: date) -> dict[str, str]:
    """What the input says, by kind: ``name``, ``first_name``, ``role``, ``start_date``,
    ``amount``, ``level``, ``department``, ``manager``; only the kinds found."""
    out: dict[str, str] = {}
    name = find_name(text)
    if name:
        out["name"], out["first_name"] = name, name.split()[0]
    role = find_role(text)
    if role:
        out["role"] = role
    start = re.search(r"\b(?:start(?:s|ing)?(?:\s+date)?|from|joins?|joining)\b[^.;\n]{0,20}", text, re.I)
    dates = find_dates(text[start.start() :] if start else text, today) or find_dates(text, today)
    if dates:
        out["start_date"] = _fmt(dates[0])
    amount = find_amount(text)
    if amount:
        out["amount"] = amount
    level = re.search(r"\b(?:level|grade|L)\s?(\d{1,2})\b", text)
    if level:
        out["level"] = level.group(1)
    dept = re.search(
        r"\b(?:in|join(?:ing)?) (?:the )?([A-Z][A-Za-z&]+(?: [A-Z][A-Za-z&]+)?) (?:department|team)\b", text
    )
    if dept:
        out["department"] = dept.group(1)
    manager = re.search(r"\breporting to ([A-Z][a-z'’-]+(?: [A-Z][a-z'’-]+){0,2})", text)
    if manager:
        out["manager"] = manager.group(1)
    return out


def _value_for(label: str, found: dict[str, str], pairs: dict[str, str], today: date) -> str:
    words = _words(label)
    for key, value in pairs.items():  # an explicit "label: value" wins
        if _words(key) and (_words(key) <= words or words <= _words(key)):
            return value
    plus = re.fullmatch(r"\s*date\s*\+\s*(\d{1,3})\s*(?:calendar\s+)?days?\s*", label, re.I)
    if plus:
        return _fmt(today + timedelta(days=int(plus.group(1))))
    if words == {"date"} or words == {"today"} or words == {"letter", "date"}:
        return _fmt(today)
    if "manager" in words or "recruiter" in words or "partner" in words:
        return found.get("manager", "") if words <= {"manager", "name"} else ""
    if "name" in words and ("first" in words or "given" in words):
        return found.get("first_name", "")
    if "name" in words and words & {"candidate", "employee", "full", "hire", "person"}:
        return found.get("name", "")
    if words & {"job", "position", "role"} or words == {"title"}:
        return found.get("role", "")
    if "start" in words and "date" in words:
        return found.get("start_date", "")
    if words & {"amount", "salary", "pay", "compensation"}:
        return found.get("amount", "")
    if words == {"level"} or words == {"grade"}:
        return found.get("level", "")
    if words == {"department"} or words == {"team"}:
        return found.get("department", "")
    return ""


def draft(skeleton: str, text: str, today: date) -> Filled:
    """``skeleton`` with every field the input (or today's date) can fill replaced."""
    found = extract(text, today)
    pairs = _pairs(text)
    filled: dict[str, str] = {}
    for label in fields(skeleton):
        value = _value_for(label, found, pairs, today)
        if value:
            filled[label] = value.replace("[", "(").replace("]", ")")

    def sub(m: re.Match[str]) -> str:
        return filled.get(m.group(1).strip(), m.group(0))

    out = FIELD_RE.sub(sub, skeleton)
    missing = tuple(label for label in fields(skeleton) if label not in filled)
    return Filled(text=out.strip(), filled=filled, missing=missing)


def offline_text(request: GenerationRequest, today: date) -> str:
    """The filled skeleton, what is still to fill, and the documents it follows as ``[n]``.

    The policy cited is the best-ranked source documents (up to two, other than the
    skeleton's own file): what a person drafting this letter should check it against.
    """
    filled = draft(request.skeleton, request.template_input, today)
    numbered: dict[str, int] = {}
    for n, src in enumerate(request.sources, start=1):
        numbered.setdefault(src.doc_id, n)
    top = max((s.score for s in request.sources), default=0.0)
    policy = [
        (src.title, n)
        for doc_id, n in numbered.items()
        if (src := request.sources[n - 1]).score >= top * 0.5 and not _is_skeleton(doc_id, request)
    ][:2]
    lines = [filled.text, "", "---"]
    if filled.filled:
        lines.append("Filled from your request: " + ", ".join(filled.filled) + ".")
    if filled.missing:
        lines.append("Still to fill: " + ", ".join(f"[{m}]" for m in filled.missing) + ".")
    if policy:
        follows = " and ".join(f"{title} [{n}]" for title, n in policy)
        lines.append(f"Check the draft against {follows} before sending.")
    return "\n".join(lines)


def _is_skeleton(doc_id: str, request: GenerationRequest) -> bool:
    """The skeleton's own file among the sources: a form, not the policy it follows."""
    head = request.skeleton.strip().splitlines()[0] if request.skeleton.strip() else ""
    return any(head and head in src.text for src in request.sources if src.doc_id == doc_id) and (
        "template" in doc_id.casefold() or "skeleton" in doc_id.casefold()
    )
