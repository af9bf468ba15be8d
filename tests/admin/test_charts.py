"""Server-side SVG charts: well-formed, labelled for screen readers, escaped, not colour
alone, and byte-for-byte deterministic."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from bot.admin.charts import Series, bar_chart, fmt, line_chart, nice_max, stacked_bars

SVG = "{http://www.w3.org/2000/svg}"
DAYS = [f"2026-11-{d:02d}" for d in range(1, 8)]
EVIL = '<script>alert("x")</script> & "quotes"'


def _charts() -> list[str]:
    return [
        line_chart(
            title="Latency",
            desc="p50 and p95 per day",
            labels=DAYS,
            series=[Series("p50", (1.0, 2.0, None, 4.0, 5.0, 6.0, 7.0)), Series("p95", (9.0,) * 7)],
            unit="ms",
        ),
        bar_chart(title="Routes", desc="answers by route", labels=["cloud", "private"], values=[3, 5]),
        bar_chart(
            title="Most cited",
            desc="citations",
            labels=["A long document title", "B"],
            values=[9, 1],
            horizontal=True,
        ),
        stacked_bars(
            title="Questions",
            desc="per day by status",
            labels=DAYS,
            series=[
                Series("answered", (5.0,) * 7),
                Series("don't know", (1.0,) * 7),
                Series("denied", (0.0,) * 7),
            ],
        ),
    ]


@pytest.mark.parametrize("index", range(4))
def test_each_chart_is_an_accessible_svg(index: int) -> None:
    svg = _charts()[index]
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag == SVG + "svg" and root.get("role") == "img"
    title, desc = root.find(SVG + "title"), root.find(SVG + "desc")
    assert title is not None and desc is not None and title.text and desc.text
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    assert "<script" not in svg and "on" + "load" not in svg and "style=" not in svg


def test_all_text_is_escaped() -> None:
    svgs = [
        line_chart(title=EVIL, desc=EVIL, labels=[EVIL, "b"], series=[Series(EVIL, (1.0, 2.0))]),
        bar_chart(title=EVIL, desc=EVIL, labels=[EVIL], values=[1], horizontal=True),
        bar_chart(title=EVIL, desc=EVIL, labels=[EVIL], values=[1]),
        stacked_bars(title=EVIL, desc=EVIL, labels=[EVIL], series=[Series(EVIL, (1.0,))], unit=EVIL),
    ]
    for svg in svgs:
        assert "<script>" not in svg and "&lt;script&gt;" in svg
        root = ET.fromstring(svg)
        title = root.find(SVG + "title")
        assert title is not None and title.text == EVIL  # escaped markup reads back as the text


def test_output_is_deterministic_and_ids_differ_between_charts() -> None:
    assert _charts() == _charts()
    ids = [ET.fromstring(s).find(SVG + "title").get("id") for s in _charts()]  # type: ignore[union-attr]
    assert len(set(ids)) == len(ids)


def test_stacked_series_differ_by_pattern_and_are_named_in_a_legend() -> None:
    svg = _charts()[3]
    patterns = re.findall(r'<pattern id="([^"]+)"', svg)
    assert len(patterns) == 3
    bodies = [re.search(rf'<pattern id="{p}".*?</pattern>', svg).group(0).split(">", 1)[1] for p in patterns]  # type: ignore[union-attr]
    textures = [re.sub(r'fill="#[0-9A-F]{6}"', "", b) for b in bodies]
    assert len(set(textures)) == 3  # not told apart by colour alone
    assert all(f"url(#{p})" in svg for p in patterns[:2])  # zero-valued "denied" draws nothing
    for name in ("answered", "don&#x27;t know", "denied"):
        assert f">{name}</text>" in svg


def test_lines_differ_by_dash_and_marker_and_break_on_missing_values() -> None:
    svg = _charts()[0]
    paths = re.findall(r'<path d="(M[^"]+)" fill="none" stroke="(#[0-9A-F]+)" stroke-width="2"([^/]*)/>', svg)
    p50 = [p for p in paths if p[1] == "#0072B2"]
    assert len(p50) == 2  # the None on day 3 splits the line in two
    p95 = [p for p in paths if p[1] == "#E69F00"]
    assert p95 and "stroke-dasharray" in p95[0][2] and "stroke-dasharray" not in p50[0][2]
    assert "<circle" in svg and "<rect x=" in svg  # circle markers for p50, squares for p95
    assert "p50, 2026-11-04: 4 ms" in svg  # every point has its value as a tooltip


def test_bars_write_their_values() -> None:
    assert ">5</text>" in _charts()[1] and ">9</text>" in _charts()[2]
    assert ">A long document title</text>" in _charts()[2]


def test_empty_data_says_so() -> None:
    svg = line_chart(title="t", desc="d", labels=DAYS, series=[Series("a", (None,) * 7)])
    assert "No data for this period" in svg and ET.fromstring(svg).get("role") == "img"
    assert "No data" in stacked_bars(title="t", desc="d", labels=[], series=[])


def test_mismatched_series_are_refused() -> None:
    with pytest.raises(ValueError):
        line_chart(title="t", desc="d", labels=DAYS, series=[Series("a", (1.0,))])
    with pytest.raises(ValueError):
        bar_chart(title="t", desc="d", labels=["a", "b"], values=[1])


def test_percent_axis_and_number_format() -> None:
    svg = line_chart(title="t", desc="d", labels=["a", "b"], series=[Series("s", (0.5, 1.0))], percent=True)
    assert ">100 %</text>" in svg and ">20 %</text>" in svg and ">0 %</text>" in svg
    assert fmt(None) == "–" and fmt(1234.0, unit="ms") == "1,234 ms" and fmt(0.125) == "0.125"
    assert [nice_max(v) for v in (0, 7, 12, 37.5, 100)] == [1.0, 10.0, 20.0, 50.0, 100.0]
