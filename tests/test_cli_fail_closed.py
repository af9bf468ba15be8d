"""The terminal surface fails closed (issue 8): chat history keeps each answer's label,
nothing a document or file name holds can drive the terminal, and a closed pipe is quiet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from tests.fakes import make_company
from tests.llm.conftest import NO_BUDGETS, TEST_LLM, env_for
from tests.llm.stubs import StubLLM

PRIVATE_REPLY = "PRIVATE-REPLY-7731 the L3 band is in the payroll table [1]."


@pytest.fixture
def stubs() -> Iterator[tuple[StubLLM, StubLLM]]:
    cloud, private = StubLLM("openai"), StubLLM("openai", text=PRIVATE_REPLY)
    yield cloud, private
    cloud.close()
    private.close()


def _chat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: list[str], env: dict[str, str]) -> None:
    for var in [v for v in os.environ if v.startswith(("DEPTBOT_", "ANTHROPIC_", "OPENAI_", "SLACK_"))]:
        monkeypatch.delenv(var)
    settings = tmp_path / "settings.toml"
    settings.write_text(
        "[llm]\n"
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in TEST_LLM.items())
        + "[budgets]\n"
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in NO_BUDGETS.items())
    )
    for key, value in {
        **env,
        "DEPTBOT_DEPARTMENTS": str(tmp_path / "departments"),
        "DEPTBOT_STATE": str(tmp_path / "state"),
        "DEPTBOT_SETTINGS": str(settings),
    }.items():
        monkeypatch.setenv(key, value)
    feed = iter([*lines, "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(feed))
    assert main(["chat", "--user", "carol@example.com", "--department", "finance"]) == 0


def test_chat_never_sends_a_restricted_answer_to_the_cloud_as_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stubs: tuple[StubLLM, StubLLM]
) -> None:
    """The old chat kept earlier answers without their label: the private model's answer
    about payroll went to the cloud provider as history of the next, internal question."""
    cloud, private = stubs
    make_company(tmp_path)
    env = env_for(openai=cloud, private=private)
    _chat(
        tmp_path, monkeypatch, ["payroll salary band L3", "/dept hr", "How many vacation days do I get?"], env
    )
    assert private.count >= 1  # the restricted question went to the private endpoint
    sent_to_cloud = json.dumps([r.body for r in cloud.requests])
    assert "PRIVATE-REPLY-7731" not in sent_to_cloud
    assert "CANARY-PAYROLL" not in sent_to_cloud

    # not vacuous: without that history the same internal question does go to the cloud
    _chat(tmp_path, monkeypatch, ["/dept hr", "How many vacation days do I get?"], env)
    assert cloud.count >= 1


def test_terminal_escapes_from_documents_are_neutralized(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_company(tmp_path)
    evil = tmp_path / "knowledge" / "hr" / "evil\x1b[31mname.md"
    evil.write_text(
        "# Parking \x1b]52;c;ZXZpbA==\x07rules\n\n"
        "Parking permits cost 5 euros \x1b[2J per month \x9b31m here.\n"
    )
    for var in [v for v in os.environ if v.startswith(("DEPTBOT_", "ANTHROPIC_", "OPENAI_", "SLACK_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("DEPTBOT_DEPARTMENTS", str(tmp_path / "departments"))
    monkeypatch.setenv("DEPTBOT_STATE", str(tmp_path / "state"))
    code = main(
        ["ask", "parking permits cost per month", "--user", "alice@example.com", "--department", "hr"]
    )
    out, err = capsys.readouterr()
    assert code == 0 and "Parking permits cost 5 euros" in out
    for bad in ("\x1b", "\x07", "\x9b"):
        assert bad not in out and bad not in err
    code = main(["index", "hr"])
    out, err = capsys.readouterr()
    assert "\x1b" not in out


def test_a_closed_pipe_is_not_a_traceback(tmp_path: Path) -> None:
    make_company(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPTBOT_", "ANTHROPIC_", "OPENAI_"))}
    env |= {"DEPTBOT_DEPARTMENTS": str(tmp_path / "departments"), "DEPTBOT_STATE": str(tmp_path / "state")}
    cmd = [
        sys.executable,
        "-m",
        "bot",
        "ask",
        "How many vacation days do I get?",
        "--user",
        "alice@example.com",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    proc.stdout.close()  # like `| head -0`: the reader is gone before the answer is printed
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipeError" not in err


def test_state_folder_is_private(tmp_path: Path) -> None:
    """The state folder holds restricted text: created 0700, files 0600 (was 0755/0644)."""
    make_company(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPTBOT_", "ANTHROPIC_", "OPENAI_"))}
    env |= {"DEPTBOT_DEPARTMENTS": str(tmp_path / "departments"), "DEPTBOT_STATE": str(tmp_path / "state")}
    cmd = [sys.executable, "-m", "bot", "ask", "vacation days", "--user", "alice@example.com"]
    done = subprocess.run(cmd, capture_output=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    from bot.store.state import wider_than_private

    state = tmp_path / "state"
    assert (state.stat().st_mode & 0o777) == 0o700
    assert any(p.is_file() for p in state.rglob("*"))
    assert wider_than_private(state) == []
