"""Runtime discovery: order, the tflite-runtime + NumPy 2 trap, and clear failure messages."""

import types

import pytest

from edgekit import RuntimeNotFoundError
from edgekit.runtime import create_interpreter, find_runtime


class FakeInterpreter:
    pass


def _importer(available):
    def import_module(name):
        if name in available:
            return available[name]
        raise ImportError(f"No module named {name!r}")
    return import_module


LITERT = types.SimpleNamespace(Interpreter=FakeInterpreter)
TFLRT = types.SimpleNamespace(Interpreter=FakeInterpreter)
TF = types.SimpleNamespace(lite=types.SimpleNamespace(Interpreter=FakeInterpreter))


def test_prefers_ai_edge_litert():
    info = find_runtime(_importer({"ai_edge_litert.interpreter": LITERT, "tflite_runtime.interpreter": TFLRT}),
                        numpy_major=lambda: 2, dist_version=lambda d: "2.3.0")
    assert info.distribution == "ai-edge-litert" and str(info) == "ai-edge-litert 2.3.0"


def test_tflite_runtime_with_numpy1_is_used():
    info = find_runtime(_importer({"tflite_runtime.interpreter": TFLRT}), numpy_major=lambda: 1,
                        dist_version=lambda d: "2.14.0")
    assert info.distribution == "tflite-runtime"


def test_tflite_runtime_with_numpy2_is_refused_with_the_fix():
    with pytest.raises(RuntimeNotFoundError) as err:
        find_runtime(_importer({"tflite_runtime.interpreter": TFLRT}), numpy_major=lambda: 2,
                     dist_version=lambda d: "2.14.0")
    msg = str(err.value)
    assert "NumPy 1.x" in msg and 'numpy<2' in msg and "ai-edge-litert" in msg


def test_falls_back_to_tensorflow_lite():
    info = find_runtime(_importer({"tensorflow": TF}), numpy_major=lambda: 2, dist_version=lambda d: "2.21.0")
    assert info.distribution == "tensorflow" and info.interpreter_class is FakeInterpreter


def test_nothing_installed_says_what_to_install():
    with pytest.raises(RuntimeNotFoundError) as err:
        find_runtime(_importer({}), numpy_major=lambda: 2, dist_version=lambda d: "x")
    msg = str(err.value)
    assert "pip install ai-edge-litert" in msg and "tflite-runtime" in msg and "tried" in msg


def test_broken_wheel_at_import_is_reported_not_raised():
    def import_module(name):
        if name == "ai_edge_litert.interpreter":
            raise OSError("libfoo.so: cannot open shared object file")
        return _importer({"tensorflow": TF})(name)
    info = find_runtime(import_module, numpy_major=lambda: 2, dist_version=lambda d: "2.21.0")
    assert info.distribution == "tensorflow"


def test_prefer_names_unknown_runtime():
    with pytest.raises(RuntimeNotFoundError, match="not a known runtime"):
        find_runtime(_importer({}), prefer="onnxruntime")


def test_real_runtime_here_is_litert_and_creates_threads(ssd):
    info = find_runtime()
    assert info.distribution == "ai-edge-litert"
    interpreter = create_interpreter(ssd, num_threads=2, runtime=info)
    assert interpreter.get_input_details()[0]["shape"].tolist() == [1, 300, 300, 3]
