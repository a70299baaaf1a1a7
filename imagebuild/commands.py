"""Running the build's commands into its log, with a progress line that shows life on long work."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path


def run(cmd: list[str], log: Path | None = None, **kw) -> subprocess.CompletedProcess:
    if log is None:
        return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)
    with open(log, "a") as handle:
        handle.write(f"\n$ {' '.join(cmd)}\n")
        handle.flush()
        return subprocess.run(cmd, check=True, stdout=handle, stderr=subprocess.STDOUT, **kw)


def stream(cmd: list[str], log: Path, progress: Progress, env: dict[str, str] | None = None) -> int:
    """Run a command into the log, showing each `Step N/M` line of a docker build as the phase."""
    with open(log, "a") as handle:
        handle.write(f"\n$ {' '.join(cmd)}\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            handle.write(line)
            if line.startswith("Step ") and " : " in line:
                progress.set("docker build " + line.strip()[:100])
        return proc.wait()


class Progress:
    """Prints the current phase with its elapsed time every few seconds, so long work shows life."""

    def __init__(self, label: str, interval: float = 15.0):
        self.label, self.interval = label, interval
        self.phase = "starting"
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            print(f"  {self.label}: {self.phase} ({self.elapsed():.0f}s)", flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def set(self, phase: str) -> None:
        self.phase = phase
        print(f"  {self.label}: {phase} ({self.elapsed():.0f}s)", flush=True)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
