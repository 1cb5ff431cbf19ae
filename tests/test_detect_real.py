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


YOLO_MODELS = [("yolov8n_full_integer_quant.tflite", 0.4), ("yolov8n_int8.tflite", 0.4),
               ("yolov8n_int8_320.tflite", 0.3)]  # 320 input: small kites score lower
NMS_IOU = 0.45


def _nms(boxes, scores, threshold):
    """Indices kept by greedy NMS, best score first."""
    order, keep = list(np.argsort(-scores, kind="stable")), []
    while order:
        best, order = order[0], order[1:]
        keep.append(best)
        order = [i for i in order if iou(boxes[best], boxes[i]) <= threshold]
    return keep


def _interpreter(model):
    """The model in ai_edge_litert directly, and its input size (width, height)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model), num_threads=1)
    it.allocate_tensors()
    _, in_h, in_w, _ = (int(v) for v in it.get_input_details()[0]["shape"])
    return it, (in_w, in_h)


def _yolov8_reference(model, photo: Image.Image, score_threshold, resample=Image.BILINEAR):
    """YOLOv8 detections without edgekit: letterbox with Pillow (centred, grey 114), run the model
    with ai_edge_litert directly, decode the [84, N] rows (cx, cy, w, h normalised to the input,
    then 80 class scores), per-class NMS, undo the letterbox. Returns [(class, score, box)]."""
    it, (in_w, in_h) = _interpreter(model)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    w, h = photo.size
    scale = min(in_w / w, in_h / h)
    cw, ch = round(w * scale), round(h * scale)
    left, top = (in_w - cw) // 2, (in_h - ch) // 2
    canvas = Image.new("RGB", (in_w, in_h), (114, 114, 114))
    canvas.paste(photo.convert("RGB").resize((cw, ch), resample), (left, top))
    x = np.asarray(canvas, np.float32) / 255.0
    if np.issubdtype(inp["dtype"], np.integer):
        q, zero = inp["quantization"]
        x = np.clip(np.round(x / q + zero), np.iinfo(inp["dtype"]).min, np.iinfo(inp["dtype"]).max)
    it.set_tensor(inp["index"], x[None].astype(inp["dtype"]))
    it.invoke()
    y = it.get_tensor(out["index"])[0].astype(np.float32)
    if np.issubdtype(out["dtype"], np.integer):
        q, zero = out["quantization"]
        y = (y - zero) * q
    cx, cy, bw, bh = y[0] * in_w, y[1] * in_h, y[2] * in_w, y[3] * in_h
    classes, scores = y[4:].argmax(0), y[4:].max(0)
    keep = scores >= score_threshold
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)[keep]
    classes, scores = classes[keep], scores[keep]
    found = []
    for c in np.unique(classes):
        idx = np.flatnonzero(classes == c)
        for k in _nms(boxes[idx], scores[idx], NMS_IOU):
            x1, y1, x2, y2 = boxes[idx[k]]
            box = (float(np.clip((x1 - left) / scale, 0, w)), float(np.clip((y1 - top) / scale, 0, h)),
                   float(np.clip((x2 - left) / scale, 0, w)), float(np.clip((y2 - top) / scale, 0, h)))
            found.append((int(c), float(scores[idx[k]]), box))
    return sorted(found, key=lambda f: -f[1])


def _assert_same_detections(found, reference, names, threshold, score_tolerance):
    """Every reference box clear of the threshold has a detection of the same class and label with
    IoU >= 0.8 and a score within the tolerance; every clear detection is such a match."""
    clear = threshold + score_tolerance  # nearer the threshold either side may legitimately drop one
    assert [r for r in reference if r[1] >= clear], "the reference found nothing: the test proves nothing"
    for cls, score, box in reference:
        if score < clear:
            continue
        same = [d for d in found if d.class_id == cls]
        best = max(same, key=lambda d: iou(d.box, box), default=None)
        assert best is not None, f"{names[cls]} at {box} (score {score:.2f}) not found in {found}"
        assert best.label == names[cls]
        assert iou(best.box, box) >= 0.8, (names[cls], best.box, box)
        assert abs(best.score - score) <= score_tolerance, (names[cls], best.score, score)
    for d in found:
        if d.score >= clear:
            assert any(c == d.class_id and iou(d.box, b) >= 0.8 for c, _, b in reference), (d, reference)


@pytest.mark.parametrize("name,threshold", YOLO_MODELS)
def test_yolov8_boxes_match_an_independent_reference(shared, yolo_labels, images, name, threshold):
    """The letterbox un-mapping, exactly: edgekit gets the photo's letterboxed content upscaled 2x
    (nearest), so any sane resize hands the model the very pixels the reference used, and boxes and
    scores must agree closely (1280x852 for a 640 input: 107-pixel bands of padding, scale 1/2)."""
    model = shared / "models/yolov8n" / name
    names = yolo_labels.read_text().splitlines()
    det = Detector(model, DetectorOptions(score_threshold=threshold, iou_threshold=NMS_IOU), labels_path=yolo_labels)
    assert det.layout == "yolov8" and det.input_spec.resize == "letterbox"
    in_w, in_h = _interpreter(model)[1]
    photo = Image.open(images / "coral_kite_and_cold.jpg").convert("RGB")
    scale = min(in_w / photo.width, in_h / photo.height)
    content = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.BILINEAR)
    doubled = content.resize((content.width * 2, content.height * 2), Image.NEAREST)
    reference = _yolov8_reference(model, doubled, threshold, Image.BOX)  # area average: exact at 1/2
    result = det.detect(np.asarray(doubled))
    assert (result.width, result.height) == doubled.size
    _assert_same_detections(result.detections, reference, names, threshold, score_tolerance=0.02)


@pytest.mark.parametrize("name,threshold", YOLO_MODELS)
def test_yolov8_from_a_jpeg_path_matches_the_reference(shared, yolo_labels, images, name, threshold):
    """From the file as users pass it (JPEG draft decoding allowed): the reference decodes with
    Pillow's draft at the letterboxed size too. Resampling differs, so scores get 0.1 of slack
    (small objects move most), but each box must still land on the reference box in the full photo."""
    model = shared / "models/yolov8n" / name
    names = yolo_labels.read_text().splitlines()
    det = Detector(model, DetectorOptions(score_threshold=threshold, iou_threshold=NMS_IOU), labels_path=yolo_labels)
    path = images / "coral_kite_and_cold.jpg"
    photo = Image.open(path)
    full_size = photo.size
    in_w, in_h = _interpreter(model)[1]
    scale = min(in_w / photo.width, in_h / photo.height)
    photo.draft("RGB", (round(photo.width * scale), round(photo.height * scale)))
    fx, fy = full_size[0] / photo.width, full_size[1] / photo.height  # draft size -> full photo
    reference = [(c, s, (b[0] * fx, b[1] * fy, b[2] * fx, b[3] * fy))
                 for c, s, b in _yolov8_reference(model, photo, threshold)]
    result = det.detect(path)
    assert (result.width, result.height) == full_size == (1352, 900)
    labels = _labels(result)
    assert labels.count("person") >= 2 and labels.count("kite") >= 2
    _assert_same_detections(result.detections, reference, names, threshold, score_tolerance=0.1)


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
    with pytest.raises(LayoutError, match=r"needs one \[1, 4\+C, N\] output"):
        det.detect(np.zeros((300, 300, 3), np.uint8))


def test_save_annotated_draws_on_the_boxes_and_nowhere_else(ssd, ssd_labels, images, tmp_path):
    """`detect --save-annotated`: the outline of every reported box changed versus the photo, and the
    pixels well away from every box and its label did not (beyond JPEG re-encoding noise)."""
    import json

    from conftest import run_cli
    photo_path = images / "coral_kite_and_cold.jpg"
    r = run_cli("-m", "edgekit", "detect", str(ssd), str(photo_path), "--labels", str(ssd_labels), "--threshold",
                "0.5", "--save-annotated", str(tmp_path / "ann"))
    assert r.returncode == 0, r.stderr
    boxes = [d["box"] for d in json.loads(r.stdout)["detections"]]
    assert len(boxes) >= 4
    original = np.asarray(Image.open(photo_path).convert("RGB"), np.int16)
    annotated = np.asarray(Image.open(tmp_path / "ann" / "coral_kite_and_cold.jpg").convert("RGB"), np.int16)
    assert annotated.shape == original.shape == (900, 1352, 3)
    _assert_drawn_only_on(original, annotated, boxes)


def _assert_drawn_only_on(original, annotated, boxes):
    """The outline of every box changed; 16x16 blocks clear of every box and label did not."""
    diff = np.abs(annotated - original).max(axis=2)
    h, w = diff.shape
    # boxes, their label tags and a margin: a tag sits above the box, inside its top, below it or inside
    # its bottom, left- or right-aligned (edgekit/annotate.py), so keep a tag's height and width around
    near = np.zeros((h, w), bool)
    for x1, y1, x2, y2 in boxes:
        x1, y1, x2, y2 = (int(round(v)) for v in (x1, y1, x2, y2))
        near[max(0, y1 - 48):min(h, y2 + 48), max(0, min(x1, x2 - 180) - 12):min(w, max(x2, x1 + 180) + 12)] = True
        # the outline: a band from 1 px outside to 3 px inside each edge; most of it must have changed
        ring = np.zeros((h, w), bool)
        ring[max(0, y1 - 1):min(h, y2 + 2), max(0, x1 - 1):min(w, x2 + 2)] = True
        ring[y1 + 3:y2 - 2, x1 + 3:x2 - 2] = False
        changed = (diff[ring] > 40).mean()
        assert changed > 0.5, f"box {(x1, y1, x2, y2)}: only {changed:.0%} of its outline differs from the photo"
    # Far away, only JPEG re-encoding noise: zero-mean within a 16x16 block (the photo's own
    # re-encode at quality 60-90 stays under 6 levels), while one drawn line 1 px wide moves a block's
    # mean by ~6 levels per 100 of contrast and a 3 px line by ~19.
    n = 16
    bh, bw = h // n, w // n
    far_blocks = ~near[:bh * n, :bw * n].reshape(bh, n, bw, n).any(axis=(1, 3))
    assert far_blocks.mean() > 0.5  # most of the photo is away from the boxes: the check has teeth
    signed = (annotated - original)[:bh * n, :bw * n].reshape(bh, n, bw, n, 3).mean(axis=(1, 3))
    worst = np.abs(signed).max(axis=2)[far_blocks]
    assert worst.max() < 8, f"pixels far from every box changed: block mean shift {worst.max():.1f}"
