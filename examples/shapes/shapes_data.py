"""Synthetic "shapes" scenes (circle / square / triangle on textured backgrounds) with exact
ground truth. Used to train the small demo detector that ships in this folder, and by tests."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

LABELS = ("circle", "square", "triangle")


def _background(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    base = rng.integers(0, 256, 3)
    other = rng.integers(0, 256, 3)
    t = np.linspace(0, 1, w)[None, :, None] if rng.random() < 0.5 else np.linspace(0, 1, h)[:, None, None]
    img = base * (1 - t) + other * t + rng.normal(0, rng.uniform(2, 18), (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def _color(rng: np.random.Generator, avoid: np.ndarray) -> tuple[int, int, int]:
    for _ in range(20):
        c = rng.integers(0, 256, 3)
        if np.abs(c.astype(int) - avoid.astype(int)).sum() > 160:
            break
    return tuple(int(v) for v in c)


def scene(rng: np.random.Generator, w: int, h: int, max_objects: int = 4):
    """One scene: (PIL image, boxes [[x1,y1,x2,y2]] in pixels, class ids)."""
    img = _background(rng, w, h)
    draw = ImageDraw.Draw(img)
    unit = min(w, h)
    boxes: list[list[float]] = []
    classes: list[int] = []
    for _ in range(rng.integers(1, max_objects + 1)):
        for _attempt in range(30):
            size = rng.uniform(0.12, 0.4) * unit
            x1, y1 = rng.uniform(0, w - size), rng.uniform(0, h - size)
            box = [x1, y1, x1 + size, y1 + size]
            if all(_overlap(box, b) < 0.1 for b in boxes):
                break
        else:
            continue
        cls = int(rng.integers(0, len(LABELS)))
        avoid = np.asarray(img.getpixel((int(x1 + size / 2), int(y1 + size / 2))))
        color = _color(rng, avoid)
        if cls == 0:
            draw.ellipse(box, fill=color)
        elif cls == 1:
            draw.rectangle(box, fill=color)
        else:
            draw.polygon([(x1 + size / 2, y1), (x1, y1 + size), (x1 + size, y1 + size)], fill=color)
        boxes.append(box)
        classes.append(cls)
    return img, boxes, classes


def _overlap(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
