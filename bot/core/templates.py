"""Reading a template's skeleton document from its department's knowledge folder.

A template may name a Markdown or text file in its department's folder as its skeleton
(``skeleton: templates/offer-letter.md``). The path is checked when the department files
are loaded (``deptbot check`` names file, line and field) and again each time it is read,
because the folder can change while the bot runs. Fail closed: the skeleton is shown to
everyone who may run the template, so it must not sit under an ``_access.yaml`` (or a
look-alike) or narrow its readers in front matter, and its access is read by the
indexer's own functions, never a second parser; a link, a path leaving the folder, a
non-regular file or an oversize file is refused too. A template whose skeleton is
refused at run time is refused as a whole (``Assistant``: a clear reply, an admin notice).
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Department
    from bot.knowledge.folder import Limits

log = logging.getLogger(__name__)

SKELETON_SUFFIXES = frozenset({".md", ".markdown", ".txt"})
MAX_SKELETON_BYTES = 256 * 1024


class SkeletonError(Exception):
    """A skeleton that cannot be used; ``problem`` is short and safe to show an admin."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def check_path(rel: str) -> str:
    """The shape of a skeleton path (no I/O); raises ValueError saying what is wrong."""
    path = PurePosixPath(rel)
    if not rel.strip() or path.is_absolute() or "\\" in rel or any(p in ("..", "") for p in rel.split("/")):
        raise ValueError(
            "must be a path inside the department's knowledge folder, e.g. templates/offer-letter.md"
        )
    if path.suffix.lower() not in SKELETON_SUFFIXES:
        raise ValueError("must be a .md, .markdown or .txt file")
    if any(part.startswith(".") for part in path.parts):
        raise ValueError("must not be a hidden file or inside a hidden folder")
    return rel


def read_skeleton(dept: Department, rel: str, limits: Limits | None = None) -> str:
    """The skeleton's text without front matter or a leading H1; raises SkeletonError.

    Who may read the file is established exactly as the indexer does it, with the
    indexer's own functions: the access files of every folder from the knowledge root down
    (``folder.Walker.chain``: an ``_access.yaml`` or a look-alike name), the checked read
    (``formats.decode``) and the strict front matter (``metadata.split_front_matter`` with
    the configured ``knowledge.front_matter_ignore``). Anything the indexer would refuse,
    or narrow (an audience, a classification above the department's), refuses the
    skeleton: it is shown to everyone who may run the template, so a second, looser
    reader here would show what the index hides (review finding, session 21).
    """
    from bot.knowledge import formats
    from bot.knowledge.folder import DEFAULT_LIMITS, Walker
    from bot.knowledge.ingest import PARSER_VERSION
    from bot.knowledge.metadata import split_front_matter

    limits = limits or DEFAULT_LIMITS
    try:
        check_path(rel)
    except ValueError as exc:
        raise SkeletonError(str(exc)) from None
    root = Path(os.path.realpath(dept.knowledge))
    path = root.joinpath(*PurePosixPath(rel).parts)
    if Path(os.path.realpath(path)) != path:
        raise SkeletonError("is a symbolic link or leaves the knowledge folder")
    if not path.parent.is_dir():
        raise SkeletonError("does not exist or cannot be read")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        raise SkeletonError("does not exist or cannot be read") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SkeletonError("is not a regular file")
        if st.st_size > MAX_SKELETON_BYTES:
            raise SkeletonError(f"is larger than {MAX_SKELETON_BYTES // 1024} KB")
        data = os.read(fd, MAX_SKELETON_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_SKELETON_BYTES:
        raise SkeletonError(f"is larger than {MAX_SKELETON_BYTES // 1024} KB")
    # The folders' access files after the read: one added meanwhile refuses what was read.
    chain = Walker(dept, limits, version=PARSER_VERSION).chain(path.parent)
    if chain.refused:  # an invalid or misspelled access file above it: nothing there is indexed
        raise SkeletonError(f"is in a folder the index refuses ({chain.refused})")
    if chain.access:
        raise SkeletonError(
            "is in a folder with an _access.yaml: a skeleton must be readable by everyone "
            "who may run the template"
        )
    try:
        meta, body = split_front_matter(
            formats.decode(data), suffix=path.suffix.lower(), ignore=frozenset(limits.front_matter_ignore)
        )
    except formats.IngestError as exc:  # MetadataError included: the index refuses it too
        raise SkeletonError(f"cannot be indexed: {exc.reason}") from None
    if meta is not None and meta.audience is not None:
        raise SkeletonError(
            "narrows who may read it (audience in front matter): a skeleton must be readable by "
            "everyone who may run the template"
        )
    if (
        meta is not None
        and meta.classification is not None
        and int(meta.classification) > int(dept.classification)
    ):
        raise SkeletonError(
            f"raises its classification to {meta.classification.label} (above the department's "
            f"{dept.classification.label}): a skeleton must be readable by everyone who may run the template"
        )
    text = re.sub(r"\A\s*# [^\n]*\n", "", body.replace("\r\n", "\n"))  # its H1 titles the file
    if not text.strip():
        raise SkeletonError("is empty")
    return text.strip()


def skeleton_for(dept: Department, template: str | None, limits: Limits | None = None) -> str:
    """The skeleton text of ``dept``'s ``template``, or "" when it has none.

    Raises SkeletonError when one is set but cannot be used now (the folder changed since
    the configuration was loaded): the template is then refused, never run without it or
    with a skeleton the index would hide; the caller tells the person and the admins.
    """
    tpl = dept.templates.get(template) if template else None
    if tpl is None or tpl.skeleton is None:
        return ""
    try:
        return read_skeleton(dept, tpl.skeleton, limits)
    except SkeletonError as exc:
        log.warning(
            "%s: template %s: skeleton %s refused: %s", dept.name, template, tpl.skeleton, exc.problem
        )
        raise
