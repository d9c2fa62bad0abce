"""Contact sheets: one image per group, its faces side by side with their file names.

What a reviewer looks at first: does every face on the sheet show the same person?
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from facetrace.types import BoundingBox

THUMB = 128
CAPTION = 30
COLUMNS = 8
MAX_FACES = 96  # a sheet shows at most this many faces, then says how many more
MARGIN = 6
HEADER = 34
BACKGROUND = (250, 250, 248)
TEXT = (30, 30, 30)
MUTED = (110, 110, 110)


def face_thumbnail(pixels: npt.NDArray[np.uint8], box: BoundingBox, *, size: int = THUMB) -> bytes:
    """A square JPEG crop around ``box`` (widened by 30% for context), ``size`` pixels."""
    h, w = pixels.shape[:2]
    cx, cy = box.center
    half = max(box.width, box.height) * 0.65
    x1, y1 = max(0, int(cx - half)), max(0, int(cy - half))
    x2, y2 = min(w, int(cx + half)), min(h, int(cy + half))
    crop = Image.fromarray(pixels[y1:y2, x1:x2]).convert("RGB")
    crop.thumbnail((size, size))
    square = Image.new("RGB", (size, size), BACKGROUND)
    square.paste(crop, ((size - crop.width) // 2, (size - crop.height) // 2))
    buf = io.BytesIO()
    square.save(buf, format="JPEG", quality=88)
    return buf.getvalue()


@dataclass(frozen=True, slots=True)
class Tile:
    """One face on a sheet: its thumbnail (JPEG bytes) and a one-line caption."""

    thumbnail: bytes
    caption: str


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def fit_caption(draw: ImageDraw.ImageDraw, text: str, font: object, width: int) -> str:
    """``text`` shortened in the middle with an ellipsis to fit ``width`` pixels.

    The end stays: it holds what tells tiles apart (the face number of a group photo
    and the file's extension), where the start of a long name seldom does."""
    if draw.textlength(text, font=font) <= width:  # type: ignore[arg-type]
        return text
    keep = min(10, len(text) // 2)
    head, tail = text[: len(text) - keep], text[len(text) - keep :]
    while head or tail:
        if head:
            head = head[:-1]
        else:
            tail = tail[1:]
        short = head + "…" + tail
        if draw.textlength(short, font=font) <= width:  # type: ignore[arg-type]
            return short
    return "…"


def contact_sheet(title: str, tiles: Sequence[Tile], *, columns: int = COLUMNS) -> Image.Image:
    """The sheet of one group: a title line, then up to :data:`MAX_FACES` faces."""
    shown = list(tiles[:MAX_FACES])
    cols = max(1, min(columns, len(shown)))
    rows = max(1, -(-len(shown) // cols))
    cell_w, cell_h = THUMB + MARGIN, THUMB + CAPTION
    width = max(cols * cell_w + MARGIN, 420)
    height = HEADER + rows * cell_h + MARGIN
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    more = len(tiles) - len(shown)
    head = title + (f"  (+{more} more not shown)" if more > 0 else "")
    draw.text((MARGIN, 8), fit_caption(draw, head, _font(16), width - 2 * MARGIN), fill=TEXT,
              font=_font(16))  # fmt: skip
    small = _font(11)
    for i, tile in enumerate(shown):
        x = MARGIN + (i % cols) * cell_w
        y = HEADER + (i // cols) * cell_h
        with Image.open(io.BytesIO(tile.thumbnail)) as thumb:
            sheet.paste(thumb.convert("RGB").resize((THUMB, THUMB)), (x, y))
        draw.text((x, y + THUMB + 3), fit_caption(draw, tile.caption, small, THUMB), fill=MUTED,
                  font=small)  # fmt: skip
    return sheet


def save_sheet(image: Image.Image, path: Path) -> None:
    """Write a sheet as JPEG through a temporary file, so a crash leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    image.save(tmp, format="JPEG", quality=90)
    tmp.replace(path)
