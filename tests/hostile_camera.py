"""A hostile HTTP "camera" on 127.0.0.1 for the tests (and by hand: python tests/hostile_camera.py MODE PORT).

Modes (the path of the URL): /endless (image/jpeg, no length, never ends), /trickle (image/jpeg, a
byte every ``trickle`` seconds), /trickle-headers (the status line a byte at a time), /noboundary
(a multipart header, then endless bytes without a boundary), /slow-noboundary (the same, a few bytes
a second), /random (MJPEG parts of random bytes), /png (a PNG of ``png_size`` pixels, as a snapshot),
/huge-sof (a JPEG whose header claims 30000x30000), /status-404, /status-401, /status-403 (that
HTTP status, as a camera answers a wrong path or wrong credentials), /html-snapshot (Content-Type
image/jpeg, an HTML page as body, as a camera's login page), /switch (MJPEG parts: random bytes
while ``garbage`` is set, real JPEGs otherwise). ``silent_address()`` is a host:port that accepts
no connection and refuses none (its SYNs are dropped), as a camera that is off.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import socketserver
import struct
import sys
import threading
import time
import zlib

from PIL import Image


def jpeg(size=(64, 48), color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "JPEG")
    return out.getvalue()


def big_png(side: int) -> bytes:
    """A real ``side`` x ``side`` RGB PNG, made row by row (never the whole picture in memory)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    deflate, row = zlib.compressobj(6), b"\x00" + bytes((90, 120, 30)) * side
    idat = b"".join(deflate.compress(row) for _ in range(side)) + deflate.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def huge_sof_jpeg(width: int = 30000, height: int = 30000) -> bytes:
    """A real small JPEG whose start-of-frame claims ``width`` x ``height``."""
    data = bytearray(jpeg())
    i = 2
    while data[i + 1] not in (0xC0, 0xC1, 0xC2):
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    data[i + 5:i + 7] = height.to_bytes(2, "big")
    data[i + 7:i + 9] = width.to_bytes(2, "big")
    return bytes(data)


@contextlib.contextmanager
def silent_address():
    """("127.0.0.1", port) where a connect gets no answer: a listening socket whose accept queue is
    full drops every further SYN (Linux), as a host that is off or behind a dropping firewall."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    try:
        while True:  # fill the accept queue until a connect goes unanswered
            client = socket.socket()
            client.settimeout(0.5)
            fillers.append(client)
            try:
                client.connect(server.getsockname())
            except TimeoutError:
                break
            if len(fillers) > 16:
                raise RuntimeError("the accept queue does not fill: cannot make a silent address here")
        yield server.getsockname()
    finally:
        for client in fillers:
            client.close()
        server.close()


class HostileCamera:
    def __init__(self, trickle: float = 1.0, png_size: int = 9000, port: int = 0) -> None:
        self.trickle, self.png_size, self._png_bytes = trickle, png_size, None
        self.garbage = threading.Event()  # /switch sends random parts while set
        self.requests: list[str] = []
        self.stopping = threading.Event()
        camera = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                try:
                    self.request.settimeout(60)
                    request = b""
                    while b"\r\n\r\n" not in request:
                        chunk = self.request.recv(4096)
                        if not chunk:
                            return
                        request += chunk
                    path = request.split(b" ")[1].decode()
                    camera.requests.append(path)
                    getattr(camera, "_" + path.strip("/").replace("-", "_"))(self.request)
                except OSError:
                    pass

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def _head(self, sock, content_type: str, extra: str = "") -> None:
        sock.sendall(f"HTTP/1.0 200 OK\r\nContent-Type: {content_type}\r\n{extra}\r\n".encode())

    def _endless(self, sock):
        self._head(sock, "image/jpeg")
        chunk = b"\xff\xd8" + os.urandom(65534)
        while not self.stopping.is_set():
            sock.sendall(chunk)

    def _trickle(self, sock):
        self._head(sock, "image/jpeg")
        for byte in jpeg():
            if self.stopping.wait(self.trickle):
                return
            sock.sendall(bytes([byte]))

    def _trickle_headers(self, sock):
        for byte in b"HTTP/1.0 200 OK\r\nX-Padding: " + b"a" * 100000:
            if self.stopping.wait(self.trickle):
                return
            sock.sendall(bytes([byte]))

    def _noboundary(self, sock):
        self._head(sock, "multipart/x-mixed-replace; boundary=frame")
        while not self.stopping.is_set():
            sock.sendall(os.urandom(65536))

    def _slow_noboundary(self, sock):
        self._head(sock, "multipart/x-mixed-replace; boundary=frame")
        while not self.stopping.wait(self.trickle / 4):
            sock.sendall(os.urandom(16) + b"\r\n")

    def _random(self, sock):
        self._head(sock, "multipart/x-mixed-replace; boundary=frame")
        while not self.stopping.wait(0.01):
            body = os.urandom(2000)
            sock.sendall(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(body) + body
                         + b"\r\n")

    def _status(self, sock, line: str):
        body = b"<html><body>" + line.encode() + b"</body></html>"
        sock.sendall(f"HTTP/1.0 {line}\r\nContent-Type: text/html\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                     + body)

    def _status_404(self, sock):
        self._status(sock, "404 Not Found")

    def _status_401(self, sock):
        self._status(sock, "401 Unauthorized")

    def _status_403(self, sock):
        self._status(sock, "403 Forbidden")

    def _html_snapshot(self, sock):
        body = b"<!DOCTYPE html>\n<html><body>Please log in\x1b[2J</body></html>"
        self._head(sock, "image/jpeg", f"Content-Length: {len(body)}\r\n")
        sock.sendall(body)

    def _switch(self, sock):
        self._head(sock, "multipart/x-mixed-replace; boundary=frame")
        good = jpeg()
        while not self.stopping.wait(0.02):
            body = os.urandom(2000) if self.garbage.is_set() else good
            sock.sendall(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(body) + body
                         + b"\r\n")

    def _png(self, sock):
        if self._png_bytes is None:
            self._png_bytes = big_png(self.png_size)
        self._head(sock, "image/png", f"Content-Length: {len(self._png_bytes)}\r\n")
        sock.sendall(self._png_bytes)

    def _huge_sof(self, sock):
        body = huge_sof_jpeg()
        self._head(sock, "image/jpeg", f"Content-Length: {len(body)}\r\n")
        sock.sendall(body)


if __name__ == "__main__":
    camera = HostileCamera(port=int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    print(camera.url("/" + sys.argv[1]), flush=True)
    while True:
        time.sleep(3600)
