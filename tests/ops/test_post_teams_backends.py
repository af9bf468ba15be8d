"""Teams operations DMs on both backends: ``TeamsChannel.from_settings`` finds an admin's
personal conversation reference in the Teams state the settings select — PostgreSQL with
``DEPTBOT_DATABASE_URL`` (where every replica's Teams adapter keeps it), else the state
folder's ``teams-state.sqlite3`` — and posts to the loopback fake Bot Connector."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.core.ports import AuditEntry
from bot.core.types import Turn
from bot.ops.post import Delivery, TeamsChannel
from bot.settings import Settings
from bot.store.notices import MemoryNotices
from bot.store.teams_state import PersistentHistory, PersistentReferences, open_teams_state
from bot.wiring import open_audit_log
from tests.adapters.teams.conftest import BOT, TENANT, FakeConnector
from tests.fakes import make_company
from tests.ops.test_post_teams import TEXT, connector  # noqa: F401  (the fake Bot Connector)
from tests.pg_fixtures import DbBackend


def _settings(tmp_path: Path, db_backend: DbBackend) -> Settings:
    return Settings(
        departments_dir=tmp_path / "departments", state_dir=tmp_path / "state", env=db_backend.env
    )


def _reference(user: str, service_url: str) -> dict[str, object]:
    return {
        "user": {"id": f"29:{user}", "name": user, "aadObjectId": f"aad-{user}"},
        "bot": dict(BOT),
        "conversation": {"id": f"a:personal-{user}", "conversationType": "personal", "tenantId": TENANT},
        "channelId": "msteams",
        "serviceUrl": service_url,
    }


def _remember(settings: Settings, service_url: str) -> None:
    """What the Teams adapter keeps, through the stores the settings select: hank is linked
    to his e-mail (every turn does that now); ivy only answered under an audited request
    (an installation from before people were linked)."""
    state = open_teams_state(settings)
    assert state is not None
    try:
        state.people.link("aad-hank", "Hank@Example.com")
        PersistentReferences(state).put(("teams", TENANT, "aad-hank"), _reference("hank", service_url))
        PersistentHistory(state).extend(
            ("a:personal-ivy", "aad-ivy"), [Turn("assistant", "an answer")], request_id="req-ivy-1"
        )
        PersistentReferences(state).put(("teams", TENANT, "aad-ivy"), _reference("ivy", service_url))
    finally:
        state.close()
    audit = open_audit_log(settings)
    try:
        audit.record(
            AuditEntry(
                request_id="req-ivy-1",
                time=datetime(2026, 1, 5, tzinfo=UTC),
                user="ivy@example.com",
                platform="teams",
                decision="allowed",
                rule="ask:*@example.com",
                status="answered",
                department="hr",
            )
        )
    finally:
        audit.close()


def test_dms_reach_admins_through_the_selected_teams_state(
    tmp_path: Path,
    connector: FakeConnector,  # noqa: F811  (the imported fixture)
    db_backend: DbBackend,
) -> None:
    company = make_company(tmp_path)
    settings = _settings(tmp_path, db_backend)
    _remember(settings, connector.url)
    if db_backend.url:  # nothing Teams-related in the state folder: it is all in PostgreSQL
        assert not (settings.state_dir / "teams-state.sqlite3").exists()
    channel = TeamsChannel.from_settings(settings)
    assert channel is not None
    notices = MemoryNotices()
    admins = ["hank@example.com", "ivy@example.com", "carol@example.com"]
    delivery = Delivery(slack=None, teams=channel, notices=notices, admins_of=lambda d: admins)
    assert delivery.deliver(company.department("finance"), TEXT, kind="digest")
    assert sorted(m.conversation for m in connector.messages()) == ["a:personal-hank", "a:personal-ivy"]
    assert all(m.body["text"] == TEXT for m in connector.messages())
    assert notices.items == []
    # carol never talked to the bot: only she is not reached, and nobody else is either
    assert not channel.to_person("carol@example.com", TEXT)
    assert len(connector.messages()) == 2


def test_without_teams_state_there_is_no_channel_on_sqlite(tmp_path: Path) -> None:
    settings = _settings(tmp_path, DbBackend("sqlite"))
    assert TeamsChannel.from_settings(settings) is None
