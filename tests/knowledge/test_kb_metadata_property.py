"""Property: however a restriction is spelled or laid out, nobody outside it reads the text.

Hypothesis writes documents whose metadata mentions ``group:hr-admins`` as an audience in
any spelling (key case, plurals, typos, spacing, duplicates) and any layout (leading blank
lines, spaces, byte-order marks, zero-width characters, CRLF/CR, ``---``/``+++``/``----``
fences, closed or not, no fences at all) in any text format, plus access files with
look-alike names in a subfolder. Each holds a canary. Through the real scan and parser,
either the document is not indexed or every chunk holding the canary carries the
restriction; a few examples go through the whole ``KnowledgeBase`` and a retrieval as
someone outside the audience.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from bot.config import Department
from bot.core.types import AccessScope, Classification
from bot.knowledge import KnowledgeBase, ingest
from bot.knowledge.embedders import Embedder

# Hypothesis keeps caches in ./.hypothesis by default; keep the working tree clean.
set_hypothesis_home_dir(str(Path(tempfile.gettempdir()) / "deptbot-hypothesis"))

CANARY = "ZEBRA-CANARY-5521"
RESTRICTED = ("group:hr-admins",)
OUTSIDER = AccessScope(department="hr", keys=frozenset({"*", "group:hr-team", "grace@example.com"}))

KEYS = ["audience", "audiences", "audeince", "audienc", "audience_", "aud_ience", "audience-list"]
VALUES = [
    '["group:hr-admins"]',
    "[group:hr-admins]",
    "\n  - group:hr-admins",
    "group:hr-admins",
    "'group:hr-admins'",
]
PREFIXES = ["", "", "", "\n", "\n\n", " ", "\t", "\ufeff", "\ufeff\ufeff", "\u200b", "\xa0", "\ufeff\n"]
OPENERS = ["---", "---", "--- ", "+++", "----", " ---"]
CLOSERS = ["---", "---", "...", "+++", ""]
SUFFIXES = [".md", ".md", ".markdown", ".txt", ".html", ".csv"]


@dataclass(frozen=True)
class Spec:
    name: str
    text: str


@st.composite
def documents(draw: st.DrawFn) -> Spec:
    key = draw(st.sampled_from(KEYS))
    mask = draw(st.lists(st.booleans(), min_size=len(key), max_size=len(key)))
    key = "".join(c.upper() if up else c for c, up in zip(key, mask, strict=True))
    sep = draw(st.sampled_from([": ", ":  ", " : ", " = ", ":\t"]))
    line = f"{key}{sep}{draw(st.sampled_from(VALUES))}"
    fields = [line]
    if draw(st.booleans()):
        fields.insert(draw(st.integers(0, 1)), "title: Case notes")
    if draw(st.integers(0, 3)) == 0:  # a duplicate key, before or after
        dup = f"{key}{sep}['*']"
        fields.insert(draw(st.integers(0, len(fields))), dup)
    nl = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    body = f"# Case notes{nl}{nl}Investigation notes {CANARY} are kept private.{nl}"
    layout = draw(st.sampled_from(["fenced", "fenced", "fenced", "bare"]))
    if layout == "bare":
        head = nl.join(fields) + nl + nl
    else:
        closer = draw(st.sampled_from(CLOSERS))
        head = draw(st.sampled_from(OPENERS)) + nl + nl.join(fields) + nl + (closer + nl if closer else "")
    text = draw(st.sampled_from(PREFIXES)) + head + body
    return Spec("doc" + draw(st.sampled_from(SUFFIXES)), text)


@st.composite
def access_names(draw: st.DrawFn) -> str:
    stem = draw(
        st.sampled_from(["access", "Access", "ACCESS", "acess", "accesss", "acces", "axcess", "acsess"])
    )
    prefix = draw(st.sampled_from(["_", "_", ".", "", "__", "._"]))
    suffix = draw(
        st.sampled_from([".yaml", ".yml", ".json", ".YAML", ".yaml.txt", "", ".toml", ".yaml~", ".yaml "])
    )
    return prefix + stem + suffix


def department(root: Path) -> Department:
    return Department(name="hr", title="HR", knowledge=root, classification=Classification.INTERNAL)


def leaks(dept: Department) -> list[str]:
    """Documents a person outside hr-admins could read the canary in."""
    out = []
    for src in ingest.scan(dept):
        try:
            doc = ingest.parse_file(src, dept)
        except ingest.IngestError:
            continue
        if any(CANARY in c.text for c in doc.chunks) and RESTRICTED not in doc.audiences:
            out.append(src.rel)
    return out


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents())
def test_front_matter_in_any_spelling_never_widens(doc: Spec) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "knowledge" / "hr"
        root.mkdir(parents=True)
        (root / doc.name).write_bytes(doc.text.encode("utf-8"))
        assert leaks(department(root)) == [], repr(doc.text)


@settings(max_examples=60, deadline=None, database=None)
@given(name=access_names(), nested=st.booleans())
def test_access_files_with_lookalike_names_never_widen(name: str, nested: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "knowledge" / "hr"
        folder = root / "cases"
        folder.mkdir(parents=True)
        (root / "open.md").write_text("# Open\n\nFor everyone.\n")
        (folder / name).write_text('audience: ["group:hr-admins"]\n')
        doc = folder / ("deeper/notes.md" if nested else "notes.md")
        doc.parent.mkdir(exist_ok=True)
        doc.write_text(f"# Notes\n\nInvestigation notes {CANARY}.\n")
        assert leaks(department(root)) == [], name


@pytest.fixture(scope="module")
def shared_embedder() -> Embedder:
    from bot.knowledge.embedders import get_embedder

    return get_embedder("wordllama")


@settings(
    max_examples=8, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(doc=documents(), name=access_names())
def test_outsiders_never_retrieve_the_canary(shared_embedder: Embedder, doc: Spec, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "knowledge" / "hr"
        (root / "cases").mkdir(parents=True)
        (root / "open.md").write_text("# Open\n\n## Hours\n\nThe office opens at nine.\n")
        (root / doc.name).write_bytes(doc.text.encode("utf-8"))
        (root / "cases" / name).write_text('audience: ["group:hr-admins"]\n')
        (root / "cases" / "notes.md").write_text(f"# Notes\n\nInvestigation notes {CANARY}.\n")
        kb = KnowledgeBase(state_dir=Path(tmp) / "state", embedder=shared_embedder)
        kb.refresh(department(root))
        found = kb.retrieve(f"investigation case notes {CANARY}", OUTSIDER, top_k=20)
        assert found, "not vacuous: the open document is still served"
        assert all(CANARY not in c.text for c in found)
