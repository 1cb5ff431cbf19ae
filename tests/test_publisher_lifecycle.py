"""The publisher's life around its connection, against a real mosquitto (beside
test_mqtt_lifecycle.py): a lone publisher whose broker restarts is not taken for a twin, and a CA
file that cannot be loaded is one line and exit 2 from the command line."""

from __future__ import annotations

import time

import pytest

from conftest import REPO, run_cli
from mqtt_helpers import Broker

from edgekit.errors import ConfigError
from edgekit.mqtt import MqttSettings, Publisher
from edgekit.mqtt.client import Takeovers


@pytest.fixture
def mosquitto(tmp_path):
    (tmp_path / "broker").mkdir()
    b = Broker(tmp_path / "broker", kind="mosquitto").start()
    yield b
    b.stop()


def test_one_process_alone_is_not_told_about_a_twin(mosquitto, tmp_path):
    """The broker restarted under a lone publisher, again and again: lost connections, each with a
    failed attempt while the broker was down, so an outage and not a connection taken over. (Under
    MQTT 3.1.1 a broker back within paho's first retry, three times a minute, would look the same.)"""
    lines: list[str] = []
    settings = MqttSettings(host="127.0.0.1", port=mosquitto.port, device_id="alone", outbox=str(tmp_path / "o.db"))
    with Publisher(settings, required=True, warn=lines.append) as pub:
        for _ in range(Takeovers.COUNT + 1):
            mosquitto.stop()
            while (pub.stats()["last_error"] or "disconnected").startswith("disconnected"):  # until a connect failed
                time.sleep(0.05)
            mosquitto.start()
            while not pub.stats()["connected"]:
                time.sleep(0.05)
    assert not [t for t in lines if "another edgekit" in t], lines


def test_a_bad_ca_file_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    r = run_cli("-m", "edgekit", "detect", str(REPO / "examples/shapes/shapes_int8.tflite"),
                str(REPO / "examples/shapes/images"), "--mqtt", "mqtts://127.0.0.1:8883", "--mqtt-ca", str(bad),
                "--outbox", str(tmp_path / "o.db"), "--device-id", "tls")
    lines = [t for t in r.stderr.splitlines() if t.strip()]
    assert r.returncode == ConfigError.exit_code == 2, r.stderr
    assert len(lines) == 1 and str(bad) in lines[0] and "Traceback" not in r.stderr, r.stderr


