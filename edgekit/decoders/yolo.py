"""``yolov8`` and ``yolov5``: Ultralytics detection heads (before NMS).

``yolov8`` (also YOLOv9/v11 and YOLO26 with ``end2end=False``)
    One output ``[1, 4 + C, N]`` (or ``[1, N, 4 + C]``): ``cx, cy, w, h`` then C class scores
    after sigmoid, no objectness.
``yolov5``
    One output ``[1, N, 5 + C]``: ``cx, cy, w, h, objectness``, C class scores; score = obj × cls.

Boxes are normalised 0..1 (Ultralytics' TFLite exports) or in input pixels (other exporters),
told apart by range. Candidates need NMS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..boxes import cxcywh_to_xyxy
from ..errors import LayoutError
from ._checks import check_boxes, check_class_count, check_scores

if TYPE_CHECKING:
    from ..modelinfo import ModelInfo
    from . import Candidates, DecodeContext, OutputTensor

_END2END_MAX_ROWS = 1000  # [1, N, 6] with N above this is a one-class YOLOv5, not an end-to-end head


def _single(info: "ModelInfo") -> tuple[int, int] | None:
    shapes = info.output_shapes()
    if len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][0] == 1:
        return shapes[0][1], shapes[0][2]
    return None


def matches_yolov8(info: "ModelInfo"):
    dims = _single(info)
    if dims is None:
        return False
    a, b = dims
    if 4 < a < b:
        return f"shapes (one output [1, {a}, {b}]: 4 box rows + {a - 4} class rows)"
    if info.num_labels is not None and b == 4 + info.num_labels and a > b:
        return f"shapes (one output [1, {a}, {b}]: 4 box columns + {info.num_labels} classes, as many as labels)"
    return False


def matches_yolov5(info: "ModelInfo"):
    dims = _single(info)
    if dims is None or matches_yolov8(info):
        return False
    n, width = dims
    if width > 5 and n > width and not (width == 6 and n <= _END2END_MAX_ROWS):
        return f"shapes (one output [1, {n}, {width}]: box, objectness + {width - 5} classes)"
    return False


def _to_normalised(boxes: np.ndarray, ctx: "DecodeContext") -> np.ndarray:
    # Exports differ: Ultralytics TFLite gives 0..1, others give input pixels.
    if boxes.size and float(np.max(boxes[:, :2])) > 1.5:
        boxes = boxes / np.array([ctx.input_width, ctx.input_height] * 2, np.float32)
    return cxcywh_to_xyxy(boxes)


def _boxes(rows: np.ndarray, ctx: "DecodeContext", layout: str) -> np.ndarray:
    if rows.size and (float(rows[:, 2:4].min()) < -1e-3):
        from ._checks import fail

        raise fail(ctx, layout, "box widths/heights are negative")
    boxes = _to_normalised(rows, ctx).astype(np.float32)
    check_boxes(ctx, layout, boxes)
    return boxes


def decode_yolov8(outputs: Sequence["OutputTensor"], ctx: "DecodeContext") -> "Candidates":
    from . import Candidates, OutputTensor

    if len(outputs) != 1 or outputs[0].data.ndim != 3:
        raise LayoutError(f"yolov8 layout needs one [1, 4+C, N] output, found {[list(o.data.shape) for o in outputs]}")
    out = outputs[0]
    data = out.data[0]
    _, a, b = out.data.shape
    if a > b or (ctx.num_labels is not None and b == 4 + ctx.num_labels and a != 4 + ctx.num_labels):
        data = data.T  # [N, 4+C] export
    check_class_count(ctx, "yolov8", data.shape[0] - 4)
    cls = data[4:]
    # Threshold in raw (possibly int8) units: one max over classes, no full dequantization.
    best = cls.argmax(axis=0)
    best_raw = np.take_along_axis(cls, best[None], axis=0)[0]
    keep = np.nonzero(best_raw >= out.raw_threshold(ctx.score_threshold))[0]
    if keep.size == 0:
        return Candidates.empty(needs_nms=True)
    picked = OutputTensor(out.name, data[:, keep], out.scale, out.zero_point).dequantized()
    scores = picked[4:][best[keep], np.arange(keep.size)]
    check_scores(ctx, "yolov8", scores)
    boxes = _boxes(np.ascontiguousarray(picked[:4].T), ctx, "yolov8")
    return Candidates(boxes, scores, best[keep].astype(np.int64))


def decode_yolov5(outputs: Sequence["OutputTensor"], ctx: "DecodeContext") -> "Candidates":
    from . import Candidates, OutputTensor

    if len(outputs) != 1 or outputs[0].data.ndim != 3:
        raise LayoutError(f"yolov5 layout needs one [1, N, 5+C] output, found {[list(o.data.shape) for o in outputs]}")
    out = outputs[0]
    data = out.data[0]
    check_class_count(ctx, "yolov5", data.shape[1] - 5)
    # score = obj × cls ≤ obj: filter on objectness first, in raw units.
    keep = np.nonzero(data[:, 4] >= out.raw_threshold(ctx.score_threshold))[0]
    if keep.size == 0:
        return Candidates.empty(needs_nms=True)
    rows = OutputTensor(out.name, data[keep], out.scale, out.zero_point).dequantized()
    check_scores(ctx, "yolov5", rows[:, 4:])
    cls_scores = rows[:, 5:] * rows[:, 4:5]
    best = cls_scores.argmax(axis=1)
    scores = cls_scores[np.arange(len(best)), best]
    ok = scores >= ctx.score_threshold
    boxes = _boxes(rows[ok, :4], ctx, "yolov5")
    return Candidates(boxes, scores[ok], best[ok].astype(np.int64))
