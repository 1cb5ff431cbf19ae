"""Candidates → the detections a user sees: score threshold, label allow/deny, NMS, max results.

One pure function used by :class:`~edgekit.detector.Detector` and by the converter's evaluation,
so the numbers a conversion reports are the ones ``edgekit detect`` gets. It also owns the
defaults (threshold, IoU, max results) that the CLI and the options dataclass show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet, Sequence

import numpy as np

from .boxes import nms
from .decoders.contract import Candidates

__all__ = ["SCORE_THRESHOLD", "IOU_THRESHOLD", "MAX_RESULTS", "EVAL_SCORE_THRESHOLD", "EVAL_MAX_RESULTS",
           "Selection", "label_of", "select"]

SCORE_THRESHOLD = 0.25
IOU_THRESHOLD = 0.45
MAX_RESULTS = 100
# mAP evaluation (edgekit.coco_eval) keeps nearly every candidate: AP integrates precision over all
# recall levels, so a user's threshold would cut the curve short. Same values as Ultralytics' val;
# pycocotools then scores the best 100 per image and class. NMS IoU stays the runtime's.
EVAL_SCORE_THRESHOLD = 0.001
EVAL_MAX_RESULTS = 300


@dataclass(frozen=True)
class Selection:
    """Kept detections, best first: normalised boxes (N, 4), scores, class ids and labels."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    labels: tuple[str, ...]


def label_of(class_id: int, labels: Sequence[str] | None) -> str:
    """The label of ``class_id``; ``class_<id>`` when there is no label for it."""
    if labels is not None and 0 <= class_id < len(labels):
        return labels[class_id]
    return f"class_{class_id}"


def select(cand: Candidates, *, labels: Sequence[str] | None = None, score_threshold: float = SCORE_THRESHOLD,
           iou_threshold: float = IOU_THRESHOLD, max_results: int | None = MAX_RESULTS,
           allow: AbstractSet[str] | None = None, deny: AbstractSet[str] | None = None) -> Selection:
    """Filter ``cand`` by score and label, run class-aware NMS when it needs it, cap the count."""
    names = [label_of(int(c), labels) for c in cand.class_ids]
    mask = np.asarray(cand.scores >= score_threshold, dtype=bool).reshape(-1)
    if allow is not None or deny is not None:
        mask &= np.asarray([(allow is None or n in allow) and (deny is None or n not in deny) for n in names],
                           dtype=bool).reshape(-1)
    idx = np.nonzero(mask)[0]
    boxes, scores, classes = cand.boxes[idx], cand.scores[idx], cand.class_ids[idx]
    if cand.needs_nms:
        order = nms(boxes, scores, iou_threshold, classes, max_results)
    else:
        order = np.argsort(-scores, kind="stable")[:max_results]
    return Selection(boxes[order].reshape(-1, 4), scores[order], classes[order],
                     tuple(names[int(idx[i])] for i in order))
