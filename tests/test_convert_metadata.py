"""``edgekit-convert MODEL.tflite -o OUT`` without ``--mode``: a metadata rewrite of a real model.

A rewrite changes what it is asked to change and keeps every other field (compared as the whole
``edgekit.json`` document); labels come from ``--labels`` or from the model itself, and a label
count that differs from the model's class count is refused in one line (exit 2) naming both.
"""

import json
import shutil
import zipfile

import pytest

from conftest import EXAMPLES, run_cli
from edgekit.metadata import METADATA_MEMBER, ModelMetadata, embed_metadata, read_labels
from edgekit.metadata_readers import read_metadata

SHAPES = EXAMPLES / "shapes" / "shapes_int8.tflite"  # a real trained 3-class YOLOv8-layout model, full int8


def _doc(path) -> dict:
    """The edgekit.json document embedded in ``path``, as written."""
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read(METADATA_MEMBER))


def _convert(*args):
    return run_cli("-m", "converters.cli", *map(str, args))


@pytest.fixture
def coco80(shared):
    return shared / "models" / "yolov8n" / "labels_coco80.txt"


@pytest.fixture
def shapes(tmp_path):
    path = tmp_path / "shapes.tflite"
    shutil.copy(SHAPES, path)
    return path


def _one_error_line(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def test_labels_of_another_model_are_refused_naming_both_counts(shapes, coco80, tmp_path):
    out = tmp_path / "out.tflite"
    r = _convert(shapes, "-o", out, "--labels", coco80)
    line = _one_error_line(r)
    assert r.returncode == 2
    assert "80 labels" in line and "3 classes" in line and "labels_coco80.txt" in line and "--labels" in line
    assert not out.exists()


def test_labels_the_model_carries_that_do_not_fit_are_refused(shapes, coco80, tmp_path):
    """A model some earlier run labelled wrongly: renaming it does not carry the wrong labels on."""
    wrong = tmp_path / "wrong.tflite"
    labels = read_labels(coco80)
    wrong.write_bytes(embed_metadata(shapes.read_bytes(), ModelMetadata(name="wrong", labels=labels, layout="yolov8")))
    r = _convert(wrong, "-o", tmp_path / "out.tflite", "--name", "renamed")
    line = _one_error_line(r)
    assert r.returncode == 2 and "its metadata" in line and "80 labels" in line and "3 classes" in line
    fixed = tmp_path / "three.txt"
    fixed.write_text("circle\nsquare\ntriangle\n")
    r = _convert(wrong, "-o", tmp_path / "fixed.tflite", "--labels", fixed)
    assert r.returncode == 0, r.stderr
    assert read_metadata(tmp_path / "fixed.tflite").labels == ("circle", "square", "triangle")


def test_fitting_labels_replace_the_models_own(shapes, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("ring\nbox\nwedge\n")
    out = tmp_path / "out.tflite"
    r = _convert(shapes, "-o", out, "--labels", names)
    assert r.returncode == 0, r.stderr
    before, after = _doc(shapes), _doc(out)
    assert after.pop("labels") == ["ring", "box", "wedge"]
    assert before.pop("labels") == ["circle", "square", "triangle"]
    assert after == before


def test_labels_are_checked_on_a_yolov5_head(exported, coco80, tmp_path):
    model = exported.yolov5_like(num_classes=3, size=320)
    r = _convert(model, "-o", tmp_path / "out.tflite", "--labels", coco80, "--layout", "yolov5")
    assert r.returncode == 2 and "80 labels" in r.stderr and "yolov5 head scores 3 classes" in r.stderr


def test_a_head_without_a_class_count_in_its_shapes_takes_its_labels(shared, tmp_path):
    """BlazeFace's custom head (and SSD's class ids) do not say their class count: not refused here."""
    out = tmp_path / "face.tflite"
    r = _convert(shared / "models" / "blazeface" / "face_detection_short_range.tflite", "-o", out,
                 "--labels", EXAMPLES / "blazeface_labels.txt", "--layout", "blazeface")
    assert r.returncode == 0, r.stderr
    assert read_metadata(out).labels == ("face",)


def test_rename_keeps_every_other_field(shapes, tmp_path):
    out = tmp_path / "renamed.tflite"
    info_before = run_cli("-m", "edgekit", "info", str(shapes)).stdout
    r = _convert(shapes, "-o", out, "--name", "renamed")
    assert r.returncode == 0, r.stderr
    before, after = _doc(shapes), _doc(out)
    assert before["accuracy"] and before["input"]["mean"] == [0.0] and before["input"]["resize"] == "letterbox"
    assert after.pop("name") == "renamed" and before.pop("name") == "edgekit-shapes-demo"
    assert after == before
    info_after = run_cli("-m", "edgekit", "info", str(out)).stdout
    for line in info_before.splitlines():  # the same description, but for the name and the file
        if not line.startswith(("model:", "  name:")):
            assert line in info_after.splitlines(), line


def test_each_input_option_changes_only_its_field(shapes, tmp_path):
    out = tmp_path / "bgr.tflite"
    r = _convert(shapes, "-o", out, "--color", "BGR", "--pad-value", "0")
    assert r.returncode == 0, r.stderr
    before, after = _doc(shapes), _doc(out)
    assert after["input"] == {**before["input"], "color": "BGR", "pad_value": 0}
    assert {k: v for k, v in after.items() if k != "input"} == {k: v for k, v in before.items() if k != "input"}


def test_a_rewrite_keeps_tflite_metadata_normalisation(exported, tmp_path):
    """A model whose mean/std come from TFLite Metadata keeps them when only its name is set."""
    model = exported.ssd_with_metadata()
    out = tmp_path / "named.tflite"
    r = _convert(model, "-o", out, "--name", "ssd")
    assert r.returncode == 0, r.stderr
    before, after = read_metadata(model), read_metadata(out)
    assert after.name == "ssd" and after.labels == before.labels
    assert (after.input.mean, after.input.std) == (before.input.mean, before.input.std) == ((127.5,), (127.5,))
