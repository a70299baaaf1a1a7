"""The Goldstack lab on one machine: controllers, a compute and a storage node as systemd containers,
each configured only by its first-boot agent from the seed made here.

  ./gs lab up [--controllers 1|3]   build missing images, make seeds, start the nodes, follow their agents
  ./gs lab status [--json]          node, role, container, agent step and health
  ./gs lab logs NODE                the node's agent journal (add --unit UNIT for a service)
  ./gs lab check [--failover]       the end-to-end checks: token, image, compute, network, volume, a server
                                    booted from the test image with the volume attached, Horizon in Chromium
  ./gs lab timeline [--out FILE]    a Gantt chart (SVG, or PNG) of every node's agent runs on one time axis
  ./gs lab openrc                   admin credentials for the VIP (source it: eval "$(./gs lab openrc)")
  ./gs lab down                     stop and remove the containers; volumes (databases, Ceph) stay
  ./gs lab destroy                  remove containers, volumes, seeds and the lab's secrets

Files: build/lab/NAME/ holds the inventory derived from compose/lab-inventory.yaml, the per-node seeds
and the site secrets (0600, made once on the first `up`, never in an image).
exit codes: 0 success, 1 a node's agent did not finish (see `status`, `logs`), 2 bad command line,
3 missing prerequisite (Docker engine, compose, images with --no-build).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from compose import labview, schedule, timeline
from compose.agents import agent_status, container_started, of_this_boot
from firstboot import catalog, seed

TOP = Path(__file__).resolve().parent.parent

COMPOSE_FILE = TOP / "compose" / "docker-compose.yml"
INVENTORY = TOP / "compose" / "lab-inventory.yaml"
STATE = TOP / "build" / "lab"
HA_ONLY = ("ctl2", "ctl3")  # the compose file's `ha` profile


class LabError(Exception):
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


class Lab:
    def __init__(self, name: str, state_root: Path = STATE):
        self.name = name
        self.dir = state_root / name
        self.settings_file = self.dir / "lab.json"

    # --- settings chosen at the first `up`, kept so later commands address the same lab
    def settings(self) -> dict[str, Any]:
        if not self.settings_file.exists():
            hint = "./gs lab up" if self.name == "goldstack" else f"./gs lab --name {self.name} up"
            raise LabError(f"no lab named {self.name!r} here (start it with `{hint}`)")
        return json.loads(self.settings_file.read_text())

    def save_settings(self, settings: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.settings_file.write_text(json.dumps(settings, indent=2) + "\n")

    def env(self, settings: dict[str, Any]) -> dict[str, str]:
        return {**os.environ, "GS_TAG": settings["tag"], "GS_SEEDS": str(self.dir / "seeds"),
                "GS_MGMT_PREFIX": settings["management_prefix"], "GS_PROVIDER_PREFIX": settings["provider_prefix"],
                "GS_LAB_NAME": self.name}

    def compose(self, settings: dict[str, Any], *args: str, check: bool = True,
                capture: bool = True) -> subprocess.CompletedProcess:
        profiles = ["--profile", "ha"] if settings["controllers"] == 3 else []
        argv = [*compose_command(), "-f", str(COMPOSE_FILE), "-p", self.name, *profiles, *args]
        proc = subprocess.run(argv, env=self.env(settings), capture_output=capture, text=True)
        if check and proc.returncode != 0:
            raise LabError(f"{' '.join(argv[:2])} {' '.join(args)} failed: {(proc.stderr or '')[-2000:]}")
        return proc

    def nodes(self) -> list[dict[str, Any]]:
        inventory = yaml.safe_load((self.dir / "inventory.yaml").read_text())
        return inventory["nodes"]

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


def derive_inventory(controllers: int, management: str, provider: str) -> dict[str, Any]:
    """The lab inventory with the chosen controller count and address prefixes."""
    inventory = yaml.safe_load(INVENTORY.read_text())
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


def current_step(status: dict[str, Any] | None) -> tuple[str, str, str]:
    """(agent status, the step running or last failed, its detail) from `status --json`."""
    if not status:
        return "starting", "-", ""
    agent = status.get("agent", {})
    steps = status.get("steps", {})
    plan = agent.get("plan") or list(steps)
    for name in plan:
        rec = steps.get(name, {})
        if rec.get("status") in ("running", "failed") or not rec:
            return agent.get("status", "?"), name, rec.get("error") or rec.get("detail") or ""
    return agent.get("status", "?"), plan[-1] if plan else "-", ""


def ensure_images(tag: str, build: bool) -> None:
    missing = [r for r in catalog.ROLES if subprocess.run(["docker", "image", "inspect", f"goldstack/{r}:{tag}"],
                                                  capture_output=True).returncode]
    if not missing:
        return
    if not build:
        raise LabError(f"images missing: {', '.join(f'goldstack/{r}:{tag}' for r in missing)} "
                       "(drop --no-build, or run ./gs build --role all)", 3)
    print(f"building {', '.join(missing)} (python build.py --tag {tag}) ...", flush=True)
    for role in missing:
        subprocess.run([sys.executable, str(TOP / "build.py"), "--role", role, "--tag", tag], check=True)


def cmd_up(lab: Lab, args: argparse.Namespace) -> int:
    if lab.settings_file.exists():
        settings = lab.settings()
        if args.controllers and args.controllers != settings["controllers"]:
            raise LabError(f"lab {lab.name!r} has {settings['controllers']} controller(s); "
                           "`./gs lab destroy` first to change --controllers", 2)
    else:
        settings = {"controllers": args.controllers or 3, "tag": args.tag, "management_prefix": args.management_prefix,
                    "provider_prefix": args.provider_prefix}
    ensure_images(settings["tag"], not args.no_build)
    inventory = derive_inventory(settings["controllers"], settings["management_prefix"], settings["provider_prefix"])
    lab.dir.mkdir(parents=True, exist_ok=True)
    (lab.dir / "inventory.yaml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    seed.generate(lab.dir / "inventory.yaml", lab.dir / "seeds", lab.dir / "site.secrets.yaml", ("file",),
                  progress=lambda m: None)
    lab.save_settings(settings)
    names = [n["name"] for n in inventory["nodes"]]
    print(f"lab {lab.name}: starting {', '.join(names)} (VIP {inventory['vip']})", flush=True)
    started = time.monotonic()
    lab.compose(settings, "up", "-d", *names)
    ok = follow(lab, names, args.timeout, started)
    print_status(lab)
    print(f"lab {lab.name}: {'ready' if ok else 'NOT ready'} after {time.monotonic() - started:.0f}s; "
          f"credentials: ./gs lab{'' if lab.name == 'goldstack' else ' --name ' + lab.name} openrc")
    return 0 if ok else 1


def follow(lab: Lab, names: list[str], timeout: float, started: float) -> bool:
    """Print each node's step as it changes until every agent is done (agents retry failures by
    themselves, so a failure is final only when the timeout passes); records of a previous boot count as
    not started (agents.of_this_boot)."""
    last: dict[str, tuple[str, str]] = {}
    booted: dict[str, float] = {}  # container id -> when it started (epoch)
    while True:
        done = 0
        containers = lab.containers()
        for name in names:
            container, running = containers.get(name, ("", False))
            status = agent_status(container) if running else None
            if status and container not in booted:
                booted[container] = container_started(container) or 0
            status = of_this_boot(status, booted.get(container, 0))
            state, step, detail = current_step(status)
            if (state, step) != last.get(name):
                last[name] = (state, step)
                print(f"[{time.monotonic() - started:5.0f}s] {name:5} {state:8} {step} {detail[:100]}", flush=True)
            done += state == "done"
        if done == len(names):
            return True
        if time.monotonic() - started > timeout:
            return False
        time.sleep(2)


def rows(lab: Lab, containers: dict[str, tuple[str, bool]] | None = None) -> list[dict[str, Any]]:
    result = []
    containers = lab.containers() if containers is None else containers
    for node in lab.nodes():
        container, running = containers.get(node["name"], ("", False))
        status = agent_status(container) if running else None
        state, step, detail = current_step(status)
        result.append({"node": node["name"], "role": node["role"], "address": node["addresses"]["management"],
                       "container": "running" if running else ("stopped" if container else "absent"),
                       "agent": state if running else "-", "step": step if running else "-", "detail": detail,
                       "steps": (status or {}).get("steps", {}), "history": (status or {}).get("history", []),
                       "run_started": (status or {}).get("agent", {}).get("started")})
    return result


def print_status(lab: Lab) -> None:
    table = rows(lab)
    print(f"{'NODE':6} {'ROLE':11} {'ADDRESS':15} {'CONTAINER':9} {'AGENT':8} STEP")
    for r in table:
        print(f"{r['node']:6} {r['role']:11} {r['address']:15} {r['container']:9} {r['agent']:8} {r['step']} "
              f"{r['detail'][:60]}")


def cmd_status(lab: Lab, args: argparse.Namespace) -> int:
    settings = lab.settings()
    if args.json:
        print(json.dumps({"lab": lab.name, "settings": settings, "nodes": rows(lab)}, indent=2))
    else:
        print_status(lab)
    return 0


def cmd_logs(lab: Lab, args: argparse.Namespace) -> int:
    lab.settings()  # a clear message when there is no such lab
    container = lab.container(args.node)
    if not container:
        raise LabError(f"no container for node {args.node!r} (nodes: "
                       f"{', '.join(n['name'] for n in lab.nodes())})", 2)
    return subprocess.run(["docker", "exec", container, "journalctl", "--no-pager", "-u", args.unit]).returncode


def cmd_openrc(lab: Lab, args: argparse.Namespace) -> int:
    lab.settings()  # a clear message when there is no such lab
    container = lab.container("ctl1")
    if not container:
        raise LabError("ctl1 is not running (./gs lab up)")
    proc = subprocess.run(["docker", "exec", container, "cat", "/root/admin-openrc"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError("ctl1 has no /root/admin-openrc yet: its agent has not rendered the config")
    sys.stdout.write(proc.stdout)
    return 0


def lab_view(lab: Lab, settings: dict[str, Any]) -> labview.LabView:
    inventory = yaml.safe_load((lab.dir / "inventory.yaml").read_text())
    running = {node: ident for node, (ident, up) in lab.containers().items() if up}
    nodes = {n["name"]: n["role"] for n in inventory["nodes"]}
    down = [n for n in nodes if n not in running]
    if down:
        raise LabError(f"not running: {', '.join(down)} (./gs lab up)")
    secrets, _ = seed.load_secrets(lab.dir / "site.secrets.yaml")
    return labview.LabView(nodes=nodes, containers=running, vip=inventory["vip"],
                          admin_password=str(secrets["keystone_admin"]), artifacts=lab.dir / "artifacts",
                          compose=lambda *a: lab.compose(settings, *a))


def cmd_check(lab: Lab, args: argparse.Namespace) -> int:
    settings = lab.settings()
    names = list(schedule.CHECKS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in schedule.CHECKS and n not in schedule.DESTRUCTIVE]
        if unknown:
            raise LabError(f"--only: unknown check {', '.join(unknown)} "
                           f"(choose from {', '.join([*schedule.CHECKS, *schedule.DESTRUCTIVE])})", 2)
    if args.failover and "failover" not in names:
        names.append("failover")
    view = lab_view(lab, settings)

    def show(r: labview.Result) -> None:
        if not args.json:
            print(f"{'PASS' if r.ok else 'FAIL'} {r.name:9} {r.seconds:6.1f}s  {r.detail}", flush=True)

    try:
        results = schedule.run(view, names, show)
    finally:
        view.close()
    failed = [r.name for r in results if not r.ok]
    if args.json:
        print(json.dumps({"lab": lab.name, "results": [r.__dict__ for r in results]}, indent=2))
    else:
        print(f"lab {lab.name}: {len(results) - len(failed)}/{len(results)} checks passed"
              + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def cmd_timeline(lab: Lab, args: argparse.Namespace) -> int:
    lab.settings()  # a clear message when there is no such lab
    containers = lab.containers()
    nodes = [r for r in rows(lab, containers) if r["steps"]]
    if not nodes:
        raise LabError("no node has recorded a step yet (is the lab up? ./gs lab status)")
    starts = [t for n in nodes if (t := container_started(containers[n["node"]][0])) is not None]
    origin = min(starts or [min(r["started"] for n in nodes for r in n["steps"].values() if r.get("started"))])
    chart = timeline.bars(nodes, origin, time.time())
    if not chart:
        raise LabError("no agent run of the current containers has recorded a step yet (./gs lab status)")
    out = args.out or lab.dir / "artifacts" / "timeline.svg"
    end = max(b.end for b in chart)
    lanes = len({b.lane for b in chart})
    timeline.write(chart, f"Goldstack lab {lab.name}: {lanes} agent runs of {len(nodes)} nodes, {end:.0f}s "
                          "from the first container start to the last step", out)
    print(f"{out}: {len(chart)} steps in {lanes} runs of {len(nodes)} nodes over {end:.0f}s; slowest:")
    for bar in timeline.slowest(chart):
        print(f"  {bar.lane:8} {bar.step:16} {bar.end - bar.start:6.1f}s  (from {bar.start:.0f}s)")
    return 0


def cmd_down(lab: Lab, args: argparse.Namespace) -> int:
    lab.compose(lab.settings(), "down", "--remove-orphans", capture=False)
    print(f"lab {lab.name}: containers removed; volumes kept (`./gs lab up` brings the same cloud back)")
    return 0


def cmd_destroy(lab: Lab, args: argparse.Namespace) -> int:
    if lab.settings_file.exists():
        lab.compose(lab.settings(), "down", "--volumes", "--remove-orphans", capture=False)
    shutil.rmtree(lab.dir, ignore_errors=True)
    print(f"lab {lab.name}: containers, volumes, seeds and secrets removed")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="./gs lab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="goldstack", help="lab (compose project) name; several labs can coexist")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="build missing images, make seeds, start the nodes and follow their agents")
    up.add_argument("--controllers", type=int, choices=(1, 3), help="3 (HA, default) or 1 (small machines)")
    up.add_argument("--no-build", action="store_true", help="fail instead of building missing images")
    up.add_argument("--tag", default="latest", help="image tag (default: latest)")
    up.add_argument("--management-prefix", default="10.77.0", help="first three octets of the management /24")
    up.add_argument("--provider-prefix", default="10.78.0", help="first three octets of the provider /24")
    up.add_argument("--timeout", type=float, default=1800, help="seconds to wait for every agent (default 1800)")
    st = sub.add_parser("status", help="node, role, container, agent step")
    st.add_argument("--json", action="store_true")
    lg = sub.add_parser("logs", help="a node's agent journal")
    lg.add_argument("node")
    lg.add_argument("--unit", default="goldstack-firstboot", help="systemd unit (default: the agent)")
    ck = sub.add_parser("check", help="end-to-end checks against the running lab (re-runnable)")
    ck.add_argument("--only", help=f"comma-separated checks to run (default: {','.join(schedule.CHECKS)})")
    ck.add_argument("--failover", action="store_true",
                    help="also kill the controller holding the VIP, check the API still answers, restart it "
                         "and wait until it rejoins (three-controller lab)")
    ck.add_argument("--json", action="store_true", help="results as JSON")
    tl = sub.add_parser("timeline", help="a Gantt chart of every node's agent runs, step by step (SVG or PNG)")
    tl.add_argument("--out", type=Path, help="the chart: SVG, or PNG when the name ends in .png "
                    "(default: build/lab/NAME/artifacts/timeline.svg)")
    sub.add_parser("openrc", help="admin credentials for the VIP")
    sub.add_parser("down", help="remove the containers, keep the volumes")
    sub.add_parser("destroy", help="remove containers, volumes, seeds and secrets")
    return p


COMMANDS = {"up": cmd_up, "status": cmd_status, "check": cmd_check, "timeline": cmd_timeline, "logs": cmd_logs,
            "openrc": cmd_openrc, "down": cmd_down, "destroy": cmd_destroy}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](Lab(args.name), args)
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("lab: interrupted; `./gs lab status` shows where the nodes are", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
