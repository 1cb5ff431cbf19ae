"""The publisher's life around its connection, against a real mosquitto: two processes with one
device id, TLS files that cannot be loaded, a slow outbox beside the in-flight map."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from mqtt_helpers import Broker

from edgekit.errors import ConfigError
from edgekit.mqtt import MqttSettings, Publisher

TWIN = r"""
import sys
from edgekit.mqtt import MqttSettings, Publisher

port, outbox, protocol = int(sys.argv[1]), sys.argv[2], sys.argv[3]
settings = MqttSettings(host="127.0.0.1", port=port, device_id="twin", outbox=outbox, protocol=protocol)
with Publisher(settings):
    print("started", flush=True)
    sys.stdin.read()  # until the test closes our stdin
"""


@pytest.fixture
def mosquitto(tmp_path):
    (tmp_path / "broker").mkdir()
    b = Broker(tmp_path / "broker", kind="mosquitto").start()
    yield b
    b.stop()


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _said(path: Path, text: str) -> int:
    return path.read_text(errors="replace").count(text)


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_two_processes_with_one_device_id_are_told_to_give_each_its_own(mosquitto, tmp_path, protocol):
    """Same device id = same client id: each connect makes the broker close the other's, and paho
    reconnects at once, forever. Each process must say so (once), not flap in silence."""
    line = f"another edgekit is connected as device twin to 127.0.0.1:{mosquitto.port}: give each device its own device_id"
    procs, errs = [], []
    for name in ("a", "b"):
        err = tmp_path / f"{name}.err"
        errs.append(err)
        procs.append(subprocess.Popen([sys.executable, "-c", TWIN, str(mosquitto.port), str(tmp_path / f"{name}.db"),
                                       protocol], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=err.open("w"), env=_env(), cwd=REPO))
    try:
        for proc in procs:
            assert proc.stdout.readline() == b"started\n"
        deadline = time.monotonic() + 240  # a guard against a hang, not a pace: flapping takes ~1 s a round
        while not all(_said(err, line) for err in errs) and time.monotonic() < deadline:
            time.sleep(0.2)
        said = [_said(err, line) for err in errs]
    finally:
        for proc in procs:
            proc.stdin.close()
        for proc in procs:
            proc.wait(timeout=60)
    assert said == [1, 1], [err.read_text() for err in errs]  # each says it, once (rate-limited)
    for err in errs:
        lines = [t for t in err.read_text().splitlines() if t.strip()]
        assert lines == [next(t for t in lines if line in t)], lines  # that line, nothing else, no traceback


def test_one_process_alone_is_not_told_about_a_twin(mosquitto, tmp_path):
    """The broker restarted under a lone publisher, again and again: lost connections, each with a
    failed attempt while the broker was down, so an outage and not a connection taken over. (Under
    MQTT 3.1.1 a broker back within paho's first retry, three times a minute, would look the same.)"""
    lines: list[str] = []
    settings = MqttSettings(host="127.0.0.1", port=mosquitto.port, device_id="alone", outbox=str(tmp_path / "o.db"))
    with Publisher(settings, required=True, warn=lines.append) as pub:
        for _ in range(Publisher.TAKEOVERS + 1):
            mosquitto.stop()
            while not (pub.stats()["last_error"] or "").startswith("connection failed"):
                time.sleep(0.05)
            mosquitto.start()
            while not pub.stats()["connected"]:
                time.sleep(0.05)
    assert not [t for t in lines if "another edgekit" in t], lines


def _fds_on(path: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(path)):
            found.append(target)
    return found


def test_a_bad_ca_file_is_one_line_naming_it_and_leaves_no_outbox_open(tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    outbox = tmp_path / "o.db"
    threads = {t.ident for t in threading.enumerate()}
    settings = MqttSettings(host="127.0.0.1", port=8883, device_id="tls", outbox=str(outbox), tls=True,
                            ca_file=str(bad))
    with pytest.raises(ConfigError) as excinfo:
        Publisher(settings)
    # the exception (kept here, as a caller logging it would) must not keep the outbox's sqlite open
    assert _fds_on(outbox) == []
    assert {t.ident for t in threading.enumerate()} <= threads
    message = str(excinfo.value)
    assert str(bad) in message and "--mqtt-ca" in message and "\n" not in message, message


def test_a_bad_ca_file_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    r = run_cli("-m", "edgekit", "detect", str(REPO / "examples/shapes/shapes_int8.tflite"),
                str(REPO / "examples/shapes/images"), "--mqtt", "mqtts://127.0.0.1:8883", "--mqtt-ca", str(bad),
                "--outbox", str(tmp_path / "o.db"), "--device-id", "tls")
    lines = [t for t in r.stderr.splitlines() if t.strip()]
    assert r.returncode == ConfigError.exit_code == 2, r.stderr
    assert len(lines) == 1 and str(bad) in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_a_slow_outbox_write_does_not_hold_up_the_map(mosquitto, tmp_path):
    """The broker's PUBACK is written to the outbox on paho's network thread; while that write is
    slow (a busy SD card), what needs only the in-flight map must not wait for it."""
    settings = MqttSettings(host="127.0.0.1", port=mosquitto.port, device_id="slow", outbox=str(tmp_path / "o.db"))
    with Publisher(settings, required=True) as pub:
        writing, release = threading.Event(), threading.Event()
        ack = pub.outbox.ack

        def slow_ack(outbox_id):
            writing.set()
            release.wait(120)
            return ack(outbox_id)

        pub.outbox.ack = slow_ack
        pub.publish(settings.topic("state"), b"1", qos=1, retain=True)
        assert writing.wait(60), pub.stats()
        answers: list = []
        other = threading.Thread(target=lambda: answers.append(
            (pub.published_retained(settings.topic("state")), pub.forget_retained("x"), pub.stats()["queued"])))
        other.start()
        other.join(60)  # a guard: it needs no disk, and the disk is held until we release it
        done_before_release = not other.is_alive()
        release.set()
        other.join()
        assert done_before_release and answers == [(b"1", None, 1)], answers
        assert pub.flush(30) and pub.stats()["sent"] == 1, pub.stats()
