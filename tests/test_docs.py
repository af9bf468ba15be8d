"""Every CLI command, config field and setting is documented in the README."""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

from bot.cli import build_parser
from bot.config import Channels, Department, Template
from bot.knowledge.metadata import FolderAccess, FrontMatter

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _commands(parser: argparse.ArgumentParser, prefix: str = "deptbot") -> list[str]:
    out: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = _commands(sub, f"{prefix} {name}")
                out += nested or [f"{prefix} {name}"]
    return out


def test_every_cli_command_is_documented() -> None:
    commands = _commands(build_parser())
    assert "deptbot audit tail" in commands and "deptbot ask" in commands
    missing = [c for c in commands if f"`{c}" not in README]
    assert missing == []


def _options(parser: argparse.ArgumentParser) -> set[str]:
    found: set[str] = set()
    for action in parser._actions:
        found.update(o for o in action.option_strings if o.startswith("--") and o != "--help")
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _options(sub)
    return found


def test_every_cli_option_is_documented() -> None:
    options = _options(build_parser())
    assert {"--user", "--department", "--json", "--slack-socket-mode"} <= options
    assert sorted(o for o in options if o not in README) == []


def test_every_config_field_is_documented() -> None:
    fields = set(Department.model_fields) - {"name", "source_file"}
    fields |= set(Template.model_fields) | set(Channels.model_fields) | set(FolderAccess.model_fields)
    fields |= set(FrontMatter.model_fields)
    missing = sorted(f for f in fields if f"`{f}`" not in README)
    assert missing == []


def test_every_setting_is_documented() -> None:
    data = tomllib.loads((ROOT / "bot" / "settings.toml").read_text())
    keys = [f"{section}.{key}" for section, table in data.items() for key in table]
    assert keys
    assert [k for k in keys if f"`{k}`" not in README] == []


def test_ci_runs_the_readme_test_command() -> None:
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    test_cmd = next(b.strip() for b in blocks if "pytest" in b)
    assert test_cmd in (ROOT / ".ci" / "run").read_text()
