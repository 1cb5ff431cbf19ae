"""Draw detections on an image with Pillow, with legible tags, and save them under unique names.

Tags (``label score``) never overlap one another and never leave the image: each goes to the first
free spot of above the box, inside its top, below it, inside its bottom (left-aligned, then
right-aligned), and else to the free spot nearest to "above the box". Higher scores are placed first.

Output names (:class:`AnnotationWriter`): the source's stem + ``.jpg``; when that name is already
taken in this folder by an earlier image of the same run (``a/x.jpg`` then ``b/x.jpg``, or ``x.jpg``
then ``x.png``), the later image gets ``x-1.jpg``, then ``x-2.jpg``, … (the smallest free number).
Names are compared case-insensitively (FAT-formatted SD cards and USB sticks are). Files left
from an earlier run are overwritten, so re-running a batch into the same folder is idempotent.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

from .results import Detection

__all__ = ["TagBox", "AnnotationWriter", "draw_detections", "draw_label", "place_label", "save_annotated",
           "tag_layout"]

_PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
            (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212))
_PAD = 2  # pixels between a tag's edge and its text
_GAP = 1  # pixels kept free between two tags, so that they read as two


@dataclass(frozen=True)
class TagBox:
    """Where one detection's tag goes: ``rect`` is ``(left, top, right, bottom)``, right/bottom
    exclusive; ``detection`` is None for a free-standing label (:func:`place_label`)."""

    detection: Detection | None
    text: str
    rect: tuple[int, int, int, int]


def tag_layout(image_size: tuple[int, int], detections: Sequence[Detection],
               font: ImageFont.ImageFont | ImageFont.FreeTypeFont | None = None,
               reserved: Sequence[tuple[int, int, int, int]] = ()) -> list[TagBox]:
    """Place one tag per detection so that no two overlap and each lies inside the image.

    Args:
        image_size: (width, height) of the image the tags are drawn on.
        detections: boxes in that image's pixels.
        font: the font the tags are written in (default: :func:`tag_font` for this size).
        reserved: rectangles ``(left, top, right, bottom)`` no tag may cover (other labels, such
            as a zone's name).
    Returns: the tags, highest score first. A tag is left out only when the image cannot hold it
        (it is narrower or lower than one line of text) or no free room is left anywhere.
    """
    width, height = image_size
    font = font or tag_font(image_size)
    line = _line_height(font)
    placed: list[TagBox] = []
    taken = [tuple(r) for r in reserved]
    for det in sorted(detections, key=lambda d: -d.score):
        text = _fit(f"{det.label} {det.score:.2f}", font, width - 2 * _PAD)
        if text is None or line > height:
            continue
        size = (_text_width(font, text) + 2 * _PAD, line)
        rect = _place(det.box, size, image_size, taken)
        if rect is not None:
            placed.append(TagBox(det, text, rect))
            taken.append(rect)
    return placed


def tag_font(image_size: tuple[int, int]) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """A font that reads at the image's scale (about 1/45 of its shorter side, at least 10 px)."""
    size = max(10, round(min(image_size) / 45))
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def draw_detections(image: Image.Image, detections: Sequence[Detection], *,
                    reserved: Sequence[tuple[int, int, int, int]] = (), copy: bool = True) -> Image.Image:
    """Return a copy of ``image`` (RGB) with a box for each detection and its ``label score`` tag
    placed by :func:`tag_layout` (boxes first, tags on top, so no line crosses a tag).

    ``reserved``: rectangles no tag may cover (:func:`tag_layout`). ``copy=False`` draws on
    ``image`` itself (an RGB image the caller owns: a 1080p copy costs more than the drawing)."""
    out = image if not copy and image.mode == "RGB" else image.convert("RGB")
    draw = ImageDraw.Draw(out)
    width = max(1, round(min(out.size) / 300))
    font = tag_font(out.size)
    for det in detections:
        draw.rectangle(det.box, outline=_color(det), width=width)
    top = _text_top(font)
    for tag in tag_layout(out.size, detections, font, reserved):
        left, upper, right, lower = tag.rect
        draw.rectangle((left, upper, right - 1, lower - 1), fill=_color(tag.detection))
        draw.text((left + _PAD, upper + _PAD - top), tag.text, fill=(0, 0, 0), font=font)
    return out


def place_label(image_size: tuple[int, int], text: str, at: tuple[float, float],
                font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> TagBox | None:
    """A free-standing label (a zone's name): ``text`` (shortened to fit) in a tag whose top-left
    corner is ``at``, moved inside the image; None when the image cannot hold one line of text.
    Pass its ``rect`` to :func:`draw_detections` as ``reserved`` so no detection's tag covers it,
    then draw it with :func:`draw_label`."""
    width, height = image_size
    line = _line_height(font)
    fitted = _fit(text, font, width - 2 * _PAD)
    if fitted is None or line > height:
        return None
    w = _text_width(font, fitted) + 2 * _PAD
    x, y = min(max(round(at[0]), 0), width - w), min(max(round(at[1]), 0), height - line)
    return TagBox(None, fitted, (x, y, x + w, y + line))


def draw_label(draw: ImageDraw.ImageDraw, tag: TagBox, font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
               color: tuple[int, int, int], background: tuple[int, int, int] = (0, 0, 0)) -> None:
    """Draw a :func:`place_label` tag: ``color`` text on ``background`` (legible over any line)."""
    left, upper, right, lower = tag.rect
    draw.rectangle((left, upper, right - 1, lower - 1), fill=background)
    draw.text((left + _PAD, upper + _PAD - _text_top(font)), tag.text, fill=color, font=font)


class AnnotationWriter:
    """Saves annotated images into one folder, each under its own name (see the module's naming rule).

    Thread-safe. Args: ``out_dir``, created on the first save.
    """

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.out_dir = os.fspath(out_dir)
        self._used: set[str] = set()
        self._lock = threading.Lock()

    def name_for(self, source: str) -> str:
        """Reserve and return the file name for ``source`` (a path, URL or camera name)."""
        stem = os.path.splitext(os.path.basename(str(source).rstrip("/\\")))[0] or "image"
        with self._lock:
            name, n = f"{stem}.jpg", 0
            while name.casefold() in self._used:
                n += 1
                name = f"{stem}-{n}.jpg"
            self._used.add(name.casefold())
        return name

    def save(self, image: Image.Image, detections: Sequence[Detection], source: str) -> str:
        """Draw ``detections`` on the full-size ``image`` and write it as JPEG; returns the path.

        Raises OSError if the folder or file cannot be written.
        """
        from .userdirs import FILE_MODE, private_dir

        private_dir(self.out_dir, tighten=False)  # a folder it creates is 0700; the user's own is left as it is
        path = os.path.join(self.out_dir, self.name_for(source))
        drawn = draw_detections(image, detections)
        # What the camera saw is as private as the rest of edgekit's state: 0600 whatever the umask.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fd, FILE_MODE)  # an existing file keeps its mode through O_TRUNC; the umask filters open's
            drawn.save(fh, format="JPEG", quality=90)
        return path


_writers: dict[str, AnnotationWriter] = {}
_writers_lock = threading.Lock()


def save_annotated(image: Image.Image, detections: Sequence[Detection], out_dir: str, source: str) -> str:
    """Draw ``detections`` on the full-size ``image`` and save it to ``out_dir``; returns the path.

    Names stay unique per folder for the life of this process (one :class:`AnnotationWriter` per
    folder); prefer an explicit AnnotationWriter in new code.
    """
    key = os.path.realpath(out_dir)
    with _writers_lock:
        writer = _writers.setdefault(key, AnnotationWriter(out_dir))
    return writer.save(image, detections, source)


def _color(det: Detection) -> tuple[int, int, int]:
    return _PALETTE[det.class_id % len(_PALETTE)]


def _text_top(font) -> int:
    return font.getbbox("Ag")[1]


def _line_height(font) -> int:
    left, top, right, bottom = font.getbbox("Agjy|")
    return bottom - _text_top(font) + 2 * _PAD


def _text_width(font, text: str) -> int:
    return int(font.getbbox(text)[2]) if text else 0


def _fit(text: str, font, room: int) -> str | None:
    """``text``, shortened with an ellipsis to fit ``room`` pixels; None if not even one letter fits."""
    if len(text) <= room and _text_width(font, text) <= room:  # a letter is at least a pixel wide
        return text
    text = text[:room + 1]
    # binary search on the cut (a prefix is never wider than a longer one): a 70,000-letter label
    # took minutes letter by letter, holding up the sink and the run's stop
    lo, hi, best = 1, len(text) - 1, None
    while lo <= hi:
        end = (lo + hi) // 2
        short = text[:end].rstrip() + "…"
        if _text_width(font, short) <= room:
            best, lo = short, end + 1
        else:
            hi = end - 1
    return best


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _place(box, size: tuple[int, int], image_size: tuple[int, int],
           taken: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int] | None:
    """The first free rectangle of ``size`` among the preferred spots around ``box``, else the free
    spot nearest to the first of them; None if the image has no free room for it."""
    (tw, th), (width, height) = size, image_size
    if tw > width or th > height:
        return None
    x1, y1, x2, y2 = (round(v) for v in box)

    def fits(x: int, y: int) -> tuple[int, int, int, int] | None:
        rect = (x, y, x + tw, y + th)
        inside = 0 <= x and x + tw <= width and 0 <= y and y + th <= height
        margin = (x - _GAP, y - _GAP, x + tw + _GAP, y + th + _GAP)
        return rect if inside and not any(_overlaps(margin, t) for t in taken) else None

    xs = [min(max(x1, 0), width - tw), min(max(x2 - tw, 0), width - tw)]
    ys = [y1 - th, y1, y2, y2 - th]  # above, inside top, below, inside bottom
    for y in ys:
        for x in xs:
            if (rect := fits(x, y)) is not None:
                return rect
    # Crowded: the free spot nearest to "above the box", on a grid of half a tag's height.
    want_x, want_y = xs[0], min(max(y1 - th, 0), height - th)
    step_y, step_x = max(1, th // 2), max(1, th)
    spots = {(x, y) for y in range(0, height - th + 1, step_y)
             for x in [*range(0, width - tw + 1, step_x), width - tw, want_x]}
    spots |= {(x, y) for x in xs for y in range(0, height - th + 1)}  # every row under the box's own edges
    for x, y in sorted(spots, key=lambda p: ((p[0] - want_x) ** 2 + (p[1] - want_y) ** 2, p)):
        if (rect := fits(x, y)) is not None:
            return rect
    return None
