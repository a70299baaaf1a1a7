"""A real agent pipeline of probe steps, run as its own process so tests can SIGKILL it mid-step.

usage: python -m tests.engine_harness WORKDIR
Each step appends "<name> start|end" to WORKDIR/log; step `slow` waits for WORKDIR/release.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from firstboot import document
from firstboot.render import Facts
from firstboot.state import StateStore
from firstboot.steps.base import Context, Step, ordered, run_steps


class Probe(Step):
    def __init__(self, name: str, after: tuple[str, ...] = (), wait_for: str | None = None):
        self.name = name
        self.description = f"probe {name}"
        self.after = after
        self.wait_for = wait_for

    def done(self, ctx: Context) -> bool:
        return (ctx.root / f"{self.name}.done").exists()

    def run(self, ctx: Context) -> str:
        with open(ctx.root / "log", "a") as log:
            log.write(f"{self.name} start\n")
        deadline = time.monotonic() + 120
        while self.wait_for and not (ctx.root / self.wait_for).exists():
            if time.monotonic() > deadline:
                raise TimeoutError("never released")
            time.sleep(0.05)
        (ctx.root / f"{self.name}.done").write_text("ok")
        with open(ctx.root / "log", "a") as log:
            log.write(f"{self.name} end\n")
        return f"{self.name} did its work"


STEPS = (Probe("third", after=("slow",)), Probe("first"), Probe("slow", after=("first",), wait_for="release"))


def main(workdir: Path, doc_file: Path) -> int:
    doc = document.load_text(doc_file.read_text(), str(doc_file))
    state = StateStore(workdir / "state.json")
    ctx = Context(doc=doc, root=workdir, facts=Facts(), state=state, set_owner=False)
    result = run_steps(ordered(STEPS, doc.role), ctx, progress=print)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
