"""The Teams app icons, drawn with Pillow so they can be regenerated and reviewed as code.

Teams wants a 192×192 full-colour icon and a 32×32 outline icon that is white on a
transparent background. The motif is a document with a speech bubble: answers from
documents. Run ``python -m bot.adapters.teams.icons manifest/teams`` to redraw them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

ACCENT = (43, 87, 151, 255)  # #2B5797, also the manifest's accentColor
WHITE = (255, 255, 255, 255)
COLOR_SIZE, OUTLINE_SIZE = 192, 32


Ink = int | tuple[int, int, int, int]


def _motif(draw: ImageDraw.ImageDraw, scale: float, *, stroke: int, fill: Ink, gap: Ink) -> None:
    """A page with three text lines and a speech bubble, on a 32-unit grid."""

    def s(*xy: float) -> list[float]:
        return [v * scale for v in xy]

    draw.rounded_rectangle(s(4, 2, 20, 26), radius=2 * scale, outline=fill, width=stroke)
    for y in (8, 12, 16):
        draw.line(s(7.5, y, 16.5, y), fill=fill, width=stroke)
    draw.rounded_rectangle(s(13.5, 15.5, 30.5, 27.5), radius=4 * scale, fill=gap)  # clear space
    draw.rounded_rectangle(s(15, 17, 29, 26), radius=3 * scale, fill=fill)
    draw.polygon(s(18, 25.5, 18, 30, 22.5, 25.5), fill=fill)


def color_icon() -> Image.Image:
    """192×192: white motif on the accent colour, edge to edge (Teams rounds the corners)."""
    big = COLOR_SIZE * 4  # draw large, downsample for smooth edges
    img = Image.new("RGBA", (big, big), ACCENT)
    inset = big * 0.18
    scale = (big - 2 * inset) / 32
    layer = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    _motif(ImageDraw.Draw(layer), scale, stroke=max(1, round(1.6 * scale)), fill=WHITE, gap=ACCENT)
    img.alpha_composite(layer, (round(inset), round(inset)))
    return img.resize((COLOR_SIZE, COLOR_SIZE), Image.Resampling.LANCZOS)


def outline_icon() -> Image.Image:
    """32×32: pure white pixels (any alpha) on full transparency, as Teams requires."""
    big = OUTLINE_SIZE * 8
    mask = Image.new("L", (big, big), 0)
    _motif(ImageDraw.Draw(mask), big / 32, stroke=round(1.8 * big / 32), fill=255, gap=0)
    alpha = mask.resize((OUTLINE_SIZE, OUTLINE_SIZE), Image.Resampling.LANCZOS)
    img = Image.new("RGBA", (OUTLINE_SIZE, OUTLINE_SIZE), (255, 255, 255, 0))
    img.putalpha(alpha)
    return img


def write_icons(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    color, outline = folder / "color.png", folder / "outline.png"
    color_icon().save(color, optimize=True)
    outline_icon().save(outline, optimize=True)
    return color, outline


if __name__ == "__main__":  # pragma: no cover
    for path in write_icons(Path(sys.argv[1] if len(sys.argv) > 1 else "manifest/teams")):
        print(path)
