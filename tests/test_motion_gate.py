"""The motion gate's decisions (edgekit.gate) on real numpy frames: what is inferred, and the
ON/OFF state with its off delay. The gate through the real pipeline is in test_cli's motion tests."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import ConfigError
from edgekit.gate import GateOptions, MotionGate, MotionState


def scene(t: float, square_at: float | None, rng) -> np.ndarray:
    frame = np.clip(np.full((360, 640), 110.0) + rng.normal(0, 2, (360, 640)), 0, 255).astype(np.uint8)
    if square_at is not None:
        x = int(square_at)
        frame[150:230, x:x + 80] = 230
    return frame


def test_a_still_scene_is_inferred_once_then_every_recheck_and_motion_always():
    rng = np.random.default_rng(0)
    gate = MotionGate(GateOptions(recheck=10.0))
    decisions = []
    for k in range(60):  # 2 fps: 0-10 s still, 10-15 s a square moves, 15-30 s still (it left)
        t = k * 0.5
        at = 40 + (t - 10) * 80 if 10 <= t < 15 else None
        decisions.append((t, gate.check(scene(t, at, rng), t)[0]))
    inferred = [t for t, infer in decisions if infer]
    assert inferred[0] == 0.0 and 5.0 not in inferred  # the first frame; nothing while still
    assert all(t in inferred for t in (10.5, 11.0, 12.0, 13.0, 14.0, 14.5))  # while it moves
    still_after = [t for t in inferred if t >= 16.0]
    assert still_after and all(b - a >= 10.0 - 1e-9 for a, b in zip(still_after, still_after[1:]))
    assert len(inferred) < 25  # most of the 60 frames were not inferred


def test_lights_on_is_inferred_and_time_back_starts_over():
    rng = np.random.default_rng(1)
    gate = MotionGate()
    for k in range(6):
        gate.check(scene(k * 0.5, None, rng), k * 0.5)
    bright = np.clip(scene(3.0, None, rng).astype(int) * 1.4, 0, 255).astype(np.uint8)
    infer, motion = gate.check(bright, 3.0)
    assert infer and motion.recalibrated and not motion.moving
    assert gate.check(scene(0.0, None, rng), 0.0)[0]  # a file played again


def test_motion_state_turns_off_only_after_the_delay():
    state = MotionState(off_delay=5.0)
    seq = [(0.0, False), (1.0, True), (2.0, False), (5.5, True), (6.0, False), (10.0, False), (10.6, False),
           (11.0, True)]
    said = [(t, state.update("cam", moving, t)) for t, moving in seq]
    assert said == [(0.0, "OFF"), (1.0, "ON"), (2.0, None), (5.5, None), (6.0, None), (10.0, None),
                    (10.6, "OFF"), (11.0, "ON")]
    assert state.update("door", False, 0.0) == "OFF"  # each source its own
    own = MotionState({"door": 1.0})  # per source; others the default 30 s
    assert [own.update("door", m, t) for t, m in ((0.0, True), (0.5, False), (1.0, False))] == ["ON", None, "OFF"]
    assert [own.update("cam", m, t) for t, m in ((0.0, True), (29.0, False), (30.0, False))] == ["ON", None, "OFF"]


@pytest.mark.parametrize("field,value", [("recheck", -1), ("off_delay", float("nan")), ("recheck", "10")])
def test_bad_gate_options_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"motion {field} must be a number of seconds >= 0"):
        GateOptions(**{field: value})


def test_the_first_still_frame_after_motion_and_a_new_size_are_inferred():
    rng = np.random.default_rng(2)
    gate = MotionGate()
    times = [k * 0.5 for k in range(12)]
    said = [gate.check(scene(t, 100 + 60 * t if t < 2 else None, rng), t) for t in times]
    # inferred: the first frame, every moving one, and the first still one after motion (it shows
    # that the square left: gated frames repeat it); not the still ones after that. Where the
    # square stood in the first frame (the background) differs until it is absorbed, but that
    # ghost stands still: it is no change since the frame last inferred
    moving = [m.moving and m.changed is not False for _, m in said]
    assert moving[1] and not moving[-1] and not moving[-2]
    assert [infer for infer, _ in said] == [k == 0 or moving[k] or moving[k - 1] for k in range(len(times))]
    small = np.full((120, 160), 110, np.uint8)
    assert gate.check(small, 6.0)[0] and not gate.check(small, 6.5)[0]  # another size: another scene


def test_an_object_that_stopped_is_not_inferred_again_until_it_moves():
    """A car drives in and parks: it differs from the background for ``absorb_after`` seconds,
    but not from the frame last inferred, so those frames are gated once ``settle`` has passed.
    When it drives off, or creeps by a step the grey sample sees, it is inferred again."""
    rng = np.random.default_rng(5)
    gate = MotionGate(GateOptions(settle=0.4, recheck=30.0))

    def at(t):  # 5 fps: drives in 0-2 s, parked 2-6 s, creeps 1 px every 0.4 s 6-9 s, drives off 9-10 s
        if t < 2:
            return 20 + 100 * t
        if t < 6:
            return 220
        if t < 9:
            return 220 + int((t - 6) * 2.5)  # 1 px every 2 frames
        return 235 + 150 * (t - 9)

    said = [(t, *gate.check(scene(t, at(t), rng), t)) for t in (round(k * 0.2, 1) for k in range(50))]
    parked = [(t, infer, m) for t, infer, m in said if 2.0 <= t < 6.0]
    assert all(m.moving for t, _, m in parked if t < 3.8)  # differs from the background ...
    assert not any(m.changed for t, _, m in parked if t > 2.0)  # ... not from the frame last inferred
    assert [t for t, infer, _ in parked if infer] == [2.0, 2.2, 2.4]  # where it stopped, then settle
    creeping = [t for t, infer, _ in said if 6.0 <= t < 9.0 and infer]
    assert creeping[0] == 6.4  # its first step that moves a sampled pixel column is a change
    assert all(infer for _, infer, m in said if m.changed)
    assert all(infer for t, infer, _ in said if 9.2 <= t)  # drives off: every frame


def test_still_frames_within_settle_seconds_of_motion_are_inferred():
    """At 5 fps a walker's last sliver at the frame's edge is no motion, yet the detector still
    reads it: the still frames up to ``settle`` s after the last moving one are inferred too, so
    the frame gated frames repeat is one the walker has left."""
    rng = np.random.default_rng(3)
    times = [round(k * 0.2, 1) for k in range(25)]
    for settle, still_inferred in ((0.4, 2), (0.0, 1), (1.0, 5)):
        gate = MotionGate(GateOptions(settle=settle))
        said = [(t, *gate.check(scene(t, 100 + 100 * t if t < 2 else None, rng), t)) for t in times]
        last_moving = max(t for t, _, m in said if m.moving and m.changed is not False)
        after = [infer for t, infer, _ in said if t > last_moving]
        assert after[:still_inferred] == [True] * still_inferred, settle
        assert not any(after[still_inferred:]), settle  # then gated, until the recheck
    with pytest.raises(ConfigError, match="motion settle must be a number of seconds >= 0"):
        GateOptions(settle=-0.1)


def test_a_still_frame_never_replaces_the_frame_to_infer_it_repeats():
    """Two live cameras of a still scene and a slow model: each camera's inferred frame waits in
    its one-frame slot while the still frames behind it come; they must not replace it (every
    result would then fail with nothing to repeat)."""
    import time
    from pathlib import Path

    from PIL import Image

    import edgekit
    from edgekit.frames import Frame
    from edgekit.runner import Runner, RunOptions

    repo = Path(__file__).resolve().parent.parent
    picture = np.asarray(Image.open(repo / "examples/shapes/images/scene_0.png").convert("RGB"))

    class Camera:
        live = True

        def __init__(self, name):
            self.name = name

        def frames(self):
            t0 = time.time()
            for i in range(40):
                time.sleep(0.01)
                yield Frame(self.name, i, time.time() - t0, time.monotonic(), pixels=picture.copy())

        def close(self):
            pass

    class Slow:
        def __init__(self, det):
            self.det = det

        def __getattr__(self, name):
            return getattr(self.det, name)

        def invoke(self, tensor):
            time.sleep(0.05)
            return self.det.invoke(tensor)

    det = Slow(edgekit.Detector(str(repo / "examples/shapes/shapes_int8.tflite")))
    runner = Runner([Camera("a"), Camera("b")], det, RunOptions(motion=GateOptions()))
    results = [fr for fr in runner if not fr.end_of_source]
    assert results and all(fr.error is None for fr in results), [str(fr.error) for fr in results if fr.error][:2]
    assert all(st.gated > 0 for st in runner.stats)
