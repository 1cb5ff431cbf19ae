"""The runner's MQTT sink: composes the pure messages of :mod:`edgekit.mqtt.payloads` and
:mod:`edgekit.mqtt.homeassistant` for each frame and queues them on a
:class:`~edgekit.mqtt.publisher.Publisher`."""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any

from . import homeassistant, payloads
from ..errors import ImageError

__all__ = ["MqttSink"]


class MqttSink:
    """Publish each frame through a Publisher, as its settings say:

    - the frame's detections (``detections``; with ``only_on_change`` only when its per-label
      counts changed, per source), the per-label counts that changed (retained) and a JPEG
      snapshot (``snapshot``);
    - when the run tracks objects: every event (QoS 1, through the outbox like everything else)
      and the retained counts of tracked objects per source, zone and label — from every frame,
      whatever ``only_on_change`` holds back;
    - Home Assistant discovery (``ha_discovery``) for each label when first counted.

    The sink keeps the run's publishing state (sequence number, last counts, announced labels);
    the run's frame statistics are a :class:`~edgekit.stats.RunStats` it is given (the stats
    topic carries them), not its own.

    With ``ha_discovery`` it announces at start the entities it already knows of — the labels
    the run allows, each zone × label, each live source's stream, the diagnostics — and the
    rest when first counted (again after ``edgekit ha-remove`` took one away). At start it also
    clears what a previous run left retained: a count it has not published itself is set to 0,
    so an empty scene after a restart does not keep ``dog_present`` on.

    Args:
        publisher: a started Publisher; the sink closes it.
        model: the model's path (its file name goes in each detections message).
        only_on_change: None: as the publisher's settings say.
        stats: the run's statistics (``RunStats`` with the runner's per-source counters); None:
            the sink counts the frames it is given itself.
        labels: the labels the run allows (announced at start), if it restricts them.
        zones: ``(source name, Zone)`` pairs of the run (their entities are announced at start).
        live_sources: names of the sources that report up/down (a connectivity entity each).
        motion_off_delay: seconds without motion before a source's retained ``<source>/motion``
            goes OFF (published when the run gates by motion: results carry ``motion``); one for
            every source, or a mapping of source names to theirs.
    """

    def __init__(self, publisher: Any, model: str, only_on_change: bool | None = None, stats: Any = None,
                 labels: Any = (), zones: Any = (), live_sources: Any = (), motion_off_delay: Any = None) -> None:
        from ..gate import OFF_DELAY, MotionState
        from ..stages import ChangeGate
        from ..stats import RunStats

        self._motion = MotionState(OFF_DELAY if motion_off_delay is None else motion_off_delay)
        self._motion_announced: set[str] = set()

        self.publisher = publisher
        self.model = model
        self._own_stats = stats is None
        self.stats = RunStats() if stats is None else stats
        if only_on_change is None:
            only_on_change = bool(getattr(publisher.settings, "only_on_change", False))
        self._gate = ChangeGate() if only_on_change else None
        self._seq = 0
        self._counts: dict[str, int] = {}
        self._objects: dict[str, dict[str, dict[str, tuple[int, int]]]] = {}  # source -> zone -> label -> counts
        self._announced: set[str] = set()
        self._lock = threading.Lock()
        self._announced_topics: dict[str, str] = {}  # discovery topic -> label (label entities)
        self._zone_announced: set[tuple[str, str, str]] = set()
        self._several = len({source for source, _zone in zones}) > 1
        theirs = getattr(publisher, "extra_stats", None)  # a user's own fields stay, after ours
        publisher.extra_stats = self.stats.fields if theirs is None else (lambda: {**self.stats.fields(), **theirs()})
        self._listen()
        if publisher.settings.ha_discovery:
            self._announce_known(labels or (), zones, live_sources)

    def _listen(self) -> None:
        s = self.publisher.settings
        subscribe = getattr(self.publisher, "subscribe", None)
        if subscribe is None:  # a stand-in publisher (tests) that only records
            return
        for pattern in (s.topic("counts", "+"), s.topic("+", "+", "+"), s.topic("+", "+", "+", "active")):
            subscribe(pattern, self._on_retained_count)
        if s.ha_discovery:
            subscribe(f"{s.ha_prefix}/+/edgekit_{s.device_id}/+/config", self._on_discovery)

    def _on_retained_count(self, message: Any) -> None:
        """A count left retained by an earlier run (not one we published): it says 0 now."""
        if not message.retain or not message.payload.isdigit() or message.payload == b"0":
            return
        if self.publisher.published_retained(message.topic) is None:
            self.publisher.publish(message.topic, b"0", self.publisher.settings.qos, retain=True)

    def _on_discovery(self, message: Any) -> None:
        """An entity removed (``edgekit ha-remove``): announce it again when its label is counted."""
        if message.payload:
            return
        with self._lock:
            label = self._announced_topics.pop(message.topic, None)
            if label is not None:
                self._announced.discard(label)
                for topic in [t for t, lbl in self._announced_topics.items() if lbl == label]:
                    del self._announced_topics[topic]
        forget = getattr(self.publisher, "forget_retained", None)
        if forget is not None:
            forget(message.topic)

    def _announce_known(self, labels: Any, zones: Any, live_sources: Any) -> None:
        s = self.publisher.settings
        messages = homeassistant.configs_messages([homeassistant.diagnostic_configs(s)])
        messages += homeassistant.configs_messages(homeassistant.source_configs(s, name) for name in live_sources)
        with self._lock:
            messages += self._announce_labels(sorted(labels))
        for source, zone in zones:
            for label in sorted(zone.labels or labels or ()):
                messages += self._announce_zone(source, zone.name, label)
        for message in messages:
            self.publisher.publish(*message)

    def _announce_labels(self, labels: Any) -> list:
        s = self.publisher.settings
        new = [lbl for lbl in labels if lbl not in self._announced]
        for label in new:
            self._announced.add(label)
            for topic in homeassistant.ha_discovery_configs(s, label):
                self._announced_topics[topic] = label
        return homeassistant.discovery_messages(s, new)

    def _announce_zone(self, source: str, zone: str, label: str) -> list:
        if (source, zone, label) in self._zone_announced or not self.publisher.settings.ha_discovery:
            return []
        self._zone_announced.add((source, zone, label))
        return homeassistant.configs_messages(
            [homeassistant.zone_configs(self.publisher.settings, source, zone, label, self._several)])

    def write(self, fr: Any) -> None:
        if fr.result is None and not fr.end_of_source:
            return
        if self._own_stats:
            self.stats.count(fr)
        started = time.perf_counter()
        messages = self._event_messages(fr) + self._motion_messages(fr)
        if fr.result is not None and (self._gate is None or self._gate(fr) is not None):
            # the full-size picture only for a snapshot (a video frame is converted for it alone)
            image = None
            if self.publisher.settings.snapshot and fr.has_full_image():
                try:
                    image = fr.full_image()
                except ImageError:
                    pass  # a file rewritten since it was detected: no snapshot, the counts still go out
            messages += self._frame_messages(fr.result, image, self.model)
        for message in messages:
            self.publisher.publish(*message)
        if fr.result is not None:
            self.stats.add_time("publish", (time.perf_counter() - started) * 1000, fr.source)

    def publish_result(self, result: Any, image: Any = None, latency_ms: float | None = None,
                       model: str | None = None) -> str | None:
        """Publish one result without the runner (``Publisher.publish_result``): it counts for the
        statistics (with ``latency_ms``); with ``only_on_change`` a result whose counts did not
        change is held back (returns None); else returns the detections message's event id."""
        from ..frames import Frame, FrameResult

        self.stats.frames.add(result.source, latency_ms)
        # results handed in one by one are one scene: one source name for the gate
        if self._gate is not None and self._gate(FrameResult(Frame("", 0, 0.0, 0.0), result)) is None:
            return None
        event_id = uuid.uuid4().hex
        for message in self._frame_messages(result, image, self.model if model is None else model, event_id):
            self.publisher.publish(*message)
        return event_id

    def close(self) -> None:
        self.publisher.close()

    # -- messages -----------------------------------------------------------------------------
    def _frame_messages(self, result: Any, image: Any, model: str, event_id: str | None = None) -> list:
        from ..stages import label_counts

        s = self.publisher.settings
        counts = label_counts(result.detections)
        messages = []
        if s.detections:
            self._seq += 1
            messages.append(payloads.detection_message(s, result, event_id=event_id or uuid.uuid4().hex,
                                                       seq=self._seq, model=os.path.basename(model)))
        with self._lock:
            if s.ha_discovery:  # announce before the first count, so Home Assistant has the entity for it
                messages += self._announce_labels(sorted(set(payloads.changed_labels(self._counts, counts)) |
                                                         set(counts)))
            messages += payloads.count_messages(s, self._counts, counts)
            self._counts = counts
        if s.snapshot and image is not None:
            messages.append(payloads.Message(s.topic("snapshot"), payloads.snapshot_jpeg(image), s.qos))
        return messages

    def _motion_messages(self, fr: Any) -> list:
        """The source's motion state, retained, when it changes (and its entity before the first)."""
        if fr.motion is None or fr.result is None:
            return []
        state = self._motion.update(fr.source, bool(fr.motion.moving), fr.frame.timestamp)
        if state is None:
            return []
        s = self.publisher.settings
        messages = []
        if s.ha_discovery and fr.source not in self._motion_announced:
            self._motion_announced.add(fr.source)
            messages += homeassistant.configs_messages([homeassistant.motion_configs(s, fr.source)])
        messages.append(payloads.Message(s.topic(payloads.topic_safe(fr.source), "motion"), state.encode(), s.qos, True))
        return messages

    def _event_messages(self, fr: Any) -> list:
        from ..events import object_counts

        if fr.tracks is None:
            return []
        s = self.publisher.settings
        messages = []
        for snap in fr.snapshots or ():  # before the events that say has_snapshot
            messages += payloads.object_snapshot_messages(s, snap)
        for event in fr.events or ():
            messages += payloads.event_messages(s, event)
        now = {} if fr.end_of_source else object_counts(fr.tracks, fr.zones)
        for zone, labels in now.items():
            if zone != "all":
                for label in labels:
                    messages += self._announce_zone(fr.source, zone, label)
        before = self._objects.get(fr.source, {})
        messages += payloads.object_count_messages(s, fr.source, before, now)
        self._objects[fr.source] = now
        messages += self._transition_messages(fr)
        return messages

    def _transition_messages(self, fr: Any) -> list:
        """``entered`` / ``left`` per zone × label (the device triggers' topic), QoS 1."""
        if fr.zones is None or not fr.zones.transitions:
            return []
        labels = {t.id: t.label for t in (*fr.tracks.tracks, *fr.tracks.ended)}
        s = self.publisher.settings
        return [payloads.Message(homeassistant.transition_topic(s, fr.source, t.zone, labels[t.track_id]),
                                 t.kind.encode(), 1)
                for t in fr.zones.transitions if t.kind in ("entered", "left") and t.track_id in labels]
