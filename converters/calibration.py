"""Calibration images, preprocessed exactly as the edgekit runtime preprocesses them."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Iterable, Iterator, TextIO

import numpy as np

from edgekit.errors import ConfigError, ImageError
from edgekit.image import encode_pixels, fit_to_input, load_image, make_encoder
from edgekit.metadata import InputSpec
from edgekit.sources import IMAGE_EXTENSIONS

__all__ = ["CalibrationSplit", "calibration_paths", "split_calibration", "load_calibration", "synthetic_inputs",
           "MIN_SPLIT"]

MIN_SPLIT = 10  # fewer images than this: too few to keep any apart from calibration
_HOLD_OUT_EVERY = 5  # every 5th image (in name order) is held out ...
_MAX_HELD_OUT = 50  # ... up to this many: enough for the agreement figures


def calibration_paths(directory: str, limit: int) -> list[str]:
    """Up to ``limit`` image paths from ``directory`` (sorted, so runs are reproducible)."""
    return _image_paths(directory)[:limit]


def _image_paths(directory: str) -> list[str]:
    if not os.path.isdir(directory):
        raise ConfigError(f"--calibration {directory}: not a directory; expected a folder of representative images")
    paths = sorted(
        os.path.join(directory, n) for n in os.listdir(directory) if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS
    )
    if not paths:
        raise ConfigError(f"--calibration {directory}: no images found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
    return paths


@dataclass(frozen=True)
class CalibrationSplit:
    """A calibration folder split in two: images to calibrate int8 on, and images kept apart to
    measure agreement on. ``held_out`` is empty when the folder has fewer than MIN_SPLIT images."""

    calibration: tuple[str, ...]
    held_out: tuple[str, ...]


def split_calibration(directory: str, limit: int) -> CalibrationSplit:
    """Split ``directory``'s images deterministically: every 5th image in name order (at most 50)
    is held out and never used for calibration; up to ``limit`` of the others calibrate."""
    paths = _image_paths(directory)
    if len(paths) < MIN_SPLIT:
        return CalibrationSplit(tuple(paths[:limit]), ())
    held_out = paths[_HOLD_OUT_EVERY - 1::_HOLD_OUT_EVERY][:_MAX_HELD_OUT]
    kept = set(held_out)
    return CalibrationSplit(tuple(p for p in paths if p not in kept)[:limit], tuple(held_out))


def load_calibration(paths: list[str], size: tuple[int, int], spec: InputSpec) -> np.ndarray:
    """Float32 NHWC batch of the images, normalised with ``spec`` (unreadable images are skipped
    with a warning; all unreadable is an error)."""
    encoder = make_encoder(np.float32, (0.0, 0), spec.mean, spec.std, spec.color)
    batch = []
    for path in paths:
        try:
            loaded = load_image(path, size, spec.resize or "stretch")
        except ImageError as exc:
            print(f"edgekit-convert: skipping calibration image: {exc}", file=sys.stderr)
            continue
        pixels, _ = fit_to_input(loaded, size, spec.resize or "stretch", spec.pad_value)
        batch.append(encode_pixels(pixels, encoder)[0])
    if not batch:
        raise ConfigError("no calibration image could be read; expected readable JPEG/PNG images")
    return np.stack(batch)


def synthetic_inputs(size: tuple[int, int], spec: InputSpec, count: int = 8, seed: int = 0) -> np.ndarray:
    """Deterministic random-pixel inputs, for comparing float modes when no images were given."""
    rng = np.random.default_rng(seed)
    encoder = make_encoder(np.float32, (0.0, 0), spec.mean, spec.std, spec.color)
    pixels = rng.integers(0, 256, size=(count, size[1], size[0], 3), dtype=np.uint8)
    return np.concatenate([encode_pixels(p, encoder) for p in pixels])


def iterate(batch: np.ndarray, progress: TextIO | None = None) -> Iterator[list[np.ndarray]]:
    """The representative dataset generator TFLite's converter wants, with a progress bar on
    ``progress`` (a text stream) when given."""
    items: Iterable[int] = range(len(batch))
    if progress is not None:
        from tqdm import tqdm

        items = tqdm(items, desc="calibrating", unit="img", file=progress, leave=False)
    for i in items:
        yield [batch[i:i + 1]]
