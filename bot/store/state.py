"""The state folder holds restricted text (index chunks, cached answers, audit questions),
so it is private to the service account: the folder is created 0700 and everything deptbot
writes is created 0600 (the CLI sets the process umask to 077 before doing anything).

A folder that already exists with wider permissions is left as its owner set it, and
``deptbot check`` reports it (``wider_than_private``); silently changing an operator's
permissions would hide the problem instead of fixing its cause.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents of the state folder itself) as 0700."""
    path = Path(path)
    if not path.exists():
        old = os.umask(PRIVATE_UMASK)
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        finally:
            os.umask(old)
    return path


def wider_than_private(path: Path, *, limit: int = 200_000) -> list[tuple[Path, int]]:
    """Entries under ``path`` that others can access: (path, mode) for folders wider than
    0700 and files wider than 0600. Symlinks are not followed. Stops after ``limit`` entries."""
    found: list[tuple[Path, int]] = []
    root = Path(path)
    if not root.is_dir():
        return found
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            entry = Path(dirpath) / name if name != "." else Path(dirpath)
            try:
                st = entry.lstat()
            except OSError:
                continue
            seen += 1
            if stat.S_ISLNK(st.st_mode):
                continue
            if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                found.append((entry, stat.S_IMODE(st.st_mode)))
            if seen >= limit:
                return found
    return found
