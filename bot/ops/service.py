"""Wiring the operations jobs into ``deptbot serve`` (``start_operations``).

Evals after a refresh run through a second ``Assistant`` over the same index, audit log and
budgets but WITHOUT the answer cache: a cached answer would measure yesterday's index. Its
requests are audited with ``platform = "eval"`` so counts and alerts leave them out. It is
built on first use and follows configuration reloads (``reconfigure`` before each run).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from bot.admin.auditread import records_for
from bot.config import Department
from bot.core.pipeline import Assistant
from bot.ops.alerts import Alerts
from bot.ops.digest import WEEK, Digest
from bot.ops.locks import open_leases
from bot.ops.post import Delivery, SlackChannel, TeamsChannel
from bot.ops.runner import Operations
from bot.ops.signals import AuditSignals
from bot.settings import Settings
from bot.store.alerts import open_alert_log
from bot.store.evalruns import EvalRun, open_eval_runs
from bot.wiring import Wired

log = logging.getLogger(__name__)


def eval_runner(
    settings: Settings, live: Assistant, build: Callable[[], Assistant]
) -> Callable[[Department, str], EvalRun]:
    """``(department, trigger) → EvalRun`` through a cache-less assistant made by ``build``."""
    from bot.evals.qa import run_department, to_run

    lock = threading.Lock()
    made: list[Assistant] = []

    def evaluate(dept: Department, trigger: str) -> EvalRun:
        with lock:
            if not made:
                made.append(build())
        assistant = made[0]
        assistant.reconfigure(live.company)  # the groups and access rules served right now
        report = run_department(assistant, assistant.company.department(dept.name), platform="eval")
        return to_run(report, department=dept.name, trigger=trigger, when=datetime.now(UTC))

    return evaluate


def start_operations(settings: Settings, wired: Wired) -> Operations | None:
    """Start the scheduler for ``wired`` (``bot.wiring.Wired``); None when ``[ops] enabled``
    is false. The caller stops it (``Operations.stop``) and passes ``sync`` to the config
    watcher so reloads reschedule."""
    from bot.llm.factory import build_generator
    from bot.sensitivity import PatternClassifier
    from bot.store.state import ensure_private_dir

    ops = settings.values.ops
    if not ops.enabled:
        return None
    ensure_private_dir(settings.state_dir)
    live = wired.assistant

    def build() -> Assistant:
        return Assistant(
            company=live.company,
            retriever=wired.knowledge,
            indexer=wired.knowledge,
            generator=build_generator(settings, usage_store=wired.usage),
            audit=wired.audit,
            classifier=PatternClassifier(),
            cache=None,
            notices=wired.notices,
            top_k=settings.values.retrieval.top_k,
            check_staleness=False,
        )

    runs = open_eval_runs(settings)  # PostgreSQL with DEPTBOT_DATABASE_URL: one history for all
    alert_log = open_alert_log(settings)  # PostgreSQL with DEPTBOT_DATABASE_URL: one post per replica set
    signals = AuditSignals(records_for(settings))  # with DEPTBOT_DATABASE_URL: every replica's rows
    delivery = Delivery(
        slack=SlackChannel.from_env(settings.env),
        teams=TeamsChannel.from_settings(settings),
        notices=wired.notices,
        admins_of=live.admins_of,
    )
    alerts = Alerts(
        signals=signals,
        usage=wired.usage,
        log_=alert_log,
        delivery=delivery,
        ops=ops,
        budgets=settings.values.budgets,
    )
    digest = Digest(
        signals=signals,
        usage=wired.usage,
        budgets=settings.values.budgets,
        runs=lambda name: [r for r in runs.recent(name, 20) if r.time >= datetime.now(UTC) - WEEK],
    )
    operations = Operations(
        company=lambda: live.company,
        refresher=wired.knowledge,
        observers=live.observers,
        evaluate=eval_runner(settings, live, build),
        runs=runs,
        locks=open_leases(settings),  # PostgreSQL with DEPTBOT_DATABASE_URL: jobs run once across replicas
        alerts=alerts,
        alert_log=alert_log,
        digest=digest,
        deliver=lambda dept, text, kind: delivery.deliver(dept, text, kind=kind),
        ops=ops,
        notices=wired.notices,
    )
    return operations.start()
