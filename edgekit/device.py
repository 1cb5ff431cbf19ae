"""Probe the device this process runs on: CPU, instruction sets, memory, cgroup limits, thermal.

Pure stdlib; reads /proc and /sys under an injectable ``root`` (tests point it at recorded trees),
and the few things that are system calls (``uname``, CPU affinity, pointer size) are parameters.

Usable cores = CPU affinity ∩ cgroup CPU quota; memory budget = min(MemAvailable, cgroup limit −
cgroup usage). Cgroups are found the way the kernel exposes them to containers and systemd units:
``/proc/self/cgroup`` gives this process's path per hierarchy, ``/proc/self/mountinfo`` where each
hierarchy is mounted (and at which root, for cgroup namespaces); limits on ancestors apply too.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import struct
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["CpuInfo", "MemoryInfo", "ThermalInfo", "DeviceInfo", "probe", "usable_cores", "cgroup_cpu_limit",
           "current_rss"]

_NO_LIMIT = 1 << 60  # cgroup v1 writes ~2^63 for "unlimited"

# cpuinfo flag/feature → edgekit ISA name
_X86_FLAGS = {"sse4_1": "sse4_1", "avx": "avx", "avx2": "avx2", "fma": "fma", "f16c": "f16c", "avx512f": "avx512f",
              "avx512_vnni": "avx512_vnni", "avx_vnni": "avx_vnni", "avx512_bf16": "avx512_bf16"}
_ARM_FEATURES = {"asimd": "asimd", "neon": "neon", "asimddp": "dotprod", "fphp": "fp16", "asimdhp": "fp16",
                 "i8mm": "i8mm", "sve": "sve", "sve2": "sve2", "bf16": "bf16", "vfpv4": "vfpv4"}
# auxv AT_HWCAP / AT_HWCAP2 bits (arch/arm64/include/uapi/asm/hwcap.h, arch/arm/include/uapi/asm/hwcap.h)
_HWCAP_ARM64 = {1: "asimd", 9: "fp16", 10: "fp16", 20: "dotprod", 22: "sve"}
_HWCAP2_ARM64 = {1: "sve2", 13: "i8mm", 14: "bf16"}
_HWCAP_ARM32 = {12: "neon", 16: "vfpv4"}
_AT_HWCAP, _AT_HWCAP2 = 16, 26

# ARM Ltd. (implementer 0x41) core part numbers: 64-bit Pi OS's cpuinfo has no "model name"
_ARM_PARTS = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
              "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
              "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710"}

# vcgencmd get_throttled bits (Raspberry Pi firmware)
_THROTTLE_BITS = {0: "under-voltage", 1: "arm-frequency-capped", 2: "throttled", 3: "soft-temperature-limit",
                  16: "under-voltage-occurred", 17: "arm-frequency-capped-occurred", 18: "throttling-occurred",
                  19: "soft-temperature-limit-occurred"}


@dataclass(frozen=True)
class CpuInfo:
    """CPU as this process sees it. ``arch`` is the userland architecture (``armv7l`` for a 32-bit
    Pi OS on a 64-bit kernel, whose ``uname -m`` says ``aarch64``)."""

    kernel_arch: str
    userland_bits: int
    arch: str
    model_name: str | None
    board: str | None
    online_cores: int
    affinity_cores: int
    cgroup_cpu_quota: float | None
    usable_cores: int
    clusters: tuple[tuple[int, int], ...]  # (max kHz, cores) per cluster, fastest first; () if uniform/unknown
    isa: frozenset[str]


@dataclass(frozen=True)
class MemoryInfo:
    """Bytes. ``budget`` is what this process may still allocate before something kills it."""

    total: int
    available: int
    swap_total: int
    swap_free: int
    cgroup_limit: int | None
    cgroup_usage: int | None
    budget: int


@dataclass(frozen=True)
class ThermalInfo:
    temperature_c: float | None
    throttled: int | None  # raw vcgencmd get_throttled value
    flags: tuple[str, ...]


@dataclass(frozen=True)
class DeviceInfo:
    cpu: CpuInfo
    memory: MemoryInfo
    thermal: ThermalInfo
    cgroup_version: str | None  # "v1", "v2", "hybrid" or None

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["cpu"]["isa"] = sorted(self.cpu.isa)
        doc["cpu"]["clusters"] = [list(c) for c in self.cpu.clusters]
        doc["thermal"]["flags"] = list(self.thermal.flags)
        return doc


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _p(root: Path, absolute: str) -> Path:
    return root / absolute.lstrip("/")


# -- cgroups --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Hierarchy:
    version: str  # "v1" or "v2"
    controllers: frozenset[str]
    directory: Path  # this process's cgroup directory
    top: Path  # the mount point: limits are read from directory up to here


def _hierarchies(root: Path) -> list[_Hierarchy]:
    mine: dict[str, str] = {}  # "memory,foo" or "" (v2) → path
    for line in (_read(_p(root, "/proc/self/cgroup")) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            mine[parts[1]] = parts[2]
    found = []
    for line in (_read(_p(root, "/proc/self/mountinfo")) or "").splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        mount_root, mount_point = fields[3], fields[4].replace("\\040", " ")
        if tail[0] == "cgroup2":
            key, version, controllers = "", "v2", frozenset()
        else:
            controllers = frozenset(o for o in tail[2].split(",") if o not in ("rw", "ro") and "=" not in o)
            key = next((k for k in mine if k and set(k.split(",")) == controllers), None)
            version = "v1"
        if key is None or key not in mine:
            continue
        path = mine[key]
        if mount_root == "/":
            rel = path
        elif path.startswith(mount_root):
            rel = path[len(mount_root):]  # the mount shows a subtree that contains our cgroup
        else:
            rel = "/"  # cgroup namespace: the mount's root is our own cgroup
        top = _p(root, mount_point)
        found.append(_Hierarchy(version, controllers, _p(top, rel), top))
    return found


def _walk_up(h: _Hierarchy):
    d = h.directory
    while True:
        yield d
        if d == h.top or h.top not in d.parents:
            return
        d = d.parent


def _int(text: str | None) -> int | None:
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def _cpu_quota(hierarchies: list[_Hierarchy]) -> float | None:
    limits = []
    for h in hierarchies:
        if h.version == "v1" and "cpu" not in h.controllers:
            continue
        for d in _walk_up(h):
            if h.version == "v2":
                quota, _, period = (_read(d / "cpu.max") or "max").strip().partition(" ")
                if quota != "max" and period:
                    limits.append(int(quota) / int(period))
            else:
                quota, period = _int(_read(d / "cpu.cfs_quota_us")), _int(_read(d / "cpu.cfs_period_us"))
                if quota and quota > 0 and period:
                    limits.append(quota / period)
    return min(limits) if limits else None


def _memory_limits(hierarchies: list[_Hierarchy]) -> tuple[int | None, int | None]:
    limit, usage = None, None
    for h in hierarchies:
        if h.version == "v1" and "memory" not in h.controllers:
            continue
        names = ("memory.max", "memory.current") if h.version == "v2" else ("memory.limit_in_bytes", "memory.usage_in_bytes")
        own_usage = _int(_read(h.directory / names[1]))
        for d in _walk_up(h):
            value = _int(_read(d / names[0]))  # "max" parses as None
            if value is not None and value < _NO_LIMIT and (limit is None or value < limit):
                limit, usage = value, own_usage
    return limit, usage


def cgroup_cpu_limit(root: Path = Path("/")) -> float | None:
    """The CPU quota of this process's cgroups in cores (smallest along the path), or None."""
    return _cpu_quota(_hierarchies(root))


def usable_cores(root: Path = Path("/"), affinity: int | None = None) -> int:
    """Cores this process can really use: CPU affinity intersected with the cgroup quota (≥ 1)."""
    cores = affinity if affinity is not None else _affinity()
    quota = cgroup_cpu_limit(root)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# -- CPU ------------------------------------------------------------------------------------
def _cpuinfo_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    return fields


def _isa(fields: dict[str, str], auxv: bytes | None, arch: str, bits: int) -> frozenset[str]:
    if "flags" in fields:
        return frozenset(name for flag, name in _X86_FLAGS.items() if flag in fields["flags"].split())
    if "Features" in fields:
        found = {name for feat, name in _ARM_FEATURES.items() if feat in fields["Features"].split()}
        if "asimd" in found:
            found.add("neon")  # AArch64 Advanced SIMD is NEON
        return frozenset(found)
    if auxv and arch.startswith(("aarch64", "arm")):
        return _isa_from_auxv(auxv, arch, bits)
    return frozenset()


def _isa_from_auxv(auxv: bytes, arch: str, bits: int) -> frozenset[str]:
    word = "Q" if bits == 64 else "I"
    size = struct.calcsize(word)
    values: dict[int, int] = {}
    for i in range(0, len(auxv) - 2 * size + 1, 2 * size):
        key, value = struct.unpack_from(f"<{word}{word}", auxv, i)
        if key == 0:
            break
        values[key] = value
    found = set()
    tables = ((_HWCAP_ARM64, _HWCAP2_ARM64) if arch == "aarch64" else (_HWCAP_ARM32, {}))
    for at, table in zip((_AT_HWCAP, _AT_HWCAP2), tables):
        for bit, name in table.items():
            if values.get(at, 0) >> bit & 1:
                found.add(name)
    if "asimd" in found:
        found.add("neon")
    return frozenset(found)


def _online(root: Path, fields_text: str) -> int:
    text = (_read(_p(root, "/sys/devices/system/cpu/online")) or "").strip()
    if text:
        count = 0
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            count += int(hi or lo) - int(lo) + 1
        return count
    return max(1, sum(1 for line in fields_text.splitlines() if line.startswith("processor")))


def _clusters(root: Path) -> tuple[tuple[int, int], ...]:
    freqs: dict[int, int] = {}
    base = _p(root, "/sys/devices/system/cpu")
    for f in sorted(base.glob("cpu[0-9]*/cpufreq/cpuinfo_max_freq")):
        khz = _int(_read(f))
        if khz:
            freqs[khz] = freqs.get(khz, 0) + 1
    return tuple(sorted(freqs.items(), reverse=True)) if len(freqs) > 1 else ()


def _userland_arch(kernel_arch: str, bits: int) -> str:
    if bits == 32 and kernel_arch in ("aarch64", "arm64", "armv8l"):
        return "armv7l"  # 32-bit Pi OS userland on a 64-bit kernel
    if bits == 32 and kernel_arch in ("x86_64", "amd64"):
        return "i686"
    return kernel_arch


def _board(root: Path, fields: dict[str, str]) -> str | None:
    for path in ("/sys/firmware/devicetree/base/model", "/proc/device-tree/model"):
        text = _read(_p(root, path))
        if text and text.strip("\x00\n "):
            return text.strip("\x00\n ")
    return fields.get("Model")


def _cpu(root: Path, hierarchies: list[_Hierarchy], machine: str, bits: int, affinity: int) -> CpuInfo:
    text = _read(_p(root, "/proc/cpuinfo")) or ""
    fields = _cpuinfo_fields(text)
    arch = _userland_arch(machine, bits)
    auxv = None
    try:
        auxv = _p(root, "/proc/self/auxv").read_bytes()
    except OSError:
        pass
    quota = _cpu_quota(hierarchies)
    online = _online(root, text)
    cores = min(affinity, online)
    usable = max(1, min(cores, math.ceil(quota)) if quota is not None else cores)
    name = fields.get("model name") or fields.get("Processor")
    if name is None and fields.get("CPU implementer") == "0x41":
        name = _ARM_PARTS.get(fields.get("CPU part", ""), f"ARM core part {fields.get('CPU part')}")
    return CpuInfo(machine, bits, arch, name, _board(root, fields), online, cores, quota, usable, _clusters(root),
                   _isa(fields, auxv, arch, bits))


# -- memory and thermal ---------------------------------------------------------------------
def _memory(root: Path, hierarchies: list[_Hierarchy]) -> MemoryInfo:
    info: dict[str, int] = {}
    for line in (_read(_p(root, "/proc/meminfo")) or "").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            info[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    total = info.get("MemTotal", 0)
    available = info.get("MemAvailable", info.get("MemFree", 0))
    limit, usage = _memory_limits(hierarchies)
    budget = available
    if limit is not None:
        budget = min(budget, max(0, limit - (usage or 0)))
    return MemoryInfo(total, available, info.get("SwapTotal", 0), info.get("SwapFree", 0), limit, usage, budget)


def _thermal(root: Path, throttled: int | None) -> ThermalInfo:
    temps = []
    for zone in sorted(_p(root, "/sys/class/thermal").glob("thermal_zone*/temp")):
        value = _int(_read(zone))
        if value is not None:
            temps.append(value / 1000.0)
    flags = tuple(name for bit, name in _THROTTLE_BITS.items() if throttled is not None and throttled >> bit & 1)
    return ThermalInfo(max(temps) if temps else None, throttled, flags)


def read_throttled() -> int | None:
    """``vcgencmd get_throttled`` (Raspberry Pi firmware) as an int, or None where unavailable."""
    exe = shutil.which("vcgencmd")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "get_throttled"], capture_output=True, text=True, timeout=5).stdout
        return int(out.strip().split("=", 1)[1], 16)
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
        return None


def current_rss() -> int:
    """This process's resident set size in bytes (VmRSS), 0 where /proc is unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def probe(root: Path | str = Path("/"), *, machine: str | None = None, userland_bits: int | None = None,
          affinity: int | None = None, throttled: int | None = None) -> DeviceInfo:
    """Probe the device. With the defaults it reads this machine; tests pass a recorded ``root``
    tree and the values that come from system calls."""
    root = Path(root)
    real = root == Path("/")
    hierarchies = _hierarchies(root)
    cpu = _cpu(root, hierarchies, machine or platform.machine(), userland_bits or struct.calcsize("P") * 8,
               affinity if affinity is not None else _affinity())
    if throttled is None and real:
        throttled = read_throttled()
    versions = {h.version for h in hierarchies}
    version = "hybrid" if versions == {"v1", "v2"} else (versions.pop() if versions else None)
    return DeviceInfo(cpu, _memory(root, hierarchies), _thermal(root, throttled), version)


def memory_budget(root: Path | str = Path("/")) -> int:
    """Bytes this process may still allocate now (:attr:`MemoryInfo.budget`), without probing the CPU:
    cheap enough to ask before each large allocation (a big image's decode)."""
    root = Path(root)
    return _memory(root, _hierarchies(root)).budget
