"""The detectors people download, laid out the way each exporter lays them out (built from the real
models in ../shared/data by tests/exporters.py): edgekit decodes each right, or refuses it in one
line — never prints impossible detections."""

from __future__ import annotations

import json

import numpy as np
import pytest

import exporters
from conftest import iou, run_cli
from edgekit.decoders import DecodeContext, OutputTensor, decode_ssd
from edgekit.detector import Detector, DetectorOptions
from edgekit.errors import LayoutError, ModelError, UnsupportedModelError


def _same_detections(a, b) -> None:
    assert len(a.detections) == len(b.detections) > 0
    for x, y in zip(a.detections, b.detections):
        assert (x.label, x.class_id) == (y.label, y.class_id)
        assert x.score == pytest.approx(y.score, abs=1e-6) and iou(x.box, y.box) > 0.999


@pytest.mark.parametrize("naming", ["tf2", "sequential"])
def test_tf2_ssd_layout_matches_the_tf1_export(exported, ssd, ssd_labels, images, naming):
    """TF2 / EfficientDet-Lite order (scores, boxes, count, classes): roles come from the post-process
    operator, so even misleading names cannot swap classes and scores."""
    tf2 = exported.tf2_ssd_layout(naming=naming)
    opts = DetectorOptions(score_threshold=0.3)
    original = Detector(ssd, opts, labels_path=ssd_labels)
    moved = Detector(tf2, opts, labels_path=ssd_labels)
    assert moved.layout == "ssd" and moved.layout_origin.startswith("operator")
    for name in ("tflsupport_cats_and_dogs.jpg", "coral_kite_and_cold.jpg", "table.jpg"):
        _same_detections(original.detect(images / name), moved.detect(images / name))
    found = {d.label for d in moved.detect(images / "tflsupport_cats_and_dogs.jpg").detections}
    assert {"cat", "dog"} <= found and "person" not in found


def test_tf2_ssd_threshold_filters(exported, ssd_labels, images):
    r = run_cli("-m", "edgekit", "detect", str(exported.tf2_ssd_layout()), str(images / "tflsupport_cats_and_dogs.jpg"),
                "--labels", str(ssd_labels), "--threshold", "0.6", "--no-plan")
    assert r.returncode == 0, r.stderr
    scores = [d["score"] for d in json.loads(r.stdout)["detections"]]
    assert scores and all(0.6 <= s <= 1.0 for s in scores)


def test_ssd_guessed_by_shapes_refuses_swapped_roles(exported, ssd_labels, images):
    """Without the operator's list (a runtime that cannot list ops), the shape guess takes TF1 order;
    on a TF2-ordered model the value checks refuse instead of printing 'person 64.00'."""
    det = Detector(exported.tf2_ssd_layout(naming="sequential"), labels_path=ssd_labels)
    outputs = det.invoke(det.preprocess(det.load(images / "tflsupport_cats_and_dogs.jpg"))[0])
    unnamed = [OutputTensor(f"out{i}", o.data, o.scale, o.zero_point) for i, o in enumerate(outputs)]
    ctx = DecodeContext(300, 300, 0.3, 90, "tf2_ssd.tflite")
    with pytest.raises(LayoutError, match="tf2_ssd.tflite.*(not integers|expected probabilities)"):
        decode_ssd(unnamed, ctx)


def test_tflite_metadata_names_labels_and_normalisation(exported, images):
    """TFLite Metadata (TF2 layout with metadata, as EfficientDet-Lite ships): labels from the
    labelmap the metadata names (class c = line c), roles and normalisation from the metadata."""
    model = exported.tf2_ssd_with_metadata()
    det = Detector(model, DetectorOptions(score_threshold=0.3))
    assert det.metadata.source == "tflite-metadata"
    assert det.label_origin.startswith("TFLite Metadata") and det.labels[0] == "person"
    assert det.input_spec.mean == (127.5,) and det.input_spec.std == (127.5,)
    found = {d.label for d in det.detect(images / "tflsupport_cats_and_dogs.jpg").detections}
    assert {"cat", "dog"} <= found
    r = run_cli("-m", "edgekit", "info", str(model))
    assert r.returncode == 0, r.stderr
    assert "from TFLite Metadata (labelmap.txt)" in r.stdout and "TFLite_Detection_PostProcess" in r.stdout


def test_ultralytics_metadata_gives_labels_and_size(shared, images):
    model = shared / "models/yolov8n/yolov8n_full_integer_quant.tflite"
    det = Detector(model)
    assert det.label_origin == "Ultralytics metadata.json" and len(det.labels) == 80
    assert det.metadata.task == "detect" and det.metadata.input_size == (640, 640)
    labels = {d.label for d in det.detect(images / "coral_kite_and_cold.jpg").detections}
    assert {"person", "kite"} <= labels and not any(lbl.startswith("class_") for lbl in labels)
    r = run_cli("-m", "edgekit", "info", str(model))
    assert "metadata: ultralytics" in r.stdout and "from Ultralytics metadata.json" in r.stdout


@pytest.mark.parametrize("task", ["segment", "pose", "obb", "classify"])
def test_ultralytics_non_detect_task_refused(exported, shared, tmp_path, task):
    src = shared / "models/yolov8n/yolov8n_int8_320.tflite"
    model = exporters.with_ultralytics_metadata(src, tmp_path / f"{task}.tflite", names=["person"], task=task,
                                                imgsz=(320, 320))
    r = run_cli("-m", "edgekit", "detect", str(model), str(shared / "images/coral_kite_and_cold.jpg"), "--no-plan")
    assert r.returncode == 4 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and f"task '{task}'" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("-m", "edgekit", "info", str(model))
    assert r.returncode == 0 and f"refuses it: {model.name} is" in r.stdout


def test_pose_export_refused(exported, images):
    with pytest.raises(UnsupportedModelError, match="pose"):
        Detector(exported.pose_like())


def test_yolov5_forced_as_yolov8_is_refused(exported, yolo_labels, images):
    """The issue's reproduction: 85-wide rows + 80 labels + --layout yolov8 printed 100 'baseball bat 1.00'."""
    model = exported.yolov5_like()
    r = run_cli("-m", "edgekit", "detect", str(model), str(images / "coral_kite_and_cold.jpg"), "--layout", "yolov8",
                "--labels", str(yolo_labels), "--no-plan", "--threshold", "0.01")
    assert r.returncode == 4 and r.stdout == "", r.stdout[:300]
    line = [x for x in r.stderr.strip().splitlines() if not x.startswith("edgekit: note:")]
    assert len(line) == 1 and "81 class scores per box but there are 80 labels" in line[0] and model.name in line[0]
    assert "Traceback" not in r.stderr
    # decoded as what it is, it runs and its detections are possible ones
    det = Detector(model, DetectorOptions(score_threshold=0.01), labels_path=yolo_labels)
    assert det.layout == "yolov5"
    for d in det.detect(images / "coral_kite_and_cold.jpg").detections:
        assert 0.01 <= d.score <= 1.0 and d.label in det.labels


def test_logits_instead_of_scores_are_refused(tmp_path):
    from edgekit.decoders import decode_yolov8

    data = np.zeros((1, 7, 10), np.float32)
    data[0, :4] = 0.5
    data[0, 4, 3] = 7.5  # a logit: no sigmoid in the export
    with pytest.raises(LayoutError, match="expected probabilities"):
        decode_yolov8([OutputTensor("out", data)], DecodeContext(64, 64, 0.25, 3, "m.tflite"))


@pytest.mark.parametrize("builder, words", [
    ("classifier", "looks like an image classifier (5 classes)"),
    ("segmenter", "looks like a segmentation"),
    ("two_inputs", "has 2 inputs"),
])
def test_not_a_detector_one_line(exported, images, builder, words):
    model = getattr(exported, builder)()
    r = run_cli("-m", "edgekit", "detect", str(model), str(images / "coral_cat.bmp"), "--no-plan")
    assert r.returncode == 4 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in r.stderr
    info = run_cli("-m", "edgekit", "info", str(model), "--json")
    assert info.returncode == 0, info.stderr
    doc = json.loads(info.stdout)
    assert doc["verdict"].startswith("refuses it") and words in doc["verdict"] and doc["operators"]


def test_dynamic_batch_runs_with_one_image(exported, images):
    model = exported.dynamic_batch()
    det = Detector(model, DetectorOptions(layout="yolov8", score_threshold=0.01))
    assert det.info.inputs[0].shape_signature[0] == -1 and det.info.inputs[0].shape[0] == 1
    tensor, _ = det.preprocess(det.load(images / "coral_cat.bmp"))
    ours = det.invoke(tensor)[0].data
    from ai_edge_litert.interpreter import Interpreter

    direct = Interpreter(str(model))
    direct.resize_tensor_input(direct.get_input_details()[0]["index"], [1, 64, 64, 3])
    direct.allocate_tensors()
    direct.set_tensor(direct.get_input_details()[0]["index"], tensor)
    direct.invoke()
    np.testing.assert_allclose(ours, direct.get_tensor(direct.get_output_details()[0]["index"]), atol=1e-5)
    assert ours.shape == (1, 7, 64) and det.detect(images / "coral_cat.bmp").width == 512


def test_info_describes_blazeface_without_a_plugin(shared):
    r = run_cli("-m", "edgekit", "info", str(shared / "models/blazeface/face_detection_short_range.tflite"))
    assert r.returncode == 0, r.stderr
    assert "regressors [1, 896, 16] float32" in r.stdout and "CONV_2D" in r.stdout
    assert "refuses it" in r.stdout and "anchor-based SSD without the post-process operator" in r.stdout


def test_float_model_without_normalisation_says_what_it_assumes(exported, images):
    model = exported.yolov5_like(num_classes=3, size=320)
    r = run_cli("-m", "edgekit", "detect", str(model), str(images / "coral_cat.bmp"), str(images / "coral_bird.bmp"),
                "--no-plan")
    assert r.returncode == 0, r.stderr
    notes = [line for line in r.stderr.splitlines() if "assuming pixels / 255" in line]
    assert len(notes) == 1 and "--mean/--std" in notes[0]
    r = run_cli("-m", "edgekit", "detect", str(model), str(images / "coral_cat.bmp"), "--no-plan", "--mean", "0",
                "--std", "255", "-v")
    assert r.returncode == 0 and "assuming" not in r.stderr


def test_plugin_decoder_failure_is_the_plugins_fault(tmp_path, ssd, images):
    plugin = tmp_path / "broken_plugin.py"
    plugin.write_text("from edgekit import register_decoder\n\n"
                      "@register_decoder('broken')\n"
                      "def decode(outputs, ctx):\n"
                      "    return [][3]\n")
    r = run_cli("-m", "edgekit", "detect", str(ssd), str(images / "coral_cat.bmp"), "--plugin", str(plugin),
                "--layout", "broken", "--no-plan")
    assert r.returncode == 4 and r.stdout == ""
    lines = [line for line in r.stderr.strip().splitlines() if not line.startswith("edgekit: note: ")]  # labelmap.txt
    assert len(lines) == 1 and f"'broken' decoder (plugin {plugin}) failed: IndexError" in lines[0]
    assert "internal error" not in r.stderr and "bug in the plugin" in lines[0]


def test_plugin_matches_takes_part_in_auto(tmp_path, shared, images):
    """A plugin's matches() is asked before the built-ins; here it claims BlazeFace's outputs."""
    plugin = tmp_path / "claims_blazeface.py"
    plugin.write_text("import numpy as np\nfrom edgekit import Candidates, register_decoder\n\n"
                      "def matches(info):\n"
                      "    s = info.output_shapes()\n"
                      "    return len(s) == 2 and s[0][-1] == 16 and 'shapes (two outputs, 16 regressors)'\n\n"
                      "@register_decoder('two-outputs', matches=matches)\n"
                      "def decode(outputs, ctx):\n"
                      "    return Candidates.empty()\n")
    r = run_cli("-m", "edgekit", "detect", str(shared / "models/blazeface/face_detection_short_range.tflite"),
                str(images / "coral_face.jpg"), "--plugin", str(plugin), "--no-plan", "-v", "--mean", "127.5",
                "--std", "127.5")
    assert r.returncode == 0, r.stderr
    assert "layout two-outputs (from plugin: shapes (two outputs, 16 regressors))" in r.stderr
    assert json.loads(r.stdout)["detections"] == []


def test_float_model_normalisation_from_tflite_metadata(exported, tmp_path, images):
    src = exported.yolov5_like(num_classes=3, size=320)
    with_norm = exporters.with_tflite_metadata(src, tmp_path / "norm.tflite", mean=[127.5], std=[127.5],
                                               output_names=["output"], labels=["a", "b", "c"])
    det = Detector(with_norm)
    assert det.input_spec.mean == (127.5,) and det.input_spec.std == (127.5,) and not det.notes
    assert det.metadata.origins["input.mean"] == "TFLite Metadata" and det.labels == ("a", "b", "c")
    # TFLite Metadata without NormalizationOptions: say what is assumed
    bare = exporters.with_tflite_metadata(src, tmp_path / "bare.tflite", output_names=["output"])
    det = Detector(bare)
    assert det.metadata.source == "tflite-metadata" and det.input_spec.mean is None
    assert len(det.notes) == 1 and "assuming pixels / 255" in det.notes[0]


def test_float_input_value_range_sets_normalisation(exported, monkeypatch):
    """Only a value range (Stats min/max) known for a float input: 0..255 is mapped onto it."""
    import edgekit.detector as detector_module
    from edgekit.metadata import ModelMetadata

    monkeypatch.setattr(detector_module, "read_metadata", lambda path: ModelMetadata(input_range=(-1.0, 1.0)))
    det = Detector(exported.yolov5_like(num_classes=3, size=320))
    assert det.input_spec.mean == (127.5,) and det.input_spec.std == (127.5,) and not det.notes


SHAPES = exporters.SHAPES_INT8.parent


@pytest.mark.parametrize("pixels", [False, True])
def test_end2end_head_matches_the_yolov8_head(exported, tmp_path, pixels):
    """The shapes demo exported NMS-free ([1, 100, 6] rows, normalised or pixel boxes): same objects
    as the demo's YOLOv8-style head decoded by edgekit; the layout is told by shapes or by
    Ultralytics metadata (end2end: true)."""
    from edgekit.metadata import InputSpec

    e2e = exported.end2end_shapes(pixels=pixels)
    tagged = exporters.with_ultralytics_metadata(e2e, tmp_path / "tagged.tflite", names=exporters.SHAPES_LABELS,
                                                 imgsz=(128, 128), end2end=True)
    reference = Detector(exporters.SHAPES_INT8)
    raw = InputSpec(mean=(0.0,), std=(1.0,))  # shapes.keras takes pixels 0..255
    for model, origin in ((e2e, "shapes"), (tagged, "metadata (Ultralytics metadata.json)")):
        det = Detector(model, DetectorOptions(input=raw, labels=exporters.SHAPES_LABELS))
        assert det.layout == "end2end" and det.layout_origin.startswith(origin)
        matched = 0
        for image in sorted(SHAPES.glob("images/scene_*.png")):
            ours = [d for d in det.detect(image).detections if d.score >= 0.5]
            ref = [d for d in reference.detect(image).detections if d.score >= 0.5]
            for d in ours:
                best = max((iou(d.box, r.box) for r in ref if r.label == d.label), default=0.0)
                assert best >= 0.7, (image.name, d)
                matched += 1
            for r in ref:  # and nothing the reference finds clearly is missing
                if r.score >= 0.7:
                    assert any(d.label == r.label and iou(d.box, r.box) >= 0.6
                               for d in det.detect(image).detections), (image.name, r)
        assert matched >= 8


def test_model_failing_at_invoke_is_a_model_error(exported, images):
    corrupt = exported.corrupt_at_invoke()
    det = Detector(corrupt)  # loads and allocates
    with pytest.raises(ModelError, match="corrupt_at_invoke.tflite: .* failed running the model .*re-download or re-convert"):
        det.detect(images / "coral_cat.bmp")
    for extra in (["--no-plan"], []):  # the planner's trial child says the same
        r = run_cli("-m", "edgekit", "detect", str(corrupt), str(images / "coral_cat.bmp"), *extra)
        assert r.returncode == 4 and r.stdout == ""
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "corrupt_at_invoke.tflite" in lines[0] and "failed running the model" in lines[0]
        assert "internal error" not in r.stderr


# -- review findings: older metadata layouts, quantized heads, corrupt metadata, plugin names -----------

def _coco(shared):
    return tuple((shared / "models/yolov8n/labels_coco80.txt").read_text().split("\n")[:80])


def test_older_ultralytics_dict_in_tflite_metadata_is_not_a_label_file(shared, tmp_path, images):
    """Ultralytics 8.0-8.2 attached str(metadata) as a TFLite-Metadata label file (temp_meta.txt)."""
    from edgekit.metadata import split_model

    flat, _ = split_model((shared / "models/yolov8n/yolov8n_int8_320.tflite").read_bytes())
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(flat)  # no metadata.json: as exported before Ultralytics 8.3
    meta = {"description": "Ultralytics YOLOv8n", "author": "Ultralytics", "stride": 32, "task": "detect",
            "batch": 1, "imgsz": [320, 320], "names": dict(enumerate(_coco(shared)))}
    old = exporters.with_tflite_metadata(bare, tmp_path / "old.tflite", output_names=["output0"], labels=[str(meta)])
    det = Detector(old)
    assert det.labels[:2] == ("person", "bicycle") and len(det.labels) == 80
    assert det.label_origin.startswith("Ultralytics labelmap.txt")
    assert {"person", "kite"} <= {d.label for d in det.detect(images / "coral_kite_and_cold.jpg").detections}


def test_yolov5_repo_meta_txt_gives_names(exported, tmp_path, images):
    """YOLOv5's export.py stores {'stride': 32, 'names': [...]} as a model-level associated file."""
    import io
    import zipfile

    src = exported.yolov5_like(num_classes=3, size=320)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("meta.txt", str({"stride": 32, "names": ["cat", "dog", "bird"]}))
    model = tmp_path / "yolov5_meta.tflite"
    model.write_bytes(src.read_bytes() + buf.getvalue())
    det = Detector(model, DetectorOptions(input=None))
    assert det.labels == ("cat", "dog", "bird") and det.layout == "yolov5"
    assert all(d.label in det.labels for d in det.detect(images / "coral_cat.bmp").detections)


def test_ultralytics_nms_export_from_args(shared, tmp_path, exported):
    model = exporters.with_ultralytics_metadata(exported.end2end_shapes(), tmp_path / "nms.tflite",
                                                names=exporters.SHAPES_LABELS, imgsz=(128, 128),
                                                args={"nms": True, "batch": 1})
    det = Detector(model)
    assert det.layout == "end2end" and "Ultralytics metadata.json" in det.layout_origin


def test_int8_end2end_rows_and_scores_just_above_one():
    from edgekit.decoders import decode_end2end, decode_yolov8

    rows = np.zeros((1, 300, 6), np.float32)
    rows[0, :3] = [[0.1, 0.1, 0.4, 0.5, 0.9, 3], [0.5, 0.5, 0.9, 0.8, 0.7, 17], [0.2, 0.6, 0.3, 0.9, 0.4, 79]]
    scale, zp = 80.0 / 255, -128
    q = np.clip(np.rint(rows / scale + zp), -128, 127).astype(np.int8)
    cand = decode_end2end([OutputTensor("out", q, scale, zp)], DecodeContext(640, 640, 0.25, 80, "m"))
    assert cand.class_ids.tolist() == [3, 17, 79]
    # an int8 YOLO score tensor whose range reaches 1.03 dequantizes a 0.9998 score to 1.0017
    data = np.zeros((1, 84, 100), np.float32)
    data[0, :4] = 0.5
    data[0, 4 + 7, 5] = 0.9998
    scale, zp = 1.03 / 255, -128
    q = np.clip(np.rint(data / scale + zp), -128, 127).astype(np.int8)
    cand = decode_yolov8([OutputTensor("out", q, scale, zp)], DecodeContext(640, 640, 0.25, 80, "m"))
    assert cand.class_ids.tolist() == [7] and 0.99 <= float(cand.scores[0]) <= 1.0


def test_ssd_roles_from_tflite_metadata_names_when_ops_are_unknown(exported, ssd, ssd_labels, images, monkeypatch):
    """A runtime that cannot list operators: the TFLite Metadata output names still give the roles."""
    from edgekit.decoders.ssd import roles_of

    model = exported.tf2_ssd_with_metadata()
    det_ops = Detector(model, DetectorOptions(score_threshold=0.3))
    import edgekit.modelinfo as modelinfo

    real = modelinfo.inspect_interpreter

    def without_ops(interpreter, *args, **kwargs):
        info = real(interpreter, *args, **kwargs)
        return modelinfo.ModelInfo(info.path, info.inputs, info.outputs, {}, None, info.metadata, info.num_labels)

    monkeypatch.setattr("edgekit.detector.inspect_interpreter", without_ops)
    det = Detector(model, DetectorOptions(score_threshold=0.3))
    assert det.layout_origin.startswith("metadata (TFLite Metadata output names)")
    outputs = det.invoke(det.preprocess(det.load(images / "tflsupport_cats_and_dogs.jpg"))[0])
    assert roles_of(outputs, det.info)[1] == "TFLite Metadata names"
    _same_detections(det_ops.detect(images / "tflsupport_cats_and_dogs.jpg"),
                     det.detect(images / "tflsupport_cats_and_dogs.jpg"))


def test_corrupt_metadata_zip_is_one_line(shared, tmp_path, images):
    data = bytearray((shared / "models/yolov8n/yolov8n_int8_320.tflite").read_bytes())
    from edgekit.metadata import split_model

    flat, _ = split_model(bytes(data))
    data[len(flat) + 60] ^= 0xFF  # inside the deflated metadata.json
    model = tmp_path / "bad_zip.tflite"
    model.write_bytes(bytes(data))
    r = run_cli("-m", "edgekit", "detect", str(model), str(images / "coral_cat.bmp"), "--no-plan")
    assert r.returncode == 4 and "metadata ZIP appended to the model is corrupt" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "internal error" not in r.stderr
    r = run_cli("-m", "edgekit", "info", str(model))
    assert r.returncode == 0 and "refuses it" in r.stdout and "corrupt" in r.stdout


def test_plugin_file_named_like_a_stdlib_module_does_not_shadow_it(tmp_path):
    import queue
    import sys

    from edgekit.plugins import load_plugin

    plugin = tmp_path / "queue.py"
    plugin.write_text("from dataclasses import dataclass\n\n@dataclass\nclass Box:\n    x: int\n")
    load_plugin(str(plugin))
    assert sys.modules["queue"] is queue and hasattr(queue, "Queue")


def test_label_map_pbtxt(tmp_path):
    from edgekit.metadata import read_labels

    path = tmp_path / "label_map.pbtxt"
    path.write_text('item {\n  name: "/m/01g317"\n  id: 1\n  display_name: "person"\n}\n'
                    'item {\n  id: 3\n  name: "car"\n}\n')
    assert read_labels(path) == ("person", "???", "car")


def test_ultralytics_imgsz_disagreeing_with_the_tensor_is_said(shared, tmp_path):
    model = exporters.with_ultralytics_metadata(shared / "models/yolov8n/yolov8n_int8_320.tflite", tmp_path / "m.tflite",
                                                names=_coco(shared), imgsz=(640, 640))
    det = Detector(model)
    assert det.input_size == (320, 320)
    assert any("exported at 640x640, but its input tensor is 320x320" in n for n in det.notes)
