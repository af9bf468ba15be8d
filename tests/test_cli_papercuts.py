"""Issue 14: CLI papercuts — discoverable templates, a chat that checks what it is told,
wording, terminal layout, ``-v`` diagnostics, honest docs and a changelog."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot.cli import build_parser, main
from tests.fakes import make_company

ROOT = Path(__file__).resolve().parents[1]

IT_YAML = """\
title: IT Help Desk
knowledge: ../knowledge/it
admins: ["group:it-admins"]
ask: ["*@example.com"]
templates:
  access-request:
    description: Write an access request for a system
    prompt: "Write an access request for: {input}"
  incident-report:
    description: Draft an IT incident report
    allowed: ["group:it-admins"]
    prompt: "Draft an incident report for: {input}"
"""


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """``deptbot`` on the test company plus an IT department with two templates."""
    make_company(tmp_path)
    (tmp_path / "departments" / "it.yaml").write_text(IT_YAML)
    groups = tmp_path / "departments" / "groups.yaml"
    groups.write_text(groups.read_text() + "it-admins: [erin@example.com]\n")
    (tmp_path / "knowledge" / "it").mkdir()
    (tmp_path / "knowledge" / "it" / "vpn.md").write_text(
        "# VPN\n\nConnect to the VPN with the company client and your MFA token.\n"
    )
    for var in [v for v in os.environ if v.startswith(("DEPTBOT_", "ANTHROPIC_", "OPENAI_", "SLACK_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("DEPTBOT_DEPARTMENTS", str(tmp_path / "departments"))
    monkeypatch.setenv("DEPTBOT_STATE", str(tmp_path / "state"))
    monkeypatch.delenv("COLUMNS", raising=False)

    def _run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    _run.root = tmp_path  # type: ignore[attr-defined]
    return _run


def _chat(run, monkeypatch: pytest.MonkeyPatch, user: str, lines: list[str], *extra: str):  # type: ignore[no-untyped-def]
    feed: Iterator[str] = iter([*lines, "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(feed))
    return run("chat", "--user", user, *extra)


# ── 1. templates are discoverable ────────────────────────────────────────────────────


def test_templates_lists_every_template_with_an_example(run) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("templates")
    assert code == 0, err
    for dept, name, description in [
        ("hr", "offer-letter", "Draft an offer letter"),
        ("it", "access-request", "Write an access request for a system"),
        ("it", "incident-report", "Draft an IT incident report"),
    ]:
        assert name in out and description in out and dept in out
        assert f'deptbot run {name} "INPUT" --user EMAIL' in out


def test_templates_for_a_user_lists_only_what_they_may_run(run) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run("templates", "--user", "grace@example.com")
    assert code == 0
    assert "access-request" in out
    assert "offer-letter" not in out and "incident-report" not in out
    assert 'deptbot run access-request "INPUT" --user grace@example.com' in out

    code, out, _ = run("templates", "--user", "alice@example.com", "--json")
    rows = json.loads(out)
    assert code == 0
    assert [(r["department"], r["name"]) for r in rows] == [("hr", "offer-letter"), ("it", "access-request")]
    first = rows[0]
    assert first["department_title"] == "Human Resources"
    assert first["description"] == "Draft an offer letter"
    assert first["example"] == 'deptbot run offer-letter "INPUT" --user alice@example.com'


def test_the_example_command_line_actually_runs(run) -> None:  # type: ignore[no-untyped-def]
    _, out, _ = run("templates", "--user", "alice@example.com", "--json")
    example = json.loads(out)[0]["example"]
    argv = shlex.split(example)[1:]  # drop "deptbot"
    code, out, err = run(*argv)
    assert code == 0, err
    assert "Human Resources" in out


def test_run_unknown_template_lists_what_the_user_may_run(run) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("run", "nosuch", "x", "--user", "grace@example.com")
    assert code == 2
    assert "No department has a template 'nosuch'" in err
    assert "access-request" in err
    assert "offer-letter" not in err and "incident-report" not in err  # grace may not run them
    assert "deptbot templates --user grace@example.com" in err


def test_run_template_missing_from_the_named_department(run) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("run", "offer-letter", "x", "--user", "alice@example.com", "--department", "it")
    assert code == 2
    assert "IT Help Desk has no template 'offer-letter'" in err
    assert "offer-letter (hr)" in err


def _commented_commands(path: Path) -> list[str]:
    comments = [line.partition("#")[2] for line in path.read_text().splitlines() if "#" in line]
    return [m.group(1) for c in comments for m in re.finditer(r"`(deptbot [^`]*)`", c)]


@pytest.mark.parametrize("path", sorted((ROOT / "departments").glob("*.yaml")), ids=lambda p: p.name)
def test_commands_in_department_comments_parse(path: Path) -> None:
    """hr.yaml showed ``deptbot run hr offer-letter "…"``, which argparse rejects."""
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    for command in _commented_commands(path):
        argv = shlex.split(command)[1:]
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{path.name}: `{command}` is not a valid deptbot command line")
        if args.command == "run":
            assert args.template in (data.get("templates") or {}), command


def _parsers(
    parser: argparse.ArgumentParser, name: str = "deptbot"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_every_argument_of_every_command_has_help() -> None:
    missing = [
        f"{name}: {action.dest}"
        for name, parser in _parsers(build_parser())
        for action in parser._actions
        if not action.help
    ]
    assert missing == []


def test_templates_command_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "`deptbot templates [--user EMAIL] [--json]`" in readme


# ── 2. chat commands ─────────────────────────────────────────────────────────────────


def test_chat_rejects_an_unknown_department_at_once(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    lines = ["/dept nosuch", "How many vacation days do I get?"]
    code, out, _ = _chat(run, monkeypatch, "alice@example.com", lines)
    assert code == 0
    assert "Unknown department 'nosuch'" in out and "You can ask: finance, hr, it" in out
    assert "department: nosuch" not in out
    # still routed automatically
    assert "From Time off policy › Annual vacation [1]:" in out
    assert "25 days of paid vacation per year." in out


def test_chat_pins_only_departments_the_user_may_ask(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = _chat(run, monkeypatch, "alice@example.com", ["/dept eng", "/dept HR"])
    assert code == 0
    assert "You can't ask Engineering" in out and "bob@example.com" in out
    assert "department: eng" not in out
    assert "department: hr" in out


def test_chat_start_department_is_checked(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    code, _, err = _chat(run, monkeypatch, "alice@example.com", [], "--department", "nosuch")
    assert code == 2 and "Unknown department 'nosuch'" in err
    code, _, err = _chat(run, monkeypatch, "alice@example.com", [], "--department", "eng")
    assert code == 3 and "You can't ask Engineering" in err


def test_chat_help_and_unknown_commands_are_never_asked(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = _chat(run, monkeypatch, "alice@example.com", ["/help", "/frobnicate now"])
    assert code == 0
    assert "/dept NAME" in out and "/quit" in out and "/help" in out
    assert "Unknown command /frobnicate" in out and "/help" in out
    assert "Sources" not in out and "couldn't find" not in out
    code, out, _ = run("audit", "tail", "--json")
    assert json.loads(out) == []  # nothing reached the assistant


def test_chat_a_path_is_a_question_not_a_command(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = _chat(run, monkeypatch, "alice@example.com", ["/etc/hosts vacation days?"])
    assert code == 0 and "Unknown command" not in out
    code, out, _ = run("audit", "tail", "--json")
    assert len(json.loads(out)) == 1


# ── 3. wording and layout ────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("title", "phrase"),
    [
        ("IT Help Desk", "ask an IT Help Desk admin"),
        ("HR", "ask an HR admin"),
        ("Human Resources", "ask a Human Resources admin"),
        ("Engineering", "ask an Engineering admin"),
        ("Finance", "ask a Finance admin"),
        ("University Relations", "ask a University Relations admin"),
        ("SRE", "ask an SRE admin"),
    ],
)
def test_dont_know_uses_a_or_an(title: str, phrase: str) -> None:
    from bot.core.replies import dont_know

    text = dont_know(SimpleNamespace(title=title), [], [], ["x@example.com"])  # type: ignore[arg-type]
    assert f"{phrase}: x@example.com." in text


def test_plural() -> None:
    from bot.adapters.console import plural

    assert plural(1, "template") == "1 template"
    assert plural(0, "template") == "0 templates"
    assert plural(2, "file") == "2 files"


def test_check_says_1_template(run) -> None:  # type: ignore[no-untyped-def]
    """``deptbot check`` printed "1 templates"."""
    code, out, _ = run("check")
    assert code == 0
    hr = next(line for line in out.splitlines() if line.strip().startswith("hr "))
    assert "1 template " in hr and "1 templates" not in hr


def test_dont_know_footer_says_no_answer_was_generated(run) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(
        "ask", "What is the cafeteria menu on Tuesday?", "--user", "alice@example.com", "--department", "hr"
    )
    foot = out.strip().splitlines()[-1]
    assert code == 0 and "couldn't find" in out
    assert not foot.startswith("none"), foot
    assert foot.startswith("no answer generated · ") and " ms · request " in foot


def test_answers_fit_a_narrow_terminal(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "60")
    code, out, _ = run("ask", "How many vacation days do I get?", "--user", "alice@example.com")
    assert code == 0 and "[1] Time off policy" in out
    assert max(len(line) for line in out.splitlines()) <= 60, out
    # a wrapped source line keeps its continuation indented under the title
    lines = out.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("  [1] "))
    # the fixture has no date of its own: "indexed <first-index date>", never its mtime as "updated"
    assert lines[i + 1].startswith("      ") and "(indexed " in lines[i] + lines[i + 1]


def test_a_tiny_terminal_width_is_not_taken_literally(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "12")
    code, out, _ = run("ask", "How many vacation days do I get?", "--user", "alice@example.com")
    widths = [len(line) for line in out.splitlines()]
    assert code == 0 and 30 < max(widths) <= 40, out


# ── 4. diagnostics and exit codes ────────────────────────────────────────────────────


def test_verbose_prints_deptbot_diagnostics_on_stderr(run) -> None:  # type: ignore[no-untyped-def]
    """A real process: pytest's own log handlers would hide what -v prints."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DEPTBOT_")},
        "DEPTBOT_DEPARTMENTS": str(run.root / "departments"),
        "DEPTBOT_STATE": str(run.root / "state"),
    }
    argv = [sys.executable, "-m", "bot", "-v", "ask", "vacation days", "--user", "alice@example.com"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    info = [line for line in result.stderr.splitlines() if line.startswith("INFO bot.")]
    assert info, result.stderr
    assert any("request " in line and "total" in line and " ms" in line for line in info), info
    assert "vacation" not in result.stderr  # the question itself is never logged
    quiet = subprocess.run(
        argv[:3] + argv[4:], capture_output=True, text=True, timeout=180, env=env, cwd=ROOT
    )
    assert quiet.returncode == 0 and "INFO" not in quiet.stderr


def test_eval_with_an_unknown_embedder_is_a_usage_error(run) -> None:  # type: ignore[no-untyped-def]
    beir = Path(__file__).parent / "fixtures" / "beir-tiny"
    code, _, err = run("eval", str(beir), "--embedder", "nosuch")
    assert code == 2 and "'nosuch'" in err and "wordllama" in err and "Traceback" not in err


def test_eval_with_an_unknown_settings_embedder_names_the_setting(run) -> None:  # type: ignore[no-untyped-def]
    settings = run.root / "settings.toml"
    settings.write_text('[retrieval]\nembedder = "nosuch"\n')
    beir = Path(__file__).parent / "fixtures" / "beir-tiny"
    code, _, err = run("--settings", str(settings), "eval", str(beir))
    assert code == 2 and "retrieval.embedder" in err and "'nosuch'" in err and "settings.toml" in err


# ── 5 and 6. README and CHANGELOG ────────────────────────────────────────────────────


def _quickstart() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]


def test_quickstart_timing_is_honest() -> None:
    text = _quickstart()
    assert "about a minute" not in text
    assert "network" in text and "CPU" in text
    first = (
        "python3 -m venv .venv && .venv/bin/pip install -q -e . && "
        '.venv/bin/deptbot ask "How many vacation days do I get?" --user alice@example.com'
    )
    assert f"```sh\n{first}\n```" in text  # the command itself is unchanged (CI runs it)


def test_changelog_follows_keep_a_changelog_and_is_linked() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert changelog.startswith("# Changelog")
    assert "keepachangelog.com" in changelog
    unreleased = re.split(r"^## \[Unreleased\]$", changelog, maxsplit=1, flags=re.M)[1]
    unreleased = re.split(r"^## \[", unreleased, maxsplit=1, flags=re.M)[0]
    sections = re.findall(r"^### (\w+)", unreleased, re.M)
    assert set(sections) <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
    assert "deptbot templates" in unreleased and "fail" in unreleased.lower()
    assert "(CHANGELOG.md)" in (ROOT / "README.md").read_text()


def test_a_models_bullet_list_keeps_its_lines() -> None:
    """textwrap.fill joined every line of an answer into one paragraph."""
    from bot.adapters.console import render_text
    from bot.core.types import Answer

    text = (
        "Summary of the policy:\n"
        "- Full-time employees receive 25 days of paid vacation per year, prorated for part-time [1].\n"
        "- Unused days carry over until March 31 [1].\n"
        "\n"
        "Ask HR for exceptions."
    )
    out = render_text(Answer(text=text, request_id="r1", generator="openai"), width=60)
    lines = out.splitlines()
    assert "Summary of the policy:" in lines
    first = lines.index("Summary of the policy:") + 1
    assert lines[first].startswith("- Full-time employees")
    assert lines[first + 1].startswith("  ") and not lines[first + 1].startswith("  -")  # hangs
    assert any(line.startswith("- Unused days carry over") for line in lines)
    assert "" in lines[first:] and "Ask HR for exceptions." in lines
    assert max(len(line) for line in lines) <= 60


def test_manifest_teams_link_flags_reach_the_package(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json as _json
    import zipfile

    out = tmp_path / "pkg.zip"
    app_id = "00000000-0000-4000-8000-000000000001"
    code, _, err = run(
        "manifest",
        "teams",
        "--app-id",
        app_id,
        "--domain",
        "bot.example.com",
        "--out",
        str(out),
        "--privacy-url",
        "https://intranet.example.com/privacy",
    )
    assert code == 0, err
    manifest = _json.loads(zipfile.ZipFile(out).read("manifest.json"))
    links = manifest["developer"]
    assert links["privacyUrl"] == "https://intranet.example.com/privacy"
    assert links["termsOfUseUrl"] == "https://bot.example.com/terms"
    code, _, err = run(
        "manifest",
        "teams",
        "--app-id",
        app_id,
        "--domain",
        "bot.example.com",
        "--out",
        str(out),
        "--terms-url",
        "http://insecure.example.com/terms",
    )
    assert code == 2 and "--terms-url" in err
