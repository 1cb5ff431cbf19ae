"""edgekit.stats: the arithmetic on chosen inputs (a controllable clock), then on a real run of the
runner, where the window's numbers must equal those recomputed from each frame's own timings."""

from __future__ import annotations

import math
import threading

import pytest

from edgekit.stats import (
    STAGES,
    CounterRates,
    FrameWindow,
    Sample,
    SourceStats,
    percentile,
    stats_fields,
    summarize,
)


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_percentile_is_nearest_rank():
    values = sorted([12.0, 7.5, 30.0, 9.0, 11.0, 480.0, 8.0, 10.5, 95.0, 13.0])
    assert percentile(values, 50) == 11.0  # 5th of 10
    assert percentile(values, 95) == 480.0 and percentile(values, 90) == 95.0
    assert percentile(values, 100) == 480.0 and percentile(values, 1) == 7.5
    assert percentile([], 50) is None and percentile([3.0], 95) == 3.0


def test_summarize_rates_latency_and_stage_means():
    samples = [Sample(10.0, "a", 20.0, {"decode": 2.0, "invoke": 10.0}),
               Sample(10.5, "a", None, {"decode": 4.0, "invoke": 12.0}),
               Sample(10.6, "a", None, {"publish": 1.5}, frame=False),  # a stage time, not a frame
               Sample(11.0, "b", 40.0, {"invoke": 14.0, "custom": 1.0, "outputs": 0.5}),
               Sample(12.0, "b", 30.0, {})]
    s = summarize(samples)
    assert s.frames == 4 and s.fps == pytest.approx(3 / 2.0)
    assert (s.latency_ms_p50, s.latency_ms_p95, s.latency_ms_max) == (30.0, 40.0, 40.0)
    assert s.stage_ms == {"decode": 3.0, "invoke": 12.0, "outputs": 0.5, "publish": 1.5, "custom": 1.0}
    assert list(s.stage_ms) == ["decode", "invoke", "outputs", "publish", "custom"]  # pipeline order
    empty = summarize([])
    assert (empty.frames, empty.fps, empty.latency_ms_p50, empty.stage_ms) == (0, 0.0, None, {})
    assert summarize(samples[:1]).fps == 0.0  # one frame has no rate
    assert s.fields() == {"fps": 1.5, "latency_ms_p50": 30.0, "latency_ms_p95": 40.0, "latency_ms_max": 40.0,
                          "stage_ms": {"decode": 3.0, "invoke": 12.0, "outputs": 0.5, "publish": 1.5, "custom": 1.0}}


def test_frame_window_forgets_what_is_older_than_its_window():
    clock = Clock()
    w = FrameWindow(seconds=60, clock=clock)
    for i in range(10):  # one frame a second, latency 10 .. 19 ms
        w.add("cam", 10.0 + i, {"invoke": float(i)})
        clock.t += 1
    w.add_time("publish", 3.0, "cam")
    assert w.summary().frames == 10 and w.summary().fps == pytest.approx(1.0)
    assert w.summary("cam").stage_ms == {"invoke": 4.5, "publish": 3.0} and w.summary("other").frames == 0
    clock.t = 100.0 + 65.5  # the first six frames are now more than a minute old
    s = w.summary()
    assert s.frames == 4 and (s.latency_ms_p50, s.latency_ms_max) == (17.0, 19.0)
    clock.t += 3600
    assert w.summary().frames == 0 and w.summary().fps == 0.0
    keep_all = FrameWindow(seconds=None, clock=clock)
    keep_all.add("x", at=0.0)
    keep_all.add("x", at=1e9)
    assert len(keep_all.samples()) == 2


def test_frame_window_is_safe_across_threads():
    from concurrent.futures import ThreadPoolExecutor

    w = FrameWindow()
    stop = threading.Event()

    def read() -> int:
        reads = 0
        while not stop.is_set():
            w.summary()
            w.summary("s1")
            reads += 1
        return reads

    with ThreadPoolExecutor(2) as pool:
        readers = [pool.submit(read) for _ in range(2)]
        for i in range(20000):
            w.add(f"s{i % 3}", float(i % 50), {"decode": 1.0, "invoke": 2.0})
            if i % 7 == 0:
                w.add_time("publish", 0.5, "s1")
        stop.set()
        assert all(r.result() > 0 for r in readers)  # a torn read would raise here
    assert w.summary().frames == 20000


def test_counter_rates_give_fps_in_and_out_per_source():
    clock = Clock()
    cam, clip = SourceStats("cam"), SourceStats("clip.mp4")
    rates = CounterRates([cam, clip], seconds=60, clock=clock)  # baseline: all zero at t=100
    assert rates.rates() == [(None, None), (None, None)]  # no time has passed
    cam.read, cam.processed, clip.read, clip.processed = 300, 150, 50, 50
    clock.t += 10
    assert rates.rates() == [(30.0, 15.0), (5.0, 5.0)]
    for _ in range(10):  # then a steady 20 frames/s read, 10 processed; a reading every 10 s
        clock.t += 10
        cam.read, cam.processed = cam.read + 200, cam.processed + 100
        last = rates.rates()
    # at t=210 the base is the reading of t=150 (the newest one at least a minute old): 1200 reads in
    # 60 s; from the baseline it would be 2300 in 110 s
    assert last[0] == pytest.approx((20.0, 10.0)) and last[1] == (0.0, 0.0)


def test_stats_fields_document(monkeypatch):
    import edgekit.device

    monkeypatch.setattr(edgekit.device, "current_rss", lambda: 123 * 2**20)
    clock = Clock()
    w = FrameWindow(clock=clock)
    cam, files = SourceStats("cam", read=4, processed=3, dropped=1), SourceStats("photos/", read=2, processed=2)
    for i in range(3):
        w.add("cam", 10.0 * (i + 1), {"decode": 1.0})
        clock.t += 0.5
    w.add("photos/a.jpg", 5.0)  # image files are named by file, not by their source
    doc = stats_fields(w, [cam, files])
    assert doc["rss_mib"] == 123.0 and doc["fps"] == pytest.approx(3 / 1.5)
    assert doc["latency_ms_p50"] == 10.0 and doc["latency_ms_max"] == 30.0
    first, second = doc["sources"]
    assert first == {"name": "cam", "read": 4, "processed": 3, "dropped": 1, "skipped": 0, "failed": 0, "gated": 0,
                     "fps_in": None, "fps_out": None, "latency_ms_p50": 20.0, "latency_ms_p95": 30.0,
                     "latency_ms_max": 30.0, "stage_ms": {"decode": 1.0}}
    assert second == {"name": "photos/", "read": 2, "processed": 2, "dropped": 0, "skipped": 0, "failed": 0, "gated": 0,
                      "fps_in": None, "fps_out": None}
    assert "sources" not in stats_fields(w)


def test_moved_names_stay_importable():
    import edgekit.device
    import edgekit.plan
    import edgekit.runner
    import edgekit.stats

    assert edgekit.runner.SourceStats is edgekit.stats.SourceStats
    assert edgekit.plan.current_rss is edgekit.device.current_rss
    own = edgekit.device.current_rss()
    with open("/proc/self/statm") as fh:
        import os
        statm = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    assert abs(own - statm) < 16 << 20


def test_window_of_a_real_run_matches_each_frames_own_timings(ssd, shared):
    """The runner over real photos: the window's stage means and latency percentiles equal those
    recomputed from the FrameResults themselves, and the counters' rates bracket the wall clock."""
    import time

    from edgekit.detector import Detector
    from edgekit.runner import run, watch

    photos = sorted((shared / "coco128_val2017" / "images").glob("*.jpg"))[:24]
    runner = watch([str(p) for p in photos], Detector(ssd))
    window = FrameWindow()
    results = []

    class Sink:
        def write(self, fr):
            results.append(fr)
            window.add(fr.frame.source, fr.result.latency_ms, fr.timings)

        def close(self):
            pass

    before = time.monotonic()
    rates = CounterRates(runner.stats)
    run(runner, [Sink()])
    after_run = time.monotonic()
    fps_in, fps_out = rates.rates()[0]
    after = time.monotonic()
    assert len(results) == 24 and all(fr.error is None for fr in results)
    assert 24 / (after - before) <= fps_out <= 24 / (after_run - before) * 1.0001 and fps_in == fps_out
    s = window.summary()
    assert set(s.stage_ms) == set(STAGES) - {"publish"}
    for stage in s.stage_ms:
        assert s.stage_ms[stage] == pytest.approx(sum(fr.timings[stage] for fr in results) / 24)
    latencies = sorted(fr.result.latency_ms for fr in results)
    assert s.latency_ms_p50 == latencies[11] and s.latency_ms_p95 == latencies[math.ceil(0.95 * 24) - 1]
    assert s.latency_ms_max == latencies[-1] and s.stage_ms["invoke"] > 0 and s.fps > 0


def test_fps_is_the_rate_while_frames_came_and_fps_out_the_rate_over_the_clock():
    """What the stats schema and the README say the three rates mean: 10 frames in 10 s, then a
    40 s pause. ``fps`` still says 1/s (the window's frames, first to last); per source,
    ``fps_out`` (processed) and ``fps_in`` (read) are over the 50 s of the clock."""
    import json
    from pathlib import Path

    clock = Clock()
    window = FrameWindow(clock=clock)
    cam = SourceStats("cam")
    rates = CounterRates([cam], seconds=60, clock=clock)
    for _ in range(10):
        clock.t += 1
        cam.read, cam.processed = cam.read + 2, cam.processed + 1  # every other frame sampled out
        window.add("cam", 5.0)
    clock.t += 40
    doc = stats_fields(window, [cam], rates)
    assert doc["fps"] == pytest.approx(1.0)
    assert (doc["sources"][0]["fps_in"], doc["sources"][0]["fps_out"]) == (pytest.approx(0.4), pytest.approx(0.2))
    schema = json.loads((Path(__file__).parents[1] / "edgekit" / "schemas" / "stats-1.json").read_text())
    assert "while frames came" in schema["properties"]["fps"]["description"]
    per_source = schema["properties"]["sources"]["items"]["properties"]
    assert "read" in per_source["fps_in"]["description"] and "processed" in per_source["fps_out"]["description"]
