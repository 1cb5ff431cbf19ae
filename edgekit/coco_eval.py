"""COCO mAP of a Detector on a validation set (pycocotools; ``pip install 'edgekit[eval]'``).

The detector runs exactly as ``detect`` runs it (its preprocessing, decoder and NMS), so the
number is what the device gets; :func:`eval_options` only lowers the score threshold and raises
the per-image cap to :data:`~edgekit.postprocess.EVAL_SCORE_THRESHOLD` /
:data:`~edgekit.postprocess.EVAL_MAX_RESULTS`, as AP needs. Detections are matched to the
dataset's categories by label name (case, ``_`` and spaces aside), so any label order works
(SSD's 90-id label map, YOLO's contiguous 80). Validation sets come from :mod:`edgekit.datasets`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from typing import Any, Iterable, TextIO

from .detector import Detector, DetectorOptions
from .errors import ConfigError
from .postprocess import EVAL_MAX_RESULTS, EVAL_SCORE_THRESHOLD

__all__ = ["ClassAP", "CocoScore", "ClassDelta", "ScoreDelta", "eval_options", "evaluation_detector", "evaluate",
           "evaluate_coco", "compare_scores"]


@dataclass(frozen=True)
class ClassAP:
    """One category's AP50-95 and AP50 (pycocotools' 101-point precision, all areas, 100 detections)
    and its number of ground-truth boxes (crowd boxes aside)."""

    name: str
    ap50_95: float
    ap50: float
    instances: int


@dataclass(frozen=True)
class CocoScore:
    """mAP50-95 and mAP50, how many images and detections were scored, per-class AP (categories
    with ground truth in the scored images only), the detector's threshold and cap, and the
    seconds spent detecting."""

    map50_95: float
    map50: float
    images: int
    detections: int
    per_class: tuple[ClassAP, ...] = ()
    score_threshold: float | None = None
    max_results: int | None = None
    seconds: float = 0.0


def eval_options(options: DetectorOptions | None = None) -> DetectorOptions:
    """``options`` at mAP-evaluation settings: EVAL_SCORE_THRESHOLD, EVAL_MAX_RESULTS and no label
    allow/deny list; everything else (NMS IoU, layout, labels, input) stays as the device runs it."""
    return replace(options or DetectorOptions(), score_threshold=EVAL_SCORE_THRESHOLD, max_results=EVAL_MAX_RESULTS,
                   label_allowlist=None, label_denylist=None)


def evaluation_detector(model: str | os.PathLike, labels_path: str | os.PathLike | None = None,
                        options: DetectorOptions | None = None) -> Detector:
    """A :class:`Detector` for ``model`` at :func:`eval_options` settings."""
    return Detector(model, eval_options(options), labels_path=labels_path)


def evaluate(detector: Detector, dataset: Any, *, limit: int | None = None,
             progress: TextIO | None = None) -> CocoScore:
    """Run ``detector`` on the images of ``dataset`` (a :class:`edgekit.datasets.ValidationSet`) and
    score it with pycocotools. The detector is used as configured: build it with
    :func:`evaluation_detector` for the numbers mAP tables quote.

    Args:
        limit: score only the first ``limit`` images (by image id).
        progress: a text stream for a tqdm progress bar (none when None or tqdm is missing).
    Raises:
        ConfigError: pycocotools missing, or no model label names a dataset category.
        ImageError, ModelError, LayoutError: from the detector.
    """
    COCO, COCOeval = _pycocotools()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset.coco
        gt.createIndex()
    by_name = _category_ids(gt, detector, dataset.source)
    image_ids = sorted(gt.getImgIds())[:limit]
    results, started = [], time.perf_counter()
    for image_id in _bar(image_ids, progress, os.path.basename(detector.model_path)):
        info = gt.loadImgs(image_id)[0]
        for det in detector.detect(os.path.join(dataset.images_dir, info["file_name"])).detections:
            category = by_name.get(_norm(det.label))
            if category is not None:  # else a label the dataset does not score (e.g. SSD's unused ids)
                x1, y1, x2, y2 = det.box
                results.append({"image_id": image_id, "category_id": category, "score": det.score,
                                "bbox": [x1, y1, x2 - x1, y2 - y1]})
    seconds = time.perf_counter() - started
    settings = {"score_threshold": detector.options.score_threshold, "max_results": detector.options.max_results,
                "seconds": seconds}
    if not results:
        zeros = tuple(ClassAP(c["name"], 0.0, 0.0, n) for c, n in _present(gt, image_ids))
        return CocoScore(0.0, 0.0, len(image_ids), 0, zeros, **settings)
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.params.imgIds = image_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return CocoScore(float(ev.stats[0]), float(ev.stats[1]), len(image_ids), len(results),
                     _per_class(ev, gt, image_ids), **settings)


def evaluate_coco(detector: Detector, images_dir: str, annotations: str, limit: int | None = None) -> CocoScore:
    """Run ``detector`` on the images of ``annotations`` (COCO JSON) found in ``images_dir``."""
    from .datasets import load_coco

    return evaluate(detector, load_coco(annotations, images_dir), limit=limit)


def _pycocotools() -> tuple[Any, Any]:
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise ConfigError("mAP evaluation needs pycocotools: pip install 'edgekit[eval]'") from None
    return COCO, COCOeval


def _norm(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def _category_ids(gt: Any, detector: Detector, source: str) -> dict[str, int]:
    by_name: dict[str, int] = {}
    for cat in gt.loadCats(gt.getCatIds()):
        if by_name.setdefault(_norm(cat["name"]), cat["id"]) != cat["id"]:
            raise ConfigError(f"{source}: two categories are named {cat['name']!r}; expected unique names, "
                              "since detections are matched to categories by name")
    labels = detector.labels or ()
    if not any(_norm(label) in by_name for label in labels):
        found = f"labels {list(labels[:4])}" if labels else "no labels"
        raise ConfigError(f"{detector.model_path}: has {found}, and none names a category of {source} (e.g. "
                          f"{list(by_name)[:4]}); expected the same class names: pass the model's labels "
                          "(--labels FILE)")
    return by_name


def _present(gt: Any, image_ids: list[int]) -> list[tuple[dict, int]]:
    """Categories with ground-truth boxes (crowd aside) in ``image_ids``, with their counts."""
    counts: dict[int, int] = {}
    for ann in gt.loadAnns(gt.getAnnIds(imgIds=image_ids)):
        if not ann.get("iscrowd", 0):
            counts[ann["category_id"]] = counts.get(ann["category_id"], 0) + 1
    return [(cat, counts[cat["id"]]) for cat in gt.loadCats(sorted(counts))]


def _per_class(ev: Any, gt: Any, image_ids: list[int]) -> tuple[ClassAP, ...]:
    precision = ev.eval["precision"]  # [IoU thresholds, recall points, categories, areas, max dets]
    column = {cat_id: k for k, cat_id in enumerate(ev.params.catIds)}
    out = []
    for cat, instances in _present(gt, image_ids):
        p = precision[:, :, column[cat["id"]], 0, -1]  # area "all", 100 detections
        p50 = p[0]
        out.append(ClassAP(cat["name"], float(p[p > -1].mean()) if (p > -1).any() else 0.0,
                           float(p50[p50 > -1].mean()) if (p50 > -1).any() else 0.0, instances))
    return tuple(out)


def _bar(items: list, progress: TextIO | None, name: str) -> Iterable:
    if progress is None:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=f"evaluating {name}", unit="img", file=progress, leave=False)


# -- comparing two evaluations ------------------------------------------------------------------

@dataclass(frozen=True)
class ClassDelta:
    """One class's AP50-95 before and after, and the change in points (100 x AP)."""

    name: str
    before: float
    after: float
    delta_points: float
    instances: int


@dataclass(frozen=True)
class ScoreDelta:
    """mAP50-95 and mAP50 changes in points (after − before) and the classes that lost most, worst first."""

    map50_95_points: float
    map50_points: float
    worst: tuple[ClassDelta, ...]


def compare_scores(before: CocoScore, after: CocoScore, worst: int = 5) -> ScoreDelta:
    """Compare two evaluations of the same validation set (e.g. a float source and its int8 copy).

    Per-class deltas cover the classes with ground truth in the set; ``worst`` of them, most
    negative first. Raises ConfigError when the two were not scored on the same images and classes.
    """
    a = {c.name: c for c in before.per_class}
    b = {c.name: c for c in after.per_class}
    if before.images != after.images or {n: c.instances for n, c in a.items()} != {n: c.instances for n, c in b.items()}:
        raise ConfigError(f"cannot compare evaluations of different validation sets ({before.images} vs "
                          f"{after.images} images, {len(a)} vs {len(b)} classes); evaluate both on the same set")
    deltas = sorted((ClassDelta(n, a[n].ap50_95, b[n].ap50_95, 100.0 * (b[n].ap50_95 - a[n].ap50_95), a[n].instances)
                     for n in a), key=lambda d: (d.delta_points, d.name))
    return ScoreDelta(100.0 * (after.map50_95 - before.map50_95), 100.0 * (after.map50 - before.map50),
                      tuple(deltas[:worst]))


# -- python -m edgekit.coco_eval ----------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """``python -m edgekit.coco_eval MODEL DATA [ANNOTATIONS.json]``; returns the exit code.

    DATA is a COCO JSON (images in an ``images/`` folder beside it, or ``--images DIR``) or a
    YOLO folder; the older form ``MODEL IMAGES_DIR ANNOTATIONS.json`` still works.
    """
    from .errors import run_cli

    return run_cli("coco_eval", lambda: _run(argv))


def _run(argv: list[str] | None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m edgekit.coco_eval", description=__doc__)
    p.add_argument("model")
    p.add_argument("data", help="COCO instances JSON or YOLO folder (or, with ANNOTATIONS, the images folder)")
    p.add_argument("annotations", nargs="?", help="COCO instances JSON (older form: DATA is then its images folder)")
    p.add_argument("--images", help="the COCO JSON's images folder (default: images/ beside it)")
    p.add_argument("--names", help="YOLO folder without data.yaml: its class names (labels file or YAML)")
    p.add_argument("--labels", help="the model's labels")
    p.add_argument("--threshold", type=float, default=EVAL_SCORE_THRESHOLD)
    p.add_argument("--max-results", type=int, default=EVAL_MAX_RESULTS)
    args = p.parse_args(argv)
    det = Detector(args.model, DetectorOptions(score_threshold=args.threshold, max_results=args.max_results),
                   labels_path=args.labels)
    if args.annotations is not None:
        score = evaluate_coco(det, args.data, args.annotations)
    else:
        from .datasets import load_validation_set

        dataset = load_validation_set(args.data, args.images, args.names)
        for note in dataset.notes:
            print(f"coco_eval: {note}", file=sys.stderr)
        score = evaluate(det, dataset, progress=sys.stderr if sys.stderr.isatty() else None)
    print(json.dumps({"model": args.model, "mAP50-95": round(score.map50_95, 4), "mAP50": round(score.map50, 4),
                      "images": score.images, "detections": score.detections,
                      "seconds": round(score.seconds, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
