"""What the lab tests ask of a running lab on its day 2: the OpenStack client on a controller, Ceph's view
from a storage node, the API probe and the volume client that watch a roll, a lab that exists but is down."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import datetime
from typing import Any

from compose.probe import TOKEN_EVERY, Probe
from compose.site import Lab, derive_inventory
from firstboot import catalog, seed
from tests.dockerlab import docker
from tests.volume_io import VolumeIO


def _on(name: str, role: str) -> str:
    """The container of the first running node of `role` (by name)."""
    lab = Lab(name)
    running = lab.running()
    return next(running[n] for n, r in sorted(lab.roles().items()) if r == role and n in running)


def openstack(name: str, *args: str) -> Any:
    proc = docker("exec", _on(name, catalog.CONTROLLER), "sh", "-c",
                  '. /root/admin-openrc && exec openstack "$@" -f json', "openstack", *args, check=False, timeout=300)
    assert proc.returncode == 0, f"openstack {' '.join(args)}: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout)


def server(name: str, server_name: str) -> dict[str, Any]:
    return openstack(name, "server", "show", server_name)


def servers(name: str) -> list[dict[str, Any]]:
    """Every project's servers, with the host each runs on."""
    return openstack(name, "server", "list", "--all-projects", "--long")


def boot_server(name: str, server_name: str, timeout: float = 600, host: str | None = None) -> dict[str, Any]:
    """A server of the checks' image, flavor and network (made by `lab check`), ACTIVE; on `host` when given
    (a requested destination: the scheduler still checks it, through placement, and fails the build if it
    cannot take the server)."""
    on_host = ("--host", host) if host else ()
    version = ("--os-compute-api-version", "2.74") if host else ()
    openstack(name, *version, "server", "create", "--flavor", "m1.nano", "--image", "goldstack-check-image",
              "--network", "goldstack-check-net", *on_host, server_name)
    deadline = time.monotonic() + timeout
    while True:
        shown = server(name, server_name)
        if shown["status"] == "ACTIVE" or shown["status"] == "ERROR" or time.monotonic() > deadline:
            assert shown["status"] == "ACTIVE", shown
            return shown
        time.sleep(2)


def console_answers(name: str, server_name: str) -> bool:
    """nova serves the server's console log (from the host it runs on now; after a live migration it
    starts empty there, the guest having printed its line on the first host)."""
    proc = docker("exec", _on(name, catalog.CONTROLLER), "sh", "-c",
                  f". /root/admin-openrc && openstack console log show {server_name}", check=False, timeout=120)
    return proc.returncode == 0


def ceph_status(name: str) -> dict[str, Any]:
    return json.loads(docker("exec", _on(name, catalog.STORAGE), "ceph", "status", "--format", "json").stdout)


def pool_sizes(name: str) -> dict[str, int]:
    pools = json.loads(docker("exec", _on(name, catalog.STORAGE), "ceph", "osd", "pool", "ls", "detail", "--format",
                              "json").stdout)
    return {p["pool_name"]: p["size"] for p in pools}


def task_history(name: str) -> list[dict[str, Any]]:
    out = docker("exec", _on(name, catalog.CONTROLLER), "goldstack-firstboot", "tasks", "--history", "--json").stdout
    return json.loads(out)["history"]


def revocations(name: str) -> set[tuple[str, ...]]:
    """keystone's revocation events (whose tokens, issued before when): a password set, a role taken away, a
    project deleted each revoke tokens, the services' own among them."""
    out = docker("exec", _on(name, catalog.CONTROLLER), "mariadb", "-N", "-B", "-e",
                 "SELECT id, COALESCE(user_id, ''), COALESCE(project_id, ''), issued_before "
                 "FROM keystone.revocation_event").stdout
    return {tuple(line.split("\t")) for line in out.splitlines() if line.strip()}


_ERLANG_PID = re.compile(r"(<\d+\.\d+\.\d+>)")


def amqp_connections(name: str) -> list[dict[str, Any]]:
    """Every AMQP connection the running controllers' RabbitMQ logged: which controller, the client's address
    and name (`PROCESS:PID:UUID`, as oslo.messaging names it), when it opened (epoch seconds), and when
    RabbitMQ closed it for want of the client's heartbeats (its log's UTC time, "" if it did not)."""
    lab = Lab(name)
    running = lab.running()
    connections = []
    for node in sorted(n for n, r in lab.roles().items() if r == catalog.CONTROLLER and n in running):
        lines = docker("exec", running[node], "sh", "-c",
                       "grep -h -e 'accepting AMQP connection' -e 'client-provided name' -e 'missed heartbeats' "
                       "/var/log/rabbitmq/rabbit*.log | sed 's/\x1b\\[[0-9;]*m//g'", check=False).stdout.splitlines()
        seen: dict[str, dict[str, Any]] = {}
        for line in lines:
            pid = _ERLANG_PID.search(line)
            if not pid:
                continue
            connection = seen.setdefault(pid.group(1), {"node": node, "from": "?", "opened": 0.0, "client": "?",
                                                        "dropped_at": ""})
            if "accepting AMQP connection " in line:
                peer = line.split("accepting AMQP connection ", 1)[1].split(" -> ", 1)[0]
                opened = datetime.fromisoformat(line[:26] + "+00:00").timestamp()
                connection.update({"from": peer.rsplit(":", 1)[0], "opened": opened})
            elif "client-provided name: " in line:
                connection["client"] = line.split("client-provided name: ", 1)[1].strip()
            else:
                connection["dropped_at"] = line[:26]
        connections.extend(seen.values())
    return connections


def admin_password(name: str) -> str:
    secrets, _ = seed.load_secrets(Lab(name).secrets_file)
    return str(secrets["keystone_admin"])


def probe(name: str, token_every: float = TOKEN_EVERY) -> Probe:
    """The lab's probe, started (token_every=0: a new token for every cycle)."""
    lab = Lab(name)
    return Probe(lab.inventory()["vip"], admin_password(name), str(lab.ca_file), token_every=token_every).start()


def volume_io(name: str) -> VolumeIO:
    """The librbd client on the volume `lab check` attached to its server."""
    lab = Lab(name)
    volume = openstack(name, "volume", "show", "goldstack-check-volume")
    secrets, _ = seed.load_secrets(lab.secrets_file)
    storage = _on(name, catalog.STORAGE)
    conf = docker("exec", storage, "cat", "/etc/ceph/ceph.conf").stdout
    settings = lab.settings()
    image = f"goldstack/storage:{settings['tag']}"
    return VolumeIO(name, settings["management_prefix"], image, conf, str(secrets["ceph_admin_key"]), volume["id"])


STOPPED_PREFIXES = ("10.199.250", "10.199.251")


def stopped_inventory() -> dict[str, Any]:
    return derive_inventory(1, *STOPPED_PREFIXES)


def stopped_lab() -> Lab:
    """A lab that exists (settings, inventory) and has never been started."""
    lab = Lab(f"gs-stopped-{uuid.uuid4().hex[:6]}")
    lab.save_settings({"controllers": 1, "tag": "test", "tags": {}, "management_prefix": STOPPED_PREFIXES[0],
                       "provider_prefix": STOPPED_PREFIXES[1]})
    lab.save_inventory(stopped_inventory())
    return lab
