"""Home Assistant through a real mosquitto: the five things a real Home Assistant 2026.2.3 showed wrong
(each test here would have caught one), and the entities announced at start. Frames are real SSD
detections on real photos, handed to the real MqttSink and Publisher."""

from __future__ import annotations

import json
import re
import time

import pytest

from conftest import REPO, run_cli
from mqtt_helpers import Broker, Subscriber, retained

from edgekit.frames import Frame, FrameResult
from edgekit.mqtt import MqttSettings, Publisher
from edgekit.mqtt.homeassistant import diagnostic_configs, ha_discovery_configs, source_configs, zone_configs
from edgekit.mqtt.sink import MqttSink
from edgekit.zones import parse_zone


@pytest.fixture
def mosquitto(tmp_path):
    (tmp_path / "broker").mkdir()
    b = Broker(tmp_path / "broker", kind="mosquitto").start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def frames(ssd, ssd_labels, images):
    """Real detections: a photo with a cat, and an empty scene (a grey frame)."""
    import numpy as np

    from edgekit import Detector, DetectorOptions

    det = Detector(ssd, DetectorOptions(score_threshold=0.5), labels_path=ssd_labels)
    cat = det.detect(str(images / "coral_cat.bmp"))
    assert "cat" in {d.label for d in cat.detections}
    empty = det.detect(np.full((300, 400, 3), 128, np.uint8))
    assert empty.detections == ()

    def make(result, i=0):
        return FrameResult(Frame("cam", i, float(i), 0.0, pixels=1), result, source="cam")

    return {"cat": lambda i=0: make(cat, i), "empty": lambda i=0: make(empty, i)}


def _settings(broker, tmp_path, **kw):
    return MqttSettings(host="127.0.0.1", port=broker.port, device_id="garage", outbox=str(tmp_path / "o.db"),
                        ha_discovery=True, **kw)


def _wait_empty(pub, timeout=10):
    assert pub.flush(timeout), pub.stats()


def _slug(text: str) -> str:
    """Home Assistant's entity-id slug (lower case, runs of other characters as one '_')."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def test_1_the_docs_name_the_entities_home_assistant_creates():
    """HA names an entity <domain>.<device name>_<entity name>: the guide must say that."""
    settings = MqttSettings(host="h", device_id="garage")
    guide = (REPO / "examples" / "service" / "home-assistant.md").read_text()
    configs = {**ha_discovery_configs(settings, "person"),
               **zone_configs(settings, "rtsp://cam.lan/stream1", "drive", "person"),
               **source_configs(settings, "rtsp://cam.lan/stream1"), **diagnostic_configs(settings)}
    ids = set()
    for topic, config in configs.items():
        if "/device_automation/" in topic:
            assert config["subtype"] == "Drive person" and f"subtype *{config['subtype']}*" in guide
            continue
        assert config["name"][0].isupper()  # sentence case
        ids.add(f"{topic.split('/')[1]}.{_slug(config['device']['name'] + ' ' + config['name'])}")
    for entity_id in ("sensor.edgekit_garage_person_count", "binary_sensor.edgekit_garage_person_present",
                      "sensor.edgekit_garage_drive_person_count", "binary_sensor.edgekit_garage_drive_person_occupancy",
                      "binary_sensor.edgekit_garage_rtsp_cam_lan_stream1_stream",
                      "sensor.edgekit_garage_frames_per_second"):
        assert entity_id in ids and entity_id in guide, entity_id  # what the configs make is what the guide says
    assert "sensor.person_count" not in guide and "binary_sensor.person_present" not in guide
    assert all(c["origin"]["name"] == "edgekit" for c in configs.values())


def test_2_ha_remove_leaves_a_running_detector_connected_and_online(mosquitto, tmp_path):
    status = Subscriber(mosquitto.port, "edgekit/garage/status", client_id="status-watch")
    with Publisher(_settings(mosquitto, tmp_path), required=True) as device:
        time.sleep(0.5)
        r = run_cli("-m", "edgekit", "ha-remove", "cat", "--mqtt", f"mqtt://127.0.0.1:{mosquitto.port}",
                    "--device-id", "garage", "--outbox", str(tmp_path / "o.db"))
        assert r.returncode == 0, r.stderr
        time.sleep(1.0)
        assert device.stats()["connected"] and device.stats()["last_error"] is None
        with status.lock:
            seen = [p for _t, p, _r in status.messages]
        assert seen and set(seen) == {b"online"}, seen  # never kicked, never reported offline
    # with no detector running, ha-remove leaves the device's (offline) status as it was
    assert retained(mosquitto.port, "edgekit/garage/status") == {"edgekit/garage/status": b"offline"}
    stats = Subscriber(mosquitto.port, "edgekit/garage/stats", client_id="stats-watch")
    time.sleep(0.3)
    r = run_cli("-m", "edgekit", "ha-remove", "cat", "--mqtt", f"mqtt://127.0.0.1:{mosquitto.port}",
                "--device-id", "garage", "--outbox", str(tmp_path / "o.db"))
    assert r.returncode == 0, r.stderr
    assert retained(mosquitto.port, "edgekit/garage/status") == {"edgekit/garage/status": b"offline"}
    time.sleep(0.5)
    with stats.lock:  # no stats of its own: they would blank the device's fps and latency sensors
        assert stats.messages == [], stats.messages
    stats.close()
    status.close()


def test_3_a_removed_label_comes_back_when_seen_again(mosquitto, tmp_path, frames):
    config_topic = "homeassistant/sensor/edgekit_garage/cat_count/config"
    watch = Subscriber(mosquitto.port, config_topic, client_id="config-watch")
    pub = Publisher(_settings(mosquitto, tmp_path), required=True).start()
    sink = MqttSink(pub, "detect.tflite")
    sink.write(frames["cat"](0))
    _wait_empty(pub)
    r = run_cli("-m", "edgekit", "ha-remove", "cat", "--mqtt", f"mqtt://127.0.0.1:{mosquitto.port}",
                "--device-id", "garage", "--outbox", str(tmp_path / "o.db"))
    assert r.returncode == 0, r.stderr
    assert watch.wait_for(lambda s: any(p == b"" for t, p, _ in s.messages), 10)
    time.sleep(0.5)
    sink.write(frames["cat"](1))  # the same count as before: only the removal makes it announce again
    _wait_empty(pub)
    assert watch.wait_for(lambda s: s.messages[-1][1] != b"", 10), watch.messages
    assert json.loads(watch.messages[-1][1])["name"] == "Cat count"
    sink.close()
    watch.close()


def test_4_home_assistants_birth_brings_entities_back_after_the_broker_lost_them(mosquitto, tmp_path, frames):
    pub = Publisher(_settings(mosquitto, tmp_path), required=True).start()
    sink = MqttSink(pub, "detect.tflite")
    sink.write(frames["cat"](0))
    _wait_empty(pub)
    assert "homeassistant/sensor/edgekit_garage/cat_count/config" in retained(mosquitto.port, "#", 0.5)
    mosquitto.stop()  # a broker that loses its retained messages (its database gone), then HA restarts
    for db in mosquitto.workdir.glob("*.db"):
        db.unlink()
    mosquitto.start()
    assert retained(mosquitto.port, "#", 0.5) == {}
    deadline = time.monotonic() + 15
    while not pub.stats()["connected"] and time.monotonic() < deadline:
        time.sleep(0.1)
    ha = Subscriber(mosquitto.port, "nothing/here", client_id="home-assistant")
    time.sleep(0.5)
    ha.client.publish("homeassistant/status", b"online", qos=1)
    time.sleep(1.0)
    _wait_empty(pub)
    kept = retained(mosquitto.port, "#", 0.8)
    assert json.loads(kept["homeassistant/sensor/edgekit_garage/cat_count/config"])["name"] == "Cat count"
    assert "homeassistant/binary_sensor/edgekit_garage/cat_present/config" in kept
    assert kept["edgekit/garage/counts/cat"] != b"0" and kept["edgekit/garage/status"] == b"online"
    sink.close()
    ha.close()


def test_5_after_a_restart_an_empty_scene_clears_presence(mosquitto, tmp_path, frames):
    # what a run that died (SIGKILL, power cut) leaves: its last count retained; a clean exit
    # puts it at 0 itself (test_mqtt_lifecycle)
    dead_run = Subscriber(mosquitto.port, "nothing/here", client_id="dead-run")
    time.sleep(0.3)
    dead_run.client.publish("edgekit/garage/counts/cat", b"1", qos=1, retain=True).wait_for_publish(5)
    dead_run.close()
    assert retained(mosquitto.port, "edgekit/garage/counts/#", 0.5)["edgekit/garage/counts/cat"] != b"0"
    # a new run: the scene is empty now
    pub = Publisher(_settings(mosquitto, tmp_path), required=True).start()
    sink = MqttSink(pub, "detect.tflite")
    time.sleep(0.5)
    sink.write(frames["empty"](0))
    time.sleep(0.5)
    _wait_empty(pub)
    assert retained(mosquitto.port, "edgekit/garage/counts/#", 0.5) == {"edgekit/garage/counts/cat": b"0"}
    sink.close()


def test_entities_announced_at_start_for_allowed_labels_zones_and_live_sources(mosquitto, tmp_path):
    pub = Publisher(_settings(mosquitto, tmp_path), required=True).start()
    zone = parse_zone("drive=0,0.5,1,0.5,1,1,0,1")
    sink = MqttSink(pub, "detect.tflite", labels=("person", "car"), zones=[("cam", zone)], live_sources=["cam"])
    _wait_empty(pub)
    kept = retained(mosquitto.port, "homeassistant/#", 0.8)
    node = "homeassistant/{}/edgekit_garage/{}/config"
    for component, oid in (("sensor", "person_count"), ("binary_sensor", "car_present"),
                           ("sensor", "drive_person_count"), ("binary_sensor", "drive_car_occupancy"),
                           ("device_automation", "drive_person_entered"), ("device_automation", "drive_car_left"),
                           ("binary_sensor", "cam_stream"), ("sensor", "fps"), ("sensor", "latency_p95"),
                           ("sensor", "queued")):
        assert node.format(component, oid) in kept, (component, oid, sorted(kept))
    fps = json.loads(kept[node.format("sensor", "fps")])
    assert fps["entity_category"] == "diagnostic" and fps["state_topic"] == "edgekit/garage/stats"
    stream = json.loads(kept[node.format("binary_sensor", "cam_stream")])
    assert stream["device_class"] == "connectivity" and stream["state_topic"] == "edgekit/garage/sources/cam/status"
    trigger = json.loads(kept[node.format("device_automation", "drive_person_entered")])
    assert (trigger["automation_type"], trigger["type"], trigger["payload"]) == ("trigger", "entered", "entered")
    assert trigger["topic"] == "edgekit/garage/cam/drive/person/transition"
    sink.close()
