"""What this process may use of the machine it runs on (stdlib only, every path injectable).

Only the part the runtime needs today: usable CPU cores. A core the scheduler will not give
us (affinity) or that the cgroup quota does not pay for is not usable, and asking the runtime
for more threads than that only adds contention.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["usable_cores", "cgroup_cpu_limit"]


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cgroup_dirs(proc_self_cgroup: Path, cgroup_root: Path, controller: str) -> list[Path]:
    """Directories (deepest first) of this process's cgroup for ``controller`` (v1) or v2."""
    text = _read(proc_self_cgroup) or ""
    dirs: list[Path] = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        rel = rel.lstrip("/")
        if controllers == "":  # cgroup v2 unified hierarchy
            base = cgroup_root
        elif controller in controllers.split(","):
            base = cgroup_root / controllers
            if not base.exists():
                base = cgroup_root / controller
        else:
            continue
        path = base / rel
        # A limit set on any ancestor applies too; walk up to the mount root.
        while True:
            dirs.append(path)
            if path == base:
                break
            path = path.parent
    return dirs


def cgroup_cpu_limit(
    proc_self_cgroup: Path = Path("/proc/self/cgroup"),
    cgroup_root: Path = Path("/sys/fs/cgroup"),
) -> float | None:
    """The CPU quota of this process's cgroups in cores (smallest along the path), or None."""
    limits: list[float] = []
    for d in _cgroup_dirs(proc_self_cgroup, cgroup_root, "cpu"):
        v2 = _read(d / "cpu.max")
        if v2:
            quota, _, period = v2.partition(" ")
            if quota != "max" and period:
                limits.append(int(quota) / int(period))
            continue
        quota_us = _read(d / "cpu.cfs_quota_us")
        period_us = _read(d / "cpu.cfs_period_us")
        if quota_us and period_us and int(quota_us) > 0:
            limits.append(int(quota_us) / int(period_us))
    return min(limits) if limits else None


def usable_cores(
    proc_self_cgroup: Path = Path("/proc/self/cgroup"),
    cgroup_root: Path = Path("/sys/fs/cgroup"),
) -> int:
    """Cores this process can really use: CPU affinity intersected with the cgroup quota (≥ 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_limit(proc_self_cgroup, cgroup_root)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)
