"""Motion: whether anything moves in a camera's frame, cheaply enough to gate inference on it.

A :class:`MotionDetector` keeps a running-average background of a small grey copy of the frame and
reports, per frame, the regions whose grey level differs from it (a :class:`Motion`):

* the grey frame (a video's Y plane, a JPEG's draft decode, :func:`grey_from_rgb`) is sampled at an
  integer stride down to about ``MotionOptions.height`` rows — strided slicing, no averaging, as it
  costs ~40 µs on a 720p frame where even ``np.mean`` costs a millisecond;
* a sampled pixel has changed when it differs from the background by more than ``threshold`` grey
  levels; changed pixels are counted on a grid of 8 x 8 sampled pixels, and touching cells (8
  neighbours) with at least 2 changed pixels form a region; a region counts when its changed pixels
  cover ``min_area`` of the frame, so sensor noise and codec specks do not;
* where nothing changed the background follows the frame by ``alpha`` per second of timestamps,
  whatever the frame rate; a changed pixel is not followed (a passing object leaves no trail)
  until it has differed for ``absorb_after`` seconds, then it becomes background (a parked car);
* when more than ``recalibrate`` of the grid lights up at once (lights, auto-exposure, a camera
  moved) the frame becomes the background and the result says ``recalibrated``, with no motion;
* ``masks`` (polygons as in :mod:`edgekit.zones`) are never watched.

The first frame, and the first after :meth:`MotionDetector.reset`, a change of frame size or a step
back in time, only becomes the background: it reports no motion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Optional

import numpy as np

from .errors import ConfigError
from .motion_grey import grey_from_image, grey_from_rgb
from .motion_options import MotionOptions, _describe, _mask_error, _size, parse_mask
from .zone_config import Zone

__all__ = ["Box", "Motion", "MotionDetector", "MotionOptions", "grey_from_image", "grey_from_rgb", "parse_mask"]

Box = tuple[int, int, int, int]  # (x1, y1, x2, y2) in source pixels, x2/y2 exclusive
_CELL = 8  # sampled pixels per grid cell side: ~300 cells on a 16:9 frame at 100 rows
_CELL_MIN = 2  # changed pixels that light a cell: one alone is noise or a codec speck
_TIME_EPS = 1e-9  # timestamps such as 0.1 * k are not exact


@dataclass(frozen=True)
class Motion:
    """One frame's motion.

    Attributes:
        moving: some region counts (``regions`` is not empty).
        regions: the boxes of the regions that count, in source pixels, largest first.
        fraction: the share of the unmasked area that changed (every changed pixel, specks too).
        recalibrated: so much changed at once that this frame became the background; no motion.
        changed: for a moving frame, whether its moving regions also differ from the frame last
            given to :meth:`MotionDetector.mark` (the frame last inferred): False for an object
            that stopped where it was then (a car that just parked differs from the background
            for ``absorb_after`` seconds, not from the frame before). None: not compared (no
            motion, or nothing marked).
    """

    moving: bool
    regions: tuple[Box, ...]
    fraction: float
    recalibrated: bool = False
    changed: Optional[bool] = None


_STILL = Motion(False, (), 0.0)


class MotionDetector:
    """One per camera: its background and what moved against it.

    Args:
        options: the :class:`MotionOptions` (None: the defaults).
        frame_size: the source frame's (width, height), when known: the masks are resolved and
            checked now rather than on the first frame.

    Raises ConfigError: a mask lies entirely outside the frame, or the masks leave nothing to watch.
    """

    def __init__(self, options: Optional[MotionOptions] = None,
                 frame_size: Optional[tuple[int, int]] = None) -> None:
        self.options = options if options is not None else MotionOptions()
        self._key: Optional[tuple[tuple[int, int], tuple[int, int]]] = None
        self._background: Optional[np.ndarray] = None
        self._reference: Optional[np.ndarray] = None  # the sampled frame last marked (inferred)
        self._last_time = 0.0
        if frame_size is not None:
            w, h = _size(frame_size)
            self._start((w, h), (h, w))

    def reset(self) -> None:
        """Forget the background: the next frame becomes it (and reports no motion)."""
        self._background = None
        self._reference = None

    def mark(self) -> None:
        """Remember the last frame given to :meth:`update` (the frame a model is about to infer):
        the next moving frames say whether their moving regions differ from it
        (``Motion.changed``)."""
        if self._background is not None:
            if self._reference is None:
                self._reference = self._sampled.copy()
            else:
                np.copyto(self._reference, self._sampled)

    def update(self, grey: np.ndarray, timestamp: float,
               frame_size: Optional[tuple[int, int]] = None) -> Motion:
        """Compare one frame with the background, then move the background towards it.

        Args:
            grey: 2-D uint8 grey frame, any strides (a Y plane with row padding, a view).
            timestamp: the frame's time in seconds; a step back restarts (a file played again).
            frame_size: the (width, height) of the source frame when ``grey`` is a reduced copy of
                it (a JPEG draft, ``grey_from_rgb(height=...)``); None: ``grey`` is the frame.
                Regions and masks are in these pixels. A new size restarts the detector.

        Returns the frame's :class:`Motion`.

        Raises:
            ValueError: ``grey`` is not a 2-D uint8 array, or the timestamp is not a finite number.
            ConfigError: a mask lies entirely outside a frame of a new size.
        """
        if not (isinstance(grey, np.ndarray) and grey.ndim == 2 and grey.dtype == np.uint8 and grey.size):
            raise ValueError(f"motion: expected a 2-D uint8 grey frame (a Y plane, grey_from_rgb), found "
                             f"{_describe(grey)}")
        if not (isinstance(timestamp, Real) and not isinstance(timestamp, bool) and math.isfinite(timestamp)):
            raise ValueError(f"motion: expected a finite frame timestamp in seconds, found {timestamp!r}")
        shape = (grey.shape[0], grey.shape[1])
        source = _size(frame_size) if frame_size is not None else (shape[1], shape[0])
        if (source, shape) != self._key:
            self._start(source, shape)
        # one strided gather into a contiguous buffer: cheaper than feeding the strided view to
        # the float arithmetic (which buffers and casts it), and what the background copies from
        sampled = self._sampled
        np.copyto(sampled, grey[::self._step, ::self._step])
        t = float(timestamp)
        if self._background is None or t < self._last_time:
            return self._restart(sampled, t)
        dt, self._last_time = t - self._last_time, t
        diff = np.subtract(sampled, self._background, out=self._diff, dtype=np.float32)
        changed = np.greater(np.abs(diff, out=self._absdiff), self.options.threshold, out=self._changed)
        if self._watched is not None:
            changed &= self._watched
        count = int(np.count_nonzero(changed))
        fraction = count / self._watched_count
        regions: tuple[Box, ...] = ()
        if count >= max(self._min_pixels, _CELL_MIN):
            counts = self._cell_counts(changed)
            lit = counts >= _CELL_MIN
            recalibrate = self.options.recalibrate
            # the share of the grid lit, not of the pixels: a light switched on changes a little
            # everywhere (dark pixels barely), an object a lot in one place
            if recalibrate is not None and np.count_nonzero(lit) > recalibrate * self._watched_cells:
                return self._restart(sampled, t, recalibrated=fraction)
            regions = self._regions(counts, lit)
        self._follow(sampled, diff, changed, count, dt)
        if not regions:
            return Motion(False, (), fraction)
        return Motion(True, regions, fraction, changed=None if self._reference is None else self._changed_since_mark())

    def _changed_since_mark(self) -> bool:
        """Whether the frame just sampled differs from the marked one by a region that counts
        (the same threshold, grid and ``min_area``): one more pass over the small grey frame."""
        diff = np.subtract(self._sampled, self._reference, out=self._diff, dtype=np.float32)
        changed = np.greater(np.abs(diff, out=self._absdiff), self.options.threshold, out=self._changed)
        if self._watched is not None:
            changed &= self._watched
        if np.count_nonzero(changed) < max(self._min_pixels, _CELL_MIN):
            return False
        counts = self._cell_counts(changed)
        return bool(self._regions(counts, counts >= _CELL_MIN))

    def _follow(self, sampled: np.ndarray, diff: np.ndarray, changed: np.ndarray, count: int,
                dt: float) -> None:
        """Move the background towards the frame: unchanged pixels by alpha per second; changed
        ones not at all (a passing object leaves no trail) until they have differed for
        ``absorb_after`` seconds, then they become the frame (a parked car, a moved chair)."""
        # diff = frame - background, so background += k * diff follows the frame by k; k from the
        # time step keeps alpha per second at any frame rate (0 for a repeated timestamp)
        k = np.float32(1.0 - (1.0 - self.options.alpha) ** dt)
        step = np.multiply(diff, k, out=diff)
        if count == 0 and not self._pending:
            self._background += step
            return
        np.copyto(step, 0, where=changed)
        self._background += step
        # how long each pixel has differed, counted from the last frame where it did not
        age = self._age
        age += np.float32(dt)
        age *= changed
        settled = np.greater_equal(age, self.options.absorb_after - _TIME_EPS, out=self._settled)
        if settled.any():
            np.copyto(self._background, sampled, where=settled)
            age *= np.logical_not(settled, out=settled)
        self._pending = count > 0

    def _start(self, source: tuple[int, int], shape: tuple[int, int]) -> None:
        """Set up for frames of ``shape`` (rows, cols) made from a ``source`` (w, h) frame."""
        masks = []
        for mask in self.options.masks:
            try:
                masks.append(mask.resolve(*source))
            except ConfigError as exc:
                raise _mask_error(exc, mask.name) from None
        step = max(1, shape[0] // self.options.height)
        rows, cols = -(-shape[0] // step), -(-shape[1] // step)
        # a sampled pixel's source footprint: step grey pixels, times the grey's reduction
        self._scale = (step * source[0] / shape[1], step * source[1] / shape[0])
        self._step, self._key, self._source = step, (source, shape), source
        self._watched = ~_rasterise(masks, rows, cols, step, source, shape) if masks else None
        grid = (-(-rows // _CELL) * _CELL, -(-cols // _CELL) * _CELL)
        self._grid = np.zeros(grid, bool)  # padded to whole cells; the padding stays False
        self._runs = (np.zeros((grid[0] // _CELL, grid[1] // _CELL + 2), np.int8),
                      np.zeros((grid[0] // _CELL, grid[1] // _CELL + 1), np.int8))
        if self._watched is None:
            self._watched_count, self._watched_cells = rows * cols, (grid[0] // _CELL) * (grid[1] // _CELL)
        else:
            self._watched_count = int(np.count_nonzero(self._watched))
            self._watched_cells = int(np.count_nonzero(self._cell_counts(self._watched)))
        if self._watched_count == 0:
            raise ConfigError(f"motion masks {', '.join(repr(m.name) for m in masks)} cover the whole "
                              f"{source[0]}x{source[1]} frame: nothing is left to watch; shrink or remove one")
        self._min_pixels = math.ceil(self.options.min_area * rows * cols)
        # per-frame buffers, allocated once per size: numpy's allocations would cost as much as the work
        self._sampled = np.empty((rows, cols), np.uint8)
        self._diff, self._absdiff, self._age = (np.zeros((rows, cols), np.float32) for _ in range(3))
        self._changed, self._settled = np.zeros((rows, cols), bool), np.zeros((rows, cols), bool)
        self._background = self._reference = None

    def _restart(self, sampled: np.ndarray, t: float, recalibrated: Optional[float] = None) -> Motion:
        self._background = sampled.astype(np.float32)
        self._reference = None
        self._age.fill(0)
        self._pending = False
        self._last_time = t
        return _STILL if recalibrated is None else Motion(False, (), recalibrated, True)

    def _cell_counts(self, changed: np.ndarray) -> np.ndarray:
        """(grid rows, grid cols) uint8: changed pixels per cell (≤ 64)."""
        rows, cols = changed.shape
        grid = self._grid
        grid[:rows, :cols] = changed
        gh, gw = grid.shape[0] // _CELL, grid.shape[1] // _CELL
        # rows within a cell first, then columns: two contiguous reductions, 5x faster than one
        # over both axes of a 4-D view
        per_row = np.add.reduce(grid.view(np.uint8).reshape(gh, _CELL, -1), axis=1, dtype=np.uint8)
        return np.add.reduce(per_row.reshape(gh, gw, _CELL), axis=2, dtype=np.uint8)

    def _regions(self, counts: np.ndarray, lit: np.ndarray) -> tuple[Box, ...]:
        """The boxes of the connected lit cells whose changed pixels reach ``min_area``, largest
        first (the grid holds this frame's changed pixels)."""
        # runs of lit cells along each grid row, row-major: the Python work below is per run.
        # Between unlit borders, each row's changes alternate: a run's start, then its end
        padded, edges = self._runs
        padded[:, 1:-1] = lit
        width = edges.shape[1]
        flat = np.flatnonzero(np.subtract(padded[:, 1:], padded[:, :-1], out=edges)).tolist()
        rows, starts, ends = [i // width for i in flat[0::2]], [i % width for i in flat[0::2]], \
            [i % width for i in flat[1::2]]
        per_cell = counts.tolist()
        label = _components(rows, starts, ends)
        groups: dict[int, list[int]] = {}
        for i, n in enumerate(label):
            groups.setdefault(n, []).append(i)
        boxes = []
        for runs in groups.values():
            if sum(sum(per_cell[rows[i]][starts[i]:ends[i]]) for i in runs) < self._min_pixels:
                continue
            r0, r1 = rows[runs[0]] * _CELL, (rows[runs[-1]] + 1) * _CELL
            c0, c1 = min(starts[i] for i in runs) * _CELL, max(ends[i] for i in runs) * _CELL
            # tight on the changed pixels within its cells' bounds: never looser than the cells,
            # at most a lone speck of a neighbouring unlit cell looser than its own pixels
            inside = self._grid[r0:r1, c0:c1]
            ys, xs = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
            boxes.append(self._to_source(c0 + int(xs[0]), r0 + int(ys[0]), c0 + int(xs[-1]) + 1,
                                         r0 + int(ys[-1]) + 1))
        return tuple(sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True))

    def _to_source(self, x1: int, y1: int, x2: int, y2: int) -> Box:
        sx, sy = self._scale
        w, h = self._source
        return (int(x1 * sx), int(y1 * sy), min(w, math.ceil(x2 * sx)), min(h, math.ceil(y2 * sy)))


def _components(rows: list[int], starts: list[int], ends: list[int]) -> list[int]:
    """Which group each run of cells (row, [start, end)) is in, 0, 1, ...: runs in consecutive
    rows that touch, diagonally too, join (union-find over runs: Python work grows with the runs,
    a few per object, not with the cells)."""
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    above = this = (0, 0)  # index ranges of the runs of the previous and the current row
    for i, row in enumerate(rows):
        if i == 0 or row != rows[i - 1]:
            above = this if i and row == rows[i - 1] + 1 else (i, i)
            this = (i, i)
        this = (this[0], i + 1)
        for j in range(*above):
            if starts[j] <= ends[i] and starts[i] <= ends[j]:
                parent[root(j)] = root(i)
    numbers: dict[int, int] = {}
    return [numbers.setdefault(root(i), len(numbers)) for i in range(len(rows))]


def _rasterise(masks: list[Zone], rows: int, cols: int, step: int, source: tuple[int, int],
               shape: tuple[int, int]) -> np.ndarray:
    """(rows, cols) bool: the sampled pixels whose centre (in source pixels) is in a mask."""
    fx, fy = source[0] / shape[1], source[1] / shape[0]
    ys, xs = np.mgrid[0:rows, 0:cols]
    points = np.stack([((xs * step) + 0.5).ravel() * fx, ((ys * step) + 0.5).ravel() * fy], axis=1)
    inside = np.zeros(rows * cols, bool)
    for mask in masks:
        inside |= mask.contains_points(points)
    return inside.reshape(rows, cols)
