"""Tracking, zones and events through the real pipeline: a generated H.264 scene with known
trajectories (tests/scenes.py: an object crossing fast at 2 fps, one that parks and is passed in
front of, one unseen for 1.5 s), the committed demo model, `edgekit detect --zone …` and a real
mosquitto. What edgekit reports is compared with what was drawn."""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import jsonschema
import pytest

from conftest import REPO, iou, run_cli
from mqtt_helpers import Broker, Subscriber

sys.path.insert(0, str(Path(__file__).parent))
from scenes import walk_and_park, write_video  # noqa: E402

MODEL = REPO / "examples" / "shapes" / "shapes_int8.tflite"
ZONES = ("left=0,0,0.5,0,0.5,1,0,1", "right=0.5,0,1,0,1,1,0.5,1")


@pytest.fixture(scope="module")
def scene():
    return walk_and_park()


@pytest.fixture(scope="module")
def video(scene, tmp_path_factory):
    return write_video(scene, tmp_path_factory.mktemp("scene") / "walk.mp4")


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory):
    b = Broker(tmp_path_factory.mktemp("broker"), kind="mosquitto").start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def tracked_run(scene, video, mosquitto, tmp_path_factory):
    """One `edgekit detect --zone` run of the scene, publishing to a real mosquitto."""
    sub = Subscriber(mosquitto.port, "#", client_id="tracking-test")
    time.sleep(0.3)
    args = ["-m", "edgekit", "detect", str(MODEL), str(video), "--no-plan", "--mqtt",
            f"mqtt://127.0.0.1:{mosquitto.port}", "--device-id", "yard", "--mqtt-required",
            "--outbox", str(tmp_path_factory.mktemp("outbox") / "o.db"), "--snapshots"]
    for zone in ZONES:
        args += ["--zone", zone]
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    frames = [d for d in lines if "frame" in d]
    assert sub.wait_for(lambda s: len(s.payloads("yard/events")) == sum(len(d["events"]) for d in lines))
    yield {"lines": lines, "frames": frames, "sub": sub, "stderr": r.stderr}
    sub.close()


def _actor_ids(scene, frames) -> dict[str, set[int]]:
    """Which track ids each drawn object got (a detection matched to the drawn box by IoU ≥ 0.5)."""
    ids: dict[str, set[int]] = defaultdict(set)
    for doc in frames:
        truth = scene.truth(doc["frame"] / scene.fps)
        for d in doc["detections"]:
            best = max(truth.items(), key=lambda kv: iou(kv[1], d["box"]), default=None)
            if best is not None and iou(best[1], d["box"]) >= 0.5 and d["track_id"] is not None:
                ids[best[0]].add(d["track_id"])
    return ids


def test_every_frame_line_has_track_ids_and_an_events_list(tracked_run, scene):
    frames = tracked_run["frames"]
    assert len(frames) == len(scene.times())
    assert all(isinstance(d["events"], list) for d in frames)
    assert all("track_id" in det for d in frames for det in d["detections"])
    assert sum(1 for d in frames if d["events"] == []) > len(frames) // 2  # nothing happened in most frames
    last = tracked_run["lines"][-1]
    assert last.get("end_of_source") is True and last["source"] == str(Path(frames[0]["source"]))


def test_one_id_per_object_through_fast_motion_occlusion_and_a_gap(tracked_run, scene):
    ids = _actor_ids(scene, tracked_run["frames"])
    assert set(ids) == {"walker", "parker", "passer", "gap"}
    for actor, found in ids.items():
        assert len(found) == 1, (actor, found)  # walker: boxes never overlap; parker: hidden 2 s; gap: 1.5 s
    assert len(set().union(*ids.values())) == 4


def test_exactly_one_new_and_one_end_per_object(tracked_run, scene):
    events = [e for d in tracked_run["lines"] for e in d["events"]]
    ids = {actor: next(iter(found)) for actor, found in _actor_ids(scene, tracked_run["frames"]).items()}
    by_track = defaultdict(list)
    for e in events:
        by_track[e["after"]["track_id"]].append(e)
    assert set(by_track) == set(ids.values()), "an event for an object that was not drawn"
    for actor, tid in ids.items():
        kinds = [e["type"] for e in by_track[tid]]
        assert kinds[0] == "new" and kinds.count("new") == 1 and kinds.count("end") == 1 and kinds[-1] == "end", \
            (actor, kinds)
        assert len({e["after"]["id"] for e in by_track[tid]}) == 1
    # the objects that leave end while the video goes on, within max_unseen (5 s) of their last sight
    # (at once for the walker, who walks out of the frame); end_time is that last sight
    said_at = {e["after"]["id"]: d.get("timestamp", scene.duration) for d in tracked_run["lines"] for e in d["events"]
               if e["type"] == "end"}
    for actor in ("walker", "passer", "gap"):
        gone = max(k[0] for k in next(a for a in scene.actors if a.name == actor).keys)
        end = next(e for e in by_track[ids[actor]] if e["type"] == "end")
        assert gone - 0.5 <= end["after"]["end_time"] <= gone + 0.01, (actor, end["after"]["end_time"])
        assert said_at[end["after"]["id"]] <= gone + 5.5, (actor, said_at[end["after"]["id"]])
    walker_end = next(e for e in by_track[ids["walker"]] if e["type"] == "end")
    assert said_at[walker_end["after"]["id"]] <= 5.5  # out of the frame: ended without waiting max_unseen
    seqs = [e["after"]["seq"] for e in events]
    assert seqs == list(range(1, len(events) + 1))


def test_the_parked_object_is_stationary_soon_and_sends_no_flood(tracked_run, scene):
    ids = _actor_ids(scene, tracked_run["frames"])
    tid = next(iter(ids["parker"]))
    events = [e for d in tracked_run["lines"] for e in d["events"] if e["after"]["track_id"] == tid]
    stationary = [e for e in events if e["after"]["stationary"]]
    assert stationary and stationary[0]["after"]["frame_time"] <= 8.0 + 15.0  # parked at t=8
    # 32 s parked at 2 fps = 64 frames: new, a few moves while it drives in, zones, stationary, end
    assert len(events) <= 8, [(e["type"], e["after"]["frame_time"]) for e in events]
    assert all(e["after"]["stationary"] for e in events if e["type"] == "update"
               and e["after"]["frame_time"] > stationary[0]["after"]["frame_time"])
    end = events[-1]
    assert end["type"] == "end" and end["after"]["end_time"] >= scene.duration - 1.0  # never ended while in view


def _zone_truth(scene, inertia: int = 3):
    """(actor, zone) -> (enter t, leave t) by the bottom-centre anchor, on the frames' times; a
    stay shorter than the zones' inertia (3 frames: 1.5 s at 2 fps) is no entry."""
    w, _h = scene.size
    spans = {}
    for actor in scene.actors:
        inside = [(t, "left" if (b[0] + b[2]) / 2 < w / 2 else "right") for t in scene.times()
                  if (b := actor.box(t)) is not None]
        for zone in ("left", "right"):
            times = [t for t, z in inside if z == zone]
            if len(times) >= inertia:
                spans[(actor.name, zone)] = (times[0], times[-1])
    return spans


def test_zone_enter_and_leave_within_3_s_and_none_extra(tracked_run, scene):
    ids = {next(iter(v)): k for k, v in _actor_ids(scene, tracked_run["frames"]).items()}
    got = defaultdict(list)
    for d in tracked_run["lines"]:
        for e in d["events"]:
            for t in e["after"]["zone_transitions"]:
                got[(ids[e["after"]["track_id"]], t["zone"])].append((t["kind"], t["time"]))
    truth = _zone_truth(scene)
    assert set(got) == set(truth)
    for key, (enter, leave) in truth.items():
        kinds = [k for k, _ in got[key] if k in ("entered", "left")]
        assert kinds == ["entered", "left"], (key, got[key])
        (_, t_in), (_, t_out) = [x for x in got[key] if x[0] in ("entered", "left")]
        assert enter <= t_in <= enter + 3.0, (key, t_in, enter)
        # a leave is reported after the exit delay, or when the track ends (max_unseen after the last sight)
        assert leave <= t_out <= leave + 3.0 or (key[0] != "parker" and t_out <= leave + 5.5), (key, t_out, leave)


def test_retained_zone_counts_follow_the_truth(tracked_run, scene):
    sub = tracked_run["sub"]
    with sub.lock:
        messages = list(sub.messages)
    src = "walk.mp4"
    series = defaultdict(list)
    for topic, payload, _retain in messages:
        parts = topic.split("/")
        if (len(parts) == 5 and parts[0] == "edgekit" and parts[1] == "yard" and parts[2].endswith(src)
                and parts[4] != "snapshot"):
            series[(parts[3], parts[4])].append(int(payload))
    # the most objects of a label in a zone at once, as drawn (the two triangles overlap in time)
    assert max(series[("right", "square")]) == 1 and max(series[("left", "circle")]) == 1
    assert max(series[("all", "triangle")]) == 2 and max(series[("all", "all")]) >= 2
    assert all(values[-1] == 0 for values in series.values()), series  # the source ended: nothing is there
    active = [int(p) for t, p, _ in messages if t.endswith("/right/square/active")]
    assert active[-2:] == [0, 0] or active[-1] == 0  # stationary: not active


def test_events_on_mqtt_validate_against_the_schema(tracked_run):
    schema = json.loads((REPO / "edgekit" / "schemas" / "events-1.json").read_text())
    published = tracked_run["sub"].payloads("yard/events")
    printed = [e for d in tracked_run["lines"] for e in d["events"]]
    assert len(published) == len(printed) > 0
    for doc in published:
        jsonschema.validate(doc, schema, format_checker=jsonschema.FormatChecker())
        assert doc["device"] == "yard"
    # the outbox sends a share of the newest messages with each batch, so arrival order may differ: seq orders them
    key = lambda e: (e["after"]["seq"], e["type"], e["after"]["id"])  # noqa: E731
    assert sorted(map(key, published)) == sorted(map(key, printed))
    detections = json.loads((REPO / "edgekit" / "schemas" / "detections-3.json").read_text())
    for doc in tracked_run["sub"].payloads("yard/detections")[:20]:
        jsonschema.validate(doc, detections)


def test_events_only_and_frigate_layout(scene, video, mosquitto, tmp_path):
    """--no-detections: no per-frame messages; --frigate: the same events on frigate/events and the
    counts on frigate/<camera>/<label>, as Frigate's consumers read them."""
    sub = Subscriber(mosquitto.port, "#", client_id="frigate-test")
    time.sleep(0.3)
    r = run_cli("-m", "edgekit", "detect", str(MODEL), str(video), "--no-plan", "--track", "--no-detections",
                "--frigate", "--mqtt", f"mqtt://127.0.0.1:{mosquitto.port}", "--device-id", "fyard", "--mqtt-required",
                "--outbox", str(tmp_path / "o.db"), "--zone", ZONES[1])
    assert r.returncode == 0, r.stderr
    printed = [e for line in r.stdout.splitlines() for e in json.loads(line)["events"]]
    assert sub.wait_for(lambda s: len(s.payloads("frigate/events")) == len(printed) > 0)
    with sub.lock:
        topics = [t for t, _, _ in sub.messages]
    assert not any(t == "edgekit/fyard/detections" for t in topics)
    assert len(sub.payloads("edgekit/fyard/events")) == len(printed)
    frigate = sub.payloads("frigate/events")
    assert {e["type"] for e in frigate} == {"new", "update", "end"}
    assert all(e["after"]["camera"].endswith("walk.mp4") for e in frigate)
    camera = frigate[0]["after"]["camera"].replace("/", "_")
    assert f"frigate/{camera}/square" in topics and f"frigate/{camera}/all" in topics
    assert "frigate/right/square" in topics and f"frigate/{camera}/square/active" in topics
    sub.close()


def test_snapshots_of_moving_objects_are_saved_privately_and_published(tracked_run, scene):
    import io
    import os
    import stat

    from PIL import Image

    events = [e for d in tracked_run["lines"] for e in d["events"]]
    ends = [e for e in events if e["type"] == "end"]
    assert ends and all(e["after"]["has_snapshot"] for e in ends)  # every object here moved at some point
    folder = Path(os.environ["XDG_STATE_HOME"]) / "edgekit" / "snapshots"
    files = sorted(folder.rglob("*.jpg"))
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert all(stat.S_IMODE(d.stat().st_mode) == 0o700 for d in {f.parent for f in files} | {folder})
    sub = tracked_run["sub"]
    with sub.lock:
        snaps = {t: p for t, p, _ in sub.messages if t.endswith("/square/snapshot")}
    (payload,) = snaps.values()
    with Image.open(io.BytesIO(payload)) as image:
        assert image.size == scene.size


@pytest.mark.parametrize("zone, says", [
    ("drive", "zone"),                                   # no '='
    ("drive=0,0,1,1", "drive"),                          # fewer than 3 points
    ("drive=0,0,1,0,nan,1", "drive"),                    # NaN
    ("bow=0,0,1,1,1,0,0,1", "bow"),                      # edges cross
    ("all=0,0,1,0,1,1", "all"),                          # a reserved name
    ("far=1000,1000,1100,1000,1100,1100", "far"),        # entirely outside the 320x240 frame
])
def test_bad_zones_are_one_clear_line_and_exit_2(video, zone, says):
    r = run_cli("-m", "edgekit", "detect", str(MODEL), str(video), "--no-plan", "--zone", zone)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_settings_file_named_sources_with_their_zones(video, tmp_path):
    settings = tmp_path / "service.toml"
    settings.write_text(f'model = "{MODEL}"\nplan = false\n'
                        f'sources = [{{ name = "yard", source = "{video}", zones = {{ east = {{ points = '
                        '[[0.5, 0], [1, 0], [1, 1], [0.5, 1]], labels = ["square"] } } }]\n'
                        '[zones.west]\nsource = "yard"\npoints = [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]\n'
                        '[tracker]\nmax_unseen = 4\n[events]\nheartbeat = 30\n')
    r = run_cli("-m", "edgekit", "run", str(settings))
    assert r.returncode == 0, r.stderr
    events = [e for line in r.stdout.splitlines() for e in json.loads(line)["events"]]
    assert events and {e["after"]["camera"] for e in events} == {"yard"}
    zones = {t["zone"] for e in events for t in e["after"]["zone_transitions"]}
    assert zones == {"east", "west"}
    east = {e["after"]["label"] for e in events for t in e["after"]["zone_transitions"] if t["zone"] == "east"}
    assert east == {"square"}  # the zone's label filter
    settings.write_text(settings.read_text().replace('source = "yard"\npoints', 'source = "nope"\npoints'))
    r = run_cli("-m", "edgekit", "run", str(settings))
    assert r.returncode == 2 and "zones.west.source: expected the name of one of this run's sources" in r.stderr \
        and "'nope'" in r.stderr and "yard" in r.stderr, r.stderr
