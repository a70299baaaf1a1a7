"""firstboot.forkrun: a console script's commands in forked children of one import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent('''
    import os, sys
    LOG = os.environ["FORKRUN_LOG"]
    calls = 0  # a child that saw another's call would count 2

    def preload():
        with open(LOG, "a") as log:
            log.write(f"preload {os.getpid()}\\n")

    def main():
        global calls
        calls += 1
        with open(LOG, "a") as log:
            log.write(f"{' '.join(sys.argv)} calls={calls} pid={os.getpid()}\\n")
        if sys.argv[1] == "fail":
            return int(sys.argv[2])
        if sys.argv[1] == "raise":
            raise RuntimeError("broken")
        if sys.argv[1] == "exit":
            sys.exit(int(sys.argv[2]))
''')


def run(tmp_path: Path, commands: list[dict]) -> tuple[subprocess.CompletedProcess, list[str]]:
    (tmp_path / "fakemanage.py").write_text(SCRIPT)
    log = tmp_path / "log"
    spec = {"entry": "fakemanage:main", "prog": "fake-manage", "preload": ["fakemanage:preload"],
            "commands": commands}
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{ROOT}", "FORKRUN_LOG": str(log)}
    done = subprocess.run([sys.executable, "-m", "firstboot.forkrun", json.dumps(spec)], env=env,
                          capture_output=True, text=True, timeout=60)
    return done, log.read_text().splitlines() if log.exists() else []


def test_each_command_runs_in_order_in_a_fresh_child_of_one_import(tmp_path):
    done, log = run(tmp_path, [{"argv": ["one"]}, {"argv": ["two", "x"]}, {"argv": ["exit", "0"]}])
    assert done.returncode == 0, done.stderr
    assert log[0].startswith("preload ")
    parent = log[0].split()[1]
    assert [line.split(" pid=")[0] for line in log[1:]] == \
        ["fake-manage one calls=1", "fake-manage two x calls=1", "fake-manage exit 0 calls=1"]
    pids = {line.split(" pid=")[1] for line in log[1:]}
    assert len(pids) == 3 and parent not in pids
    assert "forkrun: fake-manage two x" in done.stderr


def test_the_chain_stops_at_the_first_failure_with_its_status(tmp_path):
    done, log = run(tmp_path, [{"argv": ["one"]}, {"argv": ["fail", "3"]}, {"argv": ["never"]}])
    assert done.returncode == 3
    assert not any("never" in line for line in log)
    assert "fake-manage fail 3 exited 3" in done.stderr


def test_an_allowed_status_goes_on(tmp_path):
    done, log = run(tmp_path, [{"argv": ["exit", "2"], "ok": [0, 2]}, {"argv": ["after"]}])
    assert done.returncode == 0, done.stderr
    assert any(line.startswith("fake-manage after") for line in log)


def test_an_exception_is_a_failure_with_its_traceback(tmp_path):
    done, _ = run(tmp_path, [{"argv": ["raise"]}])
    assert done.returncode == 1
    assert "RuntimeError: broken" in done.stderr


def test_nova_s_chain_runs_the_install_guide_s_commands_in_order_as_nova(monkeypatch):
    """What the nova-db task hands forkrun: one spec, nova's user, cell1's "exists" status allowed."""
    from firstboot import proc, tasks

    seen: list[tuple[list[str], str | None, dict]] = []
    monkeypatch.setattr(proc, "run", lambda argv, user=None, env=None, **kw: seen.append((argv, user, env)))
    detail = tasks.TASKS_BY_NAME["nova-db"].action(None)
    (argv, user, env), = seen
    spec = json.loads(argv[-1])
    assert argv[1:3] == ["-m", "firstboot.forkrun"] and user == "nova"
    assert Path(env["PYTHONPATH"], "firstboot", "forkrun.py").is_file()
    assert (spec["entry"], spec["prog"]) == ("nova.cmd.manage:main", "nova-manage")
    assert [c["argv"][:2] for c in spec["commands"]] == \
        [["api_db", "sync"], ["cell_v2", "map_cell0"], ["cell_v2", "create_cell"], ["db", "sync"]]
    assert [c["ok"] for c in spec["commands"]] == [[0], [0], [0, 2], [0]]
    assert detail.startswith("nova-manage api_db sync; nova-manage cell_v2 map_cell0")


def test_keystone_s_chain_bootstraps_at_the_vip_with_the_password_by_environment(monkeypatch, doc_of):
    from firstboot import document, keysets, proc, tasks

    doc = document.validate(doc_of("ctl1"))
    seen: list[tuple[list[str], str | None, dict]] = []
    monkeypatch.setattr(proc, "run", lambda argv, user=None, env=None, **kw: seen.append((argv, user, env)))
    synced: list[str] = []
    monkeypatch.setattr(keysets, "sync", synced.append)
    tasks.TASKS_BY_NAME["keystone-db"].action(doc)
    assert synced == ["ctl1"]  # the key repositories are written before keystone-manage signs with them
    (argv, user, env), = seen
    commands = [c["argv"] for c in json.loads(argv[-1])["commands"]]
    assert user == "keystone" and commands[0] == ["db_sync"] and commands[1][0] == "bootstrap"
    assert f"https://{doc.vip}:5000/v3" in commands[1]
    assert env["OS_BOOTSTRAP_PASSWORD"] == str(doc.secrets["keystone_admin"])
    assert str(doc.secrets["keystone_admin"]) not in argv[-1]
