"""The Teams person link (user id → person) survives what other processes do: an erase run
by the CLI (another process) deletes the row, and the serving process, which remembered
writing it, writes it again the next time the person speaks, so a later erase still finds
their conversation reference. And a Teams store whose clean-up after an erase failed makes
the receipt say so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.errors import StoreError
from bot.governance import keys as mk
from bot.governance.privacy import Privacy
from bot.governance.vault import Vault, forget_open_vaults
from bot.store.teams_state import TeamsState
from tests.governance.test_privacy_erase import EMAIL, QUESTIONS, _ask, _world

REF = ("teams", "tenant", "29:alice")


@pytest.fixture(autouse=True)
def _fresh_vaults() -> Iterator[None]:
    yield
    forget_open_vaults()


def _two_processes(tmp_path: Path) -> tuple[TeamsState, TeamsState]:
    vault = Vault.in_state_dir(tmp_path, mk.load({mk.ENV_VAR: mk.generate()}, None))
    serve = TeamsState(path=tmp_path / TeamsState.FILE, vault=vault)  # the serving process
    cli = TeamsState(path=tmp_path / TeamsState.FILE, vault=vault)  # `deptbot privacy erase`
    return serve, cli


def test_a_link_erased_by_another_process_is_written_again(tmp_path: Path) -> None:
    serve, cli = _two_processes(tmp_path)
    serve.people.link("29:alice", EMAIL)
    serve.references.put(REF, {"conversation": {"id": "a:1"}})
    assert cli.users_of(EMAIL, []) == ["29:alice"]
    cli.erase(cli.users_of(EMAIL, []), [], email=EMAIL)
    serve.people.link("29:alice", EMAIL)  # they write again within the day
    serve.references.put(REF, {"conversation": {"id": "a:1"}})
    assert cli.users_of(EMAIL, []) == ["29:alice"]  # a second erase finds them
    assert cli.erase(cli.users_of(EMAIL, []), [], email=EMAIL)["references"] == 1
    serve.close()
    cli.close()


def test_a_failed_link_write_is_retried(tmp_path: Path) -> None:
    serve, cli = _two_processes(tmp_path)
    write = serve.write
    calls = {"n": 0}

    def flaky(statements: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise StoreError("The Teams state is busy.")
        write(statements)

    serve.write = flaky  # type: ignore[method-assign]
    with pytest.raises(StoreError):
        serve.people.link("29:alice", EMAIL)
    # Nothing is remembered for a write that failed: a memo here would skip the daily
    # rewrite on the row-exists read alone, and the retry would rest on that read.
    assert "29:alice" not in serve._linked
    serve.people.link("29:alice", EMAIL)
    assert calls["n"] == 2  # the retry wrote
    assert "29:alice" in serve._linked  # remembered once written
    assert cli.users_of(EMAIL, []) == ["29:alice"]
    serve.close()
    cli.close()


def test_a_teams_store_that_could_not_checkpoint_shows_in_the_receipt(tmp_path: Path) -> None:
    settings, assistant, convo, _ = _world(tmp_path, {})
    first: Any = _ask(assistant, EMAIL, QUESTIONS[0])
    convo.history.add_answer((("teams", "c1"), "29:alice"), QUESTIONS[0], first)
    convo.close()
    privacy = Privacy.for_settings(settings)
    assert privacy.teams is not None
    privacy.teams.checkpoint = lambda: False  # type: ignore[method-assign]  # e.g. a VACUUM failed
    receipt = privacy.erase(EMAIL)
    privacy.close()
    assert not receipt.files_checkpointed
