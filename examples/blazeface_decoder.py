"""A decoder plugin for MediaPipe SSD-anchor detectors (BlazeFace and relatives).

Tensor contract (every model this decodes):
    input  [1, H, W, 3]
    output regressors [1, N, 4 + 2K]: per anchor x, y offset of the box centre, box w, h (all in
           input pixels) then K keypoints (x, y), also pixel offsets from the anchor centre
    output scores     [1, N, 1]: logit (sigmoid gives the score)
The N anchors are not in the model: MediaPipe builds them in the graph with ``SsdAnchorsCalculator``
from a set of options. This plugin rebuilds them from the published options (``ANCHOR_OPTIONS``) and
picks the set whose input size and anchor count match the model.

Decoding follows MediaPipe's ``TensorsToDetectionsCalculator`` with ``reverse_output_order`` and
x/y/w/h scales equal to the input size: centre = anchor centre + offset / size × anchor size, box
size = w, h / size × anchor size (anchor size is 1 for ``fixed_anchor_size``), score = sigmoid of the
logit clipped to ±100. Candidates below ``--threshold`` are dropped; overlapping boxes are removed by
edgekit's NMS at ``--iou`` (MediaPipe's graphs use a 0.3 IoU, weighted; pass ``--iou 0.3`` to match).

Use it from the command line (``--plugin`` imports this file, which registers "blazeface")::

    edgekit-convert face_detection_short_range.tflite -o blazeface.tflite --layout blazeface \
        --mean 127.5 --std 127.5 --resize letterbox --pad-value 0 --labels examples/blazeface_labels.txt
    edgekit detect blazeface.tflite photo.jpg --plugin examples/blazeface_decoder.py
"""

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Tuple

import numpy as np

from edgekit import Candidates, ConfigError, DecodeContext, LayoutError, register_decoder


@dataclass(frozen=True)
class SsdAnchorOptions:
    """The fields of MediaPipe's ``SsdAnchorsCalculatorOptions`` (proto defaults where it has them)."""

    # No ``from __future__ import annotations`` here: dataclasses would then look this module up in
    # sys.modules, where ``--plugin`` (which loads it from a file) does not put it.
    name: str
    input_size_height: int
    input_size_width: int
    min_scale: float
    max_scale: float
    strides: tuple[int, ...]
    num_layers: int
    aspect_ratios: tuple[float, ...] = (1.0,)
    anchor_offset_x: float = 0.5
    anchor_offset_y: float = 0.5
    fixed_anchor_size: bool = False
    interpolated_scale_aspect_ratio: float = 1.0
    reduce_boxes_in_lowest_layer: bool = False

    def __post_init__(self) -> None:
        if self.num_layers != len(self.strides) or not self.strides:
            raise ConfigError(f"{self.name}: num_layers ({self.num_layers}) must equal the number of strides "
                              f"({len(self.strides)})")

    @property
    def num_anchors(self) -> int:
        return len(generate_anchors(self))

    def describe(self) -> str:
        return f"{self.name} ({self.input_size_width}x{self.input_size_height}, {self.num_anchors} anchors)"


def _mediapipe(name, size, min_scale, strides, **extra) -> SsdAnchorOptions:
    # What every graph below sets alike: square input, max_scale 0.75, anchor_offset 0.5,
    # aspect_ratios [1.0], fixed_anchor_size true, num_layers = number of strides.
    return SsdAnchorOptions(name, size, size, min_scale, 0.75, tuple(strides), len(strides),
                            fixed_anchor_size=True, **extra)


# Values as published in MediaPipe's graph configs (google-ai-edge/mediapipe):
ANCHOR_OPTIONS: tuple[SsdAnchorOptions, ...] = (
    # modules/face_detection/face_detection_short_range_common.pbtxt
    _mediapipe("face_short_range", 128, 0.1484375, (8, 16, 16, 16)),
    # modules/face_detection/face_detection_full_range_common.pbtxt
    _mediapipe("face_full_range", 192, 0.1484375, (4,), interpolated_scale_aspect_ratio=0.0),
    # graphs/face_detection/face_detection_back_desktop_live.pbtxt (face_detection_back.tflite)
    _mediapipe("face_back", 256, 0.15625, (16, 32, 32, 32)),
    # modules/pose_detection/pose_detection_cpu.pbtxt
    _mediapipe("pose_detection", 224, 0.1484375, (8, 16, 32, 32, 32)),
    # modules/palm_detection/palm_detection_cpu.pbtxt (palm_detection_lite/full)
    _mediapipe("palm_detection", 192, 0.1484375, (8, 16, 16, 16)),
    # the 256x256 palm model of MediaPipe <= 0.8 (graphs/hand_tracking; the golden-file case of
    # calculators/tflite/ssd_anchors_calculator_test.cc)
    _mediapipe("palm_detection_256", 256, 0.1171875, (8, 16, 32, 32, 32)),
)


def _layer_scale(options: SsdAnchorOptions, layer: int) -> float:
    if len(options.strides) == 1:
        return (options.min_scale + options.max_scale) / 2
    return options.min_scale + (options.max_scale - options.min_scale) * layer / (len(options.strides) - 1)


def _cell_anchors(options: SsdAnchorOptions, layers: range) -> list[tuple[float, float]]:
    """(aspect ratio, scale) of each anchor in one grid cell of a run of same-stride layers."""
    shapes = []
    for layer in layers:
        scale = _layer_scale(options, layer)
        if layer == 0 and options.reduce_boxes_in_lowest_layer:
            shapes += [(1.0, 0.1), (2.0, scale), (0.5, scale)]
            continue
        shapes += [(ratio, scale) for ratio in options.aspect_ratios]
        if options.interpolated_scale_aspect_ratio > 0:
            last = layer == len(options.strides) - 1
            following = 1.0 if last else _layer_scale(options, layer + 1)
            shapes.append((options.interpolated_scale_aspect_ratio, math.sqrt(scale * following)))
    return shapes


@lru_cache(maxsize=None)
def generate_anchors(options: SsdAnchorOptions) -> np.ndarray:
    """(N, 4) anchors ``[x_centre, y_centre, w, h]``, normalised, in the order the model emits them.

    Consecutive layers with the same stride share one grid: per cell, the anchors of all of them.
    """
    parts, start = [], 0
    while start < len(options.strides):
        end = start
        while end < len(options.strides) and options.strides[end] == options.strides[start]:
            end += 1
        shapes = _cell_anchors(options, range(start, end))
        rows = math.ceil(options.input_size_height / options.strides[start])
        cols = math.ceil(options.input_size_width / options.strides[start])
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        centres = np.stack([(xs.ravel() + options.anchor_offset_x) / cols,
                            (ys.ravel() + options.anchor_offset_y) / rows], axis=1)
        if options.fixed_anchor_size:
            sizes = np.ones((len(shapes), 2))
        else:
            sizes = np.array([(s * math.sqrt(r), s / math.sqrt(r)) for r, s in shapes])
        parts.append(np.concatenate([np.repeat(centres, len(shapes), axis=0),
                                     np.tile(sizes, (rows * cols, 1))], axis=1))
        start = end
    anchors = np.concatenate(parts).astype(np.float32)
    anchors.flags.writeable = False  # cached and shared between calls
    return anchors


def find_options(num_anchors: int, input_width: int, input_height: int) -> SsdAnchorOptions:
    """The known option set for this anchor count and input size; raises LayoutError otherwise."""
    for options in ANCHOR_OPTIONS:
        if (options.input_size_width, options.input_size_height) == (input_width, input_height) \
                and options.num_anchors == num_anchors:
            return options
    known = "; ".join(o.describe() for o in ANCHOR_OPTIONS)
    raise LayoutError(
        f"blazeface: no MediaPipe SSD anchor options for {num_anchors} anchors at input {input_width}x{input_height}; "
        f"known: {known}. Add the model's SsdAnchorsCalculator options to ANCHOR_OPTIONS in {__file__}"
    )


@dataclass(frozen=True)
class AnchorDetections:
    """Decoded anchors above the threshold: boxes ``[x1, y1, x2, y2]`` (M, 4), scores (M,),
    keypoints (M, K, 2) as ``(x, y)``; all normalised to the model input."""

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray


def decode_anchors(regressors: np.ndarray, logits: np.ndarray, anchors: np.ndarray, input_width: int,
                   input_height: int, score_threshold: float) -> AnchorDetections:
    """Regressors (N, 4 + 2K) and logits (N,) → the detections scoring at least ``score_threshold``."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
    keep = np.nonzero(scores >= score_threshold)[0]
    reg, anc = regressors[keep].astype(np.float32), anchors[keep]
    scale = np.array([input_width, input_height], np.float32)
    centre = anc[:, :2] + reg[:, 0:2] / scale * anc[:, 2:4]
    half = reg[:, 2:4] / scale * anc[:, 2:4] / 2
    num_keypoints = (regressors.shape[1] - 4) // 2
    offsets = reg[:, 4:4 + 2 * num_keypoints].reshape(len(keep), num_keypoints, 2)
    points = offsets / scale * anc[:, None, 2:4] + anc[:, None, :2]
    return AnchorDetections(np.concatenate([centre - half, centre + half], axis=1),
                            scores[keep].astype(np.float32), points)


def _split_outputs(shapes) -> Optional[Tuple[int, int]]:
    """Indices of (regressors [1, N, 4+2K], scores [1, N, 1]) among two output shapes, else None."""
    if len(shapes) != 2 or any(len(s) != 3 or s[0] != 1 for s in shapes):
        return None
    for reg, score in ((0, 1), (1, 0)):
        width = shapes[reg][2]
        if shapes[score][2] == 1 and shapes[reg][1] == shapes[score][1] and width >= 4 and width % 2 == 0:
            return reg, score
    return None


def decode_blazeface(outputs, ctx: DecodeContext) -> Candidates:
    """The registered decoder: boxes and scores of one class (keypoints are not passed on: Candidates
    has no field for them; use :func:`decode_anchors` to get them). Raises LayoutError."""
    roles = _split_outputs([tuple(o.data.shape) for o in outputs])
    if roles is None:
        raise LayoutError("blazeface needs two outputs, regressors [1, N, 4+2K] and scores [1, N, 1]; "
                          f"found {[list(o.data.shape) for o in outputs]}")
    regressors = outputs[roles[0]].dequantized()[0]
    logits = outputs[roles[1]].dequantized()[0, :, 0]
    options = find_options(len(logits), ctx.input_width, ctx.input_height)
    found = decode_anchors(regressors, logits, generate_anchors(options), ctx.input_width, ctx.input_height,
                           ctx.score_threshold)
    return Candidates(found.boxes, found.scores, np.zeros(len(found.scores), np.int64), needs_nms=True)


def matches(info):
    """For ``--layout auto``: a short reason when the model has two outputs [1, N, 4+2K] and
    [1, N, 1] with N and the input size of a known option set; otherwise False."""
    try:
        shapes = [tuple(int(v) for v in o.shape) for o in info.outputs]
        _, height, width, _ = (int(v) for v in info.inputs[0].shape)
    except (AttributeError, IndexError, TypeError, ValueError):
        return False
    roles = _split_outputs(shapes)
    if roles is None:
        return False
    try:
        options = find_options(shapes[roles[1]][1], width, height)
    except LayoutError:
        return False
    return (f"MediaPipe SSD anchors {options.describe()}: outputs {list(shapes[roles[0]])} + "
            f"{list(shapes[roles[1]])}")


register_decoder("blazeface", decode_blazeface, matches=matches)
