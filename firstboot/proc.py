"""Running the commands steps need: as a service's user, tied to the agent's life, errors redacted."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

from firstboot.errors import GoldstackError
from firstboot.logsetup import REDACT

_PR_SET_PDEATHSIG = 1


class CommandFailed(GoldstackError):
    pass


def die_with_parent() -> None:
    """A db sync must not outlive an agent that was killed: its successor would run it a second time."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def run(argv: Sequence[str], user: str | None = None, env: Mapping[str, str] | None = None, timeout: float = 900,
        input_text: str | None = None, ok_codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    try:
        proc = subprocess.run(list(argv), user=user, group=user, extra_groups=[] if user else None, env=full_env,
                              input=input_text, capture_output=True, text=True, timeout=timeout,
                              preexec_fn=die_with_parent, cwd="/")
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"{' '.join(argv)} did not finish within {timeout:.0f}s") from None
    except FileNotFoundError:
        raise CommandFailed(f"{argv[0]} is not installed") from None
    if proc.returncode not in ok_codes:
        raise CommandFailed(REDACT(f"{' '.join(argv)} exited {proc.returncode}: {_gist(proc.stderr or proc.stdout)}"))
    return proc


def _gist(output: str) -> str:
    """The lines that say what went wrong: error lines first (tracebacks bury them), then the last lines."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"(Error|ERROR|error:|FATAL|Exception)", line)][-3:]
    return " | ".join(dict.fromkeys(errors + lines[-4:]))


def systemctl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return run(["systemctl", *args], timeout=timeout)


def unit_state(unit: str) -> str:
    proc = subprocess.run(["systemctl", "is-active", unit], capture_output=True, text=True, timeout=30)
    return proc.stdout.strip() or "unknown"


def unit_active_since(unit: str) -> float | None:
    """When the unit last became active, in epoch seconds (systemd gives whole seconds); None if never."""
    out = subprocess.run(["systemctl", "show", "--timestamp=unix", "-P", "ActiveEnterTimestamp", unit],
                         capture_output=True, text=True, timeout=30).stdout.strip()
    return float(out[1:]) if out.startswith("@") and out[1:].isdigit() else None


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 1.0,
             progress: Callable[[str], None] | None = None) -> None:
    """Poll `check` until it is true; raise naming `what` when `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout:.0f}s")
        if progress:
            progress(f"waiting: {what}")
        time.sleep(interval)
