"""Bundles: one model as several variants (input sizes × quantization modes) in a directory with
``manifest.json``, for ``edgekit plan`` to choose from on the device.

``manifest.json`` (``schema_version`` 1)::

    {"schema_version": 1, "name": "shapes", "created": "…",
     "variants": [{"file": "shapes_128x128_int8.tflite", "input_size": [128, 128], "mode": "int8",
                   "size_bytes": 141829, "sha256": "9f2c…", "measured": {"peak_bytes": 9961472, "invoke_ms": 0.8,
                   "on": "x86_64 ai-edge-litert 2.3.0 1 thread"}}, …]}

With ``--eval`` each converted variant is evaluated (and, with ``--max-drop``, gated) and its entry
records ``"accuracy": {"map50_95": …, "map50": …, "images": …, "dataset": …, "passed": …}``, so the
planner can prefer the most accurate variant that meets a latency target.

``sha256`` is the SHA-256 of the whole variant file: the planner refuses a variant that does not
match it (corrupt or modified). ``measured`` is the memory the variant added to a process on the
converting machine; the planner uses it to refuse a variant before loading it (a device's own
measurement replaces it once made).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from typing import Any, Sequence

from edgekit.errors import AccuracyError, ConfigError
from edgekit.integrity import file_digests
from edgekit.runtime import create_interpreter, quantization_mode

from .convert import ConversionReport, convert
from .source import load_source, resized_source

__all__ = ["convert_bundle", "MANIFEST"]

MANIFEST = "manifest.json"


def convert_bundle(sources: Sequence[Any], out_dir: str, *, sizes: Sequence[tuple[int, int]] | None = None,
                   modes: Sequence[str] = ("float32",), name: str | None = None,
                   **options: Any) -> list[ConversionReport]:
    """Convert each source at each size in each mode (``.tflite`` sources: metadata only) into
    ``out_dir`` and write its manifest. ``options`` are passed to :func:`converters.convert`."""
    if not sources:
        raise ConfigError("a bundle needs at least one source model")
    os.makedirs(out_dir, exist_ok=True)
    reports: list[ConversionReport] = []
    variants: list[dict[str, Any]] = []
    failed: list[str] = []
    first_name = ""
    for src in sources:
        source = load_source(src)
        first_name = first_name or source.name
        if source.kind == "tflite":
            if sizes:
                raise ConfigError(f"{source.name}: --sizes cannot resize a .tflite model; pass one .tflite per size")
            out = os.path.join(out_dir, f"{source.name}.tflite")
            collect = {k: v for k, v in options.items() if k not in ("eval_data", "eval_images", "max_drop")}
            reports.append(convert(source, out, mode=None, **collect))  # collected as it is: metadata only
            interpreter = create_interpreter(out, 1)
            shape = interpreter.get_input_details()[0]["shape"]
            variants.append(_variant(out, (int(shape[2]), int(shape[1])), quantization_mode(interpreter)))
            continue
        native = (source.input_shape[2], source.input_shape[1]) if len(source.input_shape) == 4 else None
        for size in sizes or [native]:
            if size is None or None in size:
                raise ConfigError(f"{source.name}: the input has no fixed size; pass --sizes")
            sized = resized_source(source, size)
            for mode in modes:
                out = os.path.join(out_dir, f"{name or source.name}_{size[0]}x{size[1]}_{mode}.tflite")
                variant_options = dict(options)
                if mode != "int8":
                    variant_options.pop("max_drop", None)  # the gate is for int8; float variants are measured
                try:
                    report = convert(sized, out, mode=mode, name=name or source.name, **variant_options)
                except AccuracyError as exc:  # recorded as failing; the other variants still get made
                    report = exc.report
                    failed.append(out)
                reports.append(report)
                variants.append(_variant(out, size, mode, report))
    manifest = {"schema_version": 1, "name": name or first_name,
                "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "variants": variants}
    tmp = os.path.join(out_dir, f".{MANIFEST}.tmp")
    with open(tmp, "w") as fh:
        json.dump(manifest, fh, indent=1)
    os.replace(tmp, os.path.join(out_dir, MANIFEST))
    if failed:
        raise AccuracyError(f"{len(failed)} variant(s) lose more than --max-drop allows: "
                            f"{', '.join(os.path.basename(f) for f in failed)} (recorded as failing in "
                            f"{MANIFEST}; the planner never prefers them for accuracy)", report=reports)
    return reports


def _variant(path: str, size: tuple[int, int], mode: str, report: ConversionReport | None = None) -> dict[str, Any]:
    """A manifest entry, with the variant's memory/latency measured here (a child process) so a
    device can refuse a variant that cannot fit without loading it, and its accuracy when evaluated."""
    from edgekit.plan import measure_cost

    cost = measure_cost(path, threads=1, use_cache=False)
    entry = {"file": os.path.basename(path), "input_size": [int(size[0]), int(size[1])], "mode": mode,
             "size_bytes": os.path.getsize(path), "sha256": file_digests(path)[0],
             "measured": {"peak_bytes": cost.peak_bytes, "invoke_ms": cost.invoke_ms,
                          "on": f"{platform.machine()} {cost.runtime} 1 thread"}}
    accuracy = getattr(report, "accuracy", None)
    if accuracy is not None:
        entry["accuracy"] = {"map50_95": round(accuracy.converted.score.map50_95, 4),
                             "map50": round(accuracy.converted.score.map50, 4), "images": accuracy.images,
                             "dataset": os.path.basename(accuracy.dataset),
                             "change_points": round(accuracy.delta.map50_95_points, 2), "passed": accuracy.passed}
    return entry
