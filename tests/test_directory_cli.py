"""``deptbot check [--directory]``, ``deptbot who`` and one-shot commands with directory groups.

The sources are fakes (``tests/test_directory.py``); ``bot.wiring.DirectorySources`` is the
one place that builds the real ones from the environment, so the tests replace it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bot import wiring
from bot.cli import main
from tests.fakes import CANARIES, GROUPS, make_company
from tests.test_directory import GUID, SOURCED, FakeSource

REAL_SOURCES = wiring.DirectorySources  # the fixture below replaces it with the fakes
GRAPH_ENV = {
    "DEPTBOT_GRAPH_TENANT_ID": "contoso.onmicrosoft.com",
    "DEPTBOT_GRAPH_CLIENT_ID": "app",
    "DEPTBOT_GRAPH_CLIENT_SECRET": "not-a-real-secret",
}


@pytest.fixture
def entra() -> FakeSource:
    return FakeSource("entra", {GUID: {"carol@example.com"}})


@pytest.fixture
def run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], entra: FakeSource
):  # type: ignore[no-untyped-def]
    make_company(tmp_path)
    (tmp_path / "departments" / "groups.yaml").write_text(SOURCED)
    prefixes = ("DEPTBOT_", "ANTHROPIC_", "OPENAI_", "SLACK_", "Microsoft")
    for var in [v for v in os.environ if v.startswith(prefixes)]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("DEPTBOT_DEPARTMENTS", str(tmp_path / "departments"))
    monkeypatch.setenv("DEPTBOT_STATE", str(tmp_path / "state"))
    for name, value in GRAPH_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(wiring, "DirectorySources", lambda settings: {"entra": entra})
    old_umask = os.umask(0o022)

    def _run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    _run.root = tmp_path  # type: ignore[attr-defined]
    yield _run
    os.umask(old_umask)


# ── deptbot check ────────────────────────────────────────────────────────────────────


def test_plain_check_stays_offline(run, entra: FakeSource) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("check")
    assert code == 0, err
    assert "configuration OK" in out and "directory groups" not in out
    assert entra.calls == []


def test_check_refuses_a_kind_that_is_not_configured(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    for name in GRAPH_ENV:
        monkeypatch.delenv(name)
    code, _, err = run("check")
    assert code == 2
    assert (
        "groups.yaml:4: finance-admins.entra: entra groups cannot be read: set DEPTBOT_GRAPH_TENANT_ID" in err
    )
    monkeypatch.setenv("MicrosoftAppTenantId", "contoso.onmicrosoft.com")  # the Teams bot's app will do
    monkeypatch.setenv("MicrosoftAppId", "bot")
    monkeypatch.setenv("MicrosoftAppPassword", "not-a-real-secret")
    code, _, err = run("check")
    assert code == 0, err


def test_check_names_the_one_credential_missing(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DEPTBOT_GRAPH_CLIENT_SECRET")
    monkeypatch.setenv("MicrosoftAppPassword", "of-another-app")  # never mixed with our client id
    code, _, err = run("check")
    assert code == 2
    assert err.splitlines()[0].endswith("entra groups cannot be read: set DEPTBOT_GRAPH_CLIENT_SECRET too")


def test_check_directory_reads_each_group_once(run, entra: FakeSource) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("check", "--directory")
    assert code == 0, err
    assert "directory groups (read just now; refreshed every 300 s):" in out
    assert f"  finance-admins  entra {GUID}  ok       1 member     read 0 s ago" in out
    assert entra.calls == [GUID]


def test_check_directory_exits_2_when_a_group_cannot_be_read(run, entra: FakeSource) -> None:  # type: ignore[no-untyped-def]
    entra.down = "HTTP 403 from Microsoft Graph"
    code, out, err = run("check", "--directory")
    assert code == 2
    assert (
        f"finance-admins  entra {GUID}  failing  0 members    never read — HTTP 403 from Microsoft Graph"
        in out
    )
    assert "1 directory group cannot be read — nobody gets access through it until it can" in err


def test_check_directory_without_directory_groups(run) -> None:  # type: ignore[no-untyped-def]
    (run.root / "departments" / "groups.yaml").write_text(GROUPS)
    code, out, _ = run("check", "--directory")
    assert code == 0
    assert "directory: no group in groups.yaml comes from a directory source" in out


# ── deptbot who ──────────────────────────────────────────────────────────────────────


def test_who_shows_groups_their_sources_and_what_the_person_may_do(run) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("who", "Carol@Example.com")
    assert code == 0, err
    assert out.splitlines() == [
        "carol@example.com",
        "groups:",
        f"  finance-admins  from entra {GUID} (ok)",
        "  finance-team    from groups.yaml",
        "may ask:",
        "  finance  Finance          via *@example.com",
        "  hr       Human Resources  via *@example.com",
        "administers:",
        "  finance  Finance  via group:finance-admins",
        "may run: nothing",
        "may not ask:",
        "  eng  You can't ask Engineering: it answers group:engineering.",
    ]


def test_who_json(run) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run("who", "hank@example.com", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["groups"] == [
        {"group": "hr-admins", "source": "groups.yaml", "ref": None, "state": None},
        {"group": "hr-team", "source": "groups.yaml", "ref": None, "state": None},
    ]
    assert report["admin"] == [{"department": "hr", "title": "Human Resources", "via": "group:hr-admins"}]
    assert report["run"] == [{"department": "hr", "template": "offer-letter", "via": "group:hr-team"}]
    assert report["unreadable"] == []


def test_who_says_why_nothing_and_names_unreadable_groups(run, entra: FakeSource) -> None:  # type: ignore[no-untyped-def]
    entra.down = "HTTP 403 from Microsoft Graph"
    code, out, err = run("who", "mallory@elsewhere.org")
    assert code == 0
    assert "groups: none\nmay ask: nothing\nadministers: nothing\nmay run: nothing\n" in out
    assert "  finance  You can't ask Finance: it answers *@example.com." in out
    assert "directory groups that cannot be read (nobody gets access through them):" in out
    assert f"  finance-admins  entra {GUID}  — HTTP 403 from Microsoft Graph" in out
    assert "warning: group finance-admins" in err


def test_who_refuses_something_that_is_not_an_address(run) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("who", "carol")
    assert code == 2 and "'carol' is not an e-mail address." in err


# ── one-shot commands read the directory before answering ───────────────────────────

PAYROLL = "payroll salary band L3 and payroll dates code"


def test_ask_reads_the_directory_first(run, entra: FakeSource) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("ask", PAYROLL, "--user", "carol@example.com", "--department", "finance", "--json")
    assert code == 0, err
    assert CANARIES["payroll"] in out and entra.calls == [GUID]


def test_ask_with_the_source_down_fails_closed_and_says_so(run, entra: FakeSource) -> None:  # type: ignore[no-untyped-def]
    entra.down = "HTTP 503 from Microsoft Graph"
    code, out, err = run("ask", PAYROLL, "--user", "carol@example.com", "--department", "finance", "--json")
    assert code == 0 and CANARIES["payroll"] not in out + err  # answered from what she may still read
    assert (
        "warning: group finance-admins (entra 9f1c2a4e-0b1d-4c3e-8f5a-1b2c3d4e5f60) cannot be read "
        "(HTTP 503 from Microsoft Graph); nobody gets access through it"
    ) in err


def test_check_reports_a_setting_the_source_refuses_without_contacting_it(
    run, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(wiring, "DirectorySources", REAL_SOURCES)
    monkeypatch.setenv("DEPTBOT_GRAPH_URL", "http://graph.example.com/v1.0")
    code, _, err = run("check")
    assert code == 2
    assert "finance-admins.entra: entra groups cannot be read: Entra group source: graph_url must be" in err
