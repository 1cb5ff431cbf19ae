"""The one exception tree of edgekit.

Every message says what was expected, what was found and what to do. The CLI maps these
to exit codes in one place (:mod:`edgekit.cli`); library users catch :class:`EdgekitError`.
"""

from __future__ import annotations

__all__ = [
    "EdgekitError",
    "RuntimeNotFoundError",
    "ModelError",
    "UnsupportedModelError",
    "LayoutError",
    "ImageError",
    "ConfigError",
]


class EdgekitError(Exception):
    """Base class of every error edgekit raises on purpose."""

    exit_code = 1


class ConfigError(EdgekitError, ValueError):
    """An option or argument has a value edgekit cannot use."""

    exit_code = 2


class RuntimeNotFoundError(EdgekitError):
    """No TFLite runtime could be imported and used on this machine."""

    exit_code = 3


class ModelError(EdgekitError):
    """A model file is missing, not a TFLite flatbuffer, truncated or otherwise unloadable."""

    exit_code = 4


class UnsupportedModelError(ModelError):
    """The model loads but needs an operator this runtime does not have."""


class LayoutError(ModelError):
    """The model's outputs do not match any known (or the requested) output layout."""


class ImageError(EdgekitError):
    """An input image is missing, corrupt, empty, not an image or too large to decode safely."""

    exit_code = 5
