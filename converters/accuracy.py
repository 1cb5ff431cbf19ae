"""The accuracy half of a conversion: mAP of the source and of the converted model on a validation
set, through edgekit's own runtime path (the preprocessing, decoder and NMS ``edgekit detect``
uses), their latency measured here, and a report for the table, ``--report`` and the model's
metadata (so ``edgekit info`` and the planner can show accuracy next to speed).
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence, TextIO

from edgekit.coco_eval import CocoScore, ScoreDelta, compare_scores, evaluate, evaluation_detector
from edgekit.datasets import ValidationSet

__all__ = ["Measured", "AccuracyReport", "model_file", "measure", "measure_bytes", "report", "latency_ms", "cpu_isa"]

_ISA_FLAGS = ("avx512_vnni", "avx_vnni", "avx512f", "avx2", "avx", "sse4_2", "asimddp", "asimd", "neon", "i8mm")


@dataclass(frozen=True)
class Measured:
    """One model's numbers: mAP on the validation set, latency (ms, median, per thread count), size."""

    role: str  # "source", "float source", "converted", a gate step …
    path: str
    score: CocoScore
    latency_ms: dict[int, float]
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "model": os.path.basename(self.path), "map50_95": round(self.score.map50_95, 4),
                "map50": round(self.score.map50, 4), "images": self.score.images,
                "latency_ms": {str(t): round(ms, 2) for t, ms in self.latency_ms.items()},
                "size_bytes": self.size_bytes}


@dataclass(frozen=True)
class AccuracyReport:
    """Source vs converted on ``dataset``: what ``--eval`` prints, writes and embeds.

    ``reference`` is what the drop is measured against (the float source: a SavedModel/Keras
    model's float32 conversion, or a downloaded .tflite's float copy); ``others`` are further rows
    (the downloaded file itself when it is not float, gate steps). ``passed`` is None without a
    ``max_drop``.
    """

    dataset: str
    images: int
    reference: Measured
    converted: Measured
    delta: ScoreDelta
    others: tuple[Measured, ...] = ()
    max_drop: float | None = None
    passed: bool | None = None
    kept_float: tuple[str, ...] = ()
    steps: tuple[Any, ...] = ()  # converters.gate.GateStep, when a gate ran
    cpu: dict[str, Any] = field(default_factory=dict)

    @property
    def drop_points(self) -> float:
        return -self.delta.map50_95_points

    def rows(self) -> list[tuple[str, str]]:
        """Rows for the conversion table."""
        def line(m: Measured) -> str:
            lat = ", ".join(f"{ms:.1f} ms @{t}T" for t, ms in m.latency_ms.items())
            return (f"mAP50-95 {m.score.map50_95:.4f}  mAP50 {m.score.map50:.4f}  {m.size_bytes / 1e6:.2f} MB"
                    + (f"  {lat}" if lat else ""))

        rows = [("validated on", f"{self.images} images of {self.dataset}")]
        for m in (self.reference, *self.others, self.converted):
            rows.append((m.role, line(m)))
        rows.append(("mAP50-95 change", f"{self.delta.map50_95_points:+.2f} points (mAP50 {self.delta.map50_points:+.2f})"))
        if self.delta.worst:
            rows.append(("worst classes", ", ".join(f"{c.name} {c.delta_points:+.1f} ({c.instances} boxes)"
                                                    for c in self.delta.worst)))
        if self.max_drop is not None:
            verdict = "within" if self.passed else "NOT within"
            rows.append(("gate", f"{verdict} --max-drop {self.max_drop:g} (drop {self.drop_points:.2f} points)"
                         + (f"; {len(self.kept_float)} ops kept in float" if self.kept_float else "")))
        rows.append(("measured on", f"{self.cpu.get('model', '?')} ({', '.join(self.cpu.get('isa', [])) or 'ISA ?'}); "
                     "speed depends on the CPU: measure on the device"))
        return rows

    def to_dict(self) -> dict[str, Any]:
        """The ``--report`` JSON and the model metadata's ``accuracy`` entry."""
        doc: dict[str, Any] = {
            "dataset": self.dataset, "images": self.images, "metric": "COCO mAP (pycocotools)",
            "reference": self.reference.to_dict(), "converted": self.converted.to_dict(),
            "others": [m.to_dict() for m in self.others],
            "change_points": {"map50_95": round(self.delta.map50_95_points, 2), "map50": round(self.delta.map50_points, 2)},
            "worst_classes": [{"name": c.name, "before": round(c.before, 4), "after": round(c.after, 4),
                               "change_points": round(c.delta_points, 2), "instances": c.instances}
                              for c in self.delta.worst],
            "cpu": self.cpu,
        }
        if self.max_drop is not None:
            doc["gate"] = {"max_drop_points": self.max_drop, "passed": bool(self.passed),
                           "kept_float": list(self.kept_float),
                           "steps": [_step_dict(s) for s in self.steps]}
        return doc


def _step_dict(step: Any) -> dict[str, Any]:
    return {"description": step.description, "map50_95": round(step.map50_95, 4), "map50": round(step.map50, 4),
            "drop_points": round(step.drop_points, 2), "kept_float": list(step.kept_float),
            "int16": list(getattr(step, "int16", ())), "size_bytes": step.size_bytes,
            "latency_ms": None if step.latency_ms is None else round(step.latency_ms, 2)}


def latency_ms(model: str | os.PathLike, dataset: ValidationSet, threads: Sequence[int] = (1, 2),
               runs: int = 20) -> dict[int, float]:
    """Median ``invoke`` time of ``model`` per thread count, on the first validation image as the
    runtime prepares it (after two warm-up runs)."""
    from edgekit import Detector, DetectorOptions

    image = dataset.image_paths()[0]
    out = {}
    for t in threads:
        det = Detector(model, DetectorOptions(num_threads=t))
        tensor, _ = det.preprocess(det.load(image))
        for _ in range(2):
            det.invoke(tensor)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            det.invoke(tensor)
            times.append((time.perf_counter() - started) * 1000)
        out[t] = statistics.median(times)
    return out


@contextlib.contextmanager
def model_file(data: bytes, name: str = "model.tflite") -> Iterator[str]:
    """A model held in memory as a temporary file named ``name`` (edgekit's Detector reads files)."""
    with tempfile.TemporaryDirectory(prefix="edgekit-model-") as tmp:
        path = os.path.join(tmp, name)
        with open(path, "wb") as fh:
            fh.write(data)
        yield path


def measure(role: str, model: str | os.PathLike, dataset: ValidationSet, labels: str | os.PathLike | None,
            *, threads: Sequence[int] = (1, 2), progress: TextIO | None = None, name: str | None = None) -> Measured:
    """mAP (edgekit's runtime at evaluation settings), latency and size of ``model``; ``name`` is what
    the report calls it (default: its path)."""
    model = os.fspath(model)
    score = evaluate(evaluation_detector(model, labels), dataset, progress=progress)
    return Measured(role, name or model, score, latency_ms(model, dataset, threads) if threads else {},
                    os.path.getsize(model))


def measure_bytes(role: str, data: bytes, name: str, dataset: ValidationSet, labels: str | os.PathLike | None,
                  *, threads: Sequence[int] = (1, 2), progress: TextIO | None = None) -> Measured:
    """:func:`measure` for a model held in memory (as :func:`model_file` ``name``)."""
    with model_file(data, name) as path:
        return measure(role, path, dataset, labels, threads=threads, progress=progress, name=name)


def report(dataset: ValidationSet, reference: Measured, converted: Measured, others: Sequence[Measured] = (),
           max_drop: float | None = None, kept_float: Sequence[str] = (), steps: Sequence[Any] = ()) -> AccuracyReport:
    delta = compare_scores(reference.score, converted.score)
    passed = None if max_drop is None else -delta.map50_95_points <= max_drop + 1e-9
    return AccuracyReport(dataset.source, converted.score.images, reference, converted, delta, tuple(others),
                          max_drop, passed, tuple(kept_float), tuple(steps), cpu_isa())


def cpu_isa() -> dict[str, Any]:
    """The CPU the numbers were measured on: model name, architecture, and the SIMD extensions that
    decide quantized speed (AVX-512 VNNI, AVX2, ARM dot-product …)."""
    model, flags = platform.processor() or "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "cpu model", "hardware") and not model:
                    model = value.strip()
                elif key in ("flags", "features"):
                    flags.update(value.split())
    except OSError:
        pass
    return {"model": model or platform.machine(), "arch": platform.machine(), "cores": os.cpu_count(),
            "isa": [f for f in _ISA_FLAGS if f in flags]}
