"""python-openstackclient commands, many in one process on a controller (the lab checks' client).

A separate `openstack` process per command spends most of a second importing the client and asks
Keystone for a new token by password each time (a password hash, ~0.3 s of the controller's CPU). This
runner pays the imports once and authenticates by password once, then by that token. compose/osc.py sends
this file's text to `python3 -c` in a controller and speaks its protocol: one JSON list (the command's
arguments) per line on stdin, one JSON object {"rc", "out", "err"} per line on stdout. It runs with the
environment of /root/admin-openrc and uses only the controller's own Python packages.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys

PASSWORD_VARIABLES = ("OS_USERNAME", "OS_PASSWORD", "OS_USER_DOMAIN_NAME")


def run(argv: list[str]) -> tuple[int, str, str]:
    from openstackclient import shell

    logging.getLogger().handlers.clear()  # each run adds its own console handler
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = shell.OpenStackShell().run(argv)
        except SystemExit as error:
            rc = error.code if isinstance(error.code, int) else 1
        except Exception as error:  # reported to the caller like the CLI would
            rc = 1
            err.write(f"{type(error).__name__}: {error}\n")
    return rc, out.getvalue(), err.getvalue()


class Auth:
    """The password from the environment until a token is issued, then that token."""

    def __init__(self) -> None:
        self.password = {k: os.environ[k] for k in PASSWORD_VARIABLES if k in os.environ}
        self.token = ""

    def ensure_token(self) -> None:
        if self.token:
            return
        rc, out, _ = run(["token", "issue", "-f", "value", "-c", "id"])
        if rc == 0 and out.strip():
            self.token = out.strip()
            for key in self.password:
                os.environ.pop(key, None)
            os.environ.update(OS_AUTH_TYPE="v3token", OS_TOKEN=self.token)

    def drop_token(self) -> None:
        self.token = ""
        os.environ.pop("OS_TOKEN", None)
        os.environ.pop("OS_AUTH_TYPE", None)
        os.environ.update(self.password)


def main() -> None:
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # what a library prints on its own goes to stderr, never into the replies
    auth = Auth()
    for line in sys.stdin:
        argv = json.loads(line)
        auth.ensure_token()
        rc, out, err = run(argv)
        if rc != 0 and auth.token and "HTTP 401" in err:  # token no longer accepted: password again
            auth.drop_token()
            rc, out, err = run(argv)
        replies.write(json.dumps({"rc": rc, "out": out, "err": err}) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
