"""A template skeleton is shown only when the indexer would let everyone read it.

Review finding (session 21): ``read_skeleton`` had its own, looser front-matter and
access-file checks, so a skeleton the index hides (a ``--- `` fence with a trailing space,
flow-style front matter, a ``.txt`` starting with ``audience:``, a misspelled access file)
was shown to everyone who may run the template. Each hostile skeleton below carries a
canary; it must never reach the person, the generator's request or a log, and the
indexer's own verdict on the same file must be "refused or narrowed" (so the two cannot
drift apart again).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.config import Department, load_company
from bot.core.pipeline import Assistant
from bot.core.templates import SkeletonError, read_skeleton
from bot.core.types import Message, Status
from bot.knowledge.folder import Limits
from bot.knowledge.ingest import IngestError, parse_file, scan
from bot.llm.extractive import ExtractiveGenerator
from bot.store.cache import MemoryAnswerCache
from tests.fakes import FakeIndexer, FakeRetriever, MemoryAudit, RecordingGenerator, chunks_from_folder

CANARY = "CANARY-SKELETON-7f3a"
BODY = f"Dear [Candidate first name],\n\nWelcome aboard, [Job title]. Ref {CANARY}.\n"
AUD = '["group:hr-admins"]'

# (skeleton path, {file: text}) — each one the index refuses or narrows
HOSTILE: dict[str, tuple[str, dict[str, str]]] = {
    "fence-trailing-space": ("templates/s.md", {"templates/s.md": f"--- \naudience: {AUD}\n---\n{BODY}"}),
    "flow-front-matter": (
        "templates/s.md",
        {"templates/s.md": f"---\n{{title: x, audience: {AUD}}}\n---\n{BODY}"},
    ),
    "dots-closing-fence": ("templates/s.md", {"templates/s.md": f"---\naudience: {AUD}\n...\n{BODY}"}),
    "bom-blank-line": ("templates/s.md", {"templates/s.md": f"\ufeff\n---\naudience: {AUD}\n---\n{BODY}"}),
    "miscased-key": ("templates/s.md", {"templates/s.md": f"---\nAudience: {AUD}\n---\n{BODY}"}),
    "txt-bare-audience": ("templates/s.txt", {"templates/s.txt": f"audience: {AUD}\n{BODY}"}),
    "txt-front-matter": ("templates/s.txt", {"templates/s.txt": f"---\ntitle: x\n---\n{BODY}"}),
    "raised-classification": (
        "templates/s.md",
        {"templates/s.md": f"---\nclassification: restricted\n---\n{BODY}"},
    ),
    "lookalike-accses": (
        "templates/s.md",
        {"templates/s.md": BODY, "templates/_accses.yaml": f"audience: {AUD}\n"},
    ),
    "lookalike-axcess": (
        "templates/s.md",
        {"templates/s.md": BODY, "templates/_axcess.yaml": f"audience: {AUD}\n"},
    ),
    "access-yml-above": (
        "templates/offers/s.md",
        {"templates/offers/s.md": BODY, "templates/_access.yml": f"audience: {AUD}\n"},
    ),
    "invalid-access-at-root": (
        "templates/s.md",
        {"templates/s.md": BODY, "_access.yaml": "audience: group:hr-admins\n"},
    ),
}


def _dept(kb: Path) -> Department:
    return Department.model_validate(
        {
            "name": "hr",
            "title": "Human Resources",
            "knowledge": kb,
            "ask": ["*"],
            "classification": "internal",
        }
    )


def _write(kb: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (kb / rel).parent.mkdir(parents=True, exist_ok=True)
        (kb / rel).write_text(text, encoding="utf-8")


def _index_hides(dept: Department, rel: str, limits: Limits | None = None) -> bool:
    """The indexer's own verdict: refused, or narrowed below "everyone who may ask"."""
    limits = limits or Limits()
    (src,) = [s for s in scan(dept, limits) if s.rel == rel]
    try:
        doc = parse_file(src, dept, limits)
    except IngestError:
        return True
    return bool(doc.audiences) or doc.classification > int(dept.classification)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_skeleton_the_index_hides_is_refused(tmp_path: Path, case: str) -> None:
    rel, files = HOSTILE[case]
    kb = tmp_path / "kb"
    _write(kb, files)
    dept = _dept(kb)
    assert _index_hides(dept, rel), "the case must be one the indexer refuses or narrows"
    with pytest.raises(SkeletonError) as caught:
        read_skeleton(dept, rel)
    assert CANARY not in caught.value.problem


def test_a_plain_skeleton_is_read_like_the_index_reads_it(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    _write(
        kb,
        {
            "templates/s.md": "---\ntitle: Offer\ntags: [hr]\nclassification: internal\n---\n"
            f"# Offer\n\n{BODY}"
        },
    )
    dept = _dept(kb)
    assert not _index_hides(dept, "templates/s.md")
    assert read_skeleton(dept, "templates/s.md") == BODY.strip()


def test_the_configured_front_matter_ignore_list_counts(tmp_path: Path) -> None:
    """``tags`` is ignored by default; with ``front_matter_ignore = []`` the index refuses the
    file, so the skeleton is refused too (the indexer's settings, not a second opinion)."""
    kb = tmp_path / "kb"
    _write(kb, {"templates/s.md": f"---\ntags: [hr]\n---\n{BODY}"})
    dept, strict = _dept(kb), Limits(front_matter_ignore=())
    assert _index_hides(dept, "templates/s.md", strict)
    assert read_skeleton(dept, "templates/s.md") == BODY.strip()
    with pytest.raises(SkeletonError, match="unknown field"):
        read_skeleton(dept, "templates/s.md", strict)


# ── through the real pipeline: a skeleton that turns hostile while the bot runs ─────────


class _Notices:
    def __init__(self) -> None:
        self.told: list[tuple[str | None, str, str]] = []

    def notify(self, department: str | None, kind: str, text: str) -> bool:
        self.told.append((department, kind, text))
        return True

    def recent(self, department: str | None = None, *, limit: int = 20) -> list[object]:
        return []


def _company_with_skeleton(root: Path) -> Path:
    from tests.fakes import make_company

    make_company(root)
    hr = root / "departments" / "hr.yaml"
    text = hr.read_text()
    assert '    allowed: ["group:hr-team"]\n' in text
    hr.write_text(text.replace("    allowed: [", "    skeleton: templates/offer.md\n    allowed: ["))
    skeleton = root / "knowledge" / "hr" / "templates" / "offer.md"
    skeleton.parent.mkdir(parents=True, exist_ok=True)
    skeleton.write_text(
        "---\ntitle: Offer letter\n---\nDear [Candidate first name], welcome as [Job title].\n"
    )
    return skeleton


@pytest.mark.parametrize("case", ["fence-trailing-space", "flow-front-matter", "lookalike-accses"])
def test_the_template_is_refused_not_run_when_its_skeleton_turns_hostile(
    tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    skeleton = _company_with_skeleton(tmp_path)
    company = load_company(tmp_path / "departments")
    generator = RecordingGenerator(ExtractiveGenerator())
    notices, audit = _Notices(), MemoryAudit()
    assistant = Assistant(
        company=company,
        retriever=FakeRetriever([c for d in company for c in chunks_from_folder(d)]),
        indexer=FakeIndexer(),
        generator=generator,
        audit=audit,
        cache=MemoryAnswerCache(),
        notices=notices,
    )
    message = Message(
        user_id="alice@example.com",
        text="Jane Doe, data analyst, paid vacation days",
        template="offer-letter",
    )
    first = assistant.ask(message)
    assert first.status is Status.ANSWERED and "Dear Jane, welcome as data analyst." in first.text
    # the admin edits the skeleton while the bot runs: now the index would hide it
    _write(skeleton.parent.parent, {n.replace("s.md", "offer.md"): t for n, t in HOSTILE[case][1].items()})
    caplog.set_level(logging.DEBUG)
    second = assistant.ask(message)  # same question: a cached draft must not come back either
    assert second.status is Status.ERROR and not second.cache_hit
    assert "offer-letter template can't be run right now" in second.text
    assert "hank@example.com" in second.text  # who can fix it
    assert CANARY not in second.text
    assert all(CANARY not in (r.skeleton + r.question) for r in generator.requests)  # type: ignore[attr-defined]
    assert len(generator.requests) == 1  # type: ignore[attr-defined]  # only the first run
    ((dept, kind, text),) = notices.told
    assert (dept, kind) == ("hr", "template-skeleton") and "templates/offer.md" in text
    assert CANARY not in text and CANARY not in caplog.text
    assert audit.entries[-1].error == "SkeletonError"


# ── through the real CLI: R's repro, offline ─────────────────────────────────────────


def test_cli_run_and_check_refuse_the_review_repro(run) -> None:  # type: ignore[no-untyped-def]
    """``--- `` on line 1 and an audience: ``deptbot run`` printed the canary and the
    ``audience:`` line, and ``deptbot check`` said "configuration OK"."""
    skeleton = _company_with_skeleton(run.root)
    code, out, err = run(
        "run", "offer-letter", "Jane Doe, data analyst, paid vacation days", "--user", "alice@example.com"
    )
    assert code == 0 and "Dear Jane, welcome as data analyst." in out, err
    skeleton.write_text(HOSTILE["fence-trailing-space"][1]["templates/s.md"], encoding="utf-8")
    code, out, err = run(
        "run", "offer-letter", "Jane Doe, data analyst, paid vacation days", "--user", "alice@example.com"
    )
    assert code == 2 and CANARY not in out + err and "audience" not in out
    assert "hr.yaml" in err and "templates.offer-letter.skeleton" in err and "templates/offer.md" in err
    code, out, err = run("check")
    assert code == 2 and "configuration OK" not in out and CANARY not in out + err
    assert "templates/offer.md: narrows who may read it" in err
