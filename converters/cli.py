"""``edgekit-convert``: convert a SavedModel / Keras model to TFLite, or add metadata to a .tflite."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from edgekit.errors import AccuracyError, ConfigError, run_cli

from .convert import IO_TYPES, MODES
from .source import CONVERT_MODULES, missing_dependency

__all__ = ["main"]

_DESCRIPTION = ("Convert a SavedModel directory or a Keras .keras/.h5 file (Keras 3, or Keras 2 through tf_keras) to "
                "TFLite in float32, float16, dynamic-range or int8 mode, with the metadata edgekit needs embedded; or "
                "add that metadata to an existing .tflite. Prints sizes and agreement with the source model, "
                "measured on images held out of --calibration.")


def _channels(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or three comma-separated numbers, found {text!r}") from None
    if len(values) not in (1, 3):
        raise argparse.ArgumentTypeError(f"expected 1 or 3 values, found {len(values)}")
    return values


def _sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        w, _, h = part.strip().lower().partition("x")
        try:
            sizes.append((int(w), int(h or w)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected sizes like 320x320,256 — found {part!r}") from None
    return sizes


def _modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise argparse.ArgumentTypeError(f"modes must be from {', '.join(MODES)}, found {text!r}")
    return modes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgekit-convert", description=_DESCRIPTION)
    p.add_argument("src", metavar="SRC", nargs="+",
                   help="SavedModel directory, .keras/.h5 file, or .tflite (no --mode: metadata only; --mode float32: its "
                        "float copy; --mode int8: quantized from that copy); several with --bundle")
    p.add_argument("-o", "--output", required=True, metavar="OUT.tflite|DIR")
    p.add_argument("--mode", choices=MODES, default=None, help="default float32 (for a .tflite: none, i.e. metadata only)")
    p.add_argument("--bundle", action="store_true",
                   help="write a directory of variants (SRC x --sizes x --modes) with manifest.json for edgekit plan")
    p.add_argument("--sizes", type=_sizes, metavar="WxH,...", help="bundle input sizes, e.g. 128x128,96x96 (or 128,96)")
    p.add_argument("--modes", type=_modes, metavar="MODE,...", help="bundle modes, e.g. int8,float32")
    p.add_argument("--calibration", metavar="DIR",
                   help="representative images (required for int8); every 5th is held out to measure agreement on")
    p.add_argument("--max-calibration", type=int, default=200, metavar="N", help="use at most N images (default 200)")
    p.add_argument("--mean", type=_channels, metavar="M", help="input normalisation (pixel - M) / S; 1 or 3 values")
    p.add_argument("--std", type=_channels, metavar="S")
    p.add_argument("--labels", metavar="FILE", help="label file, one per line (index = class id)")
    p.add_argument("--io", choices=IO_TYPES, help="int8 mode model I/O type (default uint8)")
    p.add_argument("--layout", metavar="NAME",
                   help="output layout to record: ssd, yolov8, yolov5, end2end or a custom decoder name (edgekit "
                        "detect then needs the --plugin that registers it)")
    p.add_argument("--color", choices=("RGB", "BGR"),
                   help="default RGB; a .tflite keeps what its metadata says (so do all the options not given)")
    p.add_argument("--resize", choices=("stretch", "letterbox"), help="default: the layout's convention")
    p.add_argument("--pad-value", type=int, metavar="V", help="letterbox padding grey level (default 114)")
    p.add_argument("--name", help="model name to record")
    p.add_argument("--no-eval", action="store_true", help="skip the agreement check against the source model")
    p.add_argument("--eval", metavar="DATA", dest="eval_data",
                   help="validation set for mAP (pycocotools) of the source and converted model through edgekit's "
                        "runtime: a COCO instances JSON or a YOLO dataset folder (images/ + labels/)")
    p.add_argument("--eval-images", metavar="DIR", help="the COCO JSON's images (default: images/ beside it)")
    p.add_argument("--max-drop", type=float, metavar="PTS",
                   help="int8: keep operators in float until mAP50-95 drops at most PTS points vs the float source; "
                        "exit 8 (best model written, labelled) if it cannot")
    p.add_argument("--report", metavar="FILE.json", help="write the sizes, mAP and latency table as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edgekit-convert`` console script; returns the exit code (edgekit.errors.EXIT_CODES)."""
    return run_cli("edgekit-convert", lambda: _run_checked(build_parser().parse_args(argv)))


def _run_checked(args: argparse.Namespace) -> int:
    """:func:`_run`, with a missing converter dependency (a device install has no TensorFlow) turned
    into one line saying what to install, instead of an internal error."""
    if args.eval_data:
        try:
            import pycocotools  # noqa: F401  -- before any conversion work: --eval needs it at the end
        except ImportError:
            raise missing_dependency("pycocotools", "--eval") from None
    try:
        return _run(args)
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        if root not in CONVERT_MODULES:
            raise
        raise missing_dependency(root, "converting") from None


def _run(args: argparse.Namespace) -> int:
    from .bundle import convert_bundle
    from .convert import convert

    if any(str(src).endswith(".tflite") for src in args.src) and (args.modes or args.bundle and args.mode):
        raise ConfigError(f"{args.src[0]} is already a TFLite model: a bundle collects it as it is (--mode/--modes "
                          "do not apply there); convert it on its own with --mode float32|int8")
    if not args.bundle and (len(args.src) > 1 or args.sizes or args.modes):
        raise ConfigError("several sources, --sizes and --modes make a bundle: add --bundle (and -o DIR)")
    options = dict(calibration=args.calibration, mean=args.mean, std=args.std, labels=args.labels, io=args.io,
                   layout=args.layout, color=args.color, resize=args.resize, pad_value=args.pad_value,
                   max_calibration=args.max_calibration, evaluate=not args.no_eval, progress=sys.stderr.isatty())
    if args.bundle:
        modes = args.modes or [args.mode or "float32"]
        evaluation = dict(eval_data=args.eval_data, eval_images=args.eval_images, max_drop=args.max_drop)
        try:
            reports = convert_bundle(args.src, args.output, sizes=args.sizes, modes=modes, name=args.name,
                                     **evaluation, **options)
        except AccuracyError as exc:
            if exc.report:
                print("\n".join(r.table() for r in exc.report))
                _write_report(args.report, exc.report)
            raise
    else:
        try:
            reports = [convert(args.src[0], args.output, mode=args.mode, name=args.name, eval_data=args.eval_data,
                               eval_images=args.eval_images, max_drop=args.max_drop, **options)]
        except AccuracyError as exc:  # the best model was written: show and record it, then fail
            if exc.report is not None:
                print(exc.report.table())
                _write_report(args.report, [exc.report])
            raise
    print("\n".join(report.table() for report in reports))
    _write_report(args.report, reports)
    return 0


def _write_report(path: str | None, reports) -> None:
    """``--report FILE.json``: each conversion's size, time and, with --eval, its accuracy table."""
    import json

    if not path:
        return
    doc = [{"output": r.output, "mode": r.mode, "io": r.io, "size_bytes": r.size_bytes,
            "float32_size_bytes": r.float32_size_bytes, "seconds": round(r.seconds, 2),
            "calibrated_on": len(r.calibrated_on),
            "accuracy": r.accuracy.to_dict() if r.accuracy is not None else None} for r in reports]
    try:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(doc[0] if len(doc) == 1 else doc, fh, indent=1)
    except OSError as exc:
        raise ConfigError(f"--report {path}: cannot write ({exc.strerror or exc})") from None


if __name__ == "__main__":
    sys.exit(main())
