"""Image files, folders and globs: the CLI's SOURCE arguments expanded into image paths, and the
ImageFiles source over them."""

from __future__ import annotations

import glob
import os
from typing import Iterator

__all__ = ["IMAGE_EXTENSIONS", "ImageFiles", "WatchedFolder", "expand_sources"]



def _image_extensions() -> frozenset[str]:
    """The file name extensions of the formats edgekit decodes (:data:`edgekit.image.LOCAL_FORMATS`,
    the one list), as Pillow registers them: .ppm/.pgm/.pbm with PPM, .jpe/.jfif with JPEG …"""
    from PIL import Image

    from ..image import LOCAL_FORMATS

    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in LOCAL_FORMATS)


IMAGE_EXTENSIONS = _image_extensions()  # what a folder or a watched folder takes; any named file is decoded


def expand_sources(sources: list[str]) -> Iterator[tuple[str, str | None]]:
    """Yield ``(path, None)`` per image, or ``(argument, problem)`` for an argument that names nothing.

    A file is yielded as given (whatever its extension: decoding decides); a directory yields its
    images (by extension, sorted, not recursive); anything else is tried as a glob pattern.
    """
    for arg in sources:
        if os.path.isfile(arg):
            yield arg, None
        elif os.path.isdir(arg):
            found = sorted(
                os.path.join(arg, name) for name in os.listdir(arg)
                if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS and os.path.isfile(os.path.join(arg, name))
            )
            if not found:
                yield arg, f"directory has no images (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
            yield from ((path, None) for path in found)
        else:
            matches = sorted(p for p in glob.glob(arg, recursive=True) if os.path.isfile(p))
            if not matches:
                yield arg, "no such file, directory or matching glob pattern"
            yield from ((path, None) for path in matches)


def _version(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # decoding will say what is wrong
    return st.st_mtime_ns, st.st_size


def file_changed(frame) -> bool:
    """Whether the file a frame was read from is gone or was rewritten since it was listed."""
    return frame.version is not None and _version(frame.path) != frame.version


class ImageFiles:
    """Image files, folders and globs as a source: every image once, in argument order.

    Frame ``index`` counts the images; ``timestamp`` is 0 (still images have no stream time, so
    ``fps`` sampling does not apply: ``timeline`` is False). An argument naming nothing becomes a
    frame with a ``problem`` (reported, counted, skipped).
    """

    live = False
    timeline = False

    def __init__(self, arguments: list[str]) -> None:
        self.arguments = list(arguments)
        self.name = arguments[0] if len(arguments) == 1 else f"{len(arguments)} image arguments"
        self.total: int | None = None  # the images (and arguments naming nothing) listed, once frames() began
        self._closed = False

    def frames(self):
        import time

        from ..frames import Frame

        listed = list(expand_sources(self.arguments))  # listed first: a run stopped early can say "N of M"
        self.total = len(listed)
        for index, (path, problem) in enumerate(listed):
            if self._closed:
                return
            yield Frame(source=path, index=index, timestamp=0.0, captured=time.monotonic(), path=path,
                        problem=problem, version=None if problem else _version(path))

    def close(self) -> None:
        self._closed = True


class WatchedFolder:
    """A folder watched for new images (a camera uploading snapshots, a "hot folder"): the images
    already there, then each new or rewritten one once, in the order they were written, until
    :meth:`close`.

    Every image is processed (``live`` is False: a backlog waits on disk, not in memory). A file
    is taken once its size and modification time stayed the same for ``settle`` seconds (by our
    clock, so a share whose clock runs ahead is no different), so a file still being written is
    not read half-way; a JPEG must also end with its end-of-image marker (a paused upload), unless
    it stayed unchanged ten times ``settle`` (then it is read, and reported as truncated). Hidden
    files (``.name``) and names ending in ``.tmp``, ``.part`` or ``~`` are ignored (upload tools
    write those, then rename). An image rewritten under the same name (a camera's ``latest.jpg``)
    is processed again. ``timestamp`` is the file's modification time (the closest thing to its
    capture time), so ``fps`` samples by it.

    With ``checkpoint`` (a JSON file; the CLI and service keep one per folder in the state
    folder), :meth:`ack` records the newest image that went through the sinks, and a restart
    goes on after it instead of processing the folder again (an image copied in later with an
    older modification time than that is then not seen: at-least-once, never twice in a row).

    The folder is polled (``poll`` seconds; no inotify, so network shares work too). A folder that
    is missing or unreadable is an outage, as for streams: ``status`` turns ``"down"`` with a
    ``reason`` and ``on_status(name, "down", reason)`` is called once; polling goes on and it
    comes back ``"up"``. Memory is bounded by the folder's listing: names that left it are
    forgotten.
    """

    live = False
    timeline = True
    IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", "~")

    def __init__(self, folder: str, *, poll: float = 0.5, settle: float = 1.0, checkpoint: str | None = None,
                 on_status=None) -> None:
        import threading

        self.folder = folder
        self.name = folder
        self.poll, self.settle = poll, settle
        self.checkpoint = checkpoint
        self.on_status = on_status
        self.status, self.reason = "connecting", ""
        self._closed = threading.Event()
        self._mark: tuple[int, set[str]] = self._read_checkpoint()

    def frames(self):
        import time

        from ..frames import Frame

        done: dict[str, tuple[int, int]] = {}  # name -> (mtime_ns, size) processed
        pending: dict[str, tuple[tuple[int, int], float]] = {}  # name -> (stat, monotonic time it was first seen so)
        index = 0
        first = True
        while not self._closed.is_set():
            listing = self._scan()
            if listing is not None:
                if first:  # what the checkpoint says went through before a restart
                    mark_ns, mark_names = self._mark
                    done.update({n: st for n, st in listing.items()
                                 if st[0] < mark_ns or (st[0] == mark_ns and n in mark_names)})
                    first = False
                for name in [n for n in done if n not in listing]:
                    del done[name]
                for name in [n for n in pending if n not in listing]:
                    del pending[name]
                now = time.monotonic()
                ready = []
                for name, stat in listing.items():
                    if done.get(name) == stat:
                        continue
                    seen = pending.get(name)
                    if seen is None or seen[0] != stat:
                        pending[name] = (stat, now)
                    elif self._complete(name, stat, now - seen[1]):
                        ready.append((stat[0], name))
                for mtime_ns, name in sorted(ready):
                    if self._closed.is_set():
                        return
                    stat = done[name] = pending.pop(name)[0]
                    path = os.path.join(self.folder, name)
                    yield Frame(source=path, index=index, timestamp=mtime_ns / 1e9, captured=time.monotonic(),
                                path=path, version=stat)
                    index += 1
            self._closed.wait(self.poll)

    def ack(self, frame) -> None:
        """``frame`` went through the sinks: move the checkpoint past it (when there is one)."""
        if self.checkpoint is None or frame.version is None or frame.path is None:
            return
        mtime_ns, name = frame.version[0], os.path.basename(frame.path)
        mark_ns, names = self._mark
        if mtime_ns < mark_ns:
            return
        self._mark = (mtime_ns, names | {name} if mtime_ns == mark_ns else {name})
        self._write_checkpoint()

    def _complete(self, name: str, stat: tuple[int, int], unchanged_for: float) -> bool:
        """Unchanged for ``settle`` seconds and, for a JPEG, ending with its EOI marker (or
        unchanged for so long that it will never be finished)."""
        if unchanged_for < self.settle:
            return False
        if os.path.splitext(name)[1].lower() not in (".jpg", ".jpeg") or unchanged_for >= 10 * self.settle:
            return True
        try:
            with open(os.path.join(self.folder, name), "rb") as fh:
                fh.seek(max(0, stat[1] - 2))
                return fh.read(2) == b"\xff\xd9"
        except OSError:
            return False

    def _read_checkpoint(self) -> tuple[int, set[str]]:
        import json

        if self.checkpoint is None:
            return -1, set()
        try:
            with open(self.checkpoint, encoding="utf-8") as fh:
                doc = json.load(fh)
            return int(doc["mtime_ns"]), set(doc["names"])
        except FileNotFoundError:
            return -1, set()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            import logging

            logging.getLogger("edgekit.sources").warning(
                "%s: unreadable checkpoint %s (%s); starting from the folder's oldest image", self.name,
                self.checkpoint, exc)
            return -1, set()

    def _write_checkpoint(self) -> None:
        import json

        from ..userdirs import create_private

        mark_ns, names = self._mark
        tmp = f"{self.checkpoint}.tmp"
        try:
            create_private(tmp)
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump({"folder": os.path.realpath(self.folder), "mtime_ns": mark_ns, "names": sorted(names)}, fh)
            os.replace(tmp, self.checkpoint)
        except OSError as exc:  # a full or read-only disk must not stop detection
            import logging

            logging.getLogger("edgekit.sources").warning("%s: cannot write the checkpoint %s (%s)", self.name,
                                                         self.checkpoint, exc.strerror or exc)

    def _scan(self) -> dict[str, tuple[int, int]] | None:
        """The folder's images as name -> (mtime_ns, size); None (and the outage reported) when
        the folder cannot be listed."""
        found: dict[str, tuple[int, int]] = {}
        try:
            with os.scandir(self.folder) as entries:
                for entry in entries:
                    name = entry.name
                    if name.startswith(".") or name.endswith(self.IGNORED_SUFFIXES):
                        continue
                    if os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                        continue
                    try:
                        if not entry.is_file():
                            continue
                        st = entry.stat()
                    except OSError:  # removed between the listing and the stat
                        continue
                    found[name] = (st.st_mtime_ns, st.st_size)
        except OSError as exc:
            what = "no such folder" if isinstance(exc, FileNotFoundError) else (
                "not a folder" if isinstance(exc, NotADirectoryError) else exc.strerror or str(exc))
            self._set_status("down", f"{what}; watching for it to appear")
            return None
        self._set_status("up", "")
        return found

    def _set_status(self, status: str, reason: str) -> None:
        import logging

        if status == self.status:
            return
        self.status, self.reason = status, reason
        log = logging.getLogger("edgekit.sources")
        if status == "down":  # said once: by the on_status callback when there is one (the CLI's line), else here
            (log.debug if self.on_status is not None else log.warning)("%s: folder unavailable (%s)", self.name,
                                                                        reason)
        if self.on_status is not None:
            try:
                self.on_status(self.name, status, reason)
            except Exception:  # a failing status publisher must not stop the watch
                log.exception("%s: on_status callback failed", self.name)

    def close(self) -> None:
        self._closed.set()
