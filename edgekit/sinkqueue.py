"""Each sink behind its own bounded queue and thread, so that a slow sink (a full disk, a video
encoder, a stalled preview client, an MQTT broker that is slow to take) never blocks inference
while the other sinks have room: :func:`edgekit.runner.run` hands every result to a
:class:`SinkWorker` per sink.

A sink says how its queue behaves with a ``queue_policy`` class attribute:

- ``"keep"`` (the default): nothing is ever dropped; when the queue is full the run waits for it
  (MQTT, JSON lines, annotated images and video: what they hold must not be lost).
- ``"drop_oldest"``: a full queue drops its oldest result, counted in :attr:`SinkWorker.dropped`
  (the live preview: only the newest picture matters); such a sink never holds a checkpoint back.

``queue_size`` (a class attribute too, default :data:`QUEUE_SIZE`) is how many results wait.
Every worker sees every result in order — a sink's own ``stages`` (such as MQTT's "only on
change") run in its thread — so a result is done, and its source's checkpoint may move on
(``Runner.ack``), once the last "keep" worker has handled it: acknowledgements come in order.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable

__all__ = ["QUEUE_SIZE", "SinkWorker", "Completion"]

#: Results a sink's queue holds by default (the planner counts them: RunOptions.frames_in_flight).
QUEUE_SIZE = 4
_POLICIES = ("keep", "drop_oldest")
_CLOSE = object()


class Completion:
    """Calls ``done(value)`` once every one of ``n`` workers has finished with the result started
    as ``key``, in the order results were started (each worker handles its results in order, so
    completions come in order too)."""

    def __init__(self, n: int, done: Callable[[Any], None] | None) -> None:
        self._n, self._done = n, done
        self._left: dict[int, list] = {}
        self._lock = threading.Lock()

    def start(self, key: int, value: Any) -> None:
        with self._lock:
            self._left[key] = [self._n, value]

    def finish(self, key: int, _value: Any = None) -> None:
        with self._lock:
            entry = self._left[key]
            entry[0] -= 1
            if entry[0]:
                return
            del self._left[key]
            if self._done is not None:
                self._done(entry[1])  # under the lock: checkpoints are written one at a time, in order


class SinkWorker:
    """One sink, its bounded queue and its thread.

    Args:
        sink: anything with ``write(fr)`` and ``close()`` (optional ``stages``, ``queue_policy``,
            ``queue_size``).
        completion: told when this worker is done with each result.

    The sink's first exception ends its thread; :meth:`put` and :meth:`close` raise it again in
    the caller's thread (the run ends with it, as if the sink had raised there).
    """

    def __init__(self, sink: Any, completion: Completion | None = None) -> None:
        policy = getattr(sink, "queue_policy", "keep")
        if policy not in _POLICIES:
            from .errors import ConfigError

            raise ConfigError(f"{type(sink).__name__}.queue_policy must be one of {', '.join(_POLICIES)}, "
                              f"found {policy!r}")
        self.sink, self.policy = sink, policy
        self.size = max(1, int(getattr(sink, "queue_size", QUEUE_SIZE)))
        self.dropped = 0
        self.error: BaseException | None = None
        self._completion = completion
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"edgekit-sink-{type(sink).__name__}")
        self._thread.start()

    def put(self, key: int, fr: Any) -> None:
        """Queue one result (``key`` identifies it to the completion; ``fr`` None: a result the
        run's stages held back, which only passes through so that acknowledgements stay in
        order); waits while a "keep" queue is full; raises the sink's error if it failed."""
        if fr is None and self.policy == "drop_oldest":
            if self._completion is not None:
                self._completion.finish(key, fr)
            return
        with self._cond:
            while True:
                self._raise()
                if len(self._items) < self.size:
                    break
                if self.policy == "drop_oldest":
                    self._items.popleft()
                    self.dropped += 1
                    break
                self._cond.wait(0.5)
            self._items.append((key, fr))
            self._cond.notify_all()
        if self.policy == "drop_oldest" and self._completion is not None:
            self._completion.finish(key, fr)  # a sink that may drop never holds a checkpoint back

    def close(self, wait: float | None = None) -> bool:
        """Let the sink finish what is queued, close it (in its thread), and raise its error if
        it failed. ``wait``: at most this many seconds (None: as long as it takes); returns
        whether the sink closed."""
        with self._cond:
            self._items.append((None, _CLOSE))
            self._cond.notify_all()
        if wait is None:
            while self._thread.is_alive():  # in steps: a signal (KeyboardInterrupt) gets through
                self._thread.join(0.5)
        else:
            self._thread.join(wait)
        self._raise()
        return not self._thread.is_alive()

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None  # raised once: close() after a failed put() does not repeat it
            raise error

    def _loop(self) -> None:
        failed = False
        while True:
            with self._cond:
                while not self._items:
                    self._cond.wait()
                key, fr = self._items.popleft()
                self._cond.notify_all()
            if fr is _CLOSE:
                try:
                    self.sink.close()
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                    if self.error is None and not failed:
                        self.error = exc
                return
            try:
                if not failed:
                    self._write(fr)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                failed = True
                with self._cond:
                    self.error = exc
                    self._cond.notify_all()
            if self._completion is not None and not failed and self.policy == "keep":
                try:
                    self._completion.finish(key, fr)
                except BaseException as exc:  # noqa: BLE001 - an acknowledgement that failed ends the run
                    failed = True
                    with self._cond:
                        self.error = exc
                        self._cond.notify_all()

    def _write(self, fr: Any) -> None:
        if fr is None:
            return  # held back by the run's stages
        for stage in getattr(self.sink, "stages", ()):
            fr = stage(fr)
            if fr is None:
                return
        self.sink.write(fr)
