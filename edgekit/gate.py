"""Motion gating: whether a frame is worth an inference, and the motion state a camera publishes.

:class:`MotionGate` runs a :class:`~edgekit.motion.MotionDetector` on each frame's grey picture
(the Y plane straight from the decoder, a draft decode of a JPEG) before the model: a frame in
which nothing moves is not inferred — its result carries the previous inference's detections,
since nothing moved, so tracks stay alive and stationary objects stay put. So is a frame whose
motion is only an object that stopped: it differs from the background (until it becomes part of
it) but not from the frame last inferred. Every ``recheck``
seconds a frame is inferred anyway, so that a parked car stays honest; so is a frame after the
scene changed at once (lights on: ``recalibrated``).

:class:`MotionState` turns per-frame motion into the ON/OFF a camera's motion sensor shows: ON at
the first moving frame, OFF once nothing moved for ``off_delay`` seconds (as Frigate's
``mqtt_off_delay``), so a person pausing does not flap the sensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

__all__ = ["GateOptions", "MotionGate", "MotionState", "RECHECK", "OFF_DELAY", "SETTLE", "gate_options"]

#: Seconds between inferences on a frame without motion (Frigate re-checks stationary objects too).
RECHECK = 10.0
#: Seconds without motion before a camera's motion sensor goes OFF.
OFF_DELAY = 30.0
#: Seconds after the last moving frame during which still frames are still inferred.
SETTLE = 0.4


@dataclass(frozen=True)
class GateOptions:
    """How frames are gated by motion.

    Attributes:
        motion: :class:`~edgekit.motion.MotionOptions` (None: the defaults).
        recheck: seconds of frame time after which a frame is inferred even without motion.
        off_delay: seconds without motion before the motion state goes OFF.
        settle: seconds after the last moving frame during which still frames are inferred too
            (the first still one always is): what stopped or left is seen once it has (a walker's
            last sliver at the frame's edge is too small to count as motion, and the detector
            still reads it as a person: repeating that frame would keep a ghost in view).
    """

    motion: Any = None
    recheck: float = RECHECK
    off_delay: float = OFF_DELAY
    settle: float = SETTLE

    def __post_init__(self) -> None:
        for name in ("recheck", "off_delay", "settle"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"motion {name} must be a number of seconds >= 0, found {value!r}")
        if self.motion is not None:
            from .motion import MotionOptions

            if not isinstance(self.motion, MotionOptions):
                raise ConfigError(f"GateOptions.motion must be a MotionOptions, found {type(self.motion).__name__}")


def gate_options(value: Any, masks: Any = ()) -> GateOptions | None:
    """Motion gating from a setting: None or False (off), True (the defaults), a
    :class:`GateOptions`, or a table of its fields and :class:`~edgekit.motion.MotionOptions`' (a
    settings file's ``[motion]``; ``masks`` a list of ``NAME=x1,y1,...`` polygons). ``masks``
    (``--motion-mask`` values) are added to the table's and turn gating on.

    Raises:
        ConfigError: an unknown key (the known ones are listed), a value of the wrong type.
    """
    from dataclasses import fields, replace

    from .motion import MotionOptions, parse_mask

    extra = tuple(parse_mask(m, k) if isinstance(m, str) else m for k, m in enumerate(masks or (), 1))
    if value is None or value is False:
        if not extra:
            return None
        value = True
    if isinstance(value, GateOptions):
        options = value
    elif value is True:
        options = GateOptions()
    elif isinstance(value, dict):
        gate_keys = {"recheck", "off_delay", "settle"}
        motion_keys = {f.name for f in fields(MotionOptions)}
        unknown = sorted(set(value) - gate_keys - motion_keys)
        if unknown:
            raise ConfigError(f"motion: unknown setting {', '.join(map(repr, unknown))}; known: "
                              f"{', '.join(sorted(gate_keys | motion_keys))}")
        table = dict(value)
        if "masks" in table:
            listed = table["masks"]
            if not isinstance(listed, (list, tuple)):
                raise ConfigError(f"motion masks: expected a list of NAME=x1,y1,x2,y2,... polygons, found {listed!r}")
            table["masks"] = tuple(parse_mask(m, k) for k, m in enumerate(listed, 1))
        motion = MotionOptions(**{k: v for k, v in table.items() if k in motion_keys})
        options = GateOptions(motion, **{k: v for k, v in table.items() if k in gate_keys})
    else:
        raise ConfigError(f"motion: expected true, false or a table of motion settings, found {value!r}")
    if extra:
        from .motion import MotionOptions

        base = options.motion or MotionOptions()
        options = replace(options, motion=replace(base, masks=tuple(base.masks) + extra))
    return options


class MotionGate:
    """One source's motion gate (keep one per source: it holds the background).

    Args:
        options: :class:`GateOptions` (None: the defaults).
    """

    def __init__(self, options: GateOptions | None = None) -> None:
        from .motion import MotionDetector

        self.options = options or GateOptions()
        self._detector = MotionDetector(self.options.motion)
        self._inferred: float | None = None  # frame time of the last inference
        self._key: Any = None  # the last frame's size
        self._moved: float | None = None  # frame time of the last moving frame

    def check(self, grey: Any, timestamp: float, frame_size: tuple[int, int] | None = None) -> tuple[bool, Any]:
        """Whether to infer this frame, and its :class:`~edgekit.motion.Motion`.

        Args:
            grey: the frame's grey picture (2-D uint8; any size: see ``frame_size``).
            timestamp: the frame's time in seconds.
            frame_size: the source frame's ``(width, height)`` when ``grey`` is smaller.

        Returns:
            ``(infer, motion)``: infer the first frame, a moving one (unless what moves stands
            where it stood in the frame last inferred: ``Motion.changed``), the still ones up to
            ``settle`` seconds after motion (at least the first), one after a recalibration, one
            of another size, one ``recheck`` seconds after the last inference, and one after time
            went back.
        """
        motion = self._detector.update(grey, timestamp, frame_size)
        # what moves against the background but stands where it stood in the frame last inferred
        # (a car that just parked, a person who stopped) needs no new inference: the repeated
        # detections are where it is
        moving = motion.moving and motion.changed is not False
        last = self._inferred
        key = (getattr(grey, "shape", None), frame_size)
        resized, self._key = key != self._key, key  # another picture size: another scene (the detector restarts)
        # still frames just after motion are inferred too: they show where things stopped, or that
        # they left (repeating the last moving frame would keep a walker who left in view)
        moved = self._moved
        if moving or resized or (moved is not None and timestamp < moved):
            self._moved = moved = timestamp if moving else None
        settling = moved is not None and not moving and (
            last == moved or timestamp - moved <= self.options.settle + 1e-9)
        infer = (moving or settling or motion.recalibrated or resized or last is None or timestamp < last
                 or timestamp - last >= self.options.recheck - 1e-9)
        if infer:
            self._inferred = timestamp
            self._detector.mark()
        return infer, motion

    def reset(self) -> None:
        """Start over (a source that restarted)."""
        self._detector.reset()
        self._inferred = self._key = self._moved = None


class MotionState:
    """ON/OFF per source from per-frame motion, with an off delay.

    Args:
        off_delay: seconds without motion before OFF: one for every source, or a mapping of
            source names to theirs (a source not in it: :data:`OFF_DELAY`).
    """

    def __init__(self, off_delay: float | Mapping[str, float] = OFF_DELAY) -> None:
        self.off_delay = off_delay
        self._on: dict[str, bool] = {}
        self._moved: dict[str, float] = {}

    def delay(self, source: str) -> float:
        """``source``'s off delay."""
        if isinstance(self.off_delay, Mapping):
            return self.off_delay.get(source, OFF_DELAY)
        return self.off_delay

    def update(self, source: str, moving: bool, timestamp: float) -> str | None:
        """The new state ("ON" or "OFF") when this frame changes it, else None. A source's first
        frame always says its state."""
        first = source not in self._on
        if moving:
            self._moved[source] = timestamp
        was = self._on.get(source, False)
        last = self._moved.get(source)
        now = moving or (was and last is not None and 0 <= timestamp - last < self.delay(source))
        self._on[source] = now
        if first or now != was:
            return "ON" if now else "OFF"
        return None
