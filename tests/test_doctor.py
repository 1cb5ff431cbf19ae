"""`edgekit doctor` and `info --safe`: real child processes, a real crash, and the diagnosis rules
on recorded devices."""

import json
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from edgekit.device import probe
from edgekit.doctor import DoctorReport, RuntimeCheck, check_runtime, diagnose

FIXTURES = Path(__file__).parent / "fixtures" / "devices"


@pytest.fixture
def crashing_runtime(tmp_path):
    """An `ai_edge_litert` that dies with SIGILL on import, as a wheel built for a newer CPU does."""
    pkg = tmp_path / "ai_edge_litert"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "interpreter.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGILL)\n")
    return tmp_path


@pytest.fixture(scope="module")
def doctor_here():
    """One ``edgekit doctor --json`` and one ``edgekit doctor`` on this machine, for the tests that
    only read what they print (each run probes every runtime in a child process: seconds each)."""
    return run_cli("-m", "edgekit", "doctor", "--json"), run_cli("-m", "edgekit", "doctor")


def test_doctor_here(doctor_here):
    r, text_run = doctor_here
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    runtimes = {x["distribution"]: x["status"] for x in doc["runtimes"]}
    assert runtimes["ai-edge-litert"] == "ok" and runtimes["tensorflow"] == "ok"
    assert runtimes["tflite-runtime"] == "missing"
    assert doc["ok"] is True and doc["packages"]["numpy"] and doc["glibc"]
    assert doc["device"]["cpu"]["usable_cores"] == doc["default_threads"]
    text = text_run.stdout
    assert "runtime: edgekit will use ai-edge-litert" in text and "budget" in text


def test_a_crashing_runtime_becomes_a_diagnosis(crashing_runtime, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(crashing_runtime))
    check = check_runtime("ai_edge_litert.interpreter", "Interpreter", "ai-edge-litert")
    assert check.status == "crashed" and "SIGILL" in check.detail
    r = run_cli("-m", "edgekit", "doctor", env={"PYTHONPATH": f"{crashing_runtime}:{REPO}"})
    assert r.returncode == 0  # tensorflow.lite still works here, so this is a warning
    assert "ai-edge-litert crashed the process (the process died with SIGILL)" in r.stdout


def test_info_safe_survives_a_runtime_crash(crashing_runtime, ssd):
    r = run_cli("-m", "edgekit", "info", "--safe", str(ssd), env={"PYTHONPATH": f"{crashing_runtime}:{REPO}"})
    assert r.returncode == 4 and "crashed with SIGILL" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("-m", "edgekit", "info", "--safe", str(ssd), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["layout"]["name"] == "ssd"


def _report(fixture, runtimes=("ai-edge-litert",), numpy="2.1.0", glibc="2.36"):
    spec = json.loads((FIXTURES / fixture / "probe.json").read_text())
    device = probe(FIXTURES / fixture, **spec["inject"])
    checks = [RuntimeCheck(d, "ok" if d in runtimes else "missing", "x")
              for d in ("ai-edge-litert", "tflite-runtime", "tensorflow")]
    return DoctorReport("CPython", "Linux", None, glibc, {"numpy": numpy}, checks, device, device.cpu.usable_cores)


def _topics(findings, level):
    return {f.topic for f in findings if f.level == level}


def test_rules_32bit_userland_on_new_python():
    findings = diagnose(_report("pi4-32bit-userland", runtimes=()), python_version=(3, 13))
    assert {"runtime", "python"} <= _topics(findings, "error")
    assert "userland" in _topics(findings, "warn")
    assert any("64-bit OS" in (f.fix or "") for f in findings)


def test_rules_tflite_runtime_with_numpy2():
    report = _report("pi4-32bit-userland", runtimes=())
    report.runtimes[1] = RuntimeCheck("tflite-runtime", "failed", "SystemError")
    findings = diagnose(report, python_version=(3, 11))
    assert any(f.topic == "numpy" and f.level == "error" and 'numpy<2' in f.fix for f in findings)


def test_rules_x86_without_avx_and_without_avx2():
    assert any(f.topic == "cpu" and "no AVX:" in f.message for f in diagnose(_report("x86-atom-no-avx")))
    assert any(f.topic == "cpu" and "no AVX2" in f.message for f in diagnose(_report("x86-no-avx2")))
    assert "cpu" not in _topics(diagnose(_report("x86-avx512")), "warn")


def test_rules_low_memory_and_throttling():
    low = diagnose(_report("container-cgroup-v1"))  # 208 MiB budget in a 256 MiB container
    assert "memory" not in _topics(low, "warn")
    tight = _report("container-cgroup-v1")
    from dataclasses import replace
    tight.device = replace(tight.device, memory=replace(tight.device.memory, budget=150 * 2**20))
    assert any(f.topic == "memory" and "cgroup limit 256 MiB" in f.message for f in diagnose(tight))
    pi3 = diagnose(_report("pi3"))
    assert {"power", "thermal"} <= _topics(pi3, "warn")


def test_rules_old_glibc():
    findings = diagnose(_report("x86-avx512", runtimes=(), glibc="2.24"))
    assert any(f.topic == "glibc" and "2.27" in f.message for f in findings)


def test_doctor_reports_video_and_mqtt_support(doctor_here):
    json_run, text_run = doctor_here
    doc = json.loads(json_run.stdout)
    assert doc["video"]["status"] == "ok" and "h264" in doc["video"]["decoders"]
    text = text_run.stdout
    assert any(line.startswith("ok    video: PyAV") and "H.264" in line for line in text.splitlines()), text
    assert any(line.startswith("ok    mqtt: paho-mqtt 2.") for line in text.splitlines()), text


def test_doctor_without_pyav_says_to_install_the_video_extra(tmp_path):
    """PyAV really absent in the children: a sitecustomize blocks ``import av``."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoAV:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'av':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, _NoAV())\n")
    r = run_cli("-m", "edgekit", "doctor", env={"PYTHONPATH": str(tmp_path)})
    assert r.returncode == 0, r.stderr  # a warning: images and HTTP cameras still work
    lines = r.stdout.splitlines()
    warn = next(i for i, line in enumerate(lines) if line.startswith("WARN  video: PyAV is not installed"))
    assert "pip install 'edgekit[video]'" in lines[warn + 1]


def test_rules_mqtt_library():
    report = _report("x86-avx512")
    report.packages["paho-mqtt"] = "1.6.1"
    assert any(f.topic == "mqtt" and f.level == "warn" and "2.x" in f.message for f in diagnose(report))
    report.packages["paho-mqtt"] = None
    assert any(f.topic == "mqtt" and "paho-mqtt>=2,<3" in (f.fix or "") for f in diagnose(report))
