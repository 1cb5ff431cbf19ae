"""Video files (MP4, MKV, AVI, MOV, WebM and raw H.264/H.265/MJPEG streams) as a source, decoded with
PyAV (the ``video`` extra).

PyAV was chosen by measurement over opencv-python-headless and an ``ffmpeg`` subprocess (decode
speed, RTSP behaviour, wheels; the numbers are in the commit that added this module): it decodes
as fast as OpenCV, at about half the CPU of an ``ffmpeg`` pipe, hands out each frame's ``pts`` and
``time_base``, raises typed errors with a reason, and has aarch64 wheels for CPython 3.9-3.13+.
It is imported only when a video source is opened, so ``import edgekit`` stays light.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

from ..errors import ConfigError
from ..frames import Frame

__all__ = ["VIDEO_EXTENSIONS", "VideoFile", "import_av", "upright"]

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mkv", ".avi", ".mov", ".webm", ".mjpeg", ".mjpg", ".h264",
                              ".264", ".h265", ".265", ".hevc",
                              # what NVRs, camcorders and HLS export: MPEG transport and program streams,
                              # and the older containers
                              ".ts", ".m2ts", ".mts", ".mpg", ".mpeg", ".flv", ".wmv", ".asf", ".3gp", ".ogv", ".nut"})

# A file whose packets keep failing to decode is not worth a problem frame per packet for ever.
MAX_CONSECUTIVE_ERRORS = 25


def import_av(what: str) -> Any:
    """PyAV, or a one-line :class:`ConfigError` naming the extra that provides it."""
    try:
        import av
    except ImportError as exc:
        raise ConfigError(f"{what} needs PyAV, which is not installed here ({exc}): pip install 'edgekit[video]'"
                          ) from None
    return av


def av_reason(exc: BaseException) -> str:
    """A one-line reason for a PyAV/OS error, without FFmpeg's internal error numbers."""
    message = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(message).split())


class VideoFile:
    """Every frame of one video file, in decoding order, once.

    ``Frame.pixels`` is the decoder's frame (a PyAV ``VideoFrame``, YUV as decoded: the runner
    scales it to the model's input in one swscale call; ``Frame.rgb()``/``Frame.grey()`` convert
    it on demand), ``Frame.index`` the 0-based number of the decoded frame and
    ``Frame.timestamp`` its presentation time in seconds (``pts × time_base``, from the start of the
    stream); the runner samples ``--fps`` from those timestamps. A file that cannot be opened gives a
    single frame with a ``problem``; a packet that cannot be decoded gives a frame with a ``problem``
    and decoding goes on (after :data:`MAX_CONSECUTIVE_ERRORS` in a row it stops with a last one).

    Attributes (set once ``frames()`` has opened the file): ``fps`` (the stream's average frame
    rate, or None when the container does not say), ``frame_count`` (from the container's header,
    or None), ``duration`` (seconds, or None), ``width``, ``height``, ``codec``.

    Args:
        path: the video file.
        decode_threads: FFmpeg decoding threads; None lets FFmpeg choose (frame and slice threads,
            as many as cores), 1 keeps decoding on the reading thread (a core left to the model).

    Raises:
        ConfigError: PyAV (the ``video`` extra) is not installed.
    """

    live = False
    media_clock = True  # timestamps are the media's own seconds: forced live, it plays at that pace

    def __init__(self, path: str, *, decode_threads: int | None = None) -> None:
        self._av = import_av("reading video files")
        self.path = str(path)
        self.name = self.path
        self.decode_threads = decode_threads
        self.fps: float | None = None
        self.frame_count: int | None = None
        self.duration: float | None = None
        self.width = self.height = 0
        self.codec = ""
        self._start: Any = None  # the first frame's presentation time (an exact Fraction)
        self._closed = False

    def frames(self) -> Iterator[Frame]:
        av = self._av
        try:
            container = av.open(self.path, mode="r")
        except (av.error.FFmpegError, OSError) as exc:
            yield self._problem(0, f"cannot open the video: {av_reason(exc)}")
            return
        with container:
            if not container.streams.video:
                yield self._problem(0, "the file has no video stream")
                return
            stream = container.streams.video[0]
            self._describe(stream, container)
            if self.decode_threads is None:
                stream.thread_type = "AUTO"
            else:
                stream.thread_count = self.decode_threads
            yield from self._decode(av, container, stream)

    def close(self) -> None:
        """Stop: ``frames()`` returns before its next frame."""
        self._closed = True

    def _describe(self, stream: Any, container: Any) -> None:
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        self.frame_count = int(stream.frames) or None
        if stream.duration is not None and stream.time_base is not None:
            self.duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            self.duration = container.duration / 1_000_000  # AV_TIME_BASE
        self.width, self.height = stream.codec_context.width, stream.codec_context.height
        self.codec = stream.codec_context.name
        self._start = None  # seconds count from the first frame (see _seconds)

    def _decode(self, av: Any, container: Any, stream: Any) -> Iterator[Frame]:
        index, errors = 0, 0
        packets = container.demux(stream)
        while not self._closed:
            try:
                packet = next(packets)
                decoded = packet.decode()
            except StopIteration:
                return
            except av.error.FFmpegError as exc:
                errors += 1
                yield self._problem(index, f"frame {index}: cannot decode: {av_reason(exc)}")
                index += 1
                if errors >= MAX_CONSECUTIVE_ERRORS:
                    yield self._problem(index, f"gave up after {errors} undecodable packets in a row")
                    return
                continue
            for frame in decoded:
                if self._closed:
                    return
                errors = 0
                turns = _quarter_turns(frame)
                yield Frame(source=self.name, index=index, timestamp=self._seconds(frame, index),
                            captured=time.monotonic(), pixels=upright(frame, turns) if turns else frame)
                index += 1

    def _seconds(self, frame: Any, index: int) -> float:
        """Presentation time from the first frame's (an MPEG-TS export's clock starts at 1.4 s or so,
        an ASF's at its preroll: the first frame is 0 here, as a player shows it); raw elementary
        streams without timestamps count frames at ``fps``."""
        if frame.pts is not None and frame.time_base is not None:
            t = frame.pts * frame.time_base
            if self._start is None:
                self._start = t
            return max(0.0, float(t - self._start))
        return index / self.fps if self.fps else 0.0

    def _problem(self, index: int, problem: str) -> Frame:
        return Frame(source=self.name, index=index, timestamp=0.0, captured=time.monotonic(), problem=problem)


def _quarter_turns(frame: Any) -> int:
    """Counterclockwise quarter turns that make the decoded frame upright: its display matrix (a
    phone's portrait clip says 90 or -90), as FFmpeg's own player and ``ffmpeg`` apply it."""
    try:
        degrees = frame.rotation
    except (AttributeError, ValueError):  # an older PyAV, or a matrix that is not a rotation
        return 0
    return round((degrees or 0) / 90) % 4


def upright(frame: Any, turns: int) -> Any:
    """``frame`` turned ``turns`` quarter turns counterclockwise (what its display matrix asks).

    A yuv420p/yuvj420p frame stays a decoder frame: its three planes are turned (4.5 ms at 1080p,
    1.3 ms at 720p here), so the model's input is still one swscale call and motion still reads the Y plane.
    Any other format becomes an upright RGB array (the frame converted once)."""
    import numpy as np

    name = frame.format.name
    if name in ("yuv420p", "yuvj420p") and frame.width % 2 == 0 and frame.height % 2 == 0:
        import av

        planes = []
        for i, plane in enumerate(frame.planes):
            h = frame.height if i == 0 else frame.height // 2
            w = frame.width if i == 0 else frame.width // 2
            rows = np.frombuffer(plane, np.uint8)[:plane.line_size * h].reshape(h, plane.line_size)[:, :w]
            planes.append(np.rot90(rows, turns).ravel())
        width, height = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
        out = av.VideoFrame.from_ndarray(np.concatenate(planes).reshape(height * 3 // 2, width), format=name)
        out.pts = frame.pts
        if frame.time_base is not None:
            out.time_base = frame.time_base
        return out
    return np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24"), turns))
