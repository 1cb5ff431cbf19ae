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
"""

from __future__ import annotations

import ast
import io
import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

from .errors import ConfigError, ModelError

__all__ = [
    "InputSpec",
    "ModelMetadata",
    "read_metadata",
    "register_metadata_reader",
    "embed_metadata",
    "split_model",
    "parse_labels",
    "read_labels",
    "METADATA_MEMBER",
    "SCHEMA_VERSION",
]

METADATA_MEMBER = "edgekit.json"
SCHEMA_VERSION = 1
_LABEL_MEMBERS = ("labelmap.txt", "labels.txt")  # names TFLite Metadata models use
COLOR_ORDERS = ("RGB", "BGR")
RESIZE_MODES = ("stretch", "letterbox")


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
        for key in ("quantization", "versions", "created", "sha256"):
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
        origins = {k: "edgekit" for k in ("name", "labels", "quantization", "versions", "created", "sha256") if doc.get(k)}
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
            source=source,
            origins=origins,
            explicit_input=frozenset(k for k, v in inp.items() if v is not None),
        )


def parse_labels(text: str, background_first: bool = True) -> tuple[str, ...]:
    """Labels from a label file: index = class id.

    Understands one name per line and ``<id> <name>`` lines. With ``background_first`` a first
    line ``???`` (the TF Object Detection label-map convention for the background class, as in
    the TF1 SSD's ``labelmap.txt``) is dropped; label files named by TFLite Metadata map class c
    to line c and keep it.
    """
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    pairs = [line.split(maxsplit=1) for line in lines if line]
    if pairs and all(len(p) == 2 and p[0].isdigit() for p in pairs):
        size = max(int(p[0]) for p in pairs) + 1
        labels = ["???"] * size
        for idx, name in pairs:
            labels[int(idx)] = name.strip()
        return tuple(labels)
    if background_first and lines and lines[0] == "???":
        lines = lines[1:]
    return tuple(lines)


def read_labels(path: str | os.PathLike) -> tuple[str, ...]:
    """Read a label file (see :func:`parse_labels`); raises ConfigError if unreadable or empty."""
    try:
        with open(path, encoding="utf-8") as fh:
            labels = parse_labels(fh.read())
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{os.fspath(path)}: cannot read label file ({exc}); expected UTF-8 text, one label per line") from None
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


def split_model(data: bytes) -> tuple[bytes, dict[str, bytes]]:
    """Split a model into (flatbuffer bytes, members of an appended ZIP)."""
    zf = _open_zip(io.BytesIO(data))
    if zf is None or not zf.infolist():
        return data, {}
    with zf:
        start = min(info.header_offset for info in zf.infolist())
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    return data[:start], members


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


MetadataReader = Callable[[bytes, Mapping[str, bytes], str], "ModelMetadata | None"]
_READERS: list[tuple[str, MetadataReader]] = []


def register_metadata_reader(name: str, reader: MetadataReader) -> None:
    """Add a metadata reader: ``reader(flatbuffer, zip_members, where) -> ModelMetadata | None``.

    Readers run in registration order; for each field the first reader that knows it wins (edgekit's
    own ``edgekit.json`` first, then TFLite Metadata, then Ultralytics' ``metadata.json``).
    """
    _READERS[:] = [(n, r) for n, r in _READERS if n != name] + [(name, reader)]


def read_metadata(model: str | os.PathLike | bytes) -> ModelMetadata:
    """Read embedded metadata from a model path or bytes; an empty ModelMetadata if there is none.

    Every registered reader contributes; ``origins`` says which reader gave each field.
    Raises ModelError for an unreadable edgekit.json (a model edgekit wrote must be intact).
    """
    if isinstance(model, (bytes, bytearray, memoryview)):
        data, where = bytes(model), "model bytes"
    else:
        where = os.fspath(model)
        try:
            with open(where, "rb") as fh:
                data = fh.read()
        except OSError:
            return ModelMetadata()  # the loader reports a missing/unreadable file with a better message
    flatbuffer, members = split_model(data)
    found: list[tuple[str, ModelMetadata]] = []
    notes: list[str] = []
    for name, reader in _READERS:
        try:
            meta = reader(flatbuffer, members, where)
        except ValueError as exc:  # a malformed optional block: say so, use the rest
            notes.append(f"{name} metadata ignored: {exc}")
            continue
        if meta is not None:
            found.append((name, meta))
    return _merge(found, notes)


_MERGED_FIELDS = ("name", "labels", "layout", "task", "input_size", "output_names", "input_range", "quantization",
                  "versions", "created", "sha256")


def _merge(found: list[tuple[str, ModelMetadata]], notes: list[str]) -> ModelMetadata:
    if not found:
        return ModelMetadata(notes=tuple(notes))
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for reader, meta in found:
        for key in _MERGED_FIELDS:
            if key not in values and getattr(meta, key) is not None:
                values[key] = getattr(meta, key)
                origins[key] = meta.origins.get(key, reader)
        notes.extend(meta.notes)
    inp: dict[str, Any] = {}
    for reader, meta in found:  # per InputSpec field, the first reader that set it
        for key, value in asdict(meta.input).items():
            if key not in inp and key in meta.explicit_input:
                inp[key] = value
                origins[f"input.{key}"] = meta.origins.get(f"input.{key}", reader)
    return ModelMetadata(**values, input=InputSpec(**inp), explicit_input=frozenset(inp), source=found[0][0],
                         origins=origins, notes=tuple(notes))


def _edgekit_reader(flatbuffer: bytes, members: Mapping[str, bytes], where: str) -> ModelMetadata | None:
    if METADATA_MEMBER not in members:
        return None
    try:
        doc = json.loads(members[METADATA_MEMBER])
    except ValueError as exc:
        raise ModelError(f"{where}: embedded edgekit.json is unreadable ({exc}); re-convert the model") from None
    return ModelMetadata.from_json_dict(doc)


def _tflite_metadata_reader(flatbuffer: bytes, members: Mapping[str, bytes], where: str) -> ModelMetadata | None:
    from .tflite_metadata import read_tflite_metadata

    meta = read_tflite_metadata(flatbuffer)
    if meta is None:
        return None
    origin = "TFLite Metadata"
    values: dict[str, Any] = {"name": meta.name}
    origins = {"name": origin}
    notes: list[str] = []
    label_files = [f for out in meta.outputs for f in out.label_files]
    if label_files:
        if label_files[0] in members:
            # The Task library maps class c to line c: no background line is dropped here.
            values["labels"] = parse_labels(members[label_files[0]].decode("utf-8", "replace"), background_first=False)
            origins["labels"] = f"{origin} ({label_files[0]})"
        else:
            notes.append(f"TFLite Metadata names label file {label_files[0]!r}, but the model's ZIP has no such member")
    if meta.outputs and any(o.name for o in meta.outputs):
        values["output_names"] = tuple(o.name or "" for o in meta.outputs)
        origins["output_names"] = origin
    inp: dict[str, Any] = {}
    if meta.inputs:
        first = meta.inputs[0]
        if first.mean is not None and first.std is not None:
            inp.update(mean=first.mean, std=first.std)
        if first.color == "RGB":
            inp["color"] = "RGB"
        if first.min and first.max and len(first.min) == 1 and len(first.max) == 1 and first.max[0] > first.min[0]:
            values["input_range"] = (first.min[0], first.max[0])
            origins["input_range"] = f"{origin} (input Stats)"
    for key in inp:
        origins[f"input.{key}"] = origin
    return ModelMetadata(**values, input=InputSpec(**inp), explicit_input=frozenset(inp), source="tflite-metadata",
                         origins=origins, notes=tuple(notes))


def _legacy_labels_reader(flatbuffer: bytes, members: Mapping[str, bytes], where: str) -> ModelMetadata | None:
    # A label file in the ZIP without a TFLITE_METADATA block that names it (hand-made models).
    for member in _LABEL_MEMBERS:
        if member in members:
            labels = parse_labels(members[member].decode("utf-8", errors="replace"), background_first=False)
            return ModelMetadata(labels=labels, source="zip", origins={"labels": f"model ZIP ({member})"})
    return None


_ULTRALYTICS_MEMBER = "metadata.json"


def _ultralytics_reader(flatbuffer: bytes, members: Mapping[str, bytes], where: str) -> ModelMetadata | None:
    raw = members.get(_ULTRALYTICS_MEMBER)
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        try:  # older exports wrote a Python dict literal
            doc = ast.literal_eval(raw.decode("utf-8", "replace"))
        except (ValueError, SyntaxError) as exc:
            raise ValueError(f"{_ULTRALYTICS_MEMBER} is neither JSON nor a dict literal ({exc})") from None
    if not isinstance(doc, dict) or not ({"names", "task", "imgsz"} & set(doc)):
        return None  # some other tool's metadata.json
    origin = "Ultralytics metadata.json"
    values: dict[str, Any] = {}
    names = doc.get("names")
    if isinstance(names, dict) and names:
        try:
            ids = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise ValueError(f"{_ULTRALYTICS_MEMBER}: class names keyed by non-integers") from None
        values["labels"] = tuple(ids.get(i, f"class_{i}") for i in range(max(ids) + 1))
    elif isinstance(names, list) and names:
        values["labels"] = tuple(str(n) for n in names)
    if doc.get("task"):
        values["task"] = str(doc["task"])
    imgsz = doc.get("imgsz")
    if isinstance(imgsz, (list, tuple)) and len(imgsz) == 2:
        values["input_size"] = (int(imgsz[1]), int(imgsz[0]))  # Ultralytics: (h, w)
    elif isinstance(imgsz, int):
        values["input_size"] = (imgsz, imgsz)
    if doc.get("end2end") or doc.get("nms"):
        values["layout"] = "end2end"  # NMS-free head / exported with nms=True: [1, N, 6] rows
    if doc.get("description"):
        values["name"] = str(doc["description"])
    if doc.get("version"):
        values["versions"] = {"ultralytics": str(doc["version"])}
    # Ultralytics preprocessing: RGB, pixels / 255, letterbox with grey 114.
    inp = InputSpec(mean=(0.0,), std=(255.0,), color="RGB", resize="letterbox", pad_value=114)
    origins = {key: origin for key in values}
    origins.update({f"input.{k}": origin for k in ("mean", "std", "color", "resize", "pad_value")})
    return ModelMetadata(**values, input=inp, explicit_input=frozenset(("mean", "std", "color", "resize", "pad_value")),
                         source="ultralytics", origins=origins)


register_metadata_reader("edgekit", _edgekit_reader)
register_metadata_reader("tflite-metadata", _tflite_metadata_reader)
register_metadata_reader("ultralytics", _ultralytics_reader)
register_metadata_reader("zip", _legacy_labels_reader)
