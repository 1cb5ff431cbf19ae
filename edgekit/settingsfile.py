"""Settings files (TOML, or JSON by extension) that refuse unknown keys — one reader for the MQTT
settings and the service settings."""

from __future__ import annotations

import json
from typing import Any, Callable, Collection

from .errors import ConfigError

__all__ = ["read_settings"]


def read_settings(path: str, known: Collection[str], what: str, expected: str,
                  select: Callable[[dict], dict] = lambda doc: doc) -> dict[str, Any]:
    """The settings in ``path`` (``select`` picks a table, e.g. ``[mqtt]``).

    Raises ConfigError: unreadable or malformed (saying ``expected``), TOML on Python < 3.11, or
    keys outside ``known`` (named as ``what``, with the known ones listed).
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        if path.endswith(".json"):
            doc = json.loads(raw)
        else:
            import tomllib

            doc = tomllib.loads(raw.decode("utf-8"))
    except ImportError:
        raise ConfigError(f"{path}: TOML needs Python 3.11+; use a .json settings file") from None
    except (OSError, ValueError) as exc:  # ValueError covers JSON, TOML and UTF-8 decoding errors
        raise ConfigError(f"{path}: cannot read {what}s ({exc}); expected {expected}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected {expected}, found a JSON {type(doc).__name__}")
    doc = dict(select(doc))
    unknown = sorted(set(doc) - set(known))
    if unknown:
        raise ConfigError(f"{path}: unknown {what}(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return doc
