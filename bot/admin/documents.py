"""The documents page: what the served index holds, and how the audit log cites it.

The index is read from its files (``meta.json`` and each live segment's ``docs.json``,
the way ``/metrics`` reads ``index.read_meta``), never by loading vectors, and cached per
index version — a version never changes once written. Citations are counted in the
database over the audit rows' ``doc_ids`` (document ids only, never text).

A document whose ``audiences`` the index does not state, or states in a shape that cannot
be read, is restricted (``UNREADABLE``: nobody is admitted), never public: an empty list
admits everyone, and a missing key must not turn into one.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from bot.admin.auditread import ASKED_R, IN_QUESTIONS, Reader, parse_time, window
from bot.admin.reports import (
    CitedDoc,
    DocRef,
    DocumentReport,
    FailedDoc,
    RestrictedCounts,
    StaleDoc,
)
from bot.admin.rollup import DayCache
from bot.config.models import Department
from bot.core.types import Classification, Signature
from bot.knowledge import dates
from bot.knowledge.versions import current_version, dept_dir, read_meta, segment_dirs

log = logging.getLogger(__name__)

STALE_AFTER_DAYS = 365
"""A document whose real updated date is older than this is listed as stale."""
MOST_CITED = 20
LISTED = 200  # never-cited and stale lists are capped (the page says "and N more")
UNREADABLE: Signature = ((),)
"""The audiences of a document whose own are missing or malformed: one empty audience
list, which ``AccessScope.admits`` grants nobody (fail closed)."""


def audiences_of(entry: dict[str, object]) -> Signature:
    """A docs.json entry's audiences: a list of lists of non-empty strings, else
    ``UNREADABLE`` (never ``()``, which would name the document to every admin)."""
    value = entry.get("audiences")
    if not isinstance(value, list):
        return UNREADABLE
    out: list[tuple[str, ...]] = []
    for audience in value:
        if not isinstance(audience, list) or not all(isinstance(e, str) and e for e in audience):
            return UNREADABLE
        out.append(tuple(audience))
    return tuple(out)


@dataclass(frozen=True)
class IndexedDoc:
    """One live document of the served index, as its segment's ``docs.json`` lists it."""

    ref: DocRef
    modified: datetime | None
    date_kind: str
    classification: Classification
    audiences: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class IndexSnapshot:
    version: str
    documents: int
    chunks: int
    built_at: datetime | None
    docs: tuple[IndexedDoc, ...]
    failed: tuple[FailedDoc, ...]

    def by_id(self) -> dict[str, IndexedDoc]:
        return {d.ref.doc_id: d for d in self.docs}


class IndexDocs:
    """Live documents of each department's served index, cached per version."""

    def __init__(self, state_dir: Path) -> None:
        self._state_dir = Path(state_dir)
        self._lock = threading.Lock()
        self._cache: dict[str, IndexSnapshot] = {}

    def snapshot(self, dept: Department) -> IndexSnapshot | None:
        root = dept_dir(self._state_dir, dept.name)
        version = current_version(root)
        if version is None:
            return None
        with self._lock:
            found = self._cache.get(dept.name)
        if found is not None and found.version == version:
            return found
        try:
            snap = _load(root, version, dept)
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("index documents of a department could not be read", exc_info=True)
            return None
        with self._lock:
            self._cache[dept.name] = snap
        return snap


def _load(root: Path, version: str, dept: Department) -> IndexSnapshot:
    vdir = root / "versions" / version
    meta = read_meta(vdir)
    docs: list[IndexedDoc] = []
    for folder, dead in segment_dirs(root, vdir, meta):
        listed = json.loads((folder / "docs.json").read_text(encoding="utf-8"))
        gone = set(dead)
        for n, d in enumerate(listed):
            if n in gone:
                continue
            modified = d.get("modified")
            docs.append(
                IndexedDoc(
                    ref=DocRef(
                        doc_id=str(d["doc_id"]),
                        title=str(d.get("title") or d["rel"]),
                        path=str(d["rel"]),
                        link=dept.link(str(d["doc_id"])),
                    ),
                    modified=datetime.fromtimestamp(float(modified), UTC) if modified is not None else None,
                    date_kind=str(d.get("date_kind", dates.UPDATED)),
                    classification=Classification(int(d.get("classification", dept.classification))),
                    audiences=audiences_of(d),
                )
            )
    docs.sort(key=lambda d: d.ref.path)
    built = meta.get("built_at")
    return IndexSnapshot(
        version=version,
        documents=int(meta.get("documents", len(docs))),
        chunks=int(meta.get("chunks", 0)),
        built_at=parse_time(built) if built else None,
        docs=tuple(docs),
        failed=tuple(
            FailedDoc(path=_relative(dept, str(f["path"])), reason=str(f["reason"]))
            for f in meta.get("failed", [])
        ),
    )


def _relative(dept: Department, path: str) -> str:
    """A failed file's path within the knowledge folder (the indexer reports it as
    ``knowledge/hr/x.pdf``; the admin knows which folder)."""
    knowledge = Path(dept.knowledge)
    return path.removeprefix(f"{knowledge.parent.name}/{knowledge.name}/")


Cites = dict[str, tuple[int, str]]
"""doc id → (answers citing it, last time cited) — of one day, or summed over a window."""


def cite_sql(conn: Reader) -> str:
    """Citations per day and document of one department (args: department, ISO day)."""
    return (
        "select substr(r.time, 1, 10), j.value, count(*), max(r.time) "
        f"from requests r cross join {conn.each_id('r.doc_ids', 'j')} "
        f"where r.department = ? and r.time >= ? and r.{IN_QUESTIONS} "
        f"and {ASKED_R} and r.doc_ids not in ('', '[]') "
        "group by 1, 2"
    )


def compute_cites(conn: Reader, department: str, first: date) -> dict[date, Cites]:
    out: dict[date, Cites] = {}
    for day, doc, n, last in conn.execute(cite_sql(conn), [department, first.isoformat()]):
        try:
            key = date.fromisoformat(str(day))
        except ValueError:
            continue
        out.setdefault(key, {})[str(doc)] = (int(n), str(last))
    return out


CITES: DayCache[Cites] = DayCache(compute_cites, dict)


def citations(audit: Reader | None, department: str, start: date, today: date) -> Cites:
    """doc id → (answers citing it, last time cited) over one department's rows."""
    if audit is None or not audit.has_table("requests"):
        return {}
    total: Cites = {}
    for day in CITES.days(audit, department, start, today).values():
        for doc, (n, last) in day.items():
            had = total.get(doc)
            total[doc] = (n, last) if had is None else (had[0] + n, max(had[1], last))
    return total


def build_report(
    snap: IndexSnapshot | None,
    audit: Reader | None,
    dept: Department,
    days: int,
    today: date,
    *,
    readable: Callable[[Signature], bool] = lambda audiences: not audiences,
    stale_after_days: int = STALE_AFTER_DAYS,
) -> DocumentReport:
    """``readable``: may every admin read a document with these audiences? Only such
    documents are named; the rest are counted in ``restricted.unlisted`` (default: only
    documents without an audience of their own — fail closed)."""
    if snap is None:
        return DocumentReport(
            department=dept.name,
            days=days,
            indexed=False,
            documents=0,
            chunks=0,
            built_at=None,
            most_cited=(),
            never_cited=(),
            stale=(),
            stale_after_days=stale_after_days,
            undated=0,
            failed=(),
            restricted=RestrictedCounts(above_default=0, with_audience=0, by_classification=()),
        )
    start, _ = window(today, days)
    cited = citations(audit, dept.name, start, today)
    named = [d for d in snap.docs if readable(d.audiences)]
    live = {d.ref.doc_id: d for d in named}
    ranked = sorted(  # documents since removed, or not every admin may read: not named
        ((doc_id, n, last) for doc_id, (n, last) in cited.items() if doc_id in live),
        key=lambda t: (-t[1], t[0]),
    )
    most = tuple(
        CitedDoc(doc=live[d].ref, citations=n, last_cited=parse_time(last))
        for d, n, last in ranked[:MOST_CITED]
    )
    never = tuple(d.ref for d in named if d.ref.doc_id not in cited)
    now = datetime.combine(today, datetime.max.time(), tzinfo=UTC)
    stale: list[StaleDoc] = []
    undated = 0
    for d in named:
        if d.date_kind != dates.UPDATED or d.modified is None:
            undated += 1
            continue
        age = (now - d.modified).days
        if age > stale_after_days:
            stale.append(StaleDoc(doc=d.ref, updated=d.modified.date(), age_days=age))
    stale.sort(key=lambda s: (s.updated or date.min, s.doc.path))
    by_label: dict[str, int] = {}
    for d in snap.docs:
        by_label[d.classification.label] = by_label.get(d.classification.label, 0) + 1
    return DocumentReport(
        department=dept.name,
        days=days,
        indexed=True,
        documents=len(snap.docs),
        chunks=snap.chunks,
        built_at=snap.built_at,
        most_cited=most,
        never_cited=never[:LISTED],
        stale=tuple(stale[:LISTED]),
        stale_after_days=stale_after_days,
        undated=undated,
        failed=snap.failed,
        restricted=RestrictedCounts(
            above_default=sum(1 for d in snap.docs if d.classification > dept.classification),
            with_audience=sum(1 for d in snap.docs if d.audiences),
            by_classification=tuple(
                (c.label, by_label[c.label]) for c in Classification if c.label in by_label
            ),
            unlisted=len(snap.docs) - len(named),
        ),
        never_cited_total=len(never),
        stale_total=len(stale),
    )
