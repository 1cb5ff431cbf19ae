"""Settings files: TOML, or JSON by extension — one reader for the MQTT settings and the service
settings (their keys are checked by :mod:`edgekit.settings_schema`)."""

from __future__ import annotations

import json
from typing import Any

from .errors import ConfigError

__all__ = ["read_document"]


def read_document(path: str, expected: str) -> dict[str, Any]:
    """The document in ``path`` (TOML, or JSON when it ends in ``.json``).

    Raises ConfigError: unreadable or malformed (saying ``expected``), TOML on Python < 3.11, or
    not a table at the top.
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
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the settings ({exc.strerror or exc}); expected {expected}") from None
    except RecursionError:  # json and tomllib recurse per level of [ / {: a hostile or broken file
        raise ConfigError(f"{path}: not valid {'JSON' if path.endswith('.json') else 'TOML'} (lists or tables "
                          f"nested too deeply); expected {expected}") from None
    except ValueError as exc:  # JSON, TOML and UTF-8 decoding errors
        raise ConfigError(f"{path}: not valid {'JSON' if path.endswith('.json') else 'TOML'} ({exc}); "
                          f"expected {expected}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected {expected}, found a JSON {type(doc).__name__}")
    return doc
