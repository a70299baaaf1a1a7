"""The Galera health endpoint's server: what it reports as an error and what it lets pass."""

from __future__ import annotations

from pathlib import Path

from firstboot.health import HealthServer, make_handler


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
