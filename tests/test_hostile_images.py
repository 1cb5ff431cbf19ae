"""Images too large for the memory left (issue 16): refused before decoding, with one line, and the
batch goes on — under a real 300 MB cgroup limit (../shared/tools/constrained)."""

from __future__ import annotations

import json

import pytest
from hostile import run_constrained
from PIL import Image

from conftest import EXAMPLES
from edgekit.errors import ImageError
from edgekit.image import check_decode, decode_bytes

SHAPES = EXAMPLES / "shapes" / "shapes_int8.tflite"


@pytest.mark.parametrize("extra", [[], ["--motion"]], ids=["detect", "motion"])
def test_a_9000px_png_is_refused_under_300mb_and_the_batch_goes_on(tmp_path, extra):
    """With --motion the gate's grey copy is decoded first: it is refused there the same way."""
    big = tmp_path / "a_big.png"  # 81 Mpixel: under Pillow's bomb limit (89 Mpixel), 310 MiB decoded
    Image.new("RGB", (9000, 9000), (90, 120, 30)).save(big)
    small = tmp_path / "b_small.png"
    small.write_bytes((EXAMPLES / "shapes" / "images" / "scene_0.png").read_bytes())
    r = run_constrained("detect", str(SHAPES), str(big), str(small), *extra, mem="300M")
    assert not r.oom_killed, r
    assert r.rc == ImageError.exit_code, r
    assert [json.loads(line)["source"] for line in r.stdout.splitlines()] == [str(small)]
    refused = [line for line in r.lines if "a_big.png" in line]
    assert len(refused) == 1 and "MiB" in refused[0] and "downscale" in refused[0], r.lines


def test_decode_estimate_counts_pillows_four_bytes_a_pixel():
    assert decode_bytes((9000, 9000), "RGB") > 9000 * 9000 * 4
    assert decode_bytes((100, 100), "L") < decode_bytes((100, 100), "RGB") + 100 * 100 * 4 + 1


def test_more_than_pillows_bomb_limit_is_refused_from_the_header(tmp_path):
    with Image.open(EXAMPLES / "shapes" / "images" / "scene_0.png") as img:
        img._size = (20000, 20000)  # what a hostile header claims
        with pytest.raises(ImageError, match="decompression bomb"):
            check_decode(img, "x.png")
