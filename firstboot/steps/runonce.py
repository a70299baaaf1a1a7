"""Run a phase of the run-once tasks (firstboot.tasks) from a step, and the steps that do only that.

Every controller runs the same phases: the first to claim a task does it, the others wait for it and
meanwhile take the other tasks that are ready, so the work spreads over the controllers.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from firstboot import catalog, graph, mysql, runonce, tasks
from firstboot.document import Document
from firstboot.logsetup import REDACT
from firstboot.steps.base import Context, Step

ATTEMPTS = 3  # per task and run; services just started can refuse a first request
RETRY_SECONDS = 5
SLACK_NICE = 10  # the priority of tasks off the phase's longest chain (children inherit a thread's nice)


def longest_chain(todo: dict[str, tasks.Task]) -> set[str]:
    """The tasks on the phase's longest chains of dependencies, counted in commands (each starts a
    service's code): the phase cannot end before they do, while every other task has time to spare."""
    best: dict[str, tuple[int, list[str]]] = {}

    def chain_to(name: str) -> tuple[int, list[str]]:
        if name not in best:
            before = [chain_to(a) for a in todo[name].after if a in todo]
            weight, names = max(before, key=lambda c: c[0], default=(0, []))
            best[name] = (weight + todo[name].weight, [*names, name])
        return best[name]

    chains = [chain_to(n) for n in todo]
    longest = max((w for w, _ in chains), default=0)
    return {name for weight, names in chains if weight == longest for name in names}


@contextmanager
def thread_nice(increment: int) -> Iterator[None]:
    """Run this thread, and the commands it starts, `increment` nicer; back to its priority afterwards."""
    if not increment:
        yield
        return
    tid = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, tid)
    os.setpriority(os.PRIO_PROCESS, tid, before + increment)
    try:
        yield
    finally:
        with suppress(PermissionError):  # raising priority back needs root (the agent runs as root)
            os.setpriority(os.PRIO_PROCESS, tid, before)


def deferred(task: tasks.Task, record: runonce.Record | None, installed: str, doc: Document) -> str | None:
    """Why an upgrade of `task` waits (its gate does not hold yet), or None when it may run (or is done)."""
    if task.gate is None or (record is not None and record.state == "done" and runonce.covers(record.version,
                                                                                                installed)):
        return None
    if not runonce.ever_done(task.name):
        return None  # a first install: nothing to wait for
    holds, why = task.gate(doc)
    return None if holds else why


def phase_done(todo: dict[str, tasks.Task], versions: dict[str, str], doc: Document) -> bool:
    """Every task of the phase is recorded done with the package version installed here (or a later one), or
    is an upgrade that waits for its gate."""
    try:
        records = {r.task: r for r in runonce.read_all()}
        return all((n in records and records[n].state == "done" and runonce.covers(records[n].version, versions[n]))
                   or deferred(t, records.get(n), versions[n], doc) for n, t in todo.items())
    except mysql.MysqlError:
        return False


class PhaseRun:
    """This node's part in one phase: each task claimed (or waited for) cluster-wide, with retries, its
    progress merged into the step's note and its outcome recorded in the agent's state."""

    def __init__(self, ctx: Context, todo: dict[str, tasks.Task], versions: dict[str, str]):
        self.ctx, self.todo, self.versions = ctx, todo, versions
        self.critical = longest_chain(todo)
        self.lock = threading.Lock()
        self.running_now: dict[str, str] = {}

    def note(self, task: str, message: str) -> None:
        with self.lock:
            self.running_now[task] = message
            self.ctx.note("; ".join(f"{k}: {v}" for k, v in sorted(self.running_now.items())))

    def attempt(self, task: tasks.Task) -> runonce.Outcome:
        doc = self.ctx.doc
        with thread_nice(0 if task.name in self.critical else SLACK_NICE):
            return runonce.run_once(task.name, doc.node.name, self.versions[task.name],
                                    lambda upgrading: task.run(doc, upgrading),
                                    progress=lambda m: self.note(task.name, m),
                                    timeout=doc.options["cluster_wait_seconds"], before_retry=task.before_retry(doc))

    def one(self, name: str) -> runonce.Outcome:
        task = self.todo[name]
        waits = deferred(task, runonce.read(name), self.versions[name], self.ctx.doc)
        if waits:
            self.ctx.note(f"{name}: deferred: {waits}")
            return runonce.Outcome(name, False, "(deferred)", 0.0, 0.0)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                outcome = self.attempt(task)
                break
            except Exception as exc:  # the lease was released: this node or another retries it
                if attempt == ATTEMPTS:
                    raise
                self.note(name, f"attempt {attempt} failed ({REDACT(str(exc))[:200]}); retrying in "
                                f"{RETRY_SECONDS * attempt}s")
                time.sleep(RETRY_SECONDS * attempt)
        with self.lock:
            self.running_now.pop(name, None)
        self.record(outcome)
        return outcome

    def record(self, outcome: runonce.Outcome) -> None:
        who = "ran here" if outcome.ran else f"done by {outcome.owner}"
        self.ctx.note(f"{outcome.task}: {who}" + (f" in {outcome.seconds:.1f}s" if outcome.ran else ""))
        with self.ctx.state.lock:
            record = self.ctx.state.data["agent"].setdefault("tasks", {})
            record[outcome.task] = {"ran_here": outcome.ran, "owner": outcome.owner,
                                    "seconds": round(outcome.seconds, 3), "waited": round(outcome.waited, 3),
                                    "at": round(time.time(), 3)}
            self.ctx.state.save()


def run_phase(ctx: Context, phase: str, check_only: bool = False) -> bool:
    """Run (or, with check_only, just check) every task of `phase`; True when all are done. Every task
    starts as soon as its dependencies are done, with no slot limit: a chain must not queue behind
    independent tasks, and a task another controller runs only waits here."""
    todo = {t.name: t for t in tasks.phase(phase)}
    versions = {name: tasks.package_version(t.package) for name, t in todo.items()}
    mine = {t.package: versions[n] for n, t in todo.items() if not t.package.startswith("goldstack:")}
    if check_only:
        # What this node runs is registered on every check: the last controller of an upgrade, finding its
        # own tasks done, is the one that lets the tasks waiting for every controller run.
        with suppress(mysql.MysqlError):
            runonce.register_versions(ctx.doc.node.name, mine)
        return phase_done(todo, versions, ctx.doc)
    runonce.ensure_schema()
    runonce.register_versions(ctx.doc.node.name, mine)
    graph.run(list(todo), {n: t.after for n, t in todo.items()}, PhaseRun(ctx, todo, versions).one,
              label=f"runonce-{phase}")
    return True


class PhaseStep(Step):
    phase: str = ""
    roles = frozenset({catalog.CONTROLLER})

    def done(self, ctx: Context) -> bool:
        return run_phase(ctx, self.phase, check_only=True)

    def before(self, ctx: Context) -> None:
        """What the phase waits for before its first task."""

    def run(self, ctx: Context) -> str:
        self.before(ctx)
        run_phase(ctx, self.phase)
        mine = [n for n, r in ctx.state.data["agent"].get("tasks", {}).items()
                if r.get("ran_here") and n in tasks.TASKS_BY_NAME and tasks.TASKS_BY_NAME[n].phase == self.phase]
        return f"{len(tasks.phase(self.phase))} tasks done; ran here: {', '.join(mine) or 'none'}"


class DatabasesStep(PhaseStep):
    name = "databases"
    description = "create the databases and run every schema sync once, cluster-wide"
    phase = tasks.DATABASE
    # Beside RabbitMQ's cluster forming; before() waits for Galera's joiners (no DDL during a state transfer).
    after = ("infra",)

    def before(self, ctx: Context) -> None:
        from firstboot import proc
        from firstboot.steps.galera import cluster_complete

        proc.wait_for(lambda: cluster_complete(ctx), ctx.doc.options["cluster_wait_seconds"],
                      "every controller Synced in Galera", interval=1)


class MessagingStep(PhaseStep):
    name = "rabbitmq-users"
    description = "create the OpenStack user in RabbitMQ once, cluster-wide"
    phase = tasks.MESSAGING
    after = ("rabbitmq", "infra")  # Galera (through the VIP) holds the run-once record


class CatalogStep(PhaseStep):
    name = "catalog"
    description = "register service users, services and endpoints in keystone once; nova's online data migrations"
    phase = tasks.CATALOG
    after = ("keystone",)
