"""`./gs lab tempest`: OpenStack's own integration suite (Tempest) against the running lab.

Tempest and python-tempestconf are pinned here (PINS) and live in their own venv, build/tempest-venv: their
dependencies are OpenStack's, not this project's. The workspace is build/lab/NAME/tempest. Its tempest.conf is
written by discover-tempest-config from the lab's admin credentials, with the site CA (every request is
verified; nothing runs `--insecure`) and the lab's own test image (nothing downloaded). Tempest's saved state is
taken before a run and `tempest cleanup` removes what the run left behind. The summary counts passed, failed
and skipped tests, the skips grouped by reason; the subunit stream and summary.json stay in the workspace.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compose import testimage
from compose.site import TOP, Lab, LabError

PINS = ("tempest==47.0.0", "python-tempestconf==3.5.4")
VENV = TOP / "build" / "tempest-venv"
FLAVOR_MIN_MEM_MB = 64  # the test image needs next to nothing; small flavors keep the guests cheap under TCG


def lab_settings(lab: Lab) -> list[str]:
    """tempest.conf settings discover-tempest-config cannot find: Horizon (not in the catalog) and what the
    lab does not offer yet (issue 27: guests Tempest can log in to, volume backups)."""
    return ["service_available.horizon", "true", "dashboard.dashboard_url", f"https://{lab.inventory()['vip']}/horizon/",
            "dashboard.disable_ssl_certificate_validation", "false",
            "validation.run_validation", "false", "compute-feature-enabled.console_output", "true",
            "volume-feature-enabled.backup", "false"]

# Run by the venv's Python on the subunit stream: each test's id, status and skip reason, as JSON lines.
READ_SUBUNIT = """
import json, sys
import subunit, testtools
def emit(test):
    reason = test["details"].get("reason")
    print(json.dumps({"id": test["id"], "status": test["status"],
                      "reason": reason.as_text() if reason is not None else ""}))
result = testtools.StreamToDict(emit)
result.startTestRun()
subunit.ByteStreamToStreamResult(sys.stdin.buffer, non_subunit_name="stdout").run(result)
result.stopTestRun()
"""


def ensure_venv(say: Callable[[str], None]) -> Path:
    """The venv with PINS installed (made, or remade when PINS change); its bin directory."""
    stamp = VENV / "goldstack-pins"
    if stamp.exists() and stamp.read_text() == "\n".join(PINS):
        return VENV / "bin"
    say(f"installing {', '.join(PINS)} into {VENV.relative_to(TOP)}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    proc = subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *PINS], capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"could not install {' '.join(PINS)}: {proc.stderr.strip()[-1500:]}", 3)
    stamp.write_text("\n".join(PINS))
    return VENV / "bin"


def credentials(lab: Lab) -> dict[str, str]:
    """The admin openrc's OS_* variables, with the lab's copy of the site CA."""
    env = {}
    for line in lab.admin_openrc().splitlines():
        if line.startswith("export OS_") and "=" in line:
            key, value = line.removeprefix("export ").split("=", 1)
            env[key] = "".join(shlex.split(value))  # the openrc quotes each value for the shell
    env["OS_CACERT"] = str(lab.ca_file.resolve())
    env["SSL_CERT_FILE"] = env["OS_CACERT"]  # for the tests that verify with Python's default context (Horizon's)
    return env


def configure(lab: Lab, bin_dir: Path, workspace: Path, env: dict[str, str], say: Callable[[str], None]) -> Path:
    """tempest.conf for the lab, from discover-tempest-config (which also makes Tempest's flavors, image and
    users: `--create`)."""
    if not (workspace / ".stestr.conf").exists():  # a new workspace (or one whose making was cut short)
        shutil.rmtree(workspace, ignore_errors=True)
        # Registered in the lab's own list of workspaces, not the user's ~/.tempest.
        made = subprocess.run([str(bin_dir / "tempest"), "init", "--workspace-path",
                               str(workspace.parent / "tempest-workspaces.yaml"), str(workspace)],
                              capture_output=True, text=True)
        if made.returncode != 0:
            raise LabError(f"tempest init {workspace} failed: {made.stderr.strip()[-1500:]}")
        workspace.chmod(0o700)
    image = workspace / "goldstack-test.raw"
    image.write_bytes(testimage.disk())
    conf = workspace / "etc" / "tempest.conf"
    say("writing tempest.conf with discover-tempest-config")
    proc = subprocess.run([str(bin_dir / "discover-tempest-config"), "--create", "--out", str(conf),
                           "--image", str(image), "--image-disk-format", "raw",
                           "--flavor-min-mem", str(FLAVOR_MIN_MEM_MB), "--flavor-min-disk", "1",
                           "--os-cacert", env["OS_CACERT"],
                           "identity.ca_certificates_file", env["OS_CACERT"],
                           "identity.disable_ssl_certificate_validation", "false", *lab_settings(lab)],
                          env=env, cwd=workspace, capture_output=True, text=True, timeout=900)
    (workspace / "discover-tempest-config.log").write_text(proc.stdout + proc.stderr)
    if conf.exists():
        conf.chmod(0o600)  # it holds the admin's and Tempest's users' passwords
    if proc.returncode != 0:
        raise LabError(f"discover-tempest-config failed: {proc.stderr.strip()[-1500:]} "
                       f"(log: {workspace / 'discover-tempest-config.log'})")
    return conf


def summarise(bin_dir: Path, stream: bytes) -> dict[str, Any]:
    """Passed, failed and skipped tests (skips by reason) of a subunit v2 stream."""
    proc = subprocess.run([str(bin_dir / "python"), "-c", READ_SUBUNIT], input=stream, capture_output=True,
                          check=True)
    tests = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]
    counts = {status: sum(1 for t in tests if t["status"] == status) for status in ("success", "fail", "skip")}
    reasons = Counter(t["reason"] or "(no reason given)" for t in tests if t["status"] == "skip")
    return {"passed": counts["success"], "failed": counts["fail"], "skipped": counts["skip"],
            "failures": sorted(t["id"] for t in tests if t["status"] == "fail"),
            "skip_reasons": dict(reasons.most_common())}


def run(lab: Lab, selection: list[str], concurrency: int, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Configure Tempest for the lab, run `selection` (tempest run's own options), clean up; the summary."""
    lab.require_up("Tempest")
    bin_dir = ensure_venv(say)
    workspace = lab.dir / "tempest"
    env = {**os.environ, **credentials(lab)}
    configure(lab, bin_dir, workspace, env, say)
    subprocess.run([str(bin_dir / "tempest"), "cleanup", "--init-saved-state"], cwd=workspace, env=env,
                   capture_output=True)
    say(f"tempest run {' '.join(selection)} --concurrency {concurrency}")
    started = time.monotonic()
    # Tempest's own progress (a line per test) goes to `say` and the log; the stream is read back from its
    # repository afterwards.
    with open(workspace / "tempest-run.log", "w") as log, subprocess.Popen(
            [str(bin_dir / "tempest"), "run", *selection, "--concurrency", str(concurrency)], cwd=workspace,
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as running:
        for line in running.stdout:
            log.write(line)
            say(line.rstrip())
    seconds = round(time.monotonic() - started, 1)
    stream = subprocess.run([str(bin_dir / "stestr"), "last", "--subunit"], cwd=workspace, capture_output=True).stdout
    (workspace / "results.subunit").write_bytes(stream)
    cleanup = subprocess.run([str(bin_dir / "tempest"), "cleanup"], cwd=workspace, env=env, capture_output=True,
                             text=True)
    summary = {"selection": selection, "concurrency": concurrency, "seconds": seconds, "pins": list(PINS),
               **summarise(bin_dir, stream), "cleanup": "done" if cleanup.returncode == 0 else
               cleanup.stderr.strip()[-500:], "workspace": str(workspace)}
    (workspace / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def report(summary: dict[str, Any]) -> str:
    lines = [f"tempest {' '.join(summary['selection'])}: {summary['passed']} passed, {summary['failed']} failed, "
             f"{summary['skipped']} skipped in {summary['seconds']:.0f}s"]
    lines += [f"  failed: {test}" for test in summary["failures"]]
    lines += [f"  skipped {n}: {reason}" for reason, n in summary["skip_reasons"].items()]
    lines.append(f"  subunit stream, log and summary.json in {summary['workspace']}")
    return "\n".join(lines)
