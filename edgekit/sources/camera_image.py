"""A camera's encoded pictures to pixels, refused as a file would be when too large, and never
with a parser no camera needs (:class:`ImageDecoder`)."""

from __future__ import annotations

import io
import re
from typing import Any

from .video import av_reason

__all__ = ["ImageDecoder", "jpeg_size", "CAMERA_FORMATS"]


class ImageDecoder:
    """Encoded image bytes to pixels — the decoder's YUV frame for JPEG, an RGB uint8 array
    otherwise — or a problem string for a broken image.

    JPEG goes through FFmpeg's MJPEG decoder when PyAV is installed: measured at 720p it costs
    about a third of Pillow's CPU time (3.8-4.9 ms against 12-14 ms) and it accepts the
    Huffman-table-less JPEGs some cameras send; its frame stays YUV (see :class:`LiveSource`).
    Other formats, or no PyAV, use Pillow. Either way the image's size is read from its header
    first and refused as a file would be: past Pillow's decompression-bomb limit, or needing more
    memory than this process may still allocate (:func:`edgekit.image.check_decode`).
    """

    def __init__(self) -> None:
        try:
            import av
        except ImportError:
            self._av = self._codec = None
        else:
            self._av = av
            self._codec = av.CodecContext.create("mjpeg", "r")
            self._codec.thread_count = 1  # one frame per packet: threads would only add latency

    def __call__(self, data: bytes) -> Any:
        if self._codec is not None and data[:2] == b"\xff\xd8":
            size = jpeg_size(data)
            if size is None:  # no frame header to check: Pillow reads it (and refuses) if there is one
                return _pillow_decode(data)
            problem = _too_large(size, "RGB", len(data))  # FFmpeg makes YUV, then RGB
            if problem is not None:
                return problem
            try:
                frames = self._codec.decode(self._av.Packet(data))
            except self._av.error.FFmpegError as exc:
                return f"undecodable JPEG ({len(data)} bytes): {_plain(av_reason(exc))}"
            if frames:
                return frames[0]
        return _pillow_decode(data)


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The largest (width, height) any start-of-frame marker in a JPEG claims (JPEG-LS's too), or
    None when there is none. Every marker counts, not only the first: FFmpeg skips junk to find markers, and a
    later frame header would make it allocate at that size. (numpy finds them: a regular
    expression over a 720p frame costs 1.7 ms, half of FFmpeg's decode.)"""
    import numpy as np

    a = np.frombuffer(data, np.uint8)
    ff = np.flatnonzero(a[:-8] == 0xFF)
    kind = a[ff + 1]
    # SOF0-SOF15 (not DHT C4, JPG C8, DAC CC) and SOF55 (F7, JPEG-LS: FFmpeg's MJPEG decoder takes it too)
    ff = ff[((kind >= 0xC0) & (kind <= 0xCF) & (kind != 0xC4) & (kind != 0xC8) & (kind != 0xCC)) | (kind == 0xF7)]
    if not len(ff):
        return None
    heights = a[ff + 5].astype(np.int64) << 8 | a[ff + 6]
    widths = a[ff + 7].astype(np.int64) << 8 | a[ff + 8]
    best = int(np.argmax(widths * heights))
    return int(widths[best]), int(heights[best])


def _too_large(size: tuple[int, int], mode: str, nbytes: int) -> str | None:
    from ..errors import ImageError
    from ..image import check_pixels

    try:
        check_pixels(size, mode, f"image of {nbytes} bytes")
    except ImageError as exc:
        return str(exc)
    return None


_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")


def _printable(text: str, limit: int = 60) -> str:
    """A camera's header value safe to print: no control characters, at most ``limit`` long."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


def _plain(message: str) -> str:
    """A dependency's message without the object reprs some put in it (``<_io.BytesIO object at 0x…>``)."""
    return _REPR.sub("the data", message)


#: The picture formats a camera's bytes may be decoded as. Not Pillow's every format: EPS would run
#: Ghostscript on whatever the camera sends, and others (TIFF, PSD, FITS…) add parsers no camera needs.
CAMERA_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP")  # JPEG includes MPO


def _pillow_decode(data: bytes) -> Any:
    import warnings

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from ..errors import ImageError
    from ..image import check_decode

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=CAMERA_FORMATS) as image:
                check_decode(image, f"image of {len(data)} bytes")
                image.load()
                return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except ImageError as exc:
        return str(exc)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return (f"undecodable image ({len(data)} bytes): larger than Pillow's safety limit of "
                f"{Image.MAX_IMAGE_PIXELS} pixels (possible decompression bomb)")
    except UnidentifiedImageError:
        return (f"undecodable image ({len(data)} bytes): not an image (it begins {data[:8].hex(' ')}); "
                "expected JPEG or PNG frames from the camera")
    except Exception as exc:  # Pillow raises many types for corrupt data
        return f"undecodable image ({len(data)} bytes): {_plain(str(exc))}"
