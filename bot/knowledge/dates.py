"""When a document was last changed, from something that means it, never the file mtime.

A clone, a copy or an unzip sets every file's mtime to that moment, so citations used to
say "updated <today>" for documents unchanged for years. A date is taken, in this order,
from:

1. Markdown front matter ``updated:`` (``metadata.FrontMatter``),
2. a PDF's ``/ModDate`` (else ``/CreationDate``) — ``pdf_date``,
3. a DOCX's core properties ``dcterms:modified`` (else ``created``) — ``docx_date``,
4. the last commit touching the file when the knowledge folder is inside a git
   repository and the file has no uncommitted change — ``git_dates``, one ``git log``
   pass per refresh (not one process per file); no git binary or no repository: skipped.

All of these are labelled ``updated``. Otherwise the document carries the date it was
first indexed with its current content, labelled ``indexed`` (the index keeps that date
across refreshes while the content hash is unchanged).
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

log = logging.getLogger(__name__)

UPDATED = "updated"
INDEXED = "indexed"
GIT_TIMEOUT = 30.0  # seconds for the one ``git log`` pass of a refresh
MAX_CORE_XML = 1 << 20
# python-docx's blank template carries this date: it says nothing about the document.
_DOCX_TEMPLATE_DATE = datetime(2013, 12, 23, 23, 15, tzinfo=UTC)
_PDF_DATE = re.compile(
    r"^D?:?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?\s*(?:([Zz+-])(?:(\d{2})'?(\d{2})?'?)?)?"
)


def _plausible(when: datetime) -> datetime | None:
    """Dates before 1990 or more than a day in the future are placeholders or typos."""
    if when.year < 1990 or when > datetime.now(UTC) + timedelta(days=1):
        return None
    return when


def parse_pdf_date(value: str) -> datetime | None:
    """``D:20250301120000+01'00'`` → an aware datetime (UTC when no zone is given)."""
    m = _PDF_DATE.match(value.strip())
    if not m:
        return None
    year, month, day, hour, minute, second, sign, tz_h, tz_m = m.groups()
    try:
        tz: timezone = UTC
        if sign in ("+", "-") and tz_h:
            offset = timedelta(hours=int(tz_h), minutes=int(tz_m or 0))
            tz = timezone(offset if sign == "+" else -offset)
        when = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=tz,
        )
    except ValueError:
        return None
    return _plausible(when.astimezone(UTC))


def pdf_date(reader: Any) -> datetime | None:
    """The PDF's modification date, else its creation date (pypdf ``PdfReader``)."""
    try:
        info = reader.metadata or {}
        for key in ("/ModDate", "/CreationDate"):
            raw = info.get(key)
            if raw:
                found = parse_pdf_date(str(raw))
                if found is not None:
                    return found
    except Exception:  # broken metadata never stops a document from being indexed
        return None
    return None


_CORE = {
    "modified": "{http://purl.org/dc/terms/}modified",
    "created": "{http://purl.org/dc/terms/}created",
}


def docx_date(data: bytes) -> datetime | None:
    """``dcterms:modified`` (else ``created``) from a DOCX's ``docProps/core.xml``."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            if "docProps/core.xml" not in zf.namelist():
                return None
            with zf.open("docProps/core.xml") as fh:
                xml = fh.read(MAX_CORE_XML + 1)
        if len(xml) > MAX_CORE_XML or b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
            return None
        root = ElementTree.fromstring(xml)
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, OSError, EOFError, ValueError):
        return None
    for tag in (_CORE["modified"], _CORE["created"]):
        el = root.find(tag)
        if el is None or not (el.text or "").strip():
            continue
        try:
            when = datetime.fromisoformat((el.text or "").strip().replace("Z", "+00:00"))
        except ValueError:
            continue
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        if when.astimezone(UTC) == _DOCX_TEMPLATE_DATE:
            continue
        if _plausible(when) is not None:
            return when.astimezone(UTC)
    return None


def _git(folder: Path, *args: str) -> str | None:
    """Output of one git command run in ``folder``, or None (no git, not a repo, error).

    The environment cannot point git elsewhere (``GIT_DIR``…), and no repository setting
    can make it run a program (``core.fsmonitor``): the folder's owner is not trusted.
    """
    exe = shutil.which("git")
    if exe is None:
        return None
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_OPTIONAL_LOCKS"] = "0"
    try:
        done = subprocess.run(
            [exe, "-c", "core.fsmonitor=false", "-c", "core.quotepath=off", "-C", str(folder), *args],
            capture_output=True,
            timeout=GIT_TIMEOUT,
            env=env,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", errors="replace")


def git_dates(folder: Path) -> dict[str, datetime]:
    """Path (relative to ``folder``, posix) → committer date of the last commit touching it.

    One ``git log`` pass for the whole folder; files with uncommitted changes are left
    out (their content is newer than any commit). {} when git or a repository is missing.
    """
    folder = Path(folder)
    if _git(folder, "rev-parse", "--is-inside-work-tree") is None:
        return {}
    out = _git(folder, "log", "--relative", "--no-renames", "--name-only", "--format=%x00%cI", "--", ".")
    if out is None:
        return {}
    dates: dict[str, datetime] = {}
    current: datetime | None = None
    for line in out.splitlines():
        if line.startswith("\x00"):
            try:
                current = datetime.fromisoformat(line[1:].strip()).astimezone(UTC)
            except ValueError:
                current = None
        elif line.strip() and current is not None:
            dates.setdefault(line.strip(), current)  # newest commit first
    dirty = _git(folder, "diff", "--relative", "--name-only", "HEAD", "--", ".") or ""
    for rel in dirty.splitlines():
        dates.pop(rel.strip(), None)
    return dates
