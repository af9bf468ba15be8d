"""Placeholders for personal data: every value the detectors flag is replaced, restored
exactly, numbered per request, and restored in streams even when split across deltas."""

from __future__ import annotations

import json
import random

import pytest

from bot.core.types import Classification, Turn
from bot.sensitivity import identifiers
from bot.sensitivity.redact import PLACEHOLDER_TYPES, Redaction, find, leftover, scan
from tests.sensitivity.corpus import load

EMAIL = "canary.pii.7f3a@example.org"
PHONE = "+44 20 7946 0958"
IBAN = "DE89 3704 0044 0532 0130 00"
SSN = "536-90-2218"
CARD = "4111 1111 1111 1111"
QUESTION = (
    f"Please change my bank details to IBAN {IBAN}, mail me at {EMAIL} or call {PHONE}; "
    f"my SSN is {SSN} and my card {CARD}."
)
VALUES = (EMAIL, PHONE, IBAN, SSN, CARD)


def test_every_kind_is_replaced_by_a_typed_placeholder_and_restored() -> None:
    r = Redaction()
    out = r.redact(QUESTION)
    for value in VALUES:
        assert value not in out
    for name in ("[EMAIL_1]", "[PHONE_1]", "[IBAN_1]", "[ID_1]", "[CARD_1]"):
        assert name in out
    assert leftover([out]) == ()
    assert r.restore(out) == QUESTION
    assert r.counts() == dict.fromkeys(
        ("email-address", "phone-number", "iban", "national-id", "payment-card"), 1
    )


def test_corpus_rows_with_personal_data_leave_nothing_detectable() -> None:
    """Parity with the yes/no detectors: whatever ``identifiers.findings`` flags in the
    labelled corpus is gone after redaction, and restoring gives the text back."""
    checked = 0
    for row in load():
        if not list(identifiers.findings(row.text, identifiers.DEFAULT_PHONE_REGIONS)):
            continue
        checked += 1
        r = Redaction()
        out = r.redact(row.text)
        assert list(identifiers.findings(out, identifiers.DEFAULT_PHONE_REGIONS)) == [], row.line
        assert r.restore(out) == row.text, row.line
    assert checked >= 30


def test_the_yes_no_detectors_and_redaction_find_the_same_spans() -> None:
    """One set of span finders serves both: a phone number followed by a citation marker
    ("… 56 78 [1]") was redacted but not flagged as personal data by the classifier, whose
    own copy of the matcher read the marker as one more digit group and dropped the number."""
    regions = identifiers.DEFAULT_PHONE_REGIONS
    for text in ("ring me on 06 12 34 56 78 [1] tomorrow", "0207 946 0958 [2] is the desk", QUESTION):
        flagged = set(identifiers.findings(text, regions))
        assert flagged == {s.detector for s in find(text, regions)}, text
    assert "phone-number" in set(identifiers.findings("ring me on 06 12 34 56 78 [1] tomorrow", regions))


def test_same_value_same_placeholder_across_turns_and_new_values_numbered() -> None:
    r = Redaction()
    first = r.redact(f"write to {EMAIL}")
    second = r.redact(f"again: {EMAIL.upper()} and also other.person@example.org")
    assert first == "write to [EMAIL_1]"
    assert second == "again: [EMAIL_1] and also [EMAIL_2]"
    assert r.counts() == {"email-address": 2}


def test_placeholders_the_person_typed_are_not_reused() -> None:
    question = f"What does [EMAIL_1] mean in the form? Mine is {EMAIL}"
    r = Redaction([question])
    out = r.redact(question)
    assert out == "What does [EMAIL_1] mean in the form? Mine is [EMAIL_2]"
    assert r.restore("[EMAIL_1] is a field; yours is [EMAIL_2]") == f"[EMAIL_1] is a field; yours is {EMAIL}"


def test_restore_leaves_unknown_placeholders_and_accepts_lower_case() -> None:
    r = Redaction()
    r.redact(f"call {PHONE}")
    assert r.restore("[phone_1] / [PHONE_2] / [1]") == f"{PHONE} / [PHONE_2] / [1]"


def test_secrets_are_not_redacted_so_the_router_keeps_them_private() -> None:
    text = "my password is Hunter2! and token sk-proj-abcdefghijklmnopqrstuvwx1234"
    r = Redaction()
    out = r.redact(text)
    assert out == text
    assert "password" in leftover([out]) and "api-key" in leftover([out])


def test_repr_and_scan_never_hold_values() -> None:
    r = Redaction()
    r.redact(QUESTION)
    found = scan(QUESTION, [Turn("user", "my password is Hunter2!")])
    shown = repr(r) + repr(found) + found.to_json()
    for value in (*VALUES, "Hunter2"):
        assert value not in shown
    assert json.loads(found.to_json()) == {
        "email-address": 1,
        "iban": 1,
        "national-id": 1,
        "password": 1,
        "payment-card": 1,
        "phone-number": 1,
    }
    assert scan("How many vacation days do I get?").to_json() == ""


def test_find_prefers_the_stronger_detector_on_overlaps() -> None:
    spans = find(f"IBAN {IBAN}")
    assert [s.detector for s in spans] == ["iban"]


def test_history_turns_keep_role_and_label() -> None:
    r = Redaction()
    turns = r.redact_turns(
        [Turn("user", f"I am {EMAIL}"), Turn("assistant", f"Noted {PHONE}", Classification.INTERNAL)]
    )
    assert turns == (
        Turn("user", "I am [EMAIL_1]"),
        Turn("assistant", "Noted [PHONE_1]", Classification.INTERNAL),
    )


ANSWER = "Sent to [EMAIL_1], a copy to [EMAIL_2] and a text to [PHONE_1]. [1] [x] done ["


def _mapping() -> Redaction:
    r = Redaction()
    r.redact(f"{EMAIL} other.person@example.org {PHONE}")
    return r


@pytest.mark.parametrize("size", range(1, 12))
def test_stream_restores_placeholders_split_across_deltas(size: int) -> None:
    r = _mapping()
    got: list[str] = []
    stream = r.stream(got.append)
    for i in range(0, len(ANSWER), size):
        stream(ANSWER[i : i + size])
    stream.flush()
    assert "".join(got) == r.restore(ANSWER)
    for delta in got:  # no fragment of a placeholder ever reaches the asker
        assert "EMAIL" not in delta and "PHONE" not in delta and "_1" not in delta


def test_stream_restores_under_random_splits() -> None:
    r = _mapping()
    rnd = random.Random(7)
    for _ in range(200):
        cuts = sorted(rnd.sample(range(1, len(ANSWER)), rnd.randint(1, 12)))
        pieces = [ANSWER[a:b] for a, b in zip([0, *cuts], [*cuts, len(ANSWER)], strict=True)]
        got: list[str] = []
        stream = r.stream(got.append)
        for p in pieces:
            stream(p)
        stream.flush()
        assert "".join(got) == r.restore(ANSWER)


def test_stream_holds_back_little() -> None:
    """Ordinary text flows through at once; only a possible placeholder start is held."""
    r = _mapping()
    got: list[str] = []
    stream = r.stream(got.append)
    stream("Full-time employees get 25 days [")
    assert got == ["Full-time employees get 25 days "]
    stream("1] per year.")
    assert "".join(got) == "Full-time employees get 25 days [1] per year."


def test_every_placeholder_type_is_named() -> None:
    assert set(PLACEHOLDER_TYPES.values()) == {"EMAIL", "PHONE", "IBAN", "ID", "CARD", "ACCOUNT"}


def test_account_numbers_and_context_ids_are_replaced() -> None:
    r = Redaction()
    out = r.redact("Pay to account number 12345678, my BSN is 111222333.")
    assert out == "Pay to account number [ACCOUNT_1], my BSN is [ID_1]."


def test_a_phone_number_before_a_citation_marker_is_still_found() -> None:
    """phonenumbers alone misses "+44 20 7946 0958 [1]" (it reads the 1 as part of the
    number) — exactly how the bot's earlier answers quote a number back as history."""
    r = Redaction()
    assert r.redact(f"Call the HR desk on {PHONE} [1].") == "Call the HR desk on [PHONE_1] [1]."
    assert r.redact(f"[{PHONE}]") == "[[PHONE_1]]"
