"""Annotated images and videos show what the camera saw: 0600 files (and a 0700 folder when edgekit
creates it) whatever the umask, like the rest of edgekit's state (issue 16). Real runs, real umask."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from conftest import EXAMPLES, REPO


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_annotated_images_and_video_are_private_under_umask_000(tmp_path):
    out, video = tmp_path / "annotated", tmp_path / "run.mkv"
    old = tmp_path / "annotated-old"
    old.mkdir(mode=0o755)
    (old / "scene_0.jpg").write_bytes(b"stale")
    os.chmod(old / "scene_0.jpg", 0o666)  # a file from an earlier run is tightened when rewritten
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    for folder in (out, old):
        r = subprocess.run([sys.executable, "-m", "edgekit", "detect", str(EXAMPLES / "shapes" / "shapes_int8.tflite"),
                            str(EXAMPLES / "shapes" / "images"), "--save-annotated", str(folder),
                            "--save-video", str(video)],
                           capture_output=True, text=True, env=env, cwd=REPO, timeout=600,
                           preexec_fn=lambda: os.umask(0))
        assert r.returncode == 0, r.stderr
        images = sorted(folder.glob("*.jpg"))
        assert images and {oct(_mode(p)) for p in images} == {oct(0o600)}
        assert _mode(video) == 0o600 and video.stat().st_size > 0
    assert _mode(out) == 0o700  # made by edgekit
    assert _mode(old) == 0o755  # the user's own folder is left as it is
