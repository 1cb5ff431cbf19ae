"""Decoder for the MTCNN refinement stages (R-Net 24x24, O-Net 48x48) converted by edgekit-convert.

These stages score one face *candidate crop*: outputs are a box regression ``[1, 4]`` (offsets
of x1, y1, x2, y2 relative to the crop size), a face probability ``[1, 2]`` (softmax: not-face,
face) and, for O-Net, 5 landmarks ``[1, 10]``. Full-int8 conversion may reorder outputs, so
they are found by width, not index. The result is one "face" detection with the refined box.

    edgekit-convert onet.keras -o onet_int8.tflite --mode int8 --calibration faces/ \
        --mean 127.5 --std 128 --layout mtcnn-refine --labels examples/blazeface_labels.txt
    edgekit detect onet_int8.tflite face_crop.jpg --plugin examples/mtcnn_decoder.py --threshold 0
"""

from __future__ import annotations

import numpy as np

from edgekit import Candidates, LayoutError, register_decoder


@register_decoder("mtcnn-refine")
def decode_mtcnn_refine(outputs, ctx) -> Candidates:
    by_width = {o.data.shape[-1]: o for o in outputs}
    if 4 not in by_width or 2 not in by_width:
        raise LayoutError(f"mtcnn-refine needs a [1,4] box and a [1,2] probability output, found "
                          f"{[list(o.data.shape) for o in outputs]}")
    reg = by_width[4].dequantized().reshape(4)
    face = float(by_width[2].dequantized().reshape(2)[1])
    box = np.array([[reg[0], reg[1], 1.0 + reg[2], 1.0 + reg[3]]], np.float32)
    return Candidates(box, np.array([face], np.float32), np.zeros(1, np.int64), needs_nms=False)
