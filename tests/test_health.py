"""The Galera health endpoint's server: what it reports as an error and what it lets pass."""

from __future__ import annotations

import threading
from pathlib import Path

import requests

from firstboot.health import HealthServer, ServingCache, make_handler


def test_a_check_that_hangs_up_early_leaves_no_traceback_but_a_real_error_does(capfd, tmp_path: Path):
    server = HealthServer(("127.0.0.1", 0), make_handler("ctl1", tmp_path))
    try:
        for error in (ConnectionResetError(104, "Connection reset by peer"), BrokenPipeError(32, "Broken pipe"),
                      ValueError("a real bug")):
            try:
                raise error
            except Exception:
                server.handle_error(None, ("127.0.0.1", 40000))
    finally:
        server.server_close()
    err = capfd.readouterr().err
    assert "ConnectionResetError" not in err and "BrokenPipeError" not in err, err
    assert "ValueError: a real bug" in err, err


def test_checks_within_a_second_share_one_probe_and_a_change_shows_after_it():
    answers = iter([(True, "Primary, Synced"), (False, "non-Primary, Joining")])
    probes, now = [], [100.0]

    def probe():
        probes.append(now[0])
        return next(answers)

    cached = ServingCache(probe, clock=lambda: now[0])
    assert cached() == (True, "Primary, Synced")
    now[0] += 0.9
    assert cached() == (True, "Primary, Synced") and len(probes) == 1  # three HAProxies, one mariadb query
    now[0] += 0.1
    assert cached() == (False, "non-Primary, Joining") and probes == [100.0, 101.0]


def test_haproxy_sees_the_cached_state_over_http(tmp_path: Path):
    state = [(True, "Primary, Synced")]
    server = HealthServer(("127.0.0.1", 0), make_handler("ctl1", tmp_path, serving=lambda: state[0]))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        assert requests.get(url, timeout=5).status_code == 200
        state[0] = (False, "MariaDB inactive")
        answer = requests.get(url, timeout=5)
        assert answer.status_code == 503 and "MariaDB inactive" in answer.text
    finally:
        server.shutdown()
        server.server_close()
