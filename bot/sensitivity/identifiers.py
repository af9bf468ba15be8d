"""Personal data in a request: phone numbers, national ids, cards, bank details, e-mail.

Libraries:

* **phonenumbers** (the Python port of Google's libphonenumber, Apache-2.0, metadata
  updated with each release, offline): ``PhoneNumberMatcher`` with ``Leniency.VALID``
  finds numbers written in any national format of the given regions ("020 7946 0958",
  "06 12 34 56 78", "0151 23456789") and any ``+CC`` number, and rejects digit runs that
  no numbering plan allows. A run of bare digits (no space, dot, dash, bracket or ``+``)
  only counts next to a phone word ("phone 4155552671"), so ticket and order numbers do not.
* **python-stdnum** (LGPL-2.1+, maintained, no dependencies, offline): the checksum and
  format rules of national identifiers (US SSN and ITIN, Canadian SIN, Dutch BSN, UK NHS,
  Indian Aadhaar, German tax id, French NIR, Spanish DNI/NIE, Italian codice fiscale) and
  IBANs with each country's length and BBAN format, not just mod-97.

An SSN written 3-2-4 ("123-45-6789", "123 45 6789") counts anywhere; a bare 9-digit SSN
("123456789") and the other digit-only ids only when the message names an identity number
("SSN", "BSN", "NHS number", "passport", …): on their own they look like order numbers.
Letter-and-digit ids (NINO, DNI, NIE, codice fiscale) are distinctive and count anywhere.

Payment cards: python-stdnum's Luhn check plus the card networks' issuer ranges and
lengths (python-stdnum has no card module; the baseline only looked at the first digit,
so one Luhn-valid booking reference in ten counted as a card).

Kept as regexes (no library fits): the e-mail address and the UK National Insurance number
(python-stdnum has no NINO module) from ``bot.core.sensitivity``, the card issuer ranges,
and passport/driving-licence and bank account numbers, which have no checksum and are
recognised by the words in front of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import phonenumbers
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.ca import sin
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.gb import nhs
from stdnum.in_ import aadhaar
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.us import itin, ssn

from bot.core.sensitivity import CARD_RE, EMAIL_RE, IBAN_RE, UK_NINO_RE

DEFAULT_PHONE_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR")
"""Regions whose national formats count (``+CC`` numbers count for every country)."""

PHONE_CONTEXT_RE = re.compile(
    r"\b(?:phone|tel|telephone|mobile|cell|handy|call|ring|text|sms|whatsapp|fax|reach"
    r"|(?:my|your|his|her|their|our)\s+number)\b",
    re.I,
)
FORMATTED_RE = re.compile(r"[\s().+-]")

ID_CONTEXT_RE = re.compile(
    r"\b(?:ssn|social\s+security|itin|tax\s*(?:payer\s*)?id(?:entification)?|tin|sin|social\s+insurance"
    r"|bsn|burgerservicenummer|sofi|aadhaa?r|nhs|idnr|steuer[\s-]*id|steueridentifikationsnummer"
    r"|nir|insee|s[ée]curit[ée]\s+sociale|national\s+(?:id|identity|insurance)|id\s+(?:number|no)"
    r"|identity\s+(?:number|card))\b",
    re.I,
)
SSN_SHAPE_RE = re.compile(r"(?<![\d-])\d{3}([ -])\d{2}\1\d{4}(?![\d-])")
DIGIT_RUN_RE = re.compile(r"(?<![\w-])\d(?:[ -]?\d){8,14}(?![\w-])")
LETTER_ID_RE = re.compile(
    r"\b(?:\d{8}-?[A-Z]|[XYZ]-?\d{7}-?[A-Z]|[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z])\b", re.I
)
DOCUMENT_NUMBER_RE = re.compile(
    r"\b(?:passport|driver'?s?\s+licen[cs]e|driving\s+licen[cs]e)(?:\s+(?:number|no\.?|#))?"
    r"\s*(?:is|:|#)?\s*(?P<value>[A-Z0-9]{6,12})\b",
    re.I,
)
BANK_ACCOUNT_RE = re.compile(
    r"\b(?P<kw>(?:bank\s+)?account\s*(?:number|no\.?|num|#)|acct\.?(?:\s*(?:number|no\.?|#))?|bank\s+account"
    r"|routing\s*(?:number|no\.?|#)?|sort\s*code|aba\s*(?:number|no\.?|#)?|account)"
    r"\s*(?:is|:|=|#)?\s*(?P<value>\d[\d -]{4,22}\d)",
    re.I,
)

BANK_WORDS = ("account", "acct", "routing", "sort", "aba")  # cheap gate for BANK_ACCOUNT_RE

# Digit-only ids by length, checked only when the message names an identity number.
DIGIT_IDS: dict[int, tuple[Callable[[str], bool], ...]] = {
    9: (ssn.is_valid, itin.is_valid, sin.is_valid, bsn.is_valid),
    10: (nhs.is_valid,),
    11: (idnr.is_valid,),
    12: (aadhaar.is_valid,),
    13: (nir.is_valid,),
    15: (nir.is_valid,),
}
# Issuer ranges and lengths: Visa, Mastercard (51-55, 2221-2720), Amex, Diners, JCB,
# Discover, UnionPay. A Luhn-valid digit run outside them (a booking reference starting
# "2024…") is not a card.
CARD_NETWORK_RE = re.compile(
    r"4\d{12}(?:\d{3}){0,2}|5[1-5]\d{14}|2(?:22[1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)\d{12}|3[47]\d{13}"
    r"|3(?:0[0-5]|[68]\d)\d{11}|35(?:2[89]|[3-8]\d)\d{12,15}|6(?:011|4[4-9]\d|5\d\d)\d{12,15}|62\d{14,17}"
)
LETTER_IDS: tuple[Callable[[str], bool], ...] = (dni.is_valid, nie.is_valid, codicefiscale.is_valid)


IBAN_ANY_CASE_RE = re.compile(IBAN_RE.pattern, re.I)
MARKER_RE = re.compile(r"\[(?:\d{1,3}|[A-Za-z]{2,10}_\d{1,4})\]")  # "[1]", "[EMAIL_1]"


@dataclass(frozen=True)
class Span:
    """Where one detector found personal data: offsets into the text, never the text."""

    start: int
    end: int
    detector: str  # a name ``findings`` yields


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


# One set of span finders serves both uses: ``findings`` (yes/no, stops at the first span)
# and ``bot.sensitivity.redact`` (every span, to replace), so the two can never disagree on
# what counts as personal data.


def email_spans(text: str) -> Iterator[Span]:
    if "@" in text:
        for m in EMAIL_RE.finditer(text):
            yield Span(m.start(), m.end(), "email-address")


def iban_spans(text: str) -> Iterator[Span]:
    """An IBAN-shaped run whose longest prefix passing python-stdnum's country format and
    mod-97 is the IBAN (trailing words may stick to a run)."""
    for m in IBAN_ANY_CASE_RE.finditer(text):
        run = m.group()
        ends = [i + 1 for i, c in enumerate(run) if not c.isspace()]  # end offset per compact char
        compact = run.replace(" ", "")
        for n in range(min(34, len(compact)), 14, -1):
            if std_iban.is_valid(compact[:n]):
                yield Span(m.start(), m.start() + ends[n - 1], "iban")
                break


def card_spans(text: str) -> Iterator[Span]:
    for m in CARD_RE.finditer(text):
        d = _digits(m.group())
        if CARD_NETWORK_RE.fullmatch(d) and luhn.is_valid(d):
            yield Span(m.start(), m.end(), "payment-card")


def national_id_spans(text: str) -> Iterator[Span]:
    for m in SSN_SHAPE_RE.finditer(text):
        d = _digits(m.group())
        if ssn.is_valid(d) or itin.is_valid(d):
            yield Span(m.start(), m.end(), "national-id")
    for m in UK_NINO_RE.finditer(text):
        yield Span(m.start(), m.end(), "national-id")
    for m in LETTER_ID_RE.finditer(text):
        if any(ok(m.group()) for ok in LETTER_IDS):
            yield Span(m.start(), m.end(), "national-id")
    documents = list(DOCUMENT_NUMBER_RE.finditer(text))
    for m in documents:
        if sum(c.isdigit() for c in m["value"]) >= 5:
            yield Span(m.start("value"), m.end("value"), "national-id")
    context: bool | None = None  # the (slower) context check runs only after a checksum passes
    for m in DIGIT_RUN_RE.finditer(text):
        d = _digits(m.group())
        if any(ok(d) for ok in DIGIT_IDS.get(len(d), ())):
            if context is None:
                context = bool(documents) or ID_CONTEXT_RE.search(text) is not None
            if context:
                yield Span(m.start(), m.end(), "national-id")


def bank_account_spans(text: str) -> Iterator[Span]:
    """A 6+ digit number after "account number", "sort code", …; after a bare "account", 8+."""
    low = text.lower()
    if not any(word in low for word in BANK_WORDS):
        return
    for m in BANK_ACCOUNT_RE.finditer(text):
        if len(_digits(m["value"])) >= (8 if m["kw"].lower() == "account" else 6):
            yield Span(m.start("value"), m.end("value"), "bank-account")


def phone_spans(text: str, regions: Sequence[str]) -> Iterator[Span]:
    """phonenumbers' matches; citation markers and placeholders are blanked first (same
    length), because the matcher drops "+44 20 7946 0958 [1]" whole: it reads the "1" as
    one more digit group of the number. A bare digit run counts only next to a phone word."""
    context: bool | None = None
    masked = MARKER_RE.sub(lambda m: " " * len(m.group()), text) if "[" in text else text
    for region in regions:
        for match in phonenumbers.PhoneNumberMatcher(masked, region, leniency=phonenumbers.Leniency.VALID):
            if not FORMATTED_RE.search(match.raw_string):
                if context is None:
                    context = PHONE_CONTEXT_RE.search(text) is not None
                if not context:
                    continue
            start = match.start
            while start < match.end and text[start] not in "+(0123456789":  # "[+44 …" → "+44 …"
                start += 1
            yield Span(start, match.end, "phone-number")


def _any(spans: Iterable[Span]) -> bool:
    return next(iter(spans), None) is not None


def phone_number(text: str, regions: Sequence[str]) -> bool:
    return _any(phone_spans(text, regions))


def national_id(text: str) -> bool:
    return _any(national_id_spans(text))


def payment_card(text: str) -> bool:
    return _any(card_spans(text))


def bank_account(text: str) -> bool:
    return _any(bank_account_spans(text))


def iban(text: str) -> bool:
    return _any(iban_spans(text))


def findings(text: str, regions: Sequence[str]) -> Iterator[str]:
    """Detector names for the personal data in ``text`` (never the data)."""
    if "@" in text and EMAIL_RE.search(text):
        yield "email-address"
    digits = sum(c.isdigit() for c in text)
    if digits < 4:
        return
    if digits >= 13 and payment_card(text):
        yield "payment-card"
    if digits >= 6:
        if iban(text):
            yield "iban"
        if national_id(text):
            yield "national-id"
        if bank_account(text):
            yield "bank-account"
    if digits >= 7 and regions and phone_number(text, regions):
        yield "phone-number"
