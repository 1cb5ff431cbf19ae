"""Live sources: RTSP, HTTP(S) MJPEG streams and snapshot URLs, V4L2 cameras and the Pi camera.

Every live source reads on its own thread and keeps only the newest frame: ``frames()`` hands out
the latest one, and a frame replaced before it was taken is counted in ``dropped``. A stream that
fails or ends (server restarted, network cut, camera unplugged) is reopened with exponential
backoff (0.5 s doubling to 30 s); the source never raises out of ``frames()`` for it. Each outage is
reported once: ``status`` turns ``"down"`` (with ``reason``) and ``on_status(name, "down", reason)``
is called; when frames flow again, ``"up"`` (also on the first connection). A source whose
frames cannot be used (``LiveSource.BAD_FRAMES_DOWN`` in a row over ``BAD_FRAMES_S`` seconds: a
camera sending noise, or its login page) is down too, until a good one comes. ``on_status`` is an
optional attribute: the runner sets it (after construction, before ``frames()``) to publish the
state; it runs on the reading thread (or, when frames decide it, the one taking them), so it must
return quickly. ``close()`` makes ``frames()`` return at once; the reading thread ends after its
current read (HTTP: at once; PyAV: within ``read_timeout``).

``Frame.timestamp`` is the wall-clock capture time (``time.time()``), ``Frame.captured`` the
monotonic one and ``Frame.index`` counts frames captured since the source started (dropped ones
included). RTSP and V4L2 need PyAV (``edgekit[video]``); HTTP needs nothing beyond Pillow (with PyAV
installed, its JPEGs are decoded by FFmpeg, at a third of the CPU: see :class:`ImageDecoder`).
"""

from __future__ import annotations

from typing import Any, Iterator

from ..errors import ConfigError
from .camera_image import CAMERA_FORMATS, ImageDecoder, jpeg_size
from .httpcam import HTTP_OPTIONS, HttpStream, default_max_frame_bytes, http_status_reason
from .live import LiveSource, StatusCallback, redact
from .multipart import MAX_PART_BYTES, read_multipart
from .video import import_av

# LiveSource and redact live in live.py, HttpStream in httpcam.py, the multipart reader in
# multipart.py and the picture decoder in camera_image.py: all stay importable from here.
__all__ = ["StatusCallback", "LiveSource", "AvStream", "HttpStream", "PiCamera", "ImageDecoder", "read_multipart",
           "redact", "jpeg_size", "default_max_frame_bytes", "http_status_reason", "HTTP_OPTIONS",
           "MAX_PART_BYTES", "CAMERA_FORMATS"]


class AvStream(LiveSource):
    """An RTSP/RTSPS stream or a V4L2 camera, decoded by PyAV.

    Args:
        url: ``rtsp://`` or ``rtsps://`` URL (a ``#transport=udp`` fragment selects UDP from the
            command line; it is not sent to the server), or a ``/dev/videoN`` device.
        transport: RTSP transport, ``"tcp"`` (default: no smeared frames on lossy links) or ``"udp"``.
        open_timeout, read_timeout: seconds before opening, or waiting for the next packet, fails.
        options: more FFmpeg options (e.g. ``{"video_size": "1280x720", "input_format": "mjpeg"}``
            for V4L2).
        decode_threads: FFmpeg decoding threads (None: FFmpeg's choice; slice threads only, which
            add no latency).
        on_status, backoff, max_backoff: see :class:`LiveSource`.

    Raises:
        ConfigError: PyAV (the ``video`` extra) is not installed, or the transport is unknown.
    """

    def __init__(self, url: str, *, transport: str | None = None, open_timeout: float = 10.0,
                 read_timeout: float = 10.0, options: dict[str, str] | None = None,
                 decode_threads: int | None = None, **live: Any) -> None:
        self.url, _, fragment = url.partition("#")
        fragment_options = dict(p.partition("=")[::2] for p in fragment.split("&") if p)
        transport = transport or fragment_options.get("transport", "tcp")
        if transport not in ("tcp", "udp"):
            raise ConfigError(f"RTSP transport must be 'tcp' or 'udp', found {transport!r}")
        self.device = self.url.startswith("/dev/")
        self._av = import_av("reading V4L2 cameras" if self.device else "reading RTSP streams")
        self.transport = None if self.device else transport
        self.timeouts = (open_timeout, read_timeout)
        self.options = dict(options or {})
        if not self.device:
            self.options.setdefault("rtsp_transport", transport)
        self.decode_threads = decode_threads
        super().__init__(redact(self.url), **live)

    def _capture(self) -> Iterator[Any]:
        av = self._av
        try:
            container = av.open(self.url, mode="r", format="v4l2" if self.device else None, options=self.options,
                                timeout=self.timeouts)
        except av.error.ExitError:  # PyAV's timeout interrupts FFmpeg, which reports "Immediate exit requested"
            raise TimeoutError(f"no answer within the {self.timeouts[0]:g} s open timeout") from None
        try:
            yield from self._decode(container)
        except av.error.ExitError:
            raise TimeoutError(f"no data within the {self.timeouts[1]:g} s read timeout") from None

    def _decode(self, container: Any) -> Iterator[Any]:
        with container:
            if not container.streams.video:
                raise ConfigError("the stream has no video track")
            stream = container.streams.video[0]
            stream.thread_type = "SLICE"  # frame threads would hold frames back: latency
            if self.decode_threads is not None:
                stream.thread_count = self.decode_threads
            for frame in container.decode(stream):
                yield frame  # stays YUV: see LiveSource
                if self._stop.is_set():
                    return


class PiCamera(LiveSource):
    """The Raspberry Pi camera through picamera2 (Pi OS: ``sudo apt install python3-picamera2`` and a
    venv made with ``--system-site-packages``). Not exercised by edgekit's tests: no camera here.

    Args:
        spec: ``"picamera2"`` or ``"picamera2:N"`` for camera N.
        size: (width, height) of the frames.
        on_status, backoff, max_backoff: see :class:`LiveSource`.

    Raises:
        ConfigError: picamera2 cannot be imported.
    """

    def __init__(self, spec: str = "picamera2", *, size: tuple[int, int] = (1280, 720), **live: Any) -> None:
        try:
            import picamera2  # noqa: F401 - only whether it imports
        except ImportError as exc:
            raise ConfigError(f"picamera2 cannot be imported ({exc}): on Raspberry Pi OS, "
                              "sudo apt install python3-picamera2 and make the venv with --system-site-packages"
                              ) from None
        number = spec.partition(":")[2]
        if number and not number.isdigit():
            raise ConfigError(f"expected picamera2 or picamera2:N (a camera number), found {spec!r}")
        self.camera_number = int(number or 0)
        self.size = tuple(size)
        super().__init__(spec, **live)

    def _capture(self) -> Iterator[Any]:
        from picamera2 import Picamera2

        camera = Picamera2(self.camera_number)
        try:
            # libcamera names formats by word order: "BGR888" is [R, G, B] bytes in memory.
            camera.configure(camera.create_video_configuration(main={"size": self.size, "format": "BGR888"}))
            camera.start()
            while not self._stop.is_set():
                yield camera.capture_array("main")
        finally:
            camera.close()
