"""Signals at every stage of a command: SIGTERM while it is still starting ends it with one line and
exit 143 (before, the signal's default action killed it silently); a signal during a run is
recorded by the runner (``Runner.stopped_by``), which is what ``serve`` reads for Ctrl-C's 130."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time

from conftest import REPO
from edgekit.detector import Detector
from edgekit.errors import EXIT_TERMINATED
from edgekit.runner import Runner

SHAPES = REPO / "examples" / "shapes" / "shapes_int8.tflite"


def test_sigterm_while_starting_says_so_and_exits_143(tmp_path):
    """`edgekit run` reading its settings from a FIFO blocks in the middle of its start-up, for as
    long as the test wants: the signal arrives exactly there, on any machine load."""
    fifo = tmp_path / "settings.toml"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "edgekit", "run", str(fifo)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    writer = None
    try:
        deadline = time.monotonic() + 120
        while writer is None:  # opening the write end succeeds once edgekit has the read end open
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                assert exc.errno == errno.ENXIO, exc
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "edgekit never opened its settings file"
                time.sleep(0.02)
        time.sleep(0.1)  # now it blocks in read(): nothing written, the write end open
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if writer is not None:
            os.close(writer)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_TERMINATED == 143, (proc.returncode, err)
    assert err.strip().splitlines() == ["edgekit: stopped by SIGTERM before its work was done"], err
    assert out == ""


def test_the_runner_records_the_signal_that_stopped_it():
    runner = Runner([], Detector(SHAPES))
    assert runner.stopped_by is None
    with runner.stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 10
        while runner.stopped_by is None and time.monotonic() < deadline:  # the handler runs between bytecodes
            time.sleep(0.01)
    assert runner.stopped_by == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back as it was
