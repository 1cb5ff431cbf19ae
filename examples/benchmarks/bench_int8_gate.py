"""Issue 10's quantization path on YOLOv8n, measured in one run on this machine.

Ultralytics' dynamic-range export → float32 copy (converters.floatcopy) → full int8 with
ai-edge-quantizer (converters.quantize), calibrated on the photos in ``images/`` (none of them in
the validation set), plain and with the YOLO head's decode tail kept in float. Each model, and
Ultralytics' own full-int8 export, is scored on the 128 COCO val images through edgekit's
runtime (edgekit.coco_eval) and timed (median of N invokes, 1 and 2 threads).

    python examples/benchmarks/bench_int8_gate.py [--data ../shared/data] [--out DIR] [--invokes 20]

With ``--gate MAX_DROP`` it runs converters.gate.gate_int8 instead (plain int8, head repair, then the
most sensitive float islands out of int8 in growing batches, a shrink step) and prints each step, timed
interleaved with the float model at 1 and 2 threads, and the gate's time.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from converters.floatcopy import float_copy  # noqa: E402
from converters.quantize import calibration_samples, head_tail_ops, quantize_int8  # noqa: E402
from edgekit import Detector  # noqa: E402
from edgekit.coco_eval import evaluate_coco  # noqa: E402
from edgekit.detector import DetectorOptions  # noqa: E402
from edgekit.runtime import create_interpreter  # noqa: E402

_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")


def cpu_isa() -> str:
    """The SIMD extensions that decide int8 vs float speed, from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as fh:
            text = fh.read()
    except OSError:
        return "unknown"
    flags = set()
    model = ""
    for line in text.splitlines():
        if line.startswith("flags") and not flags:
            flags = set(line.split(":", 1)[1].split())
        if line.startswith("model name") and not model:
            model = line.split(":", 1)[1].strip()
    wanted = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
    return f"{model}: " + " ".join(f for f in wanted if f in flags)


def calibration_images(images_dir: str, val_dir: str) -> list[str]:
    """Photos in ``images_dir`` whose content is not one of the validation images."""
    val = {_digest(os.path.join(val_dir, n)) for n in os.listdir(val_dir)}
    names = sorted(n for n in os.listdir(images_dir) if n.lower().endswith(_IMAGE_EXT))
    paths = [os.path.join(images_dir, n) for n in names]
    return [p for p in paths if _digest(p) not in val]


def _digest(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def latency_ms(path: str, threads: int, invokes: int) -> float:
    interpreter = create_interpreter(path, threads)
    inp = interpreter.get_input_details()[0]
    x = np.random.default_rng(0).integers(0, 255, inp["shape"]).astype(inp["dtype"])
    interpreter.set_tensor(inp["index"], x)
    for _ in range(3):
        interpreter.invoke()
    times = []
    for _ in range(invokes):
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("EDGEKIT_SHARED_DATA", "../shared/data"))
    p.add_argument("--out", default=None, help="where to write the models (default: a temporary folder)")
    p.add_argument("--invokes", type=int, default=20)
    p.add_argument("--gate", type=float, metavar="MAX_DROP", default=None,
                   help="run the mAP gate with this limit (mAP50-95 points) and print its steps")
    p.add_argument("--max-steps", type=int, default=8)
    args = p.parse_args()
    if args.gate is not None:
        return run_gate(args)
    out = args.out or tempfile.mkdtemp(prefix="int8_gate_")
    os.makedirs(out, exist_ok=True)
    yolo = os.path.join(args.data, "models", "yolov8n")
    val_dir = os.path.join(args.data, "coco128_val2017", "images")
    annotations = os.path.join(args.data, "coco128_val2017", "instances_val2017_first128_DERIVED_from_yolo.json")
    dynamic = os.path.join(yolo, "yolov8n_int8.tflite")
    models = {"dynamic-range (Ultralytics)": dynamic}
    steps = {}

    start = time.perf_counter()
    copy = float_copy(open(dynamic, "rb").read(), dynamic)
    models["float32 copy"] = _write(out, "yolov8n_float32.tflite", copy.model)
    steps["float copy"] = time.perf_counter() - start
    print(f"float copy: {copy.dequantized} int8 + {copy.float16} float16 weight tensors widened, "
          f"{copy.folded} DEQUANTIZE folded", flush=True)

    calib = calibration_images(os.path.join(args.data, "images"), val_dir)
    print(f"calibration: {len(calib)} photos from images/ (none in the validation set)", flush=True)
    start = time.perf_counter()
    samples = calibration_samples(models["float32 copy"], calib)
    int8 = quantize_int8(copy.model, samples)
    models["full int8 (ai-edge-quantizer)"] = _write(out, "yolov8n_aeq_int8.tflite", int8)
    steps["int8 quantization"] = time.perf_counter() - start
    tail = head_tail_ops(copy.model)
    start = time.perf_counter()
    repaired = quantize_int8(copy.model, samples, keep_float=tail)
    models[f"int8, head tail float ({len(tail)} ops)"] = _write(out, "yolov8n_aeq_int8_headfloat.tflite", repaired)
    steps["int8 + float tail"] = time.perf_counter() - start
    models["full int8 (Ultralytics)"] = os.path.join(yolo, "yolov8n_full_integer_quant.tflite")

    print(f"ISA: {cpu_isa()}", flush=True)
    rows = []
    for name, path in models.items():
        detector = Detector(path, DetectorOptions(score_threshold=0.01, max_results=100, num_threads=2))
        start = time.perf_counter()
        score = evaluate_coco(detector, val_dir, annotations)
        evaluated = time.perf_counter() - start
        rows.append((name, score.map50_95, score.map50, latency_ms(path, 1, args.invokes),
                     latency_ms(path, 2, args.invokes), os.path.getsize(path) / 1e6, evaluated))
        print(f"  scored {name} on {score.images} images in {evaluated:.0f} s", flush=True)
    print(f"\n{'model':34} {'mAP50-95':>8} {'mAP50':>6} {'1 thr ms':>8} {'2 thr ms':>8} {'MB':>5}")
    for name, m, m50, t1, t2, size, _ in rows:
        print(f"{name:34} {m:8.4f} {m50:6.3f} {t1:8.1f} {t2:8.1f} {size:5.2f}")
    print("steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items()) + f"; models in {out}")
    return 0


def run_gate(args: argparse.Namespace) -> int:
    """The gate on YOLOv8n's float copy, calibrated on images/, scored on the 128 COCO images; then
    every step's model and the float model timed interleaved (1 and 2 threads) in one table."""
    from converters.gate import evaluator, gate_int8
    from converters.quantize import activation_ranges
    from edgekit.datasets import check_disjoint, load_validation_set

    started = time.perf_counter()
    yolo = os.path.join(args.data, "models", "yolov8n")
    dynamic = os.path.join(yolo, "yolov8n_int8.tflite")
    dataset = load_validation_set(os.path.join(args.data, "coco128_val2017",
                                               "instances_val2017_first128_DERIVED_from_yolo.json"))
    out = args.out or tempfile.mkdtemp(prefix="int8_gate_")
    os.makedirs(out, exist_ok=True)
    copy = float_copy(open(dynamic, "rb").read(), dynamic)
    float_path = _write(out, "yolov8n_float32.tflite", copy.model)
    calib = calibration_images(os.path.join(args.data, "images"), dataset.images_dir)
    check_disjoint(calib, dataset)
    samples = calibration_samples(float_path, calib)
    print(f"ISA: {cpu_isa()}\ncalibration: {len(samples)} photos; validation: {len(dataset)} images", flush=True)
    gate_started = time.perf_counter()
    ranges = activation_ranges(copy.model, samples)
    print(f"activation ranges (global min/max) in {time.perf_counter() - gate_started:.0f} s", flush=True)

    def latency(model: bytes) -> float:
        with tempfile.TemporaryDirectory() as folder:
            return latency_ms(_write(folder, "m.tflite", model), 2, args.invokes // 2 or 1)

    result = gate_int8(copy.model, samples, evaluator(dataset, os.path.join(yolo, "labels_coco80.txt")), args.gate,
                       latency=latency, progress=sys.stdout, max_steps=args.max_steps, ranges=ranges)
    gate_seconds = time.perf_counter() - gate_started
    paths = [float_path] + [_write(out, f"step{n}.tflite", quantize_int8(copy.model, samples, keep_float=s.kept_float,
                                                                         int16=s.int16, ranges=ranges))
                            for n, s in enumerate(result.steps, 1)]
    timing = interleaved_latency(paths, args.invokes)
    print(f"\n{'#':>2} {'step':58} {'float':>5} {'int16':>5} {'mAP50-95':>8} {'drop':>6} {'1T ms':>6} "
          f"{'2T ms':>6} {'MB':>5}")
    print(f"   {'float32 copy (reference)':58} {'all':>5} {0:5} {result.reference_map50_95:8.4f} {0:+6.2f} "
          f"{timing[0][0]:6.1f} {timing[0][1]:6.1f} {len(copy.model) / 1e6:5.2f}")
    for n, step in enumerate(result.steps, 1):
        mark = "*" if step is result.best else " "
        print(f"{n:2}{mark}{step.description:58} {len(step.kept_float):5} {len(step.int16):5} {step.map50_95:8.4f} "
              f"{-step.drop_points:+6.2f} {timing[n][0]:6.1f} {timing[n][1]:6.1f} {step.size_bytes / 1e6:5.2f}")
    path = _write(out, "yolov8n_gated_int8.tflite", result.model)
    print(f"{'PASSED' if result.passed else 'NOT PASSED'} (limit {result.max_drop:.2f} points); best (*) written to "
          f"{path}; gate {gate_seconds:.0f} s (ranges, ranking, {len(result.steps)} candidates scored), "
          f"total {time.perf_counter() - started:.0f} s; latency: median of {args.invokes} invokes per model, "
          "models interleaved")
    return 0 if result.passed else 1


def interleaved_latency(paths: list[str], invokes: int, rounds: int = 5) -> list[tuple[float, float]]:
    """Median ms per invoke of each model at 1 and 2 threads, the models taking turns (``rounds``
    rounds of ``invokes / rounds`` invokes each) so a busy spell on the machine hits them alike."""
    result = []
    for threads in (1, 2):
        runs = []
        for path in paths:
            interpreter = create_interpreter(path, threads)
            inp = interpreter.get_input_details()[0]
            interpreter.set_tensor(inp["index"], np.random.default_rng(0).integers(0, 255, inp["shape"]).astype(inp["dtype"]))
            interpreter.invoke()
            runs.append((interpreter, []))
        for _ in range(rounds):
            for interpreter, times in runs:
                for _ in range(max(invokes // rounds, 1)):
                    start = time.perf_counter()
                    interpreter.invoke()
                    times.append((time.perf_counter() - start) * 1000)
        result.append([statistics.median(times) for _, times in runs])
    return list(zip(*result))


def _write(out: str, name: str, data: bytes) -> str:
    path = os.path.join(out, name)
    with open(path, "wb") as fh:
        fh.write(data)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
