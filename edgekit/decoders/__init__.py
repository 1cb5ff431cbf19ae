"""Output decoders: raw output tensors → candidate boxes in model-input space.

Built-in layouts, one module each (the tensor contract is in each module's docstring):

``ssd`` (:mod:`.ssd`)
    The four outputs of ``TFLite_Detection_PostProcess`` (TF1 and TF2 Object Detection API exports,
    EfficientDet-Lite, Model Maker). Already NMS-ed.
``yolov8`` / ``yolov5`` (:mod:`.yolo`)
    Ultralytics heads ``[1, 4 + C, N]`` and ``[1, N, 5 + C]``.
``end2end`` (:mod:`.end2end`)
    NMS-free rows ``[1, N, 6]`` = ``x1, y1, x2, y2, score, class`` (YOLOv10, YOLO26, ``nms=True`` exports).

Every decoder checks that its input makes sense (class count against the labels, scores in
[0, 1], integer class ids, finite boxes) and raises :class:`~edgekit.errors.LayoutError` instead
of returning impossible detections.

Extension point: :func:`register_decoder` adds a decoder for any other head. A decoder (the
contract, :mod:`.contract`, whose names this package hands on) is a callable ``decoder(outputs, context) -> Candidates``; ``outputs`` are :class:`OutputTensor`
objects (raw data + quantization) in the interpreter's output order, ``context`` a
:class:`DecodeContext`. Return boxes normalised to the model input as ``[x1, y1, x2, y2]``; set
``needs_nms`` if edgekit should run class-aware NMS. Pass ``matches=`` (a function of a
:class:`~edgekit.modelinfo.ModelInfo` returning a reason string or False) to take part in
``--layout auto``. See ``examples/blazeface_decoder.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from ..errors import ConfigError, LayoutError
from ..modelinfo import ModelInfo, TensorInfo, looks_like
from .contract import Candidates, DecodeContext, Decoder, Matcher, OutputTensor

__all__ = [
    "OutputTensor",
    "DecodeContext",
    "Candidates",
    "Decoder",
    "register_decoder",
    "get_decoder",
    "decoder_names",
    "resize_convention",
    "choose_layout",
    "detect_layout",
    "decode_ssd",
    "decode_yolov8",
    "decode_yolov5",
    "decode_end2end",
]


@dataclass(frozen=True)
class _Entry:
    decoder: Decoder
    matches: Matcher | None
    builtin: bool
    resize: str | None = None


_REGISTRY: dict[str, _Entry] = {}
_BUILTIN_ORDER = ("ssd", "end2end", "yolov8", "yolov5")  # most specific first


def register_decoder(name: str, decoder: Decoder | None = None, *, matches: Matcher | None = None,
                     resize: str | None = None, _builtin: bool = False):
    """Register ``decoder`` under ``name`` (usable as ``layout=name`` and in metadata).

    ``matches(info)`` (optional) lets ``--layout auto`` pick this decoder: return a short reason
    (e.g. ``"two outputs [1, 896, 16] + [1, 896, 1]"``) when the model fits, else False/None.
    Plugins are asked before the built-in decoders. ``resize`` is the head's input convention
    (``"letterbox"`` or ``"stretch"``, the default) used when the model's metadata does not say.
    Works as a plain call or as a decorator.
    """
    def _register(func: Decoder) -> Decoder:
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"decoder name must be alphanumeric (with - or _), found {name!r}")
        _REGISTRY.pop(name, None)  # re-registering moves a plugin to the front of auto-detection
        if resize is not None and resize not in ("letterbox", "stretch"):
            raise ConfigError(f"decoder {name!r}: resize must be 'letterbox' or 'stretch', found {resize!r}")
        _REGISTRY[name] = _Entry(func, matches, _builtin, resize)
        return func

    return _register(decoder) if decoder is not None else _register


def get_decoder(name: str) -> Decoder:
    """The decoder registered as ``name``; raises ConfigError with the known names otherwise."""
    try:
        return _REGISTRY[name].decoder
    except KeyError:
        raise ConfigError(
            f"unknown output layout {name!r}; known: {', '.join(decoder_names())} "
            "(register a custom one with edgekit.register_decoder, e.g. in a --plugin file)"
        ) from None


def is_builtin(name: str) -> bool:
    entry = _REGISTRY.get(name)
    return entry is not None and entry.builtin


def resize_convention(name: str) -> str:
    """How the head ``name`` expects the image fitted to its input: ``letterbox`` or ``stretch``."""
    entry = _REGISTRY.get(name)
    return (entry.resize if entry is not None else None) or "stretch"


def decoder_names() -> list[str]:
    return sorted(_REGISTRY)


def choose_layout(info: ModelInfo, requested: str | None = None) -> tuple[str, str]:
    """The layout to decode ``info``'s outputs with, and where that choice came from.

    Order: ``requested`` (``--layout``/``layout=``, "override"), the model's metadata, then each
    decoder's ``matches()`` — plugins first (newest first), then the built-ins from the most
    specific. Raises LayoutError saying what the outputs look like when nothing fits.
    """
    if requested and requested != "auto":
        get_decoder(requested)
        return requested, "override (--layout)"
    meta = info.metadata
    if meta.layout:
        origin = meta.origins.get("layout", meta.source)
        if meta.layout not in _REGISTRY:
            raise ConfigError(
                f"{info.name}: its metadata ({origin}) records the output layout {meta.layout!r}, a custom decoder "
                "that is not loaded; pass --plugin FILE_OR_MODULE that registers it (edgekit's examples/ has "
                f"mtcnn_decoder.py and blazeface_decoder.py), or --layout NAME to override (known: "
                f"{', '.join(decoder_names())})")
        return meta.layout, f"metadata ({origin})"
    plugins = [n for n, e in reversed(_REGISTRY.items()) if not e.builtin and e.matches is not None]
    for name in plugins + [n for n in _BUILTIN_ORDER if n in _REGISTRY]:
        matcher = _REGISTRY[name].matches
        try:
            reason = matcher(info) if matcher else None
        except Exception as exc:  # a plugin's matches() must not break auto-detection of others
            raise LayoutError(f"decoder {name!r}: its matches() failed ({type(exc).__name__}: {exc}); "
                              "this is a bug in the decoder plugin") from None
        if reason:
            kind = "" if _REGISTRY[name].builtin else "plugin: "
            return name, kind + (reason if isinstance(reason, str) else f"matches() of decoder {name!r}")
    mismatch = _label_count_mismatch(info)
    if mismatch is not None:
        raise LayoutError(mismatch)
    raise LayoutError(
        f"{info.name}: cannot tell how to decode it — {looks_like(info)}. edgekit decodes SSD post-process "
        "(4 outputs), YOLOv8 [1, 4+C, N], YOLOv5 [1, N, 5+C] and end-to-end [1, N, 6] outputs; pass --layout "
        "if it is one of those, or register a decoder for it (--plugin)"
    )


def _label_count_mismatch(info: ModelInfo) -> str | None:
    """Why auto-detection failed when only the label count stood in the way: a built-in layout fits
    the outputs once the labels are left out, so the label file does not belong to this model."""
    if info.num_labels is None:
        return None
    bare = replace(info, num_labels=None)
    for name in (n for n in _BUILTIN_ORDER if n in _REGISTRY):
        matcher = _REGISTRY[name].matches
        reason = matcher(bare) if matcher else None
        if reason:
            return (f"{info.name}: the outputs look like {name} — {reason} — but there are {info.num_labels} labels; "
                    "the label file does not fit this model: pass the model's own labels (--labels FILE with one "
                    "name per class), or --layout to decode it as another head")
    return None


def detect_layout(shapes: Sequence[tuple[int, ...]], num_labels: int | None = None,
                  input_size: tuple[int, int] | None = None) -> str:
    """Guess the built-in layout from output shapes (and the input ``(width, height)``, which tells
    YOLOv8 rows from YOLOv5 rows); raises LayoutError when none fits."""
    outs = tuple(TensorInfo(i, f"output_{i}", tuple(s), "float32") for i, s in enumerate(shapes))
    ins = (TensorInfo(-1, "input", (1, input_size[1], input_size[0], 3), "float32"),) if input_size else ()
    return choose_layout(ModelInfo("model", ins, outs, num_labels=num_labels))[0]


from .end2end import decode_end2end, matches_end2end  # noqa: E402  (register the built-ins)
from .ssd import decode_ssd, matches_ssd  # noqa: E402
from .yolo import decode_yolov5, decode_yolov8, matches_yolov5, matches_yolov8  # noqa: E402

register_decoder("ssd", decode_ssd, matches=matches_ssd, resize="stretch", _builtin=True)
register_decoder("yolov8", decode_yolov8, matches=matches_yolov8, resize="letterbox", _builtin=True)
register_decoder("yolov5", decode_yolov5, matches=matches_yolov5, resize="letterbox", _builtin=True)
register_decoder("end2end", decode_end2end, matches=matches_end2end, resize="letterbox", _builtin=True)
