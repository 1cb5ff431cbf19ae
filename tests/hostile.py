"""Helpers for the hostile-input tests: run the CLI under a real cgroup memory limit."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass

from conftest import REPO, constrained_tool


@dataclass
class Constrained:
    rc: int
    stdout: str
    lines: list[str]  # edgekit's stderr lines (constrained's own last line removed)
    peak_mb: int
    oom_killed: bool


def run_constrained(*args: str, mem: str = "300M", timeout: float = 600, cwd=None, env=None,
                    wrapper: list[str] = ()) -> Constrained:
    """``[WRAPPER...] python -m edgekit ARGS`` under ``constrained --mem MEM`` (this worktree's edgekit)."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join([str(REPO), full_env.get("PYTHONPATH", "")])
    r = subprocess.run([str(constrained_tool()), "--mem", mem, "--", *wrapper, sys.executable, "-m", "edgekit", *args],
                       capture_output=True, text=True, cwd=cwd or REPO, env=full_env, timeout=timeout)
    lines = r.stderr.splitlines()
    summary = next((line for line in reversed(lines) if line.startswith("constrained: rc=")), "")
    match = re.search(r"peak_rss_mb=(\d+) oom_killed=(\w+)", summary)
    assert match, r.stderr
    kept = [line for line in lines if not line.startswith("constrained: ") and "cgroup.procs" not in line]
    return Constrained(r.returncode, r.stdout, kept, int(match.group(1)), match.group(2) == "yes")
