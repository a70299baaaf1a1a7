"""Run several commands of one OpenStack console script with one import of its code.

A `*-manage` command spends most of its CPU importing the service's Python code (2-3 s of a core for
nova-manage), and a service's one-time chain (nova: api_db sync, map_cell0, create_cell, db sync) used to
pay it once per command. This runner imports the script's module once, then forks one child per command:
each child calls the script's entry point with that command's argv in a fresh process state (nothing
parsed, no connection opened), exactly as the console script would, and the chain stops at the first
command that fails.

It runs as the service's user with the firstboot package on PYTHONPATH (`python3 -m firstboot.forkrun SPEC`),
importing only firstboot.proc of it; SPEC is a JSON object:
{"entry": "nova.cmd.manage:main", "prog": "nova-manage", "preload": ["nova.objects:register_all"],
 "commands": [{"argv": ["api_db", "sync"], "ok": [0]}, ...]}
The exit status is the failing command's own, or 0; stderr names each command as it starts.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from collections.abc import Callable

from firstboot.proc import die_with_parent


def resolve(target: str) -> Callable[..., object] | None:
    """'module:function' → the function; 'module' → imported, None."""
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else None


def run_child(entry: Callable[..., object], argv: list[str]) -> int:
    """In the forked child: the console script's body, its exit status as a number."""
    sys.argv = argv
    try:
        result = entry()
    except SystemExit as done:
        result = done.code
    except BaseException:  # reported like the interpreter would, as exit status 1
        traceback.print_exc()
        return 1
    if result is None:
        return 0
    if isinstance(result, int):
        return result
    print(result, file=sys.stderr)
    return 1


def run_command(entry: Callable[..., object], argv: list[str]) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            die_with_parent()  # a fork does not inherit it: the chain dies with the agent, command and all
            if os.getppid() == parent:  # else the runner died before that
                status = run_child(entry, argv)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status & 0xFF)  # not the parent's atexit handlers
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def main(args: list[str]) -> int:
    if len(args) != 1:
        print("usage: python3 -m firstboot.forkrun SPEC_JSON (see the module's docstring)", file=sys.stderr)
        return 2
    spec = json.loads(args[0])
    entry = resolve(spec["entry"])
    if entry is None:
        print(f"forkrun: entry {spec['entry']!r} names no function (module:function)", file=sys.stderr)
        return 2
    for target in spec.get("preload", ()):
        loader = resolve(target)
        if loader is not None:
            loader()
    for command in spec["commands"]:
        argv = [spec["prog"], *command["argv"]]
        print(f"forkrun: {' '.join(argv)}", file=sys.stderr, flush=True)
        status = run_command(entry, argv)
        if status not in command.get("ok", [0]):
            print(f"forkrun: {' '.join(argv)} exited {status}", file=sys.stderr, flush=True)
            return status if status > 0 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
