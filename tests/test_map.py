"""mAP50-95 on the 128 COCO val2017 images (pycocotools), threshold 0.01, 100 results."""

import pytest

from edgekit import Detector, DetectorOptions
from edgekit.coco_eval import evaluate_coco


@pytest.mark.slow
@pytest.mark.parametrize("model,labels,minimum", [
    ("ssd_mobilenet_v1_quant/detect.tflite", "ssd_mobilenet_v1_quant/labelmap.txt", 0.21),
    ("yolov8n/yolov8n_full_integer_quant.tflite", "yolov8n/labels_coco80.txt", 0.36),
])
def test_coco128_map(shared, model, labels, minimum):
    coco = shared / "coco128_val2017"
    det = Detector(shared / "models" / model, DetectorOptions(score_threshold=0.01, max_results=100),
                   labels_path=shared / "models" / labels)
    score = evaluate_coco(det, str(coco / "images"), str(coco / "instances_val2017_first128_DERIVED_from_yolo.json"))
    print(f"{model}: mAP50-95 {score.map50_95:.4f} mAP50 {score.map50:.4f} on {score.images} images")
    assert score.images == 128
    assert score.map50_95 >= minimum
