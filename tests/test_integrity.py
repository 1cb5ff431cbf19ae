"""Model integrity: edgekit-convert records a SHA-256 of the model (edgekit.json: of the flatbuffer;
a bundle manifest: of each whole variant file), and detect/plan refuse a file that does not match.

The corruption is real: bit flips in a convolution kernel of the converted shapes demo, a model
the runtime still loads and runs — with different outputs — when nothing checks the digest."""

import hashlib
import json
import shutil

import numpy as np
import pytest

from conftest import EXAMPLES, run_cli
from edgekit.errors import ModelError
from edgekit.integrity import file_digests, flatbuffer_sha256, verify_model
from edgekit.metadata import ModelMetadata, split_model
from edgekit.metadata_readers import read_metadata

SHAPES = EXAMPLES / "shapes"
IMAGE = SHAPES / "images" / "scene_0.png"


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory):
    return {"EDGEKIT_CACHE_DIR": str(tmp_path_factory.mktemp("edgekit_cache"))}


@pytest.fixture(scope="module")
def labels_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "shapes.txt"
    path.write_text("circle\nsquare\ntriangle\n")
    return path


def _convert_args(labels_file):
    return ("--labels", str(labels_file), "--layout", "yolov8", "--resize", "letterbox", "--mean", "0", "--std", "1",
            "--no-eval")


@pytest.fixture(scope="module")
def converted(tmp_path_factory, labels_file):
    out = tmp_path_factory.mktemp("converted") / "shapes_float32.tflite"
    r = run_cli("-m", "converters.cli", str(SHAPES / "shapes.keras"), "-o", str(out), *_convert_args(labels_file))
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, labels_file, cache_env):
    out = tmp_path_factory.mktemp("bundle") / "shapes_bundle"
    r = run_cli("-m", "converters.cli", str(SHAPES / "shapes.keras"), "-o", str(out), "--bundle",
                "--modes", "float32,float16", *_convert_args(labels_file), env=cache_env)
    assert r.returncode == 0, r.stderr
    return out


def _flip_weights(src, dst, count=64):
    """Copy ``src`` to ``dst`` with the sign bit of ``count`` float32 weights of its largest
    constant tensor flipped. Returns the offsets changed (all inside the flatbuffer)."""
    from edgekit.runtime import create_interpreter

    data = bytearray(src.read_bytes())
    it = create_interpreter(str(src), 1)
    start = -1
    for d in sorted(it.get_tensor_details(), key=lambda d: -int(np.prod(d["shape"]))):
        if d["dtype"] != np.float32 or len(d["shape"]) != 4:
            continue
        try:
            values = it.get_tensor(d["index"])
        except ValueError:
            continue
        if values.size >= count and np.abs(values).min() > 0 and (start := bytes(data).find(values.tobytes())) > 0:
            break  # a constant (its bytes are in the file): the largest convolution kernel
    assert start > 0
    offsets = [start + 4 * i + 3 for i in range(count)]  # little-endian: byte 3 holds the sign bit
    for offset in offsets:
        data[offset] ^= 0x80
    dst.write_bytes(bytes(data))
    return offsets


def _invoke(path):
    from edgekit.runtime import create_interpreter

    it = create_interpreter(str(path), 1)
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.full(inp["shape"], 0.5, inp["dtype"]))
    it.invoke()
    return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def _one_line_refusal(r, path, recorded_in):
    assert r.returncode == 4, (r.returncode, r.stdout, r.stderr)
    message = r.stderr.strip()
    assert "\n" not in message and "Traceback" not in message, message
    assert str(path) in message and recorded_in in message
    assert "expected " in message and "found " in message
    assert "the file is corrupt or was modified; re-download or re-convert it" in message
    assert r.stdout == ""
    return message


def test_converter_records_the_flatbuffer_digest(converted):
    data = converted.read_bytes()
    flatbuffer, members = split_model(data)
    assert "edgekit.json" in members and len(flatbuffer) < len(data)
    meta = read_metadata(converted)
    assert meta.sha256 == hashlib.sha256(flatbuffer).hexdigest() == flatbuffer_sha256(data)
    assert json.loads(members["edgekit.json"])["sha256"] == meta.sha256
    assert file_digests(converted) == (hashlib.sha256(data).hexdigest(), meta.sha256)
    verify_model(str(converted), meta)  # no error


def test_file_digests_of_a_model_without_zip_and_with_a_foreign_zip(ssd, shared):
    whole, flat = file_digests(ssd)
    assert whole == flat == hashlib.sha256(ssd.read_bytes()).hexdigest()
    tflite_metadata = ssd.parent / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29_with_metadata.tflite"
    data = tflite_metadata.read_bytes()
    assert file_digests(tflite_metadata) == (hashlib.sha256(data).hexdigest(), flatbuffer_sha256(data))
    assert flatbuffer_sha256(data) != hashlib.sha256(data).hexdigest()  # the labelmap ZIP is not hashed


def test_file_digests_reads_once_per_version_of_the_file(converted, tmp_path, monkeypatch):
    import edgekit.integrity as integrity

    path = tmp_path / "m.tflite"
    shutil.copy(converted, path)
    reads = []
    real_start = integrity._zip_start
    monkeypatch.setattr(integrity, "_zip_start", lambda fh, size: reads.append(1) or real_start(fh, size))
    first = file_digests(path)
    assert file_digests(str(path)) == first and len(reads) == 1  # cached
    _flip_weights(converted, tmp_path / "flipped.tflite")
    (tmp_path / "flipped.tflite").replace(path)  # same path and size, new file
    assert file_digests(path) != first and len(reads) == 2


def test_verify_model_refuses_flipped_weights_that_the_runtime_would_run(converted, tmp_path):
    bad = tmp_path / "bad.tflite"
    offsets = _flip_weights(converted, bad)
    assert max(offsets) < len(split_model(bad.read_bytes())[0])
    # Without the check the corruption is silent: the runtime loads and runs it, with other outputs.
    assert any(not np.allclose(a, b) for a, b in zip(_invoke(converted), _invoke(bad)))
    meta = read_metadata(bad)
    assert meta.sha256 == read_metadata(converted).sha256  # the metadata itself is intact
    with pytest.raises(ModelError, match="corrupt or was modified") as err:
        verify_model(str(bad), meta)
    assert str(bad) in str(err.value) and meta.sha256[:12] in str(err.value)
    verify_model(str(bad), ModelMetadata())  # no digest recorded: nothing to check
    verify_model(str(bad), None)


def test_detect_and_plan_refuse_a_corrupt_model_in_one_line(converted, tmp_path, cache_env):
    r = run_cli("-m", "edgekit", "detect", str(converted), str(IMAGE), "--threshold", "0.5", env=cache_env)
    assert r.returncode == 0, r.stderr
    labels = {d["label"] for d in json.loads(r.stdout.strip().splitlines()[-1])["detections"]}
    assert labels and labels <= {"circle", "square", "triangle"}
    r = run_cli("-m", "edgekit", "plan", str(converted), env=cache_env)
    assert r.returncode == 0, r.stderr

    bad = tmp_path / "shapes_corrupt.tflite"
    _flip_weights(converted, bad)
    for command in (("detect", str(bad), str(IMAGE)), ("plan", str(bad)),
                    ("detect", "--no-plan", str(bad), str(IMAGE))):  # --no-plan: the Detector checks it
        r = run_cli("-m", "edgekit", *command, env=cache_env)
        message = _one_line_refusal(r, bad, "edgekit.json")
        expected, found = read_metadata(bad).sha256, file_digests(bad)[1]
        assert expected[:12] in message and found[:12] in message


def test_bundle_manifest_records_each_variant_and_plan_refuses_a_flipped_one(bundle, tmp_path, cache_env):
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert len(manifest["variants"]) == 2
    for v in manifest["variants"]:
        data = (bundle / v["file"]).read_bytes()
        assert v["sha256"] == hashlib.sha256(data).hexdigest()  # the whole file, metadata included
        assert read_metadata(bundle / v["file"]).sha256 == flatbuffer_sha256(data)
    r = run_cli("-m", "edgekit", "plan", str(bundle), env=cache_env)
    assert r.returncode == 0, r.stderr

    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    variant = copy / manifest["variants"][1]["file"]
    data = bytearray(variant.read_bytes())
    data[len(data) // 3] ^= 0x01  # one bit, inside the flatbuffer
    variant.write_bytes(bytes(data))
    for command in (("plan", str(copy)), ("detect", str(copy), str(IMAGE))):
        r = run_cli("-m", "edgekit", *command, env=cache_env)
        _one_line_refusal(r, variant, "bundle manifest")


def test_model_without_a_digest_still_runs(ssd, images, cache_env):
    assert read_metadata(ssd).sha256 is None
    verify_model(str(ssd), read_metadata(ssd))
    r = run_cli("-m", "edgekit", "detect", str(ssd), str(images / "coral_kite_and_cold.jpg"), env=cache_env)
    assert r.returncode == 0, r.stderr
    assert "kite" in r.stdout
