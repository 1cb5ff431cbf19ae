"""What edgekit publishes over MQTT, as pure functions: no paho, no network, no files.

Each function returns bytes or :class:`Message` values (topic, payload, QoS, retain) that a
:class:`~edgekit.mqtt.Publisher` queues with ``publisher.publish(*message)``; the per-sink state
(sequence numbers, last counts, announced labels) lives in :class:`~edgekit.mqtt.sink.MqttSink`.

Topics (``<prefix>/<device_id>/…``, prefix ``edgekit``; ``<source>``, ``<zone>`` and ``<label>``
as one topic level each, see :func:`topic_safe`)::

    detections                 one message per processed frame (schema "edgekit.detections/3"; off
                               with ``detections = false``)
    counts/<label>             retained: how many <label> the latest frame had (sent on change)
    events                     QoS 1: new / update / end of tracked objects (schema "edgekit.events/1")
    <source>/<zone|all>/<label|all>         retained: tracked objects there now
    <source>/<zone|all>/<label|all>/active  retained: the same, leaving out stationary objects
    <source>/<zone>/<label>/transition      QoS 1, not retained: "entered" / "left", the bare word
                               (schema edgekit/schemas/transition-1.json; HA's device triggers)
    <source>/motion            retained "ON" / "OFF" (motion gating)
    status                     retained "online" / "offline"; "offline" is also the last will (on a
                               clean exit the retained counts go to 0 first: Publisher.close)
    stats                      every stats_interval: fps, latency, per-stage ms, per-source counters,
                               RSS, messages queued/sent/dropped, connection state
    snapshot                   JPEG of each published frame (off by default: ``snapshot``)
    <source>/<label>/snapshot  retained JPEG: the best picture of the latest object of that label, box
                               drawn (``--snapshots``); ``…/snapshot/crop`` the object alone
    sources/<name>/status      retained: a source's "up" / "down" and why

With ``frigate = true`` the same events and counts also go where Frigate puts them, so that its
consumers work unchanged: ``frigate/events``, ``frigate/<camera>/<label>`` (+ ``/active``,
``all``), ``frigate/<zone>/<label>`` and ``frigate/<camera>/<label>/snapshot`` (the crop)
(``frigate_prefix`` sets ``frigate``).

Detections payload (``schema`` names the version; fields are only ever added; JSON Schemas in
``edgekit/schemas/``: version 2 adds ``track_id`` per detection when tracking)::

    {"schema": "edgekit.detections/3", "event_id": "8f0c…", "seq": 17, "timestamp": "2026-11-22T10:00:00.123Z",
     "device": "pi-garage", "source": "frame.jpg", "model": "detect.tflite", "width": 1352, "height": 900,
     "detections": [{"label": "person", "class_id": 0, "score": 0.75, "box": [67.6, 515.9, 92.1, 556.7]}]}
"""

from __future__ import annotations

import datetime as _dt
import io
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import MessageRefused

if TYPE_CHECKING:
    from .settings import MqttSettings
    from ..results import DetectionResult

__all__ = [
    "SCHEMA",
    "STATS_SCHEMA",
    "Message",
    "at_rest_messages",
    "MAX_PAYLOAD_BYTES",
    "MAX_TOPIC_BYTES",
    "MessageRefused",
    "changed_labels",
    "check_message",
    "count_messages",
    "detection_message",
    "detection_payload",
    "event_messages",
    "event_payload",
    "object_count_messages",
    "object_snapshot_messages",
    "snapshot_jpeg",
    "source_status_message",
    "topic_safe",
    "utc_stamp",
]

SCHEMA = "edgekit.detections/3"
STATS_SCHEMA = "edgekit.stats/1"  # the stats topic (edgekit/schemas/stats-1.json)

MAX_TOPIC_BYTES = 65_535  # MQTT: a UTF-8 string has a 2-byte length
MAX_PACKET_BYTES = 268_435_455  # MQTT: the largest "remaining length" of a packet
MAX_PAYLOAD_BYTES = MAX_PACKET_BYTES - 2 - 2 - 1  # minus the topic length, packet id and (MQTT 5) properties


def check_message(topic: Any, payload: Any, qos: int = 1) -> None:
    """Refuse, before it is queued, what the MQTT spec forbids in a PUBLISH (a broker closes the
    connection on it, and paho raises in its thread): a topic that is not a non-empty UTF-8 string,
    holds U+0000, a control character (U+0001-U+001F, U+007F-U+009F, refused by mosquitto) or a
    wildcard (``+``, ``#``), or is longer than 65,535 bytes encoded; a payload that is not bytes or
    makes the packet longer than 268,435,455 bytes.

    Raises:
        MessageRefused: says which rule, and what was found.
    """
    if not isinstance(topic, str) or not topic:
        raise MessageRefused(f"an MQTT topic must be a non-empty string, found {topic!r:.80}")
    try:
        encoded = topic.encode("utf-8")
    except UnicodeEncodeError:
        raise MessageRefused(f"the topic {topic!r:.80} is not valid UTF-8 (a lone surrogate)") from None
    bad = next((c for c in topic if c in "+#" or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F), None)
    if bad is not None:
        what = "a wildcard" if bad in "+#" else "U+0000 (NUL)" if bad == "\0" else f"the control character U+{ord(bad):04X}"
        raise MessageRefused(f"the topic {topic!r:.80} holds {what}, which MQTT does not allow in a published topic")
    if len(encoded) > MAX_TOPIC_BYTES:
        raise MessageRefused(f"the topic {topic[:60]!r}… is {len(encoded):,} bytes long; MQTT allows at most "
                             f"{MAX_TOPIC_BYTES:,}")
    if not isinstance(payload, (bytes, bytearray)):
        raise MessageRefused(f"an MQTT payload must be bytes, found {type(payload).__name__}")
    size = 2 + len(encoded) + (2 if qos else 0) + 1 + len(payload)
    if size > MAX_PACKET_BYTES:
        raise MessageRefused(f"the message on {topic[:80]!r} is {size:,} bytes; MQTT allows at most "
                             f"{MAX_PACKET_BYTES:,} bytes per packet")


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
    """The ``detections`` message for one image or frame (schema ``edgekit.detections/3``).

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


def event_payload(event: Any, *, device: str, now: _dt.datetime | None = None) -> bytes:
    """One event as JSON: Frigate's ``{"type", "before", "after"}`` plus ``schema``
    (``edgekit.events/1``), ``device`` and ``timestamp`` (when it was queued)."""
    from ..events import EVENTS_SCHEMA

    doc = {"schema": EVENTS_SCHEMA, "device": device, "timestamp": utc_stamp(now), **event.to_dict()}
    return json.dumps(doc, separators=(",", ":")).encode()


def event_messages(settings: MqttSettings, event: Any) -> list[Message]:
    """The event on ``<prefix>/<device>/events`` at QoS 1 (and ``frigate/events`` with ``frigate``)."""
    payload = event_payload(event, device=settings.device_id)
    messages = [Message(settings.topic("events"), payload, 1)]
    if settings.frigate:
        messages.append(Message(f"{settings.frigate_prefix}/events", payload, 1))
    return messages


def _with_totals(counts: Mapping[str, Mapping[str, tuple[int, int]]]) -> dict[tuple[str, str], tuple[int, int]]:
    flat: dict[tuple[str, str], tuple[int, int]] = {}
    for zone, labels in counts.items():
        total = [0, 0]
        for label, (count, active) in labels.items():
            flat[(zone, label)] = (count, active)
            total[0] += count
            total[1] += active
        flat[(zone, "all")] = (total[0], total[1])
    return flat


def object_count_messages(settings: MqttSettings, source: str,
                          previous: Mapping[str, Mapping[str, tuple[int, int]]],
                          counts: Mapping[str, Mapping[str, tuple[int, int]]]) -> list[Message]:
    """Retained counts of tracked objects per zone (or ``all``) and label (or ``all``) of one
    source — ``(count, active)`` from :func:`edgekit.events.object_counts` — for those that
    changed from ``previous`` (gone = 0): ``<prefix>/<device>/<source>/<zone>/<label>`` and
    ``…/active``; with ``frigate``, also ``frigate/<camera>/<label>`` (zone ``all``) and
    ``frigate/<zone>/<label>``."""
    before, now = _with_totals(previous), _with_totals(counts)
    messages: list[Message] = []
    for zone, label in sorted(set(before) | set(now)):
        old, new = before.get((zone, label), (0, 0)), now.get((zone, label), (0, 0))
        if old == new:
            continue
        levels = [topic_safe(source), topic_safe(zone), topic_safe(label)]
        frigate = [topic_safe(source) if zone == "all" else topic_safe(zone), topic_safe(label)]
        for suffix, value, was in (((), new[0], old[0]), (("active",), new[1], old[1])):
            if value == was:
                continue
            messages.append(Message(settings.topic(*levels, *suffix), str(value).encode(), settings.qos, True))
            if settings.frigate:
                messages.append(Message("/".join((settings.frigate_prefix, *frigate, *suffix)), str(value).encode(),
                                        settings.qos, True))
    return messages


def object_snapshot_messages(settings: MqttSettings, snapshot: Any) -> list[Message]:
    """A tracked object's best picture, retained: the full frame with its box on
    ``<prefix>/<device>/<source>/<label>/snapshot``, the crop on ``…/snapshot/crop`` (and on
    ``frigate/<camera>/<label>/snapshot`` with ``frigate``)."""
    base = (topic_safe(snapshot.source), topic_safe(snapshot.label), "snapshot")
    messages = [Message(settings.topic(*base), snapshot.frame_jpeg, settings.qos, True),
                Message(settings.topic(*base, "crop"), snapshot.crop_jpeg, settings.qos, True)]
    if settings.frigate:
        messages.append(Message("/".join((settings.frigate_prefix, *base)), snapshot.crop_jpeg, settings.qos, True))
    return messages


def at_rest_messages(settings: MqttSettings, retained: Iterable[tuple[str, tuple[bytes, int]]]) -> list[Message]:
    """What a run that ends cleanly publishes so that its retained states stop claiming what it
    last saw (``retained``: topic -> (payload, QoS) of each retained message it published): a
    count (a positive integer: ``counts/<label>``, tracked-object counts, Frigate's) becomes
    ``0``, a source's ``up`` status ``down`` (reason ``edgekit stopped``). Discovery configs,
    snapshots and ``<source>/motion`` (it goes OFF by its own off delay) are left as they are."""
    sources = settings.topic("sources") + "/"
    rest: list[Message] = []
    for topic, (payload, qos) in retained:
        if payload.isdigit() and payload.strip(b"0"):
            rest.append(Message(topic, b"0", qos, True))
        elif topic.startswith(sources) and topic.endswith("/status"):
            try:
                doc = json.loads(payload)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("status") == "up":
                down = source_status_message(settings, str(doc.get("source", "")), "down", "edgekit stopped")
                rest.append(Message(topic, down.payload, down.qos, True))
    return rest
