"""Small grey frames for :class:`~edgekit.motion.MotionDetector` from sources without a Y plane: an
RGB array (:func:`grey_from_rgb`) or an image file's draft decode (:func:`grey_from_image`)."""

from __future__ import annotations

import os
from typing import Any, Optional, Union

import numpy as np

from .errors import ImageError
from .motion_options import _describe, _is_int

__all__ = ["grey_from_image", "grey_from_rgb"]

_TRANSPOSE = {2: 0, 3: 3, 4: 1, 5: 5, 6: 4, 7: 6, 8: 2}  # EXIF orientation -> PIL Image.Transpose


def grey_from_rgb(rgb: np.ndarray, height: Optional[int] = None) -> np.ndarray:
    """A grey (luma) frame from an RGB ``HxWx3`` uint8 frame, for sources without a Y plane.

    Args:
        rgb: the frame (any strides).
        height: sample it first at an integer stride down to at least this many rows (the
            detector's ``MotionOptions.height``), which is far cheaper; pass the frame's size to
            :meth:`MotionDetector.update`. None: full size.

    Returns a 2-D uint8 array: (77 R + 150 G + 29 B) / 256, BT.601 weights in integers.

    Raises ValueError: not an ``HxWx3`` uint8 array, or a height that is not a whole number ≥ 1.
    """
    if not (isinstance(rgb, np.ndarray) and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8):
        raise ValueError(f"grey_from_rgb: expected an HxWx3 uint8 RGB array, found {_describe(rgb)}")
    if height is not None:
        if not (_is_int(height) and height >= 1):
            raise ValueError(f"grey_from_rgb: height: expected whole rows ≥ 1 or None, found {height!r}")
        step = max(1, rgb.shape[0] // height)
        rgb = rgb[::step, ::step]
    luma = rgb[..., 0] * np.uint16(77)
    luma += rgb[..., 1] * np.uint16(150)
    luma += rgb[..., 2] * np.uint16(29)
    return (luma >> 8).astype(np.uint8)


def grey_from_image(source: Union[str, os.PathLike, Any], height: int = 100) -> tuple[np.ndarray, tuple[int, int]]:
    """A small grey frame from an image file: a JPEG decodes only its luma, scaled down in the
    decoder (Pillow's draft mode) to at least ``height`` rows; upright by its EXIF orientation.
    A PIL image passed in is converted whole (drafting it would change the caller's image).

    Returns (grey 2-D uint8 array, the upright image's (width, height)): pass both to
    :meth:`MotionDetector.update` (``frame_size``) so regions are in the image's pixels.

    Raises ImageError: the file is missing or not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    def grey(img: Image.Image, draft: bool) -> tuple[np.ndarray, tuple[int, int]]:
        if draft and img.format != "JPEG":  # decoded whole (a PNG's getexif() already decodes it): must fit
            from .image import check_decode

            check_decode(img, str(source))
        orientation = img.getexif().get(0x0112, 1)
        w, h = img.size
        if draft and img.format == "JPEG":
            img.draft("L", (max(1, w * height // h), height))
        img = img.convert("L")
        if orientation in _TRANSPOSE:  # the EXIF orientation tag's meaning, as ImageOps.exif_transpose
            img = img.transpose(Image.Transpose(_TRANSPOSE[orientation]))
            if orientation >= 5:
                w, h = h, w
        return np.asarray(img), (w, h)

    from .image import LOCAL_FORMATS

    if isinstance(source, Image.Image):
        return grey(source, draft=False)
    try:
        with Image.open(source, formats=LOCAL_FORMATS) as img:  # never EPS (Ghostscript) and the like
            return grey(img, draft=True)
    except FileNotFoundError:
        raise ImageError(f"{source}: no such file; expected an image path") from None
    except Image.DecompressionBombError as exc:  # not an OSError
        raise ImageError(f"{source}: refused ({exc})") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(f"{source}: not a readable image ({exc}); expected JPEG, PNG, GIF, BMP, WebP, TIFF or PPM") from None
