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

from . import decoders
from .boxes import nms
from .device import usable_cores
from .errors import ConfigError, ModelError
from .image import ImageSource, LoadedImage, Transform, encode_pixels, fit_to_input, load_image, make_encoder
from .metadata import InputSpec, ModelMetadata, read_labels, read_metadata
from .results import Detection, DetectionResult
from .runtime import RuntimeInfo, create_interpreter, find_runtime, signature_output_names

__all__ = ["DetectorOptions", "Detector"]


@dataclass(frozen=True)
class DetectorOptions:
    """How a Detector loads and filters. ``None`` means "no limit" / "from the model".

    Attributes:
        score_threshold: minimum score of a reported detection (0..1).
        max_results: at most this many detections per image, best first.
        label_allowlist: report only these labels.
        label_denylist: never report these labels.
        num_threads: interpreter threads; default: the cores this process may use.
        layout: output layout name (``ssd``, ``yolov8``, ``yolov5`` or a registered decoder);
            default: from metadata, else from output shapes.
        labels: labels overriding the embedded ones (index = class id).
        iou_threshold: NMS overlap above which the lower-scoring box of a class is dropped.
        input: normalisation/colour/resize overriding the embedded InputSpec.
    """

    score_threshold: float = 0.25
    max_results: int | None = 100
    label_allowlist: frozenset[str] | None = None
    label_denylist: frozenset[str] | None = None
    num_threads: int | None = None
    layout: str | None = None
    labels: tuple[str, ...] | None = None
    iou_threshold: float = 0.45
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


class Detector:
    """A loaded detection model.

    Args:
        model: path to a ``.tflite`` file.
        options: a DetectorOptions.
        labels_path: optional label file overriding embedded labels.
    Raises:
        RuntimeNotFoundError, ModelError, UnsupportedModelError, LayoutError, ConfigError.
    """

    def __init__(self, model: str | os.PathLike, options: DetectorOptions | None = None,
                 labels_path: str | os.PathLike | None = None, runtime: RuntimeInfo | None = None) -> None:
        options = options or DetectorOptions()
        if labels_path is not None:
            options = replace(options, labels=read_labels(labels_path))
        self.model_path = os.fspath(model)
        self.options = options
        self.runtime = runtime or find_runtime()
        self.num_threads = options.num_threads or usable_cores()
        self._interpreter = create_interpreter(self.model_path, self.num_threads, self.runtime)
        self.metadata: ModelMetadata = read_metadata(self.model_path)
        self._setup_outputs()
        self._setup_input()

    @classmethod
    def create_from_options(cls, model: str | os.PathLike, **kwargs: Any) -> "Detector":
        """``Detector(model, DetectorOptions(**kwargs))``."""
        return cls(model, DetectorOptions(**kwargs))

    # -- set-up ---------------------------------------------------------------------------
    def _setup_input(self) -> None:
        details = self._interpreter.get_input_details()
        if len(details) != 1:
            raise ModelError(f"{self.model_path}: expected one image input, found {len(details)} inputs")
        d = details[0]
        shape = tuple(int(v) for v in d["shape"])
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
            raise ModelError(f"{self.model_path}: expected an input of shape [1, H, W, 3] (NHWC RGB), found {list(shape)}")
        self._input_index = d["index"]
        self.input_size = (shape[2], shape[1])  # (width, height)
        spec = self.options.input or self.metadata.input
        if spec.resize is None:
            spec = replace(spec, resize="letterbox" if self.layout in ("yolov8", "yolov5") else "stretch")
        self.input_spec = spec
        self._encoder = make_encoder(d["dtype"], tuple(d["quantization"]), self.input_spec.mean,
                                     self.input_spec.std, self.input_spec.color)

    def _setup_outputs(self) -> None:
        details = self._interpreter.get_output_details()
        names = signature_output_names(self._interpreter)
        self._outputs = [(d["index"], names.get(d["index"], d["name"]), tuple(d["quantization"])) for d in details]
        self.labels = self.options.labels or self.metadata.labels
        num_labels = len(self.labels) if self.labels else None
        layout = self.options.layout or self.metadata.layout
        if layout is None or layout == "auto":
            layout = decoders.detect_layout([tuple(int(v) for v in d["shape"]) for d in details], num_labels)
        self.layout = layout
        self._decoder = decoders.get_decoder(layout)

    # -- the four stages ------------------------------------------------------------------
    def load(self, source: ImageSource) -> LoadedImage:
        """Decode an image (path, PIL image or uint8 array) for this model's input size."""
        return load_image(source, self.input_size, self.input_spec.resize)

    def preprocess(self, loaded: LoadedImage) -> tuple[np.ndarray, Transform]:
        """Resize and encode a loaded image: (input tensor, transform back to image pixels)."""
        pixels, transform = fit_to_input(loaded, self.input_size, self.input_spec.resize, self.input_spec.pad_value)
        return encode_pixels(pixels, self._encoder), transform

    def invoke(self, tensor: np.ndarray) -> list[decoders.OutputTensor]:
        """Run the interpreter on one input tensor; returns the raw outputs."""
        self._interpreter.set_tensor(self._input_index, tensor)
        self._interpreter.invoke()
        return [decoders.OutputTensor(name, self._interpreter.get_tensor(index), float(q[0]), int(q[1]))
                for index, name, q in self._outputs]

    def decode(self, outputs: Sequence[decoders.OutputTensor], transform: Transform) -> tuple[Detection, ...]:
        """Raw outputs → filtered, NMS-ed detections in image pixels, best first."""
        opts = self.options
        ctx = decoders.DecodeContext(self.input_size[0], self.input_size[1], opts.score_threshold,
                                     len(self.labels) if self.labels else None)
        cand = self._decoder(outputs, ctx)
        labels = [self._label(int(c)) for c in cand.class_ids]
        mask = np.asarray([self._allowed(lbl) for lbl in labels], dtype=bool).reshape(-1)
        mask &= np.asarray(cand.scores >= opts.score_threshold).reshape(-1)
        idx = np.nonzero(mask)[0]
        boxes, scores, classes = cand.boxes[idx], cand.scores[idx], cand.class_ids[idx]
        if cand.needs_nms:
            order = nms(boxes, scores, opts.iou_threshold, classes, opts.max_results)
        else:
            order = np.argsort(-scores, kind="stable")[: opts.max_results]
        pixels = transform.to_image(boxes[order]) if len(order) else np.zeros((0, 4), np.float32)
        return tuple(
            Detection(labels[idx[i]], int(classes[i]), float(scores[i]), tuple(float(v) for v in box))
            for i, box in zip(order, pixels)
        )

    def detect(self, source: ImageSource) -> DetectionResult:
        """Detect objects in one image. Raises ImageError for an unreadable image."""
        return self.detect_loaded(self.load(source))

    def detect_loaded(self, loaded: LoadedImage) -> DetectionResult:
        """Detect objects in an image already decoded by :meth:`load`."""
        tensor, transform = self.preprocess(loaded)
        detections = self.decode(self.invoke(tensor), transform)
        return DetectionResult(loaded.source, loaded.width, loaded.height, detections)

    # -- helpers --------------------------------------------------------------------------
    def _label(self, class_id: int) -> str:
        if self.labels is not None and 0 <= class_id < len(self.labels):
            return self.labels[class_id]
        return f"class_{class_id}"

    def _allowed(self, label: str) -> bool:
        opts = self.options
        if opts.label_allowlist is not None and label not in opts.label_allowlist:
            return False
        return not (opts.label_denylist is not None and label in opts.label_denylist)

    def describe(self) -> dict[str, Any]:
        """Inputs, outputs, layout, runtime and metadata as a JSON-serialisable dict."""
        def tensor(d: dict[str, Any], name: str | None = None) -> dict[str, Any]:
            scale, zp = d["quantization"]
            return {"name": name or d["name"], "shape": [int(v) for v in d["shape"]], "dtype": np.dtype(d["dtype"]).name,
                    "quantization": {"scale": float(scale), "zero_point": int(zp)} if scale else None}
        names = signature_output_names(self._interpreter)
        return {
            "model": self.model_path,
            "size_bytes": os.path.getsize(self.model_path),
            "runtime": str(self.runtime),
            "threads": self.num_threads,
            "layout": self.layout,
            "input_encoding": self._encoder.kind,
            "inputs": [tensor(d) for d in self._interpreter.get_input_details()],
            "outputs": [tensor(d, names.get(d["index"])) for d in self._interpreter.get_output_details()],
            "metadata": {"source": self.metadata.source, **self.metadata.to_json_dict()},
            "labels": len(self.labels) if self.labels else 0,
        }
