"""Canaries: what Insights returns never holds hidden question text, another department's
data, document text, or text erased by a privacy request or purged by retention."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.admin.insights import Insights
from bot.governance.vault import Vault
from tests.admin.insights_setup import FINANCE_CANARY, NOW, QUESTION_CANARY, World
from tests.fakes import CANARIES


@pytest.fixture
def world(world: World) -> World:
    """conftest's world, filled with this file's canaries."""
    _fill(world)
    return world


def _fill(w: World) -> None:
    """HR and finance traffic, every kind of gap, votes with comments, canaries everywhere."""
    for dept, canary, doc in (
        ("hr", QUESTION_CANARY, "hr/time-off.md"),
        ("finance", FINANCE_CANARY, "finance/expenses.md"),
    ):
        for k in range(3):
            w.ask(
                dept, f"How many vacation days {canary} {k}?", status="dont_know", ago=timedelta(hours=k + 1)
            )
            w.ask(dept, f"vacation days {canary}", status="dont_know", ago=timedelta(days=2))
        weak = w.ask(dept, f"Meal allowance {canary}?", confidence=0.1, doc_ids=[doc])
        w.vote(weak, "down", f"wrong {canary}")
        good = w.ask(dept, f"Good question {canary}", doc_ids=[doc])
        w.vote(good, "up", f"thanks {canary}")
        w.vote(w.ask(dept, f"Disliked {canary}", doc_ids=[doc]), "down", f"bad {canary}")
        w.ask(dept, f"Denied {canary}", status="denied")


def everything(ins: Insights, department: str, *, show_text: bool) -> str:
    """The repr of every value every page gets, for every window."""
    parts: list[object] = []
    for days in (7, 30, 90):
        parts += [ins.overview(department, days), ins.documents(department, days)]
        parts += ins.gaps(department, days, show_text=show_text)
    parts.append(ins.feedback(department, show_text=show_text))
    parts.append(ins.evals(department))
    return repr(parts).lower()


def _pieces(canary: str) -> list[str]:
    """The canary and every word-like piece of it (a term extractor splits on '-')."""
    return [canary.lower(), *(p.lower() for p in canary.split("-"))]


def test_hidden_text_department_returns_no_question_or_comment_text(world: World) -> None:
    assert world.company.department("hr").admins_see_questions is False
    out = everything(world.insights(), "hr", show_text=False)
    for piece in [*_pieces(QUESTION_CANARY), "vacation", "meal allowance", "wrong", "disliked"]:
        assert piece not in out
    assert "dont_know=6" in out  # the numbers are there, only the words are not


def test_hidden_text_is_never_decrypted(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    real = Vault.open

    def spy(self: Vault, subject: str, blob: object, context: str = "") -> str:
        opened.append(context)
        return real(self, subject, blob, context)

    monkeypatch.setattr(Vault, "open", spy)
    everything(world.insights(), "hr", show_text=False)
    assert opened == []
    everything(world.insights(), "hr", show_text=True)
    assert opened and all(c.startswith(("request_text:", "feedback:")) for c in opened)


def test_shown_text_is_the_departments_own(world: World) -> None:
    out = everything(world.insights(), "hr", show_text=True)
    assert QUESTION_CANARY.lower() in out  # the admins of this department may read it
    for piece in [*_pieces(FINANCE_CANARY), "finance/", "expenses", "meal expenses"]:
        assert piece not in out


def test_hr_numbers_do_not_count_finance(world: World) -> None:
    ins = world.insights()
    o = ins.overview("hr", 7)
    assert o.totals.total == 10 and o.totals.dont_know == 6 and o.totals.denied == 1
    assert (o.satisfaction.up, o.satisfaction.down) == (1, 2)
    assert sum(g.count for g in ins.feedback("hr", show_text=False).groups) == 2
    assert all(c.doc.doc_id.startswith("hr/") for c in ins.documents("hr", 7).most_cited)


def test_document_text_never_appears(world: World) -> None:
    ins = world.insights()
    for dept in ("hr", "finance", "eng"):
        out = everything(ins, dept, show_text=True)
        for canary in CANARIES.values():
            assert canary.lower() not in out


def test_erased_person_text_is_gone(world: World) -> None:
    rid = world.ask("hr", "ERASEME-51c2 vacation days?", status="dont_know", user="eve@example.com")
    world.vote(rid, "down", "ERASEME-51c2 comment", user="eve@example.com")
    assert "eraseme-51c2" in everything(world.insights(), "hr", show_text=True)
    world.audit.vault.shred("eve@example.com")  # what a privacy erase does to sealed text
    world.audit.pseudonymize("eve@example.com")
    out = everything(world.insights(), "hr", show_text=True)
    assert "eraseme" not in out and "eve@example.com" not in out
    assert rid in out  # the request itself is still counted


def test_text_purged_by_retention_is_absent(world: World) -> None:
    world.ask("hr", "PURGEME-0a1b vacation days", status="dont_know", ago=timedelta(days=20))
    assert "purgeme-0a1b" in everything(world.insights(), "hr", show_text=True)
    world.audit.purge_older_than("text", NOW - timedelta(days=10))
    assert "purgeme" not in everything(world.insights(), "hr", show_text=True)


def test_askers_and_voters_are_never_named(world: World) -> None:
    out = everything(world.insights(), "hr", show_text=True)
    assert "alice@example.com" not in out and "bob@example.com" not in out
