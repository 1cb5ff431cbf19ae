"""The `edgekit` command's user-visible lines for issue 16's leftovers, as a user runs it (a real
process each): usage errors in one line with a did-you-mean, a wrong model path is a bad argument
(exit 2) naming the settings key, a missing watched folder said once, Ctrl-C mid-batch says how
many of how many, exit 5 as the README says, and folders take every extension edgekit decodes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import REPO, finish, run_cli

EDGEKIT = ("-m", "edgekit")


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.strip().splitlines() if line]


# --- item 2: usage errors ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv,words", [
    (["detect", "m.tflite", "x.jpg", "--threshhold", "0.5"], "detect: unknown option --threshhold (did you mean --threshold?)"),
    (["plan", "m.tflite", "--max-latncy-ms", "3"], "plan: unknown option --max-latncy-ms (did you mean --max-latency-ms?)"),
    (["detect", "m.tflite", "x.jpg", "--trak=yes"], "unknown option --trak (did you mean --track?)"),
    (["detect", "m.tflite", "x.jpg", "--threshold", "2"], "detect: argument --threshold: expected a number between 0 and 1"),
    (["plan", "m.tflite", "--max-latency-ms", "-1"], "plan: argument --max-latency-ms: expected a finite number above 0"),
    (["detetc", "m.tflite"], "(did you mean detect?)"),
    (["detect", "m.tflite"], "detect: the following arguments are required: SOURCE"),
], ids=["unknown-flag", "unknown-flag-plan", "unknown-flag-with-value", "range", "latency-range", "command", "missing"])
def test_a_usage_error_is_one_line_with_did_you_mean(argv, words):
    r = run_cli(*EDGEKIT, *argv)
    assert r.returncode == 2 and r.stdout == ""
    lines = _error_lines(r.stderr)
    assert len(lines) == 1 and "usage:" not in r.stderr, r.stderr
    assert lines[0].startswith("edgekit: error: ") and words in lines[0], lines[0]
    assert "--help'" in lines[0]  # the one short hint, inside the line


def test_the_did_you_mean_comes_from_that_commands_own_flags():
    r = run_cli(*EDGEKIT, "plan", "m.tflite", "--autotuen", "--mqt", "x")  # --mqtt is detect's, not plan's
    line = _error_lines(r.stderr)[0]
    assert r.returncode == 2 and "--autotuen (did you mean --autotune?)" in line
    assert "--mqt," not in line and "--mqt;" in line and "--mqtt" not in line, line


# --- item 3: a wrong model path ------------------------------------------------------------------------------------

def test_a_missing_model_and_a_folder_that_is_no_bundle_are_both_bad_arguments(tmp_path, images):
    image = str(images / "table.jpg")
    for argv in (["detect", str(tmp_path / "nope.tflite"), image], ["detect", str(tmp_path / "nope.tflite"), image,
                 "--no-plan"], ["plan", str(tmp_path / "nope.tflite")], ["detect", str(tmp_path), image],
                 ["plan", str(tmp_path)]):
        r = run_cli(*EDGEKIT, *argv)
        assert r.returncode == 2, (argv, r.returncode, r.stderr)  # the README's 2: bad option or argument
        assert len(_error_lines(r.stderr)) == 1, r.stderr
        assert ("no such model file" if "nope" in argv[1] else "a directory without manifest.json") in r.stderr


def test_from_run_the_line_names_the_key_and_the_folder_it_was_resolved_against(tmp_path, images):
    (tmp_path / "models").mkdir()
    for model, words in (("models/x.tflite", "no such model file"), ("models", "a directory without manifest.json")):
        settings = tmp_path / "service.toml"
        settings.write_text(f'model = "{model}"\nsources = ["{images}"]\n')
        for check in ([], ["--check"]):
            r = run_cli(*EDGEKIT, "run", *check, "service.toml", cwd=tmp_path)
            assert r.returncode == 2, r.stderr
            line, = _error_lines(r.stderr)
            assert line.startswith(f"edgekit: error: service.toml: model: {model} (resolved against {tmp_path},"), line
            assert words in line, line


# --- item 9: a missing watched folder is said once -----------------------------------------------------------------

def test_follow_on_a_missing_folder_says_it_once(ssd, ssd_labels, tmp_path):
    folder = tmp_path / "share"
    proc = subprocess.Popen([sys.executable, *EDGEKIT, "detect", str(ssd), str(folder), "--follow", "--no-plan",
                             "--labels", str(ssd_labels)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while not any(str(folder) in line for line in lines) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(2.0)  # four more polls of the missing folder
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    reader.join(10)
    said = [line for line in lines if str(folder) in line]
    assert said == [f"edgekit: source {folder} is down: no such folder; watching for it to appear\n"], lines


# --- item 10: Ctrl-C mid-batch ---------------------------------------------------------------------------------------

def test_ctrl_c_mid_batch_says_how_many_of_how_many_and_keeps_their_results(ssd, ssd_labels, images, tmp_path):
    batch = tmp_path / "batch"
    batch.mkdir()
    total = 150
    for i in range(total):
        os.symlink(images / "coral_kite_and_cold.jpg", batch / f"img{i:03d}.jpg")
    proc = subprocess.Popen([sys.executable, *EDGEKIT, "detect", str(ssd), str(batch), "--labels", str(ssd_labels),
                             "--save-annotated", str(tmp_path / "ann")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            # a shell running the suite in the background starts it with SIGINT ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    out, err = finish(proc)
    assert proc.returncode == 130, err
    results = [first, *out.splitlines()]
    m = re.search(r"stopped after (\d+) of (\d+) images; the results of those \d+ are kept, the other (\d+) were "
                  r"not processed", err)
    assert m, err
    done = int(m.group(1))
    assert int(m.group(2)) == total and done == len(results) < total and int(m.group(3)) == total - done
    assert len(os.listdir(tmp_path / "ann")) == done  # the done images' annotated copies are kept too
    assert "Traceback" not in err


# --- item 16: exit 5 ---------------------------------------------------------------------------------------------------

def test_exit_5_is_what_the_readme_says(ssd, ssd_labels, tmp_path):
    from test_errors import _readme_exit_codes

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_text("not a picture")
    (bad / "b.png").write_bytes(b"")
    r = run_cli(*EDGEKIT, "detect", str(ssd), str(bad), "--labels", str(ssd_labels))
    assert r.returncode == 5 and r.stdout == "" and "2 input(s) failed; nothing was processed" in r.stderr
    bench = run_cli(*EDGEKIT, "bench", str(ssd), str(bad), "--no-sweep", "--frames", "4")
    assert bench.returncode == 5 and bench.stderr.count("edgekit: error:") == 1, bench.stderr
    row = _readme_exit_codes()[5]
    # not "the others were processed": none was, and bench stopped at the first
    assert "even when none could be processed" in row and "`bench`" in row and "stop at the first" in row, row


# --- item 25: folders take every extension edgekit decodes ---------------------------------------------------------------

def test_folder_extensions_come_from_the_formats_edgekit_decodes():
    from PIL import Image

    from edgekit.image import LOCAL_FORMATS
    from edgekit.sources.files import IMAGE_EXTENSIONS

    assert {".ppm", ".pgm", ".pbm", ".jpg", ".png", ".webp", ".tif"} <= IMAGE_EXTENSIONS
    assert IMAGE_EXTENSIONS == {e for e, f in Image.registered_extensions().items() if f in LOCAL_FORMATS}


def test_a_folder_of_netpbm_images_is_detected_and_watched(ssd, ssd_labels, images, tmp_path):
    from PIL import Image

    from edgekit.sources import WatchedFolder

    folder = tmp_path / "pnm"
    folder.mkdir()
    picture = Image.open(images / "table.jpg").convert("RGB")
    picture.save(folder / "colour.ppm")
    picture.convert("L").save(folder / "grey.pgm")
    picture.convert("1").save(folder / "mono.pbm")
    r = run_cli(*EDGEKIT, "detect", str(ssd), str(folder), "--labels", str(ssd_labels), "--no-plan")
    assert r.returncode == 0, r.stderr
    assert sorted(os.path.basename(line.split('"source": "', 1)[1].split('"', 1)[0])
                  for line in r.stdout.splitlines()) == ["colour.ppm", "grey.pgm", "mono.pbm"]
    assert sorted(WatchedFolder(str(folder))._scan()) == ["colour.ppm", "grey.pgm", "mono.pbm"]
