"""Sanity checks every built-in decoder runs on what it is about to return, and conventions the
decoders share (pixel vs normalised boxes).

A model decoded with the wrong layout (or the wrong label file) yields numbers that cannot be
detections: scores above 1, fractional class ids, class ids past the label list, NaN boxes. These
checks turn that into one LayoutError naming the model, the layout and what was found. Tolerances
grow with the output's quantization step (``tol``): an int8 score tensor may dequantize a little
above 1, an int8 class column a little off an integer.
"""

from __future__ import annotations

import numpy as np

from ..errors import LayoutError
from .contract import DecodeContext

EPS = 1e-3
PIXEL_COORDINATES_ABOVE = 1.5  # boxes whose coordinates exceed this are in input pixels, not 0..1


def fail(ctx: DecodeContext, layout: str, problem: str) -> LayoutError:
    """A LayoutError naming the model and layout, with what to check."""
    how = f"layout {layout!r}" + (f" (chosen by: {ctx.layout})" if ctx.layout else "")
    return LayoutError(
        f"{ctx.model}: decoding with {how}: {problem}. The outputs do not fit this layout: check --layout "
        "(or drop it to let edgekit pick) and --labels"
    )


def tolerance(scale: float) -> float:
    """How far from an exact value a quantized tensor with this step may land."""
    return max(EPS, abs(scale) * 0.5 + EPS)


def check_class_count(ctx: DecodeContext, layout: str, classes: int) -> None:
    if ctx.num_labels is not None and classes != ctx.num_labels:
        raise fail(ctx, layout, f"the output has {classes} class scores per box but there are {ctx.num_labels} labels")
    if classes < 1:
        raise fail(ctx, layout, f"the output leaves {classes} class columns")


def check_scores(ctx: DecodeContext, layout: str, scores: np.ndarray, tol: float = EPS) -> None:
    if scores.size == 0:
        return
    if not np.all(np.isfinite(scores)):
        raise fail(ctx, layout, "scores are not finite (NaN/inf)")
    low, high = float(scores.min()), float(scores.max())
    if low < -tol or high > 1 + tol:
        raise fail(ctx, layout, f"scores range {low:.4f}..{high:.4f}, expected probabilities in [0, 1] "
                                "(logits without a sigmoid, or not a score column)")


def check_class_ids(ctx: DecodeContext, layout: str, class_ids: np.ndarray, tol: float = EPS) -> np.ndarray:
    """Float class ids → int64, refusing fractional, negative or out-of-label-range ids."""
    if class_ids.size == 0:
        return np.zeros(0, np.int64)
    if not np.all(np.isfinite(class_ids)):
        raise fail(ctx, layout, "class ids are not finite")
    rounded = np.rint(class_ids)
    off = np.abs(class_ids - rounded)
    if float(off.max()) > tol:
        raise fail(ctx, layout, f"class ids are not integers (e.g. {float(class_ids[np.argmax(off)]):.4g})")
    ids = rounded.astype(np.int64)
    if ids.min() < 0:
        raise fail(ctx, layout, f"negative class id {int(ids.min())}")
    if ctx.num_labels is not None and ids.max() >= ctx.num_labels:
        raise fail(ctx, layout, f"class id {int(ids.max())} but only {ctx.num_labels} labels")
    return ids


def check_boxes(ctx: DecodeContext, layout: str, boxes: np.ndarray, tol: float = EPS) -> None:
    """Boxes (N, 4) as x1, y1, x2, y2 normalised: finite, not inverted, not far outside the input."""
    if boxes.size == 0:
        return
    if not np.all(np.isfinite(boxes)):
        raise fail(ctx, layout, "boxes are not finite (NaN/inf)")
    if np.any(boxes[:, 2] < boxes[:, 0] - tol) or np.any(boxes[:, 3] < boxes[:, 1] - tol):
        raise fail(ctx, layout, "boxes have negative width or height")
    if float(np.max(np.abs(boxes))) > 4.0:
        raise fail(ctx, layout, f"box coordinates reach {float(np.max(np.abs(boxes))):.3g} times the input size")


def normalise_if_pixels(boxes: np.ndarray, ctx: DecodeContext, columns: slice = slice(0, 4)) -> np.ndarray:
    """Boxes (N, 4) in input pixels → 0..1 (x by width, y by height); normalised boxes pass as they are.

    Exports differ: Ultralytics' TFLite gives 0..1, other converters give input pixels. ``columns``
    picks the coordinates that tell them apart (centres for cx, cy, w, h boxes).
    """
    if boxes.size and float(np.max(np.abs(boxes[:, columns]))) > PIXEL_COORDINATES_ABOVE:
        return boxes / np.array([ctx.input_width, ctx.input_height] * 2, np.float32)
    return boxes
