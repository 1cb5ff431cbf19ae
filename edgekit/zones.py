"""Zones: named polygons per source, and which tracks are in them.

A zone is a polygon in source-frame pixels, or in fractions of the frame when every value is ≤ 1
(resolved to pixels on the first frame's size, and again when the size changes). An object is in a
zone when the **bottom centre** of its box (:func:`anchor`: where it stands on the ground; Frigate's
and supervision's ``BOTTOM_CENTER``) is inside the polygon or on its edge.

Membership has hysteresis, per track and zone, so a consumer sees one "entered" and one "left":

* entry needs ``inertia`` seen frames in a row with the anchor inside (Frigate's default 3); a frame
  seen outside restarts the count;
* exit needs the anchor seen outside continuously for ``exit_delay`` seconds of frame timestamps,
  counted from the first frame seen outside (frigate#10739); a frame back inside cancels it, so a
  one-frame miss or a box jittering on the border never flaps "left"/"entered";
* frames where the tracker kept a track alive without a detection (``seen`` false) change nothing:
  they count toward neither entry nor exit, and raise no loitering;
* ``labels`` limits which labels can enter and count (a track of another label is outside);
* ``loitering`` seconds after its entry, on a frame seen inside, a track is loitering (reported
  once per stay);
* a track that ends, or is no longer passed to :meth:`Zones.update`, leaves every zone it is in.

:class:`Zones` holds one source's zones and its tracks' states; :meth:`Zones.update` is the one call
per frame and returns a :class:`ZoneState`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from numbers import Real
from typing import Iterable, Optional, Protocol, Sequence

import numpy as np

from .errors import ConfigError
from .zone_config import MAX_NAME_LENGTH, RESERVED_NAMES, Zone, parse_zone, zone_from_settings

# What a zone is and how one is written (Zone, parse_zone, zone_from_settings) is zone_config, the
# polygon arithmetic zone_geometry; this module is what the zones do with a source's tracks over
# time. Every name stays importable from here.
__all__ = ["ENTERED", "LEFT", "LOITERING", "MAX_NAME_LENGTH", "RESERVED_NAMES", "TrackLike", "Zone",
           "ZoneState", "ZoneTransition", "Zones", "anchor", "parse_zone", "zone_from_settings"]

ENTERED, LEFT, LOITERING = "entered", "left", "loitering"
_TIME_EPS = 1e-9  # timestamps such as 0.1 * k are not exact; a nanosecond of slack


class TrackLike(Protocol):
    """What :meth:`Zones.update` reads from a track (the tracker's own class fits)."""

    id: int
    label: str
    box: Sequence[float]  # (x1, y1, x2, y2) in pixels, y growing downward
    seen: bool  # False: kept alive this frame without a detection


@dataclass(frozen=True)
class ZoneTransition:
    """A track entered, left or started loitering in a zone at a frame's ``timestamp``."""

    track_id: int
    zone: str
    kind: str  # ENTERED | LEFT | LOITERING
    timestamp: float


@dataclass(frozen=True)
class ZoneState:
    """One frame's result of :meth:`Zones.update`.

    ``current``, ``entered`` and ``loitering`` have a key for every track passed in ``tracks`` or
    ``ended`` (and for a track that disappeared without being reported ended); an ended track's
    ``current`` and ``loitering`` are ``()`` and its ``entered`` is its final list.
    """

    current: dict[int, tuple[str, ...]]  # zones it is in now (after inertia/exit delay), zone order
    entered: dict[int, tuple[str, ...]]  # every zone it ever entered, in order of first entry
    transitions: tuple[ZoneTransition, ...]  # this frame's: tracks in input order, then ended ones
    occupancy: dict[str, dict[str, int]]  # zone -> label -> objects in it now (see Zones.update)
    loitering: dict[int, tuple[str, ...]]  # zones it is loitering in now, zone order


@dataclass(frozen=True)
class _Presence:
    """One track in one zone. The idle value (not in, no streak) is not stored."""

    streak: int = 0  # seen frames inside in a row, while not in the zone
    since: Optional[float] = None  # entry time; None: not in the zone
    out_since: Optional[float] = None  # first frame seen outside since last inside, while in
    loitering: bool = False


_IDLE = _Presence()


class Zones:
    """One per source: the zones that apply to it, and each track's state in them.

    Args:
        zones: the zones; with ``source``, only those whose source is None or ``source`` are kept.
        source: the source these zones watch (None: every zone given applies).

    Raises ConfigError: two zones that apply have the same name.
    """

    def __init__(self, zones: Sequence[Zone], source: Optional[str] = None) -> None:
        self._zones = tuple(z for z in zones if source is None or z.source in (None, source))
        names = [z.name for z in self._zones]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"zone {twice[0]!r} is defined twice for source {source!r}; give each "
                              "zone of a source its own name")
        self._size: Optional[tuple[int, int]] = None
        self._resolved: tuple[Zone, ...] = ()
        self._presence: dict[int, dict[str, _Presence]] = {}
        self._entered: dict[int, tuple[str, ...]] = {}
        self._counted: dict[str, set[str]] = {z.name: set(z.labels or ()) for z in self._zones}
        self._last_time: Optional[float] = None

    @property
    def zones(self) -> tuple[Zone, ...]:
        """The zones that apply, in order (as given, before resolving)."""
        return self._zones

    def update(self, tracks: Iterable[TrackLike], timestamp: float, size: tuple[int, int],
               ended: Iterable[TrackLike] = ()) -> ZoneState:
        """Advance every track's zone state by one frame.

        Args:
            tracks: the live tracks (seen or not); ids unique.
            timestamp: the frame's time in seconds (a step back restarts the pending timers).
            size: the frame's (width, height) in pixels; fractions are resolved on it.
            ended: tracks that ended this frame (their boxes are not read); they leave their zones.

        Returns the :class:`ZoneState`. ``occupancy`` has every zone; under each, the labels of the
        zone's filter and every label it has counted so far, 0 when none is in now, so a consumer
        sees a count drop to 0. Tracks not seen this frame keep their zones and still count.

        Raises:
            ConfigError: a zone lies entirely outside a frame of this size (raised on every frame
                of that size).
            ValueError: a track id twice in ``tracks``.
        """
        zones = self._zones_for(size)
        self._check_time(timestamp)
        ended_ids = list(dict.fromkeys(t.id for t in ended))
        live = _by_id(tracks, set(ended_ids))
        known = (set(self._presence) | set(self._entered)) - set(live) - set(ended_ids)
        transitions: list[ZoneTransition] = []
        seen = [t for t in live.values() if t.seen]
        for track, row in zip(seen, _inside(zones, seen)):
            self._step_track(track, row, zones, timestamp, transitions)
        for track in live.values():
            if not track.seen:
                self._step_unseen(track.id, zones, timestamp, transitions)
        finished = ended_ids + sorted(known)
        for track_id in finished:
            transitions += [ZoneTransition(track_id, name, LEFT, timestamp)
                            for name in _names_in(zones, self._presence.pop(track_id, {}))]
        return self._state(live, finished, zones, tuple(transitions))

    def _zones_for(self, size: tuple[int, int]) -> tuple[Zone, ...]:
        size = tuple(size)
        if size != self._size:
            self._resolved = tuple(z.resolve(*size) for z in self._zones)
            self._size = size
        return self._resolved

    def _check_time(self, timestamp: float) -> None:
        if not (isinstance(timestamp, Real) and math.isfinite(timestamp)):
            raise ValueError(f"zones: expected a finite frame timestamp in seconds, found {timestamp!r}")
        if self._last_time is not None and timestamp < self._last_time:
            # time went back (a clock set back, a file source starting over): the tracker then ends
            # every track and starts new ones, which leave and enter afresh here; a track that goes
            # on keeps its zones, its pending entry or exit timed from the new clock
            t = float(timestamp)
            for states in self._presence.values():
                for key, state in states.items():
                    states[key] = replace(state, since=None if state.since is None else t,
                                          out_since=None if state.out_since is None else t)
        self._last_time = float(timestamp)

    def _step_track(self, track: TrackLike, row: np.ndarray, zones: tuple[Zone, ...], t: float,
                    transitions: list[ZoneTransition]) -> None:
        states = self._presence.get(track.id, {})
        for zone, inside in zip(zones, row.tolist()):
            before = states.get(zone.name, _IDLE)
            if before is _IDLE and not inside:
                continue
            after, kind = _step(before, inside, t, zone)
            if after == _IDLE:
                states.pop(zone.name, None)
            else:
                states[zone.name] = after
            if kind is not None:
                transitions.append(ZoneTransition(track.id, zone.name, kind, t))
            if kind == ENTERED and zone.name not in self._entered.get(track.id, ()):
                self._entered[track.id] = self._entered.get(track.id, ()) + (zone.name,)
        if states:
            self._presence[track.id] = states
        else:
            self._presence.pop(track.id, None)

    def _step_unseen(self, track_id: int, zones: tuple[Zone, ...], t: float,
                     transitions: list[ZoneTransition]) -> None:
        """A frame without the track: nothing moves it into or out of a zone, except that an exit
        already under way (last seen outside) completes when its delay is up — an object that
        stepped out and then went out of sight has left, not stayed until its track ends."""
        states = self._presence.get(track_id)
        if not states:
            return
        delays = {zone.name: zone.exit_delay for zone in zones}
        for name, p in list(states.items()):
            if p.since is not None and p.out_since is not None and name in delays \
                    and t - p.out_since >= delays[name] - _TIME_EPS:
                del states[name]
                transitions.append(ZoneTransition(track_id, name, LEFT, t))
        if not states:
            self._presence.pop(track_id, None)

    def _state(self, live: dict[int, TrackLike], finished: list[int], zones: tuple[Zone, ...],
               transitions: tuple[ZoneTransition, ...]) -> ZoneState:
        current: dict[int, tuple[str, ...]] = {}
        loitering: dict[int, tuple[str, ...]] = {}
        counts: dict[str, dict[str, int]] = {z.name: {} for z in zones}
        for track_id, track in live.items():
            states = self._presence.get(track_id, {})
            current[track_id] = _names_in(zones, states)
            loitering[track_id] = tuple(z.name for z in zones if z.name in states and states[z.name].loitering)
            for name in current[track_id]:
                counts[name][track.label] = counts[name].get(track.label, 0) + 1
                self._counted[name].add(track.label)
        entered = {track_id: self._entered.get(track_id, ()) for track_id in live}
        for track_id in finished:
            current[track_id] = loitering[track_id] = ()
            entered[track_id] = self._entered.pop(track_id, ())
        occupancy = {z.name: {label: counts[z.name].get(label, 0) for label in sorted(self._counted[z.name])}
                     for z in zones}
        return ZoneState(current, entered, transitions, occupancy, loitering)


def anchor(box: Sequence[float]) -> tuple[float, float]:
    """The point of a box (x1, y1, x2, y2) that decides its zones: the bottom centre."""
    x1, _, x2, y2 = box
    return ((x1 + x2) / 2, y2)


def _step(p: _Presence, inside: bool, t: float, zone: Zone) -> tuple[_Presence, Optional[str]]:
    """One seen frame of a track in a zone: the new presence and the transition, if any."""
    if p.since is None:
        if not inside:
            return _IDLE, None
        if p.streak + 1 < zone.inertia:
            return _Presence(streak=p.streak + 1), None
        return _Presence(since=t), ENTERED
    if inside:
        if zone.loitering is not None and not p.loitering and t - p.since >= zone.loitering - _TIME_EPS:
            return _Presence(since=p.since, loitering=True), LOITERING
        return (p if p.out_since is None else replace(p, out_since=None)), None
    out_since = t if p.out_since is None else p.out_since
    if t - out_since >= zone.exit_delay - _TIME_EPS:
        return _IDLE, LEFT
    return replace(p, out_since=out_since), None


def _inside(zones: tuple[Zone, ...], tracks: list[TrackLike]) -> np.ndarray:
    """(tracks, zones) bool: each seen track's anchor inside each zone, and its label admitted."""
    inside = np.zeros((len(tracks), len(zones)), dtype=bool)
    if not tracks:
        return inside
    boxes = np.asarray([t.box for t in tracks], dtype=np.float64).reshape(-1, 4)
    anchors = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]], axis=1)
    for j, zone in enumerate(zones):
        inside[:, j] = zone.contains_points(anchors)
        if zone.labels is not None:
            inside[:, j] &= np.fromiter((t.label in zone.labels for t in tracks), dtype=bool, count=len(tracks))
    return inside


def _names_in(zones: tuple[Zone, ...], states: dict[str, _Presence]) -> tuple[str, ...]:
    return tuple(z.name for z in zones if z.name in states and states[z.name].since is not None)


def _by_id(tracks: Iterable[TrackLike], ended: set[int]) -> dict[int, TrackLike]:
    live: dict[int, TrackLike] = {}
    for track in tracks:
        if track.id in live:
            raise ValueError(f"zones: track id {track.id} appears twice in one frame's tracks")
        if track.id not in ended:
            live[track.id] = track
    return live
