"""Scheduling of a run-once phase (firstboot.steps.runonce.run_phase), with the cluster-wide claim faked:
which tasks run when is pure logic; claiming through Galera is covered by the cluster tests."""

from __future__ import annotations

import os
import threading
from types import SimpleNamespace

import pytest

from firstboot import runonce, tasks
from firstboot.steps import runonce as runonce_step

WAIT_S = 10


def fake_context() -> SimpleNamespace:
    state = SimpleNamespace(data={"agent": {}}, save=lambda: None, lock=threading.RLock())
    doc = SimpleNamespace(options={"cluster_wait_seconds": 60}, node=SimpleNamespace(name="ctl1"))
    return SimpleNamespace(doc=doc, state=state, note=lambda message: None)


@pytest.fixture
def phase_of(monkeypatch):
    """Run a phase made of the given tasks; run_once does the work in place (this node claims everything)."""
    def run(todo: list[tasks.Task]) -> None:
        monkeypatch.setattr(tasks, "phase", lambda name: todo)
        monkeypatch.setattr(tasks, "package_version", lambda package: package)
        monkeypatch.setattr(runonce, "ensure_schema", lambda: None)
        monkeypatch.setattr(runonce, "register_versions", lambda node, versions: None)
        monkeypatch.setattr(runonce, "read", lambda task: None)
        monkeypatch.setattr(runonce_step, "ATTEMPTS", 1)  # a failed task fails the phase at once

        def run_once(task, owner, version, work, progress=None, timeout=0, before_retry=None):
            work(False)
            return runonce.Outcome(task, True, owner, 0.0, 0.0)

        monkeypatch.setattr(runonce, "run_once", run_once)
        assert runonce_step.run_phase(fake_context(), "test")
    return run


def test_a_chain_does_not_queue_behind_independent_tasks(phase_of):
    """The second link of a chain starts while every independent task of the first wave still runs; with a
    per-node slot limit smaller than the first wave it would wait for one of them (and here, deadlock)."""
    chain_second_started = threading.Event()
    log: list[str] = []

    def independent(name: str):
        def action(doc) -> str:
            log.append(name)
            if not chain_second_started.wait(WAIT_S):
                raise AssertionError(f"{name}: the chain's second task never started while this one ran")
            return name
        return action

    def second(doc) -> str:
        chain_second_started.set()
        return "second"

    wave = [tasks.Task(f"sync-{i}", "test", f"pkg-{i}", independent(f"sync-{i}")) for i in range(5)]
    chain = [tasks.Task("chain-1", "test", "pkg-c", lambda doc: "first"),
             tasks.Task("chain-2", "test", "pkg-c", second, ("chain-1",))]
    phase_of(wave + chain)
    assert sorted(log) == [t.name for t in wave]
    assert chain_second_started.is_set()


def test_a_task_never_starts_before_what_it_follows(phase_of):
    finished: set[str] = set()
    lock = threading.Lock()

    def step(name: str, needs: tuple[str, ...]):
        def action(doc) -> str:
            with lock:
                missing = [n for n in needs if n not in finished]
            assert not missing, f"{name} started before {missing} finished"
            with lock:
                finished.add(name)
            return name
        return action

    shape = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": ()}
    phase_of([tasks.Task(n, "test", "pkg", step(n, needs), needs) for n, needs in shape.items()])
    assert finished == set(shape)


def test_the_database_phase_s_longest_chains_are_nova_s_and_neutron_s():
    todo = {t.name: t for t in tasks.phase(tasks.DATABASE)}
    assert runonce_step.longest_chain(todo) == {"databases", "nova-db", "neutron-db-upgrade", "neutron-db-contract"}


def test_tasks_off_the_longest_chain_run_nicer(phase_of):
    """Their commands inherit the thread's nice value, so the chain the phase waits for gets the CPU first;
    chains of equal length all count as longest."""
    base = os.getpriority(os.PRIO_PROCESS, 0)
    seen: dict[str, int] = {}

    def record(name: str):
        def action(doc) -> str:
            seen[name] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            return name
        return action

    shape = {"a": (), "b": ("a",), "c": ("b",), "d": (), "e": ("d",), "f": ("d",), "g": ("e",)}
    todo = {n: tasks.Task(n, "test", "pkg", record(n), needs) for n, needs in shape.items()}
    phase_of(list(todo.values()))
    slack = {n for n in shape if n not in "abcdeg"}
    assert runonce_step.longest_chain(todo) == set("abcdeg")
    assert all(seen[n] >= base + runonce_step.SLACK_NICE for n in slack), seen
    if os.geteuid() == 0:  # only root can give a pool thread its priority back for the next task
        assert all(seen[n] == base for n in set(shape) - slack), seen


def test_a_task_of_several_commands_weighs_as_many():
    """A task running four commands in one forkrun is a longer chain than two one-command tasks."""
    def noop(doc) -> str:
        return ""
    todo = {"a": tasks.Task("a", "test", "pkg", noop), "b": tasks.Task("b", "test", "pkg", noop, ("a",)),
            "c": tasks.Task("c", "test", "pkg", noop, weight=4)}
    assert runonce_step.longest_chain(todo) == {"c"}


@pytest.mark.parametrize("recorded,installed,covered", [
    ("keystone 2:27.0.0-1", "keystone 2:27.0.0-1", True),
    ("keystone 2:27.0.0-1+goldstack1", "keystone 2:27.0.0-1", True),  # a newer node ran it: an older one skips
    ("keystone 2:27.0.0-1", "keystone 2:27.0.0-1+goldstack1", False),  # the upgrade re-runs it
    ("keystone 2:28.0.0-1", "keystone 2:27.9-1", True),
    ("nova-common 2:31.0.0-1", "keystone 2:27.0.0-1", False),
    ("goldstack:7ddb808e588b", "goldstack:0123456789ab", False),  # a digest: only the same one covers
    ("goldstack:7ddb808e588b", "goldstack:7ddb808e588b", True),
    ("keystone unknown", "keystone 2:27.0.0-1", False),
])
def test_a_recorded_run_covers_the_same_or_an_older_version_of_its_package(recorded, installed, covered):
    assert runonce.covers(recorded, installed) is covered


def test_an_upgrade_runs_the_upgrade_action_and_a_first_install_the_first_one():
    task = tasks.TASKS_BY_NAME["keystone-db-contract"]
    assert "nothing to contract" in task.run(None, upgrading=False)
    assert task.upgrade is not None and task.gate is not None


def test_a_take_over_quotes_only_as_much_of_the_failure_before_it_as_its_column_holds(monkeypatch):
    """Each take-over's reason quotes the failure before it, which quoted the one before: unbounded, the claim
    itself failed ("Data too long for column 'detail'") and no controller could retry the task."""
    statements: list[str] = []
    monkeypatch.setattr(runonce.mysql, "run_sql", lambda sql, **kw: statements.append(sql) or [["1"]])
    old = runonce.Record("keystone-db", "running", "ctl3", "a" * 32, "keystone 1", 0.0, 0.0, None, 3, "y" * 1024, 99.0)
    assert runonce.Lease("keystone-db", "ctl1", "keystone 1").take_over(old, "gave up: " + "y" * 3000)
    (sql,) = statements
    assert "y" * runonce.DETAIL_CHARS not in sql and "y" * (runonce.DETAIL_CHARS - 20) in sql


def test_keystone_manage_runs_with_keystone_s_cache_off():
    """A retry re-creates the empty database; a bootstrap that found last attempt's region in memcached failed."""
    doc = SimpleNamespace(secrets={"keystone_admin": "pw"})
    assert tasks.keystone_bootstrap_env(doc) == {"OS_BOOTSTRAP_PASSWORD": "pw", "OS_CACHE__ENABLED": "false"}


def test_work_done_is_recorded_done_even_when_galera_refuses_the_first_commit(monkeypatch):
    """A certification conflict at COMMIT (1213) once made a finished keystone-db count as failed: retried,
    its database re-created and its work done again."""
    answers: list = [runonce.MysqlError(runonce.mysql.ER_LOCK_DEADLOCK, "Deadlock found"), [["1"]]]

    def run_sql(sql, **kw):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(runonce.mysql, "run_sql", run_sql)
    monkeypatch.setattr(runonce.time, "sleep", lambda s: None)
    runonce.Lease("keystone-db", "ctl3", "keystone 1").finish(12.0, "ok")
    assert answers == []


def test_any_other_database_error_at_finish_is_not_retried(monkeypatch):
    calls = []

    def run_sql(sql, **kw):
        calls.append(sql)
        raise runonce.MysqlError(1146, "Table doesn't exist")

    monkeypatch.setattr(runonce.mysql, "run_sql", run_sql)
    with pytest.raises(runonce.MysqlError):
        runonce.Lease("keystone-db", "ctl3", "keystone 1").finish(12.0, "ok")
    assert len(calls) == 1
