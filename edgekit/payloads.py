"""What edgekit publishes over MQTT, as pure functions: no paho, no network, no files.

Each function returns bytes or :class:`Message` values (topic, payload, QoS, retain) that a
:class:`~edgekit.mqtt.Publisher` queues with ``publisher.publish(*message)``; the per-sink state
(sequence numbers, last counts, announced labels) lives in :class:`~edgekit.sinks.MqttSink`.
Topics are ``<prefix>/<device_id>/…`` from ``MqttSettings.topic``.

Detections payload (``schema`` names the version; fields are only ever added; JSON Schema in
``edgekit/schemas/detections-1.json``)::

    {"schema": "edgekit.detections/1", "event_id": "8f0c…", "seq": 17, "timestamp": "2026-11-22T10:00:00.123Z",
     "device": "pi-garage", "source": "frame.jpg", "model": "detect.tflite", "width": 1352, "height": 900,
     "detections": [{"label": "person", "class_id": 0, "score": 0.75, "box": [67.6, 515.9, 92.1, 556.7]}]}
"""

from __future__ import annotations

import datetime as _dt
import io
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .mqtt import MqttSettings
    from .results import DetectionResult

__all__ = [
    "SCHEMA",
    "Message",
    "changed_labels",
    "count_messages",
    "detection_message",
    "detection_payload",
    "snapshot_jpeg",
    "source_status_message",
    "topic_safe",
    "utc_stamp",
]

SCHEMA = "edgekit.detections/1"


class Message(NamedTuple):
    """One MQTT message to queue: ``publisher.publish(*message)``."""

    topic: str
    payload: bytes
    qos: int
    retain: bool = False


def topic_safe(label: str) -> str:
    """``label`` as one topic level: ``/``, ``+``, ``#`` and whitespace become ``_``."""
    return "".join("_" if c in "/+#" or c.isspace() else c for c in label) or "_"


def utc_stamp(now: _dt.datetime | None = None) -> str:
    """``2026-11-22T10:00:00.123Z``: UTC to the millisecond (``now``: the current time)."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def detection_payload(result: DetectionResult, *, event_id: str, seq: int, device: str, model: str,
                      now: _dt.datetime | None = None) -> bytes:
    """The ``detections`` message for one image or frame (schema ``edgekit.detections/1``).

    ``timestamp`` is when the message was made (``now``); the frame's own stream/capture time, when
    the result has one, is ``frame_timestamp``.
    """
    body = result.to_dict()
    body.pop("source")
    if "timestamp" in body:  # the frame's stream/capture time; "timestamp" is the message's (version 1)
        body["frame_timestamp"] = body.pop("timestamp")
    doc = {"schema": SCHEMA, "event_id": event_id, "seq": seq, "timestamp": utc_stamp(now),
           "device": device, "source": result.source, "model": model, **body}
    return json.dumps(doc, separators=(",", ":")).encode()


def detection_message(settings: MqttSettings, result: DetectionResult, *, event_id: str, seq: int,
                      model: str) -> Message:
    """The ``detections`` message on ``<prefix>/<device>/detections`` at the settings' QoS."""
    payload = detection_payload(result, event_id=event_id, seq=seq, device=settings.device_id, model=model)
    return Message(settings.topic("detections"), payload, settings.qos)


def changed_labels(previous: Mapping[str, int], counts: Mapping[str, int]) -> list[str]:
    """Labels whose count differs between ``previous`` and ``counts`` (absent = 0), sorted."""
    return sorted(label for label in set(previous) | set(counts) if previous.get(label, 0) != counts.get(label, 0))


def count_messages(settings: MqttSettings, previous: Mapping[str, int], counts: Mapping[str, int]) -> list[Message]:
    """Retained ``counts/<label>`` messages for the labels whose count changed from ``previous``
    to ``counts`` (a label that disappeared gets ``0``), in label order."""
    return [Message(settings.topic("counts", topic_safe(label)), str(counts.get(label, 0)).encode(), settings.qos,
                    True) for label in changed_labels(previous, counts)]


def source_status_message(settings: MqttSettings, source: str, status: str, reason: str = "",
                          now: _dt.datetime | None = None) -> Message:
    """A source's state (``up``/``down`` + reason, since when), retained, QoS 1, on
    ``<prefix>/<device>/sources/<name>/status``."""
    doc = {"source": source, "status": status, "reason": reason, "since": utc_stamp(now)}
    return Message(settings.topic("sources", topic_safe(source), "status"),
                   json.dumps(doc, separators=(",", ":")).encode(), 1, True)


def snapshot_jpeg(image: Any, max_side: int = 640) -> bytes:
    """``image`` (a PIL image) as a JPEG of at most ``max_side`` pixels a side, quality 80."""
    img = image.convert("RGB")  # a copy: thumbnail() below must not shrink the caller's image
    img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue()
