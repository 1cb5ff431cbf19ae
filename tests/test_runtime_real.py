"""The runtime fallbacks for real: tensorflow.lite, and tflite-runtime 2.14 (the 32-bit Pi runtime)
in its own venv — working with NumPy 1.x, refused with the fix under NumPy 2."""

import json
import os
import shutil
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


PINS = Path(__file__).with_name("requirements-tflite-runtime.txt")
NUMPY2_PINS = Path(__file__).with_name("requirements-tflite-runtime-numpy2.txt")
VENV_VARIABLE = "EDGEKIT_TFLITE_RUNTIME_VENV"


def _pins(path: Path) -> dict[str, str]:
    """{distribution: version} from a requirements file of exact ``name==version`` pins only."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version and not set(version) & set("*<>=!,; "), f"{path.name}: not an exact pin: {line}"
            pins[name.strip().lower()] = version.strip()
    return pins


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def _build_venv(path: Path) -> None:
    """What .ci/run does: the venv from PINS, NumPy 2 from NUMPY2_PINS in <venv>/numpy2, then the
    pin files copied in (last, so that a half-built venv never looks prepared)."""
    venv.create(path, with_pip=True)
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "-q"]
    for command in (pip + ["-r", str(PINS)], pip + ["--target", str(path / "numpy2"), "-r", str(NUMPY2_PINS)]):
        r = subprocess.run(command, timeout=600, capture_output=True, text=True)
        assert r.returncode == 0, f"{' '.join(command)}:\n{r.stderr}"
    shutil.copy(PINS, path / "pins.txt")
    shutil.copy(NUMPY2_PINS, path / "pins-numpy2.txt")


def _installed(py: Path, names, pythonpath: str = "") -> dict[str, tuple[str, str]]:
    """{name: (version, location)} of distributions as ``py`` sees them."""
    code = ("import importlib.metadata as m, json, sys\n"
            "print(json.dumps({n: (m.version(n), str(m.distribution(n).locate_file(''))) for n in sys.argv[1:]}))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    r = subprocess.run([str(py), "-c", code, *names], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return {name: tuple(v) for name, v in json.loads(r.stdout).items()}


@pytest.fixture(scope="module")
def tflite_runtime_venv(tmp_path_factory) -> Path:
    """A venv with tflite-runtime 2.14 and NumPy 1.x (what a 32-bit Pi OS user has), exactly as
    pinned in PINS: the one .ci/run prepared at $EDGEKIT_TFLITE_RUNTIME_VENV, else built here."""
    configured = os.environ.get(VENV_VARIABLE)
    path = Path(configured) if configured else None
    if path is None or not path.exists():
        if _in_ci():
            pytest.fail(f"CI is set but the pinned tflite-runtime venv was not prepared ({VENV_VARIABLE}="
                        f"{configured or '(unset)'}): .ci/run builds it from {PINS.name} before the tests; "
                        "under CI the test does not install from the registry itself", pytrace=False)
        path = path or tmp_path_factory.mktemp("tflite-runtime-venv") / "venv"
        _build_venv(path)
    for pins, stamp in ((PINS, "pins.txt"), (NUMPY2_PINS, "pins-numpy2.txt")):
        assert (path / stamp).is_file() and (path / stamp).read_text() == pins.read_text(), (
            f"{path} was prepared from other pins than {pins.name} (or not completely): delete it and rerun .ci/run")
    py = path / "bin" / "python"
    pinned = _pins(PINS)
    got = _installed(py, pinned)
    assert {name: version for name, (version, _) in got.items()} == pinned
    numpy2 = _installed(py, ["numpy"], str(path / "numpy2"))["numpy"]
    assert numpy2 == (_pins(NUMPY2_PINS)["numpy"], str(path / "numpy2")), numpy2
    return py


def _edgekit(py: Path, *args: str, numpy2: bool = False) -> subprocess.CompletedProcess:
    """edgekit from this checkout on ``py``; with ``numpy2`` NumPy 2 from <venv>/numpy2 shadows the venv's."""
    paths = ([str(py.parents[1] / "numpy2")] if numpy2 else []) + [str(REPO)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    env.pop("EDGEKIT_RUNTIME", None)
    return subprocess.run([str(py), "-m", "edgekit", *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_tflite_runtime_with_numpy1_then_numpy2(tflite_runtime_venv, ssd, ssd_labels, images):
    py = tflite_runtime_venv
    args = ["detect", str(ssd), str(images / "coral_kite_and_cold.jpg"), "--labels", str(ssd_labels),
            "--threshold", "0.5", "-v"]
    r = _edgekit(py, *args)
    assert r.returncode == 0, r.stderr
    assert f"runtime tflite-runtime {_pins(PINS)['tflite-runtime']}," in r.stderr
    assert {"person", "kite"} <= {d["label"] for d in json.loads(r.stdout)["detections"]}

    # The committed demo model must run on the 32-bit Pi runtime too (TFLite 2.14 lacks e.g. int8 DIV).
    demo = REPO / "examples" / "shapes"
    r = _edgekit(py, "detect", str(demo / "shapes_int8.tflite"), str(demo / "images" / "scene_0.png"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["detections"]

    # NumPy 2 in front of the venv's 1.26 (the venv itself stays as pinned for the next run)
    r = _edgekit(py, *args, numpy2=True)
    assert r.returncode == 3, r.stderr
    assert "built for NumPy 1.x" in r.stderr and 'numpy<2' in r.stderr
    assert "Traceback" not in r.stderr and "_ARRAY_API" not in r.stderr  # refused before it can crash
    r = _edgekit(py, "doctor", "--json", numpy2=True)
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert {f["topic"] for f in doc["findings"] if f["level"] == "error"} >= {"runtime", "numpy"}


@pytest.mark.slow
def test_tflite_runtime_reads_exporter_layouts(tflite_runtime_venv, exported, ssd, ssd_labels, shared, images):
    """On the 32-bit Pi runtime too: TF2-ordered SSD outputs get their roles from the post-process
    operator, and Ultralytics metadata gives the class names (no TensorFlow, no flatbuffers package)."""
    py = tflite_runtime_venv
    photo = str(images / "tflsupport_cats_and_dogs.jpg")
    orig = _edgekit(py, "detect", str(ssd), photo, "--labels", str(ssd_labels), "--no-plan")
    tf2 = _edgekit(py, "detect", str(exported.tf2_ssd_layout()), photo, "--labels", str(ssd_labels), "--no-plan", "-v")
    assert orig.returncode == 0 and tf2.returncode == 0, tf2.stderr
    assert "layout ssd (from operator" in tf2.stderr
    assert json.loads(tf2.stdout)["detections"] == json.loads(orig.stdout)["detections"]
    assert {"cat", "dog"} <= {d["label"] for d in json.loads(tf2.stdout)["detections"]}
    r = _edgekit(py, "detect", str(shared / "models/yolov8n/yolov8n_int8_320.tflite"),
                 str(images / "coral_kite_and_cold.jpg"), "--no-plan")
    assert r.returncode == 0, r.stderr
    assert {"person", "kite"} <= {d["label"] for d in json.loads(r.stdout)["detections"]}
