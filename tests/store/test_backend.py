"""``DEPTBOT_DATABASE_URL``: parsing, migrations, the CLI, and which stores the wiring picks."""

from __future__ import annotations

import logging
import threading
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.errors import ConfigError, StoreError
from bot.settings import Settings
from bot.store.audit import COLUMNS, SqliteAuditLog
from bot.store.backend import (
    ENV_VAR,
    Database,
    DatabaseUrl,
    PoolLimits,
    close_shared,
    database_url,
    migrate,
    migrations,
    schema_version,
)
from bot.store.dedup import DedupStore, open_dedup_store
from bot.store.usage import UsageStore
from tests.fakes import make_company
from tests.governance import test_audit_cli

from .test_contract_stores import entry

ROOT = Path(__file__).resolve().parents[2]
KEY = "ab" * 32


# ── the setting ──────────────────────────────────────────────────────────────────────


def test_unset_or_blank_means_the_sqlite_default() -> None:
    assert database_url({}) is None
    assert database_url({ENV_VAR: "  "}) is None


def test_a_good_url_is_kept_and_shown_without_its_password() -> None:
    url = database_url({ENV_VAR: "postgresql://bot:s3cret-pw@db.internal:5433/deptbot?sslmode=require"})
    assert url is not None
    assert url.conninfo.endswith("sslmode=require")
    assert url.redacted == "postgresql://bot:***@db.internal:5433/deptbot"
    assert "s3cret" not in repr(url) and "s3cret" not in str(url)
    sock = database_url({ENV_VAR: "postgresql://postgres:@/deptbot?host=/run/pg"})
    assert sock is not None and sock.redacted == "postgresql://postgres@/deptbot (socket /run/pg)"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("mysql://bot:s3cret@db/deptbot", "must start with postgresql://"),
        ("postgresql://bot:s3cret@db:99999/deptbot", "is not a valid URL"),
        ("postgresql://bot:s3cret@db:5432/", "names no database"),
        ("postgresql://bot:s3cret@/deptbot", "names no host"),
        ("postgresql://bot:s3cret@db/deptbot?sslmode=sometimes&bogus=1", "cannot be read"),
    ],
)
def test_a_bad_url_names_the_variable_and_never_the_password(value: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        database_url({ENV_VAR: value})
    assert ENV_VAR in str(info.value) and says in str(info.value)
    assert "s3cret" not in str(info.value)


def test_pool_limits_come_from_the_database_settings(tmp_path: Path) -> None:
    settings = Settings.load(
        departments=tmp_path,
        state=tmp_path,
        env={"DEPTBOT_DATABASE__POOL_MAX_SIZE": "4", "DEPTBOT_DATABASE__CONNECT_TIMEOUT_SECONDS": "2"},
    )
    limits = PoolLimits.from_section(settings.section("database"))
    assert (limits.min_size, limits.max_size, limits.connect_timeout) == (1, 4, 2.0)
    assert settings.values.database.statement_timeout_seconds == 30


def test_a_server_that_is_down_is_a_store_error_naming_the_redacted_url(tmp_path: Path) -> None:
    url = database_url({ENV_VAR: f"postgresql://bot:s3cret@/deptbot?host={tmp_path}"})  # no server there
    assert url is not None
    db = Database(url, PoolLimits(min_size=0, connect_timeout=0.5))
    with pytest.raises(StoreError) as info:
        migrate(db)
    assert "postgresql://bot:***@/deptbot" in str(info.value) and "s3cret" not in str(info.value)
    db.close()


# ── migrations ───────────────────────────────────────────────────────────────────────


def test_migrations_are_numbered_from_one_and_packaged() -> None:
    found = migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "store/migrations/*.sql" in data["tool"]["setuptools"]["package-data"]["bot"]


def test_the_audit_table_has_a_typed_column_for_every_audit_field(pg_db: Database) -> None:
    """A new AuditEntry field needs a migration (SQLite adds its column on open)."""
    kinds = {"text": str, "bigint": int, "double precision": float}
    with pg_db.tx() as c:
        cols = dict(
            c.execute(
                "select column_name, data_type from information_schema.columns where table_name = 'requests'"
            ).fetchall()
        )
    assert {name: kinds.get(cols.get(name, "missing")) for name in COLUMNS} == COLUMNS


def test_every_replica_may_migrate_at_once(pg_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pg_server.admin("create database migrate_race")
    try:
        url = _url(pg_server.url("migrate_race"))
        dbs = [Database(url, PoolLimits(min_size=0, max_size=1)) for _ in range(4)]
        results: list[list[str]] = []
        threads = [threading.Thread(target=lambda d=d: results.append(migrate(d))) for d in dbs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(len(r) for r in results) == [0, 0, 0, len(migrations())]
        assert schema_version(dbs[0]) == len(migrations())
        for d in dbs:
            d.close()
    finally:
        pg_server.admin("drop database migrate_race with (force)")


def _url(text: str) -> DatabaseUrl:
    url = database_url({ENV_VAR: text})
    assert url is not None
    return url


# ── the CLI and the wiring ───────────────────────────────────────────────────────────

Run = Callable[..., tuple[int, str, str]]
run = test_audit_cli.run  # the CLI fixture: a company on disk, a clean environment, capsys


def test_db_migrate_without_the_setting_says_sqlite_needs_none(run: Run) -> None:
    code, _, err = run("db", "migrate")
    assert code != 0 and ENV_VAR in err and "SQLite" in err


def test_db_migrate_then_audit_verify_on_postgres(
    run: Run, pg_server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    pg_server.admin("create database cli_db")
    try:
        # trust authentication ignores the password; it is here to prove it is never shown
        monkeypatch.setenv(ENV_VAR, pg_server.url("cli_db").replace("postgres:@", "postgres:pw-s3cret@"))
        caplog.set_level(logging.DEBUG)
        code, out, err = run("db", "migrate")
        assert code == 0, err
        assert "0001_audit_usage_dedup.sql" in out and f"Schema version {len(migrations())}." in out
        assert "postgresql://postgres:***@/cli_db" in out
        code, out, _ = run("db", "migrate")
        assert code == 0 and "is up to date" in out
        code, out, _ = run("db", "status")
        assert code == 0 and "(up to date)" in out
        from bot.wiring import open_audit_log

        settings = Settings.load()
        log = open_audit_log(settings)
        for n in range(3):
            log.record(entry(n))
        code, out, err = run("audit", "verify")
        assert code == 0, err
        assert "audit chain intact: 3 rows" in out
        assert not (Path(settings.state_dir) / "audit.db").exists()  # nothing went to SQLite
        assert "pw-s3cret" not in out + err + caplog.text
    finally:
        close_shared()
        pg_server.admin("drop database cli_db with (force)")


def test_the_wiring_picks_the_backend_from_the_setting(pg_url: str, tmp_path: Path) -> None:
    from bot.llm.factory import open_usage_store
    from bot.store.pg_audit import PgAuditLog
    from bot.store.pg_dedup import PgDedupStore
    from bot.store.pg_usage import PgUsageStore
    from bot.wiring import open_audit_log

    make_company(tmp_path)
    base = {"DEPTBOT_AUDIT_KEY": KEY}
    sqlite = Settings.load(departments=tmp_path / "departments", state=tmp_path / "s1", env=base)
    assert isinstance(open_audit_log(sqlite), SqliteAuditLog)
    assert isinstance(open_usage_store(sqlite), UsageStore)
    assert isinstance(open_dedup_store(sqlite), DedupStore)
    pg = Settings.load(
        departments=tmp_path / "departments", state=tmp_path / "s2", env={**base, ENV_VAR: pg_url}
    )
    assert isinstance(open_audit_log(pg), PgAuditLog)
    assert isinstance(open_usage_store(pg), PgUsageStore)
    assert isinstance(open_dedup_store(pg), PgDedupStore)


def test_db_copy_moves_sqlite_state_and_the_chain_verifies_with_the_same_head(
    run: Run, pg_url: str, pg_db: Database, tmp_path: Path
) -> None:
    from bot.store.pg_audit import PgAuditLog
    from bot.store.pg_dedup import PgDedupStore
    from bot.store.pg_usage import PgUsageStore
    from bot.store.usage import BudgetLimits
    from tests.governance.test_audit_chain import KEY as CHAIN_KEY

    state = tmp_path / "state"
    log = SqliteAuditLog(path=state / "audit.db", env={"DEPTBOT_AUDIT_KEY": CHAIN_KEY})
    for n in range(4):
        log.record(entry(n, question=f"question {n}"))
    log.record_feedback("r1", "ann@example.com", "down", "outdated")
    log.checkpoint()
    log.record(entry(9))
    head = log.verify()
    log.close()
    usage = UsageStore(path=state / "usage.db")
    now = datetime(2026, 11, 30, 9, tzinfo=UTC)
    usage.reserve(
        request_id="r1",
        user="ann@example.com",
        department="hr",
        tokens=70,
        cost=0.5,
        limits=BudgetLimits(),
        now=now,
    )
    usage.close()
    DedupStore.in_state_dir(state).claim("E1")

    code, out, err = run("db", "copy", "--to", pg_url)
    assert code == 0, err
    assert "requests" in out and "5 rows" in out and f"head row 5, MAC {head.head_mac}" in out
    from bot.governance.keys import load
    from bot.governance.vault import Vault
    from bot.store.pg_keys import PgKeyTable

    # keys.db moved out of the live folder with the rest: the copied text opens with the shared keys
    assert not (state / "keys.db").exists() and not (state / "audit.db").exists()
    shared = Vault(keys=load({}, None), table=PgKeyTable(pg_db))
    copied = PgAuditLog(pg_db, home=state, vault=shared, env={"DEPTBOT_AUDIT_KEY": CHAIN_KEY})
    rep = copied.verify()
    assert rep.ok and (rep.head_seq, rep.head_mac) == (head.head_seq, head.head_mac)
    assert [r["question"] for r in copied.export_rows(with_text=True)][:2] == ["question 0", "question 1"]
    assert [f["reason"] for f in copied.feedback_for("r1")] == ["outdated"]
    assert "subject_keys" in out  # the data keys moved too: the replicas' shared vault opens the text
    on_replica = PgAuditLog(
        pg_db, home=tmp_path / "replica", vault=shared, env={"DEPTBOT_AUDIT_KEY": CHAIN_KEY}
    )
    assert [r["question"] for r in on_replica.export_rows(with_text=True)][:2] == ["question 0", "question 1"]
    copied.record(entry(10))  # replicas go on from the copied head
    assert copied.verify().head_seq == 6
    pg_usage = PgUsageStore(pg_db)
    assert pg_usage.spent(day=now.date(), user="ann@example.com") == (70, 0.5)
    next_id = pg_usage.reserve(
        request_id="r2",
        user="bob@example.com",
        department="hr",
        tokens=1,
        cost=0.0,
        limits=BudgetLimits(),
        now=now,
    )
    assert next_id == 2  # the id sequence continues after the copied rows
    assert not PgDedupStore(pg_db).claim("E1")  # an event answered before the move stays answered

    code, _, err = run("db", "copy", "--to", pg_url)
    assert code != 0 and "already holds rows" in err  # never into a database replicas write
