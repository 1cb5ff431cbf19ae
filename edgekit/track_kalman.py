"""The tracker's motion model: a Kalman filter per track, every track a column of one state array.

A constant-velocity filter on the box centre (x and y apart) and a random-walk one on its width and
height, all scaled by the time between frames; the noise is in units of the track's size
``sqrt(w·h)`` (see "Motion" in :mod:`edgekit.track`'s docstring). :func:`initial` makes the
columns of new tracks, :func:`predict` moves every column to a frame's time and :func:`correct`
updates matched columns with their detections' boxes: vectorised over tracks, pure numpy.
"""

from __future__ import annotations

import numpy as np

__all__ = ["correct", "initial", "predict"]

# The motion model, in track sizes (sqrt(w·h)) and seconds.
_MEASURE_STD = 0.08  # detector jitter of a box centre
_SPEED_STD = 1.5  # speed of a new track (a brisk walk is ~1.7 sizes/s)
_ACCEL_STD = 1.5  # change of speed per second
_SIZE_MEASURE_STD = 0.1  # jitter of width and height (a fraction of them)
_SIZE_DRIFT_STD = 0.3  # change of width and height per second (a fraction of them)

# Rows of the Tracker's state, one column per live track, as of its last match: per axis (x then
# y) the centre, its speed, the variance of the centre, their covariance, the variance of the
# speed; width and height and their variances; the time of the last match; class id, confirmed,
# stationary (copies of the _Live's, for the vectorised steps).
_POS, _VEL, _P00, _P01, _P11, _WH, _PWH = (slice(k, k + 2) for k in range(0, 14, 2))
_TIME, _CLASS, _CONFIRMED, _STATIONARY = 14, 15, 16, 17
_ROWS = 18


def predict(s: np.ndarray, t: float) -> np.ndarray:
    """Every track's state ``s`` (rows as above) predicted to time ``t`` (a stationary track's
    speed is 0: it stays in place, as uncertain as any other so that it can drive off)."""
    dt = np.maximum(t - s[_TIME], 0.0)
    dt2 = dt * dt
    q = _ACCEL_STD ** 2 * s[10] * s[11]
    p = s.copy()
    p[_POS] += s[_VEL] * dt
    p[_P00] += 2 * dt * s[_P01] + dt2 * s[_P11] + q * dt2 * dt / 3
    p[_P01] += dt * s[_P11] + q * dt2 / 2
    p[_P11] += q * dt
    p[_PWH] += _SIZE_DRIFT_STD ** 2 * s[_WH] ** 2 * dt
    return p


def correct(p: np.ndarray, z: np.ndarray, t: float) -> None:
    """Kalman-update, in place, the predicted states ``p`` (k columns) with the boxes ``z`` (4, k:
    centre x, centre y, width, height) matched to them at time ``t``."""
    k = p.shape[1]
    innovation = z[0:2] - p[_POS]
    # Rows 0-3 are centre and speed, rows 4-7 the centre's variance and the covariance (x, y
    # each): as (2, 2, k) views one operation does both gains, both updates.
    gains = p[4:8].reshape(2, 2, k) / (p[_P00] + _MEASURE_STD ** 2 * p[10] * p[11])
    p[0:4].reshape(2, 2, k)[...] += gains * innovation
    p[_P11] -= gains[1] * p[_P01]
    p[4:8].reshape(2, 2, k)[...] *= 1.0 - gains[0]
    gain = p[_PWH] / (p[_PWH] + _SIZE_MEASURE_STD ** 2 * p[_WH] ** 2)
    p[_WH] += gain * (z[2:4] - p[_WH])
    p[_PWH] *= 1.0 - gain
    p[_TIME] = t


def initial(z: np.ndarray, t: float) -> np.ndarray:
    """The states (rows as above, one column per box) of new tracks first seen at time ``t`` with
    the boxes ``z`` (4, k: centre x, centre y, width, height); at rest, with a new track's speed
    uncertainty; the bookkeeping rows (class id, confirmed, stationary) are 0."""
    area = z[2] * z[3]
    s = np.zeros((_ROWS, z.shape[1]))
    s[_POS] = z[0:2]
    s[_P00] = _MEASURE_STD ** 2 * area
    s[_P11] = _SPEED_STD ** 2 * area
    s[_WH] = z[2:4]
    s[_PWH] = _SIZE_MEASURE_STD ** 2 * z[2:4] ** 2
    s[_TIME] = t
    return s
