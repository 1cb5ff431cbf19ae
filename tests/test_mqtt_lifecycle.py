"""The publisher's life through a real mosquitto: two edgekits with one device id, what a run
leaves retained when it ends, a slow outbox write beside the in-memory maps, and a bad TLS file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from conftest import REPO, run_cli
from mqtt_helpers import Broker, Subscriber, retained

from edgekit.errors import ConfigError
from edgekit.mqtt import MqttSettings, Publisher
from edgekit.mqtt.sink import MqttSink


@pytest.fixture
def mosquitto(tmp_path):
    (tmp_path / "broker").mkdir()
    b = Broker(tmp_path / "broker", kind="mosquitto").start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def cat(ssd, ssd_labels, images):
    """A real SSD detection of a photo with a cat."""
    from edgekit import Detector, DetectorOptions

    result = Detector(ssd, DetectorOptions(score_threshold=0.5), labels_path=ssd_labels).detect(
        str(images / "coral_cat.bmp"))
    assert "cat" in {d.label for d in result.detections}
    return result


TWIN = """
import sys, time
from edgekit.mqtt import MqttSettings, Publisher

port, outbox, protocol, seconds = sys.argv[1:]
said = []
def warn(line):
    print(line, file=sys.stderr, flush=True)
    if "another edgekit" in line:
        said.append(time.monotonic())
settings = MqttSettings(host="127.0.0.1", port=int(port), device_id="twin", outbox=outbox, protocol=protocol)
pub = Publisher(settings, warn=warn).start()
deadline = time.monotonic() + float(seconds)
while time.monotonic() < deadline and not (said and time.monotonic() - said[0] > 3):
    pub.publish("edgekit/twin/note", b"x", qos=1)  # a detector at work: messages in flight when kicked
    time.sleep(0.1)
stats = pub.stats()
print("connected" if stats["connected"] else "not connected", f"dead_letters={stats['dead_letters']}", flush=True)
pub.close(flush_timeout=1)
"""


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_two_edgekits_with_one_device_id_are_told_in_one_line(mosquitto, tmp_path, protocol):
    """Same device id, same client id: each one's connect makes the broker close the other's
    connection. Each says so in one line (not per flap), and one alone never does."""
    script = tmp_path / "twin.py"
    script.write_text(TWIN)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    line = f"another edgekit is connected as device twin to 127.0.0.1:{mosquitto.port}: give each device its own device_id"

    def twin(n: int, seconds: float) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(script), str(mosquitto.port), str(tmp_path / f"o{n}.db"),
                                 protocol, str(seconds)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    alone = twin(0, 4)
    out, err = alone.communicate(timeout=60)
    assert alone.returncode == 0, err
    assert out.split() == ["connected", "dead_letters=0"] and "another edgekit" not in err, (out, err)

    both = [twin(1, 60), twin(2, 60)]
    results = [p.communicate(timeout=120) for p in both]
    for p, (out, err) in zip(both, results):
        assert p.returncode == 0, err
        assert out.split()[-1] == "dead_letters=0", out  # kicked off with messages in flight: none set aside
        said = [x for x in err.splitlines() if "another edgekit" in x]
        assert len(said) == 1 and line in said[0], err  # said once, though the flapping went on
        assert "Traceback" not in err


def test_a_clean_exit_puts_the_retained_states_at_rest(mosquitto, tmp_path, cat):
    """After the run: status offline, and no retained count still saying a cat is there (Frigate's
    and other consumers read counts without status), the live source down; Home
    Assistant's configs stay, and every entity among them has ``status`` as its availability."""
    settings = MqttSettings(host="127.0.0.1", port=mosquitto.port, device_id="garage", outbox=str(tmp_path / "o.db"),
                            ha_discovery=True, frigate=True)
    pub = Publisher(settings, required=True).start()
    sink = MqttSink(pub, "detect.tflite", live_sources=["cam"])
    pub.publish_result(cat, "detect.tflite")
    pub.publish_source_status("cam", "up")
    pub.publish("edgekit/garage/cam/motion", b"ON", retain=True)
    assert pub.flush(10), pub.stats()
    during = retained(mosquitto.port, "edgekit/garage/#", 0.5)
    assert during["edgekit/garage/counts/cat"] != b"0" and during["edgekit/garage/status"] == b"online"
    sink.close()

    after = retained(mosquitto.port, "#", 0.5)
    assert after["edgekit/garage/status"] == b"offline"
    assert after["edgekit/garage/counts/cat"] == b"0"
    assert after["edgekit/garage/cam/motion"] == b"ON"  # by its off delay only (test_source_motion)
    source = json.loads(after["edgekit/garage/sources/cam/status"])
    assert (source["source"], source["status"], source["reason"]) == ("cam", "down", "edgekit stopped")
    configs = {t: json.loads(p) for t, p in after.items() if t.startswith("homeassistant/")}
    assert "homeassistant/sensor/edgekit_garage/cat_count/config" in configs
    assert "homeassistant/binary_sensor/edgekit_garage/cam_stream/config" in configs
    for topic, config in configs.items():  # HA shows each entity unavailable while status says offline
        assert config["availability_topic"] == "edgekit/garage/status", topic
        assert (config["payload_available"], config["payload_not_available"]) == ("online", "offline")


def test_every_entity_config_names_the_availability_topic():
    """Every discovery config that makes an entity carries ``status`` as its availability; device
    triggers (``device_automation``) are not entities and Home Assistant takes no availability for them."""
    from edgekit.mqtt import homeassistant as ha

    s = MqttSettings(host="h", device_id="garage")
    groups = [ha.ha_discovery_configs(s, "person"), ha.zone_configs(s, "cam", "drive", "car"),
              ha.source_configs(s, "cam"), ha.motion_configs(s, "cam"), ha.diagnostic_configs(s)]
    configs = {t: c for g in groups for t, c in g.items()}
    entities = {t: c for t, c in configs.items() if "/device_automation/" not in t}
    assert len(entities) == 9 and len(configs) == 11
    for topic, config in entities.items():
        assert config["availability_topic"] == "edgekit/garage/status", topic


def test_a_slow_outbox_write_does_not_hold_the_map_lock(mosquitto, tmp_path):
    """While the outbox's write of a PUBACK hangs (a slow SD card), what needs only the in-memory
    maps goes on, and the message being acknowledged is not sent again meanwhile."""
    settings = MqttSettings(host="127.0.0.1", port=mosquitto.port, device_id="slow", outbox=str(tmp_path / "o.db"))
    sub = Subscriber(mosquitto.port, "edgekit/slow/#", client_id="slow-watch")
    time.sleep(0.3)
    pub = Publisher(settings, required=True).start()
    entered, release = threading.Event(), threading.Event()
    real_ack = pub.outbox.ack

    def slow_ack(message_id: int) -> None:
        entered.set()
        release.wait(60)
        real_ack(message_id)

    pub.outbox.ack = slow_ack
    pub.publish("edgekit/slow/counts/cat", b"2", retain=True)
    assert entered.wait(10), pub.stats()  # the broker's PUBACK came, its outbox write hangs now
    done = threading.Event()

    def map_only() -> None:
        pub.published_retained("edgekit/slow/counts/cat")
        pub.forget_retained("edgekit/slow/counts/dog")
        done.set()

    worker = threading.Thread(target=map_only, daemon=True)
    worker.start()
    finished = done.wait(5)  # the write is held until release: with the lock held across it, never
    time.sleep(1.5)  # the sender's rounds (every 0.5 s) while the acknowledgement is written
    release.set()
    assert finished, "published_retained()/forget_retained() waited for a hanging outbox write"
    assert pub.flush(10), pub.stats()
    pub.close()
    assert sub.wait_for(lambda s: any(p == b"offline" for t, p, _ in s.messages if t.endswith("/status")), 10)
    with sub.lock:
        sent = [p for t, p, _ in sub.messages if t == "edgekit/slow/counts/cat"]
    sub.close()
    assert sent == [b"2", b"0"], sent  # once, then put at rest by close(): never sent again while acked


def _open_paths() -> set[str]:
    paths = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            paths.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return paths


def test_a_bad_ca_file_is_one_line_naming_it_and_leaks_nothing(tmp_path):
    outbox = tmp_path / "o.db"
    settings = MqttSettings(host="127.0.0.1", port=8883, tls=True, ca_file=str(tmp_path / "missing-ca.crt"),
                            device_id="tls", outbox=str(outbox))
    threads = set(threading.enumerate())
    with pytest.raises(ConfigError) as raised:
        Publisher(settings)
    message = str(raised.value)
    assert f"the CA file {tmp_path / 'missing-ca.crt'} (--mqtt-ca, ca_file): no such file" in message
    assert not any(p.startswith(str(outbox)) for p in _open_paths()), _open_paths()
    assert set(threading.enumerate()) == threads
    assert not outbox.exists()

    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=f"the CA file {garbage} .*not a PEM file"):
        Publisher(MqttSettings(**{**settings.__dict__, "ca_file": str(garbage)}))
    assert not any(p.startswith(str(outbox)) for p in _open_paths())

    r = run_cli("-m", "edgekit", "ha-remove", "cat", "--mqtt", "mqtts://127.0.0.1:8883", "--mqtt-ca",
                str(tmp_path / "missing-ca.crt"), "--device-id", "tls", "--outbox", str(outbox))
    assert r.returncode == 2, r.stderr  # README: 2, a bad option or argument
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing-ca.crt" in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert not list(tmp_path.glob("o*.db*"))


def test_a_tracked_run_leaves_nothing_counted_and_its_transitions_match_the_schema(mosquitto, tmp_path):
    """`edgekit detect --zone --frigate --ha-discovery` of a generated scene through a real
    mosquitto: each zone transition of its events went out on ``…/transition`` as the bare word
    (schema transition-1, QoS 1, not retained); after the run, no retained count says anything but 0."""
    import jsonschema

    sys.path.insert(0, str(REPO / "tests"))
    from scenes import walk_and_park, write_video

    video = write_video(walk_and_park(), tmp_path / "walk.mp4")
    sub = Subscriber(mosquitto.port, "#", client_id="transition-watch")
    time.sleep(0.3)
    r = run_cli("-m", "edgekit", "detect", str(REPO / "examples" / "shapes" / "shapes_int8.tflite"), str(video),
                "--no-plan", "--mqtt", f"mqtt://127.0.0.1:{mosquitto.port}", "--device-id", "yard", "--mqtt-required",
                "--outbox", str(tmp_path / "o.db"), "--zone", "left=0,0,0.5,0,0.5,1,0,1",
                "--zone", "right=0.5,0,1,0,1,1,0.5,1", "--frigate", "--ha-discovery")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    expected = sorted((e["after"]["source"], t["zone"], e["after"]["label"], t["kind"]) for d in lines
                      for e in d["events"] for t in e["after"]["zone_transitions"] if t["kind"] in ("entered", "left"))
    assert expected, "the scene crosses both zones"
    assert sub.wait_for(lambda s: any(t == "edgekit/yard/status" and p == b"offline" for t, p, _ in s.messages), 30)
    with sub.lock:
        transitions = [(t, p, was_retained) for t, p, was_retained in sub.messages if t.endswith("/transition")]
    sub.close()
    schema = json.loads((REPO / "edgekit" / "schemas" / "transition-1.json").read_text())
    for _topic, payload, was_retained in transitions:
        jsonschema.validate(payload.decode(), schema)
        assert not was_retained
    got = sorted((*t.split("/")[3:5], p.decode()) for t, p, _ in transitions)  # edgekit/yard/<src>/<zone>/<label>/transition
    assert got == [(zone, label, kind) for _source, zone, label, kind in expected], (got, expected)

    kept = retained(mosquitto.port, "#", 0.8)
    assert kept["edgekit/yard/status"] == b"offline"
    counts = {t: p for t, p in kept.items() if p.isdigit()}
    assert any(t.startswith("edgekit/yard/counts/") for t in counts) and any(t.startswith("frigate/") for t in counts)
    assert set(counts.values()) == {b"0"}, {t: p for t, p in counts.items() if p != b"0"}
    assert not any(t.endswith("/transition") for t in kept)
