"""``deptbot eval``: retrieval quality on a BEIR folder (``bot.cli.index.cmd_eval``), or,
with ``--qa``, answer-level evals through the real pipeline (``bot.evals.qa``).

    deptbot eval BEIR_DIR [--json]
    deptbot eval --qa [DEPT] [--json] [--user EMAIL]
    deptbot eval --qa --file EVALS.yaml [--json] [--user EMAIL]

Exit 0 when every department clears its thresholds, 1 when one does not, 2 on usage
errors (unknown department, no ``evals:`` block, an eval user the access rules refuse).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.output import EXIT_ERROR, EXIT_OK, _err, _out, _progress
from bot.errors import StoreError, UsageError
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.evals.qa import Report


def cmd_eval_any(args: argparse.Namespace, settings: Settings) -> int:
    """Dispatch: ``--qa``/``--file`` run answer evals, otherwise BEIR_DIR is required."""
    if args.qa is None and args.file is None:
        if not args.beir_dir:
            raise UsageError("Give a BEIR folder (deptbot eval BEIR_DIR) or --qa [DEPT] for answer evals.")
        from bot.cli.index import cmd_eval

        return cmd_eval(args, settings)
    if args.mode != "hybrid" or args.embedder is not None:
        raise UsageError("--mode and --embedder apply to BEIR evals; --qa uses the configured pipeline.")
    department = args.qa if args.qa not in (None, "*") else None
    if department is None and args.beir_dir:  # "deptbot eval hr --qa"
        department = args.beir_dir
    if args.file is not None and department is not None:
        raise UsageError("Use --qa DEPT for a department's evals or --file for an eval file, not both.")
    return cmd_eval_qa(args, settings, department=department)


def cmd_eval_qa(args: argparse.Namespace, settings: Settings, *, department: str | None) -> int:
    from bot.cli.assistant import _build
    from bot.evals.qa import run_department, run_file, table

    # Evals measure the pipeline as it is now: a cached answer may come from older code or
    # settings (the cache key changes with the index, not with the code), so no cache.
    cache = {**settings.file.get("cache", {}), "enabled": False}
    wired = _build(replace(settings, file={**settings.file, "cache": cache}))
    assistant = wired.assistant
    company = assistant.company
    if args.file is not None:
        names: list[str] = []
    elif department is not None:
        names = [company.department(department).name]  # unknown: usage error
    else:
        names = [d.name for d in company if d.evals is not None]
        if not names:
            raise UsageError("No department has an evals: block; add one to a department file.")
    for name in names if names else [d.name for d in company]:
        dept = company.department(name)
        status = assistant.status(name)[0]
        if status.version is None or status.stale:
            with _progress(f"Indexing {dept.title}") as progress:
                wired.knowledge.refresh(dept, progress=progress)
    reports: list[Report]
    if args.file is not None:
        reports = [run_file(assistant, Path(args.file), user=args.user)]
    else:
        # audited as platform "eval", like the scheduler's runs: console counts and alerts
        # are about people's questions and leave eval traffic out
        reports = [
            run_department(assistant, company.department(n), user=args.user, platform="eval") for n in names
        ]
    if args.file is None:
        _record(settings, reports)
    if args.json:
        payload = {"passed": all(r.passed for r in reports), "departments": [r.as_dict() for r in reports]}
        _out(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        _out(table(reports))
    return EXIT_OK if all(r.passed for r in reports) else EXIT_ERROR


def _record(settings: Settings, reports: list[Report]) -> None:
    """Keep each department's result in the eval-run history as a "manual" run, so the
    admin console's trend and the scheduler's regression check see it. An eval file is not
    a department's configured evals, so it is not recorded. A history that cannot be
    written is said on stderr; the results printed are still the command's answer."""
    from bot.evals.qa import to_run
    from bot.store.evalruns import open_eval_runs
    from bot.store.state import ensure_private_dir

    now = datetime.now(UTC)
    try:
        ensure_private_dir(settings.state_dir)
        store = open_eval_runs(settings)  # PostgreSQL with DEPTBOT_DATABASE_URL, like the scheduler's
    except StoreError as exc:
        _err(f"Results not kept in the eval history: {exc}")
        return
    try:
        for report in reports:
            store.record(to_run(report, department=report.name, trigger="manual", when=now))
    finally:
        store.close()
