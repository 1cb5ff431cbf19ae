"""The full-disk half of :class:`~edgekit.mqtt.outbox.Outbox`: near a full disk the file stops
growing (the oldest messages make room inside it), a reserve file beside it (``<outbox>.reserve``)
is given up first when the disk is full, and made again, and said, when space comes back.

:class:`DiskSpace` is a mixin of ``Outbox`` only: its methods use the outbox's database, counters
and state (run under the outbox's lock, like the outbox's own).
"""

from __future__ import annotations

import os
import sqlite3
from typing import TYPE_CHECKING, Callable

__all__ = ["PAGE", "DiskSpace"]

PAGE = 4096  # sqlite's page size for the outbox
_PAGE = PAGE


class DiskSpace:
    """Full-disk handling, mixed into :class:`~edgekit.mqtt.outbox.Outbox` (see the module)."""

    if TYPE_CHECKING:  # the outbox's own attributes and methods, used here
        path: str
        reserve: str
        wal_pages: int
        in_memory: bool
        warn: Callable[[str], None]
        _n: int
        _full: bool
        _puts_since_full: int
        _counters: dict[str, int]

        def _live(self) -> sqlite3.Connection: ...
        def checkpoint(self) -> None: ...
        def _count(self, name: str, n: int) -> None: ...
        def _rollback(self) -> None: ...

    def _drop_oldest(self, n: int) -> int:
        return self._live().execute("DELETE FROM messages WHERE id IN (SELECT id FROM messages ORDER BY id LIMIT ?)",
                                    (n,)).rowcount

    def _free_bytes(self) -> int | None:
        try:
            st = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
        except OSError:
            return None
        return st.f_bavail * st.f_frsize

    def _room_for(self, size: int) -> int:
        """Near a full disk, make room inside the file instead of growing it: drop the oldest
        messages (in the caller's transaction) until the free pages hold ``size`` bytes. The WAL
        then never has to grow the database at a checkpoint, which a full disk would refuse.
        Returns how many messages went."""
        free = None if self.in_memory else self._free_bytes()
        if free is None or free >= self._low_water() + size:
            return 0
        db = self._live()
        need = size // (_PAGE - 100) + 2
        gone = 0
        while gone < self._n and db.execute("PRAGMA freelist_count").fetchone()[0] < need:
            gone += self._drop_oldest(max(1, min(64, need)))
        if gone:
            self._say_full()
            self._count("dropped", gone)
            self._count("dropped_disk_full", gone)
        return gone

    def _low_water(self) -> int:
        """Free bytes under which the file stops growing: room for a full WAL twice over."""
        return (2 * self.wal_pages + 16) * _PAGE

    def _say_full(self) -> None:
        if not self._full:
            self._full = True
            self._puts_since_full = 0
            self.warn(f"edgekit: the disk holding the MQTT outbox {self.path} is full: the oldest queued messages "
                      "are dropped to make room (counted in stats as dropped_disk_full); detection goes on; "
                      "free some space there")

    def _make_room(self, attempt: int) -> bool:
        """Disk full: 0: checkpoint and truncate the WAL; 1: also give up the reserve and drop the
        oldest tenth; 2: the oldest half; then give up (False)."""
        if attempt > 2:
            return False
        self._say_full()
        if attempt >= 1:
            try:
                os.unlink(self.reserve)
            except OSError:
                pass
        self.checkpoint()
        if attempt == 0:
            return True
        share = 10 if attempt == 1 else 2
        try:
            db = self._live()
            db.execute("BEGIN IMMEDIATE")
            gone = self._drop_oldest(max(1, self._n // share))
            db.execute("COMMIT")
        except sqlite3.Error:
            self._rollback()
            return True  # the next attempt drops more
        self._n -= gone
        self._count("dropped", gone)
        self._count("dropped_disk_full", gone)
        self.checkpoint()
        self._make_reserve(free_factor=1)  # for the next time: the truncated WAL left room for it
        return True

    def _make_reserve(self, free_factor: int = 2) -> bool:
        """The file given up when the disk is full, so that the drops and the checkpoint that
        follows have room to be written (the WAL's checkpoint interval); made when
        ``free_factor`` times its size is free (True: it is there)."""
        size = self.wal_pages * _PAGE
        if self.in_memory:
            return False
        try:
            if os.path.getsize(self.reserve) >= size and free_factor == 1:
                return True
        except OSError:
            pass
        try:
            st = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
            if st.f_bavail * st.f_frsize < free_factor * size:
                return False
            fd = os.open(self.reserve, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                os.fchmod(fd, 0o600)  # private like the outbox, whatever the umask or an older mode
                if os.fstat(fd).st_size < size:
                    os.ftruncate(fd, 0)
                    os.write(fd, bytes(size))  # written, not sparse: the space is really taken
            finally:
                os.close(fd)
            return True
        except OSError:
            try:
                os.unlink(self.reserve)
            except OSError:
                pass
            return False

    def _maybe_space_back(self) -> None:
        self._puts_since_full += 1
        free = self._free_bytes()
        if (self._puts_since_full % 16 == 0 and free is not None and free >= 2 * self._low_water()
                and self._make_reserve()):
            self._full = False
            self.warn(f"edgekit: there is disk space again for the MQTT outbox {self.path} "
                      f"({self._counters['dropped_disk_full']} message(s) dropped while it was full, in all)")
