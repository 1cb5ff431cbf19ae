"""The tracker's values: its options (:class:`TrackerOptions`) and what it reports per frame
(:class:`Track`, :class:`TrackUpdate`): frozen dataclasses; the options are checked when made.

How the options are used is :mod:`edgekit.track`'s docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from .errors import ConfigError

__all__ = ["TrackerOptions", "Track", "TrackUpdate"]


@dataclass(frozen=True)
class TrackerOptions:
    """How the :class:`~edgekit.track.Tracker` associates detections and when tracks start and end.

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


@dataclass(frozen=True)
class Track:
    """One tracked object as of a frame.

    Attributes:
        id: 1, 2, 3 … per :class:`~edgekit.track.Tracker` (callers make globally unique ids of their own).
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
