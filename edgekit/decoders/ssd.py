"""``ssd``: the four outputs of the ``TFLite_Detection_PostProcess`` operator.

Tensor contract: boxes ``[1, N, 4]`` as normalised ``(ymin, xmin, ymax, xmax)``, classes
``[1, N]`` (float class ids, 0-based without background), scores ``[1, N]`` in [0, 1], count
``[1]``. The operator always writes them in that order, but exporters list the graph outputs
differently: TF1 exports keep it (``TFLite_Detection_PostProcess``, ``:1``, ``:2``, ``:3``), TF2
exports and EfficientDet-Lite give (scores, boxes, count, classes) named
``StatefulPartitionedCall:0..3``. Roles are therefore taken, in order, from the operator's own
output list, from TFLite Metadata tensor names, from names, and only then from shapes.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import LayoutError
from ..modelinfo import ModelInfo
from ._checks import check_boxes, check_class_ids, check_scores, fail, tolerance
from .contract import Candidates, DecodeContext, OutputTensor

ROLES = ("boxes", "classes", "scores", "count")
# TFLite Metadata output names (TF1 SSD with metadata, EfficientDet-Lite, Model Maker).
_METADATA_NAMES = {"location": "boxes", "locations": "boxes", "category": "classes", "classes": "classes",
                   "score": "scores", "scores": "scores", "number of detections": "count"}
_KEYWORDS = (("boxes", ("box", "location")), ("classes", ("class", "category")), ("scores", ("score",)),
             ("count", ("num", "count")))


def matches_ssd(info: ModelInfo):
    shapes = info.output_shapes()
    if len(shapes) != 4:
        return False
    if info.postprocess_outputs is not None and set(info.postprocess_outputs) == {t.index for t in info.outputs}:
        return "operator (TFLite_Detection_PostProcess outputs)"
    if _by_metadata_names(info) is not None:
        return "metadata (TFLite Metadata output names)"
    if any(len(s) == 3 and s[-1] == 4 for s in shapes) and any(math.prod(s) == 1 for s in shapes):
        return "shapes (boxes [1, N, 4], count [1], two [1, N])"
    return False


def _by_metadata_names(info: ModelInfo) -> dict[str, int] | None:
    names = info.metadata.output_names
    if not names or len(names) != len(info.outputs):
        return None
    roles = {_METADATA_NAMES.get(n.strip().lower()): t.index for n, t in zip(names, info.outputs)}
    roles.pop(None, None)
    return roles if len(roles) == 4 else None


def roles_of(outputs: Sequence[OutputTensor], info: ModelInfo | None) -> tuple[dict[str, OutputTensor], str]:
    """Which output is boxes/classes/scores/count, and how that was decided."""
    by_index = {o.index: o for o in outputs if o.index is not None}
    if info is not None:
        op = info.postprocess_outputs
        if op is not None and len(op) == 4 and all(i in by_index for i in op):
            return {role: by_index[i] for role, i in zip(ROLES, op)}, "post-process operator"
        named = _by_metadata_names(info)
        if named is not None and all(i in by_index for i in named.values()):
            return {role: by_index[i] for role, i in named.items()}, "TFLite Metadata names"
    roles: dict[str, OutputTensor] = {}
    for out in outputs:
        lname = out.name.lower()
        for role, keys in _KEYWORDS:
            if role not in roles and any(k in lname for k in keys):
                roles[role] = out
                break
    if len(roles) == 4:
        return roles, "output names"
    suffixes = {"": "boxes", ":1": "classes", ":2": "scores", ":3": "count"}
    roles = {}
    for out in outputs:
        base, sep, tail = out.name.rpartition(":")
        suffix = f":{tail}" if sep and tail.isdigit() and base.endswith("PostProcess") else ""
        if "PostProcess" in out.name and suffix in suffixes:
            roles[suffixes[suffix]] = out
    if len(roles) == 4:
        return roles, "post-process tensor names"
    # Shapes: boxes end in 4, count has one element; classes/scores in TF1 export order.
    # The value checks in decode_ssd catch a wrong guess (fractional class ids, scores > 1).
    boxes = [o for o in outputs if o.data.ndim == 3 and o.data.shape[-1] == 4]
    count = [o for o in outputs if o.data.size == 1]
    rest = [o for o in outputs if o not in boxes and o not in count]
    if len(boxes) == 1 and len(count) == 1 and len(rest) == 2:
        return {"boxes": boxes[0], "classes": rest[0], "scores": rest[1], "count": count[0]}, "output shapes"
    raise LayoutError(
        "the SSD layout needs the 4 post-process outputs (boxes [1,N,4], classes [1,N], scores [1,N], count [1]); "
        f"found {[(o.name, list(o.data.shape)) for o in outputs]}; check --layout"
    )


def decode_ssd(outputs: Sequence[OutputTensor], ctx: DecodeContext) -> Candidates:
    try:
        roles, _ = roles_of(outputs, ctx.info)
    except LayoutError as exc:
        raise fail(ctx, "ssd", str(exc)) from None
    count_raw = roles["count"].dequantized().reshape(-1)
    n_max = roles["scores"].data.size
    if count_raw.size != 1 or not np.isfinite(count_raw[0]) or not 0 <= count_raw[0] <= n_max:
        raise fail(ctx, "ssd", f"the count output holds {count_raw[:3].tolist()}, expected one number in 0..{n_max}")
    count = int(count_raw[0])
    boxes = roles["boxes"].dequantized().reshape(-1, 4)[:count]
    scores = roles["scores"].dequantized().reshape(-1)[:count]
    classes = roles["classes"].dequantized().reshape(-1)[:count]
    if not len(boxes) == len(scores) == len(classes) == count:
        raise fail(ctx, "ssd", f"count says {count} detections but boxes/scores/classes hold "
                               f"{len(boxes)}/{len(scores)}/{len(classes)}")
    check_scores(ctx, "ssd", scores, tolerance(roles["scores"].scale))
    class_ids = check_class_ids(ctx, "ssd", classes, tolerance(roles["classes"].scale))
    keep = scores >= ctx.score_threshold
    yx = boxes[keep]
    if not np.all(np.isfinite(yx)):
        raise fail(ctx, "ssd", "boxes are not finite (NaN/inf)")
    xyxy = np.clip(yx, 0.0, 1.0)[:, [1, 0, 3, 2]]
    check_boxes(ctx, "ssd", xyxy)
    return Candidates(xyxy, np.clip(scores[keep], 0.0, 1.0), class_ids[keep], needs_nms=False)
