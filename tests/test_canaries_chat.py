"""The canary matrix end to end through both chat platforms, on both backends.

Signed Slack events and Teams activities go to the real servers on 127.0.0.1 (a stub
Slack Web API and a fake Bot Connector, also on loopback); the assistant behind them is
wired exactly as ``deptbot serve`` wires it (``bot.wiring.build``): the real index, the
offline extractive answerer, and the audit log, answer cache, notices, usage, event
de-duplication and conversation state in SQLite files or, with ``DEPTBOT_DATABASE_URL``,
in PostgreSQL (``db_backend``).

Checked per conversation: nothing posted into it holds a canary that one of its members
may not read. Checked for the stores: no restricted canary (payroll, private HR cases,
engineering) is in any stored row at all, on either backend, even after the people who may
read it asked for it: what is stored about an answer is sealed or names documents, never
their restricted text in the clear. And nothing hidden from an asker is logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import Company
from bot.settings import Settings
from bot.store.dedup import DedupStore
from bot.store.teams_state import TeamsState
from bot.wiring import build
from tests.adapters.slack.conftest import SlackHarness, default_channels, dm, mention
from tests.adapters.teams.conftest import ROSTER, Harness
from tests.adapters.teams.conftest import _run as run_teams
from tests.adapters.teams.conftest import make_settings as teams_settings
from tests.fakes import CANARIES
from tests.pg_fixtures import DbBackend

RESTRICTED = ("payroll", "hr-private", "eng")
VISIBLE = {  # canary → who may read it (tests/fakes.py: groups and department rules)
    "hr": {"alice", "hank", "carol", "dave", "bob", "grace"},
    "finance": {"alice", "hank", "carol", "dave", "bob", "grace"},
    "hr-private": {"hank"},
    "payroll": {"carol"},
    "eng": {"bob"},
}
QUESTIONS = [
    "How are workplace investigations handled? case code",
    "payroll salary band L3 and payroll dates code",
    "production deploys and rollbacks reference",
    "How many vacation days carry over?",
]


def _hidden_from(*people: str) -> list[str]:
    return [CANARIES[name] for name, readers in VISIBLE.items() if not set(people) <= readers]


def _wired(company: Company, root: Path, env: dict[str, str]) -> Any:
    settings = Settings.load(departments=root / "departments", state=root / "state", env=env)
    wired = build(settings, company=company)
    for dept in wired.company:
        wired.knowledge.refresh(dept)
    return wired


async def _quiet(calls: Callable[[], int], *, idle: float = 0.4, limit: float = 20.0) -> None:
    """Wait until no new call has arrived for ``idle`` seconds (streamed answers end with
    updates after their first post)."""
    deadline = time.monotonic() + limit
    seen, since = calls(), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if calls() != seen:
            seen, since = calls(), time.monotonic()
        elif time.monotonic() - since >= idle:
            return
    raise AssertionError("the bot kept posting")


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Everything logged at DEBUG, with the logging set-up ``deptbot serve`` installs
    (``bot.logs``: library loggers that print request bodies are held back)."""
    from bot.logs import LIBRARY_LOGGERS, install, uninstall

    saved = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    install()
    caplog.set_level(logging.DEBUG)
    try:
        yield caplog
    finally:
        uninstall()
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


SLACK_PEOPLE = {"UALICE": "alice", "UCAROL": "carol", "UHANK": "hank", "UBOB": "bob", "UGRACE": "grace"}


def test_slack_never_posts_or_stores_a_canary_someone_may_not_read(
    company: Company, tmp_path: Path, db_backend: DbBackend, logged: pytest.LogCaptureFixture
) -> None:
    wired = _wired(company, tmp_path, db_backend.env)
    harness = SlackHarness(wired.assistant, tmp_path / "state", env=db_backend.env, stream_interval=0.01)
    harness.stub.channels = default_channels()
    n = 0

    async def scenario(h: SlackHarness) -> None:
        nonlocal n
        for user in SLACK_PEOPLE:
            for question in QUESTIONS:
                n += 1
                await h.event(dm(question, user=user, channel=f"D{user}", ts=f"17000000{n:02d}.000100"))
        # carol may read payroll; alice, in the same channel, may not
        for question in QUESTIONS[:2]:
            n += 1
            await h.event(mention(question, user="UCAROL", channel="C0FIN", ts=f"17000000{n:02d}.000100"))
        await h.stub.wait_for("chat.postMessage", len(SLACK_PEOPLE) * len(QUESTIONS), timeout=30)
        await _quiet(lambda: len(h.stub.calls))

    async def main() -> None:
        async with harness:
            await scenario(harness)

    asyncio.run(main())
    if db_backend.name == "postgresql":  # the claims were PostgreSQL rows, not a local file
        assert not (tmp_path / "state" / DedupStore.FILE).exists()
        assert _count(db_backend, "seen_events") >= len(SLACK_PEOPLE) * len(QUESTIONS)
    posted = [c for c in harness.stub.calls if c.method != "response_url"]
    by_place: dict[str, list[str]] = {}
    for call in posted:
        place = str(call.args.get("channel", ""))
        if call.method == "chat.postEphemeral":
            place = f"ephemeral:{call.args.get('user')}"
        by_place.setdefault(place, []).append(json.dumps(call.args, ensure_ascii=False))
    readers = {f"D{u}": (p,) for u, p in SLACK_PEOPLE.items()}
    readers |= {f"ephemeral:{u}": (p,) for u, p in SLACK_PEOPLE.items()}
    readers["C0FIN"] = ("carol", "alice")
    for place, texts in by_place.items():
        if not place:
            continue
        assert place in readers, f"the bot posted to an unexpected place {place}"
        shown = "\n".join(texts)
        for canary in _hidden_from(*readers[place]):
            assert canary not in shown, f"{canary} posted to {place} ({db_backend.name})"
    # not vacuous: people got what they may read
    assert CANARIES["payroll"] in "\n".join(by_place["DUCAROL"])
    assert CANARIES["eng"] in "\n".join(by_place["DUBOB"])
    _check_stores(db_backend, [tmp_path / "state"], logged.text)


def test_teams_never_posts_or_stores_a_canary_someone_may_not_read(
    company: Company, tmp_path: Path, db_backend: DbBackend, logged: pytest.LogCaptureFixture
) -> None:
    wired = _wired(company, tmp_path, db_backend.env)
    settings = teams_settings(tmp_path, dict(db_backend.env))
    people = ("alice", "carol", "hank", "bob")

    async def scenario(h: Harness) -> None:
        for person in people:
            for question in QUESTIONS:
                await h.ask(h.activity(question, user=person))
        for question in QUESTIONS[:2]:  # a group chat of everyone in ROSTER
            await h.ask(h.activity(question, user="carol", kind="groupChat"))
        for person in people:
            shown = json.dumps([p.body for p in h.connector.messages(f"a:personal-{person}")])
            for canary in _hidden_from(person):
                assert canary not in shown, f"{canary} posted to {person} ({db_backend.name})"
        group = json.dumps([p.body for p in h.connector.messages("19:groupchat@thread.v2")])
        assert group, "the group chat got no reply"
        for canary in _hidden_from(*ROSTER):
            assert canary not in group, f"{canary} posted to the group chat ({db_backend.name})"
        mine = json.dumps([p.body for p in h.connector.messages("a:personal-carol")])
        assert CANARIES["payroll"] in mine  # not vacuous

    asyncio.run(run_teams(scenario, wired.assistant, settings))
    if db_backend.name == "postgresql":  # the conversation state was PostgreSQL rows
        assert not (settings.state_dir / TeamsState.FILE).exists()
        assert _count(db_backend, "teams_history") > 0
    _check_stores(db_backend, [tmp_path / "state", settings.state_dir], logged.text)


def _count(db_backend: DbBackend, table: str) -> int:
    import psycopg
    from psycopg import sql

    with psycopg.connect(db_backend.url, autocommit=True) as conn:
        row = conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(table))).fetchone()
    return int(row[0]) if row else 0


def _check_stores(db_backend: DbBackend, state_dirs: list[Path], logged: str) -> None:
    stored = "\n".join(db_backend.dump(d) for d in state_dirs)
    assert "answered" in stored  # not vacuous: the audit rows are among what was read
    for name in RESTRICTED:
        assert CANARIES[name] not in stored, f"{name} canary stored in the clear ({db_backend.name})"
        assert CANARIES[name] not in logged, f"{name} canary logged ({db_backend.name})"
