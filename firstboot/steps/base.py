"""The step contract and the engine that runs a role's steps in order, resumably.

Each step says whether its work is already done (`done`), and does it (`run`). The engine skips done
steps, so a second run after success does nothing and a run killed at any point resumes at the first
step not yet done. A failed step records its error and stops the run; the next run retries it.
"""

from __future__ import annotations

import logging
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


def run_steps(steps: list[Step], ctx: Context,
              progress: Callable[[str], None] = lambda m: log.info("%s", m)) -> RunResult:
    ran: list[str] = []
    skipped: list[str] = []
    total = len(steps)
    for index, step in enumerate(steps, 1):
        label = f"[{index}/{total}] {step.name}"
        if step.done(ctx):
            ctx.state.finish(step.name, None, already=True)
            skipped.append(step.name)
            progress(f"{label}: already done")
            continue
        progress(f"{label}: {step.description} ...")
        ctx.current_step = step.name
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
            return RunResult(False, ran, skipped, step.name, error)
        ctx.state.finish(step.name, REDACT(detail) if detail else None)
        ran.append(step.name)
        progress(f"{label}: done in {time.monotonic() - started:.1f}s{' (' + detail + ')' if detail else ''}")
    return RunResult(True, ran, skipped)


def failed_steps(state: StateStore) -> list[str]:
    return [n for n, rec in state.data["steps"].items() if rec.get("status") == FAILED]
