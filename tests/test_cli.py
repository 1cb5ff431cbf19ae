"""The `edgekit` command as users run it: JSON lines out, one-line errors, batches that go on."""

import json

import pytest

from conftest import run_cli


def _lines(stdout):
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_detect_prints_one_json_object_per_image(ssd, ssd_labels, images, tmp_path):
    r = run_cli("-m", "edgekit", "detect", str(ssd), str(images / "coral_kite_and_cold.jpg"), str(images / "table.jpg"),
                "--labels", str(ssd_labels), "--threshold", "0.4", "--max-results", "5",
                "--save-annotated", str(tmp_path / "ann"))
    assert r.returncode == 0, r.stderr
    docs = _lines(r.stdout)
    assert [d["source"].rsplit("/", 1)[1] for d in docs] == ["coral_kite_and_cold.jpg", "table.jpg"]
    first = docs[0]
    assert (first["width"], first["height"]) == (1352, 900)
    assert {"person", "kite"} <= {d["label"] for d in first["detections"]}
    assert all(len(d["detections"]) <= 5 for d in docs)
    det = first["detections"][0]
    assert isinstance(det["class_id"], int) and 0 <= det["score"] <= 1 and len(det["box"]) == 4
    assert "Traceback" not in r.stderr
    saved = sorted(p.name for p in (tmp_path / "ann").iterdir())
    assert saved == ["coral_kite_and_cold.jpg", "table.jpg"]
    from PIL import Image
    assert Image.open(tmp_path / "ann" / "coral_kite_and_cold.jpg").size == (1352, 900)


def test_batch_continues_past_bad_inputs_and_exits_nonzero(ssd, images, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "text.png").write_text("hello, not an image")
    data = (images / "coral_kite_and_cold.jpg").read_bytes()
    (bad / "truncated.jpg").write_bytes(data[:5000])
    from PIL import Image
    Image.new("1", (12000, 12000)).save(bad / "bomb.png")
    r = run_cli("-m", "edgekit", "detect", str(ssd), str(bad / "empty.jpg"), str(images / "table.jpg"),
                str(bad / "text.png"), str(bad / "truncated.jpg"), str(bad / "bomb.png"), str(tmp_path / "missing.jpg"),
                str(images / "coral_pets.jpg"))
    assert r.returncode == 5
    assert [d["source"].rsplit("/", 1)[1] for d in _lines(r.stdout)] == ["table.jpg", "coral_pets.jpg"]
    errors = [line for line in r.stderr.splitlines() if line.startswith("edgekit: ") and "input(s) failed;" not in line
              and not line.startswith("edgekit: note: ")]  # the note on labelmap.txt beside detect.tflite
    assert len(errors) == 5, r.stderr
    for name, words in [("empty.jpg", "empty"), ("text.png", "not an image"), ("truncated.jpg", "truncated"),
                        ("bomb.png", "decompression bomb"), ("missing.jpg", "no such file")]:
        assert any(name in e and words in e for e in errors), (name, r.stderr)
    assert "Traceback" not in r.stderr


def test_directory_and_glob_sources(ssd, images, tmp_path):
    import shutil
    for name in ("table.jpg", "coral_pets.jpg"):
        shutil.copy(images / name, tmp_path / name)
    (tmp_path / "notes.txt").write_text("ignored in a directory")
    r = run_cli("-m", "edgekit", "detect", str(ssd), str(tmp_path), str(tmp_path / "*.jpg"))
    assert r.returncode == 0, r.stderr
    assert len(_lines(r.stdout)) == 4


@pytest.mark.parametrize("content,words", [
    (b"", "empty (0 bytes)"),
    (b"GIF89a not a tflite model at all", "not a TFLite model"),
])
def test_bad_model_files_give_one_line(tmp_path, images, content, words):
    model = tmp_path / "model.tflite"
    model.write_bytes(content)
    r = run_cli("-m", "edgekit", "detect", str(model), str(images / "table.jpg"))
    assert r.returncode == 4
    assert r.stderr.strip().count("\n") == 0 and words in r.stderr and str(model) in r.stderr


def test_truncated_model(tmp_path, shared, images):
    data = (shared / "models/yolov8n/yolov8n_int8_320.tflite").read_bytes()
    model = tmp_path / "cut.tflite"
    model.write_bytes(data[: len(data) // 2])
    r = run_cli("-m", "edgekit", "detect", str(model), str(images / "table.jpg"))
    assert r.returncode == 4 and "truncated or corrupt" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0


def test_unknown_layout_and_bad_options(ssd, images):
    r = run_cli("-m", "edgekit", "detect", str(ssd), str(images / "table.jpg"), "--layout", "centernet")
    assert r.returncode == 2 and "unknown output layout 'centernet'" in r.stderr and "yolov8" in r.stderr
    r = run_cli("-m", "edgekit", "detect", str(ssd), str(images / "table.jpg"), "--threshold", "7")
    assert r.returncode == 2 and "between 0 and 1" in r.stderr


def test_info_json_and_text(shared, ssd):
    model = shared / "models/yolov8n/yolov8n_full_integer_quant.tflite"
    r = run_cli("-m", "edgekit", "info", str(model), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["layout"]["name"] == "yolov8" and info["layout"]["from"].startswith("shapes")
    assert info["runtime"].startswith("ai-edge-litert")
    assert info["labels"] == {"count": 80, "from": "Ultralytics metadata.json", "first": info["labels"]["first"]}
    assert info["labels"]["first"][:2] == ["person", "bicycle"] and info["metadata"]["task"] == "detect"
    assert info["operators"]["CONV_2D"] == 64 and "LOGISTIC" in info["operators"]
    assert info["inputs"][0]["dtype"] == "int8" and info["inputs"][0]["quantization"]["zero_point"] == -128
    assert info["outputs"][0]["shape"] == [1, 84, 8400]
    assert info["input_encoding"]["kind"] == "flip" and info["input_encoding"]["resize"] == "letterbox"
    r = run_cli("-m", "edgekit", "info", str(ssd))
    assert r.returncode == 0 and "layout:   ssd" in r.stdout and "TFLite_Detection_PostProcess:3" in r.stdout
