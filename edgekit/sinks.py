"""Where results go: small objects with ``write(frame_result)`` and ``close()`` that the runner's
:func:`~edgekit.runner.run` hands every :class:`~edgekit.runner.FrameResult` to, in order.

- :class:`JsonLines` — one JSON line per processed frame (what ``edgekit detect`` prints);
- :class:`ErrorLog` — one line per frame that failed, naming it;
- :class:`MqttSink` — publishes through an :class:`edgekit.mqtt.Publisher`;
- :class:`AnnotatedImages` — writes each frame with its boxes drawn.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from .errors import ConfigError

__all__ = ["JsonLines", "ErrorLog", "MqttSink", "AnnotatedImages"]


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
    """Publish each processed frame (and its JPEG snapshot when the publisher is set to). With
    ``only_on_change``, a :class:`~edgekit.stages.ChangeGate` stage (per source) holds back frames
    whose per-label counts did not change."""

    def __init__(self, publisher: Any, model: str, only_on_change: bool = False) -> None:
        from .stages import ChangeGate

        self.publisher = publisher
        self.model = model
        self.stages = (ChangeGate(),) if only_on_change else ()

    def write(self, fr: Any) -> None:
        if fr.result is not None:
            self.publisher.publish_result(fr.result, self.model, fr.image, fr.result.latency_ms)

    def close(self) -> None:
        self.publisher.close()


class AnnotatedImages:
    """Each processed frame, full size, with its boxes drawn, as a JPEG in ``out_dir``."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def write(self, fr: Any) -> None:
        from .annotate import save_annotated
        from .image import load_image

        if fr.result is None:
            return
        try:
            # image files were decoded at reduced size for the model (draft): draw on the original
            full = load_image(fr.frame.path).image if fr.frame.path is not None else fr.image
            if full is None:
                raise ConfigError("annotating frames needs RunOptions(keep_images=True)")
            name = fr.frame.source if fr.frame.path is not None else f"{fr.frame.source}-{fr.frame.index:06d}"
            save_annotated(full, fr.result.detections, self.out_dir, name)
        except OSError as exc:
            raise ConfigError(f"--save-annotated {self.out_dir}: cannot write ({exc.strerror or exc})") from None

    def close(self) -> None:
        pass


