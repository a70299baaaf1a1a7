"""Logging to stdout (the journal, when run by systemd) with every secret redacted."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from firstboot.secrets import REDACTED


class Redactor:
    """Replaces known secret strings; longest first so a secret containing another is fully hidden."""

    def __init__(self, secrets: Iterable[str] = ()):
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted(set(self.secrets) | {s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


class RedactingFilter(logging.Filter):
    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = self.redactor(message), ()
        return True


REDACT = Redactor()


def setup(verbose: bool = False) -> logging.Logger:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s goldstack %(levelname)s %(message)s", "%H:%M:%S"))
    handler.addFilter(RedactingFilter(REDACT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    return logging.getLogger("goldstack")
