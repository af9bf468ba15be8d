"""A department's index versions on disk: the manifest format, the ``CURRENT`` pointer,
the per-department lock and garbage collection (what readers, the writer and the
PostgreSQL sync share; building lives in ``bot/knowledge/index.py``).

Layout under ``<state_dir>/indexes/<dept>/``::

    CURRENT                 name of the version readers load (switched with os.replace)
    lock                    flock'd by a refresh so two refreshes never interleave
    segments/<segment>/     immutable chunk data (``bot/knowledge/segments.py``)
    versions/<version>/     meta.json (format 2: the segments this version lists, each with
                            its TOMBSTONES — dead document numbers — plus counts and the
                            files that failed) and files.json (fingerprints)

Why its own module: the sync from PostgreSQL, the console's document pages and
``/metrics`` read versions without building anything, and the writer (``Indexer``) is
long enough on its own. Crash safety lives here: segments and the manifest are written
beside the served version, fsynced, and only then does ``CURRENT`` point at the new
manifest, so a crash at any moment leaves the previous version serving.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from bot.knowledge.segments import SEGMENTS, IndexData, fsync_path, new_name, publish, write_segment

FORMAT = 2  # a manifest of segments; format 1 was one self-contained version folder


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


def segment_dirs(root: Path, vdir: Path, meta: dict[str, Any] | None = None) -> list[tuple[Path, list[int]]]:
    """(folder, dead document numbers) of each segment a version lists, in order.

    A format-1 version is its own single segment with nothing dead.
    """
    meta = read_meta(vdir) if meta is None else meta
    if "segments" not in meta:
        return [(vdir, [])]
    return [(root / SEGMENTS / s["name"], [int(d) for d in s["dead"]]) for s in meta["segments"]]


# ── what a version holds, as the writer needs it ─────────────────────────────────────


@dataclass
class SegmentRef:
    """A segment as one version lists it: which of its documents are dead."""

    name: str
    rels: list[str]  # rel of each document number
    counts: list[int]  # chunks of each document
    dead: set[int] = field(default_factory=set)

    @property
    def chunks(self) -> int:
        return sum(self.counts)

    @property
    def dead_chunks(self) -> int:
        return sum(self.counts[d] for d in self.dead)

    def entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "documents": len(self.rels),
            "chunks": self.chunks,
            "dead": sorted(self.dead),
            "dead_chunks": self.dead_chunks,
        }


@dataclass
class Stored:
    """The served version, from its manifest and its segments' docs.json (no chunk data)."""

    version: str
    embedder: str
    dim: int
    files: dict[str, dict[str, Any]]
    failed: list[dict[str, str]]
    segments: list[SegmentRef]
    legacy: Path | None = None  # a format-1 version folder: adopted before it is listed

    def live(self) -> dict[str, tuple[int, int]]:
        """rel → (segment position, document number) of every live document."""
        out: dict[str, tuple[int, int]] = {}
        for s, ref in enumerate(self.segments):
            for d, rel in enumerate(ref.rels):
                if d not in ref.dead:
                    out[rel] = (s, d)
        return out

    @property
    def live_chunks(self) -> int:
        return sum(ref.chunks - ref.dead_chunks for ref in self.segments)


def load_stored(
    root: Path, version: str, cache: dict[Path, tuple[list[str], list[int]]] | None = None
) -> Stored:
    """The served version as the writer needs it. ``cache`` keeps each segment's document
    list between refreshes (segments never change, and parsing every segment's docs.json
    again would make a 1-file refresh proportional to the department)."""
    vdir = root / "versions" / version
    meta = read_meta(vdir)
    refs = []
    seen: set[Path] = set()
    for folder, dead in segment_dirs(root, vdir, meta):
        listed = cache.get(folder) if cache is not None else None
        if listed is None:
            docs = json.loads((folder / "docs.json").read_text(encoding="utf-8"))
            listed = [d["rel"] for d in docs], [int(d["count"]) for d in docs]
            if cache is not None and folder != vdir:
                cache[folder] = listed
        seen.add(folder)
        refs.append(SegmentRef(folder.name, listed[0], listed[1], set(dead)))
    if cache is not None:
        for gone in [f for f in cache if f not in seen]:
            del cache[gone]
    return Stored(
        version=version,
        embedder=meta["embedder"],
        dim=int(meta["dim"]),
        files=json.loads((vdir / "files.json").read_text(encoding="utf-8")),
        failed=meta.get("failed", []),
        segments=refs,
        legacy=None if "segments" in meta else vdir,
    )


@dataclass
class Manifest:
    """A version to write: segments (with tombstones) plus the files' fingerprints."""

    embedder: str
    dim: int
    segments: list[SegmentRef]
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: list[dict[str, str]] = field(default_factory=list)

    @property
    def documents(self) -> int:
        return sum(len(s.rels) - len(s.dead) for s in self.segments)

    @property
    def chunks(self) -> int:
        return sum(s.chunks - s.dead_chunks for s in self.segments)


def ref_of(name: str, data: IndexData) -> SegmentRef:
    return SegmentRef(name, [d["rel"] for d in data.docs], [int(d["count"]) for d in data.docs])


# ── writing a version ───────────────────────────────────────────────────────────────


class VersionHook(Protocol):
    """What a shared store (``bot.knowledge.pg_sync.PgIndexHook``) hears from the writer.

    ``before_refresh`` runs under the department's lock before the served version is read
    (bring it up to the published one; raises ``RefreshBusy`` only when this replica cannot
    and has stopped serving the department, so nothing is built that could not be
    published). ``written`` runs once a version is
    complete on disk and BEFORE ``CURRENT`` moves: raising there keeps the old version
    serving. ``switched`` runs after ``CURRENT`` moved; ``unchanged`` after a refresh that
    found nothing to write (a version that was never published gets published then).
    """

    def before_refresh(self, root: Path, department: str) -> None: ...

    def written(self, root: Path, department: str, version: str) -> None: ...

    def switched(self, root: Path, department: str, version: str) -> None: ...

    def unchanged(self, root: Path, department: str, version: str) -> None: ...

    def pending(self, root: Path, version: str) -> bool:
        """True when ``version``, served here, is not known to be the published one."""
        ...


def switch_current(root: Path, version: str) -> None:
    """Point ``CURRENT`` at ``version`` atomically (fsynced file, rename, fsynced folder)."""
    pointer = root / "CURRENT.tmp"
    with pointer.open("w", encoding="utf-8") as fh:
        fh.write(version)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(pointer, root / "CURRENT")
    fsync_path(root)


def write_version(
    root: Path,
    department: str,
    data: IndexData | Manifest,
    *,
    before_switch: Callable[[], None] | None = None,
    hook: VersionHook | None = None,
) -> str:
    """Write a manifest (or ``data`` as a one-segment version) and atomically make it current.

    Returns the version's name. Only the manifest and ``files.json`` are written here;
    segments are written before (``write_segment``) and only listed. ``hook`` hears the
    version before and after the switch (publishing it to PostgreSQL).
    """
    if isinstance(data, IndexData):
        name = write_segment(root, department, data)
        manifest = Manifest(data.embedder, data.dim, [ref_of(name, data)], data.files, data.failed)
    else:
        manifest = data
    versions = root / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    version = new_name()
    tmp = versions / f".tmp-{version}"
    tmp.mkdir()
    try:
        meta = {
            "format": FORMAT,
            "version": version,
            "department": department,
            "built_at": datetime.now(UTC).isoformat(),
            "embedder": manifest.embedder,
            "dim": manifest.dim,
            "documents": manifest.documents,
            "chunks": manifest.chunks,
            "failed": manifest.failed,
            "segments": [s.entry() for s in manifest.segments],
        }
        (tmp / "files.json").write_text(json.dumps(manifest.files, ensure_ascii=False), encoding="utf-8")
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        publish(tmp, versions / version)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if before_switch is not None:
        before_switch()  # test hook: a crash here must leave the old version serving
    if hook is not None:
        hook.written(root, department, version)  # raising keeps the old version serving
    switch_current(root, version)
    if hook is not None:
        hook.switched(root, department, version)
    return version


def collect_garbage(root: Path, previous: str | None = None) -> None:
    """Delete versions except the current one and ``previous``, then every segment (and
    stray temp folder) neither of them lists."""
    versions = root / "versions"
    current = current_version(root)
    if current is None or not versions.is_dir():
        return
    for path in versions.iterdir():
        if path.name not in (current, previous):
            shutil.rmtree(path, ignore_errors=True)
    listed: set[str] = set()
    for name in (current, previous):
        vdir = versions / name if name else None
        if vdir is None or not (vdir / "meta.json").is_file():
            continue
        with contextlib.suppress(OSError, ValueError, KeyError):
            listed.update(folder.name for folder, _ in segment_dirs(root, vdir))
    segments = root / SEGMENTS
    if segments.is_dir():
        for path in segments.iterdir():
            if path.name not in listed:
                shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def locked(root: Path, *, wait: bool = True) -> Iterator[bool]:
    """Exclusive per-department lock (released by the kernel if the process dies); True
    once held. ``wait=False`` yields False at once while someone else holds it."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "lock").open("a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
