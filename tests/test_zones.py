"""Zones: parsing, geometry, and the per-track state machine on small scripted scenes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from edgekit.errors import ConfigError
from edgekit.zones import (RESERVED_NAMES, Zone, Zones, ZoneTransition, anchor, parse_zone,
                           zone_from_settings)

SIZE = (640, 480)


@dataclass(frozen=True)
class T:
    """A track as the tracker hands it over (duck-typed)."""

    id: int
    label: str
    box: tuple[float, float, float, float]
    seen: bool = True


def at(x: float, y: float, w: float = 20, h: float = 40) -> tuple[float, float, float, float]:
    """A box whose bottom centre is (x, y)."""
    return (x - w / 2, y - h, x + w / 2, y)


SQUARE = ((100.0, 100.0), (300.0, 100.0), (300.0, 300.0), (100.0, 300.0))
IN, OUT = at(200, 200), at(500, 200)


def zone(**kw) -> Zone:
    return Zone(kw.pop("name", "sq"), kw.pop("points", SQUARE), **kw)


def run(zones: Zones, frames) -> list:
    """frames: [(timestamp, [tracks])] -> the ZoneStates, one update per frame."""
    return [zones.update(tracks, t, SIZE) for t, tracks in frames]


def transitions(states) -> list[tuple]:
    return [(tr.track_id, tr.zone, tr.kind, tr.timestamp) for s in states for tr in s.transitions]


def one_line_naming(exc: pytest.ExceptionInfo, name: str) -> str:
    message = str(exc.value)
    assert "\n" not in message
    assert name in message
    return message


# --- parsing ---------------------------------------------------------------------------------

def test_parse_zone_reads_name_points_and_source():
    z = parse_zone("drive=0,0.5,1,0.5,1,1,0,1", source="cam1")
    assert z.name == "drive" and z.source == "cam1"
    assert z.points == ((0, 0.5), (1, 0.5), (1, 1), (0, 1))
    assert z.is_relative
    assert (z.inertia, z.exit_delay, z.loitering, z.labels) == (3, 1.0, None, None)
    assert not parse_zone("porch=10,10,200,10,200,300").is_relative


@pytest.mark.parametrize("text, found", [
    ("drive", "no '='"),  # the text is all there is to name
    ("=0,0,1,0,1,1", "empty"),
    ("drive=0,0,1,0,1", "odd"),
    ("drive=0,0,1,zero,1,1", "'zero'"),
    ("drive=0,0,1,0,1,1,", "stray comma"),
    ("drive=0,0,1,0", "at least 3"),
    ("drive=0,0,1,0,nan,1", "nan"),
    ("drive=0,0,1,0,1,inf", "inf"),
    ("drive=0,0,1,0,1,-5", "≥ 0"),
    ("drive=0,0,1,1,1,0,0,1", "its edges cross"),
    ("drive=0,0,1,0,1,1,0,0", "repeats point 1"),
    ("drive=0,0,1,1,2,2", "no area"),
    ("motion=0,0,1,0,1,1", "reserved"),
    ("Events=0,0,1,0,1,1", "reserved"),
    ("a/b=0,0,1,0,1,1", "'/'"),
    ("a+b=0,0,1,0,1,1", "'+'"),
    ("a#b=0,0,1,0,1,1", "'#'"),
    ("a\0b=0,0,1,0,1,1", "U+0000"),
    ("drive =0,0,1,0,1,1", "space"),
    ("x" * 65 + "=0,0,1,0,1,1", "at most 64"),
])
def test_parse_zone_refuses_with_one_line_naming_the_zone(text, found):
    with pytest.raises(ConfigError) as exc:
        parse_zone(text)
    name, eq, _ = text.partition("=")
    named = text if not (eq and name) else name[:24]  # no name: the message quotes the whole text
    assert found in one_line_naming(exc, repr(named)[:-1])


def test_crossing_edges_message_says_what_to_do():
    with pytest.raises(ConfigError, match=r"^zone 'drive': its edges cross .*list the points in order around"):
        parse_zone("drive=0,0,100,100,100,0,0,100")


def test_every_reserved_name_is_refused():
    for name in RESERVED_NAMES:
        with pytest.raises(ConfigError, match="reserved"):
            Zone(name, SQUARE)


def test_a_concave_polygon_is_accepted():
    parse_zone("ell=0,0,100,0,100,40,40,40,40,100,0,100")


def test_zone_from_settings_reads_the_table():
    z = zone_from_settings("drive", {"points": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]], "labels": ["car"],
                                     "inertia": 2, "exit_delay": 2, "loitering": 30}, "cam1")
    assert z == Zone("drive", ((0, 0.5), (1, 0.5), (1, 1), (0, 1)), "cam1", frozenset({"car"}), 2, 2, 30)


@pytest.mark.parametrize("doc, found", [
    ([[0, 0], [1, 0], [1, 1]], "expected a table"),
    ({"points": [[0, 0], [1, 0], [1, 1]], "inertial": 3}, "unknown key(s) inertial; known: points, labels"),
    ({"labels": ["car"]}, "no points"),
    ({"points": "0,0,1,0,1,1"}, "points: expected a list of [x, y] pairs"),
    ({"points": [0, 0, 1, 0, 1, 1]}, "points: item 1 is 0 (int); expected an [x, y] pair"),
    ({"points": [[0, 0], [1, 0], [1, "1"]]}, "point 3"),
    ({"points": [[0, 0], [1, 0], [1, True]]}, "point 3"),
    ({"points": [[0, 0], [1, 0], [1, 1]], "labels": "car"}, "labels: expected a list of label names"),
    ({"points": [[0, 0], [1, 0], [1, 1]], "labels": [1]}, "labels: expected label names"),
    ({"points": [[0, 0], [1, 0], [1, 1]], "labels": []}, "labels: an empty list"),
    ({"points": [[0, 0], [1, 0], [1, 1]], "inertia": 0}, "inertia: expected a whole number of frames ≥ 1"),
    ({"points": [[0, 0], [1, 0], [1, 1]], "inertia": 2.5}, "inertia: expected a whole number"),
    ({"points": [[0, 0], [1, 0], [1, 1]], "inertia": True}, "inertia: expected a whole number"),
    ({"points": [[0, 0], [1, 0], [1, 1]], "exit_delay": "2s"}, "exit_delay: expected seconds ≥ 0"),
    ({"points": [[0, 0], [1, 0], [1, 1]], "exit_delay": -1}, "exit_delay: expected seconds ≥ 0"),
    ({"points": [[0, 0], [1, 0], [1, 1]], "loitering": 0}, "loitering: expected seconds > 0"),
    ({"points": [[0, 0], [1, 0], [1, 1]], "loitering": float("inf")}, "loitering: expected seconds > 0"),
])
def test_zone_from_settings_refuses_with_zone_key_and_expectation(doc, found):
    with pytest.raises(ConfigError) as exc:
        zone_from_settings("drive", doc, None)
    assert found in one_line_naming(exc, "zone 'drive'")


def test_zone_itself_refuses_bad_values():
    with pytest.raises(ConfigError, match="expected a tuple"):
        Zone("z", [(0, 0), (1, 0), (1, 1)])
    with pytest.raises(ConfigError, match="relative"):
        Zone("z", ((0, 0), (2, 0), (2, 2)), relative=True)
    with pytest.raises(ConfigError, match="exit_delay"):
        Zone("z", SQUARE, exit_delay=float("nan"))


# --- geometry --------------------------------------------------------------------------------

def test_fraction_zone_resolves_to_pixels_and_matches_the_pixel_zone():
    frac = parse_zone("half=0,0.5,1,0.5,1,1,0,1")
    pixels = parse_zone("half=0,240,640,240,640,480,0,480")
    resolved = frac.resolve(*SIZE)
    assert resolved.points == pixels.points and not resolved.relative
    assert resolved.resolve(*SIZE) == resolved  # resolving twice changes nothing
    grid = np.array([(x, y) for x in range(0, 641, 40) for y in range(0, 481, 30)], dtype=float)
    assert (resolved.contains_points(grid) == pixels.resolve(*SIZE).contains_points(grid)).all()
    assert (resolved.contains_points(grid) == (grid[:, 1] >= 240)).all()  # edges count as inside


def test_contains_on_a_fraction_zone_asks_for_resolve():
    with pytest.raises(ConfigError, match="call resolve"):
        parse_zone("half=0,0.5,1,0.5,1,1").contains(1, 1)


def test_concave_polygon_contains():
    ell = parse_zone("ell=0,0,100,0,100,40,40,40,40,100,0,100")
    assert ell.contains(20, 80) and ell.contains(80, 20) and ell.contains(40, 70)
    assert not ell.contains(80, 80) and not ell.contains(101, 20)


def test_bottom_centre_decides():
    assert anchor((10, 20, 30, 60)) == (20, 60)
    zones = Zones([zone(inertia=1)])
    top_inside = (190, 250, 210, 350)  # top at y=250 is in the square, bottom at y=350 is not
    bottom_inside = (190, 50, 210, 150)  # top outside, bottom inside
    s = zones.update([T(1, "person", top_inside), T(2, "person", bottom_inside)], 0.0, SIZE)
    assert s.current == {1: (), 2: ("sq",)}


def test_zone_entirely_outside_the_frame_is_refused_from_update():
    far = Zone("yard", ((700.0, 10.0), (900.0, 10.0), (900.0, 200.0)), source="cam1")
    with pytest.raises(ConfigError) as exc:
        far.resolve(*SIZE)
    assert "640x480" in one_line_naming(exc, "zone 'yard'")
    zones = Zones([far], source="cam1")
    with pytest.raises(ConfigError, match=r"zone 'yard' of source 'cam1' lies entirely outside the 640x480"):
        zones.update([T(1, "car", IN)], 0.0, SIZE)
    # partly outside is fine; at 1280x720 the same points are inside
    Zone("yard", ((600.0, 10.0), (900.0, 10.0), (900.0, 200.0))).resolve(*SIZE)
    assert Zones([far]).update([], 0.0, (1280, 720)).occupancy == {"yard": {}}


def test_zone_touching_the_frame_only_at_its_edge_is_outside():
    with pytest.raises(ConfigError, match="entirely outside"):
        Zone("edge", ((640.0, 0.0), (700.0, 0.0), (700.0, 100.0), (640.0, 100.0))).resolve(*SIZE)


def test_fractions_are_resolved_again_when_the_frame_size_changes():
    zones = Zones([Zone("left", ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)), inertia=1)])
    one = T(1, "car", at(400, 100))
    assert zones.update([one], 0.0, (1000, 200)).current == {1: ("left",)}  # 400 < 500
    assert zones.update([one], 0.1, (600, 200)).current == {1: ("left",)}  # out (400 > 300), exit delay
    assert zones.update([one], 1.1, (600, 200)).current == {1: ()}


# --- state machine ---------------------------------------------------------------------------

def test_inertia_two_frames_inside_then_out_never_enters():
    states = run(Zones([zone()]), [(0.0, [T(1, "car", IN)]), (0.1, [T(1, "car", IN)]),
                                   (0.2, [T(1, "car", OUT)]), (0.3, [T(1, "car", IN)])])
    assert transitions(states) == []
    assert all(s.current == {1: ()} and s.entered == {1: ()} for s in states)


def test_inertia_three_frames_enters_at_the_third():
    states = run(Zones([zone()]), [(t, [T(1, "car", IN)]) for t in (0.0, 0.5, 1.0, 1.5)])
    assert transitions(states) == [(1, "sq", "entered", 1.0)]
    assert [s.current[1] for s in states] == [(), (), ("sq",), ("sq",)]
    assert states[-1].entered == {1: ("sq",)}


def test_unseen_frames_neither_break_nor_count_toward_inertia():
    frames = [(0.0, [T(1, "car", IN)]), (0.1, [T(1, "car", IN, seen=False)]),
              (0.2, [T(1, "car", OUT, seen=False)]), (0.3, [T(1, "car", IN)]), (0.4, [T(1, "car", IN)])]
    assert transitions(run(Zones([zone()]), frames)) == [(1, "sq", "entered", 0.4)]


def _entered_at_1(zones: Zones) -> None:
    run(zones, [(t, [T(1, "car", IN)]) for t in (0.0, 0.5, 1.0)])


def test_a_one_frame_excursion_does_not_leave():
    zones = Zones([zone()])
    _entered_at_1(zones)
    states = run(zones, [(1.5, [T(1, "car", OUT)]), (2.0, [T(1, "car", IN)]), (2.5, [T(1, "car", OUT)]),
                         (3.0, [T(1, "car", IN)])])
    assert transitions(states) == []
    assert all(s.current == {1: ("sq",)} for s in states)


def test_jitter_on_the_border_never_flaps():
    zones = Zones([zone(inertia=1)])
    on, off = at(300, 200), at(300.5, 200)  # on the right edge, half a pixel outside
    states = run(zones, [(k * 0.25, [T(1, "car", on if k % 2 == 0 else off)]) for k in range(40)])
    assert transitions(states) == [(1, "sq", "entered", 0.0)]


def test_left_at_the_frame_where_the_exit_delay_is_met():
    zones = Zones([zone()])
    _entered_at_1(zones)
    states = run(zones, [(1.0 + k * 0.25, [T(1, "car", OUT)]) for k in range(1, 8)])  # out from 1.25
    assert transitions(states) == [(1, "sq", "left", 2.25)]
    assert [s.current[1] for s in states] == [("sq",)] * 4 + [()] * 3
    assert states[-1].entered == {1: ("sq",)}  # entered_zones keeps it


def test_exit_delay_is_time_based_and_zero_means_at_once():
    zones = Zones([zone(exit_delay=2.0), zone(name="now", exit_delay=0)])
    _entered_at_1(zones)
    states = run(zones, [(1.5, [T(1, "car", OUT)]), (3.0, [T(1, "car", OUT)]), (3.5, [T(1, "car", OUT)])])
    assert transitions(states) == [(1, "now", "left", 1.5), (1, "sq", "left", 3.5)]


def test_exit_delay_tolerates_inexact_timestamps():
    zones = Zones([zone(inertia=1)])
    states = run(zones, [(k * 0.1, [T(1, "car", IN if k < 33 else OUT)]) for k in range(50)])
    assert 43 * 0.1 - 33 * 0.1 < 1.0  # 10 fps as k * 0.1: a second apart rounds to 0.9999999999999996
    assert transitions(states)[-1] == (1, "sq", "left", 43 * 0.1)


def test_an_unseen_track_keeps_its_zone():
    zones = Zones([zone()])
    _entered_at_1(zones)
    states = run(zones, [(1.0 + k, [T(1, "car", OUT, seen=False)]) for k in range(1, 60)])
    assert transitions(states) == []
    assert states[-1].current == {1: ("sq",)} and states[-1].occupancy == {"sq": {"car": 1}}
    # seen outside again: the delay counts from there
    states = run(zones, [(70.0, [T(1, "car", OUT)]), (70.5, [T(1, "car", OUT)]), (71.0, [T(1, "car", OUT)])])
    assert transitions(states) == [(1, "sq", "left", 71.0)]


def test_label_filter():
    zones = Zones([zone(labels=frozenset({"car"}), inertia=1)])
    states = run(zones, [(0.0, [T(1, "car", IN), T(2, "person", IN)])])
    assert states[0].current == {1: ("sq",), 2: ()}
    assert states[0].occupancy == {"sq": {"car": 1}}
    assert transitions(states) == [(1, "sq", "entered", 0.0)]


def test_loitering_reported_once_per_stay():
    zones = Zones([zone(loitering=5.0)])
    states = run(zones, [(float(t), [T(1, "person", IN)]) for t in range(12)])
    assert transitions(states) == [(1, "sq", "entered", 2.0), (1, "sq", "loitering", 7.0)]
    assert [s.loitering[1] for s in states][6:8] == [(), ("sq",)]
    states = run(zones, [(12.0, [T(1, "person", OUT)]), (13.0, [T(1, "person", OUT)])])
    assert transitions(states) == [(1, "sq", "left", 13.0)] and states[-1].loitering == {1: ()}
    # a new stay starts a new clock
    states = run(zones, [(float(t), [T(1, "person", IN)]) for t in range(14, 20)])
    assert transitions(states) == [(1, "sq", "entered", 16.0)]


def test_a_track_that_ends_inside_leaves():
    zones = Zones([zone(), zone(name="other", points=((0.0, 0.0), (640.0, 0.0), (640.0, 480.0)))])
    _entered_at_1(zones)
    s = zones.update([], 1.2, SIZE, ended=[T(1, "car", IN)])
    assert [(tr.track_id, tr.zone, tr.kind, tr.timestamp) for tr in s.transitions] == [(1, "sq", "left", 1.2)]
    assert s.current == {1: ()} and s.entered == {1: ("sq",)} and s.occupancy == {"sq": {"car": 0}, "other": {}}
    # the id starts afresh if it comes back
    assert zones.update([T(1, "car", IN)], 1.3, SIZE).entered == {1: ()}


def test_a_track_that_disappears_unreported_leaves_too():
    zones = Zones([zone()])
    _entered_at_1(zones)
    s = zones.update([T(2, "car", OUT)], 1.2, SIZE)
    assert s.transitions == (ZoneTransition(1, "sq", "left", 1.2),)
    assert s.current == {2: (), 1: ()}


def test_occupancy_matches_a_hand_count():
    drive = Zone("drive", ((0.0, 240.0), (640.0, 240.0), (640.0, 480.0), (0.0, 480.0)), inertia=1)
    porch = Zone("porch", ((400.0, 300.0), (640.0, 300.0), (640.0, 480.0), (400.0, 480.0)), inertia=1)
    lawn = Zone("lawn", ((0.0, 0.0), (320.0, 0.0), (320.0, 480.0), (0.0, 480.0)), inertia=1,
                labels=frozenset({"person", "dog"}))
    other_cam = Zone("gate", SQUARE, source="cam2", inertia=1)
    zones = Zones([drive, porch, lawn, other_cam], source="cam1")
    scene = [
        T(1, "car", at(500, 400)),     # drive, porch
        T(2, "car", at(100, 300)),     # drive (lawn refuses cars)
        T(3, "person", at(100, 300)),  # drive, lawn
        T(4, "person", at(500, 350)),  # drive, porch
        T(5, "dog", at(200, 100)),     # lawn
        T(6, "person", at(600, 100)),  # nowhere
        T(7, "person", at(450, 460), seen=False),  # never seen: nowhere
    ]
    s = zones.update(scene, 0.0, SIZE)
    assert s.occupancy == {"drive": {"car": 2, "person": 2}, "porch": {"car": 1, "person": 1},
                           "lawn": {"dog": 1, "person": 1}}
    assert s.current == {1: ("drive", "porch"), 2: ("drive",), 3: ("drive", "lawn"), 4: ("drive", "porch"),
                         5: ("lawn",), 6: (), 7: ()}
    # the cars leave (out for the 1 s exit delay); their labels stay with a count of 0
    scene = [T(1, "car", at(500, 100)), T(2, "car", at(500, 100))] + scene[2:]
    assert zones.update(scene, 1.0, SIZE).occupancy["drive"] == {"car": 2, "person": 2}
    s = zones.update(scene, 2.0, SIZE)
    assert s.occupancy == {"drive": {"car": 0, "person": 2}, "porch": {"car": 0, "person": 1},
                           "lawn": {"dog": 1, "person": 1}}


def test_entered_keeps_the_order_of_first_entry():
    a = Zone("a", SQUARE, inertia=1, exit_delay=0)
    b = Zone("b", ((300.0, 100.0), (500.0, 100.0), (500.0, 300.0), (300.0, 300.0)), inertia=1, exit_delay=0)
    zones = Zones([a, b])
    states = run(zones, [(0.0, [T(1, "car", at(400, 200))]), (1.0, [T(1, "car", at(200, 200))]),
                         (2.0, [T(1, "car", at(400, 200))])])
    assert states[-1].entered == {1: ("b", "a")} and states[-1].current == {1: ("b",)}


def test_duplicate_zone_names_for_a_source_are_refused():
    with pytest.raises(ConfigError, match="zone 'sq' is defined twice for source 'cam1'"):
        Zones([zone(), zone(source="cam1")], source="cam1")
    Zones([zone(source="cam2"), zone(source="cam1")], source="cam1")


def test_caller_contract_violations_raise():
    zones = Zones([zone()])
    with pytest.raises(ValueError, match="appears twice"):
        zones.update([T(1, "car", IN), T(1, "car", OUT)], 0.0, SIZE)


def test_time_going_back_restarts_pending_timers_instead_of_failing():
    """A clock set back (or a source starting over) must not end the run: a track inside keeps its
    zone, and its exit delay is timed from the new clock."""
    zones = Zones([zone(inertia=1, exit_delay=1.0)])
    assert zones.update([T(1, "car", IN)], 100.0, SIZE).current == {1: ("sq",)}
    s = zones.update([T(1, "car", OUT)], 100.5, SIZE)
    assert s.current == {1: ("sq",)}  # outside, the exit delay is running
    s = zones.update([T(1, "car", OUT)], 5.0, SIZE)  # time went back 95 s
    assert s.current == {1: ("sq",)} and s.transitions == ()
    s = zones.update([T(1, "car", OUT)], 6.0, SIZE)
    assert s.current == {1: ()} and [t.kind for t in s.transitions] == ["left"]


def test_ten_thousand_tracks_in_one_update():
    zones = Zones([parse_zone("half=0,0.5,1,0.5,1,1,0,1"), zone(), Zone("all_of_it", (
        (0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)), inertia=1)])
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 1, size=(10_000, 2)) * SIZE
    tracks = [T(i, "person", at(x, y)) for i, (x, y) in enumerate(xy)]
    s = zones.update(tracks, 0.0, SIZE)
    assert s.occupancy["all_of_it"] == {"person": 10_000}
    assert len(s.transitions) == 10_000 and len(s.current) == 10_000


def test_an_exit_under_way_completes_while_the_track_is_unseen():
    """Seen outside once, then out of sight (it walked out of view behind a wall): it has left
    after the exit delay, not when its track ends seconds later."""
    zones = Zones([zone(exit_delay=1.0)])
    _entered_at_1(zones)
    states = run(zones, [(2.0, [T(1, "car", OUT)]), (2.5, [T(1, "car", OUT, seen=False)]),
                         (3.0, [T(1, "car", OUT, seen=False)])])
    assert transitions(states) == [(1, "sq", "left", 3.0)] and states[-1].current == {1: ()}
    # back inside before the delay is up: no leave
    zones = Zones([zone(exit_delay=1.0)])
    _entered_at_1(zones)
    states = run(zones, [(2.0, [T(1, "car", OUT)]), (2.5, [T(1, "car", IN)]), (3.5, [T(1, "car", IN, seen=False)])])
    assert transitions(states) == [] and states[-1].current == {1: ("sq",)}
