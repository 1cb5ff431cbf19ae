"""Decoders and NMS on synthetic tensors (logic), including quantized outputs."""

import numpy as np
import pytest

from edgekit import ConfigError, LayoutError
from edgekit.boxes import iou, nms
from edgekit.decoders import (Candidates, DecodeContext, OutputTensor, decode_ssd, decode_yolov5, decode_yolov8,
                              detect_layout, get_decoder, register_decoder)

CTX = DecodeContext(640, 640, 0.25)


def test_nms_is_class_aware():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [0, 3]
    assert nms(boxes, scores, 0.5, np.array([0, 0, 1, 0])).tolist() == [0, 2, 3]
    assert nms(boxes, scores, 0.5, max_output=1).tolist() == [0]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).size == 0


def test_iou():
    assert iou(np.array([0, 0, 10, 10.]), np.array([[0, 0, 10, 10.], [5, 0, 15, 10.], [20, 20, 30, 30.]])).round(3).tolist() == [1.0, 0.333, 0.0]


def _yolov8_raw(num_classes=3, n=100):
    data = np.zeros((1, 4 + num_classes, n), np.float32)
    data[0, :4, :] = np.array([0.5, 0.5, 0.1, 0.1])[:, None]
    data[0, :4, 7] = 0.25, 0.5, 0.2, 0.4
    data[0, 4 + 2, 7] = 0.9
    data[0, :4, 8] = 0.26, 0.5, 0.2, 0.4  # duplicate of 7, lower score
    data[0, 4 + 2, 8] = 0.6
    data[0, 4 + 1, 20] = 0.2  # below threshold
    return data


def test_yolov8_float_and_transposed():
    data = _yolov8_raw()
    for tensor in (data, data.transpose(0, 2, 1)):
        cand = decode_yolov8([OutputTensor("out", tensor)], DecodeContext(640, 640, 0.25, 3))
        assert sorted(cand.scores.tolist()) == pytest.approx([0.6, 0.9])
        best = int(np.argmax(cand.scores))
        assert cand.class_ids[best] == 2
        assert np.allclose(cand.boxes[best], [0.15, 0.3, 0.35, 0.7])
        assert cand.needs_nms


def test_yolov8_int8_matches_float():
    data = _yolov8_raw()
    scale, zp = 1 / 255, -128
    q = np.clip(np.rint(data / scale + zp), -128, 127).astype(np.int8)
    a = decode_yolov8([OutputTensor("out", data)], CTX)
    b = decode_yolov8([OutputTensor("out", q, scale, zp)], CTX)
    assert np.allclose(np.sort(a.scores), np.sort(b.scores), atol=scale)
    assert np.allclose(a.boxes[np.argsort(a.scores)], b.boxes[np.argsort(b.scores)], atol=2 * scale)


def test_yolov8_pixel_coordinates_are_normalised():
    data = _yolov8_raw()
    data[0, :4] *= 640
    cand = decode_yolov8([OutputTensor("out", data)], CTX)
    assert np.allclose(cand.boxes[np.argmax(cand.scores)], [0.15, 0.3, 0.35, 0.7], atol=1e-5)


def test_yolov5_objectness_times_class():
    data = np.zeros((1, 50, 5 + 2), np.float32)
    data[0, :, :4] = 0.5, 0.5, 0.1, 0.1
    data[0, 3] = [0.5, 0.5, 0.2, 0.2, 0.8, 0.1, 0.9]  # score 0.72, class 1
    data[0, 4] = [0.5, 0.5, 0.2, 0.2, 0.3, 0.9, 0.1]  # 0.27
    data[0, 5] = [0.5, 0.5, 0.2, 0.2, 0.2, 1.0, 1.0]  # objectness below threshold
    cand = decode_yolov5([OutputTensor("out", data)], CTX)
    assert sorted(cand.scores.tolist()) == pytest.approx([0.27, 0.72])
    assert cand.class_ids[np.argmax(cand.scores)] == 1 and cand.class_ids[np.argmin(cand.scores)] == 0


def _ssd_outputs(names):
    boxes = np.array([[[0.1, 0.2, 0.5, 0.6], [0, 0, 1, 1], [0, 0, 0, 0]]], np.float32)
    classes = np.array([[4, 0, 0]], np.float32)
    scores = np.array([[0.9, 0.3, 0.1]], np.float32)
    count = np.array([2], np.float32)
    return [OutputTensor(n, d) for n, d in zip(names, (boxes, classes, scores, count))]


@pytest.mark.parametrize("names,order", [
    (["TFLite_Detection_PostProcess", "TFLite_Detection_PostProcess:1", "TFLite_Detection_PostProcess:2",
      "TFLite_Detection_PostProcess:3"], [0, 1, 2, 3]),
    (["detection_boxes", "detection_classes", "detection_scores", "num_detections"], [2, 0, 3, 1]),  # TF2 order
    (["output_0", "output_1", "output_2", "output_3"], [0, 1, 2, 3]),  # shapes + TF1 order
])
def test_ssd_outputs_mapped_by_name_not_index(names, order):
    outs = _ssd_outputs(names)
    cand = decode_ssd([outs[i] for i in order] if order != [0, 1, 2, 3] else outs, CTX)
    assert cand.scores.tolist() == pytest.approx([0.9, 0.3])
    assert cand.class_ids.tolist() == [4, 0]
    assert np.allclose(cand.boxes[0], [0.2, 0.1, 0.6, 0.5])  # (ymin,xmin,..) → (x1,y1,..)
    assert not cand.needs_nms


def test_detect_layout():
    assert detect_layout([(1, 10, 4), (1, 10), (1, 10), (1,)]) == "ssd"
    assert detect_layout([(1, 84, 8400)]) == "yolov8"
    assert detect_layout([(1, 25200, 85)], input_size=(640, 640)) == "yolov5"  # 3 anchors per grid cell
    assert detect_layout([(1, 25200, 85)], num_labels=80) == "yolov5"
    assert detect_layout([(1, 8400, 84)], input_size=(640, 640)) == "yolov8"  # one row per grid cell
    with pytest.raises(LayoutError, match="pass --layout yolov5|yolov8"):
        detect_layout([(1, 8400, 84)])  # rows alone cannot tell v5 from v8
    assert detect_layout([(1, 8400, 84)], num_labels=80) == "yolov8"
    with pytest.raises(LayoutError, match="--layout"):
        detect_layout([(1, 896, 16), (1, 896, 1)])


def test_custom_decoder_registry():
    @register_decoder("unit-test-head")
    def dec(outputs, ctx):
        return Candidates.empty()
    assert get_decoder("unit-test-head") is dec
    with pytest.raises(ConfigError, match="known: "):
        get_decoder("nope")
    with pytest.raises(ConfigError):
        register_decoder("bad name!", dec)


# -- end-to-end (NMS-free) rows and the value checks every decoder runs ----------------------------
from edgekit.decoders import decode_end2end  # noqa: E402
from edgekit.errors import LayoutError as _LayoutError  # noqa: E402


def _e2e(rows):
    data = np.zeros((1, 300, 6), np.float32)
    data[0, : len(rows)] = rows
    return [OutputTensor("output0", data)]


def test_end2end_normalised_and_pixels_agree():
    ctx = DecodeContext(640, 480, 0.25, 80, "e2e.tflite")
    norm = decode_end2end(_e2e([[0.1, 0.2, 0.5, 0.6, 0.9, 3], [0.3, 0.3, 0.4, 0.4, 0.2, 1]]), ctx)
    pix = decode_end2end(_e2e([[64, 96, 320, 288, 0.9, 3], [192, 144, 256, 192, 0.2, 1]]), ctx)
    for cand in (norm, pix):
        assert not cand.needs_nms and cand.class_ids.tolist() == [3]
        np.testing.assert_allclose(cand.boxes, [[0.1, 0.2, 0.5, 0.6]], atol=1e-6)
        np.testing.assert_allclose(cand.scores, [0.9])


@pytest.mark.parametrize("row, words", [
    ([0.1, 0.2, 0.5, 0.6, 0.9, 3.4], "not integers"),
    ([0.1, 0.2, 0.5, 0.6, 0.9, 80], "class id 80 but only 80 labels"),
    ([0.1, 0.2, 0.5, 0.6, 7.0, 3], "expected probabilities"),
    ([0.5, 0.2, 0.1, 0.6, 0.9, 3], "negative width or height"),
    ([np.nan, 0.2, 0.5, 0.6, 0.9, 3], "not finite"),
])
def test_end2end_refuses_impossible_rows(row, words):
    with pytest.raises(_LayoutError, match=words) as err:
        decode_end2end(_e2e([row]), DecodeContext(640, 640, 0.25, 80, "e2e.tflite"))
    assert "e2e.tflite" in str(err.value)


def test_yolov8_class_count_must_match_labels():
    data = np.full((1, 85, 100), 0.1, np.float32)  # YOLOv5-like width forced as yolov8
    with pytest.raises(_LayoutError, match="81 class scores per box but there are 80 labels"):
        decode_yolov8([OutputTensor("out", data)], DecodeContext(640, 640, 0.25, 80, "m"))


def test_ssd_count_out_of_range_refused():
    outs = [OutputTensor("TFLite_Detection_PostProcess", np.zeros((1, 10, 4), np.float32)),
            OutputTensor("TFLite_Detection_PostProcess:1", np.zeros((1, 10), np.float32)),
            OutputTensor("TFLite_Detection_PostProcess:2", np.zeros((1, 10), np.float32)),
            OutputTensor("TFLite_Detection_PostProcess:3", np.array([37.0], np.float32))]
    with pytest.raises(_LayoutError, match="count output holds"):
        decode_ssd(outs, DecodeContext(300, 300, 0.25, None, "m"))


def test_layout_detection_order_end2end_vs_one_class_yolov5():
    assert detect_layout([(1, 300, 6)]) == "end2end"
    assert detect_layout([(1, 25200, 6)], input_size=(640, 640)) == "yolov5"  # a one-class YOLOv5 has 6 columns too
