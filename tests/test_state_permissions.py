"""What edgekit keeps on disk is private: the MQTT outbox (detections, camera snapshots) and the planner's
caches are folder 0700 / files 0600 whatever the umask, wider leftovers are tightened, and files or
folders owned by another user are refused. Real files, real processes, real umasks."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys

import pytest

from conftest import REPO, run_cli
from edgekit.errors import ConfigError
from edgekit.mqtt.outbox import Outbox

NOBODY = 65534

# Fill the default outbox (XDG_STATE_HOME/edgekit/outbox-cam.db), then die by SIGKILL so that SQLite's
# -wal and -shm files stay on disk, as after a crash or a power cut.
_KILLED_PUBLISHER = """
import os, signal
from edgekit.mqtt import MqttSettings, Publisher
p = Publisher(MqttSettings(host="127.0.0.1", port=9, device_id="cam"))
for i in range(20):
    p.outbox.put("edgekit/cam/detections", b"{}")
os.kill(os.getpid(), signal.SIGKILL)
"""


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _modes(folder) -> dict[str, str]:
    return {p.name: oct(_mode(p)) for p in sorted(folder.iterdir())}


def _killed_publisher(state_home, umask: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_STATE_HOME": str(state_home)}
    r = subprocess.run([sys.executable, "-c", _KILLED_PUBLISHER], env=env, umask=umask, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr


def _plan(model, cache_home, umask: int, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(cache_home)}
    env.pop("EDGEKIT_CACHE_DIR", None)
    return subprocess.run([sys.executable, "-m", "edgekit", "plan", str(model), "--json", *extra], env=env,
                          umask=umask, capture_output=True, text=True, timeout=300, cwd=REPO)


def _foreign(path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root (CI and this machine run the suite as root)")
    os.chown(path, NOBODY, NOBODY)


@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask022", "umask000"])
def test_outbox_and_caches_are_private_whatever_the_umask(umask, ssd, tmp_path):
    state_home, cache_home = tmp_path / "state", tmp_path / "cache"
    _killed_publisher(state_home, umask)
    state = state_home / "edgekit"
    assert _mode(state_home) == 0o700 and _mode(state) == 0o700  # both created by edgekit
    assert _modes(state) == {"outbox-cam.db": "0o600", "outbox-cam.db-shm": "0o600", "outbox-cam.db-wal": "0o600",
                             "outbox-cam.db.reserve": "0o600"}  # the room kept for a full disk

    r = _plan(ssd, cache_home, umask, "--autotune")  # measures costs (costs.json) and threads (threads.json)
    assert r.returncode == 0, r.stderr
    cache = cache_home / "edgekit"
    assert _mode(cache) == 0o700
    assert _modes(cache) == {"costs.json": "0o600", "threads.json": "0o600"}


def test_wider_leftovers_are_tightened_and_keep_their_content(ssd, tmp_path, monkeypatch):
    state_home, cache_home = tmp_path / "state", tmp_path / "cache"
    monkeypatch.setenv("XDG_STATE_HOME", str(state_home))
    _killed_publisher(state_home, 0o022)
    state = state_home / "edgekit"
    os.chmod(state, 0o755)  # as an older edgekit left them
    for p in state.iterdir():
        os.chmod(p, 0o644)
    assert _plan(ssd, cache_home, 0o022).returncode == 0
    cache = cache_home / "edgekit"
    os.chmod(cache, 0o755)
    os.chmod(cache / "costs.json", 0o666)

    box = Outbox(state / "outbox-cam.db")  # the default folder: tightened
    try:
        assert len(box) == 20  # the crashed run's messages survive (SQLite recovered them from the WAL)
        assert _mode(state) == 0o700 and set(_modes(state).values()) == {"0o600"}
    finally:
        box.close()
    r = _plan(ssd, cache_home, 0o022)  # reads the cached cost: no trial load, and tightens on the way
    assert r.returncode == 0, r.stderr
    assert _mode(cache) == 0o700 and _modes(cache) == {"costs.json": "0o600"}


def test_an_outbox_the_user_placed_leaves_the_folder_alone(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp: not ours to change
    box = Outbox(shared / "o.db")
    box.put("t", b"x")
    try:
        assert _mode(shared) == 0o1777
        assert set(_modes(shared).values()) == {"0o600"} and "o.db-wal" in _modes(shared)
    finally:
        box.close()
    nested = tmp_path / "new" / "deeper"
    Outbox(nested / "o.db").close()
    assert _mode(tmp_path / "new") == 0o700 and _mode(nested) == 0o700  # created by edgekit: private


def test_someone_elses_outbox_is_refused(ssd, images, tmp_path, monkeypatch):
    db = tmp_path / "o.db"
    Outbox(db).close()
    _foreign(db)
    with pytest.raises(ConfigError, match=f"belongs to user id {NOBODY}, not to you"):
        Outbox(db)
    assert _mode(db) == 0o600  # refused, not changed
    r = run_cli("-m", "edgekit", "detect", str(ssd), str(images / "table.jpg"), "--no-plan",
                "--mqtt", "mqtt://127.0.0.1:9", "--outbox", str(db))
    assert r.returncode == 2 and f"belongs to user id {NOBODY}" in r.stderr and "Traceback" not in r.stderr

    state_home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state_home))
    (state_home / "edgekit").mkdir(parents=True)
    _foreign(state_home / "edgekit")
    with pytest.raises(ConfigError, match="this folder belongs to user id"):
        Outbox(state_home / "edgekit" / "outbox-cam.db")
    assert not (state_home / "edgekit" / "outbox-cam.db").exists()


def test_someone_elses_cache_is_refused(ssd, tmp_path):
    cache = tmp_path / "cache" / "edgekit"
    cache.mkdir(parents=True)
    (cache / "costs.json").write_text(json.dumps({}))
    _foreign(cache)
    r = _plan(ssd, tmp_path / "cache", 0o022)
    assert r.returncode == 2 and f"belongs to user id {NOBODY}" in r.stderr and "EDGEKIT_CACHE_DIR" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_shared_sticky_folder_is_not_taken_over_as_the_cache(ssd, tmp_path):
    shared = tmp_path / "tmp-like"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    r = run_cli("-m", "edgekit", "plan", str(ssd), env={"EDGEKIT_CACHE_DIR": str(shared)})
    assert r.returncode == 2 and "shared folder" in r.stderr
    assert _mode(shared) == 0o1777 and list(shared.iterdir()) == []


def test_sqlite_reopens_a_tightened_outbox(tmp_path):
    """Tightening must not get in SQLite's way: the WAL is replayed and the database stays consistent."""
    db = tmp_path / "o.db"
    box = Outbox(db)
    box.put("t", b"payload")
    box.close()
    os.chmod(db, 0o644)
    again = Outbox(db)
    try:
        assert [m.payload for m in again.peek(10)] == [b"payload"] and _mode(db) == 0o600
    finally:
        again.close()
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone() == ("ok",)
