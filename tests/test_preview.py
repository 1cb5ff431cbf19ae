"""The live preview for real: `edgekit detect/run --preview` on a live HTTP MJPEG camera showing a
real photo, with the real SSD model; the page, the stream and the snapshot over HTTP, the page in a
real headless Chromium (DevTools protocol over a pipe), credentials, bad requests; in-process, a
real Runner feeding a PreviewSink: encoding only while watched, one encode shared by every client,
a stalled client costing nothing but its own frames."""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from test_sources import _CameraServer

SIZE = (640, 426)  # the camera's frames
BOUNDARY = b"--edgekitframe"
WAIT = 60.0  # seconds before a test gives up waiting for something that must happen (never a speed check)


# -- helpers ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model(shared) -> Path:
    return shared / "models/ssd_mobilenet_v1_quant/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29_with_metadata.tflite"


@pytest.fixture(scope="module")
def camera(images):
    """A live MJPEG camera alternating a real photo and its mirror image (so the picture changes)."""
    with Image.open(images / "coral_kite_and_cold.jpg") as photo:
        pixels = np.asarray(photo.convert("RGB").resize(SIZE))
    server = _CameraServer([_jpeg(pixels), _jpeg(pixels[:, ::-1].copy())])
    yield server
    server.stop()


def _jpeg(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def _until(condition, what: str, timeout: float = WAIT):
    """Poll ``condition`` until it returns something true; fail (naming ``what``) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


def _get(port: int, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def _raw(port: int, data: bytes) -> bytes:
    """Send ``data`` as it is; the server's whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        s.sendall(data)
        chunks = []
        with contextlib.suppress(ConnectionResetError):  # closed with our request unread
            while chunk := s.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


class _Stream:
    """An MJPEG client: parts read by Content-Length, each header checked, until the stream ends."""

    def __init__(self, port: int, path: str = "/stream.mjpeg", headers: dict | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        self.conn.request("GET", path, headers=headers or {})
        self.sock = self.conn.sock  # the response keeps it open after conn.close()
        self.response = self.conn.getresponse()
        self.parts: list[bytes] = []
        self.ended = False  # the closing boundary came

    def read_part(self) -> bytes | None:
        line = self.response.readline()
        while line and not line.startswith(BOUNDARY):
            assert line == b"\r\n", line[:80]  # nothing but the CRLF before a boundary
            line = self.response.readline()
        if not line or line.startswith(BOUNDARY + b"--"):
            self.ended = bool(line)
            return None
        headers = {}
        while (line := self.response.readline()) != b"\r\n":
            if not line:
                return None  # cut off (we hung up)
            key, _, value = line.decode().partition(":")
            headers[key.strip().lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        part = self.response.read(int(headers["content-length"]))
        if len(part) < int(headers["content-length"]):
            return None
        self.parts.append(part)
        return part

    def read_all(self) -> None:
        try:
            while self.read_part() is not None:
                pass
        except (OSError, http.client.HTTPException):
            pass  # we hung up

    def close(self) -> None:
        """Hang up (a reader thread blocked in this stream's recv sees its end)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.response.close()
        self.conn.close()


class _Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
    JSON messages ending in NUL on file descriptors 3 and 4; no websocket library needed)."""

    def __init__(self, exe: str, profile: Path) -> None:
        child_in, self._out = os.pipe()
        self._in, child_out = os.pipe()
        args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-pipe",
                f"--user-data-dir={profile}", "--window-size=900,700", "about:blank"]
        # the pipe's ends become fds 3 and 4 in a small Python that then execs Chromium (dash's
        # redirections stop at fd 9)
        exec_on_3_4 = f"import os, sys; os.dup2({child_in}, 3); os.dup2({child_out}, 4); os.execvp(sys.argv[1], sys.argv[1:])"
        self.log = profile.parent / "chromium.log"  # a file: a pipe nobody reads could fill and stall it
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-c", exec_on_3_4, *args], pass_fds=(child_in, child_out),
                                         stdout=log, stderr=subprocess.STDOUT)
        os.close(child_in)
        os.close(child_out)
        self._id, self._buffer = 0, b""
        page = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]

    def call(self, method: str, session: str | None = None, **params):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    pytest.fail(f"chromium closed its DevTools pipe: {self.log.read_text(errors='replace')[-1000:]}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                assert "error" not in reply, reply
                return reply["result"]

    def page(self, method: str, **params):
        return self.call(method, self.session, **params)

    def evaluate(self, expression: str):
        return self.page("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def screenshot(self) -> np.ndarray:
        png = base64.b64decode(self.page("Page.captureScreenshot", format="png")["data"])
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        os.close(self._in)
        os.close(self._out)


def _chromium_exe() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:  # never a skip: without it the page is untested (CI included)
        pytest.fail("chromium is not installed: apt-get install -y chromium (.ci/run does this)", pytrace=False)
    return exe


class _Run:
    """A running `edgekit ...` whose stderr announced the preview; stdout lines are counted."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, "-m", "edgekit", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
        self.err: list[str] = []
        for line in self.proc.stderr:
            self.err.append(line)
            if (found := re.search(r"edgekit: preview at http://([^/]+):(\d+)/", line)) is not None:
                self.port = int(found.group(2))
                break
        else:
            pytest.fail(f"no preview line; rc {self.proc.wait()}, stderr: {''.join(self.err)}")
        self.lines = 0
        self._threads = [threading.Thread(target=self._count, daemon=True),
                         threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True)]
        for thread in self._threads:
            thread.start()

    def _count(self) -> None:
        for _ in self.proc.stdout:
            self.lines += 1

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(WAIT)
        for thread in self._threads:
            thread.join(WAIT)
        return rc


@pytest.fixture(scope="module")
def preview_run(model, camera):
    """`edgekit detect` on the camera with a zone (so tracking: track ids on the boxes) and a preview
    on a free port; SIGTERM at the end must exit 0 without a traceback."""
    run = _Run("detect", str(model), camera.url("/stream"), "--no-plan", "--zone", "beach=0,0.6,0.5,0.6,0.5,1,0,1",
               "--preview", "127.0.0.1:0")
    yield run
    rc = run.stop()
    assert rc == 0 and "Traceback" not in "".join(run.err), "".join(run.err)


# -- through the CLI ----------------------------------------------------------------------------------
def test_page_snapshot_and_stream(preview_run, camera):
    port = preview_run.port
    status, headers, page = _get(port, "/")
    name = quote(camera.url("/stream"), safe="")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert f'<img src="/stream.mjpeg?source={name}"'.encode() in page

    for path in ("/snapshot.jpg", f"/snapshot.jpg?source={name}"):
        status, headers, body = _get(port, path)
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        with Image.open(io.BytesIO(body)) as snapshot:
            assert snapshot.format == "JPEG" and snapshot.size == SIZE  # the source's size, not the model's

    stream = _Stream(port, f"/stream.mjpeg?source={name}")
    try:
        assert stream.response.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=edgekitframe"
        parts = [stream.read_part() for _ in range(3)]
    finally:
        stream.close()
    sizes = set()
    for part in parts:
        with Image.open(io.BytesIO(part)) as image:
            image.load()
            sizes.add(image.size)
    assert sizes == {SIZE} and len(set(parts)) >= 2  # new frames, not one repeated


def test_bad_requests_get_one_answer_and_the_run_goes_on(preview_run):
    port = preview_run.port
    for garbage in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 \x00\xff\r\n\r\n",  # TLS to an http port
                    bytes(range(256)) * 4 + b"\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n"):
        answer = _raw(port, garbage)
        assert re.match(rb"HTTP/1.0 (400|505) ", answer) and answer.count(b"\n") <= 12, answer[:300]
    status, _, body = _get(port, "/nowhere")
    assert status == 404 and b"/stream.mjpeg?source=NAME" in body
    status, _, body = _get(port, "/snapshot.jpg?source=no-such-camera")
    assert status == 404 and body.startswith(b"no source named 'no-such-camera'")
    status, _, _ = _get(port, "/", {"Host": "evil.example:8090"})  # DNS rebinding onto 127.0.0.1
    assert status == 403
    seen = preview_run.lines
    _until(lambda: preview_run.lines >= seen + 5, "more frames after the bad requests")
    assert preview_run.proc.poll() is None
    assert _get(port, "/snapshot.jpg")[0] == 200


def test_chromium_shows_the_stream(preview_run, tmp_path):
    browser = _Chromium(_chromium_exe(), tmp_path / "profile")
    try:
        browser.page("Page.navigate", url=f"http://127.0.0.1:{preview_run.port}/")
        size = _until(lambda: browser.evaluate(
            "document.images.length && document.images[0].naturalWidth ? "
            "[document.images[0].naturalWidth, document.images[0].naturalHeight] : null"), "the stream in Chromium")
        assert tuple(size) == SIZE
        first = browser.screenshot()
        # the camera alternates a photo and its mirror image: the shown frame must change
        changed = _until(lambda: float(np.abs(browser.screenshot() - first).mean()) or None,
                         "a different frame in a later screenshot")
        assert changed > 1.0
        assert browser.evaluate("document.title") == "edgekit preview"
    finally:
        browser.close()


def test_snapshot_of_an_image_file_is_the_full_size_original(tmp_path, model, images):
    """Image files are decoded at reduced size for the model; the preview shows the file itself."""
    folder = tmp_path / "drop"
    folder.mkdir()
    shutil.copy(images / "coral_kite_and_cold.jpg", folder / "kite.jpg")
    run = _Run("detect", str(model), str(folder), "--follow", "--no-plan", "--preview", "127.0.0.1:0")
    try:
        _until(lambda: run.lines >= 1, "the file's JSON line")
        status, _, body = _get(run.port, "/snapshot.jpg")
        assert status == 200 and Image.open(io.BytesIO(body)).size == (1352, 900)
    finally:
        rc = run.stop()
    assert rc == 0, "".join(run.err)


def test_credentials_on_a_network_address(tmp_path, model, camera):
    """`edgekit run` with [preview] credentials in the settings file and the address from
    --preview: nothing without the right password or token."""
    password, token = tmp_path / "preview.pass", tmp_path / "preview.token"
    password.write_text("viewer:s3cret pass\n")
    token.write_text("0123456789abcdef\n")
    password.chmod(0o600)
    token.chmod(0o600)
    settings = tmp_path / "service.toml"
    settings.write_text(f'model = "{model}"\nsources = ["{camera.url("/stream")}"]\nplan = false\n'
                        f'[preview]\npassword_file = "{password}"\ntoken_file = "{token}"\nfps = 10\n')
    run = _Run("run", str(settings), "--preview", "0.0.0.0:0")
    basic = lambda text: {"Authorization": "Basic " + base64.b64encode(text.encode()).decode()}  # noqa: E731
    try:
        port = run.port
        status, headers, _ = _get(port, "/snapshot.jpg")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic ")
        for wrong in (basic("viewer:wrong"), basic("intruder:s3cret pass"), {"Authorization": "Bearer nope"},
                      {"Authorization": "Basic !!!"}):
            assert _get(port, "/snapshot.jpg", wrong)[0] == 401, wrong
        assert _get(port, "/snapshot.jpg?token=0123456789abcdeX")[0] == 401
        assert _get(port, "/", {"Host": "camera-pi.local:8090", **basic("viewer:s3cret pass")})[0] == 200
        status, headers, body = _get(port, "/snapshot.jpg", {"Authorization": "Bearer 0123456789abcdef"})
        assert status == 200 and Image.open(io.BytesIO(body)).size == SIZE
        status, _, page = _get(port, "/?token=0123456789abcdef")
        assert status == 200 and b"&token=0123456789abcdef" in page  # the <img> requests carry it too
        stream = _Stream(port, "/stream.mjpeg?token=0123456789abcdef")
        assert stream.read_part() is not None
        stream.close()
    finally:
        rc = run.stop()
    assert rc == 0, "".join(run.err)


def _cli(capsys, *args: str) -> tuple[int, list[str]]:
    from edgekit.cli import main

    code = main(list(args))
    return code, capsys.readouterr().err.splitlines()


def test_bad_preview_options_exit_2_with_one_line(capsys, tmp_path, model, images):
    photo = str(images / "table.jpg")
    code, err = _cli(capsys, "detect", str(model), photo, "--no-plan", "--preview", "0.0.0.0:8090")
    assert code == 2 and len(err) == 1 and "--preview-password-file" in err[0] and "127.0.0.1" in err[0], err
    code, err = _cli(capsys, "detect", str(model), photo, "--no-plan", "--preview", "localhost")
    assert code == 2 and len(err) == 1 and "expected HOST:PORT" in err[0], err
    code, err = _cli(capsys, "detect", str(model), photo, "--no-plan", "--preview-fps", "2")
    assert code == 2 and len(err) == 1 and "needs --preview HOST:PORT" in err[0], err
    loose = tmp_path / "loose.pass"
    loose.write_text("hunter2\n")
    loose.chmod(0o644)
    code, err = _cli(capsys, "detect", str(model), photo, "--no-plan", "--preview", "0.0.0.0:0",
                     "--preview-password-file", str(loose))
    assert code == 2 and len(err) == 1 and f"chmod 600 {loose}" in err[0], err

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = _cli(capsys, "detect", str(model), photo, "--no-plan", "--preview", f"127.0.0.1:{port}")
    assert code == 2 and len(err) == 1 and f"port {port} is in use" in err[0], err
    assert not any(line.startswith("{") for line in capsys.readouterr().out.splitlines())  # nothing ran


# -- in process: a real Runner feeding a PreviewSink --------------------------------------------------
@pytest.fixture(scope="module")
def detector(model):
    from edgekit import Detector

    return Detector(str(model))


def _sink(camera, **options):
    from edgekit.preview import PreviewOptions, PreviewSink

    return PreviewSink(PreviewOptions("127.0.0.1:0", **options), [camera.url("/stream")], log=io.StringIO())


def _feed(sink, detector, camera, until, limit: int = 600) -> int:
    """Run the detector on the camera, writing every result to ``sink``, until ``until(frames)``
    is true (``limit`` frames at most); returns the frames written."""
    import edgekit

    runner = edgekit.watch(camera.url("/stream"), detector, keep_images=True)
    frames, done = 0, False
    for fr in runner:  # after stop() the frames in flight still come: they are not written
        if fr.result is None or done:
            continue
        sink.write(fr)
        frames += 1
        if frames >= limit or until(frames):
            done = True
            runner.stop()
    return frames


def _stats(sink):
    (feed,) = sink.stats()
    return feed


def test_encodes_only_while_watched_and_once_for_every_client(detector, camera):
    sink = _sink(camera, fps=4)
    try:
        assert _feed(sink, detector, camera, lambda n: n >= 10) == 10
        assert _stats(sink).frames == 10 and _stats(sink).encoded == 0  # nobody watched: nothing encoded

        started = time.monotonic()  # before the clients connect: the first encode may follow at once
        a, b = _Stream(sink.port), _Stream(sink.port)
        readers = [threading.Thread(target=s.read_all, daemon=True) for s in (a, b)]
        for reader in readers:
            reader.start()
        _feed(sink, detector, camera, lambda n: len(a.parts) >= 3 and len(b.parts) >= 3)
        elapsed, watched = time.monotonic() - started, _stats(sink)
        # every JPEG went to both clients (sent, or replaced in a slot, or still waiting in one: at most
        # one each), so one encode served both; at most fps a second (an upper bound a busy machine can
        # only stay further under)
        assert watched.sent + watched.dropped >= 2 * watched.encoded - 2 and set(a.parts) & set(b.parts)
        assert 3 <= watched.encoded <= 4 * elapsed + 1

        a.close()
        b.close()  # the server sees them go at its next write
        _feed(sink, detector, camera, lambda n: not _stats(sink).clients)
        before = _stats(sink)
        _feed(sink, detector, camera, lambda n: n >= 10)
        after = _stats(sink)
        assert after.frames == before.frames + 10 and after.encoded == before.encoded
    finally:
        sink.close()


def test_a_stalled_client_costs_only_its_own_frames(detector, camera):
    sink = _sink(camera, fps=1000)  # encode every frame the model finishes: the stall shows sooner
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window; it never reads
    stalled.connect(("127.0.0.1", sink.port))
    stalled.sendall(b"GET /stream.mjpeg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    healthy = _Stream(sink.port)
    reader = threading.Thread(target=healthy.read_all, daemon=True)
    reader.start()
    marks: dict[str, int] = {}

    def enough(frames: int) -> bool:
        clients = _stats(sink).clients
        if len(clients) < 2:
            return False
        slow = min(clients, key=lambda c: c.sent)
        if slow.dropped and "stalled" not in marks:  # from here on its thread is stuck in a send
            marks.update(stalled=frames, sent=len(healthy.parts))
        return "stalled" in marks and frames >= marks["stalled"] + 20 and len(healthy.parts) >= marks["sent"] + 5

    try:
        frames = _feed(sink, detector, camera, enough)
        clients = sorted(_stats(sink).clients, key=lambda c: c.sent)
        slow, fast = clients
        # the model went on while the stalled client's thread was blocked; so did the other client
        assert frames >= marks["stalled"] + 20 and len(healthy.parts) >= marks["sent"] + 5
        assert slow.dropped >= 1 and fast.sent > slow.sent
        print(f"frames {frames}, stalled at frame {marks['stalled']}: stalled client sent {slow.sent} dropped "
              f"{slow.dropped}; other client sent {fast.sent} dropped {fast.dropped}, read {len(healthy.parts)}")
    finally:
        sink.close()  # promptly, although one client reads nothing
        reader.join(WAIT)
        stalled.close()
    assert healthy.ended  # the healthy stream got the closing boundary
    healthy.close()


def test_settings_values_and_the_one_owner_of_each_default():
    from edgekit.errors import ConfigError
    from edgekit.preview import PREVIEW_FPS, PreviewOptions, preview_options
    from edgekit.service import ServiceSettings

    assert preview_options(None) is None
    assert preview_options("8090") == PreviewOptions("8090") and PreviewOptions("8090").host_port == ("127.0.0.1", 8090)
    assert PreviewOptions("[::1]:0").host_port == ("::1", 0) and PreviewOptions().fps == PREVIEW_FPS
    assert preview_options({"address": "127.0.0.1:9"}, fps=2.0) == PreviewOptions("127.0.0.1:9", fps=2.0)
    for bad in ({"adress": "x"}, ["127.0.0.1:1"], "::1:80", "host:port", {"fps": 0}, {"quality": 100}):
        with pytest.raises(ConfigError):
            preview_options(bad)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.toml"
        path.write_text('model = "m.tflite"\nsources = ["a.jpg"]\npreview = "127.0.0.1:8091"\n')
        settings = ServiceSettings.from_file(str(path), preview={"fps": 3.0})  # flags over the file's
        assert preview_options(settings.preview) == PreviewOptions("127.0.0.1:8091", fps=3.0)


def test_connections_past_the_cap_are_closed_without_a_thread(camera):
    from edgekit.preview._http import _MAX_CONNECTIONS

    sink = _sink(camera)
    idle = [socket.create_connection(("127.0.0.1", sink.port), timeout=WAIT) for _ in range(_MAX_CONNECTIONS)]
    try:
        _until(lambda: sink._connected() == _MAX_CONNECTIONS, "every idle connection to get its thread")
        assert _raw(sink.port, b"GET / HTTP/1.0\r\n\r\n") == b""  # closed unanswered
        idle.pop().close()
        _until(lambda: sink._connected() < _MAX_CONNECTIONS, "a closed connection to end its thread")
        assert _raw(sink.port, b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").startswith(b"HTTP/1.0 200")
    finally:
        for s in idle:
            s.close()
        sink.close()


def test_drawing_shows_zones_motion_regions_and_track_ids(images):
    """The picture's parts, on a real photo: a zone's outline (thicker and orange while occupied),
    a motion region's white outline (``fr.motion`` does not exist yet: duck-typed here), and a tag
    per detection (its track id in it)."""
    from types import SimpleNamespace

    from edgekit.preview._draw import draw_frame
    from edgekit.results import Detection
    from edgekit.zones import Zone

    with Image.open(images / "coral_kite_and_cold.jpg") as photo:
        image = photo.convert("RGB").resize(SIZE)
    person = Detection("person", 0, 0.9, (50.0, 250.0, 120.0, 400.0), track_id=7)
    result = SimpleNamespace(detections=(person,))
    zone = Zone("beach", ((0.0, 0.6), (0.5, 0.6), (0.5, 1.0), (0.0, 1.0)))
    plain = np.asarray(draw_frame(image, SimpleNamespace(result=result, zones=None), [zone]))
    busy = np.asarray(draw_frame(image, SimpleNamespace(
        result=result, zones=SimpleNamespace(occupancy={"beach": {"person": 1}}),
        motion=SimpleNamespace(regions=[(400, 100, 500, 200)])), [zone]))
    y = int(0.6 * SIZE[1])
    assert tuple(plain[y, 200]) == (255, 215, 0) and tuple(busy[y, 200]) == (255, 80, 0)
    assert tuple(busy[100, 450]) == (255, 255, 255) and tuple(plain[100, 450]) != (255, 255, 255)
    untracked = np.asarray(draw_frame(image, SimpleNamespace(
        result=SimpleNamespace(detections=(Detection("person", 0, 0.9, person.box),)), zones=None), []))
    tag = lambda pixels: int((np.all(pixels == (230, 25, 75), axis=-1)).sum())  # noqa: E731 - class 0's colour
    assert tag(busy) > tag(untracked) > 0  # "person #7 0.90" takes a wider tag than "person 0.90"
