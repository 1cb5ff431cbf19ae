"""The hand-offs between the runner's threads: the work item a frame travels in, a one-slot
newest-wins queue for live sources and a bounded FIFO for every-frame ones (see
:mod:`edgekit.runner`)."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from .errors import EdgekitError
from .frames import Frame

__all__ = ["END", "Item", "Latest", "Bounded"]

END = object()  # put by a reader when its source has ended, and by the invoke thread at the end


@dataclass
class Item:
    frame: Frame
    source: int
    loaded: Any = None
    tensor: Any = None
    transform: Any = None
    error: EdgekitError | None = None
    outputs: Any = None
    timings: dict[str, float] = field(default_factory=dict)
    end: bool = False  # not a frame: the source has ended
    motion: Any = None  # the frame's edgekit.motion.Motion when gating by motion
    gated: bool = False  # nothing moved: not inferred


class Latest:
    """A one-slot queue where a new frame replaces an unconsumed one (counted as dropped)."""

    def __init__(self, on_drop) -> None:
        self._slot: list = []
        self._ended = False
        self._ready = threading.Condition()
        self._on_drop = on_drop

    def put(self, item: Any, stop: threading.Event | None = None) -> None:
        with self._ready:
            if item is END:
                self._ended = True
            else:
                if self._slot:
                    self._on_drop()
                    waiting = self._slot[0]
                    if getattr(item, "gated", False) and not (waiting.gated or waiting.error is not None):
                        # a still frame must not replace the frame to infer that it will repeat
                        self._ready.notify()
                        return
                self._slot[:] = [item]
            self._ready.notify()

    def get(self, timeout: float) -> Any:
        with self._ready:
            if not self._slot and not self._ended:
                self._ready.wait(timeout)
            if self._slot:
                item = self._slot.pop()
                self._ready.notify_all()  # a reader waiting for room (see Runner._wait_until_wanted)
                return item
            if self._ended:
                return END
            raise queue.Empty

    def wake(self) -> None:
        with self._ready:
            self._ready.notify_all()


class Bounded:
    """A bounded FIFO whose put gives up when the run is stopping (so readers never hang)."""

    def __init__(self, size: int) -> None:
        self._q: queue.Queue = queue.Queue(maxsize=size)

    def put(self, item: Any, stop: threading.Event | None = None) -> None:
        while True:
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                if stop is not None and stop.is_set() and item is not END:
                    return

    def get(self, timeout: float) -> Any:
        return self._q.get(timeout=timeout)
