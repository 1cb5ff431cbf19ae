"""Whether a label list fits the model it is about to be embedded in.

A label file for another model (80 COCO names on a 3-class head) would otherwise be written into
the model's metadata, and every later ``edgekit detect`` would fail on it. The class count is read
from the output shapes of the built-in heads that carry one score per class:

``yolov8``  one output ``[1, 4+C, N]`` (or ``[1, N, 4+C]``)
``yolov5``  one output ``[1, N, 5+C]``

An SSD post-process head (class ids, not a score per class), an end-to-end head and a custom
decoder's head do not say their class count in their shapes; their labels are checked when
``edgekit detect`` decodes (a class id past the label list is refused there).
"""

from __future__ import annotations

from typing import Sequence

from edgekit.errors import ConfigError, LayoutError

__all__ = ["head_classes", "check_labels_fit"]

Shape = tuple[int, ...]


def head_classes(shapes: Sequence[Shape], layout: str | None, input_size: tuple[int, int] | None = None
                 ) -> tuple[str, int] | None:
    """The layout and class count the outputs ``shapes`` show, or None when the shapes do not say.

    ``layout`` is the recorded or requested one; None means the built-in head the shapes match
    (matched without labels, so that a wrong label count cannot change the answer).
    """
    from edgekit import decoders

    if layout is None:
        try:
            layout = decoders.detect_layout(shapes, None, input_size)
        except LayoutError:
            return None
    if layout not in ("yolov8", "yolov5") or len(shapes) != 1 or len(shapes[0]) != 3 or shapes[0][0] != 1:
        return None
    _, a, b = shapes[0]
    if layout == "yolov8":
        classes = a - 4 if a < b else b - 4
    else:
        classes = b - 5
    return (layout, classes) if classes >= 1 else None


def check_labels_fit(model: str, shapes: Sequence[Shape], labels: Sequence[str] | None, layout: str | None,
                     labels_from: str, input_size: tuple[int, int] | None = None) -> None:
    """Refuse ``labels`` whose count differs from the class count of the model's head.

    Args:
        model: the model's name, for the message.
        shapes: its output shapes, in output order.
        labels: the labels about to be embedded (None: nothing to check).
        layout: the layout given or recorded (None: the one the shapes match).
        labels_from: where the labels came from (``--labels coco.txt``, ``the model's metadata``).
    Raises:
        ConfigError (exit 2) naming both counts.
    """
    if not labels:
        return
    found = head_classes(shapes, layout, input_size)
    if found is None or found[1] == len(labels):
        return
    head, classes = found
    shape = list(shapes[0])
    raise ConfigError(f"{model}: {labels_from} has {len(labels)} labels but the model's {head} head scores "
                      f"{classes} classes (output {shape}); expected one label per class: pass the model's own "
                      f"label file with --labels ({classes} names)")


def tflite_output_shapes(model: bytes) -> tuple[list[Shape], tuple[int, int] | None]:
    """A .tflite's output shapes and input (width, height), read by edgekit's runtime."""
    from edgekit.runtime import create_interpreter

    interpreter = create_interpreter(model, 1)
    shapes = [tuple(int(v) for v in d["shape"]) for d in interpreter.get_output_details()]
    inp = interpreter.get_input_details()[0]["shape"]
    size = (int(inp[2]), int(inp[1])) if len(inp) == 4 else None
    return shapes, size
