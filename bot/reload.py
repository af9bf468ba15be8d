"""Configuration reload while serving: edits to ``departments/*.yaml`` and ``groups.yaml``
reach the running assistant without a restart, and an invalid edit never widens access.

Why: "A person removed from ``finance-admins`` in groups.yaml still read payroll through the
running server." A server that reads its configuration once keeps every grant an admin has
since taken away; one that simply refuses an invalid edit keeps them too.

``ConfigWatcher.poll()`` stats the files (names, sizes, ``mtime_ns``, inodes — no reads) and,
when something changed, loads everything with ``check_company``:

* valid → ``assistant.reconfigure(new)`` and a "config-reloaded" notice;
* invalid → the assistant keeps serving the NARROWER of the old configuration (the last
  valid one) and the new files, and the admins get one "config-invalid" notice per problem
  (``file:line: field: problem``) — or one "department-paused" / "groups-paused" notice
  when a file cannot be read at all — each saying what is served meanwhile. While invalid,
  every poll re-checks, so fixing the mistake (or creating a missing folder) applies the
  new configuration.

Narrowing rules (``narrowed(old, root)``), applied only while the configuration is invalid:

* **groups** — when the new ``groups.yaml`` parses strictly as a mapping (a missing or
  empty file is an empty mapping), each group is narrowed on its own: its members become
  old ∩ new (members compared lower-cased; a group missing from the new file is empty;
  names that collide after lower-casing keep only who is in every one of them), and a
  group whose new value is not a list of strings nor a valid directory source is EMPTY
  until fixed — one bad value never keeps the others' removals from applying (review
  s21 #2: carol, removed from finance-admins, kept payroll because another line lacked
  its list dash). Groups that exist only in the new file are not added. A group's value
  may also be a directory source (``{entra: ID}``, see README "Directory groups"). An old
  sourced group keeps its source only when the new file names exactly the same source for
  it; otherwise it is empty. A literal group that became a source in the new file is
  empty too.
  When the file cannot be read as a mapping at all (syntax error, duplicate key, alias,
  too large, a list, …), group grants PAUSE: every group is empty (sources too) and a
  "groups-paused" notice says so. Why not keep the old groups: the edit may remove
  people, and what it removes cannot be read, so keeping any old member could serve a
  revoked grant — exactly what this module exists to prevent. Grants that name people
  or domains directly (``*@example.com``) are unaffected, and fixing the file applies it
  at the next poll.
* **departments** — only departments of the old configuration exist (new ones are not added
  while invalid); for each, its file in the departments folder:

  - deleted → the department is removed;
  - does not parse as a YAML mapping (syntax error, alias, duplicate key, too large, empty,
    a list, …) → PAUSED: ``ask``, ``admins`` and every template's ``allowed`` emptied, so
    nobody may ask, run or administer it; a "department-paused" notice names file and line;
  - parses as a mapping (valid on its own or not) → the old department, with each access
    list reduced to the entries that appear, normalised, in the corresponding new raw list
    (string intersection: ``ask``, ``admins``, ``templates.X.allowed``; a list that is
    missing, not a list, or a template missing from the new file counts as empty; an absent
    ``allowed`` counts as its default ``["*"]``); ``classification`` = max(old, new) when
    the new value is readable (absent = the default, internal); ``route`` = "private" when
    either says private; ``admins_see_questions`` = old AND new (absent or unreadable =
    off); ``sensitive_keywords`` = old ∪ the new list's strings (more keywords label more
    questions sensitive). Everything else (title, knowledge folder, channels, prompts, …)
    stays as it was. An unchanged file therefore keeps its department exactly.
  - ``channels.audience.C`` is the one list that narrows by growing: it declares who can
    read channel C, and every declared reader must be allowed to see an answer before it is
    posted there, so fewer declared readers would let more through (an empty declaration
    admits everything). It becomes old ∪ new entries when the new file declares C, else old;
    channels the old configuration did not declare are not added.

Groups synced from the company directory (``bot.directory.sync``) are not in the files:
when a sync is given (``directory=``), every configuration is applied through it, so its
current members are laid over the sourced groups and a reload never drops or resurrects
them (and a new or changed source is fetched soon after).

The watcher runs in a daemon thread started by ``deptbot serve`` (``start_config_watcher``);
tests call ``poll()`` directly. ``on_applied`` hears every configuration applied (the
operations scheduler, ``bot.ops``, adds, moves and removes ``refresh:`` jobs from it); when
it fails, every later poll calls it again with the configuration served until it succeeds
(the file signature has already moved on, so "next time" must be remembered), and the
admins are told once when it fails and once when it caught up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from apscheduler.schedulers.background import BackgroundScheduler

from bot.config import (
    BadGroupRef,
    Company,
    Department,
    GroupRef,
    access_lists,
    check_company,
    describe,
    knowledge_roots,
    normalize_entry,
    parse_group_ref,
    read_yaml,
)
from bot.config.access import check_pilot_entry
from bot.core.ports import AdminNotices
from bot.core.types import Classification
from bot.errors import ConfigError
from bot.settings import Settings

log = logging.getLogger(__name__)

Signature = dict[str, tuple[int, int, int]]  # file name → (size, mtime_ns, inode)


class Reconfigurable(Protocol):
    """What the watcher needs from the Assistant."""

    @property
    def company(self) -> Company: ...

    def reconfigure(self, company: Company) -> None: ...


class GroupSync(Protocol):
    """What the watcher needs from the directory sync (``bot.directory.sync``)."""

    def swap(self, assistant: Reconfigurable, company: Company) -> bool:
        """Serve ``company`` with the synced members laid over its sourced groups; True
        when that differs from what the assistant served."""
        ...


# ── narrowing (pure; no threads) ─────────────────────────────────────────────────────


@dataclass
class _Narrowed:
    company: Company
    problems: list[ConfigError]
    paused: dict[str, ConfigError] = field(default_factory=dict)  # department → why
    groups_paused: ConfigError | None = None  # groups.yaml unreadable: every group empty
    emptied_groups: tuple[str, ...] = ()  # old groups whose new value cannot be read


@dataclass(frozen=True)
class _Groups:
    groups: Mapping[str, frozenset[str]]
    sources: Mapping[str, GroupRef]
    paused: ConfigError | None = None
    emptied: tuple[str, ...] = ()


def narrowed(
    old: Company, root: Path, *, allowed_roots: Sequence[Path] = ()
) -> tuple[Company, list[ConfigError]]:
    """The configuration to serve after the files under ``root`` changed.

    ``(new company, [])`` when the files are valid; otherwise ``(old narrowed by the new
    files, every problem)`` — see the module docstring for the rules.
    """
    result = _narrow(old, Path(root), tuple(allowed_roots))
    return result.company, result.problems


def _narrow(old: Company, root: Path, allowed_roots: tuple[Path, ...]) -> _Narrowed:
    company, problems = check_company(root, allowed_roots=allowed_roots)
    if company is not None:
        return _Narrowed(company, [])
    departments: dict[str, Department] = {}
    paused: dict[str, ConfigError] = {}
    for name, dept in old.departments.items():
        path = root / (dept.source_file.name if dept.source_file else f"{name}.yaml")
        if not path.exists():
            continue  # deleted: the department is removed
        try:
            data, _ = read_yaml(path)
            if not isinstance(data, dict):
                raise ConfigError("must be a mapping of field: value", file=path, line=1)
        except ConfigError as exc:
            departments[name], paused[name] = _paused(dept), exc
            continue
        departments[name] = _narrow_department(dept, data)
    groups = _narrow_groups(old, root / "groups.yaml")
    company = Company(departments=departments, groups=groups.groups, root=old.root, sources=groups.sources)
    return _Narrowed(company, problems, paused, groups.paused, groups.emptied)


def _source_of(value: Any) -> GroupRef | None:
    if not isinstance(value, dict):
        return None
    with contextlib.suppress(BadGroupRef):
        return parse_group_ref(value)
    return None


def _narrow_groups(old: Company, path: Path) -> _Groups:
    data: Any = {}
    if path.exists():
        try:
            data, _ = read_yaml(path)
        except ConfigError as exc:
            return _groups_paused(old, exc)
    data = {} if data is None else data
    if not isinstance(data, dict):
        why = ConfigError("must map group names to lists of e-mails or sources", file=path, line=1)
        return _groups_paused(old, why)
    new: dict[str, frozenset[str]] = {}
    new_sources: dict[str, GroupRef | None] = {}
    unreadable: set[str] = set()
    for name, value in data.items():
        key = str(name).lower()
        ref = _source_of(value)
        if ref is not None:  # names colliding after lower-casing keep a source only when they all agree
            new_sources[key] = ref if new_sources.get(key, ref) == ref else None
            continue
        emails: frozenset[str] = frozenset()
        if isinstance(value, list) and all(isinstance(m, str) for m in value):
            emails = frozenset(m.strip().lower() for m in value)
        else:  # not a list of e-mails nor one valid source: this group only is empty
            unreadable.add(key)
        new[key] = new[key] & emails if key in new else emails
    sources = {g: ref for g, ref in old.sources.items() if new_sources.get(g) == ref and g not in new}
    groups = {
        group: (members if group in sources else members & new.get(group, frozenset()))
        for group, members in old.groups.items()
    }
    for group in old.sources.keys() - sources.keys():
        groups[group] = frozenset()
    return _Groups(groups, sources, emptied=tuple(sorted(unreadable & old.groups.keys())))


def _groups_paused(old: Company, why: ConfigError) -> _Groups:
    """groups.yaml cannot be read as a mapping: what the edit removed is unknown, so no
    old member may keep a group grant (see the module docstring)."""
    return _Groups({group: frozenset() for group in old.groups}, {}, paused=why)


def _paused(dept: Department) -> Department:
    templates = {n: t.model_copy(update={"allowed": []}) for n, t in dept.templates.items()}
    return dept.model_copy(update={"ask": [], "admins": [], "templates": templates})


def _narrow_department(dept: Department, data: Mapping[str, Any]) -> Department:
    lists = access_lists(data)

    def keep(old: list[str], loc: tuple[str | int, ...]) -> list[str]:
        new = set(lists.get(loc, ()))
        return [e for e in old if e in new]

    templates = {
        n: t.model_copy(update={"allowed": keep(t.allowed, ("templates", n, "allowed"))})
        for n, t in dept.templates.items()
    }
    audience: dict[str, list[str]] = {}
    for chan, readers in dept.channels.audience.items():
        more = lists.get(("channels", "audience", chan), [])
        audience[chan] = [*readers, *(e for e in dict.fromkeys(more) if e not in readers)]
    classification = dept.classification
    with contextlib.suppress(KeyError):  # an unreadable label keeps the old one
        classification = max(
            classification, Classification.parse(str(data.get("classification", "internal")))
        )
    route = "private" if normalize_entry(str(data.get("route", ""))) == "private" else dept.route
    strictness = {"redact": 0, "route_private": 1, "block": 2}  # pii: how little reaches a cloud model
    pii = str(data.get("pii", dept.pii))
    pii = pii if strictness.get(pii, -1) > strictness[dept.pii] else dept.pii
    return dept.model_copy(
        update={
            "enabled": dept.enabled and data.get("enabled", True) is True,
            # question text for admins only while both files allow it (absent = the default, off)
            "admins_see_questions": dept.admins_see_questions and data.get("admins_see_questions") is True,
            "sensitive_keywords": _more_keywords(dept.sensitive_keywords, data.get("sensitive_keywords")),
            "pilot": _narrowed_pilot(dept.pilot, data),
            "ask": keep(dept.ask, ("ask",)),
            "admins": keep(dept.admins, ("admins",)),
            "templates": templates,
            "channels": dept.channels.model_copy(update={"audience": audience}),
            "classification": classification,
            "route": route,
            "pii": pii,
        }
    )


def _more_keywords(old: list[str], raw: Any) -> list[str]:
    """Old keywords plus the new list's non-blank strings: a keyword added in an invalid
    file labels its questions sensitive at once; one removed stays until the file loads."""
    new = [k for k in raw if isinstance(k, str) and k.strip()] if isinstance(raw, list) else []
    return [*old, *(k for k in dict.fromkeys(new) if k not in old)]


def _narrowed_pilot(old: list[str] | None, data: Mapping[str, Any]) -> list[str] | None:
    """A pilot only ever shrinks from an invalid file: a new or changed ``pilot`` keeps the
    entries both lists name (a pilot added where there was none applies as written), its
    unreadable items admit nobody, and a missing key keeps the old pilot."""
    if "pilot" not in data:
        return old
    raw = data.get("pilot")
    new: list[str] = []
    for item in raw if isinstance(raw, list) else []:
        with contextlib.suppress(ValueError, ConfigError):
            if isinstance(item, str):
                new.append(check_pilot_entry(item))
    return new if old is None else [e for e in old if e in new]


# ── the watcher ──────────────────────────────────────────────────────────────────────


def signature(root: Path) -> Signature:
    """Cheap change detection: one ``stat`` per ``*.yaml``/``*.yml`` file, no reads."""
    found: Signature = {}
    try:
        entries = list(os.scandir(root))
    except OSError:
        return found
    for entry in entries:
        if entry.name.endswith((".yaml", ".yml")):
            try:
                st = entry.stat()
            except OSError:
                continue
            found[entry.name] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return found


def _changes(before: Signature, after: Signature) -> list[str]:
    out = [f"{n} added" for n in sorted(after.keys() - before.keys())]
    out += [f"{n} removed" for n in sorted(before.keys() - after.keys())]
    out += [f"{n} changed" for n in sorted(before.keys() & after.keys()) if before[n] != after[n]]
    return out


class ConfigWatcher:
    """Polls the departments folder and applies changes to a running assistant."""

    def __init__(
        self,
        *,
        assistant: Reconfigurable,
        root: Path,
        notices: AdminNotices,
        allowed_roots: Sequence[Path] = (),
        interval: float = 2.0,
        directory: GroupSync | None = None,
        on_applied: Callable[[Company], None] | None = None,
    ) -> None:
        self._assistant = assistant
        self._on_applied = on_applied  # e.g. the operations scheduler re-reads ``refresh:``
        self._directory = directory
        self._root = Path(root)
        self._notices = notices
        self._allowed_roots = tuple(allowed_roots)
        self.interval = interval
        self._valid = assistant.company  # the last valid configuration: narrowing starts here
        self._signature = signature(self._root)
        self._invalid = False
        self._schedules_owed = False  # on_applied failed: call it again at every poll
        self._owed_polls = 0  # polls since the failure was first logged (one reminder an hour)
        self._first = True  # the first poll checks even without a change: the files may have
        # changed between loading the assistant's configuration and starting the watcher
        self._lock = threading.Lock()
        self._scheduler: BackgroundScheduler | None = None

    def poll(self) -> bool:
        """Check the files once; True when a different configuration was applied."""
        with self._lock:
            now = signature(self._root)
            if now == self._signature and not (self._invalid or self._first):
                if self._schedules_owed:
                    self._apply_schedules()
                return False
            changes = _changes(self._signature, now)
            result = _narrow(self._valid, self._root, self._allowed_roots)
            if self._directory is not None:  # synced members laid over the sourced groups
                applied = self._directory.swap(self._assistant, result.company)
            else:
                applied = result.company != self._assistant.company
                if applied:
                    self._assistant.reconfigure(result.company)
            was_invalid, self._invalid = self._invalid, bool(result.problems)
            self._signature, self._first = now, False
            if not result.problems:
                self._valid = result.company
            try:
                self._tell(result, changes, applied or was_invalid)
            except Exception:  # a notices failure must not undo or repeat the reload
                log.exception("could not record configuration notices")
            if applied or self._schedules_owed:
                self._apply_schedules()
            return applied

    def _apply_schedules(self) -> None:
        """``on_applied`` with the configuration served. A failure does not undo the reload;
        it is owed, and every later poll tries again (the signature has moved on, so without
        this the schedules would wait for the next unrelated edit — review s21 #9)."""
        if self._on_applied is None:
            return
        owed = self._schedules_owed
        try:
            self._on_applied(self._assistant.company)
        except Exception:
            self._schedules_owed = True
            if owed:  # told already: one reminder line an hour, not one per poll
                self._owed_polls += 1
                if self._owed_polls % max(1, int(3600 / max(self.interval, 1.0))) == 0:
                    log.warning("still could not apply the configuration's schedules; retrying")
                return
            self._owed_polls = 0
            log.exception("could not apply the new configuration's schedules; retrying at every poll")
            self._notify(
                None,
                "config-schedules-failed",
                "the new configuration is served, but its scheduled jobs (refresh:) could not be "
                "updated; deptbot retries at every configuration check (details in the server log)",
            )
            return
        self._schedules_owed = False
        if owed:
            log.info("the configuration's schedules are applied")
            self._notify(
                None,
                "config-schedules-applied",
                "the scheduled jobs (refresh:) now match the configuration served",
            )

    def _notify(self, department: str | None, kind: str, text: str) -> None:
        try:
            self._notices.notify(department, kind, text)
        except Exception:  # a notices failure must not undo or repeat the reload
            log.exception("could not record configuration notices")

    def _tell(self, result: _Narrowed, changes: list[str], reloaded: bool) -> None:
        if not result.problems:
            if reloaded:
                what = f": {', '.join(changes)}" if changes else ""
                self._notices.notify(None, "config-reloaded", f"configuration reloaded{what}")
            return
        if result.groups_paused is not None:
            self._notices.notify(
                None,
                "groups-paused",
                f"{describe(result.groups_paused, self._root.parent)} — groups.yaml cannot be read, so "
                "every group is empty until it is fixed: nobody gets access through a group:NAME entry "
                "(what the edit removes cannot be read, so no old member keeps a group grant)",
            )
        for name, why in result.paused.items():
            self._notices.notify(
                name,
                "department-paused",
                f"{describe(why, self._root.parent)} — {name} is paused: nobody may ask it, run its "
                "templates or administer it until the file is fixed",
            )
        for problem in result.problems:
            if any(_same(problem, why) for why in result.paused.values()):  # told above
                continue
            if result.groups_paused is not None and _is_groups_file(problem):  # told above
                continue
            self._notices.notify(
                self._department_of(problem),
                "config-invalid",
                f"{describe(problem, self._root.parent)} — not applied as written: until it is fixed, "
                "only access that both the old and the new files give is served (access the edit "
                "removes is removed now; what it adds, and its other changes, wait)",
            )
        if result.emptied_groups:
            names = ", ".join(result.emptied_groups)
            verb = "is" if len(result.emptied_groups) == 1 else "are"
            self._notices.notify(
                None,
                "config-invalid",
                f"groups.yaml: {names} {verb} empty until the file is fixed (the new value is not a "
                "list of e-mail addresses or one directory source)",
            )

    def _department_of(self, err: ConfigError) -> str | None:
        if not err.file or Path(err.file).name == "groups.yaml":
            return None
        name = Path(err.file).stem.lower()
        return name if name in self._valid.departments else None

    # ── the schedule ──

    def start(self) -> ConfigWatcher:
        """Poll every ``interval`` seconds on an apscheduler interval job (none when 0);
        a slow poll is never run twice at once, and missed ticks coalesce into one."""
        if self.interval > 0 and self._scheduler is None:
            scheduler = BackgroundScheduler(daemon=True)
            scheduler.add_job(
                self._tick,
                "interval",
                seconds=self.interval,
                max_instances=1,
                coalesce=True,
                id="deptbot-config-watcher",
            )
            scheduler.start()
            self._scheduler = scheduler
        return self

    def _tick(self) -> None:
        try:
            self.poll()
        except Exception:  # keep serving what was applied last; try again next tick
            log.exception("configuration reload failed; keeping the current configuration")

    @property
    def running(self) -> bool:
        return self._scheduler is not None and bool(self._scheduler.running)

    def stop(self, timeout: float = 5.0) -> None:
        if self._scheduler is not None:
            if self._scheduler.running:
                self._scheduler.shutdown(wait=True)
            self._scheduler = None


def _is_groups_file(err: ConfigError) -> bool:
    return bool(err.file) and Path(err.file or "").name == "groups.yaml"


def _same(a: ConfigError, b: ConfigError) -> bool:
    return (a.file, a.line, a.field, a.problem) == (b.file, b.line, b.field, b.problem)


def start_config_watcher(
    assistant: Reconfigurable,
    settings: Settings,
    notices: AdminNotices,
    *,
    directory: GroupSync | None = None,
    on_applied: Callable[[Company], None] | None = None,
) -> ConfigWatcher:
    """Start watching ``settings.departments_dir`` every ``config.reload_seconds``; the
    returned handle's ``stop()`` ends the thread."""
    seconds = settings.values.config.reload_seconds
    watcher = ConfigWatcher(
        assistant=assistant,
        root=settings.departments_dir,
        notices=notices,
        allowed_roots=knowledge_roots(settings),
        interval=float(seconds),
        directory=directory,
        on_applied=on_applied,
    )
    return watcher.start()
