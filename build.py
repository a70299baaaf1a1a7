#!/usr/bin/env python3
"""Build Goldstack golden images: `python build.py --role compute`.

What a role contains is defined once, by the diskimage-builder elements in elements/. The docker
format applies those same elements in cached layers (base -> common -> OpenStack -> role -> agent)
on a debootstrapped Debian base, so no registry is needed; the qcow2 format builds a bootable disk with
diskimage-builder (imagebuild/).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from imagebuild import DEFAULT_MIRROR, FORMATS, ROLES, TOP, BuildFailed, Prerequisite
from imagebuild.artifact import Artifact
from imagebuild.docker import build_docker
from imagebuild.qcow2 import build_qcow2
from imagebuild.report import check_prerequisites, plan_text, summary

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PREREQ = 0, 1, 2, 3
EXIT_CODES = """\
exit codes:
  0  every artifact built       1  a build failed (its log is named)
  2  bad command line           3  a prerequisite is missing (nothing was built)
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python build.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build Goldstack golden images of a role: a container image in the local Docker engine "
                    "(for the compose lab) or a bootable qcow2 (for VMs and bare metal). What each role "
                    "contains is defined once in elements/.",
        epilog="examples:\n  python build.py --role compute\n  python build.py --role all --dry-run\n"
               "  python build.py --role controller --tag dev --no-cache\n\n" + EXIT_CODES)
    parser.add_argument("--role", required=True, choices=(*ROLES, "all"), help="which role image to build")
    parser.add_argument("--format", default="docker", choices=(*FORMATS, "all"),
                        help="docker (default) or qcow2 or all")
    parser.add_argument("--mirror", default=DEFAULT_MIRROR, help="Debian mirror (default %(default)s)")
    parser.add_argument("--output", type=Path, default=TOP / "build/images",
                        help="where manifests and disk images go (default build/images)")
    parser.add_argument("--tag", default="latest", help="image tag (default %(default)s)")
    parser.add_argument("--base-image", help="start from this image (e.g. debian:trixie) instead of debootstrap")
    parser.add_argument("--no-cache", action="store_true", help="rebuild every layer and the base image")
    parser.add_argument("--jobs", type=int, default=1, help="builds to run at once (default 1: 2-core hosts)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    parser.add_argument("--log", type=Path, help="build log (default OUTPUT/build.log)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be 1 or more")
    args.output = args.output.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    roles = list(ROLES) if opts.role == "all" else [opts.role]
    formats = list(FORMATS) if opts.format == "all" else [opts.format]
    print(plan_text(roles, formats, opts), flush=True)
    if opts.dry_run:
        return EXIT_OK
    try:
        check_prerequisites(roles, formats, opts)
    except Prerequisite as exc:
        print(f"error: cannot build:\n{exc}", file=sys.stderr)
        return EXIT_PREREQ
    log = opts.log or opts.output / "build.log"
    log.write_text(f"goldstack build {dt.datetime.now().isoformat()}\n")
    print(f"build log: {log}", flush=True)
    artifacts: list[Artifact] = []
    failures: list[str] = []
    jobs = [(r, f) for r in roles for f in formats]
    builders = {"docker": build_docker, "qcow2": build_qcow2}
    # The first job makes the shared base (image or package cache) before parallel builds race for it.
    with ThreadPoolExecutor(max_workers=min(opts.jobs, len(jobs))) as pool:
        for batch in (jobs[:1], jobs[1:]):
            futures = {pool.submit(builders[fmt], role, opts, log): (role, fmt) for role, fmt in batch}
            for future, (role, fmt) in futures.items():
                try:
                    artifacts.append(future.result())
                except (BuildFailed, subprocess.CalledProcessError) as exc:
                    failures.append(f"{role}/{fmt}: {exc}")
    print("\n" + summary(artifacts, failures))
    record = {"artifacts": [{"role": a.role, "format": a.fmt, "name": a.name, "size_bytes": a.size_bytes,
                             "seconds": round(a.seconds, 1), "manifest": str(a.sbom) if a.sbom else None}
                            for a in artifacts], "failures": failures}
    (opts.output / "build-summary.json").write_text(json.dumps(record, indent=2) + "\n")
    return EXIT_FAILED if failures else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
