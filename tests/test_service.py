"""The service for real: `edgekit run SETTINGS` on a live HTTP MJPEG camera that goes away and comes
back, publishing to a real mosquitto — outage said once and published as the source's status,
per-source stats, SIGTERM ends it cleanly; settings files refuse unknown keys."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image

from conftest import REPO, run_cli
from mqtt_helpers import Broker, Subscriber


def _jpeg(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def test_settings_file_refuses_unknown_keys(tmp_path, ssd):
    path = tmp_path / "service.toml"
    path.write_text(f'model = "{ssd}"\nsources = ["a.jpg"]\nthreshhold = 0.4\n')
    r = run_cli("-m", "edgekit", "run", str(path))
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown setting(s) threshhold" in lines[0] and "threshold" in lines[0]


def test_settings_file_runs_like_detect(tmp_path, ssd, ssd_labels, images):
    path = tmp_path / "service.json"
    path.write_text(json.dumps({"model": str(ssd), "labels": str(ssd_labels), "threshold": 0.5, "plan": False,
                                "sources": [str(images / "coral_kite_and_cold.jpg"), str(images / "table.jpg")]}))
    r = run_cli("-m", "edgekit", "run", str(path))
    d = run_cli("-m", "edgekit", "detect", str(ssd), str(images / "coral_kite_and_cold.jpg"), str(images / "table.jpg"),
                "--labels", str(ssd_labels), "--threshold", "0.5", "--no-plan")
    assert r.returncode == 0 == d.returncode, r.stderr
    strip = lambda out: [{k: v for k, v in json.loads(x).items() if k not in ("latency_ms", "invoke_ms")}  # noqa: E731
                         for x in out.splitlines()]
    assert strip(r.stdout) == strip(d.stdout) and len(strip(r.stdout)) == 2


def test_service_on_a_live_camera_that_drops(tmp_path, shared, images):
    from test_sources import _CameraServer

    with Image.open(images / "coral_kite_and_cold.jpg") as photo:
        frame = np.asarray(photo.convert("RGB").resize((640, 426)))
    camera = _CameraServer([_jpeg(frame), _jpeg(frame[:, ::-1].copy())])
    port, url = camera.port, camera.url("/stream")
    broker = Broker(tmp_path, kind="mosquitto").start()
    sub = Subscriber(broker.port, "edgekit/svc/#", client_id="svc-test")
    settings = tmp_path / "service.toml"
    settings.write_text(
        f'model = "{shared / "models/ssd_mobilenet_v1_quant/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29_with_metadata.tflite"}"\n'
        f'sources = ["{url}"]\nthreshold = 0.5\nplan = false\n'
        f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker.port}"\ndevice_id = "svc"\nstats_interval = 1.0\n'
        f'outbox = "{tmp_path / "outbox.db"}"\n')
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "edgekit", "run", str(settings)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    def status(s) -> list[str]:  # the camera source's published states, in order
        with s.lock:
            return [json.loads(p)["status"] for t, p, _ in s.messages if "/sources/" in t and t.endswith("/status")]

    try:
        assert sub.wait_for(lambda s: len(s.payloads("/detections")) >= 5, 60), proc.poll()
        detections = sub.payloads("/detections")
        assert {"person", "kite"} <= {d["label"] for p in detections for d in p["detections"]}
        assert all(p["latency_ms"] >= 0 and "frame_timestamp" in p for p in detections)
        camera.stop()
        assert sub.wait_for(lambda s: "down" in status(s), 30)
        time.sleep(1.0)
        camera = _CameraServer(camera.jpegs, port=port)
        n = len(sub.payloads("/detections"))
        assert sub.wait_for(lambda s: len(s.payloads("/detections")) >= n + 5, 60)
        assert sub.wait_for(lambda s: status(s)[-1:] == ["up"], 30)
        assert sub.wait_for(lambda s: any(p.get("sources") for p in s.payloads("/stats")), 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        camera.stop()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert err.count(" is down") == 1 and err.count(" is up") == 1, err  # said once per outage
    stats = [p for p in sub.payloads("/stats") if p.get("sources")][-1]
    (src,) = stats["sources"]
    frames = [json.loads(line)["frame"] for line in out.splitlines()]
    assert frames == sorted(frames) and len(frames) >= 10
    # the last stats message was published during the run: it cannot count more than was printed
    assert 5 <= src["processed"] <= len(frames) and src["read"] >= src["processed"] and src["failed"] == 0
    sub.close()
    broker.stop()


def test_only_on_change_is_a_per_source_stage(tmp_path, ssd, ssd_labels, images):
    """--only-on-change: per source, a frame is published when its label counts differ from that
    source's last published frame; JSON lines still show every frame."""
    from edgekit.runner import FrameResult
    from edgekit.stages import ChangeGate
    from edgekit.frames import Frame
    from edgekit.results import Detection, DetectionResult

    gate = ChangeGate()

    def fr(source, labels):
        dets = tuple(Detection(lbl, 0, 0.9, (0, 0, 1, 1)) for lbl in labels)
        return FrameResult(Frame(source, 0, 0.0, 0.0, pixels=1), DetectionResult(source, 1, 1, dets))

    passed = [gate(fr(s, lbls)) is not None for s, lbls in [("camA", ["person"]), ("camB", ["person"]),
                                                             ("camA", ["person"]), ("camB", ["car"]),
                                                             ("camA", ["person", "person"])]]
    assert passed == [True, True, False, True, True]

    broker = Broker(tmp_path, kind="mosquitto").start()
    sub = Subscriber(broker.port, "edgekit/onchange/detections", client_id="onchange-test")
    time.sleep(0.3)
    photos = [str(images / n) for n in ("coral_cat.bmp", "coral_cat.bmp", "table.jpg", "table.jpg", "coral_cat.bmp")]
    r = run_cli("-m", "edgekit", "detect", str(ssd), *photos, "--labels", str(ssd_labels), "--threshold", "0.5",
                "--no-plan", "--mqtt", f"mqtt://127.0.0.1:{broker.port}", "--device-id", "onchange", "--only-on-change",
                "--outbox", str(tmp_path / "outbox.db"))
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 5
    assert sub.wait_for(lambda s: len(s.payloads("detections")) >= 3, 20)
    time.sleep(0.5)
    assert [p["frame"] for p in sub.payloads("detections")] == [0, 2, 4]  # cat, table, cat again
    sub.close()
    broker.stop()
