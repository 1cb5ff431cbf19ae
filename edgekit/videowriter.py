"""Write RGB frames, each with its timestamp, to a video file with PyAV (the ``video`` extra).

The path's extension decides the container; the codec is the first of the container's list whose
encoder this PyAV's FFmpeg has (``av.codecs_available``):

==================  ====================================================================
``.mp4 .m4v .mov``  H.264 (libx264, libopenh264), else MPEG-4 Part 2 (mpeg4)
``.mkv``            H.264, else MPEG-4 Part 2, else MJPEG
``.avi``            MJPEG, else MPEG-4 Part 2
==================  ====================================================================

PyAV's wheels have libx264, so ``.mp4`` is H.264 wherever they install. Hardware encoders
(``h264_v4l2m2m`` …) are not tried: whether they open depends on the device, not the build.

Timing: each frame's presentation time is its timestamp (from the first frame's), on a clock of
``1/rate`` ticks, so frames that ``--fps`` sampled out or a live source dropped leave their real
gap instead of speeding the video up. Frames are padded to even sizes (4:2:0 needs them; the edge
pixels are repeated) and a frame whose size differs from the first is letterboxed into it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from .errors import ConfigError
from .sources.video import av_reason, import_av

__all__ = ["CONTAINERS", "VideoWriter", "check_output", "choose_codec"]

#: extension → (FFmpeg container format, encoders in order of preference)
CONTAINERS: dict[str, tuple[str, tuple[str, ...]]] = {
    ".mp4": ("mp4", ("libx264", "libopenh264", "mpeg4")),
    ".m4v": ("mp4", ("libx264", "libopenh264", "mpeg4")),
    ".mov": ("mov", ("libx264", "libopenh264", "mpeg4")),
    ".mkv": ("matroska", ("libx264", "libopenh264", "mpeg4", "mjpeg")),
    ".avi": ("avi", ("mjpeg", "mpeg4")),
}
_CODEC_NAMES = {"libx264": "H.264", "libopenh264": "H.264", "mpeg4": "MPEG-4 Part 2", "mjpeg": "MJPEG"}
_QP2LAMBDA = 118  # FFmpeg's FF_QP2LAMBDA: global_quality is a quantiser in these units
DEFAULT_FPS = 30.0


def check_output(path: str) -> None:
    """Raise :class:`ConfigError` unless a video file can be created at ``path`` (a known
    extension, an existing folder we may write in, not a folder itself)."""
    if os.path.isdir(path):
        raise ConfigError(f"cannot write the video {path}: it is a folder; give a file name like "
                          f"{os.path.join(path, 'out.mp4')}")
    ext = os.path.splitext(path)[1].lower()
    if ext not in CONTAINERS:
        raise ConfigError(f"cannot write the video {path}: expected a name ending in {', '.join(CONTAINERS)}, "
                          f"found {ext or 'no extension'}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        what = "is not a folder" if os.path.exists(folder) else "does not exist"
        raise ConfigError(f"cannot write the video {path}: {folder} {what}; create the folder or choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write the video {path}: no permission to write in {folder}")


def choose_codec(path: str, available: Iterable[str] | None = None) -> tuple[str, str]:
    """``(container format, encoder)`` for ``path``'s extension: the first encoder of
    :data:`CONTAINERS` that ``available`` (default ``av.codecs_available``) has.

    Raises:
        ConfigError: unknown extension, PyAV missing, or none of the container's encoders here.
    """
    ext = os.path.splitext(path)[1].lower()
    if ext not in CONTAINERS:
        check_output(path)  # says which extensions are known
    fmt, candidates = CONTAINERS[ext]
    av = import_av("writing video files")
    have = set(av.codecs_available if available is None else available)
    for name in candidates:
        if name in have and _is_encoder(av, name):
            return fmt, name
    raise ConfigError(f"cannot write the video {path}: this PyAV's FFmpeg has none of the encoders "
                      f"{', '.join(candidates)} for {ext}; try another of {', '.join(CONTAINERS)}")


def _is_encoder(av: Any, name: str) -> bool:
    try:
        av.Codec(name, "w")
    except ValueError:  # av.codec.codec.UnknownCodecError: unknown, or only a decoder
        return False
    return True


def _rate(fps: float | None) -> Fraction:
    """The clock rate: NTSC-style rates stay exact (29.97 → 30000/1001); MPEG-4 Part 2 caps the
    time base's denominator at 65535."""
    rate = Fraction(fps if fps and fps > 0 else DEFAULT_FPS).limit_denominator(1001)
    return rate if rate.numerator <= 65535 else Fraction(min(round(float(rate)), 65535))


class VideoWriter:
    """One video file; :meth:`write` appends a frame at its timestamp, :meth:`close` finishes the file.

    The file is created at the first frame (its size is the first frame's, rounded up to even).

    Args:
        path: the output file; its extension picks the container (see the module).
        fps: the clock the timestamps are rounded to (the source's frame rate); None: 30.
        available: encoder names to choose from (default: ``av.codecs_available``).

    Raises:
        ConfigError: at once for a path that cannot work (:func:`check_output`, :func:`choose_codec`);
            from ``write``/``close`` when FFmpeg cannot write (disk full, …).
    """

    def __init__(self, path: str, fps: float | None = None, available: Iterable[str] | None = None) -> None:
        check_output(path)
        self.path = str(path)
        self.format, self.codec = choose_codec(self.path, available)
        self.rate = _rate(fps)
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self._av = import_av("writing video files")
        self._container: Any = None
        self._stream: Any = None
        self._start: float | None = None
        self._last_pts = -1

    @property
    def description(self) -> str:
        """E.g. ``H.264 (libx264) in mp4, 30 fps``, and why when it is not the container's first choice."""
        name = _CODEC_NAMES.get(self.codec, self.codec)
        text = f"{name} ({self.codec}) in {self.format}, {float(self.rate):.4g} fps"
        preferred = CONTAINERS[os.path.splitext(self.path)[1].lower()][1][0]
        if self.codec != preferred:
            text += f" (this PyAV's FFmpeg has no {preferred} encoder)"
        return text

    def write(self, pixels: Any, timestamp: float) -> None:
        """Append an RGB uint8 ``HxWx3`` frame shown from ``timestamp`` (seconds) on."""
        av = self._av
        try:
            if self._container is None:
                self._open(pixels.shape[1], pixels.shape[0])
            frame = av.VideoFrame.from_ndarray(_fit(pixels, self.size), format="rgb24")
            frame.pts, frame.time_base = self._pts(timestamp), 1 / self.rate
            self._container.mux(self._stream.encode(frame))
        except (av.error.FFmpegError, OSError) as exc:
            raise ConfigError(f"cannot write the video {self.path}: {av_reason(exc)}") from None
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (its index), so that it plays. Idempotent."""
        container, self._container = self._container, None
        if container is None:
            return
        av = self._av
        try:
            try:
                container.mux(self._stream.encode(None))
            finally:
                container.close()
        except (av.error.FFmpegError, OSError) as exc:
            raise ConfigError(f"cannot finish the video {self.path}: {av_reason(exc)}") from None

    def _open(self, width: int, height: int) -> None:
        from .userdirs import create_private

        self.size = (width + width % 2, height + height % 2)
        # What the camera saw is as private as the rest of edgekit's state: 0600 whatever the umask
        # (FFmpeg truncates the file and keeps its mode).
        create_private(self.path)
        container = self._av.open(self.path, mode="w", format=self.format)
        try:
            stream = container.add_stream(self.codec, rate=self.rate, options=self._options())
            stream.width, stream.height = self.size
            # MJPEG wants full-range 4:2:0 (yuvj420p); the others plain yuv420p
            stream.pix_fmt = "yuvj420p" if self.codec == "mjpeg" else "yuv420p"
            if self.codec in ("mpeg4", "mjpeg"):  # a fixed quantiser: their default bit rate (200 kb/s) smears
                stream.codec_context.qscale = True
                stream.codec_context.global_quality = 4 * _QP2LAMBDA
            container.start_encoding()  # creates the file and writes its header: fail here, not at close
        except BaseException:
            with contextlib.suppress(self._av.error.FFmpegError, OSError):  # the error that matters is the first
                container.close()
            raise
        self._container, self._stream = container, stream

    def _options(self) -> dict[str, str]:
        if self.codec == "libx264":
            # no B-frames: the container's duration and index stay right with variable frame gaps
            return {"preset": "veryfast", "crf": "23", "bf": "0"}
        return {}

    def _pts(self, timestamp: float) -> int:
        """Ticks since the first frame; strictly increasing (still images all have timestamp 0).
        AVI has no timestamps, only a frame count, so a gap there is muxed as empty frames: it is
        shortened to one second (a stream outage or a day-old file must not write an hour of
        nothing, or fail)."""
        if self._start is None:
            self._start = timestamp
        pts = max(round((timestamp - self._start) * self.rate), self._last_pts + 1)
        longest = round(float(self.rate))
        if self.format == "avi" and self._last_pts >= 0 and pts - self._last_pts > longest:
            self._start += (pts - self._last_pts - longest) / float(self.rate)  # later frames keep their spacing
            pts = self._last_pts + longest
        self._last_pts = pts
        return pts


def _fit(pixels: Any, size: tuple[int, int] | None) -> Any:
    """``pixels`` at ``size``: padded by repeating the edge when that only makes it even,
    else scaled to fit and centred on black (a source whose size changed midway)."""
    import numpy as np

    width, height = size or (pixels.shape[1], pixels.shape[0])
    h, w = pixels.shape[:2]
    if (w, h) == (width, height):
        return np.ascontiguousarray(pixels)
    if (w + w % 2, h + h % 2) == (width, height):
        return np.pad(pixels, ((0, height - h), (0, width - w), (0, 0)), mode="edge")
    from PIL import Image

    scale = min(width / w, height / h)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    canvas = Image.new("RGB", (width, height))
    canvas.paste(Image.fromarray(pixels).resize(new, Image.BILINEAR),
                 ((width - new[0]) // 2, (height - new[1]) // 2))
    return np.asarray(canvas)
