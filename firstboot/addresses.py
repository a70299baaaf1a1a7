"""An address inside a URL or a host:port pair: IPv6 addresses go in brackets."""

from __future__ import annotations


def url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def hostport(address: str, port: int) -> str:
    return f"{url_host(address)}:{port}"
