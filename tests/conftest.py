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
