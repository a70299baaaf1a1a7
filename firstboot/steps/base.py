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
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from firstboot import graph, proc
from firstboot.document import ROLES, Document
from firstboot.files import under_root
from firstboot.logsetup import REDACT
from firstboot.render import Facts
from firstboot.state import StateStore

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

    # done() right after run() may lag what run() did (a daemon that exited once and is being brought back
    # by systemd's Restart=): it is asked again for this long before the step counts as failed, rather than
    # failing the agent's run and waiting for systemd to start the agent again.
    settle_seconds: float = 30

    def done(self, ctx: Context) -> bool:
        raise NotImplementedError

    def why_not_done(self, ctx: Context) -> str:
        """What done() finds missing, for the message of a step that ran and is still not done ("" when the
        step cannot say)."""
        return ""

    def run(self, ctx: Context) -> str | None:
        """Do the work; return a short detail for `status`."""
        raise NotImplementedError


StepOrderError = graph.CycleError


def ordered(steps: Iterable[Step], role: str) -> list[Step]:
    """The role's steps, each after the steps it names (stable: declaration order breaks ties)."""
    chosen = {s.name: s for s in steps if role in s.roles}
    try:
        names = graph.order(list(chosen), {n: s.after for n, s in chosen.items()})
    except graph.CycleError as exc:
        raise StepOrderError(f"the {role} role's steps: {exc}") from None
    return [chosen[n] for n in names]


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
        try:
            proc.wait_for(lambda: step.done(ctx), step.settle_seconds, f"{step.name} done")
        except TimeoutError:
            why = step.why_not_done(ctx)
            raise RuntimeError("the step ran but its done() check still fails" + (f": {why}" if why else "")) \
                from None
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
    by_name = {s.name: s for s in steps}
    labels = {s.name: f"[{i}/{len(steps)}] {s.name}" for i, s in enumerate(steps, 1)}

    def work(name: str) -> tuple[str, str | None]:
        step = by_name[name]
        mine = dataclasses.replace(ctx, current_step=name, _last_note="")
        try:
            return _run_one(step, mine, labels[name], progress)
        except Exception as exc:  # done() itself raised: a failure of the step all the same
            error = REDACT(f"{type(exc).__name__}: {exc}")
            ctx.state.fail(name, error)
            progress(f"{labels[name]}: FAILED: {error}")
            return "failed", error

    outcomes = graph.run(list(by_name), {s.name: s.after for s in steps}, work,
                         stops=lambda outcome: outcome[0] == "failed", label="step")
    ran = [n for n, (outcome, _) in outcomes.items() if outcome == "ran"]
    skipped = [n for n, (outcome, _) in outcomes.items() if outcome == "skipped"]
    failed = next(((n, error) for n, (outcome, error) in outcomes.items() if outcome == "failed"), None)
    if failed:
        return RunResult(False, ran, skipped, failed[0], failed[1])
    return RunResult(True, ran, skipped)
