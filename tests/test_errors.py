"""One error tree, one exit-code map: every code each entry point can return, reached for real.

Covered elsewhere, not repeated here: 6 under a real cgroup memory limit
(test_plan.py::test_below_the_smallest_variant_refuses_before_loading, and the latency refusal
test_plan.py::test_latency_target_can_exclude_everything); 7 against a closed port
(test_mqtt.py::test_required_unreachable_broker_is_one_clear_error).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import edgekit.errors as errors
from conftest import REPO, run_cli
from edgekit.errors import EXIT_CODES, EdgekitError, exit_code_for

EDGEKIT = ("-m", "edgekit")
CONVERT = ("-m", "converters.cli")
COCO_EVAL = ("-m", "edgekit.coco_eval")


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def _readme_exit_codes() -> dict[int, str]:
    text = (REPO / "README.md").read_text()
    table = text[text.index("| code | meaning |"):].split("\n\n", 1)[0]
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^\| (\d+) \| (.+?) \|$", table, re.M)}


# --- the map itself --------------------------------------------------------------------------------------------

def test_every_error_class_has_a_distinct_documented_code():
    import edgekit.mqtt  # noqa: F401  (modules that used to define their own errors: nothing new may hide there)
    import edgekit.plan  # noqa: F401

    owners: dict[int, type] = {}
    for cls in [EdgekitError, *_all_subclasses(EdgekitError)]:
        assert cls.__module__ == "edgekit.errors", f"{cls.__name__} must live in edgekit/errors.py"
        if "exit_code" in vars(cls):  # a subclass without its own code shares its parent's meaning (e.g. LayoutError)
            assert cls.exit_code not in owners, f"{cls.__name__} and {owners[cls.exit_code].__name__} share a code"
            owners[cls.exit_code] = cls
        assert cls.exit_code in EXIT_CODES, f"{cls.__name__}.exit_code {cls.exit_code} is not in EXIT_CODES"
    readme = _readme_exit_codes()
    assert set(readme) == set(EXIT_CODES), "the README's exit-code table and errors.EXIT_CODES differ"
    for code, meaning in EXIT_CODES.items():
        assert readme[code].startswith(meaning), (code, readme[code], meaning)


def test_old_import_locations_still_work():
    from edgekit.mqtt import MqttError
    from edgekit.plan import PlanError

    assert PlanError is errors.PlanError and PlanError.exit_code == 6
    assert MqttError is errors.MqttError and MqttError.exit_code == 7


def test_exit_code_for_everything_else():
    assert exit_code_for(errors.LayoutError("x")) == 4
    assert exit_code_for(SystemExit(2)) == 2 and exit_code_for(SystemExit(None)) == 0
    assert exit_code_for(SystemExit("message")) == 2
    assert exit_code_for(KeyboardInterrupt()) == 130
    assert exit_code_for(BrokenPipeError()) == 0
    assert exit_code_for(ZeroDivisionError()) == 70


# --- edgekit ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def no_runtime(tmp_path_factory):
    """A PYTHONPATH entry under which no TFLite runtime imports (as on a machine where none is installed)."""
    base = tmp_path_factory.mktemp("no-runtime")
    for pkg in ("ai_edge_litert", "tflite_runtime", "tensorflow"):
        (base / pkg).mkdir()
        (base / pkg / "__init__.py").write_text(f"raise ImportError('No module named {pkg!r} (hidden by the test)')\n")
    return f"{base}{os.pathsep}{REPO}"


def test_edgekit_codes_0_2_4_5(ssd, ssd_labels, images, tmp_path):
    ok = run_cli(*EDGEKIT, "detect", str(ssd), str(images / "table.jpg"), "--labels", str(ssd_labels), "--no-plan")
    assert ok.returncode == 0, ok.stderr
    usage = run_cli(*EDGEKIT, "detect", str(ssd), str(images / "table.jpg"), "--threshold", "2")
    assert usage.returncode == 2 and "between 0 and 1" in usage.stderr
    config = run_cli(*EDGEKIT, "detect", str(ssd.parent), str(images / "table.jpg"), "--no-plan")
    assert config.returncode == 2 and config.stderr.startswith("edgekit: error:")
    not_tflite = tmp_path / "model.tflite"
    not_tflite.write_bytes(b"not a flatbuffer" * 10)
    model = run_cli(*EDGEKIT, "detect", str(not_tflite), str(images / "table.jpg"), "--no-plan")
    assert model.returncode == 4 and model.stderr.startswith("edgekit: error:")
    some = run_cli(*EDGEKIT, "detect", str(ssd), str(images / "table.jpg"), str(tmp_path / "missing.jpg"), "--no-plan")
    assert some.returncode == 5 and len(some.stdout.splitlines()) == 1 and "missing.jpg" in some.stderr
    for r in (usage, config, model, some):
        assert "Traceback" not in r.stderr


def test_edgekit_codes_1_and_3_without_a_runtime(no_runtime, ssd, images):
    r = run_cli(*EDGEKIT, "detect", str(ssd), str(images / "table.jpg"), env={"PYTHONPATH": no_runtime})
    assert r.returncode == 3 and "pip install ai-edge-litert" in r.stderr and "Traceback" not in r.stderr
    r = run_cli(*EDGEKIT, "doctor", "--json", env={"PYTHONPATH": no_runtime})
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and any(f["topic"] == "runtime" and f["level"] == "error" for f in doc["findings"])


def test_edgekit_code_6_refused_by_the_planner(ssd, images, tmp_path):
    r = run_cli(*EDGEKIT, "plan", str(ssd), "--max-latency-ms", "0.001", env={"EDGEKIT_CACHE_DIR": str(tmp_path)})
    assert r.returncode == 6 and "nothing is fast enough" in r.stderr and "Traceback" not in r.stderr


def _children(pid: int) -> list[str]:
    try:
        return open(f"/proc/{pid}/task/{pid}/children").read().split()
    except OSError:
        return []


def test_edgekit_code_130_on_ctrl_c():
    """Ctrl-C while `doctor` waits for its child checks: exit 130, no traceback. (`detect` instead stops
    gracefully on the first SIGINT: that is the runner's contract, tested with it.)"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _attempt in range(5):  # doctor may finish before the signal lands on a busy machine: try again
        # a shell that runs the suite in the background (`… &`) starts it with SIGINT ignored, and Python
        # then never installs its Ctrl-C handler: give the child the default disposition a terminal has
        proc = subprocess.Popen([sys.executable, *EDGEKIT, "doctor"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 60
            while not _children(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)  # a child check runs: startup is over and Python's SIGINT handler is installed
            signalled = proc.poll() is None
            if signalled:
                proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
        if signalled and proc.returncode != 0:
            break
    assert signalled and proc.returncode == 130 and "Traceback" not in err, err


def test_edgekit_closed_stdout_is_not_an_error(ssd, shared):
    """`edgekit detect ... | head -1`: the reader had enough; exit 0, nothing on stderr about it."""
    folder = shared / "coco128_val2017" / "images"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, *EDGEKIT, "detect", str(ssd), str(folder), "--no-plan"], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("{")
        proc.stdout.close()
        err = proc.stderr.read()
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_edgekit_code_70_internal_error_in_process(ssd, monkeypatch, capsys):
    """A bug (here: a describe_model that divides by zero) is one line and 70; EDGEKIT_DEBUG shows the traceback."""
    import edgekit.cli
    import edgekit.describe

    def broken(*args, **kwargs):
        return 1 / 0

    monkeypatch.setattr(edgekit.describe, "describe_model", broken)
    monkeypatch.delenv("EDGEKIT_DEBUG", raising=False)
    assert edgekit.cli.main(["info", str(ssd)]) == 70
    assert "edgekit: internal error: ZeroDivisionError" in capsys.readouterr().err
    monkeypatch.setenv("EDGEKIT_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        edgekit.cli.main(["info", str(ssd)])


# --- edgekit-convert -------------------------------------------------------------------------------------------

def test_convert_codes_0_2_4(ssd, ssd_labels, tmp_path):
    ok = run_cli(*CONVERT, str(ssd), "-o", str(tmp_path / "meta.tflite"), "--labels", str(ssd_labels),
                 "--layout", "ssd", "--no-eval")
    assert ok.returncode == 0, ok.stderr
    usage = run_cli(*CONVERT, str(ssd), "--max-calibration", "many")
    assert usage.returncode == 2 and "usage:" in usage.stderr
    config = run_cli(*CONVERT, str(ssd), "--mode", "int8", "-o", str(tmp_path / "x.tflite"))
    assert config.returncode == 2 and config.stderr.startswith("edgekit-convert: error:")
    missing = run_cli(*CONVERT, str(tmp_path / "nothing.keras"), "-o", str(tmp_path / "y.tflite"))
    assert missing.returncode == 4 and missing.stderr.startswith("edgekit-convert: error:")
    for r in (usage, config, missing):
        assert "Traceback" not in r.stderr


def test_convert_code_70_internal_error_in_process(ssd, tmp_path, monkeypatch, capsys):
    import converters.cli

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    # converters/__init__ re-exports the function under the submodule's name: patch the module itself
    monkeypatch.setattr(sys.modules["converters.convert"], "convert", broken)
    monkeypatch.delenv("EDGEKIT_DEBUG", raising=False)
    assert converters.cli.main([str(ssd), "-o", str(tmp_path / "z.tflite"), "--no-eval"]) == 70
    assert "edgekit-convert: internal error: KeyError" in capsys.readouterr().err


# --- python -m edgekit.coco_eval -------------------------------------------------------------------------------

def test_coco_eval_codes_0_2_4(ssd, ssd_labels, shared, tmp_path):
    coco = shared / "coco128_val2017"
    doc = json.loads((coco / "instances_val2017_first128_DERIVED_from_yolo.json").read_text())
    keep = {img["id"] for img in doc["images"][:2]}
    doc["images"] = [img for img in doc["images"] if img["id"] in keep]
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] in keep]
    small = tmp_path / "two.json"
    small.write_text(json.dumps(doc))
    ok = run_cli(*COCO_EVAL, str(ssd), str(coco / "images"), str(small), "--labels", str(ssd_labels))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["images"] == 2
    usage = run_cli(*COCO_EVAL, str(ssd))
    assert usage.returncode == 2 and "usage:" in usage.stderr
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\0" * 64)
    model = run_cli(*COCO_EVAL, str(bad), str(coco / "images"), str(small))
    assert model.returncode == 4 and model.stderr.startswith("coco_eval: error:") and "Traceback" not in model.stderr


def test_coco_eval_code_70_internal_error_in_process(ssd, shared, monkeypatch, capsys):
    import edgekit.coco_eval

    def broken(*args, **kwargs):
        raise IndexError("a bug")

    monkeypatch.setattr(edgekit.coco_eval, "evaluate_coco", broken)
    monkeypatch.delenv("EDGEKIT_DEBUG", raising=False)
    assert edgekit.coco_eval.main([str(ssd), "images", "ann.json"]) == 70
    assert "coco_eval: internal error: IndexError" in capsys.readouterr().err
