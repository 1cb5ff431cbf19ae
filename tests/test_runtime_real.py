"""The runtime fallbacks for real: tensorflow.lite, and tflite-runtime 2.14 (the 32-bit Pi runtime)
in its own venv — working with NumPy 1.x, refused with the fix under NumPy 2."""

import json
import os
import subprocess
import venv
from pathlib import Path

import pytest

from conftest import REPO, run_cli


def test_tensorflow_lite_fallback(ssd, ssd_labels, images):
    r = run_cli("-m", "edgekit", "detect", str(ssd), str(images / "coral_kite_and_cold.jpg"), "--labels",
                str(ssd_labels), "--threshold", "0.5", "-v", env={"EDGEKIT_RUNTIME": "tensorflow"})
    assert r.returncode == 0, r.stderr
    assert "edgekit: runtime tensorflow 2." in r.stderr
    for chatter in ("absl::InitializeLog", "I0000", "cpu_feature_guard", "tf.lite.Interpreter is deprecated"):
        assert chatter not in r.stderr  # TensorFlow's start-up noise is filtered
    labels = {d["label"] for d in json.loads(r.stdout)["detections"]}
    assert {"person", "kite"} <= labels


@pytest.fixture(scope="module")
def tflite_runtime_venv(tmp_path_factory) -> Path:
    """A venv with tflite-runtime 2.14 and NumPy 1.x (what a 32-bit Pi OS user has)."""
    path = tmp_path_factory.mktemp("tflite-runtime-venv")
    venv.create(path, with_pip=True)
    py = path / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "tflite-runtime==2.14.*", "numpy<2", "pillow"],
                   check=True, timeout=600, capture_output=True)
    return py


def _edgekit(py: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("EDGEKIT_RUNTIME", None)
    return subprocess.run([str(py), "-m", "edgekit", *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_tflite_runtime_with_numpy1_then_numpy2(tflite_runtime_venv, ssd, ssd_labels, images):
    py = tflite_runtime_venv
    args = ["detect", str(ssd), str(images / "coral_kite_and_cold.jpg"), "--labels", str(ssd_labels),
            "--threshold", "0.5", "-v"]
    r = _edgekit(py, *args)
    assert r.returncode == 0, r.stderr
    assert "runtime tflite-runtime 2.14" in r.stderr
    assert {"person", "kite"} <= {d["label"] for d in json.loads(r.stdout)["detections"]}

    # The committed demo model must run on the 32-bit Pi runtime too (TFLite 2.14 lacks e.g. int8 DIV).
    demo = REPO / "examples" / "shapes"
    r = _edgekit(py, "detect", str(demo / "shapes_int8.tflite"), str(demo / "images" / "scene_0.png"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["detections"]

    subprocess.run([str(py), "-m", "pip", "install", "-q", "numpy>=2"], check=True, timeout=600, capture_output=True)
    r = _edgekit(py, *args)
    assert r.returncode == 3, r.stderr
    assert "built for NumPy 1.x" in r.stderr and 'numpy<2' in r.stderr
    assert "Traceback" not in r.stderr and "_ARRAY_API" not in r.stderr  # refused before it can crash
    r = _edgekit(py, "doctor", "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert {f["topic"] for f in doc["findings"] if f["level"] == "error"} >= {"runtime", "numpy"}
