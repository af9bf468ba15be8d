"""The Company — every department and group, validated together — and how it is loaded:
``inspect_company`` collects every problem in one pass (``deptbot check`` prints them),
cross-checking group references, channels mapped twice and knowledge folders; a Company
exists only when there is no problem at all."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.config.access import access_lists, normalize_entry
from bot.config.groups import GroupRef, read_groups
from bot.config.models import NAME_RE, Department
from bot.config.placement import knowledge_folder, overlapping_knowledge
from bot.config.problems import line_for, read_yaml, validation_problems
from bot.core.templates import SkeletonError, read_skeleton
from bot.errors import ConfigError
from bot.yamlstrict import Lines


@dataclass(frozen=True)
class Company:
    """All departments and groups, validated together (cross-references checked).

    A group listed in ``sources`` is fetched from the company directory by
    ``bot.directory.sync``; as loaded from the files it is EMPTY (fail closed) until the
    sync overlays the members it could read.
    """

    departments: Mapping[str, Department]
    groups: Mapping[str, frozenset[str]]  # group name → member e-mails (lower case)
    root: Path
    sources: Mapping[str, GroupRef] = field(default_factory=dict)  # sourced group → where

    def department(self, name: str) -> Department:
        try:
            return self.departments[name]
        except KeyError:
            from bot.errors import UsageError

            valid = ", ".join(sorted(self.departments)) or "(none configured)"
            raise UsageError(f"Unknown department {name!r}. Valid departments: {valid}.") from None

    def __iter__(self) -> Iterator[Department]:
        return iter(self.departments.values())


@dataclass
class _File:
    """What one department file yielded: its line map, knowledge folder and model (if valid)."""

    name: str
    path: Path
    lines: Lines
    knowledge: Path | None = None
    department: Department | None = None


@dataclass(frozen=True)
class ConfigReport:
    """Everything ``inspect_company`` found: the departments whose file validated and whose
    knowledge folder exists in an allowed place (so ``deptbot check`` can check the folders
    too), the groups, and every problem. A Company exists only when ``problems`` is empty."""

    root: Path
    departments: Mapping[str, Department]
    groups: Mapping[str, frozenset[str]]
    problems: list[ConfigError]
    sources: Mapping[str, GroupRef] = field(default_factory=dict)

    @property
    def company(self) -> Company | None:
        if self.problems:
            return None
        return Company(departments=self.departments, groups=self.groups, root=self.root, sources=self.sources)


def inspect_company(root: Path, *, allowed_roots: Sequence[Path] = ()) -> ConfigReport:
    """Check every department file and ``groups.yaml`` under ``root``; collect all problems.

    A schema error in one file does not stop the others; cross-references (unknown groups,
    a channel mapped twice, overlapping knowledge folders) are checked for every file that
    could be read. A knowledge folder must resolve (symlinks followed) inside the
    configuration tree — the parent of ``root`` — or inside one of ``allowed_roots``.
    """
    root = Path(root)
    if not root.is_dir():
        # Said with the full path and where the path comes from: a new user who runs deptbot
        # outside the project folder sees "departments: … does not exist" otherwise.
        where = "give the folder with --departments or DEPTBOT_DEPARTMENTS"
        problem = (
            f"is a file, not the departments folder; {where}"
            if root.exists()
            else f"departments folder does not exist; run deptbot where departments/ is, or {where}"
        )
        return ConfigReport(root, {}, {}, [ConfigError(problem, file=root.absolute())])
    tree = root.resolve().parent
    roots = tuple(Path(r).resolve() for r in allowed_roots)
    groups_file = root / "groups.yaml"
    groups, sources, problems = read_groups(groups_file)
    try:
        names = sorted(root.iterdir())
    except OSError as exc:
        return ConfigReport(root, {}, {}, [ConfigError(f"cannot be read ({exc.strerror})", file=root)])
    files: list[_File] = []
    seen: dict[str, Path] = {}
    misnamed: list[Path] = []  # groups.yml, Groups.yaml: one problem, not 20 department ones
    for path in names:
        if path.suffix not in (".yaml", ".yml") or path.name == "groups.yaml" or path.name.startswith("."):
            continue
        if path.stem.lower() == "groups":
            fix = "merge it into groups.yaml" if groups_file.exists() else "rename it to groups.yaml"
            problems.append(ConfigError(f"groups are read only from groups.yaml: {fix}", file=path))
            misnamed.append(path)
            continue
        name = path.stem.lower()
        if not NAME_RE.match(name):
            msg = "file name must be the department name: lower-case letters, digits, - or _"
            problems.append(ConfigError(msg, file=path))
            continue
        if name in seen:
            msg = f"duplicate department name {name!r} (also {seen[name].name})"
            problems.append(ConfigError(msg, file=path))
            continue
        seen[name] = path
        found = _check_department(path, name, groups, groups_file, tree, roots, problems)
        if found is not None:
            files.append(found)
    problems += overlapping_knowledge(files)
    departments = {f.name: f.department for f in files if f.department is not None}
    problems += _channels_mapped_twice(files)
    # groups.yaml first (department files refer to it), then files by name, lines in order
    order = {str(p): i for i, p in enumerate(names)} | {str(p): -1 for p in [groups_file, *misnamed]}
    problems.sort(key=lambda p: (order.get(p.file or "", -2), p.line or 0))
    return ConfigReport(root, departments, groups or {}, problems, sources)


def check_company(
    root: Path, *, allowed_roots: Sequence[Path] = ()
) -> tuple[Company | None, list[ConfigError]]:
    """``(company, [])`` when everything is valid, else ``(None, every problem found)``."""
    report = inspect_company(root, allowed_roots=allowed_roots)
    return report.company, report.problems


def load_company(root: Path, *, allowed_roots: Sequence[Path] = ()) -> Company:
    """Load every department under ``root`` and check cross-references.

    Raises ConfigError for the first problem found (file, line, field, what is wrong),
    saying how many more there are; ``deptbot check`` lists them all.
    """
    company, problems = check_company(root, allowed_roots=allowed_roots)
    if company is not None:
        return company
    first = problems[0]
    if len(problems) > 1:
        more = len(problems) - 1
        note = f" (and {more} more problem{'s' if more > 1 else ''}; deptbot check lists them all)"
        raise ConfigError(first.problem + note, file=first.file, line=first.line, field=first.field)
    raise first


def _check_department(
    path: Path,
    name: str,
    groups: Mapping[str, frozenset[str]] | None,
    groups_file: Path,
    tree: Path,
    roots: tuple[Path, ...],
    problems: list[ConfigError],
) -> _File | None:
    """Every problem in one department file, appended to ``problems``."""
    try:
        data, lines = read_yaml(path)
    except ConfigError as exc:
        problems.append(exc)
        return None
    data = {} if data is None else data
    if not isinstance(data, dict):
        problems.append(ConfigError("must be a mapping of field: value", file=path, line=1))
        return None
    found = _File(name=name, path=path, lines=lines)
    for key in ("name", "source_file"):
        if key in data:
            problems.append(
                ConfigError(
                    "is taken from the file name; remove it", file=path, line=lines.get((key,)), field=key
                )
            )
    data = {k: v for k, v in data.items() if k not in ("name", "source_file")}
    dept: Department | None = None
    try:
        dept = Department.model_validate({**data, "name": name, "source_file": path})
    except ValidationError as exc:
        problems += validation_problems(path, exc, lines)
    allowed = False
    if isinstance(data.get("knowledge"), str):
        found.knowledge, allowed = knowledge_folder(path, data["knowledge"], lines, tree, roots, problems)
    if groups is not None:
        problems += _unknown_groups(path, data, lines, groups, groups_file)
    if dept is not None and found.knowledge is not None and allowed:
        found.department = dept.model_copy(update={"knowledge": found.knowledge})
        problems += _skeleton_problems(path, found.department, lines)
    return found


def _skeleton_problems(path: Path, dept: Department, lines: Lines) -> list[ConfigError]:
    """Every template skeleton must be readable now, inside the folder, not narrowed."""
    out: list[ConfigError] = []
    for name, template in dept.templates.items():
        if template.skeleton is None:
            continue
        try:
            read_skeleton(dept, template.skeleton)
        except SkeletonError as exc:
            where = ("templates", name, "skeleton")
            out.append(
                ConfigError(
                    f"{template.skeleton}: {exc.problem}",
                    file=path,
                    line=lines.get(where),
                    field=f"templates.{name}.skeleton",
                )
            )
    return out


def _unknown_groups(
    path: Path, data: Mapping[str, Any], lines: Lines, groups: Mapping[str, frozenset[str]], groups_file: Path
) -> list[ConfigError]:
    out: list[ConfigError] = []
    for loc in access_lists(data):
        raw: Any = data
        for part in loc:  # the raw list, so item indexes stay right when some are not strings
            raw = raw.get(part) if isinstance(raw, dict) else None
        for i, entry in enumerate(raw if isinstance(raw, list) else []):
            if isinstance(entry, str) and normalize_entry(entry).startswith("group:"):
                group = normalize_entry(entry)[6:]
                if group not in groups:
                    out.append(
                        ConfigError(
                            f"group {group!r} does not exist in {groups_file.name}",
                            file=path,
                            line=line_for(lines, (*loc, i)),
                            field=".".join(str(p) for p in loc) + f"[{i}]",
                        )
                    )
    return out


def _channels_mapped_twice(files: list[_File]) -> list[ConfigError]:
    out: list[ConfigError] = []
    owner: dict[tuple[str, str], str] = {}
    for f in files:
        if f.department is None:
            continue
        channels = f.department.channels
        for platform, chans in (("slack", channels.slack), ("teams", channels.teams)):
            for i, chan in enumerate(chans):
                other = owner.setdefault((platform, chan), f.name)
                if other != f.name:
                    out.append(
                        ConfigError(
                            f"{platform} channel {chan!r} is already mapped to department {other!r}",
                            file=f.path,
                            line=f.lines.get(("channels", platform, i)),
                            field=f"channels.{platform}[{i}]",
                        )
                    )
    return out
