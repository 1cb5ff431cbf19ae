"""A real RTSP server on 127.0.0.1 for the tests and the benchmarks: GStreamer's, from Debian
(gir1.2-gst-rtsp-server-1.0, python3-gi, x264enc from gstreamer1.0-plugins-ugly), run by the system
Python in a child process, serving ``rtsp://127.0.0.1:PORT/cam``.

This one file is both sides: the venv imports :class:`RtspServer` (which starts and stops the child)
and the system Python runs it as a script (:func:`serve`; only it imports ``gi``). Two kinds of
picture, both live (produced at ``fps`` on the clock, H.264 with x264enc ``tune=zerolatency``):

* the default, ``videotestsrc pattern=red`` (the source tests check the colour);
* ``image=PATH``: a window of ``size`` panning back and forth over the photo (scaled by 1.25×,
  one sweep every 4 s) so a model sees real objects moving, with a **time code** in its top-left
  corner: the server's ``time.monotonic()`` in ms (24 bits) when the frame was handed to the
  encoder. The clock is the machine's, so :func:`timecode_age_ms` on a decoded frame gives its
  glass-to-here latency (encode, RTSP, decode, queues) in this process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Self

SYSTEM_PYTHON = "/usr/bin/python3"
BLOCK = 16  # time code: px per bit (a square of black or white luma)
MARK_START, MARK_END, BITS = (1, 0), (0, 1), 24
PAN_SCALE, PAN_SECONDS = 1.25, 4.0

_PROBE = ("import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import Gst, GstRtspServer; "
          "Gst.init(None); assert Gst.ElementFactory.find('x264enc') and Gst.ElementFactory.find('rtph264pay')")


def unusable_reason(python: str = SYSTEM_PYTHON) -> str | None:
    """Why the server cannot run here (a missing package), or None when it can."""
    usable = os.path.exists(python) and subprocess.run([python, "-c", _PROBE], capture_output=True,
                                                       check=False).returncode == 0
    return None if usable else f"GStreamer's RTSP server is not usable from {python} (gi, GstRtspServer, x264enc)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """The server as a child process; ``url`` is its stream. Use as a context manager, or stop().

    Args:
        port: TCP port on 127.0.0.1 (None: a free one).
        python: the interpreter that has ``gi`` and GstRtspServer.
        size, fps: the stream's picture size and frame rate.
        image: a photo to pan over (with a time code), instead of a red test pattern.
        bitrate: x264enc kbit/s (None: x264enc's default).

    Raises:
        RuntimeError: the server did not say it was ready.
    """

    def __init__(self, port: int | None = None, *, python: str = SYSTEM_PYTHON, size: tuple[int, int] = (320, 240),
                 fps: int = 15, image: str | None = None, bitrate: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        cmd = [python, os.path.abspath(__file__), str(self.port), "--size", f"{size[0]}x{size[1]}", "--fps", str(fps)]
        if image is not None:
            pan_w, pan_h = _pan_size(image, size)
            cmd += ["--image", image, "--pan", f"{pan_w}x{pan_h}"]
        if bitrate is not None:
            cmd += ["--bitrate", str(bitrate)]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        if self.process.stdout.readline().strip() != "ready":
            self.stop()
            raise RuntimeError(f"the RTSP server did not start on port {self.port}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server has used so far."""
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _pan_size(image: str, size: tuple[int, int]) -> tuple[int, int]:
    """The panorama: the photo scaled to cover ``size`` × PAN_SCALE, in multiples of 8 (I420 rows
    without padding)."""
    from PIL import Image

    with Image.open(image) as photo:
        w, h = photo.size
    scale = PAN_SCALE * max(size[0] / w, size[1] / h)
    return int(w * scale) // 8 * 8, int(h * scale) // 8 * 8


def timecode_age_ms(pixels, now: float | None = None) -> float | None:
    """Milliseconds from the server handing this RGB frame to its encoder until ``now``
    (``time.monotonic()``), or None when the frame carries no readable time code."""
    centre = [pixels[BLOCK // 4:BLOCK * 3 // 4, i * BLOCK + BLOCK // 4:(i + 1) * BLOCK - BLOCK // 4].mean() > 128
              for i in range(len(MARK_START) + BITS + len(MARK_END))]
    marks = tuple(centre[:2]), tuple(centre[-2:])
    if marks != (MARK_START, MARK_END):
        return None
    stamp = sum(1 << i for i, bit in enumerate(centre[2:-2]) if bit)
    now_ms = int((time.monotonic() if now is None else now) * 1000)
    return float((now_ms - stamp) % (1 << BITS))


# --- the server side: run by the system Python ---------------------------------------------------

def serve(argv: list[str]) -> None:
    import argparse

    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    p = argparse.ArgumentParser()
    p.add_argument("port")
    p.add_argument("--size", default="320x240")
    p.add_argument("--fps", type=int, default=15)
    p.add_argument("--image")
    p.add_argument("--pan", help="WxH the photo is scaled to")
    p.add_argument("--bitrate", type=int)
    args = p.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    Gst.init(None)
    encode = (f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps}"
              f"{'' if args.bitrate is None else f' bitrate={args.bitrate}'} ! rtph264pay name=pay0 pt=96 config-interval=1")
    caps = f"video/x-raw,width={width},height={height},framerate={args.fps}/1"
    factory = GstRtspServer.RTSPMediaFactory()
    if args.image is None:
        factory.set_launch(f"( videotestsrc is-live=true pattern=red ! {caps} ! {encode} )")
    else:
        pan_w, pan_h = (int(v) for v in args.pan.split("x"))
        planes = _decode_i420(Gst, args.image, pan_w, pan_h)
        factory.set_launch(f"( appsrc name=src is-live=true format=time do-timestamp=true "
                           f"caps={caps},format=I420 ! {encode} )")

        def configure(_factory, media):
            pan = _Pan(planes, (pan_w, pan_h), (width, height), args.fps)
            media.get_element().get_by_name("src").connect("need-data", pan.feed, Gst)

        factory.connect("media-configure", configure)
    factory.set_shared(True)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(args.port)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        sys.exit("cannot listen on port " + args.port)
    print("ready", flush=True)
    GLib.MainLoop().run()


def _decode_i420(Gst, path: str, width: int, height: int) -> tuple[bytes, bytes, bytes]:
    """The photo decoded and scaled by GStreamer: its Y, U and V planes."""
    pipe = Gst.parse_launch(f"filesrc name=file ! decodebin ! videoconvert ! videoscale ! video/x-raw,format=I420,"
                            f"width={width},height={height},pixel-aspect-ratio=1/1 ! appsink name=sink sync=false")
    pipe.get_by_name("file").set_property("location", path)
    pipe.set_state(Gst.State.PLAYING)
    sample = pipe.get_by_name("sink").emit("try-pull-sample", 10 * Gst.SECOND)
    pipe.set_state(Gst.State.NULL)
    if sample is None:
        sys.exit(f"cannot decode {path}")
    buffer = sample.get_buffer()
    data = buffer.extract_dup(0, buffer.get_size())
    y, c = width * height, width * height // 4
    if len(data) != y + 2 * c:
        sys.exit(f"unexpected I420 layout for {width}x{height}: {len(data)} bytes")
    return data[:y], data[y:y + c], data[y + c:]


class _Pan:
    """Feeds the appsrc: paced at ``fps`` on the monotonic clock, a window sweeping diagonally
    over the panorama and back, time-coded."""

    def __init__(self, planes: tuple[bytes, bytes, bytes], pan: tuple[int, int], size: tuple[int, int], fps: int):
        self.planes, self.pan, self.size = planes, pan, size
        self.period = 1.0 / fps
        self.sweep = max(1, int(PAN_SECONDS * fps))
        self.n = 0
        self.next: float | None = None

    def feed(self, appsrc, _length, Gst) -> None:
        now = time.monotonic()
        if self.next is None or now - self.next > self.period:
            self.next = now  # the first frame, or we fell behind: restart the schedule, never burst
        elif self.next > now:
            time.sleep(self.next - now)
        data = self._frame(int(time.monotonic() * 1000) % (1 << BITS))
        appsrc.emit("push-buffer", Gst.Buffer.new_wrapped(data))
        self.n += 1
        self.next += self.period

    def _frame(self, stamp: int) -> bytes:
        (pw, ph), (w, h) = self.pan, self.size
        phase = self.n % (2 * self.sweep)
        f = (phase if phase <= self.sweep else 2 * self.sweep - phase) / self.sweep
        x0, y0 = int(f * (pw - w)) & ~1, int(f * (ph - h)) & ~1
        bits = [*MARK_START, *((stamp >> i) & 1 for i in range(BITS)), *MARK_END]
        code = b"".join((b"\xeb" if bit else b"\x10") * BLOCK for bit in bits)
        y, u, v = self.planes
        rows = [y[(y0 + r) * pw + x0:(y0 + r) * pw + x0 + w] for r in range(h)]
        rows[:BLOCK] = [code + row[len(code):] for row in rows[:BLOCK]]
        cw, cx, cy, grey = w // 2, x0 // 2, y0 // 2, b"\x80" * (len(code) // 2)
        out = rows
        for plane in (u, v):
            chroma = [plane[(cy + r) * (pw // 2) + cx:(cy + r) * (pw // 2) + cx + cw] for r in range(h // 2)]
            chroma[:BLOCK // 2] = [grey + row[len(grey):] for row in chroma[:BLOCK // 2]]
            out += chroma
        return b"".join(out)


if __name__ == "__main__":
    serve(sys.argv[1:])
