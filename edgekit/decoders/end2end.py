"""``end2end``: NMS-free detection rows, as YOLOv10 and YOLO26 (and ``nms=True``) exports give.

Tensor contract: one output ``[1, N, 6]``, each row ``x1, y1, x2, y2, score, class`` (corner
boxes; normalised 0..1 as Ultralytics' TFLite exports write them, or in input pixels — told apart
by range), rows sorted by score with zero padding at the end; class is a float class id. The
model has already removed duplicates, so edgekit runs no NMS on these. Ultralytics metadata with
``end2end: true`` or ``nms: true`` selects this layout; otherwise a ``[1, N, 6]`` output with
N ≤ 1000 does (a one-class YOLOv5 ``[1, 25200, 6]`` does not).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..modelinfo import ModelInfo
from ._checks import check_boxes, check_class_ids, check_scores, fail, normalise_if_pixels, tolerance
from .contract import Candidates, DecodeContext, OutputTensor

MAX_ROWS = 1000  # [1, N, 6] with N above this is a one-class YOLOv5, not an end-to-end head


def matches_end2end(info: ModelInfo):
    shapes = info.output_shapes()
    if len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][0] == 1 and shapes[0][2] == 6 \
            and shapes[0][1] <= MAX_ROWS:
        return f"shapes (one output [1, {shapes[0][1]}, 6]: x1, y1, x2, y2, score, class rows)"
    return False


def decode_end2end(outputs: Sequence[OutputTensor], ctx: DecodeContext) -> Candidates:
    if len(outputs) != 1 or outputs[0].data.ndim != 3 or outputs[0].data.shape[-1] != 6:
        raise fail(ctx, "end2end", f"needs one [1, N, 6] output, found {[list(o.data.shape) for o in outputs]}")
    tol = tolerance(outputs[0].scale)
    rows = outputs[0].dequantized()[0]
    scores = rows[:, 4]
    check_scores(ctx, "end2end", scores, tol)
    rows = rows[scores >= ctx.score_threshold]
    class_ids = check_class_ids(ctx, "end2end", rows[:, 5], tol)
    boxes = normalise_if_pixels(rows[:, :4].astype(np.float32), ctx)
    check_boxes(ctx, "end2end", boxes, tol)
    return Candidates(np.clip(boxes, 0.0, 1.0), np.clip(rows[:, 4], 0.0, 1.0).astype(np.float32), class_ids,
                      needs_nms=False)
