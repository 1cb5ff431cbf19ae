"""edgekit — run TFLite object detectors on small CPU-only devices.

``import edgekit`` is cheap: it loads no TFLite runtime, TensorFlow, paho-mqtt or OpenCV,
and not even numpy or Pillow; the names below are imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .errors import (
    ConfigError,
    EdgekitError,
    ImageError,
    LayoutError,
    ModelError,
    RuntimeNotFoundError,
    UnsupportedModelError,
)

__version__ = "0.1.0"

_LAZY = {
    "Detector": "detector",
    "DetectorOptions": "detector",
    "Detection": "results",
    "DetectionResult": "results",
    "InputSpec": "metadata",
    "ModelMetadata": "metadata",
    "read_metadata": "metadata_readers",
    "register_decoder": "decoders",
    "Candidates": "decoders",
    "DecodeContext": "decoders",
    "OutputTensor": "decoders",
    "find_runtime": "runtime",
    "ModelInfo": "modelinfo",
    "describe_model": "describe",
    "load_plugin": "plugins",
    "watch": "runner",
    "RunOptions": "runner",
    "FrameResult": "frames",
    "Frame": "frames",
    "usable_cores": "device",
}

__all__ = [
    "Candidates", "ConfigError", "DecodeContext", "Detection", "DetectionResult", "Detector", "DetectorOptions",
    "EdgekitError", "ImageError", "InputSpec", "LayoutError", "ModelError", "ModelInfo", "ModelMetadata",
    "OutputTensor", "RuntimeNotFoundError", "UnsupportedModelError", "__version__", "describe_model", "find_runtime",
    "load_plugin", "read_metadata", "register_decoder", "usable_cores", "watch", "RunOptions", "FrameResult", "Frame",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
