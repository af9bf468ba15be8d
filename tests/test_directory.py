"""Directory groups (issue 13): ``groups.yaml`` sources, the sync that fills them and fails
closed, and configuration reload with synced groups.

Every source here is a fake ``GroupSource`` (a dict the test mutates, which can be made
to raise ``SourceError``); the real Slack, Entra ID and SCIM sources are tested in
``tests/directory/``. Time is a fake clock; the background thread is driven with
``tick()`` except in one test that runs it for real.
"""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path

import pytest

from bot.config import Company, GroupRef, check_company, load_company
from bot.core.pipeline import Assistant
from bot.directory.source import SourceError
from bot.directory.sync import DirectorySync
from bot.errors import ConfigError
from bot.reload import ConfigWatcher, narrowed
from bot.store.notices import MemoryNotices
from tests.fakes import GROUPS, FakeIndexer, FakeRetriever, MemoryAudit, chunks_from_folder, make_company

GUID = "9f1c2a4e-0b1d-4c3e-8f5a-1b2c3d4e5f60"
OTHER = "0d6e3b1a-5c4f-4e2d-9a8b-7c6d5e4f3a21"
ONE = "a group comes from exactly one source: slack, entra or scim"
SOURCED = GROUPS.replace("finance-admins: [carol@example.com]", f"finance-admins: {{entra: {GUID}}}")


class FakeSource:
    """A GroupSource over a dict: ref → e-mails. ``down`` makes every read fail."""

    def __init__(self, kind: str, groups: dict[str, set[str]]) -> None:
        self.kind = kind
        self.groups = groups
        self.down: str | None = None
        self.calls: list[str] = []

    def members(self, ref: str) -> frozenset[str]:
        self.calls.append(ref)
        if self.down is not None:
            raise SourceError(self.down)
        if ref not in self.groups:
            raise SourceError("group not found")
        return frozenset(self.groups[ref])


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:  # 2027-01-15 08:00 UTC
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def notices() -> MemoryNotices:
    return MemoryNotices()


@pytest.fixture
def entra() -> FakeSource:
    return FakeSource("entra", {GUID: {"carol@example.com"}, OTHER: {"erin@example.com"}})


@pytest.fixture
def sync(entra: FakeSource, notices: MemoryNotices, clock: Clock) -> DirectorySync:
    return DirectorySync({"entra": entra}, ttl_seconds=300, grace_seconds=120, notices=notices, clock=clock)


@pytest.fixture
def sourced(tmp_path: Path) -> Company:
    """The tiny company with finance-admins read from Entra ID."""
    make_company(tmp_path)
    (tmp_path / "departments" / "groups.yaml").write_text(SOURCED)
    return load_company(tmp_path / "departments")


@pytest.fixture
def assistant(sourced: Company) -> Assistant:
    return Assistant(
        company=sourced,
        retriever=FakeRetriever([c for d in sourced for c in chunks_from_folder(d)]),
        indexer=FakeIndexer(),
        generator=object(),  # type: ignore[arg-type]  # these tests only ask who may do what
        audit=MemoryAudit(),
    )


def _write_groups(company: Company, text: str) -> None:
    (company.root / "groups.yaml").write_text(textwrap.dedent(text))


def _problems(tmp_path: Path, groups: str) -> list[str]:
    make_company(tmp_path)
    (tmp_path / "departments" / "groups.yaml").write_text(textwrap.dedent(groups))
    _, problems = check_company(tmp_path / "departments")
    return [str(p).removeprefix(str(tmp_path / "departments") + "/") for p in problems]


# ── groups.yaml ──────────────────────────────────────────────────────────────────────


def test_a_group_may_name_one_source_and_starts_empty(sourced: Company) -> None:
    assert sourced.sources == {"finance-admins": GroupRef("entra", GUID)}
    assert sourced.groups["finance-admins"] == frozenset()  # fail closed until read
    assert sourced.groups["finance-team"] == {"carol@example.com", "dave@example.com"}
    assert sourced.department("finance").admins == ["group:finance-admins"]  # the reference resolves


def test_every_kind_of_reference_is_read_as_written(tmp_path: Path) -> None:
    make_company(tmp_path)
    (tmp_path / "departments" / "groups.yaml").write_text(
        GROUPS
        + 'helpers: {slack: "@hr-help"}\nbyid: {slack: S0123ABC}\n'
        + f"upper: {{entra: {GUID.upper()}}}\nops: {{scim: Ops Team}}\n"
    )
    company = load_company(tmp_path / "departments")
    assert company.sources == {
        "helpers": GroupRef("slack", "@hr-help"),
        "byid": GroupRef("slack", "S0123ABC"),
        "upper": GroupRef("entra", GUID),  # object ids compare lower-case
        "ops": GroupRef("scim", "Ops Team"),
    }


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("{okta: x}", "groups.yaml:6: ops.okta: unknown source 'okta' (use slack, entra or scim)"),
        (
            "{Slack: '@x'}",
            "groups.yaml:6: ops.Slack: unknown source 'Slack' (use slack, entra or scim); did you mean",
        ),
        (
            "{}",
            f"groups.yaml:6: ops: names no source; {ONE}",
        ),
        (
            "{slack: '@x', scim: y}",
            f"groups.yaml:6: ops: names slack and scim; {ONE}",
        ),
        ("{scim: ''}", "groups.yaml:6: ops.scim: must be a non-empty line of text naming the group"),
        ("{scim: [a]}", "groups.yaml:6: ops.scim: must be a non-empty line of text naming the group"),
        (
            "{slack: hr-team}",
            "groups.yaml:6: ops.slack: 'hr-team' is not a Slack user group: write its handle",
        ),
        (
            "{entra: Finance Admins}",
            "groups.yaml:6: ops.entra: 'Finance Admins' is not an Entra group object id",
        ),
        ("3", "groups.yaml:6: ops: must be a list of e-mail addresses or one source"),
    ],
)
def test_anything_else_is_an_error_naming_file_line_and_field(
    tmp_path: Path, value: str, problem: str
) -> None:
    found = _problems(tmp_path, GROUPS + f"ops: {value}\n")
    assert len(found) == 1 and found[0].startswith(problem), found


def test_a_source_nested_in_a_list_or_two_lines_for_one_group_are_errors(tmp_path: Path) -> None:
    found = _problems(tmp_path, GROUPS + "ops: [{scim: Ops}]\nOps: {scim: Ops}\n")
    assert found == [
        'groups.yaml:6: ops: must be a list of e-mail addresses or one source: slack: "@handle", '
        "entra: GROUP-OBJECT-ID or scim: GROUP-NAME",
        "groups.yaml:7: Ops: group 'Ops' is the same group as 'ops' on line 6 (group names ignore case)",
    ]


def test_an_alias_to_reuse_a_source_is_refused(tmp_path: Path) -> None:
    found = _problems(tmp_path, GROUPS + "a: &src {scim: Ops}\nb: *src\n")
    assert len(found) == 1 and "aliases (*name) are not allowed" in found[0]


# ── the sync: reading, failing closed, telling admins ───────────────────────────────


def test_refresh_fills_the_sourced_group_and_apply_does_not_read(
    sync: DirectorySync, sourced: Company, entra: FakeSource
) -> None:
    assert sync.apply(sourced).groups["finance-admins"] == frozenset()  # never read: empty
    assert entra.calls == []
    served = sync.refresh(sourced)
    assert served.groups["finance-admins"] == {"carol@example.com"}
    assert served.groups["finance-team"] == sourced.groups["finance-team"]  # literal groups untouched
    assert sync.apply(sourced) == served and entra.calls == [GUID]


def test_a_removed_member_disappears_at_the_next_refresh(
    sync: DirectorySync, sourced: Company, entra: FakeSource, clock: Clock
) -> None:
    sync.refresh(sourced)
    entra.groups[GUID] = {"dave@example.com"}
    clock.advance(300)
    assert sync.refresh(sourced).groups["finance-admins"] == {"dave@example.com"}


def test_source_down_keeps_the_last_list_for_the_grace_only_and_tells_once(
    sync: DirectorySync, sourced: Company, entra: FakeSource, clock: Clock, notices: MemoryNotices
) -> None:
    sync.refresh(sourced)
    clock.advance(300)
    entra.down = "HTTP 403 from Microsoft Graph"
    assert sync.refresh(sourced).groups["finance-admins"] == {"carol@example.com"}  # inside the grace
    assert notices.items == []  # a blip is not told
    assert sync.next_wait() == 120  # the thread wakes when the grace ends
    clock.advance(119)
    assert sync.apply(sourced).groups["finance-admins"] == {"carol@example.com"}
    clock.advance(1)
    assert sync.apply(sourced).groups["finance-admins"] == frozenset()  # never longer, even unread
    assert sync.refresh(sourced).groups["finance-admins"] == frozenset()
    for _ in range(3):
        clock.advance(300)
        sync.refresh(sourced)
    assert [(n.department, n.kind, n.text) for n in notices.items] == [
        (
            None,
            "directory-unreadable",
            f"entra group {GUID} (finance-admins) unreadable since 08:05 UTC: HTTP 403 from Microsoft "
            "Graph; its members lose access until it can be read",
        )
    ]
    entra.down = None
    assert sync.refresh(sourced).groups["finance-admins"] == {"carol@example.com"}
    assert notices.items[-1].kind == "directory-recovered"
    assert notices.items[-1].text == (
        f"entra group {GUID} (finance-admins) readable again at 08:22 UTC (unreadable since 08:05 UTC); "
        "its 1 member has access again"
    )


def test_a_blip_inside_the_grace_is_invisible(
    sync: DirectorySync, sourced: Company, entra: FakeSource, clock: Clock, notices: MemoryNotices
) -> None:
    sync.refresh(sourced)
    clock.advance(300)
    entra.down = "no answer within 30 s"
    sync.refresh(sourced)
    entra.down = None
    clock.advance(sync.next_wait())
    assert sync.refresh(sourced).groups["finance-admins"] == {"carol@example.com"}
    assert notices.items == []


def test_without_grace_a_failure_empties_at_once(
    entra: FakeSource, sourced: Company, clock: Clock, notices: MemoryNotices
) -> None:
    sync = DirectorySync({"entra": entra}, ttl_seconds=300, grace_seconds=0, notices=notices, clock=clock)
    sync.refresh(sourced)
    entra.down = "HTTP 503 from Microsoft Graph"
    assert sync.refresh(sourced).groups["finance-admins"] == frozenset()
    assert [n.kind for n in notices.items] == ["directory-unreadable"]


def test_a_group_deleted_at_the_source_is_empty(
    entra: FakeSource, sourced: Company, clock: Clock, notices: MemoryNotices
) -> None:
    sync = DirectorySync({"entra": entra}, ttl_seconds=300, grace_seconds=0, notices=notices, clock=clock)
    sync.refresh(sourced)
    del entra.groups[GUID]
    clock.advance(300)
    assert sync.refresh(sourced).groups["finance-admins"] == frozenset()
    assert "group not found; its members lose access" in notices.items[0].text
    [status] = sync.status()
    assert (status.state, status.members, status.error) == ("failing", 0, "group not found")


def test_a_source_that_never_answered_is_told_at_once(
    sync: DirectorySync, sourced: Company, entra: FakeSource, notices: MemoryNotices
) -> None:
    entra.down = "token request failed: invalid_client"
    assert sync.refresh(sourced).groups["finance-admins"] == frozenset()
    assert notices.items[0].text.endswith(
        "invalid_client; nobody gets access through it until it can be read"
    )


def test_refresh_without_notify_leaves_the_admin_notices_alone(
    sync: DirectorySync, sourced: Company, entra: FakeSource, notices: MemoryNotices
) -> None:
    entra.down = "HTTP 403 from Microsoft Graph"
    sync.refresh(sourced, notify=False)
    assert notices.items == []


def test_a_kind_without_a_source_is_failing_not_granting(sourced: Company, notices: MemoryNotices) -> None:
    sync = DirectorySync({}, notices=notices)
    assert sync.refresh(sourced).groups["finance-admins"] == frozenset()
    assert sync.status()[0].error == "no entra source is configured"


def test_a_crashing_or_misbehaving_source_fails_closed(sourced: Company, notices: MemoryNotices) -> None:
    class Crashing:
        kind = "entra"

        def members(self, ref: str) -> frozenset[str]:
            raise RuntimeError("secret-token-in-message")

    class NotEmails:
        kind = "entra"

        def members(self, ref: str) -> frozenset[str]:
            return frozenset({"carol"})

    for source, reason in [
        (Crashing(), "unexpected error (RuntimeError)"),
        (NotEmails(), "the source returned something that is not an e-mail address"),
    ]:
        sync = DirectorySync({"entra": source}, notices=notices)
        assert sync.refresh(sourced).groups["finance-admins"] == frozenset()
        assert sync.status()[0].error == reason
    assert not any("secret-token" in n.text for n in notices.items)


def test_a_hanging_source_is_cut_off_and_not_called_twice(sourced: Company, notices: MemoryNotices) -> None:
    release = threading.Event()

    class Hanging:
        kind = "entra"
        calls = 0

        def members(self, ref: str) -> frozenset[str]:
            Hanging.calls += 1
            release.wait(10)
            return frozenset({"carol@example.com"})

    sync = DirectorySync({"entra": Hanging()}, deadline_seconds=0.2, notices=notices)
    started = time.monotonic()
    assert sync.refresh(sourced).groups["finance-admins"] == frozenset()
    assert time.monotonic() - started < 2
    assert sync.status()[0].error == "no answer within 0.2 s"
    sync.refresh(sourced)
    assert sync.status()[0].error == "an earlier read has not finished after 0.2 s"
    assert Hanging.calls == 1
    release.set()
    time.sleep(0.05)
    assert sync.refresh(sourced).groups["finance-admins"] == {"carol@example.com"}


def test_status_shows_state_members_age_and_grace(
    sync: DirectorySync, sourced: Company, entra: FakeSource, clock: Clock
) -> None:
    assert sync.status(sourced)[0].state == "never"
    sync.refresh(sourced)
    clock.advance(42)
    [ok] = sync.status()
    assert (ok.group, ok.kind, ok.ref, ok.state, ok.members, ok.age_seconds, ok.error) == (
        "finance-admins",
        "entra",
        GUID,
        "ok",
        1,
        42,
        None,
    )
    entra.down = "HTTP 403 from Microsoft Graph"
    sync.refresh(sourced)
    [kept] = sync.status()
    assert (kept.state, kept.members, kept.grace_until) == ("failing", 1, clock.now + 120)
    clock.advance(120)
    [gone] = sync.status()
    assert (gone.state, gone.members, gone.grace_until, gone.age_seconds) == ("failing", 0, None, 162)


def test_two_groups_with_one_source_read_it_once(
    sync: DirectorySync, sourced: Company, entra: FakeSource
) -> None:
    from dataclasses import replace

    both = replace(sourced, sources={**sourced.sources, "auditors": GroupRef("entra", GUID)})
    served = sync.refresh(both)
    assert served.groups["auditors"] == served.groups["finance-admins"] == {"carol@example.com"}
    assert entra.calls == [GUID]


def test_a_changed_ref_never_keeps_the_old_groups_members(
    sync: DirectorySync, sourced: Company, entra: FakeSource, clock: Clock
) -> None:
    from dataclasses import replace

    sync.refresh(sourced)
    moved = replace(sourced, sources={"finance-admins": GroupRef("entra", OTHER)})
    assert sync.apply(moved).groups["finance-admins"] == frozenset()  # not read yet: empty
    assert sync.refresh(moved).groups["finance-admins"] == {"erin@example.com"}
    back = sync.apply(sourced)  # and back: the old list was dropped, not revived
    assert back.groups["finance-admins"] == frozenset()


def test_a_list_nobody_refreshed_is_not_served_forever(
    sync: DirectorySync, sourced: Company, clock: Clock
) -> None:
    sync.refresh(sourced)
    clock.advance(300 + 120 + 30 + 1)  # interval + grace + one read's deadline: a stalled thread
    assert sync.apply(sourced).groups["finance-admins"] == frozenset()


# ── swapping into the assistant; the background thread ─────────────────────────────


def test_tick_swaps_the_members_into_the_assistant(
    sync: DirectorySync, assistant: Assistant, entra: FakeSource, clock: Clock
) -> None:
    assert not assistant.is_admin("carol@example.com", "finance")
    assert sync.tick(assistant) is True
    assert assistant.is_admin("carol@example.com", "finance")
    clock.advance(300)
    assert sync.tick(assistant) is False  # nothing changed: nothing swapped
    entra.groups[GUID] = set()
    clock.advance(300)
    assert sync.tick(assistant) is True
    assert not assistant.is_admin("carol@example.com", "finance")


def test_the_background_thread_refreshes_and_stops(
    entra: FakeSource, assistant: Assistant, notices: MemoryNotices
) -> None:
    sync = DirectorySync({"entra": entra}, ttl_seconds=0.2, grace_seconds=0, notices=notices)
    sync.start(assistant)
    try:
        deadline = time.monotonic() + 5
        while not assistant.is_admin("carol@example.com", "finance") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert assistant.is_admin("carol@example.com", "finance")
        entra.groups[GUID] = set()
        deadline = time.monotonic() + 5
        while assistant.is_admin("carol@example.com", "finance") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not assistant.is_admin("carol@example.com", "finance")
    finally:
        sync.stop()
    assert not sync.running


# ── configuration reload with synced groups ─────────────────────────────────────────


@pytest.fixture
def watcher(
    assistant: Assistant, sourced: Company, sync: DirectorySync, notices: MemoryNotices
) -> ConfigWatcher:
    sync.tick(assistant)
    assert assistant.is_admin("carol@example.com", "finance")
    watcher = ConfigWatcher(assistant=assistant, root=sourced.root, notices=notices, directory=sync)
    assert watcher.poll() is False  # the first poll: the files are what is served
    return watcher


def test_a_valid_reload_keeps_the_synced_members(
    watcher: ConfigWatcher, assistant: Assistant, sourced: Company, notices: MemoryNotices
) -> None:
    _write_groups(sourced, SOURCED + "auditors: [erin@example.com]\n")
    assert watcher.poll() is True
    assert assistant.company.groups["auditors"] == {"erin@example.com"}
    assert assistant.is_admin("carol@example.com", "finance")  # not dropped by the reload
    assert [n.kind for n in notices.items] == ["config-reloaded"]


def test_an_invalid_reload_keeps_the_synced_members_and_narrows_the_rest(
    watcher: ConfigWatcher, assistant: Assistant, sourced: Company
) -> None:
    (sourced.root / "eng.yaml").write_text("title: Engineering\nknowledge: ../knowledge/eng\nask: [typo\n")
    _write_groups(
        sourced, SOURCED.replace("finance-team: [carol@example.com, dave@example.com]", "finance-team: []")
    )
    watcher.poll()
    assert assistant.is_admin("carol@example.com", "finance")  # same source named: kept
    assert assistant.company.groups["finance-team"] == frozenset()  # literal: old ∩ new


def test_a_reload_never_resurrects_a_member_removed_at_the_source(
    watcher: ConfigWatcher,
    assistant: Assistant,
    sourced: Company,
    sync: DirectorySync,
    entra: FakeSource,
    clock: Clock,
) -> None:
    entra.groups[GUID] = set()
    clock.advance(300)
    sync.tick(assistant)
    _write_groups(sourced, SOURCED + "auditors: [erin@example.com]\n")
    watcher.poll()
    assert not assistant.is_admin("carol@example.com", "finance")


def test_a_changed_source_mapping_drops_the_old_members_and_is_read_soon(
    watcher: ConfigWatcher, assistant: Assistant, sourced: Company, sync: DirectorySync
) -> None:
    _write_groups(sourced, SOURCED.replace(GUID, OTHER))
    assert watcher.poll() is True
    assert not assistant.is_admin("carol@example.com", "finance")  # the old group's members: gone
    assert sync.next_wait() == 0  # the thread reads it now
    sync.tick(assistant)
    assert assistant.is_admin("erin@example.com", "finance")


def test_narrowing_an_invalid_configuration_with_sources(sourced: Company) -> None:
    from dataclasses import replace

    old = replace(sourced, groups={**sourced.groups, "finance-admins": frozenset({"carol@example.com"})})
    (sourced.root / "eng.yaml").write_text("ask: [typo\n")  # invalid: narrowing applies
    _write_groups(sourced, SOURCED)
    same, problems = narrowed(old, sourced.root)
    assert problems and same.sources == sourced.sources  # the same source: kept
    _write_groups(sourced, SOURCED.replace(GUID, OTHER))
    moved, _ = narrowed(old, sourced.root)
    assert moved.sources == {} and moved.groups["finance-admins"] == frozenset()  # another source: empty
    _write_groups(sourced, SOURCED.replace(f"{{entra: {GUID}}}", "[carol@example.com]"))
    listed, _ = narrowed(old, sourced.root)
    assert listed.sources == {} and listed.groups["finance-admins"] == frozenset()  # a list now: empty
    literal = replace(old, sources={})
    _write_groups(
        sourced,
        SOURCED.replace("hr-team: [alice@example.com, hank@example.com]", "hr-team: [alice@example.com]"),
    )
    became, _ = narrowed(literal, sourced.root)
    assert became.sources == {} and became.groups["finance-admins"] == frozenset()  # literal → source: empty
    assert became.groups["hr-team"] == {"alice@example.com"}  # a source elsewhere does not stop narrowing


def test_narrowing_without_a_sync_never_fills_a_sourced_group(sourced: Company) -> None:
    (sourced.root / "eng.yaml").write_text("ask: [typo\n")
    company, problems = narrowed(sourced, sourced.root)
    assert problems and company.groups["finance-admins"] == frozenset()


def test_bad_source_in_an_invalid_file_keeps_the_old_groups(sourced: Company) -> None:
    _write_groups(sourced, SOURCED + "ops: {okta: x}\n")
    company, problems = narrowed(sourced, sourced.root)
    assert [p.field for p in problems] == ["ops.okta"]
    assert company.groups == sourced.groups and company.sources == sourced.sources


def test_config_error_type_is_the_usual_one(tmp_path: Path) -> None:
    make_company(tmp_path)
    (tmp_path / "departments" / "groups.yaml").write_text(GROUPS + "ops: {okta: x}\n")
    with pytest.raises(ConfigError) as exc:
        load_company(tmp_path / "departments")
    assert exc.value.field == "ops.okta" and exc.value.line == 6
