"""A model that needs an operator the runtime lacks gets one clear error, not a crash."""

import pytest

from conftest import run_cli
from edgekit import UnsupportedModelError
from edgekit.runtime import create_interpreter


def _convert(tmp_path, name, flex):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32)])
    def f(x):
        m = tf.reshape(x[0, :3, :3, 0], [3, 3]) + tf.eye(3)
        return tf.reshape(tf.linalg.inv(m), [1, 9])  # MatrixInverse: not a TFLite builtin

    converter = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    if flex:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    else:
        converter.allow_custom_ops = True
    path = tmp_path / name
    path.write_bytes(converter.convert())
    return path


@pytest.mark.parametrize("flex,op", [(True, "FlexMatrixInverse"), (False, "MatrixInverse")])
def test_unsupported_operator(tmp_path, images, flex, op):
    model = _convert(tmp_path, "needs_op.tflite", flex)
    with pytest.raises(UnsupportedModelError, match=f"operator {op},"):
        create_interpreter(model, 1)
    r = run_cli("-m", "edgekit", "detect", str(model), str(images / "table.jpg"))
    assert r.returncode == 4 and f"operator {op}" in r.stderr and "built-in TFLite ops" in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
