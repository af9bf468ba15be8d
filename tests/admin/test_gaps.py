"""Knowledge gaps: which rows count, how they group, what a group may show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.admin import gaps
from bot.admin.reports import ClosestDoc, DocRef
from bot.core.types import Principal, SourceChunk
from tests.admin.insights_setup import World

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def row(i: int, text: str | None, *, docs: tuple[str, ...] = (), down: bool = False) -> gaps.GapRow:
    return gaps.GapRow(
        request_id=f"r{i:03d}",
        time=T0 + timedelta(hours=i),
        dont_know=not docs,
        low_confidence=bool(docs),
        down=down,
        doc_ids=docs,
        text=text,
    )


def no_closest(query: str) -> tuple[ClosestDoc, ...]:
    return ()


def ref(doc_id: str) -> DocRef | None:
    return DocRef(doc_id=doc_id, title=f"Title of {doc_id}", path=doc_id.split("/", 1)[1])


ROWS = [
    row(1, "How many vacation days do I get per year?"),
    row(2, "vacation days per year for part-time staff"),
    row(3, "How many vacation days per year?"),
    row(4, "Is there a bike lease scheme?"),
    row(5, "bike lease tax rules"),
    row(6, "Where is the cafeteria menu?"),
]


def test_similar_questions_group_together_biggest_first() -> None:
    groups = gaps.build_groups(ROWS, show_text=True, closest=no_closest, doc_ref=ref)

    assert [g.count for g in groups] == [3, 2, 1]
    assert groups[0].examples[0].startswith("How many vacation days")
    assert set(groups[0].terms[:3]) == {"vacation", "days", "year"}
    assert "bike" in groups[1].terms and groups[1].basis == "questions"
    assert groups[0].request_ids == ("r003", "r002", "r001")  # newest first
    assert groups[0].first_seen == T0 + timedelta(hours=1) and groups[0].last_seen == T0 + timedelta(hours=3)


def test_grouping_is_deterministic_whatever_the_row_order() -> None:
    a = gaps.build_groups(ROWS, show_text=True, closest=no_closest, doc_ref=ref)
    b = gaps.build_groups(list(reversed(ROWS)), show_text=True, closest=no_closest, doc_ref=ref)
    assert a == b
    assert len({g.key for g in a}) == len(a) and all(g.key.startswith("g") for g in a)


def test_question_words_alone_do_not_make_a_group() -> None:
    rows = [row(1, "How many days of parental leave?"), row(2, "How many monitors can I order?")]
    assert [g.count for g in gaps.build_groups(rows, show_text=True, closest=no_closest, doc_ref=ref)] == [
        1,
        1,
    ]


def test_hidden_text_groups_by_cited_documents_and_shows_no_words() -> None:
    rows = [
        row(1, None, docs=("hr/leave.md", "hr/benefits.md")),
        row(2, None, docs=("hr/leave.md",), down=True),
        row(3, None),
        row(4, None),
        row(5, None, docs=("hr/other.md",)),
    ]
    groups = gaps.build_groups(rows, show_text=False, closest=no_closest, doc_ref=ref)

    # equal sizes: the most recent first
    assert [(g.basis, g.count) for g in groups] == [("none", 2), ("sources", 2), ("other", 1)]
    leave = groups[1]
    assert leave.topic == "Title of hr/leave.md; Title of hr/benefits.md"
    assert [(c.doc.doc_id, c.score) for c in leave.closest] == [("hr/leave.md", 1.0), ("hr/benefits.md", 0.5)]
    assert (leave.low_confidence, leave.down, leave.dont_know) == (2, 1, 0)
    assert groups[2].topic.startswith("Other questions") and groups[2].closest == ()
    for g in groups:
        assert g.examples == () and g.terms == () and g.request_ids == ()
        assert g.first_seen.hour == 0 and g.last_seen.hour == 0  # whole days only


def test_hidden_mode_drops_text_even_if_a_row_carries_it() -> None:
    rows = [row(1, "secret words here", docs=("hr/a.md",)), row(2, "secret words here", docs=("hr/a.md",))]
    groups = gaps.build_groups(rows, show_text=False, closest=no_closest, doc_ref=ref)
    assert "secret" not in repr(groups)


def test_rows_whose_text_is_gone_fall_back_to_sources() -> None:
    rows = [row(1, "vacation days per year"), row(2, None, docs=("hr/leave.md",)), row(3, None)]
    groups = gaps.build_groups(rows, show_text=True, closest=no_closest, doc_ref=ref)
    assert sorted(g.basis for g in groups) == ["none", "questions", "sources"]
    gone = next(g for g in groups if g.basis == "none")
    assert "no longer kept" in gone.topic


def test_groups_are_capped() -> None:
    rows = [row(i, f"unique{i} topic{i}") for i in range(40)]
    assert len(gaps.build_groups(rows, show_text=True, closest=no_closest, doc_ref=ref)) == gaps.MAX_GROUPS


def _chunk(doc: str, audiences: tuple[tuple[str, ...], ...] = (), dept: str = "hr") -> SourceChunk:
    return SourceChunk(
        chunk_id=doc + "#0", doc_id=doc, department=dept, title=doc, path=doc, text="", score=0.5,
        audiences=audiences,
    )  # fmt: skip


def test_admin_scope_keeps_documents_every_admin_may_read() -> None:
    hank = Principal("hank@example.com", frozenset({"hr-admins"}))
    alice = Principal("alice@example.com")
    scope, admits = gaps.admin_scope("hr", [hank, alice])
    assert scope.department == "hr" and "hank@example.com" in scope.keys and "alice@example.com" in scope.keys
    assert admits(_chunk("hr/open.md"))
    assert not admits(_chunk("hr/secret.md", (("group:hr-admins",),)))
    assert not admits(_chunk("finance/open.md", dept="finance"))
    _, only_hank = gaps.admin_scope("hr", [hank])
    assert only_hank(_chunk("hr/secret.md", (("group:hr-admins",),)))


def test_admin_scope_fails_closed_without_known_admins() -> None:
    scope, admits = gaps.admin_scope("hr", [None])
    assert scope.keys == frozenset({"*"})
    assert admits(_chunk("hr/open.md")) and not admits(_chunk("hr/x.md", (("*",),)))


# ── through Insights, with a real index ──────────────────────────────────────────────


def test_which_rows_are_gaps(world: World) -> None:
    world.ask("hr", "dont know", status="dont_know")
    world.ask("hr", "sources only", status="sources_only")
    world.ask("hr", "weak answer", confidence=0.2)
    world.ask("hr", "good answer", confidence=0.9)
    world.vote(world.ask("hr", "good but disliked", confidence=0.9), "down")
    world.vote(world.ask("hr", "good and liked", confidence=0.9), "up")
    world.ask("hr", "denied", status="denied")
    world.ask("hr", "too old", status="dont_know", ago=timedelta(days=40))

    groups = world.insights().gaps("hr", 30, show_text=True)

    seen = {e for g in groups for e in g.examples}
    assert seen == {"dont know", "sources only", "weak answer", "good but disliked"}
    assert sum(g.dont_know for g in groups) == 1 and sum(g.low_confidence for g in groups) == 2
    assert sum(g.down for g in groups) == 1


def test_closest_documents_come_from_the_department_under_the_admin_scope(world: World) -> None:
    for _ in range(2):
        world.ask("hr", "How long do workplace investigations take?", status="dont_know")

    [group] = world.insights().gaps("hr", 30, show_text=True)
    assert group.closest and all(c.doc.doc_id.startswith("hr/") for c in group.closest)
    assert "hr/investigations.md" in {
        c.doc.doc_id for c in group.closest
    }  # hank, the only admin, may read it

    # an admin who may not read the investigations file: it is never offered
    world.set_department("hr", admins=["group:hr-admins", "alice@example.com"])
    [group] = world.insights().gaps("hr", 30, show_text=True)
    assert "hr/investigations.md" not in {c.doc.doc_id for c in group.closest}


def test_hidden_text_gaps_still_show_counts(world: World) -> None:
    for _ in range(3):
        world.ask("hr", "something unanswered", status="dont_know")
    for _ in range(2):
        world.ask("hr", "weak", confidence=0.1, doc_ids=["hr/time-off.md"])

    groups = world.insights().gaps("hr", 30, show_text=False)

    assert [(g.basis, g.count) for g in groups] == [("none", 3), ("sources", 2)]
    assert groups[1].topic == "Time off policy"


def test_a_sources_group_never_names_a_document_the_caller_may_not() -> None:
    rows = [row(1, None, docs=("hr/secret.md",)), row(2, None, docs=("hr/secret.md",))]
    [group] = gaps.build_groups(rows, show_text=False, closest=no_closest, doc_ref=lambda d: None)
    assert group.topic == gaps.RESTRICTED and group.closest == () and "secret" not in repr(group)
