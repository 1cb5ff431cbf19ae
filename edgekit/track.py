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
  wider for a new or unseen one). A detection that overlaps the prediction (IoU ≥ 0.5) passes
  whatever the distance; width and height may differ by at most ``max_size_ratio``. The cost
  ranks by distance and overlap together: ``(distance / max_distance + 1 - IoU) / 2``.
- **Association** (ByteTrack's two stages, then one for label flicker), each a greedy
  lowest-cost matching: (1) detections scoring ``high_score`` or more against the live tracks of
  their class, confirmed tracks first (a tentative track started by one stray detection must not
  take the detection of an object already followed), then tentative ones; (2) those in
  ``[low_score, high_score)`` against the confirmed tracks of their class still unmatched (they
  keep a track alive, never start one); (3) the high ones still unmatched against the tracks
  still unmatched of *any* class, only where the prediction overlaps them by ``cross_class_iou``
  (a dog read as "bird" for a frame stays the same track, and a vote keeps its label "dog"). High
  detections left over start tentative tracks.
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
from typing import TYPE_CHECKING, Any, Sequence

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
_OVERLAP_PASSES = 0.5  # IoU with the prediction that passes the distance gates
_SCORES_KEPT = 10  # the score is the median of this many recent ones
_AWAY_FRAMES = 2  # matches in a row away from its place that end "stationary" (one is jitter)


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
    """One live track: its :class:`Track` fields, label votes, motion filter and place of rest.

    ``fields`` holds the Track fields, kept current, so that a snapshot is a copy of it.
    ``votes`` counts the other (class id, label) pairs it was matched as, ``count`` its own.
    Motion, as of ``t`` (its last match): per axis a constant-velocity Kalman filter on the centre
    (``x``/``y``, speed ``vx``/``vy``, covariance ``x00 x01 x11``/``y00 y01 y11``) and a
    random-walk one on width and height (variances ``pw``/``ph``). Plain floats: for one track,
    Python arithmetic costs less than numpy calls. ``rest``: where it came to rest (centre, width,
    height and the tolerances of "stays put").
    """

    __slots__ = ("fields", "votes", "count", "scores", "rest", "still_since", "away", "snap",
                 "t", "x", "y", "vx", "vy", "x00", "x01", "x11", "y00", "y01", "y11", "w", "h", "pw", "ph")

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
        x1, y1, x2, y2 = box
        self.t, self.x, self.y, self.w, self.h = t, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        area = self.w * self.h
        self.vx = self.vy = self.x01 = self.y01 = 0.0
        self.x00 = self.y00 = _MEASURE_STD ** 2 * area
        self.x11 = self.y11 = _SPEED_STD ** 2 * area
        self.pw, self.ph = (_SIZE_MEASURE_STD * self.w) ** 2, (_SIZE_MEASURE_STD * self.h) ** 2

    def predict(self, t: float) -> tuple[float, float, float, float, float, float]:
        """Centre x and y, width, height and the variances of x and y (with the detector's jitter
        added: what a detection's distance is measured against), predicted to time ``t``."""
        dt = t - self.t
        area = self.w * self.h
        extra = _ACCEL_STD ** 2 * area * dt * dt * dt / 3 + _MEASURE_STD ** 2 * area
        return (self.x + self.vx * dt, self.y + self.vy * dt, self.w, self.h,
                self.x00 + dt * (2 * self.x01 + dt * self.x11) + extra,
                self.y00 + dt * (2 * self.y01 + dt * self.y11) + extra)

    def matched(self, label: str, class_id: int, score: float, box: tuple, t: float,
                options: TrackerOptions) -> None:
        """A detection was matched to this track at time ``t``."""
        self._filter(box, t)
        f = self.fields
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
            self._vote(class_id, label)
        if not f["confirmed"] and f["hits"] >= options.confirm_hits:
            f["confirmed"] = True
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
            self.rest, self.still_since, self.away = _rest(box, options.still_distance), t, 0
            f["motionless_count"] = 0
        if f["stationary"]:
            self.vx = self.vy = 0.0  # it stays where it is

    def _filter(self, box: tuple, t: float) -> None:
        """The Kalman update with a matched box."""
        dt = t - self.t
        w, h = self.w, self.h
        area = w * h
        q, r = _ACCEL_STD ** 2 * area, _MEASURE_STD ** 2 * area
        x1, y1, x2, y2 = box
        self.x, self.vx, self.x00, self.x01, self.x11 = _kalman(self.x, self.vx, self.x00, self.x01, self.x11,
                                                                (x1 + x2) / 2, dt, q, r)
        self.y, self.vy, self.y00, self.y01, self.y11 = _kalman(self.y, self.vy, self.y00, self.y01, self.y11,
                                                                (y1 + y2) / 2, dt, q, r)
        drift = _SIZE_DRIFT_STD ** 2 * dt
        pw, ph = self.pw + drift * w * w, self.ph + drift * h * h
        gain_w, gain_h = pw / (pw + _SIZE_MEASURE_STD ** 2 * w * w), ph / (ph + _SIZE_MEASURE_STD ** 2 * h * h)
        self.w, self.h = w + gain_w * (x2 - x1 - w), h + gain_h * (y2 - y1 - h)
        self.pw, self.ph = (1 - gain_w) * pw, (1 - gain_h) * ph
        self.t = t

    def _vote(self, class_id: int, label: str) -> None:
        """A match as another (class id, label): it becomes the track's once it has more votes."""
        f = self.fields
        key = (class_id, label)
        count = self.votes[key] = self.votes.get(key, 0) + 1
        if count > self.count:
            self.votes[(f["class_id"], f["label"])] = self.count
            del self.votes[key]
            f["class_id"], f["label"], self.count = class_id, label, count

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


def _kalman(p: float, v: float, p00: float, p01: float, p11: float, z: float, dt: float, q: float,
            r: float) -> tuple[float, float, float, float, float]:
    """One axis of a constant-velocity Kalman filter: predict ``dt`` ahead (white acceleration of
    spectral density ``q``), then update with measurement ``z`` (variance ``r``)."""
    p += v * dt
    p00 += dt * (2 * p01 + dt * p11) + q * dt * dt * dt / 3
    p01 += dt * p11 + q * dt * dt / 2
    p11 += q * dt
    s = p00 + r
    k0, k1 = p00 / s, p01 / s
    e = z - p
    return p + k0 * e, v + k1 * e, (1 - k0) * p00, (1 - k0) * p01, p11 - k1 * p01


def _rest(box: tuple, fraction: float) -> tuple[float, ...]:
    """Where a box came to rest, for "stays put": its centre within ``fraction`` of its size
    (``sqrt(w·h)``), its width and height within twice ``fraction`` of theirs."""
    w, h = box[2] - box[0], box[3] - box[1]
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, w, h, fraction * fraction * w * h,
            2 * fraction * w, 2 * fraction * h)


class _Frame:
    """One frame's trackable detections, in input order: ``index`` (their positions in the
    input), ``labels``, ``classes``, ``scores``, ``boxes`` (float tuples) and ``cols``: centre x,
    centre y, width, height (lists); ``centres``: (2, M) array of the centres."""

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
        table = np.fromiter(chain.from_iterable((*d.box, d.score) for d in chosen), float,
                            5 * len(chosen)).reshape(-1, 5)
        finite = np.isfinite(table).all(axis=1)
        if not finite.all():
            table, keep = table[finite], keep[finite]
            chosen = [d for d, f in zip(chosen, finite.tolist()) if f]
        rows = _TO_CENTRES @ table.T
        good = (rows[2] > 0) & (rows[3] > 0) & (rows[4] >= low)
        if not good.all():
            table, rows, keep = table[good], rows[:, good], keep[good]
            chosen = [d for d, g in zip(chosen, good.tolist()) if g]
        self.index = keep.tolist()
        self.labels = [d.label for d in chosen]
        self.classes = [int(d.class_id) for d in chosen]
        self.boxes = [tuple(v) for v in table[:, :4].tolist()]
        self.centres = rows[:2]
        *self.cols, self.scores = rows.tolist()


#: (x1, y1, x2, y2, score) -> (centre x, centre y, width, height, score)
_TO_CENTRES = np.array([[0.5, 0, 0.5, 0, 0], [0, 0.5, 0, 0.5, 0], [-1, 0, 1, 0, 0], [0, -1, 0, 1, 0],
                        [0, 0, 0, 0, 1]], float)


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
        self._live: list[_Live] = []
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
        options = self.options
        dets = detections if isinstance(detections, (list, tuple)) else list(detections)
        frame = _Frame(dets, options.low_score, options.max_detections)
        lives = self._live
        pairs = self._associate(frame, t) if lives and frame.index else []
        ids: list[int | None] = [None] * len(dets)
        for i, j in pairs:
            live = lives[j]
            live.matched(frame.labels[i], frame.classes[i], frame.scores[i], frame.boxes[i], t, options)
            if live.fields["confirmed"]:
                ids[frame.index[i]] = live.fields["id"]
        matched = {i for i, _ in pairs}
        before = len(lives)
        for i, score in enumerate(frame.scores):
            if score >= options.high_score and i not in matched:
                lives.append(_Live(self._next_id, frame.labels[i], frame.classes[i], score, frame.boxes[i], t,
                                   options))
                self._next_id += 1
        if len(pairs) < before:  # else every track was just seen: none expires
            ended += self._expire(t, width, height)
        tracks = tuple(live.snapshot(live.t == t) for live in self._live if live.fields["confirmed"])
        return TrackUpdate(tuple(ids), tracks, tuple(sorted(ended, key=lambda tr: tr.id)), frame.capped)

    def flush(self) -> tuple[Track, ...]:
        """End every track (the end of the source); the Tracker starts over (ids keep counting).

        Returns:
            The confirmed tracks that ended, by id.
        """
        ended = tuple(live.snapshot(live.t == self._time) for live in self._live if live.fields["confirmed"])
        self._live = []
        self._time = None
        return ended

    def _associate(self, frame: _Frame, t: float) -> list[tuple[int, int]]:
        """The stages of the module's docstring in one greedy pass; returns (detection, track)
        pairs (their positions in ``frame`` and ``_live``).

        Every pair goes at the first stage it qualifies for, ordered by (stage, cost): a pair that
        loses at its stage (its detection or track taken) would lose at any later one too, so one
        pass over that order is the stages one after the other.
        """
        o = self.options
        lives = self._live
        preds = [live.predict(t) for live in lives]
        tracks = np.array(preds).T.copy()
        # Pairs within max_distance (numpy, all pairs at once), then the rest only for those.
        dx = frame.centres[0][:, None] - tracks[0]
        dy = frame.centres[1][:, None] - tracks[1]
        close = np.hypot(dx, dy) <= o.max_distance * np.sqrt(tracks[2] * tracks[3])
        rows, cols = np.nonzero(close)
        dcx, dcy, dws, dhs = frame.cols
        high = [s >= o.high_score for s in frame.scores]
        kinds = [(live.fields["class_id"], live.fields["confirmed"]) for live in lives]
        small, large = 1 / o.max_size_ratio, o.max_size_ratio
        gate2, limit, cross = o.gate_sigmas ** 2, o.max_distance, o.cross_class_iou
        ranked = []
        for i, j in zip(rows.tolist(), cols.tolist()):
            px, py, w, h, var_x, var_y = preds[j]
            dw, dh = dws[i], dhs[i]
            if not (small * w <= dw <= large * w and small * h <= dh <= large * h):
                continue
            ex, ey = dcx[i] - px, dcy[i] - py
            # Overlap per axis of boxes given by centre and size: (w1 + w2) / 2 - |Δ|, at most min(w1, w2).
            ix = min((dw + w) / 2 - abs(ex), dw, w)
            iy = min((dh + h) / 2 - abs(ey), dh, h)
            inter = ix * iy if ix > 0 and iy > 0 else 0.0
            overlap = inter / (dw * dh + w * h - inter)
            class_id, confirmed = kinds[j]
            if frame.classes[i] == class_id and (ex * ex / var_x + ey * ey / var_y <= gate2
                                                  or overlap >= _OVERLAP_PASSES):
                stage = (0 if confirmed else 1) if high[i] else (2 if confirmed else 4)
            else:
                stage = 4
            if stage == 4:
                if not (high[i] and overlap >= cross):
                    continue
                stage = 3
            cost = (math.sqrt((ex * ex + ey * ey) / (w * h)) / limit + 1.0 - overlap) / 2
            ranked.append((stage, cost, i, j))
        ranked.sort()
        used_dets: set[int] = set()
        used_tracks: set[int] = set()
        pairs = []
        for _, _, i, j in ranked:
            if i not in used_dets and j not in used_tracks:
                used_dets.add(i)
                used_tracks.add(j)
                pairs.append((i, j))
        return pairs

    def _expire(self, t: float, width: int, height: int) -> list[Track]:
        """Drop the tracks unseen too long or predicted out of the image; returns the confirmed ones."""
        o = self.options
        keep, ended = [], []
        for live in self._live:
            unseen = t - live.t
            gone = False
            if unseen > 0:
                f = live.fields
                if f["confirmed"]:
                    limit = o.stationary_unseen if f["stationary"] else o.max_unseen
                else:
                    limit = o.tentative_unseen
                cx, cy = live.x + live.vx * unseen, live.y + live.vy * unseen  # stationary: speed 0
                half_w, half_h = live.w / 2, live.h / 2
                gone = (unseen > limit or cx + half_w <= 0 or cy + half_h <= 0
                        or cx - half_w >= width or cy - half_h >= height)
            if not gone:
                keep.append(live)
            elif live.fields["confirmed"]:
                ended.append(live.snapshot(False))
        self._live = keep
        return ended
