"""Output decoders: raw output tensors → candidate boxes in model-input space.

Built-in layouts (the tensor contract of each):

``ssd``
    Four outputs of ``TFLite_Detection_PostProcess``: boxes ``[1, N, 4]`` as normalised
    ``(ymin, xmin, ymax, xmax)``, classes ``[1, N]``, scores ``[1, N]``, count ``[1]``. Outputs
    are matched by signature/tensor name (``detection_boxes``…, or the ``:1``/``:2``/``:3``
    suffixes of the post-process op), by shape only as a last resort. Already NMS-ed.
``yolov8``
    One output ``[1, 4 + C, N]`` (or ``[1, N, 4 + C]``): ``cx, cy, w, h`` then C class scores
    after sigmoid, no objectness. Boxes normalised 0..1 or in input pixels (told apart by range).
``yolov5``
    One output ``[1, N, 5 + C]``: ``cx, cy, w, h, objectness``, C class scores; score = obj × cls.

Extension point: register a decoder for any other head with :func:`register_decoder`. A
decoder is a callable ``decoder(outputs, context) -> Candidates``; ``outputs`` are
:class:`OutputTensor` objects (raw data + quantization) in the interpreter's output order,
``context`` a :class:`DecodeContext`. Return boxes normalised to the model input as
``[x1, y1, x2, y2]``; set ``needs_nms`` if edgekit should run class-aware NMS. See
``examples/blazeface_decoder.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .boxes import cxcywh_to_xyxy
from .errors import ConfigError, LayoutError

__all__ = [
    "OutputTensor",
    "DecodeContext",
    "Candidates",
    "Decoder",
    "register_decoder",
    "get_decoder",
    "decoder_names",
    "detect_layout",
    "decode_ssd",
    "decode_yolov8",
    "decode_yolov5",
]


@dataclass(frozen=True)
class OutputTensor:
    """One model output: name (signature name when the model has one), raw data, quantization."""

    name: str
    data: np.ndarray
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0 and self.data.dtype in (np.int8, np.uint8, np.int16, np.int32)

    def dequantized(self) -> np.ndarray:
        """The data as float32 (dequantized when the tensor is quantized)."""
        if self.quantized:
            return (self.data.astype(np.float32) - self.zero_point) * np.float32(self.scale)
        return self.data.astype(np.float32, copy=False)

    def raw_threshold(self, value: float) -> float:
        """``value`` expressed in this tensor's raw (quantized) units."""
        return value / self.scale + self.zero_point if self.quantized else value


@dataclass(frozen=True)
class DecodeContext:
    """What a decoder may need besides the outputs."""

    input_width: int
    input_height: int
    score_threshold: float
    num_labels: int | None = None


@dataclass(frozen=True)
class Candidates:
    """Decoder output: normalised ``[x1, y1, x2, y2]`` boxes (N, 4), scores (N,), class ids (N,)."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    needs_nms: bool = True

    @classmethod
    def empty(cls) -> "Candidates":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), False)


Decoder = Callable[[Sequence[OutputTensor], DecodeContext], Candidates]
_REGISTRY: dict[str, Decoder] = {}


def register_decoder(name: str, decoder: Decoder | None = None):
    """Register ``decoder`` under ``name`` (usable as ``layout=name`` and in metadata).

    Works as a plain call or as a decorator: ``@register_decoder("blazeface")``.
    """
    def _register(func: Decoder) -> Decoder:
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"decoder name must be alphanumeric (with - or _), found {name!r}")
        _REGISTRY[name] = func
        return func

    return _register(decoder) if decoder is not None else _register


def get_decoder(name: str) -> Decoder:
    """The decoder registered as ``name``; raises ConfigError with the known names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown output layout {name!r}; known: {', '.join(decoder_names())} "
            "(register a custom one with edgekit.register_decoder)"
        ) from None


def decoder_names() -> list[str]:
    return sorted(_REGISTRY)


def detect_layout(shapes: Sequence[tuple[int, ...]], num_labels: int | None = None) -> str:
    """Guess the built-in layout from output shapes; raises LayoutError when none fits."""
    if len(shapes) == 4 and any(len(s) == 3 and s[-1] == 4 for s in shapes) and any(math.prod(s) == 1 for s in shapes):
        return "ssd"
    if len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][0] == 1:
        _, a, b = shapes[0]
        if a < b and a > 4:
            return "yolov8"
        if b > 5 and num_labels is not None and b == 4 + num_labels:
            return "yolov8"
        if b > 5:
            return "yolov5"
    found = ", ".join(str(list(s)) for s in shapes)
    raise LayoutError(
        f"cannot tell the output layout from output shapes {found}; expected SSD post-process "
        "(4 outputs), YOLOv8 [1, 4+C, N] or YOLOv5 [1, N, 5+C]. Pass --layout / layout=, or "
        "register a decoder for this model"
    )


def _ssd_roles(outputs: Sequence[OutputTensor]) -> dict[str, OutputTensor]:
    roles: dict[str, OutputTensor] = {}
    keywords = (("boxes", "box"), ("classes", "class"), ("scores", "score"), ("count", "num"))
    for out in outputs:
        lname = out.name.lower()
        for role, key in keywords:
            if key in lname and role not in roles:
                roles[role] = out
                break
    if len(roles) == 4:
        return roles
    suffixes = {"": "boxes", ":1": "classes", ":2": "scores", ":3": "count"}
    roles = {}
    for out in outputs:
        base, sep, tail = out.name.rpartition(":")
        suffix = f":{tail}" if sep and tail.isdigit() and base.endswith("PostProcess") else ""
        if "PostProcess" in out.name and suffix in suffixes:
            roles[suffixes[suffix]] = out
    if len(roles) == 4:
        return roles
    # Shapes: boxes end in 4, count has one element; classes/scores in TF1 export order.
    rest = [o for o in outputs if not (o.data.ndim == 3 and o.data.shape[-1] == 4) and o.data.size != 1]
    boxes = [o for o in outputs if o.data.ndim == 3 and o.data.shape[-1] == 4]
    count = [o for o in outputs if o.data.size == 1]
    if len(boxes) == 1 and len(count) == 1 and len(rest) == 2:
        return {"boxes": boxes[0], "classes": rest[0], "scores": rest[1], "count": count[0]}
    raise LayoutError(
        "SSD layout needs 4 outputs (boxes [1,N,4], classes [1,N], scores [1,N], count [1]); "
        f"found {[(o.name, list(o.data.shape)) for o in outputs]}"
    )


def decode_ssd(outputs: Sequence[OutputTensor], ctx: DecodeContext) -> Candidates:
    roles = _ssd_roles(outputs)
    count = int(roles["count"].dequantized().reshape(-1)[0])
    boxes = roles["boxes"].dequantized().reshape(-1, 4)[:count]
    scores = roles["scores"].dequantized().reshape(-1)[:count]
    classes = roles["classes"].dequantized().reshape(-1)[:count]
    keep = scores >= ctx.score_threshold
    yx = np.clip(boxes[keep], 0.0, 1.0)
    return Candidates(yx[:, [1, 0, 3, 2]], scores[keep], np.rint(classes[keep]).astype(np.int64), needs_nms=False)


def _to_normalised(boxes: np.ndarray, ctx: DecodeContext) -> np.ndarray:
    # Exports differ: Ultralytics TFLite gives 0..1, others give input pixels.
    if boxes.size and float(np.max(boxes[:, :2])) > 1.5:
        boxes = boxes / np.array([ctx.input_width, ctx.input_height] * 2, np.float32)
    return cxcywh_to_xyxy(boxes)


def decode_yolov8(outputs: Sequence[OutputTensor], ctx: DecodeContext) -> Candidates:
    if len(outputs) != 1 or outputs[0].data.ndim != 3:
        raise LayoutError(f"yolov8 layout needs one [1, 4+C, N] output, found {[list(o.data.shape) for o in outputs]}")
    out = outputs[0]
    data = out.data[0]
    _, a, b = out.data.shape
    if a > b or (ctx.num_labels is not None and b == 4 + ctx.num_labels and a != 4 + ctx.num_labels):
        data = data.T  # [N, 4+C] export
    cls = data[4:]
    # Threshold in raw (possibly int8) units: one max over classes, no full dequantization.
    best = cls.argmax(axis=0)
    best_raw = np.take_along_axis(cls, best[None], axis=0)[0]
    keep = np.nonzero(best_raw >= out.raw_threshold(ctx.score_threshold))[0]
    if keep.size == 0:
        return Candidates.empty()
    picked = OutputTensor(out.name, data[:, keep], out.scale, out.zero_point).dequantized()
    boxes = _to_normalised(np.ascontiguousarray(picked[:4].T), ctx)
    scores = picked[4:][best[keep], np.arange(keep.size)]
    return Candidates(boxes.astype(np.float32), scores, best[keep].astype(np.int64))


def decode_yolov5(outputs: Sequence[OutputTensor], ctx: DecodeContext) -> Candidates:
    if len(outputs) != 1 or outputs[0].data.ndim != 3:
        raise LayoutError(f"yolov5 layout needs one [1, N, 5+C] output, found {[list(o.data.shape) for o in outputs]}")
    out = outputs[0]
    data = out.data[0]
    # score = obj × cls ≤ obj: filter on objectness first, in raw units.
    keep = np.nonzero(data[:, 4] >= out.raw_threshold(ctx.score_threshold))[0]
    if keep.size == 0:
        return Candidates.empty()
    rows = OutputTensor(out.name, data[keep], out.scale, out.zero_point).dequantized()
    cls_scores = rows[:, 5:] * rows[:, 4:5]
    best = cls_scores.argmax(axis=1)
    scores = cls_scores[np.arange(len(best)), best]
    ok = scores >= ctx.score_threshold
    boxes = _to_normalised(rows[ok, :4], ctx)
    return Candidates(boxes.astype(np.float32), scores[ok], best[ok].astype(np.int64))


register_decoder("ssd", decode_ssd)
register_decoder("yolov8", decode_yolov8)
register_decoder("yolov5", decode_yolov5)
