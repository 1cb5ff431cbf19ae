"""Which file formats edgekit decodes (edgekit.image.LOCAL_FORMATS): raster formats Pillow decodes
in-process. Every one of them decodes (real files written by Pillow); an EPS file — which Pillow
would hand to Ghostscript — and Pillow's other formats are refused in one line naming what was
found and what is accepted, exit 5 in a batch that goes on; Ghostscript never runs.
"""

import os
import stat
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from edgekit import ImageError
from edgekit.image import LOCAL_FORMATS, load_image

# A real Encapsulated PostScript file, written by hand: a grey 64x48 box.
EPS = b"""%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 64 48
%%Title: a grey box
%%EndComments
0.5 setgray
0 0 64 48 rectfill
showpage
%%EOF
"""

GREY, RED = (90, 90, 90), (220, 20, 20)

# (Pillow format id it decodes as, file name, mode written, save options)
ACCEPTED = [
    ("JPEG", "photo.jpg", "RGB", {"quality": 95}),
    ("JPEG", "stereo.mpo", "RGB", {"save_all": True}),  # a camera's MPO: JPEG frames, read as JPEG
    ("PNG", "alpha.png", "RGBA", {}),
    ("PNG", "grey16.png", "I;16", {}),
    ("TIFF", "grey16.tiff", "I;16", {}),
    ("GIF", "palette.gif", "P", {}),
    ("BMP", "plain.bmp", "RGB", {}),
    ("WEBP", "lossless.webp", "RGB", {"lossless": True}),
    ("TIFF", "lzw.tiff", "RGB", {"compression": "tiff_lzw"}),
    ("TIFF", "jpeg.tif", "RGB", {"compression": "jpeg"}),
    ("PPM", "colour.ppm", "RGB", {}),
    ("PPM", "grey.pgm", "L", {}),
    ("PPM", "bitmap.pbm", "1", {}),
]


def _picture(mode: str) -> Image.Image:
    """A grey 64x48 image with a red block top-left, in ``mode``."""
    img = Image.new("RGB", (64, 48), GREY)
    img.paste(RED, (0, 0, 16, 12))
    if mode == "I;16":
        return img.convert("L").convert("I").point(lambda v: v * 256).convert("I;16")
    return img.convert(mode)


def _expected(mode: str) -> tuple[np.ndarray, np.ndarray]:
    """The RGB the block and the background should decode to, for ``mode`` (16-bit grey: its top byte)."""
    img = _picture("L" if mode == "I;16" else mode).convert("RGB")
    arr = np.asarray(img)
    return arr[2, 2].astype(int), arr[40, 50].astype(int)


def test_every_format_accepted_is_tested():
    assert {fmt for fmt, *_ in ACCEPTED} == set(LOCAL_FORMATS)


@pytest.mark.parametrize("fmt,name,mode,options", ACCEPTED, ids=[a[1] for a in ACCEPTED])
def test_every_accepted_format_decodes(tmp_path, fmt, name, mode, options):
    path = tmp_path / name
    if name.endswith(".mpo"):
        _picture("RGB").save(path, "MPO", append_images=[_picture("RGB")], **options)
    else:
        _picture(mode).save(path, **options)
    with Image.open(path) as img:
        assert img.format in (fmt, "MPO")
    loaded = load_image(path)
    assert loaded.image.mode == "RGB" and (loaded.width, loaded.height) == (64, 48)
    arr = np.asarray(loaded.image).astype(int)
    block, background = _expected(mode)
    tolerance = 12 if fmt == "JPEG" or options.get("compression") == "jpeg" else 1  # lossy, else exact
    assert np.abs(arr[2, 2] - block).max() <= tolerance, (arr[2, 2], block)
    assert np.abs(arr[40, 50] - background).max() <= tolerance, (arr[40, 50], background)


@pytest.mark.parametrize("fmt,name", [("PCX", "old.pcx"), ("SGI", "irix.sgi"), ("ICO", "icon.ico")])
def test_other_pillow_formats_are_refused_naming_them(tmp_path, fmt, name):
    path = tmp_path / name
    _picture("RGB").save(path, fmt)
    with pytest.raises(ImageError) as err:
        load_image(path)
    message = str(err.value)
    assert str(path) in message and f"({fmt})" in message and "expected JPEG, PNG, GIF, BMP, WebP, TIFF" in message
    assert "\n" not in message


def test_a_damaged_header_of_an_accepted_format_says_so(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(ImageError, match="damaged PNG file"):
        load_image(path)


@pytest.fixture
def ghostscript_spy(tmp_path):
    """A ``gs`` first on PATH that records each time it is run (and fails), so a test sees whether
    anything started Ghostscript."""
    bin_dir, calls = tmp_path / "spybin", tmp_path / "gs_calls.txt"
    bin_dir.mkdir()
    spy = bin_dir / "gs"
    spy.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n[ \"$1\" = --version ] && echo 10.0 && exit 0\nexit 1\n")
    spy.chmod(spy.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return env, calls


def test_the_spy_sees_pillow_run_ghostscript_on_eps(tmp_path, ghostscript_spy):
    """What the refusal prevents: Pillow's own EPS reader runs ``gs`` on the file."""
    env, calls = ghostscript_spy
    (tmp_path / "drawing.eps").write_bytes(EPS)
    code = "from PIL import Image\ntry:\n    Image.open('drawing.eps').load()\nexcept Exception:\n    pass\n"
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, timeout=120, check=True)
    assert "drawing.eps" in calls.read_text()


def test_eps_is_refused_in_a_batch_without_running_ghostscript(tmp_path, ghostscript_spy, ssd, images):
    env, calls = ghostscript_spy
    eps, disguised = tmp_path / "drawing.eps", tmp_path / "snapshot.jpg"  # a camera folder's name
    eps.write_bytes(EPS)
    disguised.write_bytes(EPS)
    r = subprocess.run([sys.executable, "-m", "edgekit", "detect", str(ssd), str(eps), str(disguised),
                        str(images / "table.jpg")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 5, r.stderr
    assert not calls.exists(), calls.read_text()
    refusals = [line for line in r.stderr.splitlines() if "Encapsulated Postscript (EPS)" in line]
    assert len(refusals) == 2 and "Traceback" not in r.stderr, r.stderr
    assert all("expected JPEG, PNG, GIF, BMP, WebP, TIFF or PPM/PGM/PBM" in line for line in refusals)
    assert "table.jpg" in r.stdout  # the batch went on
