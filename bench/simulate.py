"""Simulate many compute nodes joining a running three-controller lab at once, and measure what the control
plane pays for them: the figures docs/scale.md extrapolates to 100 and 1,000 nodes.

Each simulated node is a thread running the compute agent's own client code (firstboot.cloud and
firstboot.keystone_api, pointed at the lab's CA on this host), with its own node name:
- tokens: every node asks keystone for a token as the nova service user at the same moment, as after a
  power cut (one password check each);
- waiting: every node polls what the compute step polls once a second until its hypervisor is listed
  (nova's service list and hypervisor list for its host, through the VIP), for --seconds;
- queues: RabbitMQ declares the quorum queues each compute node brings (28, measured by bench/scale.py),
  through its management API: the cluster's memory before and after, and its idle CPU with them.
CPU is read per process from this host's /proc (the lab's containers are processes here); the benchmark's
own process is counted apart. Writes JSON (--out) with the commit and the host's core speed.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from bench import proccpu
from bench.common import RESULTS, cpu_busy_s, finish, host, on_fresh_lab, up_three
from compose.site import Lab
from firstboot import catalog, cloud, keystone_api, rabbitmq
from firstboot.document import Document, load_text
from firstboot.render import api_url

NAME = "bench-simulate"
QUEUES_PER_COMPUTE = 28  # bench/results/scale.json: +28 quorum queues per added compute node
POLL_INTERVAL_S = 1.0  # the compute step's wait (firstboot/steps/units.py, interval=1)


def node_document(lab: Lab, node: str) -> Document:
    """A node's document as the lab wrote it, its clients pointed at the lab's CA as this host holds it."""
    catalog.TLS_CA = str(lab.ca_file)  # the agent's code reads it at each call
    path = lab.document_path(node)
    return load_text(path.read_text(), str(path))


def as_node(doc: Document, name: str) -> Document:
    return dataclasses.replace(doc, node=dataclasses.replace(doc.node, name=name))


def in_threads(count: int, work: Callable[[int], None]) -> float:
    """Run work(0..count-1) in threads started together; the wall seconds until the last ends."""
    gate = threading.Barrier(count + 1)

    def body(i: int) -> None:
        gate.wait()
        work(i)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    started = time.monotonic()
    gate.wait()
    for t in threads:
        t.join()
    return time.monotonic() - started


def measured(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """run()'s figures, with the host's CPU by process meanwhile and this benchmark's own share."""
    before, own = proccpu.snapshot(), time.process_time()
    figures = run()
    cpu = proccpu.difference(before, proccpu.snapshot(), top=12)
    client = round(time.process_time() - own, 1)
    return {**figures, "cpu": cpu, "client_cpu_s": client,
            "control_plane_cpu_s": round(cpu["busy_s"] - client, 1)}


def latencies(seconds: list[float]) -> dict[str, float | None]:
    if not seconds:
        return {"p50_s": None, "p95_s": None, "max_s": None}
    ordered = sorted(seconds)
    return {"p50_s": round(statistics.median(ordered), 3), "p95_s": round(ordered[int(0.95 * (len(ordered) - 1))], 3),
            "max_s": round(ordered[-1], 3)}


def token_storm(doc: Document, nodes: int) -> dict[str, Any]:
    url, password = api_url(doc, "keystone", "/v3"), str(doc.secrets[catalog.SERVICE_USERS["nova"]])
    took: list[float] = []
    errors: list[str] = []

    def one(_: int) -> None:
        started = time.monotonic()
        try:
            keystone_api.Keystone(url, password, project="service", user="nova")
            took.append(time.monotonic() - started)
        except (requests.RequestException, KeyError) as error:
            errors.append(type(error).__name__)

    wall = in_threads(nodes, one)
    return {"nodes": nodes, "wall_s": round(wall, 1), "tokens": len(took), "errors": len(errors),
            **latencies(took)}


def waiting(doc: Document, nodes: int, seconds: float) -> dict[str, Any]:
    """Each node polls its own registration (never there: no such hypervisor) at the agent's interval."""
    cloud.session(doc, "nova")  # the agent keeps its token across polls: asked once, before the clock starts
    took: list[float] = []
    answers: Counter[str] = Counter()  # what the agent's check said, as it would note it
    deadline = time.monotonic() + seconds

    def one(i: int) -> None:
        mine = as_node(doc, f"sim{i:04d}")
        while time.monotonic() < deadline:
            started = time.monotonic()
            _, why = cloud.compute_registered(mine)
            took.append(time.monotonic() - started)
            answers[why.replace(mine.node.name, "HOST")] += 1
            time.sleep(max(0.0, POLL_INTERVAL_S - (time.monotonic() - started)))

    wall = in_threads(nodes, one)
    polls = len(took)
    # Each poll asks nova twice (the host's nova-compute service, hypervisors matching its name); nova answers
    # 404 to the second while no hypervisor matches, which the agent notes as "does not answer yet".
    return {"nodes": nodes, "wall_s": round(wall, 1), "polls": polls, "api_requests": 2 * polls,
            "polls_per_s": round(polls / wall, 1), "wanted_polls_per_s": round(nodes / POLL_INTERVAL_S, 1),
            "answers": dict(answers), **latencies(took)}


def rabbit_memory_mb(base: str, session: requests.Session) -> float:
    nodes = session.get(f"{base}/nodes", timeout=60).json()
    return round(sum(n.get("mem_used", 0) for n in nodes) / 2**20, 1)


def idle_cpu_per_s(seconds: float) -> float:
    """The host's busy CPU-seconds per second while nothing is asked of the lab."""
    busy = cpu_busy_s()
    time.sleep(seconds)
    return round((cpu_busy_s() - busy) / seconds, 3)


def queues(doc: Document, nodes: int, idle_s: float) -> dict[str, Any]:
    """The quorum queues of `nodes` compute nodes declared, RabbitMQ's memory and idle CPU with them; removed
    after, even on failure."""
    base, session = rabbitmq.management_api(doc)
    names = [f"goldstack-sim.{i:04d}.{q:02d}" for i in range(nodes) for q in range(QUEUES_PER_COMPUTE)]
    before = rabbit_memory_mb(base, session)
    idle_cpu_before = idle_cpu_per_s(idle_s)
    started = time.monotonic()
    try:
        for name in names:
            session.put(f"{base}/queues/%2F/{quote(name, safe='')}", timeout=60,
                        json={"durable": True, "auto_delete": False,
                              "arguments": {"x-queue-type": "quorum"}}).raise_for_status()
        declared = time.monotonic() - started
        after = rabbit_memory_mb(base, session)
        idle_cpu_with = idle_cpu_per_s(idle_s)
    finally:
        for name in names:
            session.delete(f"{base}/queues/%2F/{quote(name, safe='')}", timeout=60)
    return {"nodes": nodes, "queues": len(names), "declare_s": round(declared, 1),
            "rabbitmq_memory_mb_before": before, "rabbitmq_memory_mb_with": after,
            "memory_kb_per_queue": round((after - before) * 1024 / len(names), 1),
            "idle_host_cpu_per_s_before": idle_cpu_before, "idle_host_cpu_per_s_with": idle_cpu_with}


def simulate(args: argparse.Namespace, name: str) -> dict[str, Any]:
    lab = Lab(name)
    agent_doc, controller_doc = node_document(lab, "cmp1"), node_document(lab, "ctl1")
    result: dict[str, Any] = {"tokens": [], "waiting": [], "queues": []}
    for nodes in args.nodes:
        print(f"{nodes} nodes: tokens", flush=True)
        result["tokens"].append(measured(lambda n=nodes: token_storm(agent_doc, n)))
        print(f"{nodes} nodes: waiting {args.seconds:.0f}s", flush=True)
        result["waiting"].append(measured(lambda n=nodes: waiting(agent_doc, n, args.seconds)))
        print(f"{nodes} nodes: queues", flush=True)
        result["queues"].append(queues(controller_doc, nodes, args.idle_seconds))
    for row in result["tokens"]:
        row["control_plane_cpu_s_per_token"] = round(row["control_plane_cpu_s"] / max(row["tokens"], 1), 3)
    for row in result["waiting"]:
        row["control_plane_cpu_s_per_request"] = round(row["control_plane_cpu_s"] / max(row["api_requests"], 1), 4)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS / "simulate.json")
    parser.add_argument("--lab", help="simulate against this running lab (default: a fresh three-controller lab, "
                        "destroyed after)")
    parser.add_argument("--tag", default="latest", help="image tag of the fresh lab (built when missing)")
    parser.add_argument("--nodes", type=lambda v: [int(n) for n in v.split(",")], default=[10, 25, 50],
                        help="simulated compute nodes, comma-separated (default 10,25,50)")
    parser.add_argument("--seconds", type=float, default=60, help="how long the nodes poll (default 60)")
    parser.add_argument("--idle-seconds", type=float, default=30,
                        help="how long RabbitMQ's idle CPU is watched, without and with the queues (default 30)")
    args = parser.parse_args()
    result: dict[str, Any] = {"host": host(), "nodes": args.nodes, "poll_interval_s": POLL_INTERVAL_S,
                              "queues_per_compute": QUEUES_PER_COMPUTE}
    if args.lab:
        result.update(simulate(args, args.lab))
    else:
        def fresh(tag: str) -> dict[str, Any]:
            result["up_s"] = up_three(NAME, tag, "10.96")
            return simulate(args, NAME)
        result.update(on_fresh_lab(NAME, args.tag, fresh))
    finish(result, args.out)
    for kind in ("tokens", "waiting", "queues"):
        for row in result[kind]:
            print(kind, {k: v for k, v in row.items() if k != "cpu"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
