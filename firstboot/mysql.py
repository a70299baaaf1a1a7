"""SQL on the local MariaDB through its client over the Unix socket, as root (unix_socket auth).

The `mariadb` client is used rather than a Python driver: it is always in the controller image, it
authenticates root by the socket's peer credentials with no password anywhere, and a statement that
Galera aborts (certification conflict) comes back as a plain error code the caller can act on.
`greets` is the one probe of a server over TCP (through the VIP): it reads the server's first packet
and logs in to nothing.
"""

from __future__ import annotations

import re
import socket
import subprocess

SOCKET = "/run/mysqld/mysqld.sock"
HANDSHAKE_V10, ERROR_PACKET = 0x0A, 0xFF  # the first payload byte of what a server sends on connecting
ER_DUP_ENTRY = 1062
ER_LOCK_DEADLOCK = 1213
_ERROR = re.compile(r"ERROR (\d+)")


def greets(host: str, port: int, timeout: float = 3) -> bool:
    """A MySQL server speaks first on connecting to host:port: its handshake (protocol 10), or an error
    packet (0xff) when it refuses this client's host, before the databases step grants it. Either proves
    the server is reachable; HAProxy accepts a TCP connection even with no server behind it."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            packet = conn.recv(64)
    except OSError:
        return False
    return len(packet) > 4 and packet[4] in (HANDSHAKE_V10, ERROR_PACKET)


class MysqlError(Exception):
    def __init__(self, code: int | None, message: str):
        super().__init__(message)
        self.code = code


def quote(value: object) -> str:
    """A SQL literal. Values here are names, versions and numbers the agent made; quote them anyway."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def run_sql(sql: str, timeout: float = 30, database: str | None = None) -> list[list[str]]:
    """Run statements; return the rows of the last result set (tab-separated columns, NULL as 'NULL')."""
    cmd = ["mariadb", "--protocol=socket", f"--socket={SOCKET}", "--batch", "--skip-column-names",
           "--connect-timeout=5"]
    if database:
        cmd.append(database)
    try:
        proc = subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MysqlError(None, f"the local MariaDB did not answer within {timeout:.0f}s") from None
    except FileNotFoundError:
        raise MysqlError(None, "the mariadb client is not installed") from None
    if proc.returncode != 0:
        match = _ERROR.search(proc.stderr)
        raise MysqlError(int(match.group(1)) if match else None, proc.stderr.strip() or f"exit {proc.returncode}")
    # Batch mode escapes tabs, newlines and backslashes inside values, so lines and columns split safely.
    return [[_unescape(v) for v in line.split("\t")] for line in proc.stdout.splitlines()]


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "0": "\0"}


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), value)


def wsrep_status() -> dict[str, str]:
    """The node's wsrep_% status variables, lower-cased names."""
    rows = run_sql("SHOW GLOBAL STATUS LIKE 'wsrep_%';", timeout=5)
    return {row[0].lower(): row[1] if len(row) > 1 else "" for row in rows}
