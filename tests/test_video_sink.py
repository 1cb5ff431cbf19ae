"""`--save-video` (and the settings file's `save_video`): the annotated video sink, for real — videos
that ffmpeg encodes here from a real photo (test_sources' pan), the real SSD, and the output read
back with PyAV: one video frame per processed frame, at its timestamp, with the boxes drawn."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import REPO, finish, run_cli
from PIL import Image
from test_sources import CODECS, COUNT, FPS, STEP, H, W, _encode

from edgekit.annotate import draw_detections
from edgekit.errors import ConfigError
from edgekit.results import Detection
from edgekit.videowriter import VideoWriter


@pytest.fixture(scope="module")
def pan(images) -> np.ndarray:
    """test_sources' pan: COUNT frames of a window moving across coral_kite_and_cold.jpg."""
    with Image.open(images / "coral_kite_and_cold.jpg") as photo:
        pixels = np.asarray(photo.convert("RGB").resize((W + STEP * COUNT, H + 60)))
    return np.stack([pixels[30:30 + H, i * STEP:i * STEP + W] for i in range(COUNT)])


@pytest.fixture(scope="module")
def clip(pan, tmp_path_factory) -> Path:
    """The 3-second 10 fps 320x240 H.264 pan (COUNT frames)."""
    return _encode(pan, tmp_path_factory.mktemp("clip") / "pan.mp4", CODECS["h264.mp4"])


def _detect(ssd, ssd_labels, *args: str) -> subprocess.CompletedProcess:
    return run_cli("-m", "edgekit", "detect", str(ssd), *args, "--labels", str(ssd_labels), "--threshold", "0.4",
                   "--no-plan")


def _lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def _read(path: Path) -> tuple[list[np.ndarray], list[float], float, str]:
    """(RGB frames, their presentation times, the container's duration in s, codec) of a video file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        frames, times = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.pts * frame.time_base))
        duration = container.duration / 1_000_000 if container.duration else 0.0
    return frames, times, duration, codec


def _detections(doc: dict) -> list[Detection]:
    return [Detection(d["label"], d["class_id"], d["score"], tuple(d["box"])) for d in doc["detections"]]


def test_every_processed_frame_at_its_time_with_its_boxes_drawn(ssd, ssd_labels, clip, tmp_path):
    out = tmp_path / "out.mp4"
    r = _detect(ssd, ssd_labels, str(clip), "--save-video", str(out))
    assert r.returncode == 0, r.stderr
    docs = _lines(r.stdout)
    assert len(docs) == COUNT
    assert f"annotated video of {clip} -> {out}: H.264 (libx264) in mp4, 10 fps" in r.stderr
    frames, times, duration, codec = _read(out)
    assert codec == "h264" and len(frames) == COUNT
    assert {f.shape for f in frames} == {(H, W, 3)}
    assert times == pytest.approx([d["timestamp"] for d in docs], abs=0.5 / FPS)
    assert duration == pytest.approx(COUNT / FPS, abs=0.15)

    source, _, _, _ = _read(clip)  # what the model saw, frame by frame
    drawn = 0
    for doc, got, raw in zip(docs, frames, source):
        if not doc["detections"]:
            continue
        want = np.asarray(draw_detections(Image.fromarray(raw), _detections(doc))).astype(np.int16)
        got, raw = got.astype(np.int16), raw.astype(np.int16)
        ink = np.abs(want - raw).max(axis=2) > 60  # boxes and tags
        to_want, to_raw = np.abs(got - want)[ink].mean(), np.abs(got - raw)[ink].mean()
        assert to_want < 0.5 * to_raw, f"frame {doc['frame']}: the boxes are not where detect put them"
        assert np.abs(got - raw)[~ink].mean() < 6  # and nothing else was drawn
        drawn += 1
    assert drawn >= COUNT // 2


def test_sampled_frames_keep_their_real_timing(ssd, ssd_labels, clip, tmp_path):
    """--fps 4 on a 10 fps video: fewer frames, each shown at its own time — the video still lasts 3 s."""
    out = tmp_path / "sampled.mkv"
    r = _detect(ssd, ssd_labels, str(clip), "--fps", "4", "--save-video", str(out))
    assert r.returncode == 0, r.stderr
    stamps = [d["timestamp"] for d in _lines(r.stdout)]
    assert 10 <= len(stamps) <= 14
    frames, times, duration, _ = _read(out)
    assert len(frames) == len(stamps) and times == pytest.approx(stamps, abs=0.5 / FPS)
    assert duration == pytest.approx(stamps[-1] + 1 / FPS, abs=0.15)


def test_odd_sized_image_files_are_padded_and_failed_frames_skipped(ssd, ssd_labels, images, tmp_path):
    """Image files (odd sizes; one corrupt): one video of the good ones, 322x242, 30 images a second."""
    photo = Image.open(images / "coral_kite_and_cold.jpg").convert("RGB")
    folder = tmp_path / "shots"
    folder.mkdir()
    photo.crop((0, 0, 321, 241)).save(folder / "a.png")
    photo.crop((400, 300, 721, 541)).save(folder / "c.png")
    (folder / "b.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "shots.avi"
    r = _detect(ssd, ssd_labels, str(folder), "--save-video", str(out))
    assert r.returncode == 5, r.stderr  # the corrupt one failed; the others went on
    assert "b.jpg" in r.stderr and "Traceback" not in r.stderr and "MJPEG (mjpeg) in avi, 30 fps" in r.stderr
    assert len(_lines(r.stdout)) == 2
    frames, times, _, codec = _read(out)
    assert codec == "mjpeg" and len(frames) == 2 and times == pytest.approx([0.0, 1 / 30])
    assert frames[0].shape == (242, 322, 3)
    first = frames[0].astype(np.int16)
    assert np.abs(first[:, -1] - first[:, -2]).mean() < 8 and np.abs(first[-1] - first[-2]).mean() < 8  # edge repeated


def test_one_file_per_source_with_unique_names(ssd, ssd_labels, clip, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(clip, tmp_path / folder / "pan.mp4")
    out = tmp_path / "out.mkv"
    r = _detect(ssd, ssd_labels, str(tmp_path / "a" / "pan.mp4"), str(tmp_path / "b" / "pan.mp4"),
                "--save-video", str(out))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.glob("out*")) == ["out-pan-1.mkv", "out-pan.mkv"]
    docs = _lines(r.stdout)
    for name, source in (("out-pan.mkv", "a"), ("out-pan-1.mkv", "b")):
        mine = [d for d in docs if d["source"] == str(tmp_path / source / "pan.mp4")]
        frames, times, _, _ = _read(tmp_path / name)
        assert len(frames) == len(mine) == COUNT
        assert times == pytest.approx([d["timestamp"] for d in mine], abs=0.5 / FPS)


def test_without_h264_it_says_which_codec_it_fell_back_to(ssd, ssd_labels, clip, tmp_path, monkeypatch, capsys):
    """A PyAV build without an H.264 encoder: MPEG-4 Part 2 in the .mp4, said in the log line."""
    from edgekit.cli import main

    monkeypatch.setattr(av, "codecs_available", set(av.codecs_available) - {"libx264", "libopenh264"})
    out = tmp_path / "fallback.mp4"
    code = main(["detect", str(ssd), str(clip), "--labels", str(ssd_labels), "--no-plan", "--save-video", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "MPEG-4 Part 2 (mpeg4) in mp4, 10 fps (this PyAV's FFmpeg has no libx264 encoder)" in err
    frames, times, _, codec = _read(out)
    assert codec == "mpeg4" and len(frames) == COUNT and times[-1] == pytest.approx((COUNT - 1) / FPS)


def test_codec_choice_follows_the_extension_and_what_ffmpeg_has(tmp_path):
    codecs = [VideoWriter(str(tmp_path / f"a{ext}")).codec for ext in (".mp4", ".mov", ".mkv", ".avi")]
    assert codecs == ["libx264", "libx264", "libx264", "mjpeg"]
    assert VideoWriter(str(tmp_path / "a.mkv"), available={"mjpeg"}).codec == "mjpeg"
    assert not list(tmp_path.iterdir())  # nothing is created before the first frame
    with pytest.raises(ConfigError, match="none of the encoders libx264, libopenh264, mpeg4 for .mp4"):
        VideoWriter(str(tmp_path / "a.mp4"), available={"mjpeg"})


@pytest.mark.parametrize("where, words", [
    ("missing/out.mp4", "does not exist; create the folder"),
    ("file.txt/out.mp4", "is not a folder"),
    ("out.webm", "expected a name ending in .mp4, .m4v, .mov, .mkv, .avi, found .webm"),
    (".", "it is a folder"),
])
def test_a_bad_output_path_is_one_line_and_exit_2(ssd, ssd_labels, clip, tmp_path, where, words):
    (tmp_path / "file.txt").write_text("a file, not a folder")
    r = _detect(ssd, ssd_labels, str(clip), "--save-video", str(tmp_path / where))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("edgekit: error: cannot write the video ") and words in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_a_folder_we_cannot_write_in_is_one_line_and_exit_2(ssd, ssd_labels, clip, tmp_path):
    """Refused before the run when the folder says so; root may write anywhere by permission bits, so
    as root the file system refuses at the first frame (sysfs), and the run ends there just as clearly."""
    if os.geteuid() == 0:
        out, words = Path("/sys/edgekit-test.mp4"), "Permission denied"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        out, words = locked / "out.mp4", f"no permission to write in {locked}"
    r = _detect(ssd, ssd_labels, str(clip), "--save-video", str(out))
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"edgekit: error: cannot write the video {out}: {words}"
    assert not out.exists()


def test_sigterm_mid_run_leaves_a_playable_video_of_what_was_printed(ssd, ssd_labels, pan, tmp_path):
    """`edgekit run` with `save_video` in its settings file, stopped by SIGTERM midway: the MP4 is
    finished (encoder flushed, index written) and holds exactly the frames that were printed."""
    long_clip = _encode(np.concatenate([pan] * 10), tmp_path / "long.mp4", CODECS["h264.mp4"])  # 30 s
    out = tmp_path / "stopped.mp4"
    settings = tmp_path / "service.toml"
    settings.write_text(f'model = "{ssd}"\nsources = ["{long_clip}"]\nlabels = "{ssd_labels}"\nplan = false\n'
                        f'threshold = 0.4\nsave_video = "{out}"\n')
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "edgekit", "run", str(settings)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    printed = []
    try:
        for line in proc.stdout:
            printed.append(line)
            if len(printed) == 20:
                proc.send_signal(signal.SIGTERM)
                break
        rest, err = finish(proc, 120)
    finally:
        proc.kill()
    docs = _lines("".join(printed) + rest)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert 20 <= len(docs) < 10 * COUNT  # it stopped early
    frames, times, duration, codec = _read(out)
    assert codec == "h264" and len(frames) == len(docs)
    assert times == pytest.approx([d["timestamp"] for d in docs], abs=0.5 / FPS)
    assert duration == pytest.approx(docs[-1]["timestamp"] + 1 / FPS, abs=0.15)


def test_missing_video_extra_is_one_line(monkeypatch, tmp_path):
    from edgekit.sinks import AnnotatedVideo

    monkeypatch.setitem(sys.modules, "av", None)  # what `import av` meets when PyAV is not installed
    with pytest.raises(ConfigError) as caught:
        AnnotatedVideo(str(tmp_path / "out.mp4"))
    message = str(caught.value)
    assert "\n" not in message and "writing video files needs PyAV" in message
    assert "pip install 'edgekit[video]'" in message


def test_avi_gaps_are_shortened_to_a_second(pan, tmp_path):
    """AVI counts frames, so a gap is empty frames: an hour's outage must not write an hour of
    nothing (nor fail, as it did); MP4 keeps the real time."""
    for name in ("gap.avi", "gap.mkv"):
        writer = VideoWriter(str(tmp_path / name), fps=10)
        for t in (0.0, 0.1, 0.2, 3600.0, 3600.1):
            writer.write(pan[0], t)
        writer.close()
        frames, times, _duration, _codec = _read(tmp_path / name)
        assert len(frames) == 5
        if name.endswith(".avi"):
            assert times[3] - times[2] == pytest.approx(1.0, abs=0.11) and times[4] - times[3] == pytest.approx(0.1)
            assert (tmp_path / name).stat().st_size < 2_000_000
        else:
            assert times[3] == pytest.approx(3600.0, abs=0.1)


def test_two_watched_folders_make_two_videos(ssd, ssd_labels, images, tmp_path):
    """Frames of a watched folder are named by file: the sink files them under their source."""
    from edgekit import Detector
    from edgekit.runner import RunOptions, Runner, run
    from edgekit.sinks import AnnotatedVideo
    from edgekit.sources import WatchedFolder

    sources = []
    for cam in ("cam1", "cam2"):
        (tmp_path / cam).mkdir()
        for i in range(2):
            shutil.copyfile(images / "table.jpg", tmp_path / cam / f"{i}.jpg")
        sources.append(WatchedFolder(str(tmp_path / cam), poll=0.05, settle=0.1))
    runner = Runner(sources, Detector(ssd, labels_path=ssd_labels), RunOptions(keep_images=True))
    sink = AnnotatedVideo(str(tmp_path / "out.mkv"), sources)
    seen = []

    class StopAfterFour:
        def write(self, fr):
            seen.append(fr)
            if len(seen) == 4:
                runner.stop()

        def close(self):
            pass

    run(runner, [sink, StopAfterFour()])
    assert sorted(p.name for p in tmp_path.glob("out-*.mkv")) == ["out-cam1.mkv", "out-cam2.mkv"]
    assert all(len(_read(p)[0]) == 2 for p in tmp_path.glob("out-*.mkv"))


def test_a_file_gone_or_rewritten_before_annotation_is_left_out(ssd, ssd_labels, images, tmp_path, capsys):
    """--save-annotated on a watched folder: a file moved away, or rewritten (latest.jpg), between
    detection and drawing is left out with one line; the run goes on."""
    from edgekit import Detector
    from edgekit.runner import FrameResult
    from edgekit.sinks import AnnotatedImages
    from edgekit.sources import ImageFiles

    det = Detector(ssd, labels_path=ssd_labels)
    (tmp_path / "in").mkdir()
    for name in ("gone.jpg", "rewritten.jpg", "kept.jpg"):
        shutil.copyfile(images / "table.jpg", tmp_path / "in" / name)
    frames = list(ImageFiles([str(tmp_path / "in")]).frames())
    results = [FrameResult(f, det.detect(f.path)) for f in frames]
    (tmp_path / "in" / "gone.jpg").unlink()
    os.utime(tmp_path / "in" / "rewritten.jpg", ns=(1, 1))
    sink = AnnotatedImages(str(tmp_path / "out"))
    for fr in results:
        sink.write(fr)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["kept.jpg"]
    err = capsys.readouterr().err
    assert "left out" in err and "gone.jpg" in err and "rewritten.jpg: it was rewritten" in err
