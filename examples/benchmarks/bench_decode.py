"""Frames straight from the decoder: what edgekit's video path costs against a lean hand-written
loop, which swscale interpolation to scale with, and how image files are best decoded. Prints
numbers; not a test. Ratios are taken within one round (the machine is shared and noisy: each
round prints the load average), CPU is the process's own (all threads: decoder, reader,
interpreter, caller), from ``resource.getrusage``.

    python examples/benchmarks/bench_decode.py [--data ../shared/data] [--rounds 3] [--seconds 20]
        [--interpolations] [--jpeg] [--simplejpeg /tmp/sj]

Default: a 1280x720 30 fps H.264 pan across a real photo (made here with PyAV), the SSD at 1
thread, CPU ms per frame of
  lean      PyAV decode -> one reformat(frame, 300, 300, "rgb24") -> set_tensor + invoke
  edgekit   edgekit.run(watch(video, detector), [JsonLines(devnull)]): what ``edgekit detect`` does
  old path  the same Runner on a source that converts each frame to full-size RGB, as edgekit did
            before (to_ndarray("rgb24") -> numpy bilinear to 300x300)
--interpolations: per swscale interpolation, the CPU of scaling a 720p frame to the model input,
  the mean pixel difference and detection agreement with the old path on a slideshow of real photos
  (and the old path's own agreement under +-1 pixel noise: the floor any change meets), and COCO128
  mAP50-95 with each image given as a yuv420p frame; SSD and YOLOv8n full-int8.
--jpeg: the 128 COCO JPEGs decoded by Pillow draft (DCT scaling, what edgekit does), Pillow full
  decode + reduce, and simplejpeg (DCT scaling in libjpeg-turbo; pip install --target DIR simplejpeg
  and pass --simplejpeg DIR): ms per image (decode + preprocess) and mAP50-95.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import resource
import statistics
import sys
import tempfile

import numpy as np
from PIL import Image

import edgekit.image as ekimage
from edgekit import Detector, DetectorOptions
from edgekit.image import LoadedImage, encode_pixels, fit_to_input, load_image
from edgekit.runner import Runner, run
from edgekit.sinks import JsonLines
from edgekit.sources.video import VideoFile

MODELS = {"ssd": ("models/ssd_mobilenet_v1_quant/detect.tflite", "models/ssd_mobilenet_v1_quant/labelmap.txt"),
          "yolo": ("models/yolov8n/yolov8n_full_integer_quant.tflite", "models/yolov8n/labels_coco80.txt")}
PHOTOS = ["coral_kite_and_cold.jpg", "tflsupport_cats_and_dogs.jpg", "tflsupport_multi_objects.jpg", "coral_pets.jpg",
          "table.jpg", "coral_cat_1080p.jpg", "coral_automl_video_ondevice_traffic_frames_0001.bmp",
          "coral_grace_hopper.bmp"]
INTERPOLATIONS = ["FAST_BILINEAR", "BILINEAR", "BICUBIC", "POINT", "AREA", "BICUBLIN", "GAUSS", "LANCZOS"]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def encode(path: str, pictures, fps: int = 30) -> str:
    """Write ``pictures`` (RGB arrays, all one size) as H.264 yuv420p with PyAV."""
    import av

    with av.open(path, "w") as container:
        stream = None
        for rgb in pictures:
            if stream is None:
                stream = container.add_stream("libx264", rate=fps)
                stream.height, stream.width = rgb.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "20", "preset": "veryfast"}
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def pan(photo: str, seconds: float, size=(1280, 720), fps: int = 30):
    """A window panning left to right, then back, across ``photo`` scaled to 1.5x the width."""
    w, h = size
    with Image.open(photo) as img:
        scale = max(1.5 * w / img.width, h / img.height)
        big = np.asarray(img.convert("RGB").resize((int(img.width * scale) + 1, int(img.height * scale) + 1)))
    n = int(seconds * fps)
    for i in range(n):
        phase = i / max(1, n - 1) * 2
        x = int((big.shape[1] - w) * (phase if phase <= 1 else 2 - phase))
        yield big[:h, x:x + w]


def slides(images: str, per_photo: int = 6, size=(1280, 720)):
    """Each photo of PHOTOS scaled to cover ``size`` and panned across in ``per_photo`` frames."""
    w, h = size
    for name in PHOTOS:
        with Image.open(os.path.join(images, name)) as img:
            scale = max(1.25 * w / img.width, h / img.height)
            big = np.asarray(img.convert("RGB").resize((int(img.width * scale) + 1, int(img.height * scale) + 1),
                                                       Image.LANCZOS))
        for i in range(per_photo):
            x = int((big.shape[1] - w) * i / max(1, per_photo - 1))
            yield big[:h, x:x + w]


class OldVideo(VideoFile):
    """The video source as edgekit had it: every frame converted to full-size RGB when read."""

    def frames(self):
        for frame in super().frames():
            pixels = frame.pixels
            yield frame if pixels is None else dataclasses.replace(frame, pixels=pixels.to_ndarray(format="rgb24"))


# -- edgekit against the lean loop --------------------------------------------------------------

def lean(det: Detector, video: str) -> int:
    """PyAV decode -> one reformat to the input size -> invoke, as a user would write it (with a
    VideoReformatter kept across frames: frame.reformat() would build a swscale context each time)."""
    import av
    from av.video.reformatter import VideoReformatter

    it, index = det._interpreter, det._input_index
    w, h = det.input_size
    reformatter = VideoReformatter()
    n = 0
    with av.open(video) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # as VideoFile decodes by default
        for frame in container.decode(stream):
            rgb = reformatter.reformat(frame, w, h, "rgb24", interpolation=ekimage.VIDEO_INTERPOLATION).to_ndarray()
            it.set_tensor(index, rgb[np.newaxis])
            it.invoke()
            n += 1
    return n


def edgekit_run(det: Detector, video: str, source=VideoFile) -> int:
    with open(os.devnull, "w") as devnull:
        return run(Runner([source(video)], det), [JsonLines(devnull)]).processed


def bench_cpu(args, data: str, video: str) -> None:
    model, labels = (os.path.join(data, p) for p in MODELS["ssd"])
    det = Detector(model, DetectorOptions(num_threads=1), labels_path=labels)
    lean(det, video)  # warm-up: the file in the page cache, the interpreter's first invokes
    cpu: dict[str, list[float]] = {"lean": [], "edgekit": [], "old path": []}
    ratios, old_ratios = [], []
    for rnd in range(args.rounds):
        got = {}
        runs = [("lean", lambda: lean(det, video)), ("edgekit", lambda: edgekit_run(det, video)),
                ("old path", lambda: edgekit_run(det, video, OldVideo))]
        for name, func in runs[rnd % 3:] + runs[:rnd % 3]:  # rotated: no configuration always runs first
            c = _cpu()
            n = func()
            got[name] = (_cpu() - c) / n * 1000
            cpu[name].append(got[name])
        ratios.append(got["edgekit"] / got["lean"])
        old_ratios.append(got["old path"] / got["lean"])
        print(f"  round {rnd + 1}: load {os.getloadavg()[0]:.2f}; CPU ms/frame " +
              ", ".join(f"{k} {v:.2f}" for k, v in got.items()) +
              f"; edgekit/lean {ratios[-1]:.3f}, old/lean {old_ratios[-1]:.3f}", flush=True)
    print(f"edgekit detect CPU per frame / lean loop: median {statistics.median(ratios):.3f} (target <= 1.05; "
          f"rounds {', '.join(f'{r:.3f}' for r in ratios)}); the old path: median "
          f"{statistics.median(old_ratios):.3f} (rounds {', '.join(f'{r:.3f}' for r in old_ratios)})")
    print("  median CPU ms/frame: " + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in cpu.items()) +
          f"; lowest of each: edgekit/lean {min(cpu['edgekit']) / min(cpu['lean']):.3f}, old/lean "
          f"{min(cpu['old path']) / min(cpu['lean']):.3f}")


# -- which interpolation ------------------------------------------------------------------------

def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else 0.0


def agreement(ref, other, threshold: float, margin: float = 0.05) -> tuple[int, int]:
    """(detections with a counterpart, detections) over both sides: a detection at ``threshold``
    or above is matched by one of the other side at ``threshold - margin`` or above with the same
    label and IoU >= 0.9 (a score moving by less than ``margin`` across the threshold is no
    disagreement about what is in the picture)."""
    matched = total = 0
    for a_side, b_side in ((ref, other), (other, ref)):
        for a in a_side:
            if a.score < threshold:
                continue
            total += 1
            matched += any(b.label == a.label and b.score >= threshold - margin and iou(a.box, b.box) >= 0.9
                           for b in b_side)
    return matched, total


def _detect_pixels(det: Detector, pixels: np.ndarray, transform) -> tuple:
    return det.decode(det.invoke(encode_pixels(pixels, det._encoder)), transform)


class _YuvDetector:
    """A Detector whose ``detect(path)`` hands the image to the model as a yuv420p decoder frame
    (as a camera's would be), scaled with ``interpolation`` (None: the old full-size RGB path)."""

    def __init__(self, det: Detector, interpolation: str | None) -> None:
        self._det, self.interpolation = det, interpolation

    def __getattr__(self, name):
        return getattr(self._det, name)

    def detect(self, path: str):
        import av

        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"))
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        source = frame.to_ndarray(format="rgb24") if self.interpolation is None else frame
        ekimage.VIDEO_INTERPOLATION = self.interpolation or "AREA"
        return self._det.detect(source)


def bench_interpolations(args, data: str, video: str) -> None:
    import av

    from edgekit.coco_eval import evaluate, evaluation_detector
    from edgekit.datasets import load_validation_set

    chosen = ekimage.VIDEO_INTERPOLATION
    frames = list(av.open(video).decode(video=0))
    coco = load_validation_set(os.path.join(data, "coco128_val2017/instances_val2017_first128_DERIVED_from_yolo.json"))
    rng = np.random.default_rng(0)
    for key, (model, labels) in MODELS.items():
        det = Detector(os.path.join(data, model), DetectorOptions(score_threshold=0.2, num_threads=2),
                       labels_path=os.path.join(data, labels))
        ev = evaluation_detector(os.path.join(data, model), os.path.join(data, labels),
                                 DetectorOptions(num_threads=2))
        size, mode, pad = det.input_size, det.input_spec.resize, det.input_spec.pad_value
        old, old_dets, noise = [], [], [0, 0]
        c = _cpu()
        for f in frames:
            old.append(fit_to_input(load_image(f.to_ndarray(format="rgb24")), size, mode, pad))
        old_ms = (_cpu() - c) / len(frames) * 1000
        for pixels, transform in old:
            old_dets.append(_detect_pixels(det, pixels, transform))
            jitter = np.clip(pixels.astype(np.int16) + rng.integers(-1, 2, pixels.shape), 0, 255).astype(np.uint8)
            m, t = agreement(old_dets[-1], _detect_pixels(det, jitter, transform), 0.5)
            noise[0], noise[1] = noise[0] + m, noise[1] + t
        old_map = evaluate(_YuvDetector(ev, None), coco).map50_95
        print(f"{key} ({mode} to {size[0]}x{size[1]}, {len(frames)} frames of {len(PHOTOS)} photos): old path "
              f"{old_ms:.2f} ms/frame, COCO128-as-yuv420p mAP {old_map:.4f}; old path under +-1 noise agrees "
              f"{noise[0]}/{noise[1]} = {noise[0] / noise[1]:.3f} (score >= 0.5)")
        print(f"  {'interpolation':<14}{'ms/frame':>9}{'mean |diff|':>12}{'agree >=0.5':>13}{'agree >=0.25':>13}"
              f"{'mAP':>8}")
        for name in INTERPOLATIONS:
            ekimage.VIDEO_INTERPOLATION = name
            c = _cpu()
            new = [fit_to_input(LoadedImage(None, f.width, f.height, video, decoded=f), size, mode, pad)[0]
                   for f in frames]
            ms = (_cpu() - c) / len(frames) * 1000
            diff = statistics.mean(float(np.abs(n.astype(np.int16) - o[0]).mean()) for n, o in zip(new, old))
            hi, lo = [0, 0], [0, 0]
            for pixels, (_, transform), ref in zip(new, old, old_dets):
                got = _detect_pixels(det, pixels, transform)
                for acc, threshold in ((hi, 0.5), (lo, 0.25)):
                    m, t = agreement(ref, got, threshold)
                    acc[0], acc[1] = acc[0] + m, acc[1] + t
            score = evaluate(_YuvDetector(ev, name), coco).map50_95
            mark = " <- edgekit" if name == chosen else ""
            print(f"  {name:<14}{ms:9.2f}{diff:12.2f}{hi[0] / hi[1]:13.3f}{lo[0] / lo[1]:13.3f}{score:8.4f}{mark}",
                  flush=True)
        ekimage.VIDEO_INTERPOLATION = chosen


# -- image files --------------------------------------------------------------------------------

def _pillow_reduce(path: str, target, resize: str) -> LoadedImage:
    with Image.open(path) as img:
        img.load()
        rgb = img.convert("RGB")
    factor = int(min(rgb.width / target[0], rgb.height / target[1]))
    reduced = rgb.reduce(factor) if factor >= 2 else rgb
    return LoadedImage(reduced, rgb.width, rgb.height, path)


def _simplejpeg(path: str, target, resize: str) -> LoadedImage:
    import simplejpeg

    with open(path, "rb") as fh:
        data = fh.read()
    height, width = simplejpeg.decode_jpeg_header(data)[:2]
    # the smallest DCT scale that still covers what the image is resized to, as edgekit's draft asks
    want = ekimage._draft_size((width, height), target, resize, 1)
    rgb = simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=want[0], min_height=want[1])
    return LoadedImage(Image.fromarray(rgb), width, height, path)


class _LoaderDetector:
    """A Detector whose ``detect(path)`` decodes with ``loader`` (None: edgekit's own)."""

    def __init__(self, det: Detector, loader) -> None:
        self._det, self._loader = det, loader

    def __getattr__(self, name):
        return getattr(self._det, name)

    def detect(self, path: str):
        if self._loader is None:
            return self._det.detect(path)
        return self._det.detect_loaded(self._loader(path, self._det.input_size, self._det.input_spec.resize))


def bench_jpeg(args, data: str) -> None:
    from edgekit.coco_eval import evaluate, evaluation_detector
    from edgekit.datasets import load_validation_set

    if args.simplejpeg:
        sys.path.insert(0, args.simplejpeg)
    loaders = {"pillow draft": None, "pillow reduce": _pillow_reduce}
    try:
        import simplejpeg  # noqa: F401
        loaders["simplejpeg"] = _simplejpeg
    except ImportError:
        print("  simplejpeg: not importable (pip install --target /tmp/sj simplejpeg; --simplejpeg /tmp/sj)")
    coco = load_validation_set(os.path.join(data, "coco128_val2017/instances_val2017_first128_DERIVED_from_yolo.json"))
    paths = sorted(glob.glob(os.path.join(data, "coco128_val2017/images/*.jpg")))
    for key, (model, labels) in MODELS.items():
        ev = evaluation_detector(os.path.join(data, model), os.path.join(data, labels), DetectorOptions(num_threads=2))
        print(f"{key}: {len(paths)} COCO JPEGs to {ev.input_size[0]}x{ev.input_size[1]} ({ev.input_spec.resize})")
        for name, loader in loaders.items():
            times = []
            for rnd in range(args.rounds):
                c = _cpu()
                for p in paths:
                    loaded = ev.load(p) if loader is None else loader(p, ev.input_size, ev.input_spec.resize)
                    ev.preprocess(loaded)
                times.append((_cpu() - c) / len(paths) * 1000)
            score = evaluate(_LoaderDetector(ev, loader), coco).map50_95
            print(f"  {name:<14} decode+preprocess {min(times):6.2f} ms/image (best of {args.rounds}; "
                  f"{', '.join(f'{t:.2f}' for t in times)})  mAP50-95 {score:.4f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("EDGEKIT_SHARED_DATA", "../shared/data"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=20.0, help="length of the 720p pan (default 20 s: 600 frames)")
    p.add_argument("--interpolations", action="store_true", help="compare swscale interpolations")
    p.add_argument("--jpeg", action="store_true", help="compare JPEG decoders on the COCO images")
    p.add_argument("--simplejpeg", metavar="DIR", help="a folder where simplejpeg was pip-installed (--target)")
    p.add_argument("--skip-cpu", action="store_true", help="only the comparisons asked for")
    args = p.parse_args()
    data = args.data
    images = os.path.join(data, "images")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, swscale interpolation "
          f"{ekimage.VIDEO_INTERPOLATION}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_cpu:
            video = encode(os.path.join(tmp, "pan.mp4"), pan(os.path.join(images, "coral_kite_and_cold.jpg"),
                                                             args.seconds))
            print(f"1280x720 H.264 pan, {args.seconds:g} s at 30 fps; SSD MobileNet v1 uint8 at 1 thread", flush=True)
            bench_cpu(args, data, video)
        if args.interpolations:
            bench_interpolations(args, data, encode(os.path.join(tmp, "slides.mp4"), slides(images)))
        if args.jpeg:
            bench_jpeg(args, data)


if __name__ == "__main__":
    main()
