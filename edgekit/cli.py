"""The ``edgekit`` command: ``detect``, ``info``, ``plan``, ``doctor`` and ``bench``.

Errors become one line on stderr and an exit code, here and nowhere else:
0 success · 2 bad usage or option · 3 no TFLite runtime · 4 model unusable ·
5 at least one input failed (the rest of the batch still ran) · 6 nothing fits this device's memory or latency limit
(refused before loading) · 7 MQTT broker unreachable or refused us (with --mqtt-required) ·
70 internal error.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import sys
from typing import Sequence

from . import __version__
from .errors import ConfigError

__all__ = ["main"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, found {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number above 0, found {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a finite number above 0, found {text!r}")
    return value


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, found {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, found {value}")
    return value


def _channels(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 1 or 3 comma-separated numbers, found {text!r}") from None
    if len(values) not in (1, 3):
        raise argparse.ArgumentTypeError(f"expected 1 or 3 comma-separated numbers, found {len(values)}")
    return values


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 1920x1080, found {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes, found {text!r}")
    return w, h


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are edgekit's: one line (a ConfigError, exit 2) naming the command,
    with a did-you-mean for an unknown option, instead of the whole usage and then the error."""

    def error(self, message: str):
        wrong = message.split("invalid choice: '", 1)[1].split("'", 1)[0] if "invalid choice: '" in message else None
        close = difflib.get_close_matches(wrong, list(self._commands()), n=1) if wrong else []
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"{_command(self)}{message}{hint}; see '{self.prog} --help'")

    def parse_args(self, args=None, namespace=None):
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            command = self._commands().get(getattr(parsed, "command", None), self)
            raise ConfigError(_unknown_arguments(command, extra))
        return parsed

    def _commands(self) -> dict[str, argparse.ArgumentParser]:
        return next((a.choices for a in self._actions if isinstance(a, argparse._SubParsersAction)), {})


def _command(parser: argparse.ArgumentParser) -> str:
    """``"detect: "`` for a subcommand's parser (run_cli already prints ``edgekit: error:``), else ``""``."""
    return parser.prog.split(" ", 1)[1] + ": " if " " in parser.prog else ""


def _unknown_arguments(parser: argparse.ArgumentParser, extra: list[str]) -> str:
    """One line for arguments ``parser`` does not take: each unknown option with the closest
    known one of that command (difflib), else the stray arguments."""
    known = [s for action in parser._actions for s in action.option_strings if s.startswith("--")]
    options = [e.split("=", 1)[0] for e in extra if e.startswith("-") and e != "-"]
    if not options:
        return f"{_command(parser)}unexpected argument(s) {' '.join(extra)}; see '{parser.prog} --help'"
    parts = []
    for option in options:
        close = difflib.get_close_matches(option, known, n=1, cutoff=0.6)
        parts.append(f"{option} (did you mean {close[0]}?)" if close else option)
    return (f"{_command(parser)}unknown option{'s' if len(parts) > 1 else ''} {', '.join(parts)}; "
            f"see '{parser.prog} --help'")


def _add_connection_args(group) -> None:
    """Where and as whom to publish (shared by detect and ha-remove)."""
    group.add_argument("--mqtt", metavar="URL", default=os.environ.get("EDGEKIT_MQTT_URL"),
                       help="publish to mqtt://host[:port] or mqtts://host[:port] (env EDGEKIT_MQTT_URL)")
    group.add_argument("--mqtt-config", metavar="FILE", default=os.environ.get("EDGEKIT_MQTT_CONFIG"),
                       help="TOML/JSON file with url and other settings (flags override it)")
    group.add_argument("--mqtt-username", default=os.environ.get("EDGEKIT_MQTT_USERNAME"), metavar="NAME")
    group.add_argument("--mqtt-password-file", metavar="FILE", help="a file readable only by its owner")
    group.add_argument("--mqtt-ca", metavar="FILE", help="CA certificate for mqtts://")
    group.add_argument("--mqtt-cert", metavar="FILE", help="client certificate (mutual TLS)")
    group.add_argument("--mqtt-key", metavar="FILE", help="client key (mutual TLS)")
    group.add_argument("--device-id", default=os.environ.get("EDGEKIT_DEVICE_ID"), metavar="ID",
                       help="topic level under edgekit/ (default: the host name)")
    group.add_argument("--outbox", metavar="FILE", help="on-disk outbox (default ~/.local/state/edgekit/outbox-ID.db)")


def _add_preview_args(parser) -> None:
    """The live preview's flags (shared by detect and run; for run they go over the settings file's)."""
    from .preview import PREVIEW_FPS

    group = parser.add_argument_group("live preview (README: Live preview)")
    group.add_argument("--preview", metavar="HOST:PORT",
                       help="serve the annotated frames over HTTP: a page, /stream.mjpeg and /snapshot.jpg "
                            "(e.g. 127.0.0.1:8090; any other address than loopback needs a password or token file)")
    group.add_argument("--preview-fps", type=float, metavar="N",
                       help=f"most pictures encoded per second per watched source (default {PREVIEW_FPS:g})")
    group.add_argument("--preview-password-file", metavar="FILE",
                       help="HTTP basic auth: one line user:password (or a password for any user name), chmod 600")
    group.add_argument("--preview-token-file", metavar="FILE",
                       help="one line, a token given as ?token= or 'Authorization: Bearer', chmod 600")


def _preview_flags(args: argparse.Namespace) -> dict:
    return {"address": args.preview, "fps": args.preview_fps, "password_file": args.preview_password_file,
            "token_file": args.preview_token_file}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgekit", description="Run TFLite object detectors on CPU-only devices.")
    parser.add_argument("--version", action="version", version=f"edgekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from .postprocess import IOU_THRESHOLD, MAX_RESULTS, SCORE_THRESHOLD

    det = sub.add_parser("detect", help="detect objects in images; prints one JSON line per image")
    det.add_argument("model", metavar="MODEL",
                     help="a .tflite detection model, or a bundle directory made by 'edgekit-convert --bundle'")
    det.add_argument("sources", metavar="SOURCE", nargs="+",
                     help="what to watch (repeatable): an image file, a folder or a glob; a video file (.mp4 .mkv "
                          ".avi .mov …); rtsp:// or rtsps:// streams; an http:// MJPEG stream or snapshot URL; "
                          "/dev/videoN; picamera2. One JSON line per processed frame")
    det.add_argument("--labels", metavar="FILE", help="label file (one per line) overriding embedded labels")
    det.add_argument("--threshold", type=_unit_float, default=SCORE_THRESHOLD, metavar="T",
                     help=f"minimum score (default {SCORE_THRESHOLD})")
    det.add_argument("--max-results", type=_positive_int, default=MAX_RESULTS, metavar="N",
                     help=f"per image (default {MAX_RESULTS})")
    det.add_argument("--iou", type=_unit_float, default=IOU_THRESHOLD, metavar="T",
                     help=f"NMS IoU threshold (default {IOU_THRESHOLD})")
    det.add_argument("--layout", default="auto", metavar="NAME",
                     help="output layout: auto, ssd, yolov8, yolov5, end2end or a decoder registered by --plugin")
    det.add_argument("--mean", type=_channels, metavar="M[,M,M]",
                     help="input normalisation (pixel - mean) / std, overriding the model's (e.g. 127.5)")
    det.add_argument("--std", type=_channels, metavar="S[,S,S]", help="see --mean (e.g. 127.5 for inputs in -1..1)")
    det.add_argument("--threads", type=_positive_int, metavar="N", help="default: the cores this process may use")
    det.add_argument("--allow", action="append", metavar="LABEL", help="report only this label (repeatable)")
    det.add_argument("--deny", action="append", metavar="LABEL", help="never report this label (repeatable)")
    det.add_argument("--save-annotated", metavar="DIR", help="write each image with its boxes drawn to DIR")
    det.add_argument("--save-video", metavar="FILE",
                     help="also write the frames with their boxes drawn as a video (.mp4 .mkv .avi; one file per "
                          "source; needs edgekit[video])")
    det.add_argument("--fps", type=_positive_float, metavar="N",
                     help="process at most N frames per second of each source")
    det.add_argument("--follow", action="store_true",
                     help="watch folder SOURCEs: their images, then each new one as it is written, until stopped")
    det.add_argument("--live", action="store_true",
                     help="newest frame wins: drop frames the model cannot keep up with (default for cameras/streams); "
                          "a video file then plays at its own frame rate, as a camera would send it")
    det.add_argument("--track", action="store_true",
                     help="track objects: each detection gets a track_id and each JSON line an \"events\" list "
                          "(new / update / end, Frigate's shape)")
    det.add_argument("--zone", action="append", metavar="NAME=x1,y1,x2,y2,...",
                     help="a zone (polygon in pixels, or fractions of the frame when all values are <= 1) whose "
                          "entries and exits become events; repeatable; implies --track")
    det.add_argument("--snapshots", action="store_true",
                     help="keep the best picture of each tracked object (saved privately under "
                          "~/.local/state/edgekit/snapshots, published retained per source and label); implies --track")
    det.add_argument("--motion", action="store_true",
                     help="infer only frames where something moves (and one every 10 s); the others repeat the "
                          "last detections, so tracks stay")
    det.add_argument("--motion-mask", action="append", metavar="[NAME=]x1,y1,x2,y2,...",
                     help="a polygon (pixels, or fractions when all values are <= 1) where motion is ignored "
                          "(a tree, a clock); repeatable; implies --motion")
    det.add_argument("--plugin", action="append", metavar="FILE_OR_MODULE",
                     help="import this Python file or module first (e.g. to register a decoder)")
    det.add_argument("--no-plan", action="store_true",
                     help="skip the memory/threads plan (a trial load in a child process, cached per model)")
    det.add_argument("--max-image", type=_size, default=(1920, 1080), metavar="WxH",
                     help="largest image the plan must leave memory for (default 1920x1080)")
    det.add_argument("-v", "--verbose", action="store_true", help="say which runtime, plan and settings are used")
    _add_preview_args(det)
    mq = det.add_argument_group("MQTT (password: EDGEKIT_MQTT_PASSWORD or --mqtt-password-file, never argv)")
    _add_connection_args(mq)
    mq.add_argument("--mqtt-required", action="store_true", help="exit if the broker is unreachable or refuses us")
    mq.add_argument("--mqtt-qos", type=int, choices=(0, 1, 2), default=1)
    mq.add_argument("--mqtt-protocol", choices=("3.1.1", "5"), default="3.1.1")
    mq.add_argument("--only-on-change", action="store_true", help="skip images whose per-label counts did not change")
    mq.add_argument("--snapshot", action="store_true", help="also publish each image as JPEG to <device>/snapshot")
    mq.add_argument("--ha-discovery", action="store_true", help="announce Home Assistant sensors per label")
    mq.add_argument("--no-detections", action="store_true",
                    help="publish no per-frame detections message (events, counts and status still go out)")
    mq.add_argument("--frigate", action="store_true",
                    help="also publish events and counts in Frigate's topic layout (frigate/events, "
                         "frigate/<camera>/<label>) for existing Frigate consumers")

    rn = sub.add_parser("run", help="run the detection service from a settings file (sources, model, MQTT …)")
    rn.add_argument("config", metavar="SETTINGS", help="TOML (or .json) file; unknown keys are refused "
                                                       "(README: Settings file)")
    rn.add_argument("--check", action="store_true",
                    help="only validate: the settings, the model (exists, plans, loads), the sources (parse), zones, "
                         "motion, preview and MQTT settings; start nothing (exit 0 when fine)")
    rn.add_argument("-v", "--verbose", action="store_true", help="say which runtime, plan and settings are used")
    _add_preview_args(rn)

    info = sub.add_parser("info", help="describe any .tflite file: tensors, operators, metadata, and what edgekit "
                                       "would do with it")
    info.add_argument("model", metavar="MODEL")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.add_argument("--labels", metavar="FILE", help="label file overriding embedded labels")
    info.add_argument("--layout", default="auto", metavar="NAME")
    info.add_argument("--plugin", action="append", metavar="FILE_OR_MODULE")
    info.add_argument("--safe", action="store_true",
                      help="load the model in a child process first, so a runtime crash cannot take this one down")

    pl = sub.add_parser("plan", help="choose threads and model variant for this device; refuse if nothing fits")
    pl.add_argument("model", metavar="MODEL_OR_BUNDLE")
    pl.add_argument("--json", action="store_true", help="machine-readable output")
    pl.add_argument("--threads", type=_positive_int, metavar="N", help="use N threads instead of choosing")
    pl.add_argument("--max-latency-ms", type=_positive_float, metavar="MS", help="only variants whose invoke takes at most MS")
    pl.add_argument("--fps", type=_positive_float, help="only variants fast enough for this frame rate")
    pl.add_argument("--max-image", type=_size, default=(1920, 1080), metavar="WxH",
                    help="largest image to leave memory for (default 1920x1080)")
    pl.add_argument("--autotune", action="store_true", help="time 1..N threads on this device (cached)")
    pl.add_argument("--no-cache", action="store_true", help="measure again instead of using cached costs")

    ha = sub.add_parser("ha-remove", help="remove this device's Home Assistant entities for some labels")
    ha.add_argument("labels", nargs="+", metavar="LABEL")
    _add_connection_args(ha)

    doc = sub.add_parser("doctor", help="check this machine: Python, packages, TFLite runtimes, CPU, memory, thermal")
    doc.add_argument("--json", action="store_true", help="machine-readable output")

    bn = sub.add_parser("bench", help="measure this device on a model: load, first inference, fps, stage ms, "
                                      "peak RSS, threads sweep")
    bn.add_argument("model", metavar="MODEL")
    bn.add_argument("source", metavar="SOURCE", nargs="?",
                    help="any SOURCE detect takes (default: synthetic 1280x720 JPEGs)")
    bn.add_argument("--frames", type=_positive_int, default=64, metavar="N", help="frames timed per run (default 64)")
    bn.add_argument("--threads", type=_positive_int, metavar="N", help="default: the planner's choice")
    bn.add_argument("--no-sweep", action="store_true", help="skip the sweep over 1..usable cores")
    bn.add_argument("--plot", metavar="FILE", help="also draw the results as a PNG")
    bn.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _load_plugins(plugins: Sequence[str] | None) -> None:
    from .plugins import load_plugin

    for plugin in plugins or ():
        load_plugin(plugin)


def _cmd_detect(args: argparse.Namespace) -> int:
    from .gate import gate_options
    from .plan import check_model_path
    from .preview import preview_options
    from .service import ServiceSettings, serve

    settings = ServiceSettings(
        model=args.model, sources=tuple(args.sources), labels=args.labels, threshold=args.threshold, iou=args.iou,
        max_results=args.max_results, layout=args.layout, mean=args.mean, std=args.std, threads=args.threads,
        allow=tuple(args.allow) if args.allow else None, deny=tuple(args.deny) if args.deny else None,
        fps=args.fps, live=True if args.live else None, follow=args.follow, save_annotated=args.save_annotated,
        plugins=tuple(args.plugin or ()), plan=not args.no_plan, max_image=args.max_image, verbose=args.verbose,
        mqtt=_mqtt_settings(args) if (args.mqtt or args.mqtt_config) else None, mqtt_required=args.mqtt_required,
        save_video=args.save_video, track=args.track, zones=tuple(args.zone or ()),
        snapshots=args.snapshots, preview=preview_options(None, **_preview_flags(args)),
        motion=gate_options(args.motion, args.motion_mask))
    check_model_path(settings.model)  # with --no-plan too: a wrong path is exit 2, never "model unusable"
    return serve(settings)


def _cmd_run(args: argparse.Namespace) -> int:
    from .service import ServiceSettings, check, serve

    flags = {k: v for k, v in _preview_flags(args).items() if v is not None}
    settings = ServiceSettings.from_file(args.config, verbose=args.verbose or None, preview=flags or None)
    from .plan import check_model_path

    check_model_path(settings.model, (args.config, "model"))
    return check(settings) if args.check else serve(settings)


def _mqtt_settings(args: argparse.Namespace):
    from .mqtt import MqttSettings

    flags = dict(username=args.mqtt_username, password_file=args.mqtt_password_file, ca_file=args.mqtt_ca,
                 cert_file=args.mqtt_cert, key_file=args.mqtt_key, device_id=args.device_id, outbox=args.outbox)
    for name in ("qos", "protocol"):
        value = getattr(args, f"mqtt_{name}", None)
        if value is not None:
            flags[name] = value
    for name in ("only_on_change", "snapshot", "ha_discovery", "frigate"):
        if getattr(args, name, False):
            flags[name] = True
    if getattr(args, "no_detections", False):
        flags["detections"] = False
    if args.mqtt_config:
        return MqttSettings.from_file(args.mqtt_config, url=args.mqtt, **flags)  # flags win over the file
    if not args.mqtt:
        raise ConfigError("no broker given: pass --mqtt URL, --mqtt-config FILE or set EDGEKIT_MQTT_URL")
    return MqttSettings.from_url(args.mqtt, **flags)


def _cmd_ha_remove(args: argparse.Namespace) -> int:
    from .mqtt import Publisher

    # its own client id, outbox and no status of its own: a running detector stays connected and online
    with Publisher(_mqtt_settings(args), required=True, role="ha-remove") as publisher:
        publisher.remove_discovery(args.labels)
        if not publisher.flush(30):
            raise ConfigError("could not deliver the removals within 30 s; they stay queued in the outbox")
    print(f"removed Home Assistant entities for: {', '.join(args.labels)}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .describe import describe_model

    if args.safe:
        from .doctor import check_model_safely

        check_model_safely(args.model)  # raises ModelError naming the signal if the child crashed
    _load_plugins(args.plugin)
    info = describe_model(args.model, layout=None if args.layout == "auto" else args.layout, labels_path=args.labels)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(_format_info(info))
    return 0


def _format_info(info: dict) -> str:
    size = f" ({info['size_bytes'] / 1e6:.2f} MB)" if info.get("size_bytes") is not None else ""
    threads = info["threads"]
    lines = [f"model:    {info['model']}{size}",
             f"runtime:  {info['runtime']} ({threads} thread{'' if threads == 1 else 's'})"]
    for kind in ("inputs", "outputs"):
        for t in info[kind]:
            q = t["quantization"]
            qtext = f" q=(scale {q['scale']:.6g}, zero point {q['zero_point']})" if q else ""
            sig = f" (signature {t['shape_signature']})" if "shape_signature" in t else ""
            lines.append(f"{kind[:-1]:<9} {t['name']} {t['shape']}{sig} {t['dtype']}{qtext}")
    if info.get("weights"):
        from .modelinfo import WEIGHT_KINDS

        lines.append(f"weights:  {WEIGHT_KINDS.get(info['weights'], info['weights'])}")
    ops = ", ".join(f"{name} x{n}" if n > 1 else name for name, n in info["operators"].items())
    lines.append(f"operators: {ops or 'unknown (this runtime does not list them)'}")
    meta = info["metadata"]
    lines.append(f"metadata: {meta['source']}")
    for key in ("name", "task", "input_size", "input", "output", "output_names", "quantization", "versions",
                "created", "sha256"):
        if key in meta:
            origin = meta["origins"].get(key) or ", ".join(sorted({v for k, v in meta["origins"].items()
                                                                   if k.startswith(key + ".")}))
            lines.append(f"  {key}: {json.dumps(meta[key])}" + (f"  [{origin}]" if origin else ""))
    if isinstance(meta.get("accuracy"), dict):
        lines.append(f"accuracy: {_accuracy_line(meta['accuracy'])}")
    labels = info["labels"]
    shown = f" ({', '.join(labels['first'])}{', …' if labels['count'] > len(labels['first']) else ''})" if labels["first"] else ""
    source = f"from {labels['from']}" if labels["count"] else "none embedded: pass --labels FILE, or names print as class_N"
    lines.append(f"labels:   {labels['count']}{shown} {source}")
    if info["layout"]["name"]:
        lines.append(f"layout:   {info['layout']['name']} (from {info['layout']['from']})")
    if "input_encoding" in info:
        enc = info["input_encoding"]
        from .describe import input_encoding_text

        lines.append(f"input:    {input_encoding_text(enc)}")
    lines.append(f"edgekit:  {info['verdict']}")
    lines.extend(f"note:     {note}" for note in info.get("notes", ()))
    return "\n".join(lines)


def _accuracy_line(acc: dict) -> str:
    """What ``edgekit-convert --eval`` measured, as recorded in the model."""
    try:
        conv, ref = acc["converted"], acc["reference"]
        text = (f"mAP50-95 {conv['map50_95']:.4f} ({acc['change_points']['map50_95']:+.2f} points vs the "
                f"{ref['role']} {ref['map50_95']:.4f}) on {acc['images']} images of {os.path.basename(acc['dataset'])}")
        gate = acc.get("gate")
        if gate:
            text += f"; --max-drop {gate['max_drop_points']:g}: {'passed' if gate['passed'] else 'FAILED'}"
        return text
    except (KeyError, TypeError, ValueError):
        return "recorded, unreadable (from another edgekit version?)"


def _cmd_plan(args: argparse.Namespace) -> int:
    from .plan import make_plan

    latency = args.max_latency_ms
    if args.fps:
        latency = min(latency or float("inf"), 1000.0 / args.fps)
    from .service import capped_threads

    plan = make_plan(args.model, threads=capped_threads(args.threads, sys.stderr), max_latency_ms=latency, max_image=args.max_image,
                     use_cache=not args.no_cache, autotune=args.autotune)
    print(json.dumps(plan.to_dict(), indent=2) if args.json else plan.explain())
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import format_report, run_doctor

    report = run_doctor()
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0 if report.ok else 1


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import BenchOptions, format_report, run_bench, save_plot

    options = BenchOptions(frames=args.frames, threads=args.threads, sweep=() if args.no_sweep else None)
    report = run_bench(args.model, args.source, options, None if args.json else lambda m: print(m, file=sys.stderr))
    if args.plot:
        save_plot(report, args.plot)
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0


_COMMANDS = {"detect": _cmd_detect, "run": _cmd_run, "info": _cmd_info, "plan": _cmd_plan, "doctor": _cmd_doctor,
             "ha-remove": _cmd_ha_remove, "bench": _cmd_bench}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edgekit`` console script; returns the exit code (errors.EXIT_CODES)."""
    from .errors import run_cli

    def body() -> int:
        args = build_parser().parse_args(argv)
        return _COMMANDS[args.command](args)

    return run_cli("edgekit", body)


if __name__ == "__main__":
    sys.exit(main())
