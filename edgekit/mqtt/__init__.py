"""MQTT: what edgekit publishes, and delivering it without losing any.

- :mod:`~edgekit.mqtt.settings` — :class:`MqttSettings` (broker, credentials, topics, options);
- :mod:`~edgekit.mqtt.outbox` — the on-disk queue every message goes through;
- :mod:`~edgekit.mqtt.publisher` — :class:`Publisher`: paho client, outbox, sender thread;
- :mod:`~edgekit.mqtt.payloads` — the messages, as pure functions (JSON Schemas in ``edgekit/schemas``);
- :mod:`~edgekit.mqtt.homeassistant` — Home Assistant discovery, as pure functions;
- :mod:`~edgekit.mqtt.sink` — :class:`MqttSink`, the runner's sink that composes them.

Topics are listed in :mod:`edgekit.mqtt.payloads`.
"""

from __future__ import annotations

from ..errors import MqttError
from .publisher import Publisher
from .settings import MqttSettings

__all__ = ["MqttError", "MqttSettings", "Publisher"]
