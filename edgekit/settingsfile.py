"""Settings files: TOML, or JSON by extension — one reader for the MQTT settings and the service
settings (their keys are checked by :mod:`edgekit.settings_schema`)."""

from __future__ import annotations

import json
import re
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
        twice = None if path.endswith(".json") else _set_twice(str(exc), raw)
        if twice is not None:
            raise ConfigError(f"{path} line {twice[0]}: key `{twice[1]}` is set twice: keep one") from None
        raise ConfigError(f"{path}: not valid {'JSON' if path.endswith('.json') else 'TOML'} ({exc}); "
                          f"expected {expected}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected {expected}, found a JSON {type(doc).__name__}")
    return doc


_TWICE = re.compile(r"^(?:Cannot overwrite a value|Cannot declare \((?P<table>.*)\) twice|"
                    r"Duplicate inline table key '(?P<inline>[^']*)') \(at (?:line (?P<line>\d+)|end of document)")
_HEADER = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+\s*(?:#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")


def _set_twice(message: str, raw: bytes) -> tuple[int, str] | None:
    """(line, key) of a key or table a TOML document sets twice, from tomllib's message (which names
    where the second value ends, and the key only for tables and inline tables); None: another error."""
    match = _TWICE.match(message)
    if match is None:
        return None
    lines = raw.decode("utf-8", "replace").splitlines()
    number = int(match["line"]) if match["line"] else len(lines)
    while number > 1 and not lines[number - 1].strip():  # "end of document": the last line with text
        number -= 1
    if match["table"] is not None:
        return number, ".".join(p.strip(" '\"") for p in match["table"].split(",") if p.strip())
    text = lines[number - 1] if 0 < number <= len(lines) else ""
    header = _HEADER.match(text)
    if header is not None:
        return number, _plain(header[1])
    if match["inline"] is not None:
        return number, match["inline"]
    for n in range(number, 0, -1):  # a value over several lines ends below its key
        key = _KEY.match(lines[n - 1])
        if key is not None:
            table = next((_plain(h[1]) for h in map(_HEADER.match, reversed(lines[:n - 1])) if h), None)
            return n, f"{table}.{_plain(key[1])}" if table else _plain(key[1])
    return number, "?"


def _plain(key: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in key.split("."))
