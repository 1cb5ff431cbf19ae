"""A real mosquitto per test (free loopback port, generated config) and a collecting subscriber."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Debian installs the broker in /usr/sbin, which is not on every user's PATH.
MOSQUITTO_EXTRA_DIRS: tuple[str, ...] = ("/usr/sbin", "/usr/local/sbin")
INSTALL_MOSQUITTO = "apt-get install -y mosquitto (.ci/run does this)"


def find_mosquitto() -> str | None:
    """The mosquitto executable on PATH or in the sbin directories, else None."""
    search = os.pathsep.join(filter(None, [os.environ.get("PATH", ""), *MOSQUITTO_EXTRA_DIRS]))
    return shutil.which("mosquitto", path=search)


def in_ci() -> bool:
    """True when the environment variable CI is "true" or "1" (as CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def default_broker_kind() -> str:
    """mosquitto when installed. Otherwise amqtt with a warning on a developer's machine, but a test
    failure in CI: there a missing mosquitto means the MQTT tests would quietly run a smaller set."""
    if find_mosquitto():
        return "mosquitto"
    if in_ci():
        pytest.fail(f"CI is set but mosquitto is not installed (not on PATH nor in {', '.join(MOSQUITTO_EXTRA_DIRS)}): "
                    f"{INSTALL_MOSQUITTO}; the amqtt fallback is for developer machines only", pytrace=False)
    warnings.warn("mosquitto is not on PATH: the MQTT 3.1.1 tests run against amqtt instead "
                  f"({INSTALL_MOSQUITTO}; in CI this is a failure)", stacklevel=3)
    return "amqtt"


class Broker:
    """A broker on 127.0.0.1:<port> that a test can start, stop and kill.

    ``kind="mosquitto"`` (persistence on, so a stopped broker keeps queued messages for persistent
    subscribers; TLS/password options via ``extra_config``), ``kind="amqtt"`` (pure-Python, MQTT
    3.1.1 only), or None: mosquitto when it is installed, else amqtt — with a warning saying so, or
    a test failure when CI is set (see ``default_broker_kind``).
    """

    def __init__(self, workdir: Path, extra_config: str = "", port: int | None = None, kind: str | None = None) -> None:
        mosquitto = find_mosquitto()
        kind = kind or default_broker_kind()
        if kind == "mosquitto" and not mosquitto:
            raise RuntimeError(f"this test needs mosquitto (TLS, passwords, MQTT 5 or persistence): {INSTALL_MOSQUITTO}")
        if kind == "amqtt" and extra_config:
            raise RuntimeError("amqtt cannot run this test's broker configuration; install mosquitto")
        self.kind = kind
        self.port = port or free_port()
        self.workdir = workdir
        if kind == "mosquitto":
            self.command = [mosquitto, "-c", str(workdir / "mosquitto.conf")]
            self.config = workdir / "mosquitto.conf"
            self.config.write_text(
                f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                f"persistence_location {workdir}/\nautosave_interval 1\nautosave_on_changes true\n"
                f"log_dest file {workdir}/mosquitto.log\n"
                # started as root, mosquitto would switch to the mosquitto user, who cannot read this dir
                f"user {getpass.getuser()}\n{extra_config}")
        else:
            self.config = workdir / "amqtt.yaml"
            self.config.write_text(f"listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{self.port}\n"
                                   "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
                                   "    allow_anonymous: true\n")
            exe = Path(sys.executable).with_name("amqtt")
            self.command = [str(exe) if exe.exists() else "amqtt", "-c", str(self.config)]
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Broker":
        self.proc = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.kind} did not start on port {self.port}; see {self.workdir}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.proc = None


class Subscriber:
    """Collects every message under ``topic`` (QoS 1, persistent session: survives broker restarts)."""

    def __init__(self, port: int, topic: str, client_id: str = "edgekit-test-subscriber") -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, bool]] = []
        self.timed: list[tuple[str, bytes, bool, float]] = []  # with arrival time (perf_counter)
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload, msg.retain))
            self.timed.append((msg.topic, msg.payload, msg.retain, time.perf_counter()))

    def payloads(self, suffix: str) -> list[dict]:
        with self.lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith(suffix)]

    def wait_for(self, predicate, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return predicate(self)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class CuttableLink:
    """A TCP proxy to the broker whose ``cut()`` silently drops every byte (no RST, like a pulled
    cable or a dead Wi-Fi link) until ``restore()``, which also closes the stalled connections."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = free_port()
        self.cut_now = False
        self.conns: list[socket.socket] = []
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self.cut_now:
                    dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass

    def cut(self) -> None:
        self.cut_now = True

    def restore(self) -> None:
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.conns = []
        self.cut_now = False

    def close(self) -> None:
        self.restore()
        self.server.close()


def retained(port: int, topic: str = "#", wait: float = 30.0) -> dict[str, bytes]:
    """What the broker keeps retained under ``topic`` (a filter), as a fresh subscriber sees it:
    topic -> payload of the messages that came with the retain flag.

    No sleeping and hoping: it subscribes at QoS 0 (the broker sends the retained messages in
    order, right after the SUBACK), then sends itself a marker on a topic of its own; the marker
    comes after every retained message of the first subscription, so when it arrives they all
    have. ``wait`` only bounds a broker that never answers (AssertionError).
    """
    import uuid

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    marker = f"edgekit-test-marker/{uuid.uuid4().hex}"
    out: dict[str, bytes] = {}
    done = threading.Event()
    marker_mid: list[int] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"retained-{uuid.uuid4().hex[:12]}")

    def on_connect(c, userdata, flags, reason_code, properties):
        c.subscribe(topic, qos=0)
        marker_mid.append(c.subscribe(marker, qos=0)[1])

    def on_subscribe(c, userdata, mid, reason_codes, properties):
        if marker_mid and mid == marker_mid[-1]:  # the first subscription's retained messages are on their way
            c.publish(marker, b"end", qos=0)

    def on_message(c, userdata, msg):
        if msg.topic == marker:
            done.set()
        elif msg.retain:
            out[msg.topic] = msg.payload

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        if not done.wait(max(wait, 30.0)):
            raise AssertionError(f"the broker on port {port} did not echo the marker")
    finally:
        client.disconnect()
        client.loop_stop()
    return dict(out)
