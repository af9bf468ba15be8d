"""Operations messages on Teams: proactive messages through botbuilder's CloudAdapter to
the loopback fake Bot Connector of the Teams tests — to an ``alerts.teams`` conversation,
or to an admin through the personal conversation reference the Teams adapter stored."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from bot.core.ports import AuditEntry
from bot.core.types import Turn
from bot.ops.post import Delivery, TeamsChannel
from bot.store.audit import SqliteAuditLog
from bot.store.notices import MemoryNotices
from bot.store.teams_state import PersistentHistory, PersistentReferences, TeamsState
from tests.adapters.teams.conftest import BOT, TENANT, FakeConnector
from tests.fakes import make_company
from tests.ops.helpers import company_with

ADMINS = "19:hr-admins@thread.tacv2"
TEXT = "📊 Human Resources: weekly digest\n• Questions: 12; answered 75% (9)"


@pytest.fixture
def connector() -> Iterator[FakeConnector]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fake = FakeConnector()
    server = TestServer(fake.app(), host="127.0.0.1")
    asyncio.run_coroutine_threadsafe(server.start_server(), loop).result(10)
    fake.url = str(server.make_url("/")).rstrip("/") + "/"
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        assert fake.invalid == [], "Teams would refuse these activities"


def _remember_hank(state_dir: Path, service_url: str) -> None:
    """What the Teams adapter keeps after hank asked something 1:1: the audit row, the
    history turn with its request id, and the personal conversation reference."""
    audit = SqliteAuditLog(path=state_dir / "audit.db", env={"DEPTBOT_AUDIT_KEY": "k" * 64})
    audit.record(
        AuditEntry(
            request_id="req-hank-1",
            time=datetime(2026, 1, 5, tzinfo=UTC),
            user="hank@example.com",
            platform="teams",
            decision="allowed",
            rule="ask:*@example.com",
            status="answered",
            department="hr",
        )
    )
    audit.close()
    state = TeamsState.in_state_dir(state_dir)
    PersistentHistory(state).extend(
        ("a:personal-hank", "aad-hank"), [Turn("assistant", "an answer")], request_id="req-hank-1"
    )
    PersistentReferences(state).put(
        ("teams", TENANT, "aad-hank"),
        {
            "user": {"id": "29:hank", "name": "Hank", "aadObjectId": "aad-hank"},
            "bot": dict(BOT),
            "conversation": {"id": "a:personal-hank", "conversationType": "personal", "tenantId": TENANT},
            "channelId": "msteams",
            "serviceUrl": service_url,
        },
    )
    state.close()


def _channel(state_dir: Path) -> TeamsChannel:
    return TeamsChannel(env={}, state_dir=state_dir, audit_path=state_dir / "audit.db")


def test_dm_to_an_admin_through_the_stored_reference(tmp_path: Path, connector: FakeConnector) -> None:
    company = make_company(tmp_path)
    state = tmp_path / "state"
    _remember_hank(state, connector.url)
    notices = MemoryNotices()
    delivery = Delivery(
        slack=None, teams=_channel(state), notices=notices, admins_of=lambda d: ["hank@example.com"]
    )
    assert delivery.deliver(company.department("finance"), TEXT, kind="digest")
    [posted] = connector.messages()
    assert posted.conversation == "a:personal-hank"
    assert posted.body["text"] == TEXT and posted.body["textFormat"] == "markdown"
    assert notices.items == []


def test_an_admin_who_never_used_teams_gets_a_notice(tmp_path: Path, connector: FakeConnector) -> None:
    company = make_company(tmp_path)
    state = tmp_path / "state"
    _remember_hank(state, connector.url)
    notices = MemoryNotices()
    delivery = Delivery(
        slack=None, teams=_channel(state), notices=notices, admins_of=lambda d: ["carol@example.com"]
    )
    assert not delivery.deliver(company.department("finance"), TEXT, kind="digest")
    assert connector.messages() == []
    assert [n.kind for n in notices.items] == ["ops-digest"]


def test_posts_to_the_alerts_conversation(tmp_path: Path, connector: FakeConnector) -> None:
    make_company(tmp_path)
    company = company_with(tmp_path, {"hr": f'alerts:\n  teams: "{ADMINS}"\n'})
    state = tmp_path / "state"
    _remember_hank(state, connector.url)  # the service URL comes from the newest reference
    delivery = Delivery(slack=None, teams=_channel(state), notices=MemoryNotices(), admins_of=lambda d: [])
    assert delivery.deliver(company.department("hr"), TEXT, kind="budget-cost")
    [posted] = connector.messages()
    assert posted.conversation == ADMINS and posted.body["text"] == TEXT
