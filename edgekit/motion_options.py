"""What :class:`~edgekit.motion.MotionDetector` is told (:class:`MotionOptions`, :func:`parse_mask`),
and the checks that refuse a bad value in one line naming it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any, Optional

import numpy as np

from .errors import ConfigError
from .zone_config import Zone, parse_zone

__all__ = ["MotionOptions", "parse_mask"]


@dataclass(frozen=True)
class MotionOptions:
    """How :class:`MotionDetector` decides what moves.

    Args:
        threshold: grey levels (1..254) a sampled pixel must differ from the background by.
        min_area: share of the frame (0..1) a region's changed pixels must cover to count.
        alpha: share of the background (0..1] that follows the frame per second of timestamps
            where it has not changed (slow light, noise).
        recalibrate: share of the unmasked grid cells (0..1] whose change at once means the
            scene, not an object, changed: the frame becomes the background. None: never.
        height: the rows the frame is sampled down to, at least (16..1080); an integer stride,
            so 720 rows at 100 become 103.
        absorb_after: seconds a pixel may differ from the background without a break (counted
            from the last frame where it did not) before it becomes background: a parked car
            stops being motion; what an object hid when the detector started is no lasting ghost.
        masks: polygons never watched (:func:`parse_mask`, or :class:`~edgekit.zones.Zone`
            values: pixels of the source frame, or fractions when every value is ≤ 1).

    Raises ConfigError (one line naming the option) for a value outside these.
    """

    threshold: float = 25
    min_area: float = 0.001
    alpha: float = 0.2
    recalibrate: Optional[float] = 0.6
    height: int = 100
    absorb_after: float = 2.0
    masks: tuple[Zone, ...] = ()

    def __post_init__(self) -> None:
        _check("threshold", self.threshold, 1 <= _real(self.threshold) <= 254, "grey levels 1..254")
        _check("min_area", self.min_area, 0 <= _real(self.min_area) < 1, "a share of the frame 0 ≤ a < 1")
        _check("alpha", self.alpha, 0 < _real(self.alpha) <= 1, "a share per second 0 < alpha ≤ 1")
        _check("recalibrate", self.recalibrate, self.recalibrate is None or 0 < _real(self.recalibrate) <= 1,
               "a share of the grid 0 < r ≤ 1, or None for never")
        _check("absorb_after", self.absorb_after, 0 < _real(self.absorb_after) <= 3600, "seconds 0 < s ≤ 3600")
        _check("height", self.height, _is_int(self.height) and 16 <= self.height <= 1080, "whole rows 16..1080")
        if not isinstance(self.masks, tuple):
            raise ConfigError(f"motion option masks: expected a tuple of masks (parse_mask), found "
                              f"{_found(self.masks)}")
        names: set[str] = set()
        for i, mask in enumerate(self.masks, 1):
            if not isinstance(mask, Zone):
                raise ConfigError(f"motion option masks: item {i} is {_found(mask)}; expected a polygon "
                                  "from parse_mask('NAME=x1,y1,x2,y2,x3,y3')")
            if mask.name in names:
                raise ConfigError(f"motion mask {mask.name!r} is given twice; give each mask its own name")
            names.add(mask.name)


def parse_mask(text: str, index: int = 1) -> Zone:
    """A mask from ``NAME=x1,y1,x2,y2,...`` or ``x1,y1,x2,y2,...`` (named ``mask<index>``): at
    least 3 points, pixels of the source frame or fractions when every value is ≤ 1.

    Raises ConfigError (one line naming the mask): the rules of :func:`edgekit.zones.parse_zone`.
    """
    if not isinstance(text, str):
        raise ConfigError(f"motion mask {index}: expected text NAME=x1,y1,x2,y2,..., found {_found(text)}")
    if "=" not in text or text.startswith("="):
        text = f"mask{index}={text.lstrip('=')}"
    try:
        return parse_zone(text)
    except ConfigError as exc:
        raise _mask_error(exc, text.partition("=")[0]) from None


def _mask_error(exc: ConfigError, name: str) -> ConfigError:
    """A zone's error as the mask's (the polygon rules are the zones' own): 'zone 'x'' -> 'motion mask 'x''."""
    text, prefix = str(exc), f"zone {name!r}"
    if text.startswith(prefix):
        return ConfigError(f"motion mask {name!r}{text[len(prefix):]}")
    return ConfigError(f"motion mask {name!r}: {text}")


def _real(v: Any) -> float:
    """A finite number as a float; NaN (which fails every comparison) for anything else."""
    return float(v) if isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) else math.nan


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _check(name: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        raise ConfigError(f"motion option {name}: expected {expected}, found {_found(value)}")


def _size(size: Any) -> tuple[int, int]:
    try:
        w, h = size
    except (TypeError, ValueError):
        w = h = None
    if not all(_is_int(v) and v > 0 for v in (w, h)):
        raise ConfigError(f"motion: frame_size: expected (width, height) in whole pixels > 0, found {size!r}")
    return int(w), int(h)


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return type(value).__name__


def _found(v: Any) -> str:
    return f"{v!r} ({type(v).__name__})"
