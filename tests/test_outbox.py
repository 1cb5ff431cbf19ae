"""The durable outbox: order, bound, crash survival, disk full."""

import os
import signal
import subprocess
import sys

from conftest import REPO
from edgekit.mqtt.outbox import Outbox


def test_fifo_ack_and_reopen(tmp_path):
    box = Outbox(tmp_path / "o.db")
    ids = [box.put("t", f"m{i}".encode()) for i in range(5)]
    assert [m.payload for m in box.peek(3)] == [b"m0", b"m1", b"m2"]
    box.ack(ids[0])
    assert [m.id for m in box.peek(10, exclude={ids[1]})] == ids[2:]
    box.close()
    again = Outbox(tmp_path / "o.db")
    assert len(again) == 4 and again.peek(1)[0].payload == b"m1"


def test_newest_are_not_starved_by_a_backlog(tmp_path):
    box = Outbox(tmp_path / "o.db")
    for i in range(100):
        box.put("t", str(i).encode())
    batch = [int(m.payload) for m in box.peek(5, newest=2)]
    assert batch == [0, 1, 2, 3, 4, 98, 99]


def test_bound_drops_oldest_and_counts_persistently(tmp_path):
    box = Outbox(tmp_path / "o.db", max_messages=10)
    for i in range(25):
        box.put("t", str(i).encode())
    assert len(box) == 10 and box.dropped == 15
    assert box.peek(1)[0].payload == b"15"
    box.close()
    assert Outbox(tmp_path / "o.db", max_messages=10).dropped == 15


def test_survives_sigkill(tmp_path):
    code = ("import os, signal, sys\nfrom edgekit.mqtt.outbox import Outbox\nbox = Outbox(sys.argv[1])\n"
            "for i in range(1000):\n    box.put('edgekit/x/detections', b'%d' % i)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "o.db")], cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == -signal.SIGKILL
    box = Outbox(tmp_path / "o.db")
    assert len(box) == 1000 and [int(m.payload) for m in box.peek(1000)] == list(range(1000))


def test_disk_full_drops_oldest_instead_of_failing(tmp_path):
    box = Outbox(tmp_path / "o.db")
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count = {pages + 3}")  # the file may grow by ~12 kB: then SQLITE_FULL
    stored = [box.put("t", os.urandom(1000)) for _ in range(200)]
    assert all(i is not None for i in stored[:5])
    assert len(box) < 200 and box.dropped > 0  # oldest made room; nothing raised
    assert box.peek(1000)[-1].id == stored[-1]  # the newest message is kept


def test_a_retained_state_never_overtakes_an_older_one_of_its_topic(tmp_path):
    """A backlog goes oldest first with a share of the newest; were a newer retained state sent in
    that share, the older one sent after it would stay on the broker as the topic's value."""
    box = Outbox(tmp_path / "o.db")
    box.put("cam/motion", b"ON", 1, retain=True)
    box.put("cam/events", b"e1", 1)
    box.put("cam/motion", b"OFF", 1, retain=True)
    box.put("cam/events", b"e2", 1)
    box.put("cam/motion", b"ON", 1, retain=True)
    box.put("cam/events", b"e3", 1)
    waiting = [(m.topic, m.payload) for m in box.peek(1, newest=2)]
    assert waiting == [("cam/motion", b"ON"), ("cam/events", b"e2"), ("cam/events", b"e3")]
    assert len(box.peek(10)) == 6  # nothing is dropped: live subscribers see every state
