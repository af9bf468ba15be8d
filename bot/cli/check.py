"""``deptbot check``: every configuration problem in one run (department files, knowledge
folders, state folder permissions, directory sources), or the OK table."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.output import EXIT_OK, EXIT_USAGE, _err, _out
from bot.errors import ConfigError, DeptbotError
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.config import ConfigReport, Department
    from bot.directory.sync import SourceStatus
    from bot.knowledge.folder import Limits
    from bot.store.pg_health import DatabaseHealth


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
    audience_warnings = _audience_warnings(settings, report, limits)  # unknown groups: hidden docs
    embedders = _Embedders(settings)
    problems += embedders.problems(report.departments.values())  # unknown, not installed, altered
    problems += _check_state_permissions(settings.state_dir)
    database, database_problems = _check_database(settings)  # reachable, migrated (PostgreSQL only)
    problems += database_problems
    from bot.cli.keys import key_check

    key_problems, key_warnings = key_check(settings, database)  # master key: configured, readable, default?
    problems += key_problems
    from bot.adapters.teams.auth import teams_check

    teams_problems, teams_lines = teams_check(settings.env)  # how /api/messages authenticates
    problems += teams_problems
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
                f"{files:>4} files  {plural(len(dept.templates), 'template'):<12} route {dept.route:<7}"
                f" {embedders.shown(dept)}" + _rollout(dept)
            )
        for line in embedders.notes():
            _out(line)
        for line in _provider_lines(settings):
            _out(line)
        if database is not None:
            _out(f"database: {database.where}, schema version {database.version} (current)")
    for line in key_warnings:  # stdout: a warning, not a problem (stderr lists only those)
        _out(line)
    for line in audience_warnings:
        _out(line)
    for line in _copy_warnings(settings, database):  # SQLite copies `db copy` left, on any host
        _out(line)
    from bot.adapters.metrics import how_to_enable

    _out(how_to_enable(settings.values.metrics))  # who may read /metrics, and how to widen it
    for line in teams_lines:  # the unauthenticated Emulator mode is announced here too
        _out(line)
    failing = _check_directory(settings, report) if args.directory else 0
    for line in _recent_notices(settings, database):
        _out(line)
    return EXIT_USAGE if problems or failing else EXIT_OK


def _audience_warnings(settings: Settings, report: ConfigReport, limits: Limits) -> list[str]:
    """Knowledge audiences naming a group that is not in groups.yaml (``bot.knowledge.
    audiences``): the documents stay hidden (fail closed), a warning says which file and
    line. Skipped while groups.yaml itself has a problem (every group would look unknown)."""
    from bot.config import describe
    from bot.knowledge.audiences import unknown_groups

    groups_file = str(settings.departments_dir / "groups.yaml")
    if any(p.file == groups_file for p in report.problems):
        return []
    out = []
    for dept in report.departments.values():
        anchor = Path(dept.knowledge).parent.parent
        for p in unknown_groups(dept, report.groups, limits):
            error = ConfigError(p.problem, file=anchor / p.file, line=p.line, field=p.field)
            out.append("warning: " + describe(error, Path.cwd()))
    return out


class _Embedders:
    """Which embedder each department uses and where that was chosen (its YAML file, the
    settings file, the environment or the packaged default), and whether it can run here.

    A department asking for minilm without the ``[minilm]`` extra (or with a model or
    tokenizer file whose SHA-256 differs from the pinned one) is a problem naming the YAML
    file, line and field, found here rather than by the first question's refresh. Each
    embedder is checked once per run (minilm's files are hashed, ~25 ms; no package code
    of theirs is run)."""

    VARIABLE = "DEPTBOT_RETRIEVAL__EMBEDDER"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.default = str(settings.values.retrieval.embedder)
        self._checked: dict[str, str | None] = {}
        self._used: set[str] = set()

    def problem(self, name: str) -> str | None:
        from bot.knowledge.embedders import embedder_problem

        # names arrive normalised: department files lower-case them at load, settings
        # accept only the exact names
        if name not in self._checked:
            self._checked[name] = embedder_problem(name)
        return self._checked[name]

    def _settings_source(self) -> tuple[str, Path | str]:
        """(shown, file or variable) of the settings' embedder."""
        from bot.settings_schema import DEFAULTS_FILE, read_toml

        settings = self._settings
        if self.VARIABLE in settings.env:
            return self.VARIABLE, self.VARIABLE
        if settings.settings_file is not None:
            try:
                section = read_toml(settings.settings_file).get("retrieval")
            except (OSError, ValueError, ConfigError):
                section = None
            if isinstance(section, dict) and "embedder" in section:
                return f"{settings.settings_file.name} [retrieval]", settings.settings_file
        return "default", DEFAULTS_FILE

    def problems(self, departments: Iterable[Department]) -> list[ConfigError]:
        from bot.config.problems import line_for, read_yaml

        found: list[ConfigError] = []
        why = self.problem(self.default)
        if why is not None:
            found.append(ConfigError(why, file=self._settings_source()[1], field="retrieval.embedder"))
        for dept in departments:
            if dept.embedder is None:
                continue
            why = self.problem(dept.embedder)
            if why is None:
                continue
            line = None
            if dept.source_file is not None:
                try:
                    line = line_for(read_yaml(dept.source_file)[1], ("embedder",))
                except (OSError, DeptbotError):
                    line = None
            found.append(ConfigError(why, file=dept.source_file, line=line, field="embedder"))
        return found

    def shown(self, dept: Department) -> str:
        """``embedder minilm (hr.yaml)``, ``embedder wordllama (default)``, …, and a note
        when the served index was built with another embedder."""
        if dept.embedder is not None:
            name = dept.embedder
            where = dept.source_file.name if dept.source_file is not None else "department file"
        else:
            name, where = self.default, self._settings_source()[0]
        self._used.add(name)
        text = f"embedder {name} ({where})"
        built = self._built_with(dept.name)
        if built is not None and built != name:
            text += f" — index built with {built}: the next refresh rebuilds it"
        return text

    def _built_with(self, department: str) -> str | None:
        """The embedder of the served index in this state folder (read only; None if none)."""
        from bot.knowledge.versions import current_version, dept_dir, read_meta

        root = dept_dir(self._settings.state_dir, department)
        try:
            version = current_version(root)
            return None if version is None else str(read_meta(root / "versions" / version)["embedder"])
        except (OSError, ValueError, KeyError):
            return None

    def notes(self) -> list[str]:
        """One line for the minilm extra when a department uses it (it passed ``problem``)."""
        if "minilm" not in self._used:
            return []
        from bot.knowledge.embedders import MINILM_FILES

        files = " and ".join(f"{f.name} ({f.distribution} {f.version})" for f in MINILM_FILES)
        return [f"minilm: the [minilm] extra is installed; {files} match their pinned SHA-256"]


def _rollout(dept: Department) -> str:
    """ "  disabled" / "  pilot: N entries, M channels" / "" (open to its ask list)."""
    from bot.adapters.console import plural

    if not dept.enabled:
        return "  disabled (enabled: false: nobody may ask)"
    if dept.pilot is None:
        return ""
    n = len(dept.pilot_entries)
    return f"  pilot: {n} {'entry' if n == 1 else 'entries'}, {plural(len(dept.pilot_channels), 'channel')}"


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


def _check_database(settings: Settings) -> tuple[DatabaseHealth | None, list[ConfigError]]:
    """With ``DEPTBOT_DATABASE_URL``: whether PostgreSQL answers and its schema is what this
    release needs (nothing is migrated; the messages show the URL without its password)."""
    from bot.store.backend import ENV_VAR
    from bot.store.pg_health import check_settings

    try:
        health = check_settings(settings)
    except ConfigError as exc:
        return None, [exc]
    if health is None or health.ok:
        return health, []
    return health, [ConfigError(health.problem, file=ENV_VAR, field="database")]


def _copy_warnings(settings: Settings, database: DatabaseHealth | None) -> list[str]:
    """A warning per SQLite copy ``deptbot db copy`` recorded (they hold personal text and
    every data key, and an erase from another state folder cannot reach them); a record
    made from this state folder (its ``state-id``) whose folder is gone is forgotten here
    (the README's step after deleting it). Never on the host name alone: replicas can
    share one, and forgetting another replica's copy would hide it from every erase; nor
    on a path missing only because the folder was moved or is mounted elsewhere
    (``forget_missing_copies``). Adoption has its own try: failing, it hides no copy."""
    if database is None or not database.ok:
        return []
    from bot.cli.db import _database
    from bot.store.pg_copy import adopt_old_records, forget_missing_copies, recorded_copies

    db = _database(settings)
    lines: list[str] = []
    try:
        try:  # its own try: a folder it cannot file under must not hide the list below
            adopt_old_records(db, settings.state_dir)
        except DeptbotError as exc:
            lines.append(
                "warning: the SQLite copy records from before state folder ids could not be filed "
                f"under this state folder ({exc.user_message})"
            )
        gone = forget_missing_copies(db, settings.state_dir)
        left = recorded_copies(db)
    except DeptbotError as exc:
        why = exc.user_message
        return [*lines, f"warning: the SQLite copies deptbot db copy left could not be listed ({why})"]
    finally:
        db.close()
    lines += [f"forgot the SQLite copy at {c.path} on {c.host}: its folder is gone" for c in gone]
    for c in left:
        line = (
            f"warning: the SQLite copy on {c.host} at {c.path} (deptbot db copy, "
            f"{datetime.fromtimestamp(c.at, UTC):%Y-%m-%d}) holds personal text and every data key, "
            f"and an erase from another state folder cannot reach it: delete that folder once the copy "
            f"is checked, then run deptbot check on {c.host} with that state folder."
        )
        if c.state_id is None:  # recorded before state folders had ids (migration 0010)
            sql = f"delete from state_copies where host = {_sql_text(c.host)} and path = {_sql_text(c.path)}"
            line += (
                " This record predates state folder ids, so it is never forgotten on its own: "
                "run deptbot check there while the folder still exists (a state folder with a "
                "state-id then files it under that id), or, once it is deleted, clear the record "
                "yourself: "
                f'psql "$DEPTBOT_DATABASE_URL" -c "{sql}"'
            )
        lines.append(line)
    return lines


def _sql_text(value: str) -> str:
    """A SQL string literal for the hint above (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def _recent_notices(settings: Settings, database: DatabaseHealth | None) -> list[str]:
    """Recent admin notices: from PostgreSQL when it is configured and usable, else when
    the state folder and its notices database exist."""
    from bot.store.notices import Notices, SqliteNotices

    state = settings.state_dir
    try:
        if database is not None:
            if not database.ok:
                return []
            from bot.cli.db import _database
            from bot.store.pg_notices import PgNotices

            db = _database(settings)
            try:
                notices = PgNotices(db).recent()
            finally:
                db.close()
        elif not (state / SqliteNotices.FILE).is_file():
            return []
        else:
            store: Notices = SqliteNotices.in_state_dir(state)
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
