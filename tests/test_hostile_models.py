"""Hostile model metadata (issue 16): refused from sizes and headers, with exit 4 and one line,
by ``info`` and ``detect``, under a real 300 MB cgroup limit (../shared/tools/constrained)."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from hostile import run_constrained

from conftest import EXAMPLES
from edgekit.errors import ModelError, UnsafeModelError
from edgekit.metadata import MAX_MEMBER_BYTES, split_model
from edgekit.metadata_readers import read_metadata

SHAPES = EXAMPLES / "shapes" / "shapes_int8.tflite"
IMAGE = EXAMPLES / "shapes" / "images" / "scene_0.png"


def _with_members(path, extra: dict[str, bytes], keep: bool = True) -> bytes:
    flatbuffer, members = split_model(SHAPES.read_bytes())
    members = members if keep else {}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in {**members, **extra}.items():
            zf.writestr(name, data)
    path.write_bytes(flatbuffer + buf.getvalue())
    return path.read_bytes()


@pytest.fixture(scope="module")
def huge_class_id(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "names_huge.tflite"
    doc = {"names": {"0": "person", "2000000000": "x"}, "stride": 32, "author": "Ultralytics"}
    _with_members(path, {"metadata.json": json.dumps(doc).encode()})
    return path


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory):
    """The shapes model with a 3 GiB member of zeros deflated into its ZIP (a few MB on disk)."""
    path = tmp_path_factory.mktemp("models") / "zipbomb.tflite"
    flatbuffer, members = split_model(SHAPES.read_bytes())
    with open(path, "wb") as fh:
        fh.write(flatbuffer)
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
            with zf.open("labels.txt", "w", force_zip64=True) as member:
                chunk = bytes(1 << 24)
                for _ in range(3 * 64):
                    member.write(chunk)
        fh.write(archive.getvalue())
    return path


@pytest.mark.parametrize("command", ["info", "detect"])
@pytest.mark.parametrize("model", ["huge_class_id", "zip_bomb"])
def test_hostile_metadata_is_refused_with_one_line_under_300mb(model, command, request):
    path = request.getfixturevalue(model)
    args = [command, str(path)] + ([str(IMAGE)] if command == "detect" else [])
    r = run_constrained(*args, mem="300M")
    assert not r.oom_killed, r
    assert r.rc == ModelError.exit_code, r
    assert len(r.lines) == 1, r.lines
    assert str(path.name) in r.lines[0] and ("class id 2000000000" in r.lines[0] or "3221225472 bytes" in r.lines[0])


@pytest.mark.parametrize("command", ["info", "detect"])
@pytest.mark.parametrize("text", ["0 circle\n2000000000 square\n", "item {\n  id: 2000000001\n  name: 'x'\n}\n"],
                         ids=["numbered-lines", "pbtxt"])
def test_a_label_file_numbering_a_huge_class_is_refused_under_300mb(text, command, tmp_path):
    """The Ultralytics names key was bounded, not the model's own label file: ``2000000000 square``
    (or a label_map.pbtxt id) made a list of two billion labels, 16 GB."""
    path = tmp_path / "labels_huge.tflite"
    _with_members(path, {"labels.txt": text.encode()}, keep=False)
    args = [command, str(path)] + ([str(IMAGE)] if command == "detect" else [])
    r = run_constrained(*args, mem="300M")
    assert not r.oom_killed, r
    assert r.rc == ModelError.exit_code, r
    assert len(r.lines) == 1 and path.name in r.lines[0] and "numbers class 2000000000" in r.lines[0], r.lines


def test_a_user_label_file_that_never_ends_is_refused(tmp_path):
    """--labels /dev/zero read forever (one endless line)."""
    from edgekit.errors import ConfigError
    from edgekit.metadata import MAX_LABEL_FILE_BYTES, read_labels

    big = tmp_path / "labels.txt"
    with open(big, "wb") as fh:
        fh.truncate(MAX_LABEL_FILE_BYTES + 1)
    with pytest.raises(ConfigError, match="larger than 16 MiB"):
        read_labels(big)
    numbered = tmp_path / "numbered.txt"
    numbered.write_text("0 a\n2000000000 b\n")
    with pytest.raises(ConfigError, match=r"numbered.txt: the label file numbers class 2000000000"):
        read_labels(numbered)


def test_zip_member_sizes_are_read_from_headers(zip_bomb):
    with pytest.raises(UnsafeModelError, match="refused without inflating"):
        read_metadata(zip_bomb)


def test_a_label_file_past_the_cap_is_refused(tmp_path):
    data = _with_members(tmp_path / "m.tflite", {"labels.txt": b"a\n" * (MAX_MEMBER_BYTES // 2 + 10)})
    with pytest.raises(UnsafeModelError):
        read_metadata(data)


def test_a_long_names_list_is_refused(tmp_path):
    doc = {"names": ["x"] * 70000, "stride": 32}
    _with_members(tmp_path / "m.tflite", {"metadata.json": json.dumps(doc).encode()})
    with pytest.raises(UnsafeModelError, match="70000 class names"):
        read_metadata(tmp_path / "m.tflite")


def test_sparse_names_within_the_limit_still_read(tmp_path):
    doc = {"names": {"0": "a", "3": "d"}, "stride": 32}
    _with_members(tmp_path / "m.tflite", {"metadata.json": json.dumps(doc).encode()}, keep=False)
    assert read_metadata(tmp_path / "m.tflite").labels == ("a", "class_1", "class_2", "d")


def test_a_flatbuffer_vector_length_past_the_buffer_is_refused_without_a_list_that_long():
    import struct

    from edgekit.tflite_metadata import model_metadata_buffers

    # root table at 8: its vtable says field 4 (Model.buffers) is a vector claiming 2**32-1 elements
    buf = bytearray(64)
    struct.pack_into("<I", buf, 0, 24)  # root offset → table at 24
    struct.pack_into("<HHHHHHHH", buf, 8, 16, 8, 0, 0, 0, 0, 4, 0)  # vtable at 8: 8 slots, slot 4 at +4
    struct.pack_into("<i", buf, 24, 24 - 8)  # table → vtable
    struct.pack_into("<I", buf, 28, 8)  # slot 4: vector at 28 + 8 = 36
    struct.pack_into("<I", buf, 36, 0xFFFFFFFF)
    with pytest.raises(ValueError, match="does not fit"):
        model_metadata_buffers(bytes(buf))
