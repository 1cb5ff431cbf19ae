"""Progress and the end-of-run summary of ``edgekit detect`` / ``edgekit run``, on stderr.

Shown when stderr is a terminal (one line rewritten in place, at most twice a second, as pip and
rsync do) or with ``-v`` (a plain line every 10 s, for logs: ``journalctl`` and files get no
carriage returns). Nothing otherwise, so scripts that read stderr for errors see only errors.
The summary ends the run in the same cases:

    edgekit: done: 38 images, 112 detections, 0 failed in 9.2 s (4.1/s); invoke 237.4 ms mean; MQTT 76 delivered, 0 queued
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence, TextIO

__all__ = ["BatchProgress", "show_progress", "interrupted_line"]

TTY_INTERVAL = 0.5  # seconds between rewrites of the terminal line
LOG_INTERVAL = 10.0  # seconds between progress lines with -v on a non-terminal


def show_progress(stream: TextIO, verbose: bool) -> bool:
    """Whether a run shows progress and a summary on ``stream``: a terminal, or ``-v``."""
    return verbose or _isatty(stream)


def interrupted_line(done: int, sources: Sequence[Any]) -> str:
    """The line a run stopped by Ctrl-C ends with: how many inputs went through (their results are
    kept) of how many, when every source is a list of images whose length is known
    (``ImageFiles.total``), e.g. ``stopped after 13 of 38 images``."""
    totals = [getattr(s, "total", None) for s in sources]
    if sources and all(t is not None for t in totals):
        total = sum(totals)
        return (f"edgekit: interrupted (Ctrl-C): stopped after {done} of {total} image{'' if total == 1 else 's'}; "
                f"the results of those {done} are kept, the other {total - done} were not processed")
    return f"edgekit: interrupted (Ctrl-C): stopped after {done} frame(s); the rest were not processed"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-like stream without a descriptor
        return False


class BatchProgress:
    """A sink counting frames, detections, failures and invoke time, and showing progress.

    Args:
        stream: where progress goes (stderr).
        tty: rewrite one line in place (a terminal) instead of printing a line every ``LOG_INTERVAL``.
        unit: what a frame is called ("image" for files and folders, "frame" for videos and streams).
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, stream: TextIO, tty: bool | None = None, unit: str = "image",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.unit = unit
        self.tty = _isatty(stream) if tty is None else tty
        self.clock = clock
        self.started = clock()
        self.frames = self.detections = self.failed = self.inferred = 0
        self.invoke_ms = 0.0
        self._shown = self.started
        self._line = False  # a terminal line is showing

    def write(self, fr: Any) -> None:
        if fr.end_of_source:
            return
        if fr.error is not None:
            self.failed += 1
        elif fr.result is not None:
            self.frames += 1
            self.detections += len(fr.result.detections)
            if fr.result.invoke_ms is not None:
                self.inferred += 1
                self.invoke_ms += fr.result.invoke_ms
        now = self.clock()
        if now - self._shown >= (TTY_INTERVAL if self.tty else LOG_INTERVAL):
            self._shown = now
            self._show(f"edgekit: {self._counts(now)}")

    def close(self) -> None:
        if self._line:
            self.stream.write("\033[K")
            self.stream.flush()
            self._line = False

    def summary(self, delivery: Mapping[str, Any] | None = None) -> str:
        """The last line: what was processed, how fast, and (with MQTT) what was delivered.
        ``delivery`` is :meth:`edgekit.mqtt.Publisher.stats` at the end of the run."""
        text = f"edgekit: done: {self._counts(self.clock())}"
        if self.inferred:
            text += f"; invoke {self.invoke_ms / self.inferred:.1f} ms mean"
        if delivery is not None:
            text += f"; MQTT {delivery.get('sent', 0)} delivered, {delivery.get('queued', 0)} queued"
            if delivery.get("dropped"):
                text += f", {delivery['dropped']} dropped"
        return text

    def _counts(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        done = self.frames + self.failed
        return (f"{self.frames} {self.unit}{'' if self.frames == 1 else 's'}, {self.detections} detection"
                f"{'' if self.detections == 1 else 's'}, {self.failed} failed in {elapsed:.1f} s "
                f"({done / elapsed:.1f}/s)")

    def _show(self, text: str) -> None:
        if self.tty:  # the cursor goes back to the start: an error line printed next overwrites it
            self.stream.write(f"\r\033[K{text}\r")
            self._line = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
