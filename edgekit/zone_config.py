"""What a zone is and how a user writes one: the :class:`Zone` value (a named polygon, the labels
it admits and its hysteresis), checked when made, resolved to a frame's pixels; :func:`parse_zone`
(the CLI's ``--zone``) and :func:`zone_from_settings` (a settings-file table). Each mistake is one
:class:`~edgekit.errors.ConfigError` line naming the zone.

What the zone's options do over time is :mod:`edgekit.zones`.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, replace
from numbers import Real
from typing import Any, Optional

import numpy as np

from .errors import ConfigError
from .zone_geometry import _area, _clip, _cross, _in_polygon

__all__ = ["MAX_NAME_LENGTH", "RESERVED_NAMES", "Zone", "parse_zone", "zone_from_settings"]

#: Names that collide with the topic levels a source publishes beside its zones.
RESERVED_NAMES = frozenset({"all", "motion", "status", "snapshot", "events"})
MAX_NAME_LENGTH = 64  # a zone name is one MQTT topic level and a Home Assistant entity name
_SETTINGS_KEYS = ("points", "labels", "inertia", "exit_delay", "loitering")


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


def _is_number(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _found(v: Any) -> str:
    return f"{v!r} ({type(v).__name__})"
