"""The best picture of each tracked object (opt-in): a runner stage after tracking.

For every confirmed track seen in a frame, the frame is a candidate; the best one so far (by
score, then by size in the frame) is kept as a :class:`Snapshot` — the full frame with the
object's box drawn, and a crop around it, both JPEG — saved in a private folder (0700, files
0600) and handed on in ``FrameResult.snapshots`` for the MQTT sink to publish (retained, per
source and label). Encoding happens only when a better candidate comes, at most every
``min_interval`` seconds per object. A stationary object that never moved (a car parked before
the camera started) gets none: there is nothing new to show.
"""

from __future__ import annotations

import io
import math
import os
import re
import time
from dataclasses import dataclass, replace
from typing import Any

from .errors import EdgekitError

__all__ = ["Snapshot", "SnapshotStage"]


@dataclass(frozen=True)
class Snapshot:
    """One object's best picture so far: ``frame_jpeg`` (full frame, box drawn), ``crop_jpeg``,
    and ``path`` (the saved full frame; the crop beside it as ``…-crop.jpg``), or None unsaved."""

    source: str
    track_id: int
    label: str
    score: float
    frame_time: float
    frame_jpeg: bytes
    crop_jpeg: bytes
    path: str | None = None


@dataclass
class _Best:
    quality: float
    encoded_at: float
    first_centre: tuple[float, float]
    moved: bool = False
    name: str = ""


def _quality(score: float, box: Any, size: tuple[int, int]) -> float:
    area = max(0.0, (box[2] - box[0]) * (box[3] - box[1])) / max(1, size[0] * size[1])
    return float(score) + 0.1 * math.sqrt(area)  # score first; a bigger view wins a tie


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "source"


class SnapshotStage:
    """Keep the best snapshot of each tracked object (needs :class:`~edgekit.stages.Tracking`
    before it and ``RunOptions(keep_images=True)``).

    Args:
        folder: where to save them (made private); None: not saved, only handed on.
        min_interval: seconds between two encodings of one object.
        quality: JPEG quality.
    """

    def __init__(self, folder: str | None = None, min_interval: float = 1.0, quality: int = 85) -> None:
        self.folder = folder
        self.min_interval = min_interval
        self.quality = quality
        self._best: dict[tuple[str, int], _Best] = {}
        self._said = False

    def __call__(self, fr: Any) -> Any:
        if fr.tracks is None:
            return fr
        for track in fr.tracks.ended:
            self._best.pop((fr.source, track.id), None)
        if fr.result is None or not fr.has_full_image():
            return replace(fr, snapshots=())
        size = (fr.result.width, fr.result.height)
        made = []
        for track in fr.tracks.tracks:
            if not track.seen:
                continue
            snap = self._consider(fr, track, size)
            if snap is not None:
                made.append(snap)
        return replace(fr, snapshots=tuple(made))

    def _consider(self, fr: Any, track: Any, size: tuple[int, int]) -> Snapshot | None:
        key = (fr.source, track.id)
        box = track.box
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        best = self._best.get(key)
        if best is None:
            best = self._best[key] = _Best(-1.0, -math.inf, centre)
        side = math.sqrt(max(1.0, (box[2] - box[0]) * (box[3] - box[1])))
        if math.hypot(centre[0] - best.first_centre[0], centre[1] - best.first_centre[1]) > 0.25 * side:
            best.moved = True
        if track.stationary and not best.moved:
            return None
        detection = next((d for d in fr.result.detections if d.track_id == track.id), None)
        score = detection.score if detection is not None else track.score
        quality = _quality(score, box, size)
        now = time.monotonic()
        if quality <= best.quality or now - best.encoded_at < self.min_interval:
            return None
        snap = self._encode(fr, track, score, box)
        if snap is None:
            return None
        best.quality, best.encoded_at = quality, now
        if self.folder is not None:
            snap = replace(snap, path=self._save(snap, best))
        return snap

    def _encode(self, fr: Any, track: Any, score: float, box: Any) -> Snapshot | None:
        from .annotate import draw_detections
        from .errors import ImageError
        from .results import Detection

        try:  # full size, made now: a decoder's frame is converted only for the frames snapshotted
            image = fr.full_image()
        except ImageError:  # an image file rewritten or gone since: its boxes belong to another picture
            return None
        shown = Detection(track.label, track.class_id, float(score), tuple(float(v) for v in box), track.id)
        full = draw_detections(image, [shown])
        w, h = image.size
        pad = 0.15 * max(box[2] - box[0], box[3] - box[1])
        crop = image.crop((max(0, int(box[0] - pad)), max(0, int(box[1] - pad)),
                           min(w, int(math.ceil(box[2] + pad))), min(h, int(math.ceil(box[3] + pad)))))
        return Snapshot(fr.source, track.id, track.label, float(score), float(fr.frame.timestamp),
                        self._jpeg(full), self._jpeg(crop))

    def _jpeg(self, image: Any) -> bytes:
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=self.quality)
        return buf.getvalue()

    def _save(self, snap: Snapshot, best: _Best) -> str | None:
        from .userdirs import create_private, private_dir

        folder = os.path.join(self.folder, _safe(snap.source))
        if not best.name:  # one file per object, unique across restarts
            best.name = f"{_safe(snap.label)}-{time.time():.3f}-{snap.track_id}"
        path = os.path.join(folder, best.name + ".jpg")
        try:
            private_dir(self.folder)
            private_dir(folder)
            for target, data in ((path, snap.frame_jpeg), (path[:-4] + "-crop.jpg", snap.crop_jpeg)):
                create_private(target)
                with open(target, "wb") as fh:
                    fh.write(data)
        except (OSError, EdgekitError) as exc:  # a full or read-only disk must not stop detection
            if not self._said:
                import sys

                self._said = True
                why = getattr(exc, "strerror", None) or exc
                print(f"edgekit: snapshots not saved in {folder} ({why}); they are still published", file=sys.stderr,
                      flush=True)
            return None
        return path
