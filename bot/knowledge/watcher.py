"""One background watcher per process: it notices changed knowledge folders and schedules
refreshes, so requests never stat folders.

Why: a request used to pay a folder scan (``indexer.status`` walks every file) once a
minute per department — 430–810 ms instead of 15–46 ms on a 1,000-file department. Now
``deptbot serve`` leaves staleness to this watcher; a request only builds a MISSING index.

How it notices (``knowledge.watch``):

- ``events`` — filesystem events (``watchfiles``: Rust ``notify``, inotify on Linux),
  recursive, on every department's knowledge folder and on the departments folder (a
  configuration edit then reaches the config watcher at once instead of at its next poll);
- ``poll`` — every ``knowledge.watch_poll_seconds`` one ``stat`` per DIRECTORY (an added,
  removed or renamed file changes its directory's mtime; a directory is listed again only
  then) plus at most ``knowledge.watch_files_per_tick`` file stats, taken round-robin over
  all files (an in-place edit changes only the file's own mtime): a 1,000-file department
  costs a few dozen stats per tick, and every file is looked at within
  ``ceil(files / budget)`` ticks;
- ``auto`` (default) — events when ``watchfiles`` starts (inotify can run out of watches),
  the poll otherwise; ``off`` — nothing (start-up, ``/kb refresh`` and ``deptbot index`` only).

What it does: a change marks its department; a department is refreshed once no change
has been seen for ``knowledge.watch_debounce_seconds`` (a burst of edits — a git pull, an
rsync — is one refresh). The refresh runs in a worker thread (``refresher.refresh_if_stale``:
``indexer.status`` then ``indexer.refresh``), one at a time per department; a change
during a refresh marks the department again. When another refresh of it is running (a
``/kb refresh``, the console, the schedule: ``RefreshBusy``) the department is marked
again and tried after the quiet time, since that refresh may have scanned before the
change. A department whose definition changed (a configuration reload re-pointed its
folder, changed its embedder) is marked too. Failures are logged and told
through admin notices, like the start-up refresh; the next change tries again.

Departments are read again at every tick (a callable), so reloads are followed.

Replicas (``DEPTBOT_DATABASE_URL``): every ``knowledge.sync_seconds`` the watcher also
asks ``sync`` (``KnowledgeBase.sync_published``: one ``select`` on ``kb_current``) to
switch to versions another replica published; it runs in the worker pool, one at a time,
and runs even with ``watch = "off"`` (a replica that never indexes still serves the
published version).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from bot.config import Department
from bot.core.ports import AdminNotices, Indexer
from bot.knowledge.refresher import refresh_if_stale

log = logging.getLogger(__name__)
KEEP_REFRESHES = 100

Mode = Literal["auto", "events", "poll", "off"]
CONFIG = "\0config"  # the pending key of the departments folder (not a department name)
STEP_SECONDS = 0.25  # how often pending work is looked at between polls / events


class FolderTree:
    """Poll signature of one folder: directory mtimes every tick, file stats by budget."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self._dirs: dict[str, int] = {}  # directory → mtime_ns
        self._subdirs: dict[str, list[str]] = {}
        self._files_in: dict[str, set[str]] = {}  # directory → its files
        self._files: dict[str, tuple[int, int]] = {}  # file → (size, mtime_ns)
        self._order: list[str] = []
        self._cursor = 0
        self.tick(budget=0)  # the baseline: list every directory once

    @property
    def files(self) -> int:
        return len(self._files)

    def tick(self, budget: int) -> tuple[bool, int]:
        """(changed since the last tick, file stats spent); at most ``budget`` file stats."""
        changed = False
        seen: set[str] = set()
        stack = [self.root]
        while stack:
            d = stack.pop()
            seen.add(d)
            try:
                mtime: int | None = os.stat(d).st_mtime_ns
            except OSError:
                mtime = None
            if mtime != self._dirs.get(d) or d not in self._subdirs:
                changed |= self._relist(d, mtime)
            stack.extend(self._subdirs.get(d, ()))
        for gone in [d for d in self._dirs if d not in seen]:
            self._drop_dir(gone)
            changed = True
        return self._check_files(budget, changed)

    def _relist(self, d: str, mtime: int | None) -> bool:
        known = d in self._dirs
        if mtime is None:
            self._drop_dir(d)
            return known
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError:
            self._drop_dir(d)
            return known
        self._dirs[d] = mtime
        self._subdirs[d] = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
        now = {e.path for e in entries if not e.is_dir(follow_symlinks=False)}
        before = self._files_in.get(d, set())
        for path in before - now:
            self._files.pop(path, None)
        for path in now - before:
            self._files[path] = _stat(path)
        self._files_in[d] = now
        if now != before:
            self._order = list(self._files)
        return known or (d == self.root and bool(now))

    def _drop_dir(self, d: str) -> None:
        self._dirs.pop(d, None)
        self._subdirs.pop(d, None)
        for path in self._files_in.pop(d, set()):
            self._files.pop(path, None)
        self._order = list(self._files)

    def _check_files(self, budget: int, changed: bool) -> tuple[bool, int]:
        n = min(budget, len(self._order))
        for _ in range(n):
            self._cursor %= len(self._order)
            path = self._order[self._cursor]
            self._cursor += 1
            now = _stat(path)
            if now != self._files.get(path):
                self._files[path] = now
                changed = True
        return changed, n


def _stat(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


def events_available() -> bool:
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        return False
    return True


class KnowledgeWatcher:
    """Notices changed departments and refreshes them in the background (module text)."""

    def __init__(
        self,
        *,
        indexer: Indexer,
        departments: Callable[[], Iterable[Department]],
        notices: AdminNotices | None = None,
        mode: Mode = "auto",
        poll_seconds: float = 5.0,
        debounce_seconds: float = 2.0,
        files_per_tick: int = 2000,
        config_root: Path | None = None,
        on_config_change: Callable[[], object] | None = None,
        workers: int = 2,
        sync: Callable[[list[str]], object] | None = None,
        sync_seconds: float = 2.0,
    ) -> None:
        self._indexer = indexer
        self._departments = departments
        self._notices = notices
        self.mode: Mode = mode
        self.poll_seconds = poll_seconds
        self.debounce_seconds = debounce_seconds
        self.files_per_tick = files_per_tick
        self._config_root = config_root
        self._on_config_change = on_config_change
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="deptbot-watch-refresh")
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}  # department (or CONFIG) → last change seen
        self._running: set[str] = set()
        self._known: dict[str, Department] = {}
        self._trees: dict[str, FolderTree] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refreshes: list[str] = []  # the last KEEP_REFRESHES departments refreshed, oldest first
        self.running_mode: Mode = "off"
        self._sync = sync
        self.sync_seconds = sync_seconds
        self._next_sync = 0.0
        self._syncing = False
        self.syncs = 0  # sync ticks run (tests, /metrics-style counters)
        self._sync_departments(mark=False)

    # ── what changed ─────────────────────────────────────────────────────────────────

    def mark(self, name: str) -> None:
        """Note a change in ``name`` (a department, or ``CONFIG``); debounced."""
        with self._lock:
            self._pending[name] = time.monotonic()

    def _current(self) -> dict[str, Department]:
        try:
            return {d.name: d for d in self._departments()}
        except Exception:
            log.exception("knowledge watcher: cannot read the current departments")
            return dict(self._known)

    def _sync_departments(self, *, mark: bool = True) -> bool:
        """Follow configuration reloads; True when the set of watched folders changed."""
        current = self._current()
        moved = False
        for name, dept in current.items():
            old = self._known.get(name)
            if old != dept:
                if old is None or Path(old.knowledge) != Path(dept.knowledge):
                    moved = True
                    if self.running_mode == "poll" or not mark:
                        self._trees[name] = FolderTree(Path(dept.knowledge))
                if mark:
                    self.mark(name)
        for name in self._known.keys() - current.keys():
            self._trees.pop(name, None)
            moved = True
        self._known = current
        return moved

    def poll_once(self) -> list[str]:
        """One poll tick over every department's folder; the departments marked changed."""
        self._sync_departments()
        budget = self.files_per_tick
        changed: list[str] = []
        for name, dept in self._known.items():
            tree = self._trees.get(name)
            if tree is None:
                self._trees[name] = FolderTree(Path(dept.knowledge))
                continue
            moved, spent = tree.tick(budget)
            budget = max(0, budget - spent)
            if moved:
                changed.append(name)
                self.mark(name)
        return changed

    # ── refreshing ───────────────────────────────────────────────────────────────────

    def dispatch(self) -> list[str]:
        """Start a refresh for every department quiet for ``debounce_seconds``."""
        now = time.monotonic()
        started: list[str] = []
        with self._lock:
            for name, last in list(self._pending.items()):
                if now - last < self.debounce_seconds or name in self._running:
                    continue
                del self._pending[name]
                self._running.add(name)
                started.append(name)
        for name in started:
            self._pool.submit(self._work, name)
        return started

    def _work(self, name: str) -> None:
        try:
            if name == CONFIG:
                if self._on_config_change is not None:
                    self._on_config_change()
                return
            dept = self._current().get(name)

            def again() -> None:  # refreshing elsewhere now: try again after the quiet time
                self.mark(name)

            if dept is not None and refresh_if_stale(self._indexer, dept, self._notices, busy=again):
                self.refreshes.append(name)
                del self.refreshes[:-KEEP_REFRESHES]  # a long-running serve keeps the last few
        except Exception:
            log.exception("knowledge watcher: work for %s failed", name)
        finally:
            with self._lock:
                self._running.discard(name)

    def sync_due(self) -> bool:
        """Start a sync of published versions when ``sync_seconds`` passed and none runs."""
        if self._sync is None:
            return False
        now = time.monotonic()
        with self._lock:
            if self._syncing or now < self._next_sync:
                return False
            self._syncing = True
            self._next_sync = now + self.sync_seconds
        self._pool.submit(self._sync_work)
        return True

    def _sync_work(self) -> None:
        try:
            if self._sync is not None:
                self._sync(sorted(self._current()))
        except Exception:
            log.exception("knowledge watcher: syncing the published index versions failed")
        finally:
            with self._lock:
                self._syncing = False
                self.syncs += 1

    @property
    def idle(self) -> bool:
        with self._lock:
            return not self._pending and not self._running

    # ── the thread ───────────────────────────────────────────────────────────────────

    def start(self) -> KnowledgeWatcher:
        if self._thread is not None:
            return self
        if self.mode == "off":
            if self._sync is not None:  # no folder watching, but replicas still sync
                self._thread = threading.Thread(
                    target=self._run_sync_only, name="deptbot-knowledge-sync", daemon=True
                )
                self._thread.start()
            return self
        events = self.mode == "events" or (self.mode == "auto" and events_available())
        self.running_mode = "events" if events else "poll"
        self._thread = threading.Thread(target=self._run, name="deptbot-knowledge-watcher", daemon=True)
        self._thread.start()
        log.info("knowledge watcher: %s", self.running_mode)
        return self

    def _run(self) -> None:
        if self.running_mode == "events":
            try:
                self._run_events()
                return
            except Exception:
                if self.mode == "events" or self._stop.is_set():
                    log.exception("knowledge watcher: filesystem events failed; watcher stopped")
                    return
                log.warning("knowledge watcher: no filesystem events; polling instead", exc_info=True)
            self.running_mode = "poll"
            for name, dept in self._known.items():
                self._trees[name] = FolderTree(Path(dept.knowledge))
                self.mark(name)  # changes may have happened while events were starting
        self._run_poll()

    def _run_sync_only(self) -> None:
        while not self._stop.wait(min(STEP_SECONDS, self.sync_seconds)):
            self.sync_due()

    def _run_poll(self) -> None:
        next_poll = time.monotonic() + self.poll_seconds
        while not self._stop.wait(min(STEP_SECONDS, self.poll_seconds)):
            try:
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self.poll_seconds
                    self.poll_once()
                self.dispatch()
                self.sync_due()
            except Exception:
                log.exception("knowledge watcher: poll failed; trying again")

    def _run_events(self) -> None:
        from watchfiles import watch

        while not self._stop.is_set():
            roots = self._roots()
            if not roots:
                if self._stop.wait(self.poll_seconds):
                    return
                self._sync_departments()
                self.dispatch()
                self.sync_due()
                continue
            for changes in watch(
                *roots,
                stop_event=self._stop,
                debounce=int(STEP_SECONDS * 1000),  # our own quiet window follows
                step=50,
                rust_timeout=int(STEP_SECONDS * 1000),
                yield_on_timeout=True,
                ignore_permission_denied=True,
                raise_interrupt=False,
            ):
                for _, path in changes:
                    owner = self._owner(path)
                    if owner is not None:
                        self.mark(owner)
                moved = self._sync_departments()
                self.dispatch()
                self.sync_due()
                if moved or self._roots() != roots:
                    break  # watch the new set of folders (one was re-pointed or created)

    def _roots(self) -> list[str]:
        roots = [str(d.knowledge) for d in self._known.values() if Path(d.knowledge).is_dir()]
        if self._config_root is not None and self._config_root.is_dir():
            roots.append(str(self._config_root))
        return sorted(set(roots))

    def _owner(self, path: str) -> str | None:
        """The department whose folder holds ``path`` (the deepest), or CONFIG."""
        best, depth = None, -1
        candidates = [(n, str(d.knowledge)) for n, d in self._known.items()]
        if self._config_root is not None:
            candidates.append((CONFIG, str(self._config_root)))
        for name, root in candidates:
            if (path == root or path.startswith(root.rstrip(os.sep) + os.sep)) and len(root) > depth:
                best, depth = name, len(root)
        return best

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
