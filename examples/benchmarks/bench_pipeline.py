"""Throughput of edgekit's pipelined runner against a bare ``invoke()`` loop, a naive PIL loop and
(optionally) MediaPipe Tasks' ObjectDetector, over the 128 COCO val2017 JPEGs x4 (one folder
source, every-frame mode). Prints numbers; not a test. Ratios are taken within one repetition
(the machine is shared and noisy), then the median over repetitions is reported.

    python examples/benchmarks/bench_pipeline.py [--data ../shared/data] [--repeat 3] [--times 4]
        [--models ssd,yolo] [--mediapipe-python /tmp/mpvenv/bin/python]

Configurations, images/s:
  bare T    interpreter.set_tensor + invoke on tensors decoded and preprocessed in advance, T threads
  runner T  edgekit.watch(folder x4, Detector(num_threads=T)) with a null sink: 1 reader thread
            (decode + preprocess) + the interpreter's T threads + outputs on the caller's thread
  naive     Image.open → convert → resize (Pillow bilinear) → invoke, one thread, best bare T
  mediapipe ObjectDetector (IMAGE mode) on the SSD with metadata; runs in a child Python that can
            import mediapipe (this one, or --mediapipe-python); skipped with a note otherwise
Per-stage costs (median ms) come from the runner's FrameResult.timings.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from PIL import Image

import edgekit
from edgekit import Detector, DetectorOptions

MODELS = {
    "ssd": "models/ssd_mobilenet_v1_quant/detect.tflite",
    "yolo": "models/yolov8n/yolov8n_full_integer_quant.tflite",
}
MEDIAPIPE_MODEL = "models/ssd_mobilenet_v1_quant/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29_with_metadata.tflite"
TARGET = {"ssd": 0.90, "yolo": 0.95}

_MEDIAPIPE_CHILD = r"""
import sys, time
import numpy as np
import mediapipe as mp
from mediapipe.tasks import python as mpt
from mediapipe.tasks.python import vision
from PIL import Image
model, times, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
opts = vision.ObjectDetectorOptions(base_options=mpt.BaseOptions(model_asset_path=model),
                                    running_mode=vision.RunningMode.IMAGE, score_threshold=0.25, max_results=25)
det = vision.ObjectDetector.create_from_options(opts)
def image(p):
    with Image.open(p) as img:
        if img.mode == "RGB":
            return mp.Image.create_from_file(p)  # MediaPipe's own decoder, as its users call it
        return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.asarray(img.convert("RGB")))
det.detect(image(paths[0]))  # warm-up
t = time.perf_counter()
n = 0
for _ in range(times):
    for p in paths:
        det.detect(image(p))
        n += 1
print(n / (time.perf_counter() - t))
"""


def _bare(det: Detector, tensors: list[np.ndarray], n: int, cpu_ms: list[float] | None = None) -> float:
    # The interpreter itself: the fastest anything built on it can go (benchmark-only private use).
    it, index = det._interpreter, det._input_index
    for tensor in tensors[:2]:
        it.set_tensor(index, tensor)
        it.invoke()
    t, c = time.perf_counter(), _cpu()
    for i in range(n):
        it.set_tensor(index, tensors[i % len(tensors)])
        it.invoke()
    wall, used = time.perf_counter() - t, _cpu() - c
    if cpu_ms is not None:
        cpu_ms.append(used / n * 1000)
    return n / wall


def _cpu() -> float:
    """CPU seconds this process has used (all threads: reader, interpreter workers, caller)."""
    t = os.times()
    return t.user + t.system


def _runner(det: Detector, folder: str, times: int, timings: dict[str, list[float]],
            cpu_ms: list[float] | None = None) -> float:
    tensor, _ = det.preprocess(det.load(np.zeros((det.input_size[1], det.input_size[0], 3), np.uint8)))
    det.invoke(tensor)  # warm-up, as the bare loop gets
    n = 0
    t, c = time.perf_counter(), _cpu()
    for fr in edgekit.watch([folder] * times, det):  # one ImageFiles source; results dropped (null sink)
        n += 1
        for key, value in fr.timings.items():
            timings.setdefault(key, []).append(value)
    wall, used = time.perf_counter() - t, _cpu() - c
    if cpu_ms is not None:
        cpu_ms.append(used / n * 1000)
    return n / wall


def _naive(det: Detector, paths: list[str], times: int) -> float:
    it, index = det._interpreter, det._input_index
    d = it.get_input_details()[0]
    flip = np.dtype(d["dtype"]) == np.int8
    t = time.perf_counter()
    for _ in range(times):
        for p in paths:
            pixels = np.asarray(Image.open(p).convert("RGB").resize(det.input_size, Image.BILINEAR))[np.newaxis]
            it.set_tensor(index, (pixels ^ np.uint8(0x80)).view(np.int8) if flip else pixels)
            it.invoke()
    return len(paths) * times / (time.perf_counter() - t)


def _mediapipe(python: str, data: str, paths: list[str], times: int) -> float:
    r = subprocess.run([python, "-c", _MEDIAPIPE_CHILD, os.path.join(data, MEDIAPIPE_MODEL), str(times), *paths],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"mediapipe child failed: {r.stderr.strip().splitlines()[-1:]}")
    return float(r.stdout.strip().splitlines()[-1])


def _mediapipe_python(given: str | None) -> str | None:
    if given:
        return given
    return sys.executable if importlib.util.find_spec("mediapipe") is not None else None


def bench_model(key: str, args: argparse.Namespace, folder: str, paths: list[str]) -> None:
    model = os.path.join(args.data, MODELS[key])
    cores = len(os.sched_getaffinity(0))
    dets = {t: Detector(model, DetectorOptions(num_threads=t)) for t in (1, 2)}
    tensors = [dets[1].preprocess(dets[1].load(p))[0] for p in paths]
    n = len(paths) * args.times
    mp_python = _mediapipe_python(args.mediapipe_python) if key == "ssd" else None
    rows: dict[str, list[float]] = {}
    ratios, mp_ratios = [], []
    timings: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}  # CPU ms per frame, all threads, per configuration
    bounds = []
    for rep in range(args.repeat):
        got = {f"bare {t}T": _bare(dets[t], tensors, n, cpu.setdefault(f"bare {t}T", [])) for t in (1, 2)}
        for t in (1, 2):
            got[f"runner {t}T"] = _runner(dets[t], folder, args.times, timings if t == 2 else {},
                                          cpu.setdefault(f"runner {t}T", []))
        best_t = 1 if got["bare 1T"] >= got["bare 2T"] else 2
        got["naive"] = _naive(dets[best_t], paths, args.times)
        if mp_python:
            got["mediapipe"] = _mediapipe(mp_python, args.data, paths, args.times)
        for name, value in got.items():
            rows.setdefault(name, []).append(value)
        bare = max(got["bare 1T"], got["bare 2T"])
        runner = max(got["runner 1T"], got["runner 2T"])
        ratios.append(runner / bare)
        # Amdahl's bound: with every core busy, the runner cannot exceed cores / (its CPU per frame)
        best_runner = "runner 1T" if got["runner 1T"] >= got["runner 2T"] else "runner 2T"
        bounds.append(cores / (cpu[best_runner][-1] / 1000) / bare)
        if "mediapipe" in got:
            mp_ratios.append(runner / got["mediapipe"])
        print(f"  rep {rep + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in got.items()) + f"  runner/bare {runner / bare:.3f}",
              flush=True)
    print(f"{key}: {n} frames per configuration, median of {args.repeat} repetitions (images/s)")
    for name, values in rows.items():
        print(f"  {name:<10} {statistics.median(values):7.1f}   (runs: {', '.join(f'{v:.1f}' for v in values)})")
    print(f"  runner/bare (best of each, per repetition): median {statistics.median(ratios):.3f} "
          f"(target >= {TARGET[key]:.2f}; runs {', '.join(f'{r:.3f}' for r in ratios)})")
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"  runner 1T / runner 2T: {med['runner 1T'] / med['runner 2T']:.3f}   "
          f"bare 1T / bare 2T: {med['bare 1T'] / med['bare 2T']:.3f}   naive/bare: "
          f"{med['naive'] / max(med['bare 1T'], med['bare 2T']):.3f}")
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    print("  CPU ms per frame, all threads: " + ", ".join(f"{k} {v:.2f}" for k, v in med_cpu.items()))
    print(f"  bound on runner/bare with {cores} cores busy (cores / runner CPU per frame / bare fps): median "
          f"{statistics.median(bounds):.3f}; the runner reached {statistics.median(ratios) / statistics.median(bounds):.0%} "
          "of it (the rest: cores idle while the reader waits on a full queue and the interpreter syncs)")
    if mp_ratios:
        print(f"  runner/mediapipe: median {statistics.median(mp_ratios):.3f} (target >= 1.40; runs "
              f"{', '.join(f'{r:.3f}' for r in mp_ratios)})")
    elif key == "ssd":
        print("  mediapipe: skipped — not importable here; pass --mediapipe-python PATH to a Python that has it "
              "(e.g. a venv with 'pip install mediapipe')")
    stages = ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in timings.items())
    print(f"  runner 2T per-stage median ms: {stages}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("EDGEKIT_SHARED_DATA", "../shared/data"))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--times", type=int, default=4, help="passes over the 128 images (default 4: 512 frames)")
    p.add_argument("--models", default="ssd,yolo")
    p.add_argument("--mediapipe-python", metavar="PATH", help="a Python that can import mediapipe")
    args = p.parse_args()
    folder = os.path.join(args.data, "coco128_val2017/images")
    paths = sorted(glob.glob(os.path.join(folder, "*.jpg")))
    print(f"{len(paths)} images x{args.times}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    for key in args.models.split(","):
        bench_model(key, args, folder, paths)


if __name__ == "__main__":
    main()
