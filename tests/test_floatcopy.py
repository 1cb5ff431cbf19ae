"""converters.floatcopy and converters.quantize on real models: Ultralytics' YOLOv8n exports, and
float16 / dynamic-range models converted here by TensorFlow. The 128-image mAP comparison is in
examples/benchmarks/bench_int8_gate.py."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from converters.floatcopy import add_signature, float_copy, quantized_activations
from converters.quantize import calibration_samples, head_tail_ops, quantize_int8
from edgekit import Detector
from edgekit.boxes import iou
from edgekit.errors import ConfigError
from edgekit.metadata import split_model
from edgekit.metadata_readers import read_metadata
from edgekit.runtime import create_interpreter

VAL_IMAGES = ("000000000139.jpg", "000000000285.jpg", "000000000632.jpg")


@pytest.fixture(scope="module")
def yolo_dir(shared):
    return shared / "models" / "yolov8n"


@pytest.fixture(scope="module")
def yolo_float(yolo_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("floatcopy") / "yolov8n_float32.tflite"
    copy = float_copy((yolo_dir / "yolov8n_int8.tflite").read_bytes())
    path.write_bytes(copy.model)
    return path, copy


def _schema_model(data: bytes):
    from ai_edge_litert import schema_py_generated as schema

    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(split_model(data)[0], 0))


def test_dynamic_range_float_copy_matches_the_original(shared, yolo_dir, yolo_float):
    path, copy = yolo_float
    assert copy.dequantized == 62 and copy.float16 == 0
    original, floated = Detector(yolo_dir / "yolov8n_int8.tflite"), Detector(path)
    assert [d["name"] for d in floated._interpreter.get_input_details()] == ["images"]
    errors = []
    for name in VAL_IMAGES:
        x, _ = floated.preprocess(floated.load(shared / "coco128_val2017" / "images" / name))
        a, b = original.invoke(x)[0].dequantized(), floated.invoke(x)[0].dequantized()
        assert a.shape == b.shape == (1, 84, 8400)
        errors.append(np.abs(a - b))
    # The dynamic-range kernels quantize activations on the fly: close, not bit-exact (measured on
    # these images: max 0.076, mean 6e-5 in units of the normalised box / score).
    assert max(e.max() for e in errors) < 0.2
    assert np.mean([e.mean() for e in errors]) < 2e-4


def test_float_copy_keeps_names_metadata_and_zip(yolo_dir, yolo_float):
    path, copy = yolo_float
    source = (yolo_dir / "yolov8n_int8.tflite").read_bytes()
    model = _schema_model(copy.model)
    assert not quantized_activations(model)
    assert all(t.quantization is None or t.quantization.scale is None for t in model.subgraphs[0].tensors)
    before = {bytes(t.name) for t in _schema_model(source).subgraphs[0].tensors}
    after = {bytes(t.name) for t in model.subgraphs[0].tensors}
    assert after == before
    assert [m.name for m in model.metadata] == [b"min_runtime_version", b"CONVERSION_METADATA"]
    assert split_model(copy.model)[1] == split_model(source)[1]  # Ultralytics' metadata.json
    meta = read_metadata(path)
    assert meta.source == "ultralytics" and meta.labels[:2] == ("person", "bicycle")


def test_full_int8_model_is_refused(yolo_dir):
    with pytest.raises(ConfigError, match="full-integer model.*float32, float16 or dynamic-range export"):
        float_copy((yolo_dir / "yolov8n_full_integer_quant.tflite").read_bytes(), "yolov8n_full_integer_quant")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["float16", "dynamic"])
def test_tensorflow_float16_and_dynamic_range_models(kind, tmp_path):
    from converters.source import import_tensorflow

    tf = import_tensorflow()
    keras = tf.keras
    inputs = keras.Input((32, 32, 3), batch_size=1)
    x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    x = keras.layers.DepthwiseConv2D(3)(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if kind == "float16":
        converter.target_spec.supported_types = [tf.float16]
    source = converter.convert()
    labels = b"a\nb\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # stored, as TFLite Metadata's associated files are
        zf.writestr("labelmap.txt", labels)
    copy = float_copy(source + buf.getvalue())
    if kind == "float16":
        assert copy.float16 > 0 and copy.folded == copy.float16 and copy.dequantized == 0
    else:
        assert copy.dequantized > 0 and copy.float16 == 0
    assert split_model(copy.model)[1] == {"labelmap.txt": labels}
    with zipfile.ZipFile(io.BytesIO(copy.model)) as zf:
        assert zf.getinfo("labelmap.txt").compress_type == zipfile.ZIP_STORED
    assert [s.signatureKey for s in _schema_model(copy.model).signatureDefs] == [b"serving_default"]
    x = np.random.default_rng(1).random((1, 32, 32, 3), np.float32)
    outputs = []
    for data in (source, split_model(copy.model)[0]):
        runner = create_interpreter(data, 1).get_signature_runner("serving_default")
        outputs.append(next(iter(runner(**{runner.get_input_details().popitem()[0]: x}).values())))
    reference = model(x).numpy()
    if kind == "float16":  # same fp16-rounded weights, float32 arithmetic in both
        np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
    else:  # the hybrid kernels quantize activations; the float copy is nearer the float model
        assert np.abs(outputs[1] - reference).max() <= np.abs(outputs[0] - reference).max() + 1e-6


@pytest.mark.slow
def test_quantize_int8_real_yolo(shared, yolo_float):
    path, copy = yolo_float
    photos = [shared / "images" / n for n in ("coral_pets.jpg", "tflsupport_cats_and_dogs.jpg")]
    samples = calibration_samples(path, photos)
    assert samples[0].shape == (1, 640, 640, 3) and samples[0].dtype == np.float32
    tail = head_tail_ops(copy.model)
    assert tail[-1] == "Identity" and any("Sigmoid" in t for t in tail)
    for keep in ((), tail):
        int8 = quantize_int8(copy.model, samples, keep_float=keep)
        model = _schema_model(int8)
        assert len(quantized_activations(model)) > 300
        assert split_model(int8)[1] == split_model(copy.model)[1]
        out = path.with_name(f"int8_{len(keep)}.tflite")
        out.write_bytes(int8)
        det = Detector(out)
        assert det._interpreter.get_input_details()[0]["dtype"] == np.int8
        expected = np.float32 if keep else np.int8  # the final concatenation kept in float: float output
        assert det._interpreter.get_output_details()[0]["dtype"] == expected
        kite = shared / "images" / "coral_kite_and_cold.jpg"
        want = [d for d in Detector(path).detect(kite).detections if d.score > 0.5]
        got = det.detect(kite).detections
        found = [any(g.label == w.label and iou(np.array(w.box), np.array([g.box]))[0] > 0.5 for g in got)
                 for w in want]
        # Two calibration photos only (CI time): most, not all, of the float model's boxes survive.
        assert len(want) >= 5 and np.mean(found) >= 0.75, (len(want), found)


def test_add_signature_names_the_tensors(yolo_dir):
    signed = add_signature((yolo_dir / "yolov8n_int8.tflite").read_bytes())
    sig = _schema_model(signed).signatureDefs[0]
    assert sig.signatureKey == b"serving_default"
    assert [t.name for t in sig.inputs] == [b"images"] and [t.name for t in sig.outputs] == [b"Identity"]
    assert add_signature(signed) == signed
