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
import unicodedata
from dataclasses import dataclass, replace
from numbers import Real
from typing import Any, Iterable, Optional, Protocol, Sequence

import numpy as np

from .errors import ConfigError

__all__ = ["ENTERED", "LEFT", "LOITERING", "MAX_NAME_LENGTH", "RESERVED_NAMES", "TrackLike", "Zone",
           "ZoneState", "ZoneTransition", "Zones", "anchor", "parse_zone", "zone_from_settings"]

#: Names that collide with the topic levels a source publishes beside its zones.
RESERVED_NAMES = frozenset({"all", "motion", "status", "snapshot", "events"})
MAX_NAME_LENGTH = 64  # a zone name is one MQTT topic level and a Home Assistant entity name
ENTERED, LEFT, LOITERING = "entered", "left", "loitering"
_SETTINGS_KEYS = ("points", "labels", "inertia", "exit_delay", "loitering")
_TIME_EPS = 1e-9  # timestamps such as 0.1 * k are not exact; a nanosecond of slack
_EDGE_EPS = 1e-6  # pixels: a point this close to an edge is on it


class TrackLike(Protocol):
    """What :meth:`Zones.update` reads from a track (the tracker's own class fits)."""

    id: int
    label: str
    box: Sequence[float]  # (x1, y1, x2, y2) in pixels, y growing downward
    seen: bool  # False: kept alive this frame without a detection


@dataclass(frozen=True)
class Zone:
    """A named polygon, the objects it admits and its hysteresis.

    Args:
        name: one MQTT topic level (no ``/ + #``, no control characters, ≤ 64 characters, no
            leading/trailing space), not one of :data:`RESERVED_NAMES` (in any case).
        points: the corners in order around the area, ≥ 3, each ``(x, y)`` ≥ 0; pixels of the
            source's frame, or fractions of it when every value is ≤ 1. Edges may not cross.
        source: the source it applies to; None: every source.
        labels: only these labels enter and count; None: every label.
        inertia: seen frames in a row inside before a track enters (≥ 1).
        exit_delay: seconds seen outside, continuously, before a track leaves (≥ 0).
        loitering: seconds after entry before a track is loitering (> 0); None: never.
        relative: True: points are fractions; False: pixels; None: fractions when all ≤ 1.

    Raises ConfigError (one line naming the zone) for any value outside these.
    """

    name: str
    points: tuple[tuple[float, float], ...]
    source: Optional[str] = None
    labels: Optional[frozenset[str]] = None
    inertia: int = 3
    exit_delay: float = 1.0
    loitering: Optional[float] = None
    relative: Optional[bool] = None

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_points(self.name, self.points, self.relative)
        _check_options(self)

    @property
    def is_relative(self) -> bool:
        """True when the points are fractions of the frame (see ``relative``)."""
        if self.relative is not None:
            return self.relative
        return all(v <= 1 for point in self.points for v in point)

    def resolve(self, width: int, height: int) -> Zone:
        """This zone in pixels of a ``width`` x ``height`` frame (``relative=False``).

        Raises ConfigError: the size is not positive whole pixels, or the zone lies entirely
        outside the frame (no area in common with it).
        """
        if not (_is_int(width) and _is_int(height) and width > 0 and height > 0):
            raise ConfigError(f"zone {self.name!r}: expected a frame size in whole pixels > 0, found "
                              f"{width!r}x{height!r}")
        points = self.points
        if self.is_relative:
            points = tuple((x * width, y * height) for x, y in points)
        if _area(_clip(points, width, height)) <= 0:
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            where = f" of source {self.source!r}" if self.source else ""
            raise ConfigError(
                f"zone {self.name!r}{where} lies entirely outside the {width}x{height} frame (its points "
                f"span x {min(xs):g}..{max(xs):g}, y {min(ys):g}..{max(ys):g}); give pixels of this "
                "frame or fractions (0..1) of it")
        return replace(self, points=points, relative=False)

    def contains(self, x: float, y: float) -> bool:
        """Whether the pixel point (x, y) is inside the polygon or on its edge.

        Raises ConfigError: the zone is in fractions (call :meth:`resolve` first).
        """
        return bool(self.contains_points(np.array([[x, y]], dtype=np.float64))[0])

    def contains_points(self, points: np.ndarray) -> np.ndarray:
        """:meth:`contains` for many points at once: (N, 2) pixels -> (N,) bool."""
        if self.is_relative:
            raise ConfigError(f"zone {self.name!r} is in fractions of the frame; call resolve(width, "
                              "height) before testing pixel points")
        return _in_polygon(np.asarray(self.points, dtype=np.float64),
                           np.asarray(points, dtype=np.float64).reshape(-1, 2))


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


def parse_zone(text: str, source: Optional[str] = None) -> Zone:
    """A zone from the CLI's ``--zone NAME=x1,y1,x2,y2,...`` (other options at their defaults).

    Raises ConfigError (one line naming the zone): no ``=``, an empty name, an odd count of values,
    a value that is not a number, fewer than 3 points, NaN/inf, a negative value, edges that cross,
    a repeated point, no area, or a name that is reserved or not one MQTT topic level.
    """
    name, eq, values = text.partition("=")
    if not eq:
        raise ConfigError(f"--zone {text!r}: expected NAME=x1,y1,x2,y2,... (at least 3 points), found no '='")
    if not name:
        raise ConfigError(f"--zone {text!r}: the zone's name before '=' is empty; expected NAME=x1,y1,...")
    parts = values.split(",")
    numbers = []
    for i, part in enumerate(parts, 1):
        try:
            numbers.append(float(part))
        except ValueError:
            found = "nothing (a stray comma?)" if not part.strip() else repr(part)
            raise ConfigError(f"zone {name!r}: value {i} is {found}; expected numbers x1,y1,x2,y2,...") from None
    if len(numbers) % 2:
        raise ConfigError(f"zone {name!r}: {len(numbers)} values, an odd count; expected x,y pairs "
                          "(x1,y1,x2,y2,...)")
    return Zone(name, tuple(zip(numbers[0::2], numbers[1::2])), source)


def zone_from_settings(name: str, doc: dict[str, Any], source: Optional[str] = None) -> Zone:
    """A zone from a settings-file table, e.g. ``{points=[[0,0.5],[1,0.5],[1,1],[0,1]], labels=["car"],
    inertia=3, exit_delay=2, loitering=30}``; only ``points`` is required.

    Raises ConfigError (one line naming the zone and the key): not a table, unknown keys (listing
    the known ones), no points, a value of the wrong type or range (saying what was expected).
    """
    if not isinstance(doc, dict):
        raise ConfigError(f"zone {name!r}: expected a table of {', '.join(_SETTINGS_KEYS)}, found {_found(doc)}")
    unknown = sorted(str(k) for k in set(doc) - set(_SETTINGS_KEYS))
    if unknown:
        raise ConfigError(f"zone {name!r}: unknown key(s) {', '.join(unknown)}; known: {', '.join(_SETTINGS_KEYS)}")
    if "points" not in doc:
        raise ConfigError(f"zone {name!r}: no points; expected points = [[x1, y1], [x2, y2], [x3, y3], ...]")
    options = {key: doc[key] for key in ("inertia", "exit_delay", "loitering") if key in doc}
    if "labels" in doc:
        options["labels"] = _settings_labels(name, doc["labels"])
    return Zone(name, _settings_points(name, doc["points"]), source, **options)


def _settings_points(name: str, points: Any) -> tuple[tuple[Any, Any], ...]:
    if not isinstance(points, list):
        raise ConfigError(f"zone {name!r}: points: expected a list of [x, y] pairs, found {_found(points)}")
    for i, point in enumerate(points, 1):
        if not isinstance(point, list) or len(point) != 2:
            raise ConfigError(f"zone {name!r}: points: item {i} is {_found(point)}; expected an [x, y] pair")
    return tuple((x, y) for x, y in points)


def _settings_labels(name: str, labels: Any) -> frozenset[Any]:
    if not isinstance(labels, list):
        raise ConfigError(f'zone {name!r}: labels: expected a list of label names, e.g. ["car"], found '
                          f"{_found(labels)}")
    return frozenset(labels)


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"zone {name!r}: expected a non-empty name (text), found {_found(name)}")
    bad = [c for c in name if c in "/+#" or unicodedata.category(c) == "Cc"]
    if bad:
        what = repr(bad[0]) if bad[0] in "/+#" else f"a control character (U+{ord(bad[0]):04X})"
        raise ConfigError(f"zone {name!r}: the name is one MQTT topic level and may not contain {what}; "
                          "use letters, digits, '_' or '-'")
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigError(f"zone {name[:24] + '...'!r}: the name has {len(name)} characters; use at most "
                          f"{MAX_NAME_LENGTH} (it is an MQTT topic level)")
    if name != name.strip():
        raise ConfigError(f"zone {name!r}: the name starts or ends with a space; remove it")
    if name.lower() in RESERVED_NAMES:
        raise ConfigError(f"zone {name!r}: the name is reserved ({', '.join(sorted(RESERVED_NAMES))} are "
                          "topic levels of their own); choose another name")


def _check_points(name: str, points: Any, relative: Optional[bool]) -> None:
    if not isinstance(points, tuple):
        raise ConfigError(f"zone {name!r}: points: expected a tuple of (x, y) pairs, found {_found(points)}")
    for i, point in enumerate(points, 1):
        if not (isinstance(point, tuple) and len(point) == 2 and all(_is_number(v) for v in point)):
            raise ConfigError(f"zone {name!r}: point {i} is {_found(point)}; expected an (x, y) pair of numbers")
        for axis, v in zip("xy", point):
            if not math.isfinite(v):
                raise ConfigError(f"zone {name!r}: point {i} has {axis} = {v}; expected a finite number")
            if v < 0:
                raise ConfigError(f"zone {name!r}: point {i} has {axis} = {v:g}; expected ≥ 0 (pixels, or "
                                  "fractions 0..1 of the frame)")
            if relative and v > 1:
                raise ConfigError(f"zone {name!r}: point {i} has {axis} = {v:g} but the zone is relative; "
                                  "expected fractions 0..1 of the frame")
    if len(points) < 3:
        raise ConfigError(f"zone {name!r}: {len(points)} point(s); expected at least 3 (x, y) points")
    _check_shape(name, points)


def _check_shape(name: str, points: tuple[tuple[float, float], ...]) -> None:
    first: dict[tuple[float, float], int] = {}
    for i, point in enumerate(points, 1):
        if point in first:
            raise ConfigError(f"zone {name!r}: point {i} repeats point {first[point]} {point}; list each "
                              "corner once (the polygon closes itself)")
        first[point] = i
    n = len(points)
    for i in range(n):
        for j in range(i + 2, n - (i == 0)):  # edges i→i+1 and j→j+1 that share no corner
            if _cross(points[i], points[(i + 1) % n], points[j], points[(j + 1) % n]):
                raise ConfigError(f"zone {name!r}: its edges cross (points {i + 1}→{(i + 1) % n + 1} and "
                                  f"{j + 1}→{(j + 1) % n + 1}); list the points in order around the area")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    box_area = (max(xs) - min(xs)) * (max(ys) - min(ys))
    if box_area == 0 or _area(points) <= 1e-12 * box_area:  # relative: fractions are not exact
        raise ConfigError(f"zone {name!r}: its points lie on one line and enclose no area; give the "
                          "corners of an area")


def _check_options(zone: Zone) -> None:
    where = f"zone {zone.name!r}"
    if zone.source is not None and not (isinstance(zone.source, str) and zone.source):
        raise ConfigError(f"{where}: source: expected a source name or None, found {_found(zone.source)}")
    if zone.labels is not None:
        if not isinstance(zone.labels, frozenset):
            raise ConfigError(f"{where}: labels: expected a frozenset of label names or None, found "
                              f"{_found(zone.labels)}")
        if not zone.labels:
            raise ConfigError(f"{where}: labels: an empty list admits nothing; omit labels for every label")
        odd = [label for label in zone.labels if not (isinstance(label, str) and label)]
        if odd:
            raise ConfigError(f"{where}: labels: expected label names (text), found {_found(odd[0])}")
    if not (_is_int(zone.inertia) and zone.inertia >= 1):
        raise ConfigError(f"{where}: inertia: expected a whole number of frames ≥ 1, found {_found(zone.inertia)}")
    if not (_is_number(zone.exit_delay) and math.isfinite(zone.exit_delay) and zone.exit_delay >= 0):
        raise ConfigError(f"{where}: exit_delay: expected seconds ≥ 0 (a number), found {_found(zone.exit_delay)}")
    if zone.loitering is not None and not (
            _is_number(zone.loitering) and math.isfinite(zone.loitering) and zone.loitering > 0):
        raise ConfigError(f"{where}: loitering: expected seconds > 0 (a number), or none for no loitering; "
                          f"found {_found(zone.loitering)}")
    if zone.relative is not None and not isinstance(zone.relative, bool):
        raise ConfigError(f"{where}: relative: expected True, False or None, found {_found(zone.relative)}")


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


def _is_number(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _found(v: Any) -> str:
    return f"{v!r} ({type(v).__name__})"
