"""Usable cores = affinity ∩ cgroup CPU quota, on recorded cgroup trees."""

import os

from edgekit.device import cgroup_cpu_limit, usable_cores


def _tree(tmp_path, cgroup_line, files):
    proc = tmp_path / "cgroup"
    proc.write_text(cgroup_line + "\n")
    root = tmp_path / "sys"
    for rel, text in files.items():
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return proc, root


def test_cgroup_v2_quota(tmp_path):
    proc, root = _tree(tmp_path, "0::/system.slice/edgekit.service",
                       {"system.slice/edgekit.service/cpu.max": "150000 100000\n", "cpu.max": "max 100000\n"})
    assert cgroup_cpu_limit(proc, root) == 1.5
    assert usable_cores(proc, root) == min(2, len(os.sched_getaffinity(0)))


def test_cgroup_v2_parent_limit_applies(tmp_path):
    proc, root = _tree(tmp_path, "0::/a/b", {"a/cpu.max": "50000 100000", "a/b/cpu.max": "max 100000"})
    assert cgroup_cpu_limit(proc, root) == 0.5
    assert usable_cores(proc, root) == 1


def test_cgroup_v1_quota(tmp_path):
    proc, root = _tree(tmp_path, "4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc",
                       {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "100000", "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000"})
    assert cgroup_cpu_limit(proc, root) == 1.0


def test_no_limit(tmp_path):
    proc, root = _tree(tmp_path, "0::/", {"cpu.max": "max 100000"})
    assert cgroup_cpu_limit(proc, root) is None
    assert usable_cores(proc, root) == len(os.sched_getaffinity(0))
