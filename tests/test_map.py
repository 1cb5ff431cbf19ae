"""mAP50-95 on the 128 COCO val2017 images (pycocotools) at the evaluation settings
(edgekit.postprocess.EVAL_SCORE_THRESHOLD / EVAL_MAX_RESULTS), against the references of
../shared/README.md (a simple 101-point evaluator): SSD v1 0.221, YOLOv8n full-int8 0.370, dynamic 0.408."""

import pytest

from edgekit import Detector, DetectorOptions
from edgekit.coco_eval import evaluate, evaluate_coco, evaluation_detector
from edgekit.datasets import load_validation_set


@pytest.mark.slow
@pytest.mark.parametrize("model,labels,reference", [
    ("ssd_mobilenet_v1_quant/detect.tflite", "ssd_mobilenet_v1_quant/labelmap.txt", 0.221),
    ("yolov8n/yolov8n_full_integer_quant.tflite", "yolov8n/labels_coco80.txt", 0.370),
    ("yolov8n/yolov8n_int8.tflite", "yolov8n/labels_coco80.txt", 0.408),
])
def test_coco128_map(shared, model, labels, reference):
    coco = shared / "coco128_val2017"
    det = evaluation_detector(shared / "models" / model, shared / "models" / labels)
    score = evaluate(det, load_validation_set(coco / "instances_val2017_first128_DERIVED_from_yolo.json"))
    print(f"{model}: mAP50-95 {score.map50_95:.4f} mAP50 {score.map50:.4f} on {score.images} images, "
          f"{score.detections} detections, {score.seconds:.1f} s")
    assert score.images == 128
    assert score.map50_95 == pytest.approx(reference, abs=0.01)


def test_evaluate_coco_keeps_its_signature(shared, ssd, ssd_labels):
    """The older entry point: a Detector as configured, an images folder and a COCO JSON."""
    coco = shared / "coco128_val2017"
    det = Detector(ssd, DetectorOptions(score_threshold=0.01, max_results=100), labels_path=ssd_labels)
    score = evaluate_coco(det, str(coco / "images"), str(coco / "instances_val2017_first128_DERIVED_from_yolo.json"),
                          limit=8)
    assert score.images == 8 and score.detections > 0 and 0.0 < score.map50_95 < 1.0
    assert (score.score_threshold, score.max_results) == (0.01, 100)
