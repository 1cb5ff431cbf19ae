"""Real detectors on real photos, through the Python API."""

import numpy as np
import pytest
from PIL import Image

from conftest import iou
from edgekit import Detector, DetectorOptions
from edgekit.device import usable_cores


def _labels(result):
    return [d.label for d in result.detections]


def test_ssd_finds_people_and_kites(ssd, ssd_labels, images):
    det = Detector(ssd, DetectorOptions(score_threshold=0.5), labels_path=ssd_labels)
    result = det.detect(images / "coral_kite_and_cold.jpg")
    assert (result.width, result.height) == (1352, 900)
    labels = _labels(result)
    assert labels.count("person") >= 2 and labels.count("kite") >= 2
    for d in result.detections:
        x1, y1, x2, y2 = d.box
        assert 0 <= x1 < x2 <= 1352 and 0 <= y1 < y2 <= 900


def test_ssd_table_matches_expected_file(shared, ssd, ssd_labels, images):
    """Each expected detection is found with the same label, IoU >= 0.8 and score within 0.05."""
    expected = []
    for line in (shared / "models/ssd_mobilenet_v1_quant/table_results_expected.txt").read_text().splitlines():
        label, *nums = line.split()
        expected.append((label.replace("_", " "), [float(v) for v in nums[:4]], float(nums[4])))
    det = Detector(ssd, DetectorOptions(score_threshold=0.3), labels_path=ssd_labels)
    found = det.detect(images / "table.jpg").detections
    for label, box, score in expected:
        best = max((d for d in found if d.label == label), key=lambda d: iou(d.box, box), default=None)
        assert best is not None, f"{label} not found"
        assert iou(best.box, box) >= 0.8, (label, best.box, box)
        assert abs(best.score - score) <= 0.05, (label, best.score, score)


def test_ssd_labels_from_tflite_metadata(shared, images):
    model = shared / "models/ssd_mobilenet_v1_quant/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29_with_metadata.tflite"
    det = Detector(model, DetectorOptions(score_threshold=0.5))
    assert det.metadata.source == "tflite-metadata"
    labels = _labels(det.detect(images / "coral_kite_and_cold.jpg"))
    assert "person" in labels and "kite" in labels


@pytest.mark.parametrize("name,threshold", [("yolov8n_full_integer_quant.tflite", 0.4), ("yolov8n_int8.tflite", 0.4),
                                            ("yolov8n_int8_320.tflite", 0.3)])  # 320 input: small kites score lower
def test_yolov8_finds_kites_and_people(shared, yolo_labels, images, name, threshold):
    det = Detector(shared / "models/yolov8n" / name, DetectorOptions(score_threshold=threshold), labels_path=yolo_labels)
    assert det.layout == "yolov8" and det.input_spec.resize == "letterbox"
    labels = _labels(det.detect(images / "coral_kite_and_cold.jpg"))
    assert labels.count("person") >= 2 and labels.count("kite") >= 2


def test_path_pil_and_array_agree(ssd, ssd_labels, images):
    det = Detector(ssd, DetectorOptions(score_threshold=0.4), labels_path=ssd_labels)
    path = images / "coral_pets.jpg"
    pil = Image.open(path)
    a = det.detect(path)
    b = det.detect(pil)
    c = det.detect(np.asarray(pil.convert("RGB")))
    assert _labels(a) and _labels(b) == _labels(c)
    for x, y in zip(b.detections, c.detections):
        assert x.box == pytest.approx(y.box, abs=1e-3)
    # The file path may use JPEG draft mode; it must agree with a full decode up to small shifts.
    assert {d.label for d in a.detections} == {d.label for d in b.detections}


def test_threads_default_to_usable_cores_not_one(ssd):
    assert Detector(ssd).num_threads == usable_cores()
    assert Detector(ssd, DetectorOptions(num_threads=1)).num_threads == 1


def test_allow_deny_and_max_results(ssd, ssd_labels, images):
    photo = images / "coral_kite_and_cold.jpg"
    only_kites = Detector(ssd, DetectorOptions(score_threshold=0.3, label_allowlist={"kite"}), labels_path=ssd_labels)
    assert set(_labels(only_kites.detect(photo))) == {"kite"}
    no_people = Detector(ssd, DetectorOptions(score_threshold=0.3, label_denylist={"person"}), labels_path=ssd_labels)
    assert "person" not in _labels(no_people.detect(photo))
    top2 = Detector(ssd, DetectorOptions(score_threshold=0.0, max_results=2), labels_path=ssd_labels).detect(photo)
    assert len(top2.detections) == 2 and top2.detections[0].score >= top2.detections[1].score


def test_result_is_frozen_and_json(ssd, images):
    import dataclasses
    import json
    result = Detector(ssd).detect(images / "coral_kite_and_cold.jpg")
    doc = json.loads(result.to_json())
    assert set(doc) == {"source", "width", "height", "detections"}
    assert set(doc["detections"][0]) == {"label", "class_id", "score", "box"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.detections[0].score = 1.0


def test_options_reject_bad_values():
    from edgekit import ConfigError
    for kwargs in ({"score_threshold": 1.5}, {"max_results": 0}, {"num_threads": 0}, {"iou_threshold": 0}):
        with pytest.raises(ConfigError):
            DetectorOptions(**kwargs)


def test_wrong_layout_override_is_a_clear_error(ssd):
    from edgekit import LayoutError
    det = Detector(ssd, DetectorOptions(layout="yolov8"))
    with pytest.raises(LayoutError, match="yolov8 layout needs one"):
        det.detect(np.zeros((300, 300, 3), np.uint8))
