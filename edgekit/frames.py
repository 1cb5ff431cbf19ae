"""The values that flow through the runner: one :class:`Frame` from a source, and the
:class:`FrameResult` that stages enrich and sinks consume.

A frame carries either decoded pixels (video, cameras, streams: an RGB ``HxWx3`` uint8 array, no PIL
round trip) or the path of an image file that the decode stage reads (with JPEG draft decoding at
the model's input size), plus where it came from and when.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import EdgekitError
    from .results import DetectionResult

__all__ = ["Frame", "FrameResult"]


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


@dataclass(frozen=True)
class FrameResult:
    """What the runner hands to stages and sinks for one frame.

    ``result`` is None and ``error`` set when the frame could not be processed (an unreadable
    image: the run goes on). ``image`` is the decoded frame as a PIL image when
    ``RunOptions.keep_images`` is on (for snapshots and annotation; for image files it may be a
    reduced-size draft — ``frame.path`` has the original), else None.
    ``timings`` are per-stage milliseconds: decode, preprocess, wait, invoke, outputs.
    ``source`` is the name of the source the frame came from (as in ``Runner.stats``; for image
    files and watched folders ``frame.source`` is the file, this is the folder or arguments):
    per-source statistics, tracking and "only on change" key on it.

    Stages enrich it (``dataclasses.replace``), in the order the runner composes them:
    ``tracks`` (:class:`edgekit.track.TrackUpdate`, set by tracking), ``zones``
    (:class:`edgekit.zones.ZoneState`), ``snapshots`` (:class:`edgekit.snapshots.Snapshot` values
    made at this frame), ``events`` (:class:`edgekit.events.Event` values: an empty tuple when
    nothing happened; None when the run does not build events).

    ``end_of_source``: not a frame — the source named ``source`` has ended (its file is done, or
    the run is stopping); ``result`` and ``error`` are None. Stages that keep per-source state end
    it here (tracks end: their ``end`` events ride on this value); sinks ignore it unless it
    carries events.
    """

    frame: Frame
    result: DetectionResult | None
    error: EdgekitError | None = None
    image: Any = None
    timings: dict[str, float] = field(default_factory=dict)
    source: str = ""
    tracks: Any = None
    zones: Any = None
    snapshots: tuple[Any, ...] | None = None
    events: tuple[Any, ...] | None = None
    end_of_source: bool = False

    def __post_init__(self) -> None:
        if not self.source:  # made by hand: a camera is its own scene, image files one together
            object.__setattr__(self, "source", self.frame.source if self.frame.path is None else "files")
