"""``edgekit bench``: what this device can do with a model — TensorFlow-free, on the real pipeline.

One run measures, in this process:

* **load** — creating the :class:`~edgekit.detector.Detector` (interpreter, metadata, checks);
* **first inference** — the first ``invoke()`` (XNNPACK packs weights lazily, so it is slower);
* **steady fps** — frames through :func:`edgekit.watch` (the runner ``edgekit detect`` uses) with a
  null sink, after the pipeline has filled; **per-stage ms** from each result's ``timings``
  (mean decode, preprocess, wait, invoke, outputs; :mod:`edgekit.stats`, as the MQTT ``stats`` topic)
  and a bare ``invoke()`` loop on one tensor for comparison (``efficiency`` = runner fps / bare fps);
* **peak RSS** of the process (``ru_maxrss``);
* a **threads sweep**: interpreter threads 1..usable cores, each beside the runner's one decode
  thread per source — the decode/inference split — and the planner's pick
  (:func:`edgekit.plan.default_threads`).

Without a SOURCE it runs on synthetic 1280x720 JPEGs written to a temporary folder (so a device
with nothing else still exercises JPEG decoding).
"""

from __future__ import annotations

import math
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from . import stats as _stats

__all__ = ["BenchOptions", "StageTimes", "SweepPoint", "BenchReport", "run_bench", "format_report", "save_plot",
           "fps_ticks"]

STAGES = _stats.STAGES[:_stats.STAGES.index("outputs") + 1]  # up to the sinks: bench has none
_SYNTHETIC_SIZE = (1280, 720)
_SYNTHETIC_FILES = 8


@dataclass(frozen=True)
class BenchOptions:
    """What to measure. ``threads=None``: the planner's default; ``sweep=None``: 1..usable cores.

    Attributes:
        frames: frames timed per runner measurement (after ``warmup`` frames that fill the pipeline).
        warmup: frames excluded from the steady-state numbers.
        threads: interpreter threads of the main measurement.
        sweep: interpreter thread counts to sweep (empty: no sweep).
    """

    frames: int = 64
    warmup: int = 4
    threads: int | None = None
    sweep: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        from .errors import ConfigError

        if self.frames < 1 or self.warmup < 0:
            raise ConfigError(f"frames must be >= 1 and warmup >= 0, found frames={self.frames}, warmup={self.warmup}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be at least 1, found {self.threads}")
        if self.sweep is not None and any(t < 1 for t in self.sweep):
            raise ConfigError(f"every swept thread count must be at least 1, found {self.sweep}")


@dataclass(frozen=True)
class StageTimes:
    """Mean milliseconds per frame of each runner stage (``wait``: queued before invoke)."""

    decode: float
    preprocess: float
    wait: float
    invoke: float
    outputs: float


@dataclass(frozen=True)
class SweepPoint:
    """One interpreter thread count beside the runner's decode thread(s)."""

    threads: int
    decode_threads: int
    fps: float
    bare_fps: float
    stages: StageTimes


@dataclass(frozen=True)
class BenchReport:
    """Everything ``edgekit bench`` prints (``to_dict()`` is the ``--json`` document)."""

    model: str
    source: str
    synthetic: bool
    runtime: str
    usable_cores: int
    threads: int
    threads_reason: str
    input_size: tuple[int, int]
    load_ms: float
    first_inference_ms: float
    frames: int
    fps: float
    ms_per_frame: float
    bare_invoke_ms: float
    bare_fps: float
    efficiency: float
    stages: StageTimes
    peak_rss_bytes: int
    sweep: tuple[SweepPoint, ...] = field(default_factory=tuple)
    best_threads: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _NullSink:
    """Discards results, keeping only when each arrived and its stage timings (failed frames
    arrive too, without timings)."""

    def __init__(self) -> None:
        from .stats import FrameWindow

        self.window = FrameWindow(seconds=None, clock=time.perf_counter)
        self.count = 0
        self.failed = 0

    def write(self, fr: Any) -> None:
        self.count += 1
        if fr.error is None:
            self.window.add(fr.frame.source, fr.result.latency_ms, fr.timings)
        else:
            self.window.add(fr.frame.source)
            self.failed += 1

    def close(self) -> None:
        pass


def _synthetic_folder(folder: str) -> str:
    """A few 1280x720 JPEGs with gradients, shapes and noise (JPEG decode cost like a photo)."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    w, h = _SYNTHETIC_SIZE
    ramp = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    for i in range(_SYNTHETIC_FILES):
        base = (ramp * rng.uniform(0.3, 1.0, 3) + rng.normal(0, 12, (h, w, 3))).clip(0, 255).astype(np.uint8)
        img = Image.fromarray(base)
        draw = ImageDraw.Draw(img)
        for _ in range(6):
            x, y = int(rng.integers(0, w - 200)), int(rng.integers(0, h - 200))
            draw.rectangle((x, y, x + int(rng.integers(40, 200)), y + int(rng.integers(40, 200))),
                           fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        img.save(os.path.join(folder, f"synthetic-{i}.jpg"), quality=90)
    return folder


def _source_factory(source: str | None, needed: int, tmp: str) -> tuple[Callable[[], list], str, bool]:
    """A function opening fresh sources for one runner measurement with at least ``needed`` frames
    (image arguments are repeated; other kinds are read until ``needed`` frames)."""
    from .sources import expand_sources, open_sources

    synthetic = source is None
    argument = _synthetic_folder(tmp) if synthetic else source
    images = [p for p, problem in expand_sources([argument]) if problem is None]
    opened = open_sources([argument])
    kind_is_images = len(opened) == 1 and type(opened[0]).__name__ == "ImageFiles"
    for s in opened:
        s.close()
    if kind_is_images:
        if not images:
            from .errors import ImageError

            raise ImageError(f"{argument}: no images to benchmark on")
        repeat = math.ceil(needed / len(images))
        return (lambda: open_sources([argument] * repeat)), argument, synthetic
    return (lambda: open_sources([argument])), argument, synthetic


def _measure_runner(detector: Any, open_fresh: Callable[[], list], frames: int, warmup: int) -> tuple[float, StageTimes]:
    """Steady fps (from the ``warmup``-th result to the last) and mean stage ms of those frames."""
    from .runner import run, watch
    from .stats import summarize

    sink = _NullSink()
    runner = watch(open_fresh(), detector)
    total = frames + warmup

    class _Stop:
        def write(self, fr: Any) -> None:
            if sink.count >= total:
                runner.stop()

        def close(self) -> None:
            pass

    run(runner, [sink, _Stop()])
    samples = sink.window.samples()[:total]
    if len(samples) < 2:
        from .errors import ImageError

        raise ImageError(f"the source gave {len(samples)} frame(s); at least 2 are needed to time the pipeline")
    steady = summarize(samples[min(warmup, len(samples) - 2):])  # from the warmup-th result to the last
    return steady.fps, StageTimes(*(steady.stage_ms.get(k, 0.0) for k in STAGES))


def _bare_invoke_ms(detector: Any, tensor: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        detector.invoke(tensor)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _measure_point(detector: Any, tensor: Any, open_fresh: Callable[[], list],
                   options: BenchOptions) -> tuple[float, StageTimes, float]:
    """Pipeline fps and stage ms at this detector's thread count, and its bare ``invoke()`` ms:
    the faster median of a run just before and one just after the pipeline's, so the bare figure
    bounds the pipeline from the same minute of this machine's load (a busy machine otherwise
    gives an efficiency above 1)."""
    repeat = max(5, min(options.frames, 30))
    before = _bare_invoke_ms(detector, tensor, repeat)
    fps, stages = _measure_runner(detector, open_fresh, options.frames, options.warmup)
    after = _bare_invoke_ms(detector, tensor, repeat)
    return fps, stages, min(before, after)


def _first_tensor(detector: Any, open_fresh: Callable[[], list]) -> Any:
    sources = open_fresh()
    try:
        for frame in sources[0].frames():
            if frame.problem is None:
                return detector.preprocess(detector.load(frame.path if frame.path is not None else frame.pixels))[0]
    finally:
        for s in sources:
            s.close()
    from .errors import ImageError

    raise ImageError("the source gave no readable frame")


def _peak_rss() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def run_bench(model: str, source: str | None = None, options: BenchOptions | None = None,
              progress: Callable[[str], None] | None = None) -> BenchReport:
    """Benchmark ``model`` on ``source`` (any SOURCE ``edgekit detect`` takes; None: synthetic).

    Raises the errors :class:`~edgekit.detector.Detector` and the sources raise (ModelError,
    ImageError, ConfigError, RuntimeNotFoundError).
    """
    from .detector import Detector, DetectorOptions
    from .device import usable_cores
    from .plan import default_threads

    options = options or BenchOptions()
    say = progress or (lambda _msg: None)
    cores = usable_cores()
    threads, reason = (options.threads, "asked for") if options.threads else default_threads(cores)
    sweep = options.sweep if options.sweep is not None else tuple(range(1, cores + 1))
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
        open_fresh, name, synthetic = _source_factory(source, options.frames + options.warmup, tmp)
        started = time.perf_counter()
        detector = Detector(model, DetectorOptions(num_threads=threads))
        load_ms = (time.perf_counter() - started) * 1000
        tensor = _first_tensor(detector, open_fresh)
        started = time.perf_counter()
        detector.invoke(tensor)
        first_ms = (time.perf_counter() - started) * 1000
        say(f"loaded in {load_ms:.0f} ms, first inference {first_ms:.1f} ms; timing {options.frames} frames")
        fps, stages, bare_ms = _measure_point(detector, tensor, open_fresh, options)
        points = []
        for t in sweep:
            if t == threads:  # the headline's own measurement: one report, one number per thread count
                point_fps, point_stages, point_bare = fps, stages, bare_ms
            else:
                det = Detector(model, DetectorOptions(num_threads=t))
                det.invoke(tensor)
                point_fps, point_stages, point_bare = _measure_point(det, tensor, open_fresh, options)
            points.append(SweepPoint(t, 1, point_fps, 1000.0 / point_bare, point_stages))
            say(f"threads {t}: {point_fps:.1f} fps through the pipeline, bare invoke {point_bare:.1f} ms")
    best = max(points, key=lambda p: p.fps).threads if points else None
    return BenchReport(
        model=os.fspath(model), source=name, synthetic=synthetic, runtime=str(detector.runtime), usable_cores=cores,
        threads=threads, threads_reason=reason, input_size=tuple(detector.input_size), load_ms=load_ms,
        first_inference_ms=first_ms, frames=options.frames, fps=fps, ms_per_frame=1000.0 / fps,
        bare_invoke_ms=bare_ms, bare_fps=1000.0 / bare_ms, efficiency=fps * bare_ms / 1000.0, stages=stages,
        peak_rss_bytes=_peak_rss(), sweep=tuple(points), best_threads=best)


def format_report(r: BenchReport) -> str:
    """The human-readable report (one screen)."""
    s = r.stages
    lines = [
        f"model        {r.model} ({r.input_size[0]}x{r.input_size[1]}, {r.runtime})",
        f"source       {'synthetic 1280x720 JPEGs' if r.synthetic else r.source}",
        f"threads      {r.threads} interpreter + 1 decode per source ({r.threads_reason}); {r.usable_cores} usable cores",
        f"load         {r.load_ms:.0f} ms",
        f"first infer  {r.first_inference_ms:.1f} ms",
        f"steady       {r.fps:.1f} fps through the pipeline ({r.ms_per_frame:.1f} ms/frame over {r.frames} frames)",
        f"bare invoke  {r.bare_invoke_ms:.1f} ms = {r.bare_fps:.1f} fps (invoke() alone, same threads); pipeline "
        f"efficiency {r.efficiency:.2f} = steady / bare" + (" (above 1: the machine's load changed while measuring; "
                                                           "run again)" if r.efficiency > 1.0 else ""),
        f"stages (ms)  decode {s.decode:.1f}  preprocess {s.preprocess:.1f}  invoke {s.invoke:.1f}  outputs "
        f"{s.outputs:.1f}  (queued {s.wait:.1f})",
        f"peak RSS     {r.peak_rss_bytes / (1 << 20):.0f} MiB",
    ]
    if r.sweep:
        lines.append(f"threads sweep (interpreter threads + 1 decode thread; {r.threads}T is the measurement above):")
        for p in r.sweep:
            mark = "*" if p.threads == r.best_threads else " "
            lines.append(f"  {mark} {p.threads}T  {p.fps:6.1f} fps  (bare {p.bare_fps:6.1f} fps; decode+preprocess "
                         f"{p.stages.decode + p.stages.preprocess:.1f} ms, invoke {p.stages.invoke:.1f} ms)")
        if r.best_threads != r.threads:
            lines.append(f"  note: {r.best_threads} thread(s) beat the default {r.threads} here; pass --threads "
                         f"{r.best_threads} to edgekit detect (on a busy machine this can be noise: run again)")
    return "\n".join(lines)


def fps_ticks(highest: float, count: int = 5) -> list[float]:
    """Round y-axis values from 0 up to at least ``highest`` (steps of 1, 2 or 5 × 10^k)."""
    raw = max(highest, 1e-9) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return [round(i * step, 10) for i in range(int(math.ceil(highest / step)) + 1)] if highest > 0 else [0.0, 1.0]


def save_plot(r: BenchReport, path: str) -> None:
    """A PNG drawn with Pillow: fps per thread count (pipeline and bare) and the stage split."""
    from PIL import Image, ImageDraw

    points = list(r.sweep) or [SweepPoint(r.threads, 1, r.fps, r.bare_fps, r.stages)]
    w, h, left, bottom, top = 640, 400, 60, 340, 40
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 10), f"edgekit bench: {os.path.basename(r.model)}", fill="black")
    ticks = fps_ticks(max(max(p.fps, p.bare_fps) for p in points))
    top_fps = ticks[-1]
    for value in ticks:  # the y axis: a tick and its value every step
        y = bottom - (bottom - top) * value / top_fps
        d.line((left - 5, y, left, y), fill="black")
        d.text((left - 8 - 6 * len(f"{value:g}"), y - 6), f"{value:g}", fill="black")
    d.text((8, top - 16), "fps", fill="black")
    slot = (w // 2 - left) / len(points)
    for i, p in enumerate(points):
        x = left + i * slot
        for j, (value, colour) in enumerate(((p.fps, (40, 110, 200)), (p.bare_fps, (170, 170, 170)))):
            y = bottom - (bottom - top) * value / top_fps
            d.rectangle((x + 6 + j * slot * 0.4, y, x + slot * 0.4 * (j + 1), bottom), fill=colour)
        d.text((x + 6, bottom + 6), f"{p.threads}T", fill="black")
        d.text((x + 6, bottom + 20), f"{p.fps:.1f}", fill=(40, 110, 200))
    d.line((left, top, left, bottom, w // 2, bottom), fill="black")
    d.text((left, h - 24), "fps: pipeline (blue), bare invoke (grey)", fill="black")
    s = r.stages
    parts = [("decode", s.decode, (230, 140, 40)), ("preprocess", s.preprocess, (240, 200, 60)),
             ("invoke", s.invoke, (40, 110, 200)), ("outputs", s.outputs, (90, 170, 90))]
    total = max(sum(v for _, v, _ in parts), 1e-9)
    y = bottom
    x0 = w // 2 + 60
    for label, value, colour in parts:
        height = (bottom - top) * value / total
        d.rectangle((x0, y - height, x0 + 60, y), fill=colour)
        d.text((x0 + 70, y - height / 2 - 6), f"{label} {value:.1f} ms", fill="black")
        y -= height
    d.text((x0 - 20, h - 24), f"stage ms at {r.threads}T ({r.fps:.1f} fps)", fill="black")
    try:
        img.save(path, "PNG")
    except OSError as exc:
        from .errors import ConfigError

        raise ConfigError(f"--plot {path}: cannot write ({exc.strerror or exc})") from None
