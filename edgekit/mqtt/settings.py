"""Where and how to publish: :class:`MqttSettings` (from a URL, a settings file or fields).

Secrets never come from the URL or argv: ``password_env`` (default ``EDGEKIT_MQTT_PASSWORD``) or
``password_file`` (readable by its owner only).
"""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..settings_schema import Table, built, check, check_rules, found, number

__all__ = ["MqttSettings", "MQTT_TABLE", "TOPIC_LEVEL", "check_topic_level", "default_outbox"]


def default_outbox(device_id: str) -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "edgekit", f"outbox-{device_id}.db")


#: What a name that is one topic level (and a file name) may hold, as messages say it.
TOPIC_LEVEL = "any printable characters but '/', '+', '#' and whitespace, and not '.' or '..'"


def _check_topic_part(name: str, value: str, level: bool = False) -> str:
    """``value`` if it can be part of every topic (``level``: be one topic level, and a file name:
    a device id, a source's name); else ConfigError ``"NAME: expected ..., found ..."``."""
    if level and (not value or value in (".", "..") or any(c in "/+#" or c.isspace() or not c.isprintable()
                                                            for c in value)):  # a lone surrogate too
        raise ConfigError(f"{name}: expected one MQTT topic level, also a file name: {TOPIC_LEVEL}; found "
                          f"{found(value)}, not usable in a topic")
    if not value or any(c in value for c in "+#\0") or "//" in value or value.startswith("/") or value.endswith("/"):
        raise ConfigError(f"MQTT {name} {value!r} is not usable in a topic: no '+', '#', empty levels or "
                          "leading/trailing '/'")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate ("\udc80" in a JSON file): no message could ever be sent
        raise ConfigError(f"MQTT {name} {value!r} is not usable in a topic: expected valid UTF-8 text") from None
    if size > _MAX_TOPIC_PART:  # every topic holds it: each message would be refused (dead-lettered)
        raise ConfigError(f"MQTT {name} of {size} bytes is not usable in a topic: expected at most "
                          f"{_MAX_TOPIC_PART} bytes (MQTT topics are limited to 65,535)")
    return value


def check_topic_level(name: str, value: str) -> str:
    """``value`` if it can be one MQTT topic level and a file name (a device id, a source's name:
    :data:`TOPIC_LEVEL`); ``name`` is its key in messages.

    Raises ConfigError: ``"NAME: expected one MQTT topic level ...; found ..."``.
    """
    return _check_topic_part(name, value, level=True)


_MAX_TOPIC_PART = 65_535 // 4  # prefix, device id and the rest of a topic must fit in MQTT's 65,535 bytes


@dataclass(frozen=True)
class MqttSettings:
    """Where and how to publish. Secrets never come from the URL or argv: use ``password_env``
    (default ``EDGEKIT_MQTT_PASSWORD``) or ``password_file`` (readable by its owner only)."""

    host: str
    port: int = field(default=1883, metadata=number(1, 65535, whole=True))
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
    keepalive: int = field(default=30, metadata=number(0, 65535, whole=True))  # 0: no keepalive
    session_expiry: int = field(default=3600, metadata=number(0, 2**32 - 1, whole=True))  # MQTT 5: seconds the broker keeps our session after a disconnect
    outbox: str | None = None
    outbox_max: int = field(default=100_000, metadata=number(1, whole=True))
    stats_interval: float = field(default=30.0, metadata=number(above=0))
    window: int = field(default=20, metadata=number(1, whole=True))  # messages in flight (sent, not yet acknowledged)
    only_on_change: bool = False  # skip a detections message when the per-label counts did not change
    snapshot: bool = False  # also publish a JPEG of each published image to <…>/snapshot
    ha_discovery: bool = False  # announce Home Assistant entities (per-label count + presence)
    ha_prefix: str = "homeassistant"
    detections: bool = True  # one detections message per frame; off: only events, counts and the rest
    frigate: bool = False  # also publish events and counts in Frigate's topic layout (frigate/events …)
    frigate_prefix: str = "frigate"

    def __post_init__(self) -> None:
        check_rules(self)
        # empty: paho's connect raises a bare ValueError("Invalid host."); a space or a control
        # character (NUL) can never resolve: an outage forever, and the NUL printed in its line
        if not self.host.strip() or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in self.host):
            raise ConfigError(f"host: expected a broker host name or address, found {self.host!r}; give "
                              "host = \"HOST\" or url = \"mqtt://HOST:1883\"")
        _check_topic_part("prefix", self.prefix)
        check_topic_level("device_id", self.device_id)
        _check_topic_part("frigate prefix", self.frigate_prefix)
        _check_topic_part("Home Assistant prefix (ha_prefix)", self.ha_prefix)  # also a subscription filter
        if self.qos not in (0, 1, 2):
            raise ConfigError(f"MQTT QoS must be 0, 1 or 2, found {self.qos}")
        if self.protocol not in ("3.1.1", "5"):
            raise ConfigError(f"MQTT protocol must be 3.1.1 or 5, found {self.protocol!r}")
        if self.password_file and not self.username:  # the publisher sends a password only with a user name
            raise ConfigError(f"password_file: expected a username with it (username, EDGEKIT_MQTT_USERNAME or "
                              f"mqtt://USER@HOST), found none, so {self.password_file} would never be sent; add the "
                              "user name, or leave password_file out")
        if self.insecure and not self.allow_insecure:
            raise ConfigError("refusing to skip TLS certificate verification; use a CA file (ca_file), or set "
                              "allow_insecure as well if you really mean it")

    @classmethod
    def from_file(cls, path: str, **overrides: Any) -> "MqttSettings":
        """Settings from a TOML (Python ≥ 3.11) or JSON file: ``url`` plus any field of this class,
        at the top or in an ``[mqtt]`` table; ``overrides`` (not None) win over the file.

        Raises ConfigError: one line naming the key (unknown keys with the known ones listed).
        """
        from ..settingsfile import read_document

        doc = read_document(path, "TOML (or .json) with a url key")
        key = "mqtt" if isinstance(doc.get("mqtt"), dict) else ""
        doc = doc.get("mqtt", doc) if key else doc
        check_table(doc, key, path, env={"EDGEKIT_MQTT_URL": overrides.get("url") or ""})
        doc = {**doc, **{k: v for k, v in overrides.items() if v is not None}}
        return built(lambda: cls.from_table(doc, env={}), key, path, cls)

    @classmethod
    def from_table(cls, doc: dict[str, Any], env: Any = None) -> "MqttSettings":
        """Settings from a settings file's ``[mqtt]`` table (already checked by
        :func:`check_table`): ``url`` plus fields; ``env`` (default ``os.environ``) fills
        ``EDGEKIT_MQTT_URL``, ``EDGEKIT_MQTT_USERNAME`` and ``EDGEKIT_DEVICE_ID`` where the table
        leaves them out (as for ``detect``: a systemd EnvironmentFile).

        Raises ConfigError: no broker at all, or a value out of range.
        """
        env = os.environ if env is None else env
        doc = dict(doc)
        for key, name in (("username", "EDGEKIT_MQTT_USERNAME"), ("device_id", "EDGEKIT_DEVICE_ID")):
            if key not in doc and env.get(name):
                doc[key] = env[name]
        url = doc.pop("url", None) or env.get("EDGEKIT_MQTT_URL")
        if url:
            return cls.from_url(url, **doc)
        if "host" not in doc:
            raise ConfigError("no broker: give url = \"mqtt://HOST:1883\" (or host = \"HOST\"), or set EDGEKIT_MQTT_URL")
        return cls(**doc)

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> "MqttSettings":
        """``mqtt://[user@]host[:port]`` or ``mqtts://…`` (TLS, default port 8883)."""
        try:
            parts = urlsplit(url)
        except ValueError:  # an unclosed IPv6 bracket ("mqtt://[::1")
            raise ConfigError(f"expected an MQTT URL like mqtt://broker:1883 or mqtt://[::1]:1883, found {url!r}; "
                              "close the IPv6 address with ']'") from None
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError(f"expected an MQTT URL like mqtt://broker:1883 or mqtts://broker:8883, found {url!r}")
        if parts.password is not None:
            raise ConfigError("do not put the MQTT password in the URL (it shows in process listings); set "
                              "EDGEKIT_MQTT_PASSWORD or use a password file readable only by you")
        try:
            port = parts.port  # 0 stays 0 (refused below), not the default port in its place
            if port is None:
                port = 8883 if parts.scheme == "mqtts" else 1883
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


#: The keys of an ``[mqtt]`` table: every field, plus ``url``.
MQTT_TABLE = Table(MqttSettings, keys={"url": str}, what="MQTT setting")


def check_table(doc: Any, key: str, file: str, env: Any = None) -> None:
    """Check an ``[mqtt]`` table's keys and types (``key``: where it is, e.g. ``mqtt``), and that it
    names a broker (``url``, ``host`` or ``EDGEKIT_MQTT_URL`` in ``env``, default ``os.environ``).

    Raises ConfigError: one line naming ``file`` and the key.
    """
    env = os.environ if env is None else env
    if isinstance(doc, dict) and "password" in doc:
        raise ConfigError(f"{file}: {key + '.' if key else ''}password: put the password in a password_file "
                          "(or EDGEKIT_MQTT_PASSWORD), not in the settings")
    check(MQTT_TABLE, doc, key, file)
    if "url" not in doc and "host" not in doc and not env.get("EDGEKIT_MQTT_URL"):
        raise ConfigError(f"{file}: {key or 'the file'}: no broker: give url = \"mqtt://HOST:1883\" (or host), "
                          "or set EDGEKIT_MQTT_URL")
