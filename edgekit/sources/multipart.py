"""Reading what an HTTP camera sends, bounded in bytes: a snapshot's body, and the parts of a
``multipart/x-mixed-replace`` (MJPEG) stream."""

from __future__ import annotations

import re
from typing import Any, Iterator

__all__ = ["MAX_PART_BYTES", "read_multipart"]

# An MJPEG part larger than this is not a camera frame: refuse it rather than buffer it.
MAX_PART_BYTES = 32 * 1024 * 1024


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
