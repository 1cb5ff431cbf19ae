"""Publishing to a real mosquitto: schema, status, and losing nothing across broker outages and a
SIGKILLed publisher."""

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from edgekit import ConfigError
from edgekit.mqtt import MqttError, MqttSettings, Publisher
from edgekit.results import Detection, DetectionResult
from mqtt_helpers import Broker, Subscriber


@pytest.fixture
def broker(tmp_path):
    """mosquitto, or amqtt where mosquitto is not installed (the 3.1.1 tests)."""
    b = Broker(tmp_path).start()
    yield b
    b.stop()


@pytest.fixture
def mosquitto(tmp_path):
    b = Broker(tmp_path, kind="mosquitto").start()
    yield b
    b.stop()


def _result(i):
    return DetectionResult(f"frame{i}.jpg", 640, 480, (Detection("person", 0, 0.9, (1.0, 2.0, 3.0, 4.0)),))


def _settings(broker, tmp_path, **kw):
    kw.setdefault("stats_interval", 0.5)
    return MqttSettings(host="127.0.0.1", port=broker.port, device_id="testdev", outbox=str(tmp_path / "outbox.db"),
                        **kw)


def test_detect_cli_publishes_schema_and_status(broker, tmp_path, ssd, ssd_labels, images):
    sub = Subscriber(broker.port, "edgekit/testdev/#")
    time.sleep(0.3)
    r = run_cli("-m", "edgekit", "detect", str(ssd), str(images / "coral_kite_and_cold.jpg"), str(images / "table.jpg"),
                "--labels", str(ssd_labels), "--threshold", "0.5", "--mqtt", f"mqtt://127.0.0.1:{broker.port}",
                "--device-id", "testdev", "--outbox", str(tmp_path / "o.db"), "--mqtt-required")
    assert r.returncode == 0, r.stderr
    assert sub.wait_for(lambda s: len(s.payloads("/detections")) == 2)
    first = sub.payloads("/detections")[0]
    assert first["schema"] == "edgekit.detections/3" and first["device"] == "testdev" and first["seq"] == 1
    assert 0 < first["invoke_ms"] <= first["latency_ms"]  # the model's own time, inside capture -> result
    assert first["model"] == "detect.tflite" and (first["width"], first["height"]) == (1352, 900)
    assert {"person", "kite"} <= {d["label"] for d in first["detections"]}
    assert len({p["event_id"] for p in sub.payloads("/detections")}) == 2
    import jsonschema
    schema = json.loads((REPO / "edgekit" / "schemas" / "detections-3.json").read_text())
    for payload in sub.payloads("/detections"):  # what a real broker delivered matches the published schema
        jsonschema.validate(payload, schema, format_checker=jsonschema.FormatChecker())
    broken = {**first, "detections": [{**first["detections"][0], "score": 1.5}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    assert sub.wait_for(lambda s: any(t.endswith("/status") and p == b"offline" for t, p, _ in s.messages))
    statuses = [p for t, p, _ in sub.messages if t.endswith("/status")]
    assert statuses[0] == b"online" and statuses[-1] == b"offline"
    assert any(t == "edgekit/testdev/counts/person" for t, _, _ in sub.messages)
    sub.close()


def test_broker_down_at_start_then_up(tmp_path):
    broker = Broker(tmp_path)  # not started yet
    with Publisher(_settings(broker, tmp_path)) as pub:
        ids = [pub.publish_result(_result(i)) for i in range(50)]
        time.sleep(1.0)
        assert len(pub.outbox) >= 50 and not pub.stats()["connected"]
        broker.start()
        sub = Subscriber(broker.port, "edgekit/testdev/detections")
        assert pub.flush(30)
    assert sub.wait_for(lambda s: {p["event_id"] for p in s.payloads("detections")} >= set(ids), 30)
    sub.close()
    broker.stop()


@pytest.mark.slow
def test_broker_killed_mid_stream_loses_nothing(tmp_path):
    broker = Broker(tmp_path, kind="mosquitto").start()  # persistence: the subscriber's queue survives
    sub = Subscriber(broker.port, "edgekit/testdev/detections")
    time.sleep(0.3)
    ids = []
    with Publisher(_settings(broker, tmp_path)) as pub:
        for i in range(1200):
            ids.append(pub.publish_result(_result(i)))
            if i == 400:
                broker.stop(signal.SIGKILL)  # gone for several seconds mid-stream
            if i == 800:
                time.sleep(3)
                broker.start()
        assert pub.flush(60), pub.stats()
    got = lambda s: {p["event_id"] for p in s.payloads("detections")}  # noqa: E731
    assert sub.wait_for(lambda s: got(s) >= set(ids), 60), len(set(ids) - got(sub))
    assert len(ids) == 1200 and got(sub) == set(ids)  # every event arrived (duplicates allowed, none missing)
    sub.close()
    broker.stop()


def test_publisher_sigkilled_while_offline_delivers_backlog_on_restart(tmp_path):
    broker = Broker(tmp_path)  # down
    outbox = tmp_path / "outbox.db"
    code = ("import json, os, signal, sys, time\nfrom edgekit.mqtt import MqttSettings, Publisher\n"
            "from edgekit.results import Detection, DetectionResult\n"
            f"s = MqttSettings(host='127.0.0.1', port={broker.port}, device_id='testdev', outbox={str(outbox)!r})\n"
            "p = Publisher(s).start()\nids = []\n"
            "for i in range(300):\n"
            "    ids.append(p.publish_result(DetectionResult(f'f{i}', 1, 1, ())))\n"
            "print(json.dumps(ids), flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert r.returncode == -signal.SIGKILL
    ids = json.loads(r.stdout)
    broker.start()
    sub = Subscriber(broker.port, "edgekit/testdev/detections")
    time.sleep(0.3)
    with Publisher(MqttSettings(host="127.0.0.1", port=broker.port, device_id="testdev", outbox=str(outbox))) as pub:
        assert pub.flush(30)
    assert sub.wait_for(lambda s: {p["event_id"] for p in s.payloads("detections")} == set(ids), 30)
    sub.close()
    broker.stop()


def test_required_unreachable_broker_is_one_clear_error(tmp_path, ssd, images):
    from mqtt_helpers import free_port
    port = free_port()
    with pytest.raises(MqttError, match="unreachable"):
        Publisher(MqttSettings(host="127.0.0.1", port=port, outbox=str(tmp_path / "o.db")), required=True,
                  connect_timeout=2).start()
    r = run_cli("-m", "edgekit", "detect", str(ssd), str(images / "table.jpg"), "--mqtt", f"mqtt://127.0.0.1:{port}",
                "--mqtt-required", "--outbox", str(tmp_path / "o2.db"))
    assert r.returncode == 7 and "unreachable" in r.stderr and "Traceback" not in r.stderr
    assert len([line for line in r.stderr.splitlines() if "MQTT" in line]) == 1, r.stderr  # not also "deferred"


def test_wrong_credentials(tmp_path):
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pwfile), "edge", "right"], check=True)
    broker = Broker(tmp_path, f"password_file {pwfile}\n", kind="mosquitto")
    broker.config.write_text(broker.config.read_text().replace("allow_anonymous true", "allow_anonymous false"))
    broker.start()
    try:
        secret = tmp_path / "secret"
        secret.write_text("wrong\n")
        secret.chmod(0o600)
        s = MqttSettings(host="127.0.0.1", port=broker.port, username="edge", password_file=str(secret),
                         outbox=str(tmp_path / "o.db"))
        with pytest.raises(MqttError, match="refused"):
            Publisher(s, required=True, connect_timeout=5).start()
        secret.write_text("right\n")
        with Publisher(s, required=True) as pub:
            pub.publish_result(_result(0))
            assert pub.flush(10)
        secret.chmod(0o644)
        with pytest.raises(ConfigError, match="chmod 600"):
            s.password()
    finally:
        broker.stop()


@pytest.mark.parametrize("url,words", [
    ("http://broker", "expected an MQTT URL"),
    ("mqtt://user:pw@broker", "do not put the MQTT password in the URL"),
    ("mqtt://broker:99999", "port"),
])
def test_bad_urls(url, words):
    with pytest.raises(ConfigError, match=words):
        MqttSettings.from_url(url)


def test_wildcards_in_topics_refused():
    with pytest.raises(ConfigError, match="not usable in a topic"):
        MqttSettings(host="x", device_id="cam/+")
    with pytest.raises(ConfigError, match="refusing to skip TLS"):
        MqttSettings(host="x", tls=True, insecure=True)


def _make_ca(tmp_path):
    """A throwaway CA and a server certificate for 127.0.0.1 (openssl CLI)."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=edgekit test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "server.crt", "-days", "2", "-extfile", "san.ext")
    return tmp_path / "ca.crt"


def test_tls_with_ca_file_and_refusal_without_it(tmp_path):
    ca = _make_ca(tmp_path)
    broker = Broker(tmp_path, f"cafile {ca}\ncertfile {tmp_path}/server.crt\nkeyfile {tmp_path}/server.key\n",
                    kind="mosquitto").start()
    try:
        sub = Subscriber(broker.port, "edgekit/testdev/detections")  # plain client cannot speak TLS...
        s = MqttSettings.from_url(f"mqtts://127.0.0.1:{broker.port}", ca_file=str(ca), device_id="testdev",
                                  outbox=str(tmp_path / "o.db"))
        with Publisher(s, required=True) as pub:
            pub.publish_result(_result(0))
            assert pub.flush(10)  # ...but the broker acknowledged over TLS
        sub.close()
        untrusted = MqttSettings.from_url(f"mqtts://127.0.0.1:{broker.port}", device_id="testdev",
                                          outbox=str(tmp_path / "o2.db"))  # system CAs do not know our CA
        with pytest.raises(MqttError, match="TLS|not reachable"):
            Publisher(untrusted, required=True, connect_timeout=3).start()
    finally:
        broker.stop()


def test_mqtt5_with_session_expiry(mosquitto, tmp_path):
    broker = mosquitto
    sub = Subscriber(broker.port, "edgekit/testdev/detections")
    time.sleep(0.3)
    with Publisher(_settings(broker, tmp_path, protocol="5", session_expiry=600), required=True) as pub:
        ids = [pub.publish_result(_result(i)) for i in range(20)]
        assert pub.flush(10)
    assert sub.wait_for(lambda s: {p["event_id"] for p in s.payloads("detections")} == set(ids))
    sub.close()


def test_home_assistant_discovery_and_removal(broker, tmp_path, ssd, ssd_labels, images):
    sub = Subscriber(broker.port, "homeassistant/#", client_id="ha")
    time.sleep(0.3)
    r = run_cli("-m", "edgekit", "detect", str(ssd), str(images / "coral_kite_and_cold.jpg"), "--labels",
                str(ssd_labels), "--threshold", "0.5", "--mqtt", f"mqtt://127.0.0.1:{broker.port}", "--device-id",
                "testdev", "--outbox", str(tmp_path / "o.db"), "--ha-discovery", "--mqtt-required")
    assert r.returncode == 0, r.stderr
    topic = "homeassistant/sensor/edgekit_testdev/person_count/config"
    assert sub.wait_for(lambda s: any(t == topic for t, _, _ in s.messages))
    config = json.loads(next(p for t, p, _ in sub.messages if t == topic))
    assert config["state_topic"] == "edgekit/testdev/counts/person"
    assert config["availability_topic"] == "edgekit/testdev/status" and config["unique_id"] == "edgekit_testdev_person_count"
    presence = "homeassistant/binary_sensor/edgekit_testdev/person_present/config"
    assert any(t == presence for t, _, _ in sub.messages)
    r = run_cli("-m", "edgekit", "ha-remove", "person", "kite", "--mqtt", f"mqtt://127.0.0.1:{broker.port}",
                "--device-id", "testdev", "--outbox", str(tmp_path / "o.db"))
    assert r.returncode == 0, r.stderr
    assert sub.wait_for(lambda s: any(t == topic and p == b"" for t, p, _ in s.messages))
    sub.close()


def test_only_on_change_and_snapshot(broker, tmp_path):
    from PIL import Image
    sub = Subscriber(broker.port, "edgekit/testdev/#")
    time.sleep(0.3)
    with Publisher(_settings(broker, tmp_path, only_on_change=True, snapshot=True), required=True) as pub:
        assert pub.publish_result(_result(0), image=Image.new("RGB", (1280, 720))) is not None
        assert pub.publish_result(_result(1)) is None  # same counts: skipped
        assert pub.publish_result(DetectionResult("empty.jpg", 1, 1, ())) is not None
        assert pub.flush(10)
    assert sub.wait_for(lambda s: len(s.payloads("/detections")) == 2)
    snaps = [p for t, p, _ in sub.messages if t.endswith("/snapshot")]
    assert len(snaps) == 1 and snaps[0][:2] == b"\xff\xd8"
    assert Image.open(__import__("io").BytesIO(snaps[0])).size == (640, 360)
    sub.close()


def test_settings_file(tmp_path):
    f = tmp_path / "mqtt.toml"
    f.write_text('[mqtt]\nurl = "mqtts://broker.example:8884"\ndevice_id = "garage"\nqos = 0\n')
    s = MqttSettings.from_file(str(f), outbox=str(tmp_path / "o.db"))
    assert (s.host, s.port, s.tls, s.device_id, s.qos) == ("broker.example", 8884, True, "garage", 0)
    assert MqttSettings.from_file(str(f), url="mqtt://other:1883").host == "other"  # the flag wins
    f.write_text('url = "mqtt://b"\nretries = 3\n')
    with pytest.raises(ConfigError, match="unknown MQTT setting.*retries.*known:"):
        MqttSettings.from_file(str(f))
    f.write_text('url = "mqtt://b"\npassword = "x"\n')
    with pytest.raises(ConfigError, match="password_file"):
        MqttSettings.from_file(str(f))


@pytest.mark.slow
def test_network_cut_loses_nothing(broker, tmp_path):
    from mqtt_helpers import CuttableLink
    link = CuttableLink(broker.port)
    sub = Subscriber(broker.port, "edgekit/testdev/detections")  # the subscriber's own path stays up
    time.sleep(0.3)
    ids = []
    settings = MqttSettings(host="127.0.0.1", port=link.port, device_id="testdev", outbox=str(tmp_path / "o.db"),
                            keepalive=2)
    with Publisher(settings, required=True) as pub:
        for i in range(300):
            ids.append(pub.publish_result(_result(i)))
            if i == 100:
                link.cut()  # silence: no error, no reset; only the keepalive notices
            if i == 200:
                time.sleep(6)
                assert not pub.stats()["connected"] and len(pub.outbox) >= 100
                link.restore()
        assert pub.flush(60), pub.stats()
    assert sub.wait_for(lambda s: {p["event_id"] for p in s.payloads("detections")} == set(ids), 60)
    sub.close()
    link.close()


def _own_rss_mib() -> float:
    """This process's resident set, read independently of edgekit (statm: pages)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_stats_topic_reports_rate_latency_memory_and_queue(broker, tmp_path):
    """The stats message carries what the inputs determine: the median and maximum of the latencies
    fed in, the frame rate of the calls, this process's RSS and the delivery counters."""
    # 21 skewed latencies (median 12.0, mean 40.5, maximum 480.0) and three frames without one.
    latencies = [12.0, 7.5, 30.0, 9.0, 11.0, 480.0, 8.0, 10.5, 95.0, 13.0, 6.0, 14.5, 22.0, 7.0, 16.0, 9.5, 40.0,
                 18.0, 5.5, 12.5, 11.5]
    frames = latencies[:7] + [None] + latencies[7:14] + [None] + latencies[14:] + [None]
    sub = Subscriber(broker.port, "edgekit/testdev/stats")
    time.sleep(0.3)
    with Publisher(_settings(broker, tmp_path), required=True) as pub:
        calls = []  # (monotonic before, after) each call: the publisher stamps each frame in between
        for i, ms in enumerate(frames):
            before = time.monotonic()
            pub.publish_result(_result(i), latency_ms=ms)
            calls.append((before, time.monotonic()))
            time.sleep(0.04)
        assert pub.flush(10), pub.stats()
        sent = pub.stats()["sent"]
        # every detections message, and one retained count (person: 0 -> 1); stats and status go direct
        assert sent == len(frames) + 1
        rss_before = _own_rss_mib()
        # a stats message computed after everything was sent reflects every frame
        assert sub.wait_for(lambda s: any(d["sent"] == sent for d in s.payloads("stats")), 5), sub.payloads("stats")
        rss_after = _own_rss_mib()
    doc = next(d for d in sub.payloads("stats") if d["sent"] == sent)
    assert doc["latency_ms_p50"] == statistics.median(latencies) == 12.0
    assert doc["latency_ms_max"] == max(latencies) == 480.0
    (first_before, first_after), (last_before, last_after) = calls[0], calls[-1]
    slowest, fastest = (len(frames) - 1) / (last_after - first_before), (len(frames) - 1) / (last_before - first_after)
    assert slowest - 0.01 <= doc["fps"] <= fastest + 0.01, (slowest, doc["fps"], fastest)
    assert min(rss_before, rss_after) - 3 <= doc["rss_mib"] <= max(rss_before, rss_after) + 3, (rss_before, doc)
    assert (doc["queued"], doc["dropped"], doc["inflight"], doc["connected"], doc["last_error"]) == (0, 0, 0, True, None)
    sub.close()


def test_stats_topic_of_a_real_run_has_per_source_rates_latency_and_stage_ms(broker, tmp_path, ssd, images):
    """The runner over a real photo source through MqttSink and a real broker: the stats messages say,
    per source, frames read and processed per second, latency percentiles and ms per stage (publish
    included) beside the delivery state; after the run the numbers equal those recomputed from each
    frame's own timings and the wall clock."""
    import math

    from test_runner import PhotoSource

    from edgekit.detector import Detector
    from edgekit.runner import Runner, run
    from edgekit.mqtt.sink import MqttSink
    from edgekit.stats import RunStats

    n = 90  # at least about a second of work, so several stats messages go out during the run
    source = PhotoSource(images / "coral_kite_and_cold.jpg", n, 30.0, live=False)  # frames carry its name
    sub = Subscriber(broker.port, "edgekit/testdev/stats")
    time.sleep(0.3)
    runner = Runner([source], Detector(ssd))
    results = []

    class Keep:
        def write(self, fr):
            results.append(fr)

        def close(self):
            pass

    with Publisher(_settings(broker, tmp_path, stats_interval=0.2), required=True) as pub:
        before = time.monotonic()
        stats = RunStats(runner.stats)  # the run's statistics: a stage that sees every frame
        sink = MqttSink(pub, str(ssd), stats=stats)
        after_made = time.monotonic()
        run(runner, [Keep(), sink], [stats.count])  # closes the sink, so the publisher: stats were sent during the run
        before_final = time.monotonic()
        final = stats.fields()
        after = time.monotonic()
    assert len(results) == n
    live = [d for d in sub.payloads("stats") if d.get("sources")]
    assert live, sub.payloads("stats")
    doc = live[-1]
    (src,) = doc["sources"]
    assert src["name"] == source.name and 0 < src["processed"] <= src["read"] <= n
    assert src["fps_in"] > 0 and src["fps_out"] > 0 and doc["connected"] is True and "queued" in doc
    assert set(doc["stage_ms"]) == {"decode", "preprocess", "wait", "invoke", "outputs", "publish"}
    assert 0 < doc["latency_ms_p50"] <= doc["latency_ms_p95"] <= doc["latency_ms_max"]
    assert set(src["stage_ms"]) == set(doc["stage_ms"]) and src["latency_ms_p50"] is not None
    import jsonschema

    schema = json.loads((REPO / "edgekit" / "schemas" / "stats-1.json").read_text())
    for message in sub.payloads("stats"):  # every one, the run's and the publisher's own
        jsonschema.validate(message, schema)
    assert doc["schema"] == "edgekit.stats/1"

    (src,) = final["sources"]
    assert (src["read"], src["processed"], src["dropped"], src["failed"]) == (n, n, 0, 0)
    assert n / (after - before) - 0.01 <= src["fps_out"] <= n / (before_final - after_made) + 0.01
    latencies = sorted(fr.result.latency_ms for fr in results)
    assert final["latency_ms_p50"] == round(latencies[math.ceil(0.5 * n) - 1], 1)
    assert final["latency_ms_p95"] == round(latencies[math.ceil(0.95 * n) - 1], 1)
    assert final["latency_ms_max"] == round(latencies[-1], 1)
    for stage in ("decode", "preprocess", "invoke", "outputs"):
        mean = sum(fr.timings[stage] for fr in results) / n
        assert final["stage_ms"][stage] == pytest.approx(mean, abs=0.006), stage
    assert final["stage_ms"]["publish"] > 0
    sub.close()


def test_mutual_tls_client_certificate(tmp_path):
    ca = _make_ca(tmp_path)
    for args in (["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key", "-out", "client.csr", "-subj",
                  "/CN=edgekit-device"],
                 ["x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out",
                  "client.crt", "-days", "2"]):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path)
    broker = Broker(tmp_path, f"cafile {ca}\ncertfile {tmp_path}/server.crt\nkeyfile {tmp_path}/server.key\n"
                              "require_certificate true\n", kind="mosquitto").start()
    try:
        url = f"mqtts://127.0.0.1:{broker.port}"
        no_cert = MqttSettings.from_url(url, ca_file=str(ca), outbox=str(tmp_path / "o1.db"))
        with pytest.raises(MqttError):
            Publisher(no_cert, required=True, connect_timeout=3).start()
        with_cert = MqttSettings.from_url(url, ca_file=str(ca), cert_file=str(tmp_path / "client.crt"),
                                          key_file=str(tmp_path / "client.key"), outbox=str(tmp_path / "o2.db"))
        with Publisher(with_cert, required=True) as pub:
            pub.publish_result(_result(0))
            assert pub.flush(10)
    finally:
        broker.stop()


def test_without_required_detection_goes_on_and_messages_wait(tmp_path, ssd, images):
    from mqtt_helpers import free_port
    port = free_port()
    outbox = tmp_path / "o.db"
    r = run_cli("-m", "edgekit", "detect", str(ssd), str(images / "table.jpg"), str(images / "coral_pets.jpg"),
                "--mqtt", f"mqtt://127.0.0.1:{port}", "--device-id", "testdev", "--outbox", str(outbox))
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2  # detection went on without a broker
    from edgekit.mqtt.outbox import Outbox
    box = Outbox(outbox)
    waiting = [json.loads(m.payload) for m in box.peek(100) if m.topic.endswith("/detections")]
    box.close()
    assert len(waiting) == 2
    broker = Broker(tmp_path, port=port).start()  # the broker appears later, at that address
    sub = Subscriber(broker.port, "edgekit/testdev/detections")
    time.sleep(0.3)
    with Publisher(MqttSettings(host="127.0.0.1", port=port, device_id="testdev", outbox=str(outbox))) as pub:
        assert pub.flush(20)
    assert sub.wait_for(lambda s: {p["event_id"] for p in s.payloads("detections")} == {w["event_id"] for w in waiting})
    sub.close()
    broker.stop()


def test_amqtt_fallback_broker_works(tmp_path):
    """The fallback used where mosquitto is missing, exercised here even when it is present."""
    broker = Broker(tmp_path, kind="amqtt").start()
    try:
        sub = Subscriber(broker.port, "edgekit/testdev/#")
        time.sleep(0.5)
        with Publisher(_settings(broker, tmp_path), required=True) as pub:
            ids = [pub.publish_result(_result(i)) for i in range(100)]
            assert pub.flush(20)
        assert sub.wait_for(lambda s: {p["event_id"] for p in s.payloads("/detections")} == set(ids))
        assert sub.wait_for(lambda s: any(t.endswith("/status") and p == b"offline" for t, p, _ in s.messages))
        sub.close()
    finally:
        broker.stop()


@pytest.mark.parametrize("ci", [None, "", "false", "0", "true", "TRUE", "1"])
def test_missing_mosquitto_falls_back_to_amqtt_except_in_ci(tmp_path, monkeypatch, ci):
    """The broker choice itself: PATH and the sbin fallbacks point at empty directories, so the
    lookup really finds nothing; with CI=true/1 that is a failure naming the install command."""
    import mqtt_helpers
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(mqtt_helpers, "MOSQUITTO_EXTRA_DIRS", (str(tmp_path / "sbin"),))
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    assert mqtt_helpers.find_mosquitto() is None
    if ci in ("true", "TRUE", "1"):
        with pytest.raises(pytest.fail.Exception, match=r"CI is set but mosquitto is not installed.*"
                                                         r"apt-get install -y mosquitto"):
            Broker(tmp_path)
    else:
        with pytest.warns(UserWarning, match="run against amqtt instead"):
            assert Broker(tmp_path).kind == "amqtt"
    # the one deliberate amqtt test is unaffected by CI, and a mosquitto-only test still says what to install
    assert Broker(tmp_path, kind="amqtt").kind == "amqtt"
    with pytest.raises(RuntimeError, match="apt-get install -y mosquitto"):
        Broker(tmp_path, kind="mosquitto")

    # once an executable mosquitto is found (here in an sbin directory, not on PATH) it is used, CI or not
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    (sbin / "mosquitto").write_text("#!/bin/sh\nexit 1\n")  # never started: only found
    (sbin / "mosquitto").chmod(0o755)
    broker = Broker(tmp_path)
    assert broker.kind == "mosquitto" and broker.command[0] == str(sbin / "mosquitto")


def test_cli_runs_keep_out_of_the_real_home(tmp_path, ssd, images, private_user_dirs):
    """conftest points XDG_CACHE_HOME/XDG_STATE_HOME/KERAS_HOME at a session directory: a detect run
    that plans (planner cache), queues for an absent broker (default outbox) and runs on TensorFlow
    (which creates its Keras home on import) writes there, not under HOME."""
    from mqtt_helpers import free_port
    home = tmp_path / "home"
    home.mkdir()
    cache, state = Path(os.environ["XDG_CACHE_HOME"]), Path(os.environ["XDG_STATE_HOME"])
    assert private_user_dirs in cache.parents and private_user_dirs in state.parents
    assert "EDGEKIT_CACHE_DIR" not in os.environ
    r = run_cli("-m", "edgekit", "detect", str(ssd), str(images / "table.jpg"), "--mqtt",
                f"mqtt://127.0.0.1:{free_port()}", "--device-id", "homecheck",
                env={"HOME": str(home), "EDGEKIT_RUNTIME": "tensorflow"})
    assert r.returncode == 0, r.stderr
    assert list(home.iterdir()) == []  # nothing under ~ (no ~/.cache/edgekit, no ~/.local/state/edgekit)
    assert (cache / "edgekit" / "costs.json").is_file()
    assert (state / "edgekit" / "outbox-homecheck.db").is_file()


def test_a_backlog_from_earlier_runs_is_said_once_and_delivered(broker, tmp_path):
    """Messages an earlier run queued (for this broker or another) are delivered by the next run
    with that outbox: one note says how many and where they wait, before they go."""
    from edgekit.mqtt.outbox import Outbox

    box = Outbox(tmp_path / "outbox.db")
    for k in range(3):
        box.put("edgekit/testdev/detections", b'{"k": %d}' % k)
    box.close()
    sub = Subscriber(broker.port, "edgekit/testdev/detections")
    time.sleep(0.3)
    said: list[str] = []
    with Publisher(_settings(broker, tmp_path), required=True, warn=said.append) as pub:
        assert sub.wait_for(lambda s: len(s.messages) >= 3, 10), sub.messages
        assert len(pub.outbox) == 0 or sub.wait_for(lambda s: len(pub.outbox) == 0, 10)
    notes = [line for line in said if "queued by earlier runs" in line]
    assert len(notes) == 1 and "3 message(s)" in notes[0] and str(tmp_path / "outbox.db") in notes[0], said
    sub.close()
