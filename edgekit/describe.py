"""Describe any ``.tflite`` file, detector or not: what ``edgekit info`` prints.

A model edgekit can run is described by the :class:`~edgekit.detector.Detector` that loads it
(:meth:`~edgekit.detector.Detector.describe`); one it refuses still gets its tensors, operators
and metadata from the interpreter, with a verdict saying why it is refused.
"""

from __future__ import annotations

from typing import Any

from .detector import Detector, DetectorOptions
from .errors import ConfigError, EdgekitError, RuntimeNotFoundError, UnsafeModelError
from .metadata import ModelMetadata, read_labels
from .metadata_readers import read_metadata
from .modelinfo import describe_info, inspect_interpreter
from .runtime import create_interpreter, find_runtime, signature_output_names

__all__ = ["describe_model", "input_encoding_text"]


def describe_model(path: str, *, layout: str | None = None, labels_path: str | None = None,
                   num_threads: int | None = None) -> dict[str, Any]:
    """Describe any loadable ``.tflite`` file, detector or not: tensors, operators, metadata and
    what edgekit would do with it (``verdict``: the layout it would use, or why it refuses).

    Raises ModelError only when the file cannot be loaded at all.
    """
    options = DetectorOptions(layout=layout, num_threads=num_threads)
    try:
        return Detector(path, options, labels_path=labels_path).describe()
    except (RuntimeNotFoundError, ConfigError, UnsafeModelError):
        raise  # nothing to describe with, a bad argument (--labels, --layout), or hostile metadata
    except EdgekitError as exc:
        why = str(exc)
    except Exception as exc:  # still describe the file; the verdict says what failed
        why = f"{type(exc).__name__}: {exc}"
    runtime = find_runtime()
    threads = num_threads or 1
    interpreter = create_interpreter(path, threads, runtime)  # ModelError: cannot be loaded at all
    notes: list[str] = []
    try:
        meta = read_metadata(path)
    except EdgekitError as exc:
        meta = ModelMetadata()
        notes.append(f"metadata unreadable: {exc}")
    labels = read_labels(labels_path) if labels_path else meta.labels
    info = inspect_interpreter(interpreter, path, meta, signature_output_names(interpreter),
                               len(labels) if labels else None)
    doc = describe_info(info, runtime, threads)
    doc["layout"] = {"name": None, "from": None}
    doc["labels"] = {"count": len(labels) if labels else 0,
                     "from": f"--labels {labels_path}" if labels_path else meta.origins.get("labels", "none"),
                     "first": list(labels[:8]) if labels else []}
    doc["verdict"] = f"refuses it: {why}"
    doc["notes"] = list(meta.notes) + notes
    return doc


def _values(values: Any) -> str:
    return "/".join(f"{v:g}" for v in values)


def input_encoding_text(enc: dict[str, Any]) -> str:
    """``edgekit info``'s input line: how an image becomes the input tensor, in words (the
    ``input_encoding`` of :meth:`~edgekit.detector.Detector.describe`)."""
    fit = {"letterbox": "letterboxed (aspect kept, padded)", "stretch": "stretched to the input size"}
    norm = (f"(pixel - {_values(enc['mean'])}) / {_values(enc['std'])}"
            if enc.get("mean") is not None and enc.get("std") is not None else None)
    kind = enc.get("kind")
    if kind == "copy":
        how = "uint8 pixels as they are" + (f" (equal to {norm} in the input's quantization)" if norm else "")
    elif kind == "flip":
        how = "pixels - 128 as int8" + (f" (equal to {norm} in the input's quantization)" if norm else "")
    elif kind == "affine":
        how = f"{norm or 'pixels'}, quantized to the input's {enc.get('dtype', 'integer')} scale"
    else:
        how = f"float32 {norm or 'pixel / 255'}"
    return f"{fit.get(enc.get('resize'), enc.get('resize'))}, {enc.get('color', 'RGB')} channels, {how}"
