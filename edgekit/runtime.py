"""Find a TFLite runtime and create interpreters with it.

Order: ``ai_edge_litert`` (LiteRT, the maintained one), ``tflite_runtime`` (frozen at 2.14: the
only choice on 32-bit ARM, NumPy < 2 only), then ``tensorflow.lite`` (a workstation with TF).
Nothing here is imported by ``import edgekit``; the runtime loads on first use.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass
from typing import Any, Callable

from .errors import ConfigError, ModelError, RuntimeNotFoundError, UnsupportedModelError

__all__ = ["RuntimeInfo", "find_runtime", "create_interpreter", "invoke_error", "quantization_mode", "signature_output_names", "CANDIDATES"]

# (import name, distribution to install, attribute path of the Interpreter class)
CANDIDATES: tuple[tuple[str, str, str], ...] = (
    ("ai_edge_litert.interpreter", "ai-edge-litert", "Interpreter"),
    ("tflite_runtime.interpreter", "tflite-runtime", "Interpreter"),
    ("tensorflow", "tensorflow", "lite.Interpreter"),
)

_INSTALL_HINT = (
    "install one: 'pip install ai-edge-litert' (x86_64, 64-bit ARM: Pi OS 64-bit), or on a 32-bit "
    "Pi OS with Python <= 3.11: 'pip install tflite-runtime==2.14.* \"numpy<2\"'"
)


@dataclass(frozen=True)
class RuntimeInfo:
    """Which runtime edgekit uses: its module, the distribution name and version."""

    module: str
    distribution: str
    version: str
    interpreter_class: Any

    def __str__(self) -> str:
        return f"{self.distribution} {self.version}"


def _numpy_major() -> int:
    import numpy

    return int(numpy.__version__.split(".")[0])


def _dist_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def _resolve(module: Any, attr_path: str) -> Any:
    obj = module
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


_cached: RuntimeInfo | None = None

# TensorFlow's C++ start-up diagnostics (absl pre-init notice, CUDA probing on CPU-only machines,
# CPU-feature hints): not actionable here. EDGEKIT_DEBUG=1 shows them.
_TF_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} \d\d:\d\d:\d\d|To enable the following"
                       r"|This TensorFlow binary is optimized)")


def quiet_import(name: str) -> Any:
    """Import ``name``, dropping TensorFlow's start-up chatter from stderr (other lines pass)."""
    if name.split(".")[0] in sys.modules or os.environ.get("EDGEKIT_DEBUG"):
        return importlib.import_module(name)
    lines: list[str] = []
    try:
        with native_stderr(lines):
            return importlib.import_module(name)
    finally:
        for line in lines:
            if line.strip() and not _TF_NOISE.match(line):
                print(line, file=sys.stderr)


def find_runtime(
    import_module: Callable[[str], Any] = quiet_import,
    numpy_major: Callable[[], int] = _numpy_major,
    dist_version: Callable[[str], str] = _dist_version,
    prefer: str | None = None,
) -> RuntimeInfo:
    """Return the first usable runtime, or raise RuntimeNotFoundError saying what to install.

    ``prefer`` (or the environment variable ``EDGEKIT_RUNTIME``) names a distribution to use
    instead of the first that works, e.g. ``tflite-runtime``.
    """
    global _cached
    use_cache = import_module is quiet_import and prefer is None
    if use_cache and _cached is not None:
        return _cached
    prefer = prefer or os.environ.get("EDGEKIT_RUNTIME") or None
    candidates = [c for c in CANDIDATES if prefer is None or c[1] == prefer]
    if not candidates:
        names = ", ".join(c[1] for c in CANDIDATES)
        raise RuntimeNotFoundError(f"EDGEKIT_RUNTIME={prefer!r} is not a known runtime; use one of {names}")
    problems: list[str] = []
    for module_name, dist, attr in candidates:
        try:
            module = import_module(module_name)
            cls = _resolve(module, attr)
        except ImportError as exc:
            problems.append(f"{dist}: not importable ({exc})")
            continue
        except Exception as exc:  # a broken wheel raises anything at import
            problems.append(f"{dist}: import failed ({type(exc).__name__}: {exc})")
            continue
        version = dist_version(dist)
        if dist == "tflite-runtime" and numpy_major() >= 2 and version.startswith(("2.", "unknown")):
            # It imports, then fails creating the Interpreter ("_ARRAY_API not found"):
            # it was built against NumPy 1.x and has no NumPy 2 release.
            problems.append(
                f"tflite-runtime {version}: built for NumPy 1.x but NumPy {_numpy_version()} is "
                "installed; run 'pip install \"numpy<2\"' in this environment, or use ai-edge-litert "
                "on 64-bit systems"
            )
            continue
        info = RuntimeInfo(module_name, dist, version, cls)
        if use_cache:
            _cached = info
        return info
    raise RuntimeNotFoundError(
        "no usable TFLite runtime found; tried: " + "; ".join(problems) + ". To fix, " + _INSTALL_HINT
    )


def _numpy_version() -> str:
    import numpy

    return numpy.__version__


# Substrings of runtime errors that mean "the model needs an op this runtime lacks".
_UNSUPPORTED_MARKERS = (
    "unresolved custom op",
    "Select TensorFlow op",
    "Didn't find op for builtin opcode",
    "Registration failed",
    "is not supported",
    "Op builtin_code out of range",
    "Flex delegate",
)


def create_interpreter(model: str | os.PathLike | bytes, num_threads: int, runtime: RuntimeInfo | None = None):
    """Create an interpreter for ``model`` (path or bytes) with ``num_threads`` and allocate it.

    Raises ModelError for a missing/invalid file, UnsupportedModelError for a missing operator.
    """
    runtime = runtime or find_runtime()
    source = "model bytes"
    kwargs: dict[str, Any] = {"num_threads": int(num_threads)}
    if isinstance(model, (bytes, bytearray, memoryview)):
        kwargs["model_content"] = bytes(model)
    else:
        path = os.fspath(model)
        source = path
        _check_model_file(path)
        kwargs["model_path"] = path
    native: list[str] = []
    try:
        with native_stderr(native), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # tf.lite.Interpreter's deprecation notice
            interpreter = runtime.interpreter_class(**kwargs)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError, SystemError) as exc:
        raise _classify(exc, "\n".join(native), source, runtime) from None
    noise = ("INFO: Created TensorFlow Lite", "INFO: Initialized TensorFlow Lite")
    for line in native:
        if line.strip() and not line.startswith(noise):
            print(line, file=sys.stderr)
    return interpreter


@contextlib.contextmanager
def native_stderr(lines: list[str]):
    """Capture what native code writes to file descriptor 2 (the runtime logs load errors there)."""
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (e.g. a daemon): nothing to capture
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode("utf-8", errors="replace").splitlines())


def _check_model_file(path: str) -> None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except FileNotFoundError:  # a wrong path is a bad argument (exit 2), as the CLI's own check says
        raise ConfigError(f"{path}: no such model file; expected a .tflite file path") from None
    except IsADirectoryError:
        raise ConfigError(
            f"{path}: is a directory, expected a .tflite file (convert a SavedModel with edgekit-convert)"
        ) from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model file ({exc.strerror})") from None
    if len(head) == 0:
        raise ModelError(f"{path}: model file is empty (0 bytes); re-download or re-convert it")
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise ModelError(
            f"{path}: not a TFLite model (expected the 'TFL3' flatbuffer identifier at byte 4, "
            f"found {head[4:8]!r}); pass a .tflite file, or convert the model with edgekit-convert"
        )


def _classify(exc: Exception, native: str, source: str, runtime: RuntimeInfo) -> Exception:
    text = f"{native}\n{exc}"
    details = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("INFO:")]
    first = details[0] if details else type(exc).__name__
    if any(m in text for m in _UNSUPPORTED_MARKERS):
        op = re.search(r"\((Flex\w+)\)|custom op: (\w+)|builtin opcode '(\w+)'", text)
        what = f"operator {next(g for g in op.groups() if g)}" if op else "an operator"
        return UnsupportedModelError(
            f"{source}: the model needs {what}, which {runtime} does not provide; re-convert it with "
            "built-in TFLite ops only (no SELECT_TF_OPS / custom ops), or use a runtime built with that op"
        )
    if "_ARRAY_API" in text or "NumPy" in text:
        return ModelError(f"{source}: {runtime} failed with this NumPy ({first}); run 'edgekit doctor'")
    return ModelError(
        f"{source}: {runtime} could not load the model ({first}); the file may be truncated or "
        "corrupt — re-download or re-convert it"
    )


def invoke_error(exc: Exception, source: str, runtime: RuntimeInfo) -> Exception:
    """The ModelError for a runtime failure while running a loaded model (``invoke()``)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = "; ".join(lines[:2]) if lines else type(exc).__name__
    if any(m in str(exc) for m in _UNSUPPORTED_MARKERS):
        return _classify(exc, "", source, runtime)
    return ModelError(
        f"{source}: {runtime} failed running the model ({first}); the file is probably corrupt or was "
        "written for another runtime — re-download or re-convert it ('edgekit doctor' checks the runtime)"
    )


def quantization_mode(interpreter: Any) -> str:
    """How a model was quantized, from its tensor types: ``int8`` (integer I/O), ``dynamic``
    (float I/O, int8 weights), ``float16`` (float16 weights) or ``float32``."""
    import numpy as np

    if np.dtype(interpreter.get_input_details()[0]["dtype"]).name in ("int8", "uint8"):
        return "int8"
    types = {np.dtype(d["dtype"]).name for d in interpreter.get_tensor_details()}
    return "dynamic" if "int8" in types else ("float16" if "float16" in types else "float32")


def signature_output_names(interpreter: Any) -> dict[int, str]:
    """Tensor index → signature output name, when the model has exactly one signature (names
    survive conversion; tensor names like ``StatefulPartitionedCall:1`` and the order do not)."""
    try:
        full = interpreter._get_full_signature_list()  # present in LiteRT, tflite-runtime and TF
    except Exception:
        return {}
    if not full or len(full) != 1:
        return {}
    outputs = next(iter(full.values())).get("outputs", {})
    return {int(index): name for name, index in outputs.items()}
