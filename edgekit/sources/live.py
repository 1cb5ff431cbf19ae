"""The reading thread, the newest-frame slot, reconnection and status that every live source
shares (:class:`LiveSource`), and :func:`redact` for URLs shown in names.

See :mod:`edgekit.sources.stream` for the contract (backoff, status, close).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from ..frames import Frame
from .video import av_reason

__all__ = ["StatusCallback", "LiveSource", "redact"]

StatusCallback = Callable[[str, str, str], None]
"""``on_status(source_name, "up" | "down", reason)``."""

log = logging.getLogger("edgekit.sources.stream")  # the name it had before the split: log settings keep working


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
