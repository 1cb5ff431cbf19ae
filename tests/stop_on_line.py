"""Run a command, copy its stderr, and stop it with SIGINT (as Ctrl-C) once a line matches, so a
CLI test ends as soon as what it waits for was said instead of after a fixed ``timeout N``.

    python tests/stop_on_line.py PATTERN LINGER LIMIT -- COMMAND...

PATTERN: a regular expression searched in each stderr line; LINGER: seconds to let the command
run on after the first match (to see that a line is not repeated); LIMIT: seconds after which it
is stopped all the same (a safety net, generous). Exits with the command's code.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time


def main(argv: list[str]) -> int:
    pattern, linger, limit = re.compile(argv[0]), float(argv[1]), float(argv[2])
    command = argv[argv.index("--") + 1:]
    child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, errors="replace")
    matched = threading.Event()

    def copy() -> None:
        for line in child.stderr:
            sys.stderr.write(line)
            sys.stderr.flush()
            if pattern.search(line):
                matched.set()

    reader = threading.Thread(target=copy, daemon=True)
    reader.start()
    deadline = time.monotonic() + limit
    while child.poll() is None and not matched.is_set() and time.monotonic() < deadline:
        matched.wait(0.1)
    if matched.is_set():
        end = min(deadline, time.monotonic() + linger)
        while child.poll() is None and time.monotonic() < end:
            time.sleep(0.1)
    if child.poll() is None:
        child.send_signal(signal.SIGINT)
    try:
        code = child.wait(60)
    except subprocess.TimeoutExpired:
        child.kill()
        code = child.wait()
    reader.join(10)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
