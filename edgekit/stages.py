"""Stages between decode-outputs and the sinks: small objects with ``__call__(frame_result)`` that
return the result to pass on, or None to hold it back. The runner's :func:`~edgekit.runner.run`
applies them in order (tracking, zones and motion gating will be stages too).
"""

from __future__ import annotations

from typing import Any

__all__ = ["label_counts", "ChangeGate"]


def label_counts(detections: Any) -> dict[str, int]:
    """Detections per label."""
    counts: dict[str, int] = {}
    for d in detections:
        counts[d.label] = counts.get(d.label, 0) + 1
    return counts


class ChangeGate:
    """Pass a frame only when its per-label counts differ from the last frame passed from the same
    source (the first frame of each source always passes); failed frames always pass."""

    def __init__(self) -> None:
        self._last: dict[str, dict[str, int]] = {}

    def __call__(self, fr: Any) -> Any:
        if fr.result is None:
            return fr
        key = fr.source  # a source is one scene: a camera, a folder of files, a watched folder of snapshots
        counts = label_counts(fr.result.detections)
        if self._last.get(key) == counts:
            return None
        self._last[key] = counts
        return fr
