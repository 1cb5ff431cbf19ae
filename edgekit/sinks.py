"""Where results go: small objects with ``write(frame_result)`` and ``close()`` that the runner's
:func:`~edgekit.runner.run` hands every :class:`~edgekit.runner.FrameResult` to, in order.

- :class:`JsonLines` — one JSON line per processed frame (what ``edgekit detect`` prints);
- :class:`ErrorLog` — one line per frame that failed, naming it;
- :class:`MqttSink` — publishes through an :class:`edgekit.mqtt.Publisher`;
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

__all__ = ["AnnotatedImages", "AnnotatedVideo", "ErrorLog", "JsonLines", "MqttSink"]


class JsonLines:
    """One ``DetectionResult.to_json()`` line per processed frame."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def write(self, fr: Any) -> None:
        if fr.result is not None:
            print(fr.result.to_json(), file=self.stream, flush=True)

    def close(self) -> None:
        pass


class ErrorLog:
    """``edgekit: <error>`` on stderr for each frame that could not be processed."""

    def __init__(self, stream: TextIO | None = None, prefix: str = "edgekit: ") -> None:
        self.stream = stream or sys.stderr
        self.prefix = prefix

    def write(self, fr: Any) -> None:
        if fr.error is not None:
            print(f"{self.prefix}{fr.error}", file=self.stream, flush=True)

    def close(self) -> None:
        pass


class MqttSink:
    """Publish each processed frame through an :class:`edgekit.mqtt.Publisher`: its detections,
    the per-label counts that changed (retained), Home Assistant discovery for labels counted for
    the first time and a JPEG snapshot, as the publisher's settings say (the messages:
    :mod:`edgekit.payloads`, :mod:`edgekit.homeassistant`). The sink keeps the run's state
    (sequence number, last counts, announced labels) and the frame statistics that the publisher's
    ``stats`` topic carries (:mod:`edgekit.stats`: fps, latency, ms per stage; per source too).

    Its ``stages`` (applied by :func:`~edgekit.runner.run` before ``write``) count every processed
    frame for the statistics, then, with ``only_on_change``, a :class:`~edgekit.stages.ChangeGate`
    (per source) holds back frames whose per-label counts did not change.

    Args:
        publisher: a started Publisher; the sink closes it.
        model: the model's path (its file name goes in each message).
        only_on_change: publish a frame only when its per-label counts changed (per source);
            None: as the publisher's settings say (``MqttSettings.only_on_change``).
        sources: the runner's per-source counters (``Runner.stats``) for the stats topic.
    """

    def __init__(self, publisher: Any, model: str, only_on_change: bool | None = None,
                 sources: Sequence[Any] = ()) -> None:
        from .stages import ChangeGate
        from .stats import CounterRates, FrameWindow

        self.publisher = publisher
        self.model = model
        self.frames = FrameWindow()
        self.sources = sources
        self._rates = CounterRates(sources) if sources else None
        if only_on_change is None:
            only_on_change = bool(getattr(publisher.settings, "only_on_change", False))
        self._gate = ChangeGate() if only_on_change else None
        self.stages = (self._count,) if self._gate is None else (self._count, self._gate)
        self._seq = 0
        self._counts: dict[str, int] = {}
        self._announced: set[str] = set()
        theirs = getattr(publisher, "extra_stats", None)  # a user's own fields stay, after ours
        publisher.extra_stats = self.stats_fields if theirs is None else (lambda: {**self.stats_fields(), **theirs()})

    def _count(self, fr: Any) -> Any:
        """Stage: every processed frame counts for the statistics, published or not."""
        if fr.result is not None:
            self.frames.add(fr.source, fr.result.latency_ms, fr.timings)
        return fr

    def write(self, fr: Any) -> None:
        if fr.result is not None:
            self._publish(fr.result, fr.image, self.model, fr.source)

    def publish_result(self, result: Any, image: Any = None, latency_ms: float | None = None,
                       model: str | None = None) -> str | None:
        """Publish one result without the runner (``Publisher.publish_result``): it counts for the
        statistics (with ``latency_ms``); with ``only_on_change`` a result whose counts did not
        change is held back (returns None); else returns the event id. ``model``: instead of the
        sink's."""
        from .frames import Frame
        from .runner import FrameResult

        self.frames.add(result.source, latency_ms)
        # results handed in one by one are one scene: one source name for the gate
        if self._gate is not None and self._gate(FrameResult(Frame("", 0, 0.0, 0.0), result)) is None:
            return None
        return self._publish(result, image, self.model if model is None else model, result.source)

    def _publish(self, result: Any, image: Any, model: str, source: str) -> str:
        import os
        import time
        import uuid

        from . import payloads
        from .homeassistant import discovery_messages
        from .stages import label_counts

        started = time.perf_counter()
        s = self.publisher.settings
        counts = label_counts(result.detections)
        self._seq += 1
        event_id = uuid.uuid4().hex
        name = os.path.basename(model)
        messages = [payloads.detection_message(s, result, event_id=event_id, seq=self._seq, model=name)]
        if s.ha_discovery:  # announce before the first count, so Home Assistant has the entity for it
            new = [lbl for lbl in payloads.changed_labels(self._counts, counts) if lbl not in self._announced]
            messages += discovery_messages(s, new)
            self._announced.update(new)
        messages += payloads.count_messages(s, self._counts, counts)
        self._counts = counts
        if s.snapshot and image is not None:
            messages.append(payloads.Message(s.topic("snapshot"), payloads.snapshot_jpeg(image), s.qos))
        for message in messages:
            self.publisher.publish(*message)
        self.frames.add_time("publish", (time.perf_counter() - started) * 1000, source)
        return event_id

    def stats_fields(self) -> dict[str, Any]:
        """The stats topic's fields about the run (:func:`edgekit.stats.stats_fields`)."""
        from .stats import stats_fields

        return stats_fields(self.frames, self.sources, self._rates)

    def close(self) -> None:
        self.publisher.close()


def _original(fr: Any, option: str) -> Any:
    """The full-size image to draw ``fr``'s boxes on: an image file is read again (it was decoded
    at reduced size for the model), other frames are the decoded image the runner kept. None, and
    one line on stderr, when the file is gone or was rewritten since it was detected (a camera's
    ``latest.jpg``: the boxes belong to the old picture)."""
    from .errors import ImageError
    from .image import load_image
    from .sources.files import file_changed

    if fr.frame.path is None:
        if fr.image is None:
            raise ConfigError(f"{option} needs RunOptions(keep_images=True)")
        return fr.image
    why = "it was rewritten since it was detected" if file_changed(fr.frame) else None
    if why is None:
        try:
            return load_image(fr.frame.path).image
        except ImageError as exc:
            why = str(exc)
    print(f"edgekit: {option}: left out {fr.frame.path}: {why}", file=sys.stderr, flush=True)
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
