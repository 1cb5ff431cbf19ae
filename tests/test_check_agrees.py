"""`edgekit run --check F` refuses exactly what `edgekit run F` refuses, with the same one line, and
accepts what it accepts — each case run both ways on a source that ends (one demo picture); and
errors found after the settings load (a label, a zone's source, a name) name the file's key."""

from __future__ import annotations

import os
import shutil

import pytest

from conftest import REPO, run_cli

MODEL = REPO / "examples" / "shapes" / "shapes_int8.tflite"
PICTURE = REPO / "examples" / "shapes" / "images" / "scene_0.png"
MQTT = '[mqtt]\nurl = "mqtt://127.0.0.1:1"\n'  # nobody listens: a run defers delivery and ends
OUTBOX = 'outbox = "{tmp}/state/o.db"\n'

# (case, settings after model and sources ({tmp}: the test's folder), exit code, words of the one
# error line, key first; None: both accept)
CASES = [
    ("valid", "threshold = 0.5\n", 0, None),
    ("password_file-without-username", MQTT + OUTBOX + 'password_file = "{tmp}/secret"\n', 2,
     ["mqtt.password_file", "expected a username", "found none"]),
    ("password_file-readable-by-others", MQTT + OUTBOX + 'username = "u"\npassword_file = "{tmp}/open"\n', 2,
     ["mqtt.password_file", "readable by others", "chmod 600"]),
    ("password_file-with-username", MQTT + OUTBOX + 'username = "u"\npassword_file = "{tmp}/secret"\n', 0, None),
    ("outbox-is-a-folder", MQTT + 'outbox = "{tmp}"\n', 2, ["mqtt.outbox", "expected a file"]),
    ("outbox-parent-is-a-file", MQTT + 'outbox = "{tmp}/secret/a/o.db"\n', 2,
     ["mqtt.outbox", "expected a folder at", "secret", "found a file"]),
    ("outbox-belongs-to-another-user", MQTT + 'outbox = "{tmp}/theirs.db"\n', 2,
     ["mqtt.outbox", "belongs to user id"]),
    ("outbox-missing-parents", MQTT + 'outbox = "{tmp}/new/deeper/o.db"\n', 0, None),
    ("save_video-folder", 'save_video = "{tmp}/"\n', 2, ["save_video", "it is a folder"]),
    ("save_video-parent-is-a-file", 'save_video = "{tmp}/secret/v.mp4"\n', 2, ["save_video", "is not a folder"]),
    ("save_video-extension", 'save_video = "{tmp}/v.txt"\n', 2, ["save_video", "expected a name ending in"]),
    ("save_annotated-is-a-file", 'save_annotated = "{tmp}/secret"\n', 2,
     ["save_annotated", "expected a folder, found a file"]),
    ("save_annotated-parent-is-a-file", 'save_annotated = "{tmp}/secret/out"\n', 2,
     ["save_annotated", "expected a folder at", "found a file"]),
    ("save_annotated-missing", 'save_annotated = "{tmp}/new/annotated"\n', 0, None),
    ("token_file-missing", 'preview = {{ address = "127.0.0.1:0", token_file = "{tmp}/nope" }}\n', 2,
     ["preview.token_file", "cannot read the preview token file"]),
    ("token_file-readable-by-others", 'preview = {{ address = "127.0.0.1:0", token_file = "{tmp}/open" }}\n', 2,
     ["preview.token_file", "readable by others"]),
    ("device_id-slash", MQTT + OUTBOX + 'device_id = "../cam"\n', 2,
     ["mqtt.device_id", "expected one MQTT topic level", "'/', '+', '#' and whitespace", "'../cam'"]),
    ("device_id-space", MQTT + OUTBOX + 'device_id = "my cam"\n', 2, ["mqtt.device_id", "'my cam'"]),
    ("device_id-nul", MQTT + OUTBOX + 'device_id = "cam\\u0000"\n', 2, ["mqtt.device_id", "'cam\\x00'"]),
    ("allow-not-a-label", 'allow = ["squar"]\n', 2,
     ["allow", "expected labels of the model (3: circle, square, triangle)", "found 'squar'", "did you mean square?"]),
    ("allow-number", "allow = 5\n", 2, ["allow", "expected a string or a list of strings", "found 5"]),
    ("labels-missing", 'labels = "{tmp}/nope.txt"\n', 2,
     ["labels", "expected a labels file", "nope.txt", "No such file"]),
    ("labels-number", "labels = 5\n", 2, ["labels", "expected a string", "found 5"]),
    ("zone-source-unknown", '[zones.driveway]\nsource = "nosuch"\npoints = [[0, 0], [1, 0], [1, 1]]\n', 2,
     ["zones.driveway.source", "expected the name of one of this run's sources", "'door'", "found 'nosuch'"]),
]
SOURCES = '[[sources]]\nname = "door"\nsource = "{tmp}/img"\n'  # a TOML array of tables: it goes last


@pytest.mark.parametrize("case,text,code,words", CASES, ids=[c[0] for c in CASES])
def test_check_and_run_say_the_same(case, text, code, words, tmp_path):
    (tmp_path / "img").mkdir()
    shutil.copy(PICTURE, tmp_path / "img")
    for name, mode in (("secret", 0o600), ("open", 0o644)):
        (tmp_path / name).write_text("s3cret\n")
        os.chmod(tmp_path / name, mode)
    (tmp_path / "theirs.db").write_bytes(b"")
    if os.geteuid() == 0:
        os.chown(tmp_path / "theirs.db", 65534, 65534)
    elif case == "outbox-belongs-to-another-user":
        text = MQTT + 'outbox = "/etc/passwd"\n'  # root's: the same refusal without chown
    path = tmp_path / "settings.toml"
    path.write_text(f'model = "{MODEL}"\n' + (text + SOURCES).format(tmp=tmp_path))
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), "EDGEKIT_MQTT_URL": "", "EDGEKIT_SHARED_DATA": "/nonexistent"}
    check = run_cli("-m", "edgekit", "run", "--check", str(path), env=env)
    run = run_cli("-m", "edgekit", "run", str(path), env=env)
    errors = [[line for line in r.stderr.splitlines() if line.startswith("edgekit: error:")] for r in (check, run)]
    assert (check.returncode, errors[0]) == (run.returncode, errors[1]), (check.stderr, run.stderr)
    assert check.returncode == code, check.stderr
    if words is None:
        assert errors[0] == [] and check.stdout.startswith("settings are valid") and run.stdout.count("\n") == 1
        return
    assert len(check.stderr.strip().splitlines()) == 1 and check.stdout == "", check.stderr
    line = errors[0][0]
    assert line.startswith(f"edgekit: error: {path}: {words[0]}"), line
    for word in words[1:]:
        assert word in line, (word, line)
    assert "Traceback" not in run.stderr + check.stderr


def test_a_key_set_twice_is_one_line_with_its_line_and_key(tmp_path):
    for text, line, key in [('threshold = 0.3\nthreshold = 0.4\n', 4, "threshold"),
                            ('[mqtt]\nhost = "h"\nport = 1\nport = [\n  2]\n', 6, "mqtt.port"),
                            ('[mqtt]\nhost = "h"\n[mqtt]\nport = 1\n', 5, "mqtt"),
                            ('preview = { address = "127.0.0.1:0", fps = 1, fps = 2 }\n', 3, "fps")]:
        path = tmp_path / "settings.toml"
        path.write_text(f'model = "{MODEL}"\nsources = ["{PICTURE}"]\n' + text)
        r = run_cli("-m", "edgekit", "run", "--check", str(path))
        assert r.returncode == 2 and r.stdout == "", r.stderr
        assert r.stderr.strip() == f"edgekit: error: {path} line {line}: key `{key}` is set twice: keep one", text


def test_a_source_name_is_one_topic_level(tmp_path):
    """The rule the MQTT device id follows (mqtt.settings.check_topic_level), for a source's name."""
    for name in ("../up", "a/b", "front door", "cam+", "cam#", "tab\\t", "nul\\u0000", ".."):
        path = tmp_path / "settings.toml"
        path.write_text(f'model = "{MODEL}"\n[[sources]]\nname = "{name}"\nsource = "{PICTURE}"\n')
        r = run_cli("-m", "edgekit", "run", "--check", str(path))
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        assert lines[0].startswith(f"edgekit: error: {path}: sources[0].name: expected one MQTT topic level"), lines
    path.write_text(f'model = "{MODEL}"\n[[sources]]\nname = "front-door.1"\nsource = "{PICTURE}"\n')
    r = run_cli("-m", "edgekit", "run", "--check", str(path))
    assert r.returncode == 0 and "front-door.1" in r.stdout, r.stderr


def test_allow_on_a_model_without_label_names_names_the_key(tmp_path):
    from edgekit.metadata import split_model

    bare = tmp_path / "bare.tflite"  # the demo model without its edgekit metadata: no label names
    bare.write_bytes(split_model(MODEL.read_bytes())[0])
    path = tmp_path / "settings.toml"
    path.write_text(f'model = "{bare}"\nsources = ["{PICTURE}"]\nallow = "circle"\n')
    lines = []
    for flag in ("--check", None):
        r = run_cli("-m", "edgekit", "run", *([flag] if flag else []), str(path))
        assert r.returncode == 2 and r.stdout == "", r.stderr
        lines.append(r.stderr.strip())
    assert lines[0] == lines[1] == (f"edgekit: error: {path}: allow: expected class_N names (the model has no label "
                                    "names), found 'circle' (a string); give labels = \"FILE\" (one name per line), "
                                    "or use class_N")
