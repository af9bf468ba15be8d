"""``deptbot`` commands: parse, call the library, print. Nothing else lives here.

Exit codes: 0 answered (including "I don't know"), 2 usage or configuration error,
3 access denied, 1 anything unexpected (with a request id, never a traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.core.labels import answer_turns
from bot.core.types import Answer, Message, Status, Turn
from bot.errors import AccessDenied, ConfigError, DeptbotError, UsageError
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.config import ConfigReport, Department
    from bot.core.pipeline import Assistant
    from bot.directory.sync import SourceStatus
    from bot.wiring import Wired

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DENIED = 0, 1, 2, 3
CHAT_HISTORY_TURNS = 6

Handler = Callable[[argparse.Namespace, Settings], int]
log = logging.getLogger(__name__)


def _printable(value: object) -> object:
    """Strip terminal control characters from stored values before printing them."""
    if isinstance(value, str):
        return "".join(ch if ch.isprintable() else "?" for ch in value)
    if isinstance(value, list):
        return [_printable(v) for v in value]
    return value


def _out(text: str = "") -> None:
    """Every line the CLI prints goes through ``terminal_safe`` (documents control the text)."""
    from bot.adapters.console import terminal_safe

    sys.stdout.write(terminal_safe(text) + "\n")


def _say(text: str) -> None:
    """A sentence for a person (chat notes), wrapped like answer text."""
    import textwrap

    from bot.adapters.console import PROSE_WIDTH, terminal_width

    _out(textwrap.fill(text, width=min(terminal_width(), PROSE_WIDTH), break_long_words=False))


def _err(text: str) -> None:
    from bot.adapters.console import terminal_safe

    sys.stderr.write(terminal_safe(text) + "\n")


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int, str], None]]:
    """A rich progress bar on stderr, drawn only once work is actually reported."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("files"))
    bar: Progress | None = None
    task = None

    def update(done: int, total: int, current: str) -> None:
        nonlocal bar, task
        if bar is None:
            bar = Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True))
            bar.start()
            task = bar.add_task(label, total=total)
        assert task is not None
        bar.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        if bar is not None:
            bar.stop()


# ── commands ─────────────────────────────────────────────────────────────────────────


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    """Every problem in one run: department files and groups.yaml, knowledge folders, and
    a state folder other accounts can read, groups from a directory source that is not
    configured. One ``file:line: field: problem`` line each (stderr), a summary, exit 2;
    otherwise the OK table. Recent admin notices either way. Nothing remote is contacted
    unless ``--directory`` asks to read every directory group once (exit 2 if one fails)."""
    from bot.adapters.console import plural
    from bot.config import describe, inspect_company, knowledge_roots, unavailable_sources
    from bot.knowledge.ingest import Limits, check_folder
    from bot.wiring import directory_problems

    problems: list[ConfigError] = list(settings.problems)  # bad values: the rest uses defaults
    try:
        roots = knowledge_roots(settings)
    except ConfigError as exc:
        problems.append(exc)
        roots = ()
    report = inspect_company(settings.departments_dir, allowed_roots=roots)
    problems += report.problems
    missing = directory_problems(settings, {r.kind for r in report.sources.values()})  # offline
    problems += unavailable_sources(report.sources, missing, settings.departments_dir / "groups.yaml")
    # every link, access-file, front-matter and size problem in the knowledge folders
    limits = Limits.from_settings(settings.section("knowledge"))
    for dept in report.departments.values():
        # Problem.file is shown as "<knowledge parent>/<dept folder>/<rel>"; anchor it to
        # the folder on disk so the line is right from any working directory.
        anchor = Path(dept.knowledge).parent.parent
        problems += [
            ConfigError(p.problem, file=anchor / p.file, line=p.line, field=p.field)
            for p in check_folder(dept, limits)
        ]
    problems += _check_state_permissions(settings.state_dir)
    if problems:
        for problem in problems:
            _err(describe(problem, Path.cwd()))
        n, files = len(problems), len({p.file for p in problems})
        _err(
            f"{n} problem{'s' if n != 1 else ''} in {files} file{'s' if files != 1 else ''}"
            " — fix them and run deptbot check again"
        )
    else:
        company = report.company
        assert company is not None
        _out(f"{len(company.departments)} departments, {len(company.groups)} groups — configuration OK")
        for dept in company:
            files = sum(
                1 for p in dept.knowledge.rglob("*") if p.is_file() and not p.name.startswith((".", "_"))
            )
            _out(
                f"  {dept.name:<12} {dept.title:<24} {dept.classification.label:<12} "
                f"{files:>4} files  {plural(len(dept.templates), 'template'):<12} route {dept.route}"
            )
        for line in _provider_lines(settings):
            _out(line)
    failing = _check_directory(settings, report) if args.directory else 0
    for line in _recent_notices(settings.state_dir):
        _out(line)
    return EXIT_USAGE if problems or failing else EXIT_OK


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never read"
    if seconds < 120:
        return f"read {seconds:.0f} s ago"
    if seconds < 7200:
        return f"read {seconds / 60:.0f} min ago"
    return f"read {seconds / 3600:.0f} h ago"


def _status_line(s: SourceStatus) -> str:
    from bot.adapters.console import plural

    what = f"{s.state:<8} {plural(s.members, 'member'):<12} {_age(s.age_seconds)}"
    if s.grace_until is not None:
        when = datetime.fromtimestamp(s.grace_until, UTC).strftime("%H:%M:%S UTC")
        what += f"; last list kept until {when}"
    return what + (f" — {s.error}" if s.error else "")


def _check_directory(settings: Settings, report: ConfigReport) -> int:
    """Read every directory group once and print its state; the number failing."""
    from bot.config import Company
    from bot.store.notices import MemoryNotices
    from bot.wiring import build_directory

    if not report.sources:
        _out("directory: no group in groups.yaml comes from a directory source")
        return 0
    company = Company(report.departments, report.groups, report.root, report.sources)
    sync = build_directory(settings, notices=MemoryNotices())
    sync.refresh(company, notify=False)
    statuses = sync.status(company)
    width = max(len(s.group) for s in statuses)
    source_width = max(len(s.source) for s in statuses)
    _out(f"directory groups (read just now; refreshed every {settings.values.directory.ttl_seconds:g} s):")
    for s in statuses:
        _out(f"  {s.group:<{width}}  {s.source:<{source_width}}  {_status_line(s)}")
    failing = [s for s in statuses if s.state != "ok"]
    if failing:
        n = len(failing)
        _err(
            f"{n} directory group{'s' if n != 1 else ''} cannot be read — nobody gets access through "
            f"{'them' if n != 1 else 'it'} until {'they' if n != 1 else 'it'} can"
        )
    return len(failing)


STATE_LINES = 20  # permission problems listed one by one; the rest are counted


def _check_state_permissions(state: Path) -> list[ConfigError]:
    """The state folder holds restricted text (index chunks, cached answers, questions):
    a folder wider than 0700 or a file wider than 0600 is a problem. Never creates it."""
    from bot.store.state import wider_than_private

    wide = wider_than_private(state)
    found: list[ConfigError] = []
    for path, mode in wide[:STATE_LINES]:
        if path.is_dir():
            why = f"mode {mode:04o} lets other accounts in; it holds restricted text (chmod 700)"
            found.append(ConfigError(why, file=path, field="state folder"))
        else:
            why = f"mode {mode:04o} lets other accounts read it (chmod 600)"
            found.append(ConfigError(why, file=path, field="state file"))
    if len(wide) > STATE_LINES:
        more = f"{len(wide) - STATE_LINES} more entries other accounts can read (chmod -R go-rwx {state})"
        found.append(ConfigError(more, file=state, field="state folder"))
    return found


def _recent_notices(state: Path) -> list[str]:
    """Recent admin notices, when the state folder and its notices database exist."""
    from bot.store.notices import SqliteNotices

    if not (state / SqliteNotices.FILE).is_file():
        return []
    try:
        store = SqliteNotices.in_state_dir(state)
        try:
            notices = store.recent()
        finally:
            store.close()
    except DeptbotError as exc:
        return [f"recent admin notices: unavailable ({exc.user_message})"]
    if not notices:
        return []
    lines = ["recent admin notices:"]
    for n in notices:
        lines.append(f"  {n.time:%Y-%m-%d %H:%M}  {n.department or 'all'}  {n.kind}  {n.text}")
    return lines


def _provider_lines(settings: Settings) -> list[str]:
    try:
        from bot.llm.factory import provider_status
    except ImportError:
        return ["providers: extractive (offline) only"]
    lines = ["providers:"]
    for name, configured, detail in provider_status(settings):
        lines.append(f"  {name:<12} {'configured' if configured else 'not configured':<15} {detail}")
    return lines


def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    from bot.adapters.console import report_table
    from bot.wiring import build

    wired = build(settings)
    names = args.names or list(wired.company.departments)
    reports = []
    for name in names:
        dept = wired.company.department(name)
        with _progress(f"Indexing {dept.title}") as progress:
            reports.append(wired.knowledge.refresh(dept, progress=progress))
    _out(report_table(reports))
    return EXIT_OK


def _build(settings: Settings) -> Wired:
    """The wired assistant; with ``-v`` says what it was built from and how long it took."""
    from bot.wiring import build

    started = time.perf_counter()
    wired = build(settings)
    _sync_directory(wired)
    log.info(
        "ready in %.0f ms: %d departments from %s, state in %s, settings %s",
        (time.perf_counter() - started) * 1000,
        len(wired.company.departments),
        settings.departments_dir,
        settings.state_dir,
        settings.settings_file or "defaults",
    )
    return wired


def _sync_directory(wired: Wired) -> None:
    """One read of the directory groups before answering (bounded by
    ``directory.timeout_seconds``); a group that cannot be read stays empty and is named
    on stderr. Admin notices are left to ``deptbot serve``."""
    company = wired.assistant.company
    if wired.directory is None or not company.sources:
        return
    wired.assistant.reconfigure(wired.directory.refresh(company, notify=False))
    for s in wired.directory.status(company):
        if s.state != "ok":
            _err(
                f"warning: group {s.group} ({s.source}) cannot be read ({s.error}); "
                "nobody gets access through it"
            )


def _log_answer(answer: Answer) -> None:
    """One ``-v`` line per request: what happened and where the time went (never the
    question, the answer or document names)."""
    t = answer.timings
    log.info(
        "request %s: %s, department %s, route %s, %d sources, confidence %.2f%s; "
        "retrieve %.0f ms, generate %.0f ms, total %.0f ms",
        answer.request_id,
        answer.status.value,
        answer.department or "-",
        answer.route or "-",
        len(answer.citations),
        answer.confidence,
        ", cached" if answer.cache_hit else "",
        t.retrieve_ms,
        t.generate_ms,
        t.total_ms,
    )


def _ask(wired: Wired, message: Message) -> Answer:
    with _progress("Indexing") as progress:
        wired.assistant.index_progress = progress
        answer = wired.assistant.ask(message)
    _log_answer(answer)
    return answer


def _ask_once(args: argparse.Namespace, wired: Wired, message: Message) -> int:
    from bot.adapters.console import render_json, render_text

    answer = _ask(wired, message)
    _out(render_json(answer) if args.json else render_text(answer))
    if answer.status == Status.DENIED:
        return EXIT_DENIED
    return EXIT_ERROR if answer.status == Status.ERROR else EXIT_OK


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    question = " ".join(args.question)
    return _ask_once(
        args,
        _build(settings),
        Message(user_id=args.user, email=args.user, text=question, department=args.department),
    )


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    wired = _build(settings)
    message = Message(
        user_id=args.user,
        email=args.user,
        text=args.input,
        department=args.department,
        template=args.template,
    )
    try:
        return _ask_once(args, wired, message)
    except UsageError as exc:
        company = wired.assistant.company
        if args.department not in (None, *company.departments) or _template_exists(
            wired.assistant, args.template, args.department
        ):
            raise  # an unknown department or an unusable input: the message says it all
        raise UsageError(f"{exc.user_message} {_runnable_hint(wired.assistant, args.user)}") from None


def _template_exists(assistant: Assistant, template: str, department: str | None) -> bool:
    depts = [assistant.company.department(department)] if department else list(assistant.company)
    return any(template in d.templates for d in depts)


def _runnable_hint(assistant: Assistant, user: str) -> str:
    """What ``user`` may run instead, for "no such template" messages."""
    runnable = [f"{name} ({dept.name})" for dept, name in _sorted_templates(assistant.templates_for(user))]
    if not runnable:
        return f"{user} may not run any templates."
    details = f"deptbot templates --user {shlex.quote(user)}"
    return f"Templates you may run: {', '.join(runnable)}. Details: {details}"


def _sorted_templates(pairs: Sequence[tuple[Department, str]]) -> list[tuple[Department, str]]:
    """By department name; each department's templates in the order its file lists them."""
    return sorted(pairs, key=lambda pair: pair[0].name)


def cmd_templates(args: argparse.Namespace, settings: Settings) -> int:
    """Every template, or those ``--user`` may run, with a command line that runs it."""
    assistant = _build(settings).assistant
    company = assistant.company
    everything = [(d, name) for d in company for name in d.templates]
    pairs = _sorted_templates(assistant.templates_for(args.user) if args.user else everything)
    owners: dict[str, int] = {}
    for _, name in everything:
        owners[name] = owners.get(name, 0) + 1
    rows = []
    for dept, name in pairs:
        template = dept.templates[name]
        example = f'deptbot run {name} "INPUT" --user {shlex.quote(args.user) if args.user else "EMAIL"}'
        if owners[name] > 1:  # two departments share the name: run needs --department
            example += f" --department {dept.name}"
        rows.append(
            {
                "department": dept.name,
                "department_title": dept.title,
                "name": name,
                "description": template.description,
                "allowed": list(template.allowed),
                "example": example,
            }
        )
    if args.json:
        _out(json.dumps(rows, indent=2, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        _out(f"{args.user} may not run any templates." if args.user else "No department has templates.")
        return EXIT_OK
    if args.user:
        _out(f"Templates {args.user} may run:")
    else:
        _out("All templates (deptbot templates --user EMAIL lists those one person may run):")
    for row in rows:
        allowed = row["allowed"]
        who = f"anyone who may ask {row['department_title']}" if allowed == ["*"] else ", ".join(allowed)
        _out()
        _out(f"{row['name']} — {row['description']}")
        _out(f"  {row['department_title']} ({row['department']}) · for {who}")
        _out(f"  {row['example']}")
    return EXIT_OK


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


CHAT_HELP = """\
Commands:
  /dept NAME   ask only NAME from now on (you can ask: {names})
  /dept        choose the department for each question automatically again
  /help        this list
  /quit        leave (also /exit or Ctrl-D)
Anything else is a question (a line starting with a path such as /etc/hosts is too)."""


def _chat_command(line: str) -> tuple[str, str] | None:
    """``("/dept", "hr")`` for a chat command; None for a question. A first word with a
    second slash is a path (``/etc/hosts``), so that line is a question."""
    if not line.startswith("/"):
        return None
    word, _, rest = line.partition(" ")
    if "/" in word[1:]:
        return None
    return word.lower(), rest.strip()


def _askable_department(assistant: Assistant, user: str, name: str) -> str:
    """``name`` when ``user`` may ask it; otherwise UsageError (no such department) or
    AccessDenied (the same reason ``ask`` gives), each listing what they can ask."""
    from bot.core import replies
    from bot.core.types import Decision

    askable = [d.name for d in assistant.departments_for(user)]
    you_can = f"You can ask: {', '.join(askable)}." if askable else "You can't ask any department."
    name = name.strip().lower()
    if name not in assistant.company.departments:
        raise UsageError(f"Unknown department {name!r}. {you_can}")
    if name not in askable:
        dept = assistant.company.department(name)
        principal = assistant.principal(user)
        decision = (
            assistant.policy.may_ask(principal, dept) if principal else Decision(False, "unknown-user", "")
        )
        raise AccessDenied(f"{replies.denial(decision, dept, assistant.admins_of(dept))} {you_can}")
    return name


def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    from bot.adapters.console import render_text

    wired = _build(settings)
    assistant = wired.assistant
    department: str | None = None
    if args.department:  # checked now, not on the first question
        department = _askable_department(assistant, args.user, args.department)
    names = ", ".join(d.name for d in assistant.departments_for(args.user)) or "none"
    _out(f"deptbot chat as {args.user} — departments you can ask: {names}")
    _out("Type a question, or /help for the commands (/dept NAME pins a department, /quit leaves).")
    if department:
        _out(f"department: {department}")
    history: list[Turn] = []
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            _out()
            return EXIT_OK
        if not line:
            continue
        command = _chat_command(line)
        if command is not None:
            word, rest = command
            if word in ("/quit", "/exit"):
                return EXIT_OK
            if word == "/help":
                _out(CHAT_HELP.format(names=names))
            elif word == "/dept":
                try:
                    department = _askable_department(assistant, args.user, rest) if rest else None
                except DeptbotError as exc:
                    _say(f"{exc.user_message} Still asking: {department or 'automatic'}.")
                    continue
                _out(f"department: {department or 'automatic'}")
            else:
                _say(f"Unknown command {word} — type /help for the commands.")
            continue
        message = Message(
            user_id=args.user,
            email=args.user,
            text=line,
            department=department,
            history=tuple(history[-CHAT_HISTORY_TURNS:]),
        )
        try:
            answer = _ask(wired, message)
        except DeptbotError as exc:
            _say(exc.user_message)
            continue
        _out(render_text(answer))
        _out()
        history += answer_turns(line, answer)


def _eval_embedder(args: argparse.Namespace, settings: Settings) -> str:
    """The embedder to evaluate, checked before any work: a wrong ``--embedder`` is a usage
    error, a wrong ``retrieval.embedder`` a configuration error naming the file (exit 2)."""
    from bot.knowledge.embedders import embedder_names
    from bot.settings import DEFAULTS_FILE

    valid = embedder_names()
    if args.embedder is not None:
        if args.embedder.strip().lower() not in valid:
            raise UsageError(
                f"Unknown embedder {args.embedder!r} (--embedder). Valid embedders: {', '.join(valid)}."
            )
        return str(args.embedder)
    embedder = settings.retrieval.get("embedder", "wordllama")
    if not isinstance(embedder, str) or embedder.strip().lower() not in valid:
        raise ConfigError(
            f"unknown embedder {embedder!r}; valid embedders: {', '.join(valid)}",
            file=settings.settings_file or DEFAULTS_FILE,
            field="retrieval.embedder",
        )
    return embedder


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from bot.knowledge.evaluate import evaluate_beir

    embedder = _eval_embedder(args, settings)
    result = evaluate_beir(Path(args.beir_dir), embedder=embedder, mode=args.mode)
    if args.json:
        _out(json.dumps(result.as_dict(), indent=2))
    else:
        _out(result.table())
    return EXIT_OK


def cmd_audit_tail(args: argparse.Namespace, settings: Settings) -> int:
    from bot.store.audit import SqliteAuditLog

    log = SqliteAuditLog(path=settings.state_dir / "audit.db")
    rows = log.tail(args.n, user=args.user, department=args.department)
    if args.json:
        _out(json.dumps(rows, indent=2))
        return EXIT_OK
    _out(
        f"{'time':<20} {'request':<13} {'user':<22} {'dept':<12} "
        f"{'decision':<8} {'status':<12} {'ms':>7}  docs"
    )
    for r in rows:
        r = {k: _printable(v) for k, v in r.items()}
        _out(
            f"{r['time'][:19]:<20} {r['request_id']:<13} {r['user'][:22]:<22} {(r['department'] or '-'):<12} "
            f"{r['decision']:<8} {r['status']:<12} {r['latency_ms']:>7.0f}  {', '.join(r['doc_ids'])}"
        )
    return EXIT_OK


def cmd_usage(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import date

    from bot.llm.factory import open_usage_store
    from bot.store.usage import format_usage_table, usage_report

    try:
        since = date.fromisoformat(args.since) if args.since else None
    except ValueError:
        raise UsageError(f"--since must be a date like 2026-11-01, not {args.since!r}.") from None
    rows = usage_report(open_usage_store(settings), user=args.user, department=args.department, since=since)
    _out(json.dumps(rows, indent=2, default=str) if args.json else format_usage_table(rows))
    return EXIT_OK


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import functools

    from bot.adapters.http import serve
    from bot.adapters.teams.bot import check_teams_settings, mount
    from bot.knowledge.refresher import start_refresher
    from bot.reload import start_config_watcher
    from bot.wiring import build

    wired = build(settings)
    mounts = []
    if settings.env.get("MicrosoftAppId") or _is_loopback(args.host):
        check_teams_settings(settings, args.host)
        mounts.append(functools.partial(mount, assistant=wired.assistant, settings=settings))
    notices = wired.notices
    with _progress("Indexing") as progress:
        for dept in wired.company:
            try:  # one department that cannot be indexed never keeps the others from serving
                if wired.knowledge.status(dept).stale:
                    wired.knowledge.refresh(dept, progress=progress)
            except Exception as exc:
                logging.getLogger(__name__).exception("start-up refresh of %s failed", dept.name)
                notices.notify(
                    dept.name,
                    "refresh-failed",
                    f"{dept.name}: the start-up refresh failed ({type(exc).__name__}); "
                    "the previous index serves until the next refresh",
                )
    directory = wired.directory
    if directory is not None:  # directory groups: read once now, then every directory.ttl_seconds
        if wired.company.sources:
            wired.assistant.reconfigure(directory.refresh(wired.company))
        directory.start(wired.assistant)
    scheduler = start_refresher(wired.knowledge, lambda: list(wired.assistant.company), settings)
    watcher = start_config_watcher(wired.assistant, settings, notices, directory=directory)
    try:
        serve(
            settings,
            wired.assistant,
            host=args.host,
            port=args.port,
            mounts=mounts,
            socket_mode=args.slack_socket_mode,
        )
    finally:
        watcher.stop()
        if directory is not None:
            directory.stop()
        if scheduler is not None:
            scheduler.shutdown(wait=False)
    return EXIT_OK


def cmd_manifest(args: argparse.Namespace, settings: Settings) -> int:
    if args.platform == "slack":
        from bot.adapters.slack.manifest import render_manifest

        if not args.url and not args.socket_mode:
            raise UsageError("deptbot manifest slack needs --url https://HOST (or --socket-mode).")
        _out(render_manifest(args.url, socket_mode=args.socket_mode))
        return EXIT_OK
    from bot.adapters.teams.manifest import build_manifest_zip

    if not args.app_id or not args.domain:
        raise UsageError("deptbot manifest teams needs --app-id ID and --domain HOST.")
    out = Path(args.out or "deptbot-teams.zip")
    path = build_manifest_zip(
        args.app_id,
        args.domain,
        out,
        website_url=args.website_url,
        privacy_url=args.privacy_url,
        terms_url=args.terms_url,
    )
    _out(f"wrote {path} — upload it in Teams › Apps › Manage your apps › Upload an app")
    return EXIT_OK


# ── parser ───────────────────────────────────────────────────────────────────────────


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deptbot", description="Department-aware assistant with cited answers.")
    p.add_argument(
        "--departments", help="departments folder (env DEPTBOT_DEPARTMENTS, default ./departments)"
    )
    p.add_argument(
        "--state", help="state folder for indexes and databases (env DEPTBOT_STATE, default ./.deptbot)"
    )
    p.add_argument("--settings", help="settings file overriding bot/settings.toml (env DEPTBOT_SETTINGS)")
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="diagnostics on stderr: deptbot's own logs and timings (-vv: debug, and other libraries' logs)",
    )
    sub = p.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="deptbot COMMAND -h describes each one"
    )

    c = sub.add_parser("check", help="validate department configs, folders and providers")
    c.add_argument(
        "--directory",
        action="store_true",
        help="also read every directory group (Slack, Entra ID, SCIM) once: state, members, age",
    )
    c.set_defaults(func=cmd_check)

    c = sub.add_parser("index", help="build or refresh department indexes incrementally")
    c.add_argument("names", nargs="*", metavar="DEPT", help="departments to index (default: all)")
    c.set_defaults(func=cmd_index)

    c = sub.add_parser("ask", help="ask one question")
    c.add_argument("question", nargs="+", help="the question (quotes optional)")
    c.add_argument("--user", metavar="EMAIL", required=True, help="asker's e-mail")
    c.add_argument(
        "--department", metavar="DEPT", help="ask this department instead of routing automatically"
    )
    c.add_argument("--json", action="store_true", help="print the Answer as one JSON object")
    c.set_defaults(func=cmd_ask)

    c = sub.add_parser(
        "run",
        help="run a department template",
        description='Run a template: deptbot run TEMPLATE "INPUT" --user EMAIL [--department D]. '
        "deptbot templates --user EMAIL lists the ones you may run.",
    )
    c.add_argument("template", metavar="TEMPLATE", help="template name (deptbot templates lists them)")
    c.add_argument("input", metavar="INPUT", help="what the template works on, in quotes")
    c.add_argument(
        "--user", metavar="EMAIL", required=True, help="e-mail of the person running it (role-checked)"
    )
    c.add_argument(
        "--department", metavar="DEPT", help="needed only when two departments share a template name"
    )
    c.add_argument("--json", action="store_true", help="print the Answer as one JSON object")
    c.set_defaults(func=cmd_run)

    c = sub.add_parser("templates", help="list templates, or those one person may run, with examples")
    c.add_argument("--user", metavar="EMAIL", help="only the templates this e-mail may run")
    c.add_argument("--json", action="store_true", help="one JSON list of templates")
    c.set_defaults(func=cmd_templates)

    c = sub.add_parser("who", help="one person's groups, where each comes from, and what they may do")
    c.add_argument("email", metavar="EMAIL", help="the person's e-mail address")
    c.add_argument("--json", action="store_true", help="print everything as one JSON object")
    c.set_defaults(func=cmd_who)

    c = sub.add_parser("chat", help="interactive terminal session with history")
    c.add_argument("--user", metavar="EMAIL", required=True, help="asker's e-mail")
    c.add_argument("--department", metavar="DEPT", help="start pinned to this department (/dept changes it)")
    c.set_defaults(func=cmd_chat)

    c = sub.add_parser("eval", help="retrieval quality on a BEIR-format folder")
    c.add_argument(
        "beir_dir", metavar="BEIR_DIR", help="folder with corpus.jsonl, queries.jsonl and qrels/test.tsv"
    )
    c.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    c.add_argument(
        "--mode",
        choices=["hybrid", "bm25", "dense"],
        default="hybrid",
        help="retrieval to score (default hybrid)",
    )
    c.add_argument("--embedder", help="override the settings' embedder (wordllama | minilm)")
    c.set_defaults(func=cmd_eval)

    c = sub.add_parser("usage", help="tokens and cost per user and department")
    c.add_argument("--user", metavar="EMAIL", help="only this e-mail")
    c.add_argument("--department", metavar="DEPT", help="only this department")
    c.add_argument("--since", help="first day to include, YYYY-MM-DD")
    c.add_argument("--json", action="store_true", help="print the rows as JSON")
    c.set_defaults(func=cmd_usage)

    c = sub.add_parser("serve", help="run the HTTP server for Slack, Teams and /healthz")
    c.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    c.add_argument("--port", type=int, default=3978, help="port to listen on (default 3978)")
    c.add_argument("--slack-socket-mode", action="store_true", help="connect to Slack over Socket Mode")
    c.set_defaults(func=cmd_serve)

    c = sub.add_parser("manifest", help="print the Slack manifest or build the Teams app package")
    c.add_argument("platform", choices=["slack", "teams"], help="slack or teams")
    c.add_argument("--url", help="slack: public base URL, e.g. https://bot.example.com")
    c.add_argument("--socket-mode", action="store_true", help="slack: the Socket Mode variant")
    c.add_argument("--app-id", help="teams: the Azure Bot's Microsoft App ID")
    c.add_argument("--domain", help="teams: the host serving /api/messages")
    c.add_argument("--out", help="teams: zip file to write (default deptbot-teams.zip)")
    c.add_argument("--website-url", metavar="URL", help="teams: https link for 'website' (default https://HOST/about)")
    c.add_argument("--privacy-url", metavar="URL", help="teams: https privacy statement (default https://HOST/privacy)")
    c.add_argument("--terms-url", metavar="URL", help="teams: https terms of use (default https://HOST/terms)")
    c.set_defaults(func=cmd_manifest)

    c = sub.add_parser("audit", help="read the audit log")
    audit_sub = c.add_subparsers(dest="audit_command", required=True, metavar="ACTION", help="tail")
    t = audit_sub.add_parser("tail", help="the latest audit rows")
    t.add_argument("-n", type=int, default=20, metavar="N", help="how many rows (default 20)")
    t.add_argument("--user", metavar="EMAIL", help="only this e-mail")
    t.add_argument("--department", metavar="DEPT", help="only this department")
    t.add_argument("--json", action="store_true", help="print the rows as JSON")
    t.set_defaults(func=cmd_audit_tail)

    return p


class _SafeFormatter(logging.Formatter):
    """Log lines pass through ``terminal_safe`` like everything else the CLI prints."""

    def format(self, record: logging.LogRecord) -> str:
        from bot.adapters.console import terminal_safe

        return terminal_safe(super().format(record))


def _configure_logging(verbosity: int) -> None:
    """Warnings only by default; ``-v``: deptbot's own INFO logs (the ``bot`` loggers);
    ``-vv``: deptbot's DEBUG and every library's INFO. Levels are touched only when asked
    for, so a host that already configured logging (pytest) keeps its own."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])  # no-op if already configured
    if verbosity > 1:
        logging.getLogger().setLevel(logging.INFO)
    if verbosity:
        logging.getLogger("bot").setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    from bot.store.state import PRIVATE_UMASK

    os.umask(PRIVATE_UMASK)  # indexes, databases and caches hold restricted text: 0600/0700
    try:
        settings = Settings.load(
            departments=args.departments, state=args.state, settings_file=args.settings, collect=True
        )
        if settings.problems and args.func is not cmd_check:  # check lists them with the rest
            for problem in settings.problems:
                _err(f"configuration error: {problem.user_message}")
            return EXIT_USAGE
        result: int = args.func(args, settings)
        return result
    except ConfigError as exc:
        _err(f"configuration error: {exc.user_message}")
        return EXIT_USAGE
    except UsageError as exc:
        _err(exc.user_message)
        return EXIT_USAGE
    except AccessDenied as exc:
        _err(exc.user_message)
        return EXIT_DENIED
    except DeptbotError as exc:
        _err(exc.user_message)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``deptbot ask … | head -1``): exit quietly, as cat does.
        # stdout is pointed at /dev/null so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
