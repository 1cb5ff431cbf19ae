"""Multi-object tracking by detection: the same id for the same object from frame to frame.

A :class:`Tracker` takes each frame's detections (anything with ``label``, ``class_id``, ``score``
and ``box = (x1, y1, x2, y2)`` in pixels, such as :class:`edgekit.results.Detection`) and says which
confirmed track each one belongs to. It is built to hold at 2 fps, where a walking person's boxes
no longer overlap from one frame to the next:

- **Motion**: a constant-velocity Kalman filter per track on the box centre (x and y apart) and a
  random-walk one on its width and height, all scaled by the time between frames, so frame rate,
  ``--fps`` sampling and skipped frames do not change what the options mean. Its noise is in
  units of the track's size ``sqrt(w·h)``: jitter of the detector, how fast a new object may move,
  how fast an object may change speed (``_MEASURE_STD``, ``_SPEED_STD``, ``_ACCEL_STD``).
- **Distance**: the detection's centre against the track's *predicted* centre, in track sizes
  (``|Δcentre| / sqrt(w·h)``), gated twice: at most ``max_distance`` sizes and within
  ``gate_sigmas`` standard deviations of the prediction (tight for a track whose speed is known,
  wider for a new or unseen one); within 0.25 sizes passes whatever the deviation (about where
  IoU 0.5–0.6 with the prediction begins). Width and height may differ by at most
  ``max_size_ratio``. When two candidates compete, the cost ranks by distance and overlap
  together: ``(distance / max_distance + 1 - IoU) / 2``.
- **Association** (ByteTrack's two stages, plus label flicker), greedy lowest-cost matching in
  this order: (1) detections scoring ``high_score`` or more against the confirmed tracks of their
  class, then against confirmed tracks of another class whose prediction they overlap by
  ``cross_class_iou`` (a dog read as "bird" for a frame stays the same track, and a vote keeps its
  label "dog"), then against the tentative tracks of their class (a tentative track started by
  one stray or differently labelled detection must not take the detection of an object already
  followed); (2) those in ``[low_score, high_score)`` against the confirmed tracks of their class
  still unmatched (they keep a track alive, never start one); (3) the high ones left against the
  tentative tracks left, of any class, that they overlap by ``cross_class_iou``. High detections
  left over start tentative tracks. A high detection that is a weaker duplicate reading of another
  one (nearly inside it and not much smaller; of another class only if far weaker: see
  ``_nested``) counts as a low one; a low one keeps a stationary track only if it overlaps it.
- **Lifecycle**: a track is confirmed after ``confirm_hits`` matches (only confirmed tracks are
  ever reported); unseen, a tentative track is forgotten after ``tentative_unseen`` s, a confirmed
  one ends after ``max_unseen`` s (``stationary_unseen`` s if stationary) or as soon as its
  prediction has left the image. A track that keeps its box put for ``stationary_after`` s is
  stationary: predicted in place, kept long while something passes in front of it.

Detections with a score below ``low_score`` or not finite, or an empty or non-finite box, are not
tracked (their ``track_ids`` entry is None). Time going backwards (a timestamp before the
previous frame's: a source restarted) ends every track at that frame and starts over; ids keep
counting, so a Tracker never reuses an id.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, fields
from itertools import chain
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from .errors import ConfigError

if TYPE_CHECKING:
    from .results import Detection

__all__ = ["TrackerOptions", "Track", "TrackUpdate", "Tracker"]

# The motion model, in track sizes (sqrt(w·h)) and seconds.
_MEASURE_STD = 0.08  # detector jitter of a box centre
_SPEED_STD = 1.5  # speed of a new track (a brisk walk is ~1.7 sizes/s)
_ACCEL_STD = 1.5  # change of speed per second
_SIZE_MEASURE_STD = 0.1  # jitter of width and height (a fraction of them)
_SIZE_DRIFT_STD = 0.3  # change of width and height per second (a fraction of them)
_GATE_FLOOR = 0.25  # sizes: this close to the prediction passes whatever its variance (IoU ~0.5-0.6)
_SCORES_KEPT = 10  # the score is the median of this many recent ones
_AWAY_FRAMES = 2  # matches in a row away from its place that end "stationary" (one is jitter)
_NESTED_INSIDE = 0.8  # a duplicate reading: this much of the smaller box inside the other ...
_NESTED_AREA = 0.3  # ... and at least this share of its area
_NESTED_OTHER_SCORE = 0.6  # ... and, of another class, scoring under this share of the other's


@dataclass(frozen=True)
class TrackerOptions:
    """How the :class:`Tracker` associates detections and when tracks start and end.

    Times are in seconds of the frames' timestamps; distances in track sizes (``sqrt(w·h)``).

    Attributes:
        high_score: detections at or above it are matched first and may start tracks (the user's
            score threshold).
        low_score: detections in ``[low_score, high_score)`` only keep confirmed tracks alive;
            equal to ``high_score``: no second stage.
        confirm_hits: a track is confirmed (reported) once matched in this many frames.
        max_unseen: a confirmed track ends after this long unseen.
        tentative_unseen: an unconfirmed track is forgotten after this long unseen.
        stationary_after: a track whose box stays put this long is stationary.
        stationary_unseen: how long a stationary track survives unseen (a parked car behind a
            passer-by); at least ``max_unseen``.
        max_detections: per frame, at most this many detections (the best scores) are tracked;
            the others are counted in :attr:`TrackUpdate.capped`. None: no limit.
        max_distance: the farthest a detection's centre may be from a track's predicted centre
            (2: a new track's first step at 2 fps is ~1 size for a brisk walk).
        gate_sigmas: the farthest it may be in standard deviations of that prediction (tight
            for a track whose speed is known, wide for a new or long-unseen one).
        max_size_ratio: the most a detection's width and height may differ from a track's (×/÷).
        cross_class_iou: the overlap with a track's prediction a detection of another class
            needs to match it (last stage, label flicker).
        still_distance: a box "stays put" while its centre is within this many sizes of where it
            came to rest, its width and height within twice this fraction.

    Raises:
        ConfigError: a value of the wrong type or out of range.
    """

    high_score: float = 0.25
    low_score: float = 0.1
    confirm_hits: int = 2
    max_unseen: float = 5.0
    tentative_unseen: float = 1.0
    stationary_after: float = 10.0
    stationary_unseen: float = 60.0
    max_detections: int | None = 300
    max_distance: float = 2.0
    gate_sigmas: float = 2.5
    max_size_ratio: float = 2.0
    cross_class_iou: float = 0.5
    still_distance: float = 0.1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("confirm_hits", "max_detections"):
                if value is None and f.name == "max_detections":
                    continue
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ConfigError(f"TrackerOptions.{f.name} must be a whole number >= 1"
                                      f"{' or None (no limit)' if f.name == 'max_detections' else ''}, "
                                      f"found {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"TrackerOptions.{f.name} must be a finite number, found {value!r}")
        _check(0.0 <= self.high_score <= 1.0, "high_score", "in [0, 1]", self.high_score)
        _check(0.0 <= self.low_score <= self.high_score, "low_score",
               f"in [0, high_score = {self.high_score}]", self.low_score)
        for name in ("max_unseen", "tentative_unseen"):
            _check(getattr(self, name) >= 0, name, ">= 0 seconds", getattr(self, name))
        _check(self.stationary_after > 0, "stationary_after", "> 0 seconds", self.stationary_after)
        _check(self.stationary_unseen >= self.max_unseen, "stationary_unseen",
               f">= max_unseen = {self.max_unseen} seconds", self.stationary_unseen)
        for name in ("max_distance", "gate_sigmas", "still_distance"):
            _check(getattr(self, name) > 0, name, "> 0", getattr(self, name))
        _check(self.max_size_ratio >= 1, "max_size_ratio", ">= 1", self.max_size_ratio)
        _check(0 < self.cross_class_iou <= 1, "cross_class_iou", "in (0, 1]", self.cross_class_iou)


def _check(ok: bool, name: str, expected: str, found: Any) -> None:
    if not ok:
        raise ConfigError(f"TrackerOptions.{name} must be {expected}, found {found!r}")


def _timestamp(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
        raise ConfigError(f"a frame's timestamp must be a finite number of seconds, found {value!r}")
    return float(value)


def _size(value: Any) -> tuple[int, int]:
    try:
        width, height = value
    except (TypeError, ValueError):
        width = height = None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in (width, height)):
        raise ConfigError(f"a frame's size must be (width, height) in whole pixels > 0, found {value!r}")
    return int(width), int(height)


@dataclass(frozen=True)
class Track:
    """One tracked object as of a frame.

    Attributes:
        id: 1, 2, 3 … per :class:`Tracker` (callers make globally unique ids of their own).
        label, class_id: the most frequent over its matches (one misread frame does not change it).
        score: median of its last 10 scores; top_score: its best.
        box: its last matched box ``(x1, y1, x2, y2)`` in pixels.
        first_seen, last_seen: timestamps of its first and last match.
        hits: frames it was matched in.
        confirmed: matched in ``confirm_hits`` frames (always True in a :class:`TrackUpdate`).
        stationary: its box stayed put for ``stationary_after`` seconds (until it moves).
        motionless_count: matches in a row its box stayed put.
        position_changes: times it moved away from a stationary position.
        seen: matched in the latest frame.
    """

    id: int
    label: str
    class_id: int
    score: float
    top_score: float
    box: tuple[float, float, float, float]
    first_seen: float
    last_seen: float
    hits: int
    confirmed: bool
    stationary: bool
    motionless_count: int
    position_changes: int
    seen: bool


@dataclass(frozen=True)
class TrackUpdate:
    """What one frame did to the tracks.

    Attributes:
        track_ids: per input detection (same order), its confirmed track's id, else None.
        tracks: the confirmed live tracks after this frame (seen or not), by id.
        ended: the confirmed tracks that ended at this frame, by id (each ends exactly once).
        capped: detections not tracked because of ``max_detections``.
    """

    track_ids: tuple[int | None, ...]
    tracks: tuple[Track, ...]
    ended: tuple[Track, ...]
    capped: int = 0


class _Live:
    """The bookkeeping of one live track (its motion state is in the Tracker's arrays).

    ``fields`` holds the :class:`Track` fields, kept current, so that a snapshot is a copy of it.
    ``votes`` counts the other (class id, label) pairs it was matched as, ``count`` its own.
    ``rest`` is where it came to rest: centre, width, height and the tolerances of "stays put".
    """

    __slots__ = ("fields", "votes", "count", "scores", "rest", "still_since", "away", "snap")

    def __init__(self, track_id: int, label: str, class_id: int, score: float, box: tuple, t: float,
                 options: TrackerOptions) -> None:
        self.fields = {"id": track_id, "label": label, "class_id": class_id, "score": score, "top_score": score,
                       "box": box, "first_seen": t, "last_seen": t, "hits": 1, "confirmed": False,
                       "stationary": False, "motionless_count": 0, "position_changes": 0, "seen": True}
        self.votes: dict[tuple[int, str], int] = {}
        self.count = 1
        self.scores = deque([score], maxlen=_SCORES_KEPT)
        self.rest = _rest(box, options.still_distance)
        self.still_since, self.away = t, 0
        self.snap: Track | None = None

    def matched(self, label: str, class_id: int, score: float, box: tuple, t: float,
                options: TrackerOptions) -> bool:
        """A detection was matched to this track at time ``t``; returns whether its class,
        ``confirmed`` or ``stationary`` changed (or it is stationary)."""
        f = self.fields
        changed = False
        f["hits"] += 1
        f["last_seen"] = t
        f["box"] = box
        scores = self.scores
        scores.append(score)
        ordered = sorted(scores)
        n = len(ordered)
        f["score"] = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
        if score > f["top_score"]:
            f["top_score"] = score
        if class_id == f["class_id"] and label == f["label"]:
            self.count += 1
        else:
            changed = self._vote(class_id, label)
        if not f["confirmed"] and f["hits"] >= options.confirm_hits:
            f["confirmed"] = changed = True
        self.snap = None
        # Stationary: stays put → count, stationary after a while; moves → start again from here.
        cx, cy, w, h, distance2, dw, dh = self.rest
        dx, dy = (box[0] + box[2]) / 2 - cx, (box[1] + box[3]) / 2 - cy
        if dx * dx + dy * dy <= distance2 and abs(box[2] - box[0] - w) <= dw and abs(box[3] - box[1] - h) <= dh:
            f["motionless_count"] += 1
            self.away = 0
            if not f["stationary"] and t - self.still_since >= options.stationary_after:
                f["stationary"] = True
        elif f["stationary"] and self.away + 1 < _AWAY_FRAMES:
            self.away += 1  # one frame away is taken for jitter (someone passing in front)
        else:
            if f["stationary"]:
                f["stationary"] = False
                f["position_changes"] += 1
                changed = True
            self.rest, self.still_since, self.away = _rest(box, options.still_distance), t, 0
            f["motionless_count"] = 0
        return changed or f["stationary"]

    def _vote(self, class_id: int, label: str) -> bool:
        """A match as another (class id, label); returns whether that one is now the majority."""
        f = self.fields
        key = (class_id, label)
        count = self.votes[key] = self.votes.get(key, 0) + 1
        if count <= self.count:
            return False
        self.votes[(f["class_id"], f["label"])] = self.count
        del self.votes[key]
        f["class_id"], f["label"], self.count = class_id, label, count
        return True

    def snapshot(self, seen: bool) -> Track:
        """The :class:`Track` as of now (cached until the track changes).

        Built from ``fields`` without the frozen dataclass's ``__init__`` (it sets each field
        through ``object.__setattr__``: three times slower, and 30 tracks a frame that way are a
        good part of the frame's budget); the result is an ordinary, still frozen, Track.
        """
        snap = self.snap
        if snap is None or snap.seen != seen:
            self.fields["seen"] = seen
            snap = self.snap = object.__new__(Track)
            snap.__dict__.update(self.fields)
        return snap


def _rest(box: tuple, fraction: float) -> tuple[float, ...]:
    """Where a box came to rest, for "stays put": its centre within ``fraction`` of its size
    (``sqrt(w·h)``), its width and height within twice ``fraction`` of theirs."""
    w, h = box[2] - box[0], box[3] - box[1]
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, w, h, fraction * fraction * w * h,
            2 * fraction * w, 2 * fraction * h)


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


# Rows of the Tracker's state, one column per live track, as of its last match: per axis (x then
# y) the centre, its speed, the variance of the centre, their covariance, the variance of the
# speed; width and height and their variances; the time of the last match; class id, confirmed,
# stationary (copies of the _Live's, for the vectorised steps).
_POS, _VEL, _P00, _P01, _P11, _WH, _PWH = (slice(k, k + 2) for k in range(0, 14, 2))
_TIME, _CLASS, _CONFIRMED, _STATIONARY = 14, 15, 16, 17
_ROWS = 18


class Tracker:
    """Tracks the detections of one source (keep one per camera); see the module's docstring.

    Args:
        options: :class:`TrackerOptions` (None: the defaults).

    Raises:
        ConfigError: ``options`` is not a :class:`TrackerOptions`.
    """

    def __init__(self, options: TrackerOptions | None = None) -> None:
        if options is not None and not isinstance(options, TrackerOptions):
            raise ConfigError(f"Tracker options must be a TrackerOptions, found {type(options).__name__}")
        self.options = options or TrackerOptions()
        self._next_id = 1
        self._reset()

    def _reset(self) -> None:
        self._live: list[_Live] = []
        self._state = np.zeros((_ROWS, 0))
        self._time: float | None = None

    def update(self, detections: Sequence[Detection], timestamp: float, size: tuple[int, int]) -> TrackUpdate:
        """Associate one frame's detections with the tracks.

        Args:
            detections: the frame's detections (any order; with ``label``, ``class_id``, ``score``,
                ``box``).
            timestamp: the frame's time in seconds (earlier than the previous frame's: restart).
            size: the image's ``(width, height)`` in pixels.

        Returns:
            A :class:`TrackUpdate`.

        Raises:
            ConfigError: a timestamp that is not a finite number, or a size that is not two
                positive whole numbers.
        """
        t = _timestamp(timestamp)
        width, height = _size(size)
        ended: list[Track] = []
        if self._time is not None and t < self._time:
            ended = list(self.flush())
        self._time = t
        dets = detections if isinstance(detections, (list, tuple)) else list(detections)
        frame = _Frame(dets, self.options.low_score, self.options.max_detections)
        frame.high = (frame.scores >= self.options.high_score) & ~_nested(frame)
        pred = self._predict(t)
        pairs = self._associate(frame, pred)
        ids: list[int | None] = [None] * len(dets)
        if pairs:
            self._correct(frame, pred, pairs, t)
            for i, j in pairs:
                f = self._live[j].fields
                if f["confirmed"]:
                    ids[frame.index[i]] = f["id"]
        matched = {i for i, _ in pairs}
        new = [i for i in np.flatnonzero(frame.high).tolist() if i not in matched]
        if new:
            self._start(frame, new, t)
        if len(pairs) + len(new) < len(self._live):  # else every track was just seen: none expires
            ended += self._expire(t, width, height)
        tracks = tuple(live.snapshot(live.fields["last_seen"] == t) for live in self._live
                       if live.fields["confirmed"])
        return TrackUpdate(tuple(ids), tracks, tuple(sorted(ended, key=lambda tr: tr.id)), frame.capped)

    def flush(self) -> tuple[Track, ...]:
        """End every track (the end of the source); the Tracker starts over (ids keep counting).

        Returns:
            The confirmed tracks that ended, by id.
        """
        ended = tuple(live.snapshot(live.fields["last_seen"] == self._time) for live in self._live
                      if live.fields["confirmed"])
        self._reset()
        return ended

    def _predict(self, t: float) -> np.ndarray:
        """Every track's state (rows as ``_state``'s) predicted to time ``t`` (a stationary track's
        speed is 0: it stays in place, as uncertain as any other so that it can drive off)."""
        s = self._state
        dt = np.maximum(t - s[_TIME], 0.0)
        dt2 = dt * dt
        q = _ACCEL_STD ** 2 * s[10] * s[11]
        p = s.copy()
        p[_POS] += s[_VEL] * dt
        p[_P00] += 2 * dt * s[_P01] + dt2 * s[_P11] + q * dt2 * dt / 3
        p[_P01] += dt * s[_P11] + q * dt2 / 2
        p[_P11] += q * dt
        p[_PWH] += _SIZE_DRIFT_STD ** 2 * s[_WH] ** 2 * dt
        return p

    def _associate(self, frame: _Frame, pred: np.ndarray) -> list[tuple[int, int]]:
        """The matching stages of the module's docstring; returns (detection row, track column)
        pairs. Each stage is one greedy matching; the overlaps (IoU) and the costs are computed
        only for a stage that needs them (a conflict, a class change), never in the common frame
        where every detection has one candidate."""
        o = self.options
        m, n = len(frame.index), len(self._live)
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

    def _correct(self, frame: _Frame, pred: np.ndarray, pairs: list[tuple[int, int]], t: float) -> None:
        """Kalman-update the matched tracks and their bookkeeping."""
        di = [i for i, _ in pairs]
        tj = [j for _, j in pairs]
        k = len(pairs)
        p = pred[:, tj]  # a copy, updated in place
        z = frame.rows[:4, di]
        innovation = z[0:2] - p[_POS]
        # Rows 0-3 are centre and speed, rows 4-7 the centre's variance and the covariance (x, y
        # each): as (2, 2, k) views one operation does both gains, both updates.
        gains = p[4:8].reshape(2, 2, k) / (p[_P00] + _MEASURE_STD ** 2 * p[10] * p[11])
        p[0:4].reshape(2, 2, k)[...] += gains * innovation
        p[_P11] -= gains[1] * p[_P01]
        p[4:8].reshape(2, 2, k)[...] *= 1.0 - gains[0]
        gain = p[_PWH] / (p[_PWH] + _SIZE_MEASURE_STD ** 2 * p[_WH] ** 2)
        p[_WH] += gain * (z[2:4] - p[_WH])
        p[_PWH] *= 1.0 - gain
        p[_TIME] = t
        lives, options = self._live, self.options
        for n, (i, j, row) in enumerate(zip(di, tj, frame.table[di].tolist())):
            live = lives[j]
            if live.matched(frame.labels[i], int(row[5]), row[4], tuple(row[:4]), t, options):
                f = live.fields
                p[_CLASS:, n] = f["class_id"], f["confirmed"], f["stationary"]
                if f["stationary"]:
                    p[_VEL, n] = 0.0  # it stays where it is
        self._state[:, tj] = p

    def _start(self, frame: _Frame, rows: list[int], t: float) -> None:
        """New tentative tracks from these detection rows."""
        boxes = frame.boxes[rows].tolist()
        for k, i in enumerate(rows):
            self._live.append(_Live(self._next_id, frame.labels[i], int(frame.classes[i]), float(frame.scores[i]),
                                    tuple(boxes[k]), t, self.options))
            self._next_id += 1
        z = frame.rows[:4, rows]
        area = z[2] * z[3]
        s = np.zeros((_ROWS, len(rows)))
        s[_POS] = z[0:2]
        s[_P00] = _MEASURE_STD ** 2 * area
        s[_P11] = _SPEED_STD ** 2 * area
        s[_WH] = z[2:4]
        s[_PWH] = _SIZE_MEASURE_STD ** 2 * z[2:4] ** 2
        s[_TIME] = t
        s[_CLASS] = frame.rows[5, rows]
        self._state = np.concatenate([self._state, s], axis=1)

    def _expire(self, t: float, width: int, height: int) -> list[Track]:
        """Drop the tracks unseen too long or predicted out of the image; returns the confirmed ones."""
        o = self.options
        s = self._state
        limit = np.where(s[_CONFIRMED] > 0, np.where(s[_STATIONARY] > 0, o.stationary_unseen, o.max_unseen),
                         o.tentative_unseen)
        unseen = t - s[_TIME]
        centre = s[_POS] + s[_VEL] * unseen  # stationary: speed 0
        half = s[_WH] / 2
        outside = ((centre + half <= 0) | (centre - half >= np.array([[width], [height]]))).any(axis=0)
        gone = (unseen > limit) | ((unseen > 0) & outside)
        if not gone.any():
            return []
        ended = [live.snapshot(False) for live, g in zip(self._live, gone.tolist()) if g and live.fields["confirmed"]]
        self._live = [live for live, g in zip(self._live, gone.tolist()) if not g]
        self._state = s[:, ~gone]
        return ended
