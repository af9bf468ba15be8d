"""``deptbot who``: one person's groups, where each comes from (groups.yaml or a directory
source), and what they may ask, administer and run."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from bot.cli.answers import _sorted_templates
from bot.cli.assistant import _build
from bot.cli.output import EXIT_OK, _out
from bot.errors import UsageError
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.wiring import Wired


def _via(rule: str) -> str:
    """The access entry a Decision's rule names: "ask:group:x" → "group:x"."""
    kind, _, rest = rule.partition(":")
    return rest.split(":", 1)[1] if kind == "template" else rest


def who_report(wired: Wired, email: str) -> dict[str, Any]:
    """Everything ``deptbot who`` shows, from the same access rules every request uses."""
    assistant = wired.assistant
    company, policy = assistant.company, assistant.policy
    person = assistant.principal(email)
    if person is None:
        raise UsageError(f"{email!r} is not an e-mail address.")
    statuses = {s.group: s for s in (wired.directory.status(company) if wired.directory else [])}
    groups = []
    for group in sorted(person.groups):
        ref = company.sources.get(group)
        state = statuses[group].state if group in statuses else None
        source = ref.kind if ref else "groups.yaml"
        groups.append({"group": group, "source": source, "ref": ref.ref if ref else None, "state": state})
    askable = assistant.departments_for(person.email)
    return {
        "email": person.email,
        "groups": groups,
        "ask": [
            {"department": d.name, "title": d.title, "via": _via(policy.may_ask(person, d).rule)}
            for d in askable
        ],
        "admin": [
            {"department": d.name, "title": d.title, "via": _via(policy.may_admin(person, d).rule)}
            for d in company
            if assistant.is_admin(person.email, d.name)
        ],
        "run": [
            {"department": d.name, "template": t, "via": _via(policy.may_run(person, d, t).rule)}
            for d, t in _sorted_templates(assistant.templates_for(person.email))
        ],
        "not_asked": [
            {"department": d.name, "reason": policy.may_ask(person, d).reason}
            for d in company
            if d not in askable
        ],
        "unreadable": [
            {"group": s.group, "source": s.kind, "ref": s.ref, "error": s.error or "not read yet"}
            for s in statuses.values()
            if s.state != "ok"
        ],
    }


def cmd_who(args: argparse.Namespace, settings: Settings) -> int:
    """A person's groups (and where each came from) and what they may ask, administer and run."""
    report = who_report(_build(settings), args.email)
    if args.json:
        _out(json.dumps(report, indent=2, ensure_ascii=False))
        return EXIT_OK
    rows: dict[str, list[dict[str, Any]]] = {k: v for k, v in report.items() if isinstance(v, list)}

    def section(title: str, table: list[list[str]], empty: str = "nothing") -> None:
        _out(f"{title}: {empty}" if not table else f"{title}:")
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))] if table else []
        for row in table:
            _out("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())

    def source(g: dict[str, Any]) -> str:
        return "groups.yaml" if g["source"] == "groups.yaml" else f"{g['source']} {g['ref']} ({g['state']})"

    _out(str(report["email"]))
    section("groups", [[g["group"], f"from {source(g)}"] for g in rows["groups"]], "none")
    section("may ask", [[r["department"], r["title"], f"via {r['via']}"] for r in rows["ask"]])
    section("administers", [[r["department"], r["title"], f"via {r['via']}"] for r in rows["admin"]])
    section("may run", [[r["template"], f"({r['department']})", f"via {r['via']}"] for r in rows["run"]])
    if rows["not_asked"]:
        section("may not ask", [[r["department"], str(r["reason"])] for r in rows["not_asked"]])
    if rows["unreadable"]:
        section(
            "directory groups that cannot be read (nobody gets access through them)",
            [[r["group"], f"{r['source']} {r['ref']}", f"— {r['error']}"] for r in rows["unreadable"]],
        )
    return EXIT_OK
