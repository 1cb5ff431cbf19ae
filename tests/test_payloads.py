"""The MQTT messages as pure functions (edgekit.mqtt.payloads, edgekit.mqtt.homeassistant), and MqttSink composing
them: exact bytes and topics, no broker (the broker tests are in test_mqtt.py)."""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import replace
import subprocess
import sys

import jsonschema
import pytest
from conftest import REPO
from PIL import Image

from edgekit.frames import Frame
from edgekit.mqtt.homeassistant import (
    discovery_messages,
    ha_discovery_configs,
    removal_messages,
)
from edgekit.mqtt import MqttSettings
from edgekit.mqtt.payloads import (
    Message,
    changed_labels,
    count_messages,
    detection_message,
    detection_payload,
    snapshot_jpeg,
    source_status_message,
    topic_safe,
)
from edgekit.results import Detection, DetectionResult
from edgekit.runner import FrameResult, run
from edgekit.mqtt.sink import MqttSink

NOW = dt.datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=dt.timezone.utc)


def _settings(**kw) -> MqttSettings:
    return MqttSettings(host="broker", device_id="garage", outbox="/nonexistent/unused.db", **kw)


def _result(labels, source="frame.jpg", **kw) -> DetectionResult:
    return DetectionResult(source, 1352, 900, tuple(Detection(lbl, 0, 0.9, (1.0, 2.0, 3.0, 4.0)) for lbl in labels),
                           **kw)


def test_detection_payload_bytes_and_schema():
    result = DetectionResult("cam/frame.jpg", 1352, 900, (Detection("person", 0, 0.754321, (67.6, 515.94, 92.1, 556.7)),),
                             frame=17, timestamp=1.5, latency_ms=23.456, invoke_ms=9.876)
    payload = detection_payload(result, event_id="ab" * 16, seq=3, device="garage", model="detect.tflite", now=NOW)
    assert payload == (
        b'{"schema":"edgekit.detections/3","event_id":"abababababababababababababababab","seq":3,'
        b'"timestamp":"2026-11-22T10:00:00.123Z","device":"garage","source":"cam/frame.jpg","model":"detect.tflite",'
        b'"width":1352,"height":900,"detections":[{"label":"person","class_id":0,"score":0.75432,'
        b'"box":[67.6,515.94,92.1,556.7]}],"frame":17,"latency_ms":23.46,"invoke_ms":9.88,"frame_timestamp":1.5}')
    schema = json.loads((REPO / "edgekit" / "schemas" / "detections-3.json").read_text())
    # version 3 only adds invoke_ms: the same message without it (schema name aside) is a valid version 2
    v2 = json.loads((REPO / "edgekit" / "schemas" / "detections-2.json").read_text())
    as_v2 = {k: v for k, v in json.loads(payload).items() if k != "invoke_ms"}
    jsonschema.validate({**as_v2, "schema": "edgekit.detections/2"}, v2, format_checker=jsonschema.FormatChecker())
    v2_props, v3_props = set(v2["properties"]), set(schema["properties"])
    assert v3_props - v2_props == {"invoke_ms"} and v2_props <= v3_props and set(v2["required"]) == set(schema["required"])
    jsonschema.validate(json.loads(payload), schema, format_checker=jsonschema.FormatChecker())
    bare = json.loads(detection_payload(_result([]), event_id="cd" * 16, seq=1, device="d", model="m", now=NOW))
    assert "frame" not in bare and "frame_timestamp" not in bare and "latency_ms" not in bare  # version 1 as it was
    assert "invoke_ms" not in bare
    jsonschema.validate(bare, schema, format_checker=jsonschema.FormatChecker())
    # version 2 only adds: a version-1 message (schema name aside) is a valid version-2 one, and a tracked
    # detection's track_id is allowed where version 1 refused every extra field
    v1 = json.loads((REPO / "edgekit" / "schemas" / "detections-1.json").read_text())
    jsonschema.validate({**bare, "schema": "edgekit.detections/1"}, v1)
    tracked = replace(result, detections=(replace(result.detections[0], track_id=4),), tracked=True)
    doc = json.loads(detection_payload(tracked, event_id="ab" * 16, seq=3, device="garage", model="m", now=NOW))
    assert doc["detections"][0]["track_id"] == 4
    jsonschema.validate(doc, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "schema": "edgekit.detections/1"}, v1)
    m = detection_message(_settings(qos=2), result, event_id="ab" * 16, seq=3, model="detect.tflite")
    assert (m.topic, m.qos, m.retain) == ("edgekit/garage/detections", 2, False)


def test_count_messages_only_for_changed_labels():
    s = _settings(qos=0)
    previous, counts = {"person": 1, "car": 2, "cat": 1}, {"person": 2, "cat": 1, "traffic light": 1, "a/b": 3}
    assert changed_labels(previous, counts) == ["a/b", "car", "person", "traffic light"]
    assert count_messages(s, previous, counts) == [
        Message("edgekit/garage/counts/a_b", b"3", 0, True),
        Message("edgekit/garage/counts/car", b"0", 0, True),  # gone: retained 0, so the last value is right
        Message("edgekit/garage/counts/person", b"2", 0, True),
        Message("edgekit/garage/counts/traffic_light", b"1", 0, True),
    ]
    assert count_messages(s, counts, dict(counts)) == []
    assert count_messages(s, {}, {}) == [] and count_messages(s, {"x": 0}, {}) == []
    assert [topic_safe(x) for x in ("a+b", "#", "", "tab\there")] == ["a_b", "_", "_", "tab_here"]


def test_source_status_message():
    m = source_status_message(_settings(), "rtsp://cam 1/a", "down", "timeout", now=NOW)
    assert m == Message("edgekit/garage/sources/rtsp:__cam_1_a/status",
                        b'{"source":"rtsp://cam 1/a","status":"down","reason":"timeout",'
                        b'"since":"2026-11-22T10:00:00.123Z"}', 1, True)


def test_home_assistant_discovery_and_removal_messages():
    from edgekit import __version__

    s = _settings(ha_prefix="ha")
    configs = ha_discovery_configs(s, "traffic light")
    assert list(configs) == ["ha/sensor/edgekit_garage/traffic_light_count/config",
                             "ha/binary_sensor/edgekit_garage/traffic_light_present/config"]
    count, present = configs.values()
    assert count["state_topic"] == present["state_topic"] == "edgekit/garage/counts/traffic_light"
    assert count["availability_topic"] == "edgekit/garage/status" and count["device"]["sw_version"] == __version__
    assert (count["unique_id"], present["unique_id"]) == ("edgekit_garage_traffic_light_count",
                                                          "edgekit_garage_traffic_light_present")
    assert count["name"] == "Traffic light count" and present["device_class"] == "occupancy"  # sentence case
    assert count["origin"]["name"] == "edgekit"
    messages = discovery_messages(s, ["traffic light", "cat"])
    assert [m.topic for m in messages[:2]] == list(configs) and len(messages) == 4
    assert all(m.qos == 1 and m.retain for m in messages)
    assert [json.loads(m.payload) for m in messages[:2]] == [count, present]
    assert removal_messages(s, ["cat"]) == [Message("ha/sensor/edgekit_garage/cat_count/config", b"", 1, True),
                                            Message("ha/binary_sensor/edgekit_garage/cat_present/config", b"", 1, True)]


def test_snapshot_jpeg_is_bounded_and_leaves_the_image_alone():
    image = Image.new("RGB", (1280, 720), (200, 30, 30))
    data = snapshot_jpeg(image)
    assert data[:2] == b"\xff\xd8" and image.size == (1280, 720)
    with Image.open(io.BytesIO(data)) as jpeg:
        assert jpeg.size == (640, 360) and jpeg.mode == "RGB"
        r, g, b = jpeg.getpixel((320, 180))
        assert abs(r - 200) < 8 and g < 40 and b < 40
    small = Image.new("L", (100, 50))
    with Image.open(io.BytesIO(snapshot_jpeg(small, max_side=64))) as jpeg:
        assert jpeg.size == (64, 32) and jpeg.mode == "RGB"


def test_payload_modules_import_no_paho_numpy_or_pil():
    code = ("import sys, edgekit.mqtt.payloads, edgekit.mqtt.homeassistant, edgekit.stats, edgekit.events\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('paho', 'numpy', 'PIL')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


class _Recorder:
    """Records what a sink publishes (the composition under test; delivery is test_mqtt's job)."""

    def __init__(self, settings: MqttSettings) -> None:
        self.settings = settings
        self.messages: list[Message] = []
        self.extra_stats = None
        self.closed = False

    def publish(self, topic, payload, qos=None, retain=False) -> None:
        self.messages.append(Message(topic, payload, qos, retain))

    def close(self) -> None:
        self.closed = True


class _Frames(list):
    """A finished run's results, as run() iterates a Runner."""

    stats = ()


def _fr(source, labels, index=0, image=None):
    return FrameResult(Frame(source, index, 0.0, 0.0), _result(labels, source=source), image=image,
                       timings={"decode": 2.0, "invoke": 10.0})


def test_mqtt_sink_composes_messages_and_keeps_per_run_state():
    pub = _Recorder(_settings(ha_discovery=True, snapshot=True))
    sink = MqttSink(pub, "/models/detect.tflite")
    assert pub.extra_stats == sink.stats.fields  # the stats topic gets the run's frame statistics
    photo = Image.new("RGB", (800, 600))
    frames = _Frames([_fr("cam", ["person"], 0, photo), _fr("cam", ["person"], 1), _fr("cam", ["car", "person"], 2),
                      _fr("cam", [], 3)])
    summary = run(frames, [sink])
    assert summary.processed == 4 and pub.closed
    topics = [m.topic.replace("edgekit/garage/", "") for m in pub.messages]
    assert topics == [
        # at start: the device's diagnostic entities (fps, latency, queue from the stats topic)
        "homeassistant/sensor/edgekit_garage/fps/config", "homeassistant/sensor/edgekit_garage/latency_p95/config",
        "homeassistant/sensor/edgekit_garage/queued/config",
        "detections", "homeassistant/sensor/edgekit_garage/person_count/config",
        "homeassistant/binary_sensor/edgekit_garage/person_present/config", "counts/person", "snapshot",
        "detections",  # same counts: nothing else
        "detections", "homeassistant/sensor/edgekit_garage/car_count/config",
        "homeassistant/binary_sensor/edgekit_garage/car_present/config", "counts/car",
        "detections", "counts/car", "counts/person",  # both gone: 0, and no new announcement
    ]
    detections = [json.loads(m.payload) for m in pub.messages if m.topic.endswith("/detections")]
    assert [d["seq"] for d in detections] == [1, 2, 3, 4] and len({d["event_id"] for d in detections}) == 4
    assert {d["model"] for d in detections} == {"detect.tflite"}
    assert [m.payload for m in pub.messages if "/counts/" in m.topic] == [b"1", b"1", b"0", b"0"]
    assert sink.stats.frames.summary().frames == 4 and set(sink.stats.frames.summary().stage_ms) == {"decode", "invoke", "publish"}


def test_mqtt_sink_only_on_change_is_its_per_source_change_gate():
    pub = _Recorder(_settings())
    sink = MqttSink(pub, "m.tflite", only_on_change=True)
    frames = _Frames([_fr("camA", ["person"]), _fr("camB", ["person"]), _fr("camA", ["person"]), _fr("camB", ["car"]),
                      _fr("camA", ["person", "person"]), _fr("camA", ["person", "person"])])
    run(frames, [sink])
    published = [json.loads(m.payload)["source"] for m in pub.messages if m.topic.endswith("/detections")]
    assert published == ["camA", "camB", "camB", "camA"]
    assert sink.stats.frames.summary().frames == 6  # held-back frames still count for fps and latency
    assert sink.stats.frames.summary("camA").frames == 4


def test_mqtt_sink_follows_the_settings_only_on_change_unless_told():
    """MqttSink(publisher, model) does what MqttSettings.only_on_change says (the service relies on it)."""
    for setting, told, expected in ((True, None, 2), (False, None, 3), (True, False, 3)):
        pub = _Recorder(_settings(only_on_change=setting))
        run(_Frames([_fr("cam", ["person"]), _fr("cam", ["person"]), _fr("cam", [])]),
            [MqttSink(pub, "m.tflite", only_on_change=told)])
        assert sum(m.topic.endswith("/detections") for m in pub.messages) == expected, (setting, told)


@pytest.mark.parametrize("only_on_change", [False, True])
def test_publish_result_without_the_runner(only_on_change):
    pub = _Recorder(_settings())
    sink = MqttSink(pub, "a/model.tflite", only_on_change=only_on_change)
    ids = [sink.publish_result(_result(["cat"], source=f"f{i}.jpg"), latency_ms=5.0 * (i + 1)) for i in range(3)]
    ids.append(sink.publish_result(_result([]), model="other.tflite"))
    held = [i is None for i in ids]
    assert held == ([False, True, True, False] if only_on_change else [False] * 4)
    models = [json.loads(m.payload)["model"] for m in pub.messages if m.topic.endswith("/detections")]
    assert models[-1] == "other.tflite" and set(models[:-1]) == {"model.tflite"}
    s = sink.stats.frames.summary()
    assert s.frames == 4 and (s.latency_ms_p50, s.latency_ms_max) == (10.0, 15.0)


def test_every_published_schema_is_named_in_the_readme():
    """Each JSON Schema in edgekit/schemas is named where the README lists the MQTT topics."""
    from pathlib import Path

    root = Path(__file__).parents[1]
    readme = root.joinpath("README.md").read_text()
    mqtt = readme[readme.index("## Publish over MQTT"):readme.index("## Settings file")]
    schemas = sorted(p.name for p in (root / "edgekit" / "schemas").glob("*.json"))
    assert "transition-1.json" in schemas
    latest = {}
    for name in schemas:
        kind, _, version = name.removesuffix(".json").rpartition("-")
        latest[kind] = max(latest.get(kind, 0), int(version))
    missing = [f"{k}-{v}.json" for k, v in latest.items() if f"edgekit/schemas/{k}-{v}.json" not in mqtt]
    assert not missing, missing
    assert "`<source>/<zone>/<label>/transition`" in mqtt


def test_at_rest_messages_zero_counts_and_take_live_sources_down():
    from edgekit.mqtt.payloads import at_rest_messages, source_status_message

    s = MqttSettings(host="h", device_id="garage")
    up = source_status_message(s, "cam 1", "up")
    retained = [("edgekit/garage/counts/cat", (b"3", 1)), ("edgekit/garage/counts/dog", (b"0", 1)),
                ("frigate/cam/person", (b"12", 0)), (up.topic, (up.payload, 1)),
                ("edgekit/garage/cam/motion", (b"ON", 1)), ("homeassistant/sensor/x/config", (b"{}", 1)),
                ("edgekit/garage/cam/cat/snapshot", (b"\xff\xd8", 1))]
    rest = at_rest_messages(s, retained)
    assert [(m.topic, m.qos, m.retain) for m in rest] == [
        ("edgekit/garage/counts/cat", 1, True), ("frigate/cam/person", 0, True), (up.topic, 1, True)]
    assert rest[0].payload == rest[1].payload == b"0"
    down = json.loads(rest[2].payload)
    assert (down["source"], down["status"], down["reason"]) == ("cam 1", "down", "edgekit stopped")
    assert at_rest_messages(s, [(m.topic, (m.payload, m.qos)) for m in rest]) == []  # at rest: nothing more


def test_takeovers_are_said_once_per_ten_minutes_and_only_for_short_connections():
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    from edgekit.mqtt.client import Takeovers

    s = MqttSettings(host="broker", device_id="garage")
    now = [0.0]
    watch = Takeovers(clock=lambda: now[0])
    lost = ReasonCode(PacketTypes.DISCONNECT, "Unspecified error")
    said = []
    for _ in range(20):  # two edgekits flapping: a close 1.5 s after each connect, for 30 s
        watch.connected_at = now[0]
        now[0] += 1.5
        said.append(watch.closed(lost, s))
    lines = [x for x in said if x]
    assert said[:2] == [None, None] and len(lines) == 1
    assert "another edgekit is connected as device garage to broker:1883: give each device its own device_id" in lines[0]
    now[0] += 600
    watch.connected_at = now[0] - 1
    assert watch.closed(lost, s) is None  # the minute's closes have aged out: one alone says nothing
    watch = Takeovers(clock=lambda: now[0])
    for _ in range(5):  # a long-lived connection closed now and then (a broker restart): never said
        watch.connected_at = now[0]
        now[0] += 40
        assert watch.closed(lost, s) is None
    taken = ReasonCode(PacketTypes.DISCONNECT, "Session taken over")
    answers = []
    for _ in range(2):  # MQTT 5 says so: the second close is enough
        watch.connected_at = now[0]
        now[0] += 1
        answers.append(watch.closed(taken, s))
    assert answers[0] is None and answers[1] and watch.kicked(taken)
