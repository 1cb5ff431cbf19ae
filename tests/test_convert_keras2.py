"""Keras 2 files (Teachable Machine, tf.keras before TF 2.16): converted through tf_keras.

The model is built here with tf_keras the way Teachable Machine's image project exports it — a
Sequential of a nested convolutional feature extractor (with DepthwiseConv2D, whose Keras 2 config
Keras 3 rejects) and a nested dense head, 224x224 input scaled to [-1, 1] — trained for a few
steps on the real photos so its outputs depend on the image, then saved as .h5.
"""

import numpy as np
import pytest

from conftest import run_cli

import tensorflow  # noqa: E402  -- fails loudly if the [convert] extra is missing
import tf_keras  # noqa: E402  -- likewise (part of [convert]; a missing tf_keras fails, never skips)

SIZE = (224, 224)
MEAN = STD = 127.5


def _label(name: str) -> int:
    return 0 if "cat" in name else (1 if any(w in name for w in ("bird", "parrot", "owl", "dragonfly")) else 2)


@pytest.fixture(scope="module")
def keras2_h5(images, tmp_path_factory):
    from converters.calibration import calibration_paths, load_calibration
    from edgekit.metadata import InputSpec

    layers = tf_keras.layers
    tf_keras.utils.set_random_seed(0)
    features = tf_keras.Sequential([
        layers.Conv2D(8, 3, strides=4, padding="same", use_bias=False, input_shape=(*SIZE, 3)),
        layers.BatchNormalization(), layers.ReLU(6.0),
        layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False),
        layers.BatchNormalization(), layers.ReLU(6.0),
        layers.Conv2D(16, 1), layers.GlobalAveragePooling2D(),
    ], name="sequential_1")
    head = tf_keras.Sequential([layers.Dense(16, activation="relu"), layers.Dense(3, activation="softmax")],
                               name="sequential_3")
    model = tf_keras.Sequential([features, head])
    paths = calibration_paths(str(images), 100)
    x = load_calibration(paths, SIZE, InputSpec((MEAN,), (STD,)))
    y = np.array([_label(p) for p in paths])
    model.compile(optimizer=tf_keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=20, batch_size=8, verbose=0)
    path = tmp_path_factory.mktemp("keras2") / "keras_model.h5"
    model.save(path)
    return path


def _attrs(path):
    import h5py

    with h5py.File(path, "r") as fh:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in fh.attrs.items()}


def _inputs(held_out):
    from converters.calibration import load_calibration
    from edgekit.metadata import InputSpec

    return load_calibration(list(held_out), SIZE, InputSpec((MEAN,), (STD,)))


def _run_tflite(path, batch):
    from edgekit.runtime import create_interpreter

    it = create_interpreter(str(path), 1)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    results = []
    for x in batch:
        x = x[np.newaxis]
        if inp["dtype"] != np.float32:
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])
        it.set_tensor(inp["index"], x)
        it.invoke()
        y = it.get_tensor(out["index"])
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        results.append(y[0])
    return np.stack(results)


def test_fixture_is_a_keras2_file_keras3_rejects(keras2_h5):
    import keras

    attrs = _attrs(keras2_h5)
    assert attrs["keras_version"].startswith("2.") and attrs["backend"] == "tensorflow"
    with pytest.raises(Exception, match="groups"):  # what users hit before: Keras 3 cannot read it
        keras.models.load_model(keras2_h5, compile=False)


@pytest.mark.parametrize("mode,tolerance", [("float32", 1e-5), ("int8", 0.08)])
def test_keras2_h5_converts_and_agrees(keras2_h5, images, tmp_path, mode, tolerance):
    from converters.calibration import split_calibration
    from edgekit.metadata_readers import read_metadata

    out = tmp_path / f"tm_{mode}.tflite"
    r = run_cli("-m", "converters.cli", str(keras2_h5), "-o", str(out), "--mode", mode, "--calibration", str(images),
                "--mean", str(MEAN), "--std", str(STD))
    assert r.returncode == 0, r.stderr
    assert "held-out images" in r.stdout and "max|err|" in r.stdout
    assert read_metadata(out).quantization == {"mode": mode, "io": "uint8" if mode == "int8" else "float32"}

    held_out = split_calibration(str(images), 200).held_out
    batch = _inputs(held_out)
    expected = tf_keras.models.load_model(keras2_h5, compile=False).predict(batch, verbose=0)
    assert np.ptp(expected, axis=0).max() > 0.2  # trained: outputs depend on the image, not a constant
    found = _run_tflite(out, batch)
    assert found.shape == expected.shape
    assert np.abs(found - expected).max() <= tolerance, (found, expected)
    assert (found.argmax(axis=1) == expected.argmax(axis=1)).all()


_NO_TF_KERAS = """
import sys
sys.modules["tf_keras"] = None  # as if tf_keras were not installed: importing it raises ImportError
from converters.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_keras2_without_tf_keras_says_what_to_install(keras2_h5, tmp_path):
    r = run_cli("-c", _NO_TF_KERAS, str(keras2_h5), "-o", str(tmp_path / "x.tflite"))
    assert r.returncode == 4, r.stderr
    message = r.stderr.strip()
    assert "\n" not in message, message
    version = ".".join(tensorflow.__version__.split(".")[:2])
    assert "Keras 2 file" in message and f"pip install 'tf_keras=={version}.*'" in message
    assert not (tmp_path / "x.tflite").exists()


def test_keras_version_detection(keras2_h5, tmp_path):
    """Keras 3 files (.h5 and .keras) go to Keras 3; a tf_keras .keras archive goes to tf_keras."""
    import keras

    from converters.source import _keras_file_version, load_source

    assert _keras_file_version(str(keras2_h5)).startswith("2.")
    k3 = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3)])
    k3.save(tmp_path / "k3.h5")
    k3.save(tmp_path / "k3.keras")
    assert _attrs(tmp_path / "k3.h5")["keras_version"].startswith("3.")
    assert _keras_file_version(str(tmp_path / "k3.h5")) is None
    assert _keras_file_version(str(tmp_path / "k3.keras")) is None
    k2 = tf_keras.Sequential([tf_keras.layers.DepthwiseConv2D(3, input_shape=(8, 8, 3))])
    k2.save(tmp_path / "k2.keras")
    assert _keras_file_version(str(tmp_path / "k2.keras")).startswith("2.")
    source = load_source(tmp_path / "k2.keras")
    assert type(source.keras_model).__module__.startswith("tf_keras")
    assert load_source(tmp_path / "k3.h5").input_shape == (None, 8, 8, 3)


def test_convert_help_has_no_markup():
    r = run_cli("-m", "converters.cli", "--help")
    assert r.returncode == 0 and "usage: edgekit-convert" in r.stdout
    assert "``" not in r.stdout
    assert "Keras 2" in r.stdout and "held out" in r.stdout
