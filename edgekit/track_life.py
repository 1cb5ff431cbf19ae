"""One live track's bookkeeping: its recent scores, its label by vote, when it is confirmed and
whether it is stationary (its box stays put); the :class:`~edgekit.track.Tracker` keeps one per
track (its motion state is in :mod:`edgekit.track_kalman`'s arrays).
"""

from __future__ import annotations

from collections import deque

from .track_values import Track, TrackerOptions

__all__: list[str] = []  # internal to edgekit.track

_SCORES_KEPT = 10  # the score is the median of this many recent ones
_AWAY_FRAMES = 2  # matches in a row away from its place that end "stationary" (one is jitter)


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
