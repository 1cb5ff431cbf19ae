"""Motion gating through the real pipeline: a generated H.264 scene (tests/scenes.py) that is
empty for 10 s, then an object crosses, another drives in and parks for 20 s; the committed demo
model; `edgekit detect --motion --track`. Frames without motion are not inferred, the parked
object keeps its track (no false end), and the events are those of the ungated run."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import REPO, run_cli

sys.path.insert(0, str(Path(__file__).parent))
from scenes import Actor, Scene, write_video  # noqa: E402

MODEL = REPO / "examples" / "shapes" / "shapes_int8.tflite"


@pytest.fixture(scope="module")
def scene():
    # bright: motion is seen in the luma, and this scene's red is as light as its background
    walker = Actor("walker", "circle", 44, ((10.0, 0.0, 150.0), (13.0, 300.0, 150.0)), (250, 250, 250))
    parker = Actor("parker", "square", 60, ((16.0, 300.0, 80.0), (20.0, 200.0, 80.0), (44.0, 200.0, 80.0)),
                   (30, 60, 220))
    return Scene((walker, parker), 44.0)


@pytest.fixture(scope="module")
def video(scene, tmp_path_factory):
    return write_video(scene, tmp_path_factory.mktemp("motion") / "quiet.mp4")


@pytest.fixture(scope="module")
def runs(video):
    out = {}
    for name, extra in (("gated", ["--motion"]), ("every", [])):
        r = run_cli("-m", "edgekit", "detect", str(MODEL), str(video), "--no-plan", "--track", *extra)
        assert r.returncode == 0, r.stderr
        out[name] = [json.loads(line) for line in r.stdout.splitlines()]
    return out


def frames(lines):
    return [d for d in lines if "frame" in d]


def test_still_frames_are_not_inferred_and_moving_ones_are(runs, scene):
    gated = frames(runs["gated"])
    assert len(gated) == len(scene.times())
    assert all("motion" in d for d in gated) and all("motion" not in d for d in frames(runs["every"]))
    skipped = [d["timestamp"] for d in gated if d["motion"]["gated"]]
    inferred = [d["timestamp"] for d in gated if not d["motion"]["gated"]]
    # the empty 10 s: the first frame, then one recheck at 10 s at most
    assert [t for t in inferred if t < 9.9] == [0.0]
    # every frame while the walker crosses (10-13 s) and the parker drives in (16-20 s)
    moving = [t for t in scene.times() if 10.5 <= t <= 13.0 or 16.5 <= t <= 20.0]
    assert set(moving) <= set(inferred), sorted(set(moving) - set(inferred))
    # parked from 20 s: about two seconds until its pixels are background, then a recheck every 10 s
    late = [t for t in inferred if t >= 24.0]
    assert 1 <= len(late) <= 3 and all(b - a >= 9.99 for a, b in zip(late, late[1:])), late
    assert len(skipped) >= 0.6 * len(gated)  # most of this scene stands still


def test_an_object_entering_after_ten_still_seconds_is_detected_within_half_a_second(runs):
    """The walker enters at 10.0 s, after 10 s without motion: the gated run sees it as soon as
    the run that infers every frame does, and within 0.5 s of its entering."""
    def first_seen(lines, label):
        return min(d["timestamp"] for d in frames(lines) if any(x["label"] == label for x in d["detections"]))

    every, gated = first_seen(runs["every"], "circle"), first_seen(runs["gated"], "circle")
    assert 10.0 <= gated <= 10.5 and gated == every, (gated, every)


def test_a_gated_frame_repeats_the_last_detections_and_no_track_ends_falsely(runs, scene):
    events = Counter((e["type"]) for d in runs["gated"] for e in d["events"])
    every = Counter((e["type"]) for d in runs["every"] for e in d["events"])
    assert events["new"] == every["new"] == 2 and events["end"] == every["end"] == 2
    ends = {e["after"]["label"]: d.get("timestamp") for d in runs["gated"] for e in d["events"] if e["type"] == "end"}
    assert ends["square"] is None  # the parked square ends with the source, not before
    last = frames(runs["gated"])[-1]
    assert [d["label"] for d in last["detections"]] == ["square"] and last["detections"][0]["track_id"]
    parked = [d for d in frames(runs["gated"]) if d["timestamp"] >= 30]
    assert all(d["detections"] and d["detections"][0]["track_id"] == parked[0]["detections"][0]["track_id"]
               for d in parked)


@pytest.mark.parametrize("flag,says", [
    (["--motion-mask", "tree=0,0,1"], "motion mask 'tree'"),
    (["--motion-mask", "0,0,2,2,nan,1"], "motion mask"),
])
def test_bad_motion_masks_are_one_line_and_exit_2(tmp_path, flag, says):
    r = run_cli("-m", "edgekit", "detect", str(MODEL), str(tmp_path / "none.mp4"), "--no-plan", *flag)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_motion_state_and_its_home_assistant_sensor_on_a_real_broker(video, tmp_path):
    """`edgekit run` with `[motion] off_delay = 5`: the retained `<source>/motion` goes ON with
    the walker, OFF 5 s after the parked car stopped moving; HA gets a motion binary_sensor; the
    stats say how many frames were gated."""
    from mqtt_helpers import Broker, Subscriber

    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker", kind="mosquitto").start()
    try:
        sub = Subscriber(broker.port, "#", client_id="motion-test")
        settings = tmp_path / "service.toml"
        settings.write_text(f'model = "{MODEL}"\nplan = false\ntrack = true\n'
                            f'sources = [{{ name = "drive", source = "{video}" }}]\n'
                            f'[motion]\noff_delay = 5\n[mqtt]\nurl = "mqtt://127.0.0.1:{broker.port}"\n'
                            f'device_id = "yard"\nha_discovery = true\nstats_interval = 0.5\noutbox = "{tmp_path / "o.db"}"\n')
        r = run_cli("-m", "edgekit", "run", str(settings))
        assert r.returncode == 0, r.stderr
        gated = sum(d["motion"]["gated"] for d in frames([json.loads(x) for x in r.stdout.splitlines()]))

        def states(s):
            with s.lock:
                return [p.decode() for t, p, _ in s.messages if t == "edgekit/yard/drive/motion"]
        assert sub.wait_for(lambda s: states(s)[-1:] == ["OFF"] and "ON" in states(s), timeout=30), states(sub)
        said = states(sub)
        assert said[0] == "OFF" and all(a != b for a, b in zip(said, said[1:])), said  # only changes
        config = sub.payloads("homeassistant/binary_sensor/edgekit_yard/drive_motion/config")
        assert config and config[-1]["device_class"] == "motion" and config[-1]["state_topic"] == "edgekit/yard/drive/motion"
        assert gated > 0
        # stats go out every 0.5 s while the run goes on: the frames gated so far
        assert sub.wait_for(lambda s: any(0 < src.get("gated", 0) <= gated for doc in s.payloads("edgekit/yard/stats")
                                          for src in doc.get("sources", [])), timeout=15), sub.payloads("yard/stats")[-1:]
        sub.close()
    finally:
        broker.stop()


def test_a_mask_outside_the_frame_ends_the_run_with_one_line_and_exit_2(video):
    r = run_cli("-m", "edgekit", "detect", str(MODEL), str(video), "--no-plan",
                "--motion-mask", "tree=500,500,600,500,600,600")  # pixels; the frame is 320x240
    assert r.returncode == 2 and "motion mask 'tree'" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_decompression_bomb_in_a_folder_is_one_line_and_the_others_run(tmp_path):
    import struct
    import zlib

    from PIL import Image

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    # a PNG whose header says 14000 x 14000 (Pillow refuses it before decoding: a bomb)
    (tmp_path / "a_bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 14000, 14000,
                                          8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))
    Image.open(REPO / "examples/shapes/images/scene_0.png").save(tmp_path / "b_fine.png")
    r = run_cli("-m", "edgekit", "detect", str(MODEL), str(tmp_path), "--no-plan", "--motion")
    assert r.returncode == 5 and "a_bomb.png" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert [json.loads(x)["source"].endswith("b_fine.png") for x in r.stdout.splitlines()] == [True]
