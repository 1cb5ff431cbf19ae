"""The outbox never ends a run and never blocks for good: a full disk (a real tmpfs), a damaged
file (real random bytes over a real sqlite file), messages the broker refuses (a real mosquitto),
a refused password and a broker that is down — each said once, on stderr, in one line."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading

import pytest

from conftest import REPO, run_cli
from edgekit.mqtt import MqttSettings, Publisher
from edgekit.mqtt.outbox import Outbox
from edgekit.mqtt.payloads import MessageRefused, check_message
from edgekit.results import Detection, DetectionResult
from mqtt_helpers import Broker, Subscriber, free_port


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MB tmpfs (mounting needs root, as in .ci/run; a file-size rlimit or sqlite's
    max_page_count would not exercise what a full disk does to the WAL and the reserve)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.fail(f"this test mounts a 2 MB tmpfs and must run as root: {r.stderr.strip()}", pytrace=False)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def mosquitto(tmp_path):
    workdir = tmp_path / "broker-a"
    workdir.mkdir()
    b = Broker(workdir, kind="mosquitto").start()
    yield b
    b.stop()


def _settings(port, outbox, **kw):
    return MqttSettings(host="127.0.0.1", port=port, device_id="faults", outbox=str(outbox), stats_interval=3600, **kw)


def _wal(path):
    try:
        return os.path.getsize(f"{path}-wal")
    except OSError:
        return 0


# -- a full disk -------------------------------------------------------------------------------------
def test_full_disk_drops_the_oldest_says_so_once_and_resumes_when_space_returns(small_disk, mosquitto):
    ballast = small_disk / "ballast"
    ballast.write_bytes(os.urandom(600_000))  # someone else's file on the same disk
    lines = []
    box = Outbox(small_disk / "o.db", warn=lines.append)
    ids, wal_peak = [], 0
    for i in range(400):  # 400 x 8 kB: twice what the disk holds
        ids.append(box.put("edgekit/faults/snapshot", i.to_bytes(4, "big") + os.urandom(8000)))
        wal_peak = max(wal_peak, _wal(box.path))
    counters = box.counters()
    assert counters["dropped_disk_full"] > 0 and counters["dropped"] >= counters["dropped_disk_full"]
    assert ids[-1] is not None and box.peek(1000)[-1].id == ids[-1]  # the newest is kept
    oldest = int.from_bytes(box.peek(1)[0].payload[:4], "big")
    assert oldest > 0  # the oldest went
    full = [line for line in lines if "is full" in line]
    assert len(full) == 1 and "dropped_disk_full" in full[0] and str(box.path) in full[0]
    assert wal_peak <= 2 * box.wal_pages * 4096, wal_peak  # checkpointed: the WAL never took the disk

    ballast.unlink()  # space comes back
    for i in range(400, 420):
        ids.append(box.put("edgekit/faults/snapshot", i.to_bytes(4, "big") + os.urandom(8000)))
    assert all(i is not None for i in ids[-20:])
    assert any("disk space again" in line for line in lines)
    assert box.counters()["dropped_disk_full"] == counters["dropped_disk_full"]  # nothing more dropped
    waiting = {int.from_bytes(m.payload[:4], "big") for m in box.peek(10_000)}
    box.close()

    sub = Subscriber(mosquitto.port, "edgekit/faults/#")
    assert sub.wait_for(lambda s: s.client.is_connected(), 30)
    with Publisher(_settings(mosquitto.port, small_disk / "o.db")) as pub:
        assert pub.flush(60)
        assert pub.stats()["dropped_disk_full"] == counters["dropped_disk_full"]
    assert sub.wait_for(lambda s: {int.from_bytes(p[:4], "big") for t, p, _ in s.messages
                                   if t.endswith("/snapshot")} >= waiting, 60)
    sub.close()
    assert _wal(small_disk / "o.db") == 0  # all acknowledged and closed: the WAL gave its space back


def _video(path, frames=300):
    import av
    import numpy as np

    out = av.open(str(path), "w")
    stream = out.add_stream("mpeg4", rate=30)
    stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
    for i in range(frames):
        a = np.zeros((240, 320, 3), np.uint8)
        a[:, :] = (i % 255, 80, 160)
        a[50:150, i % 200:i % 200 + 80] = 255
        for packet in stream.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()


def test_detect_on_a_full_disk_with_the_broker_down_goes_on(small_disk, tmp_path, ssd):
    """The issue's case: 300 frames, snapshots, the outbox on a 2 MB disk, no broker. Before: exit 70
    ("database or disk is full") after ~200 frames. Two runs, as the backlog of the first stays."""
    clip = tmp_path / "clip.mp4"
    _video(clip)
    port = free_port()
    for run in range(2):
        r = run_cli("-m", "edgekit", "detect", str(ssd), str(clip), "--snapshot", "--mqtt", f"mqtt://127.0.0.1:{port}",
                    "--device-id", "faults", "--outbox", str(small_disk / "o.db"))
        assert r.returncode == 0, r.stderr
        assert len(r.stdout.splitlines()) == 300
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr
        assert len([line for line in r.stderr.splitlines() if "deferred" in line]) == 1
    assert len([line for line in r.stderr.splitlines() if "is full" in line]) == 1
    box = Outbox(small_disk / "o.db")
    assert box.counters()["dropped_disk_full"] > 0 and len(box) > 0
    box.close()


# -- a damaged file ----------------------------------------------------------------------------------
def _filled(path, n=300):
    box = Outbox(path)
    for i in range(n):
        box.put("edgekit/faults/detections", json.dumps({"i": i, "pad": "x" * 400}).encode())
    box.close()


def test_a_damaged_page_is_set_aside_and_what_can_be_read_is_delivered(tmp_path, mosquitto):
    path = tmp_path / "o.db"
    _filled(path)
    size = path.stat().st_size
    with open(path, "r+b") as fh:  # 4 kB of random bytes in the middle of the file
        fh.seek(size // 2 // 4096 * 4096)
        fh.write(os.urandom(4096))
    lines = []
    sub = Subscriber(mosquitto.port, "edgekit/faults/detections")
    assert sub.wait_for(lambda s: s.client.is_connected(), 30)
    with Publisher(_settings(mosquitto.port, path), warn=lines.append) as pub:
        assert pub.flush(60)
        assert pub.stats()["outbox_set_aside"] == 1
    damaged = [line for line in lines if " is damaged" in line]  # (the test folder's name says "damaged" too)
    assert len(damaged) == 1, lines
    salvaged = int(damaged[0].split(": ")[-1].split()[0])
    assert 0 < salvaged < 300
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("o.db.corrupt-") and not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1 and aside[0].stat().st_size == size  # kept for inspection
    assert sub.wait_for(lambda s: len({p["i"] for p in s.payloads("detections")}) == salvaged, 60)
    assert {p["i"] for p in sub.payloads("detections")} <= set(range(300))
    sub.close()


def test_damage_found_while_running_is_set_aside_too(tmp_path):
    path = tmp_path / "o.db"
    lines = []
    box = Outbox(path, warn=lines.append)
    for i in range(300):
        box.put("t", json.dumps({"i": i, "pad": "x" * 400}).encode())
    box.checkpoint()
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.seek(size // 2 // 4096 * 4096)
        fh.write(os.urandom(4096))
    box._db.execute("PRAGMA shrink_memory")  # sqlite reads the pages from the file again
    got = box.peek(1000)  # no exception: set aside, salvaged, read from the fresh file
    assert 0 < len(got) < 300 and len([line for line in lines if "damaged" in line]) == 1
    for m in got:
        box.ack(m.id)
    assert len(box) == 0 and box.put("t", b"after") is not None
    box.close()


def test_a_whole_file_corruption_starts_a_fresh_outbox(tmp_path, ssd, images):
    """Before: refused to start (rc 2): a crash loop under systemd's Restart=on-failure."""
    path = tmp_path / "o.db"
    path.write_bytes(os.urandom(100_000))
    os.chmod(path, 0o600)
    r = run_cli("-m", "edgekit", "detect", str(ssd), str(images / "table.jpg"), "--mqtt",
                f"mqtt://127.0.0.1:{free_port()}", "--device-id", "faults", "--outbox", str(path))
    assert r.returncode == 0, r.stderr
    damaged = [line for line in r.stderr.splitlines() if "damaged" in line]
    assert len(damaged) == 1 and "0 queued message(s) could be salvaged" in damaged[0] and "Traceback" not in r.stderr
    assert any(p.name.startswith("o.db.corrupt-") for p in tmp_path.iterdir())
    box = Outbox(path)
    assert len(box) > 0  # this run's messages wait in the fresh one
    box.close()


# -- messages the broker refuses -------------------------------------------------------------------
@pytest.mark.parametrize("topic,words", [
    ("edgekit/x/counts/bad\0label", r"U\+0000"),
    ("edgekit/x/counts/" + "y" * 70_000, "65,535"),
    ("edgekit/x/+/count", "wildcard"),
    ("edgekit/x/\ud800", "UTF-8"),
    ("edgekit/x/bell\x07", "control character"),
    ("", "non-empty"),
])
def test_topics_that_mqtt_forbids_are_refused(topic, words):
    with pytest.raises(MessageRefused, match=words):
        check_message(topic, b"1")
    check_message("edgekit/x/counts/caf\u00e9", b"1")  # UTF-8 is fine


def test_a_payload_over_the_packet_limit_is_refused():
    class Huge(bytes):
        def __len__(self):
            return 268_435_455

    with pytest.raises(MessageRefused, match="268,435,455"):
        check_message("edgekit/x/snapshot", Huge())


def _strange_result():
    return DetectionResult("frame.jpg", 640, 480, (
        Detection("bad\0label", 1, 0.9, (1.0, 2.0, 3.0, 4.0)),
        Detection("y" * 70_000, 2, 0.8, (5.0, 6.0, 7.0, 8.0)),
        Detection("person", 0, 0.7, (9.0, 10.0, 11.0, 12.0))))


def test_strange_labels_go_to_dead_letters_and_never_block_the_queue(tmp_path, mosquitto):
    """Before: a NUL in a topic made the broker close the connection, a 70,000-character one raised
    in the sender thread; every later message stayed stuck, across restarts too."""
    outbox = tmp_path / "o.db"
    legacy = Outbox(outbox)  # rows an older version queued, unchecked
    legacy.put("edgekit/faults/counts/old\0label", b"1", 1, True)
    legacy.put("edgekit/faults/counts/" + "z" * 70_000, b"1", 1, True)
    legacy.put("edgekit/faults/detections", b'{"old": true}', 1)
    legacy.close()
    sub = Subscriber(mosquitto.port, "edgekit/faults/#")
    assert sub.wait_for(lambda s: s.client.is_connected(), 30)
    lines = []
    with Publisher(_settings(mosquitto.port, outbox), warn=lines.append) as pub:
        pub.publish_result(_strange_result())
        for i in range(20):
            pub.publish_result(DetectionResult(f"later{i}.jpg", 640, 480, ()))
        assert pub.flush(60)
        assert pub.stats()["dead_letters"] == 6  # 2 queued before + 2 counts, and 2 when they went back to 0
    assert sub.wait_for(lambda s: len(s.payloads("/detections")) == 22, 60)
    assert sub.wait_for(lambda s: any(t.endswith("/counts/person") for t, _, _ in s.messages), 30)
    assert len([line for line in lines if "cannot be sent" in line]) == 1
    box = Outbox(outbox)
    reasons = [reason for _t, _p, reason in box.dead_letters()]
    assert len(reasons) == 6 and sum("U+0000" in r for r in reasons) == 3 and sum("65,535" in r for r in reasons) == 3
    assert len(box) == 0
    box.close()
    with Publisher(_settings(mosquitto.port, outbox)) as pub:  # a restart: nothing stuck
        pub.publish_result(DetectionResult("restart.jpg", 640, 480, ()))
        assert pub.flush(60)
    assert sub.wait_for(lambda s: any(p.get("source") == "restart.jpg" for p in s.payloads("/detections")), 60)
    sub.close()


def test_a_message_the_broker_still_refuses_is_found_and_set_aside(tmp_path):
    """A message valid by the spec that this broker closes the connection on (over its
    max_packet_size): sent alone three times, then a dead letter; the ones after it arrive."""
    workdir = tmp_path / "broker"
    workdir.mkdir()
    broker = Broker(workdir, "max_packet_size 2000\n", kind="mosquitto").start()
    try:
        sub = Subscriber(broker.port, "edgekit/faults/#")
        assert sub.wait_for(lambda s: s.client.is_connected(), 30)
        lines = []
        with Publisher(_settings(broker.port, tmp_path / "o.db"), warn=lines.append) as pub:
            pub.publish("edgekit/faults/before", b"1")
            pub.publish("edgekit/faults/huge", b"x" * 5000)
            for i in range(10):
                pub.publish("edgekit/faults/after", str(i).encode())
            assert pub.flush(120)
            assert pub.stats()["dead_letters"] == 1
        # QoS 1 is at least once: one in flight when the broker closed the connection may come twice
        want = {str(i).encode() for i in range(10)}
        assert sub.wait_for(lambda s: {p for t, p, _ in s.messages if t.endswith("/after")} >= want, 60), \
            [(t, p) for t, p, _ in sub.messages]
        assert not any(t.endswith("/huge") for t, _, _ in sub.messages)
        assert len([line for line in lines if "closed the connection each of the 3 times" in line]) == 1
        sub.close()
    finally:
        broker.stop()


def test_a_text_payload_row_is_delivered_and_does_not_stop_the_queue(tmp_path, mosquitto):
    """salvage() keeps rows whose payload sqlite gives back as TEXT, and queues them again; every
    peek then raised TypeError (bytes(str)), so the sender retried forever and nothing after them
    was delivered."""
    import sqlite3

    outbox = tmp_path / "o.db"
    Outbox(outbox).close()
    db = sqlite3.connect(outbox)
    db.execute("INSERT INTO messages (topic, payload, qos, retain, created) VALUES "
               "('edgekit/faults/text', 'as text', 1, 0, 0)")
    db.commit()
    db.close()
    sub = Subscriber(mosquitto.port, "edgekit/faults/#")
    assert sub.wait_for(lambda s: s.client.is_connected(), 30)
    with Publisher(_settings(mosquitto.port, outbox)) as pub:
        pub.publish("edgekit/faults/after", b"1")
        assert pub.flush(60), pub.stats()
    assert sub.wait_for(lambda s: {t for t, _, _ in s.messages} >= {"edgekit/faults/text", "edgekit/faults/after"}, 30)
    assert [p for t, p, _ in sub.messages if t == "edgekit/faults/text"] == [b"as text"]
    sub.close()


def test_a_message_the_broker_refuses_by_acl_is_a_dead_letter_not_sent(tmp_path):
    """MQTT 5: a PUBACK with a failure reason ("Not authorized", from mosquitto's ACL) was taken as
    an acknowledgement: the message was deleted from the outbox and counted as sent."""
    workdir = tmp_path / "broker"
    workdir.mkdir()
    (workdir / "acl").write_text("topic read #\ntopic write edgekit/faults/status\ntopic write edgekit/faults/ok\n")
    broker = Broker(workdir, f"allow_anonymous true\nacl_file {workdir / 'acl'}\n", kind="mosquitto").start()
    try:
        settings = _settings(broker.port, tmp_path / "o.db", protocol="5")
        lines = []
        with Publisher(settings, warn=lines.append) as pub:
            pub.publish("edgekit/faults/denied", b"1")
            pub.publish("edgekit/faults/ok", b"2")
            assert pub.flush(60)
            stats = pub.stats()
        assert stats["dead_letters"] == 1 and stats["sent"] == 1, stats
        assert len([line for line in lines if "Not authorized" in line]) == 1, lines
        box = Outbox(tmp_path / "o.db")
        assert [(t, p) for t, p, _r in box.dead_letters()] == [(b"edgekit/faults/denied", b"1")]
        box.close()
    finally:
        broker.stop()


def test_sigterm_is_honoured_with_strange_labels_and_annotated_images(tmp_path, ssd, images, mosquitto):
    """Before: a 70,000-character label took minutes per annotated image (its tag was cut letter by
    letter), so the first SIGTERM seemed ignored."""
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"lab\0el{i}" if i % 2 else "y" * 70_000 + str(i) for i in range(91)) + "\n")
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(10):
        for name in ("coral_kite_and_cold.jpg", "coral_pets.jpg", "table.jpg"):
            shutil.copy(images / name, folder / f"{k}_{name}")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "edgekit", "detect", str(ssd), str(folder), "--labels", str(labels),
                             "--save-annotated", str(tmp_path / "out"), "--mqtt", f"mqtt://127.0.0.1:{mosquitto.port}",
                             "--device-id", "faults", "--outbox", str(tmp_path / "o.db")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    first = proc.stdout.readline()  # running (a line is ~70 kB: the pipes are drained while waiting)
    assert first
    proc.send_signal(signal.SIGTERM)
    streams = {}
    readers = [threading.Thread(target=lambda name=name: streams.__setitem__(name, getattr(proc, name).read()),
                                daemon=True) for name in ("stdout", "stderr")]
    for reader in readers:
        reader.start()
    try:
        proc.wait(timeout=120)  # before: still running 14 minutes after the signal
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("SIGTERM was not honoured within 120 s")
    for reader in readers:
        reader.join(30)
    out, err = first + streams.get("stdout", ""), streams.get("stderr", "")
    assert proc.returncode in (0, 130), err
    assert "Traceback" not in err and len(out.splitlines()) < 29
    assert len([line for line in err.splitlines() if "cannot be sent" in line]) == 1


# -- a broker that refuses us or is down -------------------------------------------------------------
def test_a_refused_password_is_one_clear_line(tmp_path, ssd, images):
    workdir = tmp_path / "broker"
    workdir.mkdir()
    pwfile = workdir / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pwfile), "edge", "right"], check=True)
    broker = Broker(workdir, f"password_file {pwfile}\n", kind="mosquitto")
    broker.config.write_text(broker.config.read_text().replace("allow_anonymous true", "allow_anonymous false"))
    broker.start()
    try:
        r = run_cli("-m", "edgekit", "detect", str(ssd), str(images / "table.jpg"), str(images / "coral_pets.jpg"),
                    "--mqtt", f"mqtt://edge@127.0.0.1:{broker.port}", "--device-id", "faults",
                    "--outbox", str(tmp_path / "o.db"), env={"EDGEKIT_MQTT_PASSWORD": "wrong"})
    finally:
        broker.stop()
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2
    lines = [line for line in r.stderr.splitlines() if "MQTT" in line]  # (a labels note may come too)
    assert "Traceback" not in r.stderr
    assert len(lines) == 1, r.stderr
    assert "refused" in lines[0] and "password" in lines[0] and "EDGEKIT_MQTT_PASSWORD" in lines[0]
    assert str(tmp_path / "o.db") in lines[0]


def test_a_broker_that_is_down_is_one_line_with_the_count_and_the_outbox(tmp_path, ssd, images):
    outbox = tmp_path / "o.db"
    r = run_cli("-m", "edgekit", "detect", str(ssd), str(images / "table.jpg"), str(images / "coral_pets.jpg"),
                "--mqtt", f"mqtt://127.0.0.1:{free_port()}", "--device-id", "faults", "--outbox", str(outbox))
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2
    lines = [line for line in r.stderr.splitlines() if "MQTT" in line]  # (a labels note may come too)
    assert "Traceback" not in r.stderr
    assert len(lines) == 1, r.stderr
    box = Outbox(outbox)
    waiting = len(box)
    box.close()
    assert "deferred" in lines[0] and f"{waiting} message(s) wait in {outbox}" in lines[0]


def test_a_disk_too_full_to_create_the_outbox_keeps_this_runs_messages_in_memory(small_disk, mosquitto, ssd, images):
    """Before: exit 2 "cannot open (database or disk is full)", a crash loop under systemd."""
    with open(small_disk / "ballast", "wb") as fh:
        try:
            while True:
                fh.write(bytes(65536))
                fh.flush()
        except OSError:
            pass  # the disk is full
    sub = Subscriber(mosquitto.port, "edgekit/faults/detections")
    assert sub.wait_for(lambda s: s.client.is_connected(), 30)
    r = run_cli("-m", "edgekit", "detect", str(ssd), str(images / "table.jpg"), "--mqtt",
                f"mqtt://127.0.0.1:{mosquitto.port}", "--device-id", "faults", "--outbox", str(small_disk / "o.db"))
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if "MQTT" in line]  # (a labels note may come too)
    assert "Traceback" not in r.stderr
    assert len(lines) == 1 and "cannot be created" in lines[0] and "in memory" in lines[0]
    assert sub.wait_for(lambda s: len(s.payloads("detections")) == 1, 60)
    sub.close()
