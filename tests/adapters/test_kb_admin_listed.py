"""``kb admin`` / ``/kb admin`` is where people learn about it: the Teams app manifest's
personal command list (the command only answers in a 1:1 chat), the Teams command tables
and usage line, and the Slack help text — each saying what it does for whom."""

from __future__ import annotations

import json

from bot.adapters import render
from bot.adapters.teams import inbound
from bot.adapters.teams.manifest import TEMPLATE_DIR


def test_teams_lists_kb_admin_in_the_personal_scope_only() -> None:
    personal = dict(inbound.PERSONAL_COMMANDS)
    assert "kb admin" in personal and "admin" in personal["kb admin"].split("—", 1)[1]
    assert "kb admin" not in dict(inbound.COMMANDS)  # a link is never given in a shared chat
    manifest = json.loads((TEMPLATE_DIR / "manifest.json").read_text())
    for commands in manifest["bots"][0]["commandLists"]:
        titles = [c["title"] for c in commands["commands"]]
        assert ("kb admin" in titles) == (commands["scopes"] == ["personal"])
    assert "kb admin" in inbound.USAGE["kb"]


def test_slack_help_mentions_kb_admin_for_admins() -> None:
    [line] = [line for line in render.help_lines(["hr"]) if "/kb admin" in line]
    assert "admin console" in line and "department admins" in line
