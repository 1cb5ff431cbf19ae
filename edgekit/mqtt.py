"""Deliver MQTT messages without losing any (paho-mqtt 2.x, imported only when used).

:class:`Publisher` is the transport: the paho client (TLS, credentials, MQTT 3.1.1 or 5), the
``status`` last will, the on-disk outbox, the sender thread and delivery statistics; it publishes
whatever it is given (:meth:`Publisher.publish`). What edgekit says is built elsewhere, by pure
functions: :mod:`edgekit.payloads` (detections, counts, source status, snapshots) and
:mod:`edgekit.homeassistant` (discovery); :class:`edgekit.sinks.MqttSink` composes them for the
runner, and "only on change" is a runner stage (:class:`edgekit.stages.ChangeGate`).

Topics (``<prefix>/<device_id>/…``, prefix ``edgekit``)::

    detections        one message per processed image: schema "edgekit.detections/1"
    counts/<label>    retained: how many <label> the latest image had (only sent on change)
    status            retained "online" / "offline"; "offline" is also the last will
    stats             every stats_interval: fps, latency, per-stage ms, per-source counters (from
                      the MqttSink), RSS, and messages queued/sent/dropped, connection state
    snapshot          JPEG of each published image (off by default: ``snapshot``)
    sources/<name>/status   retained: a source's "up" / "down" and why

Home Assistant discovery (``ha_discovery``): each label, when first counted, gets a count sensor
and a presence binary sensor under ``homeassistant/…/edgekit_<device_id>/…/config`` (retained),
tied to ``status`` for availability; ``edgekit ha-remove`` deletes them.

Reliability: every message goes to the on-disk :class:`~edgekit.outbox.Outbox` first and leaves it
only when the broker acknowledges it (QoS 1 PUBACK); a background thread sends the backlog in
order (with a share of each batch for the newest messages) whenever connected, and reconnects with
backoff. At-least-once: de-duplicate detections by ``event_id``.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

from .errors import ConfigError, MqttError  # MqttError: also importable from here, as before
from .homeassistant import ha_discovery_configs  # noqa: F401  (moved; importable here too)
from .outbox import Outbox
from .payloads import SCHEMA, detection_payload  # noqa: F401  (moved; importable here too)

if TYPE_CHECKING:
    from .results import DetectionResult

__all__ = ["MqttError", "MqttSettings", "Publisher", "SCHEMA"]


def _default_outbox(device_id: str) -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "edgekit", f"outbox-{device_id}.db")


def _check_topic_part(name: str, value: str) -> str:
    if not value or any(c in value for c in "+#\0") or "//" in value or value.startswith("/") or value.endswith("/"):
        raise ConfigError(f"MQTT {name} {value!r} is not usable in a topic: no '+', '#', empty levels or "
                          "leading/trailing '/'")
    return value


@dataclass(frozen=True)
class MqttSettings:
    """Where and how to publish. Secrets never come from the URL or argv: use ``password_env``
    (default ``EDGEKIT_MQTT_PASSWORD``) or ``password_file`` (readable by its owner only)."""

    host: str
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password_file: str | None = None
    password_env: str = "EDGEKIT_MQTT_PASSWORD"
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False  # skip certificate verification: refused unless allow_insecure
    allow_insecure: bool = False
    device_id: str = field(default_factory=lambda: socket.gethostname().split(".")[0] or "edgekit")
    prefix: str = "edgekit"
    qos: int = 1
    protocol: str = "3.1.1"  # or "5"
    keepalive: int = 30
    session_expiry: int = 3600  # MQTT 5: seconds the broker keeps our session after a disconnect
    outbox: str | None = None
    outbox_max: int = 100_000
    stats_interval: float = 30.0
    window: int = 20  # messages in flight (sent, not yet acknowledged)
    only_on_change: bool = False  # skip a detections message when the per-label counts did not change
    snapshot: bool = False  # also publish a JPEG of each published image to <…>/snapshot
    ha_discovery: bool = False  # announce Home Assistant entities (per-label count + presence)
    ha_prefix: str = "homeassistant"

    def __post_init__(self) -> None:
        _check_topic_part("prefix", self.prefix)
        _check_topic_part("device id", self.device_id)
        if self.qos not in (0, 1, 2):
            raise ConfigError(f"MQTT QoS must be 0, 1 or 2, found {self.qos}")
        if self.protocol not in ("3.1.1", "5"):
            raise ConfigError(f"MQTT protocol must be 3.1.1 or 5, found {self.protocol!r}")
        if self.insecure and not self.allow_insecure:
            raise ConfigError("refusing to skip TLS certificate verification; use a CA file (ca_file), or set "
                              "allow_insecure as well if you really mean it")

    @classmethod
    def from_file(cls, path: str, **overrides: Any) -> "MqttSettings":
        """Settings from a TOML (Python ≥ 3.11) or JSON file: ``url`` plus any field of this class.
        Unknown keys are refused, with the known ones listed."""
        from .settingsfile import read_settings

        known = {f for f in cls.__dataclass_fields__} | {"url"}
        doc = read_settings(path, known, "MQTT setting", "TOML (or .json) with a url key",
                            select=lambda d: d.get("mqtt", d))
        if "password" in doc:
            raise ConfigError(f"{path}: put the password in a password_file, not in the settings")
        url = overrides.pop("url", None) or doc.pop("url", None)
        doc.pop("url", None)
        doc.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_url(url, **doc) if url else cls(**doc)

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> "MqttSettings":
        """``mqtt://[user@]host[:port]`` or ``mqtts://…`` (TLS, default port 8883)."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError(f"expected an MQTT URL like mqtt://broker:1883 or mqtts://broker:8883, found {url!r}")
        if parts.password is not None:
            raise ConfigError("do not put the MQTT password in the URL (it shows in process listings); set "
                              "EDGEKIT_MQTT_PASSWORD or use a password file readable only by you")
        try:
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError:
            raise ConfigError(f"the port in {url!r} is not a number between 1 and 65535") from None
        base: dict[str, Any] = {"host": parts.hostname, "port": port, "tls": parts.scheme == "mqtts"}
        if parts.username:
            base["username"] = parts.username
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def password(self) -> str | None:
        if self.password_file:
            try:
                st = os.stat(self.password_file)
                if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                    raise ConfigError(f"{self.password_file}: the password file is readable by others; "
                                      f"run 'chmod 600 {self.password_file}'")
                with open(self.password_file, encoding="utf-8") as fh:
                    return fh.read().strip()
            except OSError as exc:
                raise ConfigError(f"{self.password_file}: cannot read the password file ({exc.strerror})") from None
        return os.environ.get(self.password_env) or None

    def topic(self, *parts: str) -> str:
        return "/".join((self.prefix, self.device_id, *parts))


class Publisher:
    """Queues messages in the outbox and delivers them; use as a context manager so it flushes
    and closes cleanly. ``stats()`` is the delivery state; the ``stats`` topic adds what
    ``extra_stats()`` returns (set by the :class:`~edgekit.sinks.MqttSink` publishing through it).

    Args:
        settings: MqttSettings.
        required: raise MqttError from :meth:`start` if the broker cannot be reached or refuses us
            within ``connect_timeout``; otherwise keep going and deliver later.
    """

    def __init__(self, settings: MqttSettings, required: bool = False, connect_timeout: float = 10.0) -> None:
        self.settings = settings
        self.required = required
        self.connect_timeout = connect_timeout
        self.outbox = Outbox(settings.outbox or _default_outbox(settings.device_id), settings.outbox_max)
        self.sent = 0
        self.last_error: str | None = None
        # the stats topic's fields about the run (fps, latency, per source): set by its MqttSink
        self.extra_stats: Callable[[], dict[str, Any]] | None = None
        self._results: Any = None  # the MqttSink behind publish_result, made on first use
        self._inflight: dict[int, int] = {}  # paho mid -> outbox id
        self._early: dict[int, float] = {}  # PUBACKs that arrived before their mid was recorded
        self._map_lock = threading.Lock()  # never held across a paho call (paho's own locks: deadlock)
        self._connected = threading.Event()
        self._refused = threading.Event()
        self._wake = threading.Condition()
        self._stop = False
        self._client = self._make_client()
        self._sender = threading.Thread(target=self._send_loop, name="edgekit-mqtt-sender", daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------
    def _make_client(self):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        s = self.settings
        v5 = s.protocol == "5"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"edgekit-{s.device_id}",
                             protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, clean_session=None if v5 else True)
        if s.username:
            client.username_pw_set(s.username, s.password())
        if s.tls:
            import ssl

            try:
                client.tls_set(ca_certs=s.ca_file, certfile=s.cert_file, keyfile=s.key_file,
                               cert_reqs=ssl.CERT_NONE if s.insecure else ssl.CERT_REQUIRED)
            except (OSError, ValueError, ssl.SSLError) as exc:
                raise ConfigError(f"TLS set-up failed ({exc}); check the CA/cert/key files") from None
            client.tls_insecure_set(s.insecure)
        client.will_set(s.topic("status"), b"offline", qos=1, retain=True)
        client.max_inflight_messages_set(s.window)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_connect_fail = self._on_connect_fail
        return client

    def start(self) -> "Publisher":
        """Connect in the background and start delivering."""
        import paho.mqtt.client as mqtt

        s = self.settings
        kwargs: dict[str, Any] = {}
        if s.protocol == "5":
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = s.session_expiry
            kwargs = {"clean_start": mqtt.MQTT_CLEAN_START_FIRST_ONLY, "properties": props}
        self._client.connect_async(s.host, s.port, keepalive=s.keepalive, **kwargs)
        self._client.loop_start()
        self._sender.start()
        if self.required:
            deadline = time.monotonic() + self.connect_timeout
            while time.monotonic() < deadline and not self._connected.is_set() and not self._refused.is_set():
                time.sleep(0.05)
            if not self._connected.is_set():
                self.close(flush_timeout=0)
                raise MqttError(f"MQTT broker {s.host}:{s.port}: " + (self.last_error or
                                f"not reachable within {self.connect_timeout:.0f} s") + "; check --mqtt, "
                                "credentials and TLS settings (without --mqtt-required edgekit keeps the "
                                "messages and delivers them later)")
        return self

    def __enter__(self) -> "Publisher":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self, flush_timeout: float = 10.0) -> None:
        """Deliver what can be delivered within ``flush_timeout``, mark us offline, disconnect.
        Undelivered messages stay in the outbox for the next run."""
        if flush_timeout and self._connected.is_set():  # offline: nothing to wait for, the outbox keeps them
            self.flush(flush_timeout)
        if self._connected.is_set():
            info = self._client.publish(self.settings.topic("status"), b"offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2)
            except (RuntimeError, ValueError):
                pass
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        if self._sender.is_alive():
            self._sender.join(timeout=5)
        self._client.disconnect()
        self._client.loop_stop()
        self.outbox.close()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the outbox is empty (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while len(self.outbox) and time.monotonic() < deadline:
            self._notify()
            time.sleep(0.02)
        return len(self.outbox) == 0

    # -- publishing -----------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes | str, qos: int | None = None, retain: bool = False) -> None:
        """Queue one message: it goes to the on-disk outbox now and leaves it when the broker
        acknowledges it (QoS 1/2) or it was sent (QoS 0). Never waits for the network; a full
        outbox drops its oldest message (counted in ``stats()["dropped"]``).

        Args:
            topic: the full topic (``settings.topic(...)`` builds ``<prefix>/<device_id>/…``).
            payload: bytes, or text (sent as UTF-8).
            qos: None for the settings' QoS.
            retain: the broker keeps it as the topic's last value.
        """
        if isinstance(payload, str):
            payload = payload.encode()
        self.outbox.put(topic, payload, self.settings.qos if qos is None else qos, retain=retain)
        self._notify()

    def publish_result(self, result: DetectionResult, model: str = "", image: Any = None,
                       latency_ms: float | None = None) -> str | None:
        """Publish one result without the runner, as :class:`~edgekit.sinks.MqttSink` publishes a
        frame: detections, changed per-label counts, Home Assistant discovery and snapshot as the
        settings say; ``latency_ms`` feeds the ``stats`` topic. Returns the event id, or None when
        ``only_on_change`` held back a result whose counts did not change (the sink's
        :class:`~edgekit.stages.ChangeGate` does that, not the publisher)."""
        if self._results is None:
            from .sinks import MqttSink

            self._results = MqttSink(self, model, only_on_change=self.settings.only_on_change)
        return self._results.publish_result(result, image, latency_ms, model=model)

    def remove_discovery(self, labels: list[str]) -> None:
        """Remove the Home Assistant entities of ``labels`` (empty retained configs)."""
        from .homeassistant import removal_messages

        for message in removal_messages(self.settings, labels):
            self.publish(*message)

    def publish_source_status(self, source: str, status: str, reason: str = "") -> None:
        """Queue a source's state (``up``/``down`` + reason), retained, on ``<device>/sources/<name>/status``."""
        from .payloads import source_status_message

        self.publish(*source_status_message(self.settings, source, status, reason))

    def stats(self) -> dict[str, Any]:
        """The delivery state: connected, queued (undelivered), sent, dropped (lost to a full
        outbox or disk), inflight (sent, not yet acknowledged) and the last connection error."""
        return {"connected": self._connected.is_set(), "queued": len(self.outbox), "sent": self.sent,
                "dropped": self.outbox.dropped, "inflight": len(self._inflight), "last_error": self.last_error}

    def _stats_message(self) -> dict[str, Any]:
        """The ``stats`` topic: what ``extra_stats()`` says about the run, then :meth:`stats`."""
        doc: dict[str, Any] = {}
        if self.extra_stats is not None:
            try:
                doc.update(self.extra_stats())
            except Exception as exc:  # stats must never stop delivery
                doc["extra_stats_error"] = f"{type(exc).__name__}: {exc}"
        doc.update(self.stats())
        return doc

    # -- paho callbacks (network thread) -------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"connection refused: {reason_code}"
            if "authori" in str(reason_code).lower() or "password" in str(reason_code).lower():
                self._refused.set()
            return
        self.last_error = None
        client.publish(self.settings.topic("status"), b"online", qos=1, retain=True)
        with self._map_lock:
            self._inflight.clear()  # anything unacknowledged is sent again from the outbox
        self._connected.set()
        self._notify()

    def _on_connect_fail(self, client, userdata) -> None:
        if not (self.last_error or "").startswith("connection refused"):
            self.last_error = ("connection failed (TLS handshake or certificate problem)" if self.settings.tls
                               else "connection failed (host unreachable or not an MQTT broker)")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if reason_code.is_failure and not (self.last_error or "").startswith("connection refused"):
            self.last_error = f"disconnected: {reason_code}"  # a refusal's reason says more: keep it

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._map_lock:
            outbox_id = self._inflight.pop(mid, None)
            if outbox_id is None:
                now = time.monotonic()
                self._early = {m: t for m, t in self._early.items() if now - t < 60}  # status/stats mids age out
                self._early[mid] = now
            else:
                self._acked(outbox_id)  # under the lock: the sender must never see it neither in flight nor gone
        self._notify()

    def _acked(self, outbox_id: int) -> None:
        self.outbox.ack(outbox_id)
        self.sent += 1

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    # -- sender thread ------------------------------------------------------------------------
    def _send_loop(self) -> None:
        last_stats = time.monotonic()
        while True:
            with self._wake:
                if self._stop:
                    return
                self._wake.wait(timeout=0.5)
                if self._stop:
                    return
            with self._map_lock:
                room = self.settings.window - len(self._inflight)
                pending = set(self._inflight.values())
            if self._connected.is_set() and room > 0:
                newest = max(1, room // 4)
                for msg in self.outbox.peek(max(0, room - newest), exclude=pending, newest=newest):
                    if not self._connected.is_set():
                        break
                    info = self._client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain)
                    if info.rc != 0:
                        break  # not connected after all: it stays in the outbox
                    with self._map_lock:
                        if msg.qos == 0 or self._early.pop(info.mid, None) is not None:
                            self._acked(msg.id)  # QoS 0: no acknowledgement will come
                        else:
                            self._inflight[info.mid] = msg.id
            if self._connected.is_set() and time.monotonic() - last_stats >= self.settings.stats_interval:
                last_stats = time.monotonic()
                self._client.publish(self.settings.topic("stats"), json.dumps(self._stats_message()).encode(), qos=0)
