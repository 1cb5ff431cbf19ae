"""The paho client behind :class:`~edgekit.mqtt.publisher.Publisher`, and what it tells about
the connection: :func:`make_client` (client id, credentials, TLS, the ``status`` last will),
:func:`tls_problem` (the TLS file it could not use, named), :class:`Takeovers` (another edgekit
with our device id) and :func:`forget_unacknowledged`. paho is imported only when a client is made.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ConfigError

if TYPE_CHECKING:
    from .settings import MqttSettings

__all__ = ["Takeovers", "forget_unacknowledged", "make_client", "tls_problem"]

#: MQTT 5 DISCONNECT reason "Session taken over": another client connected with our client id
SESSION_TAKEN_OVER = 0x8E


def make_client(settings: MqttSettings, role: str | None, **callbacks: Callable[..., None]) -> Any:
    """A paho 2.x client for ``settings``: client id ``edgekit-<device_id>`` (a ``role``, such
    as ``ha-remove``, gets its own, and no last will), MQTT 3.1.1 or 5, credentials, TLS, the
    ``status`` last will (``offline``, retained), the in-flight window, reconnect backoff (1-30 s)
    and ``callbacks`` (``on_connect=…``) set on it.

    Raises:
        ConfigError: a TLS file cannot be used (:func:`tls_problem` names it).
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    s = settings
    v5 = s.protocol == "5"
    client_id = f"edgekit-{s.device_id}" if role is None else f"edgekit-{s.device_id}-{role}-{os.getpid()}"
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
            raise ConfigError(tls_problem(s, exc)) from None
        client.tls_insecure_set(s.insecure)
    if role is None:
        client.will_set(s.topic("status"), b"offline", qos=1, retain=True)
    client.max_inflight_messages_set(s.window)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    for name, callback in callbacks.items():
        setattr(client, name, callback)
    return client


class Takeovers:
    """Another edgekit with our device id has our client id: the broker closes one's connection
    at each connect of the other, and both reconnect within a second or two, forever. Seen as
    connections the broker closed soon after they were made (not on a message sent alone: a
    probe); MQTT 5 says so (reason "Session taken over"), MQTT 3.1.1 only closes the socket, so it
    takes ``COUNT`` in a minute. The line is said once per ``SAY_EVERY_S``.

    The publisher sets ``connected_at`` at each CONNACK and calls :meth:`closed` when the broker
    closed a connection (not on a probe)."""

    #: connections closed by the broker within a minute, each less than LIVED_S after it was made
    COUNT = 3
    LIVED_S = 30.0
    SAY_EVERY_S = 600.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.connected_at: float | None = None  # the current connection's CONNACK (clock time)
        self._closes: list[float] = []  # short connections closed by the broker, the last minute
        self._said: float | None = None
        self._close_pending = False  # the newest of _closes has not been followed by a connect yet

    def failed(self) -> None:
        """A connect attempt failed: the broker was not there after the last close, so that close
        was an outage (a broker restarting, a network down), not a twin's connect: forget it. (A
        twin's close is always followed by a connect that works: the broker is up.)"""
        if self._close_pending and self._closes:
            self._closes.pop()
        self._close_pending = False

    def connected(self) -> None:
        """A connect worked: the last close stays counted."""
        self._close_pending = False

    @property
    def taken_over(self) -> bool:
        """The connection is being taken over again and again now."""
        now = self.clock()
        return sum(now - t < 60 for t in self._closes) >= self.COUNT

    def kicked(self, reason_code: Any) -> bool:
        """A close that a twin's connect caused (MQTT 5 says so; MQTT 3.1.1: while taken over)."""
        return getattr(reason_code, "value", None) == SESSION_TAKEN_OVER or self.taken_over

    def closed(self, reason_code: Any, settings: MqttSettings) -> str | None:
        """The broker closed the connection (not on a probe): the line to say, if it is time."""
        connected_at, self.connected_at = self.connected_at, None
        if connected_at is None:
            return None
        now = self.clock()
        said_by_broker = getattr(reason_code, "value", None) == SESSION_TAKEN_OVER
        if now - connected_at >= self.LIVED_S and not said_by_broker:
            return None
        self._closes = [t for t in self._closes if now - t < 60] + [now]
        self._close_pending = True
        if len(self._closes) < (2 if said_by_broker else self.COUNT):
            return None
        if self._said is not None and now - self._said < self.SAY_EVERY_S:
            return None
        self._said = now
        s = settings
        return (f"edgekit: another edgekit is connected as device {s.device_id} to {s.host}:{s.port}: "
                f"give each device its own device_id (--device-id, or device_id in [mqtt]); the broker "
                f"closed this one's connection {len(self._closes)} times in the last minute, each time the "
                "other connected (said again every 10 min while it goes on)")


def tls_problem(settings: MqttSettings, exc: BaseException) -> str:
    """One line naming the TLS file that paho's ``tls_set`` could not use (its own error names none)."""
    import ssl

    def why(error: BaseException) -> str:
        if isinstance(error, FileNotFoundError):
            return "no such file"
        if isinstance(error, PermissionError):
            return "not readable by this user"
        if isinstance(error, IsADirectoryError):
            return "a directory, not a file"
        return f"not a PEM file it can use ({getattr(error, 'reason', None) or error})"

    checks = []
    if settings.ca_file:
        checks.append((f"the CA file {settings.ca_file} (--mqtt-ca, ca_file)",
                       lambda ctx: ctx.load_verify_locations(settings.ca_file)))
    if settings.cert_file:
        checks.append((f"the client certificate {settings.cert_file} (--mqtt-cert, cert_file) or its key "
                       f"{settings.key_file or '(in the same file)'} (--mqtt-key, key_file)",
                       lambda ctx: ctx.load_cert_chain(settings.cert_file, settings.key_file)))
    for what, load in checks:
        try:
            load(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
        except (OSError, ValueError, ssl.SSLError) as error:
            return f"MQTT TLS cannot use {what}: {why(error)}; give a readable PEM file"
    return f"MQTT TLS set-up failed ({exc}); check the CA, certificate and key files"


def forget_unacknowledged(client: Any) -> None:
    """Empty paho's own queue of unacknowledged messages when the connection is lost: the outbox
    sends them again after the reconnect, one at a time when needed. Left there, paho would resend
    them all first, so a message the broker closes the connection on would be sent again at every
    reconnect, ahead of everything (paho 2.x keeps them in ``_out_messages``)."""
    lock, queue = getattr(client, "_out_message_mutex", None), getattr(client, "_out_messages", None)
    if lock is None or queue is None:
        return
    with lock:
        queue.clear()
        client._inflight_messages = 0
