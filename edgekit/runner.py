"""The detection loop as a pipeline: sources → decode + preprocess → invoke → decode outputs → caller.

Three kinds of threads joined by bounded queues, so decoding the next frame overlaps inference
(numpy, Pillow and the TFLite interpreter release the GIL):

* one **reader** thread per source: reads frames, samples them (``fps``), decodes image files
  (JPEG draft decoding at the model's size) and preprocesses them into input tensors;
* one **invoke** thread: the only user of the interpreter; takes tensors from all sources fairly
  (round robin) and runs them;
* the **caller's** thread (iterating :func:`watch`): decodes the outputs (NMS, labels) and gets
  each :class:`FrameResult` to hand to its sinks.

Two ways to consume: *every frame* (files, videos: nothing dropped, each source's results in order)
and *live* (cameras, streams: the newest frame wins; the reader's queue holds one frame, an older
one is dropped and counted, so a slow model never builds a backlog). ``stop()`` ends the run
gracefully: sources stop, frames already read finish and are yielded.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Sequence

from .errors import ConfigError, EdgekitError, ImageError
from .frames import Frame, FrameResult
from .results import DetectionResult
from .stats import SourceStats  # moved; importable from here too

__all__ = ["RunOptions", "FrameResult", "SourceStats", "RunSummary", "Runner", "watch", "run"]

_END = object()


@dataclass(frozen=True)
class RunOptions:
    """How to consume sources. ``None`` means "no limit" / "per source".

    Attributes:
        live: newest frame wins (drop what the model cannot keep up with); default: the
            source's own ``live`` flag (cameras and streams yes, files and videos no).
        fps: process at most this many frames per second of each source's timeline (by timestamp
            for videos, file time for watched folders, capture time for live sources; image files
            have no timeline and are all processed).
        queue_size: frames buffered between stages in every-frame mode (live mode keeps one);
            two keep the interpreter busy while the next frame decodes.
        keep_images: sinks may ask for each frame's full-size picture
            (:meth:`FrameResult.full_image`: annotation, snapshots, previews; ``Frame.rgb()`` and
            ``Frame.grey()``): the frame keeps its pixels — for video, RTSP and V4L2 the decoder's
            YUV frame, converted only if a sink asks — and ``FrameResult.image`` the PIL image
            that decoding an image file or array made. Off, only the model-size tensor waits in
            the queues (``Frame.pixels`` is None at the sinks).
        motion: gate inference by motion (:class:`edgekit.gate.GateOptions`, for every source,
            or a mapping of source names to them; None: every frame is inferred). A frame in
            which nothing moves is not inferred: its result carries the last inferred frame's
            detections (``FrameResult.gated``), so tracks and stationary objects stay; every
            ``recheck`` seconds one is inferred anyway.
    """

    live: bool | None = None
    fps: float | None = None
    queue_size: int = 2
    keep_images: bool = False
    motion: Any = None

    def frames_in_flight(self, sources: int = 1) -> int:
        """Most frames the pipeline holds at once with their model-size input (what the planner's
        memory prediction counts): per source its queue and the one being decoded, the one being
        invoked, the outputs queue and the one at the sinks (results queued for the sinks hold no
        input: see :meth:`full_frames_held`)."""
        return sources * (self.queue_size + 1) + 1 + max(2, self.queue_size) + 1

    def full_frames_held(self, sources: int = 1) -> int:
        """Most full-size RGB pictures' worth of memory that ``keep_images`` adds (0 without): at
        the sinks the slowest sink's queue and the one it writes — the other sinks are ahead of
        it and share the same frames — plus, per source, the preview's newest frame and the
        picture it draws on; in the queues before them each frame in flight keeps its decoder
        frame (YUV 4:2:0, half an RGB picture)."""
        from .sinkqueue import QUEUE_SIZE

        if not self.keep_images:
            return 0
        return QUEUE_SIZE + 1 + 2 * sources + (self.frames_in_flight(sources) + 1) // 2

    def __post_init__(self) -> None:
        if self.fps is not None and self.fps <= 0:
            from .errors import ConfigError

            raise ConfigError(f"fps must be above 0 (or None for every frame), found {self.fps}")
        if self.queue_size < 1:
            from .errors import ConfigError

            raise ConfigError(f"queue size must be at least 1, found {self.queue_size}")


@dataclass
class _Item:
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


class _Latest:
    """A one-slot queue where a new frame replaces an unconsumed one (counted as dropped)."""

    def __init__(self, on_drop) -> None:
        self._slot: list = []
        self._ended = False
        self._ready = threading.Condition()
        self._on_drop = on_drop

    def put(self, item: Any, stop: threading.Event | None = None) -> None:
        with self._ready:
            if item is _END:
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
                return _END
            raise queue.Empty

    def wake(self) -> None:
        with self._ready:
            self._ready.notify_all()


class _Bounded:
    """A bounded FIFO whose put gives up when the run is stopping (so readers never hang)."""

    def __init__(self, size: int) -> None:
        self._q: queue.Queue = queue.Queue(maxsize=size)

    def put(self, item: Any, stop: threading.Event | None = None) -> None:
        while True:
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                if stop is not None and stop.is_set() and item is not _END:
                    return

    def get(self, timeout: float) -> Any:
        return self._q.get(timeout=timeout)


def unique_names(sources: Sequence[Any]) -> list[str]:
    """Each source's name, made unique with " #2", " #3"… (per-source statistics, "only on change"
    and the video sink key on it); a source whose ``name`` can be set is renamed to match."""
    names: list[str] = []
    for i, source in enumerate(sources):
        base = name = str(getattr(source, "name", f"source{i}"))
        n = 1
        while name in names:
            n += 1
            name = f"{base} #{n}"
        if name != base:
            with contextlib.suppress(AttributeError):
                source.name = name
        names.append(name)
    return names


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
        self._live_inputs = [q for q in self._inputs if isinstance(q, _Latest)]
        self._outputs = _Bounded(max(2, self.options.queue_size))
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
                if item is _END:
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
            return _Latest(lambda: self._count(index, "dropped"))
        return _Bounded(self.options.queue_size)

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
        paced = isinstance(q, _Latest) and bool(getattr(source, "newest_only", False))
        # a video file forced live plays at its own pace, as a camera would send it (ffmpeg's -re):
        # frame k is read no earlier than the first one plus its media time
        played = isinstance(q, _Latest) and bool(getattr(source, "media_clock", False))
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
            q.put(_Item(Frame(getattr(source, "name", "?"), -1, 0.0, time.monotonic()), index, error=exc), self._stop)
        except Exception as exc:  # a bug in a source must not hang the run
            self._outputs.put(exc, self._stop)
        finally:
            q.put(_END)

    def _gate_for(self, name: str) -> Any:
        options = self.options.motion
        if isinstance(options, dict):
            options = options.get(name)
        if options is None:
            return None
        from .gate import MotionGate

        return MotionGate(options)

    def _motion(self, index: int, item: _Item) -> None:
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

    def _prepare(self, index: int, frame: Frame) -> _Item:
        item = _Item(frame, index)
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

    def _wait_until_wanted(self, index: int, q: _Latest, refreshed: list[int]) -> None:
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
                    if item is _END:
                        live.remove(index)
                        # after the source's last frame, in order: stages end what they keep for it
                        self._outputs.put(_Item(Frame(self.stats[index].name, -1, 0.0, time.monotonic()), index,
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
            self._outputs.put(_END)

    def _finish(self, item: _Item) -> FrameResult:
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
        answering _END, so stop there)."""
        for q in [*self._inputs, self._outputs]:
            try:
                while q.get(timeout=0.01) is not _END or not isinstance(q, _Latest):
                    pass
            except queue.Empty:
                pass


def watch(sources: Any, detector: Any, options: RunOptions | None = None, follow: bool = False,
          stages: Sequence[Any] = (), track: bool = False, zones: Sequence[Any] = (), **kwargs: Any) -> Runner:
    """Run ``detector`` over ``sources`` (one source, a list of them, or SOURCE strings as the CLI
    takes them) and iterate the results::

        for r in edgekit.watch("clip.mp4", detector):
            print(r.result.to_json())

        for r in edgekit.watch("clip.mp4", detector, zones=["drive=0,0.5,1,0.5,1,1,0,1"]):
            for event in r.events:      # new / update / end, Frigate's shape
                print(event.to_dict())

    ``kwargs`` are :class:`RunOptions` fields (``live``, ``fps``, ``queue_size``). ``follow``:
    folders are watched for new images until stopped (:class:`~edgekit.sources.WatchedFolder`).
    ``track``: track objects and build events (:func:`edgekit.stages.event_stages` at the
    detector's threshold; for ByteTrack's second stage give the detector a lower threshold, see
    ``TrackerOptions.low_score``); ``zones`` (:class:`~edgekit.zones.Zone` values or ``--zone``
    strings) imply ``track``. ``stages``: your own, applied after those. With tracking, each
    source's end arrives as a result with ``end_of_source`` set and ``result`` None, carrying the
    last ``end`` events.
    """
    from .sources import open_sources

    if isinstance(sources, str) or not isinstance(sources, (list, tuple)):
        sources = [sources]
    opened = []
    strings = [s for s in sources if isinstance(s, str)]
    if strings:
        opened.extend(open_sources(strings, follow=follow))
    opened.extend(s for s in sources if not isinstance(s, str))
    if kwargs:
        options = replace(options or RunOptions(), **kwargs)
    chain = list(stages)
    if track or zones:
        from .stages import event_stages
        from .zones import parse_zone

        parsed = [parse_zone(z) if isinstance(z, str) else z for z in zones]
        threshold = getattr(getattr(detector, "options", None), "score_threshold", None)
        if threshold is None:
            from .postprocess import SCORE_THRESHOLD as threshold
        chain = event_stages(threshold, zones=parsed) + chain
    return Runner(opened, detector, options, chain)


@dataclass(frozen=True)
class RunSummary:
    """How a run went: frames processed and failed, per-source counters."""

    processed: int
    failed: int
    sources: tuple[SourceStats, ...]


def run(runner: Runner, sinks: Sequence[Any], stages: Sequence[Any] = ()) -> RunSummary:
    """Pass every result of ``runner`` through ``stages`` (each returns the result — the same, or
    an enriched copy — or None to hold it back, see :mod:`edgekit.stages`) and hand what remains to
    every sink; close the sinks at the end (also on an error or interruption). Failed frames are
    counted, and handed to the sinks too (an :class:`~edgekit.sinks.ErrorLog` reports them); so is
    each source's end (``FrameResult.end_of_source``), after its last frame.

    Each sink writes in its own thread from its own bounded queue (:mod:`edgekit.sinkqueue`): a
    slow sink holds the run up only once its queue is full, and a sink whose ``queue_policy`` is
    ``"drop_oldest"`` (the preview) never does. A sink may carry its own ``stages`` attribute:
    stages only that sink applies (e.g. "only on change" for MQTT). A result is acknowledged to
    its source (``Runner.ack``: a watched folder's checkpoint) once every sink has handled it.
    The first error a sink raises ends the run and is raised here."""
    from .sinkqueue import Completion, SinkWorker

    processed = failed = 0
    ack = getattr(runner, "ack", None)  # a Runner; any iterable of results will do
    completion = Completion(len(sinks), lambda fr: ack(fr) if ack is not None and not fr.end_of_source else None)
    workers: list[SinkWorker] = []
    try:
        for sink in sinks:
            workers.append(SinkWorker(sink, completion))
        for key, fr in enumerate(runner):
            fr_in = fr
            if fr.end_of_source:
                pass
            elif fr.error is None:
                processed += 1
            else:
                failed += 1
            for stage in stages:
                fr = stage(fr)
                if fr is None:
                    break
            if not workers:
                if ack is not None and not fr_in.end_of_source:
                    ack(fr_in)
                continue
            completion.start(key, fr_in)
            for worker in workers:  # a result held back (None) passes too: acknowledgements stay in order
                worker.put(key, fr)
    finally:
        errors: list[BaseException] = []
        interrupted: BaseException | None = None
        for worker in workers:  # every sink closes (a video file gets its index) even if one fails
            try:
                if not worker.close(None if interrupted is None else 1.0):
                    print(f"edgekit: {type(worker.sink).__name__} did not close in time; left behind",
                          file=sys.stderr, flush=True)
            except KeyboardInterrupt as exc:  # a second signal while a sink finishes: stop waiting for it
                interrupted = exc
                print(f"edgekit: stopped waiting for {type(worker.sink).__name__}", file=sys.stderr, flush=True)
            except Exception as exc:
                errors.append(exc)
        if interrupted is not None:
            raise interrupted
        if errors:
            raise errors[0]
    return RunSummary(processed, failed, tuple(runner.stats))
