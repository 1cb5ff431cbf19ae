"""Validation sets (COCO JSON, YOLO folder), mAP through the runtime path, score deltas, overlap check.

Real data: the 128 COCO val2017 images of ../shared/data (a YOLO folder: images/ + labels/ +
config.yaml, and a COCO JSON derived from it) and the real SSD / YOLOv8n models.
"""

import json
import shutil

import pytest

from edgekit.coco_eval import compare_scores, eval_options, evaluate, evaluation_detector, main
from edgekit.datasets import check_disjoint, find_overlap, load_coco, load_validation_set, load_yolo, read_class_names
from edgekit.errors import ConfigError, ImageError
from edgekit.postprocess import EVAL_MAX_RESULTS, EVAL_SCORE_THRESHOLD

JSON = "instances_val2017_first128_DERIVED_from_yolo.json"
FEW = 16


@pytest.fixture(scope="session")
def coco128(shared):
    return shared / "coco128_val2017"


@pytest.fixture(scope="session")
def yolo_int8(shared, yolo_labels):
    return evaluation_detector(shared / "models" / "yolov8n" / "yolov8n_full_integer_quant.tflite", yolo_labels)


@pytest.fixture
def small_yolo(coco128, tmp_path):
    """The first FEW images of coco128 as a YOLO folder without a YAML."""
    root = tmp_path / "small"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for image in sorted((coco128 / "images").iterdir())[:FEW]:
        shutil.copy(image, root / "images" / image.name)
        label = coco128 / "labels" / (image.stem + ".txt")
        if label.exists():
            shutil.copy(label, root / "labels" / label.name)
    return root


# -- the two formats give the same mAP ---------------------------------------------------------

def test_coco_json_and_yolo_folder_give_the_same_map(coco128, small_yolo, yolo_labels, yolo_int8):
    from_json = load_validation_set(coco128 / JSON)  # images/ beside the JSON, the default
    from_yaml = load_validation_set(coco128)  # names from config.yaml
    from_labels = load_validation_set(small_yolo, names=yolo_labels)  # no YAML: the labels file
    assert len(from_json) == len(from_yaml) == 128 and len(from_labels) == FEW
    assert from_json.missing == from_yaml.missing == 0
    assert "config.yaml" in from_yaml.notes[0]
    assert from_yaml.class_names == read_class_names(yolo_labels)
    scores = [evaluate(yolo_int8, from_json, limit=FEW), evaluate(yolo_int8, from_yaml, limit=FEW),
              evaluate(yolo_int8, from_labels)]
    for s in scores:
        print(f"YOLOv8n full-int8, {s.images} images: mAP50-95 {s.map50_95:.4f} mAP50 {s.map50:.4f}, "
              f"{s.detections} detections, {s.seconds:.1f} s")
        assert s.images == FEW
        assert s.map50_95 == pytest.approx(scores[0].map50_95, abs=1e-6)
        assert s.map50 == pytest.approx(scores[0].map50, abs=1e-6)
        assert [(c.name, c.instances) for c in s.per_class] == [(c.name, c.instances) for c in scores[0].per_class]
    assert 0.3 < scores[0].map50_95 < scores[0].map50 < 0.8
    assert (scores[0].score_threshold, scores[0].max_results) == (EVAL_SCORE_THRESHOLD, EVAL_MAX_RESULTS)


def test_yolo_boxes_become_coco_pixel_boxes(coco128):
    by_file_json = {i["file_name"]: i for i in load_coco(coco128 / JSON).coco["images"]}
    yolo = load_yolo(coco128).coco
    first = yolo["images"][0]
    assert (first["width"], first["height"]) == (by_file_json[first["file_name"]]["width"],
                                                 by_file_json[first["file_name"]]["height"])
    ann = next(a for a in yolo["annotations"] if a["image_id"] == first["id"])
    x, y, w, h = ann["bbox"]
    assert (round(x, 2), round(y, 2), round(w, 2), round(h, 2)) == (236.98, 142.51, 24.7, 69.5)  # 139.jpg, the JSON
    assert ann["area"] == pytest.approx(w * h) and ann["iscrowd"] == 0
    assert len(yolo["annotations"]) == 898


def test_ssd_map_on_128_images(shared, coco128, ssd_labels):
    det = evaluation_detector(shared / "models" / "ssd_mobilenet_v1_quant" / "detect.tflite", ssd_labels)
    score = evaluate(det, load_validation_set(coco128))
    print(f"SSD v1: mAP50-95 {score.map50_95:.4f} mAP50 {score.map50:.4f}, {score.seconds:.1f} s")
    assert score.images == 128
    assert score.map50_95 == pytest.approx(0.221, abs=0.01)  # README: 0.221 (threshold 0.01, 100 results)


def test_eval_options_keep_the_runtime_nms():
    from edgekit import DetectorOptions

    opts = eval_options(DetectorOptions(score_threshold=0.6, max_results=5, iou_threshold=0.6,
                                        label_allowlist={"person"}))
    assert (opts.score_threshold, opts.max_results, opts.iou_threshold) == (EVAL_SCORE_THRESHOLD, EVAL_MAX_RESULTS, 0.6)
    assert opts.label_allowlist is None


# -- comparing two real models -----------------------------------------------------------------

def test_per_class_deltas_of_two_real_models(shared, coco128, yolo_labels, yolo_int8):
    dataset = load_validation_set(coco128)
    dynamic = evaluation_detector(shared / "models" / "yolov8n" / "yolov8n_int8.tflite", yolo_labels)
    before, after = evaluate(dynamic, dataset, limit=FEW), evaluate(yolo_int8, dataset, limit=FEW)
    delta = compare_scores(before, after, worst=3)
    print(f"dynamic {before.map50_95:.4f} → full-int8 {after.map50_95:.4f}: {delta}")
    assert delta.map50_95_points == pytest.approx(100 * (after.map50_95 - before.map50_95))
    assert delta.map50_points == pytest.approx(100 * (after.map50 - before.map50))
    present = {c.name for c in before.per_class}
    assert len(delta.worst) == 3 and {d.name for d in delta.worst} <= present
    assert [d.delta_points for d in delta.worst] == sorted(d.delta_points for d in delta.worst)
    everything = compare_scores(before, after, worst=1000).worst
    assert len(everything) == len(present) and everything[0] == delta.worst[0]
    assert all(d.instances > 0 for d in everything)
    with pytest.raises(ConfigError, match="different validation sets"):
        compare_scores(before, evaluate(yolo_int8, dataset, limit=4))


# -- bad input -----------------------------------------------------------------------------------

def test_missing_paths(coco128, tmp_path):
    with pytest.raises(ConfigError, match="no such file or folder"):
        load_validation_set(tmp_path / "nowhere")
    (tmp_path / "labels").mkdir()
    with pytest.raises(ConfigError, match="no images/ folder; expected a YOLO-format dataset"):
        load_validation_set(tmp_path)
    shutil.copy(coco128 / JSON, tmp_path / "a.json")
    with pytest.raises(ConfigError, match=r"images folder .*images \(the default: an images/ folder beside the JSON\)") as err:
        load_validation_set(tmp_path / "a.json")
    assert "coco_eval --images DIR" in str(err.value)  # each entry point's own flag (it named only the converter's)


@pytest.mark.parametrize("content,message", [
    ("not json {", "not JSON"),
    ("[]", "a JSON list"),
    ('{"images": []}', "expected a COCO instances JSON"),
    ('{"images": [{"id": 1}], "annotations": [], "categories": []}', r"images\[0\] .*expected an object with id, file_name"),
    ('{"images": [{"id": 1, "file_name": "x.jpg"}], "annotations": [{"image_id": 2, "category_id": 1, "bbox": [0,0,1,1]}],'
     ' "categories": [{"id": 1, "name": "a"}]}', r"annotations\[0\] refers to image 2"),
])
def test_json_that_is_not_coco(coco128, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_validation_set(path, coco128 / "images")


def test_images_listed_but_missing(coco128, tmp_path):
    doc = json.loads((coco128 / JSON).read_text())
    doc["images"] = doc["images"][:3] + [{"id": 1, "file_name": "gone.jpg", "width": 10, "height": 10}]
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] in {i["id"] for i in doc["images"]}]
    doc["annotations"].append({"id": 99999, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]})
    (tmp_path / "some.json").write_text(json.dumps(doc))
    dataset = load_validation_set(tmp_path / "some.json", coco128 / "images")
    assert len(dataset) == 3 and dataset.missing == 1
    assert "1 of its 4 images are not in" in dataset.notes[0] and "gone.jpg" in dataset.notes[0]
    assert all(a["image_id"] != 1 for a in dataset.coco["annotations"])  # not scored as missed boxes
    (tmp_path / "images").mkdir()
    with pytest.raises(ConfigError, match="none of its 4 images are in"):
        load_validation_set(tmp_path / "some.json")


@pytest.mark.parametrize("line,message", [
    ("0 0.5 0.5 0.1", r"000000000139.txt:2: found 4 fields"),
    ("person 0.5 0.5 0.1 0.1", r"000000000139.txt:2: .*not numbers"),
    ("0 320 200 10 10", r"000000000139.txt:2: .*outside 0..1"),
    ("80 0.5 0.5 0.1 0.1", r"000000000139.txt:2: class id 80, but .*labels_coco80.txt names 80 classes"),
])
def test_bad_label_lines(small_yolo, yolo_labels, line, message):
    label = small_yolo / "labels" / "000000000139.txt"
    label.write_text(label.read_text().splitlines()[0] + "\n" + line + "\n")
    with pytest.raises(ConfigError, match=message):
        load_validation_set(small_yolo, names=yolo_labels)


def test_polygon_label_is_its_box(small_yolo, yolo_labels):
    (small_yolo / "labels" / "000000000139.txt").write_text("2 0.1 0.2 0.3 0.2 0.3 0.6 0.1 0.6\n")
    ann = load_yolo(small_yolo, yolo_labels).coco["annotations"][0]
    assert ann["category_id"] == 3 and ann["bbox"] == pytest.approx([64, 0.2 * 426, 128, 0.4 * 426])


def test_yolo_names_and_orphan_labels(small_yolo, yolo_labels):
    with pytest.raises(ConfigError, match="no data.yaml/dataset.yaml with 'names:'.*pass the class names"):
        load_validation_set(small_yolo)
    (small_yolo / "labels" / "elsewhere.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    dataset = load_validation_set(small_yolo, names=yolo_labels)
    assert dataset.missing == 1 and "1 label files have no image" in dataset.notes[1] and "elsewhere.txt" in dataset.notes[1]
    (small_yolo / "data.yaml").write_text("names: [person, bicycle, car]\n")  # the folder's YAML wins
    with pytest.raises(ConfigError, match=r"class id \d+, but .*data.yaml names 3 classes"):
        load_validation_set(small_yolo, names=yolo_labels)


@pytest.mark.parametrize("text", [
    "names: [person, 'bicycle', \"car\"]  # flow",
    "names: [person,\n  bicycle, car]\n",
    "path: .\nnames:\n  - person\n  - bicycle\n  - car\nnc: 3",
    "names:\n- person\n- 'bicycle'\n- car\n",
    "names: {0: person, 1: bicycle, 2: car}",
    "names:\n  0: person\n  2: car # comment\n  1: bicycle\ntrain: x\n",
])
def test_yaml_names(tmp_path, text):
    (tmp_path / "data.yaml").write_text(text)
    assert read_class_names(tmp_path / "data.yaml") == ("person", "bicycle", "car")


@pytest.mark.parametrize("text,message", [
    ("names:\n  0: person\n  2: car\n", "expected ids 0..1 without gaps"),
    ("names:\nnc: 0\n", "'names:' is empty"),
    ("names: person\n", "expected a list"),
    ("nc: 3\n", "no 'names:' key"),
])
def test_bad_yaml_names(tmp_path, text, message):
    (tmp_path / "data.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_class_names(tmp_path / "data.yaml")


def test_unreadable_image(small_yolo, yolo_labels):
    (small_yolo / "images" / "000000000139.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ImageError, match="000000000139.jpg: cannot read the image's size"):
        load_validation_set(small_yolo, names=yolo_labels)


def test_no_model_label_names_a_category(shared, small_yolo, ssd):
    dataset = load_validation_set(small_yolo, names=shared / "models" / "yolov8n" / "labels_coco80.txt")
    det = evaluation_detector(ssd, shared / "images" / "coral_COPYRIGHT")  # any text file: wrong labels
    with pytest.raises(ConfigError, match="none names a category"):
        evaluate(det, dataset)


# -- calibration vs validation -------------------------------------------------------------------

def test_overlap_found_by_content(coco128, small_yolo, yolo_labels, tmp_path, images):
    dataset = load_validation_set(small_yolo, names=yolo_labels)
    calib = tmp_path / "calib"
    calib.mkdir()
    shutil.copy(images / "coral_kite_and_cold.jpg", calib / "kite.jpg")
    check_disjoint([calib / "kite.jpg"], dataset)  # different images: fine
    shutil.copy(coco128 / "images" / "000000000139.jpg", calib / "renamed.jpg")
    shutil.copy(coco128 / "images" / "000000000285.jpg", calib / "other.png")
    paths = sorted(calib.iterdir())
    assert {a.rsplit("/", 1)[1] for a, _ in find_overlap(paths, dataset)} == {"renamed.jpg", "other.png"}
    with pytest.raises(ConfigError, match=r"2 of the 3 calibration images are also in the validation set .*"
                                          r"renamed.jpg = .*000000000139.jpg"):
        check_disjoint(paths, dataset)


# -- python -m edgekit.coco_eval on a YOLO folder ---------------------------------------------------

def test_cli_scores_a_yolo_folder(shared, small_yolo, yolo_labels, capsys):
    model = shared / "models" / "yolov8n" / "yolov8n_full_integer_quant.tflite"
    assert main([str(model), str(small_yolo), "--names", str(yolo_labels), "--labels", str(yolo_labels)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["images"] == FEW and 0.3 < out["mAP50-95"] < 0.8
