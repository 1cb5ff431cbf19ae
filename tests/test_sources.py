"""Video files, RTSP, HTTP MJPEG and snapshot sources, against real things: videos that ffmpeg
encodes here from a real photo, a real RTSP server (GStreamer's, from Debian) and a real HTTP server
on 127.0.0.1 that the tests stop and restart mid-stream.

Needs ffmpeg (libx264, mjpeg; libx265 when present) and, for RTSP, /usr/bin/python3 with gi and
GstRtspServer plus the x264enc plugin (.ci/run installs them). Missing tools skip a developer's run
and fail a CI run.
"""

from __future__ import annotations

import http.server
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rtsp_server import SYSTEM_PYTHON, RtspServer, free_port, unusable_reason

from conftest import REPO
from edgekit.errors import ConfigError
from edgekit.sources import open_sources
from edgekit.sources.stream import AvStream, HttpStream, ImageDecoder, read_multipart, redact
from edgekit.sources.video import VideoFile

W, H, FPS, COUNT, STEP = 320, 240, 10, 30, 12  # a 3-second pan, 12 px per frame


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def _missing(what: str) -> None:
    message = (f"{what} (apt-get install ffmpeg gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-good "
               "gstreamer1.0-plugins-ugly; .ci/run does this)")
    if _in_ci():
        pytest.fail(f"CI is set but {message}")
    pytest.skip(message)


def _ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        _missing("ffmpeg is not installed")
    return path


@pytest.fixture(scope="module")
def pan(images) -> np.ndarray:
    """COUNT RGB frames: a window panning left to right across coral_kite_and_cold.jpg."""
    with Image.open(images / "coral_kite_and_cold.jpg") as photo:
        photo = photo.convert("RGB").resize((W + STEP * COUNT, H + 60))
    pixels = np.asarray(photo)
    return np.stack([pixels[30:30 + H, i * STEP:i * STEP + W] for i in range(COUNT)])


def _encode(frames: np.ndarray, path: Path, codec_args: list[str]) -> Path:
    cmd = [_ffmpeg(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}", "-r", str(FPS),
           "-i", "-", *codec_args, str(path)]
    subprocess.run(cmd, input=frames.tobytes(), check=True, timeout=120)
    return path


def _has_encoder(name: str) -> bool:
    out = subprocess.run([_ffmpeg(), "-hide_banner", "-encoders"], capture_output=True, text=True, check=True).stdout
    return f" {name} " in out


CODECS = {
    "h264.mp4": ["-c:v", "libx264", "-preset", "veryfast", "-qp", "12", "-pix_fmt", "yuv420p"],
    "h264.mkv": ["-c:v", "libx264", "-preset", "veryfast", "-qp", "12", "-pix_fmt", "yuv420p", "-bf", "2"],
    "mjpeg.avi": ["-c:v", "mjpeg", "-q:v", "2", "-pix_fmt", "yuvj420p"],
    "h265.mp4": ["-c:v", "libx265", "-x265-params", "log-level=error:qp=12", "-pix_fmt", "yuv420p", "-tag:v", "hvc1"],
}


@pytest.fixture(scope="module")
def videos(pan, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    made = {}
    for name, args in CODECS.items():
        if name.startswith("h265") and not _has_encoder("libx265"):
            continue  # reported by test_every_frame_once_in_order_with_timestamps
        made[name] = _encode(pan, folder / f"pan-{name}", args)
    return made


def _nearest(pixels: np.ndarray, pan: np.ndarray) -> tuple[int, float]:
    errors = np.abs(pan.astype(np.int16) - pixels.astype(np.int16)).mean(axis=(1, 2, 3))
    return int(errors.argmin()), float(errors.min())


@pytest.mark.parametrize("name", list(CODECS))
def test_every_frame_once_in_order_with_timestamps(videos, pan, name):
    if name not in videos:
        _missing("ffmpeg has no libx265 encoder")
    source = VideoFile(str(videos[name]))
    frames = list(source.frames())
    assert source.live is False and source.fps == pytest.approx(FPS)
    assert [f.problem for f in frames] == [None] * COUNT
    assert [f.index for f in frames] == list(range(COUNT))
    assert [f.timestamp for f in frames] == pytest.approx([i / FPS for i in range(COUNT)], abs=1e-3)
    for i, frame in enumerate(frames):
        assert frame.pixels.format.name in ("yuv420p", "yuvj420p")  # the decoder's frame, not converted yet
        rgb = frame.rgb()
        assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
        nearest, error = _nearest(rgb, pan)
        assert (nearest, error < 6.0) == (i, True), f"frame {i}: closest encoded frame {nearest}, mean error {error:.1f}"


def test_video_opens_by_extension_and_names_itself(videos):
    (source,) = open_sources([str(videos["h264.mkv"])])
    assert isinstance(source, VideoFile) and source.name == str(videos["h264.mkv"])
    assert (source.width, source.height, source.codec) == (0, 0, "")  # nothing read before frames()
    first = next(iter(source.frames()))
    assert (source.width, source.height, source.codec, source.frame_count is None or source.frame_count == COUNT) \
        == (W, H, "h264", True)
    assert first.index == 0


def test_raw_h264_stream_counts_time_at_its_rate(pan, tmp_path):
    path = _encode(pan[:10], tmp_path / "pan.h264", ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"])
    frames = list(VideoFile(str(path)).frames())
    assert [f.index for f in frames] == list(range(10)) and all(f.problem is None for f in frames)
    steps = np.diff([f.timestamp for f in frames])
    assert (steps > 0).all() and steps == pytest.approx(steps[0])  # no container: FFmpeg's assumed rate


def test_close_stops_a_video_midway(videos):
    source = VideoFile(str(videos["mjpeg.avi"]))
    seen = []
    for frame in source.frames():
        seen.append(frame.index)
        if frame.index == 4:
            source.close()
    assert seen == [0, 1, 2, 3, 4]


def test_unreadable_videos_give_one_problem_not_a_traceback(tmp_path):
    missing = list(VideoFile(str(tmp_path / "nope.mp4")).frames())
    (tmp_path / "text.mp4").write_text("not a video\n" * 100)
    text = list(VideoFile(str(tmp_path / "text.mp4")).frames())
    for frames, words in ((missing, "no such file"), (text, "invalid data")):
        assert len(frames) == 1 and frames[0].pixels is None
        assert frames[0].problem.startswith("cannot open the video:") and words in frames[0].problem.lower()


def test_damaged_videos_end_cleanly(videos, tmp_path):
    # MP4 keeps its index (moov) at the end: cut, it cannot be opened at all -> one problem frame
    mp4 = videos["h264.mp4"].read_bytes()
    (tmp_path / "cut.mp4").write_bytes(mp4[: len(mp4) * 2 // 3])
    (frame,) = VideoFile(str(tmp_path / "cut.mp4")).frames()
    assert frame.pixels is None and frame.problem.startswith("cannot open the video:")
    # MKV streams: cut, it plays up to the cut; AVI with garbage inside its JPEG frames plays on
    mkv = videos["h264.mkv"].read_bytes()
    (tmp_path / "cut.mkv").write_bytes(mkv[: len(mkv) * 2 // 3])
    avi = bytearray(videos["mjpeg.avi"].read_bytes())
    rng = np.random.default_rng(0)
    for start in range(len(avi) // 4, len(avi) * 3 // 4, 4000):
        avi[start:start + 200] = rng.integers(0, 256, 200, dtype=np.uint8).tobytes()
    (tmp_path / "scribbled.avi").write_bytes(bytes(avi))
    for name in ("cut.mkv", "scribbled.avi"):
        frames = list(VideoFile(str(tmp_path / name)).frames())  # no exception escapes
        assert all((f.pixels is None) != (f.problem is None) for f in frames)
        assert [f.index for f in frames] == list(range(len(frames)))
        good = [f.timestamp for f in frames if f.problem is None]
        assert 5 <= len(good) < COUNT + 1 and good == sorted(good), name


def test_missing_video_extra_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "av", None)  # what `import av` meets when PyAV is not installed
    for open_it in (lambda: VideoFile(str(tmp_path / "x.mp4")), lambda: AvStream("rtsp://127.0.0.1:1/x")):
        with pytest.raises(ConfigError) as caught:
            open_it()
        message = str(caught.value)
        assert "\n" not in message and "PyAV" in message and "pip install 'edgekit[video]'" in message


def test_kinds_are_chosen_by_argument(videos, images):
    sources = open_sources([str(images / "table.jpg"), "rtsp://user:secret@127.0.0.1:1/cam#transport=udp",
                            "https://127.0.0.1:1/snap.jpg", str(videos["mjpeg.avi"])])
    assert [type(s).__name__ for s in sources] == ["ImageFiles", "AvStream", "HttpStream", "VideoFile"]
    assert [s.live for s in sources] == [False, True, True, False]
    rtsp = sources[1]
    assert rtsp.name == "rtsp://user:***@127.0.0.1:1/cam" and rtsp.url == "rtsp://user:secret@127.0.0.1:1/cam"
    assert rtsp.options["rtsp_transport"] == "udp"
    with pytest.raises(ConfigError, match="transport"):
        AvStream("rtsp://127.0.0.1:1/cam", transport="sctp")
    assert redact("http://a:b@h:8/p?q=1") == "http://a:***@h:8/p?q=1" and redact("http://h/p") == "http://h/p"


# --- HTTP: multipart parsing (logic), then a real server ------------------------------------------

def test_multipart_parser_takes_what_cameras_send():
    a, b = b"\xff\xd8first\r\n--not-a-boundary\xff\xd9", b"\xff\xd8second\n\xff\xd9"
    # a preamble, blank lines between parts, header names in any case, a closing delimiter
    with_length = (b"preamble\r\n--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n\r\n"
                   b"--frame\r\ncontent-length: %d\r\n\r\n%s\r\n--frame--\r\nignored" % (len(a), a, len(b), b))
    assert list(read_multipart(io.BytesIO(with_length), b"frame")) == [a, b]
    # no Content-Length (the body runs to the next delimiter), the boundary parameter carrying the dashes
    without = b"----cam\r\nContent-Type: image/jpeg\r\n\r\n%s\r\n----cam\r\n\r\n%s\r\n----cam\r\n" % (a, b)
    assert list(read_multipart(io.BytesIO(without), b"--cam")) == [a, b]
    # a stream cut inside a part yields what was complete and ends
    cut = with_length[: with_length.index(b"second") + 3]
    assert list(read_multipart(io.BytesIO(cut), b"frame")) == [a]


def test_image_decoder_uses_ffmpeg_for_jpeg_and_pillow_otherwise(pan, monkeypatch):
    jpeg, png = _jpeg(pan[3]), io.BytesIO()
    Image.fromarray(pan[4]).save(png, "PNG")
    pillow = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    decode = ImageDecoder()
    assert decode._codec is not None  # PyAV is installed with the test extra
    frame = decode(jpeg)  # the decoder's YUV frame: converted only when asked
    assert frame.format.name.startswith("yuvj") and (frame.width, frame.height) == (W, H)
    assert _one_of(frame.to_ndarray(format="rgb24"), [pillow])
    assert np.array_equal(decode(png.getvalue()), pan[4])
    assert "undecodable" in decode(b"\xff\xd8\xff\xe0 not really a jpeg")
    monkeypatch.setitem(sys.modules, "av", None)  # without the video extra: Pillow
    without = ImageDecoder()
    assert without._codec is None and np.array_equal(without(jpeg), pillow)
    assert without(b"junk").startswith("undecodable image (4 bytes)")


def _jpeg(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=95)
    return out.getvalue()


class _CameraServer:
    """A real HTTP camera on 127.0.0.1: /stream and /stream-nolength (MJPEG at ~25 fps), /snap
    (a JPEG, a different frame per request), /page (HTML). stop() drops every connection."""

    def __init__(self, jpegs: list[bytes], port: int = 0) -> None:
        self.jpegs, self.requests = jpegs, 0
        self.stopping = threading.Event()
        server_self = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server_self.requests += 1
                if self.path == "/snap":
                    return self._send(server_self.jpegs[server_self.requests % len(server_self.jpegs)], "image/jpeg")
                if self.path == "/page":
                    return self._send(b"<html>login</html>", "text/html")
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace;boundary=edgekitframe")
                self.end_headers()
                n = 0
                while not server_self.stopping.is_set():
                    body = server_self.jpegs[n % len(server_self.jpegs)]
                    head = b"--edgekitframe\r\nContent-Type: image/jpeg\r\n"
                    if self.path == "/stream":
                        head += b"Content-Length: %d\r\n" % len(body)
                    try:
                        self.wfile.write(head + b"\r\n" + body + b"\r\n")
                    except OSError:
                        return
                    n += 1
                    time.sleep(0.04)

            def _send(self, body, content_type):
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def camera_frames(pan) -> list[np.ndarray]:
    return [pan[i] for i in (0, 10, 20)]


@pytest.fixture
def camera(camera_frames):
    server = _CameraServer([_jpeg(p) for p in camera_frames])
    yield server
    server.stop()


def _decoded(jpegs: list[bytes]) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(j)).convert("RGB")) for j in jpegs]


def _one_of(pixels: np.ndarray, expected: list[np.ndarray]) -> bool:
    """Equal to one of the served pictures within JPEG decoder differences (FFmpeg's vs Pillow's IDCT)."""
    return any(np.abs(pixels.astype(np.int16) - e).mean() < 2.0 for e in expected)


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class _Reader:
    """Consumes a source's frames() on a thread, as the runner does."""

    def __init__(self, source, delay: float = 0.0) -> None:
        self.source, self.delay, self.frames, self.events = source, delay, [], []
        source.on_status = lambda name, status, reason: self.events.append((name, status, reason))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        for frame in self.source.frames():
            self.frames.append(frame)
            time.sleep(self.delay)

    def close(self) -> float:
        started = time.monotonic()
        self.source.close()
        self.thread.join(5)
        assert not self.thread.is_alive()
        return time.monotonic() - started


@pytest.mark.parametrize("path", ["/stream", "/stream-nolength"])
def test_http_mjpeg_stream_yields_the_served_frames(camera, path):
    expected = _decoded(camera.jpegs)
    reader = _Reader(HttpStream(camera.url(path)))
    _wait_for(lambda: len(reader.frames) >= 8, 10, "8 MJPEG frames")
    reader.close()
    source = reader.source
    assert source.live and source.mode == "mjpeg" and source.status == "up"
    assert reader.events == [(camera.url(path), "up", "")]
    for frame in reader.frames[:8]:
        assert frame.problem is None and frame.source == camera.url(path)
        assert _one_of(frame.rgb(), expected)
    indices = [f.index for f in reader.frames]
    assert indices == sorted(set(indices))
    stamps = [f.timestamp for f in reader.frames]
    assert stamps == sorted(stamps) and abs(stamps[-1] - time.time()) < 10  # wall-clock capture time


def test_http_stream_reconnects_after_a_server_restart_and_reports_once(camera_frames):
    server = _CameraServer([_jpeg(p) for p in camera_frames])
    port, url = server.port, server.url("/stream")
    reader = _Reader(HttpStream(url, backoff=0.05, max_backoff=0.2))
    try:
        _wait_for(lambda: len(reader.frames) >= 5, 10, "frames before the restart")
        server.stop()
        _wait_for(lambda: reader.source.status == "down", 10, "the outage to be noticed")
        time.sleep(1.0)  # refused reconnections meanwhile, each one retried with backoff
        before = len(reader.frames)
        server = _CameraServer(server.jpegs, port=port)
        _wait_for(lambda: len(reader.frames) >= before + 5, 15, "frames after the restart")
    finally:
        reader.close()
        server.stop()
    assert [e[1] for e in reader.events] == ["up", "down", "up"]
    assert reader.source.reconnects >= 3  # several attempts during the outage, one report
    reason = reader.events[1][2]
    assert reason, "the outage says why"
    expected = _decoded(server.jpegs)
    assert all(_one_of(f.rgb(), expected) for f in reader.frames[before:])
    indices = [f.index for f in reader.frames]
    assert indices == sorted(set(indices))


def test_slow_consumer_gets_the_newest_frame_and_drops_are_counted(camera):
    reader = _Reader(HttpStream(camera.url("/stream")), delay=0.25)
    _wait_for(lambda: len(reader.frames) >= 4, 10, "4 frames at a slow pace")
    reader.close()
    indices = [f.index for f in reader.frames]
    assert reader.source.dropped > 0 and max(np.diff(indices)) > 1
    latest_age = [f.captured for f in reader.frames]
    assert latest_age == sorted(latest_age)


def test_close_returns_promptly_while_the_stream_is_quiet(camera):
    reader = _Reader(HttpStream(camera.url("/stream")))
    _wait_for(lambda: reader.frames, 10, "a frame")
    camera.stopping.set()  # the server keeps the connection open but sends nothing more
    time.sleep(0.2)
    assert reader.close() < 1.0
    assert not reader.source._thread.is_alive()


def test_snapshot_url_is_polled_at_its_interval(camera):
    expected = _decoded(camera.jpegs)
    reader = _Reader(HttpStream(camera.url("/snap"), interval=0.1))
    _wait_for(lambda: len(reader.frames) >= 4, 10, "4 snapshots")
    reader.close()
    assert reader.source.mode == "snapshot" and reader.events[0][1] == "up"
    served = {next(i for i, e in enumerate(expected) if _one_of(f.rgb(), [e])) for f in reader.frames}
    assert len(served) >= 2  # each poll is a new request, a new picture
    gaps = np.diff([f.captured for f in reader.frames[:4]])
    # polls keep to a fixed schedule (a late one is followed by one on time, so a single gap may
    # be short on a busy machine): never hammering, about one an interval
    assert gaps.sum() >= 0.25 and (gaps > 0.04).all(), gaps


def test_wrong_content_type_is_an_outage_that_names_it(camera):
    reader = _Reader(HttpStream(camera.url("/page"), backoff=0.05))
    _wait_for(lambda: reader.events, 10, "a status report")
    reader.close()
    assert reader.frames == [] and reader.events[0][1] == "down"
    assert "text/html" in reader.events[0][2] and "multipart/x-mixed-replace" in reader.events[0][2]


def test_unreachable_server_reports_down_once_and_keeps_trying():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    reader = _Reader(HttpStream(f"http://127.0.0.1:{port}/stream", backoff=0.02, max_backoff=0.05))
    _wait_for(lambda: reader.source.reconnects >= 5, 10, "5 reconnection attempts")
    reader.close()
    assert [e[1] for e in reader.events] == ["down"] and "refused" in reader.events[0][2].lower()


# --- RTSP: GStreamer's RTSP server from Debian, in the system Python ------------------------------

@pytest.fixture(scope="module")
def rtsp_python() -> str:
    reason = unusable_reason(SYSTEM_PYTHON)
    if reason is not None:
        _missing(reason)
    return SYSTEM_PYTHON


def _is_red(pixels: np.ndarray) -> bool:
    r, g, b = pixels.reshape(-1, 3).mean(axis=0)
    return r > 200 and g < 40 and b < 40  # RGB order: videotestsrc pattern=red


def test_rtsp_reconnects_after_a_server_restart(rtsp_python):
    port = free_port()
    server = RtspServer(port, python=rtsp_python)
    url = f"rtsp://127.0.0.1:{port}/cam"
    reader = _Reader(AvStream(url, open_timeout=5, read_timeout=3, backoff=0.2, max_backoff=1.0))
    try:
        _wait_for(lambda: len(reader.frames) >= 5, 20, "RTSP frames")
        server.stop()
        _wait_for(lambda: reader.source.status == "down", 10, "the RTSP outage to be noticed")
        time.sleep(1.0)
        before = len(reader.frames)
        server = RtspServer(port, python=rtsp_python)
        _wait_for(lambda: len(reader.frames) >= before + 5, 20, "RTSP frames after the restart")
    finally:
        took = reader.close()
        server.stop()
    assert took < 1.5
    assert [e[1] for e in reader.events] == ["up", "down", "up"] and reader.events[1][2]
    assert reader.source.reconnects >= 2
    assert all(f.problem is None and f.rgb().shape == (240, 320, 3) and _is_red(f.rgb()) for f in reader.frames)
    indices = [f.index for f in reader.frames]
    assert indices == sorted(set(indices))


def test_rtsp_server_that_goes_silent_times_out_and_comes_back(rtsp_python):
    """A network cut without a reset: the server is frozen (SIGSTOP), then thawed."""
    port = free_port()
    server = RtspServer(port, python=rtsp_python)
    reader = _Reader(AvStream(f"rtsp://127.0.0.1:{port}/cam", open_timeout=2, read_timeout=1.5, backoff=0.2,
                              max_backoff=0.5))
    try:
        _wait_for(lambda: len(reader.frames) >= 3, 20, "RTSP frames")
        server.process.send_signal(signal.SIGSTOP)
        _wait_for(lambda: reader.source.status == "down", 10, "the read timeout")
        server.process.send_signal(signal.SIGCONT)
        before = len(reader.frames)
        _wait_for(lambda: len(reader.frames) >= before + 3, 20, "RTSP frames after the thaw")
    finally:
        server.process.send_signal(signal.SIGCONT)
        reader.close()
        server.stop()
    assert [e[1] for e in reader.events] == ["up", "down", "up"]
    assert reader.events[1][2] == "no data within the 1.5 s read timeout"


def test_rtsp_over_udp(rtsp_python):
    port = free_port()
    server = RtspServer(port, python=rtsp_python)
    reader = _Reader(AvStream(f"rtsp://127.0.0.1:{port}/cam", transport="udp", open_timeout=5, read_timeout=3))
    try:
        _wait_for(lambda: len(reader.frames) >= 5, 20, "RTSP frames over UDP")
    finally:
        reader.close()
        server.stop()
    assert reader.source.options["rtsp_transport"] == "udp" and reader.events[0][1] == "up"
    assert all(_is_red(f.rgb()) for f in reader.frames if f.problem is None)


# --- V4L2 and picamera2: no camera here; only what can be checked without one ---------------------

def test_missing_v4l2_device_is_an_outage_not_a_crash():
    (source,) = open_sources(["/dev/video99"])
    assert isinstance(source, AvStream) and source.device and source.live and "rtsp_transport" not in source.options
    reader = _Reader(source)
    _wait_for(lambda: reader.events, 10, "a status report")
    reader.close()
    assert reader.frames == [] and reader.events == [("/dev/video99", "down", "No such file or directory")]


def test_picamera2_without_the_module_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(ConfigError) as caught:
        open_sources(["picamera2"])
    message = str(caught.value)
    assert "\n" not in message and "python3-picamera2" in message and "--system-site-packages" in message


@pytest.mark.parametrize("url", ["http://[::1", "http://cam:99999/video", "http://cam:abc/video",
                                 "http://user:pw@[::1/video"])
def test_an_unusable_http_url_is_refused_with_one_line(url):
    """urlsplit's ValueError (an unclosed IPv6 bracket, a port out of range) was 'internal error'
    (rc 70) at start, or an outage retried forever for a port that can never work."""
    from edgekit.cli import main

    with pytest.raises(ConfigError, match="expected an http:// or https:// URL") as info:
        HttpStream(url)
    assert "pw" not in str(info.value)
    assert main(["detect", str(REPO / "examples" / "shapes" / "shapes_int8.tflite"), url]) == 2


def test_redact_hides_the_password_of_a_url_it_cannot_parse():
    assert redact("rtsp://user:secret@[::1/stream") == "rtsp://user:***@[::1/stream"
    assert redact("rtsp://[::1") == "rtsp://[::1"
