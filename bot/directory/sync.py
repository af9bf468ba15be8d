"""Keep the sourced groups of ``groups.yaml`` filled from the company directory, failing closed.

A group written as ``finance-admins: {entra: 9f1c…}`` is EMPTY in the loaded ``Company``;
``DirectorySync`` reads its members from the ``GroupSource`` of that kind and lays them over
the company (``apply``), which the running assistant then serves (``Assistant.reconfigure``:
every request uses one snapshot). The rules:

* **Fresh or nothing.** A source is read every ``ttl_seconds``; a member removed at the
  source disappears at the next read. Members are kept per (kind, ref), so a group whose
  ref changes on reload never keeps the old group's members, and a list older than one
  interval plus the grace plus one read's deadline is never served.
* **Fail closed.** A source that raises ``SourceError`` (down, 403, group deleted, a member
  without an address) — or anything else, or no answer within ``deadline_seconds`` —
  leaves its groups EMPTY for grants. The one exception: the last list read successfully
  is kept for ``grace_seconds`` after the first failed read (a blip of a few seconds should
  not lock a whole team out for an interval), never longer; the background thread wakes
  when the grace ends, tries again, and empties the groups if it still fails.
* **Told once.** When a failing source's groups actually lose their members, the admins get
  one notice per outage ("entra group 9f1c… (finance-admins) unreadable since 14:02 UTC:
  HTTP 403 from Microsoft Graph; its members lose access until it can be read"), and one
  when it can be read again. A blip within the grace is not told.

Each kind's groups are read in one daemon thread (kinds in parallel, one kind's refs one
after the other, so a source is never called concurrently); a read still running from an
earlier refresh is not started twice. Reads happen outside every lock; the swap into the
assistant happens under one lock shared with the configuration watcher (``swap``), so a
reload and a refresh can never undo each other.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal, Protocol

from bot.config import Company, GroupRef
from bot.core.ports import AdminNotices
from bot.directory.source import GroupSource, SourceError

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (kind, ref)
State = Literal["ok", "failing", "never"]
Result = frozenset[str] | SourceError


class Reconfigurable(Protocol):
    """What the sync needs from the Assistant (the same shape the config watcher uses)."""

    @property
    def company(self) -> Company: ...

    def reconfigure(self, company: Company) -> None: ...


@dataclass(frozen=True)
class SourceStatus:
    """One sourced group as ``deptbot check --directory`` and ``deptbot who`` show it."""

    group: str
    kind: str
    ref: str
    state: State  # never: not read yet; failing: the last read failed
    members: int  # members granted right now (0 when failing past the grace)
    age_seconds: float | None  # since the last successful read (None: never read)
    error: str | None  # the last failure's reason, safe to show an admin
    grace_until: float | None = None  # failing, but the last list is kept until then (epoch)

    @property
    def source(self) -> str:
        return f"{self.kind} {self.ref}"


@dataclass
class _Entry:
    members: frozenset[str] = frozenset()
    read_at: float | None = None  # last successful read
    failing_since: float | None = None
    error: str | None = None
    told: bool = False  # the outage notice went out


class UnavailableSource:
    """Stands in for a kind that cannot be used here: every read fails with ``reason``."""

    def __init__(self, kind: str, reason: str) -> None:
        self.kind, self.reason = kind, reason

    def members(self, ref: str) -> frozenset[str]:
        raise SourceError(self.reason)


class _Read:
    """One kind's refs read in a daemon thread; results after the deadline are dropped."""

    def __init__(self, kind: str, refs: list[str], sources: Mapping[str, GroupSource]) -> None:
        self.kind, self.refs, self._sources = kind, refs, sources
        self.results: dict[str, Result] = {}
        self.closed = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"deptbot-directory-{kind}", daemon=True)

    def _run(self) -> None:
        source = _source(self._sources, self.kind)
        for ref in self.refs:
            try:
                value: Result = _emails(source.members(ref))
            except SourceError as exc:
                value = exc
            except Exception as exc:  # a bug or a library error: fail closed, never a traceback
                log.exception("reading %s group %s failed", self.kind, ref)
                value = SourceError(f"unexpected error ({type(exc).__name__})")
            with self.lock:
                if self.closed:
                    return
                self.results[ref] = value


def _source(sources: Mapping[str, GroupSource], kind: str) -> GroupSource:
    try:
        return sources[kind]
    except KeyError:
        return UnavailableSource(kind, f"no {kind} source is configured")
    except Exception as exc:  # building the source failed (a missing library, a bad URL)
        log.exception("setting up the %s source failed", kind)
        return UnavailableSource(kind, f"the {kind} source could not be set up ({type(exc).__name__})")


def _emails(found: Iterable[str]) -> frozenset[str]:
    members = list(found)
    if not all(isinstance(m, str) and "@" in m for m in members):
        raise SourceError("the source returned something that is not an e-mail address")
    return frozenset(m.strip().lower() for m in members)


def _at(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M UTC")


class DirectorySync:
    """Reads sourced groups, remembers the last lists, and overlays them on a Company."""

    def __init__(
        self,
        sources: Mapping[str, GroupSource],
        *,
        ttl_seconds: float = 300.0,
        grace_seconds: float = 120.0,
        deadline_seconds: float = 30.0,
        notices: AdminNotices,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sources = sources
        self.ttl = float(ttl_seconds)
        self.grace = float(grace_seconds)
        self.deadline = float(deadline_seconds)
        self._notices = notices
        self._clock = clock
        self._entries: dict[Key, _Entry] = {}
        self._company: Company | None = None  # the last company refreshed or applied
        self._reading: dict[str, _Read] = {}  # kind → a read that outlived its deadline
        self._lock = threading.Lock()  # entries
        self._swap_lock = threading.Lock()  # what the assistant serves
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ── reading ──

    def refresh(self, company: Company, *, notify: bool = True) -> Company:
        """Read every sourced group of ``company`` now (bounded by ``deadline_seconds``)
        and return the company with the members laid over; ``notify=False`` leaves the
        admin notices alone (one-shot commands print instead)."""
        wanted: dict[str, list[str]] = {}
        for ref in company.sources.values():
            if ref.ref not in wanted.setdefault(ref.kind, []):
                wanted[ref.kind].append(ref.ref)
        results = self._read(wanted)
        told: list[tuple[str, str]] = []
        with self._lock:
            now = self._clock()
            self._company = company
            for key, result in results.items():
                told += self._record(key, result, now, company)
            for key in self._entries.keys() - results.keys():
                del self._entries[key]  # no longer used: a later comeback starts from nothing
            served = self._overlay(company, now)
        for kind, text in told if notify else []:
            try:
                self._notices.notify(None, kind, text)
            except Exception:  # a notices failure must not undo the refresh
                log.exception("could not record a directory notice")
        return served

    def _read(self, wanted: Mapping[str, list[str]]) -> dict[Key, Result]:
        reads: list[_Read] = []
        results: dict[Key, Result] = {}
        for kind, refs in wanted.items():
            running = self._reading.get(kind)
            if running is not None and running.thread.is_alive():
                busy = SourceError(f"an earlier read has not finished after {self.deadline:g} s")
                results.update({(kind, ref): busy for ref in refs})
                continue
            read = _Read(kind, refs, self._sources)
            read.thread.start()
            reads.append(read)
        end = time.monotonic() + self.deadline
        for read in reads:
            read.thread.join(max(0.0, end - time.monotonic()))
        for read in reads:
            with read.lock:
                read.closed = True
                late = SourceError(f"no answer within {self.deadline:g} s")
                results.update({(read.kind, ref): read.results.get(ref, late) for ref in read.refs})
            if read.thread.is_alive():
                self._reading[read.kind] = read
            else:
                self._reading.pop(read.kind, None)
        return results

    def _record(self, key: Key, result: Result, now: float, company: Company) -> list[tuple[str, str]]:
        """Update one entry; the notices to send (kind, text)."""
        entry = self._entries.setdefault(key, _Entry())
        what = f"{key[0]} group {key[1]} ({', '.join(self._groups_of(key, company)) or 'unused'})"
        if isinstance(result, frozenset):
            if result != entry.members or entry.read_at is None:
                log.info("%s: %d member%s", what, len(result), "" if len(result) == 1 else "s")
            was_told, since = entry.told, entry.failing_since
            self._entries[key] = _Entry(members=result, read_at=now)
            if was_told and since is not None:
                n = len(result)
                who = "its 1 member has" if n == 1 else f"its {n} members have"
                return [
                    (
                        "directory-recovered",
                        f"{what} readable again at {_at(now)} (unreadable since {_at(since)}); "
                        f"{who} access again",
                    )
                ]
            return []
        entry.error = result.reason
        if entry.failing_since is None:
            entry.failing_since = now
        if entry.told or self._granted(entry, now):
            return []
        entry.told = True
        lose = "its members lose access" if entry.read_at is not None else "nobody gets access through it"
        return [
            (
                "directory-unreadable",
                f"{what} unreadable since {_at(entry.failing_since)}: {result.reason}; "
                f"{lose} until it can be read",
            )
        ]

    @staticmethod
    def _groups_of(key: Key, company: Company) -> list[str]:
        return sorted(g for g, ref in company.sources.items() if (ref.kind, ref.ref) == key)

    # ── overlaying ──

    def _granted(self, entry: _Entry, now: float) -> bool:
        """May this entry's members be served now? A list is served while its source reads
        fine, or within the grace after the first failure, and never when older than one
        interval plus the grace plus one read's deadline (a stalled thread, an old entry)."""
        if entry.read_at is None or now - entry.read_at > self.ttl + self.grace + self.deadline:
            return False
        return entry.failing_since is None or now < entry.failing_since + self.grace

    def _overlay(self, company: Company, now: float) -> Company:
        if not company.sources:
            return company
        groups = dict(company.groups)
        for group, ref in company.sources.items():
            entry = self._entries.get((ref.kind, ref.ref))
            groups[group] = entry.members if entry is not None and self._granted(entry, now) else frozenset()
        return replace(company, groups=groups)

    def apply(self, company: Company) -> Company:
        """``company`` with the current members laid over its sourced groups, without
        reading anything; a source not read yet is empty and is read soon."""
        with self._lock:
            self._company = company
            if any((r.kind, r.ref) not in self._entries for r in company.sources.values()):
                self._wake.set()  # a new or changed source: the thread reads it now
            return self._overlay(company, self._clock())

    def swap(self, assistant: Reconfigurable, company: Company) -> bool:
        """Serve ``apply(company)``; True when that changed what the assistant serves.
        The configuration watcher goes through here, under the lock the thread uses."""
        with self._swap_lock:
            served = self.apply(company)
            if served == assistant.company:
                return False
            assistant.reconfigure(served)
            return True

    # ── what an admin sees ──

    def status(self, company: Company | None = None) -> list[SourceStatus]:
        """Every sourced group of ``company`` (default: the last one refreshed or applied)."""
        with self._lock:
            company = company or self._company
            if company is None:
                return []
            now = self._clock()
            out = []
            for group, ref in sorted(company.sources.items()):
                out.append(self._status(group, ref, self._entries.get((ref.kind, ref.ref)), now))
            return out

    def _status(self, group: str, ref: GroupRef, entry: _Entry | None, now: float) -> SourceStatus:
        if entry is None:
            return SourceStatus(group, ref.kind, ref.ref, "never", 0, None, None)
        granted = self._granted(entry, now)
        failing = entry.failing_since is not None
        return SourceStatus(
            group,
            ref.kind,
            ref.ref,
            "failing" if failing else "ok",
            len(entry.members) if granted else 0,
            None if entry.read_at is None else max(0.0, now - entry.read_at),
            entry.error if failing else None,
            entry.failing_since + self.grace if granted and entry.failing_since is not None else None,
        )

    # ── the background thread ──

    def tick(self, assistant: Reconfigurable) -> bool:
        """One background step: read the sourced groups the assistant serves and swap the
        result in; True when what it serves changed. Tests call this instead of waiting."""
        company = assistant.company
        if company.sources:
            self.refresh(company)
        with self._swap_lock:
            current = assistant.company  # a reload in between: lay over the newest one
            with self._lock:
                served = self._overlay(current, self._clock())
            if served == current:
                return False
            assistant.reconfigure(served)
            return True

    def next_wait(self) -> float:
        """Seconds until the next read: the interval, sooner when a grace ends, 0 when the
        last company applied names a source not read yet."""
        with self._lock:
            now = self._clock()
            company = self._company
            if company and any((r.kind, r.ref) not in self._entries for r in company.sources.values()):
                return 0.0
            due = [self.ttl]
            for entry in self._entries.values():
                if entry.failing_since is not None and self._granted(entry, now):
                    due.append(entry.failing_since + self.grace - now)
        return max(0.5, min(due))

    def start(self, assistant: Reconfigurable) -> DirectorySync:
        """Read every ``ttl_seconds`` (sooner when a grace ends or a reload names a new
        source) in a daemon thread; ``stop()`` ends it."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, args=(assistant,), name="deptbot-directory-sync", daemon=True
            )
            self._thread.start()
        return self

    def _run(self, assistant: Reconfigurable) -> None:
        while True:
            self._wake.wait(self.next_wait())
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                self.tick(assistant)
            except Exception:  # keep the thread alive; the age limit empties stale lists
                log.exception("directory refresh failed")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
