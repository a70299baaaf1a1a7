"""A Ceph client beside the lab that keeps writing and reading a volume, the way a server's QEMU does
through librbd: a container of the storage image on the lab's management network, with the site's
ceph.conf and admin key, writing a 4 KiB block every half second and reading it back. What it saw (each
operation's time, any error, any block that read back wrong) tells whether the volume kept serving."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.dockerlab import LABEL, docker, unique

BLOCK = 4096
SLOTS = 64
OFFSET = 1 << 20  # past the test image's boot sector and partition table
SCRIPT = f"""
import json, os, rados, rbd, sys, time
cluster = rados.Rados(conffile="/etc/ceph/ceph.conf", name="client.admin", conf={{"keyring": "/io/keyring"}})
cluster.connect(timeout=60)
ioctx = cluster.open_ioctx("volumes")
image = rbd.Image(ioctx, sys.argv[1])
written = {{}}
n = 0
while not os.path.exists("/io/stop"):
    slot = n % {SLOTS}
    data = ("%08d" % n).encode() * ({BLOCK} // 8)
    began = time.monotonic()
    try:
        image.write(data, {OFFSET} + slot * {BLOCK})
        back = image.read({OFFSET} + slot * {BLOCK}, {BLOCK})
        ok = back == data
        error = None if ok else "read back other data"
        written[slot] = data
    except Exception as exc:
        ok, error = False, f"{{type(exc).__name__}}: {{exc}}"
    print(json.dumps({{"n": n, "s": round(time.monotonic() - began, 3), "ok": ok, "error": error}}), flush=True)
    n += 1
    time.sleep(max(0.0, 0.5 - (time.monotonic() - began)))
bad = [slot for slot, data in written.items() if image.read({OFFSET} + slot * {BLOCK}, {BLOCK}) != data]
print(json.dumps({{"final": True, "slots": len(written), "bad": bad}}), flush=True)
"""


class VolumeIO:
    """Start with the volume's id, stop for the report."""

    def __init__(self, lab: str, network_prefix: str, image: str, ceph_conf: str, admin_key: str, volume_id: str):
        self.container = unique(f"{lab}-volume-io")
        self.dir = Path(tempfile.mkdtemp(prefix="goldstack-volume-io-"))
        (self.dir / "ceph.conf").write_text(ceph_conf)
        (self.dir / "keyring").write_text(f"[client.admin]\n    key = {admin_key}\n")
        (self.dir / "io.py").write_text(SCRIPT)
        self.dir.chmod(0o755)
        docker("run", "-d", "--name", self.container, "--label", LABEL, "--network", f"{lab}_management",
               "--ip", f"{network_prefix}.250", "-v", f"{self.dir}:/io",
               "-v", f"{self.dir / 'ceph.conf'}:/etc/ceph/ceph.conf:ro", "--entrypoint", "python3", image, "/io/io.py",
               f"volume-{volume_id}")

    def stop(self) -> dict[str, Any]:
        (self.dir / "stop").write_text("")
        subprocess.run(["docker", "wait", self.container], capture_output=True, timeout=120)
        logs = docker("logs", self.container, check=False)
        docker("rm", "-f", self.container, check=False)
        ops = [json.loads(line) for line in logs.stdout.splitlines() if line.startswith("{")]
        final = next((o for o in ops if o.get("final")), {})
        steps = [o for o in ops if "n" in o]
        return {"operations": len(steps), "errors": [o for o in steps if not o["ok"]][:10],
                "slowest_s": max((o["s"] for o in steps), default=None), "final": final,
                "stderr": logs.stderr[-2000:]}
