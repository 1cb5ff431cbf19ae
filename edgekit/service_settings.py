"""What a detection run is told: :class:`ServiceSettings` (from CLI flags or a settings file),
the settings file's schema (:func:`file_schema`: every key, its type from the option dataclasses'
annotations, its tables) and the options its tables become (tracker, events, zones).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .postprocess import IOU_THRESHOLD, MAX_RESULTS, SCORE_THRESHOLD
from .settings_schema import NOT_A_KEY, found, number, rule

__all__ = ["ServiceSettings", "file_schema", "label_filter_error", "tracking"]


@dataclass(frozen=True)
class ServiceSettings:
    """Everything a detection run needs. ``None`` means "from the model / no limit / off"."""

    model: str
    sources: tuple[str, ...]
    labels: str | None = None
    threshold: float = field(default=SCORE_THRESHOLD, metadata=number(0, 1))
    iou: float = field(default=IOU_THRESHOLD, metadata=number(0, 1))
    max_results: int | None = field(default=MAX_RESULTS, metadata=number(1, whole=True, optional=True))
    layout: str | None = None
    mean: tuple[float, ...] | None = field(default=None, metadata=rule(lambda v: _channels(v), "1 or 3 numbers"))
    std: tuple[float, ...] | None = field(default=None, metadata=rule(lambda v: _channels(v, 0), "1 or 3 numbers, not 0"))
    threads: int | None = field(default=None, metadata=number(1, whole=True, optional=True))
    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] | None = None
    fps: float | None = field(default=None, metadata=number(above=0, optional=True))
    live: bool | None = None
    follow: bool = False  # folders are watched for new images until stopped (sources.WatchedFolder)
    save_annotated: str | None = None
    plugins: tuple[str, ...] = ()
    plan: bool = True
    max_image: tuple[int, int] = field(default=(1920, 1080), metadata=rule(
        lambda v: len(v) == 2 and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in v),
        "[WIDTH, HEIGHT], 2 whole numbers >= 1"))
    verbose: bool = False
    mqtt: Any = None  # an MqttSettings, or a mapping of its fields plus "url" (settings file [mqtt] table)
    mqtt_required: bool = False
    save_video: str | None = None  # annotated video file(s), see sinks.AnnotatedVideo (edgekit[video])
    track: bool = False  # track objects: detections get track_id, frames get events (zones imply it)
    zones: Any = ()  # --zone strings (every source), zones.Zone values, or a settings table {name: {points …}}
    tracker: Any = None  # track.TrackerOptions, or a mapping of its fields (settings [tracker])
    events: Any = None  # events.EventOptions, or a mapping of its fields (settings [events])
    snapshots: bool = False  # the best picture of each tracked object: saved privately, published retained
    preview: Any = None  # "HOST:PORT", a preview.PreviewOptions, or a table of its fields (settings [preview])
    motion: Any = None  # gate inference by motion: true, a gate.GateOptions, or a table (settings [motion])
    #: the settings file these came from (from_file): errors found later (labels, zones) name its keys
    origin: str | None = field(default=None, compare=False, repr=False, metadata=NOT_A_KEY)

    def __post_init__(self) -> None:
        if not self.sources:
            raise ConfigError("no sources: give at least one image, folder, glob, video file, URL or camera")
        if isinstance(self.zones, list):
            object.__setattr__(self, "zones", tuple(self.zones))
        for name in ("sources", "allow", "deny", "plugins", "mean", "std"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, (value,))
            elif value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        if isinstance(self.max_image, list):
            object.__setattr__(self, "max_image", tuple(self.max_image))
        from .settings_schema import check_rules

        check_rules(self)

    @classmethod
    def from_file(cls, path: str, **overrides: Any) -> "ServiceSettings":
        """Read a TOML (or ``.json``) settings file, checked against :func:`file_schema`: a key
        unknown, of the wrong type or out of range is refused with one line naming the file and
        the key (``mqtt.port``, ``sources[1].motion.threshold``).

        The files the run will read or write (labels, outbox, videos, the preview's secrets) and
        the names that go into topics are checked too, without creating anything, so that
        ``run --check`` refuses what ``run`` would refuse, with the same line.

        ``overrides`` replace the file's settings, except ``preview`` given as a mapping (the
        ``--preview*`` flags): it is laid over the file's preview settings.
        """
        from .settings_schema import check, built
        from .settingsfile import read_document

        doc = read_document(path, "TOML (or .json) with model and sources")
        schema = file_schema()
        check(dataclasses.replace(schema, required=tuple(k for k in schema.required if k not in overrides)),
              doc, "", path)
        if isinstance(overrides.get("preview"), dict):
            from .preview import preview_options

            flags = overrides["preview"]
            overrides["preview"] = built(lambda: preview_options(doc.get("preview"), **flags), "preview", path)
        doc.update({k: v for k, v in overrides.items() if v is not None})
        settings = built(lambda: cls(**doc, origin=path), "", path, cls)
        _build_tables(settings, path)
        return settings


def file_schema():
    """The settings file's keys: ServiceSettings' fields (their annotations are the types), with
    the tables its ``Any`` fields take — each from its options dataclass."""
    from typing import get_type_hints

    from .events import EventOptions
    from .gate import GateOptions
    from .motion import MotionOptions
    from .mqtt.settings import MQTT_TABLE, check_table
    from .preview import PreviewOptions
    from .settings_schema import Custom, ListOf, OneOf, Table
    from .track import TrackerOptions

    polygons = ListOf(str, "a list of NAME=x1,y1,x2,y2,... polygons")
    gate = {k: v for k, v in get_type_hints(GateOptions).items() if k != "motion"}
    motion = OneOf((bool, Table(MotionOptions, keys=gate, specs={"masks": polygons}, what="motion setting")),
                   "true, false or a table of motion settings")
    zones = OneOf((ListOf(str, "a list of NAME=x1,y1,... zones"), dict),
                  "a list of NAME=x1,y1,... zones or a table of zones")
    own_zones = OneOf((dict,), "a table of zones, NAME = { points = [[x, y], ...] }")
    source = Table(keys={"name": str, "source": str, "zones": own_zones, "motion": motion}, required=("source",),
                   what="source setting")
    return Table(ServiceSettings, required=("model", "sources"), specs={
        "sources": OneOf((str, ListOf(OneOf((str, source), "a string or a source table"), "a list of sources")),
                         "a source or a list of sources"),
        "mqtt": Custom(lambda v, k, f: check_table(v, k, f), f"a table of {MQTT_TABLE.what}s"),
        "zones": zones, "tracker": Table(TrackerOptions, what="tracker setting"),
        "events": Table(EventOptions, what="events setting"), "motion": motion,
        "preview": OneOf((str, int, Table(PreviewOptions, what="preview setting")),
                         "\"HOST:PORT\" or a table of preview settings")})


def _build_tables(settings: ServiceSettings, path: str) -> None:
    """Build each table's options once, so that their own range checks refuse a value at start,
    named by its key."""
    from .events import EventOptions
    from .gate import gate_options
    from .motion import MotionOptions
    from .preview import preview_options
    from .settings_schema import built
    from .track import TrackerOptions
    from .zones import parse_zone, zone_from_settings

    def gate(value: Any, key: str) -> None:
        built(lambda: gate_options(value), key, path, MotionOptions)

    if settings.tracker is not None:
        built(lambda: _tracker_options(settings), "tracker", path, TrackerOptions)
    if settings.events is not None:
        built(lambda: _options(EventOptions, settings.events, "events"), "events", path, EventOptions)
    gate(settings.motion, "motion")
    for i, entry in enumerate(settings.sources):
        if isinstance(entry, dict) and "motion" in entry:
            gate(entry["motion"], f"sources[{i}].motion")
    built(lambda: preview_options(settings.preview), "preview", path)
    tables = [("zones", settings.zones)] if isinstance(settings.zones, dict) else []
    tables += [(f"sources[{i}].zones", e["zones"]) for i, e in enumerate(settings.sources)
               if isinstance(e, dict) and isinstance(e.get("zones"), dict)]
    if isinstance(settings.zones, tuple):
        for i, zone in enumerate(settings.zones):
            if isinstance(zone, str):
                built(lambda: parse_zone(zone), f"zones[{i}]", path)
    for key, table in tables:  # which source a top-level zone names is checked once the sources are open
        for name, doc in table.items():
            built(lambda: zone_from_settings(name, {k: v for k, v in doc.items() if k != "source"}
                                             if isinstance(doc, dict) else doc), key, path)
    if isinstance(settings.mqtt, dict):
        from .mqtt.settings import MqttSettings

        _check_mqtt(built(lambda: MqttSettings.from_table(settings.mqtt), "mqtt", path, MqttSettings), path)
    _check_files(settings, path)


def _check_files(settings: ServiceSettings, path: str) -> None:
    """The files and names the run will write or read, refused now as the run would refuse them
    later (so ``run --check`` and ``run`` say the same line), without creating anything."""
    from .mqtt.settings import check_topic_level
    from .preview import preview_options
    from .settings_schema import built
    from .userdirs import check_creatable

    for i, entry in enumerate(settings.sources):
        if isinstance(entry, dict) and "name" in entry:  # in topics and file names, as the device id
            built(lambda: check_topic_level(f"sources[{i}].name", entry["name"]), "", path)
    if settings.labels is not None:
        _check_labels(settings.labels, path)
    if settings.save_annotated:
        built(lambda: check_creatable(settings.save_annotated, folder=True), "save_annotated", path)
    if settings.save_video:
        from .videowriter import check_output, choose_codec

        built(lambda: (check_output(settings.save_video), choose_codec(settings.save_video)), "save_video", path)
    preview = built(lambda: preview_options(settings.preview), "preview", path) if settings.preview else None
    if preview is not None:  # read as the preview's Access reads them when it starts
        from .preview._options import read_password, read_secret

        if preview.password_file:
            built(lambda: read_password(preview.password_file), "preview.password_file", path)
        if preview.token_file:
            built(lambda: read_secret(preview.token_file, "token"), "preview.token_file", path)


def _check_mqtt(mqtt: Any, path: str) -> None:
    """The outbox can be made, the password file read (as the publisher will at start)."""
    from .mqtt.settings import default_outbox
    from .settings_schema import built
    from .userdirs import check_creatable

    outbox = mqtt.outbox or default_outbox(mqtt.device_id)
    built(lambda: check_creatable(outbox, private=True), "mqtt.outbox" if mqtt.outbox else
          f"mqtt.outbox (default {outbox})", path)
    if mqtt.username:
        built(lambda: mqtt.password(), "mqtt.password_file" if mqtt.password_file else "mqtt", path)


def _check_labels(labels: str, path: str) -> None:
    from .metadata import read_labels

    try:
        with open(labels, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{path}: labels: expected a labels file (UTF-8 text, one label per line), found "
                          f"{labels!r}, which cannot be read ({exc.strerror or exc}); fix the path, or leave labels "
                          "out to use the model's own") from None
    try:
        read_labels(labels)
    except ConfigError as exc:
        raise ConfigError(f"{path}: labels: {exc}") from None


def _channels(value: Any, refused: float | None = None) -> bool:
    return value is None or (len(value) in (1, 3) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf") and v != refused
        for v in value))


def label_filter_error(settings: ServiceSettings, error: ConfigError) -> ConfigError:
    """``error`` (the detector refusing an ``allow``/``deny`` label the model does not have) worded
    with the settings file's key, when the settings came from one; else ``error`` itself."""
    key = getattr(error, "option", None)
    if settings.origin is None or key not in ("allow", "deny"):
        return error
    labels = error.labels  # type: ignore[attr-defined]
    if not labels:
        return ConfigError(f"{settings.origin}: {key}: expected class_N names (the model has no label names), found "
                           f"{found(error.value)}; give labels = \"FILE\" (one name per line), or use class_N")  # type: ignore[attr-defined]
    shown = ", ".join(labels[:12]) + (", …" if len(labels) > 12 else "")
    return ConfigError(f"{settings.origin}: {key}: expected labels of the model ({len(labels)}: {shown}), found "
                       f"{found(error.value)}; {str(error).rpartition('; ')[2]}")  # type: ignore[attr-defined]


def tracking(settings: ServiceSettings) -> bool:
    """Whether the run tracks objects: ``track``, or any zone."""
    return bool(settings.track or settings.zones or settings.snapshots
                or any(isinstance(s, dict) and s.get("zones") for s in settings.sources))


def _options(cls: Any, value: Any, what: str) -> Any:
    """An options dataclass from itself, None (defaults) or a settings-file mapping."""
    if value is None or isinstance(value, cls):
        return value or cls()
    if not isinstance(value, dict):
        raise ConfigError(f"[{what}] must be a table of settings, found {type(value).__name__} {value!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigError(f"[{what}]: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        return cls(**value)
    except TypeError as exc:
        raise ConfigError(f"[{what}]: {exc}") from None


def _tracker_options(settings: ServiceSettings):
    """The tracker's options: as given, else defaults whose high score is the run's threshold."""
    from .track import TrackerOptions

    if isinstance(settings.tracker, TrackerOptions):
        return settings.tracker
    doc = dict(settings.tracker) if isinstance(settings.tracker, dict) else {}
    doc.setdefault("high_score", settings.threshold)
    doc.setdefault("low_score", min(TrackerOptions().low_score, doc["high_score"]))
    return _options(TrackerOptions, doc if settings.tracker is None or isinstance(settings.tracker, dict)
                    else settings.tracker, "tracker")


def _zones(settings: ServiceSettings, names: list[str]) -> list:
    """Every zone of the run, each tied to its source (None: all sources); a zone naming a source
    the run does not have is refused."""
    from .zones import Zone, parse_zone, zone_from_settings

    zones: list = []
    items = settings.zones.items() if isinstance(settings.zones, dict) else enumerate(settings.zones)
    for key, value in items:
        if isinstance(value, Zone):
            zones.append(value)
        elif isinstance(value, str):
            zones.append(parse_zone(value))
        elif isinstance(value, dict) and isinstance(key, str):
            doc = dict(value)
            source = doc.pop("source", None)
            if source is not None and source not in names:
                where = f"{settings.origin}: " if settings.origin else ""
                raise ConfigError(f"{where}zones.{key}.source: expected the name of one of this run's sources "
                                  f"({', '.join(map(repr, names))}), found {found(source)}; name one of them, or "
                                  "give the source a name in its table ([[sources]] name = \"...\")")
            zones.append(zone_from_settings(key, doc, source))
        else:
            raise ConfigError(f"zones: expected NAME=x1,y1,x2,y2,... strings or a table of zones, found {value!r}")
    for entry, name in zip(settings.sources, names):
        if isinstance(entry, dict):
            for zone_name, doc in (entry.get("zones") or {}).items():
                if not isinstance(doc, dict):
                    raise ConfigError(f"source {name!r}: zone {zone_name!r} must be a table with points, found "
                                      f"{doc!r}")
                zones.append(zone_from_settings(zone_name, doc, name))
    seen: set[tuple[Any, str]] = set()
    for zone in zones:
        if (zone.source, zone.name) in seen:
            raise ConfigError(f"zone {zone.name!r} is given twice" + (f" for source {zone.source!r}" if zone.source
                                                                       else "") + "; give each zone one name")
        seen.add((zone.source, zone.name))
    return zones
