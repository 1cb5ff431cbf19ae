"""The event builder alone (pure logic): new / update / end in Frigate's shape, when an update is
worth sending, ids, seq and the counts of tracked objects. Tracks and zone states are small
stand-ins with the fields the builder reads (the real tracker and zones are tested on their own
and, with this builder, through the real pipeline in test_tracking_pipeline.py)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import jsonschema
import pytest

from edgekit.errors import ConfigError
from edgekit.events import Event, EventBuilder, EventOptions, object_counts

REPO = Path(__file__).resolve().parents[1]
SIZE = (1000, 1000)  # diagonal 1414 px: 5 % is 70.7 px


@dataclass(frozen=True)
class T:
    id: int
    label: str = "person"
    box: tuple = (100.0, 100.0, 150.0, 200.0)
    score: float = 0.8
    top_score: float = 0.9
    first_seen: float = 0.0
    last_seen: float = 0.0
    stationary: bool = False
    motionless_count: int = 0
    position_changes: int = 0
    class_id: int = 0
    seen: bool = True


@dataclass(frozen=True)
class U:
    tracks: tuple = ()
    ended: tuple = ()
    track_ids: tuple = ()
    capped: int = 0


@dataclass(frozen=True)
class Tr:
    track_id: int
    zone: str
    kind: str
    timestamp: float


@dataclass(frozen=True)
class Z:
    current: dict
    entered: dict
    transitions: tuple = ()


def _moved(track, dx):
    x1, y1, x2, y2 = track.box
    return replace(track, box=(x1 + dx, y1, x2 + dx, y2))


def _schema():
    return json.loads((REPO / "edgekit" / "schemas" / "events-1.json").read_text())


def test_new_update_end_lifecycle_in_frigates_shape():
    b = EventBuilder("drive", EventOptions(heartbeat=None), {"model": "m.tflite", "threshold": 0.5},
                     wall_clock=lambda: 1700000000.25)
    t = T(1, first_seen=10.0, last_seen=10.0)
    (new,) = b.update(U((t,)), None, 10.0, SIZE)
    d = new.to_dict()
    assert set(d) == {"type", "before", "after"} and d["type"] == "new" and d["before"] == d["after"]
    after = d["after"]
    assert re.fullmatch(r"1700000000\.250000-[a-z0-9]{6}", after["id"])
    assert (after["camera"], after["source"], after["label"], after["track_id"]) == ("drive", "drive", "person", 1)
    assert (after["area"], after["ratio"], after["start_time"], after["end_time"]) == (5000, 0.5, 10.0, None)
    assert after["seq"] == 1 and after["provenance"] == {"model": "m.tflite", "threshold": 0.5}
    # a small move (< 5 % of the diagonal) is not worth an update; a big one is
    assert b.update(U((_moved(t, 30),)), None, 10.5, SIZE) == ()
    (upd,) = b.update(U((_moved(t, 80),)), None, 11.0, SIZE)
    assert upd.type == "update" and upd.before["box"] == after["box"] and upd.after["box"][0] == 180.0
    assert upd.after["id"] == after["id"] and upd.after["seq"] == 2
    gone = replace(_moved(t, 80), last_seen=11.0)
    (end,) = b.update(U((), (gone,)), None, 14.0, SIZE)
    assert end.type == "end" and end.after["end_time"] == 11.0 and end.after["frame_time"] == 11.0
    assert end.before == upd.after and end.after["seq"] == 3
    assert b.update(U((), (gone,)), None, 15.0, SIZE) == ()  # ended once
    for e in (new, upd, end):
        jsonschema.validate({"schema": "edgekit.events/1", "device": "d", "timestamp": "2026-12-01T10:00:00.000Z",
                             **e.to_dict()}, _schema())


def test_updates_only_for_what_consumers_act_on():
    b = EventBuilder("cam", EventOptions(heartbeat=30.0))
    t = T(7)
    b.update(U((t,)), None, 0.0, SIZE)
    assert b.update(U((t,)), None, 1.0, SIZE) == ()  # nothing changed
    (e,) = b.update(U((replace(t, label="dog"),)), None, 2.0, SIZE)
    assert (e.before["label"], e.after["label"]) == ("person", "dog")
    t = replace(t, label="dog")
    (e,) = b.update(U((t,)), Z({7: ("drive",)}, {7: ("drive",)}, (Tr(7, "drive", "entered", 3.0),)), 3.0, SIZE)
    assert e.after["current_zones"] == ["drive"] and e.after["entered_zones"] == ["drive"]
    assert e.after["zone_transitions"] == [{"zone": "drive", "kind": "entered", "time": 3.0}]
    inside = Z({7: ("drive",)}, {7: ("drive",)})
    assert b.update(U((t,)), inside, 4.0, SIZE) == ()  # still in: transitions were sent once
    (e,) = b.update(U((t,)), inside, 33.5, SIZE)  # heartbeat
    assert e.type == "update" and e.after["zone_transitions"] == []
    (e,) = b.update(U((replace(t, stationary=True),)), inside, 34.0, SIZE)
    assert e.after["stationary"] is True and e.before["stationary"] is False


def test_a_stationary_object_is_silent_until_it_moves():
    b = EventBuilder("cam", EventOptions(heartbeat=5.0))
    parked = T(3, label="car", stationary=True, motionless_count=40)
    b.update(U((parked,)), None, 0.0, SIZE)
    # no heartbeat and no jitter updates for an hour of frames at 2 fps
    events = [e for i in range(1, 7200) for e in b.update(U((_moved(parked, (i % 3) * 40),)), None, i / 2, SIZE)]
    assert events == []
    (e,) = b.update(U((replace(_moved(parked, 200), stationary=False, position_changes=1),)), None, 3600.0, SIZE)
    assert e.after["stationary"] is False and e.after["position_changes"] == 1


def test_tracks_ended_unannounced_make_no_event_and_transitions_ride_on_the_end():
    b = EventBuilder("cam")
    assert b.update(U((), (T(9),)), None, 1.0, SIZE) == ()
    t = T(4)
    b.update(U((t,)), Z({4: ("a",)}, {4: ("a",)}), 1.0, SIZE)
    (end,) = b.update(U((), (t,)), Z({}, {4: ("a",)}, (Tr(4, "a", "left", 2.0),)), 2.0, SIZE)
    assert end.type == "end" and end.after["current_zones"] == [] and end.after["entered_zones"] == ["a"]
    assert end.after["zone_transitions"] == [{"zone": "a", "kind": "left", "time": 2.0}]


def test_ids_are_unique_and_seq_is_per_source():
    a, b = EventBuilder("a"), EventBuilder("b")
    ids = set()
    for i in range(1, 200):
        (e,) = a.update(U((T(i),)), None, float(i), SIZE)
        ids.add(e.after["id"])
    assert len(ids) == 199 and e.after["seq"] == 199
    (f,) = b.update(U((T(1),)), None, 1.0, SIZE)
    assert f.after["seq"] == 1


def test_object_counts_per_zone_and_active():
    tracks = U((T(1), T(2, stationary=True), T(3, label="car"), T(4, label="car", stationary=True)))
    zones = Z({1: ("drive",), 2: ("drive", "porch"), 4: ("drive",)}, {})
    counts = object_counts(tracks, zones)
    assert counts == {"all": {"person": (2, 1), "car": (2, 1)}, "drive": {"person": (2, 1), "car": (1, 0)},
                      "porch": {"person": (1, 0)}}
    assert object_counts(U(), None) == {"all": {}}


@pytest.mark.parametrize("kwargs", [{"min_move": -0.1}, {"min_move": 2}, {"heartbeat": 0}, {"heartbeat": float("nan")},
                                    {"heartbeat": "soon"}])
def test_bad_event_options_are_one_clear_error(kwargs):
    with pytest.raises(ConfigError, match="events"):
        EventOptions(**kwargs)


def test_event_value_is_frozen():
    e = Event("new", {"a": 1}, {"a": 1})
    with pytest.raises(AttributeError):
        e.type = "end"


def test_snapshot_stage_keeps_the_best_picture_and_none_for_an_object_parked_from_the_start(tmp_path):
    """SnapshotStage alone: a better score makes a new snapshot; a stationary object that never
    moved gets none."""
    from PIL import Image

    from edgekit.frames import Frame, FrameResult
    from edgekit.results import Detection, DetectionResult
    from edgekit.snapshots import SnapshotStage

    stage = SnapshotStage(str(tmp_path / "snaps"), min_interval=0.0)
    image = Image.new("RGB", (200, 100), (10, 200, 10))

    def frame(i, tracks, scores):
        dets = tuple(Detection(t.label, 0, s, t.box, t.id) for t, s in zip(tracks, scores))
        return FrameResult(Frame("cam", i, float(i), 0.0, pixels=1), DetectionResult("cam", 200, 100, dets),
                           image=image, source="cam", tracks=U(tuple(tracks)))

    walker = T(1, box=(10.0, 10.0, 40.0, 60.0))
    parked = T(2, label="car", box=(120.0, 20.0, 190.0, 90.0), stationary=True)
    first = stage(frame(0, [walker, parked], [0.6, 0.9]))
    assert [s.track_id for s in first.snapshots] == [1]  # the parked car never moved: no snapshot
    assert stage(frame(1, [_moved(walker, 30)], [0.5])).snapshots == ()  # worse: kept the first
    (better,) = stage(frame(2, [_moved(walker, 60)], [0.95])).snapshots
    assert better.score == 0.95 and better.frame_jpeg[:2] == b"\xff\xd8" and better.crop_jpeg[:2] == b"\xff\xd8"
    assert Path(better.path).is_file() and Path(better.path[:-4] + "-crop.jpg").is_file()
