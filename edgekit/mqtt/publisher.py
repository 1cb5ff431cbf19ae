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
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from ..errors import MqttError
from .client import Takeovers, forget_unacknowledged, make_client
from .outbox import Outbox, OutboxMessage
from .payloads import STATS_SCHEMA, MessageRefused, at_rest_messages, check_message
from .settings import MqttSettings, default_outbox

if TYPE_CHECKING:
    from ..results import DetectionResult

__all__ = ["Publisher"]

#: MQTT 5 PUBACK reasons worth sending again later (packet identifier in use, quota exceeded)
_RETRY_LATER = frozenset({0x91, 0x97})
_ACKED = object()  # Publisher._settle's answer for a delivered message


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
        warn: called with each line for the user (a broker that refuses us or is down, a message
            set aside as a dead letter, a full disk, a damaged outbox); default: printed on stderr.
            Each is said once (per outage, per run), never per message.

    Messages the broker cannot take never block the queue: one that breaks MQTT's rules (a NUL or a
    wildcard in its topic, a topic over 65,535 bytes, a packet over 256 MiB) is refused before it is
    queued, and one queued that the broker still refuses (it closes the connection each time) is
    found by sending the messages that were in flight at such a close one at a time: one that
    was alone in flight at three closes is moved aside. Both go to the outbox's ``dead_letters``
    table, counted in ``stats()["dead_letters"]``; the first is said on stderr.
    """

    #: a message alone in flight when the broker closed the connection this many times is a dead letter
    STRIKES = 3
    #: an outage is said during a run once it has lasted this long (and at close, if not said yet)
    OUTAGE_GRACE_S = 5.0

    def __init__(self, settings: MqttSettings, required: bool = False, connect_timeout: float = 10.0,
                 role: str | None = None, warn: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
        self.required = required
        self.connect_timeout = connect_timeout
        self.role = role
        path = settings.outbox or default_outbox(settings.device_id)
        if role is not None:
            root, ext = os.path.splitext(path)
            path = f"{root}-{role}{ext or '.db'}"
        # the client first: a bad TLS file raises here, before the outbox (a sqlite handle) is opened
        self._client = self._make_client()
        self.outbox = Outbox(path, settings.outbox_max, warn=self.warn)
        self._retained: dict[str, tuple[bytes, int]] = {}  # topic -> (payload, qos): replayed on HA's birth
        self._subscriptions: list[tuple[str, Callable[[Any], None]]] = []
        self.sent = 0
        self.last_error: str | None = None
        # the stats topic's fields about the run (fps, latency, per source): set by its MqttSink
        self.extra_stats: Callable[[], dict[str, Any]] | None = None
        self.final_stats: dict[str, Any] | None = None  # stats() as the run ended (set by close())
        self._results: Any = None  # the MqttSink behind publish_result, made on first use
        self._inflight: dict[int, int] = {}  # paho mid -> outbox id
        self._early: dict[int, tuple[float, Any]] = {}  # PUBACKs (time, reason) that came before their mid was recorded
        # guards the maps below and nothing else: never held across I/O (sqlite, a socket, a paho
        # call: paho's own locks would deadlock, a slow disk would stall paho's network thread)
        self._map_lock = threading.Lock()
        self._settling: set[int] = set()  # outbox ids answered by the broker, being acked/set aside
        self._connected = threading.Event()
        self._refused = threading.Event()
        self._suspects: set[int] = set()  # outbox ids in flight when the connection was lost: sent alone
        self._probe: int | None = None  # the suspect in flight alone
        self._strikes: dict[int, int] = {}
        self._down_since: float | None = None  # monotonic time of the outage's first failure
        self._outage_said = False
        self._dead_said = False
        self._ever_connected = False
        self._takeovers = Takeovers()  # another edgekit with our device id (the same client id)
        self._wake = threading.Condition()
        self._stop = False
        self._sender = threading.Thread(target=self._send_loop, name="edgekit-mqtt-sender", daemon=True)
        if settings.ha_discovery and role is None:
            self.subscribe(f"{settings.ha_prefix}/status", self._on_ha_status)

    # -- lifecycle ----------------------------------------------------------------------------
    def _make_client(self):
        return make_client(self.settings, self.role, on_connect=self._on_connect, on_disconnect=self._on_disconnect,
                           on_publish=self._on_publish, on_connect_fail=self._on_connect_fail,
                           on_message=self._on_message)

    def start(self) -> "Publisher":
        """Connect in the background and start delivering."""
        import paho.mqtt.client as mqtt

        s = self.settings
        backlog = len(self.outbox)
        if backlog and self.role is None:  # another run's messages, perhaps meant for another broker: say so
            self.warn(f"edgekit: note: {backlog} message(s) queued by earlier runs wait in {self.outbox.path}; "
                      f"they go to {s.host}:{s.port} with this run's (a run for another broker needs its own "
                      "--outbox)")
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
                raise MqttError(f"MQTT broker {s.host}:{s.port}" + (": " if self._refused.is_set() else " unreachable: ")
                                + (self.last_error or f"no answer within {self.connect_timeout:.0f} s") + "; check --mqtt, "
                                "credentials and TLS settings (without --mqtt-required edgekit keeps the "
                                "messages and delivers them later)")
        return self

    def __enter__(self) -> "Publisher":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self, flush_timeout: float = 10.0) -> None:
        """Deliver what can be delivered within ``flush_timeout``, mark us offline, disconnect.
        Undelivered messages stay in the outbox for the next run.

        Before that, the retained states this run published are put at rest (:meth:`_at_rest`):
        counts to 0, live sources down: the device is going offline, and a consumer
        that does not read ``status`` (Frigate's, a script) must not see a person counted all night."""
        if self.role is None and self.final_stats is None:
            self._at_rest()
        if flush_timeout and self._connected.is_set():  # offline: nothing to wait for, the outbox keeps them
            self.flush(flush_timeout)
        if self.final_stats is None:  # once: a second close() (a sink, then the with block) has nothing to add
            if self._connected.is_set() and self.role is None:  # the run's last numbers (the periodic ones may be 30 s old); a short-lived role (ha-remove) has no run to report, and its stats would blank the device's sensors
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
        if not self._connected.is_set() and not self._outage_said and self._may_say() and len(self.outbox):
            self._say_outage()
        self._client.disconnect()
        self._client.loop_stop()
        self.outbox.close()

    def _at_rest(self) -> int:
        """Queue :func:`~edgekit.mqtt.payloads.at_rest_messages` of the retained states this run
        published; returns how many."""
        with self._map_lock:
            entries = list(self._retained.items())
        rest = at_rest_messages(self.settings, entries)
        for message in rest:
            self.publish(*message)
        return len(rest)

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
        qos = self.settings.qos if qos is None else qos
        try:
            if isinstance(payload, str):
                payload = payload.encode()
            check_message(topic, payload, qos)
        except (MessageRefused, UnicodeEncodeError) as exc:
            self._dead_letter(OutboxMessage(0, str(topic), bytes(str(payload), "utf-8", "replace")
                                            if isinstance(payload, str) else bytes(payload or b""),
                                            qos, retain, time.time()), str(exc))
            return
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
        counters = self.outbox.counters()
        return {"connected": self._connected.is_set(), "queued": len(self.outbox), "sent": self.sent,
                "dropped": counters["dropped"], "inflight": len(self._inflight), "last_error": self.last_error,
                "dropped_disk_full": counters["dropped_disk_full"], "dead_letters": counters["dead_letters"],
                "outbox_set_aside": counters["set_aside"]}

    def _stats_message(self) -> dict[str, Any]:
        """The ``stats`` topic: what ``extra_stats()`` says about the run, then :meth:`stats`."""
        doc: dict[str, Any] = {"schema": STATS_SCHEMA}
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
            self._went_down()
            text = str(reason_code).lower()
            if "authori" in text or "password" in text:
                self._refused.set()
                if not self._outage_said and self._may_say():
                    self._outage_said = True
                    s = self.settings
                    self.warn(f"edgekit: the MQTT broker {s.host}:{s.port} refused the connection ({reason_code}) "
                              f"for user {s.username or '(none)'}: check the user name and the password "
                              f"(--mqtt-username, {s.password_env} or --mqtt-password-file); until then "
                              f"messages wait in {self.outbox.path}")
            return
        self.last_error = None
        self._down_since = None
        self._outage_said = False
        self._ever_connected = True
        self._takeovers.connected_at = time.monotonic()
        self._takeovers.connected()
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
        self._went_down()
        self._takeovers.failed()  # the close before was an outage, not a twin
        if not (self.last_error or "").startswith("connection refused"):
            # paho calls this while it handles the connect's OSError: that error tells which way it failed
            from ..netreason import connect_reason

            s = self.settings
            self.last_error = connect_reason(sys.exc_info()[1], s.host, s.port, client.connect_timeout, "broker") or (
                "connection failed (TLS handshake or certificate problem)" if s.tls
                else "connection failed (host unreachable or not an MQTT broker)")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        self._went_down()
        forget_unacknowledged(client)
        # kicked off by a twin (another edgekit with our device id), not closed on the probe: no strike
        kicked = self._takeovers.kicked(reason_code)
        with self._map_lock:
            inflight = set(self._inflight.values())
            probed = self._probe is not None and self._probe in inflight
            if probed and not kicked:
                self._strikes[self._probe] = self._strikes.get(self._probe, 0) + 1
            self._probe = None
            self._suspects |= inflight
        if reason_code.is_failure and not (self.last_error or "").startswith("connection refused"):
            self.last_error = f"disconnected: {reason_code}"  # a refusal's reason says more: keep it
        if reason_code.is_failure and not probed:
            line = self._takeovers.closed(reason_code, self.settings)
            if line or self._takeovers.kicked(reason_code):
                self.last_error = f"another client connected with the client id edgekit-{self.settings.device_id}"
            if line:
                self.warn(line)
        else:
            self._takeovers.connected_at = None

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._map_lock:
            outbox_id = self._inflight.pop(mid, None)
            if outbox_id is None:
                now = time.monotonic()
                self._early = {m: t for m, t in self._early.items() if now - t[0] < 60}  # status/stats mids age out
                self._early[mid] = (now, reason_code)
                answer = None
            else:
                answer = self._settle(outbox_id, reason_code)
                if answer is None:
                    return  # stays queued, sent again on the sender's next round (not at once: no storm)
        if answer is not None:
            self._finish(outbox_id, answer)
        self._notify()

    def _settle(self, outbox_id: int, reason_code: Any) -> Any:
        """Under ``_map_lock``, no I/O: the broker's answer to a message (None: QoS 0, no answer
        comes). Returns None when it asked to be sent the message again later; else the answer
        for :meth:`_finish`, and the message is marked settling until then, so that the sender,
        which skips what is in flight or settling, never sends it again meanwhile."""
        if getattr(reason_code, "is_failure", False) and getattr(reason_code, "value", None) in _RETRY_LATER:
            return None
        self._suspects.discard(outbox_id)
        self._strikes.pop(outbox_id, None)
        if self._probe == outbox_id:
            self._probe = None
        self._settling.add(outbox_id)
        return reason_code if getattr(reason_code, "is_failure", False) else _ACKED

    def _finish(self, outbox_id: int, answer: Any) -> None:
        """Outside ``_map_lock`` (sqlite may be slow: a busy SD card): acknowledge the message in
        the outbox, or, for an MQTT 5 failure reason (not authorized, topic name invalid…), set it
        aside as a dead letter: sending it again gets the same answer, and it never counts as sent."""
        try:
            if answer is _ACKED:
                self.outbox.ack(outbox_id)
                with self._map_lock:
                    self.sent += 1
            else:
                for msg in self.outbox.get([outbox_id]):
                    self._dead_letter(msg, f"the broker refused the message on {msg.topic[:80]!r} ({answer}); "
                                           "check the broker's ACL for that topic")
        finally:
            with self._map_lock:
                self._settling.discard(outbox_id)

    def _went_down(self) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()

    def _may_say(self) -> bool:
        """With ``required``, start() itself reports a broker that cannot be reached at start."""
        return not self.required or self._ever_connected

    def _say_outage(self) -> None:
        self._outage_said = True
        s = self.settings
        self.warn(f"edgekit: the MQTT broker {s.host}:{s.port} is not reachable "
                  f"({self.last_error or 'no connection yet'}); delivery is deferred: {len(self.outbox)} message(s) "
                  f"wait in {self.outbox.path} and are sent once it is reachable (by this run or the next)")

    def _dead_letter(self, msg: OutboxMessage, reason: str) -> None:
        self.outbox.dead_letter(msg, reason)
        if not self._dead_said:
            self._dead_said = True
            self.warn(f"edgekit: an MQTT message cannot be sent: {reason}; it is kept in the dead_letters table "
                      f"of {self.outbox.path} and counted in stats as dead_letters (later ones are counted, "
                      "not said); the messages after it are delivered")

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
            try:
                last_stats = self._send_some(last_stats)
            except Exception as exc:  # never a dead sender thread: the outbox keeps the messages
                self.last_error = f"sender: {type(exc).__name__}: {exc}"
                time.sleep(0.5)

    def _send_some(self, last_stats: float) -> float:
        if not self._connected.is_set():
            down = self._down_since
            if (down is not None and not self._outage_said and self._may_say() and len(self.outbox)
                    and time.monotonic() - down >= self.OUTAGE_GRACE_S):
                self._say_outage()
            return last_stats
        with self._map_lock:
            room = self.settings.window - len(self._inflight)
            pending = set(self._inflight.values()) | self._settling
            probing = bool(self._suspects)
        if probing:
            self._send_probe(pending)
        elif room > 0:
            newest = max(1, room // 4)
            for msg in self.outbox.peek(max(0, room - newest), exclude=pending, newest=newest):
                if not self._connected.is_set() or not self._send(msg):
                    break
        if time.monotonic() - last_stats >= self.settings.stats_interval and self.role is None:
            last_stats = time.monotonic()
            self._client.publish(self.settings.topic("stats"), json.dumps(self._stats_message()).encode(), qos=0)
        return last_stats

    def _send_probe(self, pending: set[int]) -> None:
        """After a lost connection, send what was in flight one message at a time, so that one the
        broker closes the connection on is found (and moved aside) instead of blocking the rest."""
        if pending:
            return  # the probe is in flight: wait for its PUBACK (or the next close)
        with self._map_lock:
            suspects = sorted(self._suspects)
        queued = {m.id: m for m in self.outbox.get(suspects)}
        for mid in suspects:
            msg = queued.get(mid)
            if msg is None:  # acknowledged or dropped meanwhile
                with self._map_lock:
                    self._suspects.discard(mid)
                continue
            if self._strikes.get(mid, 0) >= self.STRIKES:
                with self._map_lock:
                    self._suspects.discard(mid)
                self._dead_letter(msg, f"the broker closed the connection each of the {self.STRIKES} times the "
                                       f"message on {msg.topic[:80]!r} was sent alone")
                continue
            with self._map_lock:
                self._probe = mid
            if not self._send(msg):
                with self._map_lock:
                    self._probe = None
            return

    def _send(self, msg: OutboxMessage) -> bool:
        """Publish one outbox message; False when not connected after all (it stays queued)."""
        try:
            check_message(msg.topic, msg.payload, msg.qos)  # queued by an older version, or hand-made
            info = self._client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain)
        except (MessageRefused, ValueError, TypeError) as exc:
            with self._map_lock:
                self._suspects.discard(msg.id)
            self._dead_letter(msg, str(exc))
            return True
        if info.rc != 0:
            return False
        answer = None
        with self._map_lock:
            early = None if msg.qos == 0 else self._early.pop(info.mid, None)
            if msg.qos == 0:
                answer = self._settle(msg.id, None)  # QoS 0: no acknowledgement will come
            elif early is not None:
                answer = self._settle(msg.id, early[1])
            else:
                self._inflight[info.mid] = msg.id
        if answer is not None:
            self._finish(msg.id, answer)
        return True
