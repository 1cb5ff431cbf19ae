"""Read the standard TFLite Metadata (``TFLITE_METADATA``) of a model, without a runtime.

TFLite Metadata (tflite-support's ``metadata_schema.fbs``, file identifier ``M001``) is a second
flatbuffer stored in one of the model's buffers and named ``TFLITE_METADATA`` in the model's
``metadata`` list; the files it names (``labelmap.txt`` …) live in a ZIP appended to the model.
MediaPipe / Raspberry Pi examples (EfficientDet-Lite), Model Maker and the TF Hub detectors carry
it. This module reads only what a detector needs: model name, per-input normalisation
(``NormalizationOptions`` mean/std), value range (``Stats``), colour space, and per-output tensor
names and label files. Field numbers follow the two schemas (a field's slot is its position in
the table; a union takes two slots: type, then value).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["TensorMeta", "TfliteMetadata", "read_tflite_metadata", "model_metadata_buffers"]

_LABEL_FILE_TYPES = (2, 3)  # TENSOR_AXIS_LABELS, TENSOR_VALUE_LABELS
_NORMALIZATION = 1  # ProcessUnitOptions.NormalizationOptions
_IMAGE_PROPERTIES = 2  # ContentProperties.ImageProperties
_COLOR_SPACES = {1: "RGB", 2: "GRAYSCALE"}


class _Table:
    """A flatbuffer table: fields looked up by slot number through the vtable."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf, self.pos = buf, pos

    @classmethod
    def root(cls, buf: bytes) -> "_Table":
        return cls(buf, _u32(buf, 0))

    def _field(self, slot: int) -> int:
        vtable = self.pos - struct.unpack_from("<i", self.buf, self.pos)[0]
        vt_size = struct.unpack_from("<H", self.buf, vtable)[0]
        entry = 4 + 2 * slot
        if entry >= vt_size:
            return 0
        off = struct.unpack_from("<H", self.buf, vtable + entry)[0]
        return self.pos + off if off else 0

    def scalar(self, slot: int, fmt: str, default=0):
        at = self._field(slot)
        return struct.unpack_from("<" + fmt, self.buf, at)[0] if at else default

    def table(self, slot: int) -> "_Table | None":
        at = self._field(slot)
        return _Table(self.buf, at + _u32(self.buf, at)) if at else None

    def string(self, slot: int) -> str | None:
        at = self._field(slot)
        if not at:
            return None
        start = at + _u32(self.buf, at)
        return bytes(self.buf[start + 4: start + 4 + _u32(self.buf, start)]).decode("utf-8", "replace")

    def _vector(self, slot: int) -> tuple[int, int]:
        at = self._field(slot)
        if not at:
            return 0, 0
        start = at + _u32(self.buf, at)
        return start + 4, _u32(self.buf, start)

    def _offsets(self, slot: int) -> tuple[int, int]:
        """A vector of offsets, its length checked against the buffer (a hostile length of 2**32
        would otherwise make a list that long before any read failed)."""
        start, n = self._vector(slot)
        if n > _MAX_ELEMENTS or start + 4 * n > len(self.buf):
            raise struct.error(f"a vector of {n} elements at {start} does not fit the {len(self.buf)}-byte buffer")
        return start, n

    def tables(self, slot: int) -> list["_Table"]:
        start, n = self._offsets(slot)
        return [_Table(self.buf, start + 4 * i + _u32(self.buf, start + 4 * i)) for i in range(n)]

    def strings(self, slot: int) -> list[str]:
        start, n = self._offsets(slot)
        out = []
        for i in range(n):
            s = start + 4 * i + _u32(self.buf, start + 4 * i)
            out.append(bytes(self.buf[s + 4: s + 4 + _u32(self.buf, s)]).decode("utf-8", "replace"))
        return out

    def numbers(self, slot: int, fmt: str) -> tuple:
        start, n = self._vector(slot)
        return struct.unpack_from(f"<{n}{fmt}", self.buf, start) if n else ()

    def bytes_vector(self, slot: int) -> bytes:
        start, n = self._vector(slot)
        return bytes(self.buf[start:start + n])


_MAX_ELEMENTS = 1 << 20  # more tensors, buffers or metadata entries than any model has


def _u32(buf: bytes, at: int) -> int:
    return struct.unpack_from("<I", buf, at)[0]


def model_metadata_buffers(model: bytes) -> dict[str, bytes]:
    """The model's named metadata entries (``Model.metadata``) → the bytes of their buffers.

    Raises ValueError (struct.error/IndexError wrapped) when the flatbuffer is malformed.
    """
    try:
        root = _Table.root(model)
        buffers = root.tables(4)  # Model.buffers
        found = {}
        for entry in root.tables(6):  # Model.metadata: [Metadata{name, buffer}]
            name, index = entry.string(0), entry.scalar(1, "I")
            if name is None or index >= len(buffers):
                continue
            buffer = buffers[index]
            data = buffer.bytes_vector(0)
            offset, size = buffer.scalar(1, "Q"), buffer.scalar(2, "Q")
            if not data and offset > 1 and size:  # large models keep buffers after the flatbuffer
                data = bytes(model[offset:offset + size])
            found[name] = data
        return found
    except (struct.error, IndexError) as exc:
        raise ValueError(f"malformed TFLite flatbuffer ({exc})") from None


@dataclass(frozen=True)
class TensorMeta:
    """What TFLite Metadata says about one tensor. ``None``: not given."""

    name: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    min: tuple[float, ...] | None = None
    max: tuple[float, ...] | None = None
    color: str | None = None
    label_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class TfliteMetadata:
    """The parts of a ``TFLITE_METADATA`` flatbuffer edgekit uses."""

    name: str | None
    inputs: tuple[TensorMeta, ...]
    outputs: tuple[TensorMeta, ...]


def read_tflite_metadata(model: bytes) -> TfliteMetadata | None:
    """Parse the model's ``TFLITE_METADATA`` entry; ``None`` when the model has none.

    Raises ValueError when it is present but malformed.
    """
    data = model_metadata_buffers(model).get("TFLITE_METADATA")
    if not data:
        return None
    if data[4:8] != b"M001":
        raise ValueError(f"TFLITE_METADATA has file identifier {bytes(data[4:8])!r}, expected b'M001'")
    try:
        root = _Table.root(data)
        subgraphs = root.tables(3)  # ModelMetadata.subgraph_metadata
        first = subgraphs[0] if subgraphs else None
        inputs = tuple(_tensor(t) for t in first.tables(2)) if first else ()
        outputs = tuple(_tensor(t) for t in first.tables(3)) if first else ()
        return TfliteMetadata(root.string(0), inputs, outputs)
    except (struct.error, IndexError) as exc:
        raise ValueError(f"malformed TFLITE_METADATA ({exc})") from None


def _tensor(t: _Table) -> TensorMeta:
    mean = std = None
    for unit in t.tables(4):  # TensorMetadata.process_units: [ProcessUnit{options (union)}]
        if unit.scalar(0, "B") == _NORMALIZATION and (opts := unit.table(1)) is not None:
            mean, std = opts.numbers(0, "f") or None, opts.numbers(1, "f") or None
    stats = t.table(5)
    color = None
    content = t.table(3)
    if content is not None and content.scalar(0, "B") == _IMAGE_PROPERTIES and (props := content.table(1)):
        color = _COLOR_SPACES.get(props.scalar(0, "b"))
    labels = tuple(f.string(0) for f in t.tables(6) if f.scalar(2, "b") in _LABEL_FILE_TYPES and f.string(0))
    return TensorMeta(
        name=t.string(0),
        mean=tuple(float(v) for v in mean) if mean else None,
        std=tuple(float(v) for v in std) if std else None,
        min=tuple(float(v) for v in stats.numbers(1, "f")) or None if stats else None,
        max=tuple(float(v) for v in stats.numbers(0, "f")) or None if stats else None,
        color=color,
        label_files=labels,
    )
