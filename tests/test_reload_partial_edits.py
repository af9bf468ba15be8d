"""An edit that is only partly valid, applied through the real ``ConfigWatcher.poll``:
the access served is never wider than what the old AND the new files give, removals made
in the same edit take effect, and the admins' notices say what was actually applied
(review session 21, findings 2, 3 and 9).
"""

from __future__ import annotations

import pytest

from bot.config import Company
from bot.core.pipeline import Assistant
from bot.core.types import Status
from bot.reload import ConfigWatcher
from bot.store.notices import MemoryNotices
from tests.fakes import GROUPS
from tests.test_reload import DEPT, _ask, _sees_payroll, _write

NO_CAROL = GROUPS.replace("finance-admins: [carol@example.com]", "finance-admins: []")


@pytest.fixture
def notices() -> MemoryNotices:
    return MemoryNotices()


@pytest.fixture
def watcher(assistant: Assistant, company: Company, notices: MemoryNotices) -> ConfigWatcher:
    return ConfigWatcher(assistant=assistant, root=company.root, notices=notices, interval=0)


# ── finding 2: groups.yaml ───────────────────────────────────────────────────────────


def test_one_unreadable_group_value_empties_that_group_only_and_removals_apply(
    assistant: Assistant, company: Company, watcher: ConfigWatcher, notices: MemoryNotices
) -> None:
    """carol is removed from finance-admins in the same edit that writes a group without
    its list dash: the removal applies; the group with the bad value is empty (bob loses
    engineering); the new group is not added; untouched groups keep their members."""
    assert _sees_payroll(assistant, "carol@example.com")
    edit = NO_CAROL.replace("engineering: [bob@example.com]", "engineering: bob@example.com")
    _write(company, "groups.yaml", edit + "new-auditors: grace@example.com\n")
    watcher.poll()
    assert not _sees_payroll(assistant, "carol@example.com")
    groups = assistant.company.groups
    assert groups["engineering"] == frozenset() and "new-auditors" not in groups
    assert groups["hr-admins"] == {"hank@example.com"} and groups["finance-team"] == {
        "carol@example.com",
        "dave@example.com",
    }
    assert _ask(assistant, "bob@example.com", "production deploys", "eng").status == Status.DENIED
    assert assistant.is_admin("hank@example.com", "hr")
    texts = [n.text for n in notices.items]
    assert any("engineering" in t and "empty until" in t for t in texts), texts
    assert not any("serving the narrower" in t for t in texts)


def test_duplicate_group_name_pauses_every_group_and_says_so(
    assistant: Assistant, company: Company, watcher: ConfigWatcher, notices: MemoryNotices
) -> None:
    """A duplicate key makes groups.yaml unreadable: what the edit removed cannot be known,
    so no old member keeps a group grant (fail closed), and the notice says exactly that.
    Fixing the file restores the new groups at the next poll."""
    _write(company, "groups.yaml", NO_CAROL + "hr-team: [grace@example.com]\n")
    watcher.poll()
    assert not _sees_payroll(assistant, "carol@example.com")
    assert all(members == frozenset() for members in assistant.company.groups.values())
    assert not assistant.is_admin("hank@example.com", "hr")
    offer = _ask(assistant, "alice@example.com", "Sam Lee", "hr", template="offer-letter")
    assert offer.status == Status.DENIED
    # grants that do not go through a group stay as they were
    assert _ask(assistant, "dave@example.com", "meal expenses per day", "finance").status == Status.ANSWERED
    paused = [n for n in notices.items if n.kind == "groups-paused"]
    assert len(paused) == 1 and paused[0].department is None
    assert "groups.yaml:6" in paused[0].text and "every group is empty" in paused[0].text
    assert not any("groups.yaml" in n.text for n in notices.items if n.kind == "config-invalid")

    _write(company, "groups.yaml", NO_CAROL)
    assert watcher.poll() is True
    assert assistant.is_admin("hank@example.com", "hr") and not _sees_payroll(assistant, "carol@example.com")
    assert notices.items[-1].kind == "config-reloaded"


def test_groups_yaml_that_is_not_a_mapping_pauses_every_group(
    assistant: Assistant, company: Company, watcher: ConfigWatcher, notices: MemoryNotices
) -> None:
    _write(company, "groups.yaml", "- carol@example.com\n")
    watcher.poll()
    assert not _sees_payroll(assistant, "carol@example.com")
    assert [n.kind for n in notices.items] == ["groups-paused"]


# ── finding 3: privacy settings of an invalid department file ────────────────────────


def test_invalid_department_file_applies_stricter_privacy_settings(
    assistant: Assistant, company: Company, watcher: ConfigWatcher, notices: MemoryNotices
) -> None:
    """Turning question text off and adding a sensitive keyword take effect even though
    another line has a typo; turning text on or dropping a keyword waits for a valid file."""
    base = DEPT["finance"] + 'admins_see_questions: true\nsensitive_keywords: ["pay slip"]\n'
    _write(company, "finance.yaml", base)
    assert watcher.poll() is True
    assert assistant.company.department("finance").admins_see_questions is True

    stricter = base.replace("admins_see_questions: true", "admins_see_questions: false").replace(
        '["pay slip"]', '["pay slip", "severance"]'
    )
    _write(company, "finance.yaml", stricter + "descripton: typo\n")
    watcher.poll()
    finance = assistant.company.department("finance")
    assert finance.admins_see_questions is False
    assert finance.sensitive_keywords == ["pay slip", "severance"]
    assert any(n.kind == "config-invalid" and "descripton" in n.text for n in notices.items)

    _write(
        company,
        "finance.yaml",
        DEPT["finance"] + "admins_see_questions: true\nsensitive_keywords: []\noops: 1\n",
    )
    watcher.poll()
    finance = assistant.company.department("finance")
    # judged against the last valid file: true AND true, ["pay slip"] ∪ []
    assert finance.admins_see_questions is True and finance.sensitive_keywords == ["pay slip"]
    _write(company, "finance.yaml", base.replace("true", "yes please") + "oops: 1\n")
    watcher.poll()
    assert assistant.company.department("finance").admins_see_questions is False  # unreadable: off


# ── finding 9: a failed on_applied is retried ────────────────────────────────────────


def test_failed_on_applied_is_retried_at_the_next_poll(
    assistant: Assistant, company: Company, notices: MemoryNotices
) -> None:
    calls: list[int | str | None] = []

    def on_applied(served: Company) -> None:
        calls.append(served.department("eng").refresh)
        if len(calls) == 1:
            raise RuntimeError("scheduler briefly unavailable")

    watcher = ConfigWatcher(
        assistant=assistant, root=company.root, notices=notices, interval=0, on_applied=on_applied
    )
    _write(company, "eng.yaml", DEPT["eng"] + "refresh: 60\n")
    assert watcher.poll() is True
    assert calls == [60]
    watcher.poll()
    assert calls == [60, 60]  # retried with the configuration being served
    watcher.poll()
    assert calls == [60, 60]  # and not again once it worked
    kinds = [n.kind for n in notices.items]
    assert kinds == ["config-reloaded", "config-schedules-failed", "config-schedules-applied"]


def test_a_schedule_failure_that_persists_is_logged_once_an_hour_not_every_poll(
    assistant: Assistant, company: Company, notices: MemoryNotices, caplog: pytest.LogCaptureFixture
) -> None:
    """Review R3: every 2 s poll logged a warning while the schedules stayed unapplied
    (~43,000 lines a day); one reminder an hour now, the retries continue."""
    calls: list[int] = []

    def on_applied(served: Company) -> None:
        calls.append(1)
        raise RuntimeError("scheduler down")

    watcher = ConfigWatcher(
        assistant=assistant, root=company.root, notices=notices, interval=2, on_applied=on_applied
    )
    _write(company, "eng.yaml", DEPT["eng"] + "refresh: 60\n")
    with caplog.at_level("WARNING", logger="bot.reload"):
        watcher.poll()
        for _ in range(100):
            watcher.poll()
    assert len(calls) == 101  # retried at every poll
    reminders = [r for r in caplog.records if "still could not apply" in r.getMessage()]
    assert reminders == []  # 100 polls of 2 s: under an hour
