"""Who may read a document, as written in a knowledge folder: one strict schema.

Two places narrow a document's audience, and both are read here with the strict YAML
reader (``bot.yamlstrict``: no aliases, merge keys, duplicate keys, deep nesting or
oversize input) and validated by the same pydantic models (``extra="forbid"``):

* **Front matter** (``FrontMatter``: ``title``, ``classification``, ``audience``,
  ``updated``) — only in ``.md``/``.markdown`` files, and only as a YAML block whose
  opening ``---`` is the very first line (after an optional byte-order mark) and which is
  closed by a ``---`` (or ``...``) line within ``MAX_FRONT_MATTER_BYTES``.
* **``_access.yaml``** (``FolderAccess``: ``audience`` required, ``classification``
  optional) — narrows its folder and everything below it; a reader must match every level.

Why so strict: each of these once carried ``audience: ["group:hr-admins"]`` meant as a
restriction and was served to everyone, because a lenient reader skipped it: blank lines
before ``---``, ``Audience:``/``audiences:`` keys, front matter in a ``.txt``, TOML ``+++``,
a second ``audience:`` line, ``_access.yml``. Now every such mistake is a ``MetadataError``
(file, line, field, what to do) and the document (or, for access files, the folder) is not
indexed. Field names are exact and lower-case. Keys deptbot does not use are refused too,
except a fixed list of publishing keys that static-site tools put in front matter
(``knowledge.front_matter_ignore``; ``DEFAULT_IGNORED_KEYS``), which are accepted and
ignored — a key that looks like a deptbot field can never be ignored.

Text files that are not Markdown must not start with anything that looks like front
matter (``---``/``+++`` lines, or an ``audience:``-like line) — they are refused with a
message saying how to fix it, because the reader's intent cannot be known.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from bot.config import check_entries
from bot.core.types import Classification
from bot.errors import ConfigError
from bot.knowledge.formats import IngestError
from bot.yamlstrict import Lines, loads

__all__ = [
    "ACCESS_FILE",
    "DEFAULT_IGNORED_KEYS",
    "FRONT_MATTER_SUFFIXES",
    "FolderAccess",
    "FrontMatter",
    "GroupUse",
    "MetadataError",
    "Problem",
    "access_groups",
    "access_name_kind",
    "check_ignored_keys",
    "front_matter_groups",
    "parse_access",
    "split_front_matter",
]

ACCESS_FILE = "_access.yaml"
MAX_ACCESS_BYTES = 64 * 1024
MAX_FRONT_MATTER_BYTES = 64 * 1024
FRONT_MATTER_SUFFIXES = frozenset({".md", ".markdown"})
FIELDS = ("title", "classification", "audience", "updated")
# Keys static-site generators (Jekyll, Hugo, MkDocs, Docusaurus) and editor tooling put in
# front matter. deptbot accepts and ignores exactly these spellings; any other key is refused.
DEFAULT_IGNORED_KEYS: tuple[str, ...] = (
    "layout",
    "permalink",
    "redirect_from",
    "redirect_to",
    "keywords",
    "tags",
    "categories",
    "description",
    "subtitle",
    "summary",
    "date",
    "author",
    "authors",
    "sidebar",
    "weight",
    "slug",
    "aliases",
    "toc",
    "nav_order",
    "parent",
    "has_children",
    "lang",
    "cSpell",
)
# Words that, misspelled or not, signal "who may read this": never ignorable, and a
# look-alike key is refused with a "did you mean" hint.
_SENSITIVE = ("audience", "classification", "access", "acl", "readers", "visibility", "groups")


@dataclass(frozen=True)
class Problem:
    """One reason a file or folder is not indexed: what ``deptbot check`` lists."""

    file: str  # path shown to people, e.g. knowledge/hr/people/_access.yml
    problem: str
    line: int | None = None
    field: str | None = None

    @property
    def reason(self) -> str:
        """The short form kept in an index report (the file is reported separately)."""
        where = ", ".join(p for p in (f"line {self.line}" if self.line else "", self.field or "") if p)
        return f"{where}: {self.problem}" if where else self.problem

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        return f"{where}: {self.field}: {self.problem}" if self.field else f"{where}: {self.problem}"


class MetadataError(IngestError):
    """Metadata that cannot be trusted; ``reason`` (short) and ``line``/``field`` for check."""

    def __init__(self, problem: str, *, line: int | None = None, field: str | None = None) -> None:
        self.problem = problem
        self.line = line
        self.field = field
        super().__init__(Problem("", problem, line, field).reason)

    def at(self, file: str) -> Problem:
        return Problem(file, self.problem, self.line, self.field)


# ── the schema ───────────────────────────────────────────────────────────────────────


def _audience(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError('must be a list of access entries, e.g. audience: ["group:hr-admins"]')
    if not value:
        raise ValueError("is empty: list who may read, or remove the key")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ValueError("entries must be non-empty text: an e-mail, '*@domain', 'group:NAME' or '*'")
    return tuple(check_entries(value))


def _classification(value: Any) -> Classification:
    if isinstance(value, str):
        try:
            return Classification.parse(value)
        except KeyError:
            pass
    raise ValueError(f"{value!r} is not one of public, internal, confidential, restricted")


class _Narrowing(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    audience: tuple[str, ...] | None = None
    classification: Classification | None = None

    @field_validator("audience", mode="before")
    @classmethod
    def _aud(cls, v: Any) -> tuple[str, ...]:
        return _audience(v)

    @field_validator("classification", mode="before")
    @classmethod
    def _cls(cls, v: Any) -> Classification:
        return _classification(v)


class FolderAccess(_Narrowing):
    """An ``_access.yaml``: ``audience`` (required) and ``classification`` (optional)."""

    audience: tuple[str, ...]


class FrontMatter(_Narrowing):
    """Markdown front matter: ``title``, ``classification``, ``audience``, ``updated``."""

    title: str | None = None
    updated: datetime | None = None

    @field_validator("title", mode="before")
    @classmethod
    def _title(cls, v: Any) -> str | None:
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise ValueError("must be text")
        return str(v).strip() or None

    @field_validator("updated", mode="before")
    @classmethod
    def _updated(cls, v: Any) -> datetime | None:
        """``updated: 2026-09-14`` is the date people mean, not the file mtime."""
        if v is None:
            return None
        if isinstance(v, datetime):
            return v if v.tzinfo else v.replace(tzinfo=UTC)
        if isinstance(v, date):
            return datetime(v.year, v.month, v.day, tzinfo=UTC)
        if isinstance(v, str):
            try:
                parsed = datetime.fromisoformat(v.strip())
            except ValueError:
                pass
            else:
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        raise ValueError("must be a date like 2026-03-02")


def _validate(model: type[_Narrowing], data: Any, lines: Lines, ignore: frozenset[str]) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MetadataError("must be key: value lines", line=min(lines.values(), default=None))
    for key in data:
        if not isinstance(key, str):
            raise MetadataError("keys must be text", line=lines.get((str(key),)), field=str(key))
    fields = set(model.model_fields)
    kept = {k: v for k, v in data.items() if k in fields or k not in ignore}
    for key in kept:
        if key not in fields:
            raise MetadataError(_unknown(key, fields), line=lines.get((key,)), field=key[:60])
    try:
        return model.model_validate(kept)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "is required"
        line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)
        raise MetadataError(msg, line=line, field=str(loc[0]) if loc else None) from None


def _near(key: str, name: str) -> bool:
    """``key`` (any case, punctuation, plural) is ``name`` or a likely typo of it."""
    folded = re.sub(r"[^a-z]", "", key.casefold())
    if len(name) >= 6 and name in folded:  # audiencelist, readaccess, dataclassification
        return True
    slack = 2 if len(name) >= 6 else 1 if len(name) >= 4 else 0
    return folded.rstrip("s") == name or _distance(folded, name) <= slack


def _unknown(key: str, fields: Iterable[str]) -> str:
    for name in (*fields, *_SENSITIVE):
        if _near(key, name):
            if name in fields:
                return f"unknown field: did you mean {name!r}? (field names are exact and lower-case)"
            return "unknown field: deptbot narrows access only with 'audience' (and 'classification')"
    allowed = ", ".join(sorted(fields))
    return f"unknown field: allowed are {allowed} (other keys: setting knowledge.front_matter_ignore)"


def check_ignored_keys(keys: Iterable[str]) -> tuple[str, ...]:
    """Validate ``knowledge.front_matter_ignore``: no key that looks like a deptbot field."""
    out = []
    for key in keys:
        if not isinstance(key, str) or not key.strip():
            raise ValueError("must be a list of front-matter key names")
        for name in (*FIELDS, *_SENSITIVE):
            if _near(key, name):
                raise ValueError(f"{key!r} looks like the deptbot field {name!r} and cannot be ignored")
        out.append(key)
    return tuple(out)


# ── front matter ─────────────────────────────────────────────────────────────────────

# Characters a person does not see: a file whose first visible line is a fence counts.
_INVISIBLE = " \t\n\r\f\v\ufeff\u200b\u200c\u200d\u2060\xa0\u3000"
_FENCE_LIKE = re.compile(r"-{3,}|\+{3,}")
MAX_BARE_LINES = 30  # leading "key: value" lines inspected in a file without front matter
_KEY_LINE = re.compile(r"[\W_]*([A-Za-z][A-Za-z _-]{1,30}?)\s*[:=]")


def split_front_matter(
    text: str, *, suffix: str, ignore: frozenset[str] = frozenset(DEFAULT_IGNORED_KEYS)
) -> tuple[FrontMatter | None, str]:
    """``(front matter or None, body)`` for a decoded text file of type ``suffix``.

    Raises MetadataError for anything that looks like metadata but is not exactly the one
    accepted form. ``text`` had one leading byte-order mark removed by the decoder.
    """
    meta, body, _ = _front_matter(text, suffix, ignore)
    return meta, body


def _front_matter(text: str, suffix: str, ignore: frozenset[str]) -> tuple[FrontMatter | None, str, Lines]:
    """``split_front_matter`` plus the line of every front-matter key and list item."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    first = next((i for i, ln in enumerate(lines) if ln.strip(_INVISIBLE)), None)
    if first is None:
        return None, text, {}
    head = lines[first].strip(_INVISIBLE)
    if suffix not in FRONT_MATTER_SUFFIXES:
        if _FENCE_LIKE.fullmatch(head):
            raise MetadataError(
                f"starts with a front-matter block ({head[:3]}), but only .md/.markdown files may "
                "carry front matter: rename the file to .md, or remove the block",
                line=first + 1,
            )
        _refuse_bare_metadata(lines, first)
        return None, text, {}
    if not _FENCE_LIKE.fullmatch(head):
        _refuse_bare_metadata(lines, first)
        return None, text, {}
    if head.startswith("+"):
        raise MetadataError(
            "TOML front matter (+++) is not supported: use YAML between --- lines", line=first + 1
        )
    if first == 0 and lines[0].rstrip(" \t") != "---" and head != "---":
        raise MetadataError("the opening front-matter line must be exactly ---", line=1)
    if first != 0 or lines[0].rstrip(" \t") != "---":
        where = "blank lines or invisible characters" if first else "spaces or invisible characters"
        raise MetadataError(
            f"front matter must start with --- on the very first line: remove the {where} before it",
            line=first + 1,
        )
    size = 0
    for end in range(1, len(lines)):
        if lines[end].rstrip(" \t") in ("---", "..."):
            break
        size += len(lines[end]) + 1
        if size > MAX_FRONT_MATTER_BYTES:
            raise MetadataError(f"front matter is longer than {MAX_FRONT_MATTER_BYTES // 1024} KB", line=1)
    else:
        raise MetadataError("front matter is not closed: add a --- line after its last field", line=1)
    try:
        data, where_lines = loads(
            "\n".join(lines[1:end]), source="front matter", max_bytes=MAX_FRONT_MATTER_BYTES, line_offset=1
        )
    except ConfigError as exc:
        raise MetadataError(exc.problem, line=exc.line, field=exc.field) from None
    meta: FrontMatter = _validate(FrontMatter, data, where_lines, ignore)
    body = "\n".join(lines[end + 1 :])
    nxt = next((i for i in range(end + 1, len(lines)) if lines[i].strip(_INVISIBLE)), None)
    if nxt is not None:
        if _FENCE_LIKE.fullmatch(lines[nxt].strip(_INVISIBLE)):
            raise MetadataError("a second front-matter block follows the first: use one block", line=nxt + 1)
        _refuse_bare_metadata(lines, nxt)
    return meta, body, where_lines


def _refuse_bare_metadata(lines: list[str], index: int) -> None:
    """``audience: [...]`` among the first ``key: value`` lines, without ``---``: intent unknown."""
    for i in range(index, min(len(lines), index + MAX_BARE_LINES)):
        line = lines[i].strip(_INVISIBLE)
        m = _KEY_LINE.match(line)
        if not m:
            return
        for name in ("audience", "classification", "access"):
            if _near(m.group(1), name):
                raise MetadataError(
                    f"starts with {m.group(1).strip()!r} like front matter, but not in a --- front-matter "
                    "block of a .md file: put metadata in Markdown front matter (or reword the line)",
                    line=i + 1,
                )


# ── _access.yaml ─────────────────────────────────────────────────────────────────────

_CONFIG_SUFFIXES = frozenset({"yaml", "yml", "json", "toml", "ini", "cfg", "conf", "txt", "xml"})


def access_name_kind(name: str, document_suffixes: frozenset[str]) -> str:
    """``"access"`` for ``_access.yaml``, ``"lookalike"`` for a near miss, else ``""``.

    A look-alike refuses its folder (a person meant to restrict it). The rule: take the
    name case-folded, drop leading ``_``/``.``/``-``/spaces, cut at the first dot: the stem.
    The name is a look-alike when the stem starts with ``access`` or is within edit
    distance 2 of it (``acess``, ``accesss``, ``acces``, ``axcess``) AND it cannot be a
    document: it starts with ``_`` or ``.``, or has no document suffix, or has a config
    suffix anywhere (``access.yaml.txt``). So ``_access.yml``, ``_Access.yaml``,
    ``access.yaml``, ``.access.yaml``, ``_acess.yaml``, ``_access.yaml.txt``,
    ``_access.json``, ``ACCESS`` are look-alikes; ``access-policy.md``, ``accessibility.md``
    and ``success.md`` are documents.
    """
    if name == ACCESS_FILE:
        return "access"
    folded = name.casefold()
    core = folded.lstrip("_.- ")
    stem, _, rest = core.partition(".")
    stem = stem.strip()
    if not (stem.startswith("access") or _distance(stem, "access") <= 2):
        return ""
    hidden = folded[:1] in ("_", ".")
    suffixes = [s.strip() for s in rest.split(".")] if rest else []
    is_document = bool(suffixes) and f".{suffixes[-1]}" in document_suffixes
    config_like = any(s in _CONFIG_SUFFIXES for s in suffixes[:-1]) or (
        bool(suffixes) and suffixes[-1] in _CONFIG_SUFFIXES - {"txt"}
    )
    if hidden or not is_document or config_like:
        return "lookalike"
    return ""


def parse_access(text: str) -> FolderAccess:
    """Validate the text of an ``_access.yaml``; raises MetadataError (line, field)."""
    return _access(text)[0]


def _access(text: str) -> tuple[FolderAccess, Lines]:
    try:
        data, lines = loads(text, source=ACCESS_FILE, max_bytes=MAX_ACCESS_BYTES)
    except ConfigError as exc:
        raise MetadataError(exc.problem, line=exc.line, field=exc.field) from None
    if data is None:
        raise MetadataError('is empty: write audience: ["group:NAME"]', line=1)
    result: FolderAccess = _validate(FolderAccess, data, lines, frozenset())
    return result, lines


# ── groups an audience names ─────────────────────────────────────────────────────────


@dataclass(frozen=True)
class GroupUse:
    """One ``group:NAME`` entry of a valid audience and where it is written (``deptbot
    check`` and the index report name audience groups missing from groups.yaml)."""

    group: str  # lower case, as access checks compare it
    line: int | None
    field: str  # e.g. "audience[0]"


def _group_uses(audience: tuple[str, ...] | None, lines: Lines) -> list[GroupUse]:
    return [
        GroupUse(entry[6:], lines.get(("audience", i)), f"audience[{i}]")
        for i, entry in enumerate(audience or ())
        if entry.startswith("group:")
    ]


def access_groups(text: str) -> list[GroupUse]:
    """The groups a valid ``_access.yaml`` names; raises MetadataError like ``parse_access``."""
    access, lines = _access(text)
    return _group_uses(access.audience, lines)


def front_matter_groups(
    text: str, *, suffix: str, ignore: frozenset[str] = frozenset(DEFAULT_IGNORED_KEYS)
) -> list[GroupUse]:
    """The groups a file's front-matter audience names; raises like ``split_front_matter``."""
    meta, _, lines = _front_matter(text, suffix, ignore)
    return _group_uses(meta.audience if meta else None, lines)


def _distance(a: str, b: str) -> int:
    """Optimal-string-alignment edit distance (insert, delete, substitute, transpose)."""
    if abs(len(a) - len(b)) > 2:
        return 3
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]
