"""Pilot rollout (issue 11 item 6): ``enabled: false`` and ``pilot:`` narrow who may ask a
department, through the same ``may_ask`` every path uses; a bad entry refuses to load."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bot.config import Company, load_company
from bot.core.pipeline import Assistant
from bot.core.types import Answer, ChannelReaders, Message, Status
from bot.errors import ConfigError
from tests.fakes import (
    DEPARTMENTS,
    FakeIndexer,
    FakeRetriever,
    MemoryAudit,
    RecordingGenerator,
    chunks_from_folder,
    make_company,
)

FINANCE = textwrap.dedent(DEPARTMENTS["finance"])
PILOT_LINE = "Finance is in a pilot with a small group for now; ask carol@example.com to join."


def _company(tmp_path: Path, extra: str) -> Company:
    make_company(tmp_path)
    (tmp_path / "departments" / "finance.yaml").write_text(FINANCE + extra)
    return load_company(tmp_path / "departments")


def _assistant(
    company: Company, audit: MemoryAudit, generator: RecordingGenerator | None = None
) -> Assistant:
    from bot.llm.extractive import ExtractiveGenerator

    return Assistant(
        company=company,
        retriever=FakeRetriever([c for d in company for c in chunks_from_folder(d)]),
        indexer=FakeIndexer(),
        generator=generator or RecordingGenerator(ExtractiveGenerator()),
        audit=audit,
    )


def _ask(assistant: Assistant, user: str, text: str, **kw: object) -> Answer:
    return assistant.ask(Message(user_id=user, email=user, text=text, **kw))  # type: ignore[arg-type]


MEALS = "How much are meal expenses reimbursed per day?"


def test_disabled_department_denies_everyone_with_the_line_and_audits_it(tmp_path: Path) -> None:
    from bot.llm.extractive import ExtractiveGenerator

    audit, gen = MemoryAudit(), RecordingGenerator(ExtractiveGenerator())
    assistant = _assistant(_company(tmp_path, "enabled: false\n"), audit, gen)
    for user in ("dave@example.com", "carol@example.com"):  # an admin may not ask it either
        a = _ask(assistant, user, MEALS, department="finance")
        assert a.status is Status.DENIED
        assert a.text == "Finance isn't taking questions yet; ask carol@example.com when it will."
        row = audit.entries[-1]
        assert (row.decision, row.rule, row.department) == ("denied", "disabled", "finance")
    assert gen.requests == []
    # auto-routing never picks it: the meal question goes elsewhere or is not known
    auto = _ask(assistant, "dave@example.com", MEALS)
    assert auto.department != "finance" and "60 dollars" not in auto.text
    assert "finance" not in [d.name for d in assistant.departments_for("dave@example.com")]


def test_pilot_member_is_answered_and_others_get_the_pilot_line(tmp_path: Path) -> None:
    audit = MemoryAudit()
    company = _company(tmp_path, 'pilot: ["dave@example.com", "group:finance-admins"]\n')
    assistant = _assistant(company, audit)
    ok = _ask(assistant, "dave@example.com", MEALS, department="finance")
    assert ok.status is Status.ANSWERED and "60 dollars" in ok.text
    assert audit.entries[-1].rule == "pilot:dave@example.com"
    no = _ask(assistant, "alice@example.com", MEALS, department="finance")
    assert no.status is Status.DENIED and no.text == PILOT_LINE
    assert (audit.entries[-1].decision, audit.entries[-1].rule) == ("denied", "pilot:no-match")
    # the channel mapped to Finance routes explicitly, and still refuses non-members
    mapped = _ask(assistant, "alice@example.com", MEALS, platform="slack", channel="C0FIN")
    assert mapped.status is Status.DENIED and mapped.text == PILOT_LINE


def test_auto_routing_skips_a_pilot_the_asker_is_outside_of(tmp_path: Path) -> None:
    company = _company(tmp_path, 'pilot: ["dave@example.com"]\n')
    assistant = _assistant(company, MemoryAudit())
    member = _ask(assistant, "dave@example.com", "meal expenses receipts")
    assert member.department == "finance" and member.status is Status.ANSWERED
    outsider = _ask(assistant, "alice@example.com", "meal expenses receipts")
    assert outsider.department != "finance" and "60 dollars" not in outsider.text
    assert [d.name for d in assistant.departments_for("alice@example.com")] == ["hr"]


def test_pilot_channel_admits_whoever_asks_there_and_only_there(tmp_path: Path) -> None:
    company = _company(tmp_path, 'pilot: ["carol@example.com", "channel:C0PILOT"]\n')
    assistant = _assistant(company, MemoryAudit())
    there = _ask(assistant, "alice@example.com", MEALS, department="finance", channel="C0PILOT")
    assert there.status is Status.ANSWERED
    elsewhere = _ask(assistant, "alice@example.com", MEALS, department="finance", channel="C0OTHER")
    assert elsewhere.status is Status.DENIED
    # the pilot still only narrows ``ask``: someone the department does not answer stays out
    assert company.department("finance").pilot_channels == frozenset({"C0PILOT"})


def test_sharing_into_a_channel_needs_every_reader_in_the_pilot(tmp_path: Path) -> None:
    company = _company(tmp_path, 'pilot: ["dave@example.com", "carol@example.com"]\n')
    assistant = _assistant(company, MemoryAudit())
    dept = company.department("finance")
    policy = assistant.policy
    inside = ChannelReaders(emails=frozenset({"dave@example.com", "carol@example.com"}))
    mixed = ChannelReaders(emails=frozenset({"dave@example.com", "alice@example.com"}))
    principal_of = assistant.directory.principal
    assert policy.channel_verdict(dept, "C1", inside, [], principal_of=principal_of).allowed
    verdict = policy.channel_verdict(dept, "C1", mixed, [], principal_of=principal_of)
    assert (verdict.allowed, verdict.rule) == (False, "channel:member-not-allowed")


def test_empty_pilot_admits_nobody(tmp_path: Path) -> None:
    assistant = _assistant(_company(tmp_path, "pilot: []\n"), MemoryAudit())
    assert _ask(assistant, "carol@example.com", MEALS, department="finance").status is Status.DENIED


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("dave at example", "is not an access entry"),
        ("channel:", "is not a channel entry"),
        ("channel:has space", "is not a channel entry"),
    ],
)
def test_bad_pilot_entry_is_a_config_error_with_file_line_and_field(
    tmp_path: Path, entry: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as err:
        _company(tmp_path, f'pilot:\n  - "dave@example.com"\n  - "{entry}"\n')
    assert err.value.file is not None and err.value.file.endswith("finance.yaml")
    assert err.value.field == "pilot.1" and problem in str(err.value)
    assert err.value.line == FINANCE.count("\n") + 3  # the bad item's own line


def test_unknown_group_in_pilot_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _company(tmp_path, 'pilot: ["group:nope"]\n')
    assert err.value.field == "pilot[0]" and "nope" in str(err.value)


def test_check_lists_disabled_and_pilot_departments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli.app import main

    _company(tmp_path, 'pilot: ["dave@example.com", "channel:C0PILOT"]\n')
    (tmp_path / "departments" / "eng.yaml").write_text(
        textwrap.dedent(DEPARTMENTS["eng"]) + "enabled: false\n"
    )
    code = main(["--departments", str(tmp_path / "departments"), "--state", str(tmp_path / "state"), "check"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "pilot: 1 entry, 1 channel" in out
    assert "disabled (enabled: false: nobody may ask)" in out


def test_kb_status_titles_say_pilot_or_disabled(tmp_path: Path) -> None:
    from bot.adapters.render import status_title

    pilot = _company(tmp_path / "a", 'pilot: ["carol@example.com"]\n').department("finance")
    off = _company(tmp_path / "b", "enabled: false\n").department("finance")
    plain = _company(tmp_path / "c", "").department("finance")
    titles = [status_title(d) for d in (pilot, off, plain)]
    assert titles == ["Finance (pilot)", "Finance (disabled)", "Finance"]
