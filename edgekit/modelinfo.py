"""What a loaded model is: its tensors, operators and metadata, and whether edgekit can run it.

:class:`ModelInfo` is what decoders' ``matches()`` look at during ``--layout auto`` and what
``edgekit info`` prints. :func:`refusal` says, in one line, why a model is not a single-image
detector edgekit can run (a classifier, a segmentation model, two inputs, …), or returns None.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from .metadata import ModelMetadata

__all__ = ["TensorInfo", "ModelInfo", "inspect_interpreter", "refusal", "looks_like", "describe_info", "POSTPROCESS_OP"]

POSTPROCESS_OP = "TFLite_Detection_PostProcess"


@dataclass(frozen=True)
class TensorInfo:
    """One input or output tensor. ``shape_signature`` has -1 for dynamic dimensions."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0
    shape_signature: tuple[int, ...] | None = None

    def describe(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                               "quantization": {"scale": self.scale, "zero_point": self.zero_point} if self.scale else None}
        if self.shape_signature is not None and self.shape_signature != self.shape:
            doc["shape_signature"] = list(self.shape_signature)
        return doc


@dataclass(frozen=True)
class ModelInfo:
    """A model as edgekit sees it after loading.

    ``outputs`` are in the interpreter's output order; ``operators`` maps each operator name to
    how often it occurs; ``postprocess_outputs`` are the tensor indices written by a
    ``TFLite_Detection_PostProcess`` operator, in the operator's own order (boxes, classes,
    scores, count), whatever order the graph lists its outputs in.
    """

    path: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    operators: Mapping[str, int] = field(default_factory=dict)
    postprocess_outputs: tuple[int, ...] | None = None
    metadata: ModelMetadata = field(default_factory=ModelMetadata)
    num_labels: int | None = None
    weights: str | None = None  # see weight_kind(): "float32", "float16", "dynamic-range", "int8"

    @property
    def name(self) -> str:
        return os.path.basename(self.path) or self.path

    def output_shapes(self) -> list[tuple[int, ...]]:
        return [t.shape for t in self.outputs]


def _tensor(d: Mapping[str, Any], name: str | None = None) -> TensorInfo:
    import numpy as np

    scale, zero_point = d.get("quantization", (0.0, 0))
    signature = d.get("shape_signature")
    return TensorInfo(int(d["index"]), name or str(d["name"]), tuple(int(v) for v in d["shape"]),
                      np.dtype(d["dtype"]).name, float(scale), int(zero_point),
                      tuple(int(v) for v in signature) if signature is not None else None)


def inspect_interpreter(interpreter: Any, path: str, metadata: ModelMetadata, output_names: Mapping[int, str],
                        num_labels: int | None = None) -> ModelInfo:
    """Build a ModelInfo from an allocated interpreter (any of the three runtimes)."""
    operators: dict[str, int] = {}
    postprocess = None
    try:
        ops = interpreter._get_ops_details()  # LiteRT, tflite-runtime and tf.lite all have it
    except Exception:  # an older or stripped runtime: roles then come from names and shapes
        ops = []
    for op in ops:
        name = str(op.get("op_name", "?"))
        if name == "DELEGATE":  # XNNPACK's node standing for the ops it took over
            continue
        operators[name] = operators.get(name, 0) + 1
        if name == POSTPROCESS_OP and postprocess is None:
            postprocess = tuple(int(i) for i in op.get("outputs", ()))
    return ModelInfo(
        path=path,
        inputs=tuple(_tensor(d) for d in interpreter.get_input_details()),
        outputs=tuple(_tensor(d, output_names.get(int(d["index"]))) for d in interpreter.get_output_details()),
        operators=operators,
        postprocess_outputs=postprocess,
        metadata=metadata,
        num_labels=num_labels,
        weights=weight_kind(interpreter),
    )


#: What each weight kind means, as ``edgekit info`` says it.
WEIGHT_KINDS = {
    "float32": "float32",
    "float16": "float16 (widened to float32 when loaded; runs as a float32 model)",
    "dynamic-range": "int8, dynamic-range (int8 weights, float activations and I/O; its speed against float32 "
                     "depends on the CPU and runtime: measured from 3x slower to 3x faster, so measure with "
                     "'edgekit bench')",
    "int8": "8-bit, full integer (quantized weights, activations and input)",
}


def weight_kind(interpreter: Any) -> str | None:
    """How the model stores its weights, from its tensors' types: ``int8`` (quantized input, as a
    full-integer model), ``dynamic-range`` (float input, int8 weight tensors), ``float16`` (float16
    weight tensors) or ``float32``; None when the runtime does not list tensors."""
    import numpy as np

    try:
        dtypes = {np.dtype(d["dtype"]) for d in interpreter.get_tensor_details()}
        inputs = [np.dtype(d["dtype"]) for d in interpreter.get_input_details()]
    except Exception:  # a runtime without tensor details: the kind is left unsaid
        return None
    if inputs and all(d in (np.dtype(np.int8), np.dtype(np.uint8)) for d in inputs):
        return "int8"
    if np.dtype(np.int8) in dtypes or np.dtype(np.uint8) in dtypes:
        return "dynamic-range"
    if np.dtype(np.float16) in dtypes:
        return "float16"
    return "float32"


_TASKS = {"segment": "an instance-segmentation", "pose": "a pose (keypoint)", "obb": "an oriented-box",
          "classify": "an image-classification"}


def refusal(info: ModelInfo) -> str | None:
    """Why edgekit cannot run this model as a single-image detector, in one line; None if it may."""
    task = info.metadata.task
    if task and task != "detect":
        what = _TASKS.get(task, f"a {task!r}")
        return (f"{info.name} is {what} model (Ultralytics task {task!r}); edgekit runs object detectors "
                "(task 'detect'): export a detection model, e.g. 'yolo export model=yolov8n.pt format=tflite'")
    if len(info.inputs) != 1:
        found = ", ".join(f"{t.name} {list(t.shape)}" for t in info.inputs)
        return (f"{info.name} has {len(info.inputs)} inputs ({found}); edgekit runs detectors with one image "
                "input [1, H, W, 3]")
    shape = info.inputs[0].shape
    if len(shape) == 4 and shape[1] == 3 and shape[3] != 3:
        return (f"{info.name} takes channels-first input {list(shape)}; edgekit feeds NHWC [1, H, W, 3]: "
                "re-export the model for TFLite with channels last")
    if len(shape) != 4 or shape[3] != 3:
        return f"{info.name} takes input {list(shape)}; edgekit runs image detectors with input [1, H, W, 3] (RGB)"
    if shape[0] != 1:
        return (f"{info.name} has a fixed batch of {shape[0]} images {list(shape)}; edgekit feeds one image at "
                "a time: re-export with batch size 1")
    sig = info.inputs[0].shape_signature
    if sig is not None and len(sig) == 4 and (sig[1] < 0 or sig[2] < 0) and min(shape[1:3]) <= 1:
        return (f"{info.name} has a dynamic input size {list(sig)}; edgekit needs a fixed size: re-export with a "
                "fixed image size (e.g. imgsz=640)")
    return None


def looks_like(info: ModelInfo) -> str:
    """A guess at what a model whose outputs no decoder matches is, for error messages."""
    shapes = info.output_shapes()
    if len(shapes) == 1 and len(shapes[0]) == 2:
        return f"one {list(shapes[0])} output: looks like an image classifier ({shapes[0][1]} classes), not a detector"
    if len(shapes) == 1 and len(shapes[0]) == 4:
        return f"one {list(shapes[0])} output: looks like a segmentation or dense-prediction model, not a detector"
    if len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][1] > shapes[0][2] > 5:
        n, w = shapes[0][1:]
        return (f"one {list(shapes[0])} output: rows of {w} values, YOLOv5 ([1, N, 5+C], {w - 5} classes) or "
                f"YOLOv8 ([1, N, 4+C], {w - 4} classes) — pass --layout yolov5|yolov8, or --labels so the class "
                "count tells")
    if len(shapes) == 2 and all(len(s) == 3 for s in shapes) and shapes[0][1] == shapes[1][1]:
        return (f"outputs {[list(s) for s in shapes]}: looks like an anchor-based SSD without the post-process "
                "operator (e.g. MediaPipe BlazeFace); it needs its own decoder (see examples/blazeface_decoder.py)")
    return f"outputs {[list(s) for s in shapes]}: not a layout edgekit knows"


def describe_info(info: ModelInfo, runtime: Any = None, threads: int | None = None) -> dict[str, Any]:
    """The file's facts as a JSON-serialisable dict (what ``edgekit info`` prints)."""
    meta = info.metadata
    size = os.path.getsize(info.path) if os.path.isfile(info.path) else None
    return {
        "model": info.path,
        "size_bytes": size,
        "runtime": str(runtime) if runtime is not None else None,
        "threads": threads,
        "inputs": [t.describe() for t in info.inputs],
        "outputs": [t.describe() for t in info.outputs],
        "operators": dict(sorted(info.operators.items())),
        "postprocess_outputs": list(info.postprocess_outputs) if info.postprocess_outputs else None,
        "weights": info.weights,
        "metadata": {"source": meta.source, "origins": dict(meta.origins), **meta.to_json_dict(),
                     **({"task": meta.task} if meta.task else {}),
                     **({"input_size": list(meta.input_size)} if meta.input_size else {}),
                     **({"output_names": list(meta.output_names)} if meta.output_names else {})},
    }

