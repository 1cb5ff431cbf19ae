"""Setting a damaged outbox aside and reading what is still readable from it (pure sqlite3, no paho).

A damaged sqlite file (a bad page, random bytes over it, a file that is not a database) must not
stop delivery nor make a service crash-loop: :func:`set_aside` renames it (with its WAL) to
``<outbox>.corrupt-<UTC time>``, kept for inspection, and :func:`salvage` reads the queued messages
that can still be read from it, row by row around the damaged pages, so they can be queued again.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import NamedTuple

__all__ = ["Salvaged", "is_corruption", "is_disk_full", "salvage", "set_aside"]

_COLUMNS = "id, topic, payload, qos, retain, created"
_CHUNK = 200


class Salvaged(NamedTuple):
    """What could be read from a damaged outbox: its message rows (``_COLUMNS`` order) and counters."""

    rows: list[tuple]
    counters: dict[str, int]


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "sqlite_errorname", "") or "")


def is_corruption(exc: BaseException) -> bool:
    """True for the errors of a damaged database file (SQLITE_CORRUPT, SQLITE_NOTADB)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    name = _code(exc)
    if name:
        return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def is_disk_full(exc: BaseException) -> bool:
    """True for a full disk (SQLITE_FULL) or a write the file system refused (SQLITE_IOERR_*)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    name = _code(exc)
    if name:
        return name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR")
    text = str(exc).lower()
    return "full" in text or "disk i/o" in text


def set_aside(path: str) -> str:
    """Rename ``path`` and its ``-wal``/``-shm`` companions to ``<path>.corrupt-<UTC time>[-N]``;
    returns the new name. Raises OSError if the file cannot be renamed."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside, n = f"{path}.corrupt-{stamp}", 1
    while os.path.exists(aside):
        n += 1
        aside = f"{path}.corrupt-{stamp}-{n}"
    os.rename(path, aside)
    for suffix in ("-wal", "-shm"):
        try:
            os.rename(path + suffix, aside + suffix)
        except FileNotFoundError:
            pass
    return aside


def salvage(path: str) -> Salvaged:
    """The message rows and counters that can still be read from the damaged outbox at ``path``
    (oldest first). Never raises: an unreadable file gives nothing."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return Salvaged([], {})
    try:
        return Salvaged(_rows(db), _counters(db))
    finally:
        db.close()


def _counters(db: sqlite3.Connection) -> dict[str, int]:
    try:
        return {str(k): int(v) for k, v in db.execute("SELECT name, value FROM counters")}
    except (sqlite3.Error, ValueError, TypeError):
        return {}


def _highest_id(db: sqlite3.Connection) -> int | None:
    for query in ("SELECT max(id) FROM messages", "SELECT seq FROM sqlite_sequence WHERE name = 'messages'"):
        try:
            row = db.execute(query).fetchone()
        except sqlite3.Error:
            continue
        if row and row[0] is not None:
            return int(row[0])
    return None


def _rows(db: sqlite3.Connection) -> list[tuple]:
    """Walk the ids in chunks; around a chunk that cannot be read, skip ahead (doubling) to the
    next readable id, then try the skipped ids one by one when they are few."""
    top = _highest_id(db)
    if top is None:
        return []
    rows: list[tuple] = []
    start = 0
    while start <= top:
        chunk = _read(db, f"SELECT {_COLUMNS} FROM messages WHERE id >= ? ORDER BY id LIMIT {_CHUNK}", start)
        if chunk is not None:
            rows += [r for r in chunk if _usable(r)]
            if len(chunk) < _CHUNK:
                break
            start = chunk[-1][0] + 1
            continue
        step = 1
        while start + step <= top and _read(db, f"SELECT {_COLUMNS} FROM messages WHERE id >= ? ORDER BY id LIMIT 1",
                                            start + step) is None:
            step *= 2
        if step <= 4096:  # the skipped ids, one by one: a damaged leaf loses only its own rows
            for i in range(start, min(start + step, top + 1)):
                one = _read(db, f"SELECT {_COLUMNS} FROM messages WHERE id = ?", i)
                rows += [r for r in one or () if _usable(r)]
        start += step
    return rows


def _read(db: sqlite3.Connection, query: str, arg: int) -> list[tuple] | None:
    try:
        return db.execute(query, (arg,)).fetchall()
    except (sqlite3.Error, ValueError, OverflowError):  # ValueError/OverflowError: garbage decoded as a value
        return None


def _usable(row: tuple) -> bool:
    _id, topic, payload, qos, retain, created = row
    return (isinstance(topic, str) and isinstance(payload, (bytes, str)) and qos in (0, 1, 2)
            and retain in (0, 1) and isinstance(created, (int, float)))
