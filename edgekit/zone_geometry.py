"""Polygon geometry for zones and masks: which points a polygon holds, its area, its part inside
a frame, whether two edges cross. Pure functions of points in pixels (tuples or numpy arrays).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__: list[str] = []  # internal to edgekit.zone_config

_EDGE_EPS = 1e-6  # pixels: a point this close to an edge is on it


def _in_polygon(poly: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Even-odd rule, with points on an edge inside (a box touching the frame's bottom is in a zone
    that reaches the bottom)."""
    px, py = pts[:, 0:1], pts[:, 1:2]
    ax, ay = poly[:, 0], poly[:, 1]
    ex, ey = np.roll(ax, -1) - ax, np.roll(ay, -1) - ay
    length2 = ex * ex + ey * ey
    cross = ex * (py - ay) - ey * (px - ax)
    dot = ex * (px - ax) + ey * (py - ay)
    on_edge = (np.abs(cross) <= _EDGE_EPS * np.sqrt(length2)) & (dot >= 0) & (dot <= length2)
    straddles = (ay > py) != (ay + ey > py)
    x_at = ax + (py - ay) * ex / np.where(ey == 0, 1.0, ey)
    crossings = np.count_nonzero(straddles & (px < x_at), axis=1)
    return on_edge.any(axis=1) | (crossings % 2 == 1)


def _clip(points: Sequence[tuple[float, float]], width: float, height: float) -> list[tuple[float, float]]:
    """The polygon clipped to the frame (Sutherland–Hodgman; the frame is convex)."""
    poly = list(points)
    for axis, limit, keep_below in ((0, 0.0, False), (0, width, True), (1, 0.0, False), (1, height, True)):
        def keep(p: tuple[float, float]) -> bool:
            return p[axis] <= limit if keep_below else p[axis] >= limit

        out: list[tuple[float, float]] = []
        for i, cur in enumerate(poly):
            prev = poly[i - 1]
            if keep(cur) != keep(prev):
                s = (limit - prev[axis]) / (cur[axis] - prev[axis])
                out.append((prev[0] + s * (cur[0] - prev[0]), prev[1] + s * (cur[1] - prev[1])))
            if keep(cur):
                out.append(cur)
        poly = out
    return poly


def _area(points: Sequence[tuple[float, float]]) -> float:
    """Unsigned shoelace area."""
    return abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(points, list(points[1:]) + list(points[:1])))) / 2


def _cross(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float], d: tuple[float, float]) -> bool:
    """Whether segments ab and cd cross at a point inside both (a proper intersection)."""
    def orient(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float]) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    return orient(a, b, c) * orient(a, b, d) < 0 and orient(c, d, a) * orient(c, d, b) < 0
