"""`import edgekit` stays light, and the device package never imports the converter."""

import ast
import json
import subprocess
import sys

from conftest import REPO

HEAVY = ("tensorflow", "paho", "ai_edge_litert", "tflite_runtime", "cv2", "keras", "converters")


def _modules_after(code: str) -> set:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, cwd=REPO, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_edgekit_loads_nothing_heavy():
    mods = _modules_after("import edgekit")
    assert not {m for m in mods if m.split(".")[0] in HEAVY}
    assert "numpy" not in mods and "PIL" not in mods  # even these load on first use


def test_public_names_load_without_runtime():
    mods = _modules_after("import edgekit; edgekit.Detector; edgekit.DetectorOptions; edgekit.register_decoder")
    assert not {m for m in mods if m.split(".")[0] in HEAVY}


def test_edgekit_source_never_imports_converters_or_tensorflow():
    for path in (REPO / "edgekit").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in ("converters", "tensorflow", "keras", "cv2"), f"{path}: imports {name}"
