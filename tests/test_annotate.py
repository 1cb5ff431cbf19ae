"""Annotated images: every tag legible (no two overlap, none leaves the image) on real crowded photos,
and one output file per input (no silent overwrite), through the library and the CLI."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from edgekit.annotate import AnnotationWriter, draw_detections, save_annotated, tag_layout
from edgekit.detector import Detector, DetectorOptions
from edgekit.results import Detection


@pytest.fixture(scope="module")
def crowd(shared, images):
    """YOLOv8n full-int8 on the beach photo at a low threshold: people and kites packed together."""
    model = shared / "models" / "yolov8n" / "yolov8n_full_integer_quant.tflite"
    labels = shared / "models" / "yolov8n" / "labels_coco80.txt"
    det = Detector(model, DetectorOptions(score_threshold=0.05, max_results=100), labels_path=labels)
    photo = Image.open(images / "coral_kite_and_cold.jpg").convert("RGB")
    detections = det.detect(images / "coral_kite_and_cold.jpg").detections
    assert len(detections) >= 12
    return photo, detections


def _naive_collisions(size, detections) -> int:
    """Pairs of tags that would overlap if each sat right above its box's left corner (the old drawing)."""
    from edgekit.annotate import _line_height, _text_width, tag_font

    font = tag_font(size)
    rects = []
    for d in detections:
        x, y = round(d.box[0]), round(d.box[1])
        rects.append((x, y - _line_height(font), x + _text_width(font, f"{d.label} {d.score:.2f}") + 4, y))
    return sum(_overlap(a, b) for i, a in enumerate(rects) for b in rects[i + 1:])


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _assert_legible(tags, size):
    width, height = size
    for i, tag in enumerate(tags):
        left, top, right, bottom = tag.rect
        assert 0 <= left < right <= width and 0 <= top < bottom <= height, tag
        for other in tags[i + 1:]:
            assert not _overlap(tag.rect, other.rect), (tag.text, tag.rect, other.text, other.rect)


def test_crowded_photo_every_tag_placed_none_overlapping(crowd):
    photo, detections = crowd
    assert _naive_collisions(photo.size, detections) >= 3  # crowded: placing every tag above its box would hide some
    tags = tag_layout(photo.size, detections)
    assert len(tags) == len(detections)  # nobody lost their tag
    assert [t.detection.score for t in tags] == sorted((d.score for d in detections), reverse=True)
    _assert_legible(tags, photo.size)
    assert all(t.text == f"{t.detection.label} {t.detection.score:.2f}" for t in tags)
    # most tags sit right above their box (the first choice); the crowd pushes only some elsewhere
    above = sum(t.rect[3] == round(t.detection.box[1]) for t in tags)
    assert above >= len(tags) // 2


def test_drawn_tags_are_whole_on_the_image(crowd):
    """What is drawn matches the layout: each tag's four corners carry its own colour (no later tag or
    box line painted over it), and the text inside is dark."""
    photo, detections = crowd
    out = np.asarray(draw_detections(photo, detections))
    from edgekit.annotate import _color

    for tag in tag_layout(photo.size, detections):
        left, top, right, bottom = tag.rect
        color = _color(tag.detection)
        for x, y in ((left, top), (right - 1, top), (left, bottom - 1), (right - 1, bottom - 1)):
            assert tuple(out[y, x]) == color, (tag.text, (x, y))
        inner = out[top + 2:bottom - 2, left + 2:right - 2]
        assert (inner.sum(axis=2) < 150).mean() > 0.05  # black letters


def test_the_same_box_many_times_and_boxes_at_the_edges(images):
    """Thirty detections of one box (a duplicate-heavy model), and boxes touching or past every edge."""
    photo = Image.open(images / "table.jpg").convert("RGB")
    w, h = photo.size
    same = [Detection("cup", 41, 0.9 - i / 100, (100.0, 100.0, 160.0, 150.0)) for i in range(30)]
    edges = [Detection("person", 0, 0.8, (-20.0, -10.0, 40.0, 30.0)),
             Detection("person", 0, 0.7, (w - 30.0, h - 20.0, w + 15.0, h + 5.0)),
             Detection("dining table", 60, 0.6, (0.0, 0.0, float(w), float(h))),
             Detection("kite", 38, 0.5, (w - 5.0, 0.0, float(w), 5.0))]
    tags = tag_layout(photo.size, same + edges)
    assert len(tags) == 34
    _assert_legible(tags, photo.size)


def test_tiny_image_shortens_or_omits_tags_but_never_draws_outside():
    image = Image.new("RGB", (48, 40), (255, 255, 255))
    dets = [Detection("motorcycle", 3, 0.9, (2.0, 2.0, 30.0, 30.0)), Detection("person", 0, 0.8, (10.0, 5.0, 40.0, 38.0)),
            Detection("person", 0, 0.7, (0.0, 0.0, 48.0, 40.0))]
    tags = tag_layout(image.size, dets)
    _assert_legible(tags, image.size)
    assert tags and tags[0].text.endswith("…")
    flat = Image.new("RGB", (300, 8))
    assert tag_layout(flat.size, dets) == []  # not even one line of text fits: boxes only
    draw_detections(flat, dets)


def test_writer_names_are_unique_and_deterministic(images, tmp_path):
    photo = Image.open(images / "table.jpg")
    writer = AnnotationWriter(tmp_path / "out")
    sources = ["a/x.jpg", "b/x.jpg", "x.png", "X.JPG", "x-1.jpg", "rtsp://cam.local/stream", "http://cam.local/"]
    paths = [writer.save(photo, [], s) for s in sources]
    names = [p.rsplit("/", 1)[1] for p in paths]
    assert names == ["x.jpg", "x-1.jpg", "x-2.jpg", "X-3.jpg", "x-1-1.jpg", "stream.jpg", "cam.jpg"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)
    with Image.open(paths[0]) as saved:
        assert saved.format == "JPEG" and saved.size == photo.size
    # a new run into the same folder starts again from x.jpg: re-running a batch overwrites, it does not pile up
    assert AnnotationWriter(tmp_path / "out").save(photo, [], "c/x.jpg").endswith("/x.jpg")


def test_save_annotated_keeps_names_unique_per_folder(images, tmp_path):
    photo = Image.open(images / "table.jpg")
    first = save_annotated(photo, [], str(tmp_path / "ann"), "one/x.jpg")
    second = save_annotated(photo, [], str(tmp_path / "ann"), "two/x.png")
    other = save_annotated(photo, [], str(tmp_path / "ann2"), "x.jpg")
    assert [p.rsplit("/", 1)[1] for p in (first, second, other)] == ["x.jpg", "x-1.jpg", "x.jpg"]


def test_cli_same_stem_in_several_folders_and_formats(ssd, ssd_labels, images, tmp_path):
    """`detect a/x.jpg b/x.jpg c/x.png --save-annotated out`: three files, in input order."""
    inputs = [tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg", tmp_path / "c" / "x.png"]
    for folder in ("a", "b", "c"):
        (tmp_path / folder).mkdir()
    shutil.copy(images / "table.jpg", inputs[0])
    shutil.copy(images / "coral_kite_and_cold.jpg", inputs[1])
    Image.open(images / "coral_cat.bmp").convert("RGB").save(inputs[2])
    out = tmp_path / "out"
    r = run_cli("-m", "edgekit", "detect", str(ssd), *map(str, inputs), "--labels", str(ssd_labels), "--no-plan",
                "--save-annotated", str(out))
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["x-1.jpg", "x-2.jpg", "x.jpg"]
    sizes = [Image.open(out / n).size for n in ("x.jpg", "x-1.jpg", "x-2.jpg")]
    assert sizes == [Image.open(p).size for p in inputs]
