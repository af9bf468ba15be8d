"""A small DOCX cannot cost gigabytes or minutes: element cap, streaming parse, same output.

A 284 KB file holding 95 MB of ``<w:p>`` took 20 s and 1.4 GB to parse whole, on every
refresh. These tests assert on the refusal and on memory held, never on time.
"""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import Department
from bot.knowledge import KnowledgeBase, ingest
from bot.knowledge.docx_markdown import docx_to_markdown
from bot.knowledge.formats import IngestError
from bot.store.notices import MemoryNotices
from tests.knowledge.conftest import CountingEmbedder
from tests.knowledge.test_kb_ingest import make_docx

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
UNIT = b"<w:p><w:r><w:t>a</w:t></w:r></w:p>"  # three elements in 34 bytes


def docx_with(body: bytes, *, head: bytes = b"", numbering: bytes | None = None) -> bytes:
    xml = b'<?xml version="1.0"?>' + head + b"<w:document " + W.encode() + b"><w:body>" + body
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("word/document.xml", xml + b"</w:body></w:document>")
        if numbering is not None:
            z.writestr("word/numbering.xml", numbering)
    return buf.getvalue()


def bomb(xml_mb: float) -> bytes:
    """The reviewer's shape: paragraphs of one letter, inflating ~330 times."""
    return docx_with(UNIT * int(xml_mb * (1 << 20) // len(UNIT)))


def test_element_bomb_is_refused_and_the_rest_indexed(
    tmp_path: Path, dept: Department, write: Callable[..., Path], counting: CountingEmbedder
) -> None:
    """Default limits: 25 MB of XML in a ~80 KB file (2.3 million elements, over the
    2,097,152 the default 100 MB allows) is refused before it is parsed."""
    notices = MemoryNotices()
    kb = KnowledgeBase(state_dir=tmp_path / "state", embedder=counting, notices=notices)
    data = bomb(25)
    assert len(data) < 100_000
    write("handbook.docx", data)
    write("expenses.docx", make_docx())
    write("leave.md", "# Leave\n\nTake it.\n")
    report = kb.refresh(dept)
    assert report.added == 2
    (failed,) = report.failed
    reason = (
        "holds more than 2,097,152 XML elements "
        "(setting knowledge.max_decompressed_mb allows one per 50 bytes)"
    )
    assert failed.path.endswith("handbook.docx") and failed.reason == reason
    (notice,) = notices.recent("hr")
    assert "handbook.docx (holds more than 2,097,152 XML elements" in notice.text


def test_the_cap_follows_the_decompressed_setting(dept: Department, write: Callable[..., Path]) -> None:
    """1 MB allows 20,971 elements: 100 paragraphs among 21,000 empty bookmarks (21,302
    elements with the document and body, 400 KB) are refused, among 20,500 (20,802) read;
    raising the setting raises the cap."""
    limits = ingest.Limits(max_decompressed_mb=1)
    over = docx_with(UNIT * 100 + b"<w:bookmarkStart/>" * 21_000)
    write("over.docx", over)
    write("under.docx", docx_with(UNIT * 100 + b"<w:bookmarkStart/>" * 20_500))
    outcome = {}
    for src in ingest.scan(dept, limits):
        try:
            outcome[src.rel] = len(ingest.parse_file(src, dept, limits).chunks) > 0
        except ingest.IngestError as exc:
            outcome[src.rel] = exc.reason
    assert outcome == {
        "over.docx": "holds more than 20,971 XML elements "
        "(setting knowledge.max_decompressed_mb allows one per 50 bytes)",
        "under.docx": True,
    }
    assert docx_to_markdown(over, 2 << 20).startswith("a\n\na\n\n")


def test_numbering_counts_toward_the_cap() -> None:
    numbering = b"<w:numbering " + W.encode() + b">" + b"<w:num/>" * 30_000 + b"</w:numbering>"
    with pytest.raises(IngestError, match="holds more than 20,971 XML elements"):
        docx_to_markdown(docx_with(UNIT, numbering=numbering), 1 << 20)


def test_entity_declaration_across_a_block_seam_is_refused() -> None:
    """Parts are checked in 1 MB blocks; a declaration split by the seam is still seen."""
    head = b"<!--" + b"x" * ((1 << 20) - 30) + b"-->" + b'<!DOCTYPE w:document [<!ENTITY a "b">]>'
    assert head.index(b"<!DOCTYPE") < (1 << 20) < head.index(b"<!DOCTYPE") + 9 + 21
    with pytest.raises(IngestError, match="declares XML entities"):
        docx_to_markdown(docx_with(b"<w:p><w:r><w:t>&a;</w:t></w:r></w:p>", head=head), 100 << 20)


def test_memory_holds_a_block_not_the_document() -> None:
    """135,000 elements of formatting around empty runs (1.8 MB of XML, under the cap): a
    whole tree of them peaked at 27 MB; streamed, one fed block and the output live (3 MB)."""
    para = (
        b'<w:p><w:pPr><w:spacing w:after="0"/><w:jc w:val="left"/></w:pPr>'
        b"<w:r><w:rPr><w:b/><w:i/></w:rPr><w:t></w:t></w:r></w:p>"
    )
    data = docx_with(para * 15_000 + b"<w:p><w:r><w:t>The end.</w:t></w:r></w:p>")
    tracemalloc.start()
    try:
        text = docx_to_markdown(data, 100 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert text == "The end.\n"
    assert peak < 8 << 20, f"peak {peak >> 20} MB"


def test_streaming_picks_the_same_blocks_as_the_whole_tree() -> None:
    """The first direct ``w:body`` only; content controls and custom XML opened; section
    properties, a text box's paragraph (read with its own), and whatever sits beside the
    body or in a second one skipped — as the whole-tree reader did."""
    p = b"<w:p><w:r><w:t>%s</w:t></w:r></w:p>"
    box = b"<w:r><w:pict><w:txbxContent>" + p % b"boxed" + b"</w:txbxContent></w:pict></w:r>"
    body = (
        b'<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Title</w:t></w:r></w:p>'
        + b"<w:sdt><w:sdtContent>"
        + p % b"in control"
        + b"</w:sdtContent></w:sdt><w:bookmarkStart/><w:customXml>"
        + p % b"custom"
        + b"</w:customXml><w:sectPr>"
        + p % b"hidden"
        + b"</w:sectPr><w:p><w:r><w:t>with </w:t></w:r>"
        + box
        + b"</w:p><w:tbl><w:tr><w:tc>"
        + p % b"h"
        + b"</w:tc></w:tr><w:tr><w:tc>"
        + p % b"v"
        + b"</w:tc></w:tr></w:tbl>"
    )
    xml = (
        b'<?xml version="1.0"?><w:document '
        + W.encode()
        + b"><w:x><w:body>"
        + p % b"nested body"
        + b"</w:body></w:x><w:body>"
        + body
        + b"</w:body><w:body>"
        + p % b"second body"
        + b"</w:body><w:background>"
        + p % b"beside"
        + b"</w:background></w:document>"
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("word/document.xml", xml)
    assert docx_to_markdown(buf.getvalue(), 100 << 20) == (
        "# Title\n\nin control\n\ncustom\n\nwith boxed\n\n| h |\n|---|\n| v |\n"
    )
