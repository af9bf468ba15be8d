"""The walk over a department's knowledge folder: what may be read, under which access files.

``Walker`` lists every candidate document of a folder without reading it (only
``_access.yaml`` files are read), and ``read_source`` reads one later, checked. Why:

* **Only regular files whose real path stays inside the folder.** Symbolic links are not
  followed unless ``follow_links = "inside"``, and then only when the real target stays
  inside the folder, is not hidden and is a document of the same type; a followed link's
  documents get the access files of BOTH the link's folder and the target's (a reader
  must match both), so a link can never widen. Loops and repeated folder links are
  refused. FIFOs, sockets and devices are skipped. Every skipped entry becomes a
  ``SourceFile`` with ``refused`` set (the reason is reported, the file never read) and a
  ``Problem`` for ``deptbot check``.
* **Access files**: an invalid ``_access.yaml`` or a look-alike name (``metadata``) refuses
  its folder and everything below it; the raw bytes of every access file above a document
  are hashed into its ``context``, so any edit re-indexes what it covers.
* **Swaps between scan and read**: a file is opened with ``O_NOFOLLOW`` (and
  ``O_NONBLOCK``, so a FIFO swapped in cannot block) and its device and inode must be the
  ones the scan saw; callers parse from the bytes returned here, never from the path.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config import Department
from bot.errors import KnowledgeError
from bot.knowledge.formats import IngestError
from bot.knowledge.metadata import (
    ACCESS_FILE,
    DEFAULT_IGNORED_KEYS,
    MAX_ACCESS_BYTES,
    FolderAccess,
    MetadataError,
    Problem,
    access_name_kind,
    parse_access,
)
from bot.settings_schema import Knowledge, parse_section

SUFFIXES = frozenset({".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx", ".csv"})
NOT_REGULAR = "not a regular file (FIFO, socket or device): skipped"
OUTSIDE = "symbolic link pointing outside the knowledge folder: not followed"
SWAPPED = "changed between scan and read: not indexed this time"


@dataclass(frozen=True)
class Limits:
    """The ``[knowledge]`` settings that decide what is read and how much of it."""

    max_file_mb: float = 25.0
    max_decompressed_mb: float = 100.0
    max_pdf_pages: int = 2000
    max_chunks_per_file: int = 5000
    follow_links: str = "never"  # "never" | "inside"
    front_matter_ignore: tuple[str, ...] = DEFAULT_IGNORED_KEYS

    @classmethod
    def from_settings(cls, section: Mapping[str, Any]) -> Limits:
        """The ``[knowledge]`` table, checked by the settings schema (missing keys take the
        packaged defaults); ConfigError names the setting."""
        k = parse_section(Knowledge, section, "knowledge")
        return cls(
            max_file_mb=k.max_file_mb,
            max_decompressed_mb=k.max_decompressed_mb,
            max_pdf_pages=k.max_pdf_pages,
            max_chunks_per_file=k.max_chunks_per_file,
            follow_links=k.follow_links,
            front_matter_ignore=tuple(k.front_matter_ignore),
        )

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * (1 << 20))

    @property
    def max_decompressed_bytes(self) -> int:
        return int(self.max_decompressed_mb * (1 << 20))

    def fingerprint(self) -> str:
        """Part of every file's context: changing a cap re-checks every file."""
        return hashlib.sha256(repr(self).encode()).hexdigest()[:12]


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class SourceFile:
    """A candidate document (or a refused entry) plus the access context that applies to it."""

    abspath: Path  # where it was found (a followed link: the link)
    rel: str
    size: int
    mtime_ns: int
    context: str  # hash of access files above it + classification + parser version + limits
    access: tuple[FolderAccess, ...] = ()
    refused: str = ""  # set: never read; the reason is reported as the file's failure
    real: Path | None = None  # the regular file to open (a followed link: its target)
    dev: int = 0
    ino: int = 0

    @property
    def suffix(self) -> str:
        return (self.real or self.abspath).suffix.lower()


def shown_path(knowledge: Path, rel: str) -> str:
    """Stable, readable path: the knowledge folder's last two parts plus ``rel``."""
    return f"{knowledge.parent.name}/{knowledge.name}/{rel}"


@dataclass(frozen=True)
class _Chain:
    """The access files that apply to a folder, their digest, and a refusal if any."""

    access: tuple[FolderAccess, ...]
    ctx: str
    refused: str = ""

    def merge(self, other: _Chain) -> _Chain:
        """Both apply (a followed link): a reader must match the levels of both."""
        extra = tuple(a for a in other.access if a not in self.access)
        ctx = hashlib.sha256(f"{self.ctx}|{other.ctx}".encode()).hexdigest()[:16]
        return _Chain((*self.access, *extra), ctx, self.refused or other.refused)


class Walker:
    """One scan of one department's folder: ``run()`` → sources, plus ``problems``.

    ``version`` (the parser version) is part of every file's context, like the
    department's classification and the limits, so changing any of them re-checks all.
    """

    def __init__(self, dept: Department, limits: Limits, *, version: str) -> None:
        self.dept = dept
        self.limits = limits
        self.root = Path(dept.knowledge)
        self.real_root = Path(os.path.realpath(self.root))
        self.base = _Chain((), f"{version}:{int(dept.classification)}:{limits.fingerprint()}")
        self.out: list[SourceFile] = []
        self.problems: list[Problem] = []
        self.access_files: dict[str, str] = {}  # rel → text of every valid access file read
        self._chains: dict[Path, _Chain] = {}
        self._listings: dict[Path, list[os.DirEntry[str]] | None] = {}
        self._linked: set[Path] = set()

    def run(self) -> list[SourceFile]:
        if self._list(self.real_root) is None:
            raise KnowledgeError(f"The knowledge folder of {self.dept.title} cannot be read.")
        self._walk(self.real_root, "", None, frozenset({self.real_root}))
        self.out.sort(key=lambda s: s.rel)
        self.problems.sort(key=lambda p: p.file)
        return self.out

    def _list(self, folder: Path) -> list[os.DirEntry[str]] | None:
        if folder not in self._listings:
            try:
                with os.scandir(folder) as it:
                    self._listings[folder] = sorted(it, key=lambda e: e.name)
            except OSError:
                self._listings[folder] = None
        return self._listings[folder]

    def _rel(self, real: Path) -> str:
        return real.relative_to(self.real_root).as_posix() if real != self.real_root else ""

    def _refuse(self, path: Path, rel: str, reason: str, ctx: str, st: os.stat_result | None) -> None:
        size, mtime = (st.st_size, st.st_mtime_ns) if st else (0, 0)
        self.out.append(SourceFile(path, rel, size, mtime, ctx, refused=reason))
        self.problems.append(Problem(shown_path(self.root, rel), reason))

    def chain(self, folder: Path) -> _Chain:
        """The access chain of a real folder inside the root, from the root down."""
        if folder in self._chains:
            return self._chains[folder]
        parent = self.base if folder == self.real_root else self.chain(folder.parent)
        chain = self._own_access(folder, parent)
        self._chains[folder] = chain
        return chain

    def _own_access(self, folder: Path, parent: _Chain) -> _Chain:
        entries = self._list(folder)
        rel_dir = self._rel(folder)
        where = rel_dir or "the top folder"
        if entries is None:
            return _Chain(parent.access, parent.ctx, parent.refused or f"folder {where} cannot be read")
        access, refused, digest = parent.access, parent.refused, [parent.ctx]
        for entry in entries:
            st = _lstat(entry)
            if st is not None and stat.S_ISDIR(st.st_mode):
                continue  # folders are never access files (a folder named "access" is fine)
            kind = access_name_kind(entry.name, SUFFIXES)
            if not kind:
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if st is None:  # listed but gone or unreadable (a save in progress): cannot be sure
                digest.append(f"unreadable:{entry.name}")
                refused = refused or f"not indexed: {rel} cannot be read"
                continue
            if kind == "lookalike":
                digest.append(f"lookalike:{entry.name}")
                reason = (
                    f"looks like a misspelled {ACCESS_FILE}: rename it to exactly {ACCESS_FILE} "
                    "(or remove it); until then nothing in this folder is indexed"
                )
                self._refuse(Path(entry.path), rel, reason, parent.ctx, st)
                refused = refused or f"not indexed: {rel} looks like a misspelled {ACCESS_FILE}"
                continue
            try:
                if not stat.S_ISREG(st.st_mode):
                    raise MetadataError("must be a regular file, not a symbolic link or a special file")
                raw = _read_checked(Path(entry.path), MAX_ACCESS_BYTES, (st.st_dev, st.st_ino))
                digest.append(hashlib.sha256(raw).hexdigest())
                try:
                    text = raw.decode("utf-8-sig")
                except UnicodeDecodeError:
                    raise MetadataError("is not UTF-8 text") from None
                access = (*access, parse_access(text))
                self.access_files[rel] = text
            except IngestError as exc:
                digest.append(f"invalid:{st.st_mtime_ns}")
                problem = exc.at(shown_path(self.root, rel)) if isinstance(exc, MetadataError) else None
                self.out.append(
                    SourceFile(
                        Path(entry.path),
                        rel,
                        st.st_size,
                        st.st_mtime_ns,
                        parent.ctx,
                        refused=f"invalid {ACCESS_FILE}: {exc.reason}",
                    )
                )
                self.problems.append(problem or Problem(shown_path(self.root, rel), exc.reason))
                refused = refused or f"invalid {ACCESS_FILE} in {where} (not indexed until it is fixed)"
        ctx = hashlib.sha256("|".join(digest).encode()).hexdigest()[:16]
        return _Chain(access, ctx, refused)

    def _walk(self, folder: Path, rel_dir: str, outer: _Chain | None, ancestors: frozenset[Path]) -> None:
        entries = self._list(folder)
        chain = self.chain(folder) if outer is None else outer.merge(self.chain(folder))
        if entries is None:
            self._refuse(folder, rel_dir, "folder cannot be read", chain.ctx, None)
            return
        for entry in entries:
            name = entry.name
            rel = f"{rel_dir}/{name}" if rel_dir else name
            path = Path(entry.path)
            try:
                if name.startswith("."):
                    continue  # hidden
                if not entry.is_dir(follow_symlinks=False) and access_name_kind(name, SUFFIXES):
                    continue  # handled by chain()
                if entry.is_symlink():
                    self._link(path, rel, chain, ancestors, folder)
                    continue
                if entry.is_dir(follow_symlinks=False):
                    self._walk(path, rel, outer, ancestors | {path})
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # vanished during the scan
            if not stat.S_ISREG(st.st_mode):
                if not name.startswith("_"):
                    self._refuse(path, rel, NOT_REGULAR, chain.ctx, st)
                continue
            if name.startswith("_") or path.suffix.lower() not in SUFFIXES:
                continue
            self.out.append(
                SourceFile(
                    path,
                    rel,
                    st.st_size,
                    st.st_mtime_ns,
                    chain.ctx,
                    chain.access,
                    chain.refused,
                    real=path,
                    dev=st.st_dev,
                    ino=st.st_ino,
                )
            )

    def _link(self, path: Path, rel: str, chain: _Chain, ancestors: frozenset[Path], folder: Path) -> None:
        lst = path.lstat()
        ctx = hashlib.sha256(f"{chain.ctx}|link:{os.readlink(path)}".encode()).hexdigest()[:16]
        candidate = not path.name.startswith("_") and path.suffix.lower() in SUFFIXES
        try:
            target = Path(os.path.realpath(path, strict=True))
            tst = target.stat()
        except (OSError, RuntimeError):
            if candidate:
                self._refuse(path, rel, "broken symbolic link (or a link loop): skipped", ctx, lst)
            return
        is_dir = stat.S_ISDIR(tst.st_mode)
        if not is_dir and not candidate:
            return  # would not be indexed as a file anyway
        if target != self.real_root and not target.is_relative_to(self.real_root):
            self._refuse(path, rel, OUTSIDE, ctx, lst)
            return
        if self.limits.follow_links != "inside":
            self._refuse(
                path, rel, 'symbolic link: not followed (setting knowledge.follow_links is "never")', ctx, lst
            )
            return
        parts = target.relative_to(self.real_root).parts if target != self.real_root else ()
        if any(p.startswith(".") for p in parts):
            self._refuse(path, rel, "symbolic link to a hidden file or folder: not followed", ctx, lst)
            return
        if is_dir:
            if target in ancestors or folder.is_relative_to(target):
                self._refuse(path, rel, "symbolic link loop: not followed", ctx, lst)
            elif target in self._linked:
                self._refuse(
                    path, rel, "symbolic link to a folder already followed through another link", ctx, lst
                )
            else:
                self._linked.add(target)
                self._walk(target, rel, chain, ancestors | {target})
            return
        if (
            not stat.S_ISREG(tst.st_mode)
            or target.name.startswith("_")
            or access_name_kind(target.name, SUFFIXES)
            or target.suffix.lower() != path.suffix.lower()
        ):
            self._refuse(
                path,
                rel,
                "symbolic link to something that is not a document of the same type: not followed",
                ctx,
                lst,
            )
            return
        both = chain.merge(self.chain(target.parent))
        ctx = hashlib.sha256(f"{both.ctx}|link:{self._rel(target)}".encode()).hexdigest()[:16]
        self.out.append(
            SourceFile(
                path,
                rel,
                tst.st_size,
                tst.st_mtime_ns,
                ctx,
                both.access,
                both.refused,
                real=target,
                dev=tst.st_dev,
                ino=tst.st_ino,
            )
        )


def _lstat(entry: os.DirEntry[str]) -> os.stat_result | None:
    try:
        return entry.stat(follow_symlinks=False)
    except OSError:
        return None


# ── reading ──────────────────────────────────────────────────────────────────────────

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def _read_checked(path: Path, cap: int, expect: tuple[int, int] | None) -> bytes:
    """Read a regular file without following a final link, up to ``cap`` bytes.

    ``expect`` is the (device, inode) the scan saw; anything else was swapped in since.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise IngestError(f"{SWAPPED} (now a symbolic link)") from None
        raise IngestError("cannot be read") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IngestError("not a regular file: skipped")
        if expect is not None and (st.st_dev, st.st_ino) != expect:
            raise IngestError(SWAPPED)
        if st.st_size > cap:
            raise IngestError(f"larger than {cap / (1 << 20):g} MB")
        parts: list[bytes] = []
        size = 0
        while block := os.read(fd, 1 << 20):
            size += len(block)
            if size > cap:
                raise IngestError(f"larger than {cap / (1 << 20):g} MB")
            parts.append(block)
        return b"".join(parts)
    except OSError:
        raise IngestError("cannot be read") from None
    finally:
        os.close(fd)


def read_source(src: SourceFile, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The bytes of ``src``, only if it is still the regular file the scan saw."""
    if src.refused:
        raise IngestError(src.refused)
    cap = limits.max_file_bytes
    too_big = f"larger than {limits.max_file_mb:g} MB (setting knowledge.max_file_mb)"
    if src.size > cap:
        raise IngestError(too_big)
    try:
        return _read_checked(src.real or src.abspath, cap, (src.dev, src.ino) if src.ino else None)
    except IngestError as exc:
        if exc.reason.startswith("larger than"):
            raise IngestError(too_big) from None
        raise
