"""What happened, as events: an object with a stable id appears (``new``), changes in a way a
consumer acts on (``update``), and leaves (``end``) — Frigate's event shape, built by a pure,
per-source :class:`EventBuilder` from the tracker's and the zones' state of each frame.

Every event is ``{"type": "new" | "update" | "end", "before": {...}, "after": {...}}``: ``after``
is the object now, ``before`` what the previous event said (for ``new``, the same as ``after``,
as Frigate sends it), so a consumer never has to diff. ``after`` carries Frigate's fields (``id``,
``camera``, ``label``, ``score``, ``top_score``, ``box``, ``area``, ``ratio``, ``current_zones``,
``entered_zones``, ``stationary``, ``motionless_count``, ``position_changes``, ``start_time``,
``end_time``, ``frame_time``, ``has_snapshot`` …) and edgekit's own: ``source`` (= ``camera``),
``track_id``, ``zone_transitions`` since the object's previous event, ``seq`` (per source,
increasing with every event) and ``provenance`` (model, its SHA-256, the thresholds in force).

An ``update`` goes out only when something a consumer cares about changed: the zones it is in,
the stationary flag, its label, a move of at least ``min_move`` of the frame diagonal since its
last event, or ``heartbeat`` seconds without an event (never for a stationary object: it is
silent until it moves). Never one per frame.

Times (``start_time``, ``end_time``, ``frame_time``) are the frames' timestamps: Unix time for
live sources, seconds into the file for videos. ``id`` is unique across restarts: Unix time of
the object's first event and six random characters, as Frigate's ids are.
"""

from __future__ import annotations

import math
import secrets
import string
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import ConfigError

__all__ = ["EVENTS_SCHEMA", "Event", "EventBuilder", "EventOptions", "object_counts"]

EVENTS_SCHEMA = "edgekit.events/1"

_ID_CHARS = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class EventOptions:
    """When an ``update`` is worth sending.

    Attributes:
        min_move: a move of at least this fraction of the frame diagonal since the object's last
            event (0.05: 5 %).
        heartbeat: seconds after which a moving object's state is sent again even if nothing
            changed; None: never.
    """

    min_move: float = 0.05
    heartbeat: float | None = 60.0

    def __post_init__(self) -> None:
        if not (isinstance(self.min_move, (int, float)) and 0 <= self.min_move <= 1):
            raise ConfigError(f"events min_move must be a fraction of the frame diagonal between 0 and 1, "
                              f"found {self.min_move!r}")
        if self.heartbeat is not None and not (isinstance(self.heartbeat, (int, float))
                                               and math.isfinite(self.heartbeat) and self.heartbeat > 0):
            raise ConfigError(f"events heartbeat must be a number of seconds above 0 (or none), found "
                              f"{self.heartbeat!r}")


@dataclass(frozen=True)
class Event:
    """One event about one object: ``type`` is ``new``, ``update`` or ``end``; ``before`` and
    ``after`` are the object's state in the previous event and now (JSON-ready mappings)."""

    type: str
    before: Mapping[str, Any]
    after: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Frigate's shape: ``{"type", "before", "after"}``."""
        return {"type": self.type, "before": dict(self.before), "after": dict(self.after)}


@dataclass
class _Published:
    """What the builder remembers of one object it has announced."""

    id: str
    after: dict[str, Any]
    at: float  # timestamp of its last event
    centre: tuple[float, float]
    transitions: list[dict[str, Any]] = field(default_factory=list)


def _centre(box: Sequence[float]) -> tuple[float, float]:
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


def _new_id(wall: float) -> str:
    return f"{wall:.6f}-" + "".join(secrets.choice(_ID_CHARS) for _ in range(6))


class EventBuilder:
    """Events of one source, frame by frame (pure apart from the ids' clock and randomness).

    Args:
        source: the source's name (``camera`` and ``source`` in every event).
        options: :class:`EventOptions`.
        provenance: what produced the events (model, SHA-256, thresholds), copied into ``after``.
        wall_clock: Unix time for new ids (a test may fix it).
    """

    def __init__(self, source: str, options: EventOptions | None = None,
                 provenance: Mapping[str, Any] | None = None, wall_clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.options = options or EventOptions()
        self.provenance = dict(provenance or {})
        self._wall = wall_clock
        self._seq = 0
        self._objects: dict[int, _Published] = {}

    def update(self, tracks: Any, zones: Any, timestamp: float, size: tuple[int, int],
               snapshots: Mapping[int, bool] | None = None) -> tuple[Event, ...]:
        """The events of one frame.

        Args:
            tracks: the frame's :class:`~edgekit.track.TrackUpdate` (``tracks``: confirmed live
                tracks; ``ended``: those that ended at this frame).
            zones: the frame's :class:`~edgekit.zones.ZoneState`, or None without zones.
            timestamp: the frame's timestamp.
            size: the frame's (width, height), for the move threshold.
            snapshots: track id → whether a snapshot of it exists (``has_snapshot``).
        """
        diagonal = math.hypot(*size) or 1.0
        transitions: dict[int, list[dict[str, Any]]] = {}
        for t in getattr(zones, "transitions", ()) or ():
            transitions.setdefault(t.track_id, []).append(
                {"zone": t.zone, "kind": t.kind, "time": round(float(t.timestamp), 6)})
        events: list[Event] = []
        for track in tracks.tracks:
            state = self._state(track, zones, timestamp, snapshots, end=False)
            known = self._objects.get(track.id)
            if known is None:
                known = self._objects[track.id] = _Published(_new_id(self._wall()), {}, timestamp,
                                                             _centre(track.box))
                known.transitions.extend(transitions.get(track.id, ()))
                events.append(self._emit("new", known, state, timestamp, track))
                continue
            known.transitions.extend(transitions.get(track.id, ()))
            if self._worth_update(known, state, track, timestamp, diagonal):
                events.append(self._emit("update", known, state, timestamp, track))
        for track in tracks.ended:
            known = self._objects.pop(track.id, None)
            if known is None:  # ended before this builder saw it confirmed: nothing was announced
                continue
            known.transitions.extend(transitions.get(track.id, ()))
            state = self._state(track, zones, timestamp, snapshots, end=True)
            events.append(self._emit("end", known, state, track.last_seen, track))
        return tuple(events)

    # -- internals ------------------------------------------------------------------------
    def _state(self, track: Any, zones: Any, timestamp: float, snapshots: Mapping[int, bool] | None,
               end: bool) -> dict[str, Any]:
        x1, y1, x2, y2 = (float(v) for v in track.box)
        w, h = max(0.0, x2 - x1), max(0.0, y2 - y1)
        current = () if end or zones is None else tuple(zones.current.get(track.id, ()))
        entered = () if zones is None else tuple(zones.entered.get(track.id, ()))
        return {
            "camera": self.source,
            "source": self.source,
            "track_id": track.id,
            "label": track.label,
            "sub_label": None,
            "score": round(float(track.score), 5),
            "top_score": round(float(track.top_score), 5),
            "false_positive": False,
            "box": [round(v, 2) for v in (x1, y1, x2, y2)],
            "area": int(round(w * h)),
            "ratio": round(w / h, 4) if h > 0 else 0.0,
            "region": [round(v, 2) for v in (x1, y1, x2, y2)],
            "current_zones": list(current),
            "entered_zones": list(entered),
            "stationary": bool(track.stationary),
            "motionless_count": int(track.motionless_count),
            "position_changes": int(track.position_changes),
            "start_time": round(float(track.first_seen), 6),
            "end_time": round(float(track.last_seen), 6) if end else None,
            "frame_time": round(float(track.last_seen if end else timestamp), 6),
            "has_snapshot": bool((snapshots or {}).get(track.id, False)),
            "has_clip": False,
            "attributes": {},
            "current_attributes": [],
        }

    def _worth_update(self, known: _Published, state: dict[str, Any], track: Any, timestamp: float,
                      diagonal: float) -> bool:
        before = known.after
        if (state["current_zones"] != before["current_zones"] or state["stationary"] != before["stationary"]
                or state["label"] != before["label"] or state["has_snapshot"] != before["has_snapshot"]
                or known.transitions):
            return True
        if track.stationary:
            return False  # silent until it moves
        cx, cy = _centre(track.box)
        if math.hypot(cx - known.centre[0], cy - known.centre[1]) >= self.options.min_move * diagonal:
            return True
        heartbeat = self.options.heartbeat
        return heartbeat is not None and timestamp - known.at >= heartbeat

    def _emit(self, kind: str, known: _Published, state: dict[str, Any], timestamp: float, track: Any) -> Event:
        self._seq += 1
        after = {"id": known.id, **state, "zone_transitions": list(known.transitions), "seq": self._seq,
                 "provenance": self.provenance}
        before = after if kind == "new" else known.after
        known.after, known.at, known.centre = after, timestamp, _centre(track.box)
        known.transitions = []
        return Event(kind, before, after)


def object_counts(tracks: Any, zones: Any = None) -> dict[str, dict[str, tuple[int, int]]]:
    """Objects now, per zone (and ``all``: the whole frame) and label: ``(count, active)`` where
    ``active`` leaves out stationary objects. ``tracks``: a :class:`~edgekit.track.TrackUpdate`
    (its confirmed live tracks count, seen this frame or kept alive through a miss); ``zones``: the
    frame's :class:`~edgekit.zones.ZoneState` or None. Only labels present appear."""
    counts: dict[str, dict[str, list[int]]] = {"all": {}}
    current = getattr(zones, "current", None) or {}
    for track in tracks.tracks:
        for where in ("all", *current.get(track.id, ())):
            entry = counts.setdefault(where, {}).setdefault(track.label, [0, 0])
            entry[0] += 1
            entry[1] += 0 if track.stationary else 1
    return {zone: {label: (c, a) for label, (c, a) in labels.items()} for zone, labels in counts.items()}
