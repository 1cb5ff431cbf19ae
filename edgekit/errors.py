"""The one exception tree of edgekit, and the one map from errors to exit codes.

Every message says what was expected, what was found and what to do. Each error class carries
its exit code; :func:`exit_code_for` maps anything else (usage errors, Ctrl-C, a closed pipe, a
bug) and :func:`run_cli` is the wrapper every console entry point runs its body in, so the
codes in :data:`EXIT_CODES` (the README's table) are the only ones a command returns.
Library users catch :class:`EdgekitError`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Callable

__all__ = [
    "EdgekitError",
    "RuntimeNotFoundError",
    "ModelError",
    "UnsupportedModelError",
    "LayoutError",
    "UnsafeModelError",
    "ImageError",
    "ConfigError",
    "PlanError",
    "MqttError",
    "MessageRefused",
    "AccuracyError",
    "EXIT_CODES",
    "EXIT_CHECK_FAILED",
    "EXIT_USAGE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "Terminated",
    "exit_code_for",
    "run_cli",
]

EXIT_CHECK_FAILED = 1  # `edgekit doctor` found a problem (also the base class's code)
EXIT_USAGE = 2  # argparse's own code for a bad option, kept equal to ConfigError's
EXIT_INTERNAL = 70  # EX_SOFTWARE of sysexits.h: a bug in edgekit
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM: stopped before the work began (a run under way stops gracefully, 0)


class Terminated(BaseException):
    """SIGTERM arrived where no graceful stop was in place: a run still starting (loading the model,
    opening sources) or a command without one (a conversion, a benchmark), so its work is not done. A BaseException, like
    KeyboardInterrupt, so that no ``except Exception`` swallows it."""


class EdgekitError(Exception):
    """Base class of every error edgekit raises on purpose."""

    exit_code = EXIT_CHECK_FAILED


class ConfigError(EdgekitError, ValueError):
    """An option or argument has a value edgekit cannot use."""

    exit_code = EXIT_USAGE


class RuntimeNotFoundError(EdgekitError):
    """No TFLite runtime could be imported and used on this machine."""

    exit_code = 3


class ModelError(EdgekitError):
    """A model file is missing, not a TFLite flatbuffer, truncated or otherwise unloadable."""

    exit_code = 4


class UnsupportedModelError(ModelError):
    """The model loads but needs an operator this runtime does not have."""


class LayoutError(ModelError):
    """The model's outputs do not match any known (or the requested) output layout."""


class UnsafeModelError(ModelError):
    """The model carries metadata past what edgekit reads (a ZIP bomb, a class id in the billions):
    refused from sizes and headers before anything that large is allocated. ``edgekit info``
    refuses it too, where other ModelErrors only change its verdict."""


class ImageError(EdgekitError):
    """An input image is missing, corrupt, empty, not an image or too large to decode safely."""

    exit_code = 5


class PlanError(EdgekitError):
    """Nothing fits this device: refused before loading."""

    exit_code = 6


class MqttError(EdgekitError):
    """The broker could not be reached or refused us (with ``required``)."""

    exit_code = 7


class MessageRefused(MqttError):
    """A message no MQTT broker accepts (its topic or size breaks the protocol's rules): it goes
    to the outbox's dead letters, never to the broker."""


class AccuracyError(EdgekitError):
    """A converted model loses more accuracy than allowed (``edgekit-convert --max-drop``). The
    best model found is still written, labelled as failing; ``report`` is the conversion report."""

    exit_code = 8

    def __init__(self, message: str, report: object = None) -> None:
        super().__init__(message)
        self.report = report


#: Every exit code a console entry point returns, with the README's wording.
EXIT_CODES: dict[int, str] = {
    0: "ok",
    EXIT_CHECK_FAILED: "`doctor` found a problem",
    ConfigError.exit_code: "bad option or argument",
    RuntimeNotFoundError.exit_code: "no TFLite runtime",
    ModelError.exit_code: "model unusable",
    ImageError.exit_code: "some inputs failed",
    PlanError.exit_code: "nothing fits this device's memory or the latency limit",
    MqttError.exit_code: "MQTT broker unreachable/refused",
    AccuracyError.exit_code: "converted model less accurate than `--max-drop` allows",
    EXIT_INTERNAL: "internal error",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
    EXIT_TERMINATED: "stopped by SIGTERM before its work was done (a run under way stops gracefully with 0)",
}


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an exception that ended a command (see :data:`EXIT_CODES`)."""
    if isinstance(exc, EdgekitError):
        return exc.exit_code
    if isinstance(exc, SystemExit):  # argparse: 2 for a bad option, 0 after --help / --version
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, Terminated):
        return EXIT_TERMINATED
    if isinstance(exc, BrokenPipeError):
        return 0  # stdout closed early (e.g. `| head`): the reader had enough
    return EXIT_INTERNAL


def run_cli(prog: str, body: Callable[[], int]) -> int:
    """Run a console entry point's ``body`` (parse arguments and do the work; returns a code from
    :data:`EXIT_CODES`) and turn whatever it raises into one line on stderr and an exit code.

    ``EDGEKIT_DEBUG=1`` re-raises unexpected exceptions for their traceback. Until a run puts its
    own graceful stop in place (:meth:`edgekit.runner.Runner.stop_on_signals`), SIGTERM raises
    :class:`Terminated`: one line and exit 143, not a silent death by the signal.
    """
    restore = _terminate_on_sigterm()
    try:
        return body()
    except BaseException as exc:
        code = exit_code_for(exc)
        if isinstance(exc, EdgekitError):
            print(f"{prog}: error: {exc}", file=sys.stderr)
        elif isinstance(exc, SystemExit):
            pass  # argparse has already printed its usage message
        elif isinstance(exc, KeyboardInterrupt):
            print(f"{prog}: interrupted (Ctrl-C)", file=sys.stderr)
        elif isinstance(exc, Terminated):
            print(f"{prog}: stopped by SIGTERM before its work was done", file=sys.stderr)
        elif isinstance(exc, BrokenPipeError):
            _silence_stdout()
        elif code == EXIT_INTERNAL:
            if not isinstance(exc, Exception) or os.environ.get("EDGEKIT_DEBUG"):
                raise
            print(f"{prog}: internal error: {type(exc).__name__}: {exc} (set EDGEKIT_DEBUG=1 for a traceback "
                  "and please report it)", file=sys.stderr)
        return code
    finally:
        restore()


def _terminate_on_sigterm() -> Callable[[], None]:
    """Make SIGTERM raise :class:`Terminated` (main thread, default handler only); returns the undo."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return lambda: None

    def handler(signum, frame):
        raise Terminated

    signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
