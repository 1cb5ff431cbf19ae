"""The preview's HTTP side: the standard library's threading server and its one request handler.

The handler asks the sink (``server.sink``, a :class:`~edgekit.preview.PreviewSink`) for
everything: who may look, which source, and each client's next JPEG from its slot.
"""

from __future__ import annotations

import contextlib
import errno
import html
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from ..errors import ConfigError
from ._options import PreviewOptions

BOUNDARY = b"edgekitframe"
END = object()  # what a slot answers once the preview closes
_FIRST_FRAME_WAIT = 10.0  # seconds a snapshot waits for a source's first frame (the run is starting)
_UNSENT = 64 * 1024  # TCP_NOTSENT_LOWAT: a slow client's backlog waits in its slot, not in the kernel
_MAX_CONNECTIONS = 32  # one thread each: more are refused, so a flood cannot pile up threads


class _Handler(BaseHTTPRequestHandler):
    server_version = "edgekit-preview"
    timeout = 30  # seconds a client may take to send its request or to accept data, then it is dropped

    def version_string(self) -> str:
        return self.server_version  # not Python's version: nobody needs it

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log on the run's stderr

    def setup(self) -> None:
        super().setup()
        if hasattr(socket, "TCP_NOTSENT_LOWAT"):
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, _UNSENT)
        self.server.sink._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.sink._track(self.connection, False)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A short text answer with a status line, also to garbage (the base class answers a line
        it cannot parse as HTTP/0.9: an HTML page without a status)."""
        self.request_version, self.close_connection = "HTTP/1.0", True
        self._text(code, (message or self.responses.get(code, ("error",))[0])[:200])

    def do_GET(self) -> None:
        sink = self.server.sink
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        refusal = sink.access.refusal(self.headers, query, sink.url)
        if refusal is not None:
            return self._text(*refusal)
        if parts.path in ("/", "/index.html"):
            return self._send(200, "text/html; charset=utf-8", _page(sink._names(), query))
        if parts.path not in ("/stream.mjpeg", "/snapshot.jpg"):
            return self._text(404, "unknown path; this preview serves /, /stream.mjpeg?source=NAME and "
                                   "/snapshot.jpg?source=NAME")
        feed, status, why = sink._find((query.get("source") or [None])[-1])
        if feed is None:
            return self._text(status, why)
        if parts.path == "/snapshot.jpg":
            return self._snapshot(sink, feed)
        return self._stream(sink, feed)

    def _snapshot(self, sink: Any, feed: Any) -> None:
        slot = sink._subscribe(feed, latest_only=True)
        try:
            jpeg = sink._take(slot, _FIRST_FRAME_WAIT)
        finally:
            sink._unsubscribe(feed, slot)
        if not isinstance(jpeg, bytes):
            return self._text(503, f"no frame of {feed.name} to show yet; try again" if jpeg is None
                              else "the run is ending")
        self._send(200, "image/jpeg", jpeg)

    def _stream(self, sink: Any, feed: Any) -> None:
        slot = sink._subscribe(feed, latest_only=False)
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            # each part is followed at once by the next boundary, so a browser shows it without waiting
            self.wfile.write(b"--" + BOUNDARY)
            while True:
                jpeg = sink._take(slot, 1.0)
                if jpeg is END:
                    self.wfile.write(b"--\r\n")
                    return
                if jpeg is not None:
                    self.wfile.write(b"\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n--%s"
                                     % (len(jpeg), jpeg, BOUNDARY))
        except OSError:
            pass  # the client went away, stalled past the timeout, or close() cut it off
        finally:
            sink._unsubscribe(feed, slot)

    def _text(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, "text/plain; charset=utf-8", (text + "\n").encode("utf-8"), headers)

    def _send(self, status: int, kind: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)


def _page(names: list[str], query: dict[str, list[str]]) -> bytes:
    """The HTML page: each source's stream, and a link to its snapshot."""
    token = (query.get("token") or [None])[-1]
    extra = f"&token={quote(token, safe='')}" if token else ""  # an <img> request carries no Bearer header
    figures = "".join(
        f'<figure><img src="/stream.mjpeg?source={quote(n, safe="")}{extra}" alt="{html.escape(n)}">'
        f'<figcaption>{html.escape(n)} · <a href="/snapshot.jpg?source={quote(n, safe="")}{extra}">snapshot'
        "</a></figcaption></figure>" for n in names)
    return ("<!doctype html><html><head><meta charset=\"utf-8\"><title>edgekit preview</title><style>"
            "body{font-family:sans-serif;background:#111;color:#ddd;margin:1em}a{color:#8cf}"
            "figure{display:inline-block;margin:0 1em 1em 0;max-width:100%}"
            "img{display:block;max-width:100%;height:auto;background:#333;min-width:320px;min-height:180px}"
            f"</style></head><body><h1>edgekit preview</h1>{figures or '<p>no sources yet</p>'}"
            "</body></html>").encode("utf-8")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # a restart may bind while the last run's connections are in TIME_WAIT
    allow_reuse_port = False  # never share the port with another server: "in use" must be an error
    request_queue_size = _MAX_CONNECTIONS  # socketserver's 5 makes a page of many streams wait for SYN retries
    sink: Any

    def verify_request(self, request: Any, client_address: Any) -> bool:
        return self.sink._connected() < _MAX_CONNECTIONS  # refused: closed at once, no thread started


class _Server6(_Server):
    address_family = socket.AF_INET6


def bind(options: PreviewOptions, sink: Any) -> ThreadingHTTPServer:
    """A server bound and listening on ``options.address`` that serves ``sink`` (not yet serving).

    Raises ConfigError: the port is in use, or the address is not one of this machine's.
    """
    host, port = options.host_port
    try:
        server = (_Server6 if ":" in host else _Server)((host, port), _Handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"--preview {options.address}: port {port} is in use by another program; pick "
                              f"another port (e.g. {host}:{port + 1 if port < 65535 else 8090})") from None
        raise ConfigError(f"--preview {options.address}: cannot serve there ({exc.strerror or exc}); expected an "
                          "address of this machine, e.g. 127.0.0.1:8090") from None
    server.sink = sink
    return server
