"""Per-department indexes on disk: segmented, incremental, crash-safe, one writer at a time.

This module builds; reading and writing a version's manifest, ``CURRENT`` and the lock
live in ``bot/knowledge/versions.py``, this replica's own fingerprints in
``bot/knowledge/fingerprints.py``.

Layout under ``<state_dir>/indexes/<dept>/``::

    CURRENT                 name of the version readers load (switched with os.replace)
    lock                    flock'd by a refresh so two refreshes never interleave
    LOCAL_FILES.json        with a shared store only: this replica's own fingerprints of the
                            files it hashed (``LocalFingerprints``; never published)
    segments/<segment>/     immutable chunk data (``bot/knowledge/segments.py``): texts,
                            float16 vectors, token ids, BM25 postings, and ``ann.faiss``
                            in big departments
    versions/<version>/     meta.json (format 2: the segments this version lists, each with
                            its TOMBSTONES — dead document numbers — plus counts and the
                            files that failed) and files.json (fingerprints)

Why segments: a refresh used to write a complete new version, so changing one file of a
100k-chunk department rewrote every chunk (9.45 s, 871 MB peak). Now a refresh writes
only the new and changed documents as a new segment, tombstones the old chunks of changed
and removed documents in a new manifest, and switches ``CURRENT``; unchanged segments are
listed again by name, never rewritten. Readers keep loaded segments across versions
(``bot/knowledge/retrieve.py``), and compute BM25's document frequencies, N and average
length over the live chunks the asker may see, across all segments, at query time — so
tombstoned chunks and segment boundaries never change a score.

Crash safety is unchanged: segments and the manifest are written beside the served
version, fsynced, and only then does ``CURRENT`` point at the new manifest; a crash at
any moment leaves the previous version serving, and a segment nothing lists is garbage
the next refresh deletes. A version written before segments existed reads as one
segment, and the first refresh adopts it by hard links (no copy).

Bounded memory: a build streams. Parsed documents collect in a batch whose estimated
footprint (:func:`chunk_cost`) is capped by ``knowledge.build_memory_mb``; a full batch
is embedded, tokenised and written as a segment, then dropped. So a 100k-chunk build
holds one batch, not the department.

Merges: a segment whose tombstoned chunks exceed ``MERGE_DEAD_SHARE`` of it, or more
than ``MAX_SEGMENTS`` segments, triggers a merge after the refresh (same lock, same
thread as the refresh — off the request path): the live chunks of a group of segments,
at most one batch's worth, are copied into one new segment and a new manifest drops the
old ones. A merged segment is never bigger than a batch, so a merge is bounded too.

ANN: when a department reaches ``knowledge.ann_threshold`` live chunks, new and merged
segments are written with a faiss IVF index (``bot/knowledge/ann.py``), and listed
segments written before it got there get theirs before the manifest switches; the
reader uses them for the dense half of hybrid search.

Fail closed: a file that cannot be parsed fails alone (reported, not indexed), and a
refresh that fails after its scan first narrows the served version to the documents whose
file and access context did not change — a manifest with more tombstones, written without
the embedder or any chunk data — so a revoked audience never keeps serving.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bot.config import Department
from bot.core.ports import AdminNotices, FailedFile, IndexReport, IndexStatus, ProgressFn
from bot.errors import KnowledgeError, ProviderUnavailable
from bot.knowledge import ann, audiences, dates, ingest, lexical
from bot.knowledge.chunking import index_text
from bot.knowledge.embedders import Embedder, check_embedder_allowed
from bot.knowledge.fingerprints import LocalFingerprints, fingerprint, identity, remember_local
from bot.knowledge.segments import (
    SEGMENTS,
    IndexData,
    add_ann,
    adopt,
    dir_bytes,
    load_data,
    write_segment,
)
from bot.knowledge.versions import (
    FORMAT,
    Manifest,
    SegmentRef,
    Stored,
    VersionHook,
    collect_garbage,
    current_version,
    dept_dir,
    load_stored,
    locked,
    read_meta,
    ref_of,
    segment_dirs,
    switch_current,
    write_version,
)

__all__ = [  # the version helpers are re-exported: callers that build also read versions
    "FORMAT",
    "IndexData",
    "Indexer",
    "Manifest",
    "SegmentRef",
    "VersionHook",
    "assemble",
    "collect_garbage",
    "current_version",
    "dept_dir",
    "load_data",
    "locked",
    "read_meta",
    "segment_dirs",
    "switch_current",
    "write_version",
]

EMBED_BATCH = 64  # wordllama pads a batch to its longest text: 512 × 512 tokens × 256-d float32 is ~200 MB
NOTICE_FILES = 10  # files named in one admin notice
DEFAULT_BUILD_MEMORY_MB = 256
DEFAULT_ANN_THRESHOLD = 100_000  # exact search stays < 50 ms while vectors fit DENSE_IN_RAM_MAX
MAX_SEGMENTS = 8
MERGE_DEAD_SHARE = 0.2

log = logging.getLogger(__name__)


def chunk_cost(text_chars: int, dim: int) -> int:
    """Bytes one chunk of a batch holds until the batch is written (an estimate).

    Its text three times (parsed record, index text, UTF-8 copy), Python string and list
    overhead, its tokens (str lists, then int32 ids and postings), and its vector (float32
    from the embedder, float16 stored). Measured against bench/refresh.py's peak RSS.
    """
    return 8 * text_chars + 8 * dim + 2048


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
        "date_kind": doc.date_kind,  # "updated" or "indexed" (first indexed with this content)
        "classification": doc.classification,
        "audiences": [list(a) for a in doc.audiences],
        "start": start,
        "count": len(doc.chunks),
    }


def token_ids(texts: list[str], vocab: list[str], vocab_ids: dict[str, int]) -> list[np.ndarray]:
    """Each index text's token ids, growing ``vocab`` (and ``vocab_ids``) with new tokens.

    The one place text becomes lexical ids: ``assemble`` and a replica rebuilding the
    lexical files of a synced segment (``pg_sync.rebuild_lexical``) both call it, so the
    two cannot drift apart.
    """
    out: list[np.ndarray] = []
    for toks in lexical.tokenize(texts):
        ids = []
        for t in toks:
            if t not in vocab_ids:
                vocab_ids[t] = len(vocab)
                vocab.append(t)
            ids.append(vocab_ids[t])
        out.append(np.asarray(ids, dtype=np.int32))
    return out


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
    new_tokens = token_ids(new_index_texts, vocab, vocab_ids)
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


def merge_data(parts: list[tuple[IndexData, set[int]]]) -> IndexData:
    """The live documents of several segments as one (token ids mapped to one vocabulary)."""
    out = IndexData(embedder=parts[0][0].embedder, dim=parts[0][0].dim)
    vocab_ids: dict[str, int] = {}
    dense_parts: list[np.ndarray] = []
    token_parts: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    for data, dead in parts:
        remap = np.array([vocab_ids.setdefault(t, len(vocab_ids)) for t in data.vocab], dtype=np.int32)
        for d, doc in enumerate(data.docs):
            if d in dead:
                continue
            a, b = doc["start"], doc["start"] + doc["count"]
            entry = {**doc, "start": len(out.texts)}
            out.texts.extend(data.texts[a:b])
            out.anchors.extend(data.anchors[a:b])
            dense_parts.append(data.dense[a:b])
            t0, t1 = data.token_offsets[a], data.token_offsets[b]
            token_parts.append(remap[data.tokens[t0:t1]] if t1 > t0 else np.zeros(0, np.int32))
            lengths.append(np.diff(data.token_offsets[a : b + 1]))
            out.docs.append(entry)
    out.vocab = list(vocab_ids)
    out.dense = np.concatenate(dense_parts) if dense_parts else np.zeros((0, out.dim), dtype=np.float16)
    out.tokens = np.concatenate(token_parts) if token_parts else np.zeros(0, dtype=np.int32)
    flat = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    out.token_offsets = np.concatenate([[0], np.cumsum(flat, dtype=np.int64)]).astype(np.int64)
    return out


class _Batch:
    """Parsed documents waiting to be written as one segment, with their estimated cost."""

    def __init__(self) -> None:
        self.docs: list[tuple[str, ingest.DocRecord | None]] = []
        self.cost = 0
        self.chunks = 0

    def add(self, rel: str, doc: ingest.DocRecord, dim: int) -> None:
        self.docs.append((rel, doc))
        self.chunks += len(doc.chunks)
        self.cost += sum(chunk_cost(len(c.text), dim) for c in doc.chunks)


class Indexer:
    """The ``Indexer`` port: ``refresh`` (incremental, crash-safe) and cheap ``status``.

    ``limits`` are the ``[knowledge]`` caps and link rule (``ingest.Limits``); ``notices``
    hears, once per refresh, which files were not indexed and why, and when a failed
    refresh had to narrow the served index. ``build_memory_mb`` caps a build's batch
    (``knowledge.build_memory_mb``); a department with ``ann_threshold`` live chunks or
    more gets ANN indexes in its new segments (``knowledge.ann_threshold``).
    """

    def __init__(
        self,
        *,
        state_dir: Path,
        embedder_for: Callable[[Department], Embedder],
        limits: ingest.Limits | None = None,
        notices: AdminNotices | None = None,
        build_memory_mb: float = DEFAULT_BUILD_MEMORY_MB,
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
    ) -> None:
        self._state_dir = Path(state_dir)
        self._embedder_for = embedder_for
        self.limits = limits or ingest.DEFAULT_LIMITS
        self._notices = notices
        self.build_memory_bytes = int(build_memory_mb * 2**20)
        self.ann_threshold = ann_threshold
        self.before_switch: Callable[[], None] | None = None  # test hook (crash injection)
        # Set by KnowledgeBase when replicas share a store (PostgreSQL): hears every version.
        self.hook: VersionHook | None = None
        # The configuration's group names (``bot.wiring``): a refresh then reports audience
        # entries naming a group that does not exist (``bot.knowledge.audiences``).
        self.groups: Callable[[], Collection[str]] | None = None
        self._group_uses: dict[str, audiences.Seen] = {}  # department → its files' group entries
        self.bytes_written = 0  # by the last refresh (segments + manifest), for benches
        # department root → segment folder → its documents (used under that department's lock)
        self._stored: dict[Path, Stored] = {}  # department root → the version this indexer wrote last
        self._listed: dict[Path, dict[Path, tuple[list[str], list[int]]]] = {}

    def root(self, department: str) -> Path:
        return dept_dir(self._state_dir, department)

    def refresh(self, department: Department, *, progress: ProgressFn | None = None) -> IndexReport:
        """Build the next version; one bad file fails alone.

        If the refresh fails after the scan (the embedder, the disk), the served version is
        narrowed before the exception propagates: every document whose file changed, lost
        its access context or disappeared is dropped, so revoked access never keeps serving.
        """
        started = time.perf_counter()
        self.bytes_written = 0
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
            if self.hook is not None:
                self.hook.before_refresh(root, department.name)  # build on the published version
            version = current_version(root)
            stored: Stored | None = None
            if version is not None:
                try:
                    stored = self._stored_at(root, version)
                except (OSError, ValueError, KeyError):
                    stored = None  # unreadable: rebuild everything
            sources = ingest.scan(department, self.limits)
            local = LocalFingerprints.load(root) if self.hook is not None else None
            try:
                embedder = self._embedder_for(department)
                check_embedder_allowed(embedder, department.classification)
                prev = stored
                if prev is not None and (prev.embedder != embedder.name or prev.dim != embedder.dim):
                    prev = None
                report, manifest = self._plan_and_build(
                    root, department, prev, embedder, progress, sources, local
                )
                new_version = version or ""
                if manifest is not None:
                    self._complete_ann(root, manifest)
                    new_version = write_version(
                        root, department.name, manifest, before_switch=self.before_switch, hook=self.hook
                    )
                    self.bytes_written += dir_bytes(root / "versions" / new_version)
                    self._remember(root, new_version, manifest)
                elif version is not None and self.hook is not None:
                    self.hook.unchanged(root, department.name, version)
            except Exception as exc:
                self._stored.pop(root, None)
                self._narrow(root, department, stored, sources, exc, local)
                remember_local(local, sources, department.name)
                raise
            remember_local(local, sources, department.name)
            if manifest is not None:
                collect_garbage(root, previous=version)
                try:
                    self._maybe_merge(root, department.name, new_version)
                except Exception as exc:  # the refresh itself succeeded; the next one retries
                    log.warning("%s: merging index segments failed (%s)", department.name, type(exc).__name__)
        self._tell_failed(department, report)
        report = self._warn_unknown_groups(department, report)
        return _finish(report, new_version, started)

    def _flush(self, root: Path, dept: str, batch: _Batch, embedder: Embedder, live: int) -> SegmentRef:
        """Embed, tokenise and write ``batch`` as a segment; ``live``: chunks already listed."""
        batch.docs.sort(key=lambda item: item[0])
        data = assemble(None, batch.docs, embedder)
        name = write_segment(root, dept, data, with_ann=live + len(data.texts) >= self.ann_threshold)
        self.bytes_written += dir_bytes(root / SEGMENTS / name)
        return ref_of(name, data)

    def _plan_and_build(
        self,
        root: Path,
        dept: Department,
        prev: Stored | None,
        embedder: Embedder,
        progress: ProgressFn | None,
        sources: list[ingest.SourceFile],
        local: LocalFingerprints | None = None,
    ) -> tuple[IndexReport, Manifest | None]:
        """Parse what changed, streaming it into new segments; the manifest to switch to.

        With ``local`` (a shared store), files whose only difference from the served
        version is this replica's own fingerprint of identical content (same hash, context
        and failure) are remembered there, and when nothing else differs no version is
        written — so nothing is published (``LocalFingerprints``).
        """
        prev_files = prev.files if prev else {}
        if local is not None:
            prev_files = local.view(prev_files)
        counts = {"added": 0, "changed": 0, "unchanged": 0}
        failed: list[FailedFile] = []
        files: dict[str, dict[str, Any]] = {}
        reused: set[str] = set()
        to_read: list[tuple[ingest.SourceFile, dict[str, Any] | None]] = []
        for src in sources:
            old = prev_files.get(src.rel)
            if old and fingerprint(old) == (src.size, src.mtime_ns, src.context):
                files[src.rel] = old
                if old.get("reason"):
                    failed.append(FailedFile(ingest.shown_path(dept.knowledge, src.rel), old["reason"]))
                else:
                    counts["unchanged"] += 1
                    reused.add(src.rel)
            else:
                to_read.append((src, old))
        present = {s.rel for s in sources}
        gone = [rel for rel in prev_files if rel not in present]
        removed = sum(1 for rel in gone if not prev_files[rel].get("reason"))
        touched = bool(to_read) or bool(gone)  # any fingerprint or document changed
        differs = bool(gone)  # with ``local``: something beyond this replica's fingerprints
        live_before = prev.live_chunks if prev else 0
        new_refs: list[SegmentRef] = []
        batch = _Batch()
        # Progress counts every file (unchanged ones are already done), as people expect
        # "310/310 files" for a department of 310 files, not "2/2".
        settled = len(sources) - len(to_read)
        dated = dates.git_dates(Path(dept.knowledge)) if to_read else {}  # one git pass

        def settle(rel: str, entry: dict[str, Any]) -> None:
            files[rel] = entry
            if local is not None:  # at once: a refresh failing later narrows with what it hashed
                local.record(rel, entry)

        for i, (src, old) in enumerate(to_read):
            if progress is not None:
                progress(settled + i, len(sources), src.rel)
            entry: dict[str, Any] = {"size": src.size, "mtime_ns": src.mtime_ns, "context": src.context}
            try:
                data = ingest.read_source(src, self.limits)
                entry["sha256"] = ingest.content_hash(data)
                if old and old["context"] == src.context and old.get("sha256") == entry["sha256"]:
                    settle(src.rel, {**old, **entry})  # touched, same content: reuse
                    if old.get("reason"):
                        failed.append(FailedFile(ingest.shown_path(dept.knowledge, src.rel), old["reason"]))
                    else:
                        counts["unchanged"] += 1
                        reused.add(src.rel)
                    continue
                doc = ingest.parse_file(src, dept, self.limits, data=data, dated=dated)
                if doc.date_kind == dates.INDEXED:  # keep the first date this content was seen
                    prior = old.get("indexed_at") if old and old.get("sha256") == entry["sha256"] else None
                    entry["indexed_at"] = prior or doc.modified
                    doc = replace(doc, modified=entry["indexed_at"])
            except ingest.IngestError as exc:
                reason = exc.reason
            except Exception as exc:  # a parser bug or pathology: this file fails alone
                reason = f"could not be parsed ({type(exc).__name__})"
                log.warning("%s: %s could not be parsed (%s)", dept.name, src.rel, type(exc).__name__)
            else:
                counts["changed" if old else "added"] += 1
                settle(src.rel, {**entry, "reason": ""})
                batch.add(src.rel, doc, embedder.dim)
                if batch.cost >= self.build_memory_bytes:
                    written = sum(r.chunks for r in new_refs)
                    new_refs.append(self._flush(root, dept.name, batch, embedder, live_before + written))
                    batch = _Batch()
                continue
            failed.append(FailedFile(ingest.shown_path(dept.knowledge, src.rel), reason))
            settle(src.rel, {"sha256": "", **entry, "reason": reason})
        if local is not None:
            for src, old in to_read:
                same = identity(files[src.rel])
                differs = differs or old is None or same is None or same != identity(old)
            touched = differs
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
            return _with_chunks(report, prev.live_chunks), None
        if batch.docs or not new_refs:
            written = sum(r.chunks for r in new_refs)
            new_refs.append(self._flush(root, dept.name, batch, embedder, live_before + written))
        live = set(prev.live()) if prev else set()
        manifest = self._manifest(root, prev, live - reused, new_refs)
        manifest.embedder, manifest.dim = embedder.name, embedder.dim
        manifest.files = files
        manifest.failed = [{"path": f.path, "reason": f.reason} for f in report.failed]
        return _with_chunks(report, manifest.chunks), manifest

    def _manifest(self, root: Path, stored: Stored | None, dead: set[str], new: list[SegmentRef]) -> Manifest:
        """``stored``'s segments with ``dead`` documents tombstoned, then ``new`` ones.

        A segment with nothing live is left out; a format-1 version is adopted first.
        """
        refs: list[SegmentRef] = []
        if stored is not None:
            if stored.legacy is not None:
                name = adopt(root, stored.legacy)
                stored.segments[0].name = name
                stored.legacy = None
            for ref in stored.segments:
                gone = ref.dead | {d for d, rel in enumerate(ref.rels) if rel in dead}
                if len(gone) < len(ref.rels):
                    refs.append(SegmentRef(ref.name, ref.rels, ref.counts, gone))
        refs.extend(r for r in new if r.rels)
        embedder = stored.embedder if stored else ""
        dim = stored.dim if stored else 0
        return Manifest(embedder, dim, refs)

    def _complete_ann(self, root: Path, manifest: Manifest) -> None:
        """Once a department has ``ann_threshold`` live chunks, every segment it lists gets
        an ANN index — also those written before it got there (the first batches of a
        streamed build, segments of a department that grew)."""
        if manifest.chunks < self.ann_threshold:
            return
        for ref in manifest.segments:
            folder = root / SEGMENTS / ref.name
            if ref.chunks and not (folder / ann.FILE).is_file():
                self.bytes_written += add_ann(folder)

    def _stored_at(self, root: Path, version: str) -> Stored:
        """The served version: remembered when this indexer wrote it, else read back."""
        cached = self._stored.get(root)
        if cached is not None and cached.version == version:
            return cached
        return load_stored(root, version, self._listed.setdefault(root, {}))

    def _remember(self, root: Path, version: str, manifest: Manifest) -> None:
        """Keep what was just written: the next refresh then reads no JSON back (versions
        are immutable, and any other writer's version has another name)."""
        self._stored[root] = Stored(
            version, manifest.embedder, manifest.dim, manifest.files, manifest.failed, manifest.segments
        )

    def _maybe_merge(self, root: Path, department: str, version: str) -> None:
        """Merge segments when tombstones or segment count call for it (see module doc)."""
        stored = self._stored_at(root, version)
        refs = stored.segments
        cap = max(1, self.build_memory_bytes // chunk_cost(1200, stored.dim))
        wanted = {i for i, r in enumerate(refs) if r.dead_chunks > MERGE_DEAD_SHARE * r.chunks}
        if len(refs) > MAX_SEGMENTS:
            by_size = sorted(range(len(refs)), key=lambda i: refs[i].chunks - refs[i].dead_chunks)
            wanted |= set(by_size[: len(refs) - MAX_SEGMENTS // 2])  # the small ones, down to half
        if not wanted:
            return
        group: list[int] = []
        size = 0
        for i in sorted(wanted, key=lambda i: refs[i].chunks - refs[i].dead_chunks):
            live = refs[i].chunks - refs[i].dead_chunks
            if group and size + live > cap:
                break
            group.append(i)
            size += live
        if len(group) == 1 and not refs[group[0]].dead:
            return
        parts = [(load_data(root / SEGMENTS / refs[i].name), refs[i].dead) for i in group]
        merged = merge_data(parts)
        del parts
        kept = [r for i, r in enumerate(refs) if i not in group]
        new: list[SegmentRef] = []
        if merged.texts:
            live_total = sum(r.chunks - r.dead_chunks for r in kept) + len(merged.texts)
            name = write_segment(root, department, merged, with_ann=live_total >= self.ann_threshold)
            self.bytes_written += dir_bytes(root / SEGMENTS / name)
            new.append(ref_of(name, merged))
        manifest = Manifest(stored.embedder, stored.dim, kept + new, stored.files, stored.failed)
        self._complete_ann(root, manifest)
        written = write_version(root, department, manifest, hook=self.hook)
        self.bytes_written += dir_bytes(root / "versions" / written)
        self._remember(root, written, manifest)
        collect_garbage(root, previous=version)
        log.info("%s: merged %d index segment(s) into %d", department, len(group), len(new))

    def _narrow(
        self,
        root: Path,
        dept: Department,
        stored: Stored | None,
        sources: list[ingest.SourceFile],
        exc: Exception,
        local: LocalFingerprints | None = None,
    ) -> None:
        """After a failed refresh: serve only documents whose file and context are unchanged.

        Narrowing writes only a manifest with more tombstones: it never embeds and never
        copies chunk data, so it does not depend on what may have failed.
        """
        kind = type(exc).__name__
        if stored is None:
            return
        now = {s.rel: (s.size, s.mtime_ns, s.context) for s in sources}
        # A replica's own fingerprints of identical content count (``LocalFingerprints``):
        # otherwise a replica with its own folder copy would narrow every document away.
        if local is not None:
            self._hash_unverified(stored, sources, local)
        known = local.view(stored.files) if local is not None else stored.files
        indexed = list(stored.live())
        keep = [
            rel for rel in indexed if (f := known.get(rel)) is not None and now.get(rel) == fingerprint(f)
        ]
        dropped = len(indexed) - len(keep)
        if not dropped:
            text = f"{dept.name}: refresh failed ({kind}); nothing to revoke, the served index is unchanged"
            log.warning("%s", text)
            self._tell(dept, "refresh-failed", text)
            return
        try:
            manifest = self._manifest(root, stored, set(indexed) - set(keep), [])
            manifest.files = {rel: known[rel] for rel in keep}  # the others count as new next time
            reason = f"dropped: refresh failed ({kind})"
            manifest.failed = [
                {"path": ingest.shown_path(dept.knowledge, rel), "reason": reason}
                for rel in sorted(set(indexed) - set(keep))
            ]
            write_version(root, dept.name, manifest, hook=_Lenient(self.hook) if self.hook else None)
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

    def _hash_unverified(
        self, stored: Stored, sources: list[ingest.SourceFile], local: LocalFingerprints
    ) -> None:
        """Before narrowing on a replica: hash each served document's file whose local
        fingerprint is unknown but whose access context is the version's, and remember the
        ones with the version's content (a replica that synced a version and failed its
        first refresh would otherwise revoke every document — and publish that). Reading
        only; a file that cannot be read is simply not remembered (so it is dropped)."""
        view = local.view(stored.files)
        live = set(stored.live())
        for src in sources:
            theirs = view.get(src.rel)
            if (
                src.rel not in live
                or theirs is None
                or fingerprint(theirs) == (src.size, src.mtime_ns, src.context)
                or theirs["context"] != src.context
                or not theirs.get("sha256")
                or theirs.get("reason")
            ):
                continue
            try:
                sha = ingest.content_hash(ingest.read_source(src, self.limits))
            except Exception:  # unreadable now: not vouched for, so narrowed away
                continue
            if sha == theirs["sha256"]:
                entry = {"size": src.size, "mtime_ns": src.mtime_ns, "context": src.context}
                local.record(src.rel, {**entry, "sha256": sha, "reason": ""})

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

    def _warn_unknown_groups(self, dept: Department, report: IndexReport) -> IndexReport:
        """Audience entries naming no existing group: in the report and one notice (the
        documents stay as narrow as written; the admin learns why nobody can read them)."""
        if self.groups is None:
            return report
        try:
            found = audiences.unknown_group_uses(
                dept,
                self.groups(),
                self.limits,
                version=ingest.PARSER_VERSION,
                seen=self._group_uses.setdefault(dept.name, {}),
            )
        except Exception as exc:  # a report extra: never fails the refresh that succeeded
            log.warning("%s: audience groups not checked (%s)", dept.name, type(exc).__name__)
            return report
        if not found:
            return report
        problems = [audiences.as_problem(file, use) for file, use in found]
        warnings = tuple(
            FailedFile(f"{p.file}:{p.line}" if p.line else p.file, f"{p.field}: {p.problem}")
            for p in problems
        )
        prefix = f"{Path(dept.knowledge).parent.name}/{Path(dept.knowledge).name}/"
        items = [
            f"{w.path.removeprefix(prefix)} (group {use.group!r})"
            for w, (_, use) in zip(warnings, found, strict=True)
        ]
        more = f"; and {len(items) - NOTICE_FILES} more" if len(items) > NOTICE_FILES else ""
        text = (
            f"{dept.name}: audience entries naming a group that does not exist in groups.yaml admit "
            "nobody (fix the spelling, or add the group): " + "; ".join(items[:NOTICE_FILES]) + more
        )
        self._tell(dept, "audience-unknown-group", text)
        return IndexReport(**{**report.__dict__, "warnings": warnings})

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
        if self.hook is not None:  # a shared store: this replica's own fingerprints count
            files = LocalFingerprints.load(root).view(files)
        now = {s.rel: (s.size, s.mtime_ns, s.context) for s in ingest.scan(department, self.limits)}
        built = {rel: fingerprint(f) for rel, f in files.items()}
        # The embedder the next refresh would build with (the department's own, else the
        # settings'): another one than the index's means a rebuild is due.
        try:
            wanted = self._embedder_for(department).name
        except ProviderUnavailable:  # an unknown name: the refresh will say so
            wanted = None
        stale = now != built or wanted != meta["embedder"]
        # Replicas: a version other replicas never received (an installation moving to
        # PostgreSQL, a publish that failed) is stale too, so the next refresh publishes it.
        stale = stale or (self.hook is not None and self.hook.pending(root, version))
        return IndexStatus(
            department=department.name,
            version=version,
            documents=int(meta["documents"]),
            chunks=int(meta["chunks"]),
            built_at=datetime.fromisoformat(meta["built_at"]),
            stale=stale,
            failed=tuple(FailedFile(f["path"], f["reason"]) for f in meta.get("failed", [])),
        )


class _Lenient:
    """A hook whose failures are logged, not raised: narrowing after a failed refresh must
    happen here even when the shared store cannot hear of it (it may be what failed)."""

    def __init__(self, inner: VersionHook) -> None:
        self._inner = inner

    def _try(self, what: str, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception as exc:
            log.warning("could not %s the narrowed index version (%s)", what, type(exc).__name__)

    def before_refresh(self, root: Path, department: str) -> None:
        self._try("sync", lambda: self._inner.before_refresh(root, department))

    def written(self, root: Path, department: str, version: str) -> None:
        self._try("publish", lambda: self._inner.written(root, department, version))

    def switched(self, root: Path, department: str, version: str) -> None:
        self._try("record", lambda: self._inner.switched(root, department, version))

    def unchanged(self, root: Path, department: str, version: str) -> None:
        self._try("publish", lambda: self._inner.unchanged(root, department, version))

    def pending(self, root: Path, version: str) -> bool:
        return self._inner.pending(root, version)


def _with_chunks(report: IndexReport, chunks: int) -> IndexReport:
    return IndexReport(**{**report.__dict__, "chunks": chunks})


def _finish(report: IndexReport, version: str, started: float) -> IndexReport:
    return IndexReport(
        **{**report.__dict__, "version": version, "seconds": round(time.perf_counter() - started, 3)}
    )
