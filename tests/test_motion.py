"""Motion detection on a real photo with real sensor-like noise: what moves, what must not, masks,
recalibration, sizes and strides, options and masks rejected with one line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import iou
from edgekit.errors import ConfigError, ImageError
from edgekit.motion import Motion, MotionDetector, MotionOptions, grey_from_image, grey_from_rgb, parse_mask

W, H = 640, 360
FPS = 10.0
SQUARE = 60  # pixels: 1.6% of the frame, well over the default min_area


@pytest.fixture(scope="module")
def photo(images) -> np.ndarray:
    """A textured static scene: a real photo, grey, 640x360, as float for adding noise."""
    with Image.open(images / "coral_cat_720p.jpg") as img:
        return np.asarray(img.convert("L").resize((W, H), Image.BILINEAR), dtype=np.float32)


class Scene:
    """Frames of the photo with Gaussian noise, and things pasted on it."""

    def __init__(self, photo: np.ndarray, sigma: float = 2.0, seed: int = 0) -> None:
        self.photo, self.sigma = photo, sigma
        self.rng = np.random.default_rng(seed)

    def frame(self, squares=(), gain: float = 1.0) -> np.ndarray:
        """A noisy frame; each square (x, y, side) a checkerboard of 6-pixel cells, 30 and 230 (it
        differs from any background somewhere along every edge)."""
        f = self.photo * gain
        if self.sigma:
            f = f + self.rng.normal(0.0, self.sigma, f.shape).astype(np.float32)
        for x, y, s in squares:
            yy, xx = np.mgrid[0:s, 0:s]
            f[y:y + s, x:x + s] = np.where((yy // 6 + xx // 6) % 2, 230, 30)
        return np.clip(f, 0, 255).astype(np.uint8)


def feed(detector: MotionDetector, frames, t0: float = 0.0, **kw) -> list[Motion]:
    return [detector.update(f, t0 + i / FPS, **kw) for i, f in enumerate(frames)]


def square_box(x: int, y: int, s: int = SQUARE) -> tuple[int, int, int, int]:
    return (x, y, x + s, y + s)


def best_iou(motion: Motion, box) -> float:
    return max((iou(r, box) for r in motion.regions), default=0.0)


@pytest.mark.parametrize("sigma", [2, 4])
def test_noise_on_a_static_scene_is_never_motion(photo, sigma):
    scene = Scene(photo, sigma)
    results = feed(MotionDetector(), (scene.frame() for _ in range(100)))
    assert not any(m.moving or m.recalibrated for m in results)
    assert max(m.fraction for m in results) < 0.001  # not even close: a handful of pixels at most


def test_the_first_frame_is_the_background_not_motion(photo):
    scene = Scene(photo)
    detector = MotionDetector()
    first = detector.update(scene.frame([(300, 100, SQUARE)]), 0.0)
    assert first == Motion(False, (), 0.0)
    # the square that was there at the start is in the background: gone, it leaves a ghost...
    assert detector.update(scene.frame(), 0.1).moving
    detector.reset()
    assert not detector.update(scene.frame(), 0.2).moving  # ...a reset forgets it


def test_a_moving_square_is_motion_and_its_region_is_the_square(photo):
    scene = Scene(photo)
    detector = MotionDetector()
    detector.update(scene.frame(), 0.0)
    for i in range(1, 30):
        x = 40 + 12 * i  # 120 px/s: each frame it overlaps its last position
        m = detector.update(scene.frame([(x, 150, SQUARE)]), i / FPS)
        assert m.moving and not m.recalibrated
        assert best_iou(m, square_box(x, 150)) > 0.7, (i, m.regions)
        assert len(m.regions) == 1  # no trail behind it: changed pixels do not feed the background


def test_a_decimated_input_gives_regions_in_source_pixels(photo, tmp_path):
    scene = Scene(photo)
    box = square_box(400, 200)
    rgb = [np.repeat(scene.frame(sq)[:, :, None], 3, axis=2) for sq in ([], [(400, 200, SQUARE)])]
    # an RGB frame sampled down by grey_from_rgb
    detector = MotionDetector()
    greys = [grey_from_rgb(f, height=90) for f in rgb]
    assert greys[0].shape == (90, 160)
    m = feed(detector, greys, frame_size=(W, H))[-1]
    assert m.moving and best_iou(m, box) > 0.6, m.regions
    # a JPEG's draft decode (1/2 or 1/4 of the frame, luma only)
    paths = []
    for i, f in enumerate(rgb):
        paths.append(tmp_path / f"{i}.jpg")
        Image.fromarray(f).save(paths[-1], quality=90)
    detector = MotionDetector(frame_size=(W, H))
    decoded = [grey_from_image(p, height=90) for p in paths]
    assert decoded[0][1] == (W, H) and 90 <= decoded[0][0].shape[0] < 180
    m = [detector.update(g, i / FPS, frame_size=size) for i, (g, size) in enumerate(decoded)][-1]
    assert m.moving and best_iou(m, box) > 0.6, m.regions


def test_a_large_object_entering_is_motion_not_a_recalibration(photo):
    scene = Scene(photo)
    big = (60, 20, 300)  # 300x300 of 640x360: 39% of the frame at once
    detector = MotionDetector()
    m = feed(detector, [scene.frame(), scene.frame([big])])[-1]
    assert m.moving and not m.recalibrated and m.fraction > 0.2
    assert best_iou(m, square_box(60, 20, 300)) > 0.7


def test_lights_on_recalibrates_then_motion_is_seen_again(photo):
    scene = Scene(photo)
    detector = MotionDetector()
    before = feed(detector, [scene.frame() for _ in range(5)])
    jump = detector.update(scene.frame(gain=1.3), 0.5)
    assert jump.recalibrated and not jump.moving and jump.regions == () and jump.fraction > 0.3
    after = feed(detector, [scene.frame(gain=1.3) for _ in range(5)], t0=0.6)
    moved = detector.update(scene.frame([(200, 100, SQUARE)], gain=1.3), 1.1)
    assert not any(m.moving or m.recalibrated for m in before + after)
    assert moved.moving and best_iou(moved, square_box(200, 100)) > 0.7


def test_recalibrate_none_reports_the_change_as_motion(photo):
    scene = Scene(photo)
    detector = MotionDetector(MotionOptions(recalibrate=None))
    m = feed(detector, [scene.frame(), scene.frame(gain=1.3)])[-1]
    assert m.moving and not m.recalibrated


def test_a_mask_over_the_mover_hides_it(photo):
    scene = Scene(photo)
    frames = [scene.frame([(100 + 10 * i, 100, SQUARE)]) for i in range(10)]
    pixels = parse_mask("door=80,80,300,80,300,180,80,180")
    fractions = parse_mask("0.125,0.22,0.47,0.22,0.47,0.5,0.125,0.5")  # the same area
    for mask in (pixels, fractions):
        results = feed(MotionDetector(MotionOptions(masks=(mask,))), frames)
        assert not any(m.moving for m in results) and max(m.fraction for m in results) == 0.0
    beside = parse_mask("side=400,0,640,0,640,360,400,360")
    assert any(m.moving for m in feed(MotionDetector(MotionOptions(masks=(beside,))), frames))


def test_a_parked_object_stops_being_motion(photo):
    scene = Scene(photo)
    detector = MotionDetector(MotionOptions(absorb_after=1.0))
    detector.update(scene.frame(), 0.0)
    parked = [detector.update(scene.frame([(300, 150, SQUARE)]), i / FPS) for i in range(1, 31)]
    assert all(m.moving for m in parked[:9])  # under 1 s
    assert not any(m.moving for m in parked[12:])  # a little over 1 s: it is background now
    gone = detector.update(scene.frame(), 3.1)  # it leaves: motion again, where it stood
    assert gone.moving and best_iou(gone, square_box(300, 150)) > 0.7


@pytest.mark.parametrize("fps", [5.0, 30.0])
def test_alpha_is_per_second_whatever_the_frame_rate(photo, fps):
    """A region brightened by 20 levels (under the threshold) is followed by alpha per second; a
    second +20 later is motion while the background is still more than 25 levels away: until
    ln(4) / -ln(0.8) = 6.2 s at alpha 0.2, at any frame rate."""
    scene = Scene(photo, sigma=0)
    base = scene.frame()
    region = (slice(100, 200), slice(100, 200))
    plus20, plus40 = base.copy(), base.copy()
    plus20[region] = np.clip(base[region].astype(int) + 20, 0, 255)
    plus40[region] = np.clip(base[region].astype(int) + 40, 0, 255)
    seen = {}
    for later in (5.0, 8.0):
        detector = MotionDetector()
        detector.update(base, 0.0)
        n = int(later * fps)
        for i in range(1, n):
            detector.update(plus20, i / fps)
        seen[later] = detector.update(plus40, n / fps).moving
    assert seen == {5.0: True, 8.0: False}


def test_strided_and_non_contiguous_inputs_give_the_same_result(photo):
    scene = Scene(photo)
    frames = [scene.frame(), scene.frame([(250, 120, SQUARE)])]
    expected = feed(MotionDetector(), frames)[-1]
    assert expected.moving

    def padded(f):  # a Y plane with row padding, as a decoder's line size gives it
        buf = np.zeros((H, W + 64), np.uint8)
        buf[:, :W] = f
        return buf[:, :W]

    for view in (padded, np.asfortranarray):
        got = feed(MotionDetector(), [view(f) for f in frames])[-1]
        assert got == expected, view
    flipped = feed(MotionDetector(), [f[::-1, ::-1] for f in frames])[-1]  # negative strides
    assert flipped.moving and best_iou(flipped, square_box(W - 250 - SQUARE, H - 120 - SQUARE)) > 0.7


def test_a_new_frame_size_restarts(photo):
    scene = Scene(photo)
    mask = parse_mask("0.9,0.9,1,0.9,1,1")
    detector = MotionDetector(MotionOptions(masks=(mask,)), frame_size=(W, H))
    feed(detector, [scene.frame(), scene.frame([(100, 100, SQUARE)])])
    small = [f[::2, ::2].copy() for f in (scene.frame(), scene.frame(), scene.frame([(300, 100, 60)]))]
    results = feed(detector, small, t0=1.0)
    assert [m.moving for m in results] == [False, False, True]  # its first frame is a background
    assert best_iou(results[-1], square_box(150, 50, 30)) > 0.6
    assert not detector.update(scene.frame(), 2.0).moving  # and back


def test_time_going_back_restarts(photo):
    scene = Scene(photo)
    detector = MotionDetector()
    feed(detector, [scene.frame(), scene.frame()], t0=10.0)
    assert not detector.update(scene.frame([(100, 100, SQUARE)]), 0.0).moving  # a new background
    assert not detector.update(scene.frame([(100, 100, SQUARE)]), 0.1).moving


def test_grey_from_rgb_is_bt601_luma(photo):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    exact = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    grey = grey_from_rgb(rgb)
    assert grey.dtype == np.uint8 and grey.shape == (48, 64)
    assert np.abs(grey - exact).max() <= 1.5
    assert grey_from_rgb(rgb, height=16).shape == (16, 22)  # stride 3
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        grey_from_rgb(rgb[..., 0])


def test_grey_from_image_reads_only_what_it_needs(images, tmp_path):
    grey, size = grey_from_image(images / "coral_cat_1080p.jpg", height=100)
    assert size == (1920, 1080) and grey.dtype == np.uint8 and grey.ndim == 2
    assert 100 <= grey.shape[0] <= 270  # JPEG draft scales by 1/2, 1/4, 1/8: 1080/8 = 135
    with Image.open(images / "coral_cat_1080p.jpg") as img:
        assert grey_from_image(img, height=100)[1] == (1920, 1080)
    with Image.open(images / "coral_cat_720p.jpg") as img:  # stored sideways: EXIF orientation 6
        exif = img.getexif()
        exif[0x0112] = 6
        img.save(tmp_path / "sideways.jpg", exif=exif)
    grey, size = grey_from_image(tmp_path / "sideways.jpg", height=100)
    assert size == (720, 1280) and grey.shape[0] > grey.shape[1]  # upright, as detections see it
    with pytest.raises(ImageError, match="no such file"):
        grey_from_image(tmp_path / "missing.jpg")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(ImageError, match="not a readable image"):
        grey_from_image(tmp_path / "text.jpg")


@pytest.mark.parametrize("field, value", [
    ("threshold", 0), ("threshold", 300), ("threshold", "25"), ("threshold", float("nan")),
    ("min_area", -0.1), ("min_area", 1), ("alpha", 0), ("alpha", 1.5), ("recalibrate", 0),
    ("recalibrate", 2), ("height", 8), ("height", 100.0), ("height", True), ("absorb_after", 0),
    ("masks", [parse_mask("0,0,1,0,1,1")]), ("masks", ("0,0,1,0,1,1",)),
])
def test_bad_options_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"motion option {field}: .*expected") as info:
        MotionOptions(**{field: value})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text, expected", [
    ("tree=1,2,3", "motion mask 'tree': 3 values, an odd count"),
    ("tree=0,0,10,0", "motion mask 'tree': 2 point"),
    ("0,0,10,x,5,5", "motion mask 'mask1': value 4 is 'x'"),
    ("tree=0,0,10,10,10,0,0,10", "motion mask 'tree': its edges cross"),
    ("tree=0,0,-5,0,5,5", "motion mask 'tree': point 2 has x = -5"),
])
def test_bad_masks_name_the_mask(text, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(")) as info:
        parse_mask(text)
    assert "\n" not in str(info.value)


def test_masks_outside_the_frame_or_over_all_of_it_are_refused(photo):
    outside = parse_mask("far=700,0,800,0,800,100")
    with pytest.raises(ConfigError, match="motion mask 'far' lies entirely outside the 640x360 frame"):
        MotionDetector(MotionOptions(masks=(outside,)), frame_size=(W, H))
    detector = MotionDetector(MotionOptions(masks=(outside,)))  # known on the first frame
    with pytest.raises(ConfigError, match="motion mask 'far' lies entirely outside"):
        detector.update(Scene(photo).frame(), 0.0)
    everything = parse_mask("all_of_it=0,0,1,0,1,1,0,1")
    with pytest.raises(ConfigError, match="cover the whole 640x360 frame"):
        MotionDetector(MotionOptions(masks=(everything,)), frame_size=(W, H))
    twice = parse_mask("a=0,0,0.5,0,0.5,0.5")
    with pytest.raises(ConfigError, match="motion mask 'a' is given twice"):
        MotionOptions(masks=(twice, twice))


def test_bad_frames_and_timestamps_are_refused(photo):
    detector = MotionDetector()
    frame = Scene(photo).frame()
    for bad in (frame.astype(np.float32), np.stack([frame] * 3, axis=2), frame[:0], frame.tolist()):
        with pytest.raises(ValueError, match="expected a 2-D uint8 grey frame"):
            detector.update(bad, 0.0)
    for t in (float("nan"), float("inf"), "1", None):
        with pytest.raises(ValueError, match="finite frame timestamp"):
            detector.update(frame, t)
    with pytest.raises(ConfigError, match="frame_size: expected"):
        detector.update(frame, 0.0, frame_size=(640, 0))


def test_a_real_h264_video_y_plane(photo, tmp_path):
    """Encode a short 320x240 video (static, a square moving, still again), decode it with PyAV and
    feed its Y planes as they come (with their line size)."""
    import av

    scene = Scene(photo[:240, :320].copy())
    path = tmp_path / "scene.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10, options={"crf": "23"})
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(30):
            squares = [(40 + 12 * (i - 10), 80, 40)] if 10 <= i < 20 else []
            grey = scene.frame(squares)
            frame = av.VideoFrame.from_ndarray(np.repeat(grey[:, :, None], 3, axis=2), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    detector = MotionDetector()
    moving = []
    with av.open(str(path)) as video:
        for frame in video.decode(video=0):
            plane = frame.planes[0]
            y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width]
            moving.append(detector.update(y, float(frame.time)).moving)
    assert len(moving) == 30
    assert not any(moving[:10]) and all(moving[10:20])
    assert not any(moving[20:])  # gone: the background never took it in


def test_regions_join_touching_cells_and_keep_apart_the_rest(photo):
    """A U shape is one region (its arms join only at the bottom), two squares far apart are two,
    largest first; boxes in source pixels."""
    scene = Scene(photo, sigma=0)
    u = scene.frame()
    u[96:240, 96:144] = u[96:240, 240:288] = u[216:240, 96:288] = 250
    m = feed(MotionDetector(), [scene.frame(), u])[-1]
    assert len(m.regions) == 1 and iou(m.regions[0], (96, 96, 288, 240)) > 0.9, m.regions
    two = scene.frame([(30, 30, 90), (450, 200, 60)])
    m = feed(MotionDetector(), [scene.frame(), two])[-1]
    assert len(m.regions) == 2, m.regions
    assert iou(m.regions[0], square_box(30, 30, 90)) > 0.8 and iou(m.regions[1], square_box(450, 200)) > 0.8


def test_grid_components_match_a_flood_fill():
    """The run-based union-find against a plain 8-neighbour flood fill, on random grids."""
    from edgekit.motion import _components

    rng = np.random.default_rng(3)
    for density in (0.1, 0.3, 0.5, 0.7):
        for _ in range(20):
            lit = rng.random((13, 23)) < density
            edges = np.diff(lit.view(np.int8), axis=1, prepend=0, append=0)
            rows, starts = np.nonzero(edges == 1)
            ends = np.nonzero(edges == -1)[1]
            label = _components(rows.tolist(), starts.tolist(), ends.tolist())
            got = np.full(lit.shape, -1)
            got[lit] = np.repeat(label, ends - starts)
            assert _same_partition(got, _flood(lit))


def _flood(lit: np.ndarray) -> np.ndarray:
    out = np.full(lit.shape, -1)
    n = 0
    for start in zip(*np.nonzero(lit)):
        if out[start] >= 0:
            continue
        stack = [start]
        out[start] = n
        while stack:
            r, c = stack.pop()
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    q = (r + dr, c + dc)
                    if 0 <= q[0] < lit.shape[0] and 0 <= q[1] < lit.shape[1] and lit[q] and out[q] < 0:
                        out[q] = n
                        stack.append(q)
        n += 1
    return out


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.ravel().tolist(), b.ravel().tolist()))
    return len(pairs) == len({p[0] for p in pairs}) == len({p[1] for p in pairs})


def test_the_grey_decode_of_a_file_never_opens_postscript(tmp_path):
    """--motion decodes each file's grey picture itself: an EPS named .jpg must be refused as edgekit's
    image decode refuses it, not handed to Ghostscript."""
    from edgekit.errors import ImageError
    from edgekit.motion import grey_from_image

    eps = tmp_path / "snapshot.jpg"
    eps.write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 48\nnewpath 0 0 moveto 64 48 lineto stroke\n"
                   "showpage\n%%EOF\n")
    with pytest.raises(ImageError, match="not a readable image"):
        grey_from_image(eps)
