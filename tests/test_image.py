"""Decoding and preprocessing: draft mode, EXIF, bad files, transforms, input encoders."""

import numpy as np
import pytest
from PIL import Image

from edgekit import ImageError
from edgekit.image import LoadedImage, encode_pixels, fit_to_input, load_image, make_encoder


def _jpeg(path, size=(1920, 1080), orientation=None):
    img = Image.new("RGB", size, (10, 20, 30))
    img.paste((200, 0, 0), (0, 0, size[0] // 4, size[1] // 4))  # a red block top-left
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    img.save(path, quality=90, exif=exif.tobytes())
    return path


def test_draft_decodes_small_but_reports_true_size(tmp_path, images):
    loaded = load_image(images / "coral_cat_1080p.jpg", target=(300, 300))
    assert (loaded.width, loaded.height) == (1920, 1080)
    assert loaded.image.width < 1920 and loaded.image.width >= 300 and loaded.image.height >= 300


def test_exif_orientation_is_applied(tmp_path):
    path = _jpeg(tmp_path / "rot.jpg", (400, 200), orientation=6)  # stored landscape, shown portrait
    loaded = load_image(path, target=(100, 100))
    assert (loaded.width, loaded.height) == (200, 400)
    assert loaded.image.width < loaded.image.height
    arr = np.asarray(loaded.image)
    assert arr[5, -5, 0] > 150 and arr[5, 5, 0] < 100  # red block rotated to the top-right


@pytest.mark.parametrize("content,match", [
    (b"", "empty"),
    (b"this is plainly not an image\n" * 10, "not an image"),
])
def test_bad_files(tmp_path, content, match):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(ImageError, match=match) as err:
        load_image(p)
    assert str(p) in str(err.value)


def test_truncated_jpeg(tmp_path, images):
    data = (images / "coral_kite_and_cold.jpg").read_bytes()
    p = tmp_path / "trunc.jpg"
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(p)


def test_decompression_bomb_refused(tmp_path):
    p = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(p)  # 144 Mpx in a few kB
    assert p.stat().st_size < 100_000
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(p)


def test_missing_and_directory(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)


def test_array_inputs():
    assert load_image(np.zeros((10, 20, 3), np.uint8)).width == 20
    assert load_image(np.zeros((10, 20), np.uint8)).image.mode == "RGB"
    with pytest.raises(ImageError, match="uint8"):
        load_image(np.zeros((10, 20, 3), np.float32))
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((10, 20, 2), np.uint8))


def test_rgba_png_composited_on_white():
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert np.asarray(load_image(img).image)[0, 0].tolist() == [255, 255, 255]


def test_letterbox_transform_maps_back_to_image():
    img = Image.new("RGB", (400, 200))
    loaded = LoadedImage(img, 400, 200, "x")
    pixels, t = fit_to_input(loaded, (100, 100), "letterbox", 114)
    assert pixels.shape == (100, 100, 3) and (t.pad_x, t.pad_y) == (0, 25)
    assert pixels[0, 0].tolist() == [114, 114, 114] and pixels[50, 50].tolist() == [0, 0, 0]
    # A box covering the content area in model space is the whole image.
    box = np.array([[0.0, 0.25, 1.0, 0.75]], np.float32)
    assert np.allclose(t.to_image(box), [[0, 0, 400, 200]])


def _tf_bilinear(img, tw, th):
    """tf.image.resize(method='bilinear', antialias=False): half-pixel centres, 2x2 taps."""
    h, w = img.shape[:2]
    ys = np.clip((np.arange(th) + 0.5) * h / th - 0.5, 0, h - 1)
    xs = np.clip((np.arange(tw) + 0.5) * w / tw - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    f = img.astype(np.float64)
    top = f[y0][:, x0] * (1 - fx) + f[y0][:, x1] * fx
    bottom = f[y1][:, x0] * (1 - fx) + f[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def test_resize_matches_tensorflow_bilinear():
    # Detectors are trained on TF/OpenCV bilinear (no low-pass filter); Pillow's resize() would
    # antialias and shift scores. We must match the training resize within rounding.
    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    loaded = LoadedImage(Image.fromarray(src), 80, 60, "x")
    pixels, _ = fit_to_input(loaded, (56, 42), "stretch")
    assert np.abs(pixels.astype(float) - _tf_bilinear(src, 56, 42)).max() <= 1.0 + 1e-9
    antialiased = np.asarray(Image.fromarray(src).resize((56, 42), Image.BILINEAR)).astype(float)
    assert np.abs(antialiased - _tf_bilinear(src, 56, 42)).max() > 10  # the thing we avoid


@pytest.mark.parametrize("dtype,quant,mean,std,kind", [
    (np.uint8, (0.0078125, 128), None, None, "copy"),
    (np.uint8, (0.0078125, 128), (127.5,), (127.5,), "copy"),
    (np.int8, (1 / 255, -128), None, None, "flip"),
    (np.int8, (1 / 255, -128), (0.0,), (255.0,), "flip"),
    (np.uint8, (0.01, 110), (127.5,), (128.0,), "affine"),
    (np.float32, (0.0, 0), (127.5,), (127.5,), "float"),
])
def test_encoders(dtype, quant, mean, std, kind):
    enc = make_encoder(dtype, quant, mean, std)
    assert enc.kind == kind
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    out = encode_pixels(pixels, enc)
    assert out.shape == (1, 16, 16, 3) and out.dtype == dtype
    m = np.asarray(mean or ((0.0,) if dtype == np.float32 else (quant[1] + (128 if dtype == np.int8 else 0),)))
    s = np.asarray(std or ((255.0,) if dtype == np.float32 else (1 / quant[0],)))
    expected = (pixels.astype(np.float64) - m) / s
    if dtype != np.float32:
        real = (out[0].astype(np.float64) - quant[1]) * quant[0]
        steps = 1.0 if kind in ("copy", "flip") else 0.51  # fast paths: within one step by design
        assert np.abs(real - expected).max() <= quant[0] * steps + 1e-6
    else:
        assert np.allclose(out[0], expected, atol=1e-5)


def test_bgr_encoder_swaps_channels():
    enc = make_encoder(np.float32, (0.0, 0), (0.0,), (1.0,), "BGR")
    px = np.array([[[1, 2, 3]]], np.uint8)
    assert encode_pixels(px, enc)[0, 0, 0].tolist() == [3, 2, 1]


def test_pil_image_with_exif_orientation_is_rotated(tmp_path):
    path = _jpeg(tmp_path / "rot.jpg", (400, 200), orientation=6)
    loaded = load_image(Image.open(path))
    assert (loaded.width, loaded.height) == (200, 400)


@pytest.mark.parametrize("src,dst", [((1920, 1080), (640, 640)), ((1920, 1080), (300, 300)), ((640, 480), (300, 300))])
def test_resize_scratch_bytes_is_what_the_resize_holds(src, dst):
    """The planner counts resize_scratch_bytes per decoding thread: it must match what a fresh
    thread's resize really allocates (numpy reports its buffers to tracemalloc)."""
    import threading
    import tracemalloc

    from edgekit.image import _resize, resize_scratch_bytes

    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (src[1], src[0], 3), dtype=np.uint8))
    peak = []

    def run():  # a new thread: its scratch buffers start empty
        tracemalloc.start()
        out = _resize(img, dst)
        peak.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert out.shape == (dst[1], dst[0], 3)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    predicted = resize_scratch_bytes(src, dst)
    factor = int(min(src[0] / dst[0], src[1] / dst[1]))
    if factor >= 2:  # Pillow's box reduction is allocated by Pillow, which tracemalloc does not see
        peak[0] += -(-src[0] // factor) * -(-src[1] // factor) * 3
    assert 0.9 * predicted <= peak[0] <= 1.05 * predicted + 65536, (peak[0], predicted)
