"""Ed25519 keys in OpenSSH's format: made by `ssh-keygen` (on the machine that makes the site's seeds) and
read back here without it: the public half sits in clear inside an unencrypted private key file."""

from __future__ import annotations

import base64
import binascii
import struct
import subprocess
import tempfile
from pathlib import Path

BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----"
END = "-----END OPENSSH PRIVATE KEY-----"
MAGIC = b"openssh-key-v1\0"


class BadKey(ValueError):
    pass


def generate(comment: str) -> str:
    """A new unencrypted ed25519 private key, as OpenSSH writes it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "key"
        try:
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                           check=True, capture_output=True, timeout=30)
        except FileNotFoundError:
            raise RuntimeError("ssh-keygen is not installed: apt-get install openssh-client") from None
        return path.read_text()


def _strings(data: bytes, count: int, offset: int) -> tuple[list[bytes], int]:
    found = []
    for _ in range(count):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        found.append(data[offset + 4:offset + 4 + length])
        offset += 4 + length
    return found, offset


def public_key(private: str, comment: str = "") -> str:
    """The `ssh-ed25519 AAAA... comment` line of an unencrypted OpenSSH ed25519 private key."""
    text = private.strip()
    if not text.startswith(BEGIN) or not text.endswith(END):
        raise BadKey("is not an OpenSSH private key (BEGIN/END OPENSSH PRIVATE KEY)")
    try:
        data = base64.b64decode("".join(text[len(BEGIN):-len(END)].split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadKey("is not base64 between its BEGIN and END lines") from None
    if not data.startswith(MAGIC):
        raise BadKey("is not an openssh-key-v1 key")
    try:
        (cipher, kdf, _options), offset = _strings(data, 3, len(MAGIC))
        (count,) = struct.unpack(">I", data[offset:offset + 4])
        (blob,), _ = _strings(data, 1, offset + 4)
        (kind,), _ = _strings(blob, 1, 0)
    except struct.error:
        raise BadKey("is cut short") from None
    if cipher != b"none" or kdf != b"none":
        raise BadKey("is encrypted; the agent needs an unencrypted key")
    if count != 1 or kind != b"ssh-ed25519":
        raise BadKey("must hold one ed25519 key (ssh-keygen -t ed25519)")
    return " ".join(p for p in ("ssh-ed25519", base64.b64encode(blob).decode(), comment) if p)


def check(value: object) -> str | None:
    if not isinstance(value, str):
        return "must be an OpenSSH private key (text)"
    try:
        public_key(value)
    except BadKey as exc:
        return str(exc)
    return None
