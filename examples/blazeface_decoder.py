"""A custom decoder for MediaPipe BlazeFace (short range), through edgekit's extension point.

Tensor contract of ``face_detection_short_range.tflite``:
    input  [1, 128, 128, 3] float32, RGB scaled to [-1, 1]  → mean 127.5, std 127.5
    output regressors     [1, 896, 16]: per anchor dx, dy, w, h (input pixels) + 6 keypoints
    output classificators [1, 896, 1]: face logit
Anchors: SSD-style, strides 8 and 16 (16x16 cells × 2 anchors, 8x8 cells × 6 anchors), unit size.

Use it from the command line (``--plugin`` imports this file, which registers "blazeface")::

    edgekit-convert face_detection_short_range.tflite -o blazeface.tflite --layout blazeface \
        --mean 127.5 --std 127.5 --resize letterbox --pad-value 0 --labels examples/blazeface_labels.txt
    edgekit detect blazeface.tflite photo.jpg --plugin examples/blazeface_decoder.py
"""

from __future__ import annotations

import numpy as np

from edgekit import Candidates, DecodeContext, LayoutError, register_decoder


def blazeface_anchors(size: int = 128) -> np.ndarray:
    """(896, 2) anchor centres, normalised, in the order the model emits them."""
    centres = []
    for stride, per_cell in ((8, 2), (16, 6)):
        cells = size // stride
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grid = np.stack([(xs.ravel() + 0.5) / cells, (ys.ravel() + 0.5) / cells], axis=1)
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


_ANCHORS = blazeface_anchors()


@register_decoder("blazeface")
def decode_blazeface(outputs, ctx: DecodeContext) -> Candidates:
    by_width = {o.data.shape[-1]: o for o in outputs}
    if set(by_width) != {16, 1}:
        raise LayoutError(f"blazeface needs outputs [1,896,16] and [1,896,1], found {[o.data.shape for o in outputs]}")
    regressors = by_width[16].dequantized()[0]
    logits = by_width[1].dequantized()[0, :, 0]
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))
    keep = scores >= ctx.score_threshold
    reg = regressors[keep]
    centre = _ANCHORS[keep] + reg[:, 0:2] / np.array([ctx.input_width, ctx.input_height], np.float32)
    half = reg[:, 2:4] / np.array([ctx.input_width, ctx.input_height], np.float32) / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    return Candidates(boxes, scores[keep].astype(np.float32), np.zeros(int(keep.sum()), np.int64), needs_nms=True)
