"""examples/blazeface_decoder.py: MediaPipe SSD anchors, decoding, and the CLI on real TFLite models.

Expected anchors are worked out by hand from SsdAnchorsCalculator's algorithm: layers with equal
consecutive strides share one grid of ceil(size / stride) cells; per cell and per layer, one anchor
per aspect ratio plus one "interpolated" anchor when interpolated_scale_aspect_ratio > 0; centres at
(col + 0.5) / cols, (row + 0.5) / rows; fixed_anchor_size makes every anchor 1 × 1.
"""

import importlib.util
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from conftest import EXAMPLES, run_cli
from edgekit import LayoutError

PLUGIN = EXAMPLES / "blazeface_decoder.py"


def _load_plugin():
    spec = importlib.util.spec_from_file_location("blazeface_decoder_under_test", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bf = _load_plugin()


def _options(name):
    return next(o for o in bf.ANCHOR_OPTIONS if o.name == name)


# -- anchors ---------------------------------------------------------------------------------

def test_short_range_anchors():
    # strides 8,16,16,16 at 128: a 16x16 grid with 2 anchors per cell (aspect 1 + interpolated),
    # then the three stride-16 layers merged on one 8x8 grid with 3 x 2 = 6 per cell.
    anchors = bf.generate_anchors(_options("face_short_range"))
    assert len(anchors) == 16 * 16 * 2 + 8 * 8 * 6 == 896
    np.testing.assert_allclose(anchors[0], [0.5 / 16, 0.5 / 16, 1, 1])
    np.testing.assert_allclose(anchors[1], [0.5 / 16, 0.5 / 16, 1, 1])      # 2nd anchor, same cell
    np.testing.assert_allclose(anchors[2], [1.5 / 16, 0.5 / 16, 1, 1])      # next column
    np.testing.assert_allclose(anchors[2 * 16], [0.5 / 16, 1.5 / 16, 1, 1])  # next row
    np.testing.assert_allclose(anchors[511], [15.5 / 16, 15.5 / 16, 1, 1])
    np.testing.assert_allclose(anchors[512], [0.5 / 8, 0.5 / 8, 1, 1])      # first of the 8x8 grid
    np.testing.assert_allclose(anchors[517], [0.5 / 8, 0.5 / 8, 1, 1])      # its 6th anchor
    np.testing.assert_allclose(anchors[518], [1.5 / 8, 0.5 / 8, 1, 1])
    np.testing.assert_allclose(anchors[-1], [7.5 / 8, 7.5 / 8, 1, 1])


def test_full_range_anchors():
    # one layer, stride 4 at 192: a 48x48 grid, interpolated anchor off → 1 anchor per cell.
    anchors = bf.generate_anchors(_options("face_full_range"))
    assert len(anchors) == 48 * 48 == 2304
    np.testing.assert_allclose(anchors[0], [0.5 / 48, 0.5 / 48, 1, 1])
    np.testing.assert_allclose(anchors[1], [1.5 / 48, 0.5 / 48, 1, 1])
    np.testing.assert_allclose(anchors[48], [0.5 / 48, 1.5 / 48, 1, 1])
    np.testing.assert_allclose(anchors[-1], [47.5 / 48, 47.5 / 48, 1, 1])


@pytest.mark.parametrize("name,num_boxes", [
    ("face_short_range", 896), ("face_full_range", 2304), ("face_back", 896),
    ("pose_detection", 2254), ("palm_detection", 2016), ("palm_detection_256", 2944),
])
def test_every_option_set_gives_the_num_boxes_its_graph_decodes(name, num_boxes):
    # num_boxes of TensorsToDetectionsCalculator in the same MediaPipe graph as the anchor options
    assert len(bf.generate_anchors(_options(name))) == num_boxes


def test_anchor_sizes_when_not_fixed():
    # two layers (strides 8, 16) at 32x32, scales 0.2 and 0.8, aspect ratios 1 and 2:
    # layer 0: (1, .2), (2, .2), interpolated (1, sqrt(.2 * .8) = .4); layer 1 (last): (1, .8),
    # (2, .8), interpolated (1, sqrt(.8 * 1.0)). h = scale / sqrt(ratio), w = scale * sqrt(ratio).
    opts = bf.SsdAnchorOptions("t", 32, 32, 0.2, 0.8, (8, 16), 2, aspect_ratios=(1.0, 2.0))
    anchors = bf.generate_anchors(opts)
    assert len(anchors) == 4 * 4 * 3 + 2 * 2 * 3
    r2 = math.sqrt(2)
    np.testing.assert_allclose(anchors[:3, 2:], [[0.2, 0.2], [0.2 * r2, 0.2 / r2], [0.4, 0.4]], rtol=1e-6)
    np.testing.assert_allclose(anchors[48:51, 2:], [[0.8, 0.8], [0.8 * r2, 0.8 / r2], [0.8 ** 0.5] * 2], rtol=1e-6)
    np.testing.assert_allclose(anchors[48, :2], [0.25, 0.25])
    # reduce_boxes_in_lowest_layer: layer 0 gets (1, 0.1), (2, .2), (0.5, .2) and nothing interpolated
    reduced = bf.generate_anchors(bf.SsdAnchorOptions("r", 32, 32, 0.2, 0.8, (8, 16), 2, aspect_ratios=(1.0, 2.0),
                                                      reduce_boxes_in_lowest_layer=True))
    np.testing.assert_allclose(reduced[:3, 2:], [[0.1, 0.1], [0.2 * r2, 0.2 / r2], [0.2 / r2, 0.2 * r2]], rtol=1e-6)
    # one stride: the scale is the mean of min and max
    single = bf.generate_anchors(bf.SsdAnchorOptions("s", 16, 16, 0.2, 0.8, (8,), 1,
                                                     interpolated_scale_aspect_ratio=0.0))
    np.testing.assert_allclose(single[:, 2:], 0.5)


# -- decoding --------------------------------------------------------------------------------

def test_decode_anchors_box_and_keypoints():
    anchors = np.array([[0.25, 0.5, 1, 1], [0.75, 0.75, 1, 1]], np.float32)
    reg = np.zeros((2, 8), np.float32)
    reg[1] = [8, -16, 32, 64, 0, 0, 16, 16]  # pixels of a 128x128 input; 2 keypoints
    found = bf.decode_anchors(reg, np.array([-5.0, 3.0]), anchors, 128, 128, 0.5)
    assert found.scores.tolist() == pytest.approx([1 / (1 + math.exp(-3))])
    cx, cy = 0.75 + 8 / 128, 0.75 - 16 / 128
    np.testing.assert_allclose(found.boxes, [[cx - 0.125, cy - 0.25, cx + 0.125, cy + 0.25]], rtol=1e-6)
    np.testing.assert_allclose(found.keypoints, [[[0.75, 0.75], [0.875, 0.875]]])


def test_huge_logits_do_not_overflow():
    anchors = np.zeros((2, 4), np.float32) + 0.5
    with np.errstate(over="raise"):
        found = bf.decode_anchors(np.zeros((2, 16), np.float32), np.array([1e4, -1e4], np.float32), anchors,
                                  128, 128, 0.5)
    assert found.scores.tolist() == [1.0]


def test_unknown_anchor_count_names_what_is_known():
    with pytest.raises(LayoutError, match=r"2000 anchors at input 192x192; known: face_short_range \(128x128, 896"):
        bf.find_options(2000, 192, 192)


def _info(input_shape, *output_shapes):
    return SimpleNamespace(inputs=[SimpleNamespace(shape=input_shape)],
                           outputs=[SimpleNamespace(shape=s, name=f"o{i}", dtype="float32")
                                    for i, s in enumerate(output_shapes)])


def test_matches():
    assert bf.matches(_info((1, 128, 128, 3), (1, 896, 16), (1, 896, 1))) == \
        "MediaPipe SSD anchors face_short_range (128x128, 896 anchors): outputs [1, 896, 16] + [1, 896, 1]"
    assert bf.matches(_info((1, 192, 192, 3), (1, 2304, 1), (1, 2304, 16)))   # either order
    assert bf.matches(_info((1, 224, 224, 3), (1, 2254, 12), (1, 2254, 1)))   # pose: 4 keypoints
    assert not bf.matches(_info((1, 192, 192, 3), (1, 2000, 16), (1, 2000, 1)))
    assert not bf.matches(_info((1, 192, 192, 3), (1, 896, 16), (1, 896, 1)))  # count of another size
    assert not bf.matches(_info((1, 300, 300, 3), (1, 10, 4), (1, 10), (1, 10), (1,)))
    assert not bf.matches(_info((1, 128, 128, 3), (1, 896, 15), (1, 896, 1)))
    assert not bf.matches(SimpleNamespace(outputs=[], inputs=[]))


# -- real TFLite models through the CLI ------------------------------------------------------

def _build_model(path, size, num_anchors, regression, logits):
    """A real TFLite model with the BlazeFace tensor contract whose outputs are constants:
    regressors [1, N, 16] = ``regression``, scores [1, N, 1] = ``logits`` (zero weights + biases)."""
    import tensorflow as tf

    image = tf.keras.Input(shape=(size, size, 3), batch_size=1)
    pooled = tf.keras.layers.GlobalAveragePooling2D()(image)
    reg = tf.keras.layers.Dense(num_anchors * 16, kernel_initializer="zeros",
                                bias_initializer=tf.keras.initializers.Constant(regression.ravel()))(pooled)
    score = tf.keras.layers.Dense(num_anchors, kernel_initializer="zeros",
                                  bias_initializer=tf.keras.initializers.Constant(logits.ravel()))(pooled)
    model = tf.keras.Model(image, [tf.keras.layers.Reshape((num_anchors, 16))(reg),
                                   tf.keras.layers.Reshape((num_anchors, 1))(score)])
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


# The chosen anchor of the full-range grid (48x48, stride 4 px) and the regression it gets.
ROW, COL = 10, 30
DX, DY, W, H = 6.0, -4.0, 40.0, 50.0
# centre = anchor centre + offset: x = 30.5 * 4 + 6 = 128, y = 10.5 * 4 - 4 = 38 (input pixels)
EXPECTED_BOX = [128 - W / 2, 38 - H / 2, 128 + W / 2, 38 + H / 2]


@pytest.fixture(scope="module")
def synthetic_models(tmp_path_factory):
    out = tmp_path_factory.mktemp("blazeface_models")
    regression = np.zeros((2304, 16), np.float32)
    regression[ROW * 48 + COL, :4] = [DX, DY, W, H]
    logits = np.full(2304, -10.0, np.float32)
    logits[ROW * 48 + COL] = 8.0
    full = _build_model(out / "full_range_like.tflite", 192, 2304, regression, logits)
    unknown = _build_model(out / "anchors_2000.tflite", 192, 2000, np.zeros((2000, 16), np.float32),
                           np.zeros(2000, np.float32))
    image = out / "grey_192.png"
    Image.new("RGB", (192, 192), (128, 128, 128)).save(image)  # = input size: boxes map 1:1 to pixels
    return SimpleNamespace(full=full, unknown=unknown, image=image)


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_full_range_contract_decodes_the_chosen_anchor(synthetic_models):
    r = run_cli("-m", "edgekit", "detect", str(synthetic_models.full), str(synthetic_models.image),
                "--plugin", str(PLUGIN), "--layout", "blazeface", "--threshold", "0.5")
    assert r.returncode == 0, r.stderr
    [detection] = json.loads(r.stdout)["detections"]
    assert _iou(detection["box"], EXPECTED_BOX) >= 0.9, (detection["box"], EXPECTED_BOX)
    assert detection["score"] == pytest.approx(1 / (1 + math.exp(-8)), abs=1e-3)


def test_unknown_anchor_count_is_one_clear_line(synthetic_models):
    r = run_cli("-m", "edgekit", "detect", str(synthetic_models.unknown), str(synthetic_models.image),
                "--plugin", str(PLUGIN), "--layout", "blazeface")
    assert r.returncode == 4, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("edgekit: error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr  # notes (e.g. on input range) may precede
    assert "2000 anchors at input 192x192" in errors[0] and "face_full_range (192x192, 2304 anchors)" in errors[0]


def test_layout_auto_finds_the_plugin(synthetic_models):
    r = run_cli("-m", "edgekit", "detect", str(synthetic_models.full), str(synthetic_models.image),
                "--plugin", str(PLUGIN), "--threshold", "0.5")
    assert r.returncode == 0, r.stderr
    [detection] = json.loads(r.stdout)["detections"]
    assert _iou(detection["box"], EXPECTED_BOX) >= 0.9
