"""A bounded, durable outbox for MQTT messages: sqlite3 in WAL mode.

Every message is written here before it is published and deleted only when the broker has
acknowledged it (QoS 1 PUBACK), so messages survive a broker outage, a network cut and a
SIGKILL of the publisher; a restarted publisher delivers the backlog. Delivery is therefore
at-least-once: consumers de-duplicate by the payload's event id.

Full outbox (``max_messages``) or full disk: the oldest messages are dropped and counted
(``dropped``, persisted), so detection never blocks. ``synchronous=NORMAL`` in WAL mode
survives a process crash; ``durable=True`` (``synchronous=FULL``) also survives power loss,
at the cost of an fsync per message (slow on SD cards).

It holds what the camera saw, so it is private whatever the umask: the database and its WAL and
shared-memory files are 0600, and its folder 0700 when edgekit creates it or when it is edgekit's
default (``$XDG_STATE_HOME/edgekit``, tightened if an older version left it wider). A file or default
folder owned by another user is refused (ConfigError).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass

from ..errors import ConfigError
from ..userdirs import create_private, private_dir, private_file, state_dir

__all__ = ["Outbox", "OutboxMessage"]

# SQLite creates these beside the database with the database file's mode; an older run may have left them wider.
_COMPANIONS = ("-wal", "-shm", "-journal")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float


class Outbox:
    """Thread-safe FIFO of messages on disk.

    Args:
        path: the sqlite file (its directory is created).
        max_messages: bound; beyond it the oldest are dropped and counted.
        durable: fsync every commit (survives power loss, not only a crash).
    """

    def __init__(self, path: str | os.PathLike, max_messages: int = 100_000, durable: bool = False) -> None:
        if max_messages < 1:
            raise ConfigError(f"outbox size must be at least 1 message, found {max_messages}")
        self.path = os.fspath(path)
        self.max_messages = max_messages
        self._lock = threading.Lock()
        try:
            self._make_private()
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._db.executescript(_SCHEMA)
            for suffix in _COMPANIONS:
                private_file(self.path + suffix)
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"outbox {self.path}: cannot open ({exc}); pass a writable path (--outbox)") from None

    def _make_private(self) -> None:
        """Folder 0700 (edgekit's default one, or one created here), database and companions 0600."""
        folder = os.path.dirname(os.path.abspath(self.path))
        private_dir(folder, tighten=os.path.abspath(folder) == os.path.abspath(state_dir()))
        create_private(self.path)
        for suffix in _COMPANIONS:
            private_file(self.path + suffix)

    def put(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int | None:
        """Store a message; returns its id, or None if it could not be stored (disk full, counted).
"""
        with self._lock:
            for _ in range(2):
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    cur = self._db.execute(
                        "INSERT INTO messages (topic, payload, qos, retain, created) VALUES (?, ?, ?, ?, ?)",
                        (topic, payload, qos, int(retain), time.time()))
                    over = self._count() - self.max_messages
                    if over > 0:
                        self._drop_oldest(over)
                    self._db.execute("COMMIT")
                    return cur.lastrowid
                except sqlite3.OperationalError as exc:
                    self._rollback()
                    if "full" not in str(exc).lower():
                        raise
                    # Disk full: make room by dropping the oldest tenth, then try once more.
                    self._db.execute("BEGIN IMMEDIATE")
                    self._drop_oldest(max(1, self._count() // 10))
                    self._db.execute("COMMIT")
            self._bump("dropped", 1)
            return None

    def peek(self, limit: int, exclude: set[int] | frozenset[int] = frozenset(), newest: int = 0) -> list[OutboxMessage]:
        """Up to ``limit`` oldest messages not in ``exclude``, plus up to ``newest`` of the newest
        ones that are not retained (so that fresh events are not stuck behind a long backlog; a
        retained state never overtakes an older one: sent after it, the older would stay on the
        broker as the topic's value). Oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, retain, created FROM messages ORDER BY id LIMIT ?",
                (limit + len(exclude),)).fetchall()
            if newest:
                rows += self._db.execute(
                    "SELECT id, topic, payload, qos, retain, created FROM messages WHERE retain = 0 "
                    "ORDER BY id DESC LIMIT ?",
                    (newest + len(exclude),)).fetchall()
        seen: set[int] = set()
        out = []
        for row in sorted(rows):
            if row[0] in exclude or row[0] in seen:
                continue
            seen.add(row[0])
            out.append(OutboxMessage(row[0], row[1], bytes(row[2]), row[3], bool(row[4]), row[5]))
        return out[: limit + newest]

    def ack(self, message_id: int) -> None:
        """The broker has the message: forget it."""
        with self._lock:
            self._db.execute("DELETE FROM messages WHERE id = ?", (message_id,))

    def __len__(self) -> int:
        with self._lock:
            return self._count()

    @property
    def dropped(self) -> int:
        """Messages dropped because the outbox or the disk was full (since the file was created)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        return row[0] if row else 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]

    def _drop_oldest(self, n: int) -> None:
        self._db.execute("DELETE FROM messages WHERE id IN (SELECT id FROM messages ORDER BY id LIMIT ?)", (n,))
        self._db.execute("INSERT INTO counters (name, value) VALUES ('dropped', ?) "
                         "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (n,))

    def _bump(self, name: str, n: int) -> None:
        try:
            self._db.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                             "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, n))
        except sqlite3.OperationalError:
            pass  # the disk is full even for a counter: nothing more we can do

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.OperationalError:
            pass
