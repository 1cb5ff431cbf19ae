"""``edgekit info`` in words a newcomer reads (issue 16, item 13): no "RGB (copy)", "mean None" or
"(1 threads)", and a dynamic-range model is said to be one. Real models through the real CLI."""

import json

import pytest

from conftest import run_cli


def _info(model, *extra):
    r = run_cli("-m", "edgekit", "info", str(model), *extra)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("name, kind, words", [
    ("yolov8n/yolov8n_int8.tflite", "dynamic-range", "int8, dynamic-range (int8 weights, float activations"),
    ("yolov8n/yolov8n_full_integer_quant.tflite", "int8", "8-bit, full integer"),
    ("blazeface/face_detection_short_range.tflite", "float16", "float16"),
])
def test_info_says_how_the_weights_are_stored(shared, name, kind, words):
    model = shared / "models" / name
    assert json.loads(_info(model, "--json"))["weights"] == kind
    lines = [line for line in _info(model).splitlines() if line.startswith("weights:")]
    assert len(lines) == 1 and words in lines[0], lines


def test_info_input_line_is_words_not_internals(ssd, shared):
    for model in (ssd, shared / "models" / "yolov8n" / "yolov8n_int8.tflite"):
        text = _info(model)
        line = next(line for line in text.splitlines() if line.startswith("input:    "))
        assert "None" not in line and "(copy)" not in line and "(float)" not in line, line
        assert "RGB channels" in line
    assert "uint8 pixels as they are" in _info(ssd)
    assert "letterboxed" in _info(shared / "models" / "yolov8n" / "yolov8n_int8.tflite")


def test_info_thread_count_is_singular_for_one(shared):
    text = _info(shared / "models" / "blazeface" / "face_detection_short_range.tflite")  # refused: 1 thread
    runtime = next(line for line in text.splitlines() if line.startswith("runtime:"))
    assert runtime.endswith("(1 thread)"), runtime
