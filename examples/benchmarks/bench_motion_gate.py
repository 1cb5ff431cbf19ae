"""What motion gating saves: whole-process CPU of ``edgekit detect --motion`` against the same run
without it, on a 720p scene of real photos that stands still about a third of the time, whether
the events stay the same, and what the motion detector itself costs per frame.

The scene (1280x720 H.264, libx264 via PyAV, ``--duration`` s, default 60, at ``--fps``, default 5):
the sea and beach of ``coral_kite_and_cold.jpg`` (its right-hand part, without people, scaled up)
as a static background with sensor noise (``--sigma`` grey levels on the luma, default 2, fresh
every frame), and rectangular crops of real photos pasted on it, in explicit segments (printed):
empty; a person walking across; empty; a car driving in and parking; the car parked; another
person walking across in front of it; the car parked; a dog trotting across. The crops are those
of ``bench_scene.py`` (checked there to be found with their labels at these sizes). Nothing moves
in the "still" segments (the parked car becomes background ``absorb_after``, 2 s, after it stops).

Then, in ``--rounds`` rounds (default 3), gated and ungated in alternating order:
``python -m edgekit detect MODEL VIDEO --no-plan --track --threads 1 [--motion]`` as a child
process, its CPU (user + sys, every thread) from ``resource.getrusage(RUSAGE_CHILDREN)`` deltas.
The machine is shared and noisy: each round prints the load average, and the ratio is taken
within a round. Printed: CPU s each, the ratio gated / ungated (target <= 0.75), frames gated
(overall and per segment), and the ``new`` / ``end`` events of both runs compared: count per
label, and each track matched to one of the other run with the same label, start and end within
1 s; every difference is printed.

Last, ``MotionDetector().update`` on each decoded frame's Y plane (a view of the decoder's buffer,
rows ``line_size`` apart), with ``np.mean`` of the same array as a yardstick: median and p95 ms per
720p frame (target <= 0.5 ms), one line per pass.

    python examples/benchmarks/bench_motion_gate.py [--model ssd|yolo|both] [--rounds 3]
        [--duration 60] [--fps 5] [--sigma 2] [--seed 0] [--out DIR]

Needs PyAV (``pip install av``) and ``EDGEKIT_SHARED_DATA`` (default ``../shared/data``). About
3.5 minutes with the defaults on 2 cores (rendering 15 s; each SSD run 20-30 s).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("EDGEKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
IMAGES = DATA / "images"
W, H = 1280, 720
TARGET_RATIO = 0.75  # gated CPU / ungated CPU
TARGET_MS = 0.5  # MotionDetector.update per 720p frame
SAME_WITHIN = 1.0  # seconds: a track's start and end in both runs

MODELS = {
    "ssd": (DATA / "models/ssd_mobilenet_v1_quant/detect.tflite", DATA / "models/ssd_mobilenet_v1_quant/labelmap.txt"),
    "yolo": (DATA / "models/yolov8n/yolov8n_full_integer_quant.tflite", DATA / "models/yolov8n/labels_coco80.txt"),
}

#: Background: the sea and beach right of the people in the kite photo (x1, y1, x2, y2).
BACKGROUND = ("coral_kite_and_cold.jpg", (560, 470, 1352, 900))


@dataclass(frozen=True)
class Crop:
    """A rectangle of a real photo and the object's box inside it (photo pixels)."""

    image: str
    rect: tuple[int, int, int, int]
    obj: tuple[int, int, int, int]


CROPS = {  # as in bench_scene.py
    "dark_hoodie": Crop("coral_kite_and_cold.jpg", (208, 690, 279, 864), (215, 698, 271, 858)),
    "blue_hoodie": Crop("coral_kite_and_cold.jpg", (104, 604, 173, 766), (111, 613, 166, 760)),
    "terrier": Crop("coral_pets.jpg", (330, 150, 510, 380), (344, 164, 496, 366)),
    "saloon": Crop("coral_automl_video_ondevice_traffic_frames_0001.bmp", (46, 145, 130, 201), (51, 150, 124, 196)),
}


@dataclass(frozen=True)
class Actor:
    """A crop pasted along keyframes ``(t, centre x, bottom y)`` of its object box, linear between
    them; absent before the first and after the last. Times are for a 60 s scene."""

    name: str
    crop: str
    height: int  # object box height, pixels
    keys: tuple[tuple[float, float, float], ...]
    mirror: bool = False

    def place(self, t: float) -> tuple[float, float] | None:
        k = self.keys
        if t < k[0][0] - 1e-9 or t > k[-1][0] + 1e-9:
            return None
        for (t0, x0, y0), (t1, x1, y1) in zip(k, k[1:]):
            if t <= t1 + 1e-9:
                f = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
                return x0 + f * (x1 - x0), y0 + f * (y1 - y0)
        return k[-1][1], k[-1][2]


#: The segments of a 60 s scene: (start, end, what, moving). Still: 7 + 4 + 8 + 3 = 22 s.
SEGMENTS = (
    (0.0, 7.0, "empty beach", False),
    (7.0, 19.0, "person walks left to right", True),
    (19.0, 23.0, "empty beach", False),
    (23.0, 29.0, "car drives in from the right, parks", True),
    (29.0, 37.0, "car parked", False),
    (37.0, 49.0, "person walks right to left, in front of the car", True),
    (49.0, 52.0, "car parked", False),
    (52.0, 60.0, "dog trots left to right (car parked)", True),
)


def cast(scale: float) -> tuple[Actor, ...]:
    """The actors of SEGMENTS, times multiplied by ``scale`` (duration / 60)."""
    def keys(*points):
        return tuple((t * scale, x, y) for t, x, y in points)

    return (
        Actor("walker_a", "dark_hoodie", 300, keys((7.0, -80, 690), (19.0, W + 80, 690))),
        Actor("car", "saloon", 200, keys((23.0, W + 260, 560), (27.0, 980, 560), (29.0, 860, 560),
                                         (60.0, 860, 560))),
        Actor("walker_b", "blue_hoodie", 300, keys((37.0, W + 80, 660), (49.0, -80, 660)), mirror=True),
        Actor("dog", "terrier", 280, keys((52.0, -200, 712), (60.0, W + 200, 712))),
    )


def segments(scale: float) -> list[tuple[float, float, str, bool]]:
    return [(a * scale, b * scale, what, moving) for a, b, what, moving in SEGMENTS]


# -- the video --------------------------------------------------------------------------------
def sprite(actor: Actor) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The crop scaled to the actor's height (float RGB) and the object's box inside it."""
    c = CROPS[actor.crop]
    with Image.open(IMAGES / c.image) as img:
        im = img.convert("RGB").crop(c.rect)
    s = actor.height / (c.obj[3] - c.obj[1])
    im = im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS)
    box = ((c.obj[0] - c.rect[0]) * s, (c.obj[1] - c.rect[1]) * s, (c.obj[2] - c.rect[0]) * s,
           (c.obj[3] - c.rect[1]) * s)
    if actor.mirror:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
        box = (im.width - box[2], box[1], im.width - box[0], box[3])
    return np.asarray(im, np.float32), box


def render(path: Path, duration: float, fps: float, sigma: float, seed: int) -> int:
    """Write the scene as H.264 yuv420p, noise added to the luma; returns the frame count."""
    import av

    name, rect = BACKGROUND
    with Image.open(IMAGES / name) as img:
        base = np.asarray(img.convert("RGB").crop(rect).resize((W, H), Image.BICUBIC), np.float32)
    actors = cast(duration / 60.0)
    sprites = {a.name: sprite(a) for a in actors}
    rng = np.random.default_rng(seed)
    rate = Fraction(fps).limit_denominator(1000)
    n = int(round(duration * fps))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast", "g": str(max(1, round(2 * fps)))}
        for i in range(n):
            t = i / fps
            rgb = base.copy()
            placed = [(p, a) for a in actors if (p := a.place(t)) is not None]
            for (cx, bottom), a in sorted(placed, key=lambda item: item[0][1]):  # back to front
                pix, (ox1, _, ox2, oy2) = sprites[a.name]
                x0, y0 = int(round(cx - (ox1 + ox2) / 2)), int(round(bottom - oy2))
                sx1, sy1 = max(0, x0), max(0, y0)
                sx2, sy2 = min(W, x0 + pix.shape[1]), min(H, y0 + pix.shape[0])
                if sx2 > sx1 and sy2 > sy1:
                    rgb[sy1:sy2, sx1:sx2] = pix[sy1 - y0:sy2 - y0, sx1 - x0:sx2 - x0]
            yuv = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24").reformat(format="yuv420p")
            planes = yuv.to_ndarray()  # (H * 3 / 2, W): Y, then U and V
            noisy = planes[:H] + rng.standard_normal((H, W), dtype=np.float32) * sigma
            planes[:H] = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts, frame.time_base = i, 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return n


# -- edgekit detect ---------------------------------------------------------------------------
@dataclass
class Run:
    gated: bool
    cpu: float  # user + sys of the child, s
    wall: float
    lines: list[dict]


def detect(model: str, video: Path, gated: bool) -> Run:
    path, labels = MODELS[model]
    cmd = [sys.executable, "-m", "edgekit", "detect", str(path), str(video), "--labels", str(labels),
           "--no-plan", "--track", "--threads", "1", *(["--motion"] if gated else [])]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"$ {' '.join(cmd)}\nfailed (rc {r.returncode}):\n{r.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(gated, cpu, wall, [json.loads(line) for line in r.stdout.splitlines() if line.strip()])


def frames(run: Run) -> list[dict]:
    return [d for d in run.lines if "frame" in d]


@dataclass(frozen=True)
class Track:
    """A track as its ``new`` and ``end`` events tell it."""

    id: str
    label: str
    start: float
    end: float | None  # its end_time; None: no end event
    end_label: str | None


def tracks(run: Run) -> list[Track]:
    new: dict[str, dict] = {}
    end: dict[str, dict] = {}
    for d in run.lines:
        for e in d.get("events", []):
            if e["type"] == "new":
                new[e["after"]["id"]] = e["after"]
            elif e["type"] == "end":
                end[e["after"]["id"]] = e["after"]
    out = []
    for tid in sorted(new.keys() | end.keys(), key=lambda k: (new.get(k) or end[k])["start_time"]):
        a = new.get(tid) or end[tid]
        e = end.get(tid)
        out.append(Track(tid, a["label"], a["start_time"], e["end_time"] if e else None, e["label"] if e else None))
    return out


def compare(ungated: list[Track], gated: list[Track]) -> list[str]:
    """The differences: counts per label of new and end events, then tracks without a twin (same
    label, start and end within SAME_WITHIN) in the other run."""
    diffs = []
    for kind, key in (("new", lambda t: t.label), ("end", lambda t: t.end_label)):
        a = Counter(key(t) for t in ungated if kind == "new" or t.end is not None)
        b = Counter(key(t) for t in gated if kind == "new" or t.end is not None)
        for label in sorted(a.keys() | b.keys()):
            if a[label] != b[label]:
                diffs.append(f"{kind} events for {label!r}: ungated {a[label]}, gated {b[label]}")

    def close(x: Track, y: Track) -> bool:
        if x.label != y.label or abs(x.start - y.start) > SAME_WITHIN:
            return False
        if x.end is None or y.end is None:
            return x.end is None and y.end is None
        return abs(x.end - y.end) <= SAME_WITHIN

    free = list(gated)
    for t in ungated:
        twin = min((g for g in free if close(t, g)), key=lambda g: abs(g.start - t.start), default=None)
        if twin is None:
            diffs.append(f"ungated track {describe(t)} has no twin in the gated run")
        else:
            free.remove(twin)
    diffs += [f"gated track {describe(g)} has no twin in the ungated run" for g in free]
    return diffs


def describe(t: Track) -> str:
    end = "no end" if t.end is None else f"{t.end:.1f}"
    return f"{t.label} {t.start:.1f}..{end}"


def show_tracks(ungated: list[Track], gated: list[Track]) -> None:
    print(f"  tracks (new..end, s):  ungated {len(ungated)}: " + ", ".join(describe(t) for t in ungated))
    print(f"  {'':22} gated {len(gated)}:   " + ", ".join(describe(t) for t in gated))


def bench_model(model: str, video: Path, rounds: int, segs: list, out: Path | None) -> dict:
    print(f"\n=== {model}: {MODELS[model][0].name}, {rounds} rounds, gated and ungated alternating ===", flush=True)
    print(f"  {'round':>5} {'load 1m':>7} {'ungated CPU s':>13} {'gated CPU s':>11} {'ratio':>6} "
          f"{'wall s':>11} {'frames':>6} {'gated':>5}", flush=True)
    runs: list[tuple[Run, Run]] = []
    for k in range(rounds):
        load = os.getloadavg()[0]
        order = (False, True) if k % 2 == 0 else (True, False)
        done = {g: detect(model, video, g) for g in order}
        ungated, gated = done[False], done[True]
        runs.append((ungated, gated))
        n_gated = sum(1 for d in frames(gated) if d["motion"]["gated"])
        print(f"  {k + 1:5} {load:7.2f} {ungated.cpu:13.2f} {gated.cpu:11.2f} {gated.cpu / ungated.cpu:6.3f} "
              f"{ungated.wall:5.1f}/{gated.wall:<5.1f} {len(frames(gated)):6} {n_gated:5}"
              f"   ({'ungated' if not order[0] else 'gated'} first)", flush=True)
        if out is not None:
            for r in (ungated, gated):
                (out / f"{model}_{'gated' if r.gated else 'ungated'}_{k + 1}.jsonl").write_text(
                    "\n".join(json.dumps(d) for d in r.lines) + "\n")
    ratios = sorted(g.cpu / u.cpu for u, g in runs)
    median = ratios[len(ratios) // 2]
    total = sum(g.cpu for _, g in runs) / sum(u.cpu for u, _ in runs)
    ungated, gated = runs[0]
    n = len(frames(gated))
    skipped = [d["timestamp"] for d in frames(gated) if d["motion"]["gated"]]
    print(f"  frames gated (not inferred): {len(skipped)} of {n} ({len(skipped) / n:.0%}); per segment:")
    for a, b, what, moving in segs:
        inside = [d for d in frames(gated) if a - 1e-9 <= d["timestamp"] < b - 1e-9]
        g = sum(1 for d in inside if d["motion"]["gated"])
        m = sum(1 for d in inside if d["motion"]["moving"])
        print(f"    {a:5.1f}-{b:5.1f} s  {'moving' if moving else 'still ':6}  {len(inside):4} frames, "
              f"{m:4} with motion, {g:4} gated   {what}")
    ut, gt = tracks(ungated), tracks(gated)
    show_tracks(ut, gt)
    diffs = compare(ut, gt)
    for d in diffs:
        print(f"  EVENTS DIFFER: {d}")
    stable = all(compare(tracks(u), ut) == [] and compare(tracks(g), gt) == [] for u, g in runs[1:])
    if not stable:
        print("  note: the events differ from one round to the next (same video, same flags)")
    print(f"  CPU: ungated median {sorted(u.cpu for u, _ in runs)[rounds // 2]:.2f} s, gated median "
          f"{sorted(g.cpu for _, g in runs)[rounds // 2]:.2f} s; ratio gated/ungated per round "
          f"{', '.join(f'{r:.3f}' for r in ratios)}: median {median:.3f}, of the sums {total:.3f}", flush=True)
    return {"model": model, "ratio": median, "gated": len(skipped), "frames": n, "diffs": diffs, "stable": stable,
            "new": Counter(t.label for t in ut), "new_gated": Counter(t.label for t in gt)}


# -- the motion detector's own cost -----------------------------------------------------------
def y_plane(frame) -> np.ndarray:
    """The decoder's luma buffer as a (height, width) view, rows line_size bytes apart."""
    plane = frame.planes[0]
    return np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[:, :frame.width]


def motion_cost(video: Path, passes: int) -> tuple[float, float, float]:
    """Per pass over the video (a fresh detector each): median and p95 ms of update() and of
    np.mean on the same Y plane. Returns the best pass's (median, p95, np.mean median)."""
    import av

    from edgekit.motion import MotionDetector

    print(f"\n=== MotionDetector().update() per {W}x{H} Y plane (a view of the decoder's buffer) ===")
    print(f"  {'pass':>4} {'load 1m':>7} {'frames':>6} {'moving':>6} {'median ms':>9} {'p95 ms':>7} "
          f"{'np.mean median':>14} {'p95':>6} {'x mean':>6}")
    best = None
    for k in range(passes):
        detector = MotionDetector()
        cost, yard, moving = [], [], 0
        load = os.getloadavg()[0]
        with av.open(str(video)) as container:
            for frame in container.decode(video=0):
                y = y_plane(frame)
                t0 = time.perf_counter()
                m = detector.update(y, float(frame.time))
                t1 = time.perf_counter()
                np.mean(y)
                t2 = time.perf_counter()
                cost.append(t1 - t0)
                yard.append(t2 - t1)
                moving += m.moving
        row = (ms(cost), ms(cost, 0.95), ms(yard), ms(yard, 0.95))
        print(f"  {k + 1:4} {load:7.2f} {len(cost):6} {moving:6} {row[0]:9.3f} {row[1]:7.3f} {row[2]:14.3f} "
              f"{row[3]:6.3f} {row[0] / row[2]:6.2f}", flush=True)
        if best is None or row[0] < best[0]:
            best = row
    return best[0], best[1], best[2]


def ms(values: list[float], q: float = 0.5) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else float("nan")


# -- main -------------------------------------------------------------------------------------
def provenance() -> str:
    """Which edgekit ran: the repository's commit, and whether edgekit/ had uncommitted changes."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "edgekit"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return f"edgekit at commit {head}" + (" with uncommitted changes in edgekit/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "edgekit (not a git checkout)"


def run(args: argparse.Namespace, out: Path, keep: bool) -> None:
    print(provenance())
    for path, labels in MODELS.values():
        if not path.exists() or not labels.exists():
            raise SystemExit(f"{path} or {labels} not found: set EDGEKIT_SHARED_DATA to the shared data folder "
                             f"(now {DATA})")
    segs = segments(args.duration / 60.0)
    video = out / "beach.mp4"
    t0 = time.perf_counter()
    n = render(video, args.duration, args.fps, args.sigma, args.seed)
    still = sum(b - a for a, b, _, moving in segs if not moving)
    print(f"scene: {n} frames {W}x{H} H.264 at {args.fps:g} fps, luma noise sigma {args.sigma:g}, background "
          f"{BACKGROUND[0]} {BACKGROUND[1]}, made in {time.perf_counter() - t0:.1f} s -> {video}")
    print(f"segments (still {still:.0f} of {args.duration:g} s = {still / args.duration:.0%}; a parked car is "
          "motion for ~2 s until absorbed):")
    for a, b, what, moving in segs:
        print(f"  {a:5.1f}-{b:5.1f} s  {'moving' if moving else 'still ':6}  {what}")
    reports = [bench_model(m, video, args.rounds, segs, out if keep else None)
               for m in (("ssd", "yolo") if args.model == "both" else (args.model,))]
    median, p95, mean = motion_cost(video, args.rounds)
    print("\n=== summary ===")
    for r in reports:
        ok = r["ratio"] <= TARGET_RATIO
        print(f"  {r['model']:4} CPU gated/ungated {r['ratio']:.3f} (median of rounds; target <= {TARGET_RATIO}): "
              f"{'PASS' if ok else 'FAIL'}; {r['gated']} of {r['frames']} frames gated")
        same = not r["diffs"]
        print(f"       events: {'SAME' if same else 'DIFFER'} (new per label ungated {dict(r['new'])}, gated "
              f"{dict(r['new_gated'])}; {len(r['diffs'])} differences)"
              + ("" if r["stable"] else "; not the same from round to round"))
    print(f"  motion detector: median {median:.3f} ms, p95 {p95:.3f} ms per 720p frame (best pass; target "
          f"<= {TARGET_MS} ms): {'PASS' if median <= TARGET_MS else 'FAIL'}; np.mean of the same array "
          f"{mean:.3f} ms ({median / mean:.2f}x)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("ssd", "yolo", "both"), default="ssd", help="default: ssd")
    p.add_argument("--rounds", type=int, default=3, help="rounds of gated + ungated runs (default 3)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of video (default 60; the segments scale)")
    p.add_argument("--fps", type=float, default=5.0, help="frame rate (default 5)")
    p.add_argument("--sigma", type=float, default=2.0, help="luma noise, grey levels (default 2)")
    p.add_argument("--seed", type=int, default=0, help="the noise")
    p.add_argument("--out", type=Path, help="keep the video and the JSON lines here")
    args = p.parse_args()
    if args.rounds < 1 or args.duration < 20 or args.fps <= 0:
        p.error("--rounds must be >= 1, --duration >= 20 s and --fps > 0")
    if args.out is None:
        with tempfile.TemporaryDirectory(prefix="bench_motion_gate_") as tmp:
            run(args, Path(tmp), keep=False)
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        run(args, args.out, keep=True)
        print(f"\nvideo and JSON lines in {args.out}")


if __name__ == "__main__":
    main()
