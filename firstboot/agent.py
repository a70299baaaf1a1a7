"""One run of the first-boot agent: find the document, validate it, run the role's steps."""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from firstboot import document, facts, identity, sources
from firstboot.errors import AgentLocked, FieldProblem, InvalidInput, UsageError
from firstboot.files import under_root
from firstboot.logsetup import REDACT
from firstboot.state import DONE, FAILED, StateStore, default_path
from firstboot.steps import ALL_STEPS
from firstboot.steps.base import Context, RunResult, Step, ordered, run_steps

log = logging.getLogger("goldstack")
LOCK_FILE = "/run/goldstack-firstboot.lock"
SUCCESS_MARK = "goldstack-firstboot: SUCCESS"
FAILURE_MARK = "goldstack-firstboot: FAILED"


@dataclass(frozen=True)
class RunOptions:
    sources: sources.SourceOptions
    only_source: str | None = None
    state_path: Path | None = None
    set_owner: bool = True
    until: str | None = None  # stop after this step (previews under --root, tests)


@contextmanager
def run_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AgentLocked(f"another goldstack-firstboot run holds {path}; wait for it to finish") from None
        yield
    finally:
        os.close(fd)


def load_document(opts: RunOptions) -> tuple[sources.Found, document.Document]:
    found = sources.discover(opts.sources, opts.only_source)
    doc = document.load_text(found.text, f"{found.source} document ({found.where})")
    REDACT.add(doc.private_strings)
    return found, doc


def plan_of(steps: tuple[Step, ...], doc: document.Document, until: str | None, source: str) -> list[Step]:
    """The role's steps in order, up to `--until` or the document's options.stop_after."""
    plan = ordered(steps, doc.role)
    names = [s.name for s in plan]

    def unknown(step: str) -> str:
        return f"the {doc.role} role has no step {step!r}; its steps are {', '.join(names)}"

    stop_after = doc.options["stop_after"]
    if stop_after and stop_after not in names:
        raise InvalidInput(source, [FieldProblem("options.stop_after", unknown(stop_after))])
    if until and until not in names:
        raise UsageError(f"--until {until}: {unknown(until)}")
    last = until or stop_after
    return plan[:names.index(last) + 1] if last else plan

def run(opts: RunOptions, steps: tuple[Step, ...] = ALL_STEPS) -> RunResult:
    root = opts.sources.root
    with run_lock(under_root(root, LOCK_FILE)):
        started = time.monotonic()
        found, doc = load_document(opts)
        log.info("document from %s (%s): node %s, role %s, cluster %s, %d peers", found.source, found.where,
                 doc.node.name, doc.role, doc.cluster, len(doc.all_nodes))
        source = f"{found.source} document ({found.where})"
        plan = plan_of(steps, doc, opts.until, source)
        state = StateStore(default_path(root, opts.state_path))
        identity.check(doc, state.data["agent"].get("identity"), source)
        state.begin_run(node=doc.node.name, role=doc.role, cluster=doc.cluster, source=found.source,
                        source_where=found.where, document=doc.fingerprint, identity=identity.of(doc))
        try:
            host = facts.gather(doc, root)
        except facts.HardwareMissing as exc:
            state.end_run(FAILED, str(exc))
            log.error("%s node=%s role=%s step=facts: %s", FAILURE_MARK, doc.node.name, doc.role, exc)
            return RunResult(ok=False, ran=[], skipped=[], failed="facts", error=str(exc))
        ctx = Context(doc=doc, root=root, facts=host, state=state, set_owner=opts.set_owner)
        state.data["agent"]["plan"] = [s.name for s in plan]
        state.data["agent"]["facts"] = dataclasses.asdict(ctx.facts)
        result = run_steps(plan, ctx)
        elapsed = time.monotonic() - started
        state.end_run(DONE if result.ok else FAILED, result.error)
        if result.ok:
            log.info("%s node=%s role=%s ran=%d already-done=%d in %.1fs", SUCCESS_MARK, doc.node.name, doc.role,
                     len(result.ran), len(result.skipped), elapsed)
        else:
            log.error("%s node=%s role=%s step=%s: %s", FAILURE_MARK, doc.node.name, doc.role, result.failed,
                      result.error)
        return result
