"""What the preview is told: :class:`PreviewOptions`, and the one-line credential files."""

from __future__ import annotations

import ipaddress
import os
import stat
from dataclasses import dataclass, fields
from typing import Any

from ..errors import ConfigError

PREVIEW_FPS = 5.0  # JPEGs per second per watched source: enough to aim a camera, cheap on a Pi


@dataclass(frozen=True)
class PreviewOptions:
    """Where and how the preview is served.

    Attributes:
        address: ``HOST:PORT`` (``[::1]:PORT`` for IPv6; a bare ``PORT`` means 127.0.0.1; port 0:
            any free port, said on stderr).
        fps: most JPEGs encoded per second for each watched source.
        password_file: HTTP basic auth: one line ``user:password``, or a password for any user name.
        token_file: one line, the token accepted as ``?token=`` or ``Authorization: Bearer``.
        quality: JPEG quality, 1 to 95.

    Raises ConfigError: a malformed address, ``fps`` not above 0, ``quality`` outside 1..95, or a
    non-loopback address without a credential (camera pictures are private).
    """

    address: str = "127.0.0.1:8090"
    fps: float = PREVIEW_FPS
    password_file: str | None = None
    token_file: str | None = None
    quality: int = 80

    def __post_init__(self) -> None:
        host, _ = self.host_port
        if isinstance(self.fps, bool) or not isinstance(self.fps, (int, float)) or not self.fps > 0:
            raise ConfigError(f"preview fps: expected a number above 0, found {self.fps!r}")
        if isinstance(self.quality, bool) or not isinstance(self.quality, int) or not 1 <= self.quality <= 95:
            raise ConfigError(f"preview quality: expected a whole number from 1 to 95, found {self.quality!r}")
        if not is_loopback(host) and not (self.password_file or self.token_file):
            raise ConfigError(f"--preview {self.address} would show the camera pictures to the network without a "
                              "password: give --preview-password-file FILE or --preview-token-file FILE "
                              "(password_file / token_file under [preview]), or serve on 127.0.0.1")

    @property
    def host_port(self) -> tuple[str, int]:
        """``address`` as (host, port); raises ConfigError when it is not ``HOST:PORT``."""
        return _parse_address(self.address)


def preview_options(value: Any, **flags: Any) -> PreviewOptions | None:
    """PreviewOptions from a settings value — None (no preview), ``"HOST:PORT"``, a table of its
    fields (``[preview]``) or PreviewOptions — with ``flags`` that are not None on top (the CLI's
    ``--preview*`` over a settings file's).

    Raises ConfigError: another kind of value, an unknown key, or flags without an address.
    """
    flags = {k: v for k, v in flags.items() if v is not None}
    if value is None and not flags:
        return None
    if value is None and "address" not in flags:
        raise ConfigError(f"--preview-{next(iter(flags)).replace('_', '-')} needs --preview HOST:PORT "
                          "(or preview = \"HOST:PORT\" in the settings file)")
    if isinstance(value, PreviewOptions):
        value = {f.name: getattr(value, f.name) for f in fields(PreviewOptions)}
    elif isinstance(value, (str, int)) and not isinstance(value, bool):
        value = {"address": str(value)}
    elif value is not None and not isinstance(value, dict):
        raise ConfigError(f"preview: expected \"HOST:PORT\" or a [preview] table, found {value!r}")
    doc = {**(value or {}), **flags}
    known = [f.name for f in fields(PreviewOptions)]
    unknown = sorted(set(doc) - set(known))
    if unknown:
        raise ConfigError(f"[preview]: unknown setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return PreviewOptions(**doc)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an IP address) is this machine's loopback."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_secret(path: str, what: str) -> str:
    """The one line in a credential file readable by its owner only.

    Raises ConfigError: unreadable, readable by group or others, empty or more than one line.
    """
    try:
        if os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"{path}: the preview {what} file is readable by others; run 'chmod 600 {path}'")
        with open(path, encoding="utf-8") as fh:
            text = fh.read().strip()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the preview {what} file ({exc.strerror})") from None
    except UnicodeDecodeError:
        text = "\n"
    if not text or "\n" in text:
        raise ConfigError(f"{path}: expected one line of UTF-8 text in the preview {what} file, found "
                          f"{'nothing' if not text else 'something else'}")
    return text


def read_password(path: str) -> tuple[str | None, str]:
    """(user, or None for any user name; password) from a password file (see :func:`read_secret`)."""
    text = read_secret(path, "password")
    user, sep, password = text.partition(":")
    if not sep:
        return None, text
    if not password:
        raise ConfigError(f"{path}: expected user:password (or a password alone), found an empty password")
    return user or None, password


def _parse_address(text: Any) -> tuple[str, int]:
    shown = str(text).strip()
    host, sep, port = shown.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", shown
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # an IPv6 address needs brackets: [::1]:8090
    if not isinstance(text, (str, int)) or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"--preview: expected HOST:PORT like 127.0.0.1:8090 ([::1]:8090 for IPv6, a PORT alone "
                          f"for 127.0.0.1), found {shown!r}")
    return host, int(port)
