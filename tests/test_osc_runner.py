"""The lab checks' client protocol (compose/osc.py + compose/osc_runner.py), against a stand-in
openstackclient: replies stay one JSON line each whatever the command prints, the password is used once
and the token after it, a token the cloud refuses sends the runner back to the password, and commands
sent together run together, each reply reaching its own caller. The real client runs in every lab check
(tests/test_lab.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from compose import osc

STAND_IN = '''
import json, os, sys, time

class OpenStackShell:
    def run(self, argv):
        os.write(1, b"a library writing to fd 1 on its own\\n")
        token = os.environ.get("OS_AUTH_TYPE") == "v3token"
        if argv == ["token", "issue", "-f", "value", "-c", "id"] and not token:
            if os.environ.get("OS_PASSWORD") != "pw":
                return 1
            with open(os.environ["STAND_IN_LOG"], "a") as log:
                log.write("password\\n")
            print("tok-1")
            return 0
        if argv == ["refuse-tokens"] and token:
            sys.stderr.write("The request you have made requires authentication. (HTTP 401)\\n")
            return 1
        if argv == ["exit"]:
            raise SystemExit(2)
        if argv[0] == "wait-for":  # returns once the file exists: proves another command ran meanwhile
            while not os.path.exists(argv[1]):
                time.sleep(0.05)
        if argv[0] == "touch":
            open(argv[1], "w").close()
        print(json.dumps({"argv": argv, "token": os.environ.get("OS_TOKEN") if token else None,
                          "password": "OS_PASSWORD" in os.environ}))
        return 0
'''


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    package = tmp_path / "openstackclient"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "shell.py").write_text(STAND_IN)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("OS_USERNAME", "admin")
    monkeypatch.setenv("OS_PASSWORD", "pw")
    monkeypatch.setenv("STAND_IN_LOG", str(tmp_path / "auth.log"))
    started = osc.Runner([sys.executable, "-c", osc.RUNNER_SOURCE])
    yield started, tmp_path / "auth.log"
    started.close()


def test_token_after_one_password_authentication(runner) -> None:
    started, log = runner
    for n in range(3):
        rc, out, err = started.call(["server", "list", str(n)], timeout=60)
        assert rc == 0, err
        reply = json.loads(out)
        assert reply == {"argv": ["server", "list", str(n)], "token": "tok-1", "password": False}
    assert log.read_text() == "password\n"


def test_refused_token_falls_back_to_the_password(runner) -> None:
    started, log = runner
    rc, out, err = started.call(["refuse-tokens"], timeout=60)
    assert rc == 0, err
    assert '"password": true' in out
    assert log.read_text() == "password\n"  # the retry used the password itself; a token comes next time
    rc, out, _ = started.call(["server", "list"], timeout=60)
    assert rc == 0 and '"token": "tok-1"' in out
    assert log.read_text() == "password\npassword\n"


def test_exit_codes_and_a_runner_that_ends(runner) -> None:
    started, _ = runner
    assert started.call(["exit"], timeout=60)[0] == 2
    started.proc.stdin.close()  # type: ignore[union-attr]
    started.proc.wait(timeout=30)
    with pytest.raises((osc.RunnerGone, BrokenPipeError, ValueError)):
        started.call(["server", "list"], timeout=60)


def test_commands_run_together_and_each_caller_gets_its_reply(runner, tmp_path: Path) -> None:
    started, log = runner
    flag = tmp_path / "flag"
    replies: dict[str, tuple[int, str, str]] = {}
    waiter = threading.Thread(target=lambda: replies.update(wait=started.call(["wait-for", str(flag)], 60)))
    waiter.start()
    deadline = time.monotonic() + 30
    while not started.waiting and time.monotonic() < deadline:  # the first command is in flight
        time.sleep(0.05)
    replies["touch"] = started.call(["touch", str(flag)], timeout=60)  # runs while the first still waits
    waiter.join(timeout=60)
    assert json.loads(replies["touch"][1])["argv"] == ["touch", str(flag)]
    assert json.loads(replies["wait"][1])["argv"] == ["wait-for", str(flag)]
    assert log.read_text() == "password\n"


def test_a_late_reply_after_a_timeout_goes_to_no_one(runner, tmp_path: Path) -> None:
    started, _ = runner
    flag = tmp_path / "flag"
    with pytest.raises(subprocess.TimeoutExpired):
        started.call(["wait-for", str(flag)], timeout=0.5)
    rc, out, _ = started.call(["touch", str(flag)], timeout=60)  # lets the first finish; its reply is dropped
    assert rc == 0 and json.loads(out)["argv"] == ["touch", str(flag)]
    rc, out, _ = started.call(["server", "list"], timeout=60)
    assert rc == 0 and json.loads(out)["argv"] == ["server", "list"]


def test_a_runner_that_never_answers_times_out(tmp_path: Path) -> None:
    sleeper = osc.Runner([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            sleeper.call(["server", "list"], timeout=0.5)
    finally:
        sleeper.close()
