"""python-openstackclient commands, many at once from one process on a controller (the lab checks' client).

A separate `openstack` process per command spends most of a second importing the client and asks
Keystone for a new token by password each time (a password hash, ~0.3 s of the controller's CPU). This
runner pays the imports once and authenticates by password once; then it forks a child per command, which
starts with the imports done and the token in its environment, so the checks' commands run side by side
without each starting a client of its own.

compose/osc.py sends this file's text to `python3 -c` in a controller and speaks its protocol: one JSON
object {"id", "argv"} per line on stdin; one JSON object {"id", "rc", "out", "err"} per line on stdout, in
the order the commands finish. It runs with the environment of /root/admin-openrc and uses only the
controller's own Python packages.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import selectors

PASSWORD_VARIABLES = ("OS_USERNAME", "OS_PASSWORD", "OS_USER_DOMAIN_NAME")
# Loaded once in the runner (best effort), not in every child: the command modules the lab checks use.
WARM_MODULES = ("openstackclient.compute.v2.server", "openstackclient.image.v2.image",
                "openstackclient.network.v2.network", "openstackclient.volume.v3.volume",
                "openstackclient.identity.v3.token", "openstackclient.common.module")
REFUSED = "HTTP 401"


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


def answer(auth: Auth, argv: list[str]) -> dict:
    """One command's reply; a token the cloud no longer accepts is dropped and the command run again with
    the password (`refused` tells the runner to drop its token too)."""
    rc, out, err = run(argv)
    refused = bool(rc != 0 and auth.token and REFUSED in err)
    if refused:
        auth.drop_token()
        rc, out, err = run(argv)
    return {"rc": rc, "out": out, "err": err, "refused": refused}


def warm_up() -> None:
    for name in WARM_MODULES:
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def start_child(auth: Auth, request: dict) -> int:
    """Fork a child that runs the command and writes its reply to a pipe; the pipe's read end."""
    readable, writable = os.pipe()
    if os.fork() == 0:
        os.close(readable)
        try:
            reply = {"id": request["id"], **answer(auth, request["argv"])}
        except BaseException as error:  # a child must always reply, then exit
            reply = {"id": request["id"], "rc": 1, "out": "", "err": f"{type(error).__name__}: {error}\n"}
        with os.fdopen(writable, "w") as pipe:
            pipe.write(json.dumps(reply))
        os._exit(0)
    os.close(writable)
    return readable


def main() -> None:
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # what a library prints on its own goes to stderr, never into the replies
    auth = Auth()
    warm_up()
    auth.ensure_token()  # before the first command (a cloud not answering yet: at the first command)
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ, "requests")
    pending = b""
    children: dict[int, tuple[object, bytearray]] = {}  # a child's pipe -> its request's id, its reply so far
    stdin_open = True
    while stdin_open or children:
        for key, _ in selector.select():
            if key.data == "requests":
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fd)
                    stdin_open = False
                    continue
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in filter(None, lines):
                    auth.ensure_token()
                    request = json.loads(line)
                    child = start_child(auth, request)
                    children[child] = (request["id"], bytearray())
                    selector.register(child, selectors.EVENT_READ, "reply")
                continue
            chunk = os.read(key.fd, 65536)
            if chunk:
                children[key.fd][1].extend(chunk)
                continue
            selector.unregister(key.fd)
            os.close(key.fd)
            request_id, text = children.pop(key.fd)
            reply = json.loads(text) if text else {"id": request_id, "rc": 1, "out": "",
                                                   "err": "the command's process ended without a reply\n"}
            if reply.pop("refused", False):
                auth.drop_token()
            replies.write(json.dumps(reply) + "\n")
            replies.flush()
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass


if __name__ == "__main__":
    main()
