"""The decoder contract: what a decoder is given and what it returns.

A decoder is a callable ``decoder(outputs, context) -> Candidates``: ``outputs`` are
:class:`OutputTensor` objects (raw data + quantization) in the interpreter's output order,
``context`` a :class:`DecodeContext`; it returns :class:`Candidates`, boxes normalised to the
model input as ``[x1, y1, x2, y2]``. A matcher is a function of a
:class:`~edgekit.modelinfo.ModelInfo` returning a reason string when the model fits, else False.
The built-in decoders, plugins, :mod:`edgekit.postprocess` and the Detector pass these values
between them, so this module stands below all of them: it imports only :mod:`edgekit.modelinfo`.
Plugins import the names from :mod:`edgekit.decoders`, which hands them on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..modelinfo import ModelInfo

__all__ = ["OutputTensor", "DecodeContext", "Candidates", "Decoder", "Matcher"]


@dataclass(frozen=True)
class OutputTensor:
    """One model output: name (signature name when the model has one), raw data, quantization,
    and the tensor index in the model (``None`` when not known)."""

    name: str
    data: np.ndarray
    scale: float = 0.0
    zero_point: int = 0
    index: int | None = None

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
    """What a decoder may need besides the outputs.

    ``model`` names the model in error messages and ``layout`` says how the layout was chosen;
    ``info`` is the loaded model's
    :class:`~edgekit.modelinfo.ModelInfo` (operators, metadata), ``None`` outside a Detector.
    """

    input_width: int
    input_height: int
    score_threshold: float
    num_labels: int | None = None
    model: str = "model"
    info: ModelInfo | None = None
    layout: str = ""


@dataclass(frozen=True)
class Candidates:
    """Decoder output: normalised ``[x1, y1, x2, y2]`` boxes (N, 4), scores (N,), class ids (N,)."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    needs_nms: bool = True

    @classmethod
    def empty(cls, needs_nms: bool = False) -> "Candidates":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), needs_nms)


Decoder = Callable[[Sequence[OutputTensor], DecodeContext], Candidates]
Matcher = Callable[[ModelInfo], Any]
