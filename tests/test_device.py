"""The device probe on recorded /proc + /sys trees (tests/fixtures/devices/*), and on this machine
under a real cgroup limit."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, constrained_tool
from edgekit.device import probe

FIXTURES = Path(__file__).parent / "fixtures" / "devices"
NAMES = sorted(p.name for p in FIXTURES.iterdir() if (p / "probe.json").exists())


def test_fixture_set_covers_the_devices_we_support():
    assert {"pi3", "pi4-4gb", "pi5-systemd-unit", "pizero2w", "pi4-32bit-userland", "x86-avx512", "x86-no-avx2",
            "container-cgroup-v2", "container-cgroup-v1"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_probe_recorded_device(name):
    spec = json.loads((FIXTURES / name / "probe.json").read_text())
    info = probe(FIXTURES / name, **spec["inject"])
    flat = {**info.to_dict()["cpu"], **info.to_dict()["memory"], **info.to_dict()["thermal"],
            "cgroup_version": info.cgroup_version}
    for key, want in spec["expected"].items():
        got = flat[key]
        if key == "isa":
            got, want = sorted(got), sorted(want)
        assert got == want, f"{name}: {key} = {got!r}, expected {want!r}"


def test_auxv_fallback_when_cpuinfo_has_no_features(tmp_path):
    import struct
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/cpuinfo").write_text("processor\t: 0\n\n")
    hwcap = (1 << 1) | (1 << 20)  # ASIMD, ASIMDDP
    hwcap2 = 1 << 13  # I8MM
    (tmp_path / "proc/self/auxv").write_bytes(struct.pack("<8Q", 16, hwcap, 26, hwcap2, 6, 4096, 0, 0))
    info = probe(tmp_path, machine="aarch64", userland_bits=64, affinity=1)
    assert info.cpu.isa == {"asimd", "neon", "dotprod", "i8mm"}


def test_this_machine_under_a_real_cgroup_limit():
    code = ("import json; from edgekit.device import probe; d = probe(); "
            "print(json.dumps([d.cpu.usable_cores, d.memory.cgroup_limit, d.memory.budget]))")
    r = subprocess.run([str(constrained_tool()), "--mem", "200M", "--cpus", "1", "--",
                        sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    cores, limit, budget = json.loads(r.stdout.strip().splitlines()[-1])
    assert cores == 1 and limit == 200 * 1024 * 1024 and 0 < budget < limit
