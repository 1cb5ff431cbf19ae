"""One-line reasons for a connection that failed, the same for cameras and MQTT brokers: an
unresolvable host, a refused port and a silent address each say what they are (and so what to
check), never a bare "timed out" or "Protocol error"."""

from __future__ import annotations

import socket

__all__ = ["connect_reason", "diagnose"]


def connect_reason(exc: BaseException, host: str, port: int | None, timeout: float) -> str | None:
    """What a failed connect to ``host:port`` was, from its exception; None when ``exc`` is not
    one of the three (the caller keeps its own reason)."""
    where = f"{host}:{port}" if port else host
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host {host} (check the host name, or use its IP address)"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {where} (nothing listens on that port: check the port, and that the server runs)"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"no answer from {where} within {timeout:g} s (check the address, the network and any firewall)"
    return None


def diagnose(host: str, port: int, timeout: float) -> str | None:
    """Try ``host:port`` once and say why it cannot be reached; None when a TCP connection opens
    (the problem is then above TCP: TLS, or not the expected server)."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return connect_reason(exc, host, port, timeout) or f"cannot connect to {host}:{port} ({exc})"
    return None
