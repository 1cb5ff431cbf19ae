"""A long batch as a newcomer runs it (issue 16, items 4 and 11): each line says the model's own time
beside the latency, progress shows on a terminal (or with -v), the run ends with a summary, and
with MQTT a final ``stats`` message is sent at exit (not only every 30 s). Real CLI, real broker."""

import io
import json
import os
import pty
import subprocess
import sys
import time

from conftest import REPO, run_cli
from mqtt_helpers import Broker, Subscriber
from edgekit.progress import BatchProgress
from edgekit.results import Detection, DetectionResult
from edgekit.runner import FrameResult

SHAPES = REPO / "examples" / "shapes"
MODEL, IMAGES = SHAPES / "shapes_int8.tflite", SHAPES / "images"


def _summary(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("edgekit: done: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_each_line_has_invoke_ms_beside_latency_ms():
    r = run_cli("-m", "edgekit", "detect", str(MODEL), str(IMAGES), str(IMAGES), str(IMAGES))
    assert r.returncode == 0, r.stderr
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(docs) == 12
    assert all(0 < d["invoke_ms"] <= d["latency_ms"] for d in docs), docs  # queueing is in latency only


def test_verbose_batch_ends_with_a_summary():
    r = run_cli("-m", "edgekit", "detect", str(MODEL), str(IMAGES), str(IMAGES / "missing.png"), "-v")
    assert r.returncode == 5
    detections = sum(len(json.loads(line)["detections"]) for line in r.stdout.splitlines())
    line = _summary(r.stderr)
    assert line.startswith(f"edgekit: done: 4 images, {detections} detections, 1 failed in "), line
    assert " ms mean" in line and "invoke " in line and "MQTT" not in line


def test_no_progress_or_summary_on_a_pipe_without_verbose():
    r = run_cli("-m", "edgekit", "detect", str(MODEL), str(IMAGES))
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_summary_on_a_terminal():
    """stderr on a real pseudo-terminal, stdout on a pipe (``edgekit detect ... > out.jsonl``)."""
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "edgekit", "detect", str(MODEL), str(IMAGES)],
                            stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    out, _ = proc.communicate(timeout=120)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.returncode == 0 and len(out.splitlines()) == 4
    assert "edgekit: done: 4 images" in b"".join(chunks).decode()


def _frame(detections=1, invoke_ms=10.0, error=None):
    from edgekit.frames import Frame

    frame = Frame(source="x.jpg", index=0, timestamp=0.0, captured=0.0, path="x.jpg")
    if error is not None:
        return FrameResult(frame, None, error)
    result = DetectionResult("x.jpg", 10, 10, tuple(Detection("a", 0, 0.9, (0, 0, 1, 1)) for _ in range(detections)),
                             invoke_ms=invoke_ms)
    return FrameResult(frame, result, None)


def test_progress_is_rate_limited_and_the_summary_counts():
    now = [0.0]
    log = io.StringIO()
    progress = BatchProgress(log, tty=False, clock=lambda: now[0])
    for i in range(30):  # 30 frames over 29 s: a log line every 10 s, not one per frame
        now[0] = float(i)
        progress.write(_frame(detections=2, invoke_ms=20.0 if i % 2 else 10.0))
    progress.write(_frame(error=ValueError("bad")))
    lines = log.getvalue().splitlines()
    assert [line.split(" in ")[0] for line in lines] == [
        "edgekit: 11 images, 22 detections, 0 failed", "edgekit: 21 images, 42 detections, 0 failed"]
    text = progress.summary({"sent": 61, "queued": 2, "dropped": 0})
    assert text == ("edgekit: done: 30 images, 60 detections, 1 failed in 29.0 s (1.1/s); invoke 15.0 ms mean; "
                    "MQTT 61 delivered, 2 queued")
    tty = io.StringIO()
    progress = BatchProgress(tty, tty=True, clock=lambda: now[0])
    now[0] += 1.0
    progress.write(_frame())
    progress.close()
    assert tty.getvalue().startswith("\r\033[Kedgekit: 1 image, 1 detection, 0 failed") and tty.getvalue().endswith("\033[K")


def test_final_stats_at_exit_and_delivery_in_the_summary(tmp_path):
    broker = Broker(tmp_path, kind="mosquitto").start()
    try:
        sub = Subscriber(broker.port, "edgekit/batch/#")
        time.sleep(0.3)
        started = time.monotonic()
        r = run_cli("-m", "edgekit", "detect", str(MODEL), str(IMAGES), "-v", "--mqtt", f"mqtt://127.0.0.1:{broker.port}",
                    "--device-id", "batch", "--outbox", str(tmp_path / "o.db"), "--mqtt-required")
        assert r.returncode == 0, r.stderr
        assert time.monotonic() - started < 30  # shorter than one stats interval: only the final one can come
        assert sub.wait_for(lambda s: len(s.payloads("/stats")) >= 1, timeout=10), "no stats message at exit"
        stats = sub.payloads("/stats")[-1]
        assert stats["sent"] >= 4 and "fps" in stats and stats["sources"]
        line = _summary(r.stderr)
        delivered = int(line.split("; MQTT ")[1].split(" delivered")[0])
        assert delivered >= 4 and line.endswith(", 0 queued"), line
        assert all("invoke_ms" in p for p in sub.payloads("/detections"))
        sub.close()
    finally:
        broker.stop()
