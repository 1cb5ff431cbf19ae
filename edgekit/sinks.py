"""Where results go: small objects with ``write(frame_result)`` and ``close()`` that the runner's
:func:`~edgekit.runner.run` hands every :class:`~edgekit.runner.FrameResult` to, in order.

- :class:`JsonLines` — one JSON line per processed frame (what ``edgekit detect`` prints);
- :class:`ErrorLog` — one line per frame that failed, naming it;
- :class:`edgekit.mqtt.sink.MqttSink` (in the MQTT package) — publishes through a Publisher;
- :class:`AnnotatedImages` — writes each frame with its boxes drawn;
- :class:`AnnotatedVideo` — writes each source's frames with their boxes drawn as a video (opt-in).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from .errors import ConfigError

__all__ = ["AnnotatedImages", "AnnotatedVideo", "ErrorLog", "JsonLines", "frame_json"]


def frame_json(fr: Any) -> str | None:
    """The JSON line ``edgekit detect`` prints for a frame: ``DetectionResult.to_dict()``, plus
    ``"events": [...]`` when the run builds events (empty when nothing happened), and with motion
    gating ``"motion": {"moving", "gated" (not inferred: the detections are the last inferred
    frame's), "regions"}``. A source's end
    that carries events is ``{"source": NAME, "end_of_source": true, "events": [...]}``. None for
    a frame with nothing to print (failed, or a source's end without events)."""
    import json

    if fr.result is not None:
        doc = fr.result.to_dict()
    elif fr.end_of_source and fr.events:
        doc = {"source": fr.source, "end_of_source": True}
    else:
        return None
    if fr.events is not None:
        doc["events"] = [e.to_dict() for e in fr.events]
    if fr.motion is not None and fr.result is not None:  # gating by motion
        doc["motion"] = {"moving": fr.motion.moving, "gated": fr.gated,
                         "regions": [list(r) for r in fr.motion.regions]}
    return json.dumps(doc, separators=(", ", ": "))


class JsonLines:
    """One JSON line per processed frame (:func:`frame_json`)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def write(self, fr: Any) -> None:
        line = frame_json(fr)
        if line is not None:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        pass


class ErrorLog:
    """``edgekit: <error>`` on stderr for each frame that could not be processed.

    Rate-limited per frame source (``frame.source``: the file for images, the URL for a camera):
    one failing file is one line, but a camera sending garbage 30 times a second is one line,
    then at most one every ``every`` seconds that says how many failed meanwhile (and a last one
    at close)."""

    def __init__(self, stream: TextIO | None = None, prefix: str = "edgekit: ", every: float = 10.0,
                 clock: Any = None) -> None:
        import time

        self.stream = stream or sys.stderr
        self.prefix = prefix
        self.every = every
        self._clock = clock or time.monotonic
        self._said: dict[str, float] = {}  # source → when a line last said its failures
        self._held: dict[str, tuple[int, str]] = {}  # source → (failures not said since, the last one)

    def write(self, fr: Any) -> None:
        if fr.error is None:
            return
        source, now = str(fr.frame.source), self._clock()
        said = self._said.get(source)
        if said is not None and now - said < self.every:
            count, _ = self._held.get(source, (0, ""))
            self._held[source] = (count + 1, str(fr.error))
            return
        self._said[source] = now
        count, _ = self._held.pop(source, (0, ""))
        more = f" (and {count} more failed frame(s) of {source} in the last {self.every:g} s)" if count else ""
        self._print(f"{fr.error}{more}")

    def close(self) -> None:
        for source, (count, last) in self._held.items():
            self._print(f"{count} more failed frame(s) of {source} not shown; the last: {last}")
        self._held.clear()

    def _print(self, text: str) -> None:
        print(f"{self.prefix}{text}", file=self.stream, flush=True)


def _original(fr: Any, option: str) -> Any:
    """The full-size image to draw ``fr``'s boxes on (:meth:`~edgekit.frames.FrameResult.full_image`:
    an image file read again, a decoder's frame converted once). None, and one line on stderr,
    when it cannot be had: the file is gone or was rewritten since it was detected (a camera's
    ``latest.jpg``: the boxes belong to the old picture), the frame cannot be converted.

    Raises:
        ConfigError: the run did not keep the pixels (``RunOptions(keep_images=True)``).
    """
    from .errors import ImageError

    try:
        return fr.full_image()
    except ConfigError:
        raise ConfigError(f"{option} needs RunOptions(keep_images=True)") from None
    except ImageError as exc:
        frame = fr.frame
        what = frame.path if frame.path is not None else f"{frame.source} frame {frame.index}"
        why = str(exc)
        if frame.path is not None and why.startswith(f"{frame.path}: "):
            why = why[len(frame.path) + 2:]
        print(f"edgekit: {option}: left out {what}: {why}", file=sys.stderr, flush=True)
        return None


class AnnotatedImages:
    """Each processed frame, full size, with its boxes drawn, as a JPEG in ``out_dir``."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def write(self, fr: Any) -> None:
        from .annotate import save_annotated

        if fr.result is None:
            return
        full = _original(fr, "--save-annotated")
        if full is None:
            return
        try:
            name = fr.frame.source if fr.frame.path is not None else f"{fr.frame.source}-{fr.frame.index:06d}"
            save_annotated(full, fr.result.detections, self.out_dir, name)
        except OSError as exc:
            raise ConfigError(f"--save-annotated {self.out_dir}: cannot write ({exc.strerror or exc})") from None

    def close(self) -> None:
        pass


class AnnotatedVideo:
    """Each source's processed frames, with their boxes drawn, as one video file per source
    (``edgekit[video]``; codec and timing: :mod:`edgekit.videowriter`).

    One source writes ``path``; several write ``<stem>-<source stem><ext>`` beside it, one each
    (``out-cam1.mp4``, ``out-clip.mp4``; a repeated stem gets ``-1``, ``-2``…, in the order of
    ``sources``). Image files make one video of their source, shown at ``fps`` (or 30) per image.
    Frames that failed are skipped. ``close()`` finishes every file, so a run stopped by
    SIGTERM/SIGINT leaves playable videos (an MP4 killed outright has no index: prefer ``.mkv``
    where power cuts are likely). Each file is announced in one line on ``log`` (codec included)
    once its first frame is written.

    Args:
        path: the video file (``.mp4``, ``.mkv``, ``.avi``, ``.mov``, ``.m4v``).
        sources: the run's sources (or their names); a source's ``fps`` attribute, when it has one,
            is its video's frame rate.
        fps: the frame rate for sources that do not say theirs (the ``--fps`` cap); None: 30.
        log: where the one line per file goes (default stderr).

    Raises:
        ConfigError: at once if PyAV is missing or ``path`` cannot be written (unknown extension,
            missing folder …); from ``write``/``close`` if FFmpeg fails to write.
    """

    def __init__(self, path: str, sources: Sequence[Any] = (), fps: float | None = None,
                 log: TextIO | None = None) -> None:
        from .videowriter import check_output, choose_codec

        check_output(path)
        choose_codec(path)  # fail before the run, not at its first frame
        self.path = str(path)
        self.fps = fps
        self.log = log or sys.stderr
        self._sources = {getattr(s, "name", s): s for s in sources}
        self._writers: dict[str, Any] = {}
        self._paths: dict[str, str] = {}
        self._used: set[str] = set()
        for name in self._sources:
            self._path_for(name)

    def write(self, fr: Any) -> None:
        import numpy as np

        from .annotate import draw_detections

        if fr.result is None:
            return
        image = _original(fr, "--save-video")
        if image is None:
            return
        key = fr.source if fr.source in self._sources or len(self._sources) != 1 else next(iter(self._sources))
        writer = self._writer(key)
        writer.write(np.asarray(draw_detections(image, fr.result.detections)), fr.frame.timestamp)
        if writer.frames == 1:  # the file exists now: say where and how
            print(f"edgekit: annotated video of {key} -> {writer.path}: {writer.description}", file=self.log,
                  flush=True)

    def close(self) -> None:
        errors = []
        for writer in self._writers.values():
            try:
                writer.close()
            except ConfigError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def _path_for(self, key: str) -> str:
        if key not in self._paths:
            if not self._used and len(self._sources) <= 1:
                path = self.path
            else:
                root, ext = os.path.splitext(self.path)
                stem = os.path.splitext(os.path.basename(str(key).rstrip("/\\")))[0]
                stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "source"
                path, n = f"{root}-{stem}{ext}", 0
                while path.casefold() in self._used:
                    n += 1
                    path = f"{root}-{stem}-{n}{ext}"
            self._used.add(path.casefold())
            self._paths[key] = path
        return self._paths[key]

    def _writer(self, key: str) -> Any:
        writer = self._writers.get(key)
        if writer is None:
            from .videowriter import VideoWriter

            fps = getattr(self._sources.get(key), "fps", None) or self.fps
            writer = self._writers[key] = VideoWriter(self._path_for(key), fps)
        return writer
