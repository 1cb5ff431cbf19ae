"""edgekit.track: synthetic detection streams with known trajectories (the logic), and TUD-Campus
from motmetrics re-tracked against a greedy IoU baseline (the quality). No timed assertions."""

from __future__ import annotations

import importlib.util
import math
import sys
from collections import defaultdict

import numpy as np
import pytest

from edgekit.errors import ConfigError
from edgekit.results import Detection
from edgekit.track import Track, Tracker, TrackerOptions, TrackUpdate

from conftest import EXAMPLES

SIZE = (1280, 720)


def box_at(cx: float, cy: float, w: float, h: float) -> tuple[float, float, float, float]:
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def walker(t: float, start: tuple[float, float], speed: tuple[float, float], w: float = 40.0,
           h: float = 100.0, label: str = "person", class_id: int = 0, score: float = 0.9) -> Detection:
    """An object moving at constant velocity (px/s) from ``start`` at t = 0."""
    return Detection(label, class_id, score, box_at(start[0] + speed[0] * t, start[1] + speed[1] * t, w, h))


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def times(fps: float, duration: float, start: float = 0.0) -> list[float]:
    return [start + k / fps for k in range(int(round(duration * fps)))]


def run(tracker: Tracker, frames) -> list[tuple[float, list, TrackUpdate]]:
    """Feed (t, detections) pairs; returns (t, detections, update) for each."""
    return [(t, dets, tracker.update(dets, t, SIZE)) for t, dets in frames]


def ended_ids(log) -> list[int]:
    return [tr.id for _, _, update in log for tr in update.ended]


# --- motion: 2 fps, crossing, occlusion -------------------------------------------------------


def test_walker_at_2fps_whose_boxes_never_overlap_keeps_one_id():
    frames = [(t, [walker(t, (60, 360), (110, 0))]) for t in times(2, 10)]
    boxes = [dets[0].box for _, dets in frames]
    assert max(iou(a, b) for a, b in zip(boxes, boxes[1:])) == 0.0  # 55 px a frame, 40 px wide
    log = run(Tracker(), frames)
    ids = [u.track_ids[0] for _, _, u in log]
    assert ids[0] is None  # tentative at its first frame
    assert set(ids[1:]) == {1}
    assert [len(u.tracks) for _, _, u in log[1:]] == [1] * (len(log) - 1)


@pytest.mark.parametrize("fps", [2, 5, 15])
def test_walker_turning_around_keeps_its_id(fps):
    """Walks right, stops, walks back: the prediction is wrong for a while, the id stays."""
    def x(t):
        return 300 + 80 * t if t < 4 else (620 if t < 5 else 620 - 80 * (t - 5))
    frames = [(t, [Detection("person", 0, 0.9, box_at(x(t), 300, 40, 100))]) for t in times(fps, 10)]
    log = run(Tracker(), frames)
    assert {tid for _, _, u in log for tid in u.track_ids} - {None} == {1}


@pytest.mark.parametrize("fps", [2, 5, 15])
def test_two_people_crossing_keep_their_ids(fps):
    def scene(t):
        return [walker(t, (200, 300), (90, 0), label="person"), walker(t, (1000, 320), (-90, 0), label="person")]
    frames = [(t, scene(t)) for t in times(fps, 9)]
    log = run(Tracker(), frames)
    per_object = defaultdict(set)  # the scene lists the left walker first
    for _, dets, update in log:
        for k, tid in enumerate(update.track_ids):
            if tid is not None:
                per_object[k].add(tid)
    assert len(per_object[0]) == 1 and len(per_object[1]) == 1, per_object  # 0 ID switches
    assert per_object[0] != per_object[1]


def test_occlusion_of_two_seconds_keeps_the_id():
    def scene(t):
        return [] if 3.0 <= t < 5.0 else [walker(t, (100, 300), (100, 0))]
    log = run(Tracker(), [(t, scene(t)) for t in times(2, 9)])
    assert {tid for _, _, u in log for tid in u.track_ids} - {None} == {1}
    hidden = [u for t, _, u in log if 3.0 <= t < 5.0]
    assert all(len(u.tracks) == 1 and not u.tracks[0].seen for u in hidden)
    assert ended_ids(log) == []


def test_gone_longer_than_max_unseen_ends_exactly_once():
    options = TrackerOptions(max_unseen=3.0)
    frames = [(t, [walker(t, (500, 300), (10, 0))] if t < 4 else []) for t in times(2, 15)]
    log = run(Tracker(options), frames)
    ends = [(t, tr) for t, _, u in log for tr in u.ended]
    assert len(ends) == 1
    t_end, track = ends[0]
    assert track.id == 1 and not track.seen and track.last_seen == 3.5
    assert t_end == 7.0  # the first frame more than 3 s after its last match
    assert all(not u.tracks for t, _, u in log if t >= t_end)
    assert all(u.tracks[0].id == 1 for t, _, u in log if 0.5 <= t < t_end)


def test_an_object_that_walks_out_of_the_image_ends_early():
    frames = [(t, [walker(t, (1000, 300), (150, 0))] if t < 1.8 else []) for t in times(5, 6)]
    log = run(Tracker(), frames)  # last seen at x = 1240 (the image is 1280 wide), then gone
    ends = [(t, tr) for t, _, u in log for tr in u.ended]
    assert len(ends) == 1 and ends[0][0] < 1.8 + 1.0  # well before max_unseen = 5 s


# --- scores, labels, tentative tracks ---------------------------------------------------------


def test_low_score_detections_keep_a_track_alive_but_never_start_one():
    options = TrackerOptions(high_score=0.5, low_score=0.2)
    low_only = [(t, [walker(t, (300, 300), (40, 0), score=0.3)]) for t in times(2, 5)]
    log = run(Tracker(options), low_only)
    assert all(u.track_ids == (None,) and not u.tracks for _, _, u in log)

    def scene(t):
        return [walker(t, (300, 300), (40, 0), score=0.8 if t < 2 else 0.3)]
    log = run(Tracker(options), [(t, scene(t)) for t in times(2, 12)])  # 10 s of low ones > max_unseen
    assert [u.track_ids[0] for _, _, u in log][1:] == [1] * (len(log) - 1)
    assert ended_ids(log) == []
    last = log[-1][2].tracks[0]
    assert last.score == pytest.approx(0.3) and last.top_score == pytest.approx(0.8)


def test_below_low_score_and_broken_detections_are_not_tracked():
    tracker = Tracker()
    dets = [Detection("person", 0, 0.05, (10, 10, 50, 90)), Detection("person", 0, float("nan"), (100, 10, 140, 90)),
            Detection("person", 0, 0.9, (200, 10, 200, 90)), Detection("person", 0, 0.9, (300, 10, float("inf"), 90)),
            Detection("person", 0, 0.9, (400, 10, 440, 90))]
    for t in (0.0, 0.5, 1.0):
        update = tracker.update(dets, t, SIZE)
    assert update.track_ids == (None, None, None, None, 1)


def test_a_one_frame_label_flicker_keeps_the_label_and_the_id():
    def scene(k, t):
        label, class_id = ("bird", 14) if k == 6 else ("dog", 16)
        return [walker(t, (200, 400), (60, 0), w=80, h=60, label=label, class_id=class_id)]
    log = run(Tracker(), [(t, scene(k, t)) for k, t in enumerate(times(2, 8))])
    assert {tid for _, _, u in log for tid in u.track_ids} - {None} == {1}
    assert log[6][2].track_ids == (1,)
    assert all((tr.label, tr.class_id) == ("dog", 16) for _, _, u in log for tr in u.tracks)


def test_the_label_is_the_majority_one():
    still = box_at(600, 300, 80, 60)
    labels = ["cat"] * 3 + ["dog"] * 5
    log = run(Tracker(), [(k * 0.5, [Detection(lab, 15 if lab == "cat" else 16, 0.8, still)])
                          for k, lab in enumerate(labels)])
    assert {tid for _, _, u in log for tid in u.track_ids} - {None} == {1}
    assert (log[2][2].tracks[0].label, log[-1][2].tracks[0].label) == ("cat", "dog")
    assert log[-1][2].tracks[0].class_id == 16


def test_another_class_close_by_does_not_take_over_a_track():
    """A cat and a dog side by side (not overlapping): each keeps its own track."""
    frames = [(t, [walker(t, (300, 300), (30, 0), w=60, h=50, label="cat", class_id=15),
                   walker(t, (370, 300), (30, 0), w=60, h=50, label="dog", class_id=16)]) for t in times(5, 4)]
    log = run(Tracker(), frames)
    assert [set(u.track_ids) for _, _, u in log[1:]] == [{1, 2}] * (len(log) - 1)
    assert {tr.id: tr.label for tr in log[-1][2].tracks} == {1: "cat", 2: "dog"}


def test_tentative_tracks_are_never_reported():
    tracker = Tracker()
    for k in range(20):  # one-frame false positives, each far from the one before
        x, y = 100 + (k * 7 % 10) * 110, 100 + (k * 3 % 5) * 120
        update = tracker.update([Detection("person", 0, 0.9, box_at(x, y, 30, 60))], k * 0.5, SIZE)
        assert update.track_ids == (None,) and update.tracks == () and update.ended == ()
    assert tracker.flush() == ()


# --- stationary ---------------------------------------------------------------------------------


def test_a_parked_car_becomes_stationary_and_survives_a_long_occlusion():
    rng = np.random.default_rng(0)
    parked = (500, 400, 160, 90)

    def car(t):
        cx, cy, w, h = parked
        if t >= 40:  # drives off
            cx += 120 * (t - 40)
        j = rng.normal(0, 1.0, 4)  # detector jitter, pixels
        return Detection("car", 2, 0.8, box_at(cx + j[0], cy + j[1], w + j[2], h + j[3]))

    def scene(t):
        if 15 <= t < 35:  # hidden 20 s; people walk past in front of it
            return [walker(t - 15, (300, 420), (25, 0))]
        return [car(t)]
    log = run(Tracker(), [(t, scene(t)) for t in times(2, 44)])
    car_ids = {tid for _, dets, u in log for d, tid in zip(dets, u.track_ids) if d.label == "car" and tid}
    assert car_ids == {1}
    states = {t: next(tr for tr in u.tracks if tr.id == 1) for t, _, u in log
              if any(tr.id == 1 for tr in u.tracks)}
    first_stationary = min(t for t, tr in states.items() if tr.stationary)
    assert 10.0 <= first_stationary <= 11.0
    assert all(tr.stationary for t, tr in states.items() if first_stationary <= t < 40)
    assert all(not tr.seen for t, tr in states.items() if 15 <= t < 35)  # kept while unseen for 20 s
    assert 1 not in ended_ids([e for e in log if e[0] < 40])
    assert states[14.5].motionless_count == 29  # every match after the first (30 matches in 0–14.5 s)
    after = states[max(states)]
    assert not after.stationary and after.position_changes == 1


def test_moving_objects_are_never_stationary():
    log = run(Tracker(), [(t, [walker(t, (100, 300), (12, 0))]) for t in times(5, 30)])  # slow walk
    assert not any(tr.stationary for _, _, u in log for tr in u.tracks)


def test_a_stationary_track_is_predicted_in_place():
    still = box_at(600, 300, 80, 80)
    tracker = Tracker(TrackerOptions(stationary_after=2.0))
    for t in times(2, 5):
        tracker.update([Detection("car", 2, 0.9, still)], t, SIZE)
    assert tracker.update([], 5.0, SIZE).tracks[0].stationary
    # back after 30 s unseen, a little off (within the gate): same id
    update = tracker.update([Detection("car", 2, 0.9, box_at(610, 305, 82, 80))], 35.0, SIZE)
    assert update.track_ids == (1,)


# --- time -----------------------------------------------------------------------------------------


def scene_three(t: float) -> list[Detection]:
    """A walker (0–8 s), a parked bike (2–6 s), another walker (3–9 s)."""
    dets = []
    if t < 8:
        dets.append(walker(t, (100, 200), (120, 0)))
    if 2 <= t < 6:
        dets.append(Detection("bicycle", 1, 0.7, box_at(900, 500, 90, 60)))
    if 3 <= t < 9:
        dets.append(walker(t - 3, (1100, 400), (-100, 10)))
    return dets


def lifecycle(fps: float) -> dict[int, tuple[float, float]]:
    """Track id → (time it was first reported, time it ended)."""
    tracker = Tracker()
    first, end = {}, {}
    for t in times(fps, 20):
        update = tracker.update(scene_three(t), t, SIZE)
        for tr in update.tracks:
            first.setdefault(tr.id, t)
        for tr in update.ended:
            assert tr.id not in end
            end[tr.id] = t
    return {k: (first[k], end[k]) for k in first}


def test_the_same_scene_at_2_and_5_fps_gives_the_same_tracks_at_similar_times():
    slow, fast = lifecycle(2), lifecycle(5)
    assert sorted(slow) == sorted(fast) == [1, 2, 3]
    for track_id in slow:
        (confirmed_2, end_2), (confirmed_5, end_5) = slow[track_id], fast[track_id]
        assert abs(confirmed_2 - confirmed_5) <= 0.5  # one frame at 2 fps
        assert abs(end_2 - end_5) <= 0.5


def test_time_going_backwards_restarts():
    tracker = Tracker()
    for t in times(2, 3):
        tracker.update([walker(t, (300, 300), (50, 0))], 100 + t, SIZE)
    update = tracker.update([walker(0, (300, 300), (50, 0))], 10.0, SIZE)  # the source restarted
    assert [tr.id for tr in update.ended] == [1]
    assert update.tracks == () and update.track_ids == (None,)
    update = tracker.update([walker(0.5, (300, 300), (50, 0))], 10.5, SIZE)
    assert update.track_ids == (2,)  # ids are never reused
    assert [tr.id for tr in tracker.flush()] == [2]
    assert tracker.flush() == ()


def test_skipped_frames_and_equal_timestamps_are_fine():
    tracker = Tracker()
    for t in (0.0, 0.5, 0.5, 1.0, 3.0, 3.1):  # a repeated timestamp, a 2-s gap
        update = tracker.update([walker(t, (300, 300), (50, 0))], t, SIZE)
    assert update.track_ids == (1,)


# --- limits and options ---------------------------------------------------------------------------


def test_ten_thousand_detections_are_capped_to_the_best():
    rng = np.random.default_rng(1)
    xy = [(12.0 * (k % 100), 12.0 * (k // 100)) for k in range(10_000)]  # apart: none is another's duplicate
    scores = rng.uniform(0.3, 1.0, 10_000)
    dets = [Detection("person", 0, float(s), (x, y, x + 8, y + 10)) for (x, y), s in zip(xy, scores)]
    tracker = Tracker()
    first = tracker.update(dets, 0.0, SIZE)
    assert first.capped == 10_000 - 300 and len(first.track_ids) == 10_000
    second = tracker.update(dets, 0.5, SIZE)
    tracked = {k for k, tid in enumerate(second.track_ids) if tid is not None}
    assert tracked == set(np.argsort(-scores)[:300].tolist())
    assert len(second.tracks) == 300
    assert Tracker(TrackerOptions(max_detections=None)).update(dets, 0.0, SIZE).capped == 0


def test_no_detections_and_no_tracks():
    update = Tracker().update([], 0.0, SIZE)
    assert update == TrackUpdate((), (), (), 0)
    assert Tracker().update(iter([]), 0.0, SIZE).track_ids == ()


def test_tracks_are_frozen_and_sorted_by_id():
    tracker = Tracker()
    for t in times(2, 2):
        update = tracker.update([walker(t, (300 + 200 * k, 300), (20, 0)) for k in range(3)], t, SIZE)
    assert [tr.id for tr in update.tracks] == [1, 2, 3]
    track = update.tracks[0]
    assert isinstance(track, Track) and track.confirmed and track.seen and track.hits == 4
    with pytest.raises(AttributeError):
        track.id = 9  # type: ignore[misc]


@pytest.mark.parametrize("changes, field", [
    ({"high_score": 1.5}, "high_score"),
    ({"low_score": 0.3}, "low_score"),  # above high_score = 0.25
    ({"low_score": -0.1}, "low_score"),
    ({"confirm_hits": 0}, "confirm_hits"),
    ({"confirm_hits": 2.0}, "confirm_hits"),
    ({"confirm_hits": True}, "confirm_hits"),
    ({"max_unseen": -1}, "max_unseen"),
    ({"max_unseen": math.nan}, "max_unseen"),
    ({"max_unseen": "5"}, "max_unseen"),
    ({"tentative_unseen": -0.5}, "tentative_unseen"),
    ({"stationary_after": 0}, "stationary_after"),
    ({"stationary_unseen": 2.0}, "stationary_unseen"),  # below max_unseen = 5
    ({"max_detections": 0}, "max_detections"),
    ({"max_distance": 0}, "max_distance"),
    ({"gate_sigmas": -1}, "gate_sigmas"),
    ({"max_size_ratio": 0.5}, "max_size_ratio"),
    ({"cross_class_iou": 0}, "cross_class_iou"),
    ({"still_distance": math.inf}, "still_distance"),
])
def test_bad_options_are_config_errors(changes, field):
    with pytest.raises(ConfigError, match=f"TrackerOptions.{field} must be"):
        TrackerOptions(**changes)


def test_options_from_a_settings_file_may_be_whole_numbers():
    assert TrackerOptions(max_unseen=5, high_score=1, low_score=0).max_unseen == 5
    assert TrackerOptions(high_score=0.05, low_score=0.05).low_score == 0.05  # no second stage


@pytest.mark.parametrize("timestamp, size", [(math.nan, SIZE), (None, SIZE), (0.0, (0, 480)), (0.0, (640.5, 480)),
                                             (0.0, "640x480")])
def test_bad_update_arguments_are_config_errors(timestamp, size):
    with pytest.raises(ConfigError):
        Tracker().update([], timestamp, size)


def test_options_must_be_tracker_options():
    with pytest.raises(ConfigError, match="TrackerOptions"):
        Tracker({"max_unseen": 3})  # type: ignore[arg-type]


# --- real data: TUD-Campus from motmetrics --------------------------------------------------------


def _bench():
    spec = importlib.util.spec_from_file_location("bench_tracking", EXAMPLES / "benchmarks" / "bench_tracking.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_tracking", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("step", [1, 5, 12])  # 25, 5 and ~2 fps
def test_tud_campus_idf1_is_clearly_above_greedy_iou(step):
    bench = _bench()
    gt = bench.load_mot(f"{bench.data_dir('TUD-Campus')}/gt.txt")
    dets = bench.load_mot(f"{bench.data_dir('TUD-Campus')}/test.txt")
    frames = bench.sampled(gt, step)
    ours = bench.evaluate(gt, bench.track_edgekit(dets, frames), frames)
    greedy = bench.evaluate(gt, bench.track_greedy_iou(dets, frames), frames)
    if step == 1:
        assert greedy["idf1"] == pytest.approx(0.527, abs=0.005)  # the number: the baseline is right
    assert ours["idf1"] > 1.15 * greedy["idf1"], (ours, greedy)
    assert ours["switches"] < greedy["switches"]


def test_a_confirmed_track_takes_its_relabelled_detection_before_a_tentative_track_of_that_label():
    """A dog first read as "person" (confirmed as such), then a duplicate "dog" box starts a
    tentative dog track, then only "dog" boxes: the confirmed track keeps the dog."""
    def dog(t, label, class_id, dx=0.0):
        return walker(t, (400 + dx, 400), (20, 0), w=90, h=70, label=label, class_id=class_id)
    frames = [(t, [dog(t, "person", 0)]) for t in (0.0, 0.5, 1.0)]
    frames.append((1.5, [dog(1.5, "person", 0), dog(1.5, "dog", 16, dx=12)]))
    frames += [(t, [dog(t, "dog", 16)]) for t in (2.0, 2.5, 3.0, 3.5, 4.0, 4.5)]
    log = run(Tracker(), frames)
    assert [u.track_ids for _, _, u in log[4:]] == [(1,)] * 6
    assert [tr.id for tr in log[-1][2].tracks] == [1]
    assert log[-1][2].tracks[0].label == "dog"  # 6 dog votes against 4 person ones


# --- duplicate readings of one object (a model's per-class NMS lets them through) ----------------


def test_a_weaker_duplicate_of_another_label_neither_starts_a_track_nor_takes_the_object():
    """bench_scene's SSD run: a dog read "dog" 0.7 and, inside that box, "horse" 0.3 in every
    other frame. The horse box is a duplicate: one track, no second one, whatever the order."""
    frames = []
    for k, t in enumerate(times(2, 6)):
        dog = walker(t, (300, 400), (60, 0), w=200, h=160, label="dog", class_id=16, score=0.7)
        x1, y1, x2, y2 = dog.box
        horse = Detection("horse", 17, 0.3, (x1 + 20, y1 + 20, x2 - 30, y2 - 10))  # 80 % of it, inside
        frames.append((t, [horse, dog] if k % 2 else [dog]))
    log = run(Tracker(), frames)
    assert {tid for _, _, u in log for tid in u.track_ids if tid is not None} == {1}
    assert all(u.track_ids[-1] == 1 for _, _, u in log[1:])  # the dog box always on track 1
    assert [tr.label for tr in log[-1][2].tracks] == ["dog"]


def test_a_weaker_same_label_duplicate_does_not_start_a_second_track():
    frames = []
    for t in times(2, 5):
        car = walker(t, (400, 400), (0, 0), w=300, h=180, label="car", class_id=2, score=0.6)
        x1, y1, x2, y2 = car.box
        half = Detection("car", 2, 0.3, (x1, y1 + 10, x1 + 200, y2))  # the front two thirds
        frames.append((t, [car, half]))
    log = run(Tracker(), frames)
    assert [tr.id for tr in log[-1][2].tracks] == [1]
    assert all(u.track_ids[1] is None for _, _, u in log)


def test_a_backpack_on_someone_is_an_object_of_its_own():
    """Nested in a person's box but scoring about as well: not a duplicate; a person in front of
    a bus is far smaller than the bus: not one either."""
    frames = []
    for t in times(2, 4):
        person = walker(t, (400, 400), (30, 0), w=120, h=230, score=0.6)
        x1, y1, x2, y2 = person.box
        backpack = Detection("backpack", 24, 0.55, (x1 + 20, y1 + 30, x2, y1 + 190))
        bus = Detection("bus", 5, 0.9, (100, 150, 1100, 650))
        passer = walker(t, (300, 450), (80, 0), w=60, h=150, score=0.5)
        frames.append((t, [person, backpack, bus, passer]))
    log = run(Tracker(), frames)
    assert sorted(tr.label for tr in log[-1][2].tracks) == ["backpack", "bus", "person", "person"]
    assert all(None not in u.track_ids for _, _, u in log[1:])


def test_a_weak_box_beside_a_stationary_track_does_not_drag_it_off():
    """Someone stands still (stationary after 10 s); a dog passes in front and hides them; a weak
    "person" box between the two (SSD) must not become the stander, whose box stays put."""
    opts = TrackerOptions(stationary_after=3.0)
    stander = lambda t: walker(t, (400, 400), (0, 0), w=120, h=230, score=0.8)  # noqa: E731
    frames = [(t, [stander(t)]) for t in times(2, 5)]
    x1, y1, x2, y2 = stander(0).box
    weak = Detection("person", 0, 0.2, (x1 - 10, y1 + 60, x2 + 100, y2 + 90))  # IoU ~0.4 with it
    frames += [(t, [weak]) for t in times(2, 1.5, start=5.0)]
    log = run(Tracker(opts), frames)
    assert log[9][2].tracks[0].stationary
    assert [u.track_ids for _, _, u in log[10:]] == [(None,)] * 3
    assert log[-1][2].tracks[0].box == stander(0).box and log[-1][2].tracks[0].stationary


# --- what the Tracking stage reports ------------------------------------------------------------


def test_the_tracking_stage_reports_a_weak_match_of_a_strong_track_only():
    """ByteTrack's point: a person half hidden scores under the threshold but is still the same
    person. A weak detection on a track that once scored twice the threshold is reported (with its
    id); one on a track that never did (a stray box) is not; a weak one without a track never is."""
    from edgekit.frames import Frame, FrameResult
    from edgekit.results import DetectionResult
    from edgekit.stages import Tracking

    stage = Tracking(threshold=0.25)

    def frame(k, dets):
        result = DetectionResult("cam", SIZE[0], SIZE[1], tuple(dets), k, k * 0.5)
        return stage(FrameResult(Frame("cam", k, k * 0.5, 0.0), result, source="cam"))

    person = lambda k, s: walker(k * 0.5, (300, 300), (20, 0), score=s)  # noqa: E731
    stray = lambda k, s: walker(k * 0.5, (900, 300), (0, 0), w=60, h=60, label="kite", class_id=33, score=s)  # noqa: E731
    for k in range(3):
        frame(k, [person(k, 0.8), stray(k, 0.3)])
    out = frame(3, [person(3, 0.15), stray(3, 0.15), Detection("dog", 16, 0.15, (50, 600, 90, 640))])
    assert [(d.label, d.track_id) for d in out.result.detections] == [("person", 1)]


def test_the_tracking_stage_caps_a_flood_of_detections_with_one_note():
    import io

    from edgekit.frames import Frame, FrameResult
    from edgekit.results import DetectionResult
    from edgekit.stages import Tracking

    log = io.StringIO()
    stage = Tracking(threshold=0.25, log=log)
    dets = tuple(Detection("person", 0, 0.3 + 0.5 * (k % 97) / 97, (12.0 * (k % 100), 7.0 * (k // 100),
                                                                   12.0 * (k % 100) + 8, 7.0 * (k // 100) + 6))
                 for k in range(10_000))
    for k in range(2):
        result = DetectionResult("cam", SIZE[0], SIZE[1], dets, k, k * 0.5)
        out = stage(FrameResult(Frame("cam", k, k * 0.5, 0.0), result, source="cam"))
    assert out.tracks.capped == 10_000 - 300
    assert sum(d.track_id is not None for d in out.result.detections) == 300
    assert log.getvalue().count("note:") == 1 and "10000 detections in one frame" in log.getvalue()


def test_frames_gated_by_motion_hold_confirmed_tracks_and_confirm_nothing():
    """A gated frame repeats the last inferred detections: the confirmed person holds its id; a
    stray box that appeared once in the last inferred frame is not confirmed by the repeats."""
    from dataclasses import replace as copy

    from edgekit.frames import Frame, FrameResult
    from edgekit.results import DetectionResult
    from edgekit.stages import Tracking

    stage = Tracking(threshold=0.25)
    person = walker(0, (300, 300), (0, 0), score=0.8)
    stray = Detection("kite", 33, 0.4, (900, 100, 960, 160))

    def frame(k, dets, gated=False):
        result = DetectionResult("cam", SIZE[0], SIZE[1], tuple(dets), k, k * 0.5)
        return stage(copy(FrameResult(Frame("cam", k, k * 0.5, 0.0), result, source="cam"), gated=gated))

    frame(0, [person])
    frame(1, [person])
    frame(2, [person, stray])  # inferred: the stray starts a tentative track
    outs = [frame(k, [person, stray], gated=True) for k in range(3, 8)]
    assert all([(d.label, d.track_id) for d in o.result.detections] == [("person", 1)] for o in outs)
    assert [tr.id for tr in outs[-1].tracks.tracks] == [1] and outs[-1].tracks.tracks[0].seen
