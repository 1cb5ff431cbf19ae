"""The detection service: model + sources + sinks, as ``edgekit detect`` and ``edgekit run`` use it.

:class:`ServiceSettings` holds every knob (from CLI flags, or from a TOML/JSON settings file that
refuses unknown keys); :func:`serve` plans, loads the detector, opens the sources, wires the sinks
(JSON lines, errors, MQTT with per-source status and stats, annotated images, the live preview) and runs until the
sources end or SIGTERM/SIGINT stops it gracefully. A stream that drops is reopened by its source;
its outage is said once on stderr and published as the source's status.

Settings file (``edgekit run service.toml``)::

    model = "/opt/edgekit/models/bundle"          # a .tflite or a bundle directory
    sources = ["rtsp://cam1.local/stream1", "/srv/camera/*.jpg"]
    threshold = 0.4
    fps = 5                                       # at most 5 frames/s per source
    allow = ["person", "car"]
    preview = "127.0.0.1:8090"                    # live annotated pictures (see edgekit.preview)
    motion = true                                 # infer only when something moves (or a [motion] table)
    [mqtt]                                        # any MqttSettings field, plus url; an empty
    url = "mqtts://broker.local:8883"             # table takes EDGEKIT_MQTT_URL/USERNAME/PASSWORD
    ca_file = "/etc/edgekit/ca.pem"
    ha_discovery = true
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, TextIO

from .errors import ConfigError, ImageError
from .postprocess import IOU_THRESHOLD, MAX_RESULTS, SCORE_THRESHOLD

__all__ = ["ServiceSettings", "serve"]


@dataclass(frozen=True)
class ServiceSettings:
    """Everything a detection run needs. ``None`` means "from the model / no limit / off"."""

    model: str
    sources: tuple[str, ...]
    labels: str | None = None
    threshold: float = SCORE_THRESHOLD
    iou: float = IOU_THRESHOLD
    max_results: int | None = MAX_RESULTS
    layout: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    threads: int | None = None
    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] | None = None
    fps: float | None = None
    live: bool | None = None
    follow: bool = False  # folders are watched for new images until stopped (sources.WatchedFolder)
    save_annotated: str | None = None
    plugins: tuple[str, ...] = ()
    plan: bool = True
    max_image: tuple[int, int] = (1920, 1080)
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

    @classmethod
    def from_file(cls, path: str, **overrides: Any) -> "ServiceSettings":
        """Read a TOML (or ``.json``) settings file; unknown keys are refused with the known ones.

        ``overrides`` replace the file's settings, except ``preview`` given as a mapping (the
        ``--preview*`` flags): it is laid over the file's preview settings.
        """
        from .settingsfile import read_settings

        doc = read_settings(path, {f.name for f in dataclasses.fields(cls)}, "setting",
                            "TOML (or .json) with model and sources")
        missing = [k for k in ("model", "sources") if k not in doc and k not in overrides]
        if missing:
            raise ConfigError(f"{path}: missing {' and '.join(missing)}")
        if isinstance(overrides.get("preview"), dict):
            from .preview import preview_options

            overrides["preview"] = preview_options(doc.get("preview"), **overrides["preview"])
        doc.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**doc)
        except TypeError as exc:
            raise ConfigError(f"{path}: {exc}") from None


def _detector(settings: ServiceSettings, err: TextIO):
    from .detector import Detector, DetectorOptions
    from .metadata import InputSpec
    from .plugins import load_plugin

    for plugin in settings.plugins:
        load_plugin(plugin)
    model, threads = settings.model, settings.threads
    if settings.plan:
        from .plan import make_plan

        readers = len(settings.sources)
        plan = make_plan(settings.model, threads=settings.threads, max_image=settings.max_image,  # PlanError
                         frames_in_flight=_run_options(settings).frames_in_flight(readers), decoders=readers,
                         full_frames=_run_options(settings).full_frames_held(readers))
        model, threads = plan.chosen.path, plan.threads
        if settings.verbose:
            print(plan.explain(), file=err)
    elif os.path.isdir(settings.model):
        raise ConfigError(f"{settings.model} is a bundle directory: it needs the planner to pick a variant "
                          "(drop --no-plan / set plan = true)")
    threshold = settings.threshold
    if tracking(settings):  # weaker detections keep tracks alive; only those >= threshold are reported
        threshold = min(threshold, _tracker_options(settings).low_score)
    options = DetectorOptions(
        score_threshold=threshold, max_results=settings.max_results, iou_threshold=settings.iou,
        num_threads=threads, layout=None if settings.layout in (None, "auto") else settings.layout,
        label_allowlist=frozenset(settings.allow) if settings.allow else None,
        label_denylist=frozenset(settings.deny) if settings.deny else None,
        input=InputSpec(mean=settings.mean, std=settings.std) if settings.mean or settings.std else None)
    detector = Detector(model, options, labels_path=settings.labels)
    for note in detector.notes:
        print(f"edgekit: note: {note}", file=err)
    if settings.verbose:
        print(f"edgekit: runtime {detector.runtime}, {detector.num_threads} threads, layout {detector.layout} "
              f"(from {detector.layout_origin}), labels: {len(detector.labels or ())} (from {detector.label_origin}), "
              f"input {detector.input_size[0]}x{detector.input_size[1]} ({detector.input_spec.resize})", file=err)
    return detector


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
                raise ConfigError(f"zone {key!r} is for source {source!r}, which this run does not have; its "
                                  f"sources are: {', '.join(names)}")
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


def _provenance(settings: ServiceSettings, detector: Any, tracker: Any) -> dict[str, Any]:
    from .integrity import file_digests

    try:
        digest = file_digests(detector.model_path)[0]
    except OSError:
        digest = None
    return {"model": os.path.basename(detector.model_path), "model_sha256": digest, "threshold": settings.threshold,
            "iou": settings.iou, "track_low_score": tracker.low_score}


def _open(settings: ServiceSettings, checkpoints: str | None) -> list:
    """The run's sources: SOURCE strings as the CLI takes them, and settings-file tables
    ``{name = "drive", source = "rtsp://…", zones = {…}}`` (one source each, named)."""
    from .sources import open_sources

    strings = [s for s in settings.sources if not isinstance(s, dict)]
    opened = open_sources([str(s) for s in strings], follow=settings.follow, checkpoints=checkpoints) if strings else []
    for entry in settings.sources:
        if not isinstance(entry, dict):
            continue
        unknown = sorted(set(entry) - {"name", "source", "zones"})
        if unknown or not isinstance(entry.get("source"), str):
            raise ConfigError(f"sources: a source table needs source = \"URL or path\" and may have name and zones; "
                              f"found {entry!r}")
        for source in open_sources([entry["source"]], follow=settings.follow, checkpoints=checkpoints):
            if entry.get("name"):
                source.name = str(entry["name"])
            opened.append(source)
    return opened


def _run_options(settings: ServiceSettings):
    from .runner import RunOptions

    snapshot = bool(getattr(settings.mqtt, "snapshot", False) or
                    (isinstance(settings.mqtt, dict) and settings.mqtt.get("snapshot")))
    keep = bool(settings.save_annotated or settings.save_video or settings.snapshots) or snapshot
    keep = keep or settings.preview is not None  # the preview draws on the full-size frames
    from .gate import gate_options

    return RunOptions(live=settings.live, fps=settings.fps, keep_images=keep, motion=gate_options(settings.motion))


def _publisher(settings: ServiceSettings):
    from .mqtt import MqttSettings, Publisher

    if isinstance(settings.mqtt, MqttSettings):
        mqtt = settings.mqtt
    else:
        doc = dict(settings.mqtt or {})
        # as for detect: the environment (e.g. a systemd EnvironmentFile) fills what the file leaves out
        for key, env in (("username", "EDGEKIT_MQTT_USERNAME"), ("device_id", "EDGEKIT_DEVICE_ID")):
            if key not in doc and os.environ.get(env):
                doc[key] = os.environ[env]
        url = doc.pop("url", None) or os.environ.get("EDGEKIT_MQTT_URL")
        try:
            mqtt = MqttSettings.from_url(url, **doc) if url else MqttSettings(**doc)
        except TypeError as exc:
            raise ConfigError(f"[mqtt] settings: {exc}") from None
    return Publisher(mqtt, required=settings.mqtt_required).start()


def _preview(options: Any, runner: Any, zones: list, err: TextIO):
    """The preview sink, serving already (a port in use fails here, before the run), or None."""
    if options is None:
        return None
    from .preview import PreviewSink

    return PreviewSink(options, [st.name for st in runner.stats], zones, err)


@dataclass
class _StatusLog:
    """Says each source outage once on stderr and publishes the source's status."""

    err: TextIO
    publisher: Any = None
    last: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, source: str, status: str, reason: str = "") -> None:
        with self.lock:
            if self.last.get(source) == status:
                return
            first = source not in self.last
            self.last[source] = status
        if status == "down" or not first:
            print(f"edgekit: source {source} is {status}" + (f": {reason}" if reason else ""), file=self.err,
                  flush=True)
        if self.publisher is not None:
            self.publisher.publish_source_status(source, status, reason)


def serve(settings: ServiceSettings, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run detection as ``settings`` say; returns the exit code (0, or 5 when some inputs failed).

    Raises the error tree's errors (model unusable, plan refused, broker refused with
    ``mqtt_required`` …) for the caller to map to exit codes.
    """
    from .mqtt.sink import MqttSink
    from .gate import gate_options
    from .preview import preview_options
    from .runner import Runner, run
    from .sinks import AnnotatedImages, AnnotatedVideo, ErrorLog, JsonLines
    from .stats import RunStats

    out, err = out or sys.stdout, err or sys.stderr
    preview_settings = preview_options(settings.preview)  # a bad address or no credential: refused before loading
    gate = gate_options(settings.motion)  # bad motion settings or masks: refused before loading too
    stages: list = []
    zones: list = []
    tracker = _tracker_options(settings) if tracking(settings) else None
    detector = _detector(settings, err)
    checkpoints = None
    if settings.follow:  # a restart goes on where the last run got to (sources.WatchedFolder)
        from .userdirs import private_dir, state_dir

        checkpoints = str(private_dir(state_dir()))
    sources = _open(settings, checkpoints)
    if tracker is not None:
        from .events import EventOptions
        from .stages import event_stages
        from .runner import unique_names

        zones = _zones(settings, unique_names(sources))
        snapshots = None
        if settings.snapshots:
            from .snapshots import SnapshotStage
            from .userdirs import state_dir

            snapshots = SnapshotStage(str(state_dir() / "snapshots"))
        stages = event_stages(settings.threshold, tracker, zones, _options(EventOptions, settings.events, "events"),
                              _provenance(settings, detector, tracker), err, snapshots)
    run_stats = RunStats()
    runner = Runner(sources, detector, _run_options(settings), [run_stats.count, *stages])
    run_stats.sources = runner.stats
    sinks: list = [JsonLines(out), ErrorLog(err)]
    # made before the publisher starts, so that a bad path ends the run with nothing to stop
    video = AnnotatedVideo(settings.save_video, sources, settings.fps, err) if settings.save_video else None
    preview = _preview(preview_settings, runner, zones, err)
    try:
        publisher = _publisher(settings) if settings.mqtt is not None else None
    except BaseException:
        if preview is not None:
            preview.close()
        raise
    status = _StatusLog(err, publisher)
    for source in sources:
        if hasattr(source, "on_status"):
            source.on_status = status
    if publisher is not None:  # the stats topic carries the run's statistics
        names = [st.name for st in runner.stats]
        zone_pairs = [(name, z) for z in zones for name in names if z.source in (None, name)]
        live = [st.name for st, source in zip(runner.stats, sources) if hasattr(source, "on_status")]
        sinks.append(MqttSink(publisher, detector.model_path, stats=run_stats, labels=settings.allow or (),
                              zones=zone_pairs, live_sources=live, motion_off_delay=getattr(gate, "off_delay", None)))
    if settings.save_annotated:
        sinks.append(AnnotatedImages(settings.save_annotated))
    if video is not None:
        sinks.append(video)
    if preview is not None:
        sinks.append(preview)
    with runner.stop_on_signals():
        summary = run(runner, sinks)
    if summary.failed:
        rest = f"the other {summary.processed} were processed" if summary.processed else "nothing was processed"
        print(f"edgekit: {summary.failed} input(s) failed; {rest}", file=err)
        return ImageError.exit_code
    return 0
