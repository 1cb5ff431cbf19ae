"""Test support: build TFLite models laid out the way real exporters lay them out.

Every builder writes one ``.tflite`` file and returns its path. Builders that edit a real model
(``tf2_ssd_layout``, ``with_tflite_metadata``, ``with_ultralytics_metadata``, ``corrupt_at_invoke``)
work on the flatbuffer with the schema shipped in LiteRT (``ai_edge_litert.schema_py_generated``)
and need no TensorFlow; the others build small Keras models and convert them with TensorFlow
(imported lazily). All outputs are deterministic: the same arguments give the same bytes.

The layouts follow the exporters' own code and docs (see each builder's docstring for the facts
and where they come from). This module is test-side only: nothing in ``edgekit`` imports it, and
it never uses edgekit's decoders.

Facts the layouts follow (from the exporters' source and real exports):

* TF2 Object Detection API / Model Maker EfficientDet-Lite TFLite: graph outputs (scores, boxes,
  count, classes) named StatefulPartitionedCall:1, :3, :0, :2; SignatureDef "serving_default" with
  input "images" and outputs output_0 = count, output_1 = scores, output_2 = classes,
  output_3 = boxes (output_k is StatefulPartitionedCall:k).
* TFLite Metadata: a "M001" ModelMetadata flatbuffer in a model buffer named "TFLITE_METADATA",
  associated files (labelmap.txt, TENSOR_VALUE_LABELS on the category output) in a ZIP appended to
  the flatbuffer (tflite-support MetadataPopulator).
* Ultralytics: metadata.json (indent=2, deflated) in a ZIP appended to the .tflite; end-to-end
  heads (YOLOv10 / YOLO26) output [1, max_det, 6] rows x1, y1, x2, y2, score, class, boxes
  normalised 0..1 in TFLite (AutoBackend scales x by w, y by h).
* YOLOv5 TFLite: one output [1, N, 5 + C], xywh normalised, objectness, class scores (sigmoid).

Typical use in a test module::

    @pytest.fixture(scope="session")
    def exported(tmp_path_factory):
        return exporters.Cache(tmp_path_factory.mktemp("exported"))

    def test_something(exported):
        path = exported.tf2_ssd_layout()          # built once per session, then reused
"""

from __future__ import annotations

import functools
import io
import json
import os
import struct
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHAPES_KERAS = REPO / "examples" / "shapes" / "shapes.keras"
SHAPES_INT8 = REPO / "examples" / "shapes" / "shapes_int8.tflite"
SHAPES_LABELS = ("circle", "square", "triangle")
SHAPES_SIZE = 128


def shared_dir() -> Path:
    """The real data folder (EDGEKIT_SHARED_DATA, default ../shared/data), as conftest finds it."""
    return Path(os.environ.get("EDGEKIT_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


def ssd_tf1_path() -> Path:
    """The real TF1 SSD MobileNet v1 export (TFLite_Detection_PostProcess outputs)."""
    return shared_dir() / "models" / "ssd_mobilenet_v1_quant" / "detect.tflite"


# ---------------------------------------------------------------------------------------------
# Flatbuffer plumbing (TFLite schema.fbs via the generated code LiteRT ships)
# ---------------------------------------------------------------------------------------------

TFLITE_IDENTIFIER = b"TFL3"
METADATA_IDENTIFIER = b"M001"
METADATA_BUFFER_NAME = "TFLITE_METADATA"  # MetadataPopulator.METADATA_FIELD_NAME


def _schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _split(data: bytes) -> tuple[bytes, bytes]:
    """(flatbuffer, appended ZIP bytes or b"")."""
    from edgekit.metadata import split_model

    flatbuffer, members = split_model(data)
    return flatbuffer, data[len(flatbuffer):] if members else b""


def _load(path) -> tuple[Any, bytes]:
    """(ModelT, appended zip bytes) of a .tflite file."""
    data = Path(path).read_bytes()
    flatbuffer, tail = _split(data)
    if flatbuffer[4:8] != TFLITE_IDENTIFIER:
        raise ValueError(f"{path}: not a TFLite flatbuffer")
    return _schema().ModelT.InitFromPackedBuf(flatbuffer, 0), tail


def _pack(model) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def _write(dst, data: bytes) -> Path:
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, dst)
    return dst


def _name(tensor) -> str:
    return tensor.name.decode() if isinstance(tensor.name, bytes) else (tensor.name or "")


def _zip_bytes(members: Mapping[str, bytes], compression: int) -> bytes:
    """A ZIP with fixed timestamps (deterministic bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        _write_members(zf, members, compression)
    return buf.getvalue()


def _write_members(zf: zipfile.ZipFile, members: Mapping[str, bytes], compression: int) -> None:
    """Write ``members`` with fixed timestamps and modes, so the bytes are deterministic."""
    for name, content in members.items():
        info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
        info.compress_type = compression
        info.external_attr = 0o600 << 16  # what zipfile.writestr(name, ...) sets
        zf.writestr(info, content)


def _append_zip(flatbuffer: bytes, old_tail: bytes, members: Mapping[str, bytes], compression: int) -> bytes:
    """flatbuffer + ZIP holding the old members (if any) plus ``members``, as zipfile's "a" mode
    would leave it (one archive, its offsets relative to the start of the file)."""
    existing: dict[str, bytes] = {}
    if old_tail:
        with zipfile.ZipFile(io.BytesIO(old_tail)) as zf:
            existing = {i.filename: zf.read(i) for i in zf.infolist()}
    existing.update(members)
    buf = io.BytesIO()
    buf.write(flatbuffer)
    with zipfile.ZipFile(buf, "a") as zf:  # "a" on a non-zip appends a new archive after the data
        _write_members(zf, existing, compression)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# 1. TF2 Object Detection API / EfficientDet-Lite output layout
# ---------------------------------------------------------------------------------------------

# TFLite_Detection_PostProcess outputs, in the op's order (TF1 export: graph outputs in this order,
# named TFLite_Detection_PostProcess, :1, :2, :3).
_PP_ROLES = ("boxes", "classes", "scores", "count")
# What TF2 exports do (checked against real exports and the exporter source):
#  * research/object_detection/export_tflite_graph_lib_tf2.py: the composite post-process function
#    returns (boxes, scores, classes, num_detections), legalised positionally onto the op's
#    (boxes, classes, scores, count), and inference_fn returns that tuple reversed, so the SavedModel
#    signature is output_0 = count, output_1 = scores, output_2 = classes, output_3 = boxes, and the
#    TFLite tensors are StatefulPartitionedCall:k for output_k.
#  * The converter then lists the graph outputs as (scores, boxes, count, classes), i.e.
#    StatefulPartitionedCall:1, :3, :0, :2 (seen on ssd_mobilenet_v2_fpnlite_320x320_coco17 and on
#    Model Maker EfficientDet-Lite, whose tutorial reads output_0 = count, output_1 = scores,
#    output_2 = classes, output_3 = boxes through get_signature_runner(); input key "images").
TF2_GRAPH_ORDER = ("scores", "boxes", "count", "classes")
TF2_SIGNATURE_INDEX = {"count": 0, "scores": 1, "classes": 2, "boxes": 3}


def tf2_ssd_layout(src=None, dst="tf2_ssd.tflite", *, naming: str = "tf2", input_key: str = "images") -> Path:
    """Re-lay the TF1 SSD export the way the TF2 exporter / EfficientDet-Lite lay theirs out.

    Graph outputs are re-ordered to (scores, boxes, count, classes); the weights, operators and
    every other tensor are untouched, so the outputs are the original ones, permuted, bit for bit.

    ``naming="tf2"`` (default, what real TF2 exports do): the four output tensors are named
    ``StatefulPartitionedCall:k`` with k = 1, 3, 0, 2 in graph order, and a SignatureDef
    ``serving_default`` maps ``output_k`` to ``StatefulPartitionedCall:k`` (output_0 = count,
    output_1 = scores, output_2 = classes, output_3 = boxes) and ``input_key`` to the input tensor,
    renamed ``serving_default_<input_key>:0``.
    ``naming="sequential"``: names ``StatefulPartitionedCall:0..3`` and ``output_0..3`` follow the
    graph order (scores, boxes, count, classes) instead; no real exporter does this, but it tells
    apart a decoder that trusts names from one that trusts positions.
    """
    if naming not in ("tf2", "sequential"):
        raise ValueError("naming must be 'tf2' or 'sequential'")
    schema = _schema()
    model, _tail = _load(src or ssd_tf1_path())
    sg = model.subgraphs[0]
    outputs = list(sg.outputs)
    if len(outputs) != 4:
        raise ValueError("expected the 4 TFLite_Detection_PostProcess outputs")
    by_role = dict(zip(_PP_ROLES, outputs))
    new_outputs = [by_role[r] for r in TF2_GRAPH_ORDER]
    sg.outputs = np.asarray(new_outputs, dtype=np.int32)
    sig_index = {}
    for position, role in enumerate(TF2_GRAPH_ORDER):
        k = TF2_SIGNATURE_INDEX[role] if naming == "tf2" else position
        sg.tensors[by_role[role]].name = f"StatefulPartitionedCall:{k}".encode()
        sig_index[k] = by_role[role]
    (input_index,) = list(sg.inputs)
    sg.tensors[input_index].name = f"serving_default_{input_key}:0".encode()

    sig = schema.SignatureDefT()
    sig.signatureKey = "serving_default"
    sig.subgraphIndex = 0
    tin = schema.TensorMapT()
    tin.name, tin.tensorIndex = input_key, int(input_index)
    sig.inputs = [tin]
    sig.outputs = []
    for k in sorted(sig_index):
        tm = schema.TensorMapT()
        tm.name, tm.tensorIndex = f"output_{k}", int(sig_index[k])
        sig.outputs.append(tm)
    model.signatureDefs = [sig]
    return _write(dst, _pack(model))


# ---------------------------------------------------------------------------------------------
# 2. TFLite Metadata (metadata_schema.fbs, file identifier "M001") + associated files in a ZIP
# ---------------------------------------------------------------------------------------------
# Slot numbers below are the field positions in tflite-support's metadata_schema.fbs
# (tensorflow_lite_support/metadata/metadata_schema.fbs); a union field takes two slots
# (<name>_type, then <name>). Checked field by field against the .fbs text:
#   AssociatedFile:        name 0, description 1, type 2 (AssociatedFileType:byte), locale 3, version 4
#   ImageSize:             width 0, height 1
#   ImageProperties:       color_space 0 (ColorSpaceType:byte), default_size 1
#   BoundingBoxProperties: index 0 ([uint]), type 1 (BoundingBoxType:byte), coordinate_type 2 (byte)
#   ValueRange:            min 0, max 1
#   Content:               content_properties_type 0, content_properties 1, range 2
#   NormalizationOptions:  mean 0, std 1
#   ProcessUnit:           options_type 0, options 1
#   Stats:                 max 0, min 1
#   TensorMetadata:        name 0, description 1, dimension_names 2, content 3, process_units 4,
#                          stats 5, associated_files 6
#   SubGraphMetadata:      name 0, description 1, input_tensor_metadata 2, output_tensor_metadata 3,
#                          associated_files 4, input_process_units 5, output_process_units 6
#   ModelMetadata:         name 0, description 1, version 2, subgraph_metadata 3, author 4, license 5,
#                          associated_files 6, min_parser_version 7
# Union member numbers (NONE = 0):
#   ContentProperties:  FeatureProperties 1, ImageProperties 2, BoundingBoxProperties 3, AudioProperties 4
#   ProcessUnitOptions: NormalizationOptions 1, ScoreCalibrationOptions 2, ScoreThresholdingOptions 3,
#                       BertTokenizerOptions 4, SentencePieceTokenizerOptions 5, RegexTokenizerOptions 6

ASSOCIATED_FILE_TYPES = {0: "UNKNOWN", 1: "DESCRIPTIONS", 2: "TENSOR_AXIS_LABELS", 3: "TENSOR_VALUE_LABELS",
                         4: "TENSOR_AXIS_SCORE_CALIBRATION", 5: "VOCABULARY"}
COLOR_SPACES = {0: "UNKNOWN", 1: "RGB", 2: "GRAYSCALE"}
BOUNDING_BOX_TYPES = {0: "UNKNOWN", 1: "BOUNDARIES", 2: "UPPER_LEFT", 3: "CENTER"}
COORDINATE_TYPES = {0: "RATIO", 1: "PIXEL"}
CONTENT_PROPERTIES = {1: "FeatureProperties", 2: "ImageProperties", 3: "BoundingBoxProperties", 4: "AudioProperties"}
PROCESS_UNIT_OPTIONS = {1: "NormalizationOptions", 2: "ScoreCalibrationOptions", 3: "ScoreThresholdingOptions",
                        4: "BertTokenizerOptions", 5: "SentencePieceTokenizerOptions", 6: "RegexTokenizerOptions"}
_CONTENT_FEATURE, _CONTENT_IMAGE, _CONTENT_BBOX = 1, 2, 3
_OPTIONS_NORMALIZATION = 1
_TENSOR_VALUE_LABELS = 3
_RGB = 1
_BOUNDARIES = 1

# The object-detector metadata the TFLite Support MetadataWriter writes
# (metadata/python/tests/testdata/object_detector/ssd_mobilenet_v1.json).
_DETECTOR_DESCRIPTION = ("Identify which of a known set of objects might be present and provide information "
                         "about their positions within the given image or a video stream.")
_OUTPUT_DESCRIPTIONS = {
    "location": "The locations of the detected boxes.",
    "category": "The categories of the detected boxes.",
    "score": "The scores of the detected boxes.",
    "number of detections": "The number of the detected boxes.",
}
# output role from the tensor name, for the two layouts real SSD exports have
_ROLE_BY_TENSOR_NAME = {
    "TFLite_Detection_PostProcess": "location", "TFLite_Detection_PostProcess:1": "category",
    "TFLite_Detection_PostProcess:2": "score", "TFLite_Detection_PostProcess:3": "number of detections",
    "StatefulPartitionedCall:3": "location", "StatefulPartitionedCall:2": "category",
    "StatefulPartitionedCall:1": "score", "StatefulPartitionedCall:0": "number of detections",
}


def _build_metadata_flatbuffer(*, input_name: str, input_description: str, mean, std, stats,
                               outputs: Sequence[tuple[str, str, str | None]], labels_file: str | None,
                               min_parser_version: str = "1.0.0") -> bytes:
    """The ModelMetadata flatbuffer. ``outputs``: (name, description, kind) with kind one of
    "location", "category", "score", "number of detections" or None (plain feature tensor)."""
    import flatbuffers

    b = flatbuffers.Builder(1024)

    def string(s):
        return b.CreateString(s) if s is not None else None

    def float_vector(values):
        return b.CreateNumpyVector(np.asarray(values, dtype=np.float32))

    def uint_vector(values):
        return b.CreateNumpyVector(np.asarray(values, dtype=np.uint32))

    def table_vector(offsets):
        b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    def table(fields: list[tuple[str, int, Any]], nslots: int):
        """fields: (kind, slot, value); kind 'off' (offset), 'i8', 'u8', 'u32'. None values skipped."""
        b.StartObject(nslots)
        for kind, slot, value in fields:
            if value is None:
                continue
            if kind == "off":
                b.PrependUOffsetTRelativeSlot(slot, value, 0)
            elif kind == "i8":
                b.PrependInt8Slot(slot, value, 0)
            elif kind == "u8":
                b.PrependUint8Slot(slot, value, 0)
            elif kind == "u32":
                b.PrependUint32Slot(slot, value, 0)
            else:  # pragma: no cover
                raise ValueError(kind)
        return b.EndObject()

    def associated_file(name, description, ftype):
        n, d = string(name), string(description)
        return table([("off", 0, n), ("off", 1, d), ("i8", 2, ftype)], 5)

    def stats_table(mx=None, mn=None):
        mxv = float_vector(mx) if mx is not None else None
        mnv = float_vector(mn) if mn is not None else None
        return table([("off", 0, mxv), ("off", 1, mnv)], 2)

    def value_range(lo, hi):
        # min/max are int fields with default 0: force them so that {min:2, max:2} is explicit
        b.StartObject(2)
        b.PrependInt32Slot(0, lo, -1)
        b.PrependInt32Slot(1, hi, -1)
        return b.EndObject()

    def content(kind: int, props: int, rng=None):
        return table([("u8", 0, kind), ("off", 1, props), ("off", 2, rng)], 3)

    def tensor_metadata(name, description, content_off, process_units=None, stats_off=None, files=None):
        n, d = string(name), string(description)
        pu = table_vector(process_units) if process_units else None
        af = table_vector(files) if files else None
        return table([("off", 0, n), ("off", 1, d), ("off", 3, content_off), ("off", 4, pu),
                      ("off", 5, stats_off), ("off", 6, af)], 7)

    # input tensor
    image_props = table([("i8", 0, _RGB)], 2)
    in_content = content(_CONTENT_IMAGE, image_props)
    units = []
    if mean and std:  # as InputImageTensorMd: a NormalizationOptions unit only with both
        mv, sv = float_vector(mean), float_vector(std)
        norm = table([("off", 0, mv), ("off", 1, sv)], 2)
        units.append(table([("u8", 0, _OPTIONS_NORMALIZATION), ("off", 1, norm)], 2))
    in_stats = stats_table(*(stats or (None, None)))
    in_meta = tensor_metadata(input_name, input_description, in_content, units, in_stats)

    out_metas = []
    for name, description, kind in outputs:
        files = None
        if kind == "location":
            bbox = table([("off", 0, uint_vector([1, 0, 3, 2])), ("i8", 1, _BOUNDARIES)], 3)
            c = content(_CONTENT_BBOX, bbox, value_range(2, 2))
        else:
            feature = table([], 0)
            c = content(_CONTENT_FEATURE, feature, value_range(2, 2) if kind in ("category", "score") else None)
            if kind == "category" and labels_file:
                files = [associated_file(labels_file, "Labels for categories that the model can recognize.",
                                         _TENSOR_VALUE_LABELS)]
        out_metas.append(tensor_metadata(name, description, c, None, stats_table(), files))

    inputs_vec = table_vector([in_meta])
    outputs_vec = table_vector(out_metas)
    subgraph = table([("off", 2, inputs_vec), ("off", 3, outputs_vec)], 7)
    subgraphs = table_vector([subgraph])
    name, desc, mpv = string("ObjectDetector"), string(_DETECTOR_DESCRIPTION), string(min_parser_version)
    root = table([("off", 0, name), ("off", 1, desc), ("off", 3, subgraphs), ("off", 7, mpv)], 8)
    b.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(b.Output())


def with_tflite_metadata(src, dst, *, labels: Sequence[str] | None = None, mean: Sequence[float] | None = None,
                         std: Sequence[float] | None = None, output_names: Sequence[str] | None = None,
                         input_name: str = "image") -> Path:
    """Add standard TFLite Metadata the way tflite-support's MetadataPopulator does.

    * A ModelMetadata flatbuffer (identifier "M001") is stored as a new model buffer, referenced
      from ``Model.metadata`` by an entry named "TFLITE_METADATA" (replacing an existing one).
    * Input: ImageProperties RGB, NormalizationOptions(mean, std) when both are given, Stats as
      the MetadataWriter computes them ([0]/[255] for uint8; the normalised pixel range for float).
    * Outputs: one TensorMetadata per graph output, in graph order. Names come from ``output_names``
      or, for SSD post-process outputs, from the tensor names ("location", "category", "score",
      "number of detections", as the ObjectDetector MetadataWriter names them). "location" gets
      BoundingBoxProperties BOUNDARIES with index [1, 0, 3, 2] (ymin, xmin, ymax, xmax); "category"
      gets an associated file ``labelmap.txt`` of type TENSOR_VALUE_LABELS when ``labels`` is given.
    * Associated files go into a ZIP (stored, uncompressed: zipfile's default, as the populator
      uses) appended after the flatbuffer; members already packed in ``src`` are kept.
    """
    schema = _schema()
    model, tail = _load(src)
    sg = model.subgraphs[0]
    if output_names is None:
        names = [_name(sg.tensors[i]) for i in sg.outputs]
        try:
            output_names = [_ROLE_BY_TENSOR_NAME[n] for n in names]
        except KeyError:
            raise ValueError(f"cannot tell the output roles from tensor names {names}: pass output_names") from None
    if len(output_names) != len(sg.outputs):
        raise ValueError(f"{len(output_names)} output names for {len(sg.outputs)} outputs")
    outputs = [(n, _OUTPUT_DESCRIPTIONS.get(n, ""), n if n in _OUTPUT_DESCRIPTIONS else None) for n in output_names]

    inp = sg.tensors[sg.inputs[0]]
    # Stats as metadata_writers.metadata_info.InputImageTensorMd computes them: [0]/[255] for a
    # uint8 input, per-channel (0 - mean) / std and (255 - mean) / std for a float32 input with
    # normalisation, none otherwise.
    if inp.type == schema.TensorType.UINT8:
        stats = ([255.0], [0.0])
    elif inp.type == schema.TensorType.FLOAT32 and mean and std:
        stats = ([(255.0 - m) / s for m, s in zip(mean, std)], [(0.0 - m) / s for m, s in zip(mean, std)])
    else:
        stats = None
    h, w = (int(inp.shape[1]), int(inp.shape[2])) if inp.shape is not None and len(inp.shape) == 4 else (0, 0)
    meta = _build_metadata_flatbuffer(
        input_name=input_name,
        input_description=f"Input image to be detected. The expected image is {w} x {h}, with three channels "
                          "(red, blue, and green) per pixel." + (" Each value in the tensor is a single byte between "
                                                                  "0 and 255." if inp.type == schema.TensorType.UINT8 else ""),
        mean=mean, std=std, stats=stats, outputs=outputs,
        labels_file="labelmap.txt" if labels is not None else None)

    buffer = schema.BufferT()
    buffer.data = np.frombuffer(meta, dtype=np.uint8)
    model.metadata = list(model.metadata or [])
    existing = [m for m in model.metadata if (m.name.decode() if isinstance(m.name, bytes) else m.name)
                == METADATA_BUFFER_NAME]
    if existing:
        model.buffers[existing[0].buffer] = buffer
    else:
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = METADATA_BUFFER_NAME
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)
    flatbuffer = _pack(model)
    members = {"labelmap.txt": ("\n".join(labels) + "\n").encode()} if labels is not None else {}
    data = _append_zip(flatbuffer, tail, members, zipfile.ZIP_STORED) if (members or tail) else flatbuffer
    return _write(dst, data)


# --- reading it back (test side only) ---------------------------------------------------------

def _fb_table(buf: bytes, pos: int):
    from flatbuffers.table import Table

    return Table(bytearray(buf) if not isinstance(buf, bytearray) else buf, pos)


def _fb_offset(t, slot: int) -> int:
    return t.Offset(4 + 2 * slot)


def _fb_string(t, slot):
    o = _fb_offset(t, slot)
    return t.String(o + t.Pos).decode() if o else None


def _fb_sub(t, slot):
    from flatbuffers.table import Table

    o = _fb_offset(t, slot)
    return Table(t.Bytes, t.Indirect(o + t.Pos)) if o else None


def _fb_tables(t, slot) -> list:
    from flatbuffers.table import Table

    o = _fb_offset(t, slot)
    if not o:
        return []
    start, n = t.Vector(o), t.VectorLen(o)
    return [Table(t.Bytes, t.Indirect(start + 4 * i)) for i in range(n)]


def _fb_numbers(t, slot, fmt: str) -> list | None:
    o = _fb_offset(t, slot)
    if not o:
        return None
    start, n = t.Vector(o), t.VectorLen(o)
    size = struct.calcsize(fmt)
    return [struct.unpack_from("<" + fmt, t.Bytes, start + i * size)[0] for i in range(n)]


def _fb_scalar(t, slot, fmt: str, default):
    o = _fb_offset(t, slot)
    return struct.unpack_from("<" + fmt, t.Bytes, o + t.Pos)[0] if o else default


def _fb_union(t, slot):
    """(type, Table) of a union whose type is in ``slot`` and value in ``slot + 1``."""
    from flatbuffers.table import Table

    kind = _fb_scalar(t, slot, "B", 0)
    o = _fb_offset(t, slot + 1)
    if not kind or not o:
        return kind, None
    sub = Table(bytearray(), 0)
    t.Union(sub, o)
    return kind, sub


def _read_associated_files(t, slot) -> list[dict]:
    return [{"name": _fb_string(f, 0), "description": _fb_string(f, 1),
             "type": ASSOCIATED_FILE_TYPES.get(_fb_scalar(f, 2, "b", 0), "?"), "locale": _fb_string(f, 3)}
            for f in _fb_tables(t, slot)]


def _read_tensor_metadata(t) -> dict:
    out: dict[str, Any] = {"name": _fb_string(t, 0), "description": _fb_string(t, 1)}
    content = _fb_sub(t, 3)
    if content is not None:
        kind, props = _fb_union(content, 0)
        c: dict[str, Any] = {"type": CONTENT_PROPERTIES.get(kind, kind)}
        if kind == _CONTENT_IMAGE and props is not None:
            c["color_space"] = COLOR_SPACES.get(_fb_scalar(props, 0, "b", 0))
            size = _fb_sub(props, 1)
            if size is not None:
                c["default_size"] = (_fb_scalar(size, 0, "I", 0), _fb_scalar(size, 1, "I", 0))
        elif kind == _CONTENT_BBOX and props is not None:
            c["index"] = _fb_numbers(props, 0, "I")
            c["bbox_type"] = BOUNDING_BOX_TYPES.get(_fb_scalar(props, 1, "b", 0))
            c["coordinate_type"] = COORDINATE_TYPES.get(_fb_scalar(props, 2, "b", 0))
        rng = _fb_sub(content, 2)
        if rng is not None:
            c["range"] = (_fb_scalar(rng, 0, "i", 0), _fb_scalar(rng, 1, "i", 0))
        out["content"] = c
    units = []
    for unit in _fb_tables(t, 4):
        kind, opts = _fb_union(unit, 0)
        u: dict[str, Any] = {"type": PROCESS_UNIT_OPTIONS.get(kind, kind)}
        if kind == _OPTIONS_NORMALIZATION and opts is not None:
            u["mean"], u["std"] = _fb_numbers(opts, 0, "f"), _fb_numbers(opts, 1, "f")
        units.append(u)
    out["process_units"] = units
    norm = [u for u in units if u["type"] == "NormalizationOptions"]
    out["normalization"] = {"mean": norm[0]["mean"], "std": norm[0]["std"]} if norm else None
    stats = _fb_sub(t, 5)
    out["stats"] = {"max": _fb_numbers(stats, 0, "f"), "min": _fb_numbers(stats, 1, "f")} if stats is not None else None
    out["associated_files"] = _read_associated_files(t, 6)
    return out


def metadata_buffer(path) -> bytes | None:
    """The raw "TFLITE_METADATA" buffer of a model, or None."""
    data = Path(path).read_bytes()
    schema = _schema()
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name().decode() == METADATA_BUFFER_NAME:
            buf = model.Buffers(entry.Buffer())
            if buf.Offset() > 1:  # large models keep buffers outside the flatbuffer
                return data[buf.Offset(): buf.Offset() + buf.Size()]
            return buf.DataAsNumpy().tobytes()
    return None


def read_tflite_metadata(path) -> dict:
    """Parse a model's TFLite Metadata (metadata_schema.fbs) and its packed files into a dict:
    name, description, version, author, license, min_parser_version, associated_files,
    subgraph (name, description, associated_files), inputs / outputs (name, description, content,
    process_units, normalization, stats, associated_files) and files ({name: bytes} of the ZIP).
    Raises ValueError when the model has no metadata."""
    raw = metadata_buffer(path)
    if raw is None:
        raise ValueError(f"{path}: no {METADATA_BUFFER_NAME} metadata buffer")
    if raw[4:8] != METADATA_IDENTIFIER:
        raise ValueError(f"{path}: metadata buffer lacks the {METADATA_IDENTIFIER!r} identifier")
    root = _fb_table(raw, struct.unpack_from("<I", raw, 0)[0])
    out: dict[str, Any] = {
        "name": _fb_string(root, 0), "description": _fb_string(root, 1), "version": _fb_string(root, 2),
        "author": _fb_string(root, 4), "license": _fb_string(root, 5),
        "associated_files": _read_associated_files(root, 6), "min_parser_version": _fb_string(root, 7),
    }
    subgraphs = _fb_tables(root, 3)
    out["subgraph_count"] = len(subgraphs)
    if subgraphs:
        sg = subgraphs[0]
        out["subgraph"] = {"name": _fb_string(sg, 0), "description": _fb_string(sg, 1),
                           "associated_files": _read_associated_files(sg, 4)}
        out["inputs"] = [_read_tensor_metadata(t) for t in _fb_tables(sg, 2)]
        out["outputs"] = [_read_tensor_metadata(t) for t in _fb_tables(sg, 3)]
    data = Path(path).read_bytes()
    flatbuffer, tail = _split(data)
    files: dict[str, bytes] = {}
    if tail:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            files = {i.filename: zf.read(i) for i in zf.infolist()}
    out["files"] = files
    return out


# ---------------------------------------------------------------------------------------------
# 3. Ultralytics metadata.json
# ---------------------------------------------------------------------------------------------
# ultralytics/engine/exporter.py: Exporter._add_tflite_metadata appends with
#     zipfile.ZipFile(file, "a", zipfile.ZIP_DEFLATED) ... zf.writestr("metadata.json", json.dumps(self.metadata, indent=2))
# self.metadata = {description, author, date, version, license, docs, stride, task, batch, imgsz,
# names, args ({k: v for the format's arguments}), channels, end2end (YOLO26-era versions)}, then
# "dla" for TensorRT and "kpt_shape" (+ "kpt_names" when the model has them) for pose.
# json.dumps turns the int keys of ``names`` into strings "0", "1", ...
ULTRALYTICS_KEY_ORDER = ("description", "author", "date", "version", "license", "docs", "stride", "task",
                         "batch", "imgsz", "names", "args", "channels", "end2end", "dla", "kpt_shape", "kpt_names")


def ultralytics_metadata(*, names, task: str = "detect", imgsz=(640, 640), **extra) -> dict:
    """The metadata dict Ultralytics' exporter builds, key order included."""
    if isinstance(names, Mapping):
        names_map = {int(k): str(v) for k, v in names.items()}
    else:
        names_map = dict(enumerate(str(n) for n in names))
    base: dict[str, Any] = {
        "description": "Ultralytics YOLOv8n model trained on coco.yaml",
        "author": "Ultralytics",
        "date": "2025-05-20T09:47:08.562527",  # fixed: deterministic output
        "version": "8.3.140",
        "license": "AGPL-3.0 License (https://ultralytics.com/license)",
        "docs": "https://docs.ultralytics.com",
        "stride": 32,
        "task": task,
        "batch": 1,
        "imgsz": [int(imgsz[0]), int(imgsz[1])],
        "names": names_map,
        "args": {"batch": 1, "fraction": 1.0, "half": False, "int8": False, "nms": False},
        "channels": 3,
    }
    if task == "pose" and "kpt_shape" not in extra:
        extra["kpt_shape"] = [17, 3]
    base.update(extra)
    ordered = {k: base[k] for k in ULTRALYTICS_KEY_ORDER if k in base}
    ordered.update({k: v for k, v in base.items() if k not in ordered})
    return ordered


def with_ultralytics_metadata(src, dst, *, names, task: str = "detect", imgsz=(640, 640), **extra) -> Path:
    """Append a ZIP holding ``metadata.json`` exactly as Ultralytics' TFLite exporter does
    (member deflated, JSON with indent=2, keys in the exporter's order; ``names`` keys "0", "1", …).
    ``extra`` overrides or adds keys: e.g. end2end=True, kpt_shape=[17, 3], args={...}, version=...
    An existing metadata.json in ``src`` is replaced; other members are kept."""
    meta = ultralytics_metadata(names=names, task=task, imgsz=imgsz, **extra)
    flatbuffer, tail = _split(Path(src).read_bytes())
    if tail:
        with zipfile.ZipFile(io.BytesIO(tail)) as zf:
            kept = {i.filename: zf.read(i) for i in zf.infolist() if i.filename != "metadata.json"}
        tail = _zip_bytes(kept, zipfile.ZIP_DEFLATED) if kept else b""
    data = _append_zip(flatbuffer, tail, {"metadata.json": json.dumps(meta, indent=2).encode()},
                       zipfile.ZIP_DEFLATED)
    return _write(dst, data)


# ---------------------------------------------------------------------------------------------
# TensorFlow-built models (4, 5, 6)
# ---------------------------------------------------------------------------------------------

def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    return tf


def _convert(model) -> bytes:
    """Convert a Keras model with builtin TFLite ops only (a Flex op would fail the conversion)."""
    tf = _tf()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def _tf_layer(fn, name: str):
    """A Keras layer running ``fn`` (TensorFlow ops) on its input(s). Weights stay in Keras layers
    and the model is converted with from_keras_model (converting a tf.function that calls a Keras
    model through from_concrete_functions loses the weights: they come out as zeros)."""
    import keras

    class _TFOps(keras.layers.Layer):
        def call(self, inputs):
            return fn(inputs)

    return _TFOps(name=name)


def _seed(seed: int = 0) -> None:
    import keras

    keras.utils.set_random_seed(seed)


def _backbone(x, widths=(8, 16, 24), name="b"):
    """A few strided convs; returns the feature maps after each stride-2 stage."""
    from keras import layers

    feats = []
    for i, w in enumerate(widths):
        x = layers.Conv2D(w, 3, strides=2, padding="same", activation="relu", name=f"{name}{i}")(x)
        feats.append(x)
    return feats


# --- 4. YOLOv5-style TFLite export ------------------------------------------------------------
# models/tf.py (TFDetect) in YOLOv5: per level, sigmoid of the raw head, then
#   xy = (y[..., 0:2] * 2 - 0.5 + grid) * stride,  wh = (y[..., 2:4] * 2) ** 2 * anchor_grid,
#   both divided by the image size (xywh normalised 0..1), objectness and class scores stay sigmoid;
# each level is laid out anchor-major as [1, na * ny * nx, 5 + nc] and the levels are concatenated.
YOLOV5_ANCHORS = (((10, 13), (16, 30), (33, 23)), ((30, 61), (62, 45), (59, 119)),
                  ((116, 90), (156, 198), (373, 326)))
YOLOV5_STRIDES = (8, 16, 32)
YOLOV5_PLANTED_PER_LEVEL = 2  # confident rows per level (see yolov5_like)


def yolov5_rows(size: int) -> int:
    return 3 * sum((size // s) ** 2 for s in YOLOV5_STRIDES)


def yolov5_like(dst, num_classes: int = 80, size: int = 320) -> Path:
    """A real TFLite model (float32 in/out) with YOLOv5's TFLite output: [1, N, 5 + C],
    N = 3 * ((s/8)^2 + (s/16)^2 + (s/32)^2); per row cx, cy, w, h (normalised 0..1), objectness,
    C class scores, all after sigmoid. Input [1, s, s, 3] float32 RGB in 0..1 (YOLOv5's TFLite
    input). Weights are random but seeded; biases as YOLOv5 initialises them (objectness
    log(8 / (640/s)^2), classes log(0.6 / (C - 0.99))), so scores are realistic: mostly low; two
    rows per level get +9 on objectness and on one class, so 6 rows have objectness ~0.8-1 and one
    class ~0.98 (whatever the image), like confident detections."""
    import keras
    from keras import layers

    if size % 32:
        raise ValueError("size must be a multiple of 32")
    tf = _tf()
    _seed(0)
    na, no = 3, 5 + num_classes
    inp = keras.Input((size, size, 3), batch_size=1, name="images")
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)  # /2
    x = layers.Conv2D(12, 3, strides=2, padding="same", activation="relu")(x)  # /4
    p3 = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)  # /8
    p4 = layers.Conv2D(24, 3, strides=2, padding="same", activation="relu")(p3)  # /16
    p5 = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(p4)  # /32
    heads = [layers.Conv2D(na * no, 1, name=f"m{level}")(feat) for level, feat in enumerate((p3, p4, p5))]
    model_heads = keras.Model(inp, heads)  # to reach the layers and set YOLOv5's initial biases
    for level, stride in enumerate(YOLOV5_STRIDES):
        layer = model_heads.get_layer(f"m{level}")
        bias = np.zeros((na, no), np.float32)  # channel a * no + k, as YOLOv5's Detect lays them out
        bias[:, 4] = np.log(8 / (640 / stride) ** 2)
        bias[:, 5:] = np.log(0.6 / (num_classes - 0.99))
        kernel, _ = layer.get_weights()
        layer.set_weights([kernel, bias.reshape(-1)])

    def grids(ny, nx, stride, anchors):
        yv, xv = np.meshgrid(np.arange(ny, dtype=np.float32), np.arange(nx, dtype=np.float32), indexing="ij")
        grid = np.stack([xv, yv], -1)[None, None]  # [1, 1, ny, nx, 2]
        grid = np.broadcast_to(grid, (1, na, ny, nx, 2)).reshape(1, na * ny * nx, 2)
        ag = np.asarray(anchors, np.float32).reshape(1, na, 1, 1, 2)
        ag = np.broadcast_to(ag, (1, na, ny, nx, 2)).reshape(1, na * ny * nx, 2)
        return grid.astype(np.float32), ag.astype(np.float32)

    def planted(level, cells):
        """Logit offsets that make a few rows confident (random weights alone give a flat, low
        score map): objectness and one class +9 on YOLOV5_PLANTED_PER_LEVEL rows per level."""
        rng = np.random.default_rng(100 + level)
        offset = np.zeros((1, na * cells, no), np.float32)
        for row in rng.choice(na * cells, YOLOV5_PLANTED_PER_LEVEL, replace=False):
            offset[0, row, 4] = 9.0
            offset[0, row, 5 + int(rng.integers(num_classes))] = 9.0
        return offset

    def forward(heads):
        zs = []
        for level, h in enumerate(heads):
            stride = YOLOV5_STRIDES[level]
            ny = nx = size // stride
            y = tf.reshape(h, [1, ny * nx, na, no])
            y = tf.transpose(y, [0, 2, 1, 3])  # anchor-major
            y = tf.reshape(y, [1, na * ny * nx, no])
            y = tf.sigmoid(y + planted(level, ny * nx))
            grid, ag = grids(ny, nx, stride, YOLOV5_ANCHORS[level])
            xy = (y[..., 0:2] * 2.0 - 0.5 + grid) * (stride / size)
            wh = (y[..., 2:4] * 2.0) ** 2 * (ag / size)
            zs.append(tf.concat([xy, wh, y[..., 4:]], -1))
        return tf.concat(zs, 1)

    out = _tf_layer(forward, "yolov5_detect")(heads)
    return _write(dst, _convert(keras.Model(inp, out)))


# --- 6. refusal fodder ------------------------------------------------------------------------

def classifier(dst, classes: int = 5, size: int = 96) -> Path:
    """An image classifier: input [1, s, s, 3] float32, one output [1, C] (softmax)."""
    import keras
    from keras import layers

    _seed(1)
    inp = keras.Input((size, size, 3), batch_size=1, name="image")
    x = layers.Rescaling(1 / 255.0)(inp)
    x = _backbone(x)[-1]
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return _write(dst, _convert(keras.Model(inp, out)))


def segmenter(dst, classes: int = 4, size: int = 64) -> Path:
    """A semantic segmenter: input [1, s, s, 3] float32, output [1, s, s, C] (per-pixel softmax)."""
    import keras
    from keras import layers

    _seed(2)
    inp = keras.Input((size, size, 3), batch_size=1, name="image")
    x = layers.Rescaling(1 / 255.0)(inp)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = layers.UpSampling2D(2)(x)
    out = layers.Conv2D(classes, 1, activation="softmax", name="segmentation")(x)
    return _write(dst, _convert(keras.Model(inp, out)))


def _yolov8_head(feature, num_classes: int, size: int):
    """A YOLOv8-style [B, 4+C, N] head on one stride-8 feature map (cx, cy, w, h normalised;
    sigmoid class scores). Cell centres from constants; dynamic batch friendly."""
    from keras import layers, ops

    raw = layers.Conv2D(4 + num_classes, 1, name="head")(feature)
    g = size // 8
    yv, xv = np.meshgrid(np.arange(g, dtype=np.float32), np.arange(g, dtype=np.float32), indexing="ij")
    centres = np.stack([(xv + 0.5) / g, (yv + 0.5) / g], -1)[None]  # [1, g, g, 2]
    cxy = ops.tanh(raw[..., 0:2]) * (1.5 / g) + centres
    wh = ops.sigmoid(raw[..., 2:4]) * 0.6
    out = ops.concatenate([cxy, wh, ops.sigmoid(raw[..., 4:])], axis=-1)
    out = layers.Reshape((g * g, 4 + num_classes))(out)
    return layers.Permute((2, 1), name="detections")(out)


def _stride8(x):
    from keras import layers

    for w in (8, 12, 16):
        x = layers.Conv2D(w, 3, strides=2, padding="same", activation="relu")(x)
    return x


def two_inputs(dst, size: int = 64) -> Path:
    """Two image inputs ([1, s, s, 3] each, float32) feeding one YOLOv8-style output [1, 7, N]."""
    import keras
    from keras import layers

    _seed(3)
    a = keras.Input((size, size, 3), batch_size=1, name="image_a")
    b = keras.Input((size, size, 3), batch_size=1, name="image_b")
    x = layers.Concatenate()([layers.Rescaling(1 / 255.0)(a), layers.Rescaling(1 / 255.0)(b)])
    out = _yolov8_head(_stride8(x), 3, size)
    return _write(dst, _convert(keras.Model([a, b], out)))


def dynamic_batch(dst, size: int = 64) -> Path:
    """A YOLOv8-style detector whose input shape signature is [-1, s, s, 3] (dynamic batch);
    output [B, 7, N]. Everything else is ordinary."""
    import keras
    from keras import layers

    _seed(4)
    inp = keras.Input((size, size, 3), name="image")  # batch None -> shape_signature[0] == -1
    x = layers.Rescaling(1 / 255.0)(inp)
    out = _yolov8_head(_stride8(x), 3, size)
    return _write(dst, _convert(keras.Model(inp, out)))


def pose_like(dst, size: int = 320) -> Path:
    """Ultralytics pose layout: input [1, s, s, 3] float32 0..1, output [1, 56, N] (rows: cx, cy, w,
    h normalised, person score, then 17 keypoints x, y, visibility; x/y normalised, visibility
    sigmoid), N = (s/8)^2 + (s/16)^2 + (s/32)^2; plus Ultralytics metadata task=pose,
    kpt_shape [17, 3], names {"0": "person"}."""
    import keras
    from keras import layers

    tf = _tf()
    _seed(5)
    inp = keras.Input((size, size, 3), batch_size=1, name="images")
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = layers.Conv2D(12, 3, strides=2, padding="same", activation="relu")(x)
    feats = []
    for w in (16, 24, 32):
        x = layers.Conv2D(w, 3, strides=2, padding="same", activation="relu")(x)
        feats.append(x)
    heads = [layers.Conv2D(56, 1, name=f"pose{i}")(f) for i, f in enumerate(feats)]

    def forward(heads):
        rows = []
        for h, stride in zip(heads, (8, 16, 32)):
            g = size // stride
            yv, xv = np.meshgrid(np.arange(g, dtype=np.float32), np.arange(g, dtype=np.float32), indexing="ij")
            cx = ((xv + 0.5) / g).reshape(1, g * g, 1)
            cy = ((yv + 0.5) / g).reshape(1, g * g, 1)
            y = tf.reshape(h, [1, g * g, 56])
            box = tf.concat([cx + tf.tanh(y[..., 0:1]) / g, cy + tf.tanh(y[..., 1:2]) / g,
                             tf.sigmoid(y[..., 2:4]) * (4.0 / g)], -1)
            score = tf.sigmoid(y[..., 4:5] - 4.0)
            k = tf.reshape(y[..., 5:], [1, g * g, 17, 3])
            kx = tf.reshape(cx, [1, g * g, 1]) + tf.tanh(k[..., 0]) * (2.0 / g)
            ky = tf.reshape(cy, [1, g * g, 1]) + tf.tanh(k[..., 1]) * (2.0 / g)
            kv = tf.sigmoid(k[..., 2])
            kpts = tf.reshape(tf.stack([kx, ky, kv], -1), [1, g * g, 51])
            rows.append(tf.concat([box, score, kpts], -1))
        return tf.transpose(tf.concat(rows, 1), [0, 2, 1])

    raw = _convert(keras.Model(inp, _tf_layer(forward, "pose_head")(heads)))
    tmp = Path(str(dst) + ".raw")
    _write(tmp, raw)
    try:
        return with_ultralytics_metadata(tmp, dst, names=["person"], task="pose", imgsz=(size, size),
                                         description="Ultralytics YOLOv8n-pose model trained on coco-pose.yaml",
                                         kpt_shape=[17, 3])
    finally:
        tmp.unlink(missing_ok=True)


# --- 5. NMS-free end-to-end head (YOLOv10 / YOLO26 layout) on the shapes demo ----------------
# ultralytics/nn/modules/head.py, Detect.postprocess (end2end): boxes, scores = preds.split([4, nc]);
# top-k over the max class score; torch.cat([boxes, scores, conf]) -> [B, max_det, 6] with rows
# [x1, y1, x2, y2, max_class_prob, class_index] (class index as float), best first; max_det 300 by
# default. For TFLite the head divides the boxes by the input size (normalised 0..1) and
# AutoBackend multiplies x1, x2 by w and y1, y2 by h when x.shape[-1] == 6 or end2end.
# The shapes demo was trained one-to-many (it needs NMS), so the NMS-free layout is produced with
# the builtin NON_MAX_SUPPRESSION_V5 (class-aware via per-class box offsets, as Ultralytics' NMS
# does): same columns and order, rows sorted by score, unused rows all zeros (a real one-to-one
# head fills all max_det rows with low-score top-k candidates instead).

END2END_MAX_DET = 100


@functools.lru_cache(maxsize=4)
def _load_keras(path: str):
    import keras

    return keras.models.load_model(path, compile=False)


def shapes_input(image, size: int = SHAPES_SIZE, pad: int = 114) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Letterbox a PIL image (or path) into the shapes demo input: [1, s, s, 3] float32 pixels
    0..255 (the model rescales by 1/255 itself), grey 114 padding, centred; returns (input,
    scale, (pad_x, pad_y)) so boxes map back with (v - pad) / scale."""
    from PIL import Image

    img = Image.open(image).convert("RGB") if not isinstance(image, Image.Image) else image.convert("RGB")
    w, h = img.size
    scale = min(size / w, size / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = np.full((size, size, 3), pad, np.uint8)
    px, py = (size - nw) // 2, (size - nh) // 2
    canvas[py:py + nh, px:px + nw] = np.asarray(img.resize((nw, nh), Image.BILINEAR))
    return canvas.astype(np.float32)[None], scale, (px, py)


def end2end_shapes(dst, *, pixels: bool = False, max_det: int = END2END_MAX_DET, conf: float = 0.25,
                   iou: float = 0.45, src=None) -> Path:
    """The shapes demo (``examples/shapes/shapes.keras``: input [1, 128, 128, 3] float32 pixels
    0..255, letterboxed with 114; YOLOv8-style head [1, 7, 256], cx, cy, w, h normalised, sigmoid
    class scores) with an end-to-end head: one output [1, max_det, 6] of rows
    x1, y1, x2, y2, score, class (class as float), sorted by score, zero rows after the last
    detection. Boxes normalised 0..1 (Ultralytics' TFLite convention) or, with ``pixels=True``, in
    input pixels. Detections: score >= conf, class-aware NMS at ``iou``. Builtin ops only."""
    import keras

    tf = _tf()
    base = _load_keras(str(src or SHAPES_KERAS))
    size = int(base.input_shape[1])
    inp = keras.Input((size, size, 3), batch_size=1, name="images")
    det = base(inp)

    def head(det):
        p = tf.transpose(det[0], [1, 0])  # [N, 4 + C]
        cx, cy, w, h = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
        boxes = tf.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
        cls_scores = p[:, 4:]
        score = tf.reduce_max(cls_scores, -1)
        cls = tf.cast(tf.argmax(cls_scores, -1), tf.float32)
        shifted = boxes + cls[:, None] * 2.0  # boxes of different classes never overlap
        idx, _scores, valid = tf.raw_ops.NonMaxSuppressionV5(
            boxes=shifted, scores=score, max_output_size=max_det, iou_threshold=iou, score_threshold=conf,
            soft_nms_sigma=0.0, pad_to_max_output_size=True)
        if pixels:
            boxes = boxes * float(size)
        rows = tf.gather(tf.concat([boxes, score[:, None], cls[:, None]], -1), idx)
        keep = tf.cast(tf.range(max_det) < valid, tf.float32)[:, None]
        return (rows * keep)[None]

    out = _tf_layer(head, "end2end")(det)
    return _write(dst, _convert(keras.Model(inp, out)))


# ---------------------------------------------------------------------------------------------
# 7. A model that loads and allocates but fails at the first invoke()
# ---------------------------------------------------------------------------------------------

def corrupt_at_invoke(src=None, dst="corrupt.tflite") -> Path:
    """The real SSD with the constant ``anchors`` tensor (input 2 of TFLite_Detection_PostProcess)
    left without data: its buffer is emptied. The model loads and allocate_tensors() succeeds
    (the op's Prepare only checks shapes); the first invoke() raises
    ``RuntimeError: Input tensor <i> lacks data``."""
    model, tail = _load(src or ssd_tf1_path())
    sg = model.subgraphs[0]
    for op in sg.operators:
        code = model.operatorCodes[op.opcodeIndex]
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
        if custom == "TFLite_Detection_PostProcess":
            anchors = sg.tensors[op.inputs[2]]
            if model.buffers[anchors.buffer].data is None:
                raise ValueError("the anchors tensor has no data already")
            model.buffers[anchors.buffer].data = None
            return _write(dst, _pack(model) + tail)
    raise ValueError("no TFLite_Detection_PostProcess operator: pass an SSD export")


# ---------------------------------------------------------------------------------------------
# Cache: each model built once per directory (per test session)
# ---------------------------------------------------------------------------------------------

class Cache:
    """Builds each model once into ``directory`` and returns the cached path afterwards.
    Default arguments point at the real models in the shared data folder."""

    def __init__(self, directory) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._done: dict[str, Path] = {}

    def _get(self, key: str, build) -> Path:
        if key not in self._done:
            path = self.directory / f"{key}.tflite"
            self._done[key] = path if path.exists() else build(path)
        return self._done[key]

    def tf2_ssd_layout(self, naming: str = "tf2") -> Path:
        return self._get(f"tf2_ssd_{naming}", lambda p: tf2_ssd_layout(ssd_tf1_path(), p, naming=naming))

    def ssd_with_metadata(self) -> Path:
        """The TF1 SSD with TFLite Metadata (labels from the shared labelmap, 127.5/127.5)."""
        labels = (shared_dir() / "models" / "ssd_mobilenet_v1_quant" / "labelmap_from_metadata.txt").read_text().split("\n")
        labels = [x for x in labels if x]
        return self._get("ssd_tflite_metadata", lambda p: with_tflite_metadata(
            ssd_tf1_path(), p, labels=labels, mean=[127.5], std=[127.5]))

    def tf2_ssd_with_metadata(self) -> Path:
        """The TF2-layout SSD with TFLite Metadata, outputs named in graph order."""
        labels = (shared_dir() / "models" / "ssd_mobilenet_v1_quant" / "labelmap_from_metadata.txt").read_text().split("\n")
        labels = [x for x in labels if x]
        return self._get("tf2_ssd_tflite_metadata", lambda p: with_tflite_metadata(
            self.tf2_ssd_layout(), p, labels=labels, mean=[127.5], std=[127.5]))

    def yolov5_like(self, num_classes: int = 80, size: int = 320) -> Path:
        return self._get(f"yolov5_like_{num_classes}_{size}", lambda p: yolov5_like(p, num_classes, size))

    def classifier(self, classes: int = 5) -> Path:
        return self._get(f"classifier_{classes}", lambda p: classifier(p, classes))

    def segmenter(self) -> Path:
        return self._get("segmenter", segmenter)

    def two_inputs(self) -> Path:
        return self._get("two_inputs", two_inputs)

    def dynamic_batch(self) -> Path:
        return self._get("dynamic_batch", dynamic_batch)

    def pose_like(self) -> Path:
        return self._get("pose_like", pose_like)

    def end2end_shapes(self, pixels: bool = False) -> Path:
        return self._get(f"end2end_shapes_{'pixels' if pixels else 'normalised'}",
                         lambda p: end2end_shapes(p, pixels=pixels))

    def corrupt_at_invoke(self) -> Path:
        return self._get("corrupt_at_invoke", lambda p: corrupt_at_invoke(ssd_tf1_path(), p))
