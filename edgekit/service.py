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

import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, TextIO

from .errors import EXIT_INTERRUPTED, ConfigError, ImageError
from .service_settings import ServiceSettings, _options, _tracker_options, _zones, label_filter_error, tracking

__all__ = ["ServiceSettings", "serve", "check"]


def _detector(settings: ServiceSettings, err: TextIO):
    from .detector import Detector, DetectorOptions
    from .metadata import InputSpec
    from .plugins import load_plugin

    for plugin in settings.plugins:
        load_plugin(plugin)
    model, threads = settings.model, capped_threads(settings.threads, err)
    if settings.plan:
        from .plan import make_plan

        readers = len(settings.sources)
        plan = make_plan(settings.model, threads=threads, max_image=settings.max_image,  # PlanError
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
    try:
        detector = Detector(model, options, labels_path=settings.labels)
    except ConfigError as exc:
        raise label_filter_error(settings, exc) from None
    for note in detector.notes:
        print(f"edgekit: note: {note}", file=err)
    if settings.verbose:
        print(f"edgekit: runtime {detector.runtime}, {detector.num_threads} threads, layout {detector.layout} "
              f"(from {detector.layout_origin}), labels: {len(detector.labels or ())} (from {detector.label_origin}), "
              f"input {detector.input_size[0]}x{detector.input_size[1]} ({detector.input_spec.resize})", file=err)
    return detector


def capped_threads(threads: int | None, err: TextIO) -> int | None:
    """``threads`` capped at the cores this process may use (more only oversubscribe the CPU, and a
    huge number crashes the runtime), with a note on ``err`` when capped; None stays None."""
    if threads is None:
        return None
    from .device import usable_cores

    cores = usable_cores()
    if threads <= cores:
        return threads
    print(f"edgekit: note: threads {threads} is more than the {cores} core(s) this process may use "
          f"(CPU affinity and cgroup quota); using {cores}", file=err)
    return cores


def _provenance(settings: ServiceSettings, detector: Any, tracker: Any) -> dict[str, Any]:
    from .integrity import file_digests

    try:
        digest = file_digests(detector.model_path)[0]
    except OSError:
        digest = None
    return {"model": os.path.basename(detector.model_path), "model_sha256": digest, "threshold": settings.threshold,
            "iou": settings.iou, "track_low_score": tracker.low_score}


def _open(settings: ServiceSettings, checkpoints: str | None) -> tuple[list, list]:
    """The run's sources — SOURCE strings as the CLI takes them, and settings-file tables
    ``{name = "drive", source = "rtsp://…", zones = {…}, motion = …}`` (one source each, named) —
    and, for each, its table's ``motion`` setting (``_TOP``: the run's own)."""
    from .sources import close_sources, open_sources

    strings = [s for s in settings.sources if not isinstance(s, dict)]
    opened = open_sources([str(s) for s in strings], follow=settings.follow, checkpoints=checkpoints) if strings else []
    motions: list = [_TOP] * len(opened)
    try:
        for entry in settings.sources:
            if not isinstance(entry, dict):
                continue
            unknown = sorted(set(entry) - {"name", "source", "zones", "motion"})
            if unknown or not isinstance(entry.get("source"), str):
                raise ConfigError(f"sources: a source table needs source = \"URL or path\" and may have name, "
                                  f"zones and motion; found {entry!r}")
            for source in open_sources([entry["source"]], follow=settings.follow, checkpoints=checkpoints):
                if entry.get("name"):
                    source.name = str(entry["name"])
                opened.append(source)
                motions.append(entry.get("motion", _TOP))
    except BaseException:  # a later table failed: what was opened before is closed, not left behind
        close_sources(opened)
        raise
    return opened, motions


_TOP = object()  # a source without a motion setting of its own


def _source_gates(settings: ServiceSettings, sources: list, motions: list) -> Any:
    """RunOptions.motion: the run's gate, or per source name when a source table has its own."""
    from .gate import gate_options
    from .runner import unique_names

    top = gate_options(settings.motion)
    if all(m is _TOP for m in motions):
        return top
    return {name: top if m is _TOP else gate_options(m) for name, m in zip(unique_names(sources), motions)}


def _run_options(settings: ServiceSettings, motion: Any = _TOP):
    from .runner import RunOptions

    snapshot = bool(getattr(settings.mqtt, "snapshot", False) or
                    (isinstance(settings.mqtt, dict) and settings.mqtt.get("snapshot")))
    keep = bool(settings.save_annotated or settings.save_video or settings.snapshots) or snapshot
    keep = keep or settings.preview is not None  # the preview draws on the full-size frames
    from .gate import gate_options

    return RunOptions(live=settings.live, fps=settings.fps, keep_images=keep,
                      motion=gate_options(settings.motion) if motion is _TOP else motion)


def _publisher(settings: ServiceSettings):
    from .mqtt import MqttSettings, Publisher

    mqtt = settings.mqtt if isinstance(settings.mqtt, MqttSettings) else MqttSettings.from_table(settings.mqtt or {})
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


def _progress(settings: ServiceSettings, sources: list, err: TextIO):
    """Progress and a summary on stderr (a terminal, or -v; :mod:`edgekit.progress`), or None."""
    from .progress import BatchProgress, show_progress

    if not show_progress(err, settings.verbose):
        return None
    still = all(type(s).__name__ == "ImageFiles" for s in sources)
    return BatchProgress(err, unit="image" if still else "frame")


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
    sources, motions = _open(settings, checkpoints)
    gates = _source_gates(settings, sources, motions)
    off_delay = getattr(gate, "off_delay", None)  # the motion sensors': the run's, or each source's own
    if isinstance(gates, dict):
        off_delay = {name: g.off_delay for name, g in gates.items() if g is not None}
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
    runner = Runner(sources, detector, _run_options(settings, gates), [run_stats.count, *stages])
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
                              zones=zone_pairs, live_sources=live, motion_off_delay=off_delay))
    if settings.save_annotated:
        sinks.append(AnnotatedImages(settings.save_annotated))
    if video is not None:
        sinks.append(video)
    if preview is not None:
        sinks.append(preview)
    progress = _progress(settings, sources, err)
    if progress is not None:
        sinks.append(progress)
    with runner.stop_on_signals():
        summary = run(runner, sinks)
    if progress is not None:
        print(progress.summary(getattr(publisher, "final_stats", None)), file=err)
    if runner.stopped_by == signal.SIGINT:
        from .progress import interrupted_line

        print(interrupted_line(summary.processed + summary.failed, sources), file=err, flush=True)
        return EXIT_INTERRUPTED
    if summary.failed:
        rest = f"the other {summary.processed} were processed" if summary.processed else "nothing was processed"
        print(f"edgekit: {summary.failed} input(s) failed; {rest}", file=err)
        return ImageError.exit_code
    return 0


def check(settings: ServiceSettings, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Validate a run without starting it (``edgekit run --check``): the settings (already typed
    and in range, their files checked by :meth:`ServiceSettings.from_file`), the model (it exists,
    plans and loads), the sources (they parse; nothing is read), zones, motion, the preview's
    options and the MQTT settings (no connection). Prints a short summary on ``out``; returns 0.

    Raises the error tree's errors, as :func:`serve` would at start.
    """
    from .mqtt import MqttSettings
    from .preview import preview_options
    from .runner import unique_names

    out, err = out or sys.stdout, err or sys.stderr
    preview = preview_options(settings.preview)
    detector = _detector(settings, err)
    sources, motions = _open(settings, None)
    names = unique_names(sources)
    gates = _source_gates(settings, sources, motions)
    zones = _zones(settings, names) if tracking(settings) else []
    if tracking(settings):
        _tracker_options(settings)
    mqtt = None
    if settings.mqtt is not None:
        mqtt = settings.mqtt if isinstance(settings.mqtt, MqttSettings) else MqttSettings.from_table(settings.mqtt)
        mqtt.password()  # a password file that is missing or readable by others is refused here too
        if mqtt.tls:
            _check_tls(mqtt)
    gated = [n for n in names if (gates.get(n) if isinstance(gates, dict) else gates) is not None]
    lines = [f"model:   {detector.model_path} ({detector.layout}, {len(detector.labels or ())} labels, "
             f"input {detector.input_size[0]}x{detector.input_size[1]}, {detector.num_threads} threads)",
             f"sources: {len(names)}: {', '.join(names)}",
             f"tracking: {'on' if tracking(settings) else 'off'}" + (f", {len(zones)} zone(s)" if zones else ""),
             f"motion:  {'on for ' + ', '.join(gated) if gated else 'off'}",
             f"mqtt:    {f'{mqtt.host}:{mqtt.port} as {mqtt.device_id}' if mqtt else 'off'}",
             f"preview: {preview.address if preview else 'off'}"]
    print("\n".join(["settings are valid (nothing was started):", *("  " + line for line in lines)]), file=out)
    return 0


def _check_tls(mqtt: Any) -> None:
    """The CA, certificate and key files load as the publisher's TLS set-up loads them (no connection).

    Raises ConfigError: as :class:`~edgekit.mqtt.Publisher` would at start."""
    import ssl

    try:
        context = ssl.create_default_context(cafile=mqtt.ca_file)
        if mqtt.cert_file:
            context.load_cert_chain(mqtt.cert_file, mqtt.key_file)
    except (OSError, ValueError, ssl.SSLError) as exc:
        raise ConfigError(f"TLS set-up failed ({exc}); check the CA/cert/key files") from None
