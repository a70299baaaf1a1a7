"""The lab checks' OpenStack client: python-openstackclient kept running on a controller (osc_runner.py).

One runner answers one command at a time; the checks run together, so each container keeps a small pool
and a check takes an idle runner or starts another. Starting one costs what one `openstack` command does;
each later command costs only its API calls.
"""

from __future__ import annotations

import json
import select
import subprocess
import tempfile
import threading
from pathlib import Path

RUNNER_SOURCE = (Path(__file__).resolve().parent / "osc_runner.py").read_text()


class RunnerGone(Exception):
    """The runner's process ended (its container was stopped or killed)."""


def in_container(container: str) -> list[str]:
    """The command that starts a runner in a controller's container, with the admin credentials."""
    return ["docker", "exec", "-i", container, "sh", "-c", '. /root/admin-openrc && exec python3 -c "$1"',
            "osc-runner", RUNNER_SOURCE]


class Runner:
    def __init__(self, command: list[str]):
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the runner; close())
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) of `openstack ARGV`; TimeoutExpired after `timeout` seconds (the
        runner is then closed: its reply would come to the next caller)."""
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write((json.dumps(argv) + "\n").encode())
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.close()
            raise subprocess.TimeoutExpired(["openstack", *argv], timeout)
        line = self.proc.stdout.readline()
        if not line:
            self.close()
            raise RunnerGone(f"the OpenStack client runner ended: {self.stderr_tail()}")
        reply = json.loads(line)
        return reply["rc"], reply["out"], reply["err"]

    def stderr_tail(self) -> str:
        self.errors.seek(0)
        return self.errors.read().decode(errors="replace").strip()[-800:]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        if self.alive():
            self.proc.terminate()
        self.proc.wait()
        self.errors.close()


class Clients:
    """Idle runners per container."""

    def __init__(self) -> None:
        self.idle: dict[str, list[Runner]] = {}
        self.lock = threading.Lock()

    def call(self, container: str, argv: list[str], timeout: float) -> tuple[int, str, str]:
        runner = self._take(container)
        try:
            result = runner.call(argv, timeout)
        except BrokenPipeError:  # gone before the command was sent: safe to send it again, once
            runner.close()
            runner = Runner(in_container(container))
            result = runner.call(argv, timeout)
        with self.lock:
            self.idle.setdefault(container, []).append(runner)
        return result

    def _take(self, container: str) -> Runner:
        with self.lock:
            pool = self.idle.setdefault(container, [])
            while pool:
                runner = pool.pop()
                if runner.alive():
                    return runner
                runner.close()
        return Runner(in_container(container))

    def close(self) -> None:
        with self.lock:
            for pool in self.idle.values():
                for runner in pool:
                    runner.close()
            self.idle.clear()
