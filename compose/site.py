"""One lab on this machine: its files under build/lab/NAME/, its nodes and their images, its compose
project, and the node documents delivered to its containers.

The lab's inventory (build/lab/NAME/inventory.yaml) is made once, when the lab is created, from
compose/lab-inventory.yaml; `add` grows it and `reconfigure` edits it. Seeds are made from it by the
seed generator (site secrets made once, 0600); each node's document is then delivered to
build/lab/NAME/nodes/NODE.yaml, which its container mounts at /etc/goldstack/node.yaml, rewritten in
place so that a running container sees the new text.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from compose import composefile, labview
from firstboot import seed
from firstboot.files import atomic_write

TOP = Path(__file__).resolve().parent.parent
TEMPLATE = TOP / "compose" / "lab-inventory.yaml"
STATE = TOP / "build" / "lab"
DEFAULT_LAB = "goldstack"
IMAGE_REPO = "goldstack"
HA_ONLY = ("ctl2", "ctl3")  # left out of the template by `up --controllers 1`


class LabError(Exception):
    """A lab command cannot go on; `code` is its exit code (1 failed, 2 bad input, 3 missing prerequisite)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def compose_command() -> list[str]:
    """Compose v2 (`docker compose`) when present, else v1 (`docker-compose`, what Debian 12 ships)."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise LabError("neither `docker compose` nor `docker-compose` is installed (./gs installs docker-compose)", 3)


def image_exists(ref: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", ref], capture_output=True).returncode == 0


def derive_inventory(controllers: int, management: str, provider: str) -> dict[str, Any]:
    """The template inventory with the chosen controller count and address prefixes."""
    inventory = yaml.safe_load(TEMPLATE.read_text())
    base_mgmt = inventory["networks"]["management"].rsplit(".", 1)[0]
    base_prov = inventory["networks"]["provider"].rsplit(".", 1)[0]

    def move(address: str) -> str:
        for old, new in ((base_mgmt, management), (base_prov, provider)):
            if address.startswith(old + "."):
                return new + address[len(old):]
        return address

    inventory["vip"] = move(inventory["vip"])
    inventory["networks"] = {"management": f"{management}.0/24", "provider": f"{provider}.0/24"}
    nodes = [n for n in inventory["nodes"] if controllers == 3 or n["name"] not in HA_ONLY]
    for n in nodes:
        n["addresses"] = {k: move(v) for k, v in n["addresses"].items()}
        n.pop("interfaces", None)  # the agent finds each network's interface from its address
    inventory["nodes"] = nodes
    return inventory


class Lab:
    def __init__(self, name: str = DEFAULT_LAB, state_root: Path = STATE):
        self.name = name
        self.dir = state_root / name
        self.settings_file = self.dir / "lab.json"
        self.inventory_file = self.dir / "inventory.yaml"
        self.secrets_file = self.dir / "site.secrets.yaml"
        self.compose_file = self.dir / "docker-compose.yml"

    @property
    def command(self) -> str:
        """How the user names this lab on the command line."""
        return "./gs lab" if self.name == DEFAULT_LAB else f"./gs lab --name {self.name}"

    # --- settings and inventory, kept so later commands address the same lab

    def exists(self) -> bool:
        return self.settings_file.exists()

    def settings(self) -> dict[str, Any]:
        if not self.exists():
            raise LabError(f"no lab named {self.name!r} here (start it with `{self.command} up`)")
        settings = json.loads(self.settings_file.read_text())
        settings.setdefault("tags", {})
        return settings

    def save_settings(self, settings: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.settings_file.write_text(json.dumps(settings, indent=2) + "\n")

    def inventory(self) -> dict[str, Any]:
        return yaml.safe_load(self.inventory_file.read_text())

    def save_inventory(self, inventory: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.inventory_file.write_text(yaml.safe_dump(inventory, sort_keys=False))

    def nodes(self) -> list[dict[str, Any]]:
        return self.inventory()["nodes"]

    def roles(self) -> dict[str, str]:
        return {n["name"]: n["role"] for n in self.nodes()}

    def tag_of(self, node: str, settings: dict[str, Any] | None = None) -> str:
        settings = settings or self.settings()
        return settings["tags"].get(node, settings["tag"])

    def image_of(self, node: dict[str, Any], settings: dict[str, Any] | None = None) -> str:
        return f"{IMAGE_REPO}/{node['role']}:{self.tag_of(node['name'], settings)}"

    # --- node documents

    def document_path(self, node: str) -> Path:
        return self.dir / "nodes" / f"{node}.yaml"

    def make_seeds(self) -> dict[str, bytes]:
        """Every node's document from the inventory (secrets made once, then reused); nothing is delivered."""
        seeds = self.dir / "seeds"
        seed.generate(self.inventory_file, seeds, self.secrets_file, ("file",), progress=lambda m: None)
        documents = {n["name"]: (seeds / n["name"] / "node.yaml").read_bytes() for n in self.nodes()}
        tls = yaml.safe_load(next(iter(documents.values())))["tls"]
        atomic_write(self.ca_file, (tls["ca"] + tls.get("api_ca", "")).encode(), 0o644)
        return documents

    @property
    def ca_file(self) -> Path:
        """The site CA's certificate on this host: what a client here verifies the VIP's certificate with."""
        return self.dir / "ca.pem"

    def changed_documents(self, documents: dict[str, bytes]) -> list[str]:
        """The nodes whose document differs from the one delivered to them."""
        return [n for n, text in documents.items()
                if not self.document_path(n).exists() or self.document_path(n).read_bytes() != text]

    def deliver(self, documents: dict[str, bytes], nodes: list[str] | None = None) -> list[str]:
        """Write these nodes' documents where their containers read them; the ones that changed. A file
        that exists is rewritten in place: its container mounts that very file."""
        changed = []
        for node in nodes if nodes is not None else list(documents):
            path, text = self.document_path(node), documents[node]
            if path.exists() and path.read_bytes() == text:
                continue
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.truncate(0)
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            changed.append(node)
        return changed

    # --- the compose project

    def write_compose_file(self, settings: dict[str, Any] | None = None) -> None:
        settings = settings or self.settings()
        inventory = self.inventory()
        images = {n["name"]: self.image_of(n, settings) for n in inventory["nodes"]}
        documents = {n["name"]: self.document_path(n["name"]) for n in inventory["nodes"]}
        self.compose_file.write_text(yaml.safe_dump(composefile.spec(inventory, images, documents, self.name),
                                                    sort_keys=False))

    def compose(self, *args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
        argv = [*compose_command(), "-f", str(self.compose_file), "-p", self.name, *args]
        proc = subprocess.run(argv, capture_output=capture, text=True)
        if check and proc.returncode != 0:
            raise LabError(f"{' '.join(argv[:2])} {' '.join(args)} failed: {(proc.stderr or '')[-2000:]}")
        return proc

    def containers(self) -> dict[str, tuple[str, bool]]:
        """Each node's container and whether it runs, from one listing (compose labels its containers
        with project and service, in v1 and v2)."""
        out = subprocess.run(["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={self.name}",
                              "--format", '{{.ID}} {{.Label "com.docker.compose.service"}} {{.State}}'],
                             capture_output=True, text=True, timeout=60).stdout
        found = {}
        for line in out.splitlines():
            ident, service, state = [*line.split(), "", ""][:3]
            found[service] = (ident, state == "running")
        return found

    def container(self, node: str) -> str | None:
        return self.containers().get(node, ("", False))[0] or None

    def running(self) -> dict[str, str]:
        """Node -> container id of the running ones."""
        return {node: ident for node, (ident, up) in self.containers().items() if up}

    def require_up(self, what: str) -> dict[str, str]:
        """Every node's container runs; else a clear refusal naming the ones that do not."""
        running = self.running()
        down = [n["name"] for n in self.nodes() if n["name"] not in running]
        if down:
            raise LabError(f"{what}: not running: {', '.join(down)} (start the lab with `{self.command} up`)", 2)
        return running

    def exec(self, node: str, *cmd: str, stdin: str | None = None, timeout: float = 120,
             check: bool = False) -> subprocess.CompletedProcess:
        container = self.container(node)
        if not container:
            raise LabError(f"{node} has no container")
        proc = subprocess.run(["docker", "exec", "-i", container, *cmd], input=stdin, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise LabError(f"{node}: {' '.join(cmd)} failed: {(proc.stderr or proc.stdout)[-1000:]}")
        return proc

    def admin_openrc(self) -> str:
        """The admin openrc a controller's agent rendered (its OS_CACERT is the controller's path)."""
        controller = next(n for n, r in self.roles().items() if r == "controller")
        proc = self.exec(controller, "cat", "/root/admin-openrc")
        if proc.returncode != 0:
            raise LabError(f"{controller} has no /root/admin-openrc yet: its agent has not rendered the config")
        return proc.stdout

    def view(self, what: str = "the checks") -> labview.LabView:
        """What the checks and the lifecycle commands use of the running lab, its OpenStack client included."""
        running = self.require_up(what)
        secrets, _ = seed.load_secrets(self.secrets_file)
        return labview.LabView(nodes=self.roles(), containers=running, vip=self.inventory()["vip"],
                               admin_password=str(secrets["keystone_admin"]), artifacts=self.dir / "artifacts",
                               ca_file=self.ca_file,
                               compose=lambda *a: self.compose(*a))
