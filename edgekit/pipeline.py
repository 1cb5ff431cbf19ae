"""The :class:`Runner`: reader threads, the invoke thread and the caller's decode of outputs, joined
by the queues of :mod:`edgekit.handoff` (the design is told in :mod:`edgekit.runner`)."""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time
from dataclasses import replace
from typing import Any, Iterator, Sequence

from .errors import ConfigError, EdgekitError, ImageError
from .frames import Frame, FrameResult
from .handoff import END, Bounded, Item, Latest
from .results import DetectionResult
from .run_options import RunOptions, unique_names
from .stats import SourceStats

__all__ = ["Runner"]


class Runner:
    """Runs ``detector`` over ``sources``; iterate it for :class:`FrameResult` values.

    ``stages`` (see :mod:`edgekit.stages`: tracking, zones, events …) are applied in order to
    every result before it is yielded; with stages, each source's end comes through them too
    (``FrameResult.end_of_source``: tracks end there) and is yielded when it carries events.

    Raises (from iteration) the first model/runtime error, or an error a stage raised, after
    stopping every thread.
    """

    def __init__(self, sources: Sequence[Any], detector: Any, options: RunOptions | None = None,
                 stages: Sequence[Any] = ()) -> None:
        self.sources = list(sources)
        self.stages = list(stages)
        self.detector = detector
        self.options = options or RunOptions()
        self.stats = [SourceStats(name) for name in unique_names(self.sources)]
        self._by_name = {st.name: source for st, source in zip(self.stats, self.sources)}
        self._stop = threading.Event()
        self.stopped_by: int | None = None  # the signal (SIGINT/SIGTERM) that stopped the run, if one did
        self._lock = threading.Lock()
        self._inputs = [self._queue_for(i, s) for i, s in enumerate(self.sources)]
        self._live_inputs = [q for q in self._inputs if isinstance(q, Latest)]
        self._outputs = Bounded(max(2, self.options.queue_size))
        self._threads: list[threading.Thread] = []
        self._started = False
        # just-in-time reading of newest-only live sources (see _wait_until_wanted)
        self._invoke_seq = 0
        self._invoke_started: float | None = None  # monotonic start of the invoke in progress
        self._invoke_ms = 0.0  # moving average
        self._prepare_ms = [0.0] * len(self.sources)
        self._gates = [self._gate_for(st.name) for st in self.stats]
        self._last: dict[int, DetectionResult] = {}  # per source, the last inferred result (gated frames repeat it)
        self._inferred = [False] * len(self.sources)  # per source: a frame was prepared for inference

    # -- public ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop reading; frames already read are still processed and yielded."""
        self._stop.set()
        for source in self.sources:
            try:
                source.close()
            except Exception:  # closing is best effort; a broken source must not block the stop
                pass

    def __iter__(self) -> Iterator[FrameResult]:
        if self._started:
            raise RuntimeError("a Runner can be iterated once")
        self._started = True
        self._start_threads()
        try:
            while True:
                try:
                    item = self._outputs.get(timeout=1.0)
                except queue.Empty:  # a quiet source (a watched folder overnight): keep waiting
                    continue
                if item is END:
                    break
                if isinstance(item, BaseException):
                    raise item
                fr = self._finish(item)
                for stage in self.stages:
                    fr = stage(fr)
                    if fr is None:
                        break
                if fr is None or (fr.end_of_source and not fr.events):
                    continue
                yield fr
        finally:
            self.stop()
            self._drain()
            for thread in self._threads:
                thread.join(timeout=5)

    def ack(self, fr: FrameResult) -> None:
        """Say that ``fr`` went through the sinks: a source that keeps a checkpoint (a watched
        folder) records it, so a restart goes on after it. :func:`run` calls this; callers that
        iterate a Runner themselves may, after handling a result."""
        ack = getattr(self._by_name.get(fr.source), "ack", None)
        if ack is not None:
            ack(fr.frame)

    @contextlib.contextmanager
    def stop_on_signals(self, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)):
        """While inside, SIGTERM/SIGINT stop the run gracefully (frames in flight finish, sinks
        close) and :attr:`stopped_by` records the first; a second signal interrupts at once. Only
        in the main thread; elsewhere a no-op."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.getsignal(sig) for sig in signals}

        def _handler(signum, _frame):
            if self._stop.is_set():
                raise KeyboardInterrupt
            self.stopped_by = signum
            self.stop()

        for sig in signals:
            signal.signal(sig, _handler)
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # -- stages ---------------------------------------------------------------------------
    def _queue_for(self, index: int, source: Any):
        live = self.options.live if self.options.live is not None else bool(getattr(source, "live", False))
        if live:
            return Latest(lambda: self._count(index, "dropped"))
        return Bounded(self.options.queue_size)

    def _count(self, index: int, what: str, n: int = 1) -> None:
        with self._lock:
            setattr(self.stats[index], what, getattr(self.stats[index], what) + n)

    def _start_threads(self) -> None:
        for i, source in enumerate(self.sources):
            self._threads.append(threading.Thread(target=self._read, args=(i, source), daemon=True,
                                                  name=f"edgekit-read-{i}"))
        self._threads.append(threading.Thread(target=self._invoke_loop, daemon=True, name="edgekit-invoke"))
        for thread in self._threads:
            thread.start()

    def _read(self, index: int, source: Any) -> None:
        q = self._inputs[index]
        next_time: float | None = None  # fps sampling: the earliest timestamp to process next
        last_time: float | None = None
        period = 1.0 / self.options.fps if self.options.fps else None
        timeline = getattr(source, "timeline", True)  # still images have none: fps does not sample them
        paced = isinstance(q, Latest) and bool(getattr(source, "newest_only", False))
        # a video file forced live plays at its own pace, as a camera would send it (ffmpeg's -re):
        # frame k is read no earlier than the first one plus its media time
        played = isinstance(q, Latest) and bool(getattr(source, "media_clock", False))
        clock: tuple[float, float] | None = None  # (monotonic, media time) of the first frame read
        seen_dropped = 0  # frames the source itself replaced before they were taken
        refreshed = [-1]  # the invoke during which this reader last refreshed its waiting frame
        try:
            frames = iter(source.frames())
            while True:
                if paced:
                    self._wait_until_wanted(index, q, refreshed)
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                if played and frame.problem is None:
                    now = time.monotonic()
                    if clock is None or frame.timestamp < clock[1]:
                        clock = (now, frame.timestamp)  # the first frame, or the media's clock went back
                    elif self._stop.wait(clock[0] + (frame.timestamp - clock[1]) - now):
                        break
                if self._stop.is_set():
                    break
                if paced:
                    dropped = getattr(source, "dropped", 0)
                    if dropped > seen_dropped:  # read from the stream, replaced before the model wanted them
                        self._count(index, "read", dropped - seen_dropped)
                        self._count(index, "dropped", dropped - seen_dropped)
                        seen_dropped = dropped
                self._count(index, "read")
                if period is not None and frame.problem is None and timeline:
                    if last_time is not None and frame.timestamp < last_time - 1e-6:
                        next_time = None  # time went backwards (a file copied with its old mtime): restart
                    last_time = frame.timestamp
                    if next_time is not None and frame.timestamp < next_time - 1e-6:
                        self._count(index, "skipped")
                        continue
                    if next_time is None or next_time + period <= frame.timestamp:
                        next_time = frame.timestamp + period  # the first frame, or after a gap: restart the grid
                    else:
                        next_time += period
                q.put(self._prepare(index, frame), self._stop)
        except ConfigError as exc:  # a user's setting that cannot apply (a motion mask outside the frame): exit 2
            self._outputs.put(exc, self._stop)
        except EdgekitError as exc:  # a source that cannot go on reports it as a failed frame
            q.put(Item(Frame(getattr(source, "name", "?"), -1, 0.0, time.monotonic()), index, error=exc), self._stop)
        except Exception as exc:  # a bug in a source must not hang the run
            self._outputs.put(exc, self._stop)
        finally:
            q.put(END)

    def _gate_for(self, name: str) -> Any:
        options = self.options.motion
        if isinstance(options, dict):
            options = options.get(name)
        if options is None:
            return None
        from .gate import MotionGate

        return MotionGate(options)

    def _motion(self, index: int, item: Item) -> None:
        """Run the source's motion gate on the frame (its Y plane, or a draft decode of its file):
        ``item.gated`` when it need not be inferred."""
        frame, gate = item.frame, self._gates[index]
        t0 = time.perf_counter()
        if frame.path is not None:
            from .motion import grey_from_image

            grey, size = grey_from_image(frame.path)
        else:
            grey, size = frame.grey(), None
        infer, item.motion = gate.check(grey, frame.timestamp if getattr(self.sources[index], "timeline", True)
                                        else float(frame.index), size)
        item.gated = not infer and self._inferred[index]  # a result to repeat is on its way
        item.timings["motion"] = (time.perf_counter() - t0) * 1000

    def _prepare(self, index: int, frame: Frame) -> Item:
        item = Item(frame, index)
        if frame.problem is not None:
            item.error = ImageError(f"{frame.source}: {frame.problem}")
            return item
        if self._gates[index] is not None:
            try:
                self._motion(index, item)
            except ImageError as exc:
                item.error = exc
                return item
            if item.gated:
                if not self.options.keep_images and frame.pixels is not None:
                    item.frame = replace(frame, pixels=None)
                item.timings["queued"] = time.perf_counter()
                return item
        det = self.detector
        try:
            t0 = time.perf_counter()
            # a decoder's frame is only wrapped here: preprocess scales it from YUV in one swscale call
            loaded = det.load(frame.path if frame.path is not None else frame.pixels)
            if frame.path is None:
                loaded = replace(loaded, source=frame.source)
            t1 = time.perf_counter()
            item.tensor, item.transform = det.preprocess(loaded)
            t2 = time.perf_counter()
        except ImageError as exc:
            item.error = exc
            return item
        self._inferred[index] = True
        if self.options.keep_images:
            item.loaded = replace(loaded, decoded=None)  # the frame keeps it, for FrameResult.full_image()
        else:  # only the model-size tensor waits in the queues (what the planner counts)
            item.loaded = replace(loaded, image=None, decoded=None)
            if frame.pixels is not None:
                item.frame = replace(frame, pixels=None)
        item.timings.update({"decode": (t1 - t0) * 1000, "preprocess": (t2 - t1) * 1000, "queued": time.perf_counter()})
        previous = self._prepare_ms[index]
        self._prepare_ms[index] = (t2 - t0) * 1000 if not previous else 0.8 * previous + 0.2 * (t2 - t0) * 1000
        return item

    def _wait_until_wanted(self, index: int, q: Latest, refreshed: list[int]) -> None:
        """Live source that keeps only its newest frame: take (and prepare) the next frame when
        the model will want it, not as fast as frames come — preparing frames that a newer one
        replaces before the model gets to them only burns the CPU the model needs. Returns when
        the slot is empty, or once per invoke when the invoke in progress is about to end (so the
        frame waiting in the slot is replaced by a fresher one: latency stays near one invoke)."""
        with q._ready:
            while q._slot and not self._stop.is_set():
                started, seq = self._invoke_started, self._invoke_seq
                if started is not None and refreshed[0] != seq:
                    # start early enough to be ready when this invoke ends (prepare time x1.5 + 2 ms)
                    lead = (self._invoke_ms - 1.5 * self._prepare_ms[index] - 2.0) / 1000
                    if lead <= self._prepare_ms[index] / 1000:  # an invoke too short to gain a fresher frame
                        refreshed[0] = seq
                        continue
                    remaining = started + lead - time.monotonic()
                    if remaining <= 0:
                        refreshed[0] = seq
                        return
                    q._ready.wait(min(remaining, 0.1))
                else:
                    q._ready.wait(0.1)

    def _invoke_loop(self) -> None:
        live = list(range(len(self.sources)))
        try:
            while live:
                for index in list(live):  # round robin: sources share the interpreter fairly
                    try:
                        item = self._inputs[index].get(timeout=0.005 if len(live) > 1 else 0.2)
                    except queue.Empty:
                        continue
                    if item is END:
                        live.remove(index)
                        # after the source's last frame, in order: stages end what they keep for it
                        self._outputs.put(Item(Frame(self.stats[index].name, -1, 0.0, time.monotonic()), index,
                                                end=True))
                        continue
                    if item.gated:
                        item.timings["wait"] = (time.perf_counter() - item.timings.pop("queued")) * 1000
                    elif item.error is None:
                        started = time.perf_counter()
                        item.timings["wait"] = (started - item.timings.pop("queued")) * 1000
                        self._invoke_started, self._invoke_seq = time.monotonic(), self._invoke_seq + 1
                        for waiting in self._live_inputs:
                            waiting.wake()  # paced readers plan their refresh by this invoke
                        item.outputs = self.detector.invoke(item.tensor)
                        ms = (time.perf_counter() - started) * 1000
                        self._invoke_started = None
                        self._invoke_ms = ms if not self._invoke_ms else 0.8 * self._invoke_ms + 0.2 * ms
                        item.timings["invoke"] = ms
                        item.tensor = None
                    self._outputs.put(item)
        except BaseException as exc:  # the model failed: end the run with that error
            self._stop.set()
            self._outputs.put(exc)
        finally:
            self._outputs.put(END)

    def _finish(self, item: Item) -> FrameResult:
        frame = item.frame
        if item.end:
            return FrameResult(frame, None, source=self.stats[item.source].name, end_of_source=True)
        if item.error is not None:
            self._count(item.source, "failed")
            return FrameResult(frame, None, item.error, source=self.stats[item.source].name)
        name = self.stats[item.source].name
        latency = (time.monotonic() - frame.captured) * 1000
        if item.gated:  # nothing moved since the last inferred frame: its detections still hold
            last = self._last.get(item.source)
            if last is None:  # the frame it follows failed: nothing to repeat
                self._count(item.source, "failed")
                return FrameResult(frame, None, ImageError(f"{frame.source} frame {frame.index}: not inferred "
                                                           "(no motion) and no earlier result to repeat"),
                                   source=name)
            result = replace(last, source=frame.path or frame.source, frame=frame.index,
                             timestamp=frame.timestamp, latency_ms=latency, invoke_ms=None)
            self._count(item.source, "gated")
            self._count(item.source, "processed")
            return FrameResult(frame, result, None, None, item.timings, name, motion=item.motion, gated=True)
        started = time.perf_counter()
        detections = self.detector.decode(item.outputs, item.transform)
        item.timings["outputs"] = (time.perf_counter() - started) * 1000
        loaded = item.loaded
        result = DetectionResult(loaded.source, loaded.width, loaded.height, detections, frame.index,
                                 frame.timestamp, latency, invoke_ms=item.timings.get("invoke"))
        self._count(item.source, "processed")
        if self._gates[item.source] is not None:
            self._last[item.source] = result
        return FrameResult(frame, result, None, loaded.image, item.timings, name, motion=item.motion)

    def _drain(self) -> None:
        """Empty the queues so that blocked threads can see the stop (an ended live slot keeps
        answering END, so stop there)."""
        for q in [*self._inputs, self._outputs]:
            try:
                while q.get(timeout=0.01) is not END or not isinstance(q, Latest):
                    pass
            except queue.Empty:
                pass
