"""Metadata typos never drop a restriction (issue 8, classes 4 and 9).

Each case below carried ``audience: ["group:hr-admins"]`` meant as a restriction and was
once served to everyone. Now the document (or, for access files, the folder) is either
indexed WITH the restriction or not indexed and reported with file, line and field.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import Department
from bot.knowledge import ingest
from tests.knowledge.test_kb_ingest import parse_all

CANARY = "HR-ADMIN-CANARY-4410"
RESTRICTED = ("group:hr-admins",)
BODY = f"# Investigations\n\nCase handling notes {CANARY}.\n"


def leaked(docs: dict[str, ingest.DocRecord]) -> list[str]:
    """Documents whose canary chunks a person outside hr-admins could read."""
    return [
        rel
        for rel, doc in docs.items()
        if any(CANARY in c.text for c in doc.chunks) and RESTRICTED not in doc.audiences
    ]


FRONT_MATTER_TYPOS = {
    "blank-line-before.md": '\n---\naudience: ["group:hr-admins"]\n---\n' + BODY,
    "spaces-before.md": '  ---\naudience: ["group:hr-admins"]\n---\n' + BODY,
    "capitalised-key.md": '---\nAudience: ["group:hr-admins"]\n---\n' + BODY,
    "plural-key.md": '---\naudiences: ["group:hr-admins"]\n---\n' + BODY,
    "front-matter.txt": '---\naudience: ["group:hr-admins"]\n---\n' + BODY,
    "toml.md": '+++\naudience = ["group:hr-admins"]\n+++\n' + BODY,
    "duplicate-key.md": '---\naudience: ["group:hr-admins"]\naudience: ["*"]\n---\n' + BODY,
    "unclosed.md": '---\naudience: ["group:hr-admins"]\n' + BODY,
    "double-bom.md": '\ufeff\ufeff---\naudience: ["group:hr-admins"]\n---\n' + BODY,
    "crlf-blank.md": '\r\n---\r\naudience: ["group:hr-admins"]\r\n---\r\n' + BODY,
    "string-audience.md": "---\naudience: group:hr-admins, group:hr-team\n---\n" + BODY,
    "no-fences.md": 'audience: ["group:hr-admins"]\n\n' + BODY,
    "front-matter.html": '---\naudience: ["group:hr-admins"]\n---\n<h1>X</h1><p>' + BODY + "</p>",
}


@pytest.mark.parametrize("name", sorted(FRONT_MATTER_TYPOS))
def test_front_matter_typos_never_widen(dept: Department, write: Callable[..., Path], name: str) -> None:
    write(name, FRONT_MATTER_TYPOS[name])
    docs, failed = parse_all(dept)
    assert leaked(docs) == []
    assert name in failed


def test_well_formed_front_matter_still_narrows(dept: Department, write: Callable[..., Path]) -> None:
    write("ok.md", '\ufeff---\r\naudience: ["group:hr-admins"]\r\ntitle: Cases\r\n---\r\n' + BODY)
    docs, failed = parse_all(dept)
    assert failed == {}
    assert docs["ok.md"].audiences == (RESTRICTED,) and docs["ok.md"].title == "Cases"


LOOKALIKES = [
    "_access.yml",
    "_Access.yaml",
    "access.yaml",
    ".access.yaml",
    "_acess.yaml",
    "_access.yaml.txt",
    "_access.json",
    "_ACCESS.YAML",
]


@pytest.mark.parametrize("name", LOOKALIKES)
def test_lookalike_access_file_refuses_its_folder(
    dept: Department, write: Callable[..., Path], name: str
) -> None:
    write("open.md", "# Open\n\nFor everyone.\n")
    write(f"cases/{name}", 'audience: ["group:hr-admins"]\n')
    write("cases/case-1.md", BODY)
    write("cases/deeper/case-2.md", BODY)
    docs, failed = parse_all(dept)
    assert leaked(docs) == []
    assert set(docs) == {"open.md"}
    assert {"cases/case-1.md", "cases/deeper/case-2.md"} <= set(failed)


ACCESS_FILES = {
    "string audience": 'audience: "group:hr-admins"\n',
    "empty entry": 'audience: ["group:hr-admins", ""]\n',
    "empty list": "audience: []\n",
    "duplicate key": 'audience: ["group:hr-admins"]\naudience: ["*"]\n',
    "unknown key": 'audience: ["group:hr-admins"]\nreaders: ["*"]\n',
    "miscased key": 'Audience: ["group:hr-admins"]\n',
    "empty file": "",
    "bad classification": 'audience: ["group:hr-admins"]\nclassification: secret\n',
}


@pytest.mark.parametrize("case", sorted(ACCESS_FILES))
def test_invalid_access_file_refuses_the_folder(
    dept: Department, write: Callable[..., Path], case: str
) -> None:
    write("cases/_access.yaml", ACCESS_FILES[case])
    write("cases/case-1.md", BODY)
    docs, failed = parse_all(dept)
    assert docs == {}
    assert failed["cases/case-1.md"].startswith("invalid _access.yaml")


def test_access_file_alias_bomb_is_refused_quickly(dept: Department, write: Callable[..., Path]) -> None:
    levels = ['a0: &a0 ["group:x", "group:x", "group:x", "group:x", "group:x", "group:x", "group:x"]']
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 7) + "]" for i in range(1, 7)]
    write("cases/_access.yaml", "\n".join(levels) + '\naudience: ["group:hr-admins"]\n')
    write("cases/case-1.md", BODY)
    started = time.monotonic()
    docs, failed = parse_all(dept)
    assert time.monotonic() - started < 2
    assert docs == {}
    assert "alias" in failed["cases/_access.yaml"]


def test_nested_access_files_still_narrow(dept: Department, write: Callable[..., Path]) -> None:
    write("people/_access.yaml", 'audience: ["group:hr-team"]\n')
    write("people/reviews/_access.yaml", 'audience: ["group:managers"]\nclassification: confidential\n')
    write("people/reviews/2024.md", BODY)
    docs, failed = parse_all(dept)
    assert failed == {}
    assert docs["people/reviews/2024.md"].audiences == (("group:hr-team",), ("group:managers",))


def test_check_folder_lists_every_problem_with_line_and_field(
    dept: Department, write: Callable[..., Path]
) -> None:
    write("a.md", '---\ntitle: A\nAudience: ["group:hr-admins"]\n---\n# A\n\ntext\n')
    write("b.txt", '---\naudience: ["group:hr-admins"]\n---\ntext\n')
    write("c/_access.yml", 'audience: ["group:hr-admins"]\n')
    write("d/_access.yaml", 'audience: ["group:hr-admins"]\naudience: ["*"]\n')
    write("ok.md", "# Fine\n\ntext\n")
    problems = {p.file: p for p in ingest.check_folder(dept)}
    assert set(problems) == {
        "knowledge/hr/a.md",
        "knowledge/hr/b.txt",
        "knowledge/hr/c/_access.yml",
        "knowledge/hr/d/_access.yaml",
    }
    a = problems["knowledge/hr/a.md"]
    assert (a.line, a.field) == (3, "Audience") and "did you mean 'audience'" in a.problem
    assert problems["knowledge/hr/b.txt"].line == 1 and ".md" in problems["knowledge/hr/b.txt"].problem
    assert "misspelled _access.yaml" in problems["knowledge/hr/c/_access.yml"].problem
    d = problems["knowledge/hr/d/_access.yaml"]
    assert d.line == 2 and "duplicate key" in d.problem
    assert str(a).startswith("knowledge/hr/a.md:3: Audience: unknown field")
