"""COCO-style mAP of a Detector on a folder of images (pycocotools; ``pip install 'edgekit[eval]'``).

Detections are matched to COCO categories by label name, so any label order works (SSD's
90-id label map, YOLO's contiguous 80).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass

from .detector import Detector
from .errors import ConfigError

__all__ = ["CocoScore", "evaluate_coco"]


@dataclass(frozen=True)
class CocoScore:
    """mAP50-95 and mAP50 (pycocotools' 101-point AP), and how many images were scored."""

    map50_95: float
    map50: float
    images: int
    detections: int


def evaluate_coco(detector: Detector, images_dir: str, annotations: str, limit: int | None = None) -> CocoScore:
    """Run ``detector`` on every image listed in ``annotations`` (COCO JSON) found in ``images_dir``."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise ConfigError("mAP evaluation needs pycocotools: pip install 'edgekit[eval]'") from None
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(annotations)
    by_name = {c["name"]: c["id"] for c in gt.loadCats(gt.getCatIds())}
    results = []
    image_ids = sorted(gt.getImgIds())[:limit]
    for image_id in image_ids:
        info = gt.loadImgs(image_id)[0]
        found = detector.detect(os.path.join(images_dir, info["file_name"]))
        for det in found.detections:
            category = by_name.get(det.label.replace("_", " "))
            if category is None:
                continue  # a label COCO does not score (e.g. SSD's unused ids)
            x1, y1, x2, y2 = det.box
            results.append({"image_id": image_id, "category_id": category, "score": det.score,
                            "bbox": [x1, y1, x2 - x1, y2 - y1]})
    if not results:
        return CocoScore(0.0, 0.0, len(image_ids), 0)
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.imgIds = image_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return CocoScore(float(ev.stats[0]), float(ev.stats[1]), len(image_ids), len(results))


def main(argv: list[str] | None = None) -> int:
    """``python -m edgekit.coco_eval MODEL IMAGES_DIR ANNOTATIONS.json [--labels F]``; returns the exit code."""
    from .errors import run_cli

    return run_cli("coco_eval", lambda: _run(argv))


def _run(argv: list[str] | None) -> int:
    import argparse

    from .detector import DetectorOptions

    p = argparse.ArgumentParser(prog="python -m edgekit.coco_eval", description=__doc__)
    p.add_argument("model")
    p.add_argument("images")
    p.add_argument("annotations")
    p.add_argument("--labels")
    p.add_argument("--threshold", type=float, default=0.01)
    p.add_argument("--max-results", type=int, default=100)
    args = p.parse_args(argv)
    det = Detector(args.model, DetectorOptions(score_threshold=args.threshold, max_results=args.max_results),
                   labels_path=args.labels)
    score = evaluate_coco(det, args.images, args.annotations)
    print(json.dumps({"model": args.model, "mAP50-95": round(score.map50_95, 4), "mAP50": round(score.map50, 4),
                      "images": score.images, "detections": score.detections}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
