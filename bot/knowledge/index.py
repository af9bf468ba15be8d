"""Per-department indexes on disk: incremental, crash-safe, one writer at a time.

Layout under ``<state_dir>/indexes/<dept>/``::

    CURRENT                 name of the version readers load (switched with os.replace)
    lock                    flock'd by a refresh so two refreshes never interleave
    versions/<version>/     meta.json, files.json (fingerprints), docs.json, anchors.json,
                            texts.bin + text_offsets.npy, chunk_doc.npy, dense.npy (float16),
                            tokens.npy + token_offsets.npy + vocab.json, bm25/ (bm25s)

Why: a refresh writes a complete new version beside the old one, fsyncs it, and only then
points ``CURRENT`` at it, so a crash at any moment leaves the previous version serving.
Unchanged files (same size+mtime, or same content hash) keep their chunks, vectors and
token ids; only new/changed files are parsed and embedded. The BM25 matrix is rebuilt
vectorised from stored token ids, which is cheap.

Fail closed: a file that cannot be parsed fails alone (reported, not indexed), and a
refresh that fails after its scan first narrows the served version to the documents whose
file and access context did not change, so a revoked audience never keeps serving.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bot.config import Department
from bot.core.ports import AdminNotices, FailedFile, IndexReport, IndexStatus, ProgressFn
from bot.errors import KnowledgeError
from bot.knowledge import ingest, lexical
from bot.knowledge.chunking import index_text
from bot.knowledge.embedders import Embedder, check_embedder_allowed

FORMAT = 1
EMBED_BATCH = 512
NOTICE_FILES = 10  # files named in one admin notice

log = logging.getLogger(__name__)


@dataclass
class IndexData:
    """Everything a version holds, in memory (used to build the next version)."""

    embedder: str
    dim: int
    docs: list[dict[str, Any]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    anchors: list[str] = field(default_factory=list)
    dense: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float16))
    tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    token_offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    vocab: list[str] = field(default_factory=list)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: list[dict[str, str]] = field(default_factory=list)


def dept_dir(state_dir: Path, department: str) -> Path:
    return Path(state_dir) / "indexes" / department


def current_version(root: Path) -> str | None:
    try:
        name = (root / "CURRENT").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return name if name and (root / "versions" / name / "meta.json").is_file() else None


def read_meta(vdir: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((vdir / "meta.json").read_text(encoding="utf-8"))
    return meta


# ── reading and writing a version ───────────────────────────────────────────────────


def load_data(vdir: Path) -> IndexData:
    meta = read_meta(vdir)
    offsets = np.load(vdir / "text_offsets.npy")
    blob = (vdir / "texts.bin").read_bytes()
    texts = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(len(offsets) - 1)]
    return IndexData(
        embedder=meta["embedder"],
        dim=int(meta["dim"]),
        docs=json.loads((vdir / "docs.json").read_text(encoding="utf-8")),
        texts=texts,
        anchors=json.loads((vdir / "anchors.json").read_text(encoding="utf-8")),
        dense=np.load(vdir / "dense.npy"),
        tokens=np.load(vdir / "tokens.npy"),
        token_offsets=np.load(vdir / "token_offsets.npy"),
        vocab=json.loads((vdir / "vocab.json").read_text(encoding="utf-8")),
        files=json.loads((vdir / "files.json").read_text(encoding="utf-8")),
        failed=meta.get("failed", []),
    )


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_version(
    root: Path, department: str, data: IndexData, *, before_switch: Callable[[], None] | None = None
) -> str:
    """Write ``data`` as a new version and atomically make it current; returns its name."""
    versions = root / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{now % 1:.6f}"[1:]
    version = f"{stamp}-{secrets.token_hex(3)}"
    tmp = versions / f".tmp-{version}"
    tmp.mkdir()
    try:
        n = len(data.texts)
        encoded = [t.encode("utf-8") for t in data.texts]
        offsets = np.zeros(n + 1, dtype=np.int64)
        if n:
            offsets[1:] = np.cumsum([len(b) for b in encoded])
        (tmp / "texts.bin").write_bytes(b"".join(encoded))
        np.save(tmp / "text_offsets.npy", offsets)
        chunk_doc = np.zeros(n, dtype=np.int32)
        for i, doc in enumerate(data.docs):
            chunk_doc[doc["start"] : doc["start"] + doc["count"]] = i
        np.save(tmp / "chunk_doc.npy", chunk_doc)
        np.save(tmp / "dense.npy", np.ascontiguousarray(data.dense, dtype=np.float16).reshape(n, data.dim))
        np.save(tmp / "tokens.npy", data.tokens.astype(np.int32))
        np.save(tmp / "token_offsets.npy", data.token_offsets.astype(np.int64))
        for name, obj in (
            ("docs", data.docs),
            ("anchors", data.anchors),
            ("vocab", data.vocab),
            ("files", data.files),
        ):
            (tmp / f"{name}.json").write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
        bm25 = lexical.build_bm25(
            data.tokens, data.token_offsets, len(data.vocab), {t: i for i, t in enumerate(data.vocab)}
        )
        lexical.save_bm25(bm25, tmp / "bm25")
        meta = {
            "format": FORMAT,
            "version": version,
            "department": department,
            "built_at": datetime.now(UTC).isoformat(),
            "embedder": data.embedder,
            "dim": data.dim,
            "documents": len(data.docs),
            "chunks": n,
            "failed": data.failed,
        }
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        for path in [*tmp.rglob("*"), tmp]:
            _fsync_path(path)
        final = versions / version
        os.rename(tmp, final)
        _fsync_path(versions)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if before_switch is not None:
        before_switch()  # test hook: a crash here must leave the old version serving
    pointer = root / "CURRENT.tmp"
    with pointer.open("w", encoding="utf-8") as fh:
        fh.write(version)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(pointer, root / "CURRENT")
    _fsync_path(root)
    return version


def collect_garbage(root: Path, previous: str | None = None) -> None:
    """Delete versions except the current one and ``previous`` (and stray temp dirs)."""
    versions = root / "versions"
    current = current_version(root)
    if current is None or not versions.is_dir():
        return
    for path in versions.iterdir():
        if path.name not in (current, previous):
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Exclusive per-department lock (released by the kernel if the process dies)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "lock").open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# ── building ─────────────────────────────────────────────────────────────────────────


def embed_chunks(embedder: Embedder, texts: list[str]) -> np.ndarray:
    parts = [embedder.embed(texts[i : i + EMBED_BATCH]) for i in range(0, len(texts), EMBED_BATCH)]
    if not parts:
        return np.zeros((0, embedder.dim), dtype=np.float16)
    return np.concatenate(parts).astype(np.float16)


def doc_entry(doc: ingest.DocRecord, start: int) -> dict[str, Any]:
    return {
        "doc_id": doc.doc_id,
        "rel": doc.rel,
        "path": doc.path,
        "title": doc.title,
        "modified": doc.modified,
        "classification": doc.classification,
        "audiences": [list(a) for a in doc.audiences],
        "start": start,
        "count": len(doc.chunks),
    }


def assemble(
    prev: IndexData | None,
    order: list[tuple[str, ingest.DocRecord | None]],
    embedder: Embedder,
) -> IndexData:
    """New index data: ``order`` lists (rel, parsed doc) or (rel, None) = reuse from ``prev``.

    Only parsed docs are tokenised and embedded.
    """
    vocab = list(prev.vocab) if prev else []
    vocab_ids = {t: i for i, t in enumerate(vocab)}
    prev_docs = {d["rel"]: d for d in prev.docs} if prev else {}
    new_docs = [d for _, d in order if d is not None]
    new_texts = [c.text for d in new_docs for c in d.chunks]
    new_index_texts = [index_text(d.title, c.anchor, c.text) for d in new_docs for c in d.chunks]
    new_dense = embed_chunks(embedder, new_index_texts)
    new_tokens: list[np.ndarray] = []
    for toks in lexical.tokenize(new_index_texts):
        ids = []
        for t in toks:
            if t not in vocab_ids:
                vocab_ids[t] = len(vocab)
                vocab.append(t)
            ids.append(vocab_ids[t])
        new_tokens.append(np.asarray(ids, dtype=np.int32))
    out = IndexData(embedder=embedder.name, dim=embedder.dim, vocab=vocab)
    dense_parts: list[np.ndarray] = []
    token_parts: list[np.ndarray] = []
    lengths: list[int] = []
    k = 0  # position in new chunks
    for rel, parsed in order:
        start = len(out.texts)
        if parsed is None:
            assert prev is not None
            old = dict(prev_docs[rel])
            a, b = old["start"], old["start"] + old["count"]
            out.texts.extend(prev.texts[a:b])
            out.anchors.extend(prev.anchors[a:b])
            dense_parts.append(prev.dense[a:b])
            t0, t1 = prev.token_offsets[a], prev.token_offsets[b]
            token_parts.append(prev.tokens[t0:t1])
            lengths.extend(np.diff(prev.token_offsets[a : b + 1]).tolist())
            old["start"] = start
            out.docs.append(old)
        else:
            n = len(parsed.chunks)
            out.texts.extend(c.text for c in parsed.chunks)
            out.anchors.extend(c.anchor for c in parsed.chunks)
            dense_parts.append(new_dense[k : k + n])
            token_parts.extend(new_tokens[k : k + n])
            lengths.extend(len(t) for t in new_tokens[k : k + n])
            k += n
            out.docs.append(doc_entry(parsed, start))
    assert k == len(new_texts)
    out.dense = np.concatenate(dense_parts) if dense_parts else np.zeros((0, embedder.dim), dtype=np.float16)
    out.tokens = np.concatenate(token_parts) if token_parts else np.zeros(0, dtype=np.int32)
    out.token_offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)
    return out


class _StoredEmbedder:
    """Stands in for the embedder of a stored version when nothing needs embedding.

    Narrowing after a failed refresh reuses stored vectors only, so it must not depend on
    the embedder that may be what failed.
    """

    is_cloud = False

    def __init__(self, data: IndexData) -> None:
        self.name = data.embedder
        self.dim = data.dim

    def embed(self, texts: list[str]) -> np.ndarray:
        raise KnowledgeError("narrowing an index never embeds")


class Indexer:
    """The ``Indexer`` port: ``refresh`` (incremental, crash-safe) and cheap ``status``.

    ``limits`` are the ``[knowledge]`` caps and link rule (``ingest.Limits``); ``notices``
    hears, once per refresh, which files were not indexed and why, and when a failed
    refresh had to narrow the served index.
    """

    def __init__(
        self,
        *,
        state_dir: Path,
        embedder_for: Callable[[Department], Embedder],
        limits: ingest.Limits | None = None,
        notices: AdminNotices | None = None,
    ) -> None:
        self._state_dir = Path(state_dir)
        self._embedder_for = embedder_for
        self.limits = limits or ingest.DEFAULT_LIMITS
        self._notices = notices
        self.before_switch: Callable[[], None] | None = None  # test hook (crash injection)

    def root(self, department: str) -> Path:
        return dept_dir(self._state_dir, department)

    def refresh(self, department: Department, *, progress: ProgressFn | None = None) -> IndexReport:
        """Build the next version; one bad file fails alone.

        If the refresh fails after the scan (the embedder, the disk), the served version is
        narrowed before the exception propagates: every document whose file changed, lost
        its access context or disappeared is dropped, so revoked access never keeps serving.
        """
        started = time.perf_counter()
        root = self.root(department.name)
        if not Path(department.knowledge).is_dir():
            # Deleting (or locking) a folder is a way to revoke it: stop serving the old index
            # rather than answer from documents nobody can re-check any more.
            with locked(root):
                (root / "CURRENT").unlink(missing_ok=True)
            gone = f"{department.name}: the knowledge folder is gone or unreadable; its index is not served"
            self._tell(department, "refresh-failed", gone)
            raise KnowledgeError(f"The knowledge folder of {department.title} does not exist.")
        with locked(root):
            version = current_version(root)
            stored: IndexData | None = None
            if version is not None:
                try:
                    stored = load_data(root / "versions" / version)
                except (OSError, ValueError, KeyError):
                    stored = None  # unreadable: rebuild everything
            sources = ingest.scan(department, self.limits)
            try:
                embedder = self._embedder_for(department)
                check_embedder_allowed(embedder, department.classification)
                prev = stored
                if prev is not None and (prev.embedder != embedder.name or prev.dim != embedder.dim):
                    prev = None
                report, data = self._plan_and_build(department, prev, embedder, progress, sources)
                new_version = version or ""
                if data is not None:
                    new_version = write_version(root, department.name, data, before_switch=self.before_switch)
            except Exception as exc:
                self._narrow(root, department, stored, sources, exc)
                raise
            if data is not None:
                collect_garbage(root, previous=version)
        self._tell_failed(department, report)
        return _finish(report, new_version, started)

    def _plan_and_build(
        self,
        dept: Department,
        prev: IndexData | None,
        embedder: Embedder,
        progress: ProgressFn | None,
        sources: list[ingest.SourceFile],
    ) -> tuple[IndexReport, IndexData | None]:
        prev_files = prev.files if prev else {}
        counts = {"added": 0, "changed": 0, "unchanged": 0}
        failed: list[FailedFile] = []
        files: dict[str, dict[str, Any]] = {}
        order: list[tuple[str, ingest.DocRecord | None]] = []
        touched = False  # any fingerprint or document changed
        to_read: list[tuple[ingest.SourceFile, dict[str, Any] | None]] = []
        for src in sources:
            old = prev_files.get(src.rel)
            if old and _fingerprint(old) == (src.size, src.mtime_ns, src.context):
                files[src.rel] = old
                if old.get("reason"):
                    failed.append(FailedFile(ingest.shown_path(dept.knowledge, src.rel), old["reason"]))
                else:
                    counts["unchanged"] += 1
                    order.append((src.rel, None))
            else:
                to_read.append((src, old))
        present = {s.rel for s in sources}
        gone = [rel for rel in prev_files if rel not in present]
        removed = sum(1 for rel in gone if not prev_files[rel].get("reason"))
        touched |= bool(to_read) or bool(gone)
        # Progress counts every file (unchanged ones are already done), as people expect
        # "310/310 files" for a department of 310 files, not "2/2".
        settled = len(sources) - len(to_read)
        for i, (src, old) in enumerate(to_read):
            if progress is not None:
                progress(settled + i, len(sources), src.rel)
            entry: dict[str, Any] = {"size": src.size, "mtime_ns": src.mtime_ns, "context": src.context}
            try:
                data = ingest.read_source(src, self.limits)
                entry["sha256"] = ingest.content_hash(data)
                if old and old["context"] == src.context and old.get("sha256") == entry["sha256"]:
                    files[src.rel] = {**old, **entry}  # touched, same content: reuse
                    if old.get("reason"):
                        failed.append(FailedFile(ingest.shown_path(dept.knowledge, src.rel), old["reason"]))
                    else:
                        counts["unchanged"] += 1
                        order.append((src.rel, None))
                    continue
                doc = ingest.parse_file(src, dept, self.limits, data=data)
            except ingest.IngestError as exc:
                reason = exc.reason
            except Exception as exc:  # a parser bug or pathology: this file fails alone
                reason = f"could not be parsed ({type(exc).__name__})"
                log.warning("%s: %s could not be parsed (%s)", dept.name, src.rel, type(exc).__name__)
            else:
                counts["changed" if old else "added"] += 1
                files[src.rel] = {**entry, "reason": ""}
                order.append((src.rel, doc))
                continue
            failed.append(FailedFile(ingest.shown_path(dept.knowledge, src.rel), reason))
            files[src.rel] = {"sha256": "", **entry, "reason": reason}
        if progress is not None:
            progress(len(sources), len(sources), "")
        report = IndexReport(
            department=dept.name,
            added=counts["added"],
            changed=counts["changed"],
            unchanged=counts["unchanged"],
            removed=removed,
            failed=tuple(sorted(failed, key=lambda f: f.path)),
        )
        if not touched and prev is not None:
            return _with_chunks(report, len(prev.texts)), None
        order.sort(key=lambda item: item[0])
        data_out = assemble(prev, order, embedder)
        data_out.files = files
        data_out.failed = [{"path": f.path, "reason": f.reason} for f in report.failed]
        return _with_chunks(report, len(data_out.texts)), data_out

    def _narrow(
        self,
        root: Path,
        dept: Department,
        stored: IndexData | None,
        sources: list[ingest.SourceFile],
        exc: Exception,
    ) -> None:
        """After a failed refresh: serve only documents whose file and context are unchanged."""
        kind = type(exc).__name__
        if stored is None:
            return
        now = {s.rel: (s.size, s.mtime_ns, s.context) for s in sources}
        indexed = [d["rel"] for d in stored.docs]
        keep = [
            rel
            for rel in indexed
            if (f := stored.files.get(rel)) is not None and now.get(rel) == _fingerprint(f)
        ]
        dropped = len(indexed) - len(keep)
        if not dropped:
            text = f"{dept.name}: refresh failed ({kind}); nothing to revoke, the served index is unchanged"
            log.warning("%s", text)
            self._tell(dept, "refresh-failed", text)
            return
        try:
            data = assemble(stored, [(rel, None) for rel in sorted(keep)], _StoredEmbedder(stored))
            data.files = {rel: stored.files[rel] for rel in keep}  # the others count as new next time
            reason = f"dropped: refresh failed ({kind})"
            data.failed = [
                {"path": ingest.shown_path(dept.knowledge, rel), "reason": reason}
                for rel in sorted(set(indexed) - set(keep))
            ]
            write_version(root, dept.name, data)
            collect_garbage(root)
            text = (
                f"{dept.name}: refresh failed ({kind}); {dropped} changed or removed document(s) were "
                f"dropped from the served index until the next successful refresh"
            )
        except Exception as inner:
            # Cannot narrow: serve nothing rather than revoked documents.
            with contextlib.suppress(OSError):
                (root / "CURRENT").unlink()
            text = (
                f"{dept.name}: refresh failed ({kind}) and the index could not be narrowed "
                f"({type(inner).__name__}); the department has no index until the next successful refresh"
            )
        log.warning("%s", text)
        exc.add_note(text)
        self._tell(dept, "refresh-failed", text)

    def _tell_failed(self, dept: Department, report: IndexReport) -> None:
        """One notice per refresh listing the files not indexed (names and reasons only)."""
        if not report.failed:
            return
        prefix = f"{Path(dept.knowledge).parent.name}/{Path(dept.knowledge).name}/"
        items = [f"{f.path.removeprefix(prefix)} ({f.reason})" for f in report.failed]
        n = len(items)
        more = f"; and {n - NOTICE_FILES} more" if n > NOTICE_FILES else ""
        text = f"{dept.name}: {n} file{'s' if n != 1 else ''} not indexed: " + "; ".join(items[:NOTICE_FILES])
        self._tell(dept, "files-skipped", text + more)

    def _tell(self, dept: Department, kind: str, text: str) -> None:
        if self._notices is None:
            return
        try:
            self._notices.notify(dept.name, kind, text)
        except Exception:
            log.exception("could not record an admin notice for %s", dept.name)

    def status(self, department: Department) -> IndexStatus:
        root = self.root(department.name)
        version = current_version(root)
        if version is None:
            return IndexStatus(department=department.name, version=None, stale=True)
        vdir = root / "versions" / version
        meta = read_meta(vdir)
        files = json.loads((vdir / "files.json").read_text(encoding="utf-8"))
        now = {s.rel: (s.size, s.mtime_ns, s.context) for s in ingest.scan(department, self.limits)}
        built = {rel: _fingerprint(f) for rel, f in files.items()}
        wanted = department.embedder or meta["embedder"]
        stale = now != built or wanted != meta["embedder"]
        return IndexStatus(
            department=department.name,
            version=version,
            documents=int(meta["documents"]),
            chunks=int(meta["chunks"]),
            built_at=datetime.fromisoformat(meta["built_at"]),
            stale=stale,
            failed=tuple(FailedFile(f["path"], f["reason"]) for f in meta.get("failed", [])),
        )


def _fingerprint(entry: dict[str, Any]) -> tuple[int, int, str]:
    """What decides "unchanged" without reading the file: size, mtime and access context."""
    return entry["size"], entry["mtime_ns"], entry["context"]


def _with_chunks(report: IndexReport, chunks: int) -> IndexReport:
    return IndexReport(**{**report.__dict__, "chunks": chunks})


def _finish(report: IndexReport, version: str, started: float) -> IndexReport:
    return IndexReport(
        **{**report.__dict__, "version": version, "seconds": round(time.perf_counter() - started, 3)}
    )
