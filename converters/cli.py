"""``edgekit-convert``: convert a SavedModel / Keras model to TFLite, or add metadata to a .tflite."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from edgekit.errors import ConfigError, EdgekitError

from .convert import IO_TYPES, MODES

__all__ = ["main"]


def _channels(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or three comma-separated numbers, found {text!r}") from None
    if len(values) not in (1, 3):
        raise argparse.ArgumentTypeError(f"expected 1 or 3 values, found {len(values)}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgekit-convert", description=__doc__)
    p.add_argument("src", metavar="SRC", help="SavedModel directory, .keras/.h5 file, or .tflite (metadata only)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.tflite")
    p.add_argument("--mode", choices=MODES, default=None, help="default float32 (not allowed for .tflite input)")
    p.add_argument("--calibration", metavar="DIR", help="representative images (required for int8)")
    p.add_argument("--max-calibration", type=int, default=200, metavar="N", help="use at most N images (default 200)")
    p.add_argument("--mean", type=_channels, metavar="M", help="input normalisation (pixel - M) / S; 1 or 3 values")
    p.add_argument("--std", type=_channels, metavar="S")
    p.add_argument("--labels", metavar="FILE", help="label file, one per line (index = class id)")
    p.add_argument("--io", choices=IO_TYPES, help="int8 mode model I/O type (default uint8)")
    p.add_argument("--layout", metavar="NAME", help="output layout to record: ssd, yolov8, yolov5 or a custom decoder name")
    p.add_argument("--color", choices=("RGB", "BGR"), default="RGB")
    p.add_argument("--resize", choices=("stretch", "letterbox"), help="default: the layout's convention")
    p.add_argument("--pad-value", type=int, default=114, metavar="V", help="letterbox padding grey level")
    p.add_argument("--name", help="model name to record")
    p.add_argument("--no-eval", action="store_true", help="skip the agreement check against the source model")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from .convert import convert

        is_tflite = str(args.src).endswith(".tflite")
        if is_tflite and args.mode:
            raise ConfigError(f"{args.src} is already a TFLite model: --mode does not apply (edgekit-convert only adds "
                         "metadata to it); convert the original SavedModel/Keras model instead")
        report = convert(
            args.src, args.output, mode=args.mode or "float32", calibration=args.calibration,
            mean=args.mean, std=args.std, labels=args.labels, io=args.io, layout=args.layout, color=args.color,
            resize=args.resize, pad_value=args.pad_value, name=args.name, max_calibration=args.max_calibration,
            evaluate=not args.no_eval, progress=sys.stderr.isatty(),
        )
    except EdgekitError as exc:
        print(f"edgekit-convert: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("EDGEKIT_DEBUG"):
            raise
        print(f"edgekit-convert: internal error: {type(exc).__name__}: {exc} (set EDGEKIT_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 70
    print(report.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
