"""Memory soak: a live RTSP stream (30 fps 1280x720 H.264 from tests/rtsp_server.py, a pan over a photo)
into ``edgekit.watch(url, detector, live=True)`` for ``--duration`` seconds (at least 600 for the
issue's soak), sampling this process's RSS (/proc/self/status VmRSS) every 5 s. Prints the RSS slope
after a warm-up (least squares, MiB/min and MiB/hour; also over the second half alone), start/end/peak
RSS, threads and Python objects at warm-up end and at the end, frames processed, the runner's
per-source counters and the source's own. Prints numbers; not a test.

    python examples/benchmarks/bench_soak.py [--duration 600] [--model M] [--mqtt mqtt://host:1883]
                                             [--json FILE] [--url rtsp://...]

The default model (SSD MobileNet v1, 1 thread) keeps up with most of the 30 fps, so the pipeline
handles as many frames as it can: the most allocations per minute. ``--mqtt URL`` adds the MQTT sink
(detections, counts; a temporary outbox); it is off by default.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from rtsp_server import RtspServer, unusable_reason  # noqa: E402

import edgekit  # noqa: E402
from edgekit import Detector, DetectorOptions  # noqa: E402
from edgekit.runner import run  # noqa: E402

DATA = Path(os.environ.get("EDGEKIT_SHARED_DATA", REPO.parent / "shared" / "data"))


def main() -> None:
    args = _parse()
    if args.duration < 600:
        print(f"note: --duration {args.duration:g} s is shorter than the 600 s soak the issue asks for")
    if args.url is not None:
        soak(args, args.url)
        return
    reason = unusable_reason()
    if reason is not None:
        sys.exit(f"{reason}: apt-get install gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-good "
                 "gstreamer1.0-plugins-ugly")
    with RtspServer(size=(1280, 720), fps=30, image=args.image, bitrate=4000) as server:
        print(f"stream: {server.url}, 1280x720 30 fps H.264, a pan over {Path(args.image).name} (GStreamer's RTSP "
              "server, live)", flush=True)
        soak(args, server.url)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(DATA / "models/ssd_mobilenet_v1_quant/detect.tflite"))
    p.add_argument("--threads", type=int, default=1, help="interpreter threads")
    p.add_argument("--duration", type=float, default=600.0, help="seconds streamed")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between RSS samples")
    p.add_argument("--warmup", type=float, default=60.0, help="seconds left out of the slope")
    p.add_argument("--image", default=str(DATA / "images/coral_kite_and_cold.jpg"), help="the photo panned over")
    p.add_argument("--mqtt", metavar="URL", help="also publish through the MQTT sink (off by default)")
    p.add_argument("--json", metavar="FILE", help="also write the numbers here")
    p.add_argument("--url", help="soak this stream instead of starting the RTSP server")
    return p.parse_args()


def soak(args: argparse.Namespace, url: str) -> dict:
    print(f"load average at start: {_load()}; cores {os.cpu_count()}", flush=True)
    detector = Detector(args.model, DetectorOptions(num_threads=args.threads))
    runner = edgekit.watch(url, detector, live=True)
    with tempfile.TemporaryDirectory() as tmp:
        sinks = [_mqtt_sink(args, runner, f"{tmp}/outbox.db")] if args.mqtt else []
        sampler = _Sampler(runner, args.interval, args.warmup)
        stopper = threading.Timer(args.duration, lambda: (sampler.last(), runner.stop()))
        stopper.start()
        sampler.start()
        with runner.stop_on_signals():
            summary = run(runner, sinks)
        stopper.cancel()
        sampler.stop()
    report = _report(args, sampler, summary, runner.sources[0])
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return report


def _mqtt_sink(args: argparse.Namespace, runner, outbox: str):
    from edgekit.mqtt import MqttSettings, Publisher
    from edgekit.mqtt.sink import MqttSink
    from edgekit.stats import RunStats

    settings = MqttSettings.from_url(args.mqtt, device_id="edgekit-soak", outbox=outbox)
    print(f"MQTT sink: {args.mqtt} (outbox {outbox})", flush=True)
    stats = RunStats(runner.stats)
    runner.stages.append(stats.count)  # the run's statistics see every frame, published or not
    return MqttSink(Publisher(settings).start(), args.model, stats=stats)


def _status() -> dict[str, int]:
    """VmRSS and VmHWM (KiB) and Threads from /proc/self/status."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = int(value.split()[0])
    return out


class _Sampler:
    """Samples RSS every ``interval`` s (with the runner's counters); prints a line a minute;
    counts Python objects when the warm-up ends and at the end."""

    def __init__(self, runner, interval: float, warmup: float) -> None:
        self.runner, self.interval, self.warmup = runner, interval, warmup
        self.samples: list[dict] = []
        self.objects: dict[str, int] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="soak-sampler", daemon=True)

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread.start()

    def last(self) -> None:
        """The final sample and object count, taken while the stream still runs."""
        self._done.set()
        self._thread.join()
        self.objects["end"] = len(gc.get_objects())
        self.samples.append(self._sample())

    def stop(self) -> None:
        if not self._done.is_set():  # the run ended early (a signal, an error)
            self.last()

    def _sample(self) -> dict:
        stats = self.runner.stats[0]
        return {"t": time.monotonic() - self.started, **_status(), "read": stats.read, "processed": stats.processed,
                "dropped": stats.dropped}

    def _loop(self) -> None:
        print(f"{'t s':>5} {'RSS MiB':>8} {'threads':>7} {'processed':>9} {'dropped':>8}", flush=True)
        k = 0
        while not self._done.wait(max(0.0, self.started + k * self.interval - time.monotonic())):
            s = self._sample()
            self.samples.append(s)
            if "warmup" not in self.objects and s["t"] >= self.warmup:
                self.objects["warmup"] = len(gc.get_objects())
            if k % max(1, round(60 / self.interval)) == 0:
                print(f"{s['t']:5.0f} {s['VmRSS'] / 1024:8.1f} {s['Threads']:7d} {s['processed']:9d} {s['dropped']:8d}",
                      flush=True)
            k += 1


def _slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (x, y) points, or None with fewer than two."""
    if len(points) < 2:
        return None
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


def _report(args: argparse.Namespace, sampler: _Sampler, summary, source) -> dict:
    samples = sampler.samples
    steady = [(s["t"] / 60, s["VmRSS"] / 1024) for s in samples if s["t"] >= args.warmup]
    half = [p for p in steady if p[0] >= (steady[0][0] + steady[-1][0]) / 2] if steady else []
    slope, slope_half = _slope(steady), _slope(half)
    minute = [y for x, y in steady if x < steady[0][0] + 1], [y for x, y in steady if x > steady[-1][0] - 1]
    warm = next((s for s in samples if s["t"] >= args.warmup), samples[-1])
    end, seconds = samples[-1], samples[-1]["t"]
    stats = summary.sources[0]
    report = {
        "config": {"model": args.model, "threads": args.threads, "duration": args.duration, "warmup": args.warmup,
                   "interval": args.interval, "mqtt": args.mqtt, "stream": "rtsp 1280x720 30 fps, live"},
        "seconds": seconds, "samples": samples,
        "rss_mib": {"start": samples[0]["VmRSS"] / 1024, "after_warmup": warm["VmRSS"] / 1024,
                    "end": end["VmRSS"] / 1024, "peak_sampled": max(s["VmRSS"] for s in samples) / 1024,
                    "peak_vmhwm": end["VmHWM"] / 1024},
        "median_first_last_minute_mib": [statistics.median(m) for m in minute] if steady else None,
        "slope_mib_per_min": slope, "slope_mib_per_hour": None if slope is None else slope * 60,
        "slope_second_half_mib_per_hour": None if slope_half is None else slope_half * 60, "steady_samples": len(steady),
        "threads": {"after_warmup": warm["Threads"], "end": end["Threads"]}, "python_objects": sampler.objects,
        "processed": summary.processed, "failed": summary.failed,
        "runner_stats": vars(stats), "source": {"captured": source.captured_count, "dropped": source.dropped,
                                                "reconnects": source.reconnects, "status": source.status},
        "load_average_end": _load(),
    }
    _print(report)
    return report


def _print(r: dict) -> None:
    m, st, src = r["rss_mib"], r["runner_stats"], r["source"]
    print(f"ran {r['seconds']:.0f} s: processed {r['processed']} frames ({r['processed'] / r['seconds']:.1f}/s), failed "
          f"{r['failed']}; runner stats {st}; source: captured {src['captured']}, dropped {src['dropped']}, reconnects "
          f"{src['reconnects']}, status {src['status']}")
    print(f"RSS MiB: start {m['start']:.1f}, after the {r['config']['warmup']:.0f} s warm-up {m['after_warmup']:.1f}, end "
          f"{m['end']:.1f}, peak {m['peak_sampled']:.1f} sampled / {m['peak_vmhwm']:.1f} VmHWM")
    if r["slope_mib_per_min"] is not None:
        half = r["slope_second_half_mib_per_hour"]
        print(f"RSS slope after warm-up (least squares over {r['steady_samples']} samples): "
              f"{r['slope_mib_per_min']:+.4f} MiB/min = {r['slope_mib_per_hour']:+.2f} MiB/hour"
              + (f" (second half alone: {half:+.2f} MiB/hour)" if half is not None else ""))
        first, last = r["median_first_last_minute_mib"]
        print(f"median RSS of the first minute after warm-up {first:.1f} MiB, of the last minute {last:.1f} MiB "
              f"({last - first:+.1f} MiB; the median ignores single high samples: a 720p RGB frame is 2.6 MiB)")
    print(f"threads: {r['threads']['after_warmup']} after warm-up, {r['threads']['end']} at the end; Python objects: "
          f"{r['python_objects'].get('warmup')} after warm-up, {r['python_objects'].get('end')} at the end")
    print(f"load average at end: {r['load_average_end']}")


def _load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()
