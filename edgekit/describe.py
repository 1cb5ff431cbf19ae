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

__all__ = ["describe_model"]


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
