"""What a node listens on, compared with the catalog's declared list (catalog.LISTENERS).

Input is `ss -Hltnup` as the node prints it; the result names every socket nobody declared (and every
declared one that is missing), so a package that starts listening on every address is caught by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from firstboot import catalog
from firstboot.addresses import split_hostport
from firstboot.document import Node

_PROGRAM = re.compile(r'users:\(\("([^"]+)"')
# Docker's embedded DNS resolver listens inside every container of a user-defined network: the lab's engine,
# not the node.
ENGINE_RESOLVER = "127.0.0.11"


@dataclass(frozen=True)
class Socket:
    protocol: str
    address: str
    port: int
    program: str

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.protocol} {host}:{self.port} ({self.program or 'unknown program'})"


def parse_ss(text: str) -> list[Socket]:
    """`ss -Hltnup` lines -> sockets (Netid State Recv-Q Send-Q Local Peer Process)."""
    found = []
    for line in text.splitlines():
        cols = line.split()
        if len(cols) < 5:
            continue
        host, port = split_hostport(cols[4])
        match = _PROGRAM.search(line)
        found.append(Socket(cols[0], host, int(port or 0), match.group(1) if match else ""))
    return found


def addresses(node: Node, vip: str) -> dict[str, set[str]]:
    """Each kind of address a listener declares, for this node."""
    return {"management": {node.management}, "vip": {vip}, "loopback": {"127.0.0.1", "::1"},
            "ceph": {node.ceph_address}}


def compare(node: Node, vip: str, sockets: list[Socket]) -> tuple[list[Socket], list[catalog.Listener]]:
    """(sockets no listener of the node's role declares, declared always-on listeners with no socket)."""
    declared = [x for x in catalog.LISTENERS if node.role in x.roles]
    where = addresses(node, vip)

    def matches(x: catalog.Listener, s: Socket) -> bool:
        return (x.protocol == s.protocol and s.address in where[x.on] and x.ports[0] <= s.port <= x.ports[1]
                and x.program == s.program)

    live = [s for s in sockets if s.address != ENGINE_RESOLVER]
    unexpected = [s for s in live if not any(matches(x, s) for x in declared)]
    missing = [x for x in declared if x.always and not any(matches(x, s) for s in live)]
    return unexpected, missing
