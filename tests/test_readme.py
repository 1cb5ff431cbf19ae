"""The README's two set-up commands stay true: CI runs the test command verbatim, and the main
job's command works on the committed demo model (no ../shared, no network)."""

import json
import re

from conftest import REPO, run_cli

MAIN_JOB = "edgekit detect examples/shapes/shapes_int8.tflite examples/shapes/images"


def _readme_blocks():
    return re.findall(r"```(?:sh|bash|console)?\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def test_ci_runs_the_readme_test_command():
    commands = [line for block in _readme_blocks() for line in block.splitlines() if "pytest" in line]
    assert commands, "README has no test command"
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert commands[0] in ci, f"README test command {commands[0]!r} is not what .ci/run runs"


def test_readme_main_job_runs_offline_on_committed_model():
    blocks = "\n".join(_readme_blocks())
    assert MAIN_JOB in blocks
    r = run_cli("-m", "edgekit", *MAIN_JOB.split()[1:], env={"EDGEKIT_SHARED_DATA": "/nonexistent"})
    assert r.returncode == 0, r.stderr
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(docs) == 4 and all(d["detections"] for d in docs)
