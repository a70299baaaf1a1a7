"""The lab checks' OpenStack client: python-openstackclient kept running on a controller (osc_runner.py).

One runner per controller answers many commands at once (it forks a child per command after paying the
client's imports and the password authentication once), so the checks running together share it; its
replies come back by request id in whatever order the commands finish.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import tempfile
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
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
        self.lock = threading.Lock()
        self.waiting: dict[int, Future] = {}
        self.ids = itertools.count(1)
        self.gone = ""  # why the runner ended, once it has
        self.reader = threading.Thread(target=self._read, daemon=True, name="osc-replies")
        self.reader.start()

    def alive(self) -> bool:
        return self.proc.poll() is None and not self.gone

    def call(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) of `openstack ARGV`; TimeoutExpired after `timeout` seconds (a late
        reply is dropped), RunnerGone when the runner ends first."""
        assert self.proc.stdin
        reply: Future = Future()
        with self.lock:
            if self.gone:
                raise RunnerGone(self.gone)
            ident = next(self.ids)
            self.waiting[ident] = reply
            try:
                self.proc.stdin.write((json.dumps({"id": ident, "argv": argv}) + "\n").encode())
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                self.waiting.pop(ident, None)
                raise BrokenPipeError("the OpenStack client runner no longer reads commands") from None
        try:
            result = reply.result(timeout)
        except FutureTimeout:
            with self.lock:
                self.waiting.pop(ident, None)
            raise subprocess.TimeoutExpired(["openstack", *argv], timeout) from None
        return result["rc"], result["out"], result["err"]

    def _read(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            reply = json.loads(line)
            with self.lock:
                waiter = self.waiting.pop(reply.get("id"), None)
            if waiter:
                waiter.set_result(reply)
        self.proc.wait()
        with self.lock:
            self.gone = f"the OpenStack client runner ended: {self.stderr_tail()}"
            waiting, self.waiting = self.waiting, {}
        for waiter in waiting.values():
            waiter.set_exception(RunnerGone(self.gone))

    def stderr_tail(self) -> str:
        if self.errors.closed:
            return ""
        self.errors.seek(0)
        return self.errors.read().decode(errors="replace").strip()[-800:]

    def close(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            with self.lock:
                self.proc.stdin.close()
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait()
        self.reader.join(timeout=10)
        self.errors.close()


class Clients:
    """One runner per container, started on first use or ahead of it (`start`)."""

    def __init__(self) -> None:
        self.runners: dict[str, Runner] = {}
        self.lock = threading.Lock()

    def start(self, containers: list[str]) -> None:
        """Start these containers' runners now; they import and authenticate side by side meanwhile."""
        for container in containers:
            self._runner(container)

    def call(self, container: str, argv: list[str], timeout: float) -> tuple[int, str, str]:
        runner = self._runner(container)
        try:
            return runner.call(argv, timeout)
        except BrokenPipeError:  # gone before the command was sent: safe to send it again, once
            self._forget(container, runner)
            return self._runner(container).call(argv, timeout)

    def _runner(self, container: str) -> Runner:
        with self.lock:
            runner = self.runners.get(container)
            if runner and runner.alive():
                return runner
            self.runners[container] = Runner(in_container(container))
        if runner:
            runner.close()
        return self.runners[container]

    def _forget(self, container: str, runner: Runner) -> None:
        with self.lock:
            if self.runners.get(container) is runner:
                del self.runners[container]
        runner.close()

    def close(self) -> None:
        with self.lock:
            runners, self.runners = list(self.runners.values()), {}
        for runner in runners:
            runner.close()
