"""The request classifier: the labelled corpus, the cases from issue 8, keywords, no text out."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Department
from bot.core.sensitivity import DEFAULT_LEVELS
from bot.core.types import Classification
from bot.sensitivity import PatternClassifier
from tests.sensitivity import corpus

P, C, R = Classification.PUBLIC, Classification.CONFIDENTIAL, Classification.RESTRICTED
ROWS = corpus.load()
CLASSIFIER = PatternClassifier()
HR = Department(
    name="hr",
    title="Human Resources",
    knowledge=Path("k"),
    sensitive_keywords=["investigation", "harassment complaint"],
)
FINANCE = Department(
    name="finance", title="Finance", knowledge=Path("k"), sensitive_keywords=["salary", "bonus"]
)
PLAIN = Department(name="plain", title="Plain", knowledge=Path("k"))


def test_the_corpus_is_big_and_balanced() -> None:
    assert len(ROWS) >= 100
    assert sum(not r.sensitive for r in ROWS) >= 50
    assert {r.label for r in ROWS} == {P, C, R}


@pytest.mark.parametrize("row", [r for r in ROWS if r.sensitive], ids=lambda r: f"line{r.line}")
def test_every_sensitive_row_is_caught(row: corpus.Row) -> None:
    label, reasons = CLASSIFIER.classify(row.text, corpus.DEPARTMENT)
    assert label >= row.label, f"{row.note}: got {label.label} {reasons}"


@pytest.mark.parametrize("row", [r for r in ROWS if not r.sensitive], ids=lambda r: f"line{r.line}")
def test_ordinary_rows_stay_below_confidential(row: corpus.Row) -> None:
    label, reasons = CLASSIFIER.classify(row.text, corpus.DEPARTMENT)
    if row.accepted_fp:
        assert label >= C, f"no longer a false positive: drop 'accepted-fp' from line {row.line}"
    else:
        assert label < C, f"{row.note}: flagged {label.label} by {reasons}"


def test_reasons_are_detector_names_never_text() -> None:
    for row in ROWS:
        _, reasons = CLASSIFIER.classify(row.text, corpus.DEPARTMENT)
        assert set(reasons) <= set(DEFAULT_LEVELS), row.text
        assert len(reasons) == len(set(reasons))


@pytest.mark.parametrize(
    ("text", "label", "reason"),
    [
        ("my SSN is 123456789", R, "national-id"),
        ("SSN 123 45 6789", R, "national-id"),
        ("My SSN is 123-45-6789", R, "national-id"),
        ("NI number AB 12 34 56 C", R, "national-id"),
        ("Card 4111 1111 1111 1111 was charged twice", R, "payment-card"),
        ("Pay to DE89 3704 0044 0532 0130 00 by Friday", R, "iban"),
        ("Can you email jane.doe@example.com about it?", C, "email-address"),
        ("Call me on +44 20 7946 0958 please", C, "phone-number"),
        ("My number is (415) 555-2671", C, "phone-number"),
        ("call me at 020 7946 0958", C, "phone-number"),
        ("my password is Hunter2!", R, "password"),
        ("pwd: Tr0ub4dor&3", R, "password"),
        ("AKIAIOSFODNN7EXAMPLE in the config", R, "api-key"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", R, "secret"),
        ("ghp_abcdefghijklmnopqrstuvwxyz0123456789 in CI", R, "api-key"),
        ("github_pat_11EXAMPLE0000000000000_" + "EXAMPLEexample" * 4 + "EXAM", R, "api-key"),
        ("the bot token xoxb-1234567890-abcdefghij leaked", R, "api-key"),
        ("is sk-proj-abcdefghijklmnopqrstuvwxyz123456 still valid?", R, "api-key"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE...", R, "private-key"),
        ("Where is the private key for the signing cert?", C, "sensitive-topic"),
        ("I want to file a harassment complaint", C, "department-keyword"),
        ("What happens in investigations?", C, "department-keyword"),
        ("I have a medical condition", C, "sensitive-topic"),
    ],
)
def test_issue_8_cases(text: str, label: Classification, reason: str) -> None:
    got, reasons = CLASSIFIER.classify(text, HR)
    assert got == label and reason in reasons, (got, reasons)


@pytest.mark.parametrize(
    ("text", "hit"),
    [
        ("What are the salaries in band 3?", True),
        ("When are bonuses paid?", True),
        ("Salary review dates", True),
        ("What does the SALARY-review cover?", True),
        ("The salon is closed", False),
        ("Bonn office", False),
    ],
)
def test_department_keywords_match_inflections(text: str, hit: bool) -> None:
    no_topics = PatternClassifier(topics=())
    _, reasons = no_topics.classify(text, FINANCE)
    assert ("department-keyword" in reasons) is hit


@pytest.mark.parametrize(
    ("text", "hit"),
    [
        ("How do I file a Harassment   Complaint?", True),
        ("two harassment complaints were filed", True),
        ("a complaint about harassment", False),  # phrase words must come in order
        ("harassment training and a complaint form", False),
        ("ongoing investigations", True),
        ("it is being investigated", True),
    ],
)
def test_phrases_match_stemmed_words_in_order(text: str, hit: bool) -> None:
    _, reasons = PatternClassifier(topics=()).classify(text, HR)
    assert ("department-keyword" in reasons) is hit


def test_built_in_topics_apply_to_every_department() -> None:
    assert CLASSIFIER.classify("What are the salaries in band 3?", PLAIN) == (C, ("sensitive-topic",))
    assert PatternClassifier(topics=()).classify("What are the salaries in band 3?", PLAIN) == (P, ())
    assert PatternClassifier(topics=("onboarding buddy",)).classify("my onboarding buddies", PLAIN)[0] == C


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("How do I reset my password?", P),
        ("My password is expired, what do I do?", P),
        ("What is the password policy?", P),
        ("Password: how do I change it?", P),
        ("my password is Hunter2!", R),
        ("The password for the lab wifi is Guest-7781x", R),
        ('password = "Summer2024!"', R),
        ("pwd: Tr0ub4dor&3", R),
    ],
)
def test_asking_about_a_password_is_not_pasting_one(text: str, label: Classification) -> None:
    assert CLASSIFIER.classify(text, PLAIN)[0] == label


def test_highest_level_wins_and_levels_are_configurable() -> None:
    label, reasons = CLASSIFIER.classify("jane@example.com card 4111111111111111", PLAIN)
    assert label == R and set(reasons) == {"email-address", "payment-card"}
    relaxed = PatternClassifier(levels={"email-address": Classification.INTERNAL})
    assert relaxed.classify("jane@example.com", PLAIN) == (Classification.INTERNAL, ("email-address",))


def test_the_baseline_is_the_old_regex_only_classifier() -> None:
    old = PatternClassifier(libraries=False)
    assert old.classify("My SSN is 123-45-6789", HR)[0] == R
    assert old.classify("my SSN is 123456789", HR)[0] == P
    assert old.classify("What happens in an investigation?", HR)[0] == C
    assert old.classify("ongoing investigations", HR)[0] == P
    assert old.classify("I have a medical condition", HR)[0] == P


def test_detectors_never_verify_over_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    calls: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        calls.append(args[1:2])  # recorded even if a library swallows the error below
        raise AssertionError("a detector tried to make an HTTP request")

    monkeypatch.setattr(requests.sessions.Session, "request", refuse)
    for row in ROWS:
        CLASSIFIER.classify(row.text, corpus.DEPARTMENT)
    assert calls == []


@pytest.mark.xfail(strict=True, reason="known misses; move a row into the corpus once it is caught")
@pytest.mark.parametrize(
    "text",
    [
        "The password is correcthorsebatterystaple",  # a letters-only passphrase reads as a word
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",  # a bare secret with no key/secret/token word
        "She is on medical leave for her cancer treatment",  # illnesses are not in the topic list
    ],
)
def test_known_misses(text: str) -> None:
    assert CLASSIFIER.classify(text, PLAIN)[0] >= C
