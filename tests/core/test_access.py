"""Access entries, decisions and the channel audience rule."""

from __future__ import annotations

from bot.core.access import AccessPolicy, GroupDirectory, matches
from bot.core.types import AccessScope, Principal


def test_entry_kinds_match() -> None:
    p = Principal("Alice@Example.com", frozenset({"hr-team"}))
    assert matches(p, ["*"]) == "*"
    assert matches(p, ["*@example.com"]) == "*@example.com"
    assert matches(p, ["alice@example.com"]) == "alice@example.com"
    assert matches(p, ["group:hr-team"]) == "group:hr-team"
    assert matches(p, ["*@other.com", "group:finance-team", "bob@example.com"]) is None


def test_directory_resolves_groups_and_rejects_invalid_email(company) -> None:  # type: ignore[no-untyped-def]
    d = GroupDirectory(groups=company.groups)
    p = d.principal("hank@example.com")
    assert p is not None and p.groups == frozenset({"hr-team", "hr-admins"})
    assert d.principal("not an email") is None
    assert d.principal("@example.com") is None


def test_decisions_name_the_missing_entry(company) -> None:  # type: ignore[no-untyped-def]
    policy = AccessPolicy(company=company)
    grace = Principal("grace@example.com")
    eng = company.department("eng")
    denied = policy.may_ask(grace, eng)
    assert not denied.allowed and "group:engineering" in denied.reason
    assert policy.may_run(
        Principal("alice@example.com", frozenset({"hr-team"})), company.department("hr"), "offer-letter"
    ).allowed
    assert not policy.may_run(grace, company.department("hr"), "offer-letter").allowed
    assert [d.name for d in policy.askable(grace)] == ["finance", "hr"]


def test_scope_requires_every_audience_level() -> None:
    scope = AccessScope("finance", frozenset({"*", "carol@example.com", "group:finance-admins"}))
    assert scope.admits(())
    assert scope.admits((("group:finance-admins",),))
    assert not scope.admits((("group:finance-admins",), ("group:board",)))


def test_channel_with_two_groups_needs_both_covered(company) -> None:  # type: ignore[no-untyped-def]
    policy = AccessPolicy(company=company)
    readers = ("group:finance-admins", "group:hr-admins")
    assert not policy.channel_admits(readers, (("group:finance-admins",),))
    assert policy.channel_admits(readers, (("group:finance-admins", "group:hr-admins"),))
    # every member of both groups is on example.com, so a domain audience covers them
    assert policy.channel_admits(readers, (("*@example.com",),))
    assert not policy.channel_admits(("*",), (("*@example.com",),))
