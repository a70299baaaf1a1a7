"""Run a phase of the run-once tasks (firstboot.tasks) from a step, and the steps that do only that.

Every controller runs the same phases: the first to claim a task does it, the others wait for it and
meanwhile take the other tasks that are ready, so the work spreads over the controllers.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress

from firstboot import catalog, mysql, runonce, tasks
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


def run_phase(ctx: Context, phase: str, check_only: bool = False) -> bool:
    """Run (or, with check_only, just check) every task of `phase`; True when all are done."""
    todo = {t.name: t for t in tasks.phase(phase)}
    versions = {name: tasks.package_version(t.package) for name, t in todo.items()}
    if check_only:
        try:
            records = {r.task: r for r in runonce.read_all()}
        except mysql.MysqlError:
            return False
        return all(n in records and records[n].state == "done" and records[n].version == versions[n]
                   for n in todo)
    runonce.ensure_schema()
    timeout = ctx.doc.options["cluster_wait_seconds"]
    me = ctx.doc.node.name
    finished: set[str] = set()
    lock = threading.Lock()
    running_now: dict[str, str] = {}
    critical = longest_chain(todo)

    def note(task: str, message: str) -> None:
        with lock:
            running_now[task] = message
            ctx.note("; ".join(f"{k}: {v}" for k, v in sorted(running_now.items())))

    def one(task: tasks.Task) -> runonce.Outcome:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with thread_nice(0 if task.name in critical else SLACK_NICE):
                    outcome = runonce.run_once(task.name, me, versions[task.name], lambda: task.action(ctx.doc),
                                               progress=lambda m: note(task.name, m), timeout=timeout,
                                               before_retry=task.before_retry(ctx.doc))
                break
            except Exception as exc:  # the lease was released: this node or another retries it
                if attempt == ATTEMPTS:
                    raise
                note(task.name, f"attempt {attempt} failed ({REDACT(str(exc))[:200]}); retrying in "
                                f"{RETRY_SECONDS * attempt}s")
                time.sleep(RETRY_SECONDS * attempt)
        with lock:
            running_now.pop(task.name, None)
        who = "ran here" if outcome.ran else f"done by {outcome.owner}"
        ctx.note(f"{task.name}: {who}" + (f" in {outcome.seconds:.1f}s" if outcome.ran else ""))
        with ctx.state.lock:
            record = ctx.state.data["agent"].setdefault("tasks", {})
            record[task.name] = {"ran_here": outcome.ran, "owner": outcome.owner,
                                 "seconds": round(outcome.seconds, 3), "waited": round(outcome.waited, 3),
                                 "at": round(time.time(), 3)}
            ctx.state.save()
        return outcome

    # Every task starts as soon as its dependencies are done: a slot limit made chains wait behind
    # independent tasks (nova's five-command chain queued behind the other services' syncs), and a task
    # another controller runs holds a slot here only to wait.
    with ThreadPoolExecutor(max_workers=len(todo), thread_name_prefix=f"runonce-{phase}") as pool:
        futures: dict[Future, str] = {}
        while len(finished) < len(todo):
            started = set(futures.values())
            for name, task in todo.items():
                if name not in finished and name not in started and all(a in finished for a in task.after
                                                                        if a in todo):
                    futures[pool.submit(one, task)] = name
            if not futures:
                raise RuntimeError(f"run-once phase {phase}: tasks wait for tasks outside it: "
                                   f"{sorted(set(todo) - finished)}")
            done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
            for future in done:
                name = futures.pop(future)
                future.result()  # a failed task stops the phase; its lease was released for a retry
                finished.add(name)
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
