"""How a camera or broker that cannot be used is said (issue 16: items 6, 13, 21, 22, 19b), against
real local servers and sockets (tests/hostile_camera.py): which way a connect failed (the name does
not resolve, the port refuses, the address never answers), an HTTP error status with what to check,
limits from the URL's fragment, a camera sending only garbage reported down once (and up again),
and sources already opened closed when a later one fails. Waits are generous; outcomes are
asserted, never durations."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

import pytest
from hostile_camera import HostileCamera, silent_address

from conftest import EXAMPLES, REPO
from edgekit.errors import ConfigError
from edgekit.sources import open_sources, register_source_kind
from edgekit.sources.stream import HttpStream

SHAPES = EXAMPLES / "shapes" / "shapes_int8.tflite"


@pytest.fixture
def camera():
    server = HostileCamera()
    yield server
    server.stop()


class _Reader:
    """Takes a source's frames on a thread and records its status changes."""

    def __init__(self, source) -> None:
        self.source, self.frames, self.events = source, [], []
        source.on_status = lambda name, status, reason: self.events.append((status, reason))
        self.thread = threading.Thread(target=self._take, daemon=True)
        self.thread.start()

    def _take(self) -> None:
        for frame in self.source.frames():
            self.frames.append(frame)

    def wait_for(self, predicate, what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                self.close()
                pytest.fail(f"no {what} within {timeout} s; events {self.events}")
            time.sleep(0.02)

    def down_reason(self) -> str:
        self.wait_for(lambda: any(s == "down" for s, _ in self.events), "outage report")
        return next(r for s, r in self.events if s == "down")

    def close(self) -> None:
        self.source.close()
        self.thread.join(10)


# --- item 6: which way a connect failed ------------------------------------------------------------

def test_a_camera_host_that_does_not_resolve_says_so():
    reader = _Reader(HttpStream("http://nonexistent.invalid:8080/video", backoff=0.05, max_backoff=0.1))
    reason = reader.down_reason()
    reader.close()
    assert reason == "cannot resolve host nonexistent.invalid: check the name (or use the camera's IP address)"


def test_a_camera_address_that_never_answers_says_no_answer_within_the_timeout():
    with silent_address() as (host, port):
        reader = _Reader(HttpStream(f"http://{host}:{port}/video", open_timeout=1, backoff=0.05))
        reason = reader.down_reason()
        reader.close()
    assert reason == f"no answer from {host}:{port} within 1 s: check the address and that the camera is on"


def test_a_broker_host_that_does_not_resolve_is_one_line_exit_7(tmp_path):
    r = subprocess.run([sys.executable, "-m", "edgekit", "detect", str(SHAPES), str(EXAMPLES / "shapes"),
                        "--no-plan", "--mqtt", "mqtt://nonexistent.invalid", "--mqtt-required",
                        "--outbox", str(tmp_path / "outbox.db")],
                       capture_output=True, text=True, cwd=REPO, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 7, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "cannot resolve host nonexistent.invalid: check the name" in r.stderr, r.stderr


def test_a_broker_address_that_never_answers_says_no_answer(tmp_path):
    from edgekit.mqtt import MqttSettings, Publisher

    with silent_address() as (host, port):
        publisher = Publisher(MqttSettings(host=host, port=port, device_id="t", outbox=str(tmp_path / "o.db")),
                              warn=lambda line: None).start()
        try:
            deadline = time.monotonic() + 120
            while publisher.last_error is None and time.monotonic() < deadline:
                time.sleep(0.05)
            error = publisher.last_error
        finally:
            publisher.close(flush_timeout=0)
    assert error is not None and error.startswith(f"no answer from {host}:{port} within "), error
    assert error.endswith("s: check the address and that the broker is on"), error


# --- item 13: an HTTP error status says what to check, once, and is retried with backoff ----------

@pytest.mark.parametrize("path, advice", [("/status-404", "404 Not Found from {url}: check the URL"),
                                          ("/status-401", "401 Unauthorized from {url}: check the credentials"),
                                          ("/status-403", "403 Forbidden from {url}: check the credentials")])
def test_an_http_error_status_is_said_once_with_what_to_check(camera, path, advice):
    url = camera.url(path)
    reader = _Reader(HttpStream(url.replace("http://", "http://admin:secret@"), backoff=0.05, max_backoff=0.2))
    reader.wait_for(lambda: len(camera.requests) >= 5, "5 attempts")
    reader.close()
    (status, reason), = reader.events  # said once, however many attempts
    assert status == "down" and reason.startswith("HTTP " + advice.format(url=url.replace("http://", "http://admin:***@"))), reason
    assert "secret" not in reason and reader.source.reconnects >= 4


def test_cli_http_404_is_said_once_and_retried_with_backoff(camera):
    from test_hostile_http import _cli

    r = _cli(camera.url("/status-404"), "is down", linger=5)
    said = [line for line in r.lines if "/status-404" in line]
    assert len(said) == 1 and said[0].endswith(f"is down: HTTP 404 Not Found from {camera.url('/status-404')}: "
                                               "check the URL (the camera's manual names its stream and snapshot "
                                               "URLs)"), r.lines
    # backoff 0.5 s doubling: a handful of attempts in those seconds, not hundreds
    assert 2 <= len(camera.requests) <= 12, camera.requests


# --- item 21: limits from the URL's fragment ------------------------------------------------------

def test_http_limits_come_from_the_url_fragment_which_is_not_sent(camera):
    source = HttpStream(camera.url("/trickle#frame_timeout=1.5&max_frame_bytes=65536&interval=0.5"))
    assert (source.frame_timeout, source.max_frame_bytes, source.interval) == (1.5, 65536, 0.5)
    assert source.name == camera.url("/trickle")
    reader = _Reader(source)
    reason = reader.down_reason()
    reader.close()
    assert "1.5 s frame timeout" in reason and camera.requests[0] == "/trickle"


@pytest.mark.parametrize("fragment, expected", [
    ("frame_timout=5", "unknown option #frame_timout; expected one of frame_timeout, max_frame_bytes, interval "
                       "(did you mean frame_timeout?)"),
    ("frame_timeout=0", "#frame_timeout must be seconds above 0, found '0'"),
    ("frame_timeout=inf", "#frame_timeout must be seconds above 0, found 'inf'"),
    ("max_frame_bytes=1.5", "#max_frame_bytes must be a whole number of bytes above 0, found '1.5'"),
    ("interval=soon", "#interval must be seconds above 0, found 'soon'")])
def test_bad_http_options_are_refused_in_one_line(fragment, expected):
    with pytest.raises(ConfigError) as raised:
        HttpStream(f"http://u:pw@cam.lan/video#{fragment}")
    assert str(raised.value) == f"http://u:***@cam.lan/video: {expected}"


# --- item 22: a camera sending only garbage is down (once), and up again ---------------------------

def test_an_mjpeg_camera_sending_garbage_is_down_once_then_up_when_pictures_come(camera):
    camera.garbage.set()
    reader = _Reader(HttpStream(camera.url("/switch")))
    reason = reader.down_reason()
    assert "frames in a row over" in reason and "were not usable pictures" in reason, reason
    # random bytes: repr() quotes them with " when they hold a '
    assert re.search(r"received Content-Type 'image/jpeg', 2000 bytes beginning b['\"]", reason), reason
    assert "check that the URL gives the camera's pictures" in reason, reason
    bad = len(reader.frames)
    time.sleep(1)  # garbage goes on: not said again
    assert [s for s, _ in reader.events] == ["down"] and len(reader.frames) > bad
    camera.garbage.clear()
    reader.wait_for(lambda: reader.events[-1][0] == "up", "up again")
    reader.close()
    assert [s for s, _ in reader.events] == ["down", "up"]
    assert reader.frames[-1].problem is None


def test_a_snapshot_url_answering_a_web_page_is_down_naming_what_came(camera):
    reader = _Reader(HttpStream(camera.url("/html-snapshot#interval=0.1")))
    reason = reader.down_reason()
    reader.close()
    assert "received Content-Type 'image/jpeg', 59 bytes beginning b'<!DOCTYPE html>\\n'" in reason, reason
    assert "\x1b" not in reason and all(f.problem for f in reader.frames)
    assert [s for s, _ in reader.events] == ["down"]


def test_one_bad_frame_among_good_ones_is_no_outage(camera):
    reader = _Reader(HttpStream(camera.url("/switch")))
    reader.wait_for(lambda: reader.events, "up")
    for _ in range(3):  # short bursts of garbage, shorter than the outage's run
        camera.garbage.set()
        time.sleep(0.05)
        camera.garbage.clear()
        time.sleep(0.3)
    reader.close()
    assert [s for s, _ in reader.events] == ["up"]


# --- item 19b: a failed open closes the sources already opened ------------------------------------

class _Holding:
    """A source kind (as a plugin registers one) that holds a real socket and thread once made."""

    made: list["_Holding"] = []

    def __init__(self, argument: str) -> None:
        self.name, self.live = argument, True
        self.sock = __import__("socket").socket()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.stop.wait, daemon=True)
        self.thread.start()
        _Holding.made.append(self)

    def frames(self):
        return iter(())

    def close(self) -> None:
        self.sock.close()
        self.stop.set()
        self.thread.join(5)


@pytest.fixture
def holding_kind():
    from edgekit.sources import _KINDS

    saved = list(_KINDS)
    register_source_kind("holding", lambda arg: arg.startswith("holding:"), f"{__name__}:_Holding")
    _Holding.made.clear()
    yield
    _KINDS[:] = saved


def test_sources_opened_before_a_failing_one_are_closed(holding_kind):
    threads, fds = threading.active_count(), len(os.listdir("/proc/self/fd"))
    with pytest.raises(ConfigError):
        open_sources(["holding:a", "holding:b", "rtsp://cam.lan/stream#transport=bogus", "holding:c"])
    assert len(_Holding.made) == 2
    assert all(h.sock.fileno() == -1 and not h.thread.is_alive() for h in _Holding.made)
    assert threading.active_count() == threads and len(os.listdir("/proc/self/fd")) == fds


def test_sources_of_a_good_open_stay_open(holding_kind):
    sources = open_sources(["holding:a", "holding:b"])
    try:
        assert all(s.sock.fileno() != -1 and s.thread.is_alive() for s in sources)
    finally:
        for s in sources:
            s.close()


def test_a_settings_files_source_table_that_fails_closes_the_sources_opened_before(holding_kind):
    """``run``'s sources come from two calls (SOURCE strings, then each table): a failing table
    closes what the strings opened."""
    from edgekit.service import ServiceSettings, _open

    threads = threading.active_count()
    settings = ServiceSettings(model="m.tflite", sources=("holding:a", {"name": "door", "source": "holding:b"},
                                                          {"source": "rtsp://cam.lan/stream#transport=bogus"}))
    with pytest.raises(ConfigError):
        _open(settings, None)
    assert len(_Holding.made) == 2
    assert all(h.sock.fileno() == -1 and not h.thread.is_alive() for h in _Holding.made)
    assert threading.active_count() == threads
