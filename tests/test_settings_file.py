"""Settings files against their schema, through the real CLI: every wrong key, type or value is one
line naming the file and the key, exit 2 (never 70, never a traceback); `run --check` validates
without starting; the shipped examples validate and the local one runs from a clean clone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import EXAMPLES, REPO, run_cli

MODEL = REPO / "examples" / "shapes" / "shapes_int8.tflite"
IMAGES = REPO / "examples" / "shapes" / "images"
BASE = f'model = "{MODEL}"\nsources = ["{IMAGES}"]\n'

# (case, file text (TOML unless it starts with "{"), words the one line must hold: the key first)
CASES = [
    ("threshold-string", BASE + 'threshold = "high"', ["threshold", "expected a number", "'high'"]),
    ("fps-string", BASE + 'fps = "fast"', ["fps", "expected a number", "'fast'"]),
    ("threads-string", BASE + 'threads = "two"', ["threads", "expected a whole number", "'two'"]),
    ("max_results-huge-float", BASE + "max_results = 1e300", ["max_results", "expected a whole number", "1e+300"]),
    ("model-number", f'model = 123\nsources = ["{IMAGES}"]', ["model", "expected a string", "123"]),
    ("mqtt-string", BASE + 'mqtt = "a string"', ["mqtt", "expected a table of MQTT settings", "'a string'"]),
    ("mqtt-port-string", BASE + '[mqtt]\nhost = "h"\nport = "abc"', ["mqtt.port", "expected a whole number", "'abc'"]),
    ("mqtt-keepalive", BASE + '[mqtt]\nhost = "h"\nkeepalive = -1', ["mqtt.keepalive", "from 0 to 65535", "-1"]),
    ("mqtt-outbox-number", BASE + '[mqtt]\nhost = "h"\noutbox = 5', ["mqtt.outbox", "expected a string", "5"]),
    ("json-null", json.dumps({"model": str(MODEL), "sources": [str(IMAGES)], "threshold": None}),
     ["threshold", "expected a number", "none"]),
    ("mqtt-unknown", BASE + '[mqtt]\nhots = "h"', ["mqtt.hots", "did you mean host?", "known in mqtt:", "port"]),
    ("mqtt-no-host", BASE + "[mqtt]\nport = 1883", ["mqtt", "no broker", "url"]),
    ("mqtt-window-0", BASE + '[mqtt]\nhost = "h"\nwindow = 0', ["mqtt.window", "expected a whole number >= 1", "0"]),
    ("mqtt-port-range", BASE + '[mqtt]\nhost = "h"\nport = 99999999', ["mqtt.port", "from 1 to 65535", "99999999"]),
    ("mqtt-password", BASE + '[mqtt]\nhost = "h"\npassword = "x"', ["mqtt.password", "password_file"]),
    ("fps-nan", BASE + "fps = nan", ["fps", "expected a number", "nan"]),
    ("fps-zero", BASE + "fps = 0", ["fps", "above 0", "0"]),
    ("threshold-range", BASE + "threshold = 1.5", ["threshold", "from 0 to 1", "1.5"]),
    ("top-unknown", BASE + "threshhold = 0.4", ["threshhold", "did you mean threshold?", "known:"]),
    ("no-sources", f'model = "{MODEL}"', ["missing sources"]),
    ("sources-number", f'model = "{MODEL}"\nsources = 5', ["sources", "expected a source or a list", "5"]),
    ("source-table-no-source", f'model = "{MODEL}"\n[[sources]]\nname = "cam"', ["sources[0]", "missing source"]),
    ("source-motion-type", f'model = "{MODEL}"\n[[sources]]\nsource = "{IMAGES}"\n[[sources]]\nsource = "{IMAGES}"\n'
     '[sources.motion]\nthreshold = "x"', ["sources[1].motion.threshold", "expected a number", "'x'"]),
    ("source-motion-range", f'model = "{MODEL}"\n[[sources]]\nsource = "{IMAGES}"\nmotion = {{ threshold = 900 }}',
     ["sources[0].motion", "threshold", "900"]),
    ("source-motion-unknown", f'model = "{MODEL}"\n[[sources]]\nsource = "{IMAGES}"\nmotion = {{ treshold = 9 }}',
     ["sources[0].motion.treshold", "did you mean threshold?"]),
    ("motion-string", BASE + 'motion = "yes"', ["motion", "true, false or a table", "'yes'"]),
    ("tracker-range", BASE + "[tracker]\nmax_unseen = -1", ["tracker", "max_unseen", "-1"]),
    ("tracker-type", BASE + '[tracker]\nmax_unseen = "5s"', ["tracker.max_unseen", "expected a number", "'5s'"]),
    ("zones-number", BASE + "zones = 5", ["zones", "expected a list of NAME=x1,y1,... zones", "5"]),
    ("preview-bool", BASE + "preview = true", ["preview", "HOST:PORT", "true"]),
    ("max_image", BASE + "max_image = [0, 10]", ["max_image", "2 whole numbers >= 1", "[0, 10]"]),
    ("mean-count", BASE + "mean = [1, 2]", ["mean", "1 or 3 numbers", "[1, 2]"]),
    ("zone-string", BASE + 'zones = ["a=0,0,1,0,1,1", "bad"]', ["zones[1]", "NAME=x1,y1"]),
    ("zone-table-labels", BASE + '[zones.porch]\npoints = [[0, 0], [1, 0], [1, 1]]\nlabels = "car"',
     ["zones", "porch", "labels"]),
    ("source-zones-list", f'model = "{MODEL}"\n[[sources]]\nsource = "{IMAGES}"\nzones = ["a=0,0,1,0,1,1"]',
     ["sources[0].zones", "expected a table of zones"]),
    ("preview-address", BASE + 'preview = "nohost:abc"', ["preview", "HOST:PORT", "'nohost:abc'"]),
    ("not-toml", "model = ", ["not valid TOML"]),
    ("json-nested-deep", '{"a": ' * 100_000 + "1" + "}" * 100_000, ["not valid JSON", "nested too deeply"]),
    ("toml-nested-deep", "a = " + "[" * 100_000 + "]" * 100_000, ["not valid TOML", "nested too deeply"]),
    ("mqtt-ha-prefix-wildcard", BASE + '[mqtt]\nhost = "h"\nha_discovery = true\nha_prefix = "home/#"',
     ["mqtt", "Home Assistant prefix", "'home/#'", "not usable in a topic"]),
    ("mqtt-prefix-huge", BASE + '[mqtt]\nhost = "h"\nprefix = "' + "p" * 70_000 + '"',
     ["mqtt", "MQTT prefix of 70000 bytes", "at most"]),
    ("mqtt-device-id-surrogate", '{"model": "%s", "sources": ["%s"], "mqtt": {"host": "h", "device_id": "\\udc80"}}'
     % (MODEL, IMAGES), ["mqtt.device_id", "expected one MQTT topic level", "'\\udc80'"]),
    ("mqtt-host-nul", BASE + '[mqtt]\nhost = "h\\u0000x"', ["mqtt.host", "expected a broker host", "'h\\x00x'"]),
    ("mqtt-host-space", BASE + '[mqtt]\nhost = "my broker"', ["mqtt.host", "expected a broker host", "'my broker'"]),
    ("mqtt-url-port-0", BASE + '[mqtt]\nurl = "mqtt://h:0"', ["mqtt.port", "from 1 to 65535", "found 0"]),
    ("mqtt-host-empty", BASE + '[mqtt]\nhost = ""', ["mqtt.host", "expected a broker host", "''"]),
    ("mqtt-url-ipv6-unclosed", BASE + '[mqtt]\nurl = "mqtt://[::1"', ["mqtt", "expected an MQTT URL", "'mqtt://[::1'"]),
]


@pytest.mark.parametrize("case,text,words", CASES, ids=[c[0] for c in CASES])
def test_a_bad_settings_file_is_one_line_naming_the_key(case, text, words, tmp_path, monkeypatch, capsys):
    from edgekit.cli import main

    monkeypatch.delenv("EDGEKIT_MQTT_URL", raising=False)
    path = tmp_path / ("service.json" if text.startswith("{") else "service.toml")
    path.write_text(text + "\n")
    code = main(["run", str(path)])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1, (code, err)
    assert lines[0].startswith(f"edgekit: error: {path}: ") and "internal error" not in lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_a_bad_settings_file_through_a_real_process(tmp_path):
    path = tmp_path / "service.toml"
    path.write_text(BASE + "[mqtt]\nhost = \"h\"\nport = \"abc\"\n")
    r = run_cli("-m", "edgekit", "run", str(path))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == f"edgekit: error: {path}: mqtt.port: expected a whole number, found 'abc' (a string)"


def _settings_files() -> list[Path]:
    """Every settings file under examples/ (a TOML or JSON document with a model; not data such as
    ground_truth.json)."""
    return sorted(p for ext in ("toml", "json") for p in EXAMPLES.rglob(f"*.{ext}")
                  if p.name != "ground_truth.json")


def test_every_example_settings_file_checks(tmp_path):
    """`run --check` on each: valid, or (the service example, for a device with /opt/edgekit) only its
    model is not here."""
    assert EXAMPLES / "local.toml" in _settings_files() and EXAMPLES / "service" / "service.toml" in _settings_files()
    for path in _settings_files():
        r = run_cli("-m", "edgekit", "run", "--check", str(path.relative_to(REPO)),
                    env={"EDGEKIT_MQTT_URL": "mqtt://127.0.0.1:1", "EDGEKIT_SHARED_DATA": "/nonexistent"})
        model = path.read_text().split('model = "', 1)[1].split('"', 1)[0]
        if model.startswith("/opt/"):
            assert r.returncode == 2 and r.stderr.strip() == (  # a wrong path is a bad argument (README: 2)
                f"edgekit: error: {path.relative_to(REPO)}: model: {model}: no such model file; expected a .tflite file "
                "or a bundle directory made by edgekit-convert --bundle"), (path, r.stderr)
        else:
            assert r.returncode == 0, (path, r.stderr)
            assert r.stdout.startswith("settings are valid (nothing was started):") and "model:" in r.stdout


def test_check_starts_nothing_and_refuses_what_serve_would(tmp_path):
    broker_less = tmp_path / "mqtt.toml"  # a broker nobody listens on: --check must not connect
    broker_less.write_text(BASE + f'[mqtt]\nurl = "mqtt://127.0.0.1:1"\noutbox = "{tmp_path / "o.db"}"\n')
    r = run_cli("-m", "edgekit", "run", "--check", str(broker_less))
    assert r.returncode == 0, r.stderr
    assert "127.0.0.1:1" in r.stdout and r.stdout.count("\n") <= 8 and not (tmp_path / "o.db").exists()
    bad_zone = tmp_path / "zone.toml"
    bad_zone.write_text(BASE + "[zones.porch]\npoints = [[0, 0], [1, 0]]\nsource = \"nope\"\n")
    r = run_cli("-m", "edgekit", "run", "--check", str(bad_zone))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "porch" in r.stderr, r.stderr
    missing = tmp_path / "missing.toml"
    missing.write_text(f'model = "{tmp_path / "nope.tflite"}"\nsources = ["{IMAGES}"]\n')
    r = run_cli("-m", "edgekit", "run", "--check", str(missing))
    assert r.returncode == 2 and "no such model file" in r.stderr and "bundle but missing" not in r.stderr


def test_check_refuses_a_tls_ca_file_that_serve_would_refuse(tmp_path, capsys):
    """--check said the settings were valid; the run then stopped at start: TLS set-up failed."""
    from edgekit.cli import main

    path = tmp_path / "tls.toml"
    path.write_text(BASE + f'[mqtt]\nurl = "mqtts://127.0.0.1:1"\nca_file = "{tmp_path / "nope.pem"}"\n'
                    f'outbox = "{tmp_path / "o.db"}"\n')
    assert main(["run", "--check", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "TLS set-up failed" in err, err
    assert not (tmp_path / "o.db").exists()


def test_the_local_example_runs_as_shipped():
    r = run_cli("-m", "edgekit", "run", "examples/local.toml", env={"EDGEKIT_SHARED_DATA": "/nonexistent"})
    assert r.returncode == 0, r.stderr
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(docs) == 4 and all(d["detections"] for d in docs)


@pytest.mark.parametrize("argv", [["detect", "nope.tflite", "x.jpg"], ["plan", "nope.tflite"],
                                  ["detect", f"{MODEL}/", "x.jpg"]], ids=["detect", "plan", "trailing-slash"])
def test_a_missing_model_says_it_is_not_there(argv):
    r = run_cli("-m", "edgekit", *argv)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "no such model file" in r.stderr and "bundle but missing" not in r.stderr


def test_threads_beyond_the_cores_are_capped_with_a_note():
    from edgekit.device import usable_cores

    r = run_cli("-m", "edgekit", "detect", str(MODEL), str(IMAGES), "--threads", "100000", "--no-plan", "-v")
    assert r.returncode == 0, r.stderr
    assert f"edgekit: note: threads 100000 is more than the {usable_cores()} core(s)" in r.stderr
    assert f"{usable_cores()} threads" in r.stderr and len(r.stdout.splitlines()) == 4


def test_plan_caps_threads_too():
    from edgekit.device import usable_cores

    r = run_cli("-m", "edgekit", "plan", str(MODEL), "--threads", "100000", "--json")
    assert r.returncode == 0, r.stderr
    assert f"threads 100000 is more than the {usable_cores()} core(s)" in r.stderr
    assert json.loads(r.stdout)["threads"] == usable_cores()


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1", "fast"])
def test_fps_must_be_a_finite_number_above_zero(value):
    r = run_cli("-m", "edgekit", "detect", str(MODEL), str(IMAGES), "--fps", value)
    assert r.returncode == 2 and "argument --fps: expected a" in r.stderr.splitlines()[-1], r.stderr
    assert "Traceback" not in r.stderr


def test_ctrl_c_stops_a_run_with_exit_130_and_says_so(tmp_path):
    """A watched folder never ends by itself: SIGINT after the first result is always mid-run."""
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    for p in sorted(IMAGES.glob("*.png"))[:2]:
        shutil.copy(p, folder / p.name)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "edgekit", "detect", str(MODEL), str(folder), "--follow",
                             "--no-plan"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        first = proc.stdout.readline()
        assert json.loads(first)["detections"], first
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "edgekit: interrupted (Ctrl-C): stopped after" in err and "Traceback" not in err


def test_the_readme_documents_every_settings_key():
    """The README's settings section names every key the schema takes (ServiceSettings' fields and
    the [mqtt] table's): a field added to either shows up here."""
    import dataclasses

    from edgekit.mqtt.settings import MQTT_TABLE
    from edgekit.service_settings import file_schema

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Settings file: `edgekit run`", 1)[1].split("\n## ", 1)[0]
    keys = set(file_schema().types()) | set(MQTT_TABLE.types())
    missing = sorted(k for k in keys if f"`{k}`" not in section)
    assert not missing, f"README's settings section misses {missing}"
    assert {f.name for f in dataclasses.fields(MQTT_TABLE.of)} < set(MQTT_TABLE.types())


def test_detect_help_names_every_source_kind():
    r = run_cli("-m", "edgekit", "detect", "--help")
    text = " ".join(r.stdout.split())
    assert r.returncode == 0
    for kind in ("image file", "folder", "glob", "video file", "rtsp://", "http://", "/dev/videoN", "picamera2"):
        assert kind in text, kind
