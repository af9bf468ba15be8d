"""On PostgreSQL the replicas share one audit chain and one answer cache, so what a single
process may decide alone is refused: a replica without the shared audit key (or with
another key) does not start, and a per-process memory cache is a configuration error.
An export whose database stops answering fails instead of looking complete."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.core.types import Message
from bot.errors import ConfigError, StoreError
from bot.governance import chain
from bot.governance import keys as mk
from bot.governance.privacy import Privacy
from bot.governance.vault import forget_open_vaults
from bot.settings import Settings
from bot.store.backend import ENV_VAR
from bot.wiring import build
from tests.fakes import make_company

EMAIL = "pat@example.com"


@pytest.fixture(autouse=True)
def _fresh_vaults() -> Iterator[None]:
    yield
    forget_open_vaults()


def _settings(root: Path, env: dict[str, str], settings_file: Path | None = None) -> Settings:
    make_company(root)
    return Settings.load(
        departments=root / "departments", state=root / "state", env=env, settings_file=settings_file
    )


def test_a_replica_without_the_shared_audit_key_refuses_to_start(tmp_path: Path, pg_url: str) -> None:
    settings = _settings(tmp_path, {ENV_VAR: pg_url, mk.ENV_VAR: mk.generate()})
    with pytest.raises(ConfigError) as err:
        build(settings)
    message = err.value.user_message
    assert "DEPTBOT_AUDIT_KEY" in message and "deptbot audit init-key" in message
    assert "same value on every replica" in message
    assert not list(settings.state_dir.rglob("audit.key"))  # it made no key of its own


def test_a_replica_with_another_audit_key_refuses_to_start(tmp_path: Path, pg_url: str) -> None:
    master = mk.generate()
    first = _settings(tmp_path / "a", {ENV_VAR: pg_url, mk.ENV_VAR: master, chain.ENV_VAR: "aa" * 32})
    wired = build(first)
    wired.assistant.ask(Message(user_id=EMAIL, email=EMAIL, text="How many vacation days?", department="hr"))
    second = _settings(tmp_path / "b", {ENV_VAR: pg_url, mk.ENV_VAR: master, chain.ENV_VAR: "aa" * 32})
    build(second)  # the same key: starts
    forget_open_vaults()
    other = _settings(tmp_path / "c", {ENV_VAR: pg_url, mk.ENV_VAR: master, chain.ENV_VAR: "bb" * 32})
    with pytest.raises(ConfigError) as err:
        build(other)
    assert "not the one the shared audit chain was written with" in err.value.user_message


def test_memory_cache_with_postgres_is_refused(tmp_path: Path, pg_url: str) -> None:
    (tmp_path / "settings.toml").write_text('[cache]\nbackend = "memory"\n')
    env = {ENV_VAR: pg_url, mk.ENV_VAR: mk.generate(), chain.ENV_VAR: "aa" * 32}
    settings = _settings(tmp_path, env, tmp_path / "settings.toml")
    with pytest.raises(ConfigError) as err:
        build(settings)
    assert err.value.field == "cache.backend"
    assert '"memory" cannot be used with DEPTBOT_DATABASE_URL' in err.value.user_message


def test_export_fails_when_the_key_table_does_not_answer(tmp_path: Path, pg_url: str) -> None:
    """The shared key table stops answering after the audit rows were read: the export
    fails naming the database, instead of listing every question as "unreadable"."""
    env = {ENV_VAR: pg_url, mk.ENV_VAR: mk.generate(), chain.ENV_VAR: "aa" * 32}
    settings = _settings(tmp_path, env)
    wired = build(settings)
    wired.assistant.ask(Message(user_id=EMAIL, email=EMAIL, text="How many vacation days?", department="hr"))
    privacy = Privacy.for_settings(settings)
    assert privacy.export(EMAIL, record=False).counts["questions"] == 1
    db = wired.audit.db  # type: ignore[attr-defined]

    def down(sid: str) -> object:  # what a pooled read raises once the server is gone
        raise StoreError(f"Cannot reach the database at {db.url.redacted} (DEPTBOT_DATABASE_URL).")

    privacy.vault.table.get = down  # type: ignore[method-assign]
    with pytest.raises(StoreError) as err:
        privacy.export(EMAIL, record=False)
    assert "privacy export was not made" in err.value.user_message


def test_audit_init_key_makes_the_key_once(run) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run("audit", "init-key")
    assert code == 0 and "Wrote a new audit key" in out
    key = run.root / "state" / "keys" / "audit.key"
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_text().strip()) == 64
    before = key.read_bytes()
    code, _, err = run("audit", "init-key")
    assert code != 0 and "never overwritten" in err and key.read_bytes() == before
    code, out, _ = run("audit", "init-key", "--print")
    assert code == 0 and len(out.strip()) == 64
