"""A float32 copy of a downloaded float16 or dynamic-range ``.tflite``.

Both formats keep the float model's arithmetic and only store its weights smaller: float16 weights
are widened by DEQUANTIZE ops at load time; dynamic-range (hybrid) weights are int8 with their
scales and zero points, widened by DEQUANTIZE ops or inside the hybrid kernels. Storing
``(q - zero_point) * scale`` (or the float16 value) as float32 gives the float model those weights
describe, which is what a full-int8 conversion must start from. A dynamic-range model is not
bit-exact with its float copy: its hybrid kernels also quantize activations on the fly.

Edits go through the flatbuffer object API that ships with ai-edge-litert; tensor names,
signatures, metadata entries and an appended metadata ZIP (edgekit's ``edgekit.json``, TFLite
Metadata's associated files, Ultralytics' ``metadata.json``) are kept.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import numpy as np

from edgekit.errors import ConfigError, ModelError

__all__ = ["FloatCopy", "float_copy", "quantized_activations", "add_signature", "reattach_zip"]

_QUANTIZED_TYPES = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16}


@dataclass(frozen=True)
class FloatCopy:
    """The float32 model and what was widened: ``float16`` / ``dequantized`` weight tensors, and
    ``folded`` DEQUANTIZE ops removed because their input became a float32 constant."""

    model: bytes
    float16: int
    dequantized: int
    folded: int


def _schema():
    try:
        import flatbuffers
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        raise ConfigError("a float copy needs the TFLite schema of ai-edge-litert: pip install ai-edge-litert") from None
    return schema, flatbuffers


def _names(enum) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


def float_copy(data: bytes, where: str = "model") -> FloatCopy:
    """Turn a float16 or dynamic-range TFLite model into float32.

    Args:
        data: the ``.tflite`` bytes, with or without an appended metadata ZIP.
        where: how to name the model in messages (its path).
    Returns:
        a FloatCopy; ``model`` carries the same appended ZIP members as ``data``.
    Raises:
        ConfigError: the model is full-integer (int8/int16 activations), so no exact float model
            can be recovered, or it stores weights in a format this does not widen (int4, blockwise).
        ModelError: the data is not a TFLite flatbuffer.
    """
    schema, flatbuffers = _schema()
    flatbuffer, tail = _split_zip(data, where)
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
    _inline_external_buffers(model, data)
    quantized = quantized_activations(model)
    if quantized:
        raise ConfigError(
            f"{where} is a full-integer model: {len(quantized)} activation tensors are quantized "
            f"(e.g. {quantized[0]!r}), so their float values were rounded to calibration ranges and no exact "
            "float model can be recovered from it. Start from the float32, float16 or dynamic-range export of "
            "the same model (Ultralytics: format=tflite without int8=True; TF: the SavedModel or Keras file).")
    counts = _widen(model, schema)
    _compact(model)
    builder = flatbuffers.Builder(max(1024, len(flatbuffer) * 2))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return FloatCopy(bytes(builder.Output()) + tail, *counts)


def add_signature(data: bytes, key: str = "serving_default") -> bytes:
    """Give a model without signatures one (``key``) over its first subgraph's inputs and outputs,
    named after the tensors; a model that has signatures is returned unchanged. ai-edge-quantizer
    calibrates through a signature, and older converters (Ultralytics' onnx2tf path) write none."""
    schema, flatbuffers = _schema()
    flatbuffer, tail = _split_zip(data, "model")
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
    if model.signatureDefs:
        return data
    _inline_external_buffers(model, data)
    graph = model.subgraphs[0]
    sig = schema.SignatureDefT()
    sig.signatureKey, sig.subgraphIndex = key, 0
    sig.inputs, sig.outputs = [], []
    for indices, maps in ((graph.inputs, sig.inputs), (graph.outputs, sig.outputs)):
        for index in indices:
            entry = schema.TensorMapT()
            entry.name, entry.tensorIndex = _text(graph.tensors[index].name), int(index)
            maps.append(entry)
    model.signatureDefs = [sig]
    builder = flatbuffers.Builder(max(1024, len(flatbuffer) * 2))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()) + tail


def reattach_zip(model: bytes, source: bytes) -> bytes:
    """``model`` (a bare flatbuffer, e.g. from a tool that drops what follows it) with the ZIP
    appended to ``source`` appended again: the labels and metadata travel with the model."""
    flatbuffer, _ = _split_zip(model, "model")
    return flatbuffer + _split_zip(source, "source model")[1]


def quantized_activations(model) -> list[str]:
    """Names of the non-constant tensors of ``model`` (a schema ``ModelT``) that hold quantized
    integers: what makes a model full-integer rather than float16 or dynamic-range."""
    schema, _ = _schema()
    types = _names(schema.TensorType)
    found = []
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            constant = _buffer_data(model, tensor) is not None
            if not constant and types.get(tensor.type) in _QUANTIZED_TYPES and _has_scale(tensor):
                found.append(_text(tensor.name))
    return found


def _split_zip(data: bytes, where: str) -> tuple[bytes, bytes]:
    """(flatbuffer, appended ZIP rewritten for its new position, or b"")."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{where}: not a TFLite flatbuffer (no 'TFL3' identifier)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        return data, b""
    with zf:
        infos = zf.infolist()
        if not infos:
            return data, b""
        start = min(info.header_offset for info in infos)
        out = io.BytesIO()
        # Each member keeps its compression: TFLite Metadata readers require stored associated files.
        with zipfile.ZipFile(out, "w") as rewritten:
            for info in infos:
                rewritten.writestr(info, zf.read(info), compress_type=info.compress_type)
    return data[:start], out.getvalue()


def _inline_external_buffers(model, data: bytes) -> None:
    """Models over 2 GB keep buffers after the flatbuffer (offset/size); bring them inside."""
    for buffer in model.buffers:
        if buffer.offset and buffer.offset > 1 and buffer.size:
            buffer.data = np.frombuffer(data, np.uint8, int(buffer.size), int(buffer.offset)).copy()
            buffer.offset = buffer.size = 0


def _widen(model, schema) -> tuple[int, int, int]:
    """Replace every float16 / quantized weight by float32 and fold the DEQUANTIZE ops they feed."""
    ops = _names(schema.BuiltinOperator)
    dequantize = {i for i, c in enumerate(model.operatorCodes)
                  if ops.get(max(c.builtinCode, c.deprecatedBuiltinCode)) == "DEQUANTIZE"}
    halves = ints = folded = 0
    cache: dict[tuple, int] = {}
    for graph in model.subgraphs:
        kept = []
        for op in graph.operators:
            source = graph.tensors[op.inputs[0]] if op.opcodeIndex in dequantize else None
            if source is not None and _buffer_data(model, source) is not None:
                target = graph.tensors[op.outputs[0]]  # keeps the name the consumers know
                values, kind = _float_values(model, source, schema)
                target.buffer = _add_buffer(model, values, cache, source)
                halves, ints, folded = halves + (kind == "float16"), ints + (kind == "int"), folded + 1
                continue
            kept.append(op)
        graph.operators = kept
        read = {i for op in kept for i in op.inputs if i >= 0}  # not the inputs of folded DEQUANTIZE ops
        for index, tensor in enumerate(graph.tensors):  # hybrid kernels read quantized weights directly
            if index in read and _buffer_data(model, tensor) is not None and _is_weight(tensor, schema):
                values, kind = _float_values(model, tensor, schema)
                tensor.buffer = _add_buffer(model, values, cache, tensor)
                tensor.type, tensor.quantization = schema.TensorType.FLOAT32, None
                halves, ints = halves + (kind == "float16"), ints + (kind == "int")
    return halves, ints, folded


def _is_weight(tensor, schema) -> bool:
    kind = _names(schema.TensorType).get(tensor.type)
    return kind == "FLOAT16" or (kind in _QUANTIZED_TYPES and _has_scale(tensor))


def _float_values(model, tensor, schema) -> tuple[np.ndarray, str]:
    kind = _names(schema.TensorType).get(tensor.type)
    raw = _buffer_data(model, tensor)
    shape = tuple(int(d) for d in tensor.shape) if tensor.shape is not None else ()
    if kind == "FLOAT16":
        return raw.view(np.float16).astype(np.float32).reshape(shape), "float16"
    if kind == "FLOAT32":
        return raw.view(np.float32).reshape(shape), "float32"
    q = tensor.quantization
    if kind not in _QUANTIZED_TYPES or not _has_scale(tensor) or (q.details is not None and q.detailsType):
        raise ConfigError(f"weight tensor {_text(tensor.name)!r} is stored as {kind} "
                          f"{'with block-wise scales ' if q is not None and q.detailsType else ''}"
                          "which a float copy cannot widen yet; only float16, int8, uint8 and int16 weights "
                          "with per-tensor or per-channel scales are supported")
    values = raw.view(_QUANTIZED_TYPES[kind]).astype(np.float32).reshape(shape)
    scale = np.asarray(q.scale, np.float32)
    zero = np.zeros_like(scale) if q.zeroPoint is None else np.asarray(q.zeroPoint, np.float32)
    if scale.size > 1:  # per channel, along quantizedDimension
        axis_shape = [1] * values.ndim
        axis_shape[q.quantizedDimension] = scale.size
        scale, zero = scale.reshape(axis_shape), zero.reshape(axis_shape)
    return ((values - zero) * scale).astype(np.float32), "int"


def _add_buffer(model, values: np.ndarray, cache: dict, tensor) -> int:
    q = tensor.quantization
    key = (tensor.buffer, tensor.type, None if q is None or q.scale is None else tuple(q.scale),
           None if q is None or q.zeroPoint is None else tuple(q.zeroPoint))
    if key not in cache:  # tensors sharing a buffer and its scales share the float buffer too
        schema, _ = _schema()
        buffer = schema.BufferT()
        buffer.data = np.ascontiguousarray(values).view(np.uint8).reshape(-1)
        model.buffers.append(buffer)
        cache[key] = len(model.buffers) - 1
    return cache[key]


def _compact(model) -> None:
    """Drop tensors no op, graph input/output or signature uses (the float16/int8 originals of folded
    DEQUANTIZE ops) and buffers no tensor or metadata entry uses, renumbering the references."""
    for index, graph in enumerate(model.subgraphs):
        used = set(graph.inputs) | set(graph.outputs)
        for op in graph.operators:
            used |= {i for i in op.inputs if i >= 0} | set(op.outputs)
            used |= set(op.intermediates if op.intermediates is not None else [])
        for sig in model.signatureDefs or []:
            if sig.subgraphIndex == index:
                used |= {t.tensorIndex for t in (sig.inputs or []) + (sig.outputs or [])}
        remap = {old: new for new, old in enumerate(sorted(used))}
        graph.tensors = [graph.tensors[i] for i in sorted(used)]
        graph.inputs = [remap[i] for i in graph.inputs]
        graph.outputs = [remap[i] for i in graph.outputs]
        for op in graph.operators:
            op.inputs = [remap[i] if i >= 0 else i for i in op.inputs]
            op.outputs = [remap[i] for i in op.outputs]
            if op.intermediates is not None:
                op.intermediates = [remap[i] for i in op.intermediates]
        for sig in model.signatureDefs or []:
            if sig.subgraphIndex == index:
                for t in (sig.inputs or []) + (sig.outputs or []):
                    t.tensorIndex = remap[t.tensorIndex]
    used_buffers = {0} | {t.buffer for g in model.subgraphs for t in g.tensors}
    used_buffers |= {m.buffer for m in model.metadata or []}
    used_buffers |= set(model.metadataBuffer if model.metadataBuffer is not None else [])
    remap = {old: new for new, old in enumerate(sorted(used_buffers))}
    model.buffers = [model.buffers[i] for i in sorted(used_buffers)]
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            tensor.buffer = remap[tensor.buffer]
    for entry in model.metadata or []:
        entry.buffer = remap[entry.buffer]
    if model.metadataBuffer is not None:
        model.metadataBuffer = [remap[i] for i in model.metadataBuffer]


def _buffer_data(model, tensor) -> np.ndarray | None:
    data = model.buffers[tensor.buffer].data if 0 < tensor.buffer < len(model.buffers) else None
    return None if data is None or len(data) == 0 else np.asarray(data, np.uint8)


def _has_scale(tensor) -> bool:
    q = tensor.quantization
    return q is not None and q.scale is not None and len(q.scale) > 0


def _text(name) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
