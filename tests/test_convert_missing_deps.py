"""``edgekit-convert`` on a device install (no TensorFlow, no pycocotools): one line saying what to
install and exit 2, never an internal error. The modules are really absent in the child: a
``sitecustomize`` puts an import blocker first on ``sys.meta_path``, as if they were not installed."""

import textwrap

import pytest

from conftest import run_cli

_BLOCKER = textwrap.dedent("""
    import sys

    class _NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "tf_keras", "keras", "pycocotools", "ai_edge_quantizer"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _NotInstalled())
""")


@pytest.fixture()
def device_env(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_BLOCKER)
    return {"PYTHONPATH": str(site)}  # run_cli puts the repository first, then this


def test_blocker_really_hides_tensorflow(device_env):
    r = run_cli("-c", "import tensorflow", env=device_env)
    assert r.returncode == 1 and "No module named 'tensorflow'" in r.stderr


def test_keras_conversion_without_tensorflow_says_what_to_install(shared, device_env, tmp_path):
    onet = shared / "keras" / "mtcnn_keras" / "onet.keras"
    r = run_cli("-m", "converters.cli", str(onet), "-o", str(tmp_path / "x.tflite"), env=device_env)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'edgekit[convert]'" in lines[0] and "TensorFlow" in lines[0], r.stderr
    assert "internal error" not in r.stderr and not (tmp_path / "x.tflite").exists()


def test_eval_without_pycocotools_says_convert_extra(shared, device_env, tmp_path):
    model = shared / "models" / "yolov8n" / "yolov8n_int8.tflite"
    r = run_cli("-m", "converters.cli", str(model), "-o", str(tmp_path / "x.tflite"), "--eval",
                str(shared / "coco128_val2017"), env=device_env)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekit-convert: error: --eval needs pycocotools"), r.stderr
    assert "pip install 'edgekit[convert]'" in lines[0]


def test_metadata_only_needs_no_tensorflow(shared, device_env, tmp_path):
    model = shared / "models" / "yolov8n" / "yolov8n_int8.tflite"
    r = run_cli("-m", "converters.cli", str(model), "-o", str(tmp_path / "x.tflite"), "--name", "y", env=device_env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "x.tflite").exists()


def test_convert_extra_brings_what_the_converters_options_need():
    import tomllib  # Python >= 3.11, as the test environment

    from conftest import REPO

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {d.split(">")[0].split("=")[0].split("[")[0].strip().lower() for d in extras["convert"]}
    assert {"tensorflow", "ai-edge-quantizer", "pycocotools", "tqdm"} <= names


def test_layout_help_names_every_builtin_layout():
    from converters.cli import build_parser
    from edgekit.decoders import _BUILTIN_ORDER

    layout = next(a for a in build_parser()._actions if "--layout" in a.option_strings)
    for name in _BUILTIN_ORDER:
        assert name in layout.help, name
