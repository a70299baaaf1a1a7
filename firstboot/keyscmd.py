"""`goldstack-firstboot keys ...`: the key sets' status, rotation and follower (firstboot.keysets)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from firstboot import catalog, document, errors, keysets, mysql, proc
from firstboot.files import under_root
from firstboot.logsetup import REDACT, setup
from firstboot.sources.base import NODE_FILE

WAIT_SECONDS = 60


def _document(args: argparse.Namespace) -> document.Document:
    path = under_root(args.root, NODE_FILE)
    try:
        doc = document.load_text(document.text_of(path.read_bytes(), str(path)), str(path))
    except OSError as exc:
        raise errors.UsageError(f"no node document at {path} ({exc.strerror}): run this on a controller") from None
    if doc.role != catalog.CONTROLLER:
        raise errors.UsageError(f"{doc.node.name} is a {doc.role}: key sets live on the controllers")
    REDACT.add(doc.private_strings)
    return doc


def _reports_database_errors(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except mysql.MysqlError as exc:
            print(f"error: the key sets cannot be read from the local MariaDB: {exc}", file=sys.stderr)
            return errors.EXIT_STEP_FAILED

    return run


@_reports_database_errors
def cmd_status(args: argparse.Namespace) -> int:
    doc = _document(args)
    sets, held = keysets.read(), keysets.node_generations()
    controllers = [c.name for c in doc.controllers]
    report = {name: {"generation": gen, "keys": len(keys), "rotated": time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                                                                      time.gmtime(rotated)),
                     "nodes": {n: held.get(n, {}).get(name) for n in controllers}}
              for name, (gen, keys, rotated) in sorted(sets.items())}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, r in report.items():
            behind = [f"{n} ({g})" for n, g in r["nodes"].items() if g != r["generation"]]
            where = (f"behind: {', '.join(behind)}" if behind
                     else f"every controller holds it ({', '.join(controllers)})")
            print(f"{name:<11} generation {r['generation']:<4} {r['keys']} keys, rotated {r['rotated']}; {where}")
    in_step = all(g == r["generation"] for r in report.values() for g in r["nodes"].values())
    return errors.EXIT_OK if in_step else errors.EXIT_STEP_FAILED


@_reports_database_errors
def cmd_rotate(args: argparse.Namespace) -> int:
    doc = _document(args)
    done, generation = keysets.rotate(args.set, if_due=args.if_due)
    if not done:
        print(f"{args.set}: not rotated ({'not due yet' if args.if_due else 'another controller rotated it first'}); "
              f"generation {generation}")
        return errors.EXIT_OK
    print(f"{args.set}: rotated to generation {generation}")
    if not args.wait and args.set != "credential":
        return errors.EXIT_OK
    controllers = [c.name for c in doc.controllers]
    behind = keysets.wait_held(args.set, generation, controllers, args.wait or WAIT_SECONDS)
    if behind:
        print(f"{args.set}: {', '.join(behind)} do not hold generation {generation} after {args.wait:.0f}s; "
              "they take it when they answer again (goldstack-keys.service)", file=sys.stderr)
        return errors.EXIT_STEP_FAILED
    print(f"{args.set}: every controller holds generation {generation}")
    if args.set == "credential":
        # Stored credentials are still encrypted with the former primary: re-encrypt them with the new one.
        proc.run(["runuser", "-u", keysets.OWNER, "--", "keystone-manage", "credential_migrate"], timeout=600)
        print("credential: stored credentials re-encrypted with the new primary key")
    return errors.EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    setup(args.verbose)
    keysets.watch(_document(args).node.name)
    return errors.EXIT_OK


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("keys", "keystone's key sets in Galera: status, rotation, the follower",
            "keystone's Fernet and credential keys live in Galera; each controller's goldstack-keys.service "
            "writes them into its repository within seconds of a change, and a timer rotates the Fernet keys "
            "daily. Run on a controller.",
            "examples:\n  goldstack-firstboot keys status\n  goldstack-firstboot keys rotate fernet\n"
            "  goldstack-firstboot keys rotate credential   (re-encrypts the stored credentials afterwards)")
    sub = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    st = sub.add_parser("status", help="each set's generation, and the generation each controller holds "
                        "(exit 1 when one is behind)")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)
    rot = sub.add_parser("rotate", help="rotate a key set once (the first controller to try wins)")
    rot.add_argument("set", choices=sorted(catalog.KEY_SETS))
    rot.add_argument("--if-due", action="store_true", help="only when the last rotation is older than the "
                     "set's period (what the timer runs)")
    rot.add_argument("--wait", type=float, default=WAIT_SECONDS,
                     help="seconds to wait for every controller to hold the new keys (0: do not wait; default "
                          "%(default)s)")
    rot.set_defaults(func=cmd_rotate)
    wt = sub.add_parser("watch", help="follow the database for ever (goldstack-keys.service)")
    wt.add_argument("-v", "--verbose", action="store_true")
    wt.set_defaults(func=cmd_watch)
    for action in (st, rot, wt):
        action.add_argument("--root", type=Path, default=Path("/"), help="read the node document under this "
                            "directory instead of /")

