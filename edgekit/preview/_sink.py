"""The preview sink: each source's newest result, one encoder thread, and a slot per client."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence, TextIO

from ..errors import ConfigError
from ._access import Access
from ._http import END, bind
from ._options import PreviewOptions

_GRACE = 0.5  # seconds close() lets streams end cleanly before it cuts stalled clients off


@dataclass(frozen=True)
class ClientStats:
    """One connected client of a source: JPEGs handed to its connection, and replaced unsent."""

    sent: int
    dropped: int


@dataclass(frozen=True)
class FeedStats:
    """One source's preview: results written, JPEGs encoded, the clients connected now, and the
    JPEGs sent and dropped over every client it had."""

    source: str
    frames: int
    encoded: int
    clients: tuple[ClientStats, ...]
    sent: int
    dropped: int


class _Slot:
    """A client's one-frame leaky slot (guarded by the sink's lock)."""

    def __init__(self, lock: threading.Lock) -> None:
        self.ready = threading.Condition(lock)
        self.jpeg: bytes | None = None
        self.sent = self.dropped = 0

    def offer(self, jpeg: bytes) -> None:
        if self.jpeg is not None:
            self.dropped += 1
        self.jpeg = jpeg
        self.ready.notify()


class _Feed:
    """One source: its newest result, its newest JPEG and who watches (guarded by the sink's lock)."""

    def __init__(self, name: str, zones: tuple[Any, ...]) -> None:
        self.name, self.zones = name, zones
        self.latest: Any = None
        self.version = 0  # results written
        self.encoded: bytes | None = None
        self.encoded_version = 0  # the result the newest JPEG (or the last try) was made of
        self.encodes = 0
        self.due = 0.0  # monotonic time of the next allowed encode
        self.clients: set[_Slot] = set()
        self.sent = self.dropped = 0  # of the clients gone
        self.failed = False

    def pending(self) -> bool:
        return bool(self.clients) and self.latest is not None and self.version != self.encoded_version


class PreviewSink:
    """Serves the run's newest frames, annotated, as :mod:`edgekit.preview` describes.

    Binds at once (so a bad address fails before the run) and serves until :meth:`close`.
    ``url`` and ``port`` say where (port 0 asks for any free one); one line on ``log`` says it too.

    Args:
        options: where and how (:class:`PreviewOptions`).
        sources: the run's source names (``FrameResult.source``); a result of another source adds it.
        zones: :class:`~edgekit.zones.Zone` values; a source shows those whose ``source`` is it or None.
        log: where the preview's address (and a source it cannot draw) is said; default stderr.

    Raises ConfigError: a credential file is unreadable, readable by others or empty, or the
    address cannot be served (port in use, not this machine's). ``write`` raises ConfigError for a
    result without its image: runs need ``RunOptions(keep_images=True)`` (image files excepted).
    """

    queue_policy = "drop_oldest"  # in edgekit.runner.run: only the newest picture matters
    queue_size = 1

    def __init__(self, options: PreviewOptions, sources: Sequence[str] = (), zones: Sequence[Any] = (),
                 log: TextIO | None = None) -> None:
        self.options = options
        self.log = log or sys.stderr
        self.access = Access(options)
        self._zones = tuple(zones)
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the encoder waits here
        self._idle = threading.Condition(self._lock)  # close() waits here for the connections to end
        self._feeds: dict[str, _Feed] = {}
        for name in sources:
            self._feed(name)
        self._connections: set[socket.socket] = set()
        self._closed = False
        self._server = bind(options, self)
        host, self.port = self._server.server_address[:2]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"
        self._threads = [threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                          daemon=True, name="edgekit-preview-http"),
                         threading.Thread(target=self._encode_loop, daemon=True, name="edgekit-preview-encode")]
        for thread in self._threads:
            thread.start()
        print(f"edgekit: preview at {self.url}", file=self.log, flush=True)

    def write(self, fr: Any) -> None:
        """Keep ``fr`` as its source's newest result (O(1): drawing and encoding happen elsewhere)."""
        if fr.result is None:
            return  # a failed frame or a source's end: the last good frame stays on show
        if not fr.has_full_image():
            raise ConfigError("--preview needs RunOptions(keep_images=True)")
        with self._lock:
            feed = self._feed(fr.source)
            feed.latest, feed.version = fr, feed.version + 1
            if feed.clients:
                self._work.notify()

    def close(self) -> None:
        """Stop serving: streams end with the closing boundary; a stalled client is cut off."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._work.notify_all()
            for feed in self._feeds.values():
                for slot in feed.clients:
                    slot.ready.notify_all()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            self._idle.wait_for(lambda: not self._connections, _GRACE)
            stuck = list(self._connections)
        for sock in stuck:  # blocked sending to a client that reads nothing: unblock its thread
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5)

    def stats(self) -> list[FeedStats]:
        """Each source's counters, in the order the sources were given."""
        with self._lock:
            return [FeedStats(f.name, f.version, f.encodes, tuple(ClientStats(c.sent, c.dropped) for c in f.clients),
                              f.sent + sum(c.sent for c in f.clients), f.dropped + sum(c.dropped for c in f.clients))
                    for f in self._feeds.values()]

    # -- the encoder ----------------------------------------------------------------------------
    def _feed(self, name: str) -> _Feed:
        feed = self._feeds.get(name)
        if feed is None:
            zones = tuple(z for z in self._zones if getattr(z, "source", None) in (None, name))
            feed = self._feeds[name] = _Feed(name, zones)
        return feed

    def _encode_loop(self) -> None:
        while True:
            with self._lock:
                job = self._next_job()
                if job is None:
                    return
                feed, fr, version = job
            jpeg = self._encode(feed, fr)  # outside the lock: write() and the clients go on meanwhile
            with self._lock:
                feed.encoded_version = version
                if jpeg is not None:
                    feed.encodes += 1
                    feed.encoded = jpeg
                    for slot in feed.clients:
                        slot.offer(jpeg)

    def _next_job(self) -> tuple[_Feed, Any, int] | None:
        """Under the lock: wait for a watched source with a result not yet encoded whose time has
        come (the longest waiting first); None once closed."""
        while not self._closed:
            now = time.monotonic()
            pending = [f for f in self._feeds.values() if f.pending()]
            due = [f for f in pending if f.due <= now]
            if due:
                feed = min(due, key=lambda f: f.due)
                feed.due = now + 1.0 / self.options.fps
                return feed, feed.latest, feed.version
            self._work.wait(min(f.due for f in pending) - now if pending else None)
        return None

    def _encode(self, feed: _Feed, fr: Any) -> bytes | None:
        import io

        from ..sinks import _original
        from ._draw import draw_frame

        try:
            image = _original(fr, "--preview")  # says on stderr why a rewritten file is left out
            if image is None:
                return None
            out = io.BytesIO()
            draw_frame(image, fr, feed.zones).save(out, "JPEG", quality=self.options.quality)
            return out.getvalue()
        except Exception as exc:  # the preview must not end the run; say it once per source
            if not feed.failed:
                feed.failed = True
                print(f"edgekit: --preview: cannot draw the frames of {feed.name} ({type(exc).__name__}: {exc})",
                      file=self.log, flush=True)
            return None

    # -- what the request handler asks ------------------------------------------------------------
    def _names(self) -> list[str]:
        with self._lock:
            return list(self._feeds)

    def _find(self, name: str | None) -> tuple[_Feed | None, int, str]:
        """The feed named ``name`` (None: the only one), else (None, HTTP status, why)."""
        with self._lock:
            names = list(self._feeds)
            if name is None and len(names) == 1:
                name = names[0]
            feed = self._feeds.get(name) if name is not None else None
        if feed is not None:
            return feed, 200, ""
        listed = ", ".join(names) or "none yet"
        if name is None:
            return None, 400, f"give ?source=NAME; this run's sources: {listed}"
        return None, 404, f"no source named {name!r}; this run's sources: {listed}"

    def _subscribe(self, feed: _Feed, latest_only: bool) -> _Slot:
        """A new client's slot, holding at once the newest JPEG there is (with ``latest_only``:
        only if it shows the newest result)."""
        with self._lock:
            slot = _Slot(self._lock)
            if feed.encoded is not None and (not latest_only or feed.encoded_version == feed.version):
                slot.jpeg = feed.encoded
            feed.clients.add(slot)
            self._work.notify()
        return slot

    def _take(self, slot: _Slot, timeout: float) -> Any:
        """The slot's JPEG, waiting up to ``timeout``: bytes, None (nothing yet) or END (closing)."""
        with self._lock:
            if slot.jpeg is None and not self._closed:
                slot.ready.wait(timeout)
            if self._closed:
                return END
            jpeg, slot.jpeg = slot.jpeg, None
            if jpeg is not None:
                slot.sent += 1
            return jpeg

    def _unsubscribe(self, feed: _Feed, slot: _Slot) -> None:
        with self._lock:
            if slot in feed.clients:
                feed.clients.discard(slot)
                feed.sent, feed.dropped = feed.sent + slot.sent, feed.dropped + slot.dropped

    def _connected(self) -> int:
        with self._lock:
            return len(self._connections)

    def _track(self, sock: socket.socket, connected: bool) -> None:
        with self._lock:
            if connected:
                self._connections.add(sock)
            else:
                self._connections.discard(sock)
                self._idle.notify_all()
