"""Embedded metadata: round trip, label files, models stay loadable, TFLite Metadata members kept."""

import json
import zipfile

import pytest

from edgekit import ConfigError, ModelError
from edgekit.metadata import InputSpec, ModelMetadata, embed_metadata, parse_labels, read_labels, split_model
from edgekit.metadata_readers import read_metadata
from edgekit.runtime import create_interpreter


def test_parse_labels_formats():
    assert parse_labels("???\nperson\nbicycle\n") == ("person", "bicycle")  # TF label-map convention
    assert parse_labels("person\n???\ncar\n\n") == ("person", "???", "car")
    assert parse_labels("0  person\n2  car\n") == ("person", "???", "car")  # "<id> <name>" files


def test_read_labels_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read label file"):
        read_labels(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        read_labels(tmp_path / "empty.txt")


def test_round_trip_and_model_still_loads(ssd, tmp_path):
    meta = ModelMetadata(name="ssd", labels=("person", "kite"), input=InputSpec((127.5,), (127.5,), "RGB", "stretch"),
                         layout="ssd", quantization={"mode": "int8", "io": "uint8"}, versions={"edgekit": "0.1.0"})
    out = tmp_path / "with_meta.tflite"
    out.write_bytes(embed_metadata(ssd.read_bytes(), meta))
    back = read_metadata(out)
    assert back.source == "edgekit"
    assert (back.name, back.labels, back.layout, back.input) == (meta.name, meta.labels, meta.layout, meta.input)
    assert back.quantization == {"mode": "int8", "io": "uint8"}
    interpreter = create_interpreter(out, 1)  # still a valid .tflite for the runtime
    assert len(interpreter.get_output_details()) == 4
    # Re-embedding replaces, never stacks.
    again = embed_metadata(out.read_bytes(), ModelMetadata(name="second"))
    assert read_metadata(again).name == "second"
    assert split_model(again)[0] == ssd.read_bytes()


def test_tflite_metadata_labels_are_read_and_kept(shared):
    model = shared / "models" / "ssd_mobilenet_v1_quant" / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29_with_metadata.tflite"
    meta = read_metadata(model)
    assert meta.source == "tflite-metadata" and meta.labels[0] == "person" and len(meta.labels) == 90
    merged = embed_metadata(model.read_bytes(), ModelMetadata(name="x", labels=meta.labels))
    import io
    names = zipfile.ZipFile(io.BytesIO(merged)).namelist()
    assert "labelmap.txt" in names and "edgekit.json" in names


def test_unknown_schema_version_is_a_clear_error(ssd, tmp_path):
    import io
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("edgekit.json", json.dumps({"schema_version": 99}))
    with pytest.raises(ModelError, match="schema_version 99"):
        read_metadata(ssd.read_bytes() + buf.getvalue())


def test_no_metadata_is_empty(ssd):
    meta = read_metadata(ssd)
    assert meta.source == "none" and meta.labels is None and meta.input == InputSpec()


def test_input_spec_validation():
    with pytest.raises(ConfigError, match="one per channel"):
        InputSpec(mean=(1.0, 2.0))
    with pytest.raises(ConfigError, match="must not be 0"):
        InputSpec(std=(0.0,))
    with pytest.raises(ConfigError, match="colour order"):
        InputSpec(color="YUV")


def test_embedding_into_non_tflite_refused():
    with pytest.raises(ModelError, match="TFL3"):
        embed_metadata(b"not a model at all", ModelMetadata())
