"""An address inside a URL or a host:port pair: IPv6 addresses go in brackets."""

from __future__ import annotations


def url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def hostport(address: str, port: int) -> str:
    return f"{url_host(address)}:{port}"


def split_hostport(text: str) -> tuple[str, int | None]:
    """hostport's inverse, as `ss` prints an end: `10.0.0.5:80`, `[fd00::1]:80`, `[fe80::1%eth0]:80`
    (the zone dropped); the port is None when the text has none."""
    host, _, port = text.rpartition(":")
    return host.strip("[]").split("%")[0], int(port) if port.isdigit() else None
