"""The custom-decoder extension point, exercised by the examples on real models."""

import json

from conftest import EXAMPLES, run_cli


def test_blazeface_through_plugin(shared, images, tmp_path):
    model = tmp_path / "blazeface.tflite"
    r = run_cli("-m", "converters.cli", str(shared / "models/blazeface/face_detection_short_range.tflite"), "-o",
                str(model), "--layout", "blazeface", "--mean", "127.5", "--std", "127.5", "--resize", "letterbox",
                "--pad-value", "0", "--labels", str(EXAMPLES / "blazeface_labels.txt"))
    assert r.returncode == 0, r.stderr
    r = run_cli("-m", "edgekit", "detect", str(model), str(images / "coral_face.jpg"),
                str(images / "coral_grace_hopper.bmp"), str(images / "coral_kite_and_cold.jpg"),
                "--plugin", str(EXAMPLES / "blazeface_decoder.py"), "--threshold", "0.5")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == ""  # no warnings (e.g. exp overflow) either
    faces = {d["source"].rsplit("/", 1)[1]: d["detections"] for d in map(json.loads, r.stdout.splitlines())}
    assert [d["label"] for d in faces["coral_face.jpg"]] == ["face", "face"]
    assert len(faces["coral_grace_hopper.bmp"]) == 1
    x1, y1, x2, y2 = faces["coral_grace_hopper.bmp"][0]["box"]
    assert 150 < x1 < 200 and 120 < y1 < 180 and 330 < x2 < 400 and 310 < y2 < 370  # her face, not the uniform
    assert faces["coral_kite_and_cold.jpg"] == []


def test_plugin_errors_are_one_line(ssd, images, tmp_path):
    bad = tmp_path / "broken_plugin.py"
    bad.write_text("raise RuntimeError('boom')\n")
    r = run_cli("-m", "edgekit", "detect", str(ssd), str(images / "table.jpg"), "--plugin", str(bad))
    assert r.returncode == 2 and "import failed (RuntimeError: boom)" in r.stderr and "Traceback" not in r.stderr


def test_service_example_settings_parse_and_name_real_keys(monkeypatch):
    from edgekit.service import ServiceSettings

    monkeypatch.setenv("EDGEKIT_MQTT_URL", "mqtt://broker.lan")  # as the unit's edgekit.env gives it

    settings = ServiceSettings.from_file(str(EXAMPLES / "service" / "service.toml"))
    assert settings.sources[0].startswith("rtsp://") and settings.fps == 5 and settings.mqtt["ha_discovery"] is True
    unit = (EXAMPLES / "service" / "edgekit.service").read_text()
    assert "edgekit run /etc/edgekit/service.toml" in unit
