"""Generated scenes with known trajectories for the tracking tests: shapes (what the committed demo
model detects) moving over a fixed textured background, written as a real H.264 video through PyAV.

A :class:`Scene` is a list of :class:`Actor` values, each with keyframes ``(t, cx, cy)`` (linear
between them; absent before its first and after its last keyframe) and optional hidden intervals
(not drawn: an occlusion or a gap). Ground truth per frame is computed from the same description,
so tests compare what edgekit reports with what was drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

LABELS = ("circle", "square", "triangle")


@dataclass(frozen=True)
class Actor:
    name: str
    label: str  # circle, square, triangle
    size: float
    keys: tuple[tuple[float, float, float], ...]  # (t seconds, cx, cy) pixels
    color: tuple[int, int, int] = (230, 40, 40)
    hidden: tuple[tuple[float, float], ...] = ()  # [start, end) seconds not drawn

    def centre(self, t: float) -> tuple[float, float] | None:
        keys = self.keys
        if t < keys[0][0] - 1e-9 or t > keys[-1][0] + 1e-9:
            return None
        if any(a <= t < b for a, b in self.hidden):
            return None
        for (t0, x0, y0), (t1, x1, y1) in zip(keys, keys[1:]):
            if t0 <= t <= t1:
                f = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
                return x0 + f * (x1 - x0), y0 + f * (y1 - y0)
        return keys[-1][1], keys[-1][2]

    def box(self, t: float) -> tuple[float, float, float, float] | None:
        c = self.centre(t)
        if c is None:
            return None
        h = self.size / 2
        return c[0] - h, c[1] - h, c[0] + h, c[1] + h


@dataclass(frozen=True)
class Scene:
    actors: tuple[Actor, ...]
    duration: float
    fps: float = 2.0
    size: tuple[int, int] = (320, 240)
    seed: int = 3
    extra: dict = field(default_factory=dict)

    def times(self) -> list[float]:
        return [i / self.fps for i in range(int(round(self.duration * self.fps)))]

    def truth(self, t: float) -> dict[str, tuple[float, float, float, float]]:
        return {a.name: b for a in self.actors if (b := a.box(t)) is not None}


def _background(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, w)[None, :, None]
    img = np.array([90, 110, 80]) * (1 - x) + np.array([150, 140, 120]) * x + rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def render(scene: Scene, t: float, background: Image.Image | None = None) -> Image.Image:
    img = (background or _background(*scene.size, scene.seed)).copy()
    draw = ImageDraw.Draw(img)
    for actor in scene.actors:
        box = actor.box(t)
        if box is None:
            continue
        x1, y1, x2, y2 = box
        if actor.label == "circle":
            draw.ellipse(box, fill=actor.color)
        elif actor.label == "square":
            draw.rectangle(box, fill=actor.color)
        else:
            draw.polygon([((x1 + x2) / 2, y1), (x1, y2), (x2, y2)], fill=actor.color)
    return img


def write_video(scene: Scene, path: Path) -> Path:
    """The scene as an H.264 MP4 at ``scene.fps`` (PyAV), one frame per time step."""
    import av
    from fractions import Fraction

    background = _background(*scene.size, scene.seed)
    with av.open(str(path), "w") as container:
        rate = Fraction(scene.fps).limit_denominator(1000)
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = scene.size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "g": "1"}
        for i, t in enumerate(scene.times()):
            frame = av.VideoFrame.from_image(render(scene, t, background))
            frame.pts = i
            frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def walk_and_park(duration: float = 40.0) -> Scene:
    """Three objects at 2 fps on a 320x240 frame with two zones (left / right half):

    - ``walker`` (circle) enters at the left edge at t=2, walks right so fast that its boxes at
      2 fps do not overlap (50 px a frame, 44 px wide), and leaves at the right after t=5;
    - ``parker`` (square) drives in from the right, parks at x=230 from t=8 and stays to the end;
      a ``passer`` (triangle) passes in front of it at t=20..24, hiding it for two seconds;
    - ``gap`` (triangle) crosses the left half from t=26 to t=36, unseen for 1.5 s at t=30.
    """
    walker = Actor("walker", "circle", 44, ((2.0, 0.0, 150.0), (5.0, 300.0, 150.0)), (220, 40, 40))
    parker = Actor("parker", "square", 60, ((4.0, 300.0, 80.0), (8.0, 230.0, 80.0), (duration, 230.0, 80.0)),
                   (30, 60, 220), hidden=((21.0, 23.0),))
    passer = Actor("passer", "triangle", 56, ((19.0, 310.0, 90.0), (25.0, 150.0, 90.0)), (240, 220, 30))
    gap = Actor("gap", "triangle", 50, ((26.0, 30.0, 190.0), (36.0, 130.0, 190.0)), (250, 250, 250),
                hidden=((30.0, 31.5),))
    return Scene((walker, parker, passer, gap), duration)
