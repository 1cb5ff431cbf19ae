"""Home Assistant MQTT discovery for edgekit's per-label counts, as pure functions (no I/O).

Each label, when first counted, gets a count sensor and a presence binary sensor under
``<ha_prefix>/…/edgekit_<device_id>/…/config`` (retained, QoS 1), reading the retained
``counts/<label>`` topic and tied to the device's ``status`` topic for availability. Removing
them is publishing empty retained configs (``edgekit ha-remove``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .payloads import Message, topic_safe

if TYPE_CHECKING:
    from .mqtt import MqttSettings

__all__ = ["discovery_messages", "ha_discovery_configs", "removal_messages"]


def ha_discovery_configs(settings: MqttSettings, label: str) -> dict[str, dict[str, Any]]:
    """Discovery topic → config for a label's count sensor and presence binary sensor, both tied
    to the device's availability (``status``)."""
    from . import __version__

    dev, safe = settings.device_id, topic_safe(label)
    node = f"edgekit_{dev}"
    device = {"identifiers": [node], "name": f"edgekit {dev}", "manufacturer": "edgekit", "model": "edgekit detector",
              "sw_version": __version__}
    common = {"state_topic": settings.topic("counts", safe), "availability_topic": settings.topic("status"),
              "payload_available": "online", "payload_not_available": "offline", "device": device}
    return {
        f"{settings.ha_prefix}/sensor/{node}/{safe}_count/config": {
            **common, "name": f"{label} count", "unique_id": f"{node}_{safe}_count", "state_class": "measurement",
            "icon": "mdi:counter"},
        f"{settings.ha_prefix}/binary_sensor/{node}/{safe}_present/config": {
            **common, "name": f"{label} present", "unique_id": f"{node}_{safe}_present", "device_class": "occupancy",
            "value_template": "{{ 'ON' if value | int > 0 else 'OFF' }}"},
    }


def discovery_messages(settings: MqttSettings, labels: Iterable[str]) -> list[Message]:
    """The retained discovery configs announcing ``labels``' entities."""
    return [Message(topic, json.dumps(config).encode(), 1, True)
            for label in labels for topic, config in ha_discovery_configs(settings, label).items()]


def removal_messages(settings: MqttSettings, labels: Iterable[str]) -> list[Message]:
    """Empty retained configs: Home Assistant removes ``labels``' entities."""
    return [Message(topic, b"", 1, True) for label in labels for topic in ha_discovery_configs(settings, label)]
