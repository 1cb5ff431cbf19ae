"""The value that flows from a source through the runner: one frame.

A frame carries either decoded pixels (video, cameras, streams: an RGB ``HxWx3`` uint8 array, no PIL
round trip) or the path of an image file that the decode stage reads (with JPEG draft decoding at
the model's input size), plus where it came from and when.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Frame"]


@dataclass(frozen=True)
class Frame:
    """One frame of one source.

    Attributes:
        source: the source's name (a path, URL or device), as results and messages show it.
        index: 0-based position in the source (for a file source, the n-th image; for video, the
            n-th decoded frame, counting frames that sampling skipped).
        timestamp: seconds — the stream's presentation time for files and videos (0 for still
            images), the wall-clock capture time (``time.time()``) for live sources.
        captured: ``time.monotonic()`` when the frame was read; latency is measured from here.
        pixels: RGB uint8 ``HxWx3`` array, or None when ``path`` is to be decoded.
        path: an image file to decode, or None.
        problem: why this item cannot be processed (an unreadable argument, a decode failure): the
            runner reports it, counts it and goes on.
        version: for a file, ``(mtime_ns, size)`` when it was listed, so that a sink re-reading it
            (to draw on the full-size original) can tell whether it was rewritten since.
    """

    source: str
    index: int
    timestamp: float
    captured: float
    pixels: Any = None
    path: str | None = None
    problem: str | None = None
    version: tuple[int, int] | None = None
