"""Time each stage of detection (decode, preprocess, invoke, decode outputs) per model, JPEG draft
decoding against a full decode, and 1 thread against the usable cores. Prints numbers; ratios are
measured within one run (shared machines are noisy). No TensorFlow needed.

    python examples/benchmarks/bench_stages.py [--data ../shared/data] [--repeat 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from PIL import Image

from edgekit import Detector, DetectorOptions
from edgekit.device import usable_cores
from edgekit.image import LoadedImage, load_image


def _ms(func, repeat: int) -> float:
    func()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        func()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _full_decode(path: str) -> LoadedImage:
    img = Image.open(path)
    img.load()
    return LoadedImage(img.convert("RGB"), img.width, img.height, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default=os.environ.get("EDGEKIT_SHARED_DATA", "../shared/data"))
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args()
    models = {
        "ssd_mobilenet_v1 uint8": "models/ssd_mobilenet_v1_quant/detect.tflite",
        "yolov8n full-int8": "models/yolov8n/yolov8n_full_integer_quant.tflite",
        "yolov8n dynamic-range": "models/yolov8n/yolov8n_int8.tflite",
    }
    photo = os.path.join(args.data, "images/coral_cat_1080p.jpg")
    cores = usable_cores()
    print(f"photo {photo} (1920x1080), usable cores {cores}, median of {args.repeat} runs, ms")
    print(f"{'model':<24}{'decode full':>12}{'decode draft':>13}{'preprocess':>11}{'invoke 1T':>10}"
          f"{'invoke %dT' % cores:>10}{'outputs':>9}{'total':>8}")
    for name, rel in models.items():
        print(f"{name:<24}" + "".join(f"{v:>{w}.{d}f}" for v, (w, d) in zip(
            _bench_model(os.path.join(args.data, rel), photo, cores, args.repeat),
            [(12, 1), (13, 1), (11, 1), (10, 1), (10, 1), (9, 2), (8, 1)])))


def _bench_model(model: str, photo: str, cores: int, repeat: int) -> list[float]:
    det1 = Detector(model, DetectorOptions(num_threads=1))
    detn = Detector(model, DetectorOptions(num_threads=cores))
    full = _ms(lambda: _full_decode(photo), repeat)
    draft = _ms(lambda: load_image(photo, detn.input_size, detn.input_spec.resize), repeat)
    loaded = detn.load(photo)
    prep = _ms(lambda: detn.preprocess(loaded), repeat)
    tensor, transform = detn.preprocess(loaded)
    inv1 = _ms(lambda: det1.invoke(tensor), repeat)
    invn = _ms(lambda: detn.invoke(tensor), repeat)
    outputs = detn.invoke(tensor)
    dec = _ms(lambda: detn.decode(outputs, transform), repeat)
    total = _ms(lambda: detn.detect(photo), repeat)
    return [full, draft, prep, inv1, invn, dec, total]

if __name__ == "__main__":
    main()
