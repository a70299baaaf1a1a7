"""The per-process CPU accounting the Tempest benchmark uses to say where a run's CPU went."""

from __future__ import annotations

from bench import proccpu
from bench.proccpu import Sample


def test_a_name_with_spaces_and_parentheses_is_read_whole():
    line = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 300 50 20 10 20 0 1 0 100 0 0"
    assert proccpu.parse_stat(line) == Sample("a (b) c", 350, 30)


def test_differences_count_new_processes_whole_and_reused_pids_afresh():
    tick = proccpu.TICK
    before = ({1: Sample("dnsmasq", 10 * tick, 0), 2: Sample("haproxy", 5 * tick, tick)}, 100.0)
    after = ({1: Sample("dnsmasq", 13 * tick, 0), 2: Sample("ip", 2 * tick, 0),
              3: Sample("neutron-server", 4 * tick, 6 * tick)}, 120.0)
    result = proccpu.difference(before, after)
    assert result["by_process_s"] == {"neutron-server (children)": 6.0, "neutron-server": 4.0, "dnsmasq": 3.0,
                                      "ip": 2.0}
    assert result["busy_s"] == 20.0 and result["unaccounted_s"] == 5.0


def test_this_host_has_processes_to_read():
    samples, busy = proccpu.snapshot()
    assert samples and busy > 0
