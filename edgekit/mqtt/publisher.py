"""Deliver MQTT messages without losing any (paho-mqtt 2.x, imported only when used).

:class:`Publisher` is the transport: the paho client (TLS, credentials, MQTT 3.1.1 or 5), the
``status`` last will, the on-disk outbox (:mod:`edgekit.mqtt.outbox`), the sender thread and
delivery statistics; it publishes whatever it is given (:meth:`Publisher.publish`). What edgekit
says is built by pure functions elsewhere in this package.

Reliability: every message goes to the on-disk outbox first and leaves it only when the broker
acknowledges it (QoS 1 PUBACK); a background thread sends the backlog in order (with a share of
each batch for the newest messages) whenever connected, and reconnects with backoff.
At-least-once: de-duplicate detections by ``event_id``, events by ``after.id`` + ``seq``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ConfigError, MqttError
from .outbox import Outbox
from .settings import MqttSettings, default_outbox

if TYPE_CHECKING:
    from ..results import DetectionResult

__all__ = ["Publisher"]


class Publisher:
    """Queues messages in the outbox and delivers them; use as a context manager so it flushes
    and closes cleanly. ``stats()`` is the delivery state; the ``stats`` topic adds what
    ``extra_stats()`` returns (set by the :class:`~edgekit.sinks.MqttSink` publishing through it).

    It remembers the last payload of every retained topic it published (a few per label, zone and
    source): when Home Assistant announces itself (its birth message, ``<ha_prefix>/status`` =
    ``online``, with ``ha_discovery``) they are all queued again, so that entities come back
    after a broker that lost its retained messages and an HA restart. :meth:`subscribe` lets a
    sink hear the broker (its own retained state at start, HA's birth).

    Args:
        settings: MqttSettings.
        required: raise MqttError from :meth:`start` if the broker cannot be reached or refuses us
            within ``connect_timeout``; otherwise keep going and deliver later.
        role: None for the device's publisher. Any other name (``"ha-remove"``) is a short-lived
            helper beside a running detector: its own client id (the broker would otherwise
            kick the detector off), its own outbox, and no ``status`` of its own (no last will,
            no online/offline), so the device's availability is left alone.
    """

    def __init__(self, settings: MqttSettings, required: bool = False, connect_timeout: float = 10.0,
                 role: str | None = None) -> None:
        self.settings = settings
        self.required = required
        self.connect_timeout = connect_timeout
        self.role = role
        path = settings.outbox or default_outbox(settings.device_id)
        if role is not None:
            root, ext = os.path.splitext(path)
            path = f"{root}-{role}{ext or '.db'}"
        self.outbox = Outbox(path, settings.outbox_max)
        self._retained: dict[str, tuple[bytes, int]] = {}  # topic -> (payload, qos): replayed on HA's birth
        self._subscriptions: list[tuple[str, Callable[[Any], None]]] = []
        self.sent = 0
        self.last_error: str | None = None
        # the stats topic's fields about the run (fps, latency, per source): set by its MqttSink
        self.extra_stats: Callable[[], dict[str, Any]] | None = None
        self.final_stats: dict[str, Any] | None = None  # stats() as the run ended (set by close())
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
        if settings.ha_discovery and role is None:
            self.subscribe(f"{settings.ha_prefix}/status", self._on_ha_status)

    # -- lifecycle ----------------------------------------------------------------------------
    def _make_client(self):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        s = self.settings
        v5 = s.protocol == "5"
        client_id = f"edgekit-{s.device_id}" if self.role is None else f"edgekit-{s.device_id}-{self.role}-{os.getpid()}"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
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
        if self.role is None:
            client.will_set(s.topic("status"), b"offline", qos=1, retain=True)
        client.max_inflight_messages_set(s.window)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
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
        if self.final_stats is None:  # once: a second close() (a sink, then the with block) has nothing to add
            if self._connected.is_set():  # the run's last numbers: the periodic stats may be up to 30 s old
                self._wait(self._client.publish(self.settings.topic("stats"),
                                                json.dumps(self._stats_message()).encode(), qos=0))
            self.final_stats = self.stats()
        if self._connected.is_set() and self.role is None:
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

    @staticmethod
    def _wait(info: Any, timeout: float = 2.0) -> None:
        try:
            info.wait_for_publish(timeout=timeout)
        except (RuntimeError, ValueError):
            pass

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
        qos = self.settings.qos if qos is None else qos
        if retain:
            with self._map_lock:
                self._retained[topic] = (payload, qos)
        self.outbox.put(topic, payload, qos, retain=retain)
        self._notify()

    def published_retained(self, topic: str) -> bytes | None:
        """The last retained payload this publisher queued on ``topic`` (None: none this run)."""
        with self._map_lock:
            entry = self._retained.get(topic)
        return None if entry is None else entry[0]

    def forget_retained(self, topic: str) -> None:
        """Stop replaying ``topic`` on Home Assistant's birth (its entity was removed)."""
        with self._map_lock:
            self._retained.pop(topic, None)

    def subscribe(self, topic: str, callback: Callable[[Any], None]) -> None:
        """Call ``callback(message)`` (paho's message: ``topic``, ``payload``, ``retain``) for
        each message on ``topic`` (a filter), from paho's network thread; subscribed again after
        every reconnect. The callback must be quick and must not raise."""
        self._subscriptions.append((topic, callback))
        if self._connected.is_set():
            self._client.subscribe(topic, qos=1)

    def replay_retained(self) -> int:
        """Queue every retained topic's last payload again (returns how many)."""
        with self._map_lock:
            entries = list(self._retained.items())
        for topic, (payload, qos) in entries:
            self.outbox.put(topic, payload, qos, retain=True)
        self._notify()
        return len(entries)

    def publish_result(self, result: DetectionResult, model: str = "", image: Any = None,
                       latency_ms: float | None = None) -> str | None:
        """Publish one result without the runner, as :class:`~edgekit.sinks.MqttSink` publishes a
        frame: detections, changed per-label counts, Home Assistant discovery and snapshot as the
        settings say; ``latency_ms`` feeds the ``stats`` topic. Returns the event id, or None when
        ``only_on_change`` held back a result whose counts did not change (the sink's
        :class:`~edgekit.stages.ChangeGate` does that, not the publisher)."""
        if self._results is None:
            from .sink import MqttSink

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
        if self.role is None:
            client.publish(self.settings.topic("status"), b"online", qos=1, retain=True)
        for topic, _callback in self._subscriptions:
            client.subscribe(topic, qos=1)
        with self._map_lock:
            self._inflight.clear()  # anything unacknowledged is sent again from the outbox
        self._connected.set()
        self._notify()

    def _on_message(self, client, userdata, message) -> None:
        from paho.mqtt.client import topic_matches_sub

        for topic, callback in list(self._subscriptions):
            if topic_matches_sub(topic, message.topic):
                try:
                    callback(message)
                except Exception as exc:  # a listener's bug must never stop delivery
                    self.last_error = f"message handler for {topic}: {type(exc).__name__}: {exc}"

    def _on_ha_status(self, message) -> None:
        """Home Assistant's birth: it (re)started and reads discovery now; the broker may have lost
        our retained configs and states, so send them again, and say we are online."""
        if message.payload.strip().lower() == b"online":
            self._client.publish(self.settings.topic("status"), b"online", qos=1, retain=True)
            self.replay_retained()

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
