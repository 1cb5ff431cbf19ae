"""Converter proof on real trained Keras models (MTCNN R-Net and O-Net), all four modes.

Tolerances (max |converted - Keras| over every output element, on the images the converter holds out
of the calibration folder — every 5th, never used for calibration; the
outputs are a softmax probability, box offsets and landmark offsets, all O(1)):
float32 1e-4 (same math, reordered), float16 5e-3 (10-bit mantissa weights),
dynamic 0.06 and int8 0.15 (8-bit weights / activations; measured worst on the held-out images 0.0104 /
0.0998 — R-Net's box offsets on non-face crops; on the calibration images themselves int8 looked better,
0.028, which is why the figure is now measured on held-out images).
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import EXAMPLES, REPO, run_cli
from edgekit.metadata_readers import read_metadata

import tensorflow  # noqa: E402,F401  -- fails loudly if the [convert] extra is missing

TOLERANCE = {"float32": 1e-4, "float16": 5e-3, "dynamic": 0.06, "int8": 0.15}
SIZE_RATIO = {"float32": (1.0, 1.01), "float16": (0.45, 0.55), "dynamic": (0.2, 0.35), "int8": (0.2, 0.35)}
FACES = [("coral_face.jpg", (254, 67, 356, 169)), ("coral_face.jpg", (131, 100, 230, 199)),
         ("coral_grace_hopper.bmp", (170, 148, 365, 342))]


@pytest.fixture(scope="session")
def face_dir(images, tmp_path_factory):
    """Calibration set: real face crops plus non-face crops of the same photos."""
    out = tmp_path_factory.mktemp("calibration")
    rng = np.random.default_rng(0)
    for i, (name, box) in enumerate(FACES):
        Image.open(images / name).convert("RGB").crop(box).save(out / f"face{i}.png")
    for i, name in enumerate(["coral_kite_and_cold.jpg", "coral_pets.jpg", "table.jpg", "coral_parrot.jpg"]):
        img = Image.open(images / name).convert("RGB")
        for j in range(3):
            s = int(rng.integers(60, min(img.size) // 2))
            x, y = int(rng.integers(0, img.width - s)), int(rng.integers(0, img.height - s))
            img.crop((x, y, x + s, y + s)).save(out / f"other{i}_{j}.png")
    return out


@pytest.fixture(scope="session")
def labels_file():
    return EXAMPLES / "blazeface_labels.txt"


def _source(shared, stage, fmt):
    base = shared / "keras" / "mtcnn_keras"
    return base / (f"{stage}.keras" if fmt == "keras" else f"{stage}_saved_model")


@pytest.mark.parametrize("mode", ["float32", "float16", "dynamic", "int8"])
@pytest.mark.parametrize("fmt", ["keras", "saved_model"])
@pytest.mark.parametrize("stage", ["onet", "rnet"])
def test_mtcnn_converts_and_agrees(shared, face_dir, labels_file, tmp_path, stage, fmt, mode):
    from converters import convert

    out = tmp_path / f"{stage}_{mode}.tflite"
    report = convert(_source(shared, stage, fmt), out, mode=mode, calibration=str(face_dir), mean=127.5, std=128.0,
                     labels=str(labels_file), layout="mtcnn-refine", progress=False)
    agreement = report.agreement
    folder = {str(p) for p in face_dir.iterdir()}
    assert agreement.images == len(report.compared_on) == len(folder) // 5  # every 5th image held out
    assert set(report.compared_on) <= folder and f"{agreement.images} held-out images" in report.table()
    if mode == "int8":  # calibrated on all the others, never on an image it is compared on
        assert set(report.calibrated_on) == folder - set(report.compared_on)
    assert len(agreement.max_abs_error) == (3 if stage == "onet" else 2)  # every output matched
    for name, err in agreement.max_abs_error.items():
        assert err <= TOLERANCE[mode], f"{stage}/{fmt}/{mode} output {name}: max error {err}"
    lo, hi = SIZE_RATIO[mode]
    assert lo <= report.ratio <= hi
    meta = read_metadata(out)
    assert meta.source == "edgekit" and meta.labels == ("face",) and meta.layout == "mtcnn-refine"
    assert meta.input.mean == (127.5,) and meta.input.std == (128.0,)
    assert meta.quantization == {"mode": mode, "io": "uint8" if mode == "int8" else "float32"}
    assert meta.versions["tensorflow"] == tensorflow.__version__ and meta.versions["edgekit"]
    assert str(out) in report.table() and "max|err|" in report.table()


_TF_FREE = r"""
import json, sys
sys.modules["tensorflow"] = None  # any import of TensorFlow now raises ImportError
sys.modules["keras"] = None
import importlib.util
spec = importlib.util.spec_from_file_location("mtcnn_decoder", sys.argv[1]); spec.loader.exec_module(importlib.util.module_from_spec(spec))
from edgekit import Detector, DetectorOptions
det = Detector(sys.argv[2], DetectorOptions(score_threshold=0.0))
scores = {p: det.detect(p).detections[0].score for p in sys.argv[3:]}
print(json.dumps({"scores": scores, "tf_loaded": any(m.startswith("tensorflow") for m in sys.modules if sys.modules[m])}))
"""


@pytest.mark.parametrize("stage", ["onet", "rnet"])
def test_converted_mtcnn_runs_in_runtime_without_tensorflow(shared, images, face_dir, labels_file, tmp_path, stage):
    from converters import convert

    out = tmp_path / f"{stage}_int8.tflite"
    convert(_source(shared, stage, "keras"), out, mode="int8", calibration=str(face_dir), mean=127.5, std=128.0,
            labels=str(labels_file), layout="mtcnn-refine", progress=False, evaluate=False)
    faces = [str(face_dir / f"face{i}.png") for i in range(len(FACES))]
    sky = tmp_path / "sky.png"
    Image.open(images / "coral_kite_and_cold.jpg").convert("RGB").crop((700, 0, 900, 200)).save(sky)
    r = subprocess.run([sys.executable, "-c", _TF_FREE, str(EXAMPLES / "mtcnn_decoder.py"), str(out), *faces, str(sky)],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["tf_loaded"] is False
    assert all(result["scores"][f] > 0.9 for f in faces), result
    assert result["scores"][str(sky)] < 0.1, result


def test_agreement_on_a_folder_too_small_to_hold_out_says_so(shared, face_dir, tmp_path):
    from converters import convert

    small = tmp_path / "small"
    small.mkdir()
    for name in sorted(p.name for p in face_dir.iterdir())[:6]:
        (small / name).write_bytes((face_dir / name).read_bytes())
    report = convert(_source(shared, "rnet", "keras"), tmp_path / "m.tflite", mode="int8", calibration=str(small),
                     mean=127.5, std=128.0, progress=False)
    assert report.compared_on == report.calibrated_on and len(report.compared_on) == 6
    assert "6 calibration images, the same ones int8 calibrates on" in report.table()
    assert "too few to hold any out" in report.table() and "held-out" not in report.table()


@pytest.mark.parametrize("io,dtype", [("uint8", "uint8"), ("int8", "int8"), ("float32", "float32")])
def test_int8_io_types(shared, face_dir, tmp_path, io, dtype):
    from converters import convert
    from edgekit.runtime import create_interpreter

    out = tmp_path / "m.tflite"
    report = convert(_source(shared, "rnet", "keras"), out, mode="int8", io=io, calibration=str(face_dir),
                     mean=127.5, std=128.0, progress=False)
    interpreter = create_interpreter(out, 1)
    assert interpreter.get_input_details()[0]["dtype"].__name__ == dtype
    assert all(d["dtype"].__name__ == dtype for d in interpreter.get_output_details())
    assert max(report.agreement.max_abs_error.values()) <= TOLERANCE["int8"]


def test_cli_prints_table(shared, face_dir, tmp_path):
    out = tmp_path / "onet_f16.tflite"
    r = run_cli("-m", "converters.cli", str(_source(shared, "onet", "keras")), "-o", str(out), "--mode", "float16",
                "--calibration", str(face_dir), "--mean", "127.5", "--std", "128")
    assert r.returncode == 0, r.stderr
    for words in ("mode", "float16", "ratio vs float32", "conversion time", "max|err|"):
        assert words in r.stdout
    assert out.stat().st_size > 0


@pytest.mark.parametrize("args,code,words", [
    (["--mode", "int8"], 2, "needs calibration images"),
    (["--mode", "float16", "--io", "uint8"], 2, "only applies to --mode int8"),
    (["--mode", "int8", "--calibration", "/nonexistent"], 2, "not a directory"),
])
def test_cli_option_errors(shared, tmp_path, args, code, words):
    r = run_cli("-m", "converters.cli", str(_source(shared, "onet", "keras")), "-o", str(tmp_path / "x.tflite"), *args)
    assert r.returncode == code and words in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0


def test_cli_bad_sources(tmp_path, ssd):
    r = run_cli("-m", "converters.cli", str(tmp_path / "missing"), "-o", str(tmp_path / "x.tflite"))
    assert r.returncode == 4 and "no such file or directory" in r.stderr
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07")
    r = run_cli("-m", "converters.cli", str(tmp_path / "model.onnx"), "-o", str(tmp_path / "x.tflite"))
    assert r.returncode == 4 and "unknown model format" in r.stderr
    (tmp_path / "calib").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "calib" / "one.png")
    r = run_cli("-m", "converters.cli", str(ssd), "-o", str(tmp_path / "x.tflite"), "--mode", "int8",
                "--calibration", str(tmp_path / "calib"))
    assert r.returncode == 2 and "full-integer model" in r.stderr and "Start from the float32" in r.stderr


def test_metadata_only_for_downloaded_tflite(ssd, ssd_labels, images, tmp_path):
    from edgekit import Detector, DetectorOptions

    out = tmp_path / "ssd_meta.tflite"
    r = run_cli("-m", "converters.cli", str(ssd), "-o", str(out), "--labels", str(ssd_labels), "--layout", "ssd",
                "--mean", "127.5", "--std", "127.5", "--name", "ssd-mobilenet-v1")
    assert r.returncode == 0, r.stderr
    meta = read_metadata(out)
    assert meta.name == "ssd-mobilenet-v1" and meta.labels[0] == "person" and meta.layout == "ssd"
    det = Detector(out, DetectorOptions(score_threshold=0.5))  # labels now come from the model itself
    labels = {d.label for d in det.detect(images / "coral_kite_and_cold.jpg").detections}
    assert {"person", "kite"} <= labels


def test_gpu_memory_growth_logic():
    """Logic only (no GPU here): every visible GPU gets memory growth; an already-initialised
    GPU (TensorFlow raises RuntimeError) is left as the caller set it."""
    from types import SimpleNamespace

    from converters.source import enable_memory_growth

    calls = []

    def set_memory_growth(gpu, flag):
        if gpu == "GPU:1":
            raise RuntimeError("Physical devices cannot be modified after being initialized")
        calls.append((gpu, flag))

    tf = SimpleNamespace(config=SimpleNamespace(
        list_physical_devices=lambda kind: ["GPU:0", "GPU:1"] if kind == "GPU" else [],
        experimental=SimpleNamespace(set_memory_growth=set_memory_growth)))
    assert enable_memory_growth(tf) == 1 and calls == [("GPU:0", True)]
    assert enable_memory_growth(tensorflow) == len(tensorflow.config.list_physical_devices("GPU"))
