"""An audit log filled with requests at chosen times (real ``SqliteAuditLog`` writes)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.core.ports import AuditEntry
from bot.store.audit import SqliteAuditLog

_ids = itertools.count(1)


class Audit:
    def __init__(self, state: Path) -> None:
        state.mkdir(parents=True, exist_ok=True)
        self.log = SqliteAuditLog(path=state / "audit.db", env={"DEPTBOT_AUDIT_KEY": "k" * 64})

    def add(
        self, n: int, when: datetime, status: str = "answered", *, confidence: float = 0.8, **kw: Any
    ) -> list[str]:
        ids = []
        for i in range(n):
            rid = f"r{next(_ids)}"
            entry: dict[str, Any] = dict(
                request_id=rid,
                time=when - timedelta(minutes=i),
                user="alice@example.com",
                platform="slack",
                decision="allowed",
                rule="ask:*@example.com",
                status=status,
                department="hr",
                confidence=confidence,
            )
            entry.update(kw)
            self.log.record(AuditEntry(**entry))
            ids.append(rid)
        return ids
