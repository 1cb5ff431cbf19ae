"""Labels as a newcomer meets them: a label file downloaded beside the model, a typo in --allow,
and a label file that belongs to another model (issue 16, items 5 and 6). Real models, real CLI."""

import json
import shutil

import pytest

from conftest import run_cli
from edgekit import Detector, DetectorOptions
from edgekit.errors import ConfigError
from edgekit.metadata import split_model


@pytest.fixture()
def ssd_download(ssd, ssd_labels, tmp_path):
    """The TF1 detection zoo's download as unpacked: detect.tflite and labelmap.txt side by side."""
    shutil.copy(ssd, tmp_path / "detect.tflite")
    shutil.copy(ssd_labels, tmp_path / "labelmap.txt")
    return tmp_path / "detect.tflite"


@pytest.fixture()
def bare_yolo(shared, tmp_path):
    """YOLOv8n (80 classes) without its Ultralytics metadata: no labels inside."""
    data = (shared / "models" / "yolov8n" / "yolov8n_int8_320.tflite").read_bytes()
    path = tmp_path / "yolov8n_bare.tflite"
    path.write_bytes(split_model(data)[0])
    return path


def test_labelmap_beside_the_model_is_used_and_said(ssd_download, images):
    r = run_cli("-m", "edgekit", "detect", str(ssd_download), str(images / "coral_kite_and_cold.jpg"))
    assert r.returncode == 0, r.stderr
    labels = {d["label"] for d in json.loads(r.stdout)["detections"]}
    assert {"person", "kite"} <= labels and not any(lbl.startswith("class_") for lbl in labels)
    notes = [line for line in r.stderr.splitlines() if "labelmap.txt" in line]
    assert len(notes) == 1 and "found beside it" in notes[0] and "--labels" in notes[0], r.stderr


def test_labels_given_or_embedded_win_over_a_file_beside(ssd_download, tmp_path):
    (tmp_path / "mine.txt").write_text("a\nb\n")
    det = Detector(ssd_download, labels_path=tmp_path / "mine.txt")
    assert det.labels == ("a", "b") and not any("beside" in n for n in det.notes)


def test_a_label_file_beside_that_does_not_fit_is_not_used(bare_yolo, yolo_labels, images):
    (bare_yolo.parent / "labels.txt").write_text("\n".join(yolo_labels.read_text().splitlines()[:10]) + "\n")
    det = Detector(bare_yolo)
    assert det.labels is None and det.layout == "yolov8"
    assert any("labels.txt beside the model has 10 names" in n and "not used" in n for n in det.notes), det.notes
    shutil.copy(yolo_labels, bare_yolo.parent / "labels.txt")
    det = Detector(bare_yolo)
    assert det.labels is not None and len(det.labels) == 80 and det.label_origin == "labels.txt beside the model"


def test_allow_a_label_the_model_does_not_have_is_refused_with_a_suggestion(ssd, ssd_labels, images):
    r = run_cli("-m", "edgekit", "detect", str(ssd), str(images / "table.jpg"), "--labels", str(ssd_labels),
                "--allow", "persn")
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--allow persn" in lines[0] and "did you mean person?" in lines[0], r.stderr


def test_deny_typo_and_names_without_labels(bare_yolo, yolo_labels):
    with pytest.raises(ConfigError, match="did you mean bicycle"):
        Detector(bare_yolo, DetectorOptions(label_denylist={"bycicle"}), labels_path=yolo_labels)
    with pytest.raises(ConfigError, match="no label names"):
        Detector(bare_yolo, DetectorOptions(label_allowlist={"person"}))
    Detector(bare_yolo, DetectorOptions(label_allowlist={"class_0"}))  # the names it prints are fine


def test_auto_layout_names_the_label_count_mismatch(shared, yolo_labels, images, tmp_path):
    ten = tmp_path / "ten.txt"
    ten.write_text("\n".join(yolo_labels.read_text().splitlines()[:10]) + "\n")
    model = shared / "models" / "yolov8n" / "yolov8n_int8.tflite"
    r = run_cli("-m", "edgekit", "detect", str(model), str(images / "table.jpg"), "--labels", str(ten))
    assert r.returncode == 4
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot tell how to decode" not in lines[0], r.stderr
    assert "yolov8" in lines[0] and "80 class" in lines[0] and "10 labels" in lines[0] and "--labels" in lines[0]
