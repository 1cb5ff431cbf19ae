"""Detection results: frozen, JSON-serialisable values."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["Detection", "DetectionResult"]


@dataclass(frozen=True)
class Detection:
    """One detected object; ``box`` is ``(x1, y1, x2, y2)`` in original-image pixels.

    ``track_id`` is the id of the confirmed track it belongs to when the run tracks objects
    (:mod:`edgekit.track`), None otherwise (not tracking, or a track not yet confirmed).
    """

    label: str
    class_id: int
    score: float
    box: tuple[float, float, float, float]
    track_id: int | None = None

    def to_dict(self, tracked: bool = False) -> dict[str, Any]:
        """JSON-ready; with ``tracked``, ``track_id`` is included (null for an unconfirmed track)."""
        doc: dict[str, Any] = {
            "label": self.label,
            "class_id": self.class_id,
            "score": round(self.score, 5),
            "box": [round(v, 2) for v in self.box],
        }
        if tracked:
            doc["track_id"] = self.track_id
        return doc


@dataclass(frozen=True)
class DetectionResult:
    """All detections in one image or frame, best score first, with the image's size and source.

    ``frame`` (0-based index in its source), ``timestamp`` (seconds: stream time for files and
    videos, wall-clock capture time for live sources), ``latency_ms`` (capture → result: decoding,
    waiting for the interpreter, inference and decoding the outputs) and ``invoke_ms`` (the model's
    own time: the interpreter's ``invoke()`` for this frame) are set by the runner; ``None`` when
    the result did not come from a source (``invoke_ms``: also for a frame not inferred, whose
    result repeats an earlier one). ``tracked``: the run
    tracks objects, so every detection says its ``track_id`` (see :class:`Detection`).
    """

    source: str
    width: int
    height: int
    detections: tuple[Detection, ...]
    frame: int | None = None
    timestamp: float | None = None
    latency_ms: float | None = None
    tracked: bool = False
    invoke_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "source": self.source,
            "width": self.width,
            "height": self.height,
            "detections": [d.to_dict(self.tracked) for d in self.detections],
        }
        if self.frame is not None:
            doc["frame"] = self.frame
        if self.timestamp is not None:
            doc["timestamp"] = round(self.timestamp, 6)
        if self.latency_ms is not None:
            doc["latency_ms"] = round(self.latency_ms, 2)
        if self.invoke_ms is not None:
            doc["invoke_ms"] = round(self.invoke_ms, 2)
        return doc

    def to_json(self) -> str:
        """One line of JSON (the format ``edgekit detect`` prints)."""
        return json.dumps(self.to_dict(), separators=(", ", ": "))
