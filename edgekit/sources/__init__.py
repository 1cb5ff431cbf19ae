"""Frame sources: one contract, many kinds.

A source is an object with ``name`` (str), ``live`` (bool: newest frame wins, older ones may be
dropped) and ``frames()`` (an iterator of :class:`~edgekit.frames.Frame`), and ``close()``. Kinds:

- image files, folders and globs (:class:`~edgekit.sources.files.ImageFiles`, every frame), and
  folders watched for new images (:class:`~edgekit.sources.files.WatchedFolder`, every frame,
  until stopped: ``follow``);
- video files by extension (:class:`~edgekit.sources.video.VideoFile`, every frame; ``edgekit[video]``);
- ``rtsp://``/``rtsps://`` URLs and ``/dev/video*`` cameras (:class:`~edgekit.sources.stream.AvStream`,
  live; ``edgekit[video]``), ``http(s)://`` MJPEG streams and snapshot URLs
  (:class:`~edgekit.sources.stream.HttpStream`, live; told apart by Content-Type), and ``picamera2``
  (:class:`~edgekit.sources.stream.PiCamera`, live).

Live sources also carry ``status`` ("up"/"down"), ``reason``, ``dropped`` and an optional ``on_status``
callback, ``on_status(name, "up" | "down", reason)``, called once per change (see
:mod:`edgekit.sources.stream`).

:func:`open_source` picks the kind from the argument. Kinds that need an extra say which one
(``pip install 'edgekit[video]'``) in one line when it is missing.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
from typing import Callable, Iterator, Protocol, Sequence, runtime_checkable

from ..frames import Frame
from .files import IMAGE_EXTENSIONS, ImageFiles, WatchedFolder, expand_sources
from .video import VIDEO_EXTENSIONS

__all__ = ["Source", "open_sources", "close_sources", "register_source_kind", "IMAGE_EXTENSIONS", "ImageFiles", "WatchedFolder",
           "expand_sources"]


@runtime_checkable
class Source(Protocol):
    """What the runner reads frames from."""

    name: str
    live: bool

    def frames(self) -> Iterator[Frame]:
        """Frames in order; a live source yields until closed (reconnecting on its own)."""
        ...

    def close(self) -> None:
        """Stop: a blocked ``frames()`` returns soon after."""
        ...


def open_sources(arguments: Sequence[str], follow: bool = False, checkpoints: str | None = None) -> list[Source]:
    """The sources the CLI's SOURCE arguments name: consecutive image files, folders and globs
    form one :class:`ImageFiles` source; other kinds (video files, URLs, cameras) one source each.
    With ``follow``, each folder (or a path that is neither a file nor a glob: a folder that may
    appear later, e.g. a mount) is a :class:`WatchedFolder` instead: its images, then new ones as
    they arrive, until stopped; with ``checkpoints`` (a folder), each keeps its checkpoint there.

    Raises the error of the first argument that cannot be opened, after closing the sources
    already opened (a plugin's kind may hold a connection or a thread from the start)."""
    sources: list[Source] = []
    try:
        _open_all(arguments, follow, checkpoints, sources)
    except BaseException:
        close_sources(sources)
        raise
    return sources


def close_sources(sources: Sequence[Source]) -> None:
    """Close every source; one that fails to close does not keep the others open."""
    for source in sources:
        try:
            source.close()
        except Exception:  # closing is best effort: the error that got us here is the one to say
            pass


def _open_all(arguments: Sequence[str], follow: bool, checkpoints: str | None, sources: list[Source]) -> None:
    images: list[str] = []
    for arg in arguments:
        opener = _opener_for(arg)
        if (opener is None and follow and not os.path.isfile(arg) and not any(c in arg for c in "*?[")
                and os.path.splitext(arg)[1].lower() not in IMAGE_EXTENSIONS):
            opener = functools.partial(_watched_folder, checkpoints=checkpoints)
        if opener is None:
            images.append(arg)
            continue
        if images:
            sources.append(ImageFiles(images))
            images = []
        sources.append(opener(arg))
    if images:
        sources.append(ImageFiles(images))


def _watched_folder(folder: str, checkpoints: str | None) -> WatchedFolder:
    checkpoint = None
    if checkpoints is not None:
        digest = hashlib.sha256(os.path.realpath(folder).encode("utf-8", "surrogateescape")).hexdigest()[:16]
        checkpoint = os.path.join(checkpoints, f"follow-{digest}.json")
    return WatchedFolder(folder, checkpoint=checkpoint)


# (kind, does this argument name it?, "module:callable" opening it — imported only when used, so
# ``import edgekit`` and image-only runs never load PyAV or OpenCV).
_KINDS: list[tuple[str, Callable[[str], bool], str]] = []


def register_source_kind(kind: str, matches: Callable[[str], bool], opener: str) -> None:
    """Let ``open_sources`` open arguments that ``matches`` with ``opener`` ("module:callable")."""
    _KINDS[:] = [k for k in _KINDS if k[0] != kind] + [(kind, matches, opener)]


def _opener_for(arg: str) -> Callable[[str], Source] | None:
    """The constructor for a non-image-file source, or None for image files/folders/globs."""
    for _kind, matches, target in _KINDS:
        if matches(arg):
            module, _, attr = target.partition(":")

            def _open(argument: str, module: str = module, attr: str = attr) -> Source:
                return getattr(importlib.import_module(module), attr)(argument)

            return _open
    return None


def _is_video_file(arg: str) -> bool:
    return "://" not in arg and os.path.splitext(arg)[1].lower() in VIDEO_EXTENSIONS


register_source_kind("video", _is_video_file, "edgekit.sources.video:VideoFile")
register_source_kind("rtsp", lambda arg: arg.lower().startswith(("rtsp://", "rtsps://")),
                     "edgekit.sources.stream:AvStream")
register_source_kind("http", lambda arg: arg.lower().startswith(("http://", "https://")),
                     "edgekit.sources.stream:HttpStream")
register_source_kind("v4l2", lambda arg: arg.startswith(("/dev/video", "/dev/v4l/")), "edgekit.sources.stream:AvStream")
register_source_kind("picamera2", lambda arg: arg == "picamera2" or arg.startswith("picamera2:"),
                     "edgekit.sources.stream:PiCamera")
