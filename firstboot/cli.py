"""`python -m firstboot`: the first-boot agent's command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from firstboot import agent, document, errors, keyscmd, render, seed, sources
from firstboot.catalog import PORTS
from firstboot.files import apply_files
from firstboot.logsetup import REDACT, setup
from firstboot.sources.metadata_http import DEFAULT_URL
from firstboot.state import DEFAULT_PATH, StateStore, default_path
from firstboot.status import as_json, as_table

DESCRIPTION = """\
Goldstack first-boot agent. On a node's first boot (and every boot after) it reads the node
document from metadata, validates it, renders the role's configuration, and runs the role's
steps in order; each step is skipped when already done, so runs are safe to repeat.
"""
EXIT_CODES = """\
exit codes:
  0  success             1  a step failed (see `status`)     2  bad command line
  3  invalid document or inventory (nothing was written)     4  no metadata found
  5  another agent run holds the lock
"""


def _source_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where the document comes from")
    g.add_argument("--source", choices=sources.ORDER,
                   help="read only this source (default: try " + " > ".join(sources.ORDER) + ")")
    g.add_argument("--seed", type=Path, help="NoCloud or ConfigDrive directory or ISO to read (with "
                   "--source nocloud/configdrive)")
    g.add_argument("--metadata-url", default=DEFAULT_URL, help="metadata service base URL (default %(default)s)")
    g.add_argument("--document", type=Path, help="a node document file (implies --source file)")


def _source_options(args: argparse.Namespace) -> tuple[sources.SourceOptions, str | None]:
    opts = sources.SourceOptions(root=args.root, seed=args.seed, metadata_url=args.metadata_url, file=args.document)
    return opts, ("file" if args.document and not args.source else args.source)


def cmd_run(args: argparse.Namespace) -> int:
    setup(args.verbose)
    opts, only = _source_options(args)
    # Under another --root only the steps that write files make sense: the others act on this host's services.
    until = args.until or (None if args.root == Path("/") else "config")
    result = agent.run(agent.RunOptions(opts, only, args.state, set_owner=not args.no_chown, until=until))
    return errors.EXIT_OK if result.ok else errors.EXIT_STEP_FAILED


def _load(text: str, source: str) -> document.Document:
    """A document every command reads alike: valid, and naming only steps its role has (options.stop_after)."""
    doc = document.load_text(text, source)
    agent.plan_of(agent.ALL_STEPS, doc, None, source)
    return doc


def cmd_validate(args: argparse.Namespace) -> int:
    if args.file:
        text = sys.stdin.read() if str(args.file) == "-" else _read(args.file)
        found = sources.Found("file", str(args.file), text)
    else:
        opts, only = _source_options(args)
        found = sources.discover(opts, only)
    doc = _load(found.text, f"{found.source} document ({found.where})")
    print(f"valid: node {doc.node.name} ({doc.role}) of cluster {doc.cluster}: {len(doc.controllers)} "
          f"controller(s), {len(doc.computes)} compute, {len(doc.storages)} storage; "
          f"{len(doc.secrets)} secrets; from {found.source} ({found.where})")
    return errors.EXIT_OK


def _read(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise errors.InvalidInput(str(path), [errors.FieldProblem("(file)", f"cannot be read: {exc.strerror}")]) \
            from None
    return document.text_of(data, str(path))


def cmd_render(args: argparse.Namespace) -> int:
    doc = _load(_read(args.document), str(args.document))
    facts = render.Facts(management_interface=args.interface, virt_type=args.virt_type)
    started = time.perf_counter()
    tree = render.render_tree(doc, facts)
    report = apply_files(tree.values(), args.out, set_owner=False)
    print(f"rendered {len(tree)} files for {doc.node.name} ({doc.role}) into {args.out} in "
          f"{(time.perf_counter() - started) * 1000:.0f} ms: {len(report.written)} written, "
          f"{len(report.unchanged)} unchanged")
    for path in sorted(tree):
        f = tree[path]
        print(f"  {f.mode:04o} {f.owner}:{f.group:<10} {path}")
    return errors.EXIT_OK


def cmd_changes(args: argparse.Namespace) -> int:
    import json

    from firstboot import changes

    text = sys.stdin.read() if str(args.document) == "-" else _read(args.document)
    source = "document from standard input" if str(args.document) == "-" else str(args.document)
    doc = _load(text, source)
    REDACT.add(doc.private_strings)
    found = changes.of(doc, args.root, StateStore(default_path(args.root, args.state)), source,
                       owners=not args.no_chown)
    if args.json:
        print(json.dumps(found.as_dict(), indent=2))
    elif not found.files:
        print(f"{found.node}: nothing would change")
    else:
        print(f"{found.node} ({found.role}): {len(found.files)} files would change; a run would restart: "
              f"{', '.join(found.units) or 'nothing'}")
        print("\n".join(f"  {path}" for path in found.files))
    return errors.EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    state = StateStore(default_path(args.root, args.state))
    print(as_json(state, args.root) if args.json else as_table(state, args.root))
    failed = state.data["agent"].get("status") == "failed"
    return errors.EXIT_STEP_FAILED if failed else errors.EXIT_OK


def cmd_seed(args: argparse.Namespace) -> int:
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    started = time.perf_counter()
    result = seed.generate(args.inventory, args.out, args.secrets, formats)
    print(f"seeds for {len(result)} node(s) in {args.out} ({time.perf_counter() - started:.1f}s). Seeds hold "
          "secrets: keep them private (files are 0600).")
    return errors.EXIT_OK


def cmd_units(args: argparse.Namespace) -> int:
    from firstboot import catalog

    roles = catalog.ROLES if args.all else (args.role,)
    units = sorted({u for service in catalog.UNITS for role in roles for u in catalog.units_of(service, role)})
    print("\n".join(units))
    return errors.EXIT_OK


def cmd_steps(args: argparse.Namespace) -> int:
    from firstboot import catalog, reference

    if args.markdown:
        print(reference.steps_table(args.role))
        return errors.EXIT_OK
    print("\n\n".join(reference.steps_text(r) for r in ((args.role,) if args.role else catalog.ROLES)))
    return errors.EXIT_OK


def cmd_galera_health(args: argparse.Namespace) -> int:
    from firstboot import health

    setup(args.verbose)
    health.serve(args.bind, args.port, args.node, args.root)
    return errors.EXIT_OK


def cmd_galera_bootstrap(args: argparse.Namespace) -> int:
    from firstboot import galera_local
    from firstboot.files import atomic_write, under_root

    flag = under_root(args.root, galera_local.FORCE_FILE)
    if args.undo:
        flag.unlink(missing_ok=True)
        print(f"removed {galera_local.FORCE_FILE}: this node bootstraps only by the automatic rules again")
        return errors.EXIT_OK
    if not args.yes:
        print("error: this makes THIS node start a new Primary component even if peers are unreachable. Transactions "
              "committed only on other nodes are lost if they were ahead. Re-run with --yes to confirm.",
              file=sys.stderr)
        return errors.EXIT_USAGE
    atomic_write(flag, f"requested {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode(), 0o600)
    print(f"wrote {galera_local.FORCE_FILE}: the running (or next) agent bootstraps Galera from this node, "
          "then removes the flag. Start it with: systemctl restart goldstack-firstboot")
    return errors.EXIT_OK


def cmd_tasks(args: argparse.Namespace) -> int:
    import json

    from firstboot import mysql, runonce

    try:
        records = runonce.read_all()
        history = runonce.history() if args.history else []
    except mysql.MysqlError as exc:
        print(f"error: cannot read the run-once records from the local MariaDB: {exc}", file=sys.stderr)
        return errors.EXIT_STEP_FAILED
    if args.json:
        print(json.dumps({"tasks": [r.__dict__ for r in records], "history": history}, indent=2))
        return errors.EXIT_OK
    print(f"{'TASK':<22} {'STATE':<8} {'OWNER':<12} {'ATTEMPTS':>8}  {'VERSION':<36} DETAIL")
    for r in records:
        print(f"{r.task:<22} {r.state:<8} {r.owner:<12} {r.attempts:>8}  {r.version[:36]:<36} {(r.detail or '')[:60]}")
    for h in history:
        print(f"  {h['at']}  {h['task']:<22} {h['event']:<9} {h['owner']:<12} {h['detail'] or ''}")
    return errors.EXIT_OK


AddCommand = Callable[..., argparse.ArgumentParser]


def _agent_commands(add: AddCommand) -> None:
    """What runs on a node: the agent itself and the views of what it does."""
    p = add("run", "run the first-boot steps (what goldstack-firstboot.service does)",
            "Find the node document, validate it, and run every step of the node's role that is not done "
            "yet. Safe to repeat: a second run after success does nothing; a run that was killed resumes.",
            "examples:\n  python -m firstboot run\n  python -m firstboot run --source nocloud --seed /dev/sr0\n"
            "  python -m firstboot run --document /etc/goldstack/node.yaml")
    _source_args(p)
    p.add_argument("--state", type=Path, help=f"state file (default {DEFAULT_PATH})")
    p.add_argument("--no-chown", action="store_true", help="do not set owners (previews as non-root)")
    p.add_argument("--until", metavar="STEP", help="stop after this step (default with --root: config, since "
                   "later steps start services on this host)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=cmd_run)

    p = add("validate", "check a node document without applying anything",
            "Parse and validate a node document and print a one-line summary, or every problem with the field "
            "it is in. With no FILE, the document is looked up in the metadata sources like `run` does.",
            "examples:\n  python -m firstboot validate build/lab/ctl1/node.yaml\n"
            "  python -m firstboot validate --source configdrive")
    p.add_argument("file", nargs="?", type=Path, help="the document (YAML or JSON; - for standard input)")
    _source_args(p)
    p.set_defaults(func=cmd_validate)

    p = add("render", "render a document's config tree into a directory (preview)",
            "Render every configuration file of the document's role into OUT, as the agent would under /, "
            "without setting owners. Useful to review what a node will get.",
            "example:\n  python -m firstboot render --document build/lab/ctl1/node.yaml --out /tmp/ctl1")
    p.add_argument("--document", type=Path, required=True, help="the node document")
    p.add_argument("--out", type=Path, required=True, help="directory to write the tree into")
    p.add_argument("--interface", default="eth0", help="management interface to assume (default %(default)s)")
    p.add_argument("--virt-type", choices=("kvm", "qemu"), default="qemu", help="libvirt virt_type to assume")
    p.set_defaults(func=cmd_render)



def _inspect_commands(add: AddCommand) -> None:
    """What a node would do or did: a new document's changes, the steps, the state, the units."""
    p = add("changes", "show what a new node document would change here, without changing anything",
            "Validate a new document for this node, refuse it if it changes what the node is (cluster, name, "
            "role, Ceph cluster), and list the files a run would rewrite and the units it would restart. "
            "Nothing is written. A reconfiguration reads it to take the node's services out of rotation "
            "before the run.",
            "examples:\n  goldstack-firstboot changes --document new-node.yaml\n"
            "  goldstack-firstboot changes --document - --json < new-node.yaml")
    p.add_argument("--document", type=Path, required=True, help="the new document (- for standard input)")
    p.add_argument("--state", type=Path, help=f"state file (default {DEFAULT_PATH})")
    p.add_argument("--no-chown", action="store_true", help="compare content and mode only (a tree written by "
                   "`run --no-chown`)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_changes)

    p = add("status", "show what the agent did: each step's status, times and errors",
            "Print the agent's recorded state: one row per step with its status, run count, start time, "
            "duration and detail or error.", "examples:\n  python -m firstboot status\n"
            "  python -m firstboot status --json")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--state", type=Path, help=f"state file (default {DEFAULT_PATH})")
    p.set_defaults(func=cmd_status)

    p = add("steps", "show a role's first-boot steps in order: what each follows and what it does",
            "Print the steps the agent runs for a role, numbered in the order its log numbers them, with the "
            "steps each one comes after and what it does. A step starts as soon as every step it comes after "
            "is done, so steps on different lines run side by side. With no --role, every role's.",
            "examples:\n  python -m firstboot steps --role controller\n  python -m firstboot steps --markdown")
    p.add_argument("--role", choices=document.ROLES, help="one role (default: every role)")
    p.add_argument("--markdown", action="store_true", help="a Markdown table (the one in docs/agent.md)")
    p.set_defaults(func=cmd_steps)

    p = add("units", "list the systemd units the agent manages for a role",
            "Print the systemd units of a role's services, one per line, from the agent's catalog. Image "
            "builds use it to keep these units disabled until the agent has configured them.",
            "examples:\n  python -m firstboot units --role compute\n  python -m firstboot units --all")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--role", choices=document.ROLES)
    which.add_argument("--all", action="store_true", help="every role's units")
    p.set_defaults(func=cmd_units)


def _site_commands(add: AddCommand) -> None:
    """What an operator runs for a whole site."""
    p = add("seed", "make per-node seeds and the site secrets from an inventory",
            "Validate a site inventory (cluster, vip, networks, nodes with role and addresses) and write, for "
            "each node, OUT/NODE/ with node.yaml, a NoCloud directory and ISO (label cidata) and a ConfigDrive "
            "tree and ISO (label config-2). Secrets are generated once into the secrets file (mode 0600) and "
            "reused by later runs; each node gets only the secrets its role needs.",
            "example:\n  python -m firstboot seed compose/lab-inventory.yaml --out build/lab")
    p.add_argument("inventory", type=Path, help="the site inventory (YAML); see docs/seed.md")
    p.add_argument("--out", type=Path, default=Path("build/seeds"), help="output directory (default %(default)s)")
    p.add_argument("--secrets", type=Path, help="secrets file (default: CLUSTER.secrets.yaml beside the inventory)")
    p.add_argument("--formats", default=",".join(seed.FORMATS),
                   help="comma-separated subset of " + ", ".join(seed.FORMATS) + " (default: all)")
    p.set_defaults(func=cmd_seed)


def _cluster_commands(add: AddCommand) -> None:
    """The controllers' clustering: Galera's health endpoint and override, the run-once tasks."""
    p = add("galera-health", "serve the Galera health endpoint (run by goldstack-galera-health.service)",
            "Serve GET / (200 when this node is Primary and Synced, else 503: HAProxy's check) and GET /galera "
            "(this node's state and last committed position as JSON: what peers' agents read to decide who "
            "bootstraps).", "example:\n  python -m firstboot galera-health --bind 10.0.0.11 --node ctl1")
    p.add_argument("--bind", required=True, help="address to listen on (the management address)")
    p.add_argument("--port", type=int, default=PORTS["galera-health"], help="port (default %(default)s)")
    p.add_argument("--node", required=True, help="this node's name, as in the node document")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")
    p.set_defaults(func=cmd_galera_health)

    p = add("galera-bootstrap", "operator override: make this node bootstrap Galera",
            "After a full outage where a controller never comes back, the agents wait rather than guess who "
            "holds the latest data. Run this on the controller you choose (the one with the highest seqno in "
            f"`curl http://NODE:{PORTS['galera-health']}/galera`) to let it bootstrap without the missing peer.",
            "examples:\n  goldstack-firstboot galera-bootstrap --yes && systemctl restart goldstack-firstboot\n"
            "  goldstack-firstboot galera-bootstrap --undo")
    p.add_argument("--yes", action="store_true", help="confirm: data committed only on absent nodes may be lost")
    p.add_argument("--undo", action="store_true", help="withdraw the request")
    p.set_defaults(func=cmd_galera_bootstrap)

    p = add("tasks", "show the cluster's run-once tasks (DB syncs, keystone bootstrap...) from Galera",
            "List each run-once task: state, which controller ran it, attempts, package version, detail. "
            "With --history, every claim, takeover, failure and completion.",
            "examples:\n  goldstack-firstboot tasks\n  goldstack-firstboot tasks --history --json")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--history", action="store_true", help="also print the event log")
    p.set_defaults(func=cmd_tasks)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m firstboot", description=DESCRIPTION, epilog=EXIT_CODES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str, description: str, epilog: str = "") -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=description, epilog=(epilog + "\n" + EXIT_CODES),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--root", type=Path, default=Path("/"), help="act on a tree under this directory "
                       "instead of / (for previews and tests)")
        return p

    for commands in (_agent_commands, _inspect_commands, _site_commands, _cluster_commands, keyscmd.add_commands):
        commands(add)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except errors.GoldstackError as exc:
        print(f"error: {REDACT(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
