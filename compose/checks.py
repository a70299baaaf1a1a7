"""The lab's end-to-end checks: what a user does first with a new cloud, done for real through the VIP.

Each check finds or creates what it needs under fixed `goldstack-check-*` names, so `./gs lab check`
can run again on the same lab. The OpenStack client runs on a controller (python3-openstackclient is in
the controller image; compose/osc.py keeps it running there) with the admin credentials its agent wrote;
Horizon is driven from this host by Debian's headless Chromium. `failover` is destructive (it kills the
controller holding the VIP) and runs only when asked: once everything but the server is checked, so the
server is built while the killed controller rejoins.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import agents
import osc
import testimage

PREFIX = "goldstack-check"
IMAGE, NET, SUBNET, ROUTER = f"{PREFIX}-image", f"{PREFIX}-net", f"{PREFIX}-subnet", f"{PREFIX}-router"
VOLUME, SERVER, FLAVOR = f"{PREFIX}-volume", f"{PREFIX}-server", "m1.nano"
SUBNET_RANGE = "192.168.199.0/24"
SERVICE_TYPES = ("identity", "image", "placement", "compute", "network", "volumev3")
CONTROLLER_BINARIES = ("nova-conductor", "nova-scheduler")
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


class CheckFailed(Exception):
    pass


@dataclass
class Result:
    name: str
    ok: bool
    seconds: float
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class LabView:
    """What the checks need of a running lab: its nodes by role, their containers, the VIP, the admin
    credentials and a directory for artifacts (the Horizon screenshot)."""

    nodes: dict[str, str]  # node name -> role
    containers: dict[str, str]  # node name -> container id (running ones)
    vip: str
    admin_password: str
    artifacts: Path
    compose: Callable[..., subprocess.CompletedProcess] | None = None  # runs a compose subcommand
    client: str = ""  # controller whose OpenStack client the checks use
    clients: osc.Clients = field(default_factory=osc.Clients)
    milestones: set[str] = field(default_factory=set)  # "check:moment" reached by a running check
    changed: threading.Event = field(default_factory=threading.Event)  # wakes the scheduler

    def reach(self, check: str, moment: str) -> None:
        """A check got far enough for the checks that wait on `check:moment` (see NEEDS) to start."""
        self.milestones.add(f"{check}:{moment}")
        self.changed.set()

    def __post_init__(self) -> None:
        self.client = self.client or self.controllers()[0]

    def controllers(self) -> list[str]:
        return [n for n, r in self.nodes.items() if r == "controller"]

    def of_role(self, role: str) -> list[str]:
        return [n for n, r in self.nodes.items() if r == role]

    def exec(self, node: str, *cmd: str, stdin: bytes | None = None, timeout: float = 180
             ) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "exec", "-i", self.containers[node], *cmd], input=stdin,
                              capture_output=True, timeout=timeout)

    def openstack(self, *args: str, node: str = "", json_out: bool = True, timeout: float = 180,
                  check: bool = True) -> Any:
        """`openstack ARGS` on a controller (the client, unless `node`), through a runner kept there."""
        fmt = ["-f", "json"] if json_out else []
        try:
            rc, out, err = self.clients.call(self.containers[node or self.client], [*args, *fmt], timeout)
        except subprocess.TimeoutExpired:
            if check:
                raise CheckFailed(f"openstack {' '.join(args)}: no answer within {timeout:.0f}s") from None
            return None  # a caller polling (the VIP moving, say) asks again
        except osc.RunnerGone as gone:
            if check:
                raise CheckFailed(f"openstack {' '.join(args)}: {gone}") from None
            return None
        if rc != 0:
            if check:
                raise CheckFailed(f"openstack {' '.join(args)}: {err.strip()[-800:]}")
            return None
        return json.loads(out) if json_out else out

    def close(self) -> None:
        self.clients.close()


def poll(what: str, probe: Callable[[], Any], timeout: float, interval: float = 2) -> Any:
    """probe() until it returns something true; its last value, or CheckFailed naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what}: not within {timeout:.0f}s")
        time.sleep(interval)


def find(lab: LabView, kind: str, name: str) -> dict[str, Any] | None:
    return lab.openstack(kind, "show", name, check=False)


# --- the checks; each returns (detail, data) or raises CheckFailed


def check_token(lab: LabView) -> tuple[str, dict]:
    token = lab.openstack("token", "issue")
    catalog = lab.openstack("catalog", "list")
    types = {entry["Type"] for entry in catalog if entry.get("Endpoints")}
    missing = [t for t in SERVICE_TYPES if t not in types]
    if missing:
        raise CheckFailed(f"catalog has no endpoints for {', '.join(missing)} (has {', '.join(sorted(types))})")
    return f"token for project {token['project_id'][:8]}; catalog: {', '.join(sorted(types))}", \
        {"services": sorted(types)}


def check_image(lab: LabView) -> tuple[str, dict]:
    image = find(lab, "image", IMAGE)
    if not image:
        path = f"/tmp/{IMAGE}.raw"
        lab.exec(lab.client, "sh", "-c", f"cat > {path}", stdin=testimage.disk())
        lab.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare", "--public",
                      "--file", path, IMAGE, timeout=300)
        lab.exec(lab.client, "rm", "-f", path)
    lab.reach("image", "uploaded")  # `image create --file` returns once the image is active
    others = [c for c in lab.controllers() if c != lab.client] or [lab.client]
    listed = poll(f"image {IMAGE} active as seen from {others[0]}",
                  lambda: (find_on(lab, others[0], IMAGE) or {}).get("status") == "active" and
                  find_on(lab, others[0], IMAGE), 300)
    if listed["size"] != testimage.SIZE:
        raise CheckFailed(f"image {IMAGE} has {listed['size']} bytes, uploaded {testimage.SIZE}")
    return f"{IMAGE} active ({listed['size']} bytes), listed from {others[0]}", \
        {"id": listed["id"], "listed_from": others[0]}


def find_on(lab: LabView, node: str, name: str) -> dict[str, Any] | None:
    return lab.openstack("image", "show", name, node=node, check=False)


def check_compute(lab: LabView) -> tuple[str, dict]:
    def registered() -> list[dict] | None:
        services = lab.openstack("compute", "service", "list")
        up = {(s["Binary"], s["Host"]) for s in services if s["State"] == "up" and s["Status"] == "enabled"}
        want = {(b, c) for b in CONTROLLER_BINARIES for c in lab.controllers()}
        want |= {("nova-compute", c) for c in lab.of_role("compute")}
        return services if want <= up else None

    services = poll("conductor and scheduler up on every controller, nova-compute on every compute node",
                    registered, 300, 5)
    def listed() -> list[dict] | None:
        hypervisors = lab.openstack("hypervisor", "list")
        names = {h["Hypervisor Hostname"].split(".")[0] for h in hypervisors}
        return hypervisors if set(lab.of_role("compute")) <= names else None

    hypervisors = poll("every compute node's hypervisor listed", listed, 300, 2)
    return (f"{len(services)} compute services up; hypervisors: "
            f"{', '.join(h['Hypervisor Hostname'] for h in hypervisors)}"), {"services": len(services)}


def check_network(lab: LabView) -> tuple[str, dict]:
    def alive() -> list[dict] | None:
        agents = lab.openstack("network", "agent", "list")
        return agents if agents and all(a["Alive"] for a in agents) else None

    agents = poll("every network agent alive", alive, 300, 2)
    if not find(lab, "network", NET):
        lab.openstack("network", "create", NET)
    if not find(lab, "subnet", SUBNET):
        lab.openstack("subnet", "create", "--network", NET, "--subnet-range", SUBNET_RANGE, SUBNET)
    lab.reach("network", "subnet")  # what a server's port needs; the router is not
    router = find(lab, "router", ROUTER) or lab.openstack("router", "create", ROUTER)
    ports = lab.openstack("port", "list", "--router", ROUTER)
    if not ports:
        lab.openstack("router", "add", "subnet", ROUTER, SUBNET, json_out=False)
    net = lab.openstack("network", "show", NET)
    return (f"{len(agents)} agents alive; {NET} ({net['provider:network_type']}), {SUBNET} {SUBNET_RANGE}, "
            f"{ROUTER}"), {"agents": len(agents), "router": router["id"]}


def check_volume(lab: LabView) -> tuple[str, dict]:
    storage = set(lab.of_role("storage"))
    poll("cinder-volume up on every storage node", lambda: storage <= {
        s["Host"].split("@")[0] for s in lab.openstack("volume", "service", "list")
        if s["Binary"] == "cinder-volume" and s["State"] == "up"}, 300, 5)
    volume = find(lab, "volume", VOLUME) or lab.openstack("volume", "create", "--size", "1", VOLUME)
    lab.reach("volume", "created")
    shown = poll(f"volume {VOLUME} available", lambda: _volume_settled(lab), 300)
    return f"cinder-volume up on {', '.join(sorted(storage))}; {VOLUME} {shown['status']}", {"id": volume["id"]}


def _volume_settled(lab: LabView) -> dict | None:
    shown = lab.openstack("volume", "show", VOLUME)
    if shown["status"] in ("error", "error_attaching"):
        raise CheckFailed(f"volume {VOLUME} went {shown['status']}")
    return shown if shown["status"] in ("available", "in-use") else None


def check_server(lab: LabView) -> tuple[str, dict]:
    if not find(lab, "flavor", FLAVOR):
        lab.openstack("flavor", "create", "--vcpus", "1", "--ram", "64", "--disk", "1", FLAVOR)
    if not find(lab, "server", SERVER):
        lab.openstack("server", "create", "--flavor", FLAVOR, "--image", IMAGE, "--network", NET, SERVER)
    started = time.monotonic()

    def active() -> dict | None:
        server = lab.openstack("server", "show", SERVER)
        if server["status"] == "ERROR":
            raise CheckFailed(f"server {SERVER} ERROR: {server.get('fault')}")
        return server if server["status"] == "ACTIVE" else None

    server = poll(f"server {SERVER} ACTIVE", active, 600, 1)
    active_s = time.monotonic() - started
    # The attachment proceeds while the console is read (the volume check may still wait for it to settle).
    poll(f"volume {VOLUME} available", lambda: _volume_settled(lab), 300, 1)
    if not any(a.get("id") == find(lab, "volume", VOLUME)["id"] for a in _attached(server)):
        lab.openstack("server", "add", "volume", SERVER, VOLUME, json_out=False)
    poll(f"the test image's line on {SERVER}'s console", lambda: testimage.MESSAGE in lab.openstack(
        "console", "log", "show", SERVER, json_out=False), 300, 1)
    poll(f"volume {VOLUME} in-use by {SERVER}", lambda: lab.openstack("volume", "show", VOLUME)["status"] == "in-use",
         300, 1)
    host = server.get("OS-EXT-SRV-ATTR:host")
    return (f"{SERVER} ACTIVE on {host} ({active_s:.0f}s), console shows the image booted, {VOLUME} attached"), \
        {"host": host, "active_s": round(active_s, 1)}


def _attached(server: dict) -> list[dict]:
    volumes = server.get("volumes_attached") or []
    return volumes if isinstance(volumes, list) else []


def check_horizon(lab: LabView) -> tuple[str, dict]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    if not Path(CHROMIUM).exists() or not Path(CHROMEDRIVER).exists():
        raise CheckFailed("Chromium is not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    shot = lab.artifacts / "horizon-overview.png"
    try:
        driver.set_page_load_timeout(120)
        driver.get(f"http://{lab.vip}/horizon/auth/login/")
        wait = WebDriverWait(driver, 120)
        wait.until(expected_conditions.presence_of_element_located((By.ID, "id_username")))
        driver.find_element(By.ID, "id_username").send_keys("admin")
        driver.find_element(By.ID, "id_password").send_keys(lab.admin_password)
        driver.find_element(By.ID, "loginBtn").click()
        wait.until(lambda d: "/horizon/project/" in d.current_url or "/horizon/admin/" in d.current_url)
        driver.get(f"http://{lab.vip}/horizon/project/")
        wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".page-header")))
        header = driver.find_element(By.CSS_SELECTOR, ".page-header").text.strip()
        lab.artifacts.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(shot))
        if "Overview" not in header:
            raise CheckFailed(f"Horizon's project page shows {header!r}, not the Overview (screenshot: {shot})")
        return f"logged in as admin; project page {header!r}; screenshot {shot}", \
            {"screenshot": str(shot), "title": driver.title}
    finally:
        driver.quit()


def vip_holder(lab: LabView) -> str | None:
    for node in lab.controllers():
        if node in lab.containers:
            out = lab.exec(node, "ip", "-o", "-4", "addr", "show", timeout=30).stdout.decode()
            if f" {lab.vip}/" in out:
                return node
    return None


# Asks a controller's HAProxy (admin socket) for its servers' states; prints the ones not UP.
HAPROXY_DOWN = """
import socket
s = socket.socket(socket.AF_UNIX); s.connect("/run/haproxy/admin.sock"); s.sendall(b"show stat\\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
for row in data.decode().splitlines()[1:]:
    f = row.split(",")
    if len(f) > 17 and f[1] not in ("FRONTEND", "BACKEND") and not f[17].startswith("UP"):
        print(f"{f[0]}/{f[1]}={f[17]}", end=" ")
"""


def galera_status(lab: LabView, node: str) -> dict[str, str]:
    """A controller's view of its Galera cluster (wsrep_cluster_status, _size, _local_state_comment);
    empty when its MariaDB does not answer."""
    proc = lab.exec(node, "mariadb", "-N", "-B", "-e", "SHOW GLOBAL STATUS WHERE Variable_name IN "
                    "('wsrep_cluster_status','wsrep_cluster_size','wsrep_local_state_comment')", timeout=30)
    rows = (line.split("\t") for line in proc.stdout.decode().splitlines())
    return {row[0].removeprefix("wsrep_"): row[1] for row in rows if len(row) == 2}


def haproxy_counts_out(lab: LabView, node: str) -> str:
    proc = lab.exec(node, "python3", "-c", HAPROXY_DOWN, timeout=30)
    return proc.stdout.decode().strip() or (proc.stderr.decode().strip()[-200:] if proc.returncode else "")


def cluster_picture(lab: LabView, nodes: list[str]) -> str:
    """Where the VIP is, which HAProxy servers its holder counts out, and each node's Galera state."""
    holder = vip_holder(lab)
    parts = [f"VIP on {holder or 'no controller'}"]
    if holder:
        parts.append(f"HAProxy on {holder} counts out: {haproxy_counts_out(lab, holder) or 'none'}")
    for node in nodes:
        state = galera_status(lab, node)
        parts.append(f"{node} Galera: {' '.join(f'{k}={v}' for k, v in state.items()) or 'no answer'}")
    return "; ".join(parts)


def healthy(lab: LabView) -> bool:
    """Every controller Synced in one Primary cluster of all of them, and the VIP's HAProxy counting
    no server out: a failover test starts from here, not from a cluster still settling."""
    controllers = lab.controllers()
    for node in controllers:
        state = galera_status(lab, node)
        if (state.get("cluster_status"), state.get("cluster_size"), state.get("local_state_comment")) != \
                ("Primary", str(len(controllers)), "Synced"):
            return False
    holder = vip_holder(lab)
    return bool(holder) and not haproxy_counts_out(lab, holder)


# How long one request may take while the VIP moves. A connection opened toward the dead holder waits in
# TCP's SYN backoff (resent after 1, 3, 7 s) even once the VIP answers elsewhere; a fresh request shows
# when the API is back, a stuck one only when its next SYN happens to go out.
PROBE_SECONDS = 4


def check_failover(lab: LabView) -> tuple[str, dict]:
    if len(lab.controllers()) < 3 or lab.compose is None:
        raise CheckFailed("failover needs the three-controller lab (./gs lab up --controllers 3)")
    try:
        poll("every controller Synced and every HAProxy server up before the kill", lambda: healthy(lab), 600, 2)
    except CheckFailed as error:
        raise CheckFailed(f"{error} ({cluster_picture(lab, lab.controllers())})") from None
    victim = vip_holder(lab)
    if not victim:
        raise CheckFailed(f"no controller holds the VIP {lab.vip}")
    survivors = [c for c in lab.controllers() if c != victim]
    lab.client = survivors[0]
    container = lab.containers[victim]
    errors: list[str] = []  # what the API said while it did not answer, in order, each once

    def answers() -> bool:
        try:
            return bool(lab.openstack("token", "issue", timeout=PROBE_SECONDS) and
                        lab.openstack("image", "list", timeout=PROBE_SECONDS))
        except CheckFailed as error:
            seen = f"{time.monotonic() - killed:.0f}s: {str(error)[-300:]}"
            if not errors or errors[-1].split(": ", 1)[1] != seen.split(": ", 1)[1]:
                errors.append(seen)
            return False

    lab.compose("kill", victim)
    killed = time.monotonic()
    try:
        poll(f"the API answering through the VIP with {victim} killed", answers, 300, 0.5)
        answered_s = time.monotonic() - killed
        holder = vip_holder(lab)
    except CheckFailed as error:
        raise CheckFailed(f"{error} (last answer: {errors[-1] if errors else 'none'}; "
                          f"{cluster_picture(lab, survivors)})") from None
    finally:  # the lab gets its controller back whatever happened
        lab.compose("start", victim)
    restarted = time.monotonic()
    lab.reach("failover", "restarted")  # the cloud answers again: a server can be built while it rejoins
    lab.containers[victim] = container  # `start` brings back the same container
    booted = agents.container_started(container) or time.time()

    def rejoined() -> bool:
        status = agents.of_this_boot(agents.agent_status(container), booted)
        if (status or {}).get("agent", {}).get("status") != "done":
            return False
        return galera_status(lab, victim).get("cluster_size") == str(len(lab.controllers()))

    poll(f"{victim} rejoined (agent done again, Galera cluster of {len(lab.controllers())})", rejoined, 900, 1)
    rejoined_s = time.monotonic() - restarted
    return (f"{victim} (VIP holder) killed: API answered through the VIP (now on {holder}) after "
            f"{answered_s:.0f}s; restarted, rejoined after {rejoined_s:.0f}s"), \
        {"victim": victim, "vip_moved_to": holder, "answered_s": round(answered_s, 1),
         "rejoined_s": round(rejoined_s, 1), "errors_while_waiting": errors[-5:]}


CHECKS: dict[str, Callable[[LabView], tuple[str, dict]]] = {
    "token": check_token, "image": check_image, "compute": check_compute, "network": check_network,
    "volume": check_volume, "server": check_server, "horizon": check_horizon,
}
DESTRUCTIVE = {"failover": check_failover}


# What a check uses that other checks make: it starts once those (when selected) have reached the named
# moment ("check:moment", see LabView.reach) or finished. The others run together (they read, or make
# their own resources). `failover` kills a controller once the rest is checked, alone; the server is built
# while the killed controller rejoins (its restart costs the most, and nova waits on the compute node).
NEEDS: dict[str, tuple[str, ...]] = {
    "server": ("image:uploaded", "network:subnet", "volume:created", "failover:restarted"),
    "failover": tuple(c for c in CHECKS if c != "server"),
}
PARALLEL = 6


def waits(lab: LabView, name: str, pending: set[str]) -> bool:
    """`name` still waits for a pending check (one selected, not finished) or a moment not yet reached."""
    for need in NEEDS.get(name, ()):
        check = need.split(":", 1)[0]
        if check in pending and need not in lab.milestones:
            return True
    return False


def run_one(lab: LabView, name: str) -> Result:
    started = time.monotonic()
    try:
        detail, data = {**CHECKS, **DESTRUCTIVE}[name](lab)
        return Result(name, True, round(time.monotonic() - started, 1), detail, data)
    except (CheckFailed, subprocess.TimeoutExpired) as error:
        return Result(name, False, round(time.monotonic() - started, 1), str(error))
    except Exception as error:  # a check's own bug or an unexpected answer: reported, not fatal
        return Result(name, False, round(time.monotonic() - started, 1), f"{type(error).__name__}: {error}")


def run(lab: LabView, names: list[str], progress: Callable[[Result], None] = lambda r: None) -> list[Result]:
    """Run the checks, together where NEEDS allows; one that fails does not stop the others (each reports
    what it saw). `progress` sees each result as it comes; the list returned is in the order asked."""
    waiting, running, results = list(names), {}, {}
    lab.clients.start([lab.containers[c] for c in lab.controllers() if c in lab.containers])
    with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="check") as pool:
        while waiting or running:
            lab.changed.clear()
            pending = set(waiting) | set(running.values())
            for name in [n for n in waiting if not waits(lab, n, pending)]:
                waiting.remove(name)
                running[pool.submit(run_one, lab, name)] = name
            if not running:
                raise RuntimeError(f"checks wait on each other: {', '.join(waiting)}")
            # Wake when a check ends, or when one reaches a moment another waits on.
            while not (finished := [f for f in running if f.done()]) and not lab.changed.wait(0.2):
                pass
            for future in finished:
                result = future.result()
                results[running.pop(future)] = result
                progress(result)
    return [results[n] for n in names]
