"""The values that flow through the runner: one :class:`Frame` from a source, and the
:class:`FrameResult` that stages enrich and sinks consume.

A frame carries either decoded pixels or the path of an image file that the decode stage reads
(with JPEG draft decoding at the model's input size), plus where it came from and when. Pixels
are an RGB ``HxWx3`` uint8 array (HTTP snapshots, the Pi camera) or the decoder's own frame (a
PyAV ``VideoFrame`` from video files, RTSP, V4L2 and MJPEG, still YUV): the model's input is made
from it in one swscale call, and full-size RGB (:meth:`Frame.rgb`, :meth:`FrameResult.full_image`)
or luma (:meth:`Frame.grey`) only when asked, once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

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
        pixels: RGB uint8 ``HxWx3`` array, or the decoder's frame (PyAV ``VideoFrame``), or None
            when ``path`` is to be decoded (or the runner did not keep them: ``keep_images``).
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
    _made: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    # sinks run in threads of their own: two converting one decoder frame at once share its
    # swscale context (PyAV runs it without the GIL) and hang or crash; one converts, others wait
    _lock: Any = field(default_factory=threading.RLock, init=False, repr=False, compare=False)

    def rgb(self) -> np.ndarray:
        """The full-size picture as an RGB uint8 ``HxWx3`` array: ``pixels`` itself, or the decoder's
        frame converted once (cached: later calls, and :meth:`FrameResult.full_image`, reuse it).

        Raises:
            ImageError: the frame carries no pixels (an image file, a failed frame, or pixels the
                runner did not keep), or swscale cannot convert them.
        """
        import numpy as np

        with self._lock:
            if "rgb" not in self._made:
                pixels = self._pixels("rgb")
                self._made["rgb"] = pixels if isinstance(pixels, np.ndarray) else self._convert(pixels, "rgb24")
            return self._made["rgb"]

    def grey(self) -> np.ndarray:
        """Luma as a 2-D uint8 ``HxW`` array (read-only). For the decoder's planar YUV (yuv420p,
        yuvj420p, nv12 …) and packed YUYV/UYVY it is a view of the Y plane, no copy (its stride is
        the frame's line size; limited-range YUV gives Y in 16..235); other formats are converted
        once by swscale, RGB arrays by the BT.601 weights (cached).

        Raises:
            ImageError: as :meth:`rgb`.
        """
        import numpy as np

        with self._lock:
            if "grey" not in self._made:
                pixels = self._pixels("grey")
                if isinstance(pixels, np.ndarray):
                    grey = _luma(pixels)
                else:
                    grey = _y_plane(pixels)
                    if grey is None:
                        grey = self._convert(pixels, "gray")
                grey.flags.writeable = False  # a view into the decoder's picture: other sinks draw from it
                self._made["grey"] = grey
            return self._made["grey"]

    def _pixels(self, what: str) -> Any:
        if self.pixels is None:
            from .errors import ImageError

            if self.path is not None:
                raise ImageError(f"{self.path}: an image file's frame carries no decoded pixels for {what}(); "
                                 "use FrameResult.full_image() or edgekit.image.load_image(path)")
            raise ImageError(f"{self.source} frame {self.index}: no pixels for {what}() (the frame failed, or the "
                             "runner did not keep them: run with RunOptions(keep_images=True))")
        return self.pixels

    def _convert(self, decoded: Any, fmt: str) -> np.ndarray:
        import av

        from .errors import ImageError

        try:
            return decoded.to_ndarray(format=fmt)
        except (av.error.FFmpegError, ValueError, MemoryError) as exc:
            raise ImageError(f"{self.source} frame {self.index}: cannot convert the decoded "
                             f"{decoded.format.name} frame to {fmt} ({exc})") from None


# Pixel formats whose first plane is 8-bit luma, one byte a pixel (planar and semi-planar YUV, grey).
_LUMA_PLANE = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "yuvj440p",
                         "yuv411p", "yuv410p", "nv12", "nv21", "nv16", "gray"})
_PACKED_LUMA = {"yuyv422": 0, "yvyu422": 0, "uyvy422": 1}  # packed 4:2:2: Y in every other byte, from this one


def _y_plane(frame: Any) -> np.ndarray | None:
    """A stride-aware view of ``frame``'s luma, or None when its format has no 8-bit Y plane."""
    import numpy as np

    name = frame.format.name
    if name not in _LUMA_PLANE and name not in _PACKED_LUMA:
        return None
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8)[:plane.line_size * frame.height].reshape(frame.height, plane.line_size)
    if name in _LUMA_PLANE:
        return rows[:, :frame.width]
    first = _PACKED_LUMA[name]
    return rows[:, first:first + 2 * frame.width:2]


def _rewritten(frame: Frame) -> bool:
    """Whether the frame's file is gone or was rewritten since it was listed (as
    ``sources.files.file_changed``, which imports this module: the check lives here too)."""
    import os

    if frame.version is None:
        return False
    try:
        st = os.stat(frame.path)
    except OSError:
        return True
    return (st.st_mtime_ns, st.st_size) != frame.version


def _luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB uint8 array (what a JPEG's Y is), in 8.8 fixed point."""
    import numpy as np

    r, g, b = (rgb[..., i].astype(np.uint16) for i in range(3))
    return ((r * 77 + g * 150 + b * 29 + 128) >> 8).astype(np.uint8)


@dataclass(frozen=True)
class FrameResult:
    """What the runner hands to stages and sinks for one frame.

    ``result`` is None and ``error`` set when the frame could not be processed (an unreadable
    image: the run goes on). ``image`` is the PIL image the decode stage made when
    ``RunOptions.keep_images`` is on (image files: possibly a reduced-size draft; arrays), else
    None; a decoder's frame makes none — sinks that need the full-size picture (annotation,
    snapshots, previews) call :meth:`full_image`, which converts only the frames they use.
    ``timings`` are per-stage milliseconds: decode, preprocess, wait, invoke, outputs.
    ``source`` is the name of the source the frame came from (as in ``Runner.stats``; for image
    files and watched folders ``frame.source`` is the file, this is the folder or arguments):
    per-source statistics, tracking and "only on change" key on it.

    Stages enrich it (``dataclasses.replace``), in the order the runner composes them:
    ``tracks`` (:class:`edgekit.track.TrackUpdate`, set by tracking), ``zones``
    (:class:`edgekit.zones.ZoneState`), ``snapshots`` (:class:`edgekit.snapshots.Snapshot` values
    made at this frame), ``events`` (:class:`edgekit.events.Event` values: an empty tuple when
    nothing happened; None when the run does not build events).

    ``motion``: the frame's :class:`edgekit.motion.Motion` when the run gates by motion
    (``RunOptions.motion``), else None; ``gated``: nothing moved, so the frame was not inferred
    and ``result`` repeats the last inferred frame's detections (at this frame's index and time).

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
    motion: Any = None
    gated: bool = False

    def __post_init__(self) -> None:
        if not self.source:  # made by hand: a camera is its own scene, image files one together
            object.__setattr__(self, "source", self.frame.source if self.frame.path is None else "files")

    def has_full_image(self) -> bool:
        """Whether :meth:`full_image` has a picture to give (an image file, or pixels kept), without
        converting anything."""
        return self.frame.path is not None or self.frame.pixels is not None or self.image is not None

    def full_image(self) -> Any:
        """The frame at full size as an RGB PIL image, to draw on or encode: an image file is read
        again (it was decoded at reduced size for the model), a decoder's frame converted once
        (cached on the frame: every sink shares it — draw on a copy).

        Raises:
            ConfigError: the pixels were not kept (run with ``RunOptions(keep_images=True)``).
            ImageError: the file is gone, unreadable or was rewritten since it was detected (a
                camera's ``latest.jpg``: the boxes belong to the old picture); the frame cannot be
                converted.
        """
        import numpy as np
        from PIL import Image

        from .errors import ConfigError, ImageError

        frame = self.frame
        if frame.path is not None:
            from .image import load_image

            if _rewritten(frame):
                raise ImageError(f"{frame.path}: it was rewritten since it was detected")
            return load_image(frame.path).image
        if frame.pixels is None:
            if self.image is not None:
                return self.image
            raise ConfigError("the full-size picture needs RunOptions(keep_images=True)")
        with frame._lock:
            if "image" not in frame._made:
                if self.image is not None:
                    frame._made["image"] = self.image
                else:
                    had_rgb = "rgb" in frame._made
                    frame._made["image"] = Image.fromarray(frame.rgb(), "RGB")  # a copy
                    if not had_rgb and not isinstance(frame.pixels, np.ndarray):
                        del frame._made["rgb"]  # converted for the picture alone: keep one copy, not two
            return frame._made["image"]
