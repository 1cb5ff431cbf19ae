"""The committed demo detector (trained by examples/shapes/train_shapes.py): right detections on
its committed images, and the converter's detection-agreement metric on a real detector."""

import json
import sys

import pytest

from conftest import EXAMPLES, iou
from edgekit import Detector, DetectorOptions
from edgekit.metadata import read_metadata

SHAPES = EXAMPLES / "shapes"


def test_demo_model_metadata():
    meta = read_metadata(SHAPES / "shapes_int8.tflite")
    assert meta.labels == ("circle", "square", "triangle")
    assert meta.layout == "yolov8" and meta.input.resize == "letterbox"
    assert meta.quantization == {"mode": "int8", "io": "uint8"}


def test_demo_model_finds_every_shape_and_nothing_else():
    truth = json.loads((SHAPES / "images" / "ground_truth.json").read_text())
    det = Detector(SHAPES / "shapes_int8.tflite", DetectorOptions(score_threshold=0.5))
    for name, objects in truth.items():
        found = det.detect(SHAPES / "images" / name).detections
        for obj in objects:
            best = max((iou(d.box, obj["box"]) for d in found if d.label == obj["label"]), default=0.0)
            assert best >= 0.5, f"{name}: {obj} not found in {found}"
        for d in found:  # every confident detection is a real object of that label
            assert any(o["label"] == d.label and iou(d.box, o["box"]) >= 0.5 for o in objects), f"{name}: false {d}"


@pytest.fixture(scope="module")
def shapes_calibration(tmp_path_factory):
    sys.path.insert(0, str(SHAPES))
    from train_shapes import write_calibration

    out = tmp_path_factory.mktemp("shapes_calibration")
    write_calibration(str(out), count=40, seed=7)
    return out


@pytest.mark.parametrize("mode,minimum", [("float16", 0.98), ("int8", 0.9)])
def test_converter_reports_detection_agreement_for_keras_object(shapes_calibration, tmp_path, mode, minimum):
    import keras

    from converters import convert

    model = keras.models.load_model(SHAPES / "shapes.keras", compile=False)  # a Keras model object
    report = convert(model, tmp_path / "m.tflite", mode=mode, calibration=str(shapes_calibration), mean=0.0, std=1.0,
                     labels=["circle", "square", "triangle"], layout="yolov8", resize="letterbox", progress=False)
    assert report.agreement.detection_recall >= minimum, report.table()
    assert "float detections kept" in report.table()
