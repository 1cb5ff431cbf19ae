"""A phone's portrait clip is stored sideways with a display matrix saying how to turn it; FFmpeg's
player and `ffmpeg` turn it upright, and edgekit now does too (before, the model saw the picture on
its side and the boxes were in the stored, sideways pixels). As with JPEG EXIF orientation, boxes are
in the upright picture's pixels."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, iou
from edgekit.sources.video import VideoFile, upright

SHAPES = REPO / "examples" / "shapes" / "shapes_int8.tflite"
SCENE = REPO / "examples" / "shapes" / "images" / "scene_0.png"
TRUTH = json.loads((REPO / "examples" / "shapes" / "images" / "ground_truth.json").read_text())["scene_0.png"]


def _sideways_clip(path, degrees: int, frames: int = 3):
    """scene_0 stored turned so that turning it ``degrees`` counterclockwise makes it upright."""
    import av

    upright_rgb = np.asarray(Image.open(SCENE).convert("RGB"))
    stored = np.ascontiguousarray(np.rot90(upright_rgb, -degrees // 90))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(5))
        stream.height, stream.width = stored.shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10"}
        stream.set_display_rotation(degrees)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 5)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path, upright_rgb


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_a_rotated_clip_is_detected_upright_with_boxes_in_upright_pixels(tmp_path, degrees):
    path, upright_rgb = _sideways_clip(tmp_path / "portrait.mp4", degrees)
    r = subprocess.run([sys.executable, "-m", "edgekit", "detect", str(SHAPES), str(path), "--no-plan"],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert len(lines) == 3
    for d in lines:
        assert (d["width"], d["height"]) == (upright_rgb.shape[1], upright_rgb.shape[0])
        for want in TRUTH:  # every shape found where it is in the upright picture
            best = max((iou(det["box"], want["box"]) for det in d["detections"] if det["label"] == want["label"]),
                       default=0.0)
            assert best >= 0.7, (want, d["detections"])


def test_the_turned_decoder_frame_is_the_turned_picture(tmp_path):
    """The yuv420p planes are turned in place of an RGB conversion: the same pixels, and the frame
    stays a decoder frame (one swscale call to the model's size, a Y plane for motion)."""
    path, upright_rgb = _sideways_clip(tmp_path / "portrait.mp4", 90, frames=1)
    import av

    with av.open(str(path)) as c:
        stored = next(c.decode(video=0))
        turned = upright(stored, 1)
        assert isinstance(turned, av.VideoFrame) and turned.format.name == "yuv420p"
        assert (turned.width, turned.height) == (stored.height, stored.width)
        want = np.rot90(stored.to_ndarray(format="rgb24"), 1).astype(int)
        assert np.abs(turned.to_ndarray(format="rgb24").astype(int) - want).max() <= 1
    (frame,) = list(VideoFile(str(path)).frames())
    assert frame.grey().shape == upright_rgb.shape[:2]
