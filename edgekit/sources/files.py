"""Image files, folders and globs: the CLI's SOURCE arguments expanded into image paths, and the
ImageFiles source over them."""

from __future__ import annotations

import glob
import os
from typing import Iterator

__all__ = ["IMAGE_EXTENSIONS", "ImageFiles", "expand_sources"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


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


class ImageFiles:
    """Image files, folders and globs as a source: every image once, in argument order.

    Frame ``index`` counts the images; ``timestamp`` is 0 (still images have no stream time). An
    argument naming nothing becomes a frame with a ``problem`` (reported, counted, skipped).
    """

    live = False

    def __init__(self, arguments: list[str]) -> None:
        self.arguments = list(arguments)
        self.name = arguments[0] if len(arguments) == 1 else f"{len(arguments)} image arguments"
        self._closed = False

    def frames(self):
        import time

        from ..frames import Frame

        for index, (path, problem) in enumerate(expand_sources(self.arguments)):
            if self._closed:
                return
            yield Frame(source=path, index=index, timestamp=0.0, captured=time.monotonic(), path=path,
                        problem=problem)

    def close(self) -> None:
        self._closed = True
