"""Caps, settings and notices: each bad file is reported with the cap it crossed."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import Department
from bot.errors import ConfigError
from bot.knowledge import KnowledgeBase, ingest
from bot.settings import Settings
from bot.store.notices import MemoryNotices
from tests.knowledge.conftest import CountingEmbedder
from tests.knowledge.test_kb_ingest import make_docx, make_pdf


def reasons(dept: Department, limits: ingest.Limits) -> dict[str, str]:
    out = {}
    for src in ingest.scan(dept, limits):
        try:
            ingest.parse_file(src, dept, limits)
        except ingest.IngestError as exc:
            out[src.rel] = exc.reason
    return out


def inflating_docx(size: int) -> bytes:
    """A valid Word file whose body inflates to ``size`` bytes (compresses to almost nothing)."""
    src = zipfile.ZipFile(io.BytesIO(make_docx()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "word/document.xml":
                data = data.replace(b"<w:body>", b"<w:body>" + b" " * size, 1)
            out.writestr(info.filename, data)
    return buf.getvalue()


def test_every_cap_is_reported_with_its_setting(dept: Department, write: Callable[..., Path]) -> None:
    limits = ingest.Limits(max_file_mb=0.5, max_decompressed_mb=1, max_pdf_pages=2, max_chunks_per_file=3)
    write("big.txt", "word " * 200_000)  # 1 MB
    write("bomb.docx", inflating_docx(3 << 20))
    write("long.pdf", make_pdf(["one", "two", "three"]))
    write("many.md", "\n\n".join(f"# Part {i}\n\nText of part {i}." for i in range(5)))
    write("ok.docx", make_docx())
    assert len((dept.knowledge / "bomb.docx").read_bytes()) < 100_000
    assert reasons(dept, limits) == {
        "big.txt": "larger than 0.5 MB (setting knowledge.max_file_mb)",
        "bomb.docx": "expands to more than 1 MB (setting knowledge.max_decompressed_mb)",
        "long.pdf": "has 3 pages, more than 2 (setting knowledge.max_pdf_pages)",
        "many.md": "more than 3 chunks (setting knowledge.max_chunks_per_file)",
    }


def test_settings_defaults_match_the_code_and_are_validated() -> None:
    settings = Settings.load(env={})
    assert ingest.Limits.from_settings(settings.section("knowledge")) == ingest.DEFAULT_LIMITS
    with pytest.raises(ConfigError, match=r"knowledge\.follow_links"):
        ingest.Limits.from_settings({"follow_links": "always"})
    with pytest.raises(ConfigError, match=r"knowledge\.max_file_mb"):
        ingest.Limits.from_settings({"max_file_mb": 0})
    with pytest.raises(ConfigError, match="looks like the deptbot field 'audience'"):
        ingest.Limits.from_settings({"front_matter_ignore": ["Audience"]})
    custom = ingest.Limits.from_settings({"front_matter_ignore": ["questions"], "follow_links": "inside"})
    assert custom.front_matter_ignore == ("questions",) and custom.follow_links == "inside"


def test_publishing_keys_are_ignored_and_others_refused(dept: Department, write: Callable[..., Path]) -> None:
    write("jekyll.md", "---\ntitle: Leave\nlayout: page\nredirect_from: [/old]\n---\n# Leave\n\nTake it.\n")
    write("custom.md", "---\ntitle: Leave\nquestions: [why]\n---\n# Leave\n\nTake it.\n")
    failed = reasons(dept, ingest.DEFAULT_LIMITS)
    assert set(failed) == {"custom.md"} and failed["custom.md"].startswith("line 3, questions: unknown field")
    assert (
        reasons(
            dept, ingest.Limits(front_matter_ignore=(*ingest.DEFAULT_LIMITS.front_matter_ignore, "questions"))
        )
        == {}
    )


def test_one_notice_per_refresh_names_files_and_reasons(
    tmp_path: Path, dept: Department, write: Callable[..., Path], counting: CountingEmbedder
) -> None:
    notices = MemoryNotices()
    kb = KnowledgeBase(state_dir=tmp_path / "state", embedder=counting, notices=notices)
    write("ok.md", "# Fine\n\nFine.\n")
    write("a.txt", '---\naudience: ["group:hr-admins"]\n---\nSecret.\n')
    write("b/_access.yml", 'audience: ["group:hr-admins"]\n')
    write("b/c.md", "# C\n\nSecret.\n")
    report = kb.refresh(dept)
    assert report.added == 1 and len(report.failed) == 3
    (notice,) = notices.recent("hr")
    assert notice.kind == "files-skipped"
    assert notice.text.startswith("hr: 3 files not indexed: a.txt (line 1: starts with a front-matter block")
    assert "b/_access.yml (looks like a misspelled _access.yaml" in notice.text
    assert "Secret" not in notice.text
    kb.refresh(dept)  # the same problems again: told once
    assert len(notices.recent("hr")) == 1
    assert not kb.status(dept).stale


def test_parser_version_change_makes_old_indexes_stale(
    kb: KnowledgeBase, dept: Department, write: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    write("ok.md", "# Fine\n\nFine.\n")
    kb.refresh(dept)
    assert not kb.status(dept).stale
    monkeypatch.setattr(ingest, "PARSER_VERSION", "older")
    assert kb.status(dept).stale
    assert kb.refresh(dept).changed == 1
