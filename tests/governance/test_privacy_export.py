"""``deptbot privacy export``: every kind of record stored about a person, opened, as JSON;
``deptbot privacy erase`` from the command line, with its confirmation and receipt."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.governance import keys as mk
from bot.governance.privacy import Privacy
from bot.governance.vault import forget_open_vaults
from tests.governance.test_privacy_erase import (
    EMAIL,
    FEEDBACK_WORDS,
    QUESTIONS,
    _ask,
    _console_activity,
    _world,
)


@pytest.fixture(autouse=True)
def _fresh_vaults(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(mk.ENV_VAR, raising=False)
    monkeypatch.delenv("DEPTBOT_PRIVACY__MASTER_KEY_FILE", raising=False)
    yield
    forget_open_vaults()


def _populate(tmp_path: Path) -> Path:
    _, assistant, convo, notices = _world(tmp_path, {})
    first = _ask(assistant, EMAIL, QUESTIONS[0])
    _ask(assistant, EMAIL, QUESTIONS[1])
    assistant.feedback(first.request_id, user=EMAIL, value="down", reason=f"wrong {FEEDBACK_WORDS}")  # type: ignore[attr-defined]
    convo.history.add_answer(("19:c", "aad-q"), QUESTIONS[0], first)  # type: ignore[arg-type]
    convo.replies.remember("msg-1", first.request_id, first)  # type: ignore[attr-defined]
    convo.references.put(("teams", "t", "aad-q"), {"user": {"id": "aad-q"}})
    notices.notify(None, "directory", f"{EMAIL} is not in any group")
    _console_activity(tmp_path / "state").close()  # admin console sign-ins
    _ask(assistant, "alice@example.com", "vacation days carry over for alice")
    convo.close()
    return tmp_path


def test_export_holds_every_kind_of_record(tmp_path: Path) -> None:
    from bot.settings import Settings

    root = _populate(tmp_path)
    settings = Settings.load(departments=root / "departments", state=root / "state", env={})
    export = Privacy.for_settings(settings).export(EMAIL.upper())
    data = export.data
    assert data["person"] == EMAIL.lower()
    assert [q["question"] for q in data["questions"]] == QUESTIONS
    assert len(data["audit_rows"]) == 2 and all(
        r["user"].lower() == EMAIL.lower() for r in data["audit_rows"]
    )
    assert data["feedback"][0]["reason"] == f"wrong {FEEDBACK_WORDS}"
    assert data["usage"]["attempts"] and data["usage"]["attempts"][0]["user"] == EMAIL.lower()
    cached = data["cached_answers"]
    assert cached and "vacation" in cached[0]["answer"]["text"].lower()  # answers, opened
    teams = data["conversations"]
    assert [t["text"] for t in teams["history"] if t["role"] == "user"] == [QUESTIONS[0]]
    assert teams["replies"][0]["payload"]["answer"]["request_id"] == data["audit_rows"][0]["request_id"]
    assert teams["references"][0]["reference"] == {"user": {"id": "aad-q"}}
    assert EMAIL in data["notices"][0]["text"]
    assert all(count > 0 for count in export.counts.values()), export.counts
    assert "alice" not in json.dumps(data)  # nobody else's records
    assert export.summary()[0].startswith(f"Stored about {EMAIL.lower()}: 2 questions")


def test_cli_export_and_erase(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _populate(tmp_path)
    base = ["--departments", str(root / "departments"), "--state", str(root / "state")]
    out = tmp_path / "export.json"
    assert main([*base, "privacy", "export", EMAIL, "--out", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    assert json.loads(out.read_text())["questions"][0]["question"] == QUESTIONS[0]
    printed = capsys.readouterr().out
    assert "Stored about" in printed and "2 questions" in printed

    assert main([*base, "privacy", "export", EMAIL]) == 0  # JSON on stdout, summary on stderr
    captured = capsys.readouterr()
    assert json.loads(captured.out)["person"] == EMAIL.lower() and "Stored about" in captured.err

    assert main([*base, "privacy", "erase", EMAIL]) == 2  # no terminal to confirm on, no --yes
    assert "--yes" in capsys.readouterr().err
    assert main([*base, "privacy", "erase", EMAIL, "--yes"]) == 0
    receipt = capsys.readouterr().out
    assert "Data key destroyed: yes" in receipt and "questions: 2" in receipt
    assert EMAIL.lower() not in receipt.lower()
    assert main([*base, "audit", "verify"]) == 0
    assert main([*base, "privacy", "erase", "not-an-email", "--yes"]) == 2


def test_notices_match_the_whole_address_and_stay_out_of_the_chat_export(tmp_path: Path) -> None:
    """``bob@`` must not collect (or erase) notices about ``jimbob@``, and admin notices,
    which may name restricted files, go only into an export an admin runs."""
    from bot.governance.privacy import SelfService
    from bot.settings import Settings

    root = _populate(tmp_path)
    _, _, _, notices = _world(tmp_path, {})
    notices.notify(None, "directory", f"x{EMAIL} left the company")  # a longer address holding EMAIL
    settings = Settings.load(departments=root / "departments", state=root / "state", env={})
    data = Privacy.for_settings(settings).export(EMAIL).data
    assert [n["text"] for n in data["notices"]] == [f"{EMAIL} is not in any group"]
    chat = SelfService(lambda: Privacy.for_settings(settings)).export(EMAIL, platform="slack").data
    assert chat["notices"] == []
    receipt = Privacy.for_settings(settings).erase(EMAIL)
    assert receipt.removed["notices"] == 1
