"""The exporter-layout builders in tests/exporters.py keep their contracts, checked with
ai_edge_litert directly (never with edgekit's decoders, which are what these models test)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from PIL import Image

import exporters as ex
from conftest import iou

from ai_edge_litert.interpreter import Interpreter  # noqa: E402  (a missing runtime fails, never skips)


@pytest.fixture(scope="session")
def built(exported, shared):
    return exported  # one Cache per session (conftest), shared with test_exported_models.py


def _run(path, inputs=None):
    """Allocate, feed (zeros by default), invoke; return (interpreter, {output name: array})."""
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    for i, detail in enumerate(it.get_input_details()):
        value = inputs[i] if inputs is not None else np.zeros(detail["shape"], detail["dtype"])
        it.set_tensor(detail["index"], value)
    it.invoke()
    return it, {d["name"]: it.get_tensor(d["index"]).copy() for d in it.get_output_details()}


def _photo(shared, size, dtype=np.uint8, scale=1.0):
    img = Image.open(shared / "images" / "coral_kite_and_cold.jpg").convert("RGB").resize((size, size))
    return (np.asarray(img, np.float32) * scale).astype(dtype)[None]


# --- 1. TF2 layout --------------------------------------------------------------------------

def test_tf2_layout_is_the_tf1_model_permuted_bit_for_bit(built, shared, ssd):
    path = built.tf2_ssd_layout()
    photo = _photo(shared, 300)
    ref, ref_out = _run(ssd, [photo])
    it, out = _run(path, [photo])
    assert [d["name"] for d in it.get_input_details()] == ["serving_default_images:0"]
    names = [d["name"] for d in it.get_output_details()]
    # graph order scores, boxes, count, classes; names as real TF2 exports have them
    assert names == ["StatefulPartitionedCall:1", "StatefulPartitionedCall:3",
                     "StatefulPartitionedCall:0", "StatefulPartitionedCall:2"]
    tf1 = ["TFLite_Detection_PostProcess:2", "TFLite_Detection_PostProcess",
           "TFLite_Detection_PostProcess:3", "TFLite_Detection_PostProcess:1"]
    assert [out[n].shape for n in names] == [(1, 10), (1, 10, 4), (1,), (1, 10)]
    for new, old in zip(names, tf1):
        assert out[new].dtype == ref_out[old].dtype
        assert out[new].tobytes() == ref_out[old].tobytes()
    assert out[names[2]][0] > 0 and out[names[0]].max() > 0.5  # a real photo: real detections

    # the SignatureDef: output_k is StatefulPartitionedCall:k (count, scores, classes, boxes)
    assert it.get_signature_list() == {"serving_default": {"inputs": ["images"],
                                                           "outputs": ["output_0", "output_1", "output_2", "output_3"]}}
    sig = it.get_signature_runner("serving_default")(images=photo)
    assert sig["output_0"].tobytes() == ref_out["TFLite_Detection_PostProcess:3"].tobytes()
    assert sig["output_1"].tobytes() == ref_out["TFLite_Detection_PostProcess:2"].tobytes()
    assert sig["output_2"].tobytes() == ref_out["TFLite_Detection_PostProcess:1"].tobytes()
    assert sig["output_3"].tobytes() == ref_out["TFLite_Detection_PostProcess"].tobytes()


def test_tf2_layout_weights_untouched_and_deterministic(built, ssd, tmp_path):
    from ai_edge_litert import schema_py_generated as schema

    path = built.tf2_ssd_layout()
    a = schema.ModelT.InitFromPackedBuf(ssd.read_bytes(), 0)
    b = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    assert len(a.buffers) == len(b.buffers)
    assert all((x.data is None and y.data is None) or np.array_equal(x.data, y.data)
               for x, y in zip(a.buffers, b.buffers))
    assert ex.tf2_ssd_layout(ssd, tmp_path / "again.tflite").read_bytes() == path.read_bytes()


def test_tf2_layout_sequential_naming(built, shared):
    it, out = _run(built.tf2_ssd_layout("sequential"), [_photo(shared, 300)])
    assert [d["name"] for d in it.get_output_details()] == [f"StatefulPartitionedCall:{k}" for k in range(4)]
    sig = it.get_signature_runner()(images=_photo(shared, 300))
    assert sig["output_1"].shape == (1, 10, 4) and sig["output_2"].shape == (1,)


# --- 2. TFLite Metadata ---------------------------------------------------------------------

def test_reader_parses_the_real_metadata_model(shared):
    path = shared / "models" / "ssd_mobilenet_v1_quant" / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29_with_metadata.tflite"
    meta = ex.read_tflite_metadata(path)
    assert meta["name"] == "Coco SSD MobileNetV1" and meta["min_parser_version"] == "1.0.0"
    (inp,) = meta["inputs"]
    assert inp["name"] == "image" and inp["content"] == {"type": "ImageProperties", "color_space": "RGB"}
    assert inp["normalization"] == {"mean": [127.5], "std": [127.5]}
    assert inp["stats"] == {"max": [255.0], "min": [0.0]}
    assert [o["name"] for o in meta["outputs"]] == ["locations", "classes", "scores", "number of detections"]
    loc = meta["outputs"][0]["content"]
    assert loc["type"] == "BoundingBoxProperties" and loc["index"] == [1, 0, 3, 2]
    assert loc["bbox_type"] == "BOUNDARIES" and loc["coordinate_type"] == "RATIO" and loc["range"] == (2, 2)
    (labels,) = meta["outputs"][1]["associated_files"]
    assert labels["name"] == "labelmap.txt" and labels["type"] == "TENSOR_VALUE_LABELS"
    expected = (shared / "models" / "ssd_mobilenet_v1_quant" / "labelmap_from_metadata.txt").read_bytes()
    assert meta["files"] == {"labelmap.txt": expected}


def test_with_tflite_metadata_round_trip(built, shared, ssd):
    path = built.ssd_with_metadata()
    meta = ex.read_tflite_metadata(path)
    assert meta["name"] == "ObjectDetector" and meta["subgraph_count"] == 1
    (inp,) = meta["inputs"]
    assert inp["name"] == "image" and inp["content"]["color_space"] == "RGB"
    assert inp["normalization"] == {"mean": [127.5], "std": [127.5]}
    assert inp["stats"] == {"max": [255.0], "min": [0.0]}  # uint8 input
    assert [o["name"] for o in meta["outputs"]] == ["location", "category", "score", "number of detections"]
    assert meta["outputs"][0]["content"]["index"] == [1, 0, 3, 2]
    assert meta["outputs"][1]["associated_files"] == [
        {"name": "labelmap.txt", "description": "Labels for categories that the model can recognize.",
         "type": "TENSOR_VALUE_LABELS", "locale": None}]
    labels = (shared / "models" / "ssd_mobilenet_v1_quant" / "labelmap_from_metadata.txt").read_bytes()
    assert meta["files"] == {"labelmap.txt": labels}
    # the populator's layout: flatbuffer, then a ZIP of stored members; model still runs the same
    with zipfile.ZipFile(path) as zf:
        assert [i.compress_type for i in zf.infolist()] == [zipfile.ZIP_STORED]
    photo = _photo(shared, 300)
    _, a = _run(ssd, [photo])
    _, b = _run(path, [photo])
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)


def test_with_tflite_metadata_follows_the_graph_order_of_a_tf2_layout(built):
    meta = ex.read_tflite_metadata(built.tf2_ssd_with_metadata())
    assert [o["name"] for o in meta["outputs"]] == ["score", "location", "number of detections", "category"]
    assert meta["outputs"][3]["associated_files"][0]["name"] == "labelmap.txt"
    assert "labelmap.txt" in meta["files"]


def test_with_tflite_metadata_needs_names_it_cannot_infer(built, tmp_path):
    with pytest.raises(ValueError, match="output_names"):
        ex.with_tflite_metadata(built.classifier(), tmp_path / "x.tflite")
    path = ex.with_tflite_metadata(built.classifier(), tmp_path / "x.tflite", output_names=["probability"],
                                   mean=[0.0], std=[255.0], input_name="pixels")
    meta = ex.read_tflite_metadata(path)
    assert meta["inputs"][0]["name"] == "pixels" and meta["inputs"][0]["stats"] == {"max": [1.0], "min": [0.0]}
    assert meta["outputs"][0]["name"] == "probability" and meta["files"] == {}
    _run(path)


# --- 3. Ultralytics metadata ----------------------------------------------------------------

def test_ultralytics_metadata_matches_the_real_export_byte_for_byte(shared, tmp_path):
    real = shared / "models" / "yolov8n" / "yolov8n_int8.tflite"
    names = (shared / "models" / "yolov8n" / "labels_coco80.txt").read_text().split("\n")
    names = [n for n in names if n]
    args = {"batch": 1, "fraction": 1.0, "half": False, "int8": True, "nms": False}
    path = ex.with_ultralytics_metadata(real, tmp_path / "y.tflite", names=names, args=args)
    with zipfile.ZipFile(real) as zf:
        want = zf.read("metadata.json")
    with zipfile.ZipFile(path) as zf:
        assert [(i.filename, i.compress_type) for i in zf.infolist()] == [("metadata.json", zipfile.ZIP_DEFLATED)]
        assert zf.read("metadata.json") == want  # same keys, order, indent, values
    from edgekit.metadata import split_model

    assert split_model(path.read_bytes())[0] == split_model(real.read_bytes())[0]  # flatbuffer untouched
    _run(path)


def test_ultralytics_metadata_extras(tmp_path, ssd):
    path = ex.with_ultralytics_metadata(ssd, tmp_path / "e.tflite", names={0: "a", 1: "b"}, imgsz=(320, 256),
                                        end2end=True, version="8.4.0", kpt_names={"0": ["nose"]})
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("metadata.json"))
    assert meta["names"] == {"0": "a", "1": "b"} and meta["imgsz"] == [320, 256]
    assert list(meta)[-3:] == ["channels", "end2end", "kpt_names"] and meta["end2end"] is True
    # appending again replaces metadata.json instead of adding a second member
    again = ex.with_ultralytics_metadata(path, tmp_path / "f.tflite", names=["x"])
    with zipfile.ZipFile(again) as zf:
        assert zf.namelist() == ["metadata.json"]


# --- 4. YOLOv5 layout -----------------------------------------------------------------------

def test_yolov5_like(built, shared):
    path = built.yolov5_like()
    it, out = _run(path, [_photo(shared, 320, np.float32, 1 / 255)])
    (inp,) = it.get_input_details()
    assert list(inp["shape"]) == [1, 320, 320, 3] and inp["dtype"] == np.float32
    (y,) = out.values()
    assert y.shape == (1, ex.yolov5_rows(320), 85) == (1, 6300, 85) and y.dtype == np.float32
    assert (y[..., 4:] > 0).all() and (y[..., 4:] < 1).all()  # sigmoid outputs
    assert (y[..., :2] > -0.1).all() and (y[..., :2] < 1.1).all()  # centres normalised
    assert (y[..., 2:4] > 0).all()
    confident = (y[0, :, 4] * y[0, :, 5:].max(-1)) > 0.5
    assert confident.sum() == 3 * ex.YOLOV5_PLANTED_PER_LEVEL  # a few rows, like detections
    assert np.median(y[0, :, 4]) < 0.05


# --- 6. refusal fodder ----------------------------------------------------------------------

def test_classifier(built):
    it, out = _run(built.classifier(5), [np.full((1, 96, 96, 3), 128, np.float32)])
    (p,) = out.values()
    assert p.shape == (1, 5) and abs(float(p.sum()) - 1) < 1e-5


def test_segmenter(built):
    it, out = _run(built.segmenter())
    (s,) = out.values()
    assert s.shape == (1, 64, 64, 4) and np.allclose(s.sum(-1), 1, atol=1e-5)


def test_two_inputs(built):
    it, out = _run(built.two_inputs())
    assert sorted(d["name"] for d in it.get_input_details()) == ["serving_default_image_a:0",
                                                                   "serving_default_image_b:0"]
    assert [v.shape for v in out.values()] == [(1, 7, 64)]


def test_dynamic_batch(built):
    it = Interpreter(model_path=str(built.dynamic_batch()))
    (inp,) = it.get_input_details()
    assert list(inp["shape_signature"]) == [-1, 64, 64, 3]
    it.resize_tensor_input(inp["index"], [2, 64, 64, 3])
    it.allocate_tensors()
    it.set_tensor(inp["index"], np.zeros((2, 64, 64, 3), np.float32))
    it.invoke()
    assert it.get_tensor(it.get_output_details()[0]["index"]).shape == (2, 7, 64)


def test_pose_like(built, shared):
    path = built.pose_like()
    it, out = _run(path, [_photo(shared, 320, np.float32, 1 / 255)])
    (y,) = out.values()
    assert y.shape == (1, 56, 2100)
    assert (y[0, 4] > 0).all() and (y[0, 4] < 1).all()
    assert (y[0, 7::3] > 0).all() and (y[0, 7::3] <= 1).all()  # keypoint visibility (sigmoid)
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("metadata.json"))
    assert meta["task"] == "pose" and meta["kpt_shape"] == [17, 3] and meta["names"] == {"0": "person"}
    assert meta["imgsz"] == [320, 320]


# --- 5. end-to-end head on the shapes demo --------------------------------------------------

def _plain_decode(det: np.ndarray, conf=0.25, iou_thr=0.45):
    """[1, 4+C, N] (cx, cy, w, h normalised, class scores) -> rows x1, y1, x2, y2, score, class:
    threshold, then greedy class-aware NMS; best first. Written here, independent of edgekit."""
    p = det[0].T.astype(np.float64)
    boxes = np.stack([p[:, 0] - p[:, 2] / 2, p[:, 1] - p[:, 3] / 2, p[:, 0] + p[:, 2] / 2, p[:, 1] + p[:, 3] / 2], -1)
    score, cls = p[:, 4:].max(-1), p[:, 4:].argmax(-1)
    order = [i for i in np.argsort(-score, kind="stable") if score[i] >= conf]
    kept = []
    for i in order:
        if all(cls[j] != cls[i] or iou(boxes[i], boxes[j]) <= iou_thr for j in kept):
            kept.append(i)
    return np.array([[*boxes[i], score[i], cls[i]] for i in kept]).reshape(-1, 6)


@pytest.fixture(scope="session")
def shapes_scenes():
    return sorted((ex.REPO / "examples" / "shapes" / "images").glob("scene_*.png"))


def test_end2end_shapes_layout_and_builtin_ops(built):
    from ai_edge_litert import schema_py_generated as schema

    for pixels in (False, True):
        path = built.end2end_shapes(pixels=pixels)
        model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
        codes = {c.builtinCode for c in model.operatorCodes}
        assert schema.BuiltinOperator.NON_MAX_SUPPRESSION_V5 in codes
        assert all(c.customCode is None for c in model.operatorCodes)  # no Flex / custom ops
        it = Interpreter(model_path=str(path))
        (inp,) = it.get_input_details()
        assert list(inp["shape"]) == [1, 128, 128, 3] and inp["dtype"] == np.float32
        (out,) = it.get_output_details()
        assert list(out["shape"]) == [1, 100, 6] and out["dtype"] == np.float32


def test_end2end_shapes_matches_the_plain_decode(built, shapes_scenes):
    import keras

    assert len(shapes_scenes) == 4
    base = keras.models.load_model(str(ex.SHAPES_KERAS), compile=False)
    int8 = Interpreter(model_path=str(ex.SHAPES_INT8))
    int8.allocate_tensors()
    (q_in,), (q_out,) = int8.get_input_details(), int8.get_output_details()
    total = 0
    for scene in shapes_scenes:
        x, _, _ = ex.shapes_input(scene)
        _, out = _run(built.end2end_shapes(), [x])
        (rows,) = out.values()
        rows = rows[0]
        _, out_px = _run(built.end2end_shapes(pixels=True), [x])
        (rows_px,) = out_px.values()
        n = int((rows[:, 4] > 0).sum())
        assert n > 0 and (rows[n:] == 0).all()  # zero padding after the last detection
        assert (np.diff(rows[:n, 4]) <= 0).all()  # best first
        assert (rows[:n, 0] < rows[:n, 2]).all() and (rows[:n, 1] < rows[:n, 3]).all()  # x1 < x2, y1 < y2
        assert np.allclose(rows_px[0, :, :4], rows[:, :4] * 128, atol=1e-3)
        assert np.array_equal(rows_px[0, :, 4:], rows[:, 4:])

        want = _plain_decode(np.asarray(base(x)))  # the float model, decoded the plain way
        assert len(want) == n
        assert np.array_equal(rows[:n, 5], want[:, 5])
        assert np.allclose(rows[:n, :5], want[:, :5], atol=1e-4)

        in_scale, in_zero = q_in["quantization"]
        info = np.iinfo(q_in["dtype"])
        int8.set_tensor(q_in["index"], np.clip(np.rint(x / in_scale + in_zero), info.min, info.max).astype(q_in["dtype"]))
        int8.invoke()
        scale, zero = q_out["quantization"]
        q = int8.get_tensor(q_out["index"]).astype(np.float32)
        if q_out["dtype"] != np.float32:  # a quantized output (the gated model keeps its tail float)
            q = (q - zero) * scale
        for box in _plain_decode(q):  # the shipped int8 model finds the same confident objects
            if box[4] >= 0.5:
                assert max(iou(box, r) for r in rows[:n] if r[5] == box[5]) > 0.6  # int8 boxes move a little
        total += n
    assert total >= 8


# --- 7. fails at invoke ---------------------------------------------------------------------

def test_corrupt_at_invoke(built, shared):
    it = Interpreter(model_path=str(built.corrupt_at_invoke()))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], _photo(shared, 300))
    with pytest.raises(RuntimeError, match=r"Input tensor \d+ lacks data"):
        it.invoke()


def test_flatbuffer_builders_are_deterministic(built, ssd, tmp_path):
    labels = ["a", "b"]
    a = ex.with_tflite_metadata(ssd, tmp_path / "a.tflite", labels=labels, mean=[127.5], std=[127.5])
    b = ex.with_tflite_metadata(ssd, tmp_path / "b.tflite", labels=labels, mean=[127.5], std=[127.5])
    assert a.read_bytes() == b.read_bytes()
    a = ex.with_ultralytics_metadata(ssd, tmp_path / "c.tflite", names=labels)
    b = ex.with_ultralytics_metadata(ssd, tmp_path / "d.tflite", names=labels)
    assert a.read_bytes() == b.read_bytes()
    assert ex.corrupt_at_invoke(ssd, tmp_path / "e.tflite").read_bytes() == built.corrupt_at_invoke().read_bytes()
