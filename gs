#!/usr/bin/env bash
# Goldstack's one entry point on a development or CI host (Debian 12 or 13).
# It installs what it needs itself, then runs: ./gs help
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"
TOP=$PWD
VENV=$TOP/.venv

log() { printf '[gs] %s\n' "$*" >&2; }

need_root_for_apt() {
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then echo sudo; else
      log "installing Debian packages needs root (or sudo): $*"; exit 2; fi
  fi
}

# ensure_debs PKG...: install the Debian packages that are missing (one apt-get update per run).
ensure_debs() {
  local missing=() p
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local SUDO; SUDO=$(need_root_for_apt "${missing[*]}")
  log "installing Debian packages: ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_venv: a virtualenv with the project's dependencies and dev tools (from pyproject.toml), rebuilt when
# pyproject.toml changes. The checkout itself is put on the venv's path (a .pth file), not built and installed:
# its packages are used where they are.
ensure_venv() {
  local stamp; stamp=$(sha256sum pyproject.toml | cut -c1-16)
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.gs-stamp" 2>/dev/null)" = "$stamp" ]; then return 0; fi
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    ensure_debs python3-venv
  fi
  log "preparing $VENV (pyproject changed or first run)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/python" - > "$VENV/requirements.txt" <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["dev"]))
PY
  "$VENV/bin/pip" install -q -r "$VENV/requirements.txt"
  echo "$TOP" > "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/goldstack.pth"
  echo "$stamp" > "$VENV/.gs-stamp"
}

# ensure_docker: a Docker engine answering on this host (installed and started if needed).
ensure_docker() {
  ensure_debs docker.io debootstrap
  if docker info >/dev/null 2>&1; then return 0; fi
  log "starting dockerd (log: /var/log/goldstack-dockerd.log)"
  local SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  # An engine killed without its shutdown (a host reset, SIGKILL) leaves its pid file, and dockerd refuses to
  # start while it exists: removed when its process is not a running dockerd.
  local pid; pid=$(cat /var/run/docker.pid 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != dockerd ]; then
    log "removing /var/run/docker.pid left by a dockerd that is gone (pid $pid)"
    $SUDO rm -f /var/run/docker.pid
  fi
  $SUDO sh -c 'nohup dockerd --iptables=false >/var/log/goldstack-dockerd.log 2>&1 &'
  local i
  for i in $(seq 1 60); do docker info >/dev/null 2>&1 && return 0; sleep 1; done
  log "dockerd did not answer within 60 s; see /var/log/goldstack-dockerd.log"; exit 1
}

# ensure_image_tools: what the qcow2 build and its boot test need (diskimage-builder itself is in the venv).
ensure_image_tools() {
  ensure_debs sudo debootstrap qemu-utils qemu-system-x86 ovmf fdisk gdisk kpartx dosfstools mtools grub-efi-amd64-bin \
    e2fsprogs xz-utils
}

usage() {
  cat <<'USAGE'
usage: ./gs COMMAND [ARGS...]

  build --role ROLE [...]      build golden images (python build.py --help); starts Docker if needed
  seed INVENTORY [--out DIR]   make per-node seeds (NoCloud dir + ISO, ConfigDrive, node.yaml) and the
                               site secrets file from an inventory; see docs/seed.md
  agent ARGS...                run the first-boot agent (python -m firstboot ARGS...); `agent steps --role R`
                               shows a role's steps in order
  lab COMMAND [...]            the compose lab on this machine (./gs lab --help; docs/lab.md):
      up [--controllers 1|3]     build missing images, make seeds, start 3 (or 1) controllers, a compute
                                 and a storage node, and follow their agents to a status table
      check [--failover]         the end-to-end checks: token, image, compute, network, volume, a server
                                 with the volume attached, Horizon in Chromium (failover: kill the VIP holder)
      status | logs NODE         each node's agent step and health | a node's agent journal
      timeline [--out FILE]      where the minutes went: each node's agent runs as a chart (SVG or PNG)
      openrc                     admin credentials for the VIP: eval "$(./gs lab openrc)"
      add compute|storage        a new node joins the running lab (docs/lifecycle.md)
      reconfigure --set K=V      roll a changed option or override out, restarting only what changed
      roll [--tag T] [--role R]  replace every node's container by one of a new image, one at a time,
                                 the cloud serving throughout (servers live-migrated, Ceph noout)
      down | destroy             remove the containers (volumes kept) | remove everything of the lab
  test [PYTEST ARGS...]        lint (ruff) and run the whole test suite, installing what it needs
                               (-m "not heavy": only the fast tests)
  bench                        run the benchmarks in bench/ and write JSON to bench/results/
  help                         this text

Everything is installed on first use: a venv in .venv from pyproject.toml, and Debian packages.
USAGE
}

cmd=${1:-help}; shift || true
case "$cmd" in
  build)
    ensure_venv
    ensure_docker
    ensure_image_tools
    exec "$VENV/bin/python" build.py "$@" ;;
  seed)
    ensure_venv
    ensure_debs openssh-client  # ssh-keygen makes the site's SSH keys
    exec "$VENV/bin/python" -m firstboot seed "$@" ;;
  agent)
    ensure_venv
    exec "$VENV/bin/python" -m firstboot "$@" ;;
  lab)
    ensure_venv
    ensure_docker
    ensure_debs docker-compose openssh-client
    # The Horizon check drives a real browser, which trusts the site CA through an NSS database (certutil).
    case " $* " in *" check "*) ensure_debs chromium chromium-driver libnss3-tools ;; esac
    exec "$VENV/bin/python" -m compose.lab "$@" ;;
  test)
    ensure_venv
    ensure_docker
    ensure_image_tools
    ensure_debs docker-compose chromium chromium-driver libnss3-tools openssh-client tcpdump
    log "ruff check"
    "$VENV/bin/ruff" check .
    log "pytest"
    exec "$VENV/bin/python" -m pytest "$@" ;;
  bench)
    ensure_venv
    ensure_docker
    ensure_image_tools
    ensure_debs docker-compose chromium chromium-driver libnss3-tools openssh-client
    mkdir -p bench/results
    for b in bench/*.py; do
      name=$(basename "$b" .py)
      case "$name" in __init__|common) continue ;; esac
      log "bench $name"; "$VENV/bin/python" -m "bench.$name" --out "bench/results/$name.json"
    done ;;
  help|-h|--help) usage ;;
  *) usage >&2; exit 2 ;;
esac
