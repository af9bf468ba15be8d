"""Without ``MicrosoftAppId`` no request says who it is (reviewer R2, finding 5).

The old anonymous mode took the Emulator's ``from.id`` as the person whenever it was an
address, and answered every loopback request: behind a same-host reverse proxy that adds no
forwarding header (nginx's plain ``proxy_pass``, stunnel, ``ssh -R``), anyone on the
internet could ask as anyone. Now the Emulator mode must be asked for by name
(``DEPTBOT_TEAMS_ANONYMOUS=1``), is announced, takes Emulator activities only, and the
person is ``DEPTBOT_TEAMS_EMULATOR_EMAIL`` and nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.adapters.teams.auth import TeamsSettings, check_teams_settings
from bot.errors import ConfigError
from tests.adapters.teams.conftest import GROUP_CHAT, TENANT, Harness, make_settings
from tests.adapters.teams.test_identity_and_invokes import emulator_activity
from tests.fakes import MemoryAudit

ANONYMOUS = "DEPTBOT_TEAMS_ANONYMOUS"
EMAIL = "DEPTBOT_TEAMS_EMULATOR_EMAIL"
OFF = {ANONYMOUS: "0"}  # no app id and no opt-in (the conftest would otherwise add an app id)
ON = {ANONYMOUS: "1"}
QUESTION = "How many vacation days do I get?"


def test_without_the_opt_in_every_request_is_refused(teams: Callable[..., None], audit: MemoryAudit) -> None:
    """The reviewer's repro: an Emulator-looking POST from loopback, no Authorization header."""

    async def scenario(h: Harness) -> None:
        for body in (
            emulator_activity(h, QUESTION, user="carol@example.com"),
            h.activity(QUESTION, user="carol"),
        ):
            status, _ = await h.post(body)
            assert status == 401
        await h.settle()
        assert h.connector.posted == [] and h.connector.lookups == []
        assert audit.entries == []

    teams(scenario, env=OFF)


def test_the_request_never_names_the_person(teams: Callable[..., None], audit: MemoryAudit) -> None:
    """Opted in without an address: a from.id that is an address is still nobody."""

    async def scenario(h: Harness) -> None:
        posted = await h.ask(emulator_activity(h, QUESTION, user="carol@example.com"))
        assert "25 days" not in posted[-1].body["text"]
        assert audit.entries[-1].user != "carol@example.com"
        assert audit.entries[-1].decision == "denied"

    teams(scenario, env=ON)


def test_the_person_is_the_configured_address_only(teams: Callable[..., None], audit: MemoryAudit) -> None:
    async def scenario(h: Harness) -> None:
        posted = await h.ask(emulator_activity(h, QUESTION, user="carol@example.com"))
        assert "25 days" in posted[-1].body["text"]
        assert audit.entries[-1].user == "alice@example.com"
        assert h.connector.lookups == []  # nothing is asked of the serviceUrl the request named

    teams(scenario, env={**ON, EMAIL: "Alice@Example.com"})


def test_the_emulator_mode_takes_emulator_activities_only(
    teams: Callable[..., None], audit: MemoryAudit
) -> None:
    """A Teams-shaped activity would have its member record looked up at the serviceUrl
    it names: refused, as is one a proxy forwarded."""

    async def scenario(h: Harness) -> None:
        assert (await h.post(h.activity(QUESTION, user="mallory")))[0] == 401
        forwarded = {"X-Forwarded-For": "203.0.113.9"}
        assert (await h.post(emulator_activity(h, QUESTION), headers=forwarded))[0] == 401
        await h.settle()
        assert h.connector.posted == [] and h.connector.lookups == [] and audit.entries == []

    teams(scenario, env={**ON, EMAIL: "alice@example.com"})


def test_the_emulator_mode_never_reads_a_roster(teams: Callable[..., None]) -> None:
    """Who reads a group chat would come from the request's serviceUrl: unavailable, so the
    answer goes 1:1 (the Emulator mode trusts nothing the request names)."""

    async def scenario(h: Harness) -> None:
        body = emulator_activity(h, QUESTION)
        body["conversation"] = {
            "id": GROUP_CHAT,
            "conversationType": "groupChat",
            "isGroup": True,
            "tenantId": TENANT,
        }
        await h.ask(body)
        assert h.connector.roster_calls == []
        assert not any("25 days" in str(p.body.get("text")) for p in h.connector.messages(GROUP_CHAT))

    teams(scenario, env={**ON, EMAIL: "alice@example.com"})


def test_the_opt_in_is_announced_at_start_up(
    teams: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(h: Harness) -> None:
        pass

    with caplog.at_level(logging.WARNING, logger="bot.adapters.teams"):
        teams(scenario, env={**ON, EMAIL: "alice@example.com"})
    assert any(
        "ANONYMOUS Emulator mode" in r.getMessage() and "alice@example.com" in r.getMessage()
        for r in caplog.records
    )


def test_deptbot_check_announces_the_mode_and_refuses_bad_values() -> None:
    from bot.adapters.teams.auth import teams_check

    problems, lines = teams_check({**ON, EMAIL: "alice@example.com"})
    assert problems == [] and "ANONYMOUS Emulator mode" in lines[0] and "alice@example.com" in lines[0]
    assert teams_check({}) == ([], [])
    problems, _ = teams_check({EMAIL: "alice@example.com"})  # an address without the opt-in
    assert [p.field for p in problems] == [EMAIL]
    problems, _ = teams_check({ANONYMOUS: "maybe"})
    assert [p.field for p in problems] == [ANONYMOUS]
    problems, lines = teams_check({"MicrosoftAppId": "bot"})  # e.g. set for the Graph directory
    assert problems == [] and lines[0].startswith("teams: MicrosoftAppId: ")


def test_the_opt_in_is_refused_with_an_app_id_or_off_loopback(tmp_path: Path) -> None:
    app = {
        "MicrosoftAppId": "8c5d2df2-4650-4d73-be4c-d17e28b26e5d",
        "MicrosoftAppPassword": "secret",
        "MicrosoftAppType": "SingleTenant",
        "MicrosoftAppTenantId": "5f0d9d35-7a3e-4c5b-9b1f-2b8a7f0e6c11",
    }
    with pytest.raises(ConfigError) as err:
        TeamsSettings.from_env({**app, **ON})
    assert err.value.field == ANONYMOUS
    with pytest.raises(ConfigError) as err:
        check_teams_settings(make_settings(tmp_path, ON), "0.0.0.0")
    assert err.value.field == ANONYMOUS
    check_teams_settings(make_settings(tmp_path, ON), "127.0.0.1")


def test_deptbot_check_prints_the_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    from bot.cli import main
    from tests.fakes import make_company

    make_company(tmp_path)
    for var in [v for v in os.environ if v.startswith(("DEPTBOT_", "Microsoft"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("DEPTBOT_DEPARTMENTS", str(tmp_path / "departments"))
    monkeypatch.setenv("DEPTBOT_STATE", str(tmp_path / "state"))
    monkeypatch.setenv(ANONYMOUS, "1")
    monkeypatch.setenv(EMAIL, "alice@example.com")
    umask = os.umask(0o022)
    try:
        assert main(["check"]) == 0
        assert "teams: ANONYMOUS Emulator mode" in capsys.readouterr().out
        monkeypatch.delenv(ANONYMOUS)  # an address alone: a problem, named
        assert main(["check"]) == 2
        assert f"{EMAIL}: names the Emulator's user" in capsys.readouterr().err
    finally:
        os.umask(umask)
