"""When PostgreSQL goes away, answers refuse (the audit write fails closed) with one clear
line and no driver text; ``/readyz`` and ``deptbot check`` say so without the password."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.adapters.probes import ReadyChecks
from bot.adapters.runtime import Runtime
from bot.cli import main
from bot.config import Company
from bot.core.pipeline import Assistant
from bot.governance.chain import AuditKey
from bot.llm.extractive import ExtractiveGenerator
from bot.settings import Settings
from bot.store.backend import ENV_VAR, Database, PoolLimits, database_url
from bot.store.pg_audit import UNAUDITED, PgAuditLog
from tests.adapters.slack.conftest import SlackHarness, mention
from tests.fakes import FakeIndexer, FakeRetriever, MemoryAudit

from .conftest import PgServer

LEAKS = ("Traceback", "psycopg", "postgresql://", "OperationalError", "s3cret")


def _block(pg_server: PgServer, url: str) -> str:
    """Cut the test's database off: no new connections, and every open one terminated."""
    name = url.split("/")[3].split("?")[0]
    pg_server.admin(f"alter database {name} allow_connections false")
    pg_server.admin(f"select pg_terminate_backend(pid) from pg_stat_activity where datname = '{name}'")
    return name


def test_answers_refuse_with_a_clear_line_when_the_database_goes_away(
    company: Company, retriever: FakeRetriever, tmp_path: Path, pg_url: str, pg_server: PgServer
) -> None:
    parsed = database_url({ENV_VAR: pg_url})
    assert parsed is not None
    db = Database(parsed, PoolLimits(min_size=1, max_size=2, connect_timeout=1.0))
    audit = PgAuditLog(db, home=tmp_path, key=AuditKey(b"k" * 32, "environment"))
    assistant = Assistant(
        company=company,
        retriever=retriever,
        indexer=FakeIndexer(),
        generator=ExtractiveGenerator(),
        audit=audit,
    )
    harness = SlackHarness(assistant, tmp_path / "state")

    async def scenario() -> list[str]:
        async with harness as h:
            await h.event(mention("How many vacation days do I get?", ts="1700000001.000100"))
            await h.stub.wait_for("chat.postMessage")
            _block(pg_server, pg_url)
            await h.event(mention("And how many sick days?", ts="1700000001.000200"))
            posts = await h.stub.wait_for("chat.postMessage", 2, timeout=20)
            return [str(p.get("text", "")) + str(p.get("blocks", "")) for p in posts]

    try:
        first, second = asyncio.run(scenario())
    finally:
        db.close()
    assert "vacation" in first.lower()  # the control: answered while the database was up
    assert UNAUDITED.split("(")[0].strip() in second  # "… so this request was not answered"
    assert not any(leak in second for leak in LEAKS), second


def test_readyz_and_check_report_a_database_that_is_down_without_the_password(
    company: Company,
    tmp_path: Path,
    pg_url: str,
    pg_server: PgServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(
        departments_dir=tmp_path / "departments",
        state_dir=tmp_path / "state",
        env={ENV_VAR: pg_url},
        file={"database": {"connect_timeout_seconds": 1}},
    )
    assistant = Assistant(
        company=company,
        retriever=FakeRetriever([]),
        indexer=FakeIndexer(),
        generator=ExtractiveGenerator(),
        audit=MemoryAudit(),
    )
    checks = ReadyChecks(assistant=assistant, settings=settings, runtime=Runtime())
    assert "postgresql" not in checks.check().failing  # up and migrated (the control)
    monkeypatch.setenv(ENV_VAR, pg_url)
    args = ["--departments", str(tmp_path / "departments"), "--state", str(tmp_path / "state"), "check"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "database: postgresql://postgres@/" in out and "(current)" in out

    _block(pg_server, pg_url)
    assert "postgresql" in checks.check().failing
    monkeypatch.setenv("DEPTBOT_DATABASE__CONNECT_TIMEOUT_SECONDS", "1")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "DEPTBOT_DATABASE_URL: database: cannot reach the database at postgresql://postgres@/" in err
    assert not any(leak in err for leak in ("Traceback", "psycopg", "OperationalError")), err


def test_check_names_a_schema_behind_this_release_and_refuses_a_bad_url(
    tmp_path: Path,
    pg_url: str,
    pg_server: PgServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.fakes import make_company

    make_company(tmp_path)
    args = ["--departments", str(tmp_path / "departments"), "--state", str(tmp_path / "state"), "check"]
    name = pg_url.split("/")[3].split("?")[0]
    pg_server.admin(f"create database {name}_old")
    try:
        monkeypatch.setenv(ENV_VAR, pg_url.replace(f"/{name}?", f"/{name}_old?"))
        assert main(args) == 2
        assert "is at version 0, this release needs" in capsys.readouterr().err
    finally:
        pg_server.admin(f"drop database {name}_old with (force)")
    monkeypatch.setenv(ENV_VAR, "postgresql://bot:s3cret@127.0.0.1:1/deptbot")  # nothing listens on port 1
    monkeypatch.setenv("DEPTBOT_DATABASE__CONNECT_TIMEOUT_SECONDS", "1")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "cannot reach the database at postgresql://bot:***@127.0.0.1:1/deptbot" in err
    assert "s3cret" not in err
