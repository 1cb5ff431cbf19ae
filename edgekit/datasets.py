"""Validation sets for mAP: a COCO instances JSON or a YOLO-format folder, read into one COCO document.

Both formats become a :class:`ValidationSet` holding a COCO instances document (``images``,
``annotations``, ``categories``) of the images that exist, so one evaluator
(:mod:`edgekit.coco_eval`, pycocotools) scores either. No TensorFlow and no pycocotools here: this
runs on the device.

- COCO: ``instances.json`` and its images in a folder (default: ``images/`` beside the JSON).
- YOLO: a folder with ``images/`` and ``labels/`` (same sub-paths, ``.txt`` for the image's
  extension), one ``class cx cy w h`` line per box, normalised to 0..1 (a polygon line
  ``class x1 y1 x2 y2 x3 y3 ...`` counts as its bounding box). Class names come from the
  ``names:`` of the folder's ``data.yaml``, ``dataset.yaml`` or other ``*.yaml`` (list or
  ``id: name`` map), else from a labels file passed in (one name a line, or such a YAML). An image
  without a label file has no objects (as in Ultralytics).

Missing images: images the JSON lists (or label files name) that are not in the folder are left
out, counted in :attr:`ValidationSet.missing` and said once in :attr:`ValidationSet.notes`:
scoring the images one has of a large annotation file (all of val2017 for a subset of its images)
is a normal use. None found at all is an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from .errors import ConfigError, ImageError
from .sources.files import IMAGE_EXTENSIONS

__all__ = ["ValidationSet", "load_validation_set", "load_coco", "load_yolo", "read_class_names",
           "find_overlap", "check_disjoint"]

_YAML_NAMES = ("data.yaml", "dataset.yaml")  # looked for first; then any other *.yaml / *.yml, in name order
_EXAMPLES = 3  # how many examples an error or note quotes


@dataclass(frozen=True, eq=False)
class ValidationSet:
    """Images with ground-truth boxes, as a COCO instances document.

    Attributes:
        source: the JSON file or YOLO folder read.
        kind: ``"coco"`` or ``"yolo"``.
        images_dir: the folder ``file_name`` is relative to.
        coco: the COCO document (only images that exist; pixel ``[x, y, w, h]`` boxes).
        missing: how many listed images were not found (left out).
        notes: what the user should hear once (missing images, where names came from).
    """

    source: str
    kind: str
    images_dir: str
    coco: dict[str, Any]
    missing: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.coco["images"])

    def image_paths(self) -> list[str]:
        """The images' paths, in image-id order."""
        return [os.path.join(self.images_dir, img["file_name"]) for img in sorted(self.coco["images"],
                                                                                 key=lambda i: i["id"])]

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(c["name"] for c in self.coco["categories"])


def load_validation_set(path: str | os.PathLike, images_dir: str | os.PathLike | None = None,
                        names: str | os.PathLike | None = None) -> ValidationSet:
    """A COCO JSON (a file) or a YOLO folder (a directory) at ``path``.

    Args:
        path: ``instances.json`` or a folder with ``images/`` and ``labels/``.
        images_dir: COCO only: the images' folder (default ``images/`` beside the JSON).
        names: YOLO only: a labels file (or YAML with ``names:``) used when the folder has no YAML.
    Raises:
        ConfigError: a missing path, a JSON that is not COCO instances, bad label lines, unknown
            class ids, no images found. ImageError: an image whose header cannot be read.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        if images_dir is not None:
            raise ConfigError(f"{path} is a YOLO folder (images/ + labels/); an images folder applies only to a "
                              "COCO JSON: drop it")
        return load_yolo(path, names)
    if os.path.isfile(path):
        return load_coco(path, images_dir)
    raise ConfigError(f"validation set {path}: no such file or folder; expected a COCO instances JSON or a "
                      "YOLO-format folder (images/ + labels/)")


# -- COCO ---------------------------------------------------------------------------------------

def load_coco(annotations: str | os.PathLike, images_dir: str | os.PathLike | None = None) -> ValidationSet:
    """Read a COCO instances JSON; keep the images found in ``images_dir``. Raises ConfigError."""
    annotations = os.fspath(annotations)
    folder = os.fspath(images_dir) if images_dir is not None else os.path.join(os.path.dirname(annotations), "images")
    if not os.path.isdir(folder):
        how = "given" if images_dir is not None else "the default: an images/ folder beside the JSON"
        raise ConfigError(f"{annotations}: images folder {folder} ({how}) does not exist; pass the folder holding "
                          "the JSON's images (coco_eval --images DIR, edgekit-convert --eval-images DIR)")
    doc = _read_coco_json(annotations)
    listed = doc["images"]
    found = [img for img in listed if os.path.isfile(os.path.join(folder, img["file_name"]))]
    if not found:
        raise ConfigError(f"{annotations}: none of its {len(listed)} images are in {folder} (looked for e.g. "
                          f"{listed[0]['file_name'] if listed else 'nothing: the JSON lists no images'}); pass the "
                          "folder holding them (coco_eval --images DIR, edgekit-convert --eval-images DIR)")
    notes = []
    if len(found) < len(listed):
        kept = {img["id"] for img in found}
        absent = [img["file_name"] for img in listed if img["id"] not in kept][:_EXAMPLES]
        notes.append(f"{annotations}: {len(listed) - len(found)} of its {len(listed)} images are not in {folder} "
                     f"(e.g. {', '.join(absent)}); scoring the {len(found)} found")
    keep = {img["id"] for img in found}
    doc = {**doc, "images": found, "annotations": [a for a in doc["annotations"] if a["image_id"] in keep]}
    return ValidationSet(annotations, "coco", folder, doc, len(listed) - len(found), tuple(notes))


def _read_coco_json(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not JSON ({exc}); expected a COCO instances file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc}); expected a COCO instances file") from None
    what = "a COCO instances JSON: an object with 'images', 'annotations' and 'categories' lists"
    if isinstance(doc, list):
        raise ConfigError(f"{path}: a JSON list (a detection results file?); expected {what}")
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in ("images", "annotations",
                                                                                    "categories")):
        keys = sorted(doc)[:6] if isinstance(doc, dict) else type(doc).__name__
        raise ConfigError(f"{path}: found keys {keys}; expected {what}")
    _check_entries(path, "images", doc["images"], ("id", "file_name"))
    _check_entries(path, "categories", doc["categories"], ("id", "name"))
    _check_entries(path, "annotations", doc["annotations"], ("image_id", "category_id", "bbox"))
    image_ids = {img["id"] for img in doc["images"]}
    category_ids = {c["id"] for c in doc["categories"]}
    annotations = []
    for i, ann in enumerate(doc["annotations"]):
        if ann["image_id"] not in image_ids or ann["category_id"] not in category_ids:
            raise ConfigError(f"{path}: annotations[{i}] refers to image {ann['image_id']} / category "
                              f"{ann['category_id']}, which 'images' / 'categories' do not list; fix the JSON")
        box = ann["bbox"]
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
            raise ConfigError(f"{path}: annotations[{i}].bbox is {box!r}; expected [x, y, width, height] in pixels")
        # optional in practice, required by pycocotools: defaults as COCO defines them
        annotations.append({"iscrowd": 0, "area": float(box[2]) * float(box[3]), **ann})
    return {**doc, "annotations": annotations}


def _check_entries(path: str, key: str, entries: list, required: tuple[str, ...]) -> None:
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or any(k not in entry for k in required):
            raise ConfigError(f"{path}: {key}[{i}] is {str(entry)[:80]}; expected an object with "
                              f"{', '.join(required)} (COCO instances format)")


# -- YOLO ---------------------------------------------------------------------------------------

def load_yolo(folder: str | os.PathLike, names: str | os.PathLike | None = None) -> ValidationSet:
    """Read a YOLO-format folder (``images/`` + ``labels/``) into a COCO document.

    Boxes become pixel ``[x, y, w, h]`` with the image's size read from its header (upright, as
    the runtime sees it after EXIF rotation); category ids are class id + 1.
    Raises ConfigError (bad folder, names, label lines, class ids) and ImageError (unreadable image).
    """
    folder = os.fspath(folder)
    images_dir, labels_dir = os.path.join(folder, "images"), os.path.join(folder, "labels")
    for d in (images_dir, labels_dir):
        if not os.path.isdir(d):
            raise ConfigError(f"{folder}: no {os.path.basename(d)}/ folder; expected a YOLO-format dataset "
                              "(images/ and labels/ side by side) or a COCO instances JSON")
    class_names, names_from = _yolo_names(folder, names)
    relative = _image_files(images_dir)
    if not relative:
        raise ConfigError(f"{images_dir}: no images (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
    images, annotations = [], []
    for image_id, rel in enumerate(relative, start=1):
        width, height = _upright_size(os.path.join(images_dir, rel))
        images.append({"id": image_id, "file_name": rel, "width": width, "height": height})
        label = os.path.join(labels_dir, os.path.splitext(rel)[0] + ".txt")
        for class_id, box in _read_label_file(label, len(class_names), names_from):
            w, h = box[2] * width, box[3] * height
            x, y = box[0] * width - w / 2, box[1] * height - h / 2
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": class_id + 1,
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
    categories = [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(class_names)]
    doc = {"info": {"description": f"YOLO dataset {folder}"}, "images": images, "annotations": annotations,
           "categories": categories}
    notes = [f"{folder}: class names from {names_from}"]
    stems = {os.path.splitext(r)[0] for r in relative}
    orphans = sorted(r for r in _label_files(labels_dir) if os.path.splitext(r)[0] not in stems)
    if orphans:
        notes.append(f"{labels_dir}: {len(orphans)} label files have no image in {images_dir} (e.g. "
                     f"{', '.join(orphans[:_EXAMPLES])}); scoring the {len(images)} images found")
    return ValidationSet(folder, "yolo", images_dir, doc, len(orphans), tuple(notes))


def _image_files(root: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, _, files in os.walk(root) for n in files
                  if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS)


def _label_files(root: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, _, files in os.walk(root) for n in files
                  if n.endswith(".txt"))


def _upright_size(path: str) -> tuple[int, int]:
    from PIL import Image

    from .image import _TRANSPOSED_ORIENTATIONS

    try:
        with Image.open(path) as img:  # reads the header only
            width, height = img.size
            if img.getexif().get(0x0112, 1) in _TRANSPOSED_ORIENTATIONS:
                width, height = height, width
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{path}: cannot read the image's size ({exc}); expected an image file; remove or "
                         "replace it") from None
    return width, height


def _read_label_file(path: str, classes: int, names_from: str) -> list[tuple[int, tuple[float, ...]]]:
    if not os.path.exists(path):
        return []  # no label file: an image without objects
    boxes = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                boxes.append(_parse_label_line(line, f"{path}:{number}", classes, names_from))
    return boxes


def _parse_label_line(line: str, where: str, classes: int, names_from: str) -> tuple[int, tuple[float, ...]]:
    fields = line.split()
    expected = "expected 'class cx cy w h' (class id, then 4 numbers in 0..1) or a polygon 'class x1 y1 x2 y2 x3 y3 ...'"
    if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
        raise ConfigError(f"{where}: found {len(fields)} fields {line.strip()[:60]!r}; {expected}")
    try:
        class_id, values = int(fields[0]), [float(v) for v in fields[1:]]
    except ValueError:
        raise ConfigError(f"{where}: found {line.strip()[:60]!r}, not numbers; {expected}") from None
    if not all(0.0 <= v <= 1.0 for v in values):  # also catches nan
        raise ConfigError(f"{where}: found {line.strip()[:60]!r}, a value outside 0..1; {expected} — pixel "
                          "coordinates must be divided by the image's width and height")
    if not 0 <= class_id < classes:
        raise ConfigError(f"{where}: class id {class_id}, but {names_from} names {classes} classes (ids 0.."
                          f"{classes - 1}); fix the label or use the dataset's own names")
    if len(values) == 4:
        return class_id, tuple(values)
    xs, ys = values[0::2], values[1::2]
    return class_id, ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys))


def _yolo_names(folder: str, names: str | os.PathLike | None) -> tuple[tuple[str, ...], str]:
    yamls = [os.path.join(folder, n) for n in _YAML_NAMES]
    yamls += sorted(os.path.join(folder, n) for n in os.listdir(folder)
                    if n.endswith((".yaml", ".yml")) and n not in _YAML_NAMES)
    for path in yamls:
        if os.path.isfile(path):
            found = _yaml_names(path)
            if found is not None:
                return found, path
    if names is None:
        raise ConfigError(f"{folder}: no data.yaml/dataset.yaml with 'names:' in the folder; pass the class names "
                          "as a labels file (one name a line, line N = class id N) or a YAML with 'names:'")
    return read_class_names(names), os.fspath(names)


def read_class_names(path: str | os.PathLike) -> tuple[str, ...]:
    """Class names from a YAML with ``names:`` or a labels file (one a line). Raises ConfigError."""
    path = os.fspath(path)
    if path.endswith((".yaml", ".yml")):
        found = _yaml_names(path)
        if found is None:
            raise ConfigError(f"{path}: no 'names:' key; expected a dataset YAML with names: (list or id: name map)")
        return found
    from .metadata import read_labels

    return tuple(read_labels(path))


def _yaml_names(path: str) -> tuple[str, ...] | None:
    """The ``names:`` of a dataset YAML (block or flow list, or ``id: name`` map); None without one.

    A small reader for this one key, so the device needs no YAML library.
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from None
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)names\s*:(.*)$", _strip_comment(line))
        if m and not m.group(1):  # a top-level key only
            rest = m.group(2).strip()
            names = _flow_names(path, rest, lines[i + 1:]) if rest else _block_names(path, lines[i + 1:])
            if not names:
                raise ConfigError(f"{path}: 'names:' is empty; expected the class names (list or id: name map)")
            return names
    return None


def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if ch in "'\"" and quote in (None, ch):
            quote = None if quote else ch
        elif ch == "#" and quote is None and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _block_names(path: str, lines: Sequence[str]) -> tuple[str, ...]:
    items: list[str] = []
    for line in lines:
        text = _strip_comment(line)
        if not text.strip():
            continue
        if not text[0].isspace() and not text.startswith("-"):
            break  # the next top-level key
        items.append(text.strip())
    if items and all(i.startswith("-") for i in items):
        return tuple(_unquote(i[1:]) for i in items)
    return _names_from_map(path, [tuple(i.split(":", 1)) for i in items])


def _flow_names(path: str, rest: str, following: Sequence[str]) -> tuple[str, ...]:
    text = rest
    for line in following:  # a flow list may span lines
        if text.count("[") <= text.count("]") and text.count("{") <= text.count("}"):
            break
        text += " " + _strip_comment(line).strip()
    text = text.strip()
    if (text[:1], text[-1:]) not in (("[", "]"), ("{", "}")):
        raise ConfigError(f"{path}: names: {text[:60]!r}; expected a list ([a, b] or '- a' lines) or an "
                          "'id: name' map")
    parts = [p for p in re.findall(r"""'[^']*'|"[^"]*"|[^,]+""", text[1:-1]) if p.strip()]
    if text[0] == "[":
        return tuple(_unquote(p) for p in parts)
    return _names_from_map(path, [tuple(p.split(":", 1)) for p in parts])


def _names_from_map(path: str, pairs: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    by_id = {}
    for pair in pairs:
        try:
            by_id[int(pair[0].strip())] = _unquote(pair[1])
        except (ValueError, IndexError):
            raise ConfigError(f"{path}: names: entry {':'.join(pair)[:60]!r}; expected 'id: name' with an "
                              "integer id, or a list of names") from None
    if sorted(by_id) != list(range(len(by_id))):
        raise ConfigError(f"{path}: names: ids {sorted(by_id)[:8]}...; expected ids 0..{len(by_id) - 1} "
                          "without gaps")
    return tuple(by_id[i] for i in range(len(by_id)))


# -- calibration vs validation ----------------------------------------------------------------

def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ImageError(f"{path}: cannot read it ({exc}); expected an image file") from None
    return digest.hexdigest()


def find_overlap(paths: Iterable[str | os.PathLike], validation: ValidationSet) -> list[tuple[str, str]]:
    """``(path, validation image)`` pairs with the same bytes (SHA-256), whatever their names."""
    by_hash = {}
    for image in validation.image_paths():
        by_hash.setdefault(_sha256(image), image)
    pairs = []
    for path in paths:
        match = by_hash.get(_sha256(os.fspath(path)))
        if match is not None:
            pairs.append((os.fspath(path), match))
    return pairs


def check_disjoint(calibration: Sequence[str | os.PathLike], validation: ValidationSet) -> None:
    """Raise ConfigError when a calibration image is also a validation image (same file bytes)."""
    pairs = find_overlap(calibration, validation)
    if pairs:
        examples = "; ".join(f"{a} = {b}" for a, b in pairs[:_EXAMPLES])
        raise ConfigError(f"{len(pairs)} of the {len(calibration)} calibration images are also in the validation "
                          f"set {validation.source} (same bytes: {examples}{'; ...' if len(pairs) > _EXAMPLES else ''})"
                          "; expected separate images, or the mAP flatters the model: remove them from the "
                          "calibration folder or validate on other images")
