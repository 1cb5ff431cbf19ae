"""Statistics of a detection run, shared by the runner, the MQTT ``stats`` topic and ``edgekit bench``.

* :class:`SourceStats` — the counters the runner keeps per source: frames read, processed, dropped
  (live mode: the newest frame won), skipped (``fps`` sampling) and failed;
* :class:`FrameWindow` — the processed frames of a rolling window (a minute by default): when each
  came out, its latency (capture → result) and its per-stage milliseconds (``decode``,
  ``preprocess``, ``wait``, ``invoke``, ``outputs`` from the runner, ``publish`` from the MQTT
  sink); :meth:`FrameWindow.summary` gives fps, latency p50/p95/max and mean ms per stage;
* :class:`CounterRates` — fps in (frames read) and fps out (frames processed) per source, from
  successive readings of the runner's counters;
* :func:`summarize` — the arithmetic behind them (pure); :func:`stats_fields` — what the ``stats``
  topic says about the run.

Percentiles are nearest-rank: always a latency that was measured.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

__all__ = [
    "STAGES",
    "CounterRates",
    "RunStats",
    "FrameWindow",
    "Sample",
    "SourceStats",
    "WindowSummary",
    "percentile",
    "stats_fields",
    "summarize",
]

STAGES = ("decode", "preprocess", "wait", "invoke", "outputs", "publish")


@dataclass
class SourceStats:
    """Per-source counters (kept by the runner; read by stats publishers and ``bench``)."""

    name: str
    read: int = 0
    processed: int = 0
    dropped: int = 0
    skipped: int = 0  # sampled out by fps
    failed: int = 0
    gated: int = 0  # processed without inference: nothing moved (RunOptions.motion)


@dataclass(frozen=True)
class Sample:
    """One processed frame of ``source`` that came out at ``at`` (seconds on the window's clock);
    with ``frame=False``, only stage times measured after the frame was counted (e.g. publish)."""

    at: float
    source: str
    latency_ms: float | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    frame: bool = True


@dataclass(frozen=True)
class WindowSummary:
    """Frames in the window, their rate, latency percentiles (None without latencies) and mean
    milliseconds per stage (over the samples that timed it; stages in pipeline order)."""

    frames: int
    fps: float
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    latency_ms_max: float | None
    stage_ms: dict[str, float]

    def fields(self) -> dict[str, Any]:
        """Rounded, for a JSON message."""
        def r(v: float | None, digits: int = 1) -> float | None:
            return None if v is None else round(v, digits)

        return {"fps": round(self.fps, 2), "latency_ms_p50": r(self.latency_ms_p50),
                "latency_ms_p95": r(self.latency_ms_p95), "latency_ms_max": r(self.latency_ms_max),
                "stage_ms": {k: round(v, 2) for k, v in self.stage_ms.items()}}


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank ``q``-th percentile (0 < q ≤ 100) of ascending values; None if empty."""
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(q / 100 * len(sorted_values)) - 1)]


def _stage_order(name: str) -> tuple[int, str]:
    return (STAGES.index(name) if name in STAGES else len(STAGES), name)


def summarize(samples: Sequence[Sample]) -> WindowSummary:
    """fps from the first to the last frame sample ((n − 1) / span; samples in time order),
    latency percentiles over the frames that have one, mean ms per stage."""
    frames = [s for s in samples if s.frame]
    span = frames[-1].at - frames[0].at if len(frames) > 1 else 0.0
    latencies = sorted(s.latency_ms for s in frames if s.latency_ms is not None)
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for s in samples:
        for stage, ms in s.timings.items():
            sums[stage] = sums.get(stage, 0.0) + ms
            counts[stage] = counts.get(stage, 0) + 1
    return WindowSummary(
        frames=len(frames), fps=(len(frames) - 1) / span if span > 0 else 0.0,
        latency_ms_p50=percentile(latencies, 50), latency_ms_p95=percentile(latencies, 95),
        latency_ms_max=latencies[-1] if latencies else None,
        stage_ms={k: sums[k] / counts[k] for k in sorted(sums, key=_stage_order)})


class FrameWindow:
    """Processed frames of the last ``seconds`` (None: all of them), safe to add to from one thread
    while another reads the summary (a stats publisher).

    Args:
        seconds: window length; older samples are forgotten.
        clock: the time base of ``at`` (``time.monotonic`` by default).
    """

    def __init__(self, seconds: float | None = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._samples: collections.deque[Sample] = collections.deque()
        self._lock = threading.Lock()

    def add(self, source: str, latency_ms: float | None = None, timings: Mapping[str, float] | None = None,
            at: float | None = None) -> None:
        """Count one processed frame (its latency and per-stage ms, if known)."""
        self._append(Sample(self.clock() if at is None else at, source, latency_ms, dict(timings or {})))

    def add_time(self, stage: str, ms: float, source: str = "", at: float | None = None) -> None:
        """A stage time measured after its frame was counted (e.g. publish); not a frame."""
        self._append(Sample(self.clock() if at is None else at, source, None, {stage: ms}, frame=False))

    def samples(self, source: str | None = None) -> list[Sample]:
        """The samples in the window now (of ``source`` only, if given), oldest first."""
        with self._lock:
            self._trim(self.clock())
            return [s for s in self._samples if source is None or s.source == source]

    def summary(self, source: str | None = None) -> WindowSummary:
        """:func:`summarize` of the window (of ``source`` only, if given)."""
        return summarize(self.samples(source))

    def _append(self, sample: Sample) -> None:
        with self._lock:
            self._samples.append(sample)
            self._trim(sample.at)

    def _trim(self, now: float) -> None:
        if self.seconds is not None:
            while self._samples and now - self._samples[0].at > self.seconds:
                self._samples.popleft()


class CounterRates:
    """fps in (frames read) and fps out (frames processed) of each source over about the last
    ``seconds``, from readings of the runner's counters: one at construction (the baseline), one
    at each :meth:`rates` call.

    Args:
        sources: the runner's :class:`SourceStats` (``Runner.stats``), read, never written.
    """

    def __init__(self, sources: Sequence[SourceStats], seconds: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sources = sources
        self.seconds = seconds
        self.clock = clock
        self._readings: collections.deque[tuple[float, tuple[tuple[int, int], ...]]] = collections.deque()
        self._lock = threading.Lock()
        self.rates()

    def rates(self) -> list[tuple[float | None, float | None]]:
        """(fps in, fps out) per source, in ``sources`` order; None before any time has passed."""
        now = self.clock()
        reading = tuple((s.read, s.processed) for s in self.sources)
        with self._lock:
            self._readings.append((now, reading))
            # keep the newest reading that is at least `seconds` old as the base, and all after it
            while len(self._readings) > 2 and now - self._readings[1][0] >= self.seconds:
                self._readings.popleft()
            then, base = self._readings[0]
        span = now - then
        if span <= 0:
            return [(None, None)] * len(reading)
        return [((r - r0) / span, (p - p0) / span) for (r, p), (r0, p0) in zip(reading, base)]


def stats_fields(frames: FrameWindow, sources: Sequence[SourceStats] = (),
                 rates: CounterRates | None = None) -> dict[str, Any]:
    """What the ``stats`` topic says about the run: over the window, fps, latency p50/p95/max and
    mean ms per stage; this process's RSS; and per source (with ``sources``) its counters, fps in
    and out (with ``rates``) and its latency and stage ms (frames are counted under
    ``FrameResult.source``, the runner's name for their source)."""
    from .device import current_rss

    doc = {**frames.summary().fields(), "rss_mib": round(current_rss() / 2**20, 1)}
    if sources:
        per_second = rates.rates() if rates is not None else [(None, None)] * len(sources)
        doc["sources"] = []
        for source, (fps_in, fps_out) in zip(sources, per_second):
            entry = {**asdict(source), "fps_in": None if fps_in is None else round(fps_in, 2),
                     "fps_out": None if fps_out is None else round(fps_out, 2)}
            own = frames.summary(source.name)
            if own.frames:
                entry.update({k: v for k, v in own.fields().items() if k != "fps"})
            doc["sources"].append(entry)
    return doc


class RunStats:
    """The statistics of one run, kept apart from any sink: a runner stage (:meth:`count`) sees
    every processed frame; :meth:`fields` is what the MQTT ``stats`` topic says about the run.

    Args:
        sources: the runner's :class:`SourceStats` (``Runner.stats``); may be set later (the
            runner is made with this object's stage), which starts the fps in/out readings.
        seconds: the rolling window.
    """

    def __init__(self, sources: Sequence[SourceStats] = (), seconds: float = 60.0) -> None:
        self.frames = FrameWindow(seconds)
        self._rates: CounterRates | None = None
        self._sources: Sequence[SourceStats] = ()
        self.sources = sources

    @property
    def sources(self) -> Sequence[SourceStats]:
        return self._sources

    @sources.setter
    def sources(self, sources: Sequence[SourceStats]) -> None:
        self._sources = sources
        self._rates = CounterRates(sources) if sources else None

    def count(self, fr: Any) -> Any:
        """Stage: count a processed frame (latency, stage ms) under its source; pass it on."""
        if fr.result is not None:
            self.frames.add(fr.source, fr.result.latency_ms, fr.timings)
        return fr

    def add_time(self, stage: str, ms: float, source: str = "") -> None:
        """A stage time measured after the frame was counted (a sink's ``publish``)."""
        self.frames.add_time(stage, ms, source)

    def fields(self) -> dict[str, Any]:
        """:func:`stats_fields` of this run."""
        return stats_fields(self.frames, self._sources, self._rates)
