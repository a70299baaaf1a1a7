"""`python -m firstboot`: the first-boot agent's command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from firstboot import agent, document, errors, render, seed, sources
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
    result = agent.run(agent.RunOptions(opts, only, args.state, set_owner=not args.no_chown))
    return errors.EXIT_OK if result.ok else errors.EXIT_STEP_FAILED


def cmd_validate(args: argparse.Namespace) -> int:
    if args.file:
        text = sys.stdin.read() if str(args.file) == "-" else _read(args.file)
        found = sources.Found("file", str(args.file), text)
    else:
        opts, only = _source_options(args)
        found = sources.discover(opts, only)
    doc = document.load_text(found.text, f"{found.source} document ({found.where})")
    print(f"valid: node {doc.node.name} ({doc.role}) of cluster {doc.cluster}: {len(doc.controllers)} "
          f"controller(s), {len(doc.computes)} compute, {len(doc.storages)} storage; "
          f"{len(doc.secrets)} secrets; from {found.source} ({found.where})")
    return errors.EXIT_OK


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise errors.InvalidInput(str(path), [errors.FieldProblem("(file)", f"cannot be read: {exc.strerror}")]) \
            from None


def cmd_render(args: argparse.Namespace) -> int:
    doc = document.load_text(_read(args.document), str(args.document))
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


def cmd_status(args: argparse.Namespace) -> int:
    state = StateStore(default_path(args.root, args.state))
    print(as_json(state) if args.json else as_table(state))
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

    p = add("run", "run the first-boot steps (what goldstack-firstboot.service does)",
            "Find the node document, validate it, and run every step of the node's role that is not done "
            "yet. Safe to repeat: a second run after success does nothing; a run that was killed resumes.",
            "examples:\n  python -m firstboot run\n  python -m firstboot run --source nocloud --seed /dev/sr0\n"
            "  python -m firstboot run --document /etc/goldstack/node.yaml")
    _source_args(p)
    p.add_argument("--state", type=Path, help=f"state file (default {DEFAULT_PATH})")
    p.add_argument("--no-chown", action="store_true", help="do not set owners (previews as non-root)")
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

    p = add("status", "show what the agent did: each step's status, times and errors",
            "Print the agent's recorded state: one row per step with its status, run count, start time, "
            "duration and detail or error.", "examples:\n  python -m firstboot status\n"
            "  python -m firstboot status --json")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--state", type=Path, help=f"state file (default {DEFAULT_PATH})")
    p.set_defaults(func=cmd_status)

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

    p = add("units", "list the systemd units the agent manages for a role",
            "Print the systemd units of a role's services, one per line, from the agent's catalog. Image "
            "builds use it to keep these units disabled until the agent has configured them.",
            "examples:\n  python -m firstboot units --role compute\n  python -m firstboot units --all")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--role", choices=document.ROLES)
    which.add_argument("--all", action="store_true", help="every role's units")
    p.set_defaults(func=cmd_units)
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
