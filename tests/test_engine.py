"""The step engine: ordering, resume after SIGKILL, nothing twice, failures recorded and retried."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from firstboot import document
from firstboot.logsetup import REDACT, setup
from firstboot.render import Facts
from firstboot.state import StateStore
from firstboot.steps.base import Context, Step, StepOrderError, ordered, run_steps

TOP = Path(__file__).resolve().parent.parent


def wait_for(predicate, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Named(Step):
    def __init__(self, name, after=(), roles=None):
        self.name, self.after = name, after
        if roles:
            self.roles = frozenset(roles)


def test_order_follows_after_and_declaration():
    steps = [Named("c", after=("b",)), Named("a"), Named("b", after=("a",)), Named("d")]
    assert [s.name for s in ordered(steps, "controller")] == ["a", "b", "c", "d"]


def test_order_filters_by_role_and_ignores_absent_dependencies():
    steps = [Named("galera", roles={"controller"}), Named("compute", after=("galera",), roles={"compute"})]
    assert [s.name for s in ordered(steps, "compute")] == ["compute"]


def test_order_rejects_cycles():
    with pytest.raises(StepOrderError, match="cycle"):
        ordered([Named("a", after=("b",)), Named("b", after=("a",))], "controller")


def _run_harness(workdir: Path, doc_file: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.engine_harness", str(workdir), str(doc_file)], cwd=TOP,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_resume_after_sigkill_runs_nothing_twice(tmp_path, doc_of):
    doc_file = tmp_path / "node.yaml"
    doc_file.write_text(yaml.safe_dump(doc_of("ctl1")))
    work = tmp_path / "work"
    work.mkdir()
    proc = _run_harness(work, doc_file)
    try:
        wait_for(lambda: "slow start" in (work / "log").read_text() if (work / "log").exists() else False,
                 what="the slow step to start")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    state = json.loads((work / "state.json").read_text())
    assert state["steps"]["first"]["status"] == "done"
    assert state["steps"]["slow"]["status"] == "running"  # what a kill leaves behind
    assert "third" not in state["steps"]

    (work / "release").write_text("go")
    proc = _run_harness(work, doc_file)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    log = (work / "log").read_text().splitlines()
    assert log == ["first start", "first end", "slow start", "slow start", "slow end", "third start", "third end"]
    state = json.loads((work / "state.json").read_text())
    assert {n: r["status"] for n, r in state["steps"].items()} == {"first": "done", "slow": "done", "third": "done"}
    assert state["steps"]["slow"]["runs"] == 2 and state["steps"]["first"]["runs"] == 1

    proc = _run_harness(work, doc_file)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert out.count("already done") == 3
    assert len((work / "log").read_text().splitlines()) == len(log)


class Flaky(Step):
    name = "flaky"
    description = "fails once"

    def __init__(self, secret: str):
        self.secret = secret
        self.calls = 0

    def done(self, ctx):
        return self.calls >= 2

    def run(self, ctx):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError(f"could not log in with password {self.secret}")
        return "ok"


def test_failure_is_recorded_redacted_and_retried(tmp_path, doc_of, capsys):
    doc = document.validate(doc_of("ctl1"))
    secret = doc.secrets["db_nova"]
    REDACT.add([secret])
    setup()
    state = StateStore(tmp_path / "state.json")
    ctx = Context(doc=doc, root=tmp_path, facts=Facts(), state=state, set_owner=False)
    step = Flaky(secret)
    first = run_steps([step], ctx)
    assert not first.ok and first.failed == "flaky"
    recorded = json.loads((tmp_path / "state.json").read_text())["steps"]["flaky"]
    assert recorded["status"] == "failed" and "password ***" in recorded["error"]
    logging.getLogger("goldstack").info("connecting with %s", secret)
    second = run_steps([step], ctx)
    assert second.ok and second.ran == ["flaky"]
    out = capsys.readouterr().out
    assert "connecting with ***" in out
    assert secret not in out and secret not in (tmp_path / "state.json").read_text()


class NeverDone(Step):
    name = "liar"
    description = "claims work but never gets there"
    settle_seconds = 0.5

    def done(self, ctx):
        return False

    def why_not_done(self, ctx):
        return "the daemon it started is failed"

    def run(self, ctx):
        return None


class DoneLate(Step):
    """Its check passes a few polls after the work, like a daemon systemd restarts once after a first exit."""

    name = "late"
    description = "work whose check lags"
    settle_seconds = 10

    def __init__(self):
        self.asked = 0

    def done(self, ctx):
        self.asked += 1
        return self.asked >= 4  # once before run() (not done), then twice more after it

    def run(self, ctx):
        return "started"


def _context(tmp_path, doc_of) -> Context:
    doc = document.validate(doc_of("cmp1"))
    return Context(doc=doc, root=tmp_path, facts=Facts(), state=StateStore(tmp_path / "s.json"), set_owner=False)


def test_a_step_whose_check_still_fails_is_a_failure_that_says_why(tmp_path, doc_of):
    result = run_steps([NeverDone()], _context(tmp_path, doc_of))
    assert not result.ok
    assert result.error == ("RuntimeError: the step ran but its done() check still fails: "
                            "the daemon it started is failed")


def test_a_check_that_lags_the_work_is_waited_for(tmp_path, doc_of):
    step = DoneLate()
    result = run_steps([step], _context(tmp_path, doc_of))
    assert result.ok and result.ran == ["late"] and step.asked == 4


class Meeting(Step):
    """Done only once every step of its meeting has started: proves they run side by side."""

    def __init__(self, name: str, meeting: threading.Barrier, after=(), log: list | None = None):
        self.name, self.after, self.description = name, after, f"meet {name}"
        self.meeting, self.log, self.finished = meeting, log if log is not None else [], False

    def done(self, ctx):
        return self.finished

    def run(self, ctx):
        ctx.note(f"{self.name} waiting for the others")
        self.log.append(f"{self.name} start")
        self.meeting.wait(timeout=10)  # BrokenBarrierError (a failure) if run one after the other
        self.finished = True
        self.log.append(f"{self.name} end")
        return None


def _ctx(tmp_path, doc_of) -> Context:
    doc = document.validate(doc_of("ctl1"))
    return Context(doc=doc, root=tmp_path, facts=Facts(), state=StateStore(tmp_path / "s.json"), set_owner=False)


def test_independent_steps_run_side_by_side_and_dependents_wait_for_both(tmp_path, doc_of):
    meeting, log = threading.Barrier(2), []
    first, second = Meeting("galera", meeting, log=log), Meeting("rabbitmq", meeting, log=log)
    last = Meeting("services", threading.Barrier(1), after=("galera", "rabbitmq"), log=log)
    ctx = _ctx(tmp_path, doc_of)
    result = run_steps(ordered([first, second, last], "controller"), ctx)
    assert result.ok, result.error
    assert sorted(result.ran) == ["galera", "rabbitmq", "services"] and result.ran[-1] == "services"
    assert log[-2:] == ["services start", "services end"]
    steps = json.loads((tmp_path / "s.json").read_text())["steps"]
    assert steps["galera"]["status"] == steps["rabbitmq"]["status"] == "done"
    assert steps["services"]["started"] >= max(steps["galera"]["finished"], steps["rabbitmq"]["finished"])


class Fails(Step):
    name, description = "broken", "fails at once"

    def done(self, ctx):
        return False

    def run(self, ctx):
        raise RuntimeError("no quorum")


def test_a_failure_starts_nothing_more_and_waits_for_running_steps(tmp_path, doc_of):
    slow_started, release = threading.Event(), threading.Event()

    class Slow(Step):
        name, description, finished = "slow", "ends after the failure", False

        def done(self, ctx):
            return self.finished

        def run(self, ctx):
            slow_started.set()
            release.wait(10)
            self.finished = True

    class Releases(Fails):
        def run(self, ctx):
            slow_started.wait(10)
            threading.Timer(0.3, release.set).start()
            super().run(ctx)

    never = Meeting("after-broken", threading.Barrier(1), after=("broken",))
    slow = Slow()
    result = run_steps([slow, Releases(), never], _ctx(tmp_path, doc_of))
    assert not result.ok and result.failed == "broken" and "no quorum" in result.error
    assert slow.finished and result.ran == ["slow"]  # the running step was let finish, and recorded
    assert not never.finished
    steps = json.loads((tmp_path / "s.json").read_text())["steps"]
    assert steps["broken"]["status"] == "failed" and steps["slow"]["status"] == "done" and "after-broken" not in steps


def test_each_run_is_kept_with_the_steps_it_did(tmp_path, doc_of):
    state = StateStore(tmp_path / "state.json")
    state.begin_run(node="ctl1")
    state.start("config")
    state.finish("config", "written")
    state.end_run("done")
    state.begin_run(node="ctl1")  # the second run finds config done and runs galera
    state.finish("config", None, already=True)
    state.start("galera")
    state.finish("galera", "joined")
    state.end_run("done")
    state.begin_run(node="ctl1")
    again = StateStore(tmp_path / "state.json").data["history"]
    assert [sorted(run["steps"]) for run in again] == [["config"], ["galera"]]
    assert all(run["status"] == "done" for run in again)
