"""A bounded, durable outbox for MQTT messages: sqlite3 in WAL mode.

Every message is written here before it is published and deleted only when the broker has
acknowledged it (QoS 1 PUBACK), so messages survive a broker outage, a network cut and a
SIGKILL of the publisher; a restarted publisher delivers the backlog. Delivery is therefore
at-least-once: consumers de-duplicate by the payload's event id.

Nothing here ever ends a run (no method raises once the outbox is open):

- Full outbox (``max_messages``): the oldest messages are dropped and counted (``dropped``).
- Full disk: the WAL is checkpointed and truncated, then a reserve file kept beside the database
  (``<outbox>.reserve``) is given up and the oldest messages are dropped to make room — counted
  (``dropped`` and ``dropped_disk_full``) and said once per episode; an acknowledgement that
  cannot be written is kept in memory and written later. When space comes back the reserve is
  made again and that is said too (:mod:`edgekit.mqtt.outbox_space`). The WAL is checkpointed every ``wal_pages`` pages and
  truncated to that size (and to nothing when the outbox empties), so it cannot grow without bound.
- A damaged file (bad pages, not a database): set aside as ``<outbox>.corrupt-<UTC time>`` (kept for
  inspection), a fresh outbox started, the readable messages salvaged into it; one line says how
  many (:mod:`edgekit.mqtt.salvage`). At open (``PRAGMA quick_check``) and whenever sqlite reports it.
- A message the broker cannot take goes to the ``dead_letters`` table (:meth:`dead_letter`),
  counted, kept for inspection, and never blocks the ones after it.

Counters (persisted, also across a set-aside file): ``dropped``, ``dropped_disk_full``,
``dead_letters``, ``set_aside``. ``synchronous=NORMAL`` in WAL mode survives a process crash;
``durable=True`` (``synchronous=FULL``) also survives power loss, at the cost of an fsync per message.

It holds what the camera saw, so it is private whatever the umask: the database and its WAL and
shared-memory files are 0600, and its folder 0700 when edgekit creates it or when it is edgekit's
default (``$XDG_STATE_HOME/edgekit``, tightened if an older version left it wider). A file or default
folder owned by another user is refused (ConfigError).
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..errors import ConfigError
from ..userdirs import create_private, private_dir, private_file, state_dir
from .outbox_space import PAGE as _PAGE, DiskSpace
from .salvage import is_corruption, is_disk_full, salvage, set_aside

__all__ = ["COUNTERS", "Outbox", "OutboxMessage"]

# SQLite creates these beside the database with the database file's mode; an older run may have left them wider.
_COMPANIONS = ("-wal", "-shm", "-journal")
COUNTERS = ("dropped", "dropped_disk_full", "dead_letters", "set_aside")

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
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    topic BLOB NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL,
    failed REAL NOT NULL,
    reason TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float


def _message(row: tuple) -> OutboxMessage:
    """A row as a message. A payload stored as TEXT (salvaged from a damaged file, or hand-made)
    is sent as its UTF-8: ``bytes(str)`` would raise in every peek and stop delivery for good."""
    payload = row[2]
    if isinstance(payload, str):
        payload = payload.encode("utf-8", "surrogateescape")
    elif not isinstance(payload, (bytes, bytearray, memoryview)):
        payload = b"" if payload is None else str(payload).encode()
    return OutboxMessage(row[0], row[1], bytes(payload), row[3], bool(row[4]), row[5])


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _wal_pages(folder: str) -> int:
    """WAL checkpoint interval: a sixteenth of the file system (a small tmpfs, an SD card), 16…256 pages."""
    try:
        st = os.statvfs(folder)
        return max(16, min(256, st.f_blocks * st.f_frsize // 16 // _PAGE))
    except OSError:
        return 256


class Outbox(DiskSpace):
    """Thread-safe FIFO of messages on disk; once open, no method raises.

    Args:
        path: the sqlite file (its directory is created).
        max_messages: bound; beyond it the oldest are dropped and counted.
        durable: fsync every commit (survives power loss, not only a crash).
        warn: called with each line worth telling the user (disk full, damaged file set aside);
            default: printed on stderr.
    Raises:
        ConfigError: the file cannot be created or opened (not writable, owned by another user),
            or a damaged one cannot be set aside.
    """

    def __init__(self, path: str | os.PathLike, max_messages: int = 100_000, durable: bool = False,
                 warn: Callable[[str], None] | None = None) -> None:
        if max_messages < 1:
            raise ConfigError(f"outbox size must be at least 1 message, found {max_messages}")
        self.path = os.fspath(path)
        self.max_messages = max_messages
        self.warn = warn or _stderr
        self._durable = durable
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._counters = dict.fromkeys(COUNTERS, 0)
        self._dirty: set[str] = set()
        self._unwritten_acks: set[int] = set()  # acknowledged, not yet deleted (disk full)
        self._unwritten_dead: set[int] = set()  # dead-lettered, not yet moved (disk full)
        self._n = 0
        self._last_id = 0
        self._full = False  # in a disk-full episode (said once)
        self._puts_since_full = 0
        self._said_error = False
        self.in_memory = False  # the disk was too full to create the file: this run's messages in memory
        folder = os.path.dirname(os.path.abspath(self.path))
        self.wal_pages = _wal_pages(folder)
        self.reserve = self.path + ".reserve"
        try:
            self._make_private()
            try:
                self._connect()
            except sqlite3.DatabaseError as exc:
                if is_corruption(exc):
                    self._recover(str(exc))
                elif is_disk_full(exc):
                    self._in_memory(str(exc))
                else:
                    raise
            for suffix in _COMPANIONS:
                private_file(self.path + suffix)
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"outbox {self.path}: cannot open ({exc}); pass a writable path (--outbox)") from None
        self._make_reserve()

    def _in_memory(self, reason: str) -> None:
        """A disk too full to create the outbox on must not stop detection (nor crash-loop a
        service): this run's messages are kept in memory, still delivered, lost if it is killed."""
        self._db = None
        db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        db.executescript(_SCHEMA)
        self._db = db
        self.in_memory = True
        try:
            if os.path.getsize(self.path) == 0:
                os.unlink(self.path)  # the empty file made for it, so the next run creates it properly
        except OSError:
            pass
        self.warn(f"edgekit: the MQTT outbox {self.path} cannot be created ({reason}): this run keeps its "
                  "messages in memory (delivered while it runs, lost if it stops before); free some space there")

    # -- opening, damage ------------------------------------------------------------------------
    def _make_private(self) -> None:
        """Folder 0700 (edgekit's default one, or one created here), database and companions 0600."""
        folder = os.path.dirname(os.path.abspath(self.path))
        private_dir(folder, tighten=os.path.abspath(folder) == os.path.abspath(state_dir()))
        create_private(self.path)
        for suffix in _COMPANIONS:
            private_file(self.path + suffix)

    def _connect(self) -> None:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={'FULL' if self._durable else 'NORMAL'}")
            db.execute(f"PRAGMA wal_autocheckpoint={self.wal_pages}")
            db.execute(f"PRAGMA journal_size_limit={self.wal_pages * _PAGE}")
            db.executescript(_SCHEMA)
            problems = [r[0] for r in db.execute("PRAGMA quick_check").fetchall()]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError("database disk image is malformed: " + "; ".join(problems[:3]))
            for name, value in db.execute("SELECT name, value FROM counters"):
                self._counters[name] = max(self._counters.get(name, 0), int(value))
            self._n = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
            self._last_id = max(self._last_id, row[0] if row else 0)
        except BaseException:
            db.close()
            raise
        self._db = db

    def _recover(self, reason: str) -> None:
        """Set the damaged file aside, start a fresh one, queue what could be read from the old one."""
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None
        aside = set_aside(self.path)
        found = salvage(aside)
        for name, value in found.counters.items():
            if name in self._counters:
                self._counters[name] = max(self._counters[name], value)
        self._counters["set_aside"] += 1
        self._dirty.update(COUNTERS)
        create_private(self.path)
        self._connect()
        self._last_id = max([self._last_id, *(r[0] for r in found.rows)])
        saved = self._requeue(found.rows)
        self.warn(f"edgekit: the MQTT outbox {self.path} is damaged ({reason}); it is set aside as {aside} "
                  f"(kept for inspection) and a fresh one is started: {saved} queued message(s) could be "
                  "salvaged and will still be delivered" + ("" if saved == len(found.rows) else
                                                             f" ({len(found.rows) - saved} did not fit on the disk)"))

    def _requeue(self, rows: list[tuple]) -> int:
        assert self._db is not None
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR IGNORE INTO messages (id, topic, payload, qos, retain, created) "
                                 "VALUES (?, ?, ?, ?, ?, ?)", rows)
            self._db.execute("INSERT OR REPLACE INTO sqlite_sequence (name, seq) VALUES ('messages', ?)",
                             (self._last_id,))
            self._write_counters()
            self._db.execute("COMMIT")
            self._n = len(rows)
            return len(rows)
        except sqlite3.Error:
            self._rollback()
            return 0

    # -- the queue ------------------------------------------------------------------------------
    def put(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int | None:
        """Store a message; returns its id, or None if it could not be stored (counted as dropped)."""
        with self._lock:
            full = False
            for attempt in range(4):
                try:
                    return self._insert(topic, payload, qos, retain)
                except sqlite3.Error as exc:
                    self._rollback()
                    full = is_disk_full(exc)
                    if not self._handle(exc) or (full and not self._make_room(attempt)):
                        break
            self._count("dropped", 1)
            if full:
                self._count("dropped_disk_full", 1)
            return None

    def _insert(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        saved, dirty = dict(self._counters), set(self._dirty)
        try:
            return self._insert_txn(topic, payload, qos, retain)
        except BaseException:
            self._counters, self._dirty = saved, dirty  # what was counted in it did not happen
            raise

    def _insert_txn(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        db = self._live()
        db.execute("BEGIN IMMEDIATE")
        gone = self._write_pending()
        gone += self._room_for(len(payload) + len(topic))
        cur = db.execute("INSERT INTO messages (topic, payload, qos, retain, created) VALUES (?, ?, ?, ?, ?)",
                         (topic, payload, qos, int(retain), time.time()))
        n = self._n - gone + 1
        over = n - self.max_messages
        if over > 0:
            n -= self._drop_oldest(over)
            self._count("dropped", over)
        self._write_counters()
        db.execute("COMMIT")
        self._pending_written(n)
        self._last_id = max(self._last_id, cur.lastrowid or 0)
        if self._full:
            self._maybe_space_back()
        return cur.lastrowid

    def peek(self, limit: int, exclude: set[int] | frozenset[int] = frozenset(), newest: int = 0) -> list[OutboxMessage]:
        """Up to ``limit`` oldest messages not in ``exclude``, plus up to ``newest`` of the newest
        ones that are not retained (so that fresh events are not stuck behind a long backlog; a
        retained state never overtakes an older one: sent after it, the older would stay on the
        broker as the topic's value). Oldest first."""
        with self._lock:
            exclude = set(exclude) | self._unwritten_acks | self._unwritten_dead
            for _ in range(2):
                try:
                    rows = self._select(limit, len(exclude), newest)
                    break
                except sqlite3.Error as exc:
                    self._rollback()
                    if not self._handle(exc):
                        return []
            else:
                return []
        seen: set[int] = set()
        out = []
        for row in sorted(rows):
            if row[0] in exclude or row[0] in seen:
                continue
            seen.add(row[0])
            out.append(_message(row))
        return out[: limit + newest]

    def get(self, ids: list[int]) -> list[OutboxMessage]:
        """The queued messages among ``ids`` (those still there), oldest first."""
        with self._lock:
            try:
                rows = []
                for i in range(0, len(ids), 500):
                    part = list(ids[i:i + 500])
                    rows += self._live().execute(
                        f"SELECT id, topic, payload, qos, retain, created FROM messages WHERE id IN "
                        f"({','.join('?' * len(part))})", part).fetchall()
            except sqlite3.Error as exc:
                self._rollback()
                self._handle(exc)
                return []
        skip = self._unwritten_acks | self._unwritten_dead
        return [_message(r) for r in sorted(rows) if r[0] not in skip]

    def _select(self, limit: int, skip: int, newest: int) -> list:
        db = self._live()
        rows = db.execute("SELECT id, topic, payload, qos, retain, created FROM messages ORDER BY id LIMIT ?",
                          (limit + skip,)).fetchall()
        if newest:
            rows += db.execute("SELECT id, topic, payload, qos, retain, created FROM messages WHERE retain = 0 "
                               "ORDER BY id DESC LIMIT ?", (newest + skip,)).fetchall()
        return rows

    def ack(self, message_id: int) -> None:
        """The broker has the message: forget it (later, if the disk is full now)."""
        with self._lock:
            self._unwritten_acks.add(message_id)
            self._write_now()
            if self._n == 0 and self._wal_size() > self.wal_pages * _PAGE // 4:
                self.checkpoint()  # drained: give the WAL's space back

    def dead_letter(self, message: OutboxMessage, reason: str) -> None:
        """Move ``message`` (queued, or never queued: id 0) to the ``dead_letters`` table with
        ``reason``: kept for inspection, counted, never sent again."""
        with self._lock:
            self._count("dead_letters", 1)
            try:
                db = self._live()
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT INTO dead_letters (topic, payload, qos, retain, created, failed, reason) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (message.topic.encode("utf-8", "surrogatepass"), message.payload, message.qos,
                            int(message.retain), message.created, time.time(), reason))
                self._write_counters()
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                self._handle(exc)  # kept only in memory: the count stays right, the copy is lost
            if message.id:
                self._unwritten_dead.add(message.id)
                self._write_now()

    def dead_letters(self) -> list[tuple[bytes, bytes, str]]:
        """The dead letters kept: (topic as UTF-8 bytes, payload, reason), oldest first."""
        with self._lock:
            try:
                return [(bytes(t), bytes(p), r) for t, p, r in
                        self._live().execute("SELECT topic, payload, reason FROM dead_letters ORDER BY id")]
            except sqlite3.Error:
                return []

    def checkpoint(self) -> None:
        """Copy the WAL into the database and truncate it (best effort)."""
        try:
            self._live().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error:
            pass

    def __len__(self) -> int:
        with self._lock:
            return max(0, self._n - len(self._unwritten_acks) - len(self._unwritten_dead))

    def counters(self) -> dict[str, int]:
        """``dropped``, ``dropped_disk_full``, ``dead_letters``, ``set_aside`` (since the file was created)."""
        with self._lock:
            return dict(self._counters)

    @property
    def dropped(self) -> int:
        """Messages dropped because the outbox or the disk was full (since the file was created)."""
        with self._lock:
            return self._counters["dropped"]

    def close(self) -> None:
        with self._lock:
            if self._db is None:
                return
            self._write_now()
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.Error:
                pass
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None

    # -- internals (under the lock) ---------------------------------------------------------------
    def _live(self) -> sqlite3.Connection:
        if self._db is None:
            raise sqlite3.OperationalError("the outbox is closed")
        return self._db

    def _handle(self, exc: sqlite3.Error) -> bool:
        """After a failed statement: True when trying again makes sense (damage repaired, disk full)."""
        if is_corruption(exc):
            try:
                self._recover(str(exc))
                return True
            except (sqlite3.Error, OSError) as again:
                exc = again
        elif is_disk_full(exc):
            return True
        if not self._said_error:
            self._said_error = True
            self.warn(f"edgekit: the MQTT outbox {self.path} cannot be written ({exc}); messages that cannot be "
                      "stored are dropped and counted; check the disk and the file")
        return False

    def _write_now(self) -> None:
        """Write the pending acknowledgements, dead letters and counters in a transaction of their own."""
        if not (self._unwritten_acks or self._unwritten_dead or self._dirty):
            return
        try:
            self._live().execute("BEGIN IMMEDIATE")
            gone = self._write_pending()
            self._write_counters()
            self._live().execute("COMMIT")
            self._pending_written(self._n - gone)
        except sqlite3.Error as exc:
            self._rollback()
            if is_corruption(exc):
                self._handle(exc)
            # disk full: they stay in memory and go with the next write that succeeds

    def _write_pending(self) -> int:
        """Delete the acknowledged and dead-lettered messages (in the caller's transaction); returns
        how many rows went. They leave memory only once committed (:meth:`_pending_written`)."""
        ids = sorted(self._unwritten_acks | self._unwritten_dead)
        gone = 0
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            gone += self._live().execute(f"DELETE FROM messages WHERE id IN ({','.join('?' * len(part))})",
                                         part).rowcount
        return gone

    def _pending_written(self, n: int) -> None:
        self._n = n
        self._unwritten_acks.clear()
        self._unwritten_dead.clear()

    def _wal_size(self) -> int:
        try:
            return os.path.getsize(self.path + "-wal")
        except OSError:
            return 0

    def _write_counters(self) -> None:
        for name in sorted(self._dirty):
            self._live().execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                                 "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, self._counters[name]))
        self._dirty.clear()

    def _count(self, name: str, n: int) -> None:
        self._counters[name] += n
        self._dirty.add(name)

    def _rollback(self) -> None:
        if self._db is None:
            return
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
