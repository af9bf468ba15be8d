"""Is the PostgreSQL database usable: reachable, and migrated to what this release needs.

``deptbot check`` and ``/readyz`` ask this instead of opening the stores, because opening
a store migrates (``Database.ready``) and a check must change nothing. A replica whose
database is down or behind says so (not ready, a problem line), and the answers refuse on
their own: the audit write fails closed (``bot.store.pg_audit``).

Every message names the redacted URL at most, never the password or the driver's text
(which may quote the connection string).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bot.errors import StoreError
from bot.store.backend import Database, PoolLimits, database_url, migrations, schema_version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatabaseHealth:
    where: str  # the redacted URL (never the password)
    version: int  # the schema version found (0: none, or not reached)
    latest: int  # the newest migration this release ships
    problem: str = ""  # safe to show; empty when usable

    @property
    def ok(self) -> bool:
        return not self.problem


def database_health(db: Database) -> DatabaseHealth:
    """One round trip: the schema version. A database ahead of this release is usable (a
    newer replica migrated it; migrations only add); one behind is not."""
    latest = len(migrations())
    try:
        version = schema_version(db)
    except StoreError as exc:
        log.warning("database check: %s", exc.user_message)
        return DatabaseHealth(db.url.redacted, 0, latest, f"cannot reach the database at {db.url.redacted}")
    except Exception as exc:  # the driver's text may quote the URL: log its type only
        log.warning("database check failed (%s)", type(exc).__name__)
        return DatabaseHealth(
            db.url.redacted, 0, latest, f"cannot read the schema version at {db.url.redacted}"
        )
    if version < latest:
        return DatabaseHealth(
            db.url.redacted,
            version,
            latest,
            f"the schema at {db.url.redacted} is at version {version}, this release needs {latest}: "
            "run `deptbot db migrate`",
        )
    return DatabaseHealth(db.url.redacted, version, latest)


def check_settings(settings: Any) -> DatabaseHealth | None:
    """For ``deptbot check``: the health of ``DEPTBOT_DATABASE_URL`` (None when unset), on
    a short-lived pool of one connection that migrates nothing."""
    url = database_url(settings.env)
    if url is None:
        return None
    limits = PoolLimits.from_section(settings.section("database"))
    db = Database(url, PoolLimits(min_size=1, max_size=1, connect_timeout=min(limits.connect_timeout, 5.0)))
    try:
        return database_health(db)
    finally:
        db.close()
