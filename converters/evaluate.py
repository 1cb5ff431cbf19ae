"""How closely a converted model agrees with its source model, on the same inputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit import decoders
from edgekit.boxes import iou
from edgekit.postprocess import SCORE_THRESHOLD, select
from edgekit.runtime import create_interpreter, signature_output_names

__all__ = ["Agreement", "run_tflite", "match_outputs", "compare"]


@dataclass(frozen=True)
class Agreement:
    """Per-output max/mean absolute error, and for detectors the share of the source model's
    detections (score ≥ threshold) that the converted model finds (same class, IoU ≥ 0.5)."""

    max_abs_error: dict[str, float]
    mean_abs_error: dict[str, float]
    detection_recall: float | None = None
    images: int = 0


def run_tflite(model: bytes, batch: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Run a TFLite model on each float input of ``batch``; outputs dequantized, by name."""
    interpreter = create_interpreter(model, num_threads=2)
    inp = interpreter.get_input_details()[0]
    scale, zero_point = inp["quantization"]
    names = signature_output_names(interpreter)
    results = []
    for x in batch:
        x = x[np.newaxis]
        if inp["dtype"] != np.float32:
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.rint(x / scale + zero_point), info.min, info.max).astype(inp["dtype"])
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        out = {}
        for d in interpreter.get_output_details():
            t = decoders.OutputTensor(d["name"], interpreter.get_tensor(d["index"]), *d["quantization"])
            out[names.get(d["index"], d["name"])] = t.dequantized()
        results.append(out)
    return results


def match_outputs(reference: dict[str, np.ndarray], converted: dict[str, np.ndarray]) -> dict[str, str]:
    """Reference output name → converted output name: by name, else by unique shape.

    Needed because full-int8 conversion may reorder outputs.
    """
    mapping = {name: name for name in reference if name in converted}
    left_ref = [n for n in reference if n not in mapping]
    left_conv = [n for n in converted if n not in mapping.values()]
    for name in left_ref:
        shape = tuple(np.shape(reference[name])[1:])
        same = [c for c in left_conv if tuple(np.shape(converted[c])[1:]) == shape]
        if len(same) != 1:
            raise ValueError(f"cannot match output {name!r} {shape} to the converted model's outputs")
        mapping[name] = same[0]
        left_conv.remove(same[0])
    return mapping


def compare(reference_runs: list[dict[str, np.ndarray]], converted_runs: list[dict[str, np.ndarray]],
            layout: str | None = None, score_threshold: float = SCORE_THRESHOLD,
            input_size: tuple[int, int] = (1, 1)) -> Agreement:
    """Compare per-image outputs; with a detector ``layout`` also decode both and match boxes."""
    mapping = match_outputs(reference_runs[0], converted_runs[0])
    max_err = {n: 0.0 for n in mapping}
    sums = {n: 0.0 for n in mapping}
    counts = {n: 0 for n in mapping}
    found = total = 0
    for ref, conv in zip(reference_runs, converted_runs):
        for name, other in mapping.items():
            diff = np.abs(np.asarray(ref[name], np.float64).reshape(-1) - np.asarray(conv[other], np.float64).reshape(-1))
            max_err[name] = max(max_err[name], float(diff.max()))
            sums[name] += float(diff.sum())
            counts[name] += diff.size
        if layout in ("yolov8", "yolov5"):
            f, t = _detections_found(ref, conv, mapping, layout, score_threshold, input_size)
            found, total = found + f, total + t
    recall = (found / total if total else 1.0) if layout in ("yolov8", "yolov5") else None
    return Agreement(max_err, {n: sums[n] / max(counts[n], 1) for n in mapping}, recall, len(reference_runs))


def _detections_found(ref, conv, mapping, layout, threshold, input_size) -> tuple[int, int]:
    decode = decoders.get_decoder(layout)
    ctx = decoders.DecodeContext(input_size[0], input_size[1], threshold)
    name = next(iter(mapping))
    # The same filtering/NMS as the device (edgekit.postprocess.select), so the figure is what detect gets.
    a = select(decode([decoders.OutputTensor(name, np.asarray(ref[name], np.float32))], ctx), score_threshold=threshold)
    b = select(decode([decoders.OutputTensor(name, np.asarray(conv[mapping[name]], np.float32))], ctx),
               score_threshold=threshold)
    found = 0
    for box, cls in zip(a.boxes, a.class_ids):
        same = b.class_ids == cls
        if same.any() and float(iou(box, b.boxes[same]).max()) >= 0.5:
            found += 1
    return found, len(a.boxes)
