"""The preview's picture (edgekit.preview._draw): a zone's name is never covered by a detection's
tag, and the frame is copied once (the original, shared with other sinks, is left alone)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from PIL import Image

from edgekit.annotate import _PALETTE, place_label, tag_font, tag_layout
from edgekit.preview._draw import draw_frame
from edgekit.results import Detection
from edgekit.zones import parse_zone


def test_a_detection_tag_never_covers_a_zone_name():
    size = (1280, 720)
    zone = parse_zone("driveway=200,300,900,300,900,700,200,700")
    font = tag_font(size)
    width = max(2, round(min(size) / 300))
    name = place_label(size, "driveway", (200 + width, 300 + width), font)
    assert name is not None
    # a car whose box starts just under the zone's name: "above the box" is where the name is,
    # and so is "inside its top"
    car = Detection("car", 2, 0.9, (200.0, 300.0 + 2 * (name.rect[3] - name.rect[1]), 600.0, 600.0))
    person = Detection("person", 0, 0.8, (205.0, 305.0, 300.0, 650.0))  # its inside-top spot is the name's
    free = tag_layout(size, [car, person], font)
    assert any(_overlap(t.rect, name.rect) for t in free)  # without reserving it, a tag lands on it
    tags = tag_layout(size, [car, person], font, reserved=[name.rect])
    assert len(tags) == 2 and not any(_overlap(t.rect, name.rect) for t in tags)

    grey = Image.new("RGB", size, (128, 128, 128))
    before = np.asarray(grey).copy()
    fr = SimpleNamespace(result=SimpleNamespace(detections=[car, person]), zones=None, motion=None)
    out = np.asarray(draw_frame(grey, fr, [zone]))
    assert np.array_equal(np.asarray(grey), before)  # drawn on a copy
    left, top, right, bottom = name.rect
    patch = out[top:bottom, left:right].reshape(-1, 3)
    tag_colours = {_PALETTE[d.class_id % len(_PALETTE)] for d in (car, person)}
    assert not any(tuple(px) in tag_colours for px in patch.tolist())  # no tag fill over the name
    assert (patch == 0).all(axis=1).mean() > 0.5  # its dark ground, with the zone's colour on it
    assert any(tuple(px) == (255, 215, 0) for px in patch.tolist())


def test_a_zone_name_at_the_frame_edge_stays_inside_it():
    size = (640, 360)
    font = tag_font(size)
    tag = place_label(size, "a-very-long-zone-name-at-the-corner", (630, 355), font)
    assert tag is not None
    left, top, right, bottom = tag.rect
    assert 0 <= left and right <= size[0] and 0 <= top and bottom <= size[1]


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
