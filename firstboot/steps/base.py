"""The step contract and the engine that runs a role's steps, resumably and side by side.

Each step says whether its work is already done (`done`), and does it (`run`). A step starts as soon as
the steps it follows (`after`) are done, so independent work overlaps: RabbitMQ forms its cluster while
Galera's joiners take their state transfers and the schemas sync. The engine skips done steps, so a
second run after success does nothing and a run killed at any point resumes with the steps not yet done.
A failed step records its error; no further step starts, the running ones end, and the next run retries.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from firstboot.document import ROLES, Document
from firstboot.files import under_root
from firstboot.logsetup import REDACT
from firstboot.render import Facts
from firstboot.state import FAILED, StateStore

log = logging.getLogger("goldstack")


@dataclass
class Context:
    doc: Document
    root: Path
    facts: Facts
    state: StateStore
    set_owner: bool = True
    current_step: str = ""
    _last_note: str = ""

    def path(self, absolute: str) -> Path:
        return under_root(self.root, absolute)

    def note(self, message: str) -> None:
        """Progress of a long step: logged when it changes, and shown by `status` while the step runs."""
        message = REDACT(message)
        if message == self._last_note:
            return
        self._last_note = message
        log.info("  %s: %s", self.current_step, message)
        if self.current_step:
            self.state.note(self.current_step, message)


class Step:
    """One concern of first boot. Subclasses set the class attributes and implement done() and run()."""

    name: str = ""
    description: str = ""
    roles: frozenset[str] = frozenset(ROLES)
    after: tuple[str, ...] = ()

    def done(self, ctx: Context) -> bool:
        raise NotImplementedError

    def run(self, ctx: Context) -> str | None:
        """Do the work; return a short detail for `status`."""
        raise NotImplementedError


class StepOrderError(Exception):
    pass


def ordered(steps: Iterable[Step], role: str) -> list[Step]:
    """The role's steps, each after the steps it names (stable: declaration order breaks ties)."""
    chosen = [s for s in steps if role in s.roles]
    names = {s.name for s in chosen}
    result: list[Step] = []
    placed: set[str] = set()
    pending = list(chosen)
    while pending:
        ready = next((s for s in pending if all(a in placed or a not in names for a in s.after)), None)
        if ready is None:
            raise StepOrderError("steps depend on each other in a cycle: " + ", ".join(s.name for s in pending))
        result.append(ready)
        placed.add(ready.name)
        pending.remove(ready)
    return result


@dataclass
class RunResult:
    ok: bool
    ran: list[str]
    skipped: list[str]
    failed: str | None = None
    error: str | None = None


def _run_one(step: Step, ctx: Context, label: str, progress: Callable[[str], None]) -> tuple[str, str | None]:
    """("skipped" | "ran" | "failed", the error of a failure)."""
    if step.done(ctx):
        ctx.state.finish(step.name, None, already=True)
        progress(f"{label}: already done")
        return "skipped", None
    progress(f"{label}: {step.description} ...")
    ctx.state.start(step.name)
    started = time.monotonic()
    try:
        detail = step.run(ctx)
        if not step.done(ctx):
            raise RuntimeError("the step ran but its done() check still fails")
    except Exception as exc:  # every failure is recorded, then the run stops
        error = REDACT(f"{type(exc).__name__}: {exc}")
        ctx.state.fail(step.name, error)
        progress(f"{label}: FAILED after {time.monotonic() - started:.1f}s: {error}")
        return "failed", error
    ctx.state.finish(step.name, REDACT(detail) if detail else None)
    progress(f"{label}: done in {time.monotonic() - started:.1f}s{' (' + detail + ')' if detail else ''}")
    return "ran", None


def run_steps(steps: list[Step], ctx: Context,
              progress: Callable[[str], None] = lambda m: log.info("%s", m)) -> RunResult:
    """Run `steps` (in `ordered` order), each in its own thread once the steps it follows among them are
    done; each gets its own Context, so its progress notes name it."""
    names = {s.name for s in steps}
    labels = {s.name: f"[{i}/{len(steps)}] {s.name}" for i, s in enumerate(steps, 1)}
    pending = list(steps)
    outcomes: queue.Queue[tuple[Step, str, str | None]] = queue.Queue()
    finished: set[str] = set()
    ran: list[str] = []
    skipped: list[str] = []
    failed: tuple[str, str | None] | None = None
    running = 0

    def work(step: Step) -> None:
        mine = dataclasses.replace(ctx, current_step=step.name, _last_note="")
        try:
            outcomes.put((step, *_run_one(step, mine, labels[step.name], progress)))
        except Exception as exc:  # done() itself raised: a failure of the step all the same
            error = REDACT(f"{type(exc).__name__}: {exc}")
            ctx.state.fail(step.name, error)
            progress(f"{labels[step.name]}: FAILED: {error}")
            outcomes.put((step, "failed", error))

    while True:
        if failed is None:
            for step in [s for s in pending if all(a in finished or a not in names for a in s.after)]:
                pending.remove(step)
                running += 1
                threading.Thread(target=work, args=(step,), name=f"step-{step.name}", daemon=True).start()
        if not running:
            break
        step, outcome, error = outcomes.get()
        running -= 1
        if outcome == "failed":
            failed = failed or (step.name, error)
            continue
        finished.add(step.name)
        (ran if outcome == "ran" else skipped).append(step.name)
    if failed:
        return RunResult(False, ran, skipped, failed[0], failed[1])
    return RunResult(True, ran, skipped)


def failed_steps(state: StateStore) -> list[str]:
    return [n for n, rec in state.data["steps"].items() if rec.get("status") == FAILED]
