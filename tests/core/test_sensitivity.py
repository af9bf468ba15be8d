"""The pure half of classification: baseline regexes, checksums, keyword rule, levels.

The classifier itself (library detectors, stemming, the labelled corpus) is tested in
tests/sensitivity/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.sensitivity import DEFAULT_LEVELS, DETECTORS, iban_ok, keyword_pattern, label_for, luhn_ok
from bot.core.types import Classification

C, R, P = Classification.CONFIDENTIAL, Classification.RESTRICTED, Classification.PUBLIC


def fired(text: str) -> set[str]:
    return {name for name, detect in DETECTORS if detect(text)}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Can you email jane.doe@example.com about it?", "email-address"),
        ("Call me on +44 20 7946 0958 please", "phone-number"),
        ("My number is (415) 555-2671", "phone-number"),
        ("My SSN is 123-45-6789", "national-id"),
        ("NI number AB 12 34 56 C", "national-id"),
        ("Card 4111 1111 1111 1111 was charged twice", "payment-card"),
        ("Pay to DE89 3704 0044 0532 0130 00 by Friday", "iban"),
        ("GB82WEST12345698765432", "iban"),
        ("is sk-proj-abcdefghijklmnopqrstuvwxyz123456 still valid?", "api-key"),
        ("AKIAIOSFODNN7EXAMPLE in the config", "api-key"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "private-key"),
    ],
)
def test_baseline_detectors(text: str, reason: str) -> None:
    assert reason in fired(text)


@pytest.mark.parametrize(
    "text",
    [
        "How many vacation days do I get?",
        "Is the office closed on 2026-12-24?",
        "Card 4111 1111 1111 1112 is not a valid number",  # fails Luhn
        "Order 1234567890123 shipped",  # starts with 1: not a card network
        "Pay to DE89 3704 0044 0532 0130 01",  # fails mod-97
        "What is sk-learn?",
    ],
)
def test_baseline_detectors_ignore_ordinary_text(text: str) -> None:
    assert fired(text) == set()


def test_keyword_pattern_is_exact_whole_words() -> None:
    kw = keyword_pattern(["investigation", "harassment complaint", " "])
    assert kw is not None
    assert kw.search("How do I file a Harassment   Complaint?")
    assert not kw.search("Investigations team")
    assert keyword_pattern([]) is None


def test_label_is_the_highest_level_found() -> None:
    assert label_for([], DEFAULT_LEVELS) == P
    assert label_for(["email-address", "payment-card"], DEFAULT_LEVELS) == R
    assert label_for(["sensitive-topic"], DEFAULT_LEVELS) == C


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")


def test_core_module_imports_nothing_third_party() -> None:
    import ast

    import bot.core.sensitivity as mod

    tree = ast.parse(Path(mod.__file__).read_text())
    roots = {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert roots <= {"__future__", "re", "collections", "typing", "bot"}
