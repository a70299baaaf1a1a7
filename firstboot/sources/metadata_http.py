"""The OpenStack (and EC2-compatible) metadata service over HTTP, with timeouts and retries."""

from __future__ import annotations

import logging
import time

import requests

from firstboot.errors import SourceError
from firstboot.sources.base import Found
from firstboot.sources.userdata import extract_document

DEFAULT_URL = "http://169.254.169.254"
PATHS = ("/openstack/latest/user_data", "/latest/user-data")
log = logging.getLogger(__name__)


def read(base_url: str = DEFAULT_URL, attempts: int = 3, connect_timeout: float = 2.0,
         read_timeout: float = 10.0, backoff: float = 1.0) -> Found | None:
    """Try the OpenStack path, then the EC2 one; retry connection errors and 5xx with backoff.

    A 404 on both means the service answers but holds no user-data: None. No answer at all after
    every attempt is also None, so a host with no metadata service falls through quickly.
    """
    session = requests.Session()
    for path in PATHS:
        url = base_url.rstrip("/") + path
        for attempt in range(1, attempts + 1):
            try:
                response = session.get(url, timeout=(connect_timeout, read_timeout))
            except requests.RequestException as exc:
                log.info("metadata %s: attempt %d/%d failed: %s", url, attempt, attempts, type(exc).__name__)
                if attempt == attempts:
                    return None  # nothing listens: no metadata service here
                time.sleep(backoff * attempt)
                continue
            if response.status_code == 404:
                break
            if response.status_code >= 500 and attempt < attempts:
                log.info("metadata %s: HTTP %d, retrying", url, response.status_code)
                time.sleep(backoff * attempt)
                continue
            if response.status_code != 200:
                raise SourceError(f"metadata service {url} answered HTTP {response.status_code}")
            text = extract_document(response.content)
            return Found("http", url, text) if text is not None else None
    return None
