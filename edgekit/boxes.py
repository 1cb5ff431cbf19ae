"""Box arithmetic in numpy: IoU and class-aware non-maximum suppression.

Boxes are ``float`` arrays of shape (N, 4) as ``[x1, y1, x2, y2]``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["iou", "nms", "cxcywh_to_xyxy"]


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """Centre/size boxes (N, 4) → corner boxes (N, 4)."""
    half = boxes[:, 2:4] / 2
    return np.concatenate([boxes[:, 0:2] - half, boxes[:, 0:2] + half], axis=1)


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box (4,) with each of ``boxes`` (N, 4)."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float,
        class_ids: np.ndarray | None = None, max_output: int | None = None) -> np.ndarray:
    """Greedy NMS; returns indices of kept boxes, best score first.

    With ``class_ids``, boxes of different classes never suppress each other (each class is
    shifted to its own region of the plane, so one vectorised pass handles all classes).
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    work = boxes.astype(np.float64, copy=True)
    if class_ids is not None:
        span = float(np.max(work) - np.min(work)) + 1.0
        work += (class_ids.astype(np.float64) * span * 2.0)[:, None]
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    limit = len(order) if max_output is None else max_output
    while order.size and len(keep) < limit:
        best = order[0]
        keep.append(int(best))
        if order.size == 1:
            break
        rest = order[1:]
        order = rest[iou(work[best], work[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)
