"""HTTP(S) cameras: MJPEG streams and snapshot URLs (:class:`HttpStream`), their URL options, and
the reasons said when one cannot be used."""

from __future__ import annotations

import base64
import http.client
import math
import socket
import ssl
import threading
import time
from typing import Any, Callable, Iterator
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError
from ..netreason import connect_reason
from .camera_image import ImageDecoder, _printable
from .live import LiveSource, redact
from .multipart import MAX_PART_BYTES, _boundary, _read_body, _read_parts

__all__ = ["HTTP_OPTIONS", "HttpStream", "http_status_reason", "default_max_frame_bytes"]

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
