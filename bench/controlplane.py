"""Benchmark the HA control plane: three controller containers from `docker start` to a usable keystone,
then a full power loss (SIGKILL all three) to recovery. Writes JSON (--out).

Milestones, polled every second from the host: (a) Galera Primary with 3 members, (b) RabbitMQ with
3 running nodes, (c) every run-once task done, (d) an admin token issued through the VIP. The agents'
own per-step timings and each task's run time (from Galera's run-once table) are recorded too, so the
report separates agent overhead from the services' DB syncs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.common import RESULTS, ensure_image, finish, host
from firstboot import tasks
from firstboot.keystone_api import password_request
from tests import controlplane

GOALS = {"token_via_vip_s": 150, "power_loss_to_primary_s": 60}
NAMES = ["ctl1", "ctl2", "ctl3"]


def _token_ok(lab: controlplane.Lab, password: str) -> bool:
    body = password_request("admin", password, "admin")
    try:
        return requests.post(f"https://{lab.vip}:5000/v3/auth/tokens", json=body, timeout=10,
                             verify=lab.ca_file).status_code == 201
    except requests.RequestException:
        return False


def _tasks_done(lab: controlplane.Lab) -> bool:
    proc = lab.exec("ctl1", "goldstack-firstboot", "tasks", "--json", check=False)
    try:
        records = json.loads(proc.stdout)["tasks"]
    except (json.JSONDecodeError, KeyError):
        return False
    done = {r["task"] for r in records if r["state"] == "done"}
    return done >= {t.name for t in tasks.TASKS}


def milestones(lab: controlplane.Lab, started: float, password: str, timeout: float,
               wanted: tuple[str, ...]) -> dict[str, float | None]:
    checks = {
        "galera_primary_3_s": lambda: any(lab.wsrep(n).get("wsrep_cluster_size") == "3" and
                                          lab.wsrep(n).get("wsrep_cluster_status") == "Primary" for n in NAMES),
        "rabbitmq_3_s": lambda: len(lab.rabbit_running("ctl1")) == 3,
        "db_syncs_done_s": lambda: _tasks_done(lab),
        "token_via_vip_s": lambda: _token_ok(lab, password),
    }
    reached: dict[str, float | None] = {k: None for k in wanted}
    deadline = started + timeout
    while time.monotonic() < deadline and any(v is None for v in reached.values()):
        for key in wanted:
            if reached[key] is None and checks[key]():
                reached[key] = round(time.monotonic() - started, 1)
                print(f"  {key}: {reached[key]}", flush=True)
        time.sleep(1)
    return reached


def agent_timings(lab: controlplane.Lab) -> dict[str, dict[str, float | None]]:
    result = {}
    for name in NAMES:
        state = controlplane.dockerlab.agent_status(lab.containers[name]) or {}
        result[name] = {step: rec.get("seconds") for step, rec in state.get("steps", {}).items()}
    return result


def task_timings(lab: controlplane.Lab) -> dict[str, dict[str, object]]:
    report = lab.tasks("ctl1")
    return {h["task"]: {"owner": h["owner"], "seconds": float(h["seconds"] or 0)}
            for h in report["history"] if h["event"] == "done"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS / "controlplane.json")
    parser.add_argument("--tag", default="bench", help="controller image tag (built with build.py when missing)")
    parser.add_argument("--timeout", type=float, default=1200)
    args = parser.parse_args()
    image = ensure_image("controller", args.tag)
    result: dict[str, object] = {"host": host(), "goals": GOALS, "image": image}
    with tempfile.TemporaryDirectory() as work, controlplane.controller_lab(image, Path(work)) as lab:
        print("formation: starting ctl1, ctl2, ctl3 together", flush=True)
        started = time.monotonic()
        controlplane.start_in_order(lab, NAMES)
        password = ""
        while not password and time.monotonic() - started < 60:
            password = lab.exec("ctl1", "sh", "-c", ". /root/admin-openrc 2>/dev/null && printf %s "
                                "\"$OS_PASSWORD\"", check=False).stdout
            time.sleep(0.5)
        result["formation"] = milestones(lab, started, password, args.timeout,
                                         ("galera_primary_3_s", "rabbitmq_3_s", "db_syncs_done_s",
                                          "token_via_vip_s"))
        lab.wait_agents(timeout=args.timeout)
        result["formation"]["all_agents_done_s"] = round(time.monotonic() - started, 1)  # type: ignore[index]
        result["agent_step_seconds"] = agent_timings(lab)
        result["task_seconds"] = task_timings(lab)
        result["db_sync_seconds_serial_sum"] = round(sum(t["seconds"] for t in result["task_seconds"].values()), 1)  # type: ignore[union-attr,misc]

        print("power loss: SIGKILL all three, start all three", flush=True)
        for name in NAMES:
            controlplane.docker("kill", "-s", "KILL", lab.containers[name])
        since = time.time()
        started = time.monotonic()
        for name in NAMES:
            controlplane.docker("start", lab.containers[name])
        result["power_loss"] = milestones(lab, started, password, args.timeout,
                                          ("galera_primary_3_s", "rabbitmq_3_s", "token_via_vip_s"))
        lab.wait_agents(timeout=args.timeout, since=since)
        result["power_loss"]["all_agents_done_s"] = round(time.monotonic() - started, 1)  # type: ignore[index]
        result["power_loss_agent_step_seconds"] = agent_timings(lab)
    finish(result, args.out)
    print(json.dumps({k: result[k] for k in ("formation", "power_loss")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
