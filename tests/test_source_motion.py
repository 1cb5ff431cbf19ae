"""Per-source motion settings through a real run: one generated H.264 video (tests/scenes.py)
watched as three named sources of one settings file — the run's `motion = true`, a source whose
own `motion` table rechecks every 2 s, and a source with `motion = false` — on the committed demo
model. Each source is gated as its own table says."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_cli

sys.path.insert(0, str(Path(__file__).parent))
from scenes import Actor, Scene, write_video  # noqa: E402

MODEL = REPO / "examples" / "shapes" / "shapes_int8.tflite"


@pytest.fixture(scope="module")
def lines(tmp_path_factory):
    # still for 8 s, then a circle crosses: bright, so that its motion shows in the luma
    walker = Actor("walker", "circle", 44, ((8.0, 0.0, 150.0), (11.0, 300.0, 150.0)), (250, 250, 250))
    folder = tmp_path_factory.mktemp("source_motion")
    video = write_video(Scene((walker,), 12.0), folder / "quiet.mp4")
    settings = folder / "service.toml"
    settings.write_text(f'model = "{MODEL}"\nplan = false\nmotion = true\n'
                        f'[[sources]]\nname = "default"\nsource = "{video}"\n'
                        f'[[sources]]\nname = "often"\nsource = "{video}"\nmotion = {{ recheck = 2 }}\n'
                        f'[[sources]]\nname = "every"\nsource = "{video}"\nmotion = false\n')
    r = run_cli("-m", "edgekit", "run", str(settings))
    assert r.returncode == 0, r.stderr
    by_source: dict[str, list[dict]] = {}
    for doc in map(json.loads, r.stdout.splitlines()):
        by_source.setdefault(doc["source"], []).append(doc)
    return by_source


def _inferred_while_still(docs):
    return [d["timestamp"] for d in docs if not d["motion"]["gated"] and d["timestamp"] < 7.9]


def test_a_source_without_its_own_motion_setting_takes_the_runs(lines):
    docs = lines["default"]
    assert len(docs) == 24 and all("motion" in d for d in docs)
    assert _inferred_while_still(docs) == [0.0]  # the run's recheck: 10 s
    assert any(not d["motion"]["gated"] and d["timestamp"] > 8 for d in docs)  # the walker is inferred


def test_a_source_motion_table_replaces_the_runs(lines):
    docs = lines["often"]
    assert len(docs) == 24 and all("motion" in d for d in docs)
    assert _inferred_while_still(docs) == [0.0, 2.0, 4.0, 6.0]  # its own recheck: 2 s


def test_motion_false_on_a_source_turns_gating_off_for_it(lines):
    docs = lines["every"]
    assert len(docs) == 24 and all("motion" not in d for d in docs)


def test_each_source_motion_sensor_has_its_own_off_delay(tmp_path):
    """Two sources of one run, one with `motion = { off_delay = 0.5 }`: after the walker's last
    moving frame its retained motion state goes OFF; the other's (the run's 30 s) stays ON."""
    from mqtt_helpers import Broker, Subscriber

    walker = Actor("walker", "circle", 44, ((2.0, 0.0, 150.0), (5.0, 300.0, 150.0)), (250, 250, 250))
    video = write_video(Scene((walker,), 8.0), tmp_path / "walk.mp4")
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker", kind="mosquitto").start()
    try:
        sub = Subscriber(broker.port, "edgekit/yard/+/motion", client_id="off-delay-test")
        settings = tmp_path / "service.toml"
        settings.write_text(f'model = "{MODEL}"\nplan = false\nmotion = true\n'
                            f'[[sources]]\nname = "quick"\nsource = "{video}"\nmotion = {{ off_delay = 0.5 }}\n'
                            f'[[sources]]\nname = "slow"\nsource = "{video}"\n'
                            f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker.port}"\ndevice_id = "yard"\n'
                            f'outbox = "{tmp_path / "o.db"}"\n')
        r = run_cli("-m", "edgekit", "run", str(settings))
        assert r.returncode == 0, r.stderr

        def states(name):
            with sub.lock:
                return [p.decode() for t, p, _ in sub.messages if t == f"edgekit/yard/{name}/motion"]
        assert sub.wait_for(lambda s: states("quick")[-1:] == ["OFF"] and "ON" in states("quick")
                            and "ON" in states("slow"), timeout=30), (states("quick"), states("slow"))
        assert states("slow")[-1] == "ON", states("slow")  # 30 s had not passed when the video ended
        sub.close()
    finally:
        broker.stop()
