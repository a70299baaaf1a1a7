"""Find the Goldstack document inside user-data, in any of the shapes the seed generator or users make."""

from __future__ import annotations

import email
import email.policy

import yaml

from firstboot.sources.base import NODE_FILE


def extract_document(user_data: bytes | str) -> str | None:
    """The document's text, or None when this user-data carries none.

    Shapes: a #cloud-config whose write_files writes /etc/goldstack/node.yaml (what `seed` makes), a
    MIME multipart holding such a part, or a bare document (a mapping with `version` and `node`).
    """
    text = user_data.decode("utf-8", "replace") if isinstance(user_data, bytes) else user_data
    stripped = text.lstrip()
    if stripped.startswith(("Content-Type:", "MIME-Version:")):
        message = email.message_from_string(text, policy=email.policy.default)
        for part in message.walk():
            if part.is_multipart():
                continue
            payload = part.get_payload(decode=True)
            if payload and (found := extract_document(payload)):
                return found
        return None
    if stripped.startswith("#cloud-config"):
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError:
            return None
        for entry in (config or {}).get("write_files") or []:
            if isinstance(entry, dict) and entry.get("path") == NODE_FILE and "content" in entry:
                return str(entry["content"])
        return None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return text if ("version:" in text and "node:" in text) else None  # malformed: let validation say so
    if isinstance(data, dict) and "node" in data and "version" in data:
        return text
    return None
