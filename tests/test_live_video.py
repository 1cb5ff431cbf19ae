"""A video file forced live (``--live``) plays at its own frame rate, as a camera would send it: frame k
is not read before the first one plus its media time. Before, the file was read as fast as it decoded
and newest-wins dropped nearly everything, which said nothing about the camera it stood for."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from fractions import Fraction

import numpy as np

from conftest import REPO
from edgekit.detector import Detector
from edgekit.runner import Runner, RunOptions
from edgekit.sources.video import VideoFile

SHAPES = REPO / "examples" / "shapes" / "shapes_int8.tflite"
FPS, FRAMES = 10, 25  # the last frame's media time: 2.4 s


def _video(path):
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        rate = Fraction(FPS)
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 160, 128, "yuv420p"
        for i in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (128, 160, 3), dtype=np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_a_video_forced_live_is_read_at_its_frame_rate(tmp_path):
    video = _video(tmp_path / "clip.mp4")
    runner = Runner([VideoFile(str(video))], Detector(SHAPES), RunOptions(live=True))
    t0 = time.monotonic()
    results = list(runner)
    elapsed = time.monotonic() - t0
    last = (FRAMES - 1) / FPS
    assert elapsed >= last - 0.02, f"{FRAMES} frames at {FPS} fps read in {elapsed:.2f} s: not paced"
    st = runner.stats[0]
    assert st.read == FRAMES and st.processed + st.dropped == FRAMES, st
    assert st.processed == len([r for r in results if not r.end_of_source]) >= 2
    stamps = [r.frame.timestamp for r in results if not r.end_of_source]
    assert stamps == sorted(stamps) and stamps[-1] == last  # the newest frame, always the last one


def test_detect_live_on_a_file_plays_it_and_every_frame_is_counted(tmp_path):
    video = _video(tmp_path / "clip.mp4")
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "edgekit", "detect", str(SHAPES), str(video), "--live", "--no-plan"],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert lines and lines[-1]["timestamp"] == (FRAMES - 1) / FPS
    assert elapsed >= (FRAMES - 1) / FPS, f"the {FRAMES / FPS:.1f} s clip ended after {elapsed:.2f} s"
