"""Stages between decode-outputs and the sinks: small objects with ``__call__(frame_result)`` that
return the result to pass on — the same, or an enriched copy (``dataclasses.replace``) — or None
to hold it back. The :class:`~edgekit.runner.Runner` applies its stages in order, then
:func:`~edgekit.runner.run` its own and each sink's.

What happened, in three stages that each keep per-source state and know nothing of each other
but the fields they read:

- :class:`Tracking` — gives detections a ``track_id`` (:mod:`edgekit.track`), sets
  ``FrameResult.tracks``;
- :class:`ZoneStage` — which zones each tracked object is in (:mod:`edgekit.zones`), sets
  ``FrameResult.zones``;
- :class:`EventStage` — ``new`` / ``update`` / ``end`` events (:mod:`edgekit.events`), sets
  ``FrameResult.events``.

:func:`event_stages` composes them. :class:`ChangeGate` is "only on change" for MQTT.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, TextIO

__all__ = ["ChangeGate", "EventStage", "Tracking", "ZoneStage", "event_stages", "label_counts"]


def label_counts(detections: Any) -> dict[str, int]:
    """Detections per label."""
    counts: dict[str, int] = {}
    for d in detections:
        counts[d.label] = counts.get(d.label, 0) + 1
    return counts


class ChangeGate:
    """Pass a frame only when its per-label counts differ from the last frame passed from the same
    source (the first frame of each source always passes); failed frames and a source's end
    always pass."""

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


def frame_time(fr: Any) -> float:
    """The time a frame's tracks and zones run on: its timestamp, except still image files (no
    timeline: every image says 0), which are taken as one image per second in order."""
    if fr.frame.path is not None and fr.frame.timestamp == 0.0:
        return float(fr.frame.index)
    return float(fr.frame.timestamp)


class Tracking:
    """Track objects per source (one :class:`~edgekit.track.Tracker` each).

    The detector runs with a lower score threshold than the user's (``options.low_score``) so that
    weak detections can keep tracks alive (ByteTrack's second stage); this stage reports the
    detections at or above ``threshold``, each with its confirmed track's id (None until the track
    is confirmed), plus the weaker ones matched to a track that once scored twice ``threshold`` (a
    person half hidden is still that person; a stray box's track never reports its weak ones), and
    marks the result ``tracked``. A frame gated by motion (not inferred: the last detections
    again) only holds the confirmed tracks: a stray box repeated is never confirmed by it. At a
    source's end every track ends.

    Args:
        options: :class:`~edgekit.track.TrackerOptions` (None: defaults with ``high_score =
            threshold``).
        threshold: the user's score threshold.
        log: where the one note about a capped frame goes (default stderr).
    """

    def __init__(self, options: Any = None, threshold: float | None = None, log: TextIO | None = None) -> None:
        from .track import TrackerOptions

        if options is None:
            defaults = TrackerOptions()
            options = defaults if threshold is None else TrackerOptions(
                high_score=threshold, low_score=min(defaults.low_score, threshold))
        self.options = options
        self.threshold = options.high_score if threshold is None else threshold
        self.log = log
        self._trackers: dict[str, Any] = {}
        self._held: dict[str, tuple] = {}  # per source, the last inferred frame's track ids
        self._capped_said = False

    def __call__(self, fr: Any) -> Any:
        from .track import Tracker, TrackUpdate

        if fr.end_of_source:
            self._held.pop(fr.source, None)
            tracker = self._trackers.pop(fr.source, None)
            ended = tracker.flush() if tracker is not None else ()
            return replace(fr, tracks=TrackUpdate((), (), tuple(ended)))
        if fr.result is None:
            return fr
        tracker = self._trackers.get(fr.source)
        if tracker is None:
            tracker = self._trackers[fr.source] = Tracker(self.options)
        result = fr.result
        dets = result.detections
        if fr.gated:  # not inferred (no motion): the last detections again; only confirmed tracks hold
            ids = self._held.get(fr.source)
            if ids is not None and len(ids) == len(dets):
                dets = tuple(d for d, tid in zip(dets, ids) if tid is not None)
        update = tracker.update(dets, frame_time(fr), (result.width, result.height))
        if not fr.gated:
            self._held[fr.source] = update.track_ids
        if update.capped and not self._capped_said:
            self._capped_said = True
            print(f"edgekit: note: {fr.source}: {len(result.detections)} detections in one frame; tracking the "
                  f"{len(result.detections) - update.capped} best (tracker max_detections)",
                  file=self.log or sys.stderr, flush=True)
        strong = {tr.id for tr in update.tracks if tr.top_score >= 2 * self.threshold}
        kept = tuple(replace(d, track_id=tid) for d, tid in zip(dets, update.track_ids)
                     if d.score >= self.threshold or tid in strong)
        return replace(fr, result=replace(result, detections=kept, tracked=True), tracks=update)


class ZoneStage:
    """Which zones each tracked object of a source is in (needs :class:`Tracking` before it).

    Args:
        zones: :class:`~edgekit.zones.Zone` values; a zone whose ``source`` is None applies to every
            source, else only to the source of that name.
    """

    def __init__(self, zones: Sequence[Any]) -> None:
        self.zones = tuple(zones)
        self._per_source: dict[str, Any] = {}
        self._sizes: dict[str, tuple[int, int]] = {}

    def __call__(self, fr: Any) -> Any:
        from .zones import Zones

        if fr.tracks is None:
            return fr
        state = self._per_source.get(fr.source)
        if state is None:
            state = self._per_source[fr.source] = Zones([z for z in self.zones if z.source in (None, fr.source)])
        if fr.end_of_source:
            size = self._sizes.pop(fr.source, None)
            self._per_source.pop(fr.source, None)
            if size is None:
                return fr
            return replace(fr, zones=state.update((), _last_seen(fr.tracks.ended), size, ended=fr.tracks.ended))
        size = (fr.result.width, fr.result.height)
        self._sizes[fr.source] = size
        return replace(fr, zones=state.update(fr.tracks.tracks, frame_time(fr), size, ended=fr.tracks.ended))


def _last_seen(tracks: Sequence[Any]) -> float:
    return max((t.last_seen for t in tracks), default=0.0)


class EventStage:
    """``new`` / ``update`` / ``end`` events per source (needs :class:`Tracking`, and
    :class:`ZoneStage` for zones, before it). ``FrameResult.events`` is a tuple of
    :class:`~edgekit.events.Event`: empty when nothing happened.

    Args:
        options: :class:`~edgekit.events.EventOptions`.
        provenance: model, SHA-256, thresholds: copied into every event.
    """

    def __init__(self, options: Any = None, provenance: Mapping[str, Any] | None = None) -> None:
        self.options = options
        self.provenance = dict(provenance or {})
        self._builders: dict[str, Any] = {}
        self._sizes: dict[str, tuple[int, int]] = {}
        self._snapshots: dict[str, dict[int, bool]] = {}  # source -> track ids with a snapshot

    def __call__(self, fr: Any) -> Any:
        from .events import EventBuilder

        if fr.tracks is None:
            return fr
        builder = self._builders.get(fr.source)
        if builder is None:
            builder = self._builders[fr.source] = EventBuilder(fr.source, self.options, self.provenance)
        have = self._snapshots.setdefault(fr.source, {})
        have.update({s.track_id: True for s in fr.snapshots or ()})
        if fr.end_of_source:
            self._builders.pop(fr.source, None)
            self._snapshots.pop(fr.source, None)
            size = self._sizes.pop(fr.source, (1, 1))
            return replace(fr, events=builder.update(fr.tracks, fr.zones, _last_seen(fr.tracks.ended), size, have))
        size = (fr.result.width, fr.result.height)
        self._sizes[fr.source] = size
        events = builder.update(fr.tracks, fr.zones, frame_time(fr), size, have)
        for track in fr.tracks.ended:
            have.pop(track.id, None)
        return replace(fr, events=events)


def event_stages(threshold: float, tracker: Any = None, zones: Sequence[Any] = (), events: Any = None,
                 provenance: Mapping[str, Any] | None = None, log: TextIO | None = None,
                 snapshots: Any = None) -> list[Any]:
    """Tracking, then zones (when there are any), then snapshots (a
    :class:`~edgekit.snapshots.SnapshotStage`, when given), then events: the stages ``--track``
    / ``--zone`` / ``--snapshots`` add to a run.

    Args:
        threshold: the user's score threshold (detections below it only keep tracks alive).
        tracker: :class:`~edgekit.track.TrackerOptions` (None: defaults at ``threshold``).
        zones: :class:`~edgekit.zones.Zone` values.
        events: :class:`~edgekit.events.EventOptions`.
        provenance: copied into every event.
    """
    stages: list[Any] = [Tracking(tracker, threshold, log)]
    if zones:
        stages.append(ZoneStage(zones))
    if snapshots is not None:
        stages.append(snapshots)
    stages.append(EventStage(events, provenance))
    return stages
