"""``yolov8`` and ``yolov5``: Ultralytics detection heads (before NMS).

``yolov8`` (also YOLOv9/v11 and YOLO26 with ``end2end=False``)
    One output ``[1, 4 + C, N]`` (or ``[1, N, 4 + C]``): ``cx, cy, w, h`` then C class scores
    after sigmoid, no objectness. N = one box per cell of the stride-8/16/32 grids.
``yolov5``
    One output ``[1, N, 5 + C]``: ``cx, cy, w, h, objectness``, C class scores; score = obj × cls.
    N = three anchors per cell of the stride-8/16/32 grids.

Boxes are normalised 0..1 (Ultralytics' TFLite exports) or in input pixels (other exporters),
told apart by range. Candidates need NMS.

Telling ``[1, N, 4 + C]`` (YOLOv8 rows) from ``[1, N, 5 + C]`` (YOLOv5 rows) needs more than the
shape: the label count (4 + labels columns) or the row count for the input size (N cells vs 3N
anchors). When neither tells, auto-detection refuses and asks for ``--layout`` or ``--labels``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..boxes import cxcywh_to_xyxy
from ..modelinfo import ModelInfo
from ._checks import check_boxes, check_class_count, check_scores, fail, normalise_if_pixels, tolerance
from .contract import Candidates, DecodeContext, OutputTensor
from .end2end import MAX_ROWS as _END2END_MAX_ROWS

_STRIDES = (8, 16, 32)


def _single(info: ModelInfo) -> tuple[int, int] | None:
    shapes = info.output_shapes()
    if len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][0] == 1:
        return shapes[0][1], shapes[0][2]
    return None


def grid_cells(info: ModelInfo) -> int | None:
    """Cells of the stride-8/16/32 grids for the model's input size (YOLOv8 rows; YOLOv5 has 3×)."""
    if not info.inputs or len(info.inputs[0].shape) != 4:
        return None
    _, h, w, _ = info.inputs[0].shape
    return sum(-(-h // s) * -(-w // s) for s in _STRIDES)


def matches_yolov8(info: ModelInfo):
    dims = _single(info)
    if dims is None:
        return False
    a, b = dims
    labels, cells = info.num_labels, grid_cells(info)
    if 4 < a < b and (labels is None or a == 4 + labels):
        return f"shapes (one output [1, {a}, {b}]: 4 box rows + {a - 4} class rows)"
    if a > b > 4 and ((labels is not None and b == 4 + labels) or (labels is None and a == cells)):
        why = f"{labels} classes, as many as labels" if labels is not None else f"{a} rows, one per grid cell"
        return f"shapes (one output [1, {a}, {b}]: 4 box columns + {b - 4} classes; {why})"
    return False


def matches_yolov5(info: ModelInfo):
    dims = _single(info)
    if dims is None or matches_yolov8(info):
        return False
    n, width = dims
    if width <= 5 or n <= width or (width == 6 and n <= _END2END_MAX_ROWS):
        return False
    labels, cells = info.num_labels, grid_cells(info)
    if (labels is not None and width == 5 + labels) or (labels is None and cells is not None and n == 3 * cells):
        return f"shapes (one output [1, {n}, {width}]: box, objectness + {width - 5} classes)"
    return False


def _boxes(rows: np.ndarray, ctx: DecodeContext, layout: str, tol: float) -> np.ndarray:
    # a negative w/h gives an inverted corner box, which check_boxes refuses
    boxes = cxcywh_to_xyxy(normalise_if_pixels(rows, ctx, slice(0, 2))).astype(np.float32)
    check_boxes(ctx, layout, boxes, tol)
    return boxes


def _one_output(outputs: Sequence[OutputTensor], ctx: DecodeContext, layout: str, want: str) -> OutputTensor:
    if len(outputs) != 1 or outputs[0].data.ndim != 3 or outputs[0].data.shape[0] != 1:
        raise fail(ctx, layout, f"needs one {want} output, found {[list(o.data.shape) for o in outputs]}")
    return outputs[0]


def decode_yolov8(outputs: Sequence[OutputTensor], ctx: DecodeContext) -> Candidates:
    out = _one_output(outputs, ctx, "yolov8", "[1, 4+C, N]")
    data = out.data[0]
    _, a, b = out.data.shape
    labels = ctx.num_labels
    if (labels is not None and b == 4 + labels and a != 4 + labels) or (a > b and (labels is None or a != 4 + labels)):
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
    tol = tolerance(out.scale)
    check_scores(ctx, "yolov8", scores, tol)
    boxes = _boxes(np.ascontiguousarray(picked[:4].T), ctx, "yolov8", tol)
    return Candidates(boxes, np.clip(scores, 0.0, 1.0), best[keep].astype(np.int64))


def decode_yolov5(outputs: Sequence[OutputTensor], ctx: DecodeContext) -> Candidates:
    out = _one_output(outputs, ctx, "yolov5", "[1, N, 5+C]")
    _, n, width = out.data.shape
    if n < width:
        raise fail(ctx, "yolov5", f"the output [1, {n}, {width}] has fewer rows than columns; YOLOv5 gives "
                                  "[1, N, 5+C] (a [1, 4+C, N] output is yolov8)")
    data = out.data[0]
    check_class_count(ctx, "yolov5", width - 5)
    # score = obj × cls ≤ obj: filter on objectness first, in raw units.
    keep = np.nonzero(data[:, 4] >= out.raw_threshold(ctx.score_threshold))[0]
    if keep.size == 0:
        return Candidates.empty(needs_nms=True)
    rows = OutputTensor(out.name, data[keep], out.scale, out.zero_point).dequantized()
    tol = tolerance(out.scale)
    check_scores(ctx, "yolov5", rows[:, 4:], tol)
    cls_scores = np.clip(rows[:, 5:] * rows[:, 4:5], 0.0, 1.0)
    best = cls_scores.argmax(axis=1)
    scores = cls_scores[np.arange(len(best)), best]
    ok = scores >= ctx.score_threshold
    boxes = _boxes(rows[ok, :4], ctx, "yolov5", tol)
    return Candidates(boxes, scores[ok], best[ok].astype(np.int64))
