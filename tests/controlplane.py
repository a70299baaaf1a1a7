"""A lab of real controller containers on a private network, seeded by the real seed generator."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from firstboot import seed
from tests import dockerlab
from tests.dockerlab import docker


@dataclass(frozen=True)
class RunningTask:
    task: str
    owner: str


@dataclass
class Lab:
    image: str
    net: str
    prefix: str
    seeds: Path
    names: list[str]
    containers: dict[str, str] = field(default_factory=dict)  # node name -> container name
    suffix: str = ""
    computes: list[str] = field(default_factory=list)
    images: dict[str, str] = field(default_factory=dict)  # role -> image, for nodes not controllers
    storages: list[str] = field(default_factory=list)

    def ip(self, name: str) -> str:
        if name in self.computes:
            return f"{self.prefix}.{21 + self.computes.index(name)}"
        if name in self.storages:
            return f"{self.prefix}.{31 + self.storages.index(name)}"
        return f"{self.prefix}.{11 + self.names.index(name)}"

    def role(self, name: str) -> str:
        return "compute" if name in self.computes else "storage" if name in self.storages else "controller"

    @property
    def vip(self) -> str:
        return f"{self.prefix}.10"

    @property
    def ca_file(self) -> str:
        """The site CA (from a seed) in a file beside the seeds: what a client on this host verifies with."""
        path = self.seeds.parent / "ca.pem"
        if not path.exists():
            path.write_text(yaml.safe_load((self.seeds / self.names[0] / "node.yaml").read_text())["tls"]["ca"])
        return str(path)

    def start(self, name: str) -> None:
        container = self.containers.setdefault(name, f"{name}-{self.suffix}")
        dockerlab.remove(container)
        docker("run", "-d", "--name", container, "--hostname", name, "--label", dockerlab.LABEL,
               *dockerlab.SYSTEMD_FLAGS, "--network", self.net, "--ip", self.ip(name),
               "-v", f"{self.seeds / name / 'node.yaml'}:/etc/goldstack/node.yaml:ro",
               self.images.get(self.role(name), self.image))

    def exec(self, name: str, *cmd: str, check: bool = True, timeout: float = 120, stdin: str | None = None):
        import subprocess

        return subprocess.run(["docker", "exec", "-i", self.containers[name], *cmd], input=stdin,
                              capture_output=True, text=True, check=check, timeout=timeout)

    def openstack(self, *args: str, node: str = "ctl1", timeout: float = 180, check: bool = True) -> object | None:
        """python-openstackclient on a controller with the admin credentials its agent wrote; JSON out.
        A failed command raises (with every node's diagnostics) when `check`, else gives None."""
        proc = self.exec(node, "sh", "-c", '. /root/admin-openrc && exec openstack "$@" -f json', "openstack",
                         *args, check=False, timeout=timeout)
        if proc.returncode == 0:
            return json.loads(proc.stdout)
        if check:
            raise AssertionError(f"openstack {' '.join(args)}: {proc.stderr[-2000:]}\n{self.diagnostics()}")
        return None

    def sql(self, name: str, statement: str, check: bool = True):
        return self.exec(name, "mariadb", "-N", "-B", "-e", statement, check=check)

    def wsrep(self, name: str) -> dict[str, str]:
        proc = self.sql(name, "SHOW GLOBAL STATUS LIKE 'wsrep_%'", check=False)
        return dict(line.split("\t", 1) for line in proc.stdout.splitlines() if "\t" in line)

    def rabbit_running(self, name: str) -> list[str]:
        proc = self.exec(name, "rabbitmqctl", "-q", "cluster_status", "--formatter", "json", check=False)
        try:
            return sorted(json.loads(proc.stdout).get("running_nodes", []))
        except json.JSONDecodeError:
            return []

    def wait_agents(self, names: list[str] | None = None, timeout: float = 900, since: float = 0) -> dict[str, dict]:
        """Every agent's state once all ended `done` in a run started after `since` (epoch). A failed run is
        retried by systemd, so a failure is final only when the timeout passes; then every node's
        diagnostics are in the message."""
        names = names or self.names
        deadline = time.monotonic() + timeout
        states: dict[str, dict | None] = {}

        def finished(s: dict | None) -> bool:
            agent = (s or {}).get("agent", {})
            return agent.get("status") == "done" and (agent.get("started") or 0) >= since

        while True:
            states = {n: dockerlab.agent_status(self.containers[n]) for n in names}
            if all(finished(s) for s in states.values()):
                return states  # type: ignore[return-value]
            if time.monotonic() > deadline:
                summary = {n: (s or {}).get("agent", {}).get("status") for n, s in states.items()}
                raise AssertionError(f"agents not done within {timeout}s: {summary}\n{self.diagnostics()}")
            time.sleep(3)

    def wait_for(self, check, what: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout}s\n{self.diagnostics()}")
            time.sleep(2)

    def wait_for_running_task(self, names: tuple[str, ...], timeout: float = 900) -> RunningTask:
        """The first moment one of these run-once tasks is held by a node: (task, owner)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.names:
                proc = self.exec(node, "goldstack-firstboot", "tasks", "--json", check=False)
                try:
                    records = json.loads(proc.stdout)["tasks"]
                except (json.JSONDecodeError, KeyError):
                    continue
                for r in records:
                    if r["task"] in names and r["state"] == "running":
                        return RunningTask(r["task"], r["owner"])
                break  # one answering node is enough: the table is replicated
            time.sleep(0.5)
        raise AssertionError(f"none of {names} seen running within {timeout}s\n{self.diagnostics()}")

    def tasks(self, name: str) -> dict:
        return json.loads(self.exec(name, "goldstack-firstboot", "tasks", "--history", "--json").stdout)

    def diagnostics(self) -> str:
        """Every node's agent status, journal ends and service logs; whole journals go to
        build/test-artifacts/. A one-line summary per node comes last, where a cut-off log still shows it."""
        parts, summary = [], []
        kept = ARTIFACTS / f"cluster-{self.suffix}-{time.strftime('%H%M%S')}"
        kept.mkdir(parents=True, exist_ok=True)
        for name, container in self.containers.items():
            parts.append(f"===== {name}\n{dockerlab.diagnostics(container)}")
            for cmd in DIAGNOSTICS[self.role(name)]:
                cmd = [c.replace("{ip}", self.ip(name)) for c in cmd]
                proc = docker("exec", container, *cmd, check=False)
                parts.append(f"$ {' '.join(cmd)}\n{proc.stdout[-3000:]}{proc.stderr[-1000:]}")
            journal = docker("exec", container, "journalctl", "--no-pager", "-o", "short-iso", check=False).stdout
            (kept / f"{name}.journal").write_text(journal)
            summary.append(f"{name}: {node_summary(container, self.role(name))}")
        return "\n".join([*parts, f"===== summary (whole journals in {kept})", *summary])


ARTIFACTS = Path(__file__).resolve().parent.parent / "build" / "test-artifacts"
SUMMARY_UNITS = {"controller": ("mariadb", "rabbitmq-server", "haproxy"), "compute": ("nova-compute",),
                 "storage": ("cinder-volume",)}


def node_summary(container: str, role: str) -> str:
    """Agent status and step, and its role's key units' states, in one line."""
    status = dockerlab.agent_status(container) or {}
    agent, steps = status.get("agent", {}), status.get("steps", {})
    current = next((n for n in agent.get("plan") or steps if steps.get(n, {}).get("status") != "done"), "-")
    detail = steps.get(current, {}).get("error") or steps.get(current, {}).get("detail") or ""
    units = SUMMARY_UNITS[role]
    states = docker("exec", container, "systemctl", "is-active", *units, check=False).stdout.split()
    return (f"agent {agent.get('status', '?')} at {current} ({detail[:160]}); "
            + ", ".join(f"{u} {s}" for u, s in zip(units, states, strict=False)))


# What a failure message shows of each node beyond the agent status and journal, per role.
DIAGNOSTICS: dict[str, list[list[str]]] = {
    "controller": [["journalctl", "-u", "mariadb", "--no-pager", "-n", "40"],
                   ["journalctl", "-u", "rabbitmq-server", "--no-pager", "-n", "20"],
                   ["curl", "-s", "http://{ip}:9200/galera"],
                   ["journalctl", "-u", "cinder-scheduler", "-u", "glance-api", "--no-pager", "-n", "20"]],
    "compute": [["journalctl", "-u", "nova-compute", "-u", "libvirtd", "--no-pager", "-n", "40"]],
    "storage": [["timeout", "20", "ceph", "health", "detail"],
                ["journalctl", "-u", "ceph-mon@*", "-u", "ceph-mgr@*", "-u", "ceph-osd@*", "--no-pager", "-n", "60"],
                ["journalctl", "-u", "cinder-volume", "--no-pager", "-n", "40"]],
}


def inventory(prefix: str, names: list[str], computes: list[str] = (), storages: list[str] = ()) -> dict:
    return {
        "cluster": "cptest",
        "region": "RegionOne",
        "vip": f"{prefix}.10",
        "networks": {"management": f"{prefix}.0/24"},
        "options": {"api_workers": 1},
        "nodes": [{"name": n, "role": "controller", "addresses": {"management": f"{prefix}.{11 + i}"}}
                  for i, n in enumerate(names)]
        + [{"name": n, "role": "compute", "addresses": {"management": f"{prefix}.{21 + i}"}}
           for i, n in enumerate(computes)]
        + [{"name": n, "role": "storage", "addresses": {"management": f"{prefix}.{31 + i}"}}
           for i, n in enumerate(storages)],
    }


@contextmanager
def controller_lab(image: str, workdir: Path, names: tuple[str, ...] = ("ctl1", "ctl2", "ctl3"),
                   computes: tuple[str, ...] = (), compute_image: str = "", storages: tuple[str, ...] = (),
                   storage_image: str = "") -> Iterator[Lab]:
    """A network and seeds for the controllers (and computes, storage nodes); containers are started by the
    test and removed here."""
    net = dockerlab.unique("gs-cp")
    with ExitStack() as stack:
        prefix = stack.enter_context(dockerlab.network(net))
        inv_file = workdir / "site.yaml"
        inv_file.write_text(yaml.safe_dump(inventory(prefix, list(names), list(computes), list(storages))))
        seeds = workdir / "seeds"
        seed.generate(inv_file, seeds, workdir / "site.secrets.yaml", ("file",), progress=lambda m: None)
        images = {role: ref for role, ref in (("compute", compute_image), ("storage", storage_image)) if ref}
        lab = Lab(image, net, prefix, seeds, list(names), suffix=net.rsplit("-", 1)[-1], computes=list(computes),
                  images=images, storages=list(storages))
        try:
            yield lab
        finally:
            for container in lab.containers.values():
                dockerlab.remove(container)


def start_in_order(lab: Lab, order: list[str], max_delay: float = 0) -> None:
    for name in order:
        lab.start(name)
        if max_delay:
            time.sleep(random.uniform(0, max_delay))
