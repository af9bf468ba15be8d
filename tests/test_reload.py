"""Configuration reload: an edit on disk reaches the running assistant, and an invalid edit
never widens access (issue 8, class 6: "a person removed from finance-admins in groups.yaml
still read payroll through the running server").

Each test edits the files of a real company on disk and runs one ``poll()`` — no threads,
no sleeping.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from bot.config import Company
from bot.core.pipeline import Assistant
from bot.core.types import Answer, Classification, Status
from bot.core.types import Message as Msg
from bot.reload import ConfigWatcher, narrowed, start_config_watcher
from bot.settings import Settings
from bot.store.notices import MemoryNotices
from tests.fakes import CANARIES, DEPARTMENTS, GROUPS

DEPT = {name: textwrap.dedent(body) for name, body in DEPARTMENTS.items()}

PAYROLL = "payroll salary band L3 and payroll dates code"


def _ask(assistant: Assistant, user: str, text: str, department: str, **kw: object) -> Answer:
    return assistant.ask(Msg(user_id=user, email=user, text=text, department=department, **kw))  # type: ignore[arg-type]


def _sees_payroll(assistant: Assistant, user: str) -> bool:
    answer = _ask(assistant, user, PAYROLL, "finance")
    return answer.status != Status.DENIED and CANARIES["payroll"] in repr(answer)


def _write(company: Company, name: str, text: str) -> None:
    (company.root / name).write_text(textwrap.dedent(text))


@pytest.fixture
def notices() -> MemoryNotices:
    return MemoryNotices()


@pytest.fixture
def watcher(assistant: Assistant, company: Company, notices: MemoryNotices) -> ConfigWatcher:
    return ConfigWatcher(assistant=assistant, root=company.root, notices=notices)


def _kinds(notices: MemoryNotices) -> list[str]:
    return [n.kind for n in notices.items]


# ── through a real Assistant ─────────────────────────────────────────────────────────


def test_person_removed_from_a_group_loses_access_after_one_poll(
    assistant: Assistant, company: Company, watcher: ConfigWatcher, notices: MemoryNotices
) -> None:
    assert _sees_payroll(assistant, "carol@example.com")
    _write(
        company, "groups.yaml", GROUPS.replace("finance-admins: [carol@example.com]", "finance-admins: []")
    )
    assert watcher.poll() is True
    assert not _sees_payroll(assistant, "carol@example.com")
    assert not assistant.is_admin("carol@example.com", "finance")
    assert _kinds(notices) == ["config-reloaded"] and "groups.yaml" in notices.items[0].text


def test_valid_reload_that_widens_access_applies(
    assistant: Assistant, company: Company, watcher: ConfigWatcher
) -> None:
    assert _ask(assistant, "grace@example.com", "production deploys", "eng").status == Status.DENIED
    _write(
        company,
        "groups.yaml",
        GROUPS.replace("engineering: [bob@example.com]", "engineering: [bob@example.com, grace@example.com]"),
    )
    _write(company, "legal.yaml", "title: Legal\nknowledge: ../knowledge/legal\nask: ['*@example.com']\n")
    (company.root.parent / "knowledge" / "legal").mkdir()
    watcher.poll()
    assert _ask(assistant, "grace@example.com", "production deploys", "eng").status == Status.ANSWERED
    assert "legal" in assistant.company.departments


def test_invalid_edit_that_removes_a_person_narrows_while_others_keep_access(
    assistant: Assistant, company: Company, watcher: ConfigWatcher, notices: MemoryNotices
) -> None:
    # groups.yaml drops carol from finance-admins but also holds a mistake, so the new
    # configuration is invalid: the old one must not stay in force for carol.
    bad_groups = GROUPS.replace("finance-admins: [carol@example.com]", "finance-admins: []")
    bad_groups = bad_groups.replace(
        "hr-team: [alice@example.com, hank@example.com]",
        "hr-team: [alice@example.com, hank@example.com, hank at example]",
    )
    _write(company, "groups.yaml", bad_groups)
    # eng.yaml adds frank and misspells a field: frank is not added while invalid.
    _write(
        company,
        "eng.yaml",
        DEPT["eng"].replace(
            'ask: ["group:engineering"]',
            'ask: ["group:engineering", "frank@example.com"]\nclasification: public',
        ),
    )
    watcher.poll()
    assert not _sees_payroll(assistant, "carol@example.com")  # narrower: removed
    assert _ask(assistant, "dave@example.com", "meal expenses per day", "finance").status == Status.ANSWERED
    offer = _ask(assistant, "alice@example.com", "Sam Lee", "hr", template="offer-letter")
    assert offer.status != Status.DENIED  # alice still in hr-team
    assert _ask(assistant, "bob@example.com", "production deploys", "eng").status == Status.ANSWERED
    assert _ask(assistant, "frank@example.com", "production deploys", "eng").status == Status.DENIED
    texts = [n.text for n in notices.items if n.kind == "config-invalid"]
    assert any("groups.yaml:1: hr-team[2]:" in t for t in texts)
    assert any("eng.yaml:6: clasification: unknown field" in t for t in texts)
    assert "config-reloaded" not in _kinds(notices)


def test_invalid_department_file_narrows_each_access_list(
    assistant: Assistant, company: Company, watcher: ConfigWatcher
) -> None:
    _write(
        company,
        "finance.yaml",
        """\
        title: Finance
        knowledge: ../knowledge/finance
        classification: restricted
        admins: []
        ask: ["*@example.com", "*@partner.example"]
        route: private
        channels:
          slack: ["C0FIN"]
        tier: huge
        """,
    )
    watcher.poll()
    finance = assistant.company.department("finance")
    assert finance.admins == [] and finance.ask == ["*@example.com"]
    assert finance.classification is Classification.RESTRICTED and finance.route == "private"
    assert finance.tier is None  # everything else stays as it was
    assert not assistant.is_admin("carol@example.com", "finance")


def test_unreadable_department_file_pauses_the_department(
    assistant: Assistant, company: Company, watcher: ConfigWatcher, notices: MemoryNotices
) -> None:
    _write(company, "finance.yaml", "title: Finance\nknowledge: ../knowledge/finance\nask: [unclosed\n")
    watcher.poll()
    for user in ("carol@example.com", "dave@example.com"):
        assert _ask(assistant, user, "meal expenses per day", "finance").status == Status.DENIED
    assert not assistant.is_admin("carol@example.com", "finance")
    assert (
        _ask(assistant, "alice@example.com", "How many vacation days do I get?", "hr").status
        == Status.ANSWERED
    )
    paused = [n for n in notices.items if n.kind == "department-paused"]
    assert len(paused) == 1 and paused[0].department == "finance" and "finance.yaml:" in paused[0].text


def test_new_department_is_not_added_and_deleted_one_is_removed_while_invalid(
    assistant: Assistant, company: Company, watcher: ConfigWatcher
) -> None:
    (company.root.parent / "knowledge" / "legal").mkdir()
    _write(company, "legal.yaml", "title: Legal\nknowledge: ../knowledge/legal\nask: ['*']\nbogus: 1\n")
    (company.root / "eng.yaml").unlink()
    watcher.poll()
    assert set(assistant.company.departments) == {"hr", "finance"}


def test_alias_bomb_during_reload_is_refused_quickly(
    assistant: Assistant, company: Company, watcher: ConfigWatcher, notices: MemoryNotices
) -> None:
    bomb = "engineering: &a [bob@example.com]\n" + "".join(
        f"l{i}: &l{i} [{', '.join([f'*{prev}'] * 9)}]\n"
        for i, prev in enumerate(["a", *(f"l{j}" for j in range(8))])
    )
    _write(company, "groups.yaml", bomb)
    started = time.perf_counter()
    watcher.poll()
    assert time.perf_counter() - started < 1.0
    # unreadable groups.yaml: group grants pause (every group empty) until it is fixed
    assert not _sees_payroll(assistant, "carol@example.com")
    assert any(
        n.kind == "groups-paused" and "groups.yaml:2" in n.text and "alias" in n.text for n in notices.items
    )


def test_nothing_changed_means_nothing_happens(
    assistant: Assistant, watcher: ConfigWatcher, notices: MemoryNotices
) -> None:
    before = assistant.company
    assert watcher.poll() is False
    assert assistant.company is before and notices.items == []


def test_fixing_the_mistake_restores_the_new_configuration(
    assistant: Assistant, company: Company, watcher: ConfigWatcher, notices: MemoryNotices
) -> None:
    _write(company, "finance.yaml", "title: Finance\nknowledge: ../knowledge/finance\nask: [unclosed\n")
    watcher.poll()
    assert _ask(assistant, "dave@example.com", "meal expenses per day", "finance").status == Status.DENIED
    _write(company, "finance.yaml", DEPT["finance"])
    watcher.poll()
    assert _ask(assistant, "dave@example.com", "meal expenses per day", "finance").status == Status.ANSWERED
    assert _kinds(notices)[-1] == "config-reloaded"


# ── narrowed() without an Assistant ──────────────────────────────────────────────────


def test_narrowed_groups_are_the_intersection_and_missing_groups_are_empty(company: Company) -> None:
    _write(
        company,
        "groups.yaml",
        "hr-team: [alice@example.com, grace@example.com]\n"
        "hr-admins: [hank@example.com]\nbogus: [x@example.com]\n",
    )
    _write(company, "hr.yaml", DEPT["hr"] + "unknown_field: 1\n")
    new, problems = narrowed(company, company.root)
    assert problems
    assert new.groups["hr-team"] == {"alice@example.com"}
    assert new.groups["hr-admins"] == {"hank@example.com"}
    assert new.groups["finance-admins"] == frozenset() and "bogus" not in new.groups


def test_narrowed_empties_every_group_when_groups_yaml_is_not_a_mapping(company: Company) -> None:
    _write(company, "groups.yaml", "- alice@example.com\n")
    new, problems = narrowed(company, company.root)
    assert problems and set(new.groups) == set(company.groups)
    assert all(members == frozenset() for members in new.groups.values())


def test_narrowed_channel_audience_only_gains_readers(company: Company) -> None:
    """A channel audience lists who can read the channel; every one must be covered, so
    fewer declared readers would let more through. Narrowing keeps old ∪ new."""
    hr = DEPT["hr"].replace("  teams: []\n", '  teams: []\n  audience:\n    C0HRHELP: ["group:hr-team"]\n')
    _write(company, "hr.yaml", hr)
    valid, problems = narrowed(company, company.root)
    assert problems == []
    _write(company, "hr.yaml", hr.replace('["group:hr-team"]', '["*@example.com"]') + "oops: 1\n")
    new, problems = narrowed(valid, company.root)
    assert problems
    assert new.department("hr").channels.audience == {"C0HRHELP": ["group:hr-team", "*@example.com"]}


def test_valid_configuration_comes_back_unchanged(company: Company) -> None:
    new, problems = narrowed(company, company.root)
    assert problems == [] and new == company


# ── the thread ───────────────────────────────────────────────────────────────────────


def test_start_config_watcher_runs_in_the_background_and_stops(
    assistant: Assistant, company: Company, tmp_path: Path, notices: MemoryNotices
) -> None:
    override = tmp_path / "fast.toml"
    override.write_text("[config]\nreload_seconds = 0.05\n")
    settings = Settings.load(
        departments=company.root, state=tmp_path / "state", settings_file=override, env={}
    )
    handle = start_config_watcher(assistant, settings, notices)
    try:
        _write(
            company,
            "groups.yaml",
            GROUPS.replace("finance-admins: [carol@example.com]", "finance-admins: []"),
        )
        deadline = time.monotonic() + 5
        while _sees_payroll(assistant, "carol@example.com") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _sees_payroll(assistant, "carol@example.com")
    finally:
        handle.stop()
    assert not handle.running


def test_reload_seconds_zero_starts_nothing(assistant: Assistant, company: Company, tmp_path: Path) -> None:
    override = tmp_path / "off.toml"
    override.write_text("[config]\nreload_seconds = 0\n")
    settings = Settings.load(
        departments=company.root, state=tmp_path / "state", settings_file=override, env={}
    )
    handle = start_config_watcher(assistant, settings, MemoryNotices())
    assert not handle.running
    handle.stop()


def test_invalid_file_that_adds_a_pilot_or_disables_narrows_at_once(
    assistant: Assistant, company: Company, watcher: ConfigWatcher
) -> None:
    """A pilot added (with one bad entry) or ``enabled: off`` in a file that fails to load
    still takes effect: the department narrows instead of staying open until it is fixed."""
    _write(
        company,
        "finance.yaml",
        """\
        title: Finance
        knowledge: ../knowledge/finance
        admins: ["carol@example.com"]
        ask: ["*@example.com"]
        pilot: ["carol@example.com", "not an entry!"]
        tier: huge
        """,
    )
    watcher.poll()
    finance = assistant.company.department("finance")
    assert finance.pilot == ["carol@example.com"]
    assert _ask(assistant, "dave@example.com", "meal expenses per day", "finance").status == Status.DENIED
    _write(
        company,
        "finance.yaml",
        """\
        title: Finance
        knowledge: ../knowledge/finance
        enabled: "off"
        tier: huge
        """,
    )
    watcher.poll()
    assert assistant.company.department("finance").enabled is False
    assert _ask(assistant, "carol@example.com", "meal expenses per day", "finance").status == Status.DENIED


def test_invalid_file_can_make_pii_stricter_but_never_looser(
    assistant: Assistant, company: Company, watcher: ConfigWatcher
) -> None:
    """``pii`` only tightens from a file that fails to load (redact → route_private → block),
    always judged against the last configuration that loaded."""
    _write(company, "finance.yaml", DEPT["finance"] + "pii: redact\n")
    watcher.poll()
    assert assistant.company.department("finance").pii == "redact"
    body = "title: Finance\nknowledge: ../knowledge/finance\ntier: huge\npii: {}\n"
    _write(company, "finance.yaml", body.format("block"))
    watcher.poll()
    assert assistant.company.department("finance").pii == "block"
    _write(company, "finance.yaml", body.format("route_private") + "# edited\n")
    watcher.poll()
    assert assistant.company.department("finance").pii == "route_private"
    _write(company, "finance.yaml", body.format("no-such-mode"))
    watcher.poll()
    assert assistant.company.department("finance").pii == "redact"  # unreadable: the last valid
