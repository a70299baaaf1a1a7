"""Every peer's name in /etc/hosts, so RabbitMQ node names and Galera peers resolve without DNS."""

from __future__ import annotations

from pathlib import Path

from firstboot.document import Document
from firstboot.steps.base import Context, Step

BEGIN = "# BEGIN goldstack peers (managed by goldstack-firstboot)"
END = "# END goldstack peers"
HOSTS = "/etc/hosts"


def managed_block(doc: Document) -> str:
    lines = [BEGIN]
    lines += [f"{n.management} {n.name}" for n in doc.all_nodes]
    if doc.vip_hostname:
        lines.append(f"{doc.vip} {doc.vip_hostname}")
    lines.append(END)
    return "\n".join(lines) + "\n"


def managed_names(doc: Document) -> set[str]:
    names = {n.name for n in doc.all_nodes}
    return names | ({doc.vip_hostname} if doc.vip_hostname else set())


def hosts_current(doc: Document, path: Path) -> bool:
    """The file names every peer as `doc` lists them, and no managed name otherwise."""
    if not path.exists():
        return False
    text = path.read_text()
    return replace_block(text, managed_block(doc), managed_names(doc)) == text


def replace_block(text: str, block: str, names: set[str] = frozenset()) -> str:
    """The managed block in place of the old one (or appended), and no other line naming a managed host:
    a container engine lists a node under each of its networks' addresses, and the first line wins, so the
    name could resolve to an address the node's services do not listen on (RabbitMQ's CLI, for one)."""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
    else:
        head, tail = text + ("" if text.endswith("\n") or not text else "\n"), ""

    def keep(line: str) -> bool:
        fields = line.split("#", 1)[0].split()
        return len(fields) < 2 or not set(fields[1:]) & names

    clean = ["".join(ln for ln in part.splitlines(keepends=True) if keep(ln)) for part in (head, tail)]
    return clean[0] + block + clean[1]


class HostsStep(Step):
    name = "hosts"
    description = "write every peer into /etc/hosts"

    def done(self, ctx: Context) -> bool:
        return hosts_current(ctx.doc, ctx.path(HOSTS))

    def run(self, ctx: Context) -> str:
        path = ctx.path(HOSTS)
        text = path.read_text() if path.exists() else "127.0.0.1 localhost\n"
        # Written in place, not renamed: container engines bind-mount /etc/hosts.
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "r+" if path.exists() else "w") as handle:
            handle.seek(0)
            handle.write(replace_block(text, managed_block(ctx.doc), managed_names(ctx.doc)))
            handle.truncate()
        return f"{len(ctx.doc.all_nodes)} peers"
