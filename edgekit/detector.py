"""The Detector: load a TFLite detection model once, detect on images.

``detect()`` runs four stages that are also public, so a pipeline can run them on different
threads: :meth:`Detector.load` (decode), :meth:`Detector.preprocess`, :meth:`Detector.invoke`
and :meth:`Detector.decode`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from . import decoders, postprocess
from .device import usable_cores
from .plan import default_threads
from .errors import ConfigError, EdgekitError, LayoutError, UnsupportedModelError
from .image import ImageSource, LoadedImage, Transform, encode_pixels, fit_to_input, load_image, make_encoder
from .metadata import InputSpec, ModelMetadata, read_labels
from .metadata_readers import read_metadata
from .modelinfo import ModelInfo, describe_info, inspect_interpreter, refusal
from .results import Detection, DetectionResult
from .runtime import RuntimeInfo, create_interpreter, find_runtime, invoke_error, signature_output_names

__all__ = ["DetectorOptions", "Detector"]


@dataclass(frozen=True)
class DetectorOptions:
    """How a Detector loads and filters. ``None`` means "no limit" / "from the model".

    Attributes:
        score_threshold: minimum score of a reported detection (0..1).
        max_results: at most this many detections per image, best first.
        label_allowlist: report only these labels.
        label_denylist: never report these labels.
        num_threads: interpreter threads; default: the planner's policy
            (:func:`edgekit.plan.default_threads` of the cores this process may use).
        layout: output layout name (``ssd``, ``yolov8``, ``yolov5``, ``end2end`` or a registered
            decoder); default: from metadata, else the first decoder whose ``matches()`` fits.
        labels: labels overriding the embedded ones (index = class id).
        iou_threshold: NMS overlap above which the lower-scoring box of a class is dropped.
        input: normalisation/colour/resize overriding the embedded InputSpec.
    """

    score_threshold: float = postprocess.SCORE_THRESHOLD
    max_results: int | None = postprocess.MAX_RESULTS
    label_allowlist: frozenset[str] | None = None
    label_denylist: frozenset[str] | None = None
    num_threads: int | None = None
    layout: str | None = None
    labels: tuple[str, ...] | None = None
    iou_threshold: float = postprocess.IOU_THRESHOLD
    input: InputSpec | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ConfigError(f"score threshold must be between 0 and 1, found {self.score_threshold}")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ConfigError(f"IoU threshold must be in (0, 1], found {self.iou_threshold}")
        if self.max_results is not None and self.max_results < 1:
            raise ConfigError(f"max results must be at least 1 (or None for no limit), found {self.max_results}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ConfigError(f"threads must be at least 1, found {self.num_threads}")
        for name in ("label_allowlist", "label_denylist"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, frozenset):
                object.__setattr__(self, name, frozenset(value))
        if self.labels is not None and not isinstance(self.labels, tuple):
            object.__setattr__(self, "labels", tuple(self.labels))


#: Label files that model downloads ship beside the .tflite: TF1 detection zoo and TF Lite examples
#: (``labelmap.txt``, also Frigate's name), Teachable Machine and most tutorials (``labels.txt``), Coral
#: (``coco_labels.txt``), TF Object Detection API exports (``label_map.pbtxt``).
LABEL_FILES_BESIDE = ("labelmap.txt", "labels.txt", "coco_labels.txt", "label_map.pbtxt")


def _labels_beside(model: str) -> tuple[str, tuple[str, ...]] | None:
    """The first of :data:`LABEL_FILES_BESIDE` in the model's folder that reads as a label file
    (its name and labels), or None."""
    folder = os.path.dirname(os.path.abspath(model))
    for name in LABEL_FILES_BESIDE:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            try:
                labels = read_labels(path)
            except EdgekitError:
                continue  # unreadable or not a label file: as if it were not there
            if labels:
                return name, labels
    return None


def _check_label_filters(options: DetectorOptions, labels: Sequence[str] | None, model: str) -> None:
    """Refuse an allow/deny label the model does not have (a typo would otherwise filter silently)."""
    import difflib
    import re

    known = set(labels) if labels else None
    for option, names in (("--allow", options.label_allowlist), ("--deny", options.label_denylist)):
        for name in sorted(names or ()):
            if known is None:
                if re.fullmatch(r"class_\d+", name):
                    continue  # without names, detections are labelled class_N
                error = ConfigError(f"{option} {name}: {model} has no label names (detections print as class_N); "
                                    "pass --labels FILE, or use class_N names")
                error.option, error.value, error.labels = option.lstrip("-"), name, ()
                raise error
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=3)
                hint = f"did you mean {' or '.join(close)}? " if close else ""
                shown = ", ".join(labels[:12]) + (", …" if len(labels) > 12 else "")
                error = ConfigError(f"{option} {name}: not one of the {len(labels)} labels of {model} ({shown}); "
                                    f"{hint}'edgekit info MODEL' lists them")
                error.option, error.value, error.labels = option.lstrip("-"), name, tuple(labels)  # a settings file
                raise error  # names its key: edgekit.service_settings.label_filter_error


def _plugin_origin(func: Any) -> str:
    import sys

    module = sys.modules.get(getattr(func, "__module__", ""), None)
    return getattr(module, "__file__", None) or getattr(func, "__module__", "?")


class Detector:
    """A loaded detection model.

    Args:
        model: path to a ``.tflite`` file.
        options: a DetectorOptions.
        labels_path: optional label file overriding embedded labels.
    Attributes:
        info: the model's tensors, operators and metadata (:class:`~edgekit.modelinfo.ModelInfo`).
        layout, layout_origin: the output layout and where it came from (override, metadata, a
            decoder's ``matches()``); labels, label_origin likewise.
        notes: assumptions edgekit made that the user should hear once (e.g. an assumed input
            normalisation).
    Raises:
        RuntimeNotFoundError, ModelError, UnsupportedModelError, LayoutError, ConfigError.
    """

    def __init__(self, model: str | os.PathLike, options: DetectorOptions | None = None,
                 labels_path: str | os.PathLike | None = None, runtime: RuntimeInfo | None = None) -> None:
        options = options or DetectorOptions()
        self.label_origin = "none"
        if labels_path is not None:
            options = replace(options, labels=read_labels(labels_path))
            self.label_origin = f"--labels {os.fspath(labels_path)}"
        elif options.labels is not None:
            self.label_origin = "options"
        self.model_path = os.fspath(model)
        self.options = options
        self.notes: list[str] = []
        self.runtime = runtime or find_runtime()
        self.num_threads = options.num_threads or default_threads(usable_cores())[0]
        self._interpreter = create_interpreter(self.model_path, self.num_threads, self.runtime)
        self.metadata: ModelMetadata = read_metadata(self.model_path)
        self.notes.extend(self.metadata.notes)
        self._verify_integrity()
        self.labels = self.options.labels or self.metadata.labels
        if self.options.labels is None and self.labels is not None:
            self.label_origin = self.metadata.origins.get("labels", self.metadata.source)
        beside = _labels_beside(self.model_path) if self.labels is None else None
        if beside is not None:
            self.labels, self.label_origin = beside[1], f"{beside[0]} beside the model"
        self.info: ModelInfo = inspect_interpreter(self._interpreter, self.model_path, self.metadata,
                                                   signature_output_names(self._interpreter),
                                                   len(self.labels) if self.labels else None)
        why = refusal(self.info)
        if why is not None:
            raise UnsupportedModelError(why)
        if beside is not None:
            self._check_labels_beside(beside[0])
        _check_label_filters(self.options, self.labels, self.info.name)
        self._setup_outputs()
        self._setup_input()

    @classmethod
    def create_from_options(cls, model: str | os.PathLike, **kwargs: Any) -> "Detector":
        """``Detector(model, DetectorOptions(**kwargs))``."""
        return cls(model, DetectorOptions(**kwargs))

    # -- set-up ---------------------------------------------------------------------------
    def _check_labels_beside(self, name: str) -> None:
        """Keep a label file found beside the model only if the outputs still decode with it (a
        YOLO head's class count must equal the label count); either way say once what was done."""
        try:
            decoders.choose_layout(self.info, self.options.layout)
        except LayoutError:
            try:
                decoders.choose_layout(replace(self.info, num_labels=None), self.options.layout)
            except LayoutError:
                pass  # it does not decode without the labels either: the layout error will say why
            else:
                self.notes.append(f"{self.info.name}: {name} beside the model has {len(self.labels)} names, which "
                                  "does not fit the model's outputs: not used (names print as class_N; pass "
                                  "--labels FILE)")
                self.labels, self.label_origin = None, "none"
                self.info = replace(self.info, num_labels=None)
                return
        self.notes.append(f"{self.info.name}: no labels in the model; using {name} found beside it ({len(self.labels)} "
                          "names; --labels FILE to use another)")

    def _verify_integrity(self) -> None:
        from .integrity import verify_model

        verify_model(self.model_path, self.metadata)  # ModelError when the recorded SHA-256 does not match

    def _setup_input(self) -> None:
        d = self._interpreter.get_input_details()[0]
        shape = tuple(int(v) for v in d["shape"])
        self._input_index = d["index"]
        self.input_size = (shape[2], shape[1])  # (width, height)
        said = self.metadata.input_size
        if said is not None and tuple(said) != self.input_size:
            self.notes.append(f"{self.info.name}: {self.metadata.origins.get('input_size', 'metadata')} says the model "
                              f"was exported at {said[0]}x{said[1]}, but its input tensor is "
                              f"{self.input_size[0]}x{self.input_size[1]}; using the tensor's size")
        spec = self.metadata.input
        if self.options.input is not None:  # the override; what it leaves unset still comes from the model
            given = self.options.input
            spec = replace(given, **{k: getattr(spec, k) for k in ("mean", "std", "resize") if getattr(given, k) is None})
        if spec.resize is None:
            spec = replace(spec, resize=decoders.resize_convention(self.layout))
        value_range = self.metadata.input_range
        if np.dtype(d["dtype"]) == np.float32 and (spec.mean is None or spec.std is None) and value_range:
            # TFLite Metadata gave only the input's value range: map 0..255 onto it
            std = 255.0 / (value_range[1] - value_range[0])
            spec = replace(spec, mean=(-value_range[0] * std,), std=(std,))
        if np.dtype(d["dtype"]) == np.float32 and (spec.mean is None or spec.std is None):
            self.notes.append(
                f"{self.info.name}: float input and no normalisation in the model's metadata; assuming pixels / 255 "
                "(0..1). If the model expects another range, pass --mean/--std (e.g. --mean 127.5 --std 127.5 for "
                "-1..1; --mean 0 --std 1 for 0..255)")
        self.input_spec = spec
        self._encoder = make_encoder(d["dtype"], tuple(d["quantization"]), self.input_spec.mean,
                                     self.input_spec.std, self.input_spec.color)

    def _setup_outputs(self) -> None:
        self._outputs = [(t.index, t.name, (t.scale, t.zero_point)) for t in self.info.outputs]
        self.layout, self.layout_origin = decoders.choose_layout(self.info, self.options.layout)
        self._decoder = decoders.get_decoder(self.layout)
        self._builtin_decoder = decoders.is_builtin(self.layout)

    # -- the four stages ------------------------------------------------------------------
    def load(self, source: ImageSource) -> LoadedImage:
        """Decode an image (path, PIL image or uint8 array) for this model's input size; a decoder's
        frame (PyAV ``VideoFrame``) is kept as it is, for :meth:`preprocess` to scale from YUV."""
        return load_image(source, self.input_size, self.input_spec.resize)

    def preprocess(self, loaded: LoadedImage) -> tuple[np.ndarray, Transform]:
        """Resize and encode a loaded image: (input tensor, transform back to image pixels). A
        decoder's frame goes to the input size in one swscale call (ImageError if it cannot)."""
        pixels, transform = fit_to_input(loaded, self.input_size, self.input_spec.resize, self.input_spec.pad_value)
        return encode_pixels(pixels, self._encoder), transform

    def invoke(self, tensor: np.ndarray) -> list[decoders.OutputTensor]:
        """Run the interpreter on one input tensor; returns the raw outputs.

        Raises ModelError when the runtime fails on this model (a corrupt file that loads but
        cannot run, a failing operator check).
        """
        try:
            self._interpreter.set_tensor(self._input_index, tensor)
            self._interpreter.invoke()
            return [decoders.OutputTensor(name, self._interpreter.get_tensor(index), float(q[0]), int(q[1]), index)
                    for index, name, q in self._outputs]
        except (RuntimeError, ValueError, SystemError) as exc:
            raise invoke_error(exc, self.model_path, self.runtime) from None

    def decode(self, outputs: Sequence[decoders.OutputTensor], transform: Transform) -> tuple[Detection, ...]:
        """Raw outputs → filtered, NMS-ed detections in image pixels, best first.

        Raises LayoutError when the outputs make no sense for the layout (see
        :mod:`edgekit.decoders`), or when a plugin decoder fails.
        """
        opts = self.options
        ctx = decoders.DecodeContext(self.input_size[0], self.input_size[1], opts.score_threshold,
                                     len(self.labels) if self.labels else None, self.info.name, self.info,
                                     self.layout_origin)
        cand = self._run_decoder(outputs, ctx)
        sel = postprocess.select(cand, labels=self.labels, score_threshold=opts.score_threshold,
                                 iou_threshold=opts.iou_threshold, max_results=opts.max_results,
                                 allow=opts.label_allowlist, deny=opts.label_denylist)
        pixels = transform.to_image(sel.boxes) if len(sel.scores) else np.zeros((0, 4), np.float32)
        return tuple(Detection(label, int(c), float(s), tuple(float(v) for v in box))
                     for label, c, s, box in zip(sel.labels, sel.class_ids, sel.scores, pixels))

    def _run_decoder(self, outputs: Sequence[decoders.OutputTensor], ctx: decoders.DecodeContext) -> decoders.Candidates:
        try:
            cand = self._decoder(outputs, ctx)
        except EdgekitError:
            raise
        except Exception as exc:
            if self._builtin_decoder:  # e.g. a forced --layout on outputs of another shape
                raise LayoutError(
                    f"{self.info.name}: the built-in {self.layout!r} decoder cannot read these outputs "
                    f"({type(exc).__name__}: {exc}); check --layout (or drop it to let edgekit pick)") from None
            origin = _plugin_origin(self._decoder)
            raise LayoutError(
                f"{self.info.name}: the {self.layout!r} decoder (plugin {origin}) failed: "
                f"{type(exc).__name__}: {exc}. This is a bug in the plugin or the model does not fit it, not "
                "in edgekit; check the plugin against the model's outputs ('edgekit info MODEL')") from None
        if not isinstance(cand, decoders.Candidates):
            raise LayoutError(f"{self.info.name}: the {self.layout!r} decoder returned {type(cand).__name__}, "
                              "expected edgekit.decoders.Candidates (a bug in the plugin)")
        return cand

    def detect(self, source: ImageSource) -> DetectionResult:
        """Detect objects in one image. Raises ImageError for an unreadable image."""
        return self.detect_loaded(self.load(source))

    def detect_loaded(self, loaded: LoadedImage) -> DetectionResult:
        """Detect objects in an image already decoded by :meth:`load`."""
        tensor, transform = self.preprocess(loaded)
        detections = self.decode(self.invoke(tensor), transform)
        return DetectionResult(loaded.source, loaded.width, loaded.height, detections)

    def describe(self) -> dict[str, Any]:
        """Inputs, outputs, layout, runtime, metadata and provenance as a JSON-serialisable dict."""
        doc = describe_info(self.info, self.runtime, self.num_threads)
        doc["layout"] = {"name": self.layout, "from": self.layout_origin}
        doc["labels"] = {"count": len(self.labels) if self.labels else 0, "from": self.label_origin,
                         "first": list(self.labels[:8]) if self.labels else []}
        doc["input_encoding"] = {"kind": self._encoder.kind, "mean": self.input_spec.mean, "std": self.input_spec.std,
                                 "color": self.input_spec.color, "resize": self.input_spec.resize}
        doc["verdict"] = f"detects with layout {self.layout} ({self.layout_origin})"
        doc["notes"] = list(self.notes)
        return doc
