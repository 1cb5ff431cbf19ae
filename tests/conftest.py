"""Shared fixtures. Real data comes from EDGEKIT_SHARED_DATA (default ../shared/data); when it is
missing, tests that need it FAIL (they never skip), so CI cannot pass without the real models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def _shared_dir() -> Path:
    return Path(os.environ.get("EDGEKIT_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


def constrained_tool() -> Path:
    """../shared/tools/constrained, found beside the shared data folder."""
    return _shared_dir().parent / "tools" / "constrained"


# Where edgekit keeps per-user files: the planner cache (XDG_CACHE_HOME/edgekit, or EDGEKIT_CACHE_DIR)
# and the default MQTT outbox (XDG_STATE_HOME/edgekit); TensorFlow creates ~/.keras (KERAS_HOME) on
# import. The suite must never write the real ones.
USER_DIR_VARIABLES = ("XDG_CACHE_HOME", "XDG_STATE_HOME", "KERAS_HOME")


@pytest.fixture(scope="session", autouse=True)
def private_user_dirs(tmp_path_factory):
    """Point the cache and state directories at a session temporary directory, in os.environ so that
    every child process (CLI runs, planner trial loads) inherits them."""
    base = tmp_path_factory.mktemp("user-dirs")
    saved = {name: os.environ.get(name) for name in (*USER_DIR_VARIABLES, "EDGEKIT_CACHE_DIR")}
    for name in USER_DIR_VARIABLES:
        os.environ[name] = str(base / name.lower())
    os.environ.pop("EDGEKIT_CACHE_DIR", None)  # a developer's own setting would win over XDG_CACHE_HOME
    yield base
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def shared() -> Path:
    path = _shared_dir()
    if not (path / "models").is_dir():
        pytest.fail(f"shared data not found at {path}: set EDGEKIT_SHARED_DATA to the folder holding "
                    "models/, images/, keras/ and coco128_val2017/ (tests never skip for missing data)")
    return path


@pytest.fixture(scope="session")
def ssd(shared) -> Path:
    return shared / "models" / "ssd_mobilenet_v1_quant" / "detect.tflite"


@pytest.fixture(scope="session")
def ssd_labels(shared) -> Path:
    return shared / "models" / "ssd_mobilenet_v1_quant" / "labelmap.txt"


@pytest.fixture(scope="session")
def yolo_labels(shared) -> Path:
    return shared / "models" / "yolov8n" / "labels_coco80.txt"


@pytest.fixture(scope="session")
def images(shared) -> Path:
    return shared / "images"


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[str, str]:
    """The rest of a running Popen's stdout, and its stderr, once it exits — read through its own
    file objects. ``communicate()`` reads the raw pipes, so after ``proc.stdout.readline()`` it
    loses whatever that read ahead into the buffer (a line in the middle of the output)."""
    import threading

    err: list[str] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    reader.start()
    out = proc.stdout.read()
    proc.wait(timeout)
    reader.join(timeout)
    return out, err[0] if err else ""


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a console entry point in a fresh interpreter, as a user would (text output)."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join([str(REPO), full_env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd or REPO, timeout=600)


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """Models laid out as real exporters lay them out (tests/exporters.py), built once per session."""
    import exporters

    return exporters.Cache(tmp_path_factory.mktemp("exported"))
