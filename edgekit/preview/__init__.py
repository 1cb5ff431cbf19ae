"""A live preview of what the detector sees, over HTTP (``--preview HOST:PORT``).

:class:`PreviewSink` is a sink (``write(fr)`` / ``close()``) that keeps each source's latest
:class:`~edgekit.frames.FrameResult` and serves it with the standard library's threading server:

- ``/`` — a page with each source's stream;
- ``/stream.mjpeg?source=NAME`` — ``multipart/x-mixed-replace``, one JPEG (with Content-Length) a part;
- ``/snapshot.jpg?source=NAME`` — the latest processed frame, full source size.

``source`` may be left out when the run has one. Frames show their boxes, labels and track ids,
the source's zones (thicker, with a count, while occupied) and, when a frame carries ``motion``,
its motion regions.

Cost: ``write`` only stores the result (O(1); it never waits for a client). One encoder thread
draws and encodes a source's newest result only while someone watches it, at most ``fps`` times a
second per source, and every client of that source gets the same JPEG. Each client has a one-frame
slot that a newer JPEG replaces (counted as dropped), so a slow or stalled client never slows
inference or the other clients. A source's end changes nothing: its last frame stays on show.

Access: 127.0.0.1 by default (and only loopback ``Host`` names are answered there, against DNS
rebinding). Any other address needs a credential: a password file for HTTP basic auth (one line
``user:password``, or a bare password that any user name may use) and/or a token file (the token
as ``?token=TOKEN`` or ``Authorization: Bearer TOKEN``); both readable by their owner only.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ._options import PREVIEW_FPS, PreviewOptions, preview_options

__all__ = ["PREVIEW_FPS", "ClientStats", "FeedStats", "PreviewOptions", "PreviewSink", "preview_options"]

_LAZY = {"ClientStats": "_sink", "FeedStats": "_sink", "PreviewSink": "_sink"}  # the server loads when used


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'edgekit.preview' has no attribute {name!r}")
