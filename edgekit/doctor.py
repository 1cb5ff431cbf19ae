"""``edgekit doctor``: what this machine has, what works, and how to fix what does not.

Crash-proof: every import of a compiled wheel and every interpreter run happens in a child
process, so an illegal instruction (a wheel built for a newer CPU) or a segfault becomes a line
in the report instead of a dead process. :func:`check_model_safely` offers the same for loading
an untrusted model (``edgekit info --safe``).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .device import DeviceInfo, probe
from .errors import ModelError
from .runtime import CANDIDATES

__all__ = ["Finding", "DoctorReport", "VideoCheck", "run_doctor", "check_video", "check_model_safely", "SELFTEST_MODEL"]

SELFTEST_MODEL = Path(__file__).with_name("data") / "selftest.tflite"  # conv 3x3 of ones: centre → 14.5
LOW_MEMORY = 200 * 1024 * 1024

_VERSION_SNIPPET = """
import importlib, json, sys
out = {}
for name in sys.argv[1:]:
    try:
        mod = importlib.import_module(name)
        out[name] = getattr(mod, "__version__", None) or "installed"
    except Exception as exc:
        out[name] = None
print(json.dumps(out))
"""

_RUNTIME_SNIPPET = """
import importlib, json, sys, warnings
warnings.simplefilter("ignore")
module, attr, model = sys.argv[1:4]
obj = importlib.import_module(module)
for part in attr.split("."):
    obj = getattr(obj, part)
import numpy as np
it = obj(model_path=model, num_threads=1)
it.allocate_tensors()
it.set_tensor(it.get_input_details()[0]["index"], np.ones((1, 4, 4, 3), np.float32))
it.invoke()
value = float(it.get_tensor(it.get_output_details()[0]["index"])[0, 1, 1, 0])
print(json.dumps({"value": value}))
"""

_VIDEO_SNIPPET = """
import json
try:
    import av
except ImportError as exc:
    print(json.dumps({"status": "missing", "detail": str(exc)}))
else:
    found = []
    for codec in ("h264", "hevc", "mjpeg"):
        try:
            av.codec.Codec(codec, "r")
            found.append(codec)
        except Exception:
            pass
    avcodec = getattr(av, "library_versions", {}).get("libavcodec")
    print(json.dumps({"status": "ok", "version": getattr(av, "__version__", "installed"), "decoders": found,
                      "libavcodec": ".".join(str(v) for v in avcodec) if avcodec else None}))
"""
_DECODER_NAMES = {"h264": "H.264", "hevc": "H.265", "mjpeg": "MJPEG"}


@dataclass(frozen=True)
class VideoCheck:
    """PyAV (``edgekit[video]``): ``status`` ok, missing, failed or crashed; the decoders it has."""

    status: str
    detail: str
    decoders: tuple[str, ...] = ()


def check_video(python: str = sys.executable) -> VideoCheck:
    """Import PyAV and list its H.264/H.265/MJPEG decoders, in a child process (a wheel built for
    another CPU dies there, not here)."""
    rc, out, err = _run([python, "-c", _VIDEO_SNIPPET])
    if rc == -999:
        return VideoCheck("failed", err)
    if rc < 0:
        return VideoCheck("crashed", f"importing it killed the process with {_signal_name(rc)}")
    try:
        doc = json.loads(_last_line(out))
    except ValueError:
        return VideoCheck("failed", _last_line(err) or f"exit code {rc}")
    if doc["status"] != "ok":
        return VideoCheck(doc["status"], doc.get("detail", ""))
    detail = f"PyAV {doc['version']}" + (f" (libavcodec {doc['libavcodec']})" if doc.get("libavcodec") else "")
    return VideoCheck("ok", detail, tuple(doc.get("decoders", ())))


@dataclass(frozen=True)
class Finding:
    """One diagnosis: ``level`` is ok, warn or error; ``fix`` says what to do."""

    level: str
    topic: str
    message: str
    fix: str | None = None


@dataclass(frozen=True)
class RuntimeCheck:
    distribution: str
    status: str  # "ok", "missing", "failed", "crashed", "wrong-result"
    detail: str


@dataclass
class DoctorReport:
    python: str
    platform: str
    os_release: str | None
    glibc: str | None
    packages: dict[str, str | None]
    runtimes: list[RuntimeCheck]
    device: DeviceInfo
    default_threads: int
    findings: list[Finding] = field(default_factory=list)
    video: VideoCheck | None = None  # None: not checked

    @property
    def ok(self) -> bool:
        return not any(f.level == "error" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["device"] = self.device.to_dict()
        doc["ok"] = self.ok
        return doc


def _run(args: list[str], timeout: float = 120) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "EDGEKIT_RUNTIME"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return -999, "", f"timed out after {timeout:.0f} s"
    return r.returncode, r.stdout, r.stderr


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def check_runtime(module: str, attr: str, dist: str, python: str = sys.executable) -> RuntimeCheck:
    """Import ``module`` and run the self-test model with it, in a child process."""
    rc, out, err = _run([python, "-c", _RUNTIME_SNIPPET, module, attr, str(SELFTEST_MODEL)])
    if rc == -999:
        return RuntimeCheck(dist, "failed", err)
    if rc < 0:
        return RuntimeCheck(dist, "crashed", f"the process died with {_signal_name(rc)}")
    if rc != 0:
        last = _last_line(err)
        if "ModuleNotFoundError" in last and module.split(".")[0] in last:
            return RuntimeCheck(dist, "missing", "not installed")
        return RuntimeCheck(dist, "failed", last or f"exit code {rc}")
    try:
        value = json.loads(_last_line(out))["value"]
    except (ValueError, KeyError):
        return RuntimeCheck(dist, "failed", f"unexpected output {_last_line(out)!r}")
    if abs(value - 14.5) > 1e-4:
        return RuntimeCheck(dist, "wrong-result", f"self-test gave {value}, expected 14.5")
    from importlib.metadata import PackageNotFoundError, version

    try:
        detail = version(dist)
    except PackageNotFoundError:
        detail = "installed"
    return RuntimeCheck(dist, "ok", detail)


def _os_release(root: Path) -> str | None:
    try:
        for line in (root / "etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return None


def _version_tuple(text: str | None) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in (text or "").split(".")[:2])
    except ValueError:
        return ()


def diagnose(report: DoctorReport, python_version: tuple[int, int] = sys.version_info[:2]) -> list[Finding]:
    """The known problems and their fixes, from a report's facts (pure: unit-testable)."""
    findings: list[Finding] = []
    cpu, mem = report.device.cpu, report.device.memory
    working = [r for r in report.runtimes if r.status == "ok"]
    by_dist = {r.distribution: r for r in report.runtimes}
    numpy_major = _version_tuple(report.packages.get("numpy"))[:1]
    glibc = _version_tuple(report.glibc)

    if working:
        findings.append(Finding("ok", "runtime", f"edgekit will use {working[0].distribution} {working[0].detail}"))
    else:
        fix = "pip install ai-edge-litert" if cpu.arch in ("x86_64", "aarch64") else \
            "use Python <= 3.11 with: pip install 'tflite-runtime==2.14.*' 'numpy<2'"
        findings.append(Finding("error", "runtime", "no TFLite runtime works in this environment", fix))
    for r in report.runtimes:
        if r.status == "crashed":
            findings.append(Finding("error" if not working else "warn", "runtime",
                                    f"{r.distribution} crashed the process ({r.detail}): its wheel likely uses "
                                    "instructions this CPU lacks", f"pip uninstall {r.distribution}"))
    tfl = by_dist.get("tflite-runtime")
    if tfl and tfl.status != "missing" and numpy_major and numpy_major[0] >= 2:
        findings.append(Finding("error" if not working else "warn", "numpy",
                                f"tflite-runtime is installed with NumPy {report.packages['numpy']}; it was built for "
                                "NumPy 1.x and fails when an interpreter is created",
                                'pip install "numpy<2"  (or use ai-edge-litert on a 64-bit OS)'))
    if cpu.arch in ("x86_64", "aarch64") and glibc and glibc < (2, 27):
        findings.append(Finding("error", "glibc", f"glibc {report.glibc} is older than 2.27, which ai-edge-litert's "
                                "wheels (manylinux_2_27) need", "upgrade the OS (Debian 10+/Ubuntu 18.04+)"))
    if cpu.arch in ("armv7l", "aarch64") and glibc and glibc < (2, 34) and not working:
        findings.append(Finding("warn", "glibc", f"glibc {report.glibc}: tflite-runtime 2.14's ARM wheels need 2.34 "
                                "(Pi OS Bookworm); Bullseye is too old", "upgrade to Pi OS Bookworm"))
    if cpu.arch == "armv7l" and python_version >= (3, 12):
        findings.append(Finding("error", "python", f"32-bit ARM userland with Python {python_version[0]}."
                                f"{python_version[1]}: PyPI has no TFLite runtime for it (ai-edge-litert has no "
                                "armv7l wheels; tflite-runtime stops at Python 3.11)",
                                "use a 64-bit OS (Pi OS 64-bit), or Python 3.11 (Pi OS Bookworm 32-bit)"))
    if cpu.kernel_arch != cpu.arch:
        findings.append(Finding("warn", "userland", f"{cpu.userland_bits}-bit userland ({cpu.arch}) on a "
                                f"{cpu.kernel_arch} kernel: 32-bit wheels only", "install the 64-bit OS for "
                                "ai-edge-litert and NumPy 2"))
    if cpu.arch in ("x86_64", "i686") and "avx" not in cpu.isa:
        findings.append(Finding("warn", "cpu", "this x86 CPU has no AVX: TensorFlow wheels need it, so "
                                "edgekit-convert cannot run here (detection can)", "convert models on another machine"))
    elif cpu.arch == "x86_64" and "avx2" not in cpu.isa:
        findings.append(Finding("warn", "cpu", "no AVX2/FMA: inference runs on slower SSE/AVX kernels"))
    if mem.budget < LOW_MEMORY:
        findings.append(Finding("warn", "memory", f"only {mem.budget / 2**20:.0f} MiB may be allocated "
                                f"(available {mem.available / 2**20:.0f} MiB"
                                + (f", cgroup limit {mem.cgroup_limit / 2**20:.0f} MiB" if mem.cgroup_limit else "")
                                + ")", "use a smaller/int8 model or input size; close other programs"))
    flags = report.device.thermal.flags
    if any(f.startswith("under-voltage") for f in flags):
        findings.append(Finding("warn", "power", f"under-voltage reported ({', '.join(flags)})",
                                "use the official power supply (5.1 V) and a short cable"))
    if any(f.startswith(("throttl", "arm-frequency", "soft-temperature")) for f in flags):
        findings.append(Finding("warn", "thermal", f"CPU throttling reported ({', '.join(flags)}): timings will drop",
                                "add a heatsink or fan"))
    findings.extend(_extras(report))
    return findings


def _extras(report: DoctorReport) -> list[Finding]:
    """What the optional parts need: PyAV for video (``edgekit[video]``) and paho-mqtt 2.x for
    ``--mqtt`` (a dependency of every install, checked because a system package may shadow it)."""
    findings: list[Finding] = []
    video = report.video
    video_fix = "pip install 'edgekit[video]'  (32-bit Pi OS: sudo apt install python3-av in a --system-site-packages venv)"
    if video is not None and video.status == "ok":
        names = [_DECODER_NAMES[d] for d in ("h264", "hevc", "mjpeg") if d in video.decoders]
        lacking = [name for d, name in _DECODER_NAMES.items() if d not in video.decoders]
        if "h264" in video.decoders:
            findings.append(Finding("ok", "video", f"{video.detail} decodes {', '.join(names)}: video files, RTSP "
                                    "and USB cameras work" + (f" (no {', '.join(lacking)} decoder)" if lacking else "")))
        else:
            findings.append(Finding("warn", "video", f"{video.detail} has no H.264 decoder (found: "
                                    f"{', '.join(names) or 'none'}): most cameras and video files will fail",
                                    "pip install --force-reinstall 'av>=10' (its wheels bundle FFmpeg with H.264)"))
    elif video is not None:
        what = {"missing": "is not installed", "crashed": f"crashed the process ({video.detail})"}.get(
            video.status, f"failed to import ({video.detail})")
        findings.append(Finding("warn", "video", f"PyAV {what}: video files, RTSP streams and USB cameras are "
                                "refused (images, folders and HTTP cameras work)", video_fix))
    if "paho-mqtt" in report.packages:
        paho = report.packages["paho-mqtt"]
        major = _version_tuple(paho)[:1]
        if paho is None:
            findings.append(Finding("warn", "mqtt", "paho-mqtt is not importable: --mqtt and edgekit run's [mqtt] "
                                    "cannot publish", "pip install 'paho-mqtt>=2,<3'"))
        elif major and major[0] != 2:
            findings.append(Finding("warn", "mqtt", f"paho-mqtt {paho}: edgekit publishes through the paho-mqtt 2.x "
                                    "API; --mqtt will fail with this one", "pip install 'paho-mqtt>=2,<3'"))
        else:
            findings.append(Finding("ok", "mqtt", f"paho-mqtt {paho}: --mqtt can publish (MQTT 3.1.1/5, TLS)"))
    return findings


def run_doctor(python: str = sys.executable, root: Path = Path("/")) -> DoctorReport:
    """Collect the report (child processes for everything that loads compiled code) and diagnose."""
    rc, out, _ = _run([python, "-c", _VERSION_SNIPPET, "numpy", "PIL", "paho.mqtt"])
    packages = json.loads(_last_line(out)) if rc == 0 else {}
    packages = {"numpy": packages.get("numpy"), "Pillow": packages.get("PIL"), "paho-mqtt": packages.get("paho.mqtt")}
    runtimes = [check_runtime(module, attr, dist, python) for module, dist, attr in CANDIDATES]
    device = probe(root)
    libc, libc_version = platform.libc_ver()
    report = DoctorReport(
        python=f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        platform=platform.platform(), os_release=_os_release(root),
        glibc=libc_version if libc == "glibc" else None, packages=packages, runtimes=runtimes, device=device,
        default_threads=device.cpu.usable_cores, video=check_video(python),
    )
    report.findings = diagnose(report)
    return report


def check_model_safely(model: str, python: str = sys.executable, timeout: float = 120) -> dict[str, Any]:
    """Load ``model`` with the runtime in a child process; returns ``edgekit info --json`` output.

    Raises ModelError if the child crashes (e.g. SIGSEGV on a malicious or corrupt model), hangs,
    or reports an error.
    """
    rc, out, err = _run([python, "-m", "edgekit", "info", model, "--json"], timeout)
    if rc == -999:
        raise ModelError(f"{model}: loading did not finish within {timeout:.0f} s in a child process; not loading it here")
    if rc < 0:
        raise ModelError(f"{model}: the TFLite runtime crashed with {_signal_name(rc)} while loading it (in a child "
                         "process, so nothing else was affected); the file is corrupt or hostile — do not use it")
    if rc != 0:
        raise ModelError(_last_line(err).removeprefix("edgekit: error: ") or f"{model}: checking failed (exit code {rc})")
    return json.loads(out)


def format_report(report: DoctorReport) -> str:
    """The human-readable report (one screen)."""
    cpu, mem, th = report.device.cpu, report.device.memory, report.device.thermal
    mib = 2 ** 20
    lines = [
        f"python     {report.python}",
        f"platform   {report.platform}" + (f" — {report.os_release}" if report.os_release else ""),
        f"glibc      {report.glibc or 'not glibc'}",
        "packages   " + ", ".join(f"{k} {v or 'MISSING'}" for k, v in report.packages.items()),
        f"cpu        {cpu.model_name or '?'}" + (f" on {cpu.board}" if cpu.board else ""),
        f"           {cpu.arch} userland ({cpu.userland_bits}-bit) on {cpu.kernel_arch} kernel; ISA: "
        + (", ".join(sorted(cpu.isa)) or "none detected"),
        f"cores      {cpu.online_cores} online, {cpu.affinity_cores} in affinity, quota "
        + (f"{cpu.cgroup_cpu_quota:g}" if cpu.cgroup_cpu_quota else "none") + f" → {cpu.usable_cores} usable"
        + (f"; clusters {', '.join(f'{n}x{khz // 1000} MHz' for khz, n in cpu.clusters)}" if cpu.clusters else ""),
        f"memory     {mem.total / mib:.0f} MiB total, {mem.available / mib:.0f} MiB available, cgroup limit "
        + (f"{mem.cgroup_limit / mib:.0f} MiB" if mem.cgroup_limit else "none") + f" → budget {mem.budget / mib:.0f} MiB",
        "thermal    " + (f"{th.temperature_c:.1f} °C" if th.temperature_c is not None else "no sensor")
        + (f", throttled {', '.join(th.flags)}" if th.flags else ""),
        "runtimes   " + "; ".join(f"{r.distribution}: {r.status} ({r.detail})" for r in report.runtimes),
        "video      " + (("not checked" if report.video is None else f"{report.video.status} ({report.video.detail})")
                         + (f"; decoders {', '.join(report.video.decoders)}" if report.video and report.video.decoders
                            else "")),
        f"defaults   {report.default_threads} threads",
        "",
    ]
    marks = {"ok": "ok   ", "warn": "WARN ", "error": "ERROR"}
    for f in report.findings:
        lines.append(f"{marks[f.level]} {f.topic}: {f.message}" + (f"\n      fix: {f.fix}" if f.fix else ""))
    return "\n".join(lines)
