"""The OpenStack (and EC2-compatible) metadata service over HTTP, with timeouts and retries."""

from __future__ import annotations

import logging
import queue
import threading
import time

import requests

from firstboot.document import MAX_BYTES
from firstboot.errors import SourceError
from firstboot.sources.base import Found
from firstboot.sources.userdata import extract_document

DEFAULT_URL = "http://169.254.169.254"
PATHS = ("/openstack/latest/user_data", "/latest/user-data")
ATTEMPT_SECONDS = 30.0  # one request, headers and body, however slowly the server sends them
log = logging.getLogger(__name__)


class _TooSlow(Exception):
    """No whole answer within ATTEMPT_SECONDS."""


def _get(session: requests.Session, url: str, timeouts: tuple[float, float]) -> tuple[int, bytes]:
    """The status and body of one GET, the body read as it arrives and refused past MAX_BYTES."""
    # identity: the size limit is the document's, not that of a compressed form of it.
    with session.get(url, timeout=timeouts, stream=True, headers={"Accept-Encoding": "identity"}) as response:
        body = bytearray()
        while chunk := response.raw.read1(65536, decode_content=True):  # what one read brings, not a full buffer
            body += chunk
            if len(body) > MAX_BYTES:
                raise SourceError(f"metadata service {url} sent more than {MAX_BYTES} bytes; a node document "
                                  "is smaller (docs/metadata.md)")
        return response.status_code, bytes(body)


def _get_within(session: requests.Session, url: str, timeouts: tuple[float, float],
                seconds: float) -> tuple[int, bytes]:
    """_get, given up after `seconds` in all: the read timeout bounds each wait for a byte, so a server that
    sends one now and then would hold the agent without end. The abandoned request's thread is a daemon:
    it dies with the agent or when the server stops."""
    answer: queue.Queue = queue.Queue(maxsize=1)

    def fetch() -> None:
        try:
            answer.put((True, _get(session, url, timeouts)))
        except BaseException as exc:  # handed to the caller, which raises it
            answer.put((False, exc))

    threading.Thread(target=fetch, name="metadata-get", daemon=True).start()
    try:
        ok, value = answer.get(timeout=seconds)
    except queue.Empty:
        raise _TooSlow from None
    if not ok:
        raise value
    return value


def read(base_url: str = DEFAULT_URL, attempts: int = 3, connect_timeout: float = 2.0,
         read_timeout: float = 10.0, backoff: float = 1.0, attempt_seconds: float = ATTEMPT_SECONDS) -> Found | None:
    """Try the OpenStack path, then the EC2 one; retry connection errors, answers slower than
    `attempt_seconds` and 5xx with backoff.

    A 404 on both means the service answers but holds no user-data: None. No answer at all after
    every attempt is also None, so a host with no metadata service falls through quickly. A server that
    answers too slowly every time is an error: something answers, but not as a metadata service does.
    """
    session = requests.Session()
    for path in PATHS:
        url = base_url.rstrip("/") + path
        for attempt in range(1, attempts + 1):
            try:
                status, body = _get_within(session, url, (connect_timeout, read_timeout), attempt_seconds)
            except (requests.RequestException, _TooSlow) as exc:
                slow = isinstance(exc, _TooSlow)
                why = f"no whole answer within {attempt_seconds:g}s" if slow else type(exc).__name__
                log.info("metadata %s: attempt %d/%d failed: %s", url, attempt, attempts, why)
                if attempt == attempts:
                    if slow:
                        raise SourceError(f"metadata service {url} gave no whole answer within "
                                          f"{attempt_seconds:g}s in {attempts} attempts") from None
                    return None  # nothing listens: no metadata service here
                session = requests.Session()  # the slow request may still hold the pooled connection
                time.sleep(backoff * attempt)
                continue
            if status == 404:
                break
            if status >= 500 and attempt < attempts:
                log.info("metadata %s: HTTP %d, retrying", url, status)
                time.sleep(backoff * attempt)
                continue
            if status != 200:
                raise SourceError(f"metadata service {url} answered HTTP {status}")
            text = extract_document(body)
            return Found("http", url, text) if text is not None else None
    return None
