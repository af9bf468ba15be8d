"""HTML → Markdown: headings as ``#``, paragraphs, lists and tables kept as structure.

Used by ``formats.parse_html``; scripts, styles and templates are dropped.
"""

from __future__ import annotations

import html.parser
import re

from bot.knowledge import tables


class _HTMLToMarkdown(html.parser.HTMLParser):
    """Keeps headings (as ``#``), paragraphs, lists (one item per line, nested by indent)
    and tables (Markdown pipe tables, header first); drops scripts and styles.

    Cells and list items collect their text inline (block tags inside them become spaces),
    so a cell never runs into the next one and an item never loses its bullet. A nested
    table is flattened into its outer cell; a one-column table is read as paragraphs.
    """

    BLOCK = frozenset(
        {"p", "div", "section", "article", "pre", "blockquote", "dl", "dt", "dd", "figure", "caption"}
    )
    SKIP = frozenset({"script", "style", "noscript", "template", "svg"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False
        self._tables: list[list[list[str]]] = []  # open tables, innermost last: rows of cells
        self._cell: list[list[str]] = []  # text of the open cell of each open table
        self._in_cell: list[bool] = []
        self._pad: list[int] = []  # empty cells owed by the open cell's colspan
        self._lists: list[list[int]] = []  # open lists: [counter] (-1 = bullets)

    # where text goes: the innermost open cell, else the document
    def _emit(self, text: str) -> None:
        if self._tables and self._in_cell[-1]:
            self._cell[-1].append(text)
        elif not self._tables:
            self.out.append(text)

    def _end_cell(self) -> None:
        if self._tables and self._in_cell[-1]:
            rows = self._tables[-1]
            if not rows:
                rows.append([])
            rows[-1].append(tables.cell("".join(self._cell[-1])))
            self._cell[-1] = []
            self._in_cell[-1] = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag == "table":
            self._tables.append([])
            self._cell.append([])
            self._in_cell.append(False)
            self._pad.append(0)
        elif self._tables and tag == "tr":
            self._end_cell()
            self._tables[-1].append([])
        elif self._tables and tag in ("td", "th"):
            self._end_cell()
            if not self._tables[-1]:
                self._tables[-1].append([])
            self._in_cell[-1] = True
            span = (dict(attrs).get("colspan") or "1").strip()
            self._pad[-1] = min(int(span), 50) - 1 if span.isdigit() and int(span) > 1 else 0
            self._cell[-1] = []
        elif self._tables:
            if tag == "br" or tag in self.BLOCK or tag in ("li", "ul", "ol") or re.fullmatch(r"h[1-6]", tag):
                self._emit(" ")
        elif tag in ("ul", "ol"):
            self._lists.append([0 if tag == "ol" else -1])
            if len(self._lists) == 1:
                self.out.append("\n\n")
        elif tag == "li":
            indent = "  " * max(0, len(self._lists) - 1)
            counter = self._lists[-1] if self._lists else [-1]
            if counter[0] >= 0:
                counter[0] += 1
                self.out.append(f"\n{indent}{counter[0]}. ")
            else:
                self.out.append(f"\n{indent}- ")
        elif self._lists:
            if tag in self.BLOCK or tag == "br" or re.fullmatch(r"h[1-6]", tag):
                self.out.append(" ")  # keep the item on one line
        elif re.fullmatch(r"h[1-6]", tag):
            self.out.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag == "br":
            self.out.append("\n")
        elif tag in self.BLOCK:
            self.out.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif tag == "table" and self._tables:
            self._end_cell()
            rows = [r for r in self._tables.pop() if any(c for c in r)]
            self._cell.pop()
            self._in_cell.pop()
            self._pad.pop()
            self._emit_table(rows)
        elif self._tables and tag in ("td", "th"):
            self._end_cell()
            if self._pad[-1] and self._tables[-1]:  # colspan: the cells it covers stay empty
                self._tables[-1][-1].extend([""] * self._pad[-1])
            self._pad[-1] = 0
        elif self._tables:
            if tag in self.BLOCK or re.fullmatch(r"h[1-6]", tag):
                self._emit(" ")
        elif tag in ("ul", "ol"):
            if self._lists:
                self._lists.pop()
            if not self._lists:
                self.out.append("\n\n")
        elif self._lists:
            if tag in self.BLOCK:
                self.out.append(" ")
        elif re.fullmatch(r"h[1-6]", tag) or tag in self.BLOCK:
            self.out.append("\n\n")

    def _emit_table(self, rows: list[list[str]]) -> None:
        if not rows:
            return
        if self._tables:  # nested: flatten into the outer cell
            self._emit(" " + "; ".join(" ".join(c for c in r if c) for r in rows) + " ")
            return
        width = max(len(r) for r in rows)
        if width == 1 or any(len(c) > 1000 for r in rows for c in r):  # a layout table
            self.out.append("\n\n" + "\n\n".join(" ".join(c for c in r if c) for r in rows) + "\n\n")
            return
        self.out.append("\n\n" + tables.pipe_table(rows) + "\n\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in_title:
            self.title += data.strip()
            return
        self._emit(re.sub(r"\s+", " ", data))

    def close(self) -> None:
        super().close()
        while self._tables:  # unclosed tables still show their rows
            self.handle_endtag("table")


def html_to_markdown(text: str) -> tuple[str, str]:
    parser = _HTMLToMarkdown()
    parser.feed(text)
    parser.close()
    md = re.sub(r"\n[ \t]+(?![ \t]|(?:[-*+]|\d+[.)]) )", "\n", "".join(parser.out))  # keep list indents
    md = re.sub(r"(?<=\S)[ \t]{2,}", " ", md)
    md = re.sub(r"[ \t]+\n", "\n", md)
    md = re.sub(r"(?m)^(#{1,6}) *\n+", r"\1 ", md)  # heading text that followed a break
    return parser.title, re.sub(r"\n{3,}", "\n\n", md)
