"""edgekit-convert --eval / --report / --max-drop on a downloaded .tflite (issue 10): the float copy,
ai-edge-quantizer's full int8, mAP of both through edgekit's runtime, the report and the metadata.
Small sets so CI stays fast; examples/benchmarks/bench_int8_gate.py has the full-size numbers."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import run_cli

from edgekit.metadata_readers import read_metadata

import tensorflow  # noqa: E402,F401  -- fails loudly if the [convert] extra is missing


@pytest.fixture(scope="module")
def val8(shared, tmp_path_factory):
    """The first 8 COCO val images as a COCO JSON (images stay in the shared folder)."""
    doc = json.loads((shared / "coco128_val2017/instances_val2017_first128_DERIVED_from_yolo.json").read_text())
    ids = sorted(i["id"] for i in doc["images"])[:8]
    doc["images"] = [i for i in doc["images"] if i["id"] in ids]
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] in ids]
    path = tmp_path_factory.mktemp("val") / "val8.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def calib(images, tmp_path_factory):
    """Photos that are not validation images."""
    folder = tmp_path_factory.mktemp("calib")
    for p in sorted(images.glob("*.jpg"))[:8]:
        shutil.copy(p, folder / p.name)
    return folder


@pytest.fixture(scope="module")
def yolo_dynamic(shared):
    return shared / "models/yolov8n/yolov8n_int8.tflite"


def test_int8_from_a_downloaded_tflite_with_eval_and_report(shared, yolo_dynamic, val8, calib, images, tmp_path):
    out, report = tmp_path / "y8_int8.tflite", tmp_path / "report.json"
    r = run_cli("-m", "converters.cli", str(yolo_dynamic), "-o", str(out), "--mode", "int8", "--calibration",
                str(calib), "--eval", str(val8), "--eval-images", str(shared / "coco128_val2017/images"),
                "--report", str(report))
    assert r.returncode == 0, r.stderr
    for words in ("float source (float copy)", "source (as given)", "converted (int8)", "mAP50-95 change",
                  "worst classes", "measured on"):
        assert words in r.stdout, r.stdout
    doc = json.loads(report.read_text())
    acc = doc["accuracy"]
    assert doc["mode"] == "int8" and acc["images"] == 8 and acc["cpu"]["isa"] is not None
    ref, conv = acc["reference"], acc["converted"]
    assert 0.2 < ref["map50_95"] < 0.7 and 0.2 < conv["map50_95"] < 0.7  # a working detector, not noise
    assert acc["change_points"]["map50_95"] == pytest.approx(100 * (conv["map50_95"] - ref["map50_95"]), abs=0.02)
    assert set(ref["latency_ms"]) == {"1", "2"} and conv["size_bytes"] < ref["size_bytes"] / 3
    meta = read_metadata(out)  # the numbers travel with the model
    assert meta.accuracy["converted"]["map50_95"] == conv["map50_95"] and meta.quantization["mode"] == "int8"
    info = run_cli("-m", "edgekit", "info", str(out))
    assert info.returncode == 0 and "accuracy: mAP50-95" in info.stdout
    det = run_cli("-m", "edgekit", "detect", str(out), str(images / "coral_kite_and_cold.jpg"), "--no-plan")
    assert det.returncode == 0 and {"kite", "person"} <= {d["label"] for d in json.loads(det.stdout)["detections"]}


def test_float_copy_of_a_downloaded_tflite_is_evaluated_against_it(shared, yolo_dynamic, val8, tmp_path):
    out = tmp_path / "y8_float.tflite"
    r = run_cli("-m", "converters.cli", str(yolo_dynamic), "-o", str(out), "--mode", "float32", "--eval", str(val8),
                "--eval-images", str(shared / "coco128_val2017/images"))
    assert r.returncode == 0, r.stderr
    acc = read_metadata(out).accuracy
    assert abs(acc["change_points"]["map50_95"]) < 2.0  # the weights carried their scales: the same model


def test_calibration_and_validation_must_not_overlap(shared, yolo_dynamic, val8, calib, tmp_path):
    folder = tmp_path / "calib"
    shutil.copytree(calib, folder)
    first = json.loads(val8.read_text())["images"][0]["file_name"]
    shutil.copy(shared / "coco128_val2017/images" / first, folder / "renamed.jpg")  # same bytes, other name
    r = run_cli("-m", "converters.cli", str(yolo_dynamic), "-o", str(tmp_path / "x.tflite"), "--mode", "int8",
                "--calibration", str(folder), "--eval", str(val8), "--eval-images",
                str(shared / "coco128_val2017/images"))
    assert r.returncode == 2 and "also in the validation set" in r.stderr and "renamed.jpg" in r.stderr
    assert r.stderr.strip().count("\n") == 0 and not (tmp_path / "x.tflite").exists()


@pytest.mark.parametrize("args,words", [
    (["--mode", "float16"], "float16 from a .tflite is not supported"),
    (["--mode", "int8", "--calibration", "CALIB", "--max-drop", "1"], "--max-drop gates an int8 conversion"),
    (["--mode", "int8", "--calibration", "CALIB", "--io", "uint8"], "--io uint8"),
])
def test_option_errors(yolo_dynamic, calib, tmp_path, args, words):
    args = [str(calib) if a == "CALIB" else a for a in args]
    r = run_cli("-m", "converters.cli", str(yolo_dynamic), "-o", str(tmp_path / "x.tflite"), *args)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.fixture(scope="module")
def shapes_sets(tmp_path_factory):
    """The shapes demo's scenes as a YOLO-format validation folder (seed 7, unseen in training) and a
    calibration folder (seed 2, as train_shapes.py calibrates)."""
    import sys

    from conftest import EXAMPLES

    sys.path.insert(0, str(EXAMPLES / "shapes"))
    import numpy as np
    from shapes_data import LABELS, scene
    from train_shapes import write_calibration

    root = tmp_path_factory.mktemp("shapes")
    val = root / "val"
    (val / "images").mkdir(parents=True)
    (val / "labels").mkdir()
    (val / "data.yaml").write_text("names: [" + ", ".join(LABELS) + "]\n")
    (root / "labels.txt").write_text("\n".join(LABELS) + "\n")
    rng = np.random.default_rng(7)
    for i in range(40):
        w, h = int(rng.integers(160, 400)), int(rng.integers(160, 400))
        img, boxes, classes = scene(rng, w, h)
        img.save(val / "images" / f"{i:03d}.png")
        lines = [f"{c} {(b[0] + b[2]) / 2 / w:.6f} {(b[1] + b[3]) / 2 / h:.6f} {(b[2] - b[0]) / w:.6f} "
                 f"{(b[3] - b[1]) / h:.6f}" for b, c in zip(boxes, classes)]
        (val / "labels" / f"{i:03d}.txt").write_text("\n".join(lines) + "\n")
    write_calibration(str(root / "calib"), count=40)
    return val, root / "calib"


def test_shapes_demo_keras_to_int8_with_eval(shapes_sets, tmp_path):
    """The float detector the project trained, converted end to end with its validation scenes."""
    from conftest import EXAMPLES

    val, calib = shapes_sets
    out = tmp_path / "shapes_int8.tflite"
    r = run_cli("-m", "converters.cli", str(EXAMPLES / "shapes/shapes.keras"), "-o", str(out), "--mode", "int8",
                "--calibration", str(calib), "--mean", "0", "--std", "1", "--labels", str(calib.parent / "labels.txt"),
                "--layout", "yolov8", "--resize", "letterbox", "--eval", str(val))
    assert r.returncode == 0, r.stderr
    acc = read_metadata(out).accuracy
    assert acc["reference"]["role"] == "float source (float32)" and acc["images"] == 40
    assert acc["reference"]["map50_95"] > 0.6 and acc["converted"]["map50_95"] > 0.5, acc


def test_shapes_demo_gated_within_max_drop(shapes_sets, tmp_path):
    """--max-drop 1.0 through the real gate: TF's plain int8 of the demo loses ~10 points; the gated
    model (ai-edge-quantizer, operators kept in float as needed) is within 1 point, and says so."""
    from conftest import EXAMPLES

    val, calib = shapes_sets
    out, report = tmp_path / "shapes_gated.tflite", tmp_path / "r.json"
    r = run_cli("-m", "converters.cli", str(EXAMPLES / "shapes/shapes.keras"), "-o", str(out), "--mode", "int8",
                "--calibration", str(calib), "--mean", "0", "--std", "1", "--labels", str(calib.parent / "labels.txt"),
                "--layout", "yolov8", "--resize", "letterbox", "--eval", str(val), "--max-drop", "1.0",
                "--report", str(report))
    assert r.returncode == 0, r.stderr
    assert "step 1: full int8" in r.stderr and "PASSED" in r.stderr
    gate = json.loads(report.read_text())["accuracy"]["gate"]
    assert gate["passed"] is True and gate["max_drop_points"] == 1.0 and len(gate["steps"]) >= 1
    acc = read_metadata(out).accuracy
    assert acc["change_points"]["map50_95"] >= -1.0 and acc["gate"]["passed"] is True


def test_a_gate_that_cannot_hold_writes_the_best_model_labelled_and_exits_8(yolo_dynamic, val8, calib, shared,
                                                                             tmp_path, monkeypatch, capsys):
    """The CLI's side of a failed gate (the real search is tests/test_gate.py): exit 8, the best model
    written, its metadata and the report say FAILED, the table is printed."""
    import converters.gate as gate
    from converters.cli import main
    from converters.quantize import quantize_int8

    def failing_gate(float_model, samples, evaluate, max_drop, *, reference=None, latency=None, progress=None,
                     max_steps=8):
        model = quantize_int8(float_model, samples)
        score = evaluate(model)
        step = gate.GateStep("full int8", (), (), score.map50_95, score.map50,
                             100 * (reference.map50_95 - score.map50_95) + 50.0, None, len(model))
        return gate.GateResult(reference.map50_95, (step,), step, model, False, max_drop)

    monkeypatch.setattr(gate, "gate_int8", failing_gate)
    out, report = tmp_path / "failed.tflite", tmp_path / "r.json"
    code = main([str(yolo_dynamic), "-o", str(out), "--mode", "int8", "--calibration", str(calib), "--eval",
                 str(val8), "--eval-images", str(shared / "coco128_val2017/images"), "--max-drop", "0",
                 "--report", str(report)])
    captured = capsys.readouterr()
    assert code == 8 and "more than --max-drop 0" in captured.err and "converted (int8)" in captured.out
    meta = read_metadata(out)
    assert meta.quantization["gate"].startswith("FAILED") and meta.accuracy["gate"]["passed"] is False
    assert json.loads(report.read_text())["accuracy"]["gate"]["passed"] is False
    r = run_cli("-m", "edgekit", "info", str(out))
    assert "FAILED" in r.stdout


def test_bundle_records_each_variants_accuracy_and_the_planner_prefers_the_most_accurate(shapes_sets, tmp_path):
    from conftest import EXAMPLES

    val, calib = shapes_sets
    out = tmp_path / "bundle"
    r = run_cli("-m", "converters.cli", str(EXAMPLES / "shapes/shapes.keras"), "-o", str(out), "--bundle",
                "--modes", "int8,float32", "--calibration", str(calib), "--mean", "0", "--std", "1", "--labels",
                str(calib.parent / "labels.txt"), "--layout", "yolov8", "--resize", "letterbox", "--eval", str(val))
    assert r.returncode == 0, r.stderr
    variants = json.loads((out / "manifest.json").read_text())["variants"]
    maps = {v["mode"]: v["accuracy"]["map50_95"] for v in variants}
    assert set(maps) == {"int8", "float32"} and maps["float32"] > maps["int8"]  # TF's int8 of the demo loses
    plan = run_cli("-m", "edgekit", "plan", str(out), "--max-latency-ms", "1000", "--json")
    assert plan.returncode == 0, plan.stderr
    doc = json.loads(plan.stdout)
    assert doc["chosen"]["mode"] == "float32" and any("most accurate" in why for why in doc["reasons"])
