"""This replica's own fingerprints of the files it hashed (``LOCAL_FILES.json``).

Why its own module: only a replica sharing its index through PostgreSQL needs it (see
:class:`LocalFingerprints`); the writer (``bot/knowledge/index.py``) calls it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from bot.knowledge import ingest

log = logging.getLogger(__name__)


def fingerprint(entry: dict[str, Any]) -> tuple[int, int, str]:
    """What decides "unchanged" without reading the file: size, mtime and access context."""
    return entry["size"], entry["mtime_ns"], entry["context"]


def identity(entry: dict[str, Any]) -> tuple[str, str, str] | None:
    """What a file contributes to the index: its access context, content hash and failure.

    None when neither a hash nor a failure is known: such an entry never vouches for a file.
    """
    sha, reason = str(entry.get("sha256") or ""), str(entry.get("reason") or "")
    return (str(entry["context"]), sha, reason) if sha or reason else None


class LocalFingerprints:
    """This replica's own (size, mtime, context) of files it hashed, beside their content.

    Why: with a shared store (PostgreSQL) every replica serves the version one of them
    published, whose ``files.json`` holds the PUBLISHER's mtimes. Replicas with their own
    copies of a knowledge folder (two git checkouts) have other mtimes, so the version's
    fingerprints never match their files: each would find the index stale, hash every file,
    find nothing new, and still publish a version with its own mtimes — which makes every
    other replica stale in turn, forever. This file (``<dept root>/LOCAL_FILES.json``, never
    published) remembers, per file, the local fingerprint seen when the file was hashed and
    what it hashed to. :meth:`view` lets a version's entry count as matching a local file
    only when this replica hashed that very file (same size, mtime and access context as
    now) to the same content hash and failure as the version lists — so a real change of
    content or access always shows as one, exactly as without it. Not used without a
    shared store: a single installation behaves as before.
    """

    FILE = "LOCAL_FILES.json"

    def __init__(self, root: Path, entries: dict[str, dict[str, Any]]) -> None:
        self.root = root
        self.entries = entries

    @classmethod
    def load(cls, root: Path) -> LocalFingerprints:
        """What ``root`` remembers; nothing when the file is missing or unreadable (every
        file is then hashed once more, which only costs time)."""
        try:
            raw = json.loads((root / cls.FILE).read_text(encoding="utf-8"))
            entries = {
                str(rel): e
                for rel, e in raw.items()
                if isinstance(e, dict) and {"size", "mtime_ns", "context"} <= e.keys()
            }
        except (OSError, ValueError, AttributeError):
            entries = {}
        return cls(root, entries)

    def view(self, files: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """``files`` (a version's) with this replica's fingerprint wherever it hashed the
        same content under the same access context."""
        out = dict(files)
        for rel, mine in self.entries.items():
            theirs = files.get(rel)
            if theirs is None or fingerprint(theirs) == fingerprint(mine):
                continue
            same = identity(mine)
            if same is not None and same == identity(theirs):
                out[rel] = {**theirs, "size": mine["size"], "mtime_ns": mine["mtime_ns"]}
        return out

    def record(self, rel: str, entry: dict[str, Any]) -> None:
        """``entry`` is what hashing the file now gave (fingerprint from the scan)."""
        self.entries[rel] = {
            "size": entry["size"],
            "mtime_ns": entry["mtime_ns"],
            "context": entry["context"],
            "sha256": str(entry.get("sha256") or ""),
            "reason": str(entry.get("reason") or ""),
        }

    def save(self, present: set[str]) -> None:
        """Keep the files that still exist; atomic, so ``status`` never reads half a file."""
        self.entries = {rel: e for rel, e in self.entries.items() if rel in present}
        tmp = self.root / f"{self.FILE}.tmp"
        tmp.write_text(json.dumps(self.entries, ensure_ascii=False), encoding="utf-8")
        tmp.replace(self.root / self.FILE)


def remember_local(
    local: LocalFingerprints | None, sources: list[ingest.SourceFile], department: str
) -> None:
    """Save what a refresh hashed (also a failed one: the hashes are facts about the files)."""
    if local is None:
        return
    try:
        local.save({s.rel for s in sources})
    except OSError as exc:  # only costs hashing again next time
        log.warning("%s: could not remember local fingerprints (%s)", department, type(exc).__name__)
