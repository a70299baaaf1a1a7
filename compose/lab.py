"""The Goldstack lab on one machine: controllers, compute and storage nodes as systemd containers, each
configured only by its first-boot agent from the document made for it.

  ./gs lab up [--controllers 1|3]   build missing images, make seeds, start the nodes, follow their agents
  ./gs lab status [--json]          node, role, container, agent step and health
  ./gs lab logs NODE                the node's agent journal (add --unit UNIT for a service)
  ./gs lab check [--failover]       the end-to-end checks: token, image, compute, network, volume, a server
                                    booted from the test image with the volume attached, Horizon in Chromium
  ./gs lab timeline [--out FILE]    a Gantt chart (SVG, or PNG) of every node's agent runs on one time axis
  ./gs lab openrc                   admin credentials for the VIP (source it: eval "$(./gs lab openrc)")
  ./gs lab tempest [--regex R]      OpenStack's integration suite (Tempest smoke) against the lab
day 2 (docs/lifecycle.md):
  ./gs lab add compute|storage      a new node joins the running lab; the others learn of it
  ./gs lab reconfigure --set K=V    roll a changed option or override out to the nodes it concerns
  ./gs lab roll [--tag T] [--role R] replace every node's container by one of a new image, one at a time
  ./gs lab down                     stop and remove the containers; volumes (databases, Ceph) stay
  ./gs lab destroy                  remove containers, volumes, seeds and the lab's secrets

Files: build/lab/NAME/ holds the lab's inventory (made from compose/lab-inventory.yaml when the lab is
created; `add` and `reconfigure` change it), its compose file, the per-node seeds and documents, and the
site secrets (0600, made once, never in an image).
exit codes: 0 success, 1 a node's agent did not finish or a check failed (see `status`, `logs`), 2 bad
command line or input (nothing was changed), 3 missing prerequisite (Docker engine, compose, images).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compose import agents, grow, labview, lifecycle, reconfigure, roll, schedule, tempest, timeline
from compose.site import DEFAULT_LAB, TOP, Lab, LabError, derive_inventory, image_exists
from firstboot import catalog


def ensure_images(lab: Lab, settings: dict[str, Any], build: bool) -> None:
    wanted = sorted({lab.image_of(n, settings) for n in lab.nodes()})
    missing = [ref for ref in wanted if not image_exists(ref)]
    if not missing:
        return
    if not build:
        raise LabError(f"images missing: {', '.join(missing)} (drop --no-build, or run ./gs build --role all)", 3)
    print(f"building {', '.join(missing)} ...", flush=True)
    for ref in missing:
        role, tag = ref.split("/", 1)[1].split(":")
        subprocess.run([sys.executable, str(TOP / "build.py"), "--role", role, "--tag", tag], check=True)


def cmd_up(lab: Lab, args: argparse.Namespace) -> int:
    if lab.exists():
        settings = lab.settings()
        if args.controllers and args.controllers != settings["controllers"]:
            raise LabError(f"lab {lab.name!r} has {settings['controllers']} controller(s); "
                           f"`{lab.command} destroy` first to change --controllers", 2)
    else:
        settings = {"controllers": args.controllers or 3, "tag": args.tag, "tags": {},
                    "management_prefix": args.management_prefix, "provider_prefix": args.provider_prefix}
        lab.save_inventory(derive_inventory(settings["controllers"], settings["management_prefix"],
                                            settings["provider_prefix"]))
        lab.save_settings(settings)
    ensure_images(lab, settings, not args.no_build)
    lab.deliver(lab.make_seeds())
    lab.write_compose_file(settings)
    names = [n["name"] for n in lab.nodes()]
    print(f"lab {lab.name}: starting {', '.join(names)} (VIP {lab.inventory()['vip']})", flush=True)
    started = time.monotonic()
    lab.compose("up", "-d", *names)
    ok = agents.follow(lab.containers, names, args.timeout, started)
    print_status(lab)
    print(f"lab {lab.name}: {'ready' if ok else 'NOT ready'} after {time.monotonic() - started:.0f}s; "
          f"credentials: {lab.command} openrc")
    return 0 if ok else 1


def rows(lab: Lab, containers: dict[str, tuple[str, bool]] | None = None) -> list[dict[str, Any]]:
    result = []
    containers = lab.containers() if containers is None else containers
    for node in lab.nodes():
        container, running = containers.get(node["name"], ("", False))
        status = agents.agent_status(container) if running else None
        state, step, detail = agents.current_step(status)
        record = (status or {}).get("agent", {})
        result.append({"node": node["name"], "role": node["role"], "address": node["addresses"]["management"],
                       "image": lab.image_of(node), "container": "running" if running else
                       ("stopped" if container else "absent"), "agent": state if running else "-",
                       "step": step if running else "-", "detail": detail,
                       "steps": (status or {}).get("steps", {}), "history": (status or {}).get("history", []),
                       "run_started": record.get("started"), "changed_files": record.get("changed_files", []),
                       "restarted": record.get("restarted", [])})
    return result


def print_status(lab: Lab) -> None:
    print(f"{'NODE':6} {'ROLE':11} {'ADDRESS':15} {'CONTAINER':9} {'AGENT':8} STEP")
    for r in rows(lab):
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
        raise LabError(f"no container for node {args.node!r} (nodes: {', '.join(lab.roles())})", 2)
    return subprocess.run(["docker", "exec", container, "journalctl", "--no-pager", "-u", args.unit]).returncode


def cmd_openrc(lab: Lab, args: argparse.Namespace) -> int:
    lab.settings()
    # The node's CA path is the controller's; a client on this host verifies with the lab's copy.
    ca = f"export OS_CACERT={shlex.quote(str(lab.ca_file.resolve()))}"
    sys.stdout.write(re.sub(r"(?m)^export OS_CACERT=.*$", lambda _: ca, lab.admin_openrc()))
    return 0


def cmd_check(lab: Lab, args: argparse.Namespace) -> int:
    lab.settings()
    names = list(schedule.CHECKS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in schedule.CHECKS and n not in schedule.DESTRUCTIVE]
        if unknown:
            raise LabError(f"--only: unknown check {', '.join(unknown)} "
                           f"(choose from {', '.join([*schedule.CHECKS, *schedule.DESTRUCTIVE])})", 2)
    if args.failover and "failover" not in names:
        names.append("failover")
    view = lab.view("check")

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
    lab.settings()
    containers = lab.containers()
    nodes = [r for r in rows(lab, containers) if r["steps"]]
    if not nodes:
        raise LabError(f"no node has recorded a step yet (is the lab up? {lab.command} status)")
    starts = [t for n in nodes if (t := agents.container_started(containers[n["node"]][0])) is not None]
    origin = min(starts or [min(r["started"] for n in nodes for r in n["steps"].values() if r.get("started"))])
    chart = timeline.bars(nodes, origin, time.time())
    if not chart:
        raise LabError(f"no agent run of the current containers has recorded a step yet ({lab.command} status)")
    out = args.out or lab.dir / "artifacts" / "timeline.svg"
    end = max(b.end for b in chart)
    lanes = len({b.lane for b in chart})
    timeline.write(chart, f"Goldstack lab {lab.name}: {lanes} agent runs of {len(nodes)} nodes, {end:.0f}s "
                          "from the first container start to the last step", out)
    print(f"{out}: {len(chart)} steps in {lanes} runs of {len(nodes)} nodes over {end:.0f}s; slowest:")
    for bar in timeline.slowest(chart):
        print(f"  {bar.lane:8} {bar.step:16} {bar.end - bar.start:6.1f}s  (from {bar.start:.0f}s)")
    return 0


def print_report(lab: Lab, what: str, report: lifecycle.Report, as_json: bool, started: float) -> None:
    if as_json:
        print(json.dumps({"lab": lab.name, "command": what, "seconds": round(time.monotonic() - started, 1),
                          "nodes": report.rows}, indent=2))
        return
    print(f"{'NODE':6} {'ROLE':11} WHAT")
    for row in report.rows:
        details = []
        if row.get("added"):
            details.append(f"joined after {row['joined_s']:.0f}s, settled after {row['settled_s']:.0f}s")
        if "files" in row:
            details.append(f"{len(row['files'])} files changed" + (f" ({', '.join(row['files'][:4])}"
                           f"{', ...' if len(row['files']) > 4 else ''})" if row["files"] else ""))
            details.append(f"restarted: {', '.join(row['restarted']) or 'nothing'}")
        if "replaced_s" in row:
            details.append(f"image {row['tag']}, back in service after {row['seconds']:.0f}s")
            if row.get("migrated"):
                details.append(f"{len(row['migrated'])} servers live-migrated away first")
        print(f"{row['node']:6} {row['role']:11} {'; '.join(details)}")
    print(f"lab {lab.name}: {what} done in {time.monotonic() - started:.0f}s")


def progress(to_stderr: bool) -> Callable[[str], None]:
    """Where a long command says what it does: stderr when stdout carries its JSON report."""
    return lambda m: print(m, file=sys.stderr if to_stderr else sys.stdout, flush=True)


def lifecycle_command(what: str, run: Any) -> Any:
    def command(lab: Lab, args: argparse.Namespace) -> int:
        started = time.monotonic()
        operator = lifecycle.Operator(lab, progress(args.json), args.timeout)
        print_report(lab, what, run(operator, args), args.json, started)
        return 0
    return command


COMMANDS = {
    "up": cmd_up, "status": cmd_status, "check": cmd_check, "timeline": cmd_timeline, "logs": cmd_logs,
    "openrc": cmd_openrc,
    "add": lifecycle_command("add", lambda op, a: grow.add(op, a.role, a.node_name)),
    "reconfigure": lifecycle_command("reconfigure", lambda op, a: reconfigure.reconfigure(op, a.set or [],
                                                                                         a.inventory)),
    "roll": lifecycle_command("roll", lambda op, a: roll.roll(op, a.tag, tuple(a.role or catalog.ROLES),
                                                              a.allow_downtime, a.migrate_back)),
}


def cmd_down(lab: Lab, args: argparse.Namespace) -> int:
    lab.settings()
    lab.compose("down", "--remove-orphans", capture=False)
    print(f"lab {lab.name}: containers removed; volumes kept (`{lab.command} up` brings the same cloud back)")
    return 0


def cmd_destroy(lab: Lab, args: argparse.Namespace) -> int:
    if lab.exists() and lab.compose_file.exists():
        # Nothing of the nodes is kept, so nothing needs their clean shutdown (up to a minute a node: the
        # services' stop timeouts): their systemd is killed at once, then containers and volumes go.
        lab.compose("kill", check=False)
        lab.compose("down", "--volumes", "--remove-orphans", capture=False)
    shutil.rmtree(lab.dir, ignore_errors=True)
    print(f"lab {lab.name}: containers, volumes, seeds and secrets removed")
    return 0


def cmd_tempest(lab: Lab, args: argparse.Namespace) -> int:
    lab.settings()
    selection = ["--regex", args.regex] if args.regex else ["--smoke"]
    summary = tempest.run(lab, selection, args.concurrency, progress(args.json))
    print(json.dumps(summary, indent=2) if args.json else tempest.report(summary))
    return 0 if summary["failed"] == 0 and summary["passed"] > 0 else 1


COMMANDS.update(down=cmd_down, destroy=cmd_destroy, tempest=cmd_tempest)


def day2_parsers(sub: Any) -> None:
    add = sub.add_parser("add", help="a new compute or storage node joins the running lab",
                         description="Grow the running lab by one node: it gets the next free name and addresses "
                         "of its role (or --name), every node's document is made again from the grown inventory "
                         "(secrets reused), the new node starts while the others re-run their agents, and the "
                         "command ends when it has joined (hypervisor listed; OSD up, pools resized, Ceph clean).")
    add.add_argument("role", choices=sorted(grow.GROWABLE), help="the new node's role")
    add.add_argument("--name", dest="node_name", help="the new node's name (default: cmpN or stoN, the lowest free)")
    rec = sub.add_parser("reconfigure", help="roll a changed option or override out to the nodes it concerns",
                         description="Change the lab's inventory (--set, or an edited copy with --inventory), ask "
                         "every node whose document changes what would change there (a node refuses a document "
                         "that changes what it is), then re-run their agents: together where nothing restarts, one "
                         "at a time where services restart (a controller out of HAProxy's rotation and the VIP "
                         "meanwhile). The report says which files changed and which units restarted where.")
    rec.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="options.NAME=VALUE or overrides.TARGET.SECTION.KEY=VALUE (repeatable; VALUE is YAML)")
    rec.add_argument("--inventory", type=Path, help="a whole new inventory (an edited copy of build/lab/NAME/"
                     "inventory.yaml)")
    rol = sub.add_parser("roll", help="replace every node's container by one of a new image, one node at a time",
                         description="Replace each node's container by a new one from goldstack/ROLE:TAG with the "
                         "same volumes, one at a time, each back in service before the next: controllers first "
                         "(taken out of HAProxy and the VIP; the Galera writer and the VIP's holder last), then "
                         "storage nodes (Ceph's noout set), then compute nodes (servers live-migrated away first).")
    rol.add_argument("--tag", help="the image tag to roll to (default: the lab's tag, for images rebuilt under it)")
    rol.add_argument("--role", action="append", choices=catalog.ROLES, help="only these roles (repeatable)")
    rol.add_argument("--allow-downtime", action="store_true",
                     help="roll even where the cloud cannot keep serving (one controller, one storage node, or "
                     "servers with nowhere to migrate to)")
    rol.add_argument("--migrate-back", action="store_true",
                     help="live-migrate a compute node's servers back to it once it is replaced (default: they "
                     "stay where they went)")
    for p in (add, rec, rol):
        p.add_argument("--json", action="store_true", help="the report as JSON (progress goes to stderr)")
        p.add_argument("--timeout", type=float, default=1800, help="seconds to wait for each node (default 1800)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="./gs lab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default=DEFAULT_LAB, help="lab (compose project) name; several labs can coexist")
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
    tp = sub.add_parser("tempest", help="OpenStack's integration suite (Tempest) against the lab (docs/conformance.md)",
                        description="Install the pinned Tempest and python-tempestconf in build/tempest-venv (once), "
                        "write tempest.conf for the lab (site CA, the lab's test image), run the smoke set (or "
                        "--regex), clean up what the run left, and print passed / failed / skipped by reason. The "
                        "subunit stream and summary.json stay in build/lab/NAME/tempest. Exit 1 if a test failed.")
    tp.add_argument("--regex", help="run the tests matching this regular expression instead of the smoke set")
    tp.add_argument("--concurrency", type=int, default=2, help="test workers (default 2)")
    tp.add_argument("--json", action="store_true", help="the summary as JSON (progress goes to stderr)")
    day2_parsers(sub)
    sub.add_parser("down", help="remove the containers, keep the volumes")
    sub.add_parser("destroy", help="remove containers, volumes, seeds and secrets")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](Lab(args.name), args)
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return exc.code
    except labview.CheckFailed as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lab: interrupted; `./gs lab --name {args.name} status` shows where the nodes are", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
