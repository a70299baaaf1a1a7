"""Every peer's name in /etc/hosts, so RabbitMQ node names and Galera peers resolve without DNS."""

from __future__ import annotations

from firstboot.steps.base import Context, Step

BEGIN = "# BEGIN goldstack peers (managed by goldstack-firstboot)"
END = "# END goldstack peers"


def managed_block(ctx: Context) -> str:
    doc = ctx.doc
    lines = [BEGIN]
    lines += [f"{n.management} {n.name}" for n in doc.all_nodes]
    if doc.vip_hostname:
        lines.append(f"{doc.vip} {doc.vip_hostname}")
    lines.append(END)
    return "\n".join(lines) + "\n"


def replace_block(text: str, block: str) -> str:
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        return head + block + tail
    return text + ("" if text.endswith("\n") or not text else "\n") + block


class HostsStep(Step):
    name = "hosts"
    description = "write every peer into /etc/hosts"

    def done(self, ctx: Context) -> bool:
        path = ctx.path("/etc/hosts")
        return path.exists() and managed_block(ctx) in path.read_text()

    def run(self, ctx: Context) -> str:
        path = ctx.path("/etc/hosts")
        text = path.read_text() if path.exists() else "127.0.0.1 localhost\n"
        # Written in place, not renamed: container engines bind-mount /etc/hosts.
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "r+" if path.exists() else "w") as handle:
            handle.seek(0)
            handle.write(replace_block(text, managed_block(ctx)))
            handle.truncate()
        return f"{len(ctx.doc.all_nodes)} peers"
