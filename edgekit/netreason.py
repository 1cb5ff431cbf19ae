"""One-line reasons for a connection that failed, the same for cameras and MQTT brokers: a host
that does not resolve, a port that refuses and an address that does not answer each say which
it is and what to check, never a bare "timed out" or "Protocol error"."""

from __future__ import annotations

import socket

__all__ = ["connect_reason"]


def connect_reason(exc: BaseException | None, host: str, port: int | None, timeout: float,
                   what: str = "camera") -> str | None:
    """What a failed TCP connect to ``host:port`` was, from its exception.

    Args:
        exc: the exception the connect raised.
        host, port: where it tried to connect.
        timeout: the connect timeout that applied, in seconds.
        what: the server's kind for the advice ("camera", "broker").

    Returns:
        The reason, or None when ``exc`` is none of the three (the caller keeps its own).
    """
    where = f"{host}:{port}" if port else host
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host {host}: check the name (or use the {what}'s IP address)"
    if isinstance(exc, ConnectionRefusedError):
        return f"{where} refused the connection: check the port and that the {what} runs"
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
        return f"no answer from {where} within {timeout:g} s: check the address and that the {what} is on"
    return None
