"""How a run consumes its sources (:class:`RunOptions`), and the unique names its sources go by."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Sequence

__all__ = ["RunOptions", "unique_names"]


@dataclass(frozen=True)
class RunOptions:
    """How to consume sources. ``None`` means "no limit" / "per source".

    Attributes:
        live: newest frame wins (drop what the model cannot keep up with); default: the
            source's own ``live`` flag (cameras and streams yes, files and videos no).
        fps: process at most this many frames per second of each source's timeline (by timestamp
            for videos, file time for watched folders, capture time for live sources; image files
            have no timeline and are all processed).
        queue_size: frames buffered between stages in every-frame mode (live mode keeps one);
            two keep the interpreter busy while the next frame decodes.
        keep_images: sinks may ask for each frame's full-size picture
            (:meth:`FrameResult.full_image`: annotation, snapshots, previews; ``Frame.rgb()`` and
            ``Frame.grey()``): the frame keeps its pixels — for video, RTSP and V4L2 the decoder's
            YUV frame, converted only if a sink asks — and ``FrameResult.image`` the PIL image
            that decoding an image file or array made. Off, only the model-size tensor waits in
            the queues (``Frame.pixels`` is None at the sinks).
        motion: gate inference by motion (:class:`edgekit.gate.GateOptions`, for every source,
            or a mapping of source names to them; None: every frame is inferred). A frame in
            which nothing moves is not inferred: its result carries the last inferred frame's
            detections (``FrameResult.gated``), so tracks and stationary objects stay; every
            ``recheck`` seconds one is inferred anyway.
    """

    live: bool | None = None
    fps: float | None = None
    queue_size: int = 2
    keep_images: bool = False
    motion: Any = None

    def frames_in_flight(self, sources: int = 1) -> int:
        """Most frames the pipeline holds at once with their model-size input (what the planner's
        memory prediction counts): per source its queue and the one being decoded, the one being
        invoked, the outputs queue and the one at the sinks (results queued for the sinks hold no
        input: see :meth:`full_frames_held`)."""
        return sources * (self.queue_size + 1) + 1 + max(2, self.queue_size) + 1

    def full_frames_held(self, sources: int = 1) -> int:
        """Most full-size RGB pictures' worth of memory that ``keep_images`` adds (0 without): at
        the sinks the slowest sink's queue and the one it writes — the other sinks are ahead of
        it and share the same frames — plus, per source, the preview's newest frame and the
        picture it draws on; in the queues before them each frame in flight keeps its decoder
        frame (YUV 4:2:0, half an RGB picture)."""
        from .sinkqueue import QUEUE_SIZE

        if not self.keep_images:
            return 0
        return QUEUE_SIZE + 1 + 2 * sources + (self.frames_in_flight(sources) + 1) // 2

    def __post_init__(self) -> None:
        if self.fps is not None and self.fps <= 0:
            from .errors import ConfigError

            raise ConfigError(f"fps must be above 0 (or None for every frame), found {self.fps}")
        if self.queue_size < 1:
            from .errors import ConfigError

            raise ConfigError(f"queue size must be at least 1, found {self.queue_size}")


def unique_names(sources: Sequence[Any]) -> list[str]:
    """Each source's name, made unique with " #2", " #3"… (per-source statistics, "only on change"
    and the video sink key on it); a source whose ``name`` can be set is renamed to match."""
    names: list[str] = []
    for i, source in enumerate(sources):
        base = name = str(getattr(source, "name", f"source{i}"))
        n = 1
        while name in names:
            n += 1
            name = f"{base} #{n}"
        if name != base:
            with contextlib.suppress(AttributeError):
                source.name = name
        names.append(name)
    return names
