"""A recorded copy another state folder cannot reach, seen from chat and from scripts:

- chat receipts named the server (``on db-host-7 at /srv/…``), and a chat export carried
  each copy's absolute folder: the person hears only that a copy elsewhere still holds
  their data and that the admins were told; the admins' notice keeps host and path;
- ``deptbot privacy erase`` and ``export`` exited 0 while such a copy was not reached or
  read, so ``erase && close-ticket`` closed the ticket: they exit 4 ("incomplete").
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.governance.keys import generate
from bot.governance.privacy import Privacy
from bot.governance.vault import forget_open_vaults
from bot.settings import Settings
from bot.store.backend import ENV_VAR, Database
from bot.store.pg_notices import PgNotices
from tests.governance.test_privacy_erase import EMAIL, _canary_activity, _world
from tests.pg_fixtures import checked_url

HOST_A = "db-host-7.corp.internal"


@pytest.fixture(autouse=True)
def _fresh_vaults() -> Iterator[None]:
    yield
    forget_open_vaults()


def _copied_on_a(run, monkeypatch: pytest.MonkeyPatch, pg_url: str) -> tuple[dict[str, str], Path, Path]:  # type: ignore[no-untyped-def]
    """Replica A (host ``HOST_A``) copied into PostgreSQL; the process then runs as
    replica B. Returns (keys, A's state folder, the copy's folder)."""
    root: Path = run.root
    keys = {"DEPTBOT_MASTER_KEY": generate(), "DEPTBOT_AUDIT_KEY": "5a" * 32}
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    settings, assistant, convo, notices = _world(root, keys)
    _canary_activity(assistant, convo, notices, settings.state_dir)[0].close()
    convo.close()
    host = {"name": HOST_A}
    monkeypatch.setattr(socket, "gethostname", lambda: host["name"])
    code, _, err = run("db", "copy", "--to", pg_url)
    assert code == 0, err
    (moved,) = (settings.state_dir / "copied-to-postgresql").iterdir()
    forget_open_vaults()
    host["name"] = "replica-b"
    return keys, settings.state_dir, moved


def test_chat_hears_no_server_path_and_the_admins_get_it(  # type: ignore[no-untyped-def]
    run, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys, _state_a, moved = _copied_on_a(run, monkeypatch, pg_url)
    b = Settings.load(
        departments=run.root / "departments", state=run.root / "state-b", env={ENV_VAR: pg_url, **keys}
    )
    privacy = Privacy.for_settings(b)
    try:
        receipt = privacy.erase(EMAIL, platform="slack")
    finally:
        privacy.close()
    said = "\n".join(receipt.lines())
    assert HOST_A not in said and str(moved.resolve()) not in said, said  # before: "on db-host-7… at /…"
    assert "a copy of the bot's state elsewhere still holds your data; the admins have been told" in said
    assert receipt.missed == 1 and not receipt.reached_everything
    db = Database(checked_url(pg_url))
    try:
        texts = [n.text for n in PgNotices(db).recent()]
    finally:
        db.close()
    (notice,) = [t for t in texts if "missed" in t]
    assert HOST_A in notice and str(moved.resolve()) in notice and EMAIL.lower() not in notice.lower()


def test_a_chat_export_carries_no_absolute_folder(  # type: ignore[no-untyped-def]
    run, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys, state_a, moved = _copied_on_a(run, monkeypatch, pg_url)
    a = Settings.load(departments=run.root / "departments", state=state_a, env={ENV_VAR: pg_url, **keys})
    privacy = Privacy.for_settings(a)
    try:
        chat = privacy.export(EMAIL, record=False, platform="teams", notices=False)
        cli = privacy.export(EMAIL, record=False)
    finally:
        privacy.close()
    (copy,) = chat.data["sqlite_copies"]
    assert copy["folder"] == f"copied-to-postgresql/{moved.name}", copy.get("folder")  # before: absolute
    assert str(run.root) not in chat.to_json()
    assert json.loads(cli.to_json())["sqlite_copies"][0]["folder"] == str(moved)  # the operator's CLI: whole


def test_the_cli_exits_incomplete_while_a_copy_elsewhere_was_not_reached(  # type: ignore[no-untyped-def]
    run, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _keys, _state_a, moved = _copied_on_a(run, monkeypatch, pg_url)
    monkeypatch.setenv(ENV_VAR, pg_url)
    monkeypatch.setenv("DEPTBOT_STATE", str(run.root / "state-b"))
    code, out, err = run("privacy", "export", EMAIL, "--out", str(run.root / "export.json"))
    assert code == 4, out + err  # before: 0 with the copy not read
    assert "was not read from here" in out
    code, out, err = run("privacy", "erase", EMAIL, "--yes")
    assert code == 4, out + err  # before: 0 while the copy still holds the person's data
    assert "FAILED" not in out and f"on {HOST_A} at {moved.resolve()}" in out
