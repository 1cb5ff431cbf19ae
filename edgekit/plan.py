"""Plan how to run a model on this device — threads, variant, memory — and refuse before an OOM.

Memory model (measured, then cached): predicted peak RSS =
    baseline (this process with numpy, Pillow and the TFLite runtime imported, read from /proc)
  + model cost (peak RSS a child process gains creating the interpreter, allocating tensors and
    invoking once: the mapped model file, the tensor arena and XNNPACK's packed weights and
    buffers — with XNNPACK most of it is touched at allocate_tensors)
  + image buffers (a decoded image of ``max_image`` pixels, an RGB copy, the model-input canvas
    and tensor).
The child volunteers as the OOM killer's first victim (``oom_score_adj`` 1000), so a model that
does not fit kills the child, never this process; a cost in the model's metadata (written by
``edgekit-convert``) lets the planner refuse without loading anything at all.

Variants: a bundle is a directory with ``manifest.json`` listing several ``.tflite`` files of one
model (input sizes × quantization modes). The planner keeps the variants that fit the budget
(and a latency target), then prefers the largest input, then the mode this CPU runs fastest.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from .device import DeviceInfo, current_rss, probe  # current_rss: also importable from here, as before
from .errors import ConfigError, ModelError, PlanError  # PlanError: also importable from here, as before
from .integrity import check_digest, file_digests, verify_model
from .userdirs import cache_dir as _user_cache_dir
from .userdirs import create_private, private_dir, private_file

__all__ = ["PlanError", "ModelCost", "Candidate", "Plan", "measure_cost", "make_plan", "default_threads",
           "load_variants", "current_rss", "image_buffer_bytes"]

MANIFEST = "manifest.json"
_MIB = 1 << 20


@dataclass(frozen=True)
class ModelCost:
    """Measured in a child process: bytes of peak RSS the model adds, and invoke latency."""

    sha256: str
    threads: int
    load_bytes: int  # RSS gained by create + allocate_tensors
    peak_bytes: int  # RSS gained at the peak, after one invoke
    invoke_ms: float  # median of 3 invokes after a warm-up
    runtime: str
    input_size: tuple[int, int]  # (width, height) of the model input
    input_bytes: int  # bytes of the input tensor
    mode: str  # quantization inferred from tensor types: int8, dynamic, float16 or float32


@dataclass(frozen=True)
class Candidate:
    """One variant as the planner judged it."""

    path: str
    input_size: tuple[int, int] | None
    mode: str | None
    cost: ModelCost | None
    predicted_peak: int | None
    fits: bool
    note: str
    accuracy: float | None = None  # mAP50-95 edgekit-convert --eval recorded (None: not evaluated, or failed its gate)


@dataclass
class Plan:
    """The decision and everything it was based on."""

    device: DeviceInfo
    budget: int
    baseline: int
    image_bytes: int
    threads: int
    threads_reason: str
    candidates: list[Candidate]
    chosen: Candidate | None
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["device"] = self.device.to_dict()
        return doc

    def explain(self) -> str:
        """One screen: what was probed, the budget, each candidate, the pick and why."""
        cpu, mem = self.device.cpu, self.device.memory
        lines = [
            f"device   {cpu.board or cpu.model_name or cpu.arch} ({cpu.arch}, ISA {', '.join(sorted(cpu.isa)) or '-'})",
            f"cores    {cpu.usable_cores} usable (online {cpu.online_cores}, affinity {cpu.affinity_cores}, quota "
            + (f"{cpu.cgroup_cpu_quota:g}" if cpu.cgroup_cpu_quota else "none") + ")",
            f"memory   {self.budget / _MIB:.0f} MiB more may be allocated (available {mem.available / _MIB:.0f} MiB"
            + (f", cgroup limit {mem.cgroup_limit / _MIB:.0f} MiB" if mem.cgroup_limit else "") + ")",
            f"fixed    baseline {self.baseline / _MIB:.0f} MiB + image buffers {self.image_bytes / _MIB:.0f} MiB",
            f"threads  {self.threads} ({self.threads_reason})",
            "candidates:",
        ]
        for c in self.candidates:
            size = f"{c.input_size[0]}x{c.input_size[1]}" if c.input_size else "?"
            peak = f"{c.predicted_peak / _MIB:6.0f} MiB" if c.predicted_peak is not None else "     ? MiB"
            lat = f"{c.cost.invoke_ms:7.1f} ms" if c.cost else "      ? ms"
            mark = "*" if c is self.chosen else ("+" if c.fits else "-")
            acc = f"  mAP {c.accuracy:.3f}" if c.accuracy is not None else ""
            lines.append(f"  {mark} {os.path.basename(c.path):<36} {size:>9} {c.mode or '?':<8} {peak} {lat}{acc}  {c.note}")
        lines += [f"pick     {os.path.basename(self.chosen.path) if self.chosen else 'nothing'}"]
        lines += [f"         {r}" for r in self.reasons]
        return "\n".join(lines)


def image_buffer_bytes(cost: ModelCost | None, max_image: tuple[int, int] = (1920, 1080),
                       frames_in_flight: int = 1, decoders: int = 1, input_size: tuple[int, int] | None = None,
                       full_frames: int = 0) -> int:
    """Image memory outside the interpreter: per decoding thread an RGB decode of ``max_image``
    (JPEG draft mode usually decodes smaller; PNGs and camera frames do not) and what resizing it
    to the model input holds (:func:`edgekit.image.resize_scratch_bytes`), and per frame in flight
    (queued between the runner's stages: see :meth:`edgekit.runner.RunOptions.frames_in_flight`)
    the uint8 model-input canvas and the encoded input tensor, plus ``full_frames`` full-size
    pictures that sinks hold (PIL's RGB: 4 bytes a pixel) (:meth:`edgekit.runner.RunOptions.full_frames_held`: annotation,
    snapshots, the preview). Before the model is measured this
    is a floor, never a guess to refuse on: its input size is ``input_size`` (a bundle manifest's)
    or else 640x640 without the resize counted, and the tensor uint8 (the least any model takes)."""
    from .image import resize_scratch_bytes

    w, h = max_image
    size = tuple(cost.input_size) if cost else input_size
    pixels = size[0] * size[1] if size else 640 * 640
    tensor = cost.input_bytes if cost else pixels * 3
    per_decoder = w * h * 4  # Pillow keeps RGB as 4 bytes a pixel
    if size:
        per_decoder += resize_scratch_bytes((w, h), size)
    return decoders * per_decoder + frames_in_flight * (pixels * 3 + tensor) + full_frames * w * h * 4


def default_threads(usable: int) -> tuple[int, str]:
    """Interpreter threads: all usable cores, but keep one for decode/publish when there are ≥ 3.

    This is the decode/inference split: the runner adds one reader thread (decode + preprocess)
    per source and decodes outputs on the caller's thread, so from 3 cores up the interpreter
    leaves a core to them. On 2 cores it still takes both (oversubscribed by the reader): that
    measured faster than 1 interpreter thread + the reader on its own core. Runner images/s over
    the COCO val2017 JPEGs on a 2-core x86 (shared; 1T and 2T alternated, median of the runs):
    SSD MobileNet v1 2T 35.7 vs 1T 27.6 (1T/2T 0.75-0.79 in 6 runs of 256 frames); YOLOv8n
    full-int8 2T 12.4 vs 1T 7.6 (0.59-0.63 in 4 runs of 128 frames). The reader needs ~8 ms of
    CPU per frame (decode ~4, resize+encode ~3.5), far less than the second interpreter thread
    saves. On a 2-core AVX-512 (VNNI) x86, where the models run 4x faster and the reader's ~2.4 ms
    weighs more, 2T still wins: SSD 187.9 vs 152.2 images/s, YOLOv8n full-int8 88.9 vs 66.2
    (quiet machine, 256 frames, 2 runs). ``edgekit bench`` sweeps both on the device itself.
    """
    if usable >= 3:
        return usable - 1, f"{usable} usable cores, one kept for decode/publish"
    return usable, f"{usable} usable core{'s' if usable > 1 else ''}"


def _sha256(path: str) -> str:
    return file_digests(path)[0]  # one read (cached) also gives the flatbuffer digest verification needs


def _verified_sha256(variant: "Variant") -> str:
    """The variant file's SHA-256, after checking it against the digest the converter recorded
    (the bundle manifest's, else the one embedded in the model); raises ModelError if it differs."""
    whole = _sha256(variant.path)
    if variant.sha256:
        check_digest(variant.path, variant.sha256, whole, "the bundle manifest")
    else:
        from .metadata_readers import read_metadata

        verify_model(variant.path, read_metadata(variant.path))
    return whole


def cache_dir() -> Path:
    """The user cache directory for measured costs and autotune results (see :func:`userdirs.cache_dir`)."""
    return _user_cache_dir()


def _cache_key(sha: str, threads: int, runtime: str, device: DeviceInfo) -> str:
    return f"v2:{sha}:{threads}:{runtime}:{device.cpu.arch}:{device.cpu.model_name}"


def _cache_read(name: str) -> dict[str, Any]:
    """A cache file's content, {} if there is none. The cache steers which model is loaded, so it is
    private (folder 0700, files 0600, tightened if found wider); ConfigError if another user owns it."""
    path = cache_dir() / name
    try:
        if not os.path.isdir(path.parent):
            return {}
        private_dir(path.parent)
        if not private_file(path):
            return {}
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _cache_write(name: str, key: str, value: Any) -> None:
    data = _cache_read(name)
    data[key] = value
    try:
        folder = private_dir(cache_dir())
        tmp = folder / f".{name}.{os.getpid()}"
        create_private(tmp)  # 0600 from the start: renamed into place, it is the cache file
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, folder / name)
    except OSError:
        pass  # a read-only home is no reason to fail: we just measure again next time


def _cached_cost(model: str, threads: int, device: DeviceInfo, sha: str | None = None) -> ModelCost | None:
    from .runtime import find_runtime

    key = _cache_key(sha or _sha256(model), threads, str(find_runtime()), device)
    doc = _cache_read("costs.json").get(key)
    return ModelCost(**{**doc, "input_size": tuple(doc["input_size"])}) if doc else None


_CHILD = r"""
import json, os, statistics, sys, time
try:
    with open("/proc/self/oom_score_adj", "w") as fh:
        fh.write("1000")  # if memory runs out, kill me, not my parent
except OSError:
    pass
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0
import numpy as np
from edgekit.errors import EdgekitError
from edgekit.runtime import create_interpreter, find_runtime, invoke_error, quantization_mode
try:
    runtime = find_runtime()
    before = rss("VmRSS:")
    it = create_interpreter(sys.argv[1], int(sys.argv[2]), runtime)
    loaded = rss("VmRSS:")
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
    times = []
    for _ in range(4):
        t = time.perf_counter()
        try:
            it.invoke()
        except (RuntimeError, ValueError) as exc:
            raise invoke_error(exc, sys.argv[1], runtime) from None
        times.append((time.perf_counter() - t) * 1000)
except EdgekitError as exc:
    print("edgekit-trial-error: " + str(exc).replace("\n", " "), file=sys.stderr)
    sys.exit(4)
peak = max(rss("VmHWM:"), rss("VmRSS:"))
mode = quantization_mode(it)
print(json.dumps({"load": loaded - before, "peak": peak - before, "ms": statistics.median(times[1:]),
                  "runtime": str(runtime), "size": [int(inp["shape"][2]), int(inp["shape"][1])],
                  "input_bytes": int(np.prod(inp["shape"])) * np.dtype(inp["dtype"]).itemsize, "mode": mode}))
"""


def measure_cost(model: str, threads: int, device: DeviceInfo | None = None, use_cache: bool = True,
                 timeout: float = 300) -> ModelCost:
    """Measure a model's memory and latency in a child process (cached per model, threads, runtime, CPU).

    Raises PlanError if the child is killed (out of memory) and ModelError if the model is unusable.
    """
    from .runtime import find_runtime

    device = device or probe()
    sha = _sha256(model)
    runtime = str(find_runtime())
    key = _cache_key(sha, threads, runtime, device)
    if use_cache and (cached := _cached_cost(model, threads, device, sha)) is not None:
        return cached
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent.parent),
                                                                       os.environ.get("PYTHONPATH")]))}
    try:
        r = subprocess.run([sys.executable, "-c", _CHILD, model, str(threads)], capture_output=True, text=True,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise ModelError(f"{model}: measuring it took longer than {timeout:.0f} s; try --no-plan") from None
    if r.returncode < 0:
        raise PlanError(f"{model}: the trial load was killed (signal {-r.returncode}; out of memory?) — it does not "
                        f"fit in the {device.memory.budget / _MIB:.0f} MiB this process may use; pick a smaller "
                        "model/variant or raise the memory limit")
    if r.returncode != 0:
        lines = [line for line in r.stderr.strip().splitlines() if line.strip()]
        said = [line.split(": ", 1)[1] for line in lines if line.startswith("edgekit-trial-error: ")]
        raise ModelError(said[-1] if said else (f"{model}: trial load failed ({lines[-1]})" if lines
                                                else f"{model}: trial load failed"))
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    cost = ModelCost(sha, threads, doc["load"], doc["peak"], round(doc["ms"], 2), doc["runtime"],
                     tuple(doc["size"]), doc["input_bytes"], doc["mode"])
    _cache_write("costs.json", key, asdict(cost))
    return cost


@dataclass(frozen=True)
class Variant:
    path: str
    input_size: tuple[int, int] | None
    mode: str | None
    recorded_peak: int | None  # "measured.peak_bytes" from the bundle manifest
    sha256: str | None = None  # the whole file's, from the bundle manifest
    accuracy: float | None = None  # mAP50-95 recorded by edgekit-convert --eval (manifest or model metadata)


def check_model_path(path: str, setting: tuple[str, str] | None = None) -> None:
    """Refuse a model path that names neither a model file nor a bundle directory: a user's wrong
    path, so a ConfigError (exit 2, like any bad argument), not a ModelError (an unusable model).

    Args:
        path: the MODEL argument or the settings file's ``model``.
        setting: ``(settings file, key)`` the path came from: the line names them and, for a
            relative path, the folder it was resolved against (where edgekit runs).
    """
    if os.path.isfile(path) or os.path.isfile(os.path.join(path, MANIFEST)):
        return
    named = path
    if setting is not None:
        named = f"{setting[0]}: {setting[1]}: {path}"
        if not os.path.isabs(path):
            named += f" (resolved against {os.getcwd()}, the folder edgekit runs in: relative paths are from there)"
    if os.path.isdir(path):
        raise ConfigError(f"{named}: a directory without {MANIFEST}; expected a .tflite file or a bundle made "
                          "by edgekit-convert --bundle")
    raise ConfigError(f"{named}: no such model file; expected a .tflite file or a bundle directory made by "
                      "edgekit-convert --bundle")


def load_variants(path: str) -> list[Variant]:
    """The variants of a bundle directory (from its manifest), or the one model file.

    Raises ConfigError for a path that names neither (:func:`check_model_path`) or a bad manifest."""
    check_model_path(path)
    if os.path.isdir(path):
        manifest = os.path.join(path, MANIFEST)
        try:
            with open(manifest) as fh:
                doc = json.load(fh)
            return [Variant(os.path.join(path, v["file"]), tuple(v["input_size"]) if v.get("input_size") else None,
                            v.get("mode"), (v.get("measured") or {}).get("peak_bytes"), v.get("sha256"),
                            _recorded_accuracy(v.get("accuracy")))
                    for v in doc["variants"]]
        except FileNotFoundError:  # removed since check_model_path
            raise ConfigError(f"{path}: a directory without {MANIFEST}; expected a .tflite file or a bundle made by "
                              "edgekit-convert --bundle") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{manifest}: not a valid bundle manifest ({exc}); re-create it with edgekit-convert "
                              "--bundle") from None
    from .metadata_readers import read_metadata

    meta = read_metadata(path)
    converted = (meta.accuracy or {}).get("converted") if isinstance(meta.accuracy, dict) else None
    gate = (meta.accuracy or {}).get("gate") if isinstance(meta.accuracy, dict) else None
    recorded = None if converted is None else {**converted, "passed": (gate or {}).get("passed")}
    return [Variant(path, None, (meta.quantization or {}).get("mode"), None, accuracy=_recorded_accuracy(recorded))]


def _recorded_accuracy(entry: Any) -> float | None:
    """A recorded mAP50-95, unless the variant failed its accuracy gate (never preferred for it)."""
    if not isinstance(entry, dict) or entry.get("passed") is False:
        return None
    value = entry.get("map50_95")
    return float(value) if isinstance(value, (int, float)) else None


def _mode_rank(mode: str | None, device: DeviceInfo, measured: bool) -> int:
    """Higher is preferred. int8 first where the ISA has fast int8 dot products (VNNI, AVX2,
    ARM dot product) and in general on ARM; dynamic-range last on x86 unless measured: there it
    has run 3x slower than float32 (older XNNPACK) and 3x faster (ai-edge-litert 2.3 on an AVX-512
    VNNI EPYC, the shapes model: 0.41 against 1.2 ms), so only a measured latency chooses it."""
    isa, arch = device.cpu.isa, device.cpu.arch
    fast_int8 = bool(isa & {"avx512_vnni", "avx_vnni", "avx2", "dotprod", "i8mm"}) or arch in ("aarch64", "armv7l")
    order = ["dynamic", "float32", "float16", "int8"] if fast_int8 else ["dynamic", "int8", "float16", "float32"]
    if mode == "dynamic" and arch in ("x86_64", "i686") and not measured:
        return -1
    return order.index(mode) if mode in order else 0


def make_plan(model: str, *, threads: int | None = None, max_latency_ms: float | None = None,
              max_image: tuple[int, int] = (1920, 1080), device: DeviceInfo | None = None,
              use_cache: bool = True, measure: bool = True, autotune: bool = False,
              frames_in_flight: int = 1, decoders: int = 1, full_frames: int = 0) -> Plan:
    """Decide threads and variant for ``model`` (a .tflite or a bundle directory).

    Raises PlanError (before this process loads any model) when nothing fits the memory budget, or
    when what fits is slower than ``max_latency_ms`` (the line says which limit bound, with numbers);
    ConfigError when ``model`` is not there or is a folder that is not a bundle.
    """
    from . import image as _image  # noqa: F401  (numpy + Pillow: part of the baseline)
    from .runtime import find_runtime

    device = device or probe()
    find_runtime()  # import it here so that the baseline below includes it
    baseline = current_rss()
    budget = device.memory.budget
    variants = load_variants(model)
    if threads is not None:
        why = "asked for"
    elif autotune:
        threads, why = _autotune(variants, device, use_cache)
    else:
        threads, why = default_threads(device.cpu.usable_cores)
    candidates: list[Candidate] = []
    for variant in variants:
        path, size, mode = variant.path, variant.input_size, variant.mode
        if not os.path.isfile(path):
            raise ConfigError(f"{path}: listed in the bundle but missing; re-create the bundle")
        # The budget is what may still be allocated (our own RSS is already used), so compare the
        # extra need. Known without loading: the mapped file, and a cost the converter measured.
        sha = _verified_sha256(variant)
        cached = _cached_cost(path, threads, device, sha) if use_cache else None
        # before measuring, the input size is unknown: the floor counts one frame (never refuse on a guess)
        floor = image_buffer_bytes(cached, max_image, frames_in_flight if cached else 1, decoders, size) + (
            cached.peak_bytes if cached else max(os.path.getsize(path), variant.recorded_peak or 0))
        if floor > budget:
            source = "measured here earlier" if cached else ("measured by the converter" if variant.recorded_peak
                                                             else "model file")
            candidates.append(Candidate(path, size or (cached.input_size if cached else None), mode, cached,
                                        baseline + floor, False, f"needs {floor / _MIB:.0f} MiB more ({source}); "
                                        "not loaded"))
            continue
        if not measure:
            candidates.append(Candidate(path, size, mode, None, None, True, "not measured"))
            continue
        try:
            cost = cached or measure_cost(path, threads, device, use_cache)
        except PlanError as exc:
            candidates.append(Candidate(path, size, mode, None, None, False, str(exc).split(" — ")[0]))
            continue
        need = cost.peak_bytes + image_buffer_bytes(cost, max_image, frames_in_flight, decoders,
                                                    full_frames=full_frames)
        slow = max_latency_ms is not None and cost.invoke_ms > max_latency_ms
        note = "too slow" if slow else ("fits" if need <= budget else f"needs {need / _MIB:.0f} MiB more")
        candidates.append(Candidate(path, size or cost.input_size, mode or cost.mode, cost, baseline + need,
                                    need <= budget and not slow, note))
    recorded = {v.path: v.accuracy for v in variants}
    candidates = [replace(c, accuracy=recorded.get(c.path)) for c in candidates]
    return _choose(candidates, device, budget, baseline, max_image, threads, why, max_latency_ms,
                   frames_in_flight, decoders, full_frames)


def _autotune(variants, device: DeviceInfo, use_cache: bool) -> tuple[int, str]:
    """Time 1..usable threads on the largest variant (cached per model and device)."""
    usable = device.cpu.usable_cores
    path = variants[0].path
    key = f"{_sha256(path)}:{device.cpu.arch}:{device.cpu.model_name}:{usable}"
    if use_cache and key in (cached := _cache_read("threads.json")):
        return cached[key]["threads"], f"autotuned earlier: {cached[key]['ms']} ms"
    timings = {t: measure_cost(path, t, device, use_cache).invoke_ms for t in range(1, usable + 1)}
    best = min(timings, key=timings.get)
    _cache_write("threads.json", key, {"threads": best, "ms": timings[best]})
    return best, "autotuned: " + ", ".join(f"{t}T {ms:.1f} ms" for t, ms in timings.items())


def _choose(candidates: Sequence[Candidate], device: DeviceInfo, budget: int, baseline: int,
            max_image: tuple[int, int], threads: int, why: str, max_latency_ms: float | None,
            frames_in_flight: int = 1, decoders: int = 1, full_frames: int = 0) -> Plan:
    fitting = [c for c in candidates if c.fits]
    chosen_cost = next((c.cost for c in candidates if c.cost), None)
    plan = Plan(device, budget, baseline, image_buffer_bytes(chosen_cost, max_image, frames_in_flight, decoders,
                                                                       full_frames=full_frames), threads, why, list(candidates),
                None)
    if not fitting:
        in_memory = [c for c in candidates if c.cost and c.predicted_peak is not None
                     and c.predicted_peak - baseline <= budget]
        if in_memory and max_latency_ms is not None:  # memory was not the limit: latency ruled them all out
            fastest = min(in_memory, key=lambda c: c.cost.invoke_ms)
            usable = device.cpu.usable_cores
            raise PlanError(
                f"nothing is fast enough: the limit is {max_latency_ms:g} ms per invoke, and the fastest candidate "
                f"that fits in memory ({fastest.path}, {threads} thread{'' if threads == 1 else 's'}) takes "
                f"{fastest.cost.invoke_ms:.1f} ms; raise the limit (--max-latency-ms, or a lower --fps) to at least "
                f"{math.ceil(fastest.cost.invoke_ms)} ms"
                + (f", try --threads {usable}" if threads < usable else "")
                + ", or use a variant with a smaller input size")
        needs = [c.predicted_peak - baseline for c in candidates if c.predicted_peak]
        smallest = min(needs) if needs else None
        raise PlanError(
            f"nothing fits: this process may allocate {budget / _MIB:.0f} MiB more"
            + (f" (cgroup limit {device.memory.cgroup_limit / _MIB:.0f} MiB)" if device.memory.cgroup_limit else "")
            + (f", the smallest candidate needs {smallest / _MIB:.0f} MiB more" if smallest else "")
            + "; use a smaller input size or int8 variant, raise the memory limit, or free memory")
    def area(c: Candidate) -> int:
        return c.input_size[0] * c.input_size[1] if c.input_size else 0

    if max_latency_ms is not None and len(fitting) > 1 and all(c.accuracy is not None for c in fitting):
        # a latency target and every candidate meeting it evaluated: the most accurate one (within 0.5 point,
        # the rule below decides)
        best = max(c.accuracy for c in fitting)
        pool = [c for c in fitting if c.accuracy >= best - 0.005]
        accuracy_reason = f"most accurate within the latency target: mAP50-95 {best:.3f} (recorded by --eval)"
    else:
        pool, accuracy_reason = fitting, None
    largest = [c for c in pool if area(c) == max(area(x) for x in pool)]
    timed = [c.cost.invoke_ms for c in largest if c.cost]
    if timed:  # a measurement beats the ISA prior; within 10% it is noise, and the prior decides
        largest = [c for c in largest if c.cost is None or c.cost.invoke_ms <= 1.1 * min(timed)]
    measured = all(c.cost is not None for c in largest)
    plan.chosen = max(largest, key=lambda c: _mode_rank(c.mode, device, measured))
    c = plan.chosen
    plan.reasons.append(f"{len(fitting)} of {len(candidates)} candidate(s) fit the {budget / _MIB:.0f} MiB budget"
                        + (f" and {max_latency_ms:g} ms" if max_latency_ms else ""))
    if c.predicted_peak is not None:
        plan.reasons.append(f"predicted peak RSS {c.predicted_peak / _MIB:.0f} MiB, "
                            f"{(budget - (c.predicted_peak - baseline)) / _MIB:.0f} MiB to spare")
    if accuracy_reason:
        plan.reasons.append(accuracy_reason)
    if len(pool) > 1:
        plan.reasons.append("preferred the largest input, then the fastest measured variant (within 10%: the "
                            "quantization mode this CPU is known to run fastest)")
    return plan
