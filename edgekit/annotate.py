"""Draw detections on an image with Pillow."""

from __future__ import annotations

import os
from typing import Sequence

from PIL import Image, ImageDraw

from .results import Detection

__all__ = ["draw_detections", "save_annotated"]

_PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
            (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212))


def draw_detections(image: Image.Image, detections: Sequence[Detection]) -> Image.Image:
    """Return a copy of ``image`` (RGB) with a box and ``label score`` for each detection."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    width = max(1, round(min(out.size) / 300))
    for det in detections:
        color = _PALETTE[det.class_id % len(_PALETTE)]
        draw.rectangle(det.box, outline=color, width=width)
        text = f"{det.label} {det.score:.2f}"
        x, y = det.box[0], max(0.0, det.box[1] - 12)
        left, top, right, bottom = draw.textbbox((x, y), text)
        draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=color)
        draw.text((x, y), text, fill=(0, 0, 0))
    return out


def save_annotated(image: Image.Image, detections: Sequence[Detection], out_dir: str, source: str) -> str:
    """Draw ``detections`` on the full-size ``image`` and save it to ``out_dir``; returns the path."""
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(source))[0] or "image"
    path = os.path.join(out_dir, f"{stem}.jpg")
    draw_detections(image, detections).save(path, quality=90)
    return path
