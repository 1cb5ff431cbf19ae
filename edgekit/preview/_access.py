"""Who may see the preview: the credential check, in constant time."""

from __future__ import annotations

import base64
import hmac
from typing import Any

from ._options import PreviewOptions, is_loopback, read_password, read_secret


class Access:
    """The credentials of a preview, read once from its files (ConfigError when they are bad)."""

    def __init__(self, options: PreviewOptions) -> None:
        self.user, self.password = read_password(options.password_file) if options.password_file else (None, None)
        self.token = read_secret(options.token_file, "token") if options.token_file else None

    def refusal(self, headers: Any, query: dict[str, list[str]], url: str) -> tuple[int, str, dict[str, str]] | None:
        """Why a request may not see the pictures, as (status, text, headers); None: it may.

        Without credentials (a loopback address) only loopback ``Host`` names are answered, so a
        web page cannot read the pictures through a DNS name rebound to 127.0.0.1.
        """
        if self.password is None and self.token is None:
            name = _host_name(headers.get("Host") or "127.0.0.1")
            if is_loopback(name):
                return None
            return 403, (f"this preview answers loopback host names only (Host: {name}): open {url}, or give the "
                         "preview a password or token file"), {}
        scheme, _, value = (headers.get("Authorization") or "").partition(" ")
        scheme, value, ok = scheme.lower(), value.strip(), False
        if self.token is not None:
            given = (query.get("token") or [None])[-1] or (value if scheme == "bearer" else None)
            if given is not None:
                ok |= hmac.compare_digest(given.encode(), self.token.encode())
        if self.password is not None and scheme == "basic":
            try:
                user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
                user, password = "", ""
            good_password = hmac.compare_digest(password.encode(), self.password.encode())
            good_user = self.user is None or hmac.compare_digest(user.encode(), self.user.encode())
            ok |= good_password and good_user
        if ok:
            return None
        challenge = 'Basic realm="edgekit preview", charset="UTF-8"' if self.password is not None else "Bearer"
        return 401, "this preview needs a credential (see the README: Live preview)", {"WWW-Authenticate": challenge}


def _host_name(value: str) -> str:
    """The name in a Host header, without its port."""
    if value.startswith("["):
        return value[1:].partition("]")[0]
    return value.rpartition(":")[0] if value.count(":") == 1 else value
