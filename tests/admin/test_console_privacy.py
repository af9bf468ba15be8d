"""What the console must not reveal when a department keeps its questions from its admins
(``admins_see_questions`` off), what it must not count (eval traffic), and documents whose
audience the index does not state (they are restricted, never public)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from bot.core.ports import AuditEntry
from tests.admin.insights_setup import NOW, World


def _times(value: object) -> Iterator[datetime]:
    """Every datetime inside ``value`` (dataclasses, tuples, lists, dicts)."""
    if isinstance(value, datetime):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _times(getattr(value, f.name))
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _times(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _times(v)


# ── the feedback page with hidden text ───────────────────────────────────────────────


def test_hidden_feedback_is_folded_by_day_without_request_ids(world: World) -> None:
    """The gaps page's rule: no request ids, whole days, groups under two folded, only
    titles every admin may read. One 👎 with its exact time and a title points at one
    person's question."""
    assert world.company.department("hr").admins_see_questions is False
    rids = [
        world.ask("hr", f"vacation {k}", doc_ids=["hr/time-off.md"], ago=timedelta(hours=k + 1))
        for k in range(3)
    ]
    lone = world.ask("hr", "dress code?", doc_ids=["hr/old-handbook.md"], ago=timedelta(minutes=7))
    for rid in [*rids, lone]:
        world.vote(rid, "down")

    out = world.insights().feedback("hr", show_text=False)
    text = repr(out)

    for rid in [*rids, lone]:
        assert rid not in text
    times = list(_times(out))
    assert times and all((t.hour, t.minute, t.second, t.microsecond) == (0, 0, 0, 0) for t in times)
    assert "Old employee handbook" not in text  # a group of one: folded into "other"
    assert "Time off policy" in text  # three alike: named by the title every admin may read


def test_hidden_feedback_groups_count_and_fold(world: World) -> None:
    rids = [world.ask("hr", f"q{k}", doc_ids=["hr/time-off.md"]) for k in range(3)]
    rids.append(world.ask("hr", "lone", doc_ids=["hr/old-handbook.md"]))
    for rid in rids:
        world.vote(rid, "down")

    page = world.insights().feedback("hr", show_text=False)

    assert page.items == ()
    assert [(g.basis, g.count, g.down) for g in page.groups] == [("sources", 3, 3), ("other", 1, 1)]
    [top, other] = page.groups
    assert [c.doc.title for c in top.closest] == ["Time off policy"]
    assert top.request_ids == () and top.examples == () and other.closest == ()
    assert top.last_seen == NOW.replace(hour=0)


def test_shown_feedback_keeps_every_vote(world: World) -> None:
    world.set_department("hr", admins_see_questions=True)
    rid = world.ask("hr", "vacation?", doc_ids=["hr/time-off.md"])
    world.vote(rid, "down", "wrong")

    page = world.insights().feedback("hr", show_text=True)

    assert page.groups == ()
    assert [(f.request_id, f.question, f.reason) for f in page.items] == [(rid, "vacation?", "wrong")]


# ── documents whose audiences the index does not state ───────────────────────────────


def _drop_audiences(state: Path, doc_id: str, value: object = None) -> int:
    """Rewrite every served docs.json entry of ``doc_id``: no ``audiences`` key (or
    ``value`` in it); how many entries changed."""
    changed = 0
    for path in state.rglob("docs.json"):
        docs = json.loads(path.read_text(encoding="utf-8"))
        for d in docs:
            if d.get("doc_id") == doc_id:
                if value is None:
                    d.pop("audiences", None)
                else:
                    d["audiences"] = value
                changed += 1
        path.write_text(json.dumps(docs), encoding="utf-8")
    return changed


def test_a_document_without_audiences_is_counted_never_named(world: World) -> None:
    assert _drop_audiences(world.state, "hr/time-off.md") >= 1
    world.vote(world.ask("hr", "vacation?", doc_ids=["hr/time-off.md"]), "down")

    ins = world.insights()
    r = ins.documents("hr", 30)

    named = {c.doc.doc_id for c in r.most_cited} | {d.doc_id for d in r.never_cited}
    assert "hr/time-off.md" not in named
    assert r.restricted.unlisted == 1
    assert "time off" not in repr(r).lower()


def test_a_document_with_unreadable_audiences_is_counted_never_named(world: World) -> None:
    assert _drop_audiences(world.state, "hr/time-off.md", value="hr-admins") >= 1

    r = world.insights().documents("hr", 30)

    assert "hr/time-off.md" not in {d.doc_id for d in r.never_cited}
    assert r.restricted.unlisted == 1


# ── eval traffic is not people's questions ───────────────────────────────────────────


def _eval_row(world: World, status: str, doc_ids: tuple[str, ...] = (), platform: str = "eval") -> str:
    rid = f"ev{len(world.audit.tail(1000)):010d}"
    world.audit.record(
        AuditEntry(
            request_id=rid,
            time=NOW - timedelta(hours=2),
            user="eval@example.com",
            platform=platform,
            decision="allowed",
            rule="ask",
            status=status,
            department="hr",
            question="an eval question",
            doc_ids=doc_ids,
            generator="extractive" if status == "answered" else "none",
            route="local" if status == "answered" else "none",
            confidence=0.1,
            latency_ms=50.0,
        )
    )
    return rid


def test_console_counts_leave_eval_traffic_out(world: World) -> None:
    world.set_department("hr", admins_see_questions=True)
    mine = world.ask("hr", "a real question", doc_ids=["hr/time-off.md"])
    _eval_row(world, "dont_know")
    low = _eval_row(world, "answered", ("hr/investigations.md",))
    world.vote(low, "down", "eval vote")

    ins = world.insights()
    o = ins.overview("hr", 7)
    assert o.totals.total == 1 and o.totals.dont_know == 0
    assert (o.satisfaction.up, o.satisfaction.down) == (0, 0)
    assert ins.gaps("hr", 7, show_text=True) == []
    cited = {c.doc.doc_id for c in ins.documents("hr", 7).most_cited}
    assert cited == {"hr/time-off.md"}
    assert "eval vote" not in repr(ins.feedback("hr", show_text=True))
    assert mine
