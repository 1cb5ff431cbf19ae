"""Live sources: RTSP, HTTP(S) MJPEG streams and snapshot URLs, V4L2 cameras and the Pi camera.

Every live source reads on its own thread and keeps only the newest frame: ``frames()`` hands out
the latest one, and a frame replaced before it was taken is counted in ``dropped``. A stream that
fails or ends (server restarted, network cut, camera unplugged) is reopened with exponential
backoff (0.5 s doubling to 30 s); the source never raises out of ``frames()`` for it. Each outage is
reported once: ``status`` turns ``"down"`` (with ``reason``) and ``on_status(name, "down", reason)``
is called; when frames flow again, ``"up"`` (also on the first connection). ``on_status`` is an
optional attribute: the runner sets it (after construction, before ``frames()``) to publish the
state; it runs on the reading thread, so it must return quickly. ``close()`` makes ``frames()``
return at once; the reading thread ends after its current read (HTTP: at once; PyAV: within
``read_timeout``).

``Frame.timestamp`` is the wall-clock capture time (``time.time()``), ``Frame.captured`` the
monotonic one and ``Frame.index`` counts frames captured since the source started (dropped ones
included). RTSP and V4L2 need PyAV (``edgekit[video]``); HTTP needs nothing beyond Pillow (with PyAV
installed, its JPEGs are decoded by FFmpeg, at a third of the CPU: see :class:`ImageDecoder`).
"""

from __future__ import annotations

import base64
import http.client
import io
import logging
import math
import re
import socket
import ssl
import threading
import time
from typing import Any, Callable, Iterator
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError
from ..frames import Frame
from ..netreason import connect_reason
from .video import av_reason, import_av

__all__ = ["StatusCallback", "LiveSource", "AvStream", "HttpStream", "PiCamera", "ImageDecoder", "read_multipart",
           "redact", "jpeg_size", "default_max_frame_bytes",
           "http_status_reason"]

StatusCallback = Callable[[str, str, str], None]
"""``on_status(source_name, "up" | "down", reason)``."""

log = logging.getLogger(__name__)

# An MJPEG part larger than this is not a camera frame: refuse it rather than buffer it.
MAX_PART_BYTES = 32 * 1024 * 1024


def redact(url: str) -> str:
    """``url`` with the password in its user-info replaced by ``***`` (names appear in results)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not parseable ("rtsp://[::1"): hide whatever sits between "//user:" and "@"
        return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}"
    return parts._replace(netloc=netloc).geturl()


class LiveSource:
    """The reading thread, the newest-frame slot, reconnection and status shared by live kinds.

    Subclasses implement ``_capture()``: open the stream and yield frames as they come — pixels
    (RGB arrays or decoded video frames), a problem string for one bad frame, or anything their
    ``_convert()`` turns into pixels (JPEG bytes) — until it ends; raise (any exception) when it
    fails. The conversion happens in ``frames()``, on the consumer's thread, and only for the
    frames taken: a frame replaced by a newer one before it was taken costs nothing (at 30 fps
    into a model that takes 3 frames a second, nine in ten). Decoded video frames stay YUV: the
    runner scales them to the model's input in one swscale call.

    ``newest_only`` tells the runner that this source keeps only the newest frame itself, so the
    runner may take frames just in time for the model instead of preparing every one.
    """

    live = True
    newest_only = True
    #: True when captured items are bytes decoded only in ``frames()``: "up" then waits for a frame
    #: that decodes, and a run of frames that do not is an outage (a camera sending garbage)
    decoded_up = False
    #: this many unusable frames in a row, over at least ``BAD_FRAMES_S`` seconds, turn the source
    #: "down" (said once: a camera sending garbage is not "up"); the next good frame turns it "up"
    BAD_FRAMES_DOWN = 10
    BAD_FRAMES_S = 3.0

    def __init__(self, name: str, *, on_status: StatusCallback | None = None, backoff: float = 0.5,
                 max_backoff: float = 30.0) -> None:
        self.name = name
        self.on_status = on_status
        self.backoff, self.max_backoff = backoff, max_backoff
        self.status, self.reason = "connecting", ""
        self._status_lock = threading.RLock()  # the reading thread and frames() both set the status
        self._bad_run, self._bad_since = 0, 0.0  # unusable frames in a row, and when the run began
        self.captured_count = self.dropped = self.reconnects = 0
        self._latest: tuple[Any, int, float, float] | None = None  # (item, index, wall time, monotonic)
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def frames(self) -> Iterator[Frame]:
        """The newest frame each time one is available, until :meth:`close`."""
        self._start()
        while True:
            with self._changed:
                while self._latest is None and not self._stop.is_set():
                    self._changed.wait()
                if self._stop.is_set():
                    return
                (item, index, wall, now), self._latest = self._latest, None
            pixels, problem = self._pixels(item)
            self._judge(problem, item)
            yield Frame(source=self.name, index=index, timestamp=wall, captured=now, pixels=pixels, problem=problem)

    def _pixels(self, item: Any) -> tuple[Any, str | None]:
        if isinstance(item, str):
            return None, item
        try:
            converted = self._convert(item)
        except Exception as exc:  # one undecodable frame is a failed frame, not an outage
            return None, f"undecodable frame ({av_reason(exc)})"
        return (None, converted) if isinstance(converted, str) else (converted, None)

    def _judge(self, problem: str | None, item: Any) -> None:
        """Count a taken frame: a good one is "up", a long run of bad ones "down" (see BAD_FRAMES_DOWN)."""
        if problem is None:
            self._bad_run = 0
            if self.decoded_up:
                self._set_status("up", "")
            return
        now = time.monotonic()
        if self._bad_run == 0:
            self._bad_since = now
        self._bad_run += 1
        if self._bad_run >= self.BAD_FRAMES_DOWN and now - self._bad_since >= self.BAD_FRAMES_S:
            received = self._received(item)
            self._set_status("down", f"{self._bad_run} frames in a row over {now - self._bad_since:.0f} s were not "
                                     f"usable pictures ({f'received {received}; ' if received else ''}last: "
                                     f"{problem}); check that the URL gives the camera's pictures")

    def _received(self, item: Any) -> str:
        """What an unusable captured item was, for the outage line ("" when nothing more to say)."""
        return ""

    def _convert(self, item: Any) -> Any:
        """A captured item to pixels (or a problem string); pixels pass as they are."""
        return item

    def close(self) -> None:
        """Stop reading: ``frames()`` returns at once, the reading thread soon after."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self._interrupt()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._read_forever, name=f"edgekit-source {self.name}",
                                            daemon=True)
            self._thread.start()

    def _read_forever(self) -> None:
        delay = self.backoff
        while not self._stop.is_set():
            reason = "the stream ended"
            try:
                for item in self._capture():
                    if self._stop.is_set():
                        return
                    self._put(item)
                    delay = self.backoff  # frames flowed: the next outage starts from a short wait
            except Exception as exc:  # any failure of a live stream is an outage, not a crash
                reason = av_reason(exc)
            if self._stop.is_set():
                return
            self._set_status("down", reason)
            self.reconnects += 1
            self._stop.wait(delay)
            delay = min(delay * 2, self.max_backoff)

    def _put(self, item: Any) -> None:
        now, wall = time.monotonic(), time.time()
        entry = (item, self.captured_count, wall, now)
        self.captured_count += 1
        with self._changed:
            if self._latest is not None:
                self.dropped += 1
            self._latest = entry
            self._changed.notify_all()
        if not isinstance(item, str) and not self.decoded_up:
            self._set_status("up", "")

    def _set_status(self, status: str, reason: str) -> None:
        with self._status_lock:
            if status == self.status:
                return
            self.status, self.reason = status, reason
            self._said(status, reason)

    def _said(self, status: str, reason: str) -> None:
        # Whoever set on_status says it (the CLI prints one line): the log would say it twice.
        if status == "down":
            (log.debug if self.on_status is not None else log.warning)(
                "%s: stream down (%s); reconnecting with backoff", self.name, reason)
        else:
            log.info("%s: stream up", self.name)
        if self.on_status is not None:
            try:
                self.on_status(self.name, status, reason)
            except Exception:  # a failing status publisher must not stop the camera
                log.exception("%s: on_status callback failed", self.name)

    def _capture(self) -> Iterator[Any]:
        raise NotImplementedError

    def _interrupt(self) -> None:
        """Unblock a read in progress, where the transport allows it."""


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


#: The options an HTTP camera URL may carry in its fragment (``http://cam/video#frame_timeout=5``),
#: as an RTSP URL carries ``#transport=udp``: name -> (converter, what it must be).
HTTP_OPTIONS: dict[str, tuple[Callable[[str], float], str]] = {
    "frame_timeout": (float, "seconds above 0"),
    "max_frame_bytes": (int, "a whole number of bytes above 0"),
    "interval": (float, "seconds above 0"),
}


def _http_options(fragment: str, url: str) -> dict[str, float]:
    """The ``#name=value&…`` options of an HTTP camera URL, checked (see :data:`HTTP_OPTIONS`)."""
    import difflib

    options: dict[str, float] = {}
    for pair in filter(None, fragment.split("&")):
        name, _, text = pair.partition("=")
        if name not in HTTP_OPTIONS:
            close = difflib.get_close_matches(name, HTTP_OPTIONS, 1)
            hint = f"did you mean {close[0]}?" if close else "remove it"
            raise ConfigError(f"{redact(url)}: unknown option #{name}; expected one of {', '.join(HTTP_OPTIONS)} "
                              f"({hint})")
        convert, expected = HTTP_OPTIONS[name]
        try:
            value = convert(text)
        except ValueError:
            value = 0
        if not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"{redact(url)}: #{name} must be {expected}, found {text!r}")
        options[name] = value
    return options


class HttpStream(LiveSource):
    """An HTTP(S) camera URL: an MJPEG stream or a snapshot image, told apart by Content-Type.

    ``multipart/x-mixed-replace`` is read part by part (each part one JPEG, with or without
    Content-Length); ``image/*`` is a snapshot URL, fetched again every ``interval`` seconds.
    Anything else is an outage whose reason names the Content-Type found. User-info in the URL is
    sent as HTTP Basic authentication (and hidden in ``name``). ``mode`` says what was found:
    ``"mjpeg"``, ``"snapshot"`` or None before the first response.

    A camera is not trusted to behave: every frame must arrive whole within ``frame_timeout``
    seconds (a watchdog shuts the connection down otherwise, so a server trickling a byte every
    few seconds cannot hold a read forever) and in at most ``max_frame_bytes`` bytes (no body,
    MJPEG part or run of bytes without a boundary is buffered past it). Either is an outage.
    Both, and ``interval``, may be set in the URL's fragment, as the command line and settings
    files give them: ``http://cam/video#frame_timeout=5&max_frame_bytes=4000000`` (the fragment
    is not sent; see :data:`HTTP_OPTIONS`).

    Args:
        url: ``http://`` or ``https://`` URL, with options in its fragment (they win over the
            arguments below).
        interval: seconds between snapshot requests (MJPEG streams ignore it).
        open_timeout, read_timeout: seconds for connecting, and for each read.
        frame_timeout: seconds a whole frame may take: the response headers and body of a
            snapshot, the next complete part of an MJPEG stream.
        max_frame_bytes: the largest image accepted (None: :func:`default_max_frame_bytes`, from
            the memory this process may still allocate).
        on_status, backoff, max_backoff: see :class:`LiveSource`.
    """

    def __init__(self, url: str, *, interval: float = 1.0, open_timeout: float = 10.0, read_timeout: float = 10.0,
                 frame_timeout: float = 20.0, max_frame_bytes: int | None = None, **live: Any) -> None:
        url, _, fragment = url.partition("#")  # options for edgekit, never sent to the camera
        options = _http_options(fragment, url)
        interval = options.get("interval", interval)
        frame_timeout = options.get("frame_timeout", frame_timeout)
        max_frame_bytes = int(options.get("max_frame_bytes", max_frame_bytes or 0)) or None
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 -- raises ValueError for a port that is not a number from 0 to 65535
        except ValueError as exc:  # an unclosed IPv6 bracket ("http://[::1"), a port "abc" or 99999
            raise ConfigError(f"expected an http:// or https:// URL like http://camera:8080/video, found an "
                              f"unusable one ({exc}); check its host and port") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"expected an http:// or https:// URL with a host, found {redact(url)!r}")
        if not interval > 0:
            raise ConfigError(f"snapshot interval must be above 0 seconds, found {interval}")
        if not frame_timeout > 0:
            raise ConfigError(f"frame timeout must be above 0 seconds, found {frame_timeout}")
        if max_frame_bytes is not None and max_frame_bytes < 1:
            raise ConfigError(f"max_frame_bytes must be a whole number of bytes above 0, found {max_frame_bytes}")
        self.url, self.interval = url, interval
        self.open_timeout, self.read_timeout, self.frame_timeout = open_timeout, read_timeout, frame_timeout
        self.max_frame_bytes = max_frame_bytes or default_max_frame_bytes()
        self.mode: str | None = None
        self._sock: socket.socket | None = None
        self._sock_lock = threading.Lock()
        self._decoder: ImageDecoder | None = None
        self._watchdog = _Watchdog(self._interrupt)
        super().__init__(redact(url), **live)

    decoded_up = True  # bytes until frames() decodes them: "up" means a picture decoded

    def _convert(self, item: Any) -> Any:
        if self._decoder is None:  # made on the consumer's thread, which alone uses it
            self._decoder = ImageDecoder()
        return self._decoder(item[0])

    def _received(self, item: Any) -> str:
        body, content_type = item
        return f"Content-Type {_printable(content_type) or 'none'!r}, {len(body)} bytes beginning {body[:16]!r}"

    def close(self) -> None:
        super().close()
        self._watchdog.stop()

    def _capture(self) -> Iterator[Any]:
        try:
            yield from self._frames()
        except Exception:
            if not self._watchdog.expired:
                raise
        finally:
            self._watchdog.disarm()
        self._check_deadline()

    def _check_deadline(self) -> None:
        """After the watchdog cut the connection, say that rather than how the read ended."""
        if self._watchdog.expired:
            raise TimeoutError(f"no complete frame within the {self.frame_timeout:g} s frame timeout "
                               "(the camera sends too slowly or not at all)")

    def _frames(self) -> Iterator[Any]:
        next_poll = time.monotonic()
        while not self._stop.is_set():
            self._watchdog.arm(self.frame_timeout)
            with self._get() as response:
                content_type = response.getheader("Content-Type", "")
                kind = content_type.split(";")[0].strip().lower()
                if kind == "multipart/x-mixed-replace":
                    self.mode = "mjpeg"
                    for headers, body in _read_parts(response, _boundary(content_type), self.max_frame_bytes):
                        self._check_deadline()
                        self._watchdog.disarm()
                        yield body, headers.get("content-type", "")  # decoded only if taken (_convert)
                        self._watchdog.arm(self.frame_timeout)
                    return
                if not kind.startswith("image/"):
                    raise ConfigError(f"expected an MJPEG stream (multipart/x-mixed-replace) or an image, "
                                      f"found Content-Type {content_type or 'none'!r}")
                self.mode = "snapshot"
                body = _read_body(response, self.max_frame_bytes)
            self._check_deadline()  # a body cut short by the watchdog is not a picture
            self._watchdog.disarm()
            yield body, content_type
            next_poll = max(next_poll + self.interval, time.monotonic())
            self._stop.wait(next_poll - time.monotonic())

    def _get(self) -> http.client.HTTPResponse:
        parts = urlsplit(self.url)
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=self.open_timeout, context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.open_timeout)
        headers = {"User-Agent": "edgekit", "Accept": "multipart/x-mixed-replace, image/*"}
        if parts.username is not None:
            user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(user_pass).decode("ascii")
        try:
            conn.connect()
        except OSError as exc:
            reason = connect_reason(exc, conn.host, conn.port, self.open_timeout)
            if reason is None:
                raise
            raise ConnectionError(reason) from None
        with self._sock_lock:
            self._sock = conn.sock
        if self._stop.is_set() or self._watchdog.expired:
            conn.close()
            raise ConnectionAbortedError("closed")
        conn.sock.settimeout(self.read_timeout)
        try:
            conn.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), headers=headers)
            response = conn.getresponse()
        except TimeoutError:
            raise ConnectionError(f"no answer from {parts.hostname}:{conn.port} within {self.read_timeout:g} s: it "
                                  "accepted the connection but sent no HTTP response; check that the port is the "
                                  "camera's web port") from None
        if response.status != 200:
            response.close()
            raise ConnectionError(http_status_reason(response.status, response.reason, self.url))
        return response

    def _interrupt(self) -> None:
        with self._sock_lock:
            if self._sock is not None:
                try:
                    self._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def http_status_reason(status: int, reason: str, url: str) -> str:
    """A camera's non-200 answer and what to check. It is an outage like any other: retried with
    backoff (a rebooting camera answers 404 or 503 for a while) and said once."""
    line = f"HTTP {status} {reason} from {redact(url)}"
    if status in (401, 403):
        return f"{line}: check the credentials (http://user:password@camera/…) and that this user may read the stream"
    if status in (404, 410):
        return f"{line}: check the URL (the camera's manual names its stream and snapshot URLs)"
    return line


def default_max_frame_bytes() -> int:
    """The largest camera image accepted: :data:`MAX_PART_BYTES`, or a quarter of the memory this
    process may still allocate when that is less (the body is held while it is decoded)."""
    from ..device import memory_budget

    return max(1 << 20, min(MAX_PART_BYTES, memory_budget() // 4))


class _Watchdog:
    """Calls ``expire()`` (which cuts the connection) when a frame takes past its deadline.

    A socket timeout bounds each read, not a frame: a server sending one byte every few seconds
    never trips it. One thread per source waits for the armed deadline."""

    def __init__(self, expire: Callable[[], None]) -> None:
        self._expire = expire
        self._until: float | None = None
        self._stopped = False
        self.expired = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float) -> None:
        with self._cond:
            self.expired = False
            self._until = time.monotonic() + seconds
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._run, name="edgekit-http-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def disarm(self) -> None:
        with self._cond:
            self._until = None

    def stop(self) -> None:
        with self._cond:
            self._stopped, self._until = True, None
            self._cond.notify_all()

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                if self._until is None:
                    self._cond.wait()
                    continue
                left = self._until - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                self._until, self.expired = None, True
                self._expire()


def _read_body(response: Any, limit: int) -> bytes:
    """A snapshot's body, refused past ``limit`` bytes (announced or sent)."""
    length = response.getheader("Content-Length", "")
    if length.strip().isdigit() and int(length) > limit:
        raise ConnectionError(f"the image announces {int(length)} bytes; expected a camera image of at most "
                              f"{limit} bytes")
    body = response.read(limit + 1)
    if len(body) > limit:
        raise ConnectionError(f"the image ran past {limit} bytes without ending; expected a camera image of at "
                              f"most {limit} bytes")
    return body


class _Bounded:
    """A reader that refuses to hand out more than ``limit`` bytes between two :meth:`reset` calls."""

    def __init__(self, fp: Any, limit: int, boundary: bytes) -> None:
        self.fp, self.limit, self.boundary, self.count = fp, limit, boundary, 0

    def reset(self) -> None:
        self.count = 0

    def _take(self, data: bytes) -> bytes:
        self.count += len(data)
        if self.count > self.limit:
            raise ConnectionError(f"no complete MJPEG part (boundary {self.boundary.decode('latin-1')!r}) within "
                                  f"{self.limit} bytes; expected multipart/x-mixed-replace camera frames")
        return data

    def readline(self, size: int = 65536) -> bytes:
        return self._take(self.fp.readline(min(size, self.limit - self.count + 1)))

    def read(self, size: int) -> bytes:
        return self._take(self.fp.read(min(size, self.limit - self.count + 1)))


def read_multipart(fp: Any, boundary: bytes, max_part_bytes: int = MAX_PART_BYTES) -> Iterator[bytes]:
    """The bodies of a ``multipart/x-mixed-replace`` stream, until it ends.

    Tolerates what cameras send: the boundary parameter with or without its leading ``--``, blank
    lines between parts, parts without Content-Length (then the body runs to the next delimiter).
    Nothing is buffered without bound: from one part's end to the next one's, at most
    ``max_part_bytes`` are read (preamble, headers and body).

    Raises:
        ConnectionError: more than ``max_part_bytes`` without a complete part (a part too large,
            or no boundary at all).
    """
    for _headers, body in _read_parts(fp, boundary, max_part_bytes):
        yield body


def _read_parts(fp: Any, boundary: bytes, max_part_bytes: int) -> Iterator[tuple[dict[str, str], bytes]]:
    """:func:`read_multipart`'s parts with their headers (names in lower case)."""
    core = boundary.strip(b'"').lstrip(b"-")
    delimiter = re.compile(rb"^--+" + re.escape(core) + rb"(--)?\s*$")
    bounded = _Bounded(fp, max_part_bytes, core)
    line = bounded.readline()
    while line:
        match = delimiter.match(line)
        if match is None:  # preamble or blank lines between parts
            line = bounded.readline()
            continue
        if match.group(1):  # the closing delimiter
            return
        headers = _part_headers(bounded)
        length = headers.get("content-length", "")
        if length.strip().isdigit():
            size = int(length)
            if size > max_part_bytes:
                raise ConnectionError(f"an MJPEG part of {size} bytes (more than {max_part_bytes})")
            body = bounded.read(size)
            if len(body) < size:
                return
            bounded.reset()
            yield headers, body
            line = bounded.readline()
        else:
            body, line = _read_to_delimiter(bounded, delimiter)
            bounded.reset()
            bounded.count = len(line)
            if body is not None:
                yield headers, body


def _part_headers(fp: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    while True:
        line = fp.readline(65536)
        if not line.strip():
            return headers
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()


def _read_to_delimiter(fp: Any, delimiter: re.Pattern[bytes]) -> tuple[bytes | None, bytes]:
    """Body bytes up to the next delimiter line (and that line), or (None, b"") at end of stream."""
    chunks: list[bytes] = []
    while True:
        line = fp.readline(65536)
        if not line:
            return None, b""
        if delimiter.match(line):
            body = b"".join(chunks)
            return (body[:-2] if body.endswith(b"\r\n") else body.rstrip(b"\n")), line
        chunks.append(line)


def _boundary(content_type: str) -> bytes:
    match = re.search(r'boundary\s*=\s*"?([^";]+)"?', content_type, re.IGNORECASE)
    if match is None:
        raise ConnectionError(f"multipart Content-Type without a boundary: {content_type!r}")
    return match.group(1).strip().encode("latin-1")


class ImageDecoder:
    """Encoded image bytes to pixels — the decoder's YUV frame for JPEG, an RGB uint8 array
    otherwise — or a problem string for a broken image.

    JPEG goes through FFmpeg's MJPEG decoder when PyAV is installed: measured at 720p it costs
    about a third of Pillow's CPU time (3.8-4.9 ms against 12-14 ms) and it accepts the
    Huffman-table-less JPEGs some cameras send; its frame stays YUV (see :class:`LiveSource`).
    Other formats, or no PyAV, use Pillow. Either way the image's size is read from its header
    first and refused as a file would be: past Pillow's decompression-bomb limit, or needing more
    memory than this process may still allocate (:func:`edgekit.image.check_decode`).
    """

    def __init__(self) -> None:
        try:
            import av
        except ImportError:
            self._av = self._codec = None
        else:
            self._av = av
            self._codec = av.CodecContext.create("mjpeg", "r")
            self._codec.thread_count = 1  # one frame per packet: threads would only add latency

    def __call__(self, data: bytes) -> Any:
        if self._codec is not None and data[:2] == b"\xff\xd8":
            size = jpeg_size(data)
            if size is None:  # no frame header to check: Pillow reads it (and refuses) if there is one
                return _pillow_decode(data)
            problem = _too_large(size, "RGB", len(data))  # FFmpeg makes YUV, then RGB
            if problem is not None:
                return problem
            try:
                frames = self._codec.decode(self._av.Packet(data))
            except self._av.error.FFmpegError as exc:
                return f"undecodable JPEG ({len(data)} bytes): {_plain(av_reason(exc))}"
            if frames:
                return frames[0]
        return _pillow_decode(data)


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The largest (width, height) any start-of-frame marker in a JPEG claims (JPEG-LS's too), or
    None when there is none. Every marker counts, not only the first: FFmpeg skips junk to find markers, and a
    later frame header would make it allocate at that size. (numpy finds them: a regular
    expression over a 720p frame costs 1.7 ms, half of FFmpeg's decode.)"""
    import numpy as np

    a = np.frombuffer(data, np.uint8)
    ff = np.flatnonzero(a[:-8] == 0xFF)
    kind = a[ff + 1]
    # SOF0-SOF15 (not DHT C4, JPG C8, DAC CC) and SOF55 (F7, JPEG-LS: FFmpeg's MJPEG decoder takes it too)
    ff = ff[((kind >= 0xC0) & (kind <= 0xCF) & (kind != 0xC4) & (kind != 0xC8) & (kind != 0xCC)) | (kind == 0xF7)]
    if not len(ff):
        return None
    heights = a[ff + 5].astype(np.int64) << 8 | a[ff + 6]
    widths = a[ff + 7].astype(np.int64) << 8 | a[ff + 8]
    best = int(np.argmax(widths * heights))
    return int(widths[best]), int(heights[best])


def _too_large(size: tuple[int, int], mode: str, nbytes: int) -> str | None:
    from ..errors import ImageError
    from ..image import check_pixels

    try:
        check_pixels(size, mode, f"image of {nbytes} bytes")
    except ImageError as exc:
        return str(exc)
    return None


_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")


def _printable(text: str, limit: int = 60) -> str:
    """A camera's header value safe to print: no control characters, at most ``limit`` long."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


def _plain(message: str) -> str:
    """A dependency's message without the object reprs some put in it (``<_io.BytesIO object at 0x…>``)."""
    return _REPR.sub("the data", message)


#: The picture formats a camera's bytes may be decoded as. Not Pillow's every format: EPS would run
#: Ghostscript on whatever the camera sends, and others (TIFF, PSD, FITS…) add parsers no camera needs.
CAMERA_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP")  # JPEG includes MPO


def _pillow_decode(data: bytes) -> Any:
    import warnings

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from ..errors import ImageError
    from ..image import check_decode

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=CAMERA_FORMATS) as image:
                check_decode(image, f"image of {len(data)} bytes")
                image.load()
                return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except ImageError as exc:
        return str(exc)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return (f"undecodable image ({len(data)} bytes): larger than Pillow's safety limit of "
                f"{Image.MAX_IMAGE_PIXELS} pixels (possible decompression bomb)")
    except UnidentifiedImageError:
        return (f"undecodable image ({len(data)} bytes): not an image (it begins {data[:8].hex(' ')}); "
                "expected JPEG or PNG frames from the camera")
    except Exception as exc:  # Pillow raises many types for corrupt data
        return f"undecodable image ({len(data)} bytes): {_plain(str(exc))}"


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
