"""Home Assistant MQTT discovery for edgekit, as pure functions (no I/O).

Every entity belongs to one device, ``edgekit <device_id>``; Home Assistant names an entity
``<domain>.<device name>_<entity name>``, so the label ``person`` on device ``garage`` becomes
``sensor.edgekit_garage_person_count`` and ``binary_sensor.edgekit_garage_person_present``.
Names are sentence case (``Person count``). Every config carries an ``origin`` block and the
device's availability (``status``, its last will). Configs are retained, QoS 1, under
``<ha_prefix>/<component>/edgekit_<device_id>/<object id>/config``; removing one is publishing an
empty retained config (``edgekit ha-remove``).

Entities:

- per label: ``<Label> count`` (sensor, from ``counts/<label>``) and ``<Label> present``
  (occupancy binary_sensor);
- per source × zone × label (tracking runs): ``<Zone> <label> count`` and ``<Zone> <label>
  occupancy`` from the retained tracked-object counts, and device triggers ``entered`` /
  ``left`` (subtype ``<Zone> <label>``) from ``<source>/<zone>/<label>/transition``;
- per live source: ``<Source> stream`` connectivity (diagnostic), from ``sources/<name>/status``;
- diagnostics of the device: ``Frames per second``, ``Latency p95`` and ``Messages queued``,
  from the ``stats`` topic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .payloads import Message, topic_safe

if TYPE_CHECKING:
    from .settings import MqttSettings

__all__ = ["configs_messages", "diagnostic_configs", "discovery_messages", "ha_discovery_configs",
           "removal_messages", "source_configs", "transition_topic", "zone_configs"]


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _node(settings: MqttSettings) -> str:
    return f"edgekit_{settings.device_id}"


def _common(settings: MqttSettings) -> dict[str, Any]:
    from .. import __version__

    node = _node(settings)
    device = {"identifiers": [node], "name": f"edgekit {settings.device_id}", "manufacturer": "edgekit",
              "model": "edgekit detector", "sw_version": __version__}
    return {"availability_topic": settings.topic("status"), "payload_available": "online",
            "payload_not_available": "offline", "device": device,
            "origin": {"name": "edgekit", "sw_version": __version__}}


def ha_discovery_configs(settings: MqttSettings, label: str) -> dict[str, dict[str, Any]]:
    """Discovery topic → config for a label's count sensor and presence binary sensor."""
    node, safe = _node(settings), topic_safe(label)
    common = {**_common(settings), "state_topic": settings.topic("counts", safe)}
    return {
        f"{settings.ha_prefix}/sensor/{node}/{safe}_count/config": {
            **common, "name": _sentence(f"{label} count"), "unique_id": f"{node}_{safe}_count",
            "state_class": "measurement", "icon": "mdi:counter"},
        f"{settings.ha_prefix}/binary_sensor/{node}/{safe}_present/config": {
            **common, "name": _sentence(f"{label} present"), "unique_id": f"{node}_{safe}_present",
            "device_class": "occupancy", "value_template": "{{ 'ON' if value | int > 0 else 'OFF' }}"},
    }


def transition_topic(settings: MqttSettings, source: str, zone: str, label: str) -> str:
    """Where a zone's ``entered`` / ``left`` messages for a label go (the device triggers' topic)."""
    return settings.topic(topic_safe(source), topic_safe(zone), topic_safe(label), "transition")


def zone_configs(settings: MqttSettings, source: str, zone: str, label: str, several_sources: bool = False
                 ) -> dict[str, dict[str, Any]]:
    """A zone × label's count sensor, occupancy binary sensor and entered/left device triggers.
    With ``several_sources`` the source's name prefixes the entity names."""
    node = _node(settings)
    src, z, lbl = topic_safe(source), topic_safe(zone), topic_safe(label)
    oid = f"{src}_{z}_{lbl}" if several_sources else f"{z}_{lbl}"
    title = _sentence(f"{source} {zone} {label}" if several_sources else f"{zone} {label}")
    common = {**_common(settings), "state_topic": settings.topic(src, z, lbl)}
    configs: dict[str, dict[str, Any]] = {
        f"{settings.ha_prefix}/sensor/{node}/{oid}_count/config": {
            **common, "name": f"{title} count", "unique_id": f"{node}_{src}_{z}_{lbl}_count",
            "state_class": "measurement", "icon": "mdi:counter"},
        f"{settings.ha_prefix}/binary_sensor/{node}/{oid}_occupancy/config": {
            **common, "name": f"{title} occupancy", "unique_id": f"{node}_{src}_{z}_{lbl}_occupancy",
            "device_class": "occupancy", "value_template": "{{ 'ON' if value | int > 0 else 'OFF' }}"},
    }
    device = _common(settings)["device"]
    for kind in ("entered", "left"):
        configs[f"{settings.ha_prefix}/device_automation/{node}/{oid}_{kind}/config"] = {
            "automation_type": "trigger", "topic": transition_topic(settings, source, zone, label), "type": kind,
            "subtype": title, "payload": kind, "device": device,
            "origin": _common(settings)["origin"]}
    return configs


def source_configs(settings: MqttSettings, source: str) -> dict[str, dict[str, Any]]:
    """A live source's stream connectivity binary sensor (diagnostic)."""
    node, src = _node(settings), topic_safe(source)
    return {f"{settings.ha_prefix}/binary_sensor/{node}/{src}_stream/config": {
        **_common(settings), "name": _sentence(f"{source} stream"), "unique_id": f"{node}_{src}_stream",
        "state_topic": settings.topic("sources", src, "status"), "device_class": "connectivity",
        "entity_category": "diagnostic", "value_template": "{{ 'ON' if value_json.status == 'up' else 'OFF' }}"}}


def motion_configs(settings: MqttSettings, source: str) -> dict[str, dict[str, Any]]:
    """A source's motion binary sensor (ON while something moves, OFF after the off delay), from
    ``<source>/motion``, when the run gates by motion."""
    node, src = _node(settings), topic_safe(source)
    return {f"{settings.ha_prefix}/binary_sensor/{node}/{src}_motion/config": {
        **_common(settings), "name": _sentence(f"{source} motion"), "unique_id": f"{node}_{src}_motion",
        "state_topic": settings.topic(src, "motion"), "device_class": "motion",
        "payload_on": "ON", "payload_off": "OFF"}}


def diagnostic_configs(settings: MqttSettings) -> dict[str, dict[str, Any]]:
    """The device's fps, latency p95 and queued messages, from the ``stats`` topic (diagnostic)."""
    node = _node(settings)
    common = {**_common(settings), "state_topic": settings.topic("stats"), "entity_category": "diagnostic",
              "state_class": "measurement"}
    fields = (("fps", "Frames per second", "{{ value_json.fps }}", "fps", None),
              ("latency_p95", "Latency p95", "{{ value_json.latency_ms_p95 }}", "ms", "duration"),
              ("queued", "Messages queued", "{{ value_json.queued }}", None, None))
    configs = {}
    for oid, name, template, unit, device_class in fields:
        config = {**common, "name": name, "unique_id": f"{node}_{oid}", "value_template": template}
        if unit:
            config["unit_of_measurement"] = unit
        if device_class:
            config["device_class"] = device_class
        configs[f"{settings.ha_prefix}/sensor/{node}/{oid}/config"] = config
    return configs


def discovery_messages(settings: MqttSettings, labels: Iterable[str]) -> list[Message]:
    """The retained discovery configs announcing ``labels``' entities."""
    return configs_messages(config for label in labels for config in [ha_discovery_configs(settings, label)])


def configs_messages(configs: Iterable[dict[str, dict[str, Any]]]) -> list[Message]:
    """Retained QoS 1 messages for discovery configs (topic → config mappings)."""
    return [Message(topic, json.dumps(config).encode(), 1, True) for group in configs for topic, config in group.items()]


def removal_messages(settings: MqttSettings, labels: Iterable[str]) -> list[Message]:
    """Empty retained configs: Home Assistant removes ``labels``' entities."""
    return [Message(topic, b"", 1, True) for label in labels for topic in ha_discovery_configs(settings, label)]
