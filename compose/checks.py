"""The lab's end-to-end checks: what a user does first with a new cloud, done for real through the VIP.

Each check finds or creates what it needs under fixed `goldstack-check-*` names, so `./gs lab check`
can run again on the same lab. The OpenStack client runs on a controller (python3-openstackclient is in
the controller image; compose/osc.py keeps it running there) with the admin credentials its agent wrote;
Horizon is driven from this host by Debian's headless Chromium. Each check returns (detail, data) or
raises CheckFailed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from compose import testimage
from compose.labview import CheckFailed, LabView, find, poll
from firstboot import catalog

PREFIX = "goldstack-check"
IMAGE, NET, SUBNET, ROUTER = f"{PREFIX}-image", f"{PREFIX}-net", f"{PREFIX}-subnet", f"{PREFIX}-router"
VOLUME, SERVER, FLAVOR = f"{PREFIX}-volume", f"{PREFIX}-server", "m1.nano"
SUBNET_RANGE = "192.168.199.0/24"
SERVICE_TYPES = tuple(kind for a in catalog.APIS for kind in a.catalog_types)
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


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
        want = {(b, c) for b in catalog.NOVA_CONTROLLER_DAEMONS for c in lab.controllers()}
        want |= {(catalog.NOVA_COMPUTE, c) for c in lab.of_role(catalog.COMPUTE)}
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
        if s["Binary"] == catalog.CINDER_VOLUME and s["State"] == "up"}, 300, 5)
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
    home = Path(tempfile.mkdtemp(prefix="goldstack-browser-"))
    trust_site_ca(home, lab.ca_file)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, env={**os.environ, "HOME": str(home)}), options=options)
    shot = lab.artifacts / "horizon-overview.png"
    try:
        driver.set_page_load_timeout(120)
        driver.get(f"https://{lab.vip}/horizon/auth/login/")
        wait = WebDriverWait(driver, 120)
        wait.until(expected_conditions.presence_of_element_located((By.ID, "id_username")))
        driver.find_element(By.ID, "id_username").send_keys("admin")
        driver.find_element(By.ID, "id_password").send_keys(lab.admin_password)
        driver.find_element(By.ID, "loginBtn").click()
        wait.until(lambda d: "/horizon/project/" in d.current_url or "/horizon/admin/" in d.current_url)
        driver.get(f"https://{lab.vip}/horizon/project/")
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
        shutil.rmtree(home, ignore_errors=True)


def trust_site_ca(home: Path, ca_file: Path | None) -> None:
    """An NSS database under HOME holding the site CA: Chromium there verifies Horizon's certificate with it
    (and with nothing looser)."""
    if ca_file is None or not ca_file.exists():
        raise CheckFailed("the lab's CA certificate is missing (build/lab/NAME/ca.pem); run `lab up` again")
    if not shutil.which("certutil"):
        raise CheckFailed("certutil is not installed (apt-get install libnss3-tools)")
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    for args in (["-N", "--empty-password"], ["-A", "-n", "goldstack-site-ca", "-t", "C,,", "-i", str(ca_file)]):
        done = subprocess.run(["certutil", "-d", f"sql:{db}", *args], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise CheckFailed(f"certutil {args[0]} failed: {done.stderr.strip()[-500:]}")
