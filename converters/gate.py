"""An mAP gate for full-int8 conversion: quantize, score, and repair until the drop is within a limit.

The gate scores each candidate through the caller's ``evaluate`` (edgekit's own runtime on a
validation set, see :func:`evaluator`) against the float model's score, and stops at the first
candidate whose mAP50-95 drop is at most ``max_drop`` points:

1. plain full int8 (int8 weights per channel, int8 activations per tensor);
2. the usual detector head repair: the decode tail after the last convolution kept in float
   (box decode, class Sigmoid, box/score concatenation; per-channel weights are already step 1's);
3. float islands: the float and int8 models run side by side on a few calibration samples with
   every intermediate tensor kept; each op is ranked by the error it *adds* (the normalised RMSE of
   its output minus the worst of its inputs'); an island is that op plus the ops reading its output
   (no int8 round trip between them); the worst ``rerank`` islands are re-ordered by the error of
   the final outputs with only that island in float (a quantization and 4 invokes each). The first
   1, 2, 4, … islands go to float until a batch passes, then up to ``shrink`` bisection steps
   look for fewer; the smallest passing list is tried once with 16-bit activations (int16x8),
   scored only when it is not timed slower than its float twin. Measured on YOLOv8n
   (ai-edge-litert 2.3.0, x86): int16x8 has no XNNPACK kernels, 4-35x slower than int8.

All candidates share one set of activation ranges (global min/max, computed once), so each costs a
quantization (~0.3 s) and an evaluation. YOLOv8n, 128 COCO images, AVX-512 EPYC, 2 threads: plain
int8 -2.43 points, decode tail in float -1.05, + 2 islands (5 ops) -0.84: passed in 40 s at 10.0 ms
against 9.4 ms plain int8 and 24.0 ms float. Differences under ~0.4 point are within what changing
calibration images does, so which extra ops are "needed" is partly chance.

A gate that never gets within the limit says so: ``passed`` is False and ``best`` is the most
accurate candidate found, never the last one tried.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Mapping, Sequence, TextIO

import numpy as np

from .quantize import TracedModel, activation_ranges, head_tail_ops, quantize_int8

if TYPE_CHECKING:
    from edgekit.coco_eval import CocoScore

__all__ = ["GateStep", "GateResult", "OpError", "gate_int8", "evaluator", "op_sensitivity", "batches", "islands",
           "output_error"]


@dataclass(frozen=True)
class GateStep:
    """One candidate: what was taken out of int8 (op output tensor names), its score and cost."""

    description: str
    kept_float: tuple[str, ...]
    int16: tuple[str, ...]
    map50_95: float
    map50: float
    drop_points: float
    latency_ms: float | None
    size_bytes: int


@dataclass(frozen=True)
class GateResult:
    """Every step tried, the best one (the first within ``max_drop``, else the most accurate) and its
    model bytes; ``passed`` only when ``best`` is within ``max_drop`` points of the reference."""

    reference_map50_95: float
    steps: tuple[GateStep, ...]
    best: GateStep
    model: bytes
    passed: bool
    max_drop: float


@dataclass(frozen=True)
class OpError:
    """An op (named by its first output tensor), its kind, the normalised RMSE of its output in the
    int8 model against the float model, and the part of it the op adds over its inputs'."""

    name: str
    kind: str
    error: float
    added: float


def evaluator(dataset, labels: str | os.PathLike | None = None, limit: int | None = None,
              progress: TextIO | None = None) -> Callable[[bytes], "CocoScore"]:
    """``evaluate(model_bytes)`` for :func:`gate_int8`: writes the bytes to a temporary file and scores
    them with edgekit's Detector (:func:`edgekit.coco_eval.evaluation_detector`) on ``dataset`` (a
    :class:`edgekit.datasets.ValidationSet`), first ``limit`` images only when given."""
    from edgekit.coco_eval import evaluate, evaluation_detector

    from .accuracy import model_file

    def run(model: bytes) -> "CocoScore":
        with model_file(model, "candidate.tflite") as path:
            return evaluate(evaluation_detector(path, labels), dataset, limit=limit, progress=progress)

    return run


def batches(ranked: Sequence, first: int = 2, limit: int | None = None) -> Iterator[tuple[str, ...]]:
    """Growing prefixes of ``ranked`` (worst first): ``first``, twice that, … up to all of them (or
    ``limit`` prefixes)."""
    size, count = first, 0
    while ranked and (limit is None or count < limit):
        yield tuple(ranked[:size])
        count += 1
        if size >= len(ranked):
            return
        size *= 2


def op_sensitivity(float_model: bytes, quant_model: bytes, samples: Sequence[np.ndarray],
                   max_samples: int = 4) -> list[OpError]:
    """The ops of ``quant_model`` ranked by the error they add, worst first.

    Both models run on up to ``max_samples`` of ``samples`` with every intermediate tensor kept
    (no delegate, so none is overwritten); each float tensor is compared with the int8 tensor of the
    same name, dequantized. An op's error is ``rms(int8 - float) / std(float)`` of its output over the
    samples; what it adds is that minus the largest error among its non-constant inputs, so a whole
    chain downstream of one bad op is not blamed for it.
    """
    float_run, quant_run = TracedModel(float_model), TracedModel(quant_model)
    sums: dict[str, list[float]] = {}
    for sample in samples[:max_samples]:
        ref, got = float_run.tensors(sample), quant_run.tensors(sample)
        for name, value in got.items():
            if name in ref and ref[name].shape == value.shape:
                diff = value.astype(np.float64) - ref[name]
                acc = sums.setdefault(name, [0.0, 0.0, 0.0, 0])
                acc[0] += float(np.sum(diff * diff))
                acc[1] += float(np.sum(ref[name], dtype=np.float64))
                acc[2] += float(np.sum(np.square(ref[name], dtype=np.float64)))
                acc[3] += diff.size
    error = {}
    for name, (sq, total, total_sq, n) in sums.items():
        mean = total / n
        std = max(np.sqrt(max(total_sq / n - mean * mean, 0.0)), 1e-6)
        error[name] = float(np.sqrt(sq / n) / std)
    ranked = []
    for name, kind, inputs in quant_run.ops:
        if name not in error:
            continue  # an op the quantizer added (QUANTIZE/DEQUANTIZE), or one whose float twin was renamed
        upstream = max((error.get(i, 0.0) for i in inputs), default=0.0)
        ranked.append(OpError(name, kind, error[name], error[name] - upstream))
    ranked.sort(key=lambda e: e.added, reverse=True)
    return ranked


# ai-edge-quantizer's static_wi8_ai16 policy (0.10): ops it quantizes with 16-bit activations.
_INT16_KINDS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "BATCH_MATMUL", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED", "LOGISTIC", "MEAN", "MUL", "RESHAPE", "SOFTMAX", "SPLIT", "STRIDED_SLICE", "SUB",
    "TANH", "TRANSPOSE", "SLICE", "SUM", "PAD", "MAX_POOL_2D", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
    "PACK", "UNPACK", "DIV", "GATHER", "MAXIMUM", "PADV2", "RELU"})


def islands(ranked: Sequence[OpError], ops: Sequence[tuple[str, str, tuple[str, ...]]],
            exclude: Iterable[str] = ()) -> list[tuple[str, ...]]:
    """One float island per ranked op (worst first): the op and the ops that read its output, so the
    sensitive tensor is produced and consumed in float, with no int8 round trip in between. Ops in
    ``exclude`` (already float) are left out; an island already covered by earlier ones is dropped.

    ``ops`` is :attr:`converters.quantize.TracedModel.ops` (output name, kind, input names).
    """
    skip = set(exclude)
    consumers: dict[str, list[str]] = {}
    for name, _, inputs in ops:
        for i in inputs:
            consumers.setdefault(i, []).append(name)
    out, covered = [], set()
    for e in ranked:
        island = tuple(dict.fromkeys(n for n in (e.name, *consumers.get(e.name, ())) if n not in skip))
        if island and not set(island) <= covered:
            out.append(island)
            covered.update(island)
    return out


def output_error(float_model: bytes, model: bytes, samples: Sequence[np.ndarray]) -> float:
    """How far ``model``'s outputs are from ``float_model``'s on ``samples``: per output, the normalised
    RMSE (``rms(diff) / std(float)``) of each channel (the smallest non-batch axis: YOLO's 84 rows,
    so box and class rows weigh the same), averaged over channels and outputs."""
    ref, got = _outputs(float_model, samples), _outputs(model, samples)
    return float(np.mean([_channel_error(r, g) for r, g in zip(ref, got)]))


def _channel_error(ref: np.ndarray, got: np.ndarray) -> float:
    axis = 1 + int(np.argmin(ref.shape[1:])) if ref.ndim > 2 else ref.ndim - 1
    r = np.moveaxis(ref, axis, 0).reshape(ref.shape[axis], -1)
    g = np.moveaxis(got, axis, 0).reshape(ref.shape[axis], -1)
    rms = np.sqrt(np.mean(np.square(g - r), axis=1))
    return float(np.mean(rms / np.maximum(r.std(axis=1), 1e-6)))


def _outputs(model: bytes, samples: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each output of ``model`` (dequantized) stacked over ``samples``, in output order."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model, num_threads=2)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    runs: list[list[np.ndarray]] = []
    for sample in samples:
        x = np.asarray(sample, np.float32)
        scale, zero = inp["quantization"]
        if np.issubdtype(inp["dtype"], np.integer) and scale:
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))
        interpreter.invoke()
        values = []
        for d in interpreter.get_output_details():
            value = interpreter.get_tensor(d["index"]).astype(np.float32)
            scale, zero = d["quantization"]
            values.append((value - zero) * scale if np.issubdtype(d["dtype"], np.integer) and scale else value)
        runs.append(values)
    return [np.concatenate(parts) for parts in zip(*runs)]


def gate_int8(float_model: bytes, samples: Sequence[np.ndarray], evaluate: Callable[[bytes], "CocoScore"],
              max_drop: float, *, reference: "CocoScore | None" = None,
              latency: Callable[[bytes], float] | None = None, progress: TextIO | None = None,
              max_steps: int = 12, ranges: Mapping[str, Mapping[str, np.ndarray]] | None = None,
              rerank: int = 24, shrink: int = 2) -> GateResult:
    """Full-int8 ``float_model`` repaired until its mAP50-95 is within ``max_drop`` points of the float's.

    Args:
        float_model: the float32 .tflite bytes (e.g. :func:`converters.floatcopy.float_copy`'s).
        samples: calibration inputs as edgekit's runtime feeds them (:func:`converters.quantize.calibration_samples`).
        evaluate: scores model bytes on the validation set (:func:`evaluator`).
        max_drop: the largest mAP50-95 loss accepted, in points (0.01 mAP = 1 point).
        reference: the float model's score; evaluated here when None.
        latency: milliseconds per inference of model bytes, measured by the caller; used to choose
            among passing candidates and to skip the int16x8 candidate, unscored, when it is slower
            than the passing float one.
        progress: a text stream for one line per step.
        max_steps: how many candidates to score at most (a passing batch's int16 alternative aside).
        ranges: activation ranges (:func:`converters.quantize.activation_ranges`); computed once here
            when None and shared by every candidate.
        rerank: how many of the worst float islands are re-ranked by the final-output error of the
            model with only that island in float (0: rank by added per-op error only).
        shrink: at most this many extra candidates bisecting between the last failing and the first
            passing batch, for fewer float ops.
    Returns:
        a GateResult; ``passed`` is False, with the most accurate candidate as ``best``, when no step
        got within ``max_drop``.
    Raises:
        ConfigError: from quantize_int8 (ai-edge-quantizer missing, no samples).
    """
    started = time.perf_counter()
    if reference is None:
        reference = evaluate(float_model)
    _say(progress, f"float reference: mAP50-95 {reference.map50_95:.4f}  mAP50 {reference.map50:.4f}  "
                   f"limit {max_drop:.2f} points")
    if ranges is None:
        ranges = activation_ranges(float_model, samples)
    tried: list[tuple[GateStep, bytes]] = []

    def build(kept: Sequence[str] = (), int16: Sequence[str] = ()) -> bytes:
        return quantize_int8(float_model, samples, keep_float=kept, int16=int16, ranges=ranges)

    def trial(description: str, kept: Sequence[str] = (), int16: Sequence[str] = (), model: bytes | None = None,
              ms: float | None = None) -> GateStep:
        model = build(kept, int16) if model is None else model
        score = evaluate(model)
        drop = (reference.map50_95 - score.map50_95) * 100
        if ms is None and latency is not None:
            ms = latency(model)
        step = GateStep(description, tuple(kept), tuple(int16), score.map50_95, score.map50, drop, ms, len(model))
        tried.append((step, model))
        _say(progress, _line(len(tried), step, time.perf_counter() - started))
        return step

    def passes(step: GateStep) -> bool:
        return step.drop_points <= max_drop

    step = trial("full int8 (weights per channel, activations per tensor)")
    tail = tuple(head_tail_ops(float_model))
    if not passes(step) and max_steps > 1 and tail:
        step = trial(f"head tail in float ({len(tail)} ops after the last conv)", tail)
    if not passes(step) and len(tried) < max_steps:
        ranked, kinds = _ranked_islands(float_model, tried[-1][1], samples, tail, build, rerank, progress)
        _repair(ranked, tail, trial, passes, max_steps - len(tried), shrink)
        passing = [s for s, _ in tried if passes(s) and not s.int16]
        if passing:
            _try_int16(min(passing, key=lambda s: len(s.kept_float)), tail, kinds, build, trial, latency, progress)
    best, model = _choose(tried, max_drop)
    passed = passes(best)
    _say(progress, f"{'PASSED' if passed else 'FAILED'}: best is step {[s for s, _ in tried].index(best) + 1} "
                   f"({best.description}), {best.drop_points:+.2f} points against a limit of {max_drop:.2f}; "
                   f"{len(tried)} candidates in {time.perf_counter() - started:.0f} s")
    return GateResult(reference.map50_95, tuple(s for s, _ in tried), best, model, passed, max_drop)


def _ranked_islands(float_model: bytes, base: bytes, samples: Sequence[np.ndarray], tail: tuple[str, ...],
                    build: Callable[..., bytes], rerank: int,
                    progress: TextIO | None) -> tuple[list[tuple[str, ...]], dict[str, str]]:
    """Float islands, worst first: by the error their seed op adds, the first ``rerank`` of them
    re-ordered by the final-output error with only that island (and the tail) in float; and each
    op's kind by name."""
    errors = op_sensitivity(float_model, base, samples)
    ops = TracedModel(float_model).ops
    ranked = islands([e for e in errors if e.name not in tail], ops, tail)
    _say(progress, "most sensitive ops (added normalised RMSE): " + ", ".join(
        f"{e.kind} {e.name.split(';')[0]} {e.added:.3f}" for e in errors[:6]))
    if rerank > 0 and len(ranked) > 1:
        few = samples[:4]
        head = ranked[:rerank]
        cost = {island: output_error(float_model, build(tail + island), few) for island in head}
        ranked = sorted(head, key=cost.__getitem__) + ranked[rerank:]
        _say(progress, f"re-ranked {len(head)} islands by output error (tail only: "
                       f"{output_error(float_model, base, few):.4f}; best island {min(cost.values()):.4f})")
    return ranked, {name: kind for name, kind, _ in ops}


def _repair(ranked: list[tuple[str, ...]], tail: tuple[str, ...], trial, passes, budget: int, shrink: int) -> None:
    """The first 1, 2, 4, … islands in float until one passes, then up to ``shrink`` bisection steps
    between the last failing and that passing count."""
    def kept(count: int) -> tuple[str, ...]:
        return tail + tuple(dict.fromkeys(n for island in ranked[:count] for n in island))

    failing, used = 0, 0
    for batch in batches(range(1, len(ranked) + 1), first=1):
        if used >= budget:
            return
        count = len(batch)
        used += 1
        if passes(trial(f"+ worst {count} float islands ({len(kept(count)) - len(tail)} ops)", kept(count))):
            break
        failing = count
    else:
        return
    passing = count
    for _ in range(shrink):
        if passing - failing <= 1 or used >= budget:
            return
        middle = (failing + passing) // 2
        used += 1
        if passes(trial(f"+ worst {middle} float islands ({len(kept(middle)) - len(tail)} ops, shrink)", kept(middle))):
            passing = middle
        else:
            failing = middle


def _try_int16(step: GateStep, tail: tuple[str, ...], kinds: dict[str, str], build, trial, latency,
              progress) -> None:
    """The passing candidate's extra ops with 16-bit activations instead of float, scored only when not
    measured slower than the float candidate (int16x8 has no XNNPACK kernels: 35x slower measured)."""
    int16 = tuple(n for n in step.kept_float if n not in tail and kinds.get(n) in _INT16_KINDS)
    if not int16:
        return
    rest = tuple(n for n in step.kept_float if n not in int16)
    model = build(rest, int16)
    ms = latency(model) if latency is not None else None
    if ms is not None and step.latency_ms is not None and ms >= step.latency_ms:
        _say(progress, f"int16x8 for {len(int16)} of those ops: {ms:.1f} ms against {step.latency_ms:.1f} ms in "
                       "float; not scored")
        return
    trial(f"{step.description.split(' (')[0]}, {len(int16)} ops int16x8", rest, int16, model=model, ms=ms)


def _choose(tried: list[tuple[GateStep, bytes]], max_drop: float) -> tuple[GateStep, bytes]:
    """The passing candidate with the lowest latency (when unmeasured: the fewest exceptions, float
    before int16x8, which has no XNNPACK kernels), else the most accurate one."""
    passing = [t for t in tried if t[0].drop_points <= max_drop]
    if passing:
        return min(passing, key=lambda t: (t[0].latency_ms if t[0].latency_ms is not None else 0.0,
                                           len(t[0].kept_float) + len(t[0].int16), len(t[0].int16)))
    return max(tried, key=lambda t: t[0].map50_95)


def _line(number: int, step: GateStep, seconds: float) -> str:
    latency = f"{step.latency_ms:7.1f} ms" if step.latency_ms is not None else "      - ms"
    return (f"step {number}: {step.description:48} mAP50-95 {step.map50_95:.4f} ({-step.drop_points:+.2f} pts) "
            f"mAP50 {step.map50:.4f} {latency} {step.size_bytes / 1e6:5.2f} MB  [{seconds:.0f} s]")


def _say(progress: TextIO | None, text: str) -> None:
    if progress is not None:
        print(text, file=progress, flush=True)
