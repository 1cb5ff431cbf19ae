"""Association: which of a frame's detections belongs to which predicted track.

The stages (ByteTrack's two, plus label flicker), the gates and the cost are
:mod:`edgekit.track`'s docstring ("Distance", "Association"); here are the frame's detections as
arrays (:class:`_Frame`), the duplicate readings (:func:`_nested`), the greedy matching
(:func:`_greedy`) and the stages themselves (:func:`associate`), all pure numpy over the predicted
state (rows as :mod:`edgekit.track_kalman` lays them out).
"""

from __future__ import annotations

import math
from itertools import chain
from typing import Any, Callable, Sequence

import numpy as np

from .track_kalman import _CLASS, _CONFIRMED, _MEASURE_STD, _POS, _STATIONARY, _WH
from .track_values import TrackerOptions

__all__ = ["associate"]

_GATE_FLOOR = 0.25  # sizes: this close to the prediction passes whatever its variance (IoU ~0.5-0.6)
_NESTED_INSIDE = 0.8  # a duplicate reading: this much of the smaller box inside the other ...
_NESTED_AREA = 0.3  # ... and at least this share of its area
_NESTED_OTHER_SCORE = 0.6  # ... and, of another class, scoring under this share of the other's


def _nested(frame: _Frame) -> np.ndarray:
    """Per detection: a duplicate of a better-scoring one of any class (one box nearly inside the
    other, ``_NESTED_INSIDE`` of the smaller's area, and not much smaller: at least
    ``_NESTED_AREA`` of the larger's). A model's per-class NMS lets through a second, weaker reading
    of the same object (a dog also as "horse", a car's front half as another car): such a
    detection only keeps a confirmed track of its class alive, as a low-score one does; it never
    starts a track nor takes one from the better reading. A person in front of a bus is far smaller
    than the box it overlaps, and a backpack on someone scores about as well as they do: both are
    left alone (a duplicate of another class must score under ``_NESTED_OTHER_SCORE`` of it)."""
    m = len(frame.index)
    if m < 2:
        return np.zeros(m, bool)
    c = frame.rows
    w, h = c[2], c[3]
    area = w * h
    ix = np.minimum(np.maximum((w[:, None] + w) / 2 - np.abs(c[0][:, None] - c[0]), 0.0), np.minimum(w[:, None], w))
    iy = np.minimum(np.maximum((h[:, None] + h) / 2 - np.abs(c[1][:, None] - c[1]), 0.0), np.minimum(h[:, None], h))
    small, large = np.minimum(area[:, None], area), np.maximum(area[:, None], area)
    pair = (ix * iy >= _NESTED_INSIDE * small) & (small >= _NESTED_AREA * large)
    s = c[4]
    worse = (s[:, None] < s) | ((s[:, None] == s) & (np.arange(m)[:, None] > np.arange(m)))  # ties: the later
    # another class only when far weaker: a backpack on someone is read about as well as they are
    alike = (c[5][:, None] == c[5]) | (s[:, None] < _NESTED_OTHER_SCORE * s)
    return (pair & worse & alike).any(axis=1)


def _greedy(ok: np.ndarray, cost_of: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> list[tuple[int, int]]:
    """Lowest-cost-first matching of rows to columns among the ``ok`` pairs; ``cost_of(rows,
    cols)`` gives the costs of those pairs (only asked when two candidates share a row or a
    column)."""
    rows, cols = np.nonzero(ok)
    r, c = rows.tolist(), cols.tolist()
    if len(set(r)) == len(r) and len(set(c)) == len(c):
        return list(zip(r, c))  # no conflict: every candidate pair is a match
    order = np.argsort(cost_of(rows, cols), kind="stable").tolist()
    used_rows: set[int] = set()
    used_cols: set[int] = set()
    pairs = []
    for k in order:
        if r[k] not in used_rows and c[k] not in used_cols:
            used_rows.add(r[k])
            used_cols.add(c[k])
            pairs.append((r[k], c[k]))
    return pairs


class _Frame:
    """One frame's trackable detections; ``index`` maps them to the input order, ``rows`` is
    (6, M): centre x, centre y, width, height, score, class id (contiguous rows are fast)."""

    def __init__(self, detections: Sequence[Any], low: float, cap: int | None) -> None:
        self.capped = 0
        if cap is not None and len(detections) > cap:
            scores = np.fromiter((d.score for d in detections), float, len(detections))
            keep = np.flatnonzero(np.isfinite(scores) & (scores >= low))
            if keep.size > cap:
                self.capped = keep.size - cap
                keep = np.sort(keep[np.argsort(-scores[keep], kind="stable")[:cap]])
            chosen = [detections[i] for i in keep.tolist()]
        else:
            keep = np.arange(len(detections))
            chosen = list(detections)
        table = np.fromiter(chain.from_iterable((*d.box, d.score, d.class_id) for d in chosen), float,
                            6 * len(chosen)).reshape(-1, 6)
        finite = np.isfinite(table).all(axis=1)
        if not finite.all():
            table, keep = table[finite], keep[finite]
            chosen = [d for d, f in zip(chosen, finite.tolist()) if f]
        rows = _TO_CENTRES @ table.T
        good = (rows[2] > 0) & (rows[3] > 0) & (rows[4] >= low)
        if not good.all():
            table, rows = table[good], rows[:, good]
            keep = keep[good]
            chosen = [d for d, g in zip(chosen, good.tolist()) if g]
        self.index = keep.tolist()
        self.high = rows[4] >= 1.0  # set by the Tracker (which detections count as high)
        self.labels = [d.label for d in chosen]
        self.table = table
        self.boxes = table[:, :4]
        self.rows = rows
        self.scores = rows[4]
        self.classes = rows[5].astype(np.int64)


#: (x1, y1, x2, y2, score, class) -> (centre x, centre y, width, height, score, class)
_TO_CENTRES = np.array([[0.5, 0, 0.5, 0, 0, 0], [0, 0.5, 0, 0.5, 0, 0], [-1, 0, 1, 0, 0, 0], [0, -1, 0, 1, 0, 0],
                        [0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1]], float)


def associate(frame: _Frame, pred: np.ndarray, o: TrackerOptions) -> list[tuple[int, int]]:
    """The matching stages of :mod:`edgekit.track`'s docstring between ``frame``'s detections and
    the tracks predicted in ``pred`` (one column per track), with options ``o``; returns
    (detection row, track column) pairs. Each stage is one greedy matching; the overlaps (IoU) and
    the costs are computed only for a stage that needs them (a conflict, a class change), never in
    the common frame where every detection has one candidate."""
    m, n = len(frame.index), pred.shape[1]
    if m == 0 or n == 0:
        return []
    # Both axes at once on a leading axis of 2 (contiguous halves are fast to combine).
    wh = pred[_WH, None, :]  # (2, 1, N)
    dwh = frame.rows[2:4, :, None]  # (2, M, 1)
    area = pred[10] * pred[11]
    dxy = frame.rows[0:2, :, None] - pred[_POS, None, :]
    dxy2 = dxy * dxy
    distance2 = dxy2[0] + dxy2[1]
    # Within max_distance and gate_sigmas (x and y have the same variance: same noise, and a
    # Kalman filter's covariance does not depend on the measurements), and always within
    # _GATE_FLOOR (about what IoU 0.5 with the prediction allows).
    variance = pred[4] + _MEASURE_STD ** 2 * area
    reach2 = np.minimum(o.max_distance ** 2 * area, np.maximum(o.gate_sigmas ** 2 * variance,
                                                               _GATE_FLOOR ** 2 * area))
    fits = np.abs(np.log(dwh) - np.log(wh)) <= math.log(o.max_size_ratio)
    fits = fits[0] & fits[1]
    near = (distance2 <= reach2) & fits & (frame.rows[5][:, None] == pred[_CLASS])  # same class
    lazy: dict[str, np.ndarray] = {}

    def overlap() -> np.ndarray:
        if "iou" not in lazy:
            # per axis of boxes given by centre and size: (w1 + w2) / 2 - |Δ|, within [0, min(w1, w2)]
            inter = np.minimum(np.maximum((dwh + wh) / 2 - np.abs(dxy), 0.0), np.minimum(dwh, wh))
            inter = inter[0] * inter[1]
            lazy["iou"] = inter / ((frame.rows[2] * frame.rows[3])[:, None] + area - inter)
        return lazy["iou"]

    def cost_of(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        distance = np.sqrt(distance2[rows, cols] / area[cols])
        return (np.minimum(distance / o.max_distance, 1.0) + 1.0 - overlap()[rows, cols]) / 2

    def relabelled() -> np.ndarray:
        if "relabelled" not in lazy:
            lazy["relabelled"] = fits & (distance2 <= o.max_distance ** 2 * area) & (overlap() >= o.cross_class_iou)
        return lazy["relabelled"]

    high = frame.high
    confirmed = pred[_CONFIRMED] > 0
    free_det = np.ones(m, bool)
    free_trk = np.ones(n, bool)
    pairs: list[tuple[int, int]] = []
    # Confirmed tracks choose first (as ByteTrack), even a detection read as another class
    # that overlaps them: a tentative track started by one stray (or differently labelled)
    # detection must not take the detection of an object already being followed.
    for want_high, want_confirmed, same_class in ((True, True, True), (True, True, False), (True, False, True),
                                                  (False, True, True), (True, None, False)):
        if len(pairs) == min(m, n):
            break  # every detection or every track is taken
        rows = high if want_high else ~high
        cols = free_trk if want_confirmed is None else (confirmed if want_confirmed else ~confirmed)
        if pairs:
            rows = rows & free_det
            cols = cols & free_trk
        if not (rows.any() and cols.any()):
            continue
        ok = near if same_class else relabelled()
        if not want_high and (pred[_STATIONARY] > 0).any():
            # a stationary track is where it rests: a weak box beside it (someone passing in
            # front, a box between two objects) must overlap it to keep it, not drag it off
            ok = ok & ((pred[_STATIONARY] <= 0) | (overlap() >= o.cross_class_iou))
        for i, j in _greedy(ok & rows[:, None] & cols, cost_of):
            free_det[i] = free_trk[j] = False
            pairs.append((i, j))
    return pairs
