"""``deptbot db migrate|status|copy|vector-index``: the PostgreSQL schema, when ``DEPTBOT_DATABASE_URL``
is set, and moving an existing installation's SQLite state into it.

``migrate`` is safe to run from every replica at start (an advisory lock makes them take
turns; the late ones find nothing to do). Stores also apply pending migrations when they
open, so this is for deploy pipelines that want the schema settled first.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bot.cli.output import EXIT_OK, _out
from bot.errors import UsageError
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.store.backend import Database


def _database(settings: Settings, to: str | None = None) -> Database:
    from bot.store.backend import ENV_VAR, Database, PoolLimits, database_url

    url = database_url({ENV_VAR: to} if to else settings.env)
    if url is None:
        raise UsageError(
            f"{ENV_VAR} is not set: deptbot keeps its state in SQLite files in the state folder, "
            "which need no migration."
        )
    limits = PoolLimits.from_section(settings.section("database"))
    return Database(url, PoolLimits(min_size=0, max_size=1, connect_timeout=limits.connect_timeout))


def cmd_db_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from bot.store.backend import migrate, schema_version

    db = _database(settings)
    try:
        applied = migrate(db)
        version = schema_version(db)
    finally:
        db.close()
    if applied:
        _out(f"Applied {len(applied)} migration{'s' if len(applied) != 1 else ''} to {db.url.redacted}:")
        for name in applied:
            _out(f"  {name}")
    else:
        _out(f"{db.url.redacted} is up to date.")
    _out(f"Schema version {version}.")
    return EXIT_OK


def cmd_db_vector_index(args: argparse.Namespace, settings: Settings) -> int:
    """Create the pgvector HNSW indexes ``[knowledge] dense = "pgvector"`` searches with.

    Not a migration (0005's doc): every publish pays for keeping them current, so only
    installations that search in PostgreSQL create them. Safe while replicas serve."""
    from bot.knowledge.pg_dense import create_vector_indexes
    from bot.store.backend import migrate

    db = _database(settings)
    try:
        migrate(db)
        names = create_vector_indexes(db)
    finally:
        db.close()
    _out(f"HNSW indexes present: {', '.join(names)}.")
    if settings.values.knowledge.dense != "pgvector":
        _out('They are used only with [knowledge] dense = "pgvector"; until then they only slow publishing.')
    return EXIT_OK


def cmd_db_status(args: argparse.Namespace, settings: Settings) -> int:
    from bot.store.backend import migrations, schema_version

    db = _database(settings)
    try:
        version = schema_version(db)
    finally:
        db.close()
    latest = len(migrations())
    state = "up to date" if version >= latest else f"{latest - version} pending: run deptbot db migrate"
    _out(f"{db.url.redacted}: schema version {version} of {latest} ({state}).")
    return EXIT_OK


def cmd_db_copy(args: argparse.Namespace, settings: Settings) -> int:
    """Copy the state folder's audit, usage and chat-state databases into PostgreSQL, then
    move the copied files out of the live folder (``bot.store.pg_copy`` says why)."""
    from pathlib import Path

    from bot.cli.audit import _existing_key
    from bot.store.pg_copy import copy_state

    source = args.source or f"sqlite:{settings.state_dir}"
    if not source.startswith("sqlite:"):
        raise UsageError(f"--from must be sqlite:STATE_FOLDER, not {source!r}.")
    folder = Path(source.removeprefix("sqlite:") or settings.state_dir).expanduser()
    if not folder.is_dir():
        raise UsageError(f"--from: {folder} is not a state folder.")
    db = _database(settings, args.to)
    try:
        report = copy_state(folder, db, key=_existing_key(settings))
    finally:
        db.close()
    for table, n in report.rows.items():
        _out(f"  {table:<17} {n:>10,} rows")
    if report.skipped:
        _out(f"Not in {folder} (nothing to copy): {', '.join(report.skipped)}")
    if report.head is not None:
        _out(f"Audit chain verified in {db.url.redacted}: head row {report.head[0]}, MAC {report.head[1]}")
    if report.moved_to is not None:
        _out(f"Moved out of the live state folder, into {report.moved_to}: {', '.join(report.moved)}")
        _out(
            "  They hold personal text and every data key: a privacy erase run with this state folder "
            "still covers that folder (one run elsewhere names it in its receipt), but delete it once "
            "you have checked the copy (move the files back to undo the switch), then run deptbot check here."
        )
    _out(f"Copied into {db.url.redacted}. Set DEPTBOT_DATABASE_URL on every replica to use it.")
    return EXIT_OK
