"""The README's Keras conversion example works end to end as written (issue 16, item 7): the two
commands of its block — convert MTCNN's O-Net to full int8, then detect on a face crop — run through
the real CLIs with only the placeholders replaced (onet.keras, faces/, face_crop.jpg, the output)."""

import json
import re
import shlex

import numpy as np
from PIL import Image

from conftest import REPO, run_cli

FACES = [("coral_face.jpg", (254, 67, 356, 169)), ("coral_face.jpg", (131, 100, 230, 199)),
         ("coral_grace_hopper.bmp", (170, 148, 365, 342))]


def _keras_example() -> list[list[str]]:
    blocks = re.findall(r"```sh\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    block = next(b for b in blocks if "edgekit-convert onet.keras" in b)
    return [shlex.split(line) for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def _calibration(images, folder):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (name, box) in enumerate(FACES):
        Image.open(images / name).convert("RGB").crop(box).save(folder / f"face{i}.png")
    for i, name in enumerate(["coral_kite_and_cold.jpg", "coral_pets.jpg", "table.jpg"]):
        img = Image.open(images / name).convert("RGB")
        for j in range(2):
            s = int(rng.integers(60, min(img.size) // 2))
            x, y = int(rng.integers(0, img.width - s)), int(rng.integers(0, img.height - s))
            img.crop((x, y, x + s, y + s)).save(folder / f"other{i}_{j}.png")
    return folder


def test_readme_keras_example_converts_then_detects(shared, images, tmp_path):
    convert, detect = _keras_example()
    assert convert[0] == "edgekit-convert" and detect[:2] == ["edgekit", "detect"]
    crop = tmp_path / "face_crop.jpg"
    Image.open(images / "coral_grace_hopper.bmp").convert("RGB").crop((170, 148, 365, 342)).save(crop)
    where = {"onet.keras": str(shared / "keras" / "mtcnn_keras" / "onet.keras"),
             "faces/": str(_calibration(images, tmp_path / "faces")) + "/",
             "onet_int8.tflite": str(tmp_path / "onet_int8.tflite"), "face_crop.jpg": str(crop)}
    convert, detect = ([where.get(a, a) for a in cmd] for cmd in (convert, detect))

    r = run_cli("-m", "converters.cli", *convert[1:], cwd=REPO)  # exactly as written, agreement check included
    assert r.returncode == 0, r.stderr
    r = run_cli("-m", "edgekit", *detect[1:], cwd=REPO)
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout)["detections"]
    assert [d["label"] for d in found] == ["face"] and found[0]["score"] > 0.9, found

    # without the plugin, detect says how to get the decoder the model names (not "cannot tell how to decode")
    r = run_cli("-m", "edgekit", "detect", where["onet_int8.tflite"], str(crop), cwd=REPO)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "'mtcnn-refine'" in lines[0] and "--plugin" in lines[0], r.stderr
