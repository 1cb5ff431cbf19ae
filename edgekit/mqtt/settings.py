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

__all__ = ["MqttSettings", "default_outbox"]


def default_outbox(device_id: str) -> str:
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
    detections: bool = True  # one detections message per frame; off: only events, counts and the rest
    frigate: bool = False  # also publish events and counts in Frigate's topic layout (frigate/events …)
    frigate_prefix: str = "frigate"

    def __post_init__(self) -> None:
        _check_topic_part("prefix", self.prefix)
        _check_topic_part("device id", self.device_id)
        _check_topic_part("frigate prefix", self.frigate_prefix)
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
        from ..settingsfile import read_settings

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
