"""Multi-object tracking by detection: the same id for the same object from frame to frame.

A :class:`Tracker` takes each frame's detections (anything with ``label``, ``class_id``, ``score``
and ``box = (x1, y1, x2, y2)`` in pixels, such as :class:`edgekit.results.Detection`) and says which
confirmed track each one belongs to. It is built to hold at 2 fps, where a walking person's boxes
no longer overlap from one frame to the next:

- **Motion**: a constant-velocity Kalman filter per track on the box centre (x and y apart) and a
  random-walk one on its width and height, all scaled by the time between frames, so frame rate,
  ``--fps`` sampling and skipped frames do not change what the options mean. Its noise is in
  units of the track's size ``sqrt(w·h)``: jitter of the detector, how fast a new object may move,
  how fast an object may change speed (``_MEASURE_STD``, ``_SPEED_STD``, ``_ACCEL_STD`` in
  :mod:`edgekit.track_kalman`).
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
  ``_nested`` in :mod:`edgekit.track_match`) counts as a low one; a low one keeps a stationary
  track only if it overlaps it.
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
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .errors import ConfigError
from .track_kalman import _CLASS, _CONFIRMED, _POS, _ROWS, _STATIONARY, _TIME, _VEL, _WH, correct, initial, predict
from .track_life import _Live
from .track_match import _Frame, _nested, associate
from .track_values import Track, TrackerOptions, TrackUpdate

if TYPE_CHECKING:
    from .results import Detection

# The parts, each a module of its own: the values (track_values), the motion model (track_kalman),
# the association (track_match), one track's bookkeeping and stationary state (track_life); this
# module is the Tracker that runs them frame by frame.
__all__ = ["TrackerOptions", "Track", "TrackUpdate", "Tracker"]


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
        pred = predict(self._state, t)
        pairs = associate(frame, pred, self.options)
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

    def _correct(self, frame: _Frame, pred: np.ndarray, pairs: list[tuple[int, int]], t: float) -> None:
        """Kalman-update the matched tracks and their bookkeeping."""
        di = [i for i, _ in pairs]
        tj = [j for _, j in pairs]
        p = pred[:, tj]  # a copy, updated in place
        correct(p, frame.rows[:4, di], t)
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
        s = initial(frame.rows[:4, rows], t)
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
