"""The request classifier: detectors with checksums, department keywords, no matched text out."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Department
from bot.core.sensitivity import PatternClassifier, iban_ok, luhn_ok
from bot.core.types import Classification

C, R, P = Classification.CONFIDENTIAL, Classification.RESTRICTED, Classification.PUBLIC

HR = Department(
    name="hr",
    title="Human Resources",
    knowledge=Path("k"),
    sensitive_keywords=["investigation", "harassment complaint"],
)


@pytest.mark.parametrize(
    ("text", "label", "reason"),
    [
        ("Can you email jane.doe@example.com about it?", C, "email-address"),
        ("Call me on +44 20 7946 0958 please", C, "phone-number"),
        ("My number is (415) 555-2671", C, "phone-number"),
        ("My SSN is 123-45-6789", R, "national-id"),
        ("NI number AB 12 34 56 C", R, "national-id"),
        ("Card 4111 1111 1111 1111 was charged twice", R, "payment-card"),
        ("Pay to DE89 3704 0044 0532 0130 00 by Friday", R, "iban"),
        ("GB82WEST12345698765432", R, "iban"),
        ("is sk-proj-abcdefghijklmnopqrstuvwxyz123456 still valid?", R, "api-key"),
        ("the bot token xoxb-1234567890-abcdefghij leaked", R, "api-key"),
        ("AKIAIOSFODNN7EXAMPLE in the config", R, "api-key"),
        ("ghp_abcdefghijklmnopqrstuvwxyz0123456789 in CI", R, "api-key"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE...", R, "private-key"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", R, "private-key"),
        ("How do I file a Harassment   Complaint?", C, "department-keyword"),
        ("What happens in an investigation?", C, "department-keyword"),
    ],
)
def test_detectors(text: str, label: Classification, reason: str) -> None:
    got, reasons = PatternClassifier().classify(text, HR)
    assert got == label and reason in reasons
    assert all(text not in r for r in reasons)


@pytest.mark.parametrize(
    "text",
    [
        "How many vacation days do I get?",
        "Is the office closed on 2026-12-24?",
        "Card 4111 1111 1111 1112 is not a valid number",  # fails Luhn
        "Order 1234567890123 shipped",  # Luhn-valid? starts with 1: not a card network
        "Pay to DE89 3704 0044 0532 0130 01",  # fails mod-97
        "The budget is 1,250,000 dollars for 2026",
        "What is sk-learn?",
        "Investigations team",  # plural is a different word (whole-word match)
    ],
)
def test_ordinary_text_is_not_flagged(text: str) -> None:
    assert PatternClassifier().classify(text, HR) == (P, ())


def test_highest_level_wins_and_levels_are_configurable() -> None:
    label, reasons = PatternClassifier().classify("jane@example.com card 4111111111111111", HR)
    assert label == R and set(reasons) == {"email-address", "payment-card"}
    relaxed = PatternClassifier(levels={"email-address": Classification.INTERNAL})
    assert relaxed.classify("jane@example.com", HR)[0] == Classification.INTERNAL


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
