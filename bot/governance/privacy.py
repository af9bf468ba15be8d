"""Privacy requests: everything stored about one person (export), and making it go away
(erase), for ``deptbot privacy`` and the self-service chat commands.

Where a person's data lives, and what erase does with it:

- ``audit.db``: request rows (``user`` = e-mail) stay, because the audit chain must keep
  verifying; the e-mail is replaced in place by the chain's stable pseudonym
  (``SqliteAuditLog.pseudonymize``). Their questions (``request_text``) are deleted, and
  feedback comments blanked (the 👍/👎 stays, under the pseudonym);
- ``keys.db``: the person's data key is destroyed (crypto-shredding), so any sealed copy
  anywhere — a row missed, a backup — is noise;
- ``cache.db``: entries their questions created are deleted (``delete_for_requests``);
- ``teams-state.sqlite3``: their Teams history, references, reply cards and person links
  are deleted and their Teams subject shredded (``TeamsStore.erase``). Their Teams user ids
  are found directly from the e-mail (``teams_people``), and also through the history
  rows answering their requests (``users_of``);
- ``usage.db``: rows keep their numbers (budgets, cost reports) under the pseudonym;
- ``notices.sqlite3``: admin notices naming the e-mail are deleted;
- ``admin-sessions.sqlite3`` (the admin console): its audit trail of links issued,
  sign-ins and refreshes keeps its rows under the pseudonym, like the audit log; the
  person's sessions (they are signed out) and sign-in links, used or not, are deleted.

Every database involved deletes with ``secure_delete`` and is checkpointed with
``wal_checkpoint(TRUNCATE)`` afterwards, so no old page or WAL frame keeps the text. The
erase itself is recorded in the audit log under the pseudonym (never the e-mail).

With ``DEPTBOT_DATABASE_URL`` the shared stores are PostgreSQL tables instead of files:
the audit log (requests, request_text, feedback), usage (attempts, reservations), the
answer cache, admin notices, the admin console (events, sessions, links), the Teams
state and the data keys; the same rules apply to them (``SHARED``), and what is still
local (a console or Teams state file left from before the switch) is covered as before.
Instead of a WAL checkpoint the touched tables are vacuumed, so old row versions naming
the person are pruned; PostgreSQL's WAL and backups keep them until they expire
(the sealed text in them stays noise: its key is shredded).

SQLite files ``deptbot db copy`` copied (moved to ``copied-to-postgresql/<time>/`` in the
state folder, or still in the folder itself after an older copy) hold the same personal
text and a live copy of every data key; an erase on PostgreSQL erases them the SQLite way
as well (``_erase_copies``), so a copy kept for rollback never outlives a privacy request,
and an export reads them. A folder is such a copy when it holds any file ``db copy``
moves (``pg_copy.MOVED``: a copy left with only ``usage.db`` still names the person).
Each replica has its own state folder, so ``db copy`` records its folder in PostgreSQL
(``bot.store.pg_copy``): a recorded copy this process cannot reach (made from another
state folder, or its folder missing here) is named in the receipt, the export and an
admin notice, while everything else is still erased. A copy whose own erase did not
complete (its WAL could not be truncated, a file could not be changed, one of its files
is not a readable database: then it is left untouched) is listed in the receipt's
``failures``, the admins get a notice naming its folder, and the CLI exits 1: nothing ever
opens a copy again, so what is left in it stays until someone looks. A copy another
program holds open (a sqlite3 shell, a backup tool: SQLite says busy or locked) is not
called broken: the line says it is in use, to close that program and run the erase again. A recorded copy not
reached makes the CLI exit 4 ("incomplete"). Chat never sees a server path or host name:
the admin notices carry them, never the person.

An erase ends with a second pass over requests recorded while it ran (a question asked
mid-erase, after the pseudonymization or the Teams shred): their rows, text, cached
answers and Teams turns go too, and the data key is shredded again. The same pass is what
lets an erase killed midway (after the pseudonymization, before the key is destroyed) be
finished by running it again: the person's rows are found under the pseudonym as well,
nothing treats them as already erased (``tests/governance/test_privacy_interrupted_erase``).
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.core.ports import AuditEntry
from bot.errors import StoreError, UsageError
from bot.governance.vault import (
    Tampered,
    TextErased,
    Vault,
    checkpoint,
    secure,
    subject_of,
    vault_for,
)
from bot.store.admin_sessions import AdminSessionStore
from bot.store.audit import ChainedAudit
from bot.store.cache import SealedAnswerCache, open_answer_cache
from bot.store.db import connect
from bot.store.notices import SqliteNotices
from bot.store.teams_state import TeamsState, TeamsStore, open_teams_state

if TYPE_CHECKING:
    from bot.store.backend import Database
    from bot.store.pg_copy import StateCopy

log = logging.getLogger(__name__)
EXPORT_FORMAT = "deptbot-privacy-export/1"

# The stores that move to PostgreSQL with DEPTBOT_DATABASE_URL: name → SQLite file.
SHARED = {
    "audit": "audit.db",
    "usage": "usage.db",
    "notices": SqliteNotices.FILE,
    "console": AdminSessionStore.FILE,
}
# Tables whose old row versions can name the person, vacuumed after an erase on PostgreSQL.
VACUUMED = (
    *("requests", "request_text", "feedback", "attempts", "reservations", "notices", "answers"),
    *("events", "sessions", "links"),  # the admin console
)


@dataclass(frozen=True)
class Receipt:
    """What an erase did; printed by the CLI and posted in chat. Holds no e-mail."""

    pseudonym: str
    time: datetime
    removed: dict[str, int]
    key_shredded: bool
    files_checkpointed: bool
    request_id: str  # of the audit row recording the erase
    notes: tuple[str, ...] = ()  # what this erase could not reach, said plainly
    failures: tuple[str, ...] = ()  # what it tried and could not finish: the erase is not complete
    missed: int = 0  # recorded copies it could not reach (in ``notes``): data known to remain

    @property
    def complete(self) -> bool:
        """False when part of the erase failed (``failures``): the CLI exits non-zero."""
        return not self.failures

    @property
    def reached_everything(self) -> bool:
        """False when a recorded copy elsewhere still holds the person's data (``missed``):
        the CLI exits with its "incomplete" code, so ``erase && close-ticket`` stops."""
        return not self.missed

    def lines(self) -> list[str]:
        out = [
            f"Erased at {self.time.strftime('%Y-%m-%d %H:%M:%S UTC')} (audit request {self.request_id}).",
            f"Audit and usage rows now name {self.pseudonym} instead of the e-mail.",
            "Data key destroyed: "
            + ("yes" if self.key_shredded else "there was none (no encrypted text)")
            + ".",
        ]
        out += [f"  {what.replace('_', ' ')}: {n}" for what, n in self.removed.items()]
        if not self.files_checkpointed:
            out.append("Note: a database was busy; deleted pages leave its WAL at the next checkpoint.")
        out += [f"Note: {note}" for note in self.notes]
        out += [f"FAILED: {failure}" for failure in self.failures]
        return out


@dataclass
class Export:
    data: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what was not read, said plainly

    @property
    def complete(self) -> bool:
        """False when a copy was not read (``notes``): the CLI exits "incomplete"."""
        return not self.notes

    def summary(self) -> list[str]:
        person = self.data["person"]
        parts = [f"{n} {what.replace('_', ' ')}" for what, n in self.counts.items() if n]
        out = [f"Stored about {person}: " + (", ".join(parts) if parts else "nothing") + "."]
        return out + [f"Note: {note}" for note in self.notes]

    def to_json(self) -> str:
        return json.dumps(self.data, indent=2, ensure_ascii=False, default=str)


class Privacy:
    """Export and erase over the stores of one state folder."""

    def __init__(
        self,
        *,
        state_dir: Path,
        vault: Vault,
        audit: ChainedAudit,
        cache: SealedAnswerCache | None = None,
        teams: TeamsStore | None = None,
        db: Database | None = None,
        more_teams: Sequence[TeamsStore] = (),
    ) -> None:
        """``db``: the PostgreSQL database holding the ``SHARED`` stores (None: SQLite files);
        ``more_teams``: a Teams state file left in the folder after the switch to PostgreSQL."""
        self.state_dir = Path(state_dir)
        self.vault = vault
        self.audit = audit
        self.cache = cache
        self.teams = teams
        self.db = db
        self.teams_all = [t for t in (teams, *more_teams) if t is not None]
        # A copy left without its audit.db (``_for_folder``): the installation whose request
        # ids name the person's rows in it (its Teams turns, cached answers).
        self._ids_from: Privacy | None = None
        self._own_keys = True  # False: a copy without keys.db reads with the live vault, never shreds it
        self._only: tuple[str, ...] | None = None  # a copy: its files (``pg_copy.MOVED``), nothing else
        # files whose WAL ``_checkpoint_all`` could not truncate → True when another program
        # held them (busy), False for any other error: a copy's FAILED line says which
        self._unflushed: dict[str, bool] = {}
        # ``[cache] backend = "memory"`` (SQLite only): seconds its entries live in a serving
        # process, which an erase from another process cannot empty; None: no such cache.
        self.memory_cache_ttl: float | None = None

    @classmethod
    def for_settings(cls, settings: Any, *, audit: ChainedAudit | None = None) -> Privacy:
        """The stores of ``settings`` (those that exist; nothing is created but the audit
        and key databases): with ``DEPTBOT_DATABASE_URL`` the shared ones in PostgreSQL
        (``SHARED``), the rest in the state folder."""
        from bot.store.backend import database_for

        state = Path(settings.state_dir)
        db = database_for(settings)
        vault = vault_for(settings)
        if audit is None:
            from bot.wiring import open_audit_log  # the chain key comes from the settings

            audit = open_audit_log(settings)
        cache = open_answer_cache(settings, only_existing=True)
        teams = open_teams_state(settings, only_existing=True)
        left = state / TeamsState.FILE  # from before DEPTBOT_DATABASE_URL: still covered
        more = [TeamsState(path=left, vault=vault)] if db is not None and left.exists() else []
        privacy = cls(
            state_dir=state, vault=vault, audit=audit, cache=cache, teams=teams, db=db, more_teams=more
        )
        c = settings.values.cache
        if c.enabled and c.backend == "memory":
            privacy.memory_cache_ttl = float(c.ttl_seconds)
        return privacy

    # ── export ───────────────────────────────────────────────────────────────────────

    def export(
        self, email: str, *, record: bool = True, platform: str = "cli", notices: bool = True
    ) -> Export:
        """Everything stored about ``email``. ``notices=False`` leaves out admin notices
        naming the person (the chat self-service: a notice may name restricted files and
        is for the department's admins; an export an admin runs includes them).

        All or nothing: only a single row that genuinely cannot be opened (its key erased,
        or it fails its integrity check) is listed as unreadable; a store that cannot be
        read (the database is down, a master key is missing) fails the whole export with
        a StoreError, because an export with gaps would look complete. A SQLite copy left by
        ``db copy`` that is not reachable here, or does not open, is a note instead (the
        live stores are whole; the CLI exits 4, "incomplete"): a broken rollback copy must
        not stop every export until someone deletes it."""
        person = _email(email)
        try:
            return self._export(person, record=record, platform=platform, notices=notices)
        except StoreError as exc:
            # the operator's CLI names the cause; chat never shows a database address
            why = exc.user_message if platform == "cli" else "stored data could not be read right now."
            raise StoreError(
                f"The privacy export was not made: {why} Nothing was exported (an export "
                "missing a store would look complete); try again once it is readable."
            ) from exc

    def _export(self, person: str, *, record: bool, platform: str, notices: bool) -> Export:
        requests, feedback = self._audit_rows(person)
        ids = [r["request_id"] for r in requests] if self._present("audit") else self._request_ids(person)
        usage = self._usage_rows(person)
        cache = self.cache.entries_for_requests(ids) if self.cache else []
        teams: dict[str, Any] = {"history": [], "replies": [], "references": [], "accounts": []}
        for store in self.teams_all:
            for what, rows in store.export(store.users_of(person, ids), ids).items():
                teams[what] += [r for r in rows if r not in teams[what]]
        found = self._notices(person) if notices else []
        console = self._console_rows(person)
        copies, notes = self._export_copies(person, platform=platform, notices=notices)
        data: dict[str, Any] = {
            "format": EXPORT_FORMAT,
            "person": person,
            "exported": datetime.now(UTC).isoformat(),
            "questions": [
                {"request_id": r["request_id"], "time": r["time"], "question": r.pop("question")}
                for r in requests
                if r.get("question") is not None
            ],
            "audit_rows": requests,
            "feedback": feedback,
            "usage": usage,
            "cached_answers": cache,
            "conversations": teams,
            "notices": found,
            "admin_console": console,
        }
        if copies or notes:
            data["sqlite_copies"] = copies  # `db copy` moved these aside; read like the live stores
            data["not_read"] = notes
        counts = {
            "questions": len(data["questions"]),
            "audit_rows": len(requests),
            "feedback": len(feedback),
            "usage_rows": len(usage["attempts"]) + len(usage["reservations"]),
            "cached_answers": len(cache),
            "conversation_turns": len(teams["history"]),
            "reply_cards": len(teams["replies"]),
            "conversation_references": len(teams["references"]),
            "notices": len(found),
            "admin_console_events": len(console["events"]),
            "admin_console_sessions": len(console["sessions"]),
        }
        for copy in copies:
            for what, n in copy["counts"].items():
                counts[f"{what}_in_sqlite_copies"] = counts.get(f"{what}_in_sqlite_copies", 0) + n
        if record:
            self._record(person, "privacy:export", "exported", platform)
        return Export(data, counts, notes)

    # ── erase ────────────────────────────────────────────────────────────────────────

    def erase(self, email: str, *, platform: str = "cli", record: bool = True) -> Receipt:
        """``record``: write the audit row recording the erase (not for a SQLite copy kept
        after ``db copy``, whose chain nothing appends to any more).

        A failure is said to the operator's CLI as it is; in chat (where the text would
        show a server path or a database address) the person hears only that it did not
        finish, and the admins get a notice with the cause (never naming the person)."""
        person = _email(email)
        try:
            return self._erase(person, platform=platform, record=record)
        except StoreError as exc:
            if platform == "cli":
                raise
            log.error("privacy erase from %s did not finish (%s)", platform, type(exc).__name__)
            told = self._tell_admins(
                f"A privacy erase asked for in {platform} did not finish: "
                + re.sub(re.escape(person), "the person", exc.user_message, flags=re.IGNORECASE)
            )
            raise StoreError(
                "Your erase did not finish: stored data could not be changed right now. "
                + ("The admins have been told. " if told else "Please tell an admin. ")
                + "Send forget-me again later to get a new code."
            ) from exc

    def _erase(self, person: str, *, platform: str, record: bool) -> Receipt:
        if not self.audit.key_matches():  # checked first: a refused erase destroys nothing
            raise StoreError(
                "The audit key in use is not the one the audit rows were chained with (check "
                "DEPTBOT_AUDIT_KEY and the audit.key_file setting); nothing was erased."
            )
        broken = self._check_copies()  # likewise before anything is destroyed
        missed = self._unreachable_copies()  # said in the receipt: the rest is still erased
        ids = self._request_ids(person)
        removed: dict[str, int] = {"cached_answers": 0}
        self._erase_requests(person, ids, removed)
        removed["audit_rows_pseudonymized"] = self._pseudonymize_audit(person)
        alias = self.audit.pseudonym(person)
        removed["usage_rows_pseudonymized"] = self._pseudonymize_usage(person, alias)
        removed["notices"] = self._delete_notices(person)
        removed.update(self._erase_console(person, alias))
        # The key goes last: a question recorded while this erase runs is sealed under the
        # key about to be destroyed. Shredding first would let it make a fresh key, and its
        # text would stay readable after a receipt saying it was erased.
        failures, for_admins = self._erase_copies(person, platform, removed, broken)
        shredded = self.vault.shred(person) if self._own_keys else False
        # Second pass: requests recorded since this erase began (under the e-mail after the
        # pseudonymization, or under the pseudonym before it, with their text, cached answer
        # and Teams turns still there); their key, made afresh or not, goes again.
        late = sorted(set(self._request_ids(person, alias)) - set(ids))
        if late:
            self._erase_requests(person, late, removed)
            removed["audit_rows_pseudonymized"] += self._pseudonymize_audit(person)
            removed["usage_rows_pseudonymized"] += self._pseudonymize_usage(person, alias)
            shredded = (self._own_keys and self.vault.shred(person)) or shredded
        clean = self._checkpoint_all() and all(t.erase_checkpointed for t in self.teams_all)
        rid = self._record(alias, "privacy:erase", "erased", platform) if record else ""
        clean = self._checkpoint_all() and clean
        notes = self._say_unreachable(missed, rid, platform)
        for text in for_admins:  # each failed copy: its path for the admins, never the person
            self._tell_admins(f"A privacy erase (audit request {rid or 'not recorded'}) {text}")
        if self.memory_cache_ttl is not None and platform == "cli":  # chat empties its own
            notes.append(
                'a running deptbot with [cache] backend = "memory" may still hold answers to their '
                f"questions for up to {_duration(self.memory_cache_ttl)} (cache.ttl_seconds); restart "
                "it to empty that cache now."
            )
        return Receipt(
            alias,
            datetime.now(UTC),
            removed,
            shredded,
            clean,
            rid,
            tuple(notes),
            tuple(failures),
            len(missed),
        )

    def _erase_requests(self, person: str, ids: Sequence[str], removed: dict[str, int]) -> None:
        """What these requests of ``person`` left: cached answers, Teams turns, reply cards
        and references (their Teams subjects shredded), questions, feedback comments;
        counts added to ``removed``."""
        removed["cached_answers"] += self.cache.delete_for_requests(ids) if self.cache else 0
        for store in self.teams_all:
            for what, n in store.erase(store.users_of(person, ids), ids, email=person).items():
                removed[f"teams_{what}"] = removed.get(f"teams_{what}", 0) + n
        if not self._present("audit"):  # a copy left without its audit.db
            return
        with self._shared("audit") as conn:
            removed["questions"] = removed.get("questions", 0) + _delete_in(
                conn, "request_text", "request_id", ids
            )
            removed["feedback_comments"] = (
                removed.get("feedback_comments", 0)
                + conn.execute(
                    'update feedback set reason = ? where lower("user") = ? and reason is not null '
                    "and reason != ?",
                    [self._blank, person, self._blank],
                ).rowcount
            )

    # ── SQLite files left by `deptbot db copy` ─────────────────────────────────────────

    def _sqlite_copies(self) -> list[Path]:
        """On PostgreSQL: folders holding any file ``db copy`` moves (``pg_copy.MOVED``, the
        one list): the state folder itself (a copy made before ``db copy`` moved its files
        out), each folder at any depth under ``copied-to-postgresql`` (an admin may tidy
        copies into a subfolder), and a recorded copy of this state folder kept elsewhere."""
        if self.db is None:
            return []
        from bot.store.pg_copy import MOVED, copy_folders

        def holds(folder: Path, *, but: tuple[str, ...] = ()) -> bool:
            return any((folder / f).is_file() for f in MOVED if f not in but)

        # the live folder's own Teams state file is covered as it is (``more_teams``)
        found = [self.state_dir] if holds(self.state_dir, but=(TeamsState.FILE,)) else []
        found += copy_folders(self.state_dir)
        mine = self._state_id()
        for copy in self._recorded_copies():  # recorded by a `db copy` from this state folder, elsewhere
            folder = Path(copy.path)
            known = any(folder.resolve() == f.resolve() for f in found)
            if copy.here(mine) and not known and folder.is_dir() and holds(folder):
                found.append(folder)
        return found

    def _state_id(self) -> str | None:
        from bot.store.pg_copy import read_state_id

        return read_state_id(self.state_dir)

    def _recorded_copies(self) -> list[StateCopy]:
        """The copies ``db copy`` recorded in PostgreSQL, from every replica's state folder."""
        if self.db is None:
            return []
        from bot.store.pg_copy import recorded_copies

        return recorded_copies(self.db)

    def _unreachable_copies(self) -> list[StateCopy]:
        """Recorded copies this process cannot erase: made from another state folder, or
        their folder is not there (deleted, or a volume not mounted here: which one, only a
        look can tell). A copy of this state folder whose recorded path is missing but
        whose folder is under this ``copied-to-postgresql`` by its name (reached by another
        path, or tidied into a subfolder) is reached: the scan there erases it."""
        from bot.store.pg_copy import copy_folder_here

        mine = self._state_id()
        return [
            c
            for c in self._recorded_copies()
            if not c.here(mine)
            or not (Path(c.path).is_dir() or copy_folder_here(self.state_dir, Path(c.path).name))
        ]

    def _say_unreachable(self, copies: Sequence[StateCopy], rid: str, platform: str) -> list[str]:
        """A receipt note per copy the erase could not reach, and one admin notice each
        (never naming the person: their e-mail is what was just erased). The CLI's note
        names the host and path; chat's names neither (server paths are not for the person
        asking): the admins' notice has them."""
        notes: list[str] = []
        for copy in copies:
            made = datetime.fromtimestamp(copy.at, UTC).strftime("%Y-%m-%d %H:%M UTC")
            note = (
                f"the SQLite copy on {copy.host} at {copy.path} (left by `deptbot db copy` on {made}) "
                "still holds this person's data and could not be reached from here: erase it there "
                f"(`deptbot privacy erase` for the same person on {copy.host}) or delete that folder."
            )
            told = self._tell_admins(f"A privacy erase (audit request {rid or 'not recorded'}) missed {note}")
            if platform == "cli":
                notes.append(note)
            else:
                notes.append(
                    "a copy of the bot's state elsewhere still holds your data; "
                    + ("the admins have been told." if told else "please tell an admin.")
                )
        return notes

    def _tell_admins(self, text: str) -> bool:
        """An admin notice, in the installation's notices store (never a copy's); False
        when it could not be recorded. ``text`` never names the person."""
        if self._only is not None:  # a copy: its own folder is no place for notices
            return False
        try:
            if self.db is not None:
                from bot.store.pg_notices import PgNotices

                PgNotices(self.db).notify(None, "privacy", text)
            else:
                store = SqliteNotices.in_state_dir(self.state_dir)
                try:
                    store.notify(None, "privacy", text)
                finally:
                    store.close()
        except StoreError as exc:  # the receipt says it already
            log.warning("privacy: admin notice not recorded (%s)", type(exc).__name__)
            return False
        return True

    def _check_copies(self) -> dict[Path, Unopened]:
        """Before anything is destroyed: each copy's audit rows can be pseudonymized with
        this key, else nothing is erased (the copy would keep the e-mail while the receipt
        said it was gone). And every file ``db copy`` moved there opens as a database: a
        copy that does not (a corrupt or foreign file under one of those names) is left
        untouched and returned (folder → what failed), to be listed as FAILED while the
        rest is still erased; an unrelated name (``Thumbs.db``) is never opened. A file
        another program holds locked (busy) is told apart from a corrupt one: the fix is to
        close that program, not to repair or delete the copy."""
        from bot.store.audit import SqliteAuditLog
        from bot.store.pg_copy import MOVED

        broken: dict[Path, Unopened] = {}
        for folder in self._sqlite_copies():
            problems = {name: _open_problem(folder / name) for name in MOVED if (folder / name).is_file()}
            bad = [name for name, problem in problems.items() if problem == "unreadable"]
            busy = [name for name, problem in problems.items() if problem == "busy"]
            if bad or busy:
                broken[folder] = Unopened(tuple(bad), tuple(busy))
                continue
            if not (folder / "audit.db").is_file():
                continue
            audit = SqliteAuditLog(path=folder / "audit.db", key=self.audit.key)
            try:
                ok = audit.key_matches()
            finally:
                audit.close()
            if not ok:
                raise StoreError(
                    f"The SQLite copy in {folder} was chained with another audit key, so the person "
                    "could not be erased from it; nothing was erased. Delete that copy if it is no "
                    "longer needed, or run the erase with its key."
                )
        return broken

    @contextmanager
    def _for_folder(self, folder: Path) -> Iterator[Privacy]:
        """A SQLite ``Privacy`` over a folder ``db copy`` left: its own ``keys.db``, this
        installation's master and audit keys, whichever of its files are there; closed
        afterwards. Nothing is created in the copy: without an ``audit.db`` it borrows this
        audit log for the pseudonym (same key: ``_check_copies``) and the request ids, and
        without a ``keys.db`` this vault to read (the keys ``db copy`` copied), never to
        shred (this erase shreds it last)."""
        from bot.store.audit import SqliteAuditLog
        from bot.store.cache import SqliteAnswerCache
        from bot.store.pg_copy import MOVED

        own_keys = (folder / "keys.db").is_file()
        vault = Vault.in_state_dir(folder, self.vault.keys) if own_keys else self.vault
        try:
            has_audit = (folder / "audit.db").is_file()
            audit = (
                SqliteAuditLog(path=folder / "audit.db", key=self.audit.key, vault=vault)
                if has_audit
                else self.audit
            )
            try:
                cache, teams = folder / "cache.db", folder / TeamsState.FILE
                copy = type(self)(
                    state_dir=folder,
                    vault=vault,
                    audit=audit,
                    cache=SqliteAnswerCache(path=cache, vault=vault) if cache.is_file() else None,
                    teams=TeamsState(path=teams, vault=vault) if teams.is_file() else None,
                )
                if not has_audit:
                    copy._ids_from = self
                copy._own_keys = own_keys
                copy._only = MOVED
                try:
                    yield copy
                finally:
                    copy.close()
            finally:
                if has_audit:
                    audit.close()
        finally:
            if own_keys:
                vault.close()

    def _erase_copies(
        self, person: str, platform: str, removed: dict[str, int], broken: dict[Path, Unopened]
    ) -> tuple[list[str], list[str]]:
        """Erase ``person`` from each copy as on SQLite (its questions deleted, rows
        pseudonymized, their data key in its ``keys.db`` shredded), counted in ``removed``
        (``copied_sqlite_folders_erased``, ``<what>_in_sqlite_copies``). Returns a failure
        line per copy whose erase did not complete, and the admins' notice text for each
        (its path, never the person). A copy's receipt is not dropped: no process ever
        opens a copy again, so a WAL left untruncated there keeps the text until someone
        acts. One copy failing (``broken`` by ``_check_copies``, or raising on the way: a
        database error, a file that cannot be changed) does not stop the others, the live
        erase, the key's destruction or the second pass."""
        done, failures, for_admins = 0, [], []
        mend = "fix or delete that folder"
        close = "close the program that has it open (a sqlite3 shell, a backup or sync tool)"

        def failed(folder: Path, why: str, line: str, *, fix: str = mend) -> None:
            failures.append(line)
            for_admins.append(
                f"could not finish erasing the SQLite copy `deptbot db copy` left at {folder} ({why}); "
                f"it may still hold that person's data: {fix}, then run the erase again."
            )

        # the person in chat cannot mend a copy on a server; the admins were told (notice)
        then = "run the erase again" if platform == "cli" else "the admins have been told"
        for folder in self._sqlite_copies():
            where = str(folder) if platform == "cli" else "a SQLite copy kept after the switch to PostgreSQL"
            if folder in broken:
                unopened = broken[folder]
                if unopened.only_busy:  # held by another program: it is not broken, it is in use
                    why = unopened.why if platform == "cli" else "a file there is in use by another program"
                    log.error("privacy erase: a SQLite copy is in use elsewhere, so it was left as it is")
                    act = f"{close}, then run the erase again" if platform == "cli" else then
                    failed(
                        folder,
                        unopened.why,
                        f"the erase in {where} did not run ({why}); nothing there was changed: {act}.",
                        fix=close,
                    )
                    continue
                why = unopened.why if platform == "cli" else "a file there could not be opened"
                log.error("privacy erase: a SQLite copy could not be opened, so it was left as it is")
                failed(
                    folder,
                    unopened.why,
                    f"the erase in {where} did not run ({why}); nothing there was changed.",
                )
                continue
            try:
                with self._for_folder(folder) as copy:
                    receipt = copy._erase(person, platform=platform, record=False)
                    unflushed = dict(copy._unflushed)
            except (StoreError, sqlite3.Error, OSError) as exc:
                if _is_busy(exc) or _is_busy(exc.__cause__):
                    why = "a database there is in use by another program"
                    log.error("privacy erase: a SQLite copy is in use elsewhere (%s)", type(exc).__name__)
                    act = f"{close}, then run the erase again" if platform == "cli" else then
                    failed(folder, why, f"the erase in {where} did not complete ({why}); {act}.", fix=close)
                    continue
                cause = exc.user_message if isinstance(exc, StoreError) else "a database or file error"
                why = cause if platform == "cli" else "a file there could not be changed"
                log.error("privacy erase: a SQLite copy could not be erased (%s)", type(exc).__name__)
                failed(folder, cause, f"the erase in {where} did not complete ({why}); {then}.")
                continue
            done += 1
            for what, n in receipt.removed.items():
                if n:
                    removed[f"{what}_in_sqlite_copies"] = removed.get(f"{what}_in_sqlite_copies", 0) + n
            if not receipt.files_checkpointed and unflushed and all(unflushed.values()):
                # another program has the copy open: it is not abandoned, and the WAL is
                # truncated once that program lets go and the erase runs again
                names = ", ".join(sorted(unflushed)) if platform == "cli" else "a database"
                log.error("privacy erase: a SQLite copy's WAL could not be truncated: it is in use")
                failed(
                    folder,
                    f"{', '.join(sorted(unflushed))}: in use by another program, its WAL not truncated",
                    f"the erase in {where} could not truncate the WAL of {names} there, which may still "
                    "hold the erased text: another program has it open; "
                    + (f"{close}, then run the erase again." if platform == "cli" else f"{then}."),
                    fix=close,
                )
            elif not receipt.files_checkpointed:
                log.error("privacy erase: a SQLite copy's WAL could not be truncated")
                failed(
                    folder,
                    "a database's WAL could not be truncated",
                    f"the erase in {where} could not truncate a database's WAL there, which may still "
                    "hold the erased text (nothing else opens that copy to do it later); "
                    + ("run the erase again, or delete that folder." if platform == "cli" else f"{then}."),
                )
            for line in receipt.failures:
                failed(folder, "part of its erase failed", line)
        if done:
            removed["copied_sqlite_folders_erased"] = done
        return failures, for_admins

    def _export_copies(self, person: str, *, platform: str, notices: bool) -> tuple[list[Any], list[str]]:
        """What each copy reachable here holds about ``person`` (answers in a moved
        ``cache.db``, rows PostgreSQL's retention purged since), and a note per copy not
        read (recorded on another host, its folder missing here, or a file there that does
        not open). Chat sees no server path: a copy's ``folder`` is given relative to the
        state folder, or left out."""
        found: list[dict[str, Any]] = []
        notes = []
        for folder in self._sqlite_copies():
            try:
                with self._for_folder(folder) as copy:
                    part = copy._export(person, record=False, platform=platform, notices=notices)
            except (StoreError, sqlite3.Error, OSError) as exc:
                log.error("privacy export: a SQLite copy could not be read (%s)", type(exc).__name__)
                where = f" at {folder}" if platform == "cli" else ""
                notes.append(
                    f"a SQLite copy kept after the switch to PostgreSQL{where} could not be read "
                    "and may hold more of this person's data"
                    + (
                        " (a file there could not be opened or read)."
                        if platform == "cli"
                        else "; ask an admin."
                    )
                )
                continue
            data = {k: v for k, v in part.data.items() if k not in ("format", "person", "exported")}
            label = _shown_folder(folder, self.state_dir, platform)
            found.append({**({"folder": label} if label else {}), "counts": part.counts, **data})
        for c in self._unreachable_copies():
            where = f" on {c.host} at {c.path}" if platform == "cli" else " on another server"
            notes.append(
                f"a SQLite copy kept after the switch to PostgreSQL{where} was not read from here "
                "and may hold more of this person's data"
                + (
                    f" (run `deptbot privacy export` on {c.host})."
                    if platform == "cli"
                    else "; ask an admin."
                )
            )
        return found, notes

    # ── the stores ───────────────────────────────────────────────────────────────────

    def _request_ids(self, person: str, alias: str | None = None) -> list[str]:
        """The person's requests: under their e-mail, and with ``alias`` under their
        pseudonym too (rows an erase pseudonymized, whose text may still be there)."""
        if not self._present("audit"):  # a copy without its audit.db: the live records' ids
            if self._ids_from is None:
                return []
            return self._ids_from._request_ids(person, alias or self.audit.pseudonym(person))
        names = [person] if alias is None else [person, alias.lower()]
        with self._shared("audit") as conn:
            return [
                r[0]
                for r in conn.execute(
                    f'select request_id from requests where lower("user") in ({",".join("?" * len(names))})',
                    names,
                )
            ]

    def _pseudonymize_audit(self, person: str) -> int:
        return self.audit.pseudonymize(person) if self._present("audit") else 0

    def _audit_rows(self, person: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if not self._present("audit"):  # a copy left without its audit.db
            return [], []
        with self._shared("audit") as conn:
            rows = _dicts(
                conn.execute('select * from requests where lower("user") = ? order by seq', [person])
            )
            for r in rows:
                text = conn.execute(
                    "select question from request_text where request_id = ?", [r["request_id"]]
                ).fetchone()
                r["question"] = (
                    None if text is None else self._open(person, text[0], f"request_text:{r['request_id']}")
                )
                if isinstance(r.get("doc_ids"), str):
                    with suppress(ValueError):
                        r["doc_ids"] = json.loads(r["doc_ids"])
            feedback = _dicts(conn.execute('select * from feedback where lower("user") = ?', [person]))
            for f in feedback:
                reason = f.get("reason")
                f["reason"] = self._open(person, reason, f"feedback:{f['request_id']}") if reason else ""
        return rows, feedback

    def _open(self, person: str, blob: Any, context: str) -> Any:
        if isinstance(blob, str):
            return blob  # written before encryption and not yet sealed
        try:
            return self.vault.open(person, blob, context)
        except (TextErased, Tampered) as exc:  # this row only; an outage fails the export
            return {"unreadable": exc.user_message}

    def _usage_rows(self, person: str) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {"attempts": [], "reservations": []}
        if not self._present("usage"):
            return out
        with self._shared("usage") as conn:
            for table in out:
                if self._has_table(conn, table):
                    out[table] = _dicts(
                        conn.execute(f'select * from {table} where lower("user") = ?', [person])
                    )
        return out

    def _pseudonymize_usage(self, person: str, alias: str) -> int:
        if not self._present("usage"):
            return 0
        n = 0
        with self._shared("usage") as conn:
            for table in ("attempts", "reservations"):
                if self._has_table(conn, table):
                    n += conn.execute(
                        f'update {table} set "user" = ? where lower("user") = ?', [alias, person]
                    ).rowcount
        return n

    def _notices(self, person: str) -> list[dict[str, Any]]:
        return [
            {"department": d, "kind": k, "text": t, "time": datetime.fromtimestamp(ts, UTC).isoformat()}
            for _, rows in self._naming(person)
            for _, d, k, t, ts in rows
        ]

    def _delete_notices(self, person: str) -> int:
        removed = 0
        for session, rows in self._naming(person):
            ids = [row[0] for row in rows]
            if ids:
                with session() as conn:
                    marks = ",".join("?" * len(ids))
                    removed += int(conn.execute(f"delete from notices where id in ({marks})", ids).rowcount)
        return removed

    def _naming(
        self, person: str
    ) -> list[tuple[Callable[[], AbstractContextManager[Any]], list[tuple[Any, ...]]]]:
        """Notices naming ``person`` as a whole address (``bob@x`` is not in ``jimbob@x``),
        per place: the notices store, and with ``DEPTBOT_DATABASE_URL`` also a local
        ``notices.sqlite3`` left from before the switch (``db copy`` does not copy it)."""
        places: list[tuple[Callable[[], AbstractContextManager[Any]], str]] = []
        if self._present("notices"):
            places.append((lambda: self._shared("notices"), "strpos" if self.db is not None else "instr"))
        if self.db is not None and (self.state_dir / SqliteNotices.FILE).exists():
            places.append((lambda: self._db(SqliteNotices.FILE), "instr"))
        whole = re.compile(rf"(?<![\w.+-]){re.escape(person)}(?![\w.-])")
        out: list[tuple[Callable[[], AbstractContextManager[Any]], list[tuple[Any, ...]]]] = []
        for session, find in places:  # the same function, two spellings
            with session() as conn:
                if find == "instr" and not _has_table(conn, "notices"):
                    continue
                rows = conn.execute(
                    f"select id, department, kind, text, time from notices where {find}(lower(text), ?) > 0",
                    [person],
                ).fetchall()
            out.append((session, [r for r in rows if whole.search(str(r[3]).lower())]))
        return out

    # the admin console: its trail names the admin by e-mail (``bot.store.admin_sessions``)

    def _console_places(self) -> list[tuple[Callable[[], AbstractContextManager[Any]], str, bool]]:
        """Where console rows can be: (open a session, the column ordering events of one
        instant, whether every table is there). With ``DEPTBOT_DATABASE_URL`` that is
        PostgreSQL and also a local ``admin-sessions.sqlite3`` still left from before the
        switch (``db copy`` does not move it): a privacy request covers both."""
        places: list[tuple[Callable[[], AbstractContextManager[Any]], str, bool]] = []
        if self.db is not None:
            places.append((lambda: self._shared("console"), "id", True))
        if (self.state_dir / AdminSessionStore.FILE).exists():
            places.append((lambda: self._db(AdminSessionStore.FILE), "rowid", False))
        return places

    def _console_rows(self, person: str) -> dict[str, list[dict[str, Any]]]:
        """The person's console events, sessions and sign-in links, without the stored
        hashes (a hash of a live session id is not the person's data, and stays here)."""
        out: dict[str, list[dict[str, Any]]] = {"events": [], "sessions": [], "links": []}
        for session, order, migrated in self._console_places():
            with session() as conn:
                if migrated or _has_table(conn, "events"):
                    out["events"] += [
                        {"time": _iso(at), "event": ev, "department": dept, "detail": detail}
                        for at, ev, dept, detail in conn.execute(
                            'select at, event, department, detail from events where lower("user") = ? '
                            f"order by at, {order}",
                            [person],
                        )
                    ]
                if migrated or _has_table(conn, "sessions"):
                    out["sessions"] += [
                        {"created": _iso(c), "last_seen": _iso(seen), "expires": _iso(e)}
                        for c, seen, e in conn.execute(
                            "select created, last_seen, expires from sessions where lower(email) = ? "
                            "order by created",
                            [person],
                        )
                    ]
                if migrated or _has_table(conn, "links"):
                    out["links"] += [
                        {"created": _iso(c), "expires": _iso(e), "used": None if u is None else _iso(u)}
                        for c, e, u in conn.execute(
                            "select created, expires, used from links where lower(email) = ? "
                            "order by created",
                            [person],
                        )
                    ]
        return out

    def _erase_console(self, person: str, alias: str) -> dict[str, int]:
        """Console events keep their rows under ``alias`` (who signed in when stays an
        audit trail); sessions end and links go, so nothing there names the person."""
        removed = {"admin_events_pseudonymized": 0, "admin_sessions": 0, "admin_links": 0}
        for session, _, _ in self._console_places():
            with session() as conn:
                removed["admin_events_pseudonymized"] += conn.execute(
                    'update events set "user" = ? where lower("user") = ?', [alias, person]
                ).rowcount
                removed["admin_sessions"] += conn.execute(
                    "delete from sessions where lower(email) = ?", [person]
                ).rowcount
                removed["admin_links"] += conn.execute(
                    "delete from links where lower(email) = ?", [person]
                ).rowcount
        return removed

    def _checkpoint_all(self) -> bool:
        """Truncate the WAL of each database in the folder (in a copy only the files ``db
        copy`` moved: nothing else there is the copy's, ``Thumbs.db`` included). A file
        that is not SQLite is skipped; one that fails counts as not checkpointed."""
        ok = self._vacuum() if self.db is not None else True
        if self._only is not None:
            paths = [self.state_dir / name for name in self._only]
        else:
            paths = [p for p in sorted(self.state_dir.glob("*")) if p.suffix in (".db", ".sqlite3")]
        for path in paths:
            if not (path.is_file() and _is_sqlite(path)):
                continue
            try:
                conn = connect(path)
                try:
                    if not checkpoint(conn):  # False: busy, another connection reads or writes it
                        self._unflushed[path.name] = True
                        ok = False
                finally:
                    conn.close()
            except sqlite3.Error as exc:
                log.error("privacy erase: a database could not be checkpointed (%s)", type(exc).__name__)
                self._unflushed[path.name] = _is_busy(exc)
                ok = False
        return ok

    def _record(self, user: str, rule: str, status: str, platform: str) -> str:
        rid = uuid.uuid4().hex[:12]
        self.audit.record(
            AuditEntry(
                request_id=rid,
                time=datetime.now(UTC),
                user=user,
                platform=platform,
                decision="allowed",
                rule=rule,
                status=status,
            )
        )
        return rid

    def _vacuum(self) -> bool:
        """PostgreSQL: prune the old row versions an erase left behind (plain VACUUM: it
        never blocks the replicas' writes). False when it could not run."""
        assert self.db is not None
        from bot.store.backend import vacuum_tables

        return vacuum_tables(self.db, VACUUMED)

    @property
    def _blank(self) -> Any:
        """An erased feedback comment: the empty text in SQLite, empty bytes in PostgreSQL."""
        return b"" if self.db is not None else ""

    def _present(self, store: str) -> bool:
        return self.db is not None or (self.state_dir / SHARED[store]).exists()

    def _has_table(self, conn: Any, name: str) -> bool:
        return self.db is not None or _has_table(conn, name)  # migrated: every table is there

    @contextmanager
    def _shared(self, store: str) -> Iterator[Any]:
        """One of the ``SHARED`` stores: a PostgreSQL transaction (``?`` placeholders), or
        its SQLite file in the state folder."""
        if self.db is None:
            with self._db(SHARED[store]) as conn:
                yield conn
            return
        try:
            with self.db.tx() as c:
                yield c
        except psycopg_error() as exc:
            raise StoreError(f"A privacy request could not read or change the {store} tables.") from exc

    @contextmanager
    def _db(self, name: str) -> Iterator[sqlite3.Connection]:
        """A short-lived connection with ``secure_delete`` on (deletions zero their pages)."""
        path = self.state_dir / name
        try:
            conn = connect(path)
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot open {path}.") from exc
        try:
            secure(conn)
            yield conn
        except sqlite3.Error as exc:
            raise StoreError(f"A privacy request could not read or change {path}.") from exc
        finally:
            conn.close()

    def close(self) -> None:
        for store in (self.cache, *self.teams_all):
            if store is not None:
                store.close()


def _email(email: str) -> str:
    person = subject_of(email)
    if "@" not in person or len(person) > 320 or any(c.isspace() for c in person):
        raise UsageError("Give the person's e-mail address, e.g. alice@example.com.")
    return person


def _duration(seconds: float) -> str:
    if seconds >= 7200:
        return f"{seconds / 3600:g} hours"
    if seconds >= 120:
        return f"{seconds / 60:g} minutes"
    return f"{seconds:g} seconds"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(float(ts), UTC).isoformat()


def _dicts(cur: Any) -> list[dict[str, Any]]:
    """Rows as dicts by column name, from a sqlite3 or a psycopg cursor alike."""
    names = [d[0] for d in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def psycopg_error() -> type[Exception]:
    """psycopg's base error, or a class nothing raises when the driver is not installed."""
    try:
        import psycopg
    except ImportError:  # the SQLite-only install

        class _Never(Exception):
            pass

        return _Never
    return psycopg.Error


SQLITE_HEADER = b"SQLite format 3\x00"


def _is_sqlite(path: Path) -> bool:
    """Whether ``path`` starts like a SQLite database (an empty file holds nothing)."""
    try:
        with path.open("rb") as fh:
            return fh.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return True  # unreadable: let the checkpoint fail and say so


OPEN_WAIT_SECONDS = 30.0  # how long a copy's file may stay locked by another program before it is "busy"


@dataclass(frozen=True)
class Unopened:
    """A copy's files that did not open before its erase: ``unreadable`` (corrupt, or not a
    database) and ``busy`` (another program holds a lock on them)."""

    unreadable: tuple[str, ...]
    busy: tuple[str, ...]

    @property
    def only_busy(self) -> bool:
        return bool(self.busy) and not self.unreadable

    @property
    def why(self) -> str:
        parts = [f"{', '.join(self.unreadable)} could not be opened as a database"] if self.unreadable else []
        if self.busy:
            verb = "is" if len(self.busy) == 1 else "are"
            parts.append(f"{', '.join(self.busy)} {verb} in use by another program")
        return "; ".join(parts)


def _open_problem(path: Path) -> str | None:
    """None when ``path`` opens as a SQLite database and its schema reads; "busy" when
    another program holds it locked past ``OPEN_WAIT_SECONDS``; "unreadable" when it is
    corrupt or a foreign file under a copy's file name. Never changes it."""
    try:
        conn = sqlite3.connect(str(path), timeout=OPEN_WAIT_SECONDS)
        try:
            conn.execute("select count(*) from sqlite_master").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return "busy" if _is_busy(exc) else "unreadable"
    return None


def _is_busy(exc: BaseException | None) -> bool:
    """Whether a SQLite error means another connection holds the database (SQLITE_BUSY or
    SQLITE_LOCKED, "database is locked"), not that the file is damaged."""
    if not isinstance(exc, sqlite3.Error):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _shown_folder(folder: Path, state_dir: Path, platform: str) -> str | None:
    """A copy's folder as an export shows it: the full path on the CLI; in chat relative
    to the state folder (``copied-to-postgresql/<time>``), or nothing when it is elsewhere."""
    if platform == "cli":
        return str(folder)
    try:
        return folder.resolve().relative_to(state_dir.resolve()).as_posix()
    except ValueError:
        return None


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return (
        conn.execute("select 1 from sqlite_master where type = 'table' and name = ?", [name]).fetchone()
        is not None
    )


def _delete_in(conn: Any, table: str, column: str, values: Sequence[str]) -> int:
    n = 0
    for i in range(0, len(values), 500):
        chunk = list(values[i : i + 500])
        n += conn.execute(
            f"delete from {table} where {column} in ({','.join('?' * len(chunk))})", chunk
        ).rowcount
    return n


# ── self-service in chat (Slack ``/kb my-data``, Teams ``kb my-data``) ─────────────────

CONFIRM_SECONDS = 600.0
ALREADY_RUNNING = (
    "Your privacy request is already running: wait for its answer, then ask again if you need to."
)


class SelfService:
    """What the chat commands call: a person's own export, and erasure in two steps.

    ``forget-me`` alone only returns a one-time code; the erase runs when the same person
    sends it back within ``CONFIRM_SECONDS`` (``forget-me CODE``), so a stray command or a
    colleague at an unlocked screen typing it once erases nothing. The person is whoever
    the platform says sent the command (their e-mail from the directory), never an e-mail
    typed in the command: one can only export or erase oneself.
    """

    def __init__(
        self,
        open_privacy: Callable[[], Privacy],
        *,
        clock: Callable[[], float] | None = None,
        after_erase: Callable[[], object] | None = None,
    ) -> None:
        """``open_privacy`` is called per request (they are rare). ``after_erase`` runs after
        each completed erase: the serving process's own memory (a per-process answer cache,
        which records no owner per entry) is emptied there, since no file names it."""
        import threading
        import time

        self._open_privacy = open_privacy
        self._pending: dict[str, tuple[str, float]] = {}
        self._running: set[str] = set()  # people with an export or erase in flight (``_one_at_a_time``)
        self._lock = threading.Lock()
        self._clock = clock or time.monotonic
        self._after_erase = after_erase

    @contextmanager
    def _desk(self) -> Iterator[Privacy]:
        """A fresh ``Privacy`` per request, so stores created since (the Teams state file)
        are included, and closed afterwards."""
        privacy: Privacy = self._open_privacy()
        try:
            yield privacy
        finally:
            privacy.close()

    @contextmanager
    def _one_at_a_time(self, person: str) -> Iterator[None]:
        """At most one export or erase in flight per person: they run on the few report
        threads the admin console uses too, so someone repeating ``my-data`` on a large
        audit log would otherwise hold every one of them and lock the admins out."""
        with self._lock:
            if person in self._running:
                raise UsageError(ALREADY_RUNNING)
            self._running.add(person)
        try:
            yield
        finally:
            with self._lock:
                self._running.discard(person)

    def export(self, email: str, *, platform: str) -> Export:
        person = _email(email)
        with self._one_at_a_time(person), self._desk() as desk:
            return desk.export(person, platform=platform, notices=False)

    def start_erase(self, email: str) -> str:
        import secrets

        code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6))
        with self._lock:
            self._pending[_email(email)] = (code, self._clock() + CONFIRM_SECONDS)
        return code

    def confirm_erase(self, email: str, code: str, *, platform: str) -> Receipt | None:
        """The erase, when ``code`` is the one just given to this person; None otherwise."""
        person = _email(email)
        with self._one_at_a_time(person):  # before the code is used up: it stays valid meanwhile
            with self._lock:
                found = self._pending.get(person)
                if found is None or found[1] < self._clock() or found[0] != code.strip().upper():
                    return None
                del self._pending[person]
            with self._desk() as desk:
                receipt = desk.erase(person, platform=platform)
            if self._after_erase is not None:
                self._after_erase()
            return receipt


_desks: Any = None


def register(assistant: object, service: SelfService) -> None:
    """Make ``service`` the privacy self-service of the adapters serving ``assistant``
    (``bot.wiring.build`` does it; the adapters are built from the assistant alone)."""
    global _desks
    import weakref

    if _desks is None:
        _desks = weakref.WeakKeyDictionary()
    _desks[assistant] = service


def self_service(assistant: object) -> SelfService | None:
    """The service registered for ``assistant``; None (chat then points to an admin)."""
    return None if _desks is None else _desks.get(assistant)


def export_chunks(export: Export, size: int) -> list[str]:
    """The export's JSON cut into pieces of at most ``size`` characters (lines kept whole
    where they fit), for chat messages with a length limit."""
    pieces: list[str] = []
    current = ""
    for line in export.to_json().splitlines(keepends=True):
        while len(line) > size:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:size])
            line = line[size:]
        if len(current) + len(line) > size:
            pieces.append(current)
            current = ""
        current += line
    if current:
        pieces.append(current)
    return pieces
