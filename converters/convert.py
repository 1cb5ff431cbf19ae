"""Convert a trained detector to TFLite (float32, float16, dynamic-range or full-int8) and
embed the metadata the edgekit runtime needs.

Conversion, calibration and evaluation are separate steps (:mod:`converters.calibration`,
:func:`to_tflite`, :mod:`converters.evaluate`) so that an accuracy-gated search can call them
one at a time.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

import edgekit
from edgekit.postprocess import SCORE_THRESHOLD
from edgekit.errors import ConfigError, ModelError
from edgekit.integrity import flatbuffer_sha256
from edgekit.runtime import native_stderr
from edgekit.metadata import InputSpec, ModelMetadata, embed_metadata, read_labels
from edgekit.metadata_readers import read_metadata

from . import calibration as calib
from . import labelfit
from .evaluate import Agreement, compare, run_tflite
from .source import Source, import_tensorflow, load_source

__all__ = ["MODES", "IO_TYPES", "ConversionReport", "convert", "to_tflite"]

MODES = ("float32", "float16", "dynamic", "int8")
IO_TYPES = ("uint8", "int8", "float32")


@dataclass(frozen=True)
class ConversionReport:
    """What ``convert`` did: sizes, time, and agreement with the source model."""

    output: str
    mode: str
    io: str
    size_bytes: int
    float32_size_bytes: int | None
    seconds: float
    agreement: Agreement | None
    evaluated_on: str
    metadata: ModelMetadata = field(repr=False, default_factory=ModelMetadata)
    calibrated_on: tuple[str, ...] = ()  # the images int8 calibration used
    compared_on: tuple[str, ...] = ()  # the images the agreement was measured on (none: random pixels)
    accuracy: Any = None  # converters.accuracy.AccuracyReport, with --eval

    @property
    def ratio(self) -> float | None:
        return self.size_bytes / self.float32_size_bytes if self.float32_size_bytes else None

    def table(self) -> str:
        """A human-readable table of this report."""
        rows = [("mode", self.mode), ("model I/O", self.io), ("size", f"{self.size_bytes / 1e6:.3f} MB")]
        if self.ratio is not None:
            rows.append(("ratio vs float32", f"{self.ratio:.2f}"))
        rows.append(("conversion time", f"{self.seconds:.1f} s"))
        if self.agreement is not None:
            rows.append(("compared on", f"{self.agreement.images} {self.evaluated_on}"))
            for name, err in self.agreement.max_abs_error.items():
                rows.append((f"max|err| {name}", f"{err:.4g} (mean {self.agreement.mean_abs_error[name]:.3g})"))
            if self.agreement.detection_recall is not None:
                rows.append(("float detections kept", f"{self.agreement.detection_recall:.1%}"))
        if self.accuracy is not None:
            rows.extend(self.accuracy.rows())
        width = max(len(k) for k, _ in rows)
        lines = [f"{self.output}"] + [f"  {k:<{width}}  {v}" for k, v in rows]
        return "\n".join(lines)


_CONVERTER_NOISE = ("fully_quantize:", "Statistics for quantized inputs", "warnings.warn(", "Estimated count of")


def to_tflite(source: Source, mode: str, io_type: str = "float32", representative: np.ndarray | None = None,
              progress: bool = True) -> bytes:
    """Convert ``source`` in ``mode``; int8 needs ``representative`` (float NHWC batch)."""
    tf = import_tensorflow()
    converter = source.make_converter()
    progress_stream = os.fdopen(os.dup(2), "w", buffering=1) if progress else None  # survives the capture below
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        if representative is None or len(representative) == 0:
            raise ConfigError("int8 conversion needs calibration images: pass --calibration DIR (a folder of "
                              "representative images, ~100-300 of them)")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: calib.iterate(representative, progress_stream)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        dtype = {"uint8": tf.uint8, "int8": tf.int8, "float32": tf.float32}[io_type]
        converter.inference_input_type = dtype
        converter.inference_output_type = dtype
    native: list[str] = []
    try:
        with native_stderr(native), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Statistics for quantized inputs …": expected here
            return converter.convert()
    except Exception as exc:
        details = [line for line in [*native, *str(exc).splitlines()] if "error" in line.lower()]
        first = details[0].strip() if details else (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"{source.name}: TensorFlow could not convert the model in {mode} mode ({first})") from None
    finally:
        if progress_stream is not None:
            progress_stream.close()
        for line in native:
            if line.strip() and not any(n in line for n in _CONVERTER_NOISE) and not os.environ.get("EDGEKIT_QUIET"):
                print(line, file=sys.stderr)


def _parse_channels(value: float | Sequence[float] | None, what: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    values = (value,) if isinstance(value, (int, float)) else tuple(value)
    if len(values) not in (1, 3):
        raise ConfigError(f"{what} needs 1 value or 3 (one per channel), found {len(values)}")
    return tuple(float(v) for v in values)


def _input_size(source: Source) -> tuple[int, int] | None:
    shape = source.input_shape
    if len(shape) != 4 or shape[3] != 3:
        raise ModelError(f"{source.name}: expected an NHWC image input [N, H, W, 3], found {list(shape)}")
    if shape[1] is None or shape[2] is None:
        return None
    return int(shape[2]), int(shape[1])


def convert(src: Any, output: str | os.PathLike, *, mode: str | None = "float32", calibration: str | None = None,
            mean: float | Sequence[float] | None = None, std: float | Sequence[float] | None = None,
            labels: str | Sequence[str] | None = None, io: str | None = None, layout: str | None = None,
            color: str | None = None, resize: str | None = None, pad_value: int | None = None, name: str | None = None,
            max_calibration: int = 200, evaluate: bool = True, progress: bool = True,
            eval_data: str | None = None, eval_images: str | None = None, max_drop: float | None = None,
            eval_threads: Sequence[int] = (1, 2)) -> ConversionReport:
    """Convert ``src`` (SavedModel dir, .keras/.h5 path, Keras model, or .tflite) to ``output``.

    Args:
        mode: float32, float16, dynamic or int8.
        calibration: folder of representative images (required for int8). Every 5th image (in
            name order, at most 50) is held out of calibration and used to measure agreement.
        mean, std: the model's input normalisation ``(pixel - mean) / std``; scalar or per channel.
        labels: label file path or list (index = class id).
        io: int8 model input/output type: uint8 (default), int8 or float32.
        layout: output layout to record (ssd, yolov8, yolov5, or a custom decoder's name).
        color, resize, pad_value: how the runtime must prepare pixels (colour order, default RGB; resize,
            default the layout's convention; letterbox grey, default 114). For a .tflite, an option
            left out (None) keeps what the model's metadata says.
        eval_data: a validation set (COCO instances JSON, or a YOLO dataset folder) to measure the
            mAP of the source and of the converted model on, through edgekit's runtime; images in
            ``eval_images`` (default: ``images/`` beside the JSON). Must not share images with
            ``calibration``.
        max_drop: with int8, the most mAP50-95 (points) the converted model may lose against its
            float source: operators are kept in float until it holds (:mod:`converters.gate`); if it
            cannot, the best model found is written, labelled, and AccuracyError is raised.
    Returns:
        A ConversionReport (print ``report.table()``).
    Raises:
        ConfigError for bad options (also labels whose count differs from the model's class
        count), ModelError for an unusable source.
    """
    mode_given, mode = mode, mode or "float32"  # a .tflite without a mode only gets metadata
    # the evaluation's Detector reads labels from the models' metadata; a label *file* is also handed to it
    eval_labels = labels if isinstance(labels, (str, os.PathLike)) else None
    io_given = io
    if mode not in MODES:
        raise ConfigError(f"--mode must be one of {', '.join(MODES)}, found {mode!r}")
    io = io or ("uint8" if mode == "int8" else "float32")
    if io not in IO_TYPES:
        raise ConfigError(f"--io must be one of {', '.join(IO_TYPES)}, found {io!r}")
    if mode != "int8" and io != "float32":
        raise ConfigError(f"--io {io} only applies to --mode int8 (float32/float16/dynamic models keep float I/O)")
    given = {k: v for k, v in dict(mean=_parse_channels(mean, "--mean"), std=_parse_channels(std, "--std"),
                                   color=color, resize=resize, pad_value=pad_value).items() if v is not None}
    spec = InputSpec(**given)  # checks the options; defaults for what was not given
    label_list = read_labels(labels) if isinstance(labels, (str, os.PathLike)) else (tuple(labels) if labels else None)
    if mode == "int8" and calibration is None:
        raise ConfigError("int8 conversion needs calibration images: pass --calibration DIR (a folder of "
                          "~100-300 images like the ones the model will see)")
    if max_drop is not None and max_drop < 0:
        raise ConfigError(f"--max-drop is the most mAP50-95 points int8 may lose, 0 or more; found {max_drop:g}")
    if max_drop is not None and (eval_data is None or mode != "int8"):
        raise ConfigError("--max-drop gates an int8 conversion on a validation set: add --mode int8 and --eval DATA")
    output = os.fspath(output)
    split = calib.split_calibration(calibration, max_calibration) if calibration else None  # fail fast
    dataset = _validation_set(eval_data, eval_images, split) if eval_data else None
    source = src if isinstance(src, Source) else load_source(src)
    if mode == "int8" and (source.kind == "tflite" or max_drop is not None) and io_given not in (None, "int8"):
        raise ConfigError(f"--io {io_given}: int8 from a .tflite or with --max-drop (ai-edge-quantizer) has int8 "
                          "input and outputs; leave --io out (edgekit feeds and reads int8 models as they are)")
    start = time.perf_counter()
    labels_from = f"--labels {os.fspath(labels)}" if eval_labels is not None else "the labels given"
    if source.kind == "tflite":
        old = read_metadata(source.tflite_bytes)
        shapes, input_size = labelfit.tflite_output_shapes(source.tflite_bytes)
        labelfit.check_labels_fit(source.name, shapes, label_list or old.labels, layout or old.layout,
                                  labels_from if label_list else f"its metadata ({old.origins.get('labels', old.source)})",
                                  input_size)
        if mode_given is None:
            return _add_metadata_only(source, output, old, given, label_list, layout, name)
        return _convert_tflite(source, output, mode, split, old, given, label_list, layout, name, eval_labels,
                               dataset, max_drop, eval_threads, progress, start)
    size = _input_size(source)
    if label_list and size is not None and source.run is not None:  # before converting: cheap to ask the source
        outputs = source.run(np.zeros((1, size[1], size[0], 3), np.float32))
        labelfit.check_labels_fit(source.name, [tuple(np.shape(v)) for v in outputs.values()], label_list, layout,
                                  labels_from, size)
    if size is None and mode == "int8":
        raise ConfigError(f"{source.name}: the input has no fixed height/width {list(source.input_shape)}; int8 "
                          "calibration needs one — export the model with a fixed input size")
    run_spec = InputSpec(spec.mean, spec.std, spec.color, spec.resize or _runtime_resize(source, size, layout, label_list),
                         spec.pad_value)
    tf_version = _tf_version()
    metadata = ModelMetadata(
        name=name or source.name, labels=label_list, input=spec, layout=layout,
        quantization={"mode": mode, "io": io},
        versions={"edgekit": edgekit.__version__, "tensorflow": tf_version, "python": platform.python_version()},
        created=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    float_bytes = None  # the float32 conversion, made once: the float source of --eval and the size ratio
    if dataset is not None:  # the float source, as the device would run it: its float32 conversion
        float_bytes = to_tflite(source, "float32", progress=False)
        float_model = embed_metadata(float_bytes, replace(metadata, quantization={"mode": "float32", "io": "float32"}))
        if mode == "int8" and max_drop is not None:  # gated: int8 from that float model (ai-edge-quantizer)
            return _quantize_gated(float_model, output, replace(metadata, quantization=None), split, dataset,
                                   eval_labels, max_drop, eval_threads, progress, start, source_name=source.name,
                                   reference_role="float source (float32)", others=())
    representative = calib.load_calibration(split.calibration, size, run_spec) if mode == "int8" else None
    data = to_tflite(source, mode, io, representative, progress)
    seconds = time.perf_counter() - start
    metadata = replace(metadata, sha256=flatbuffer_sha256(data))
    final = embed_metadata(data, metadata)
    accuracy = None
    if dataset is not None:
        from . import accuracy as acc

        stream = sys.stderr if progress else None
        reference = acc.measure_bytes("float source (float32)", float_model, "float32.tflite", dataset, eval_labels,
                                      threads=eval_threads, progress=stream)
        converted = acc.measure_bytes(f"converted ({mode})", final, os.path.basename(output), dataset, eval_labels,
                                      threads=eval_threads, progress=stream)
        accuracy = acc.report(dataset, reference, converted)
        final = embed_metadata(data, replace(metadata, accuracy=accuracy.to_dict()))
    _write(output, final)
    if mode == "float32":
        float_bytes = data
    elif float_bytes is None and evaluate:
        float_bytes = to_tflite(source, "float32")
    float_size = len(float_bytes) if float_bytes is not None else None
    agreement, compared_on, evaluated_on = None, (), ""
    if evaluate and size is not None:
        compared_on, evaluated_on = _comparison_images(split)
        batch = (calib.load_calibration(compared_on, size, run_spec) if compared_on
                 else calib.synthetic_inputs(size, run_spec))
        reference = [source.run(x[np.newaxis]) for x in batch]
        converted = run_tflite(data, batch)
        agreement = compare(reference, converted, layout, SCORE_THRESHOLD, size)
    return ConversionReport(output, mode, io, len(final), float_size, seconds, agreement, evaluated_on, metadata,
                            calibrated_on=split.calibration if representative is not None else (),
                            compared_on=compared_on, accuracy=accuracy)


def _validation_set(eval_data: str, eval_images: str | None, split: calib.CalibrationSplit | None):
    """The ``--eval`` set, checked not to share an image with the calibration folder (by content)."""
    from edgekit.datasets import check_disjoint, load_validation_set

    dataset = load_validation_set(eval_data, eval_images)
    if split is not None:
        check_disjoint([*split.calibration, *split.held_out], dataset)
    return dataset


def _convert_tflite(source: Source, output: str, mode: str, split, old: ModelMetadata, given: dict, label_list,
                    layout, name, labels, dataset, max_drop, eval_threads, progress: bool,
                    start: float) -> ConversionReport:
    """A downloaded .tflite: ``float32`` is its float copy (float16 and dynamic-range weights carry
    their scales, so the copy is exact), ``int8`` quantizes that copy with ai-edge-quantizer."""
    from .floatcopy import float_copy

    if mode not in ("float32", "int8"):
        raise ConfigError(f"--mode {mode} from a .tflite is not supported: a .tflite converts to float32 (its float "
                          "copy) or int8; for float16/dynamic-range convert the original SavedModel/Keras model")
    copy = float_copy(source.tflite_bytes, source.name)
    metadata = ModelMetadata(
        name=name or old.name or source.name, labels=label_list or old.labels,
        input=_merged_input(old, given), layout=layout or old.layout,
        versions={**(old.versions or {}), "edgekit": edgekit.__version__, "python": platform.python_version()},
        created=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    float_model = embed_metadata(copy.model, replace(metadata, quantization={"mode": "float32", "io": "float32",
                                                                             "from": os.path.basename(source.name)}))
    others = ()
    already_float = not (copy.float16 or copy.dequantized or copy.folded)
    if dataset is not None and not already_float:
        from . import accuracy as acc

        others = (acc.measure_bytes("source (as given)", source.tflite_bytes, f"{source.name}.tflite", dataset,
                                    labels, threads=eval_threads, progress=sys.stderr if progress else None),)
    if mode == "float32":
        return _finish_float(float_model, output, metadata, dataset, labels, others, eval_threads, progress, start)
    if split is None:
        raise ConfigError("int8 conversion needs calibration images: pass --calibration DIR (a folder of "
                          "~100-300 images like the ones the model will see)")
    role = "float source (as given)" if already_float else "float source (float copy)"
    return _quantize_gated(float_model, output, metadata, split, dataset, labels, max_drop, eval_threads, progress,
                           start, source_name=source.name, reference_role=role, others=others)


@contextlib.contextmanager
def _quantizer_errors(name: str):
    """What ai-edge-quantizer raises (ValueError, RuntimeError … on an op or graph it cannot handle)
    becomes one ModelError line; edgekit's own errors pass as they are."""
    from edgekit.errors import EdgekitError

    try:
        yield
    except EdgekitError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ModelError(f"{os.path.basename(name)}: ai-edge-quantizer could not quantize the float model to int8 "
                         f"({type(exc).__name__}: {first}); convert the original SavedModel/Keras model with TF's "
                         "converter (edgekit-convert SRC --mode int8 without --max-drop), or report the operator") from None


@contextlib.contextmanager
def _quiet_quantizer(progress: bool):
    """ai-edge-quantizer's own progress bars (tqdm on sys.stderr) only on a terminal, and without
    its warning that calibration keeps every tensor (it does so on purpose). The gate's own step
    lines go to the stream it is handed, taken before this."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
        if progress:
            yield
        else:
            with contextlib.redirect_stderr(io.StringIO()):
                yield


def _finish_float(float_model: bytes, output: str, metadata: ModelMetadata, dataset, labels, others, eval_threads,
                  progress: bool, start: float) -> ConversionReport:
    metadata = replace(metadata, quantization={"mode": "float32", "io": "float32"},
                       sha256=flatbuffer_sha256(float_model))
    final = embed_metadata(float_model, metadata)
    accuracy = None
    if dataset is not None:
        from . import accuracy as acc

        converted = acc.measure_bytes("converted (float32)", final, os.path.basename(output), dataset, labels,
                                      threads=eval_threads, progress=sys.stderr if progress else None)
        reference = others[0] if others else converted
        accuracy = acc.report(dataset, reference, converted)
        final = embed_metadata(final, replace(metadata, accuracy=accuracy.to_dict()))
    _write(output, final)
    return ConversionReport(output, "float32", "float32", len(final), len(final), time.perf_counter() - start, None,
                            "", metadata, accuracy=accuracy)


def _quantize_gated(float_model: bytes, output: str, metadata: ModelMetadata, split, dataset, labels,
                    max_drop: float | None, eval_threads, progress: bool, start: float, *, source_name: str,
                    reference_role: str, others) -> ConversionReport:
    """Full int8 from a float .tflite with ai-edge-quantizer, calibrated on ``split`` through the
    runtime's own preprocessing; the detector's decode tail stays float (the usual YOLO repair).
    With ``max_drop`` (and a validation set), :func:`converters.gate.gate_int8` keeps more
    operators in float until the mAP50-95 drop is within it."""
    from . import accuracy as acc
    from . import quantize as qz

    stream = sys.stderr if progress else None
    with acc.model_file(float_model, "float32.tflite") as float_path:
        # every calibration image: this path measures agreement by mAP on --eval, not on a held-out part
        calibration_images = (*split.calibration, *split.held_out)
        samples = qz.calibration_samples(float_path, calibration_images)
        reference = None
        if dataset is not None:
            reference = acc.measure(reference_role, float_path, dataset, labels, threads=eval_threads, progress=stream,
                                    name="float32.tflite")
    steps, kept, passed = (), tuple(qz.head_tail_ops(float_model)), None
    err = sys.stderr
    with _quiet_quantizer(progress), _quantizer_errors(source_name):
        if max_drop is not None:
            from .gate import evaluator, gate_int8

            threads = max(eval_threads or (1,))

            def latency(model: bytes) -> float:  # what the gate compares passing candidates by
                with acc.model_file(model, "candidate.tflite") as path:
                    return acc.latency_ms(path, dataset, (threads,), runs=10)[threads]

            result = gate_int8(float_model, samples, evaluator(dataset, labels), max_drop, reference=reference.score,
                               latency=latency, progress=err)
            data, steps, kept, passed = result.model, result.steps, tuple(result.best.kept_float), result.passed
        else:
            data = qz.quantize_int8(float_model, samples, keep_float=kept)
    quantization = {"mode": "int8", "io": "int8", "method": "ai-edge-quantizer static int8 (per-channel weights)",
                    "kept_float": len(kept), "from": os.path.basename(source_name)}
    if passed is False:
        quantization["gate"] = f"FAILED: more than {max_drop:g} mAP50-95 points lost; best model found"
    metadata = replace(metadata, quantization=quantization, sha256=flatbuffer_sha256(data))
    final = embed_metadata(data, metadata)
    accuracy = None
    if dataset is not None:
        converted = acc.measure_bytes("converted (int8)", final, os.path.basename(output), dataset, labels,
                                      threads=eval_threads, progress=stream)
        accuracy = acc.report(dataset, reference, converted, others, max_drop, kept, steps)
        final = embed_metadata(final, replace(metadata, accuracy=accuracy.to_dict()))
    _write(output, final)
    report = ConversionReport(output, "int8", "int8", len(final), len(float_model), time.perf_counter() - start,
                              None, "", metadata, calibrated_on=tuple(calibration_images), accuracy=accuracy)
    if accuracy is not None and accuracy.passed is False:
        from edgekit.errors import AccuracyError

        raise AccuracyError(f"{output}: the best int8 model found loses {accuracy.drop_points:.2f} mAP50-95 points "
                            f"against its float source, more than --max-drop {max_drop:g}; it is written, labelled "
                            "as failing in its metadata and the report — do not deploy it as passing (raise "
                            "--max-drop, calibrate on more representative images, or ship the float/dynamic model)",
                            report=report)
    return report


def _comparison_images(split: calib.CalibrationSplit | None) -> tuple[tuple[str, ...], str]:
    """The images to measure agreement on, and how the table describes them: the held-out part
    of the calibration folder — int8 figures measured on the images it was calibrated on would
    flatter it — or, for a folder too small to split, all of it, saying so."""
    if split is None:
        return (), "random-pixel images (no --calibration folder given)"
    if split.held_out:
        return split.held_out, "held-out images (never used for calibration)"
    return split.calibration, (f"calibration images, the same ones int8 calibrates on: the folder has fewer than "
                               f"{calib.MIN_SPLIT} images, too few to hold any out")


def _runtime_resize(source: Source, size: tuple[int, int] | None, layout: str | None, labels) -> str:
    """The resize the device will use (the layout's convention), so calibration and evaluation see
    images fitted exactly as ``edgekit detect`` fits them: ask the decoders, which own it."""
    from edgekit import decoders
    from edgekit.errors import LayoutError

    if layout is None and size is not None and source.run is not None:
        outputs = source.run(np.zeros((1, size[1], size[0], 3), np.float32))
        try:
            layout = decoders.detect_layout([tuple(np.shape(v)) for v in outputs.values()],
                                            len(labels) if labels else None, size)
        except LayoutError:
            return "stretch"  # not a built-in head: a custom decoder's convention is unknown here
    return decoders.resize_convention(layout) if layout else "stretch"


def _merged_input(old: ModelMetadata, given: dict) -> InputSpec:
    """The input spec of a rewritten .tflite: each field the model's metadata set, except those given."""
    return InputSpec(**{**{k: getattr(old.input, k) for k in old.explicit_input}, **given})


def _add_metadata_only(source: Source, output: str, old: ModelMetadata, given: dict, labels, layout,
                       name) -> ConversionReport:
    """Rewrite a .tflite's metadata: the fields given change, every other field stays as the model had
    it (measured accuracy, normalisation, resize, versions, creation time)."""
    metadata = ModelMetadata(
        name=name or old.name or source.name, labels=labels or old.labels, input=_merged_input(old, given),
        layout=layout or old.layout, quantization=old.quantization,
        versions={"edgekit": edgekit.__version__, **(old.versions or {})}, created=old.created,
        sha256=flatbuffer_sha256(source.tflite_bytes), accuracy=old.accuracy,
    )
    final = embed_metadata(source.tflite_bytes, metadata)
    _write(output, final)
    return ConversionReport(output, "unchanged (metadata only)", "unchanged", len(final), None, 0.0, None, "", metadata)


def _write(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp"
    try:
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)  # never leave a half-written model under the final name
    except OSError as exc:
        raise ConfigError(f"-o {path}: cannot write the model ({exc.strerror or exc})") from None


def _tf_version() -> str:
    return import_tensorflow().__version__
