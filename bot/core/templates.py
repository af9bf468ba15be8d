"""Reading a template's skeleton document from its department's knowledge folder.

A template may name a Markdown or text file in its department's folder as its skeleton
(``skeleton: templates/offer-letter.md``). The path is checked when the department files
are loaded (``deptbot check`` names file, line and field) and again each time it is read,
because the folder can change while the bot runs. Fail closed: the skeleton is shown to
everyone who may run the template, so it must not sit under an ``_access.yaml`` (or a
look-alike) or narrow its readers in front matter; a link, a path leaving the folder, a
non-regular file or an oversize file is refused too.
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

log = logging.getLogger(__name__)

SKELETON_SUFFIXES = frozenset({".md", ".markdown", ".txt"})
MAX_SKELETON_BYTES = 256 * 1024
_NARROWING = re.compile(r"^\s*[\"']?\s*(audience|classification|access)\w*\s*[\"']?\s*:", re.I | re.M)


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


def _access_like(name: str) -> bool:
    return name.casefold().lstrip("_.- ").startswith(("access", "acess", "acces"))


def read_skeleton(knowledge: Path, rel: str) -> str:
    """The skeleton's text without front matter or a leading H1; raises SkeletonError."""
    try:
        check_path(rel)
    except ValueError as exc:
        raise SkeletonError(str(exc)) from None
    root = Path(os.path.realpath(knowledge))
    path = root.joinpath(*PurePosixPath(rel).parts)
    if Path(os.path.realpath(path)) != path:
        raise SkeletonError("is a symbolic link or leaves the knowledge folder")
    folder = path.parent
    while True:  # no access narrowing anywhere between the file and the folder root
        try:
            names = os.listdir(folder)
        except OSError:
            raise SkeletonError("cannot be read") from None
        if any(_access_like(n) for n in names):
            raise SkeletonError(
                "is in a folder with an _access.yaml: a skeleton must be readable by everyone "
                "who may run the template"
            )
        if folder == root:
            break
        folder = folder.parent
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
    try:
        text = data.decode("utf-8-sig").replace("\r\n", "\n")
    except UnicodeDecodeError:
        raise SkeletonError("is not UTF-8 text") from None
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end == -1:
            raise SkeletonError("has front matter that is not closed")
        if _NARROWING.search(text[4:end]):
            raise SkeletonError(
                "narrows who may read it in front matter: a skeleton must be readable by everyone "
                "who may run the template"
            )
        text = text[end + 4 :].split("\n", 1)[1] if "\n" in text[end + 4 :] else ""
    text = re.sub(r"\A\s*# [^\n]*\n", "", text)  # its first H1 titles the file, not the letter
    if not text.strip():
        raise SkeletonError("is empty")
    return text.strip()


def skeleton_for(dept: Department, template: str | None) -> str:
    """The skeleton text of ``dept``'s ``template``, or "" (none set, or unusable now: the
    template then runs without it, and the admin sees why in the log and ``deptbot check``)."""
    tpl = dept.templates.get(template) if template else None
    if tpl is None or tpl.skeleton is None:
        return ""
    try:
        return read_skeleton(Path(dept.knowledge), tpl.skeleton)
    except SkeletonError as exc:
        log.warning(
            "%s: template %s: skeleton %s not used: %s", dept.name, template, tpl.skeleton, exc.problem
        )
        return ""
