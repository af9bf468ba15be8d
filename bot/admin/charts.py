"""Server-side SVG charts for the admin console: no JavaScript, nothing fetched.

Every function returns one ``<svg role="img">`` string with a ``<title>`` and ``<desc>``
(``aria-labelledby`` points at both, so screen readers announce them), every text
escaped, and output that depends only on the arguments (same data → same bytes: pages
can be cached and tests compare strings; element ids come from a hash of the content, so
several charts on one page never share a pattern id). Series are told apart by colour
AND by a fill pattern or a dash style with a marker shape, each named in a legend, so
the charts read without colour vision or in greyscale print; every bar and point also
carries its value in a ``<title>`` tooltip. The console adds a data table with the same
``labels``/``series`` as the fallback.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
"""Okabe–Ito: distinguishable with the common colour-vision deficiencies."""
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4")
MARKERS = ("circle", "square", "triangle", "diamond", "cross", "circle")
PATTERNS = ("solid", "stripes", "dots", "crosshatch", "vertical", "horizontal", "stripes-back", "grid")
MAX_X_LABELS = 8
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


@dataclass(frozen=True)
class Series:
    """One named series; ``values`` align with the chart's ``labels`` (None = no data)."""

    name: str
    values: tuple[float | None, ...]


# ── shared pieces ────────────────────────────────────────────────────────────────────


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _n(v: float) -> str:
    """A coordinate with one decimal ("12.0" → "12"): stable bytes for the same input."""
    s = f"{v:.1f}"
    return s[:-2] if s.endswith(".0") else s


def fmt(value: float | None, *, unit: str = "", percent: bool = False) -> str:
    """How a value is written on a chart and in its tooltips ("–" for no data)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if percent:
        text = f"{value * 100:.0f} %"
    elif float(value).is_integer() or abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 1:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}" if unit else text


def _divisions(top: float) -> int:
    """Gridline steps for an axis top from ``nice_max``: round numbers (10, 20 … not 12.5)."""
    mantissa = round(top / 10 ** math.floor(math.log10(top)), 6) if top > 0 else 1.0
    return 4 if mantissa == 2 else 5


def nice_max(value: float) -> float:
    """The axis top: the smallest 1/2/2.5/5 × 10^k at or above ``value`` (1 for nothing)."""
    if value <= 0 or math.isnan(value):
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        if m * exp >= value - 1e-12:
            return float(m * exp)
    return float(10 * exp)


def _chart_id(kind: str, title: str, labels: Sequence[str], series: Sequence[Series]) -> str:
    h = hashlib.sha256()
    for part in (kind, title, *labels, *(f"{s.name}={s.values!r}" for s in series)):
        h.update(part.encode("utf-8", "replace") + b"\x00")
    return "chart-" + h.hexdigest()[:10]


def _pattern(cid: str, i: int) -> str:
    """``<pattern>`` ``i``: the series colour plus a texture (solid for the first)."""
    color = PALETTE[i % len(PALETTE)]
    kind = PATTERNS[i % len(PATTERNS)]
    pid = f"{cid}-p{i}"
    bg = f'<rect width="8" height="8" fill="{color}"/>'
    ink = 'stroke="#fff" stroke-width="1.6"'
    marks = {
        "solid": "",
        "stripes": f'<path d="M-2,2 l4,-4 M0,8 l8,-8 M6,10 l4,-4" {ink}/>',
        "stripes-back": f'<path d="M-2,6 l4,4 M0,0 l8,8 M6,-2 l4,4" {ink}/>',
        "dots": '<circle cx="2" cy="2" r="1.4" fill="#fff"/><circle cx="6" cy="6" r="1.4" fill="#fff"/>',
        "crosshatch": f'<path d="M0,0 l8,8 M8,0 l-8,8" {ink}/>',
        "vertical": f'<path d="M2,0 v8 M6,0 v8" {ink}/>',
        "horizontal": f'<path d="M0,2 h8 M0,6 h8" {ink}/>',
        "grid": f'<path d="M4,0 v8 M0,4 h8" {ink}/>',
    }[kind]
    return f'<pattern id="{pid}" width="8" height="8" patternUnits="userSpaceOnUse">{bg}{marks}</pattern>'


def _marker(i: int, x: float, y: float, color: str) -> str:
    shape = MARKERS[i % len(MARKERS)]
    pts: list[tuple[float, float]] = []
    if shape == "square":
        return f'<rect x="{_n(x - 3)}" y="{_n(y - 3)}" width="6" height="6" fill="{color}"/>'
    if shape == "triangle":
        pts = [(x, y - 4), (x + 4, y + 3), (x - 4, y + 3)]
    if shape == "diamond":
        pts = [(x, y - 4), (x + 4, y), (x, y + 4), (x - 4, y)]
    if shape == "cross":
        d = f"M{_n(x - 3)},{_n(y - 3)} l6,6 M{_n(x + 3)},{_n(y - 3)} l-6,6"
        return f'<path d="{d}" stroke="{color}" stroke-width="2"/>'
    if pts:
        d = " ".join(f"{'M' if k == 0 else 'L'}{_n(px)},{_n(py)}" for k, (px, py) in enumerate(pts)) + " Z"
        return f'<path d="{d}" fill="{color}"/>'
    return f'<circle cx="{_n(x)}" cy="{_n(y)}" r="3" fill="{color}"/>'


def _open(cid: str, title: str, desc: str, width: int, height: int, defs: str = "") -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-labelledby="{cid}-t {cid}-d" {FONT}>'
        f'<title id="{cid}-t">{_e(title)}</title><desc id="{cid}-d">{_e(desc)}</desc>'
        + (f"<defs>{defs}</defs>" if defs else "")
    )


def _legend(cid: str, series: Sequence[Series], *, lines: bool, width: int) -> str:
    """Swatches with names across the top, wrapping; the swatch repeats the series' pattern
    (bars) or dash and marker (lines), so the legend works without colour."""
    out = ['<g class="legend">']
    x, y = 8.0, 12.0
    for i, s in enumerate(series):
        label = s.name if len(s.name) <= 28 else s.name[:27] + "…"
        w = 26 + 6.5 * len(label)
        if x + w > width and x > 8:
            x, y = 8.0, y + 16
        color = PALETTE[i % len(PALETTE)]
        if lines:
            dash = DASHES[i % len(DASHES)]
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(
                f'<line x1="{_n(x)}" y1="{_n(y - 4)}" x2="{_n(x + 18)}" y2="{_n(y - 4)}" '
                f'stroke="{color}" stroke-width="2"{dash_attr}/>'
            )
            out.append(_marker(i, x + 9, y - 4, color))
        else:
            out.append(
                f'<rect x="{_n(x)}" y="{_n(y - 10)}" width="14" height="12" fill="url(#{cid}-p{i})" '
                'stroke="#333" stroke-width="0.5"/>'
            )
        out.append(f'<text x="{_n(x + 22)}" y="{_n(y)}">{_e(label)}</text>')
        x += w
    out.append("</g>")
    return "".join(out)


def _legend_height(series: Sequence[Series], width: int) -> float:
    x, rows = 8.0, 1
    for s in series:
        w = 26 + 6.5 * min(len(s.name), 28)
        if x + w > width and x > 8:
            x, rows = 8.0, rows + 1
        x += w
    return 16.0 * rows + 6


@dataclass(frozen=True)
class _Frame:
    left: float
    top: float
    right: float
    bottom: float

    @property
    def w(self) -> float:
        return self.right - self.left

    @property
    def h(self) -> float:
        return self.bottom - self.top


def _axes(
    frame: _Frame, top: float, labels: Sequence[str], xs: Sequence[float], *, unit: str, percent: bool
) -> str:
    out = ['<g class="axes" fill="#333">']
    ticks = _divisions(top)
    for k in range(ticks + 1):  # gridlines at 0 … top in round steps
        v = top * k / ticks
        y = frame.bottom - frame.h * k / ticks
        out.append(
            f'<line x1="{_n(frame.left)}" y1="{_n(y)}" x2="{_n(frame.right)}" y2="{_n(y)}" '
            f'stroke="#ccc" stroke-width="{1 if k == 0 else 0.5}"/>'
        )
        out.append(
            f'<text x="{_n(frame.left - 4)}" y="{_n(y + 4)}" text-anchor="end">'
            f"{_e(fmt(v, unit=unit, percent=percent))}</text>"
        )
    for i in _label_positions(len(labels)):
        label, x = labels[i], xs[i]
        short = label if len(label) <= 12 else label[:11] + "…"
        half = 3.2 * len(short)  # about half the text's width at this font size
        anchor = "start" if x - half < 2 else "end" if x + half > frame.right + 10 else "middle"
        tx = x - 4 if anchor == "start" else x + 4 if anchor == "end" else x
        out.append(
            f'<text x="{_n(tx)}" y="{_n(frame.bottom + 14)}" text-anchor="{anchor}">{_e(short)}</text>'
        )
    out.append("</g>")
    return "".join(out)


def _label_positions(n: int) -> list[int]:
    """At most ``MAX_X_LABELS`` evenly spaced label positions, always the first and last."""
    if n <= 0:
        return []
    step = max(1, math.ceil(n / MAX_X_LABELS))
    keep = list(range(0, n, step))
    if keep[-1] != n - 1:
        if len(keep) > 1 and (n - 1 - keep[-1]) * 2 < step:
            keep[-1] = n - 1  # too close to the last one: move it there
        else:
            keep.append(n - 1)
    return keep


def _empty(cid: str, title: str, desc: str, width: int, height: int) -> str:
    return (
        _open(cid, title, desc, width, height)
        + f'<text x="{width // 2}" y="{height // 2}" text-anchor="middle" fill="#555">'
        + "No data for this period</text>"
        + "</svg>"
    )


def _has_data(series: Sequence[Series]) -> bool:
    return any(v is not None for s in series for v in s.values)


# ── charts ───────────────────────────────────────────────────────────────────────────


def line_chart(
    *,
    title: str,
    desc: str,
    labels: Sequence[str],
    series: Sequence[Series],
    unit: str = "",
    percent: bool = False,
    width: int = 640,
    height: int = 220,
) -> str:
    """Lines over ``labels`` (e.g. days); ``percent``: values are shares 0..1. A None value
    breaks the line (no data that day), it is never drawn as zero."""
    _check(labels, series)
    cid = _chart_id("line", title, labels, series)
    if not labels or not _has_data(series):
        return _empty(cid, title, desc, width, height)
    lead = _legend_height(series, width)
    frame = _Frame(56, lead + 6, width - 12, height - 22)
    peak = max((v for s in series for v in s.values if v is not None), default=0.0)
    top = 1.0 if percent and peak <= 1 else nice_max(peak)
    n = len(labels)
    xs = [frame.left + frame.w * (i + 0.5) / n for i in range(n)]

    def y(v: float) -> float:
        return frame.bottom - frame.h * max(0.0, min(v, top)) / top

    parts = [_open(cid, title, desc, width, height), _legend(cid, series, lines=True, width=width)]
    parts.append(_axes(frame, top, labels, xs, unit=unit, percent=percent))
    for i, s in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        dash = DASHES[i % len(DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        segs: list[list[tuple[float, float]]] = [[]]
        for x, v in zip(xs, s.values, strict=True):
            if v is None:
                segs.append([])
            else:
                segs[-1].append((x, y(v)))
        parts.append(f'<g class="series" data-series="{i}">')
        for seg in segs:
            if len(seg) > 1:
                d = " ".join(f"{'M' if k == 0 else 'L'}{_n(px)},{_n(py)}" for k, (px, py) in enumerate(seg))
                parts.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="2"{dash_attr}/>')
        for label, x, v in zip(labels, xs, s.values, strict=True):
            if v is None:
                continue
            tip = f"{s.name}, {label}: {fmt(v, unit=unit, percent=percent)}"
            parts.append(f"<g><title>{_e(tip)}</title>{_marker(i, x, y(v), color)}</g>")
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    *,
    title: str,
    desc: str,
    labels: Sequence[str],
    values: Sequence[float],
    unit: str = "",
    percent: bool = False,
    width: int = 640,
    height: int = 220,
    horizontal: bool = False,
) -> str:
    """One bar per label, each with its value written on it (when there is room) and in
    its tooltip. ``horizontal``: one row per label with the label written in full to the
    left — for long labels such as document titles (``height`` then grows with rows)."""
    if len(values) != len(labels):
        raise ValueError("bar_chart: one value per label")
    series = [Series(title, tuple(float(v) for v in values))]
    cid = _chart_id("hbar" if horizontal else "bar", title, labels, series)
    if not labels:
        return _empty(cid, title, desc, width, height)
    peak = max((float(v) for v in values), default=0.0)
    top = 1.0 if percent and peak <= 1 else nice_max(peak)
    color = PALETTE[0]
    if horizontal:
        row = 20
        label_w = min(width * 0.45, 8 + 6.2 * max(len(lb) for lb in labels))
        height = len(labels) * row + 16  # one row per label, whatever ``height`` said
        parts = [_open(cid, title, desc, width, height)]
        span = width - label_w - 70
        for i, (label, v) in enumerate(zip(labels, values, strict=True)):
            y0 = 8 + i * row
            w = span * max(0.0, min(float(v), top)) / top
            text = fmt(float(v), unit=unit, percent=percent)
            short = (
                label
                if len(label) * 6.2 <= label_w - 8
                else label[: max(1, int((label_w - 8) / 6.2) - 1)] + "…"
            )
            parts.append(
                f"<g><title>{_e(f'{label}: {text}')}</title>"
                f'<text x="{_n(label_w - 6)}" y="{_n(y0 + 12)}" text-anchor="end">{_e(short)}</text>'
                f'<rect x="{_n(label_w)}" y="{_n(y0 + 2)}" width="{_n(w)}" height="{row - 6}" '
                f'fill="{color}"/>'
                f'<text x="{_n(label_w + w + 4)}" y="{_n(y0 + 12)}">{_e(text)}</text></g>'
            )
        parts.append("</svg>")
        return "".join(parts)
    frame = _Frame(56, 10, width - 12, height - 22)
    n = len(labels)
    slot = frame.w / n
    bw = max(1.0, slot * 0.7)
    xs = [frame.left + slot * (i + 0.5) for i in range(n)]
    parts = [
        _open(cid, title, desc, width, height),
        _axes(frame, top, labels, xs, unit=unit, percent=percent),
    ]
    for label, x, v in zip(labels, xs, values, strict=True):
        h = frame.h * max(0.0, min(float(v), top)) / top
        text = fmt(float(v), unit=unit, percent=percent)
        parts.append(
            f"<g><title>{_e(f'{label}: {text}')}</title>"
            f'<rect x="{_n(x - bw / 2)}" y="{_n(frame.bottom - h)}" width="{_n(bw)}" height="{_n(h)}" '
            f'fill="{color}"/>'
        )
        if bw >= 18:
            parts.append(
                f'<text x="{_n(x)}" y="{_n(frame.bottom - h - 3)}" text-anchor="middle">{_e(text)}</text>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def stacked_bars(
    *,
    title: str,
    desc: str,
    labels: Sequence[str],
    series: Sequence[Series],
    unit: str = "",
    width: int = 640,
    height: int = 220,
) -> str:
    """One bar per label, split by series (e.g. answered / don't know / denied / error),
    each part filled with its series' colour and pattern; None counts as 0 in a stack."""
    _check(labels, series)
    cid = _chart_id("stack", title, labels, series)
    if not labels or not _has_data(series):
        return _empty(cid, title, desc, width, height)
    lead = _legend_height(series, width)
    frame = _Frame(56, lead + 6, width - 12, height - 22)
    n = len(labels)
    totals = [sum(s.values[i] or 0.0 for s in series) for i in range(n)]
    top = nice_max(max(totals, default=0.0))
    slot = frame.w / n
    bw = max(1.0, slot * 0.7)
    xs = [frame.left + slot * (i + 0.5) for i in range(n)]
    defs = "".join(_pattern(cid, i) for i in range(len(series)))
    parts = [_open(cid, title, desc, width, height, defs), _legend(cid, series, lines=False, width=width)]
    parts.append(_axes(frame, top, labels, xs, unit=unit, percent=False))
    for i, (label, x) in enumerate(zip(labels, xs, strict=True)):
        base = 0.0
        tip = f"{label}: " + ", ".join(f"{s.name} {fmt(s.values[i] or 0.0, unit=unit)}" for s in series)
        parts.append(f'<g class="stack"><title>{_e(tip)}</title>')
        for k, s in enumerate(series):
            v = s.values[i] or 0.0
            if v <= 0:
                continue
            y0 = frame.bottom - frame.h * (base + v) / top
            h = frame.h * v / top
            parts.append(
                f'<rect x="{_n(x - bw / 2)}" y="{_n(y0)}" width="{_n(bw)}" height="{_n(h)}" '
                f'fill="url(#{cid}-p{k})" stroke="#fff" stroke-width="0.5"/>'
            )
            base += v
        if bw >= 18 and totals[i] > 0:
            y_top = frame.bottom - frame.h * totals[i] / top
            parts.append(
                f'<text x="{_n(x)}" y="{_n(y_top - 3)}" text-anchor="middle">'
                f"{_e(fmt(totals[i], unit=unit))}</text>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _check(labels: Sequence[str], series: Sequence[Series]) -> None:
    for s in series:
        if len(s.values) != len(labels):
            raise ValueError(f"chart series {s.name!r} has {len(s.values)} values for {len(labels)} labels")
