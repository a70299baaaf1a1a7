"""Helpers for tests that run role images as systemd containers on a private Docker network."""

from __future__ import annotations

import json
import random
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LABEL = "org.goldstack.test"
# systemd as PID 1 without --privileged (this host refuses it): see docs/host.md. Plus the
# capabilities the services' privsep daemons keep for themselves (neutron's
# and nova's contexts include DAC_READ_SEARCH and SYS_PTRACE, which Docker does not grant by default).
SYSTEMD_FLAGS = [
    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--cap-add", "SYS_PTRACE", "--cap-add", "DAC_READ_SEARCH",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
]


def docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@contextmanager
def network(name: str) -> Iterator[str]:
    """A bridge network with a free /24; yields its prefix like '10.213.7' (hosts .2-.254)."""
    used = set()
    for net in docker("network", "ls", "-q").stdout.split():
        info = json.loads(docker("network", "inspect", net).stdout)[0]
        for cfg in (info.get("IPAM") or {}).get("Config") or []:
            used.add(cfg.get("Subnet", ""))
    for _ in range(50):
        prefix = f"10.{random.randint(200, 250)}.{random.randint(0, 255)}"
        if f"{prefix}.0/24" not in used:
            break
    docker("network", "create", "--label", LABEL, "--subnet", f"{prefix}.0/24", name)
    try:
        yield prefix
    finally:
        docker("network", "rm", name, check=False)


def run_node(name: str, image: str, net: str, ip: str, node_yaml: Path) -> None:
    docker("run", "-d", "--name", name, "--hostname", name, "--label", LABEL, *SYSTEMD_FLAGS,
           "--network", net, "--ip", ip, "-v", f"{node_yaml}:/etc/goldstack/node.yaml:ro", image)


def remove(name: str) -> None:
    docker("rm", "-f", "-v", name, check=False)


def agent_status(name: str) -> dict | None:
    proc = docker("exec", name, "goldstack-firstboot", "status", "--json", check=False)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        return None


def wait_agent(name: str, timeout: float = 300) -> dict:
    """Poll the agent's status until its run ends; return the final state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = agent_status(name)
        if state and state.get("agent", {}).get("status") in ("done", "failed"):
            return state
        running = docker("inspect", "-f", "{{.State.Running}}", name, check=False).stdout.strip()
        if running == "false":
            raise AssertionError(f"{name} stopped:\n{diagnostics(name)}")
        time.sleep(2)
    raise AssertionError(f"{name}: agent did not finish within {timeout}s:\n{diagnostics(name)}")


def diagnostics(name: str) -> str:
    parts = []
    for cmd in (["exec", name, "goldstack-firstboot", "status"],
                ["exec", name, "journalctl", "-u", "goldstack-firstboot", "--no-pager", "-n", "200"],
                ["exec", name, "systemctl", "--failed", "--no-pager"],
                ["logs", "--tail", "100", name]):
        proc = docker(*cmd, check=False)
        parts.append(f"$ docker {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    return "\n".join(parts)
