"""The declared listening sockets against what `ss` shows: a socket nobody declared is named, and so is a
declared one that is missing."""

from __future__ import annotations

from firstboot import document, listening

CONTROLLER_SS = """\
tcp   LISTEN 0      4096      10.99.0.10:5000      0.0.0.0:*    users:(("haproxy",pid=1,fd=7))
tcp   LISTEN 0      4096      10.99.0.11:5000      0.0.0.0:*    users:(("haproxy",pid=1,fd=8))
tcp   LISTEN 0      4096       127.0.0.1:5000      0.0.0.0:*    users:(("uwsgi_python3",pid=2,fd=3))
tcp   LISTEN 0      4096      10.99.0.11:8774      0.0.0.0:*    users:(("uwsgi_python3",pid=2,fd=4))
tcp   LISTEN 0      4096               *:4369            *:*    users:(("epmd",pid=3,fd=3))
tcp   LISTEN 0      4096      127.0.0.11:40000     0.0.0.0:*
udp   UNCONN 0      0          127.0.0.1:323       0.0.0.0:*    users:(("chronyd",pid=4,fd=5))
tcp   LISTEN 0      4096      10.99.0.11:8080      0.0.0.0:*    users:(("python3",pid=5,fd=3))
tcp   LISTEN 0      4096           [::1]:6640         [::]:*    users:(("ovsdb-server",pid=6,fd=3))
"""


def test_undeclared_sockets_are_named_and_declared_ones_count(doc_of):
    doc = document.validate(doc_of("ctl1"))
    sockets = listening.parse_ss(CONTROLLER_SS)
    assert str(sockets[4]) == "tcp *:4369 (epmd)"
    unexpected, missing = listening.compare(doc.node, doc.vip, sockets)
    assert [str(s) for s in unexpected] == ["tcp 10.99.0.11:8774 (uwsgi_python3)", "tcp *:4369 (epmd)",
                                            "tcp 10.99.0.11:8080 (python3)"]  # an API must not skip HAProxy's TLS
    missing_names = {(x.on, x.ports[0], x.program) for x in missing}
    assert ("vip", 5000, "haproxy") not in missing_names and ("management", 3306, "mariadbd") in missing_names
    assert all(x.always for x in missing)  # a state transfer's listener is never "missing"


def test_a_compute_node_may_show_a_guest_console_but_not_a_wildcard_sshd(doc_of):
    doc = document.validate(doc_of("cmp1"))
    text = ("tcp LISTEN 0 128 10.99.0.21:5901 0.0.0.0:* users:((\"qemu-system-x86\",pid=9,fd=30))\n"
            "tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:((\"sshd\",pid=8,fd=3))\n")
    unexpected, _ = listening.compare(doc.node, doc.vip, listening.parse_ss(text))
    assert [str(s) for s in unexpected] == ["tcp 0.0.0.0:22 (sshd)"]
