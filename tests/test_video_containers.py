"""Video files in the containers NVRs, camcorders and HLS export (MPEG-TS .ts/.m2ts, FLV, ASF/WMV) are
read as videos: before, a camera's `.ts` export was handed to Pillow and refused as "not a readable
image". Their timestamps count from the video's start, as a player shows them."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from conftest import REPO
from edgekit.sources import open_sources
from edgekit.sources.video import VideoFile

SHAPES = REPO / "examples" / "shapes" / "shapes_int8.tflite"
FRAMES = 6


def _write(path, container_format):
    import av

    rng = np.random.default_rng(1)
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream("libx264", rate=Fraction(5))
        stream.width, stream.height, stream.pix_fmt = 160, 128, "yuv420p"
        for i in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (128, 160, 3), dtype=np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 5)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize("name,container_format", [("clip.ts", "mpegts"), ("clip.m2ts", "mpegts"),
                                                   ("clip.flv", "flv"), ("clip.wmv", "asf")])
def test_a_camera_export_is_read_as_a_video(tmp_path, name, container_format):
    path = _write(tmp_path / name, container_format)
    (source,) = open_sources([str(path)])
    assert isinstance(source, VideoFile)
    r = subprocess.run([sys.executable, "-m", "edgekit", "detect", str(SHAPES), str(path), "--no-plan"],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert [d["frame"] for d in lines] == list(range(FRAMES)), r.stderr
    # seconds from the first frame, as a player shows them (an MPEG-TS clock starts at 1.4 s)
    assert [d["timestamp"] for d in lines] == [i / 5 for i in range(FRAMES)]
