"""Model integrity: the SHA-256 digests ``edgekit-convert`` records, and their verification.

Two digests describe a model file:

- the **flatbuffer digest**, of the bytes before the ZIP that carries the metadata (see
  :mod:`edgekit.metadata`). It is what ``edgekit.json``'s ``sha256`` records: a file cannot hold
  a digest of itself, and re-embedding metadata must not invalidate it;
- the **file digest**, of every byte. A bundle's ``manifest.json`` records it per variant, and
  the planner keys its measured costs by it.

:func:`file_digests` computes both in one read and remembers them per (path, size, mtime,
inode), so the planner and the detector of one process hash a model once.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from typing import Any, BinaryIO

from .errors import ModelError

__all__ = ["file_digests", "flatbuffer_sha256", "verify_model", "check_digest"]

_BLOCK = 1 << 20
_PREFIX = 12  # hex digits shown in messages: enough to tell two digests apart
_cache: dict[tuple[str, int, int, int, int], tuple[str, str]] = {}


def flatbuffer_sha256(model: bytes) -> str:
    """SHA-256 (hex) of the flatbuffer part of ``model`` bytes (what ``edgekit.json`` records)."""
    from .metadata import split_model

    return hashlib.sha256(split_model(model)[0]).hexdigest()


def _zip_start(fh: BinaryIO, size: int) -> int:
    """Offset of an appended ZIP's first member, or ``size`` when there is none.

    Must agree with :func:`edgekit.metadata.split_model` (which works on bytes in memory); only
    the ZIP's central directory at the end of the file is read here.
    """
    try:
        if not zipfile.is_zipfile(fh):
            return size
        fh.seek(0)
        with zipfile.ZipFile(fh) as zf:
            infos = zf.infolist()
            return min(info.header_offset for info in infos) if infos else size
    except (zipfile.BadZipFile, OSError, ValueError):
        return size  # a weight buffer that happens to look like a ZIP end record


def file_digests(path: str | os.PathLike) -> tuple[str, str]:
    """``(whole-file SHA-256, flatbuffer SHA-256)`` of a model file, hex, from one read.

    Cached for the process per (path, size, mtime, inode): a rewritten file is hashed again.
    Raises OSError if the file cannot be read.
    """
    path = os.fspath(path)
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
    if key in _cache:
        return _cache[key]
    whole, flat = hashlib.sha256(), hashlib.sha256()
    with open(path, "rb") as fh:
        boundary = _zip_start(fh, st.st_size)
        fh.seek(0)
        offset = 0
        for block in iter(lambda: fh.read(_BLOCK), b""):
            whole.update(block)
            if offset < boundary:
                flat.update(block[:boundary - offset])
            offset += len(block)
    _cache[key] = digests = (whole.hexdigest(), flat.hexdigest())
    return digests


def check_digest(path: str | os.PathLike, expected: str, found: str, recorded_in: str) -> None:
    """Raise ModelError unless ``found`` equals ``expected`` (hex SHA-256, any case)."""
    expected = expected.strip().lower()
    if found.lower() != expected:
        raise ModelError(f"{os.fspath(path)}: SHA-256 does not match {recorded_in} (expected "
                         f"{expected[:_PREFIX]}…, found {found[:_PREFIX]}…); the file is corrupt or was modified; "
                         "re-download or re-convert it")


def verify_model(path: str | os.PathLike, metadata: Any) -> None:
    """Check a model file against the flatbuffer SHA-256 in its embedded metadata.

    Args:
        path: the model file.
        metadata: its :class:`edgekit.metadata.ModelMetadata`; nothing is checked when it records
            no digest (models not written by ``edgekit-convert``).
    Raises:
        ModelError: the digest differs (one line: which file, expected and found digest prefix).
    """
    expected = getattr(metadata, "sha256", None)
    if not expected:
        return
    try:
        _, found = file_digests(path)
    except OSError as exc:
        raise ModelError(f"{os.fspath(path)}: cannot read the model ({exc.strerror or exc})") from None
    check_digest(path, expected, found, "the digest recorded in its edgekit.json")
