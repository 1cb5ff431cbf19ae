"""Train the demo detector that edgekit's README runs offline: a ~60k-parameter anchor-free
detector for circles, squares and triangles with a YOLOv8-style head ([1, 4+C, N], cx,cy,w,h
normalised, sigmoid class scores), then convert it to full-int8 with edgekit-convert, gated to lose at
most 1 mAP50-95 point on 100 unseen generated scenes.

    python examples/shapes/train_shapes.py      # needs 'edgekit[convert]'; ~5 min on 2 CPU cores

Writes shapes.keras (the float model, for converter tests), shapes_int8.tflite, images/*.png and
images/ground_truth.json next to this file.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from shapes_data import LABELS, scene  # noqa: E402

SIZE = 128
GRID = 16  # stride 8
NC = len(LABELS)


def letterboxed_scene(rng):
    """A scene of random aspect ratio, letterboxed into SIZE x SIZE exactly like the runtime does."""
    w, h = (SIZE, int(rng.integers(80, SIZE + 1))) if rng.random() < 0.5 else (int(rng.integers(80, SIZE + 1)), SIZE)
    img, boxes, classes = scene(rng, w, h)
    canvas = np.full((SIZE, SIZE, 3), 114, np.uint8)
    px, py = (SIZE - w) // 2, (SIZE - h) // 2
    canvas[py:py + h, px:px + w] = np.asarray(img)
    boxes = [[b[0] + px, b[1] + py, b[2] + px, b[3] + py] for b in boxes]
    return canvas, np.asarray(boxes, np.float32) / SIZE, classes


def targets(boxes: np.ndarray, classes: list[int]):
    """Per-cell class targets and box targets; cells within 1 cell of a centre (and inside the box) learn the box."""
    cls_t = np.zeros((GRID * GRID, NC), np.float32)
    box_t = np.zeros((GRID * GRID, 4), np.float32)
    pos = np.zeros((GRID * GRID,), np.float32)
    for box, c in zip(boxes, classes):
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        gx, gy = int(cx * GRID), int(cy * GRID)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                x, y = gx + dx, gy + dy
                if not (0 <= x < GRID and 0 <= y < GRID):
                    continue
                ccx, ccy = (x + 0.5) / GRID, (y + 0.5) / GRID
                if not (box[0] < ccx < box[2] and box[1] < ccy < box[3]) and (dx or dy):
                    continue
                i = y * GRID + x
                # Only the centre cell is a full positive; neighbours learn the box but a low score,
                # so NMS keeps the best-placed box instead of several shifted ones.
                cls_t[i, c] = max(cls_t[i, c], 1.0 if (dx, dy) == (0, 0) else 0.3)
                box_t[i] = [cx, cy, box[2] - box[0], box[3] - box[1]]
                pos[i] = 1.0
    return cls_t, box_t, pos


def dataset(n: int, seed: int):
    rng = np.random.default_rng(seed)
    xs = np.zeros((n, SIZE, SIZE, 3), np.uint8)
    cls_t = np.zeros((n, GRID * GRID, NC), np.float32)
    box_t = np.zeros((n, GRID * GRID, 4), np.float32)
    pos = np.zeros((n, GRID * GRID), np.float32)
    for i in range(n):
        xs[i], boxes, classes = letterboxed_scene(rng)
        cls_t[i], box_t[i], pos[i] = targets(boxes, classes)
    return xs, cls_t, box_t, pos


def build_model():
    import keras
    from keras import layers, ops

    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = layers.Rescaling(1 / 255.0)(inp)
    for filters in (16, 32, 48):
        x = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    for rate in (2, 4):
        x = layers.Conv2D(64, 3, padding="same", dilation_rate=rate, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    raw = layers.Conv2D(4 + NC, 1, name="head")(x)  # [B, H/8, W/8, 4+C]
    # Cell centres come from the feature map itself (cumulative sums of ones), not from constants,
    # so the model can be rebuilt at another input size (edgekit-convert --bundle --sizes).
    # No division (TFLite 2.14, the 32-bit Pi runtime, has no int8 DIV): 1/W is the mean of a
    # one-hot "first cell" indicator, relu(2 - cumsum(ones)).
    ones = ops.ones_like(raw[..., :1])
    index_x, index_y = ops.cumsum(ones, axis=2), ops.cumsum(ones, axis=1)  # 1, 2, 3, …
    inv_w = ops.mean(ops.relu(2.0 - index_x), axis=2, keepdims=True)
    inv_h = ops.mean(ops.relu(2.0 - index_y), axis=1, keepdims=True)
    cx = (index_x - 0.5 + ops.tanh(raw[..., 0:1]) * 1.5) * inv_w
    cy = (index_y - 0.5 + ops.tanh(raw[..., 1:2]) * 1.5) * inv_h
    size = ops.sigmoid(raw[..., 2:4]) * 0.6
    out = ops.concatenate([cx, cy, size, ops.sigmoid(raw[..., 4:])], axis=-1)
    out = layers.Reshape((-1, 4 + NC))(out)  # [B, N, 4+C], row-major cells like the targets
    out = layers.Permute((2, 1), name="detections")(out)  # [B, 4+C, N]: the YOLOv8 layout
    return keras.Model(inp, out, name="shapes_detector")


def loss_fn(y_true, y_pred):
    from keras import ops

    cls_t, box_t, pos = y_true[..., :NC], y_true[..., NC:NC + 4], y_true[..., NC + 4]
    pred = ops.transpose(y_pred, (0, 2, 1))
    box_p, cls_p = pred[..., :4], ops.clip(pred[..., 4:], 1e-6, 1 - 1e-6)
    bce = -(cls_t * ops.log(cls_p) * 4.0 + (1 - cls_t) * ops.log(1 - cls_p))
    cls_loss = ops.sum(bce) / (ops.sum(pos) + 1.0)
    box_loss = ops.sum(ops.sum(ops.abs(box_p - box_t), -1) * pos) / (ops.sum(pos) + 1.0)
    return cls_loss + 10.0 * box_loss


def main() -> None:
    import keras

    if "--reconvert" in sys.argv:  # the head changed but not the weights: rebuild, convert, no training
        trained = keras.models.load_model(os.path.join(HERE, "shapes.keras"), compile=False)
        model = build_model()
        model.set_weights(trained.get_weights())
        return export(model)
    keras.utils.set_random_seed(0)
    xs, cls_t, box_t, pos = dataset(10000, seed=1)
    y = np.concatenate([cls_t, box_t, pos[..., None]], -1)
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, 10000 // 64 * 24)),
                  loss=loss_fn)
    model.fit(xs, y, batch_size=64, epochs=24, verbose=2, validation_split=0.05)
    export(model)


def export(model) -> None:
    """Save the float model (shapes.keras), convert it to full-int8, write the demo images."""
    keras_path = os.path.join(HERE, "shapes.keras")
    clean = build_model()  # same weights, no optimizer state: a small file to commit
    clean.set_weights(model.get_weights())
    clean.save(keras_path)

    from converters import convert

    with tempfile.TemporaryDirectory() as tmp:
        calib, val = os.path.join(tmp, "calibration"), os.path.join(tmp, "validation")
        write_calibration(calib)
        write_validation(val)
        # full int8 gated on unseen scenes: TF's plain int8 of this model lost 10 mAP50-95 points
        report = convert(keras_path, os.path.join(HERE, "shapes_int8.tflite"), mode="int8", calibration=calib,
                         mean=0.0, std=1.0, labels=list(LABELS), layout="yolov8", resize="letterbox",
                         name="edgekit-shapes-demo", eval_data=val, max_drop=1.0)
        print(report.table())
    write_demo_images()


def write_calibration(directory: str, count: int = 200, seed: int = 2) -> None:
    """Calibration scenes of random sizes (the runtime letterboxes them)."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        img, _, _ = scene(rng, int(rng.integers(96, 320)), int(rng.integers(96, 320)))
        img.save(os.path.join(directory, f"{i:03d}.png"))


def write_validation(directory: str, count: int = 100, seed: int = 7) -> None:
    """Validation scenes (a seed neither training nor calibration uses) as a YOLO-format folder:
    images/, labels/ (class cx cy w h, normalised) and data.yaml with the names."""
    os.makedirs(os.path.join(directory, "images"), exist_ok=True)
    os.makedirs(os.path.join(directory, "labels"), exist_ok=True)
    with open(os.path.join(directory, "data.yaml"), "w") as fh:
        fh.write("names: [" + ", ".join(LABELS) + "]\n")
    rng = np.random.default_rng(seed)
    for i in range(count):
        w, h = int(rng.integers(160, 400)), int(rng.integers(160, 400))
        img, boxes, classes = scene(rng, w, h)
        img.save(os.path.join(directory, "images", f"{i:03d}.png"))
        with open(os.path.join(directory, "labels", f"{i:03d}.txt"), "w") as fh:
            for (x1, y1, x2, y2), c in zip(boxes, classes):
                fh.write(f"{c} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}\n")


def write_demo_images() -> None:
    """Demo photos at 4:3 and 3:4 (the runtime letterboxes them) with their ground truth."""
    out = os.path.join(HERE, "images")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(2026)
    truth = {}
    for i, (w, h) in enumerate([(320, 240), (240, 320), (400, 300), (300, 300)]):
        img, boxes, classes = scene(rng, w, h)
        name = f"scene_{i}.png"
        img.save(os.path.join(out, name), optimize=True)
        truth[name] = [{"label": LABELS[c], "box": [round(v, 1) for v in b]} for b, c in zip(boxes, classes)]
    with open(os.path.join(out, "ground_truth.json"), "w") as fh:
        json.dump(truth, fh, indent=1)


if __name__ == "__main__":
    main()
