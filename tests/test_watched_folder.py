"""A folder watched for new images (`--follow`, sources.WatchedFolder): real files written while a
real model runs over them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import finish

from edgekit import Detector
from edgekit.runner import RunOptions, Runner
from edgekit.sources import WatchedFolder, open_sources

REPO = Path(__file__).resolve().parents[1]
POLL = 0.05
SETTLE = 0.3


def _results_until(runner: Runner, count: int, timeout: float = 30.0) -> list:
    """Iterate ``runner`` on this thread until ``count`` results arrived (then stop it)."""
    got: list = []
    timer = threading.Timer(timeout, runner.stop)  # never hang the suite
    timer.start()
    try:
        for fr in runner:
            got.append(fr)
            if len(got) >= count:
                runner.stop()
    finally:
        timer.cancel()
    return got


def _copy(src: Path, dst: Path, mtime: float | None = None) -> None:
    tmp = dst.with_name(dst.name + ".part")  # as upload tools do: write, then rename
    shutil.copyfile(src, tmp)
    if mtime is not None:
        os.utime(tmp, (mtime, mtime))
    os.replace(tmp, dst)


@pytest.fixture(scope="module")
def ssd_detector(ssd, ssd_labels):
    return Detector(ssd, labels_path=ssd_labels)


def test_existing_then_new_images_each_once_in_the_order_written(ssd_detector, images, tmp_path):
    folder = tmp_path / "incoming"
    folder.mkdir()
    _copy(images / "table.jpg", folder / "b_first.jpg", mtime=time.time() - 20)
    _copy(images / "coral_kite_and_cold.jpg", folder / "a_second.jpg", mtime=time.time() - 10)
    source = WatchedFolder(str(folder), poll=POLL, settle=SETTLE)
    runner = Runner([source], ssd_detector)

    def writer():
        time.sleep(0.5)
        _copy(images / "coral_cat.bmp", folder / "ignored.bmp.tmp")  # a temporary name: never read
        _copy(images / "tflsupport_cats_and_dogs.jpg", folder / "c_new.jpg")
        (folder / ".hidden.jpg").write_bytes(b"not yet")
        (folder / "notes.txt").write_text("not an image")

    threading.Thread(target=writer, daemon=True).start()
    results = _results_until(runner, 3)
    names = [Path(r.frame.source).name for r in results]
    assert names == ["b_first.jpg", "a_second.jpg", "c_new.jpg"]  # by write time, not by name
    assert all(r.error is None for r in results)
    assert {d.label for d in results[1].result.detections} >= {"kite", "person"}
    assert {d.label for d in results[2].result.detections} >= {"cat", "dog"}
    assert [r.frame.index for r in results] == [0, 1, 2]
    assert results[0].frame.timestamp == pytest.approx(os.stat(folder / "b_first.jpg").st_mtime, abs=1e-3)
    assert runner.stats[0].processed == 3 and runner.stats[0].failed == 0


def test_a_file_being_written_is_read_once_complete(ssd_detector, images, tmp_path):
    """Written in pieces over several polls: processed once, whole (no truncated-image error)."""
    folder = tmp_path / "slow"
    folder.mkdir()
    data = (images / "coral_kite_and_cold.jpg").read_bytes()
    runner = Runner([WatchedFolder(str(folder), poll=POLL, settle=SETTLE)], ssd_detector)

    def writer():
        with open(folder / "upload.jpg", "wb") as fh:
            for i in range(0, len(data), len(data) // 5):
                fh.write(data[i:i + len(data) // 5])
                fh.flush()
                time.sleep(4 * POLL)

    threading.Thread(target=writer, daemon=True).start()
    results = _results_until(runner, 1)
    assert results[0].error is None, results[0].error
    assert "kite" in {d.label for d in results[0].result.detections}
    assert runner.stats[0].read == 1  # taken once, whole


def test_rewritten_file_is_processed_again_and_a_bad_one_does_not_stop_the_watch(ssd_detector, images, tmp_path):
    """A camera rewriting latest.jpg: each version once; a corrupt upload is one failed frame."""
    folder = tmp_path / "cam"
    folder.mkdir()
    runner = Runner([WatchedFolder(str(folder), poll=POLL, settle=SETTLE)], ssd_detector)

    def writer():
        _copy(images / "table.jpg", folder / "latest.jpg")
        time.sleep(0.6)
        (folder / "broken.png").write_bytes(b"\x89PNG not really a png")
        time.sleep(0.6)
        _copy(images / "tflsupport_cats_and_dogs.jpg", folder / "latest.jpg")

    threading.Thread(target=writer, daemon=True).start()
    results = _results_until(runner, 3)
    assert [Path(r.frame.source).name for r in results] == ["latest.jpg", "broken.png", "latest.jpg"]
    assert results[1].error is not None and "broken.png" in str(results[1].error)
    assert "cat" in {d.label for d in results[2].result.detections}
    assert runner.stats[0].processed == 2 and runner.stats[0].failed == 1


def test_fps_samples_by_file_time(ssd_detector, images, tmp_path):
    """Ten snapshots one second apart (by mtime), sampled at 0.5 fps: every other one."""
    folder = tmp_path / "snaps"
    folder.mkdir()
    start = time.time() - 100
    for i in range(10):
        _copy(images / "table.jpg", folder / f"snap{i:02d}.jpg", mtime=start + i)
    runner = Runner([WatchedFolder(str(folder), poll=POLL, settle=SETTLE)], ssd_detector, RunOptions(fps=0.5))
    results = _results_until(runner, 5)
    assert [Path(r.frame.source).name for r in results] == [f"snap{i:02d}.jpg" for i in (0, 2, 4, 6, 8)]
    assert runner.stats[0].skipped == 5


def test_fps_does_not_sample_still_images_away(ssd_detector, images):
    """Image files have no timeline (timestamp 0): --fps must not drop all but the first."""
    runner = Runner(open_sources([str(images / "table.jpg"), str(images / "coral_cat.bmp")]), ssd_detector,
                    RunOptions(fps=1.0))
    assert len(list(runner)) == 2


def test_missing_folder_is_an_outage_reported_once_then_watched(ssd_detector, images, tmp_path):
    folder = tmp_path / "mount"
    events = []
    source = WatchedFolder(str(folder), poll=POLL, settle=SETTLE, on_status=lambda name, status, reason: events.append((status, reason)))
    runner = Runner([source], ssd_detector)

    def writer():
        time.sleep(0.5)  # ~10 polls while missing: reported once
        folder.mkdir()
        _copy(images / "table.jpg", folder / "x.jpg")

    threading.Thread(target=writer, daemon=True).start()
    results = _results_until(runner, 1)
    assert results[0].error is None
    assert events[0][0] == "down" and "no such folder" in events[0][1]
    assert [e[0] for e in events] == ["down", "up"]


def test_cli_follow_until_sigterm(ssd, ssd_labels, images, tmp_path):
    """`edgekit detect MODEL DIR --follow`: existing and new images as JSON lines, runs until SIGTERM,
    then exits 0 with every line whole."""
    folder = tmp_path / "hot"
    folder.mkdir()
    _copy(images / "table.jpg", folder / "one.jpg")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "edgekit", "detect", str(ssd), str(folder), "--follow",
                             "--labels", str(ssd_labels), "--no-plan"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    first = json.loads(proc.stdout.readline())
    assert first["source"].endswith("one.jpg")
    _copy(images / "coral_kite_and_cold.jpg", folder / "two.jpg")
    second = json.loads(proc.stdout.readline())
    assert second["source"].endswith("two.jpg") and second["frame"] == 1
    assert "kite" in {d["label"] for d in second["detections"]}
    assert proc.poll() is None  # still watching
    proc.send_signal(signal.SIGTERM)
    rest, err = finish(proc, 30)
    assert proc.returncode == 0, err
    assert rest == "" and "Traceback" not in err


def test_results_name_their_source_for_stats_and_only_on_change(ssd_detector, images, tmp_path):
    """Frames of a watched folder are named by file, but belong to the folder: per-source stats
    and "only on change" key on FrameResult.source (the same scene in three uploads passes once)."""
    from edgekit.stages import ChangeGate
    from edgekit.stats import FrameWindow

    folder = tmp_path / "scene"
    folder.mkdir()
    start = time.time() - 30
    for i, photo in enumerate(["table.jpg", "table.jpg", "table.jpg", "coral_kite_and_cold.jpg"]):
        _copy(images / photo, folder / f"{i}.jpg", mtime=start + i)
    runner = Runner([WatchedFolder(str(folder), poll=POLL, settle=SETTLE)], ssd_detector)
    results = _results_until(runner, 4)
    assert {r.source for r in results} == {str(folder)} == {runner.stats[0].name}
    gate = ChangeGate()
    assert [Path(r.frame.source).name for r in results if gate(r) is not None] == ["0.jpg", "3.jpg"]
    window = FrameWindow()
    for r in results:
        window.add(r.source, r.result.latency_ms, r.timings)
    assert window.summary(str(folder)).frames == 4


def test_quiet_for_longer_than_the_runner_waits_then_a_file(ssd_detector, images, tmp_path):
    """Nothing for a while (the runner polls its queue every second), then an image: still served."""
    folder = tmp_path / "quiet"
    folder.mkdir()
    runner = Runner([WatchedFolder(str(folder), poll=POLL, settle=SETTLE)], ssd_detector)
    threading.Timer(2.5, lambda: _copy(images / "table.jpg", folder / "late.jpg")).start()
    results = _results_until(runner, 1)
    assert Path(results[0].frame.source).name == "late.jpg" and results[0].error is None


def test_a_file_dated_in_the_future_is_taken(ssd_detector, images, tmp_path):
    """A share whose clock runs ahead: settling is timed by our clock, not by the file's date."""
    folder = tmp_path / "ahead"
    folder.mkdir()
    _copy(images / "table.jpg", folder / "x.jpg", mtime=time.time() + 120)
    started = time.monotonic()
    results = _results_until(_runner := Runner([WatchedFolder(str(folder), poll=POLL, settle=SETTLE)],
                                               ssd_detector), 1, timeout=10)
    assert results and results[0].error is None and time.monotonic() - started < 5


def test_fps_restarts_when_file_times_go_back(ssd_detector, images, tmp_path):
    """`cp -p` of an old picture after newer ones: it is processed, not sampled away."""
    folder = tmp_path / "back"
    folder.mkdir()
    now = time.time()
    _copy(images / "table.jpg", folder / "new.jpg", mtime=now - 10)
    runner = Runner([WatchedFolder(str(folder), poll=POLL, settle=SETTLE)], ssd_detector, RunOptions(fps=0.1))
    threading.Timer(1.0, lambda: _copy(images / "table.jpg", folder / "old.jpg", mtime=now - 3600)).start()
    results = _results_until(runner, 2)
    assert [Path(r.frame.source).name for r in results] == ["new.jpg", "old.jpg"]


def test_follow_watches_a_folder_that_does_not_exist_yet(tmp_path):
    sources = open_sources([str(tmp_path / "mount"), str(tmp_path / "missing.jpg")], follow=True)
    assert isinstance(sources[0], WatchedFolder) and not isinstance(sources[1], WatchedFolder)


def test_checkpoint_a_restart_goes_on_after_what_went_through(ssd_detector, images, tmp_path):
    """Processed images are not processed again after a restart; new and rewritten ones are."""
    from edgekit.runner import run

    folder, checkpoint = tmp_path / "cam", tmp_path / "state" / "follow.json"
    folder.mkdir()
    checkpoint.parent.mkdir()
    start = time.time() - 60
    for i in range(3):
        _copy(images / "table.jpg", folder / f"{i}.jpg", mtime=start + i)

    def one_run(expected: int) -> list[str]:
        got: list[str] = []
        runner = Runner([WatchedFolder(str(folder), poll=POLL, settle=SETTLE, checkpoint=str(checkpoint))],
                        ssd_detector)

        class Collect:
            def write(self, fr):
                got.append(Path(fr.frame.source).name)
                if len(got) == expected:
                    threading.Timer(0.5, runner.stop).start()  # a little longer: nothing more may come

            def close(self):
                pass

        threading.Timer(20, runner.stop).start()
        run(runner, [Collect()])
        return got

    assert one_run(3) == ["0.jpg", "1.jpg", "2.jpg"]
    assert oct(checkpoint.stat().st_mode & 0o777) == "0o600"
    _copy(images / "table.jpg", folder / "3.jpg")
    _copy(images / "table.jpg", folder / "1.jpg")  # rewritten: a new version
    assert one_run(2) == ["3.jpg", "1.jpg"]  # by write time


def test_same_named_sources_get_unique_names_and_every_sink_closes(ssd_detector, images):
    from edgekit.runner import run
    from edgekit.sources import ImageFiles

    runner = Runner([ImageFiles([str(images / "table.jpg")]), ImageFiles([str(images / "table.jpg")])], ssd_detector)
    assert [s.name for s in runner.stats] == [str(images / "table.jpg"), f"{images / 'table.jpg'} #2"]
    closed = []

    class Failing:
        def write(self, fr):
            pass

        def close(self):
            raise OSError("disk full")

    class Last:
        def write(self, fr):
            pass

        def close(self):
            closed.append(True)

    with pytest.raises(OSError, match="disk full"):
        run(runner, [Failing(), Last()])
    assert closed == [True]


def test_watch_follows_folders(ssd_detector, tmp_path):
    from edgekit import watch

    runner = watch(str(tmp_path), ssd_detector, follow=True)
    assert isinstance(runner.sources[0], WatchedFolder)
    runner.stop()
