"""How `roll` tells that no request is open on the VIP before the address leaves its holder."""

from __future__ import annotations

from compose import lifecycle

VIP = "10.244.7.250"
SS = f"""\
ESTAB     0 0      {VIP}:5000   10.244.7.1:51234
SYN-RECV  0 0      {VIP}:9292   10.244.7.11:40002
ESTAB     0 0      {VIP}:44120  {VIP}:3306
ESTAB     0 0      {VIP}:3306   {VIP}:44120
ESTAB     0 0   10.244.7.11:5000 10.244.7.12:39000
ESTAB     0 0      {VIP}:47000  {VIP}:8774
"""


def test_open_requests_are_those_on_an_api_port_of_the_vip():
    found = lifecycle.open_on(SS, VIP, {5000, 9292, 8774})
    # The database's pooled connections and the node's own management address are no request on the VIP;
    # a connection still in its handshake (SYN-RECV) and the holder's own request to its VIP are.
    assert [line.split()[0] for line in found] == ["ESTAB", "SYN-RECV", "ESTAB"]
    assert lifecycle.open_on(SS, "10.244.7.25", {5000}) == []


def test_an_ipv6_vip_is_read_in_brackets():
    assert lifecycle.open_on("ESTAB 0 0 [fd00::250]:5000 [fd00::1]:4000\n", "fd00::250", {5000})


def test_sealing_adds_one_rule_and_releasing_takes_it_and_the_hold_away():
    sealed = lifecycle.seal_script(VIP, True)
    assert f"-I INPUT -d {VIP} -p tcp --syn -j DROP" in sealed and "-C INPUT" in sealed  # once, however often
    release = lifecycle.release_script(VIP)
    assert release.startswith(lifecycle.seal_script(VIP, False)) and f"-X {lifecycle.HOLD_CHAIN}" in release
