"""Model metadata embedded in a ``.tflite`` file, readable without TensorFlow.

Format: a ZIP archive appended to the flatbuffer, holding ``edgekit.json``. This is the same
mechanism the TFLite Metadata standard uses for its associated files (``labelmap.txt`` …), so
a model keeps loading in every TFLite runtime and models that already carry such a ZIP keep
their members. Reading needs only :mod:`zipfile` and :mod:`json`.

``edgekit.json`` (``schema_version`` 1)::

    {"schema_version": 1, "name": "shapes-yolo", "labels": ["circle", ...],
     "input": {"color": "RGB", "mean": [0, 0, 0], "std": [255, 255, 255],
               "resize": "letterbox", "pad_value": 114},
     "output": {"layout": "yolov8"},
     "quantization": {"mode": "int8", "io": "uint8"},
     "versions": {"edgekit": "0.1.0", "tensorflow": "2.21.0"}, "created": "2026-11-22T10:00:00Z"}

Every field is optional; a missing one means "infer it from the tensors".

This module holds the values (:class:`ModelMetadata`, :class:`InputSpec`), label files and the
appended ZIP; reading every kind of metadata a model may carry (edgekit's, TFLite Metadata,
Ultralytics') is :func:`edgekit.metadata_readers.read_metadata`, which stands on this module.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from .errors import ConfigError, ModelError, UnsafeModelError

__all__ = [
    "InputSpec",
    "ModelMetadata",
    "embed_metadata",
    "split_model",
    "parse_labels",
    "read_labels",
    "METADATA_MEMBER",
    "SCHEMA_VERSION",
]

METADATA_MEMBER = "edgekit.json"
SCHEMA_VERSION = 1
COLOR_ORDERS = ("RGB", "BGR")
RESIZE_MODES = ("stretch", "letterbox")
# What an appended ZIP may hold, read from its headers before anything is inflated: metadata and
# label files are kilobytes, and JSON/literal parsing holds several times its input in objects.
MAX_MEMBER_BYTES = 1 << 20
MAX_MEMBERS = 64
MAX_LABELS = 1 << 16  # class ids a model may name (Ultralytics keys them by number)


@dataclass(frozen=True)
class InputSpec:
    """How to turn pixels into the model's input: ``(pixel - mean) / std`` per channel."""

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    color: str = "RGB"
    resize: str | None = None  # None: the output layout's convention (letterbox for YOLO)
    pad_value: int = 114

    def __post_init__(self) -> None:
        if self.color not in COLOR_ORDERS:
            raise ConfigError(f"colour order must be one of {COLOR_ORDERS}, found {self.color!r}")
        if self.resize is not None and self.resize not in RESIZE_MODES:
            raise ConfigError(f"resize mode must be one of {RESIZE_MODES}, found {self.resize!r}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and len(value) not in (1, 3):
                raise ConfigError(f"{name} needs 1 or 3 values (one per channel), found {len(value)}")
        if self.std is not None and any(s == 0 for s in self.std):
            raise ConfigError("std must not be 0 (the input is divided by it)")


@dataclass(frozen=True)
class ModelMetadata:
    """What edgekit knows about a model beyond its tensors. ``None`` means unknown."""

    name: str | None = None
    labels: tuple[str, ...] | None = None
    input: InputSpec = field(default_factory=InputSpec)
    layout: str | None = None
    quantization: Mapping[str, Any] | None = None
    versions: Mapping[str, str] | None = None
    created: str | None = None
    sha256: str | None = None  # SHA-256 of the flatbuffer part (the bytes before the appended ZIP)
    task: str | None = None  # what the model does, when its metadata says (Ultralytics: detect, segment, pose…)
    input_size: tuple[int, int] | None = None  # (width, height) the model was exported for
    output_names: tuple[str, ...] | None = None  # per graph output, in order (TFLite Metadata)
    input_range: tuple[float, float] | None = None  # the value range a float input expects (TFLite Metadata Stats)
    source: str = "none"  # the first reader that found something: "edgekit", "tflite-metadata", "ultralytics"…
    origins: Mapping[str, str] = field(default_factory=dict)  # field → which metadata it came from
    explicit_input: frozenset = frozenset()  # InputSpec fields the metadata really set (not defaults)
    notes: tuple[str, ...] = ()  # metadata found but not usable, said once to the user
    accuracy: Mapping[str, Any] | None = None  # mAP measured by edgekit-convert --eval (converters.accuracy)

    def to_json_dict(self) -> dict[str, Any]:
        """The ``edgekit.json`` document for this metadata."""
        doc: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        if self.name is not None:
            doc["name"] = self.name
        if self.labels is not None:
            doc["labels"] = list(self.labels)
        doc["input"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.input).items()
                        if v is not None}
        if self.layout is not None:
            doc["output"] = {"layout": self.layout}
        for key in ("quantization", "versions", "created", "sha256", "accuracy"):
            value = getattr(self, key)
            if value is not None:
                doc[key] = dict(value) if isinstance(value, Mapping) else value
        return doc

    @classmethod
    def from_json_dict(cls, doc: Mapping[str, Any], source: str = "edgekit") -> "ModelMetadata":
        """Parse an ``edgekit.json`` document; raises ModelError on an unknown schema version."""
        version = doc.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ModelError(
                f"embedded edgekit.json has schema_version {version!r}, this edgekit reads "
                f"{SCHEMA_VERSION}; upgrade edgekit or re-convert the model"
            )
        inp = dict(doc.get("input") or {})
        for key in ("mean", "std"):
            if inp.get(key) is not None:
                inp[key] = tuple(float(v) for v in inp[key])
        labels = doc.get("labels")
        layout = (doc.get("output") or {}).get("layout")
        origins = {k: "edgekit" for k in ("name", "labels", "quantization", "versions", "created", "sha256", "accuracy")
                   if doc.get(k)}
        if layout:
            origins["layout"] = "edgekit"
        origins.update({f"input.{k}": "edgekit" for k, v in inp.items() if v is not None})
        return cls(
            name=doc.get("name"),
            labels=tuple(labels) if labels is not None else None,
            input=InputSpec(**inp),
            layout=(doc.get("output") or {}).get("layout"),
            quantization=doc.get("quantization"),
            versions=doc.get("versions"),
            created=doc.get("created"),
            sha256=doc.get("sha256"),
            accuracy=doc.get("accuracy"),
            source=source,
            origins=origins,
            explicit_input=frozenset(k for k, v in inp.items() if v is not None),
        )


def parse_labels(text: str, background_first: bool = True) -> tuple[str, ...]:
    """Labels from a label file: index = class id.

    Understands one name per line and ``<id> <name>`` lines. With ``background_first`` a first
    line ``???`` (the TF Object Detection label-map convention for the background class, as in
    the TF1 SSD's ``labelmap.txt``) is dropped; label files named by TFLite Metadata map class c
    to line c and keep it. A TF Object Detection ``label_map.pbtxt`` (``item { id: 1 name: … }``)
    maps id k to class k - 1, as the post-process operator counts (background removed).
    """
    if _PBTXT_ITEM.search(text):
        return _parse_pbtxt(text)
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    pairs = [line.split(maxsplit=1) for line in lines if line]
    if pairs and all(len(p) == 2 and p[0].isdigit() for p in pairs):
        size = _label_count(max(int(p[0]) for p in pairs))
        labels = ["???"] * size
        for idx, name in pairs:
            labels[int(idx)] = name.strip()
        return tuple(labels)
    if background_first and lines and lines[0] == "???":
        lines = lines[1:]
    return tuple(lines)


_PBTXT_ITEM = re.compile(r"^\s*item\s*\{", re.MULTILINE)
_PBTXT_FIELD = re.compile(r"\b(id|name|display_name)\s*:\s*(\d+|\"[^\"]*\"|'[^']*')")


def _parse_pbtxt(text: str) -> tuple[str, ...]:
    items: dict[int, str] = {}
    for block in _PBTXT_ITEM.split(text)[1:]:
        fields = {k: v.strip("\"'") for k, v in _PBTXT_FIELD.findall(block.split("}")[0])}
        if "id" in fields and int(fields["id"]) >= 1:
            items[int(fields["id"]) - 1] = fields.get("display_name") or fields.get("name") or f"class_{fields['id']}"
    if not items:
        return ()
    return tuple(items.get(i, "???") for i in range(_label_count(max(items))))


def _label_count(top: int) -> int:
    """Labels up to class id ``top``; a label file that numbers a class past MAX_LABELS is refused
    before a list that long is made (``2000000000 person`` would be 16 GB)."""
    if top >= MAX_LABELS:
        raise ConfigError(f"the label file numbers class {top}; expected class ids from 0 to {MAX_LABELS - 1}")
    return top + 1


MAX_LABEL_FILE_BYTES = 16 << 20  # a label file past this is not one (/dev/zero, a model given as --labels)


def read_labels(path: str | os.PathLike) -> tuple[str, ...]:
    """Read a label file (see :func:`parse_labels`); raises ConfigError if unreadable or empty."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(MAX_LABEL_FILE_BYTES + 1)
        if len(text) > MAX_LABEL_FILE_BYTES:
            raise ConfigError(f"{os.fspath(path)}: the label file is larger than {MAX_LABEL_FILE_BYTES >> 20} MiB; "
                              "expected UTF-8 text, one label per line")
        labels = parse_labels(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{os.fspath(path)}: cannot read label file ({exc}); expected UTF-8 text, one label per line") from None
    except ConfigError as exc:
        raise ConfigError(str(exc) if str(exc).startswith(os.fspath(path)) else f"{os.fspath(path)}: {exc}") from None
    if not labels:
        raise ConfigError(f"{os.fspath(path)}: label file is empty; expected one label per line")
    return labels


def _open_zip(fileobj: Any) -> zipfile.ZipFile | None:
    try:
        if not zipfile.is_zipfile(fileobj):
            return None
        fileobj.seek(0)
        return zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError, ValueError):
        return None  # a weight buffer that happens to look like a ZIP end record


def split_model(data: bytes, where: str = "model") -> tuple[bytes, dict[str, bytes]]:
    """Split a model into (flatbuffer bytes, members of an appended ZIP).

    Raises ModelError when the ZIP is there but its members cannot be read (a corrupt file).
    """
    zf = _open_zip(io.BytesIO(data))
    if zf is None or not zf.infolist():
        return data, {}
    try:
        with zf:
            infos = zf.infolist()
            _check_member_sizes(infos, where)
            start = min(info.header_offset for info in infos)
            members = {info.filename: _read_member(zf, info, where) for info in infos}
    except ModelError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, RuntimeError, NotImplementedError) as exc:
        raise ModelError(f"{where}: the metadata ZIP appended to the model is corrupt ({exc}); the file is damaged — "
                         "re-download or re-convert it") from None
    return data[:start], members


def _check_member_sizes(infos: list[zipfile.ZipInfo], where: str) -> None:
    """Refuse, from the ZIP's headers alone, an archive too large to be metadata (a ZIP bomb)."""
    if len(infos) > MAX_MEMBERS:
        raise UnsafeModelError(f"{where}: the ZIP appended to the model has {len(infos)} members; expected metadata "
                         f"(at most {MAX_MEMBERS} small files) — this is not a model to trust: re-download or "
                         "re-convert it")
    for info in infos:
        if info.file_size > MAX_MEMBER_BYTES:
            raise UnsafeModelError(f"{where}: the ZIP appended to the model holds {info.filename!r} of "
                             f"{info.file_size} bytes uncompressed; expected metadata of at most "
                             f"{MAX_MEMBER_BYTES} bytes a file — refused without inflating it: re-download or "
                             "re-convert the model")


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    # The header's size bounds what zipfile inflates; read one byte past it all the same, so a
    # member whose data runs past its header is refused rather than trusted.
    with zf.open(info) as fh:
        data = fh.read(MAX_MEMBER_BYTES + 1)
    if len(data) > MAX_MEMBER_BYTES:
        raise UnsafeModelError(f"{where}: the ZIP member {info.filename!r} inflates past {MAX_MEMBER_BYTES} bytes; "
                         "expected small metadata files: re-download or re-convert the model")
    return data


def embed_metadata(model: bytes, metadata: ModelMetadata) -> bytes:
    """Return ``model`` with ``metadata`` embedded, replacing earlier edgekit metadata only."""
    if len(model) < 8 or model[4:8] != b"TFL3":
        raise ModelError("cannot embed metadata: the data is not a TFLite flatbuffer (no 'TFL3' identifier)")
    flatbuffer, members = split_model(model)
    members[METADATA_MEMBER] = json.dumps(metadata.to_json_dict(), indent=1).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return flatbuffer + buf.getvalue()
