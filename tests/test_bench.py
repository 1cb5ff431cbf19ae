"""`edgekit bench` for real: the shared SSD on a small folder of COCO photos and on synthetic frames,
in a fresh interpreter (so its modules and peak RSS are its own)."""

import json
import shutil
import subprocess
import sys

from PIL import Image

from conftest import REPO

_RUN = """
import json, sys
from edgekit.cli import main
rc = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "cv2"))
print("HEAVY " + json.dumps(heavy), file=sys.stderr)
sys.exit(rc)
"""


def _bench(*args):
    r = subprocess.run([sys.executable, "-c", _RUN, "bench", *map(str, args)], capture_output=True, text=True,
                       cwd=REPO, timeout=600)
    heavy = [json.loads(line[6:]) for line in r.stderr.splitlines() if line.startswith("HEAVY ")]
    return r, heavy[-1] if heavy else None


def _folder(images, tmp_path, n=6):
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in sorted((images.parent / "coco128_val2017" / "images").glob("*.jpg"))[:n]:
        shutil.copy(path, folder)
    return folder


def test_bench_json_on_a_folder_is_complete_and_consistent(ssd, images, tmp_path):
    from edgekit.device import usable_cores

    folder = _folder(images, tmp_path)
    plot = tmp_path / "bench.png"
    r, heavy = _bench(ssd, folder, "--frames", "12", "--json", "--plot", plot)
    assert r.returncode == 0, r.stderr
    assert heavy == [], f"bench imported {heavy}"
    doc = json.loads(r.stdout)
    for key in ("load_ms", "first_inference_ms", "fps", "ms_per_frame", "bare_invoke_ms", "bare_fps", "efficiency",
                "stages", "peak_rss_bytes", "sweep", "threads", "threads_reason", "usable_cores", "runtime"):
        assert key in doc, key
    assert doc["synthetic"] is False and doc["source"] == str(folder)
    assert doc["input_size"] == [300, 300] and doc["frames"] == 12
    assert doc["load_ms"] > 0 and doc["first_inference_ms"] > 0 and doc["fps"] > 0
    assert abs(doc["ms_per_frame"] * doc["fps"] - 1000) < 1e-6
    assert 64 << 20 < doc["peak_rss_bytes"] < 2 << 30  # numpy + Pillow + the runtime + the model, not more

    # Stage means are busy time per frame. Each pipeline thread (reader: decode + preprocess; invoke;
    # caller: outputs) is busy at most the wall time per frame, so all of them together at most 3x
    # (slack for the window edges of a short run).
    s, wall = doc["stages"], doc["ms_per_frame"]
    assert set(s) == {"decode", "preprocess", "wait", "invoke", "outputs"}
    assert all(v >= 0 for v in s.values()) and s["decode"] > 0 and s["invoke"] > 0
    assert s["decode"] + s["preprocess"] <= wall * 1.25
    assert s["invoke"] <= wall * 1.25
    assert s["decode"] + s["preprocess"] + s["invoke"] + s["outputs"] <= wall * 3 * 1.25

    cores = usable_cores()
    assert doc["usable_cores"] == cores
    assert [p["threads"] for p in doc["sweep"]] == list(range(1, cores + 1))
    for p in doc["sweep"]:
        assert p["fps"] > 0 and p["bare_fps"] > 0 and p["decode_threads"] == 1
    assert doc["best_threads"] in range(1, cores + 1)
    main = next(p for p in doc["sweep"] if p["threads"] == doc["threads"])
    assert main["fps"] == doc["fps"]  # the main measurement is the sweep's point at the chosen threads
    assert main["bare_fps"] == doc["bare_fps"]  # one bare measurement per thread count, not two that disagree
    assert abs(doc["efficiency"] - doc["fps"] / doc["bare_fps"]) < 1e-9

    with Image.open(plot) as img:
        assert img.format == "PNG" and img.size == (640, 400)
        _assert_y_axis_has_values(img.convert("RGB"), doc)


def _assert_y_axis_has_values(img, doc):
    """A tick (black, left of the axis) at each round value, and its number drawn beside it."""
    from edgekit.bench import fps_ticks

    left, bottom, top = 60, 340, 40
    ticks = fps_ticks(max(max(p["fps"], p["bare_fps"]) for p in doc["sweep"]))
    assert len(ticks) >= 3 and ticks[-1] >= max(p["bare_fps"] for p in doc["sweep"])
    for value in ticks:
        y = round(bottom - (bottom - top) * value / ticks[-1])
        assert any(img.getpixel((left - 3, yy)) == (0, 0, 0) for yy in (y - 1, y, y + 1)), value
        label = [img.getpixel((x, yy)) for x in range(0, left - 6) for yy in range(max(0, y - 6), min(400, y + 6))]
        assert any(px != (255, 255, 255) for px in label), f"no value drawn at the tick {value}"


def test_fps_ticks_are_round_and_cover_the_highest_bar():
    from edgekit.bench import fps_ticks

    assert fps_ticks(18.9) == [0, 5, 10, 15, 20]
    assert fps_ticks(120) == [0, 50, 100, 150]
    assert fps_ticks(0.7)[-1] >= 0.7 and fps_ticks(0.7)[1] == 0.2


def test_report_text_keeps_one_number_per_measurement():
    from edgekit.bench import BenchReport, StageTimes, SweepPoint, format_report

    stages = StageTimes(5.0, 1.0, 0.5, 50.0, 1.0)
    points = (SweepPoint(1, 1, 10.0, 12.0, stages), SweepPoint(2, 1, 14.5, 15.0, stages))
    report = BenchReport("m.tflite", "s", False, "rt", 2, 2, "default", (300, 300), 1.0, 2.0, 12, 14.5, 1000 / 14.5,
                         1000 / 15.0, 15.0, 14.5 / 15.0, stages, 1 << 26, points, 2)
    text = format_report(report)
    assert "steady       14.5 fps" in text and "= 15.0 fps" in text and "efficiency 0.97 = steady / bare" in text
    assert "2T is the measurement above" in text and "   14.5 fps  (bare   15.0 fps" in text
    noisy = format_report(BenchReport(**{**report.to_dict(), "stages": stages, "sweep": points, "efficiency": 1.04}))
    assert "above 1: the machine's load changed" in noisy


def test_bench_without_source_runs_on_synthetic_frames(ssd):
    r, heavy = _bench(ssd, "--frames", "6", "--no-sweep", "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert heavy == []
    out = r.stdout
    assert "synthetic 1280x720 JPEGs" in out and "steady" in out and "peak RSS" in out
    assert "1 interpreter + 1 decode" in out and "threads sweep" not in out


def test_bench_reports_a_missing_source_as_an_input_error(ssd, tmp_path):
    r, _ = _bench(ssd, tmp_path / "nothing-here", "--frames", "4", "--no-sweep")
    assert r.returncode == 5, r.stderr
    assert "nothing-here" in r.stderr and "Traceback" not in r.stderr
