"""The settings files' schema language: each key's type, from the option dataclasses' own
annotations, and one-line errors that name the file, the key (``mqtt.port``,
``sources[2].motion.threshold``), what was expected and what was found.

A schema is built from :class:`Table` (a dataclass's fields, or named specs), :class:`OneOf` and
:class:`ListOf` around plain annotations (``int``, ``float | None``, ``tuple[str, ...]``).
Ranges are not repeated here: a dataclass owns them, either in its ``__post_init__`` or as field
metadata made by :func:`rule` / :func:`number` (checked by :func:`check_rules`), and
:func:`built` runs that constructor under the key's name.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .errors import ConfigError

__all__ = ["NOT_A_KEY", "Table", "OneOf", "ListOf", "Custom", "check", "built", "found", "rule", "number", "check_rules"]

_RULE = "edgekit.rule"
_KEY = "edgekit.key"  # False: a field that is not a settings-file key (where the settings came from)
NOT_A_KEY = {_KEY: False}  #: field metadata: the field is no key of a settings file


def rule(test: Callable[[Any], bool], expected: str, **metadata: Any) -> dict:
    """Field metadata: ``test(value)`` must hold, else the value is refused as not ``expected``."""
    return {**metadata, _RULE: (test, expected)}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(lo: float | None = None, hi: float | None = None, *, above: float | None = None, whole: bool = False,
           optional: bool = False) -> dict:
    """Field metadata for a number in a range: ``lo <= value <= hi``, ``value > above``;
    ``whole``: an int; ``optional``: None allowed (no limit)."""
    kind = "a whole number" if whole else "a number"
    if lo is not None and hi is not None:
        expected = f"{kind} from {lo:g} to {hi:g}"
    elif above is not None:
        expected = f"{kind} above {above:g}"
    else:
        expected = f"{kind} >= {lo:g}" if lo is not None else kind

    def test(value: Any) -> bool:
        if value is None:
            return optional
        if not _is_number(value) or (whole and not isinstance(value, int)):
            return False
        return ((lo is None or value >= lo) and (hi is None or value <= hi)
                and (above is None or value > above))

    return rule(test, expected)


def check_rules(obj: Any) -> None:
    """Check ``obj``'s fields against their :func:`rule` metadata (call it in ``__post_init__``).

    Raises ConfigError: ``"NAME: expected ..., found ..."`` for the first field that breaks its rule.
    """
    for f in dataclasses.fields(obj):
        checker = f.metadata.get(_RULE)
        if checker is not None and not checker[0](getattr(obj, f.name)):
            raise ConfigError(f"{f.name}: expected {checker[1]}, found {found(getattr(obj, f.name))}")


@dataclass(frozen=True)
class Table:
    """A table whose keys are ``of``'s dataclass fields (their annotations are the types; not those
    with :data:`NOT_A_KEY` metadata) and/or the
    specs in ``keys``; ``specs`` replace a field's annotation (an ``Any`` field needs one);
    ``required`` keys must be there; ``what`` names its keys in messages ("setting")."""

    of: Any = None
    keys: Mapping[str, Any] = field(default_factory=dict)
    specs: Mapping[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    what: str = "setting"

    def types(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.of is not None:
            hints = typing.get_type_hints(self.of)
            out.update({f.name: hints[f.name] for f in dataclasses.fields(self.of) if f.metadata.get(_KEY, True)})
        out.update(self.keys)
        out.update(self.specs)
        return out


@dataclass(frozen=True)
class OneOf:
    """Any one of ``options``; ``expected`` says what they are together."""

    options: tuple[Any, ...]
    expected: str


@dataclass(frozen=True)
class ListOf:
    """A list whose every item fits ``item``; ``expected`` says what it is."""

    item: Any
    expected: str


@dataclass(frozen=True)
class Custom:
    """Checked by ``test(value, key, file)``, which raises ConfigError; ``expected`` says what it takes."""

    test: Callable[[Any, str, str], None]
    expected: str


_NAMES = {bool: ("true or false", "true/false values"), int: ("a whole number", "whole numbers"),
          float: ("a number", "numbers"), str: ("a string", "strings"), type(None): ("none", "nones")}


def expected(spec: Any) -> str:
    """What ``spec`` takes, in words."""
    if isinstance(spec, (OneOf, ListOf, Custom)):
        return spec.expected
    if isinstance(spec, Table):
        return f"a table of {spec.what}s"
    if spec in _NAMES:
        return _NAMES[spec][0]
    origin, args = typing.get_origin(spec), typing.get_args(spec)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(expected(a) for a in args if a is not type(None))  # None: leave the key out
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            one, many = _NAMES.get(args[0], (f"a {getattr(args[0], '__name__', args[0])}", "values"))
            return f"{one} or a list of {many}"
        return f"a list of {len(args)} {_NAMES.get(args[0], ('', 'values'))[1]}"
    return f"a {getattr(spec, '__name__', spec)}"


def found(value: Any) -> str:
    """A value as a message shows it, with its kind (a file's strings, numbers, tables…)."""
    if value is None:
        return "none (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return f"a table ({', '.join(map(str, list(value)[:6]))}{', …' if len(value) > 6 else ''})" if value \
            else "an empty table"
    text = repr(list(value) if isinstance(value, tuple) else value)
    text = text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, str):
        return f"{text} (a string)"
    if isinstance(value, (list, tuple)):
        return f"a list {text}"
    return text


def _fits(spec: Any, value: Any) -> bool:
    if spec is Any:
        return True
    if spec is bool:
        return isinstance(value, bool)
    if spec is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if spec is float:
        return _is_number(value)
    if spec in (str, type(None)):
        return isinstance(value, spec)
    origin, args = typing.get_origin(spec), typing.get_args(spec)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(a, value) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _fits(args[0], value) or (isinstance(value, (list, tuple))
                                             and all(_fits(args[0], v) for v in value))
        return (isinstance(value, (list, tuple)) and len(value) == len(args)
                and all(_fits(a, v) for a, v in zip(args, value)))
    return isinstance(spec, type) and isinstance(value, spec)


class _Bad(Exception):
    """A value that does not fit (internal: :func:`check` words it)."""


def check(spec: Any, value: Any, key: str, file: str) -> None:
    """Check ``value`` (at ``key``, a dotted path; "" for the file itself) against ``spec``.

    Raises ConfigError: ``"FILE: KEY: expected ..., found ..."``, or for unknown keys
    ``"FILE: unknown setting(s) KEY (did you mean …?); known: …"``.
    """
    if isinstance(spec, Table):
        _check_table(spec, value, key, file)
    elif isinstance(spec, Custom):
        spec.test(value, key, file)
    elif isinstance(spec, OneOf):
        for option in spec.options:  # the first option of the value's kind decides (a table is checked as one)
            if isinstance(option, Table) and isinstance(value, dict):
                return _check_table(option, value, key, file)
            if isinstance(option, ListOf) and isinstance(value, list):
                return check(option, value, key, file)
            if isinstance(option, Custom) and isinstance(value, dict):
                return option.test(value, key, file)
            if not isinstance(option, (Table, ListOf, Custom)) and _fits(option, value):
                return
        _refuse(spec, value, key, file)
    elif isinstance(spec, ListOf):
        if not isinstance(value, list):
            _refuse(spec, value, key, file)
        for i, item in enumerate(value):
            check(spec.item, item, f"{key}[{i}]", file)
    elif not _fits(spec, value):
        _refuse(spec, value, key, file)


def _refuse(spec: Any, value: Any, key: str, file: str) -> None:
    raise ConfigError(f"{file}: {key or 'the file'}: expected {expected(spec)}, found {found(value)}")


def _check_table(table: Table, value: Any, key: str, file: str) -> None:
    if not isinstance(value, dict):
        _refuse(table, value, key, file)
    known = table.types()
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        near = difflib.get_close_matches(unknown[0], list(known), n=1, cutoff=0.6)
        hint = f" (did you mean {near[0]}?)" if near else ""
        names = ", ".join(f"{key}.{u}" if key else u for u in unknown)
        raise ConfigError(f"{file}: unknown {table.what}(s) {names}{hint}; known{' in ' + key if key else ''}: "
                          f"{', '.join(sorted(known))}")
    missing = [k for k in table.required if k not in value]
    if missing:
        raise ConfigError(f"{file}: {key + ': ' if key else ''}missing {' and '.join(missing)} "
                          f"({expected(known[missing[0]])})")
    for name, item in value.items():
        check(known[name], item, f"{key}.{name}" if key else name, file)


def built(make: Callable[[], Any], key: str, file: str, fields_of: Any = None) -> Any:
    """``make()``, with a ConfigError it raises (a range its dataclass refuses) re-worded as
    ``"FILE: KEY: …"``; a message that starts with one of ``fields_of``'s field names (as
    :func:`check_rules` words them) gets it as ``KEY.FIELD``."""
    try:
        return make()
    except ConfigError as exc:
        text = str(exc)
        head, sep, rest = text.partition(": ")
        names = {f.name for f in dataclasses.fields(fields_of)} if fields_of is not None else set()
        if sep and head in names:
            key, text = f"{key}.{head}" if key else head, rest
        raise ConfigError(f"{file}: {key + ': ' if key else ''}{text}") from None
