"""The preview's picture of one result: zones, motion regions, then boxes and tags (annotate's)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from ..errors import ConfigError

_ZONE, _ZONE_BUSY = (255, 215, 0), (255, 80, 0)


def draw_frame(image: Any, fr: Any, zones: Sequence[Any]) -> Any:
    """A copy of ``image`` (``fr``'s full-size picture) with ``zones`` (thicker, with their count,
    while occupied), ``fr.motion.regions`` when there are any, and each detection's box and
    ``label #track score`` tag (:func:`edgekit.annotate.draw_detections`). No tag covers a zone's
    name: the names are placed first, and drawn last, on a dark ground, over any box line."""
    from PIL import ImageDraw

    from ..annotate import draw_detections, draw_label, place_label, tag_font

    canvas = image.convert("RGB")  # the one copy: other sinks share the original
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(min(canvas.size) / 300))
    font = tag_font(canvas.size)
    occupancy = getattr(fr.zones, "occupancy", None) or {}
    names = []
    for zone in zones:
        try:
            points = [tuple(p) for p in zone.resolve(*canvas.size).points]
        except ConfigError:  # outside this frame: the zone stage reports it
            continue
        inside = sum(occupancy.get(zone.name, {}).values())
        color = _ZONE_BUSY if inside else _ZONE
        draw.line([*points, points[0]], fill=color, width=width * (2 if inside else 1), joint="curve")
        x, y = min(points, key=lambda p: (p[1], p[0]))
        tag = place_label(canvas.size, f"{zone.name}: {inside}" if inside else zone.name, (x + width, y + width), font)
        if tag is not None:
            names.append((tag, color))
    motion = getattr(fr, "motion", None)  # set by a motion stage, when the run has one
    for region in getattr(motion, "regions", None) or ():
        draw.rectangle(tuple(getattr(region, "box", region))[:4], outline=(255, 255, 255), width=1)
    detections = [replace(d, label=f"{d.label} #{d.track_id}") if d.track_id is not None else d
                  for d in fr.result.detections]
    draw_detections(canvas, detections, reserved=[tag.rect for tag, _ in names], copy=False)
    for tag, color in names:
        draw_label(draw, tag, font, color)
    return canvas
