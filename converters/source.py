"""Load what the user wants converted: a SavedModel directory, a .keras/.h5 file, a Keras model
object, or an existing .tflite (which only gets metadata). Also runs the source model, so the
converted model can be compared with it."""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from edgekit.errors import ConfigError, ModelError
from edgekit.runtime import quiet_import

__all__ = ["Source", "load_source", "import_tensorflow", "resized_source", "missing_dependency"]

_configured = False

#: What the converter imports for its own options, by top-level module: all in ``edgekit[convert]``.
CONVERT_MODULES = {"tensorflow": "TensorFlow", "keras": "Keras (part of TensorFlow)", "tf_keras": "tf_keras",
                   "ai_edge_quantizer": "ai-edge-quantizer", "pycocotools": "pycocotools", "tqdm": "tqdm"}


def missing_dependency(module: str, what: str) -> ConfigError:
    """The one-line error for a converter dependency that is not installed here."""
    name = CONVERT_MODULES.get(module, module)
    # a device install may still add metadata to a downloaded .tflite: say so where TensorFlow is missing
    spare = " (adding metadata to a .tflite, without --mode, needs none of it)" if module in ("tensorflow", "keras") else ""
    return ConfigError(f"{what} needs {name}, which is not installed in this environment (edgekit-convert runs on a "
                       f"workstation; a device install has only the runtime): pip install 'edgekit[convert]'{spare}")


def import_tensorflow() -> Any:
    """Import TensorFlow without its start-up chatter and, the first time, turn on GPU memory
    growth (before anything can initialise the GPU)."""
    global _configured
    try:
        tf = quiet_import("tensorflow")
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "tensorflow":
            raise
        raise missing_dependency("tensorflow", "converting a SavedModel or Keras model") from None
    if not _configured:
        _configured = True
        enable_memory_growth(tf)
    return tf


def enable_memory_growth(tf: Any) -> int:
    """Let TensorFlow grow GPU memory as needed instead of reserving all of it, so a conversion
    can share a workstation GPU. Returns how many GPUs were set."""
    count = 0
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
            count += 1
        except RuntimeError:
            pass  # the caller initialised the GPU already: their setting stands
    return count


@dataclass
class Source:
    """A model to convert. ``run`` maps a float NHWC batch to ``{output name: array}``."""

    kind: str  # "saved_model", "keras" or "tflite"
    name: str
    input_shape: tuple[int | None, ...]
    make_converter: Callable[[], Any] | None
    run: Callable[[np.ndarray], dict[str, np.ndarray]] | None
    tflite_bytes: bytes | None = None
    keras_model: Any = None  # kept so that a bundle can rebuild it at other input sizes
    signature: Any = None  # a SavedModel's serving function, likewise


def load_source(src: Any) -> Source:
    """Recognise ``src`` (path or Keras model) and prepare it for conversion; raises ModelError."""
    if not isinstance(src, (str, os.PathLike)):
        return _from_keras(src, getattr(src, "name", "keras_model"))
    path = os.fspath(src)
    name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise ModelError(f"{path}: a directory without saved_model.pb; expected a TensorFlow SavedModel directory")
        return _from_saved_model(path, name)
    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such file or directory; expected a SavedModel directory, .keras, .h5 or .tflite file")
    if path.endswith(".tflite"):
        with open(path, "rb") as fh:
            data = fh.read()
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise ModelError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier)")
        return Source("tflite", name, (), None, None, data)
    if path.endswith((".keras", ".h5")):
        return _from_keras(_load_keras_file(path), name)
    raise ModelError(f"{path}: unknown model format; expected a SavedModel directory, .keras, .h5 or .tflite file")


def _load_keras_file(path: str) -> Any:
    """Load a .keras/.h5 file with the Keras that saved it: Keras 3 (``keras``), or for a Keras 2
    file (Teachable Machine, tf.keras before TF 2.16) the Keras 2 package ``tf_keras``."""
    saved_by = _keras_file_version(path)
    tf = import_tensorflow()
    if saved_by is None:
        import keras as loader
    else:
        loader = _import_tf_keras(path, saved_by, tf.__version__)
    try:
        return loader.models.load_model(path, compile=False)
    except Exception as exc:
        raise ModelError(f"{path}: {'Keras' if saved_by is None else 'tf_keras'} could not load it "
                         f"({_one_line(exc)})") from None


def _keras_file_version(path: str) -> str | None:
    """The Keras version that saved ``path`` if it is Keras 2 or older, else None (Keras 3, or
    the file does not say). An .h5 file records ``keras_version`` and ``backend`` as attributes of
    its root group (Keras 3 writes them too, with version 3.x; theano and cntk were Keras 2
    backends only); a .keras archive records ``keras_version`` in ``metadata.json``."""
    version, backend = None, None
    if path.endswith(".h5"):
        try:
            import h5py

            with h5py.File(path, "r") as fh:
                version, backend = fh.attrs.get("keras_version"), fh.attrs.get("backend")
        except (ImportError, OSError):
            return None  # not HDF5 after all: the loader says so
        version, backend = (v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in (version, backend))
    else:
        try:
            with zipfile.ZipFile(path) as zf:
                version = json.loads(zf.read("metadata.json")).get("keras_version")
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None
    if isinstance(version, str) and version.split(".")[0] in ("1", "2"):
        return version
    if version is None and backend in ("theano", "cntk"):
        return f"2 ({backend} backend)"
    return None


def _import_tf_keras(path: str, saved_by: str, tf_version: str) -> Any:
    """``tf_keras``, or a one-line ModelError saying what to install (it must match TensorFlow's
    major.minor version: each tf_keras release is built for one TensorFlow release)."""
    want = ".".join(tf_version.split(".")[:2])
    install = f"pip install 'tf_keras=={want}.*'"
    try:
        tf_keras = quiet_import("tf_keras")
    except ImportError:
        raise ModelError(f"{path}: a Keras 2 file (saved by Keras {saved_by}), which Keras 3 cannot load; install "
                         f"the Keras 2 package for your TensorFlow {tf_version}: {install}") from None
    have = ".".join(str(getattr(tf_keras, "__version__", "?")).split(".")[:2])
    if have != want:
        raise ModelError(f"{path}: a Keras 2 file needs tf_keras matching TensorFlow {tf_version}, found tf_keras "
                         f"{getattr(tf_keras, '__version__', '?')}; {install}")
    return tf_keras


def _one_line(exc: BaseException) -> str:
    """A loader exception in one line. Keras puts the whole layer config first and the cause
    after "Exception encountered:"; show the cause."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    cause = next((line.split(":", 1)[1].strip() for line in reversed(lines)
                  if line.startswith("Exception encountered:")), None)
    text = cause or (lines[0] if lines else "")
    return f"{type(exc).__name__}: {text[:197] + '…' if len(text) > 200 else text}"


def _from_keras(model: Any, name: str) -> Source:
    tf = import_tensorflow()

    if not hasattr(model, "inputs") or len(model.inputs) != 1:
        raise ModelError(f"{name}: expected a Keras model with one image input")
    shape = tuple(model.inputs[0].shape)
    output_names = list(getattr(model, "output_names", None) or [f"output_{i}" for i in range(len(model.outputs))])

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        result = model(batch, training=False)
        if isinstance(result, dict):
            return {k: np.asarray(v) for k, v in result.items()}
        if not isinstance(result, (list, tuple)):
            result = [result]
        return {n: np.asarray(v) for n, v in zip(output_names, result)}

    return Source("keras", name, shape, lambda: tf.lite.TFLiteConverter.from_keras_model(model), run,
                  keras_model=model)


def _from_saved_model(path: str, name: str) -> Source:
    tf = import_tensorflow()

    try:
        loaded = tf.saved_model.load(path)
        signature = loaded.signatures["serving_default"]
    except (KeyError, OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot load the SavedModel's serving_default signature ({exc})") from None
    inputs = signature.structured_input_signature[1]
    if len(inputs) != 1:
        raise ModelError(f"{path}: expected one image input in serving_default, found {sorted(inputs)}")
    input_name, spec = next(iter(inputs.items()))

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        result = signature(**{input_name: tf.constant(batch, dtype=spec.dtype)})
        return {k: v.numpy() for k, v in result.items()}

    return Source("saved_model", name, tuple(spec.shape), lambda: tf.lite.TFLiteConverter.from_saved_model(path), run,
                  signature=(signature, input_name, spec, loaded))  # loaded: keeps the variables alive


def resized_source(source: Source, size: tuple[int, int]) -> Source:
    """``source`` with a fixed input of ``size`` (width, height).

    Keras models are rebuilt from their config with the new input shape (works for fully
    convolutional models); SavedModels need a dynamic height/width. Raises ConfigError otherwise.
    """
    width, height = size
    current = source.input_shape
    if len(current) == 4 and (current[1], current[2]) == (height, width):
        return source
    name = f"{source.name}_{width}x{height}"
    if source.keras_model is not None:
        model = source.keras_model
        config = model.get_config()
        inputs = [layer for layer in config.get("layers", []) if layer.get("class_name") == "InputLayer"]
        if len(inputs) != 1:
            raise ConfigError(f"{source.name}: only functional Keras models with one input can be resized")
        key = "batch_shape" if "batch_shape" in inputs[0]["config"] else "batch_input_shape"
        inputs[0]["config"][key] = [None, height, width, current[3]]
        try:
            rebuilt = model.__class__.from_config(config)
            rebuilt.set_weights(model.get_weights())
        except Exception as exc:
            raise ConfigError(f"{source.name}: cannot rebuild the model at {width}x{height} ({type(exc).__name__}: "
                              f"{str(exc).strip().splitlines()[0][:160]}); it is not fully convolutional — export "
                              "it at each size and pass the exports as sources instead") from None
        return _from_keras(rebuilt, name)
    if source.signature is not None:
        signature, input_name, spec, _ = source.signature
        if spec.shape[1] is not None or spec.shape[2] is not None:
            raise ConfigError(f"{source.name}: the SavedModel's input is fixed at {list(spec.shape)}; it cannot be "
                              f"converted at {width}x{height} — export it with a dynamic height/width")
        tf = import_tensorflow()
        fixed = tf.function(lambda x: signature(**{input_name: x}),
                            input_signature=[tf.TensorSpec([1, height, width, spec.shape[3]], spec.dtype)])
        concrete = fixed.get_concrete_function()

        def run(batch: np.ndarray) -> dict[str, np.ndarray]:
            return {k: v.numpy() for k, v in fixed(tf.constant(batch, dtype=spec.dtype)).items()}

        return Source("saved_model", name, (1, height, width, spec.shape[3]),
                      lambda: tf.lite.TFLiteConverter.from_concrete_functions([concrete], fixed), run)
    raise ConfigError(f"{source.name}: a .tflite model cannot be resized by the converter; convert the original "
                      "model, or pass one .tflite per size")

