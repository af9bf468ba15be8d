"""Every replica serves the version published in PostgreSQL: sync it into the state folder.

Why a local copy at all: retrieval reads memory-mapped segments (``retrieve.py``); a
replica materialises each published segment ONCE into ``<state>/indexes/<dept>/`` and
from then on serves it exactly as if it had built it, so query latency does not change
with the backend.

How: the knowledge watcher (``watcher.py``) calls :meth:`KnowledgeSync.poll` every
``knowledge.sync_seconds`` (one ``select`` on ``kb_current``). When a department's
published version is not the one this folder last matched (the ``PG_VERSION`` marker),
the version is read in ONE repeatable-read transaction (so a publish and its garbage
collection running meanwhile cannot show a half-deleted version), its missing segments
are written to temporary folders, VERIFIED, renamed into place (``segments.publish``),
its manifest written, and only then ``CURRENT`` switches; the reader reloads as after a
local refresh. A crash leaves only unreferenced folders, collected by the next switch.

Verification before switching: document numbers and chunk numbers are complete and
match the counts, every document's signature is recomputed from its audiences and must
equal the stored one, every chunk carries its document's signature, vectors have the
segment's dimension, and the segment then loads (postings consistent with chunks).
A mismatch (tampering, a bug) refuses the version: it is not retried until another one
is published, and this replica stops answering from the department at once (fail closed:
the replaced version may be the one a revocation replaced). Any other error (the
database, rows too malformed to read) is retried every tick while the previous complete
version serves, for up to ``FAIL_CLOSED_SECONDS``; then the replica fails closed too.
Either way the department's admins are told once. When ``kb_current`` itself cannot
be read (the database unreachable, the table locked or revoked) for as long, the replica
cannot know whether a newer version narrowed access either: it pauses every department
(``CURRENT`` removed, marker and version kept), tells the admins once, and when the table
reads again serves the paused version only if nothing newer was published meanwhile.
Derived files (``kb_segment_files``) may never be a file the rows are the source of, and
are written before those.

A local version the database never heard of (a narrowed version written while the
database was down) is left alone: only a NEW published version replaces it.

:class:`PgIndexHook` is the indexer's side (``index.VersionHook``): sync before a
refresh, publish before the local switch, record the marker after it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import struct
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.core.ports import AdminNotices
from bot.errors import KnowledgeError
from bot.knowledge import lexical
from bot.knowledge.chunking import index_text
from bot.knowledge.index import token_ids
from bot.knowledge.pg_publish import (
    BACKGROUND_TIMEOUT,
    CHUNK_COLUMNS,
    COPY_HEADER,
    MARKER,
    ROW_FILES,
    KnowledgePublisher,
    PublishedMovedOn,
    read_marker,
    write_marker,
)
from bot.knowledge.segments import SEGMENTS, Segment, fsync_path, publish
from bot.knowledge.signatures import AudienceError, signature
from bot.knowledge.versions import collect_garbage, current_version, dept_dir, locked, switch_current

if TYPE_CHECKING:
    from bot.store.backend import Database

log = logging.getLogger(__name__)

LEXICAL = ("tokens.npy", "token_offsets.npy", "vocab.json")
# A replica that cannot load a newer published version stops answering from the replaced
# one after this long (about N ticks with N × sync_seconds ≥ 60 s): the new one may revoke.
FAIL_CLOSED_SECONDS = 60.0


class SyncRefused(KnowledgeError):
    """What the database holds does not verify; the previous version keeps serving."""


class KnowledgeSync:
    """Brings local department folders up to the published versions (module text)."""

    def __init__(self, db: Database, state_dir: Path, *, notices: AdminNotices | None = None) -> None:
        self.db = db
        self.state_dir = Path(state_dir)
        self._notices = notices
        self._told: dict[str, str] = {}  # department → what it was last told (once each)
        self._down = False  # kb_current could not be read at the last tick
        self._down_since: float | None = None  # clock() of the first unreadable tick in a row
        self._paused: dict[str, str] = {}  # department → the version it served when paused
        self._failing: dict[str, float] = {}  # department → clock() of its first failed sync in a row
        self.closed: set[str] = set()  # departments this replica stopped answering from (fail closed)
        self.clock = time.monotonic  # tests move it

    def currents(self) -> dict[str, str]:
        rows = self.db.rows("select department, version from kb_current", [], what="the published index")
        return {str(r["department"]): str(r["version"]) for r in rows}

    def poll(self, departments: Iterable[str]) -> list[str]:
        """One sync tick over ``departments``; those switched to a new version."""
        departments = list(departments)
        try:
            published = self.currents()
        except Exception as exc:
            now = self.clock()
            if not self._down:  # once per outage, not every tick
                log.warning("knowledge sync: cannot read the published versions (%s)", type(exc).__name__)
                self._down_since = now
            self._down = True
            if self._down_since is not None and now - self._down_since >= FAIL_CLOSED_SECONDS:
                for name in departments:
                    self._pause(name, type(exc).__name__)
            return []
        if self._down:
            log.info("knowledge sync: the published versions can be read again")
        self._down = False
        self._down_since = None
        switched = [name for name in list(self._paused) if self._resume(name, published.get(name))]
        for name in departments:
            version = published.get(name)
            root = dept_dir(self.state_dir, name)
            if (
                version is None
                or read_marker(root) == version
                or self._told.get(name) == f"refused {version}"
            ):
                continue
            with locked(root, wait=False) as free:
                if free and self.sync_locked(root, name, version):
                    switched.append(name)
        return switched

    def sync_locked(self, root: Path, department: str, version: str | None = None) -> bool:
        """Switch ``root`` (its lock held) to the published version; True when it switched.

        Never raises: a failure is told once, and keeps the served version only as long as
        the module text says (a refusal or ``FAIL_CLOSED_SECONDS`` of failures close it).
        """
        try:
            if version is None:
                version = self.currents().get(department)
            if version is None or read_marker(root) == version:
                self._failing.pop(department, None)
                return False
            switched = self._materialise(root, department, version)
        except SyncRefused as exc:  # what the database holds does not verify: fail closed now
            if self._told.get(department) != f"refused {version}":
                log.warning("%s: published index version %s refused: %s", department, version, exc)
            self._tell(
                department,
                f"refused {version}",
                f"{department}: the index version published in the database did not verify ({exc}); "
                "this replica stops answering from this department until a version that verifies "
                "is published",
            )
            self._close(root, department, None)
            return False
        except Exception as exc:  # a database error, rows too malformed to read: tried again
            kind = type(exc).__name__
            if self._told.get(department) != f"failed {kind}":
                log.warning("%s: could not sync the published index version (%s)", department, kind)
            self._tell(
                department,
                f"failed {kind}",
                f"{department}: this replica could not load the published index version ({kind}); "
                "it keeps serving its previous complete version for up to "
                f"{FAIL_CLOSED_SECONDS:.0f} s and tries again",
            )
            first = self._failing.setdefault(department, self.clock())
            if self.clock() - first >= FAIL_CLOSED_SECONDS:
                self._close(
                    root,
                    department,
                    f"{department}: this replica still cannot load the published index version "
                    f"({kind}) after {FAIL_CLOSED_SECONDS:.0f} s; it stops answering from this "
                    "department until it has loaded it (the new version may have narrowed access)",
                )
            return False
        if switched:
            self._told.pop(department, None)
            self._failing.pop(department, None)
            self.closed.discard(department)
        return switched

    def _pause(self, department: str, kind: str) -> None:
        """``kb_current`` unreadable for ``FAIL_CLOSED_SECONDS``: this replica cannot know
        whether a newer version narrowed access, so it stops answering from ``department``
        (``CURRENT`` goes; the marker and the version folder stay, so nothing is rolled
        back or re-downloaded) until :meth:`_resume` sees the published versions again."""
        if department in self._paused or department in self.closed:
            return
        root = dept_dir(self.state_dir, department)
        with locked(root, wait=False) as free:
            served = current_version(root) if free else None
            if served is None:  # nothing served here, or a refresh holds it: next tick
                return
            with contextlib.suppress(OSError):
                (root / "CURRENT").unlink()
        self._paused[department] = served
        self.closed.add(department)
        log.warning("%s: this replica stopped answering from its index until it can sync", department)
        self._tell(
            department,
            "paused",
            f"{department}: this replica has not been able to read the published index versions "
            f"from the database for {FAIL_CLOSED_SECONDS:.0f} s ({kind}); it stops answering from "
            "this department until it can (a newer version may have narrowed access)",
        )

    def _resume(self, department: str, published: str | None) -> bool:
        """The published versions are readable again: when nothing new was published for
        ``department`` meanwhile, serve the paused version again (True); otherwise leave it
        closed for the sync below, which switches to the new version or keeps it closed."""
        root = dept_dir(self.state_dir, department)
        with locked(root, wait=False) as free:
            if not free:
                return False  # a refresh holds it: next tick
            served = self._paused.pop(department)
            if self._told.get(department) == "paused":
                self._told.pop(department)
            marker = read_marker(root)
            if published is not None and published != marker:
                return False  # a newer version: the sync loop below loads it (or stays closed)
            if not (root / "versions" / served / "meta.json").is_file():
                return False
            switch_current(root, served)
        self.closed.discard(department)
        log.info("%s: this replica answers from its index version %s again", department, served)
        return True

    def _close(self, root: Path, department: str, text: str | None) -> None:
        """Fail closed on this replica: the version served here was replaced in the database
        (perhaps to revoke access) and cannot be loaded, so stop answering from it (the
        reader finds no ``CURRENT``: the "no index" refusal) until a verified version is in
        place. The marker goes too, so every tick tries the published version again, and no
        refresh here can publish over it (``KnowledgePublisher.publish``'s base)."""
        for name in ("CURRENT", MARKER):
            with contextlib.suppress(OSError):
                (root / name).unlink()
        if department in self.closed:
            return
        self.closed.add(department)
        log.warning("%s: this replica stopped answering from its index until it syncs", department)
        if text is not None:
            self._notify(department, text)

    def _tell(self, department: str, key: str, text: str) -> None:
        if self._told.get(department) == key:
            return
        self._told[department] = key
        self._notify(department, text)

    def _notify(self, department: str, text: str) -> None:
        if self._notices is None:
            return
        try:
            self._notices.notify(department, "index-sync-failed", text)
        except Exception:
            log.exception("could not record an admin notice for %s", department)

    # ── materialising ───────────────────────────────────────────────────────────────

    def _materialise(self, root: Path, department: str, version: str) -> bool:
        with self.db.tx(isolation="REPEATABLE_READ") as q:
            conn = q.conn
            conn.execute(f"set local statement_timeout = '{BACKGROUND_TIMEOUT}'")
            row = conn.execute(
                "select meta, files from kb_versions where department = %s and version = %s",
                [department, version],
            ).fetchone()
            if row is None:
                return False  # replaced meanwhile: the next tick sees the new one
            meta: dict[str, Any] = row[0]
            files: dict[str, Any] = row[1]
            if not isinstance(meta, dict) or not isinstance(meta.get("segments"), list):
                raise SyncRefused("its manifest lists no segments")
            for entry in meta["segments"]:
                name = str(entry["name"])
                if not _safe_name(name):
                    raise SyncRefused("a segment name is not a plain folder name")
                if not all(0 <= int(d) < int(entry["documents"]) for d in entry["dead"]):
                    raise SyncRefused(f"the version tombstones documents segment {name} does not have")
                if (root / SEGMENTS / name / "meta.json").is_file():
                    continue  # written or verified here before: segments never change
                self._fetch_segment(conn, root, department, name, meta, entry)
        vdir = root / "versions" / version
        if not (vdir / "meta.json").is_file():
            if not _safe_name(version):
                raise SyncRefused("the version name is not a plain folder name")
            tmp = root / "versions" / f".tmp-{version}-sync"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            try:
                (tmp / "files.json").write_text(json.dumps(files, ensure_ascii=False), encoding="utf-8")
                (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
                publish(tmp, vdir)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        previous = current_version(root)
        switch_current(root, version)
        write_marker(root, version)
        collect_garbage(root, previous=previous)
        log.info("%s: now serving the published index version %s", department, version)
        return True

    def _fetch_segment(
        self, conn: Any, root: Path, department: str, name: str, vmeta: dict[str, Any], entry: dict[str, Any]
    ) -> None:
        """Read one segment's rows, verify them, and write the segment folder (tmp, rename)."""
        seg = conn.execute(
            "select embedder, dim, chunks, documents, meta from kb_segments "
            "where department = %s and name = %s",
            [department, name],
        ).fetchone()
        if seg is None:
            raise SyncRefused(f"segment {name} is missing")
        embedder, dim, n, n_docs, smeta = str(seg[0]), int(seg[1]), int(seg[2]), int(seg[3]), seg[4]
        if embedder != vmeta.get("embedder") or dim != int(vmeta.get("dim", -1)):
            raise SyncRefused(f"segment {name} has another embedder than its version")
        if int(entry.get("documents", -1)) != n_docs or int(entry.get("chunks", -1)) != n:
            raise SyncRefused(f"segment {name} does not have the counts its version lists")
        docs_rows = conn.execute(
            "select doc_no, signature, entry from kb_documents where department = %s and segment = %s "
            "order by doc_no",
            [department, name],
        ).fetchall()
        if [int(r[0]) for r in docs_rows] != list(range(n_docs)):
            raise SyncRefused(f"segment {name} does not have its {n_docs} documents")
        docs: list[dict[str, Any]] = []
        sigs: list[str] = []
        for _, stored, doc in docs_rows:
            try:
                computed = (
                    signature(doc["audiences"]) if isinstance(doc, dict) and "audiences" in doc else None
                )
            except AudienceError:
                computed = None
            if computed is None or computed != stored:
                raise SyncRefused(
                    f"a document's access signature in segment {name} does not match its audiences"
                )
            docs.append(doc)
            sigs.append(stored)
        chunks = read_chunks(conn, department, name)
        if len(chunks) != n or [c[0] for c in chunks] != list(range(n)):
            raise SyncRefused(f"segment {name} does not have its {n} chunks")
        starts = [int(d["start"]) for d in docs]
        counts = [int(d["count"]) for d in docs]
        if sum(counts) != n:
            raise SyncRefused(f"segment {name}'s documents do not add up to its chunks")
        chunk_doc = np.zeros(n, dtype=np.int32)
        for d, (a, k) in enumerate(zip(starts, counts, strict=True)):
            if a < 0 or a + k > n:
                raise SyncRefused(f"segment {name} has a document outside its chunks")
            chunk_doc[a : a + k] = d
        for local, doc_no, sig, _, _, vec in chunks:
            if doc_no != chunk_doc[local] or sig != sigs[doc_no]:
                raise SyncRefused(f"a chunk's access signature in segment {name} does not match its document")
            if len(vec) != dim * 4:
                raise SyncRefused(f"a vector in segment {name} has the wrong dimension")
        files = conn.execute(
            "select file, data from kb_segment_files where department = %s and segment = %s",
            [department, name],
        ).fetchall()
        folder = root / SEGMENTS
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".tmp-{name}-sync"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            # Derived files first and never one the rows are the source of: the verified
            # files written below must be what the segment serves (a kb_segment_files row
            # named chunk_doc.npy would otherwise re-map chunks to another document's audience).
            for file, data in files:
                if not _safe_relative(str(file)) or str(file) in ROW_FILES:
                    raise SyncRefused(f"segment {name} lists a derived file it may not hold")
                path = tmp / str(file)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(bytes(data))
            texts = [c[4] for c in chunks]
            offsets = np.zeros(n + 1, dtype=np.int64)
            if n:
                offsets[1:] = np.cumsum([len(b) for b in texts])
            (tmp / "texts.bin").write_bytes(b"".join(texts))
            np.save(tmp / "text_offsets.npy", offsets)
            np.save(tmp / "chunk_doc.npy", chunk_doc)
            dense = np.frombuffer(b"".join(c[5] for c in chunks), dtype=">f4").reshape(n, dim)
            np.save(tmp / "dense.npy", dense.astype(np.float16))
            anchors = [c[3].decode("utf-8") for c in chunks]
            (tmp / "anchors.json").write_text(json.dumps(anchors, ensure_ascii=False), encoding="utf-8")
            (tmp / "docs.json").write_text(json.dumps(docs, ensure_ascii=False), encoding="utf-8")
            (tmp / "meta.json").write_text(json.dumps(smeta), encoding="utf-8")
            if not all((tmp / f).is_file() for f in LEXICAL) or not (tmp / "bm25").is_dir():
                rebuild_lexical(tmp, docs, anchors, [t.decode("utf-8") for t in texts])
            try:
                Segment(tmp, dense_in_ram=False)  # postings, lengths and chunks agree
            except KnowledgeError as exc:
                raise SyncRefused(f"segment {name} does not load") from exc
            publish(tmp, folder / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def read_chunks(conn: Any, department: str, segment: str) -> list[tuple[int, int, str, bytes, bytes, bytes]]:
    """(local, doc_no, signature, anchor, body, vector as big-endian float4 bytes) of each
    chunk in order, through binary COPY (the mirror of ``pg_publish.chunk_rows``)."""
    columns = CHUNK_COLUMNS.replace("department, segment, ", "")
    sql = (
        f"copy (select {columns} from kb_chunks where department = %s and segment = %s order by local) "
        "to stdout (format binary)"
    )
    with conn.cursor() as cur, cur.copy(sql, [department, segment]) as copy:
        data = b"".join(bytes(block) for block in copy)
    return parse_chunks(data)


def parse_chunks(data: bytes) -> list[tuple[int, int, str, bytes, bytes, bytes]]:
    if not data.startswith(COPY_HEADER[:11]):
        raise SyncRefused("the chunk rows are not in the expected format")
    pos = 11
    _flags, ext = struct.unpack_from(">ii", data, pos)
    pos += 8 + ext
    out: list[tuple[int, int, str, bytes, bytes, bytes]] = []
    unpack_h = struct.Struct(">h").unpack_from
    unpack_i = struct.Struct(">i").unpack_from
    while True:
        (fields,) = unpack_h(data, pos)
        pos += 2
        if fields == -1:
            break
        if fields != 6:
            raise SyncRefused("the chunk rows are not in the expected format")
        values: list[bytes] = []
        for _ in range(6):
            (size,) = unpack_i(data, pos)
            pos += 4
            if size < 0:
                raise SyncRefused("a chunk row has an empty field")
            values.append(data[pos : pos + size])
            pos += size
        local = unpack_i(values[0])[0]
        doc_no = unpack_i(values[1])[0]
        vector = values[5]
        dim, _unused = struct.unpack_from(">hh", vector)
        body = vector[4:]
        if len(body) != dim * 4:
            raise SyncRefused("a vector is cut short")
        out.append((local, doc_no, values[2].decode("ascii"), values[3], values[4], body))
    return out


def rebuild_lexical(folder: Path, docs: list[dict[str, Any]], anchors: list[str], texts: list[str]) -> None:
    """Tokens, vocabulary and BM25 postings from the texts when the database lacks the
    derived files (``index.token_ids``: exactly as the indexer builds them)."""
    titles = [""] * len(texts)
    for d in docs:
        for i in range(int(d["start"]), int(d["start"]) + int(d["count"])):
            titles[i] = str(d.get("title", ""))
    vocab: list[str] = []
    ids: dict[str, int] = {}
    per_chunk = token_ids(
        [index_text(t, a, x) for t, a, x in zip(titles, anchors, texts, strict=True)], vocab, ids
    )
    tokens = np.concatenate(per_chunk) if per_chunk else np.zeros(0, dtype=np.int32)
    lengths = [len(t) for t in per_chunk]
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)
    np.save(folder / "tokens.npy", tokens)
    np.save(folder / "token_offsets.npy", offsets)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    shutil.rmtree(folder / "bm25", ignore_errors=True)
    lexical.save_bm25(lexical.build_bm25(tokens, offsets, len(vocab), ids), folder / "bm25")


def _safe_name(name: str) -> bool:
    return (
        bool(name)
        and "/" not in name
        and "\\" not in name
        and name not in (".", "..")
        and not name.startswith(".")
    )


def _safe_relative(file: str) -> bool:
    parts = file.split("/")
    return bool(file) and not file.startswith("/") and all(_safe_name(p) for p in parts)


class PgIndexHook:
    """The indexer's side with PostgreSQL (``index.VersionHook``): sync to the published
    version before a refresh, publish a new version before it is served locally, and
    record what this folder matches after the switch."""

    def __init__(self, db: Database, state_dir: Path, *, notices: AdminNotices | None = None) -> None:
        self.publisher = KnowledgePublisher(db)
        self.sync = KnowledgeSync(db, state_dir, notices=notices)
        self._published: dict[Path, str] = {}  # root → version published, waiting for its switch

    def poll(self, departments: Iterable[str]) -> list[str]:
        return self.sync.poll(departments)

    def before_refresh(self, root: Path, department: str) -> None:
        self.sync.sync_locked(root, department)
        if department in self.sync.closed:
            # Building here would cost a full re-index only for publish() to refuse it.
            raise PublishedMovedOn(
                f"{department}: this replica has not loaded the published index version; "
                "it answers from this department again once it has."
            )

    def written(self, root: Path, department: str, version: str) -> None:
        # built on what this folder last matched: if kb_current moved past it, refuse
        self.publisher.publish(root, department, version, base=read_marker(root))
        self._published[root] = version

    def switched(self, root: Path, department: str, version: str) -> None:
        if self._published.pop(root, None) == version:
            write_marker(root, version)
            fsync_path(root)

    def pending(self, root: Path, version: str) -> bool:
        return read_marker(root) != version

    def unchanged(self, root: Path, department: str, version: str) -> None:
        """A refresh found nothing new: publish the served version if the database does
        not have it (an installation moving to PostgreSQL; a publish that failed).

        Only when the database is still at what this folder last matched (or has nothing):
        a replica whose sync of a newer version failed would otherwise publish its older
        version over it and roll every replica back (perhaps over a revocation).
        """
        current = self.publisher.current(department)
        if current != version:
            marker = read_marker(root)
            if current is not None and current != marker:
                log.warning(
                    "%s: not republishing index version %s: the published one moved on and this "
                    "replica has not synced it yet (the next sync tick tries again)",
                    department,
                    version,
                )
                return
            self.publisher.publish(root, department, version, base=current)
        if read_marker(root) != version:
            write_marker(root, version)
