"""Privacy export and erase with ``DEPTBOT_DATABASE_URL``: the shared stores are in
PostgreSQL, the rest (Teams state, the admin console) in the state folder. After an erase
the person's e-mail and the words of their questions appear in no text or bytea column of
any deptbot table, and in no byte of any local file; the audit chain still verifies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.governance import chain
from bot.governance import keys as mk
from bot.governance.privacy import Privacy
from bot.governance.vault import forget_open_vaults
from bot.settings import Settings
from bot.store.backend import ENV_VAR, Database
from bot.wiring import open_audit_log
from tests.governance.test_privacy_erase import (
    BYSTANDER,
    EMAIL,
    FEEDBACK_WORDS,
    QUESTION_WORDS,
    QUESTIONS,
    _canary_activity,
    _files,
    _holding,
    _world,
)

from .conftest import Backend


@pytest.fixture(autouse=True)
def _fresh_vaults() -> Iterator[None]:
    yield
    forget_open_vaults()


def _columns_holding(backend: Backend, needle: str) -> list[str]:
    """Every text-like and bytea column of every table in the database, searched."""
    found = []
    columns = backend.sql(
        "",
        "select table_name, column_name, data_type from information_schema.columns "
        "where table_schema = 'public' and data_type in ('text', 'bytea', 'character varying', 'jsonb')",
    )
    assert len({t for t, _, _ in columns}) >= 11, columns  # the tables of every migration
    for table, column, kind in columns:
        if kind == "bytea":
            forms = [needle, needle.lower(), needle.upper()]
            test = " or ".join(f"position(convert_to(?, 'UTF8') in \"{column}\") > 0" for _ in forms)
            args: list[str] = forms
        else:
            test, args = f'strpos(lower("{column}"::text), ?) > 0', [needle.lower()]
        if backend.sql("", f'select count(*) from "{table}" where {test}', args)[0][0]:
            found.append(f"{table}.{column}")
    return found


def test_erase_on_postgres_leaves_no_canary_in_any_table_or_file(
    tmp_path: Path, pg_url: str, pg_db: Database
) -> None:
    env = {ENV_VAR: pg_url, mk.ENV_VAR: mk.generate(), chain.ENV_VAR: "ab" * 32}
    settings, assistant, convo, notices = _world(tmp_path, env)
    state = settings.state_dir
    _canary_activity(assistant, convo, notices, state)[0].close()

    backend = Backend("postgres", tmp_path, pg_db)
    holding = _columns_holding(backend, EMAIL)
    assert {"requests.user", "attempts.user", "feedback.user", "notices.text"} <= set(holding), holding
    for word in (*QUESTION_WORDS, FEEDBACK_WORDS):  # sealed at rest already
        assert _columns_holding(backend, word) == [], word
    for local in ("audit.db", "usage.db", "cache.db", "keys.db", "notices.sqlite3", "teams-state.sqlite3"):
        assert not (state / local).exists(), local  # the shared stores are not in the folder

    privacy = Privacy.for_settings(settings)
    export = privacy.export(EMAIL, record=False)
    assert [q["question"] for q in export.data["questions"]] == [q for q in QUESTIONS for _ in range(2)]
    assert export.data["feedback"][0]["reason"] == f"wrong {FEEDBACK_WORDS}"
    assert export.counts["usage_rows"] > 0 and export.counts["cached_answers"] >= 1
    assert export.counts["notices"] == 1 and export.counts["conversation_turns"] == 2
    assert export.counts["admin_console_events"] == 3

    receipt = privacy.erase(EMAIL)
    privacy.close()
    assert receipt.key_shredded and receipt.files_checkpointed
    assert receipt.removed["questions"] == 4 and receipt.removed["cached_answers"] >= 1
    assert receipt.removed["notices"] == 1 and receipt.removed["usage_rows_pseudonymized"] >= 1
    assert receipt.removed["teams_history"] == 2 and receipt.removed["admin_events_pseudonymized"] == 3
    for needle in (EMAIL, *QUESTION_WORDS, FEEDBACK_WORDS):
        assert _columns_holding(backend, needle) == [], needle
        assert _holding(_files(state), needle) == [], needle

    audit = open_audit_log(settings)
    report = audit.verify()
    assert report.ok, report.problem
    users = [r["user"] for r in audit.tail(50)]
    assert users.count(receipt.pseudonym) == 5 and BYSTANDER in users  # 4 questions + the erase
    again = Privacy.for_settings(settings)
    assert again.export(EMAIL, record=False).counts["audit_rows"] == 0
    assert again.export(BYSTANDER, record=False).data["feedback"][0]["reason"] == "bystander kept"
    other = Settings.load(departments=tmp_path / "departments", state=tmp_path / "replica-b", env=env)
    assert Privacy.for_settings(other).export(BYSTANDER, record=False).counts["questions"] == 1
