"""Reading a model's metadata: :func:`read_metadata` and the readers it runs, in order.

The values read (:class:`~edgekit.metadata.ModelMetadata`, :class:`~edgekit.metadata.InputSpec`)
and the ZIP container edgekit writes live in :mod:`edgekit.metadata`, below this module; each
reader here turns one kind of embedded metadata into a ModelMetadata, and read_metadata merges them.

``edgekit``  ``edgekit.json`` written by edgekit-convert (labels, normalisation, layout, SHA-256);
    errors here are ModelErrors: a model edgekit wrote must be intact.
``tflite-metadata``  the standard ``TFLITE_METADATA`` flatbuffer (MediaPipe, Model Maker, TF Hub):
    the label file named by an output tensor, input NormalizationOptions and value range, output names.
``ultralytics``  Ultralytics' ``metadata.json`` ZIP member (class names, imgsz, task, end2end/nms);
    older exports (Ultralytics 8.0-8.2 ``temp_meta.txt``, YOLOv5 ``meta.txt``) carry the same dict as
    a TFLite-Metadata associated file, which is read here too and never taken for a label file.
``zip``  a bare ``labelmap.txt``/``labels.txt`` in the appended ZIP.
"""

from __future__ import annotations

import ast
import json
import os
from dataclasses import asdict
from typing import Any, Callable, Mapping

from .errors import ConfigError, ModelError, UnsafeModelError
from .metadata import MAX_LABELS, METADATA_MEMBER, InputSpec, ModelMetadata, parse_labels, split_model

__all__ = ["read_metadata", "register_metadata_reader", "MetadataReader"]

_LABEL_MEMBERS = ("labelmap.txt", "labels.txt")  # names TFLite Metadata models use

MetadataReader = Callable[[bytes, Mapping[str, bytes], str], "ModelMetadata | None"]
"""``reader(flatbuffer, zip_members, where)``: the metadata it finds, or None when there is none."""
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
    flatbuffer, members = split_model(data, where)
    found: list[tuple[str, ModelMetadata]] = []
    notes: list[str] = []
    for name, reader in _READERS:
        try:
            meta = reader(flatbuffer, members, where)
        except ModelError:
            raise  # edgekit's own metadata is broken: the model is not what edgekit wrote
        except Exception as exc:  # a malformed optional block from another tool: say so, use the rest
            notes.append(f"{name} metadata ignored ({type(exc).__name__}: {exc})")
            continue
        if meta is not None:
            found.append((name, meta))
    return _merge(found, notes)


_MERGED_FIELDS = ("name", "labels", "layout", "task", "input_size", "output_names", "input_range", "quantization",
                  "versions", "created", "sha256", "accuracy")


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


# -- the built-in readers, registered at the end of this module -------------------------------
def _dict_literal(raw: bytes) -> dict | None:
    """A JSON object or Python dict literal (older Ultralytics/YOLOv5 exports), else None."""
    text = raw.decode("utf-8", "replace").strip()
    if not text.startswith("{"):
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        try:
            doc = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    return doc if isinstance(doc, dict) else None


def _edgekit_reader(flatbuffer: bytes, members: Mapping[str, bytes], where: str) -> ModelMetadata | None:
    if METADATA_MEMBER not in members:
        return None
    try:
        doc = json.loads(members[METADATA_MEMBER])
        if not isinstance(doc, dict):
            raise ValueError(f"expected a JSON object, found {type(doc).__name__}")
        return ModelMetadata.from_json_dict(doc)
    except ModelError:
        raise
    except (ValueError, TypeError, KeyError, ConfigError) as exc:
        raise ModelError(f"{where}: the embedded edgekit.json is invalid ({exc}); re-convert the model") from None


def _tflite_metadata_reader(flatbuffer: bytes, members: Mapping[str, bytes], where: str) -> ModelMetadata | None:
    from .tflite_metadata import read_tflite_metadata

    meta = read_tflite_metadata(flatbuffer)
    if meta is None:
        return None
    origin = "TFLite Metadata"
    values: dict[str, Any] = {"name": meta.name}
    origins = {"name": origin}
    notes: list[str] = []
    # A dict in an "associated file" is older Ultralytics/YOLOv5 metadata (the ultralytics reader
    # reads it), not labels.
    label_files = [f for out in meta.outputs for f in out.label_files
                   if not (f in members and _dict_literal(members[f]) is not None)]
    if label_files:
        if label_files[0] in members:
            # The Task library maps class c to line c: no background line is dropped here.
            values["labels"] = _member_labels(members, label_files[0], where)
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


def _member_labels(members: Mapping[str, bytes], member: str, where: str) -> tuple[str, ...]:
    """A label file in the model's ZIP (class c on line c). Raises UnsafeModelError: it numbers a
    class past MAX_LABELS (refused before a list that long is made)."""
    try:
        return parse_labels(members[member].decode("utf-8", "replace"), background_first=False)
    except ConfigError as exc:
        raise UnsafeModelError(f"{where}: {member} in the model's ZIP: {exc} — the metadata is damaged or hostile: "
                               "re-export the model") from None


def _legacy_labels_reader(flatbuffer: bytes, members: Mapping[str, bytes], where: str) -> ModelMetadata | None:
    # A label file in the ZIP without a TFLITE_METADATA block that names it (hand-made models).
    for member in _LABEL_MEMBERS:
        if member in members:
            labels = _member_labels(members, member, where)
            return ModelMetadata(labels=labels, source="zip", origins={"labels": f"model ZIP ({member})"})
    return None


_ULTRALYTICS_MEMBER = "metadata.json"


def _ultralytics_doc(members: Mapping[str, bytes]) -> tuple[str, dict] | None:
    """Ultralytics' metadata: ``metadata.json``, else (older exports) the first member holding a
    dict with class names and a stride or an Ultralytics author."""
    names = [_ULTRALYTICS_MEMBER] + sorted(m for m in members if m != _ULTRALYTICS_MEMBER)
    for member in names:
        if member not in members:
            continue
        doc = _dict_literal(members[member])
        if doc and "names" in doc and ("stride" in doc or "ultralytics" in str(doc.get("author", "")).lower()):
            return member, doc
    return None


def _numbered_names(names: dict, member: str, where: str) -> tuple[str, ...]:
    """Ultralytics' ``{"0": "person", ...}`` as labels by class id (gaps named ``class_N``).

    Raises:
        ValueError: a key that is not an integer (the reader then ignores the block, with a note).
        ModelError: a class id outside 0..MAX_LABELS-1: a list that long is never a model's classes,
            and making it would exhaust memory.
    """
    try:
        ids = {int(k): str(v) for k, v in names.items()}
    except (TypeError, ValueError):
        raise ValueError(f"{member}: class names keyed by non-integers") from None
    bad = next((i for i in ids if not 0 <= i < MAX_LABELS), None)
    if bad is not None:
        raise UnsafeModelError(f"{where}: {member} names class id {bad}; expected ids from 0 to {MAX_LABELS - 1} — "
                         "the metadata is damaged or hostile: re-export the model")
    return tuple(ids.get(i, f"class_{i}") for i in range(max(ids) + 1))


def _ultralytics_reader(flatbuffer: bytes, members: Mapping[str, bytes], where: str) -> ModelMetadata | None:
    found = _ultralytics_doc(members)
    if found is None:
        return None
    member, doc = found
    origin = f"Ultralytics {member}"
    values: dict[str, Any] = {}
    names = doc.get("names")
    if isinstance(names, dict) and names:
        values["labels"] = _numbered_names(names, member, where)
    elif isinstance(names, list) and names:
        if len(names) > MAX_LABELS:
            raise UnsafeModelError(f"{where}: {member} lists {len(names)} class names; expected at most {MAX_LABELS} — "
                             "the metadata is damaged or hostile: re-export the model")
        values["labels"] = tuple(str(n) for n in names)
    if doc.get("task"):
        values["task"] = str(doc["task"])
    imgsz = doc.get("imgsz")
    if isinstance(imgsz, (list, tuple)) and len(imgsz) == 2 and all(isinstance(v, int) for v in imgsz):
        values["input_size"] = (int(imgsz[1]), int(imgsz[0]))  # Ultralytics: (h, w)
    elif isinstance(imgsz, int):
        values["input_size"] = (imgsz, imgsz)
    args = doc.get("args") if isinstance(doc.get("args"), dict) else {}
    if doc.get("end2end") or doc.get("nms") or args.get("nms"):
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
