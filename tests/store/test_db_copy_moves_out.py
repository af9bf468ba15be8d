"""``deptbot db copy`` ends by moving the copied SQLite files out of the live state folder,
and an erase on PostgreSQL still reaches them there: a copy kept for rollback never holds
a person's text, e-mail or data key after their erase."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.governance.privacy import Privacy
from bot.governance.vault import forget_open_vaults
from bot.settings import Settings
from bot.store.backend import ENV_VAR
from tests.governance.test_privacy_erase import (
    EMAIL,
    FEEDBACK_WORDS,
    KEY,
    QUESTION_WORDS,
    _canary_activity,
    _files,
    _holding,
    _world,
)

COPIES = "copied-to-postgresql"  # bot.store.pg_copy.COPIES
LIVE = (
    "audit.db",
    "keys.db",
    "usage.db",
    "cache.db",
    "teams-state.sqlite3",
    "chat-state.sqlite3",
    "scim.sqlite3",
)


@pytest.fixture(autouse=True)
def _fresh_vaults() -> Iterator[None]:
    yield
    forget_open_vaults()


def test_db_copy_moves_the_copied_files_out_and_erase_covers_them(run, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    root: Path = run.root
    settings, assistant, convo, notices = _world(root, {})  # the SQLite installation
    _canary_activity(assistant, convo, notices, settings.state_dir)[0].close()
    convo.close()
    state = settings.state_dir
    from bot.directory.scim_store import ScimStore
    from tests.directory.test_scim_store import add_group, add_user

    scim = ScimStore.in_state_dir(state)  # users and groups an identity provider pushed
    add_group(scim, "HR", add_user(scim, "hank@example.com"))
    scim.close()
    assert {"audit.db", "keys.db", "usage.db", "cache.db", "teams-state.sqlite3"} <= {
        p.name for p in state.iterdir()
    }

    code, out, err = run("db", "copy", "--to", pg_url)
    assert code == 0, err
    left = sorted(p.name for p in state.iterdir() if p.name.removesuffix("-wal").removesuffix("-shm") in LIVE)
    assert left == []  # nothing copied is left in the live folder
    (moved,) = (state / COPIES).iterdir()
    assert {"audit.db", "keys.db", "usage.db", "cache.db", "teams-state.sqlite3"} <= {
        p.name for p in moved.iterdir()
    }
    assert not [p for p in moved.iterdir() if p.name.endswith("-wal") and p.stat().st_size]  # checkpointed
    assert f"Moved out of the live state folder, into {moved}" in out and "teams_history" in out

    from bot.store.teams_state import open_teams_state

    forget_open_vaults()
    pg = Settings.load(departments=root / "departments", state=state, env={ENV_VAR: pg_url})
    teams = open_teams_state(pg)
    assert teams is not None and teams.history.get(KEY)  # the Teams state moved too, readable
    teams.close()
    from bot.directory.scim import ScimGroupSource
    from bot.directory.scim_store import open_scim_store

    assert ScimGroupSource(store=open_scim_store(pg)).members("HR") == {"hank@example.com"}
    privacy = Privacy.for_settings(pg)
    assert privacy.export(EMAIL, record=False).counts["questions"] == 4
    receipt = privacy.erase(EMAIL)
    privacy.close()
    assert receipt.removed["copied_sqlite_folders_erased"] == 1 and receipt.removed["teams_history"] == 2
    files = _files(state)
    assert any(p.parent == moved for p in files)  # the copy is still there, and searched
    for needle in (EMAIL, *QUESTION_WORDS, FEEDBACK_WORDS):
        assert _holding(files, needle) == [], needle


def test_a_copy_chained_with_another_key_stops_the_erase_before_anything_goes(
    tmp_path: Path, pg_url: str
) -> None:
    from datetime import UTC, datetime

    from bot.core.ports import AuditEntry
    from bot.errors import StoreError
    from bot.governance.chain import AuditKey
    from bot.governance.keys import generate
    from bot.store.audit import SqliteAuditLog
    from tests.governance.test_privacy_erase import QUESTIONS, _ask

    env = {ENV_VAR: pg_url, "DEPTBOT_MASTER_KEY": generate(), "DEPTBOT_AUDIT_KEY": "5a" * 32}
    settings, assistant, _, _ = _world(tmp_path, env)
    _ask(assistant, EMAIL, QUESTIONS[0])
    copy = SqliteAuditLog(
        path=settings.state_dir / COPIES / "20260101T000000Z" / "audit.db",
        key=AuditKey(b"o" * 32, "environment"),  # not this installation's key
    )
    copy.record(
        AuditEntry(
            request_id="r0",
            time=datetime.now(UTC),
            user=EMAIL,
            platform="cli",
            decision="allowed",
            rule="test",
            status="answered",
        )
    )
    copy.close()
    privacy = Privacy.for_settings(settings)
    with pytest.raises(StoreError, match="chained with another audit key"):
        privacy.erase(EMAIL)
    export = privacy.export(EMAIL, record=False)
    assert [q["question"] for q in export.data["questions"]] == [QUESTIONS[0]]  # nothing was erased
    privacy.close()
