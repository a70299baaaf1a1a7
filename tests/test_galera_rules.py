"""The Galera decision rules, as pure logic: who bootstraps, who joins, who waits.

The real clusters are in test_control_plane.py; these check the rules over every combination.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from firstboot import galera
from firstboot.galera import BOOTSTRAP, JOIN, WAIT, Report, decide

NODES = ("ctl1", "ctl2", "ctl3")
UUID_A = "11111111-1111-1111-1111-111111111111"
UUID_B = "22222222-2222-2222-2222-222222222222"


def stopped(node: str, seqno: int, uuid: str = UUID_A, safe: bool = False) -> Report:
    return Report(node=node, service="inactive", fresh=False, uuid=uuid, seqno=seqno, safe_to_bootstrap=safe)


def new(node: str) -> Report:
    return Report(node=node, service="inactive")


def test_all_new_the_first_name_bootstraps_and_the_others_wait():
    reports = {n: new(n) for n in NODES}
    assert decide("ctl1", reports).action == BOOTSTRAP and decide("ctl1", reports).new_cluster
    assert decide("ctl2", reports).action == WAIT
    assert decide("ctl3", reports).action == WAIT


def test_a_serving_peer_means_join_whatever_else():
    serving = Report(node="ctl2", service="active", primary=True, state="Synced", accounts=True, fresh=False,
                     uuid=UUID_A, seqno=90)
    for mine in (new("ctl1"), stopped("ctl1", 500)):
        assert decide("ctl1", {"ctl1": mine, "ctl2": serving, "ctl3": None}).action == JOIN


def test_a_synced_peer_without_the_transfer_account_is_not_joined_yet():
    donor = Report(node="ctl1", service="active", primary=True, state="Synced", accounts=False, fresh=False)
    assert decide("ctl2", {"ctl1": donor, "ctl2": new("ctl2"), "ctl3": new("ctl3")}).action == WAIT


def test_after_a_full_stop_the_most_advanced_node_bootstraps():
    reports = {"ctl1": stopped("ctl1", 40), "ctl2": stopped("ctl2", 42), "ctl3": stopped("ctl3", 41)}
    assert [decide(n, reports).action for n in NODES] == [WAIT, BOOTSTRAP, WAIT]
    assert not decide("ctl2", reports).new_cluster


def test_ties_go_to_safe_to_bootstrap_then_to_the_first_name():
    reports = {"ctl1": stopped("ctl1", 7), "ctl2": stopped("ctl2", 7), "ctl3": stopped("ctl3", 7, safe=True)}
    assert decide("ctl3", reports).action == BOOTSTRAP
    reports["ctl3"] = stopped("ctl3", 7)
    assert decide("ctl1", reports).action == BOOTSTRAP and decide("ctl2", reports).action == WAIT


def test_an_unreachable_peer_blocks_bootstrap_unless_the_operator_forces_it():
    reports = {"ctl1": stopped("ctl1", 99), "ctl2": stopped("ctl2", 5), "ctl3": None}
    decision = decide("ctl1", reports)
    assert decision.action == WAIT and "ctl3" in decision.reason and "galera-bootstrap" in decision.reason
    forced = Report(**{**reports["ctl1"].as_dict(), "force_bootstrap": True})
    assert decide("ctl1", {**reports, "ctl1": forced}).action == BOOTSTRAP


def test_an_unknown_position_blocks_bootstrap():
    reports = {"ctl1": stopped("ctl1", 99), "ctl2": stopped("ctl2", -1), "ctl3": stopped("ctl3", 3)}
    decision = decide("ctl1", reports)
    assert decision.action == WAIT and "ctl2" in decision.reason


def test_a_wiped_node_never_bootstraps_over_nodes_with_data():
    reports = {"ctl1": new("ctl1"), "ctl2": stopped("ctl2", 12), "ctl3": stopped("ctl3", 11)}
    assert decide("ctl1", reports).action == WAIT
    assert decide("ctl2", reports).action == BOOTSTRAP


def test_the_minority_cluster_uuid_is_never_chosen():
    reports = {"ctl1": stopped("ctl1", 900, UUID_B), "ctl2": stopped("ctl2", 10), "ctl3": stopped("ctl3", 11)}
    assert decide("ctl1", reports).action == WAIT
    assert decide("ctl3", reports).action == BOOTSTRAP


def test_a_peer_that_is_starting_is_waited_for():
    starting = Report(node="ctl2", service="activating", fresh=False, uuid=UUID_A, seqno=3)
    reports = {"ctl1": stopped("ctl1", 50), "ctl2": starting, "ctl3": stopped("ctl3", 1)}
    assert decide("ctl1", reports).action == WAIT


def test_grastate_and_recovered_positions_parse():
    text = f"# GALERA saved state\nversion: 2.1\nuuid:    {UUID_A}\nseqno:   -1\nsafe_to_bootstrap: 0\n"
    pos = galera.parse_grastate(text)
    assert (pos.uuid, pos.seqno, pos.safe_to_bootstrap) == (UUID_A, -1, False)
    assert galera.parse_grastate(galera.set_safe_to_bootstrap(text)).safe_to_bootstrap
    log = f"2026-11-23 [Note] WSREP: Recovered position: {UUID_A}:1234\n"
    assert galera.parse_recovered(log) == (UUID_A, 1234)
    assert galera.parse_recovered("nothing here") is None


report_strategy = st.one_of(
    st.none(),
    st.builds(lambda seq, uuid, safe: ("stopped", seq, uuid, safe), st.integers(-1, 5),
              st.sampled_from([UUID_A, UUID_B]), st.booleans()),
    st.just(("new",)),
    st.just(("starting",)),
)


def _make(node: str, spec) -> Report | None:
    if spec is None:
        return None
    if spec[0] == "stopped":
        return stopped(node, spec[1], spec[2], spec[3])
    if spec[0] == "starting":
        return Report(node=node, service="activating", fresh=False)
    return new(node)


@settings(max_examples=400, deadline=None)
@given(st.tuples(report_strategy, report_strategy, report_strategy))
def test_never_two_bootstraps_and_never_from_behind(specs):
    reports = {n: _make(n, s) for n, s in zip(NODES, specs, strict=True)}
    # Each node sees itself (it is running the agent); peers may be unreachable.
    bootstrappers = []
    for me in NODES:
        view = dict(reports)
        if view[me] is None:
            view[me] = new(me)
        if decide(me, view).action == BOOTSTRAP:
            bootstrappers.append((me, view))
    assert len(bootstrappers) <= 1, bootstrappers
    for me, view in bootstrappers:
        assert all(r is not None for r in view.values()), "bootstrapped without seeing every peer"
        mine = view[me]
        live = [r for r in view.values() if r and not r.fresh]
        assert all(r.seqno <= mine.seqno for r in live if r.uuid == mine.uuid)


def test_schema_changes_wait_while_a_joiner_still_runs_its_start_up_upgrade(monkeypatch):
    from types import SimpleNamespace

    from firstboot.steps import galera as galera_step

    def synced(name: str, settling: bool = False) -> galera.Report:
        return galera.Report(node=name, service="active", primary=True, state="Synced", accounts=True,
                             fresh=False, settling=settling)

    peers = {"ctl1": synced("ctl1"), "ctl2": synced("ctl2", settling=True), "ctl3": synced("ctl3")}
    monkeypatch.setattr(galera_step, "gather_reports", lambda ctx, mine: peers)
    monkeypatch.setattr(galera_step.galera_local, "report", lambda node, root: peers["ctl1"])
    notes: list[str] = []
    ctx = SimpleNamespace(doc=SimpleNamespace(node=SimpleNamespace(name="ctl1")), root=None, note=notes.append)
    assert not galera_step.cluster_complete(ctx)
    assert "ctl2=Synced (MariaDB's start-up upgrade check still running)" in notes[-1]
    peers["ctl2"] = synced("ctl2")
    assert galera_step.cluster_complete(ctx)


def test_a_blank_node_takes_the_image_s_seed_state_once(tmp_path):
    """The seed becomes grastate.dat at its position (safe to bootstrap only for the bootstrapper), owned as the
    seed was, and is then gone; data MariaDB already ran on keeps its own state and loses the seed."""
    from firstboot import galera_local

    datadir = tmp_path / galera_local.DATADIR.lstrip("/")
    datadir.mkdir(parents=True)
    seed = tmp_path / galera_local.SEED_FILE.lstrip("/")
    seed.write_text(f"# GALERA saved state\nversion: 2.1\nuuid:    {UUID_A}\nseqno:   1\nsafe_to_bootstrap: 1\n")
    assert galera_local.seed_from_image(tmp_path, bootstrap=True) == UUID_A
    grastate = tmp_path / galera_local.GRASTATE.lstrip("/")
    assert galera.parse_grastate(grastate.read_text()) == galera.Position(UUID_A, 1, True)
    assert grastate.stat().st_mode & 0o777 == 0o660 and not seed.exists()
    assert galera_local.seed_from_image(tmp_path) is None  # used once

    seed.write_text(f"uuid: {UUID_B}\nseqno: 1\n")
    grastate.write_text("uuid: 33333333-3333-3333-3333-333333333333\nseqno: -1\n")
    assert galera_local.seed_from_image(tmp_path) is None
    assert "33333333" in grastate.read_text() and not seed.exists()

    grastate.unlink()
    seed.write_text(f"uuid: {UUID_B}\nseqno: -1\n")  # no position
    assert galera_local.seed_from_image(tmp_path) is None and not grastate.exists() and not seed.exists()


def test_a_seeded_joiner_s_state_is_not_safe_to_bootstrap():
    seed = galera.Position(UUID_B, 1, True)
    assert galera.parse_grastate(galera.seeded_grastate(seed, False)) == galera.Position(UUID_B, 1, False)


def serving_with(node: str, members: int) -> Report:
    return Report(node=node, service="active", primary=True, state="Synced", accounts=True, fresh=False,
                  uuid=UUID_A, seqno=12, members=members)


def test_joiners_enter_one_at_a_time_in_name_order():
    """Two joiners connecting at once: the one arriving while the other's view is installed is turned
    away for Galera's time_wait. The later name waits until the earlier is in the serving peer's view."""
    reports = {"ctl1": serving_with("ctl1", 1), "ctl2": new("ctl2"), "ctl3": new("ctl3")}
    assert decide("ctl2", reports).action == JOIN
    waiting = decide("ctl3", reports)
    assert (waiting.action, waiting.yielding) == (WAIT, True) and "ctl2" in waiting.reason
    reports["ctl2"] = Report(node="ctl2", service="activating")
    assert decide("ctl3", reports).action == WAIT
    reports["ctl1"] = serving_with("ctl1", 2)  # ctl2 is in the Primary component (still receiving its IST)
    assert decide("ctl3", reports).action == JOIN


def test_a_joiner_stops_yielding_when_told_and_never_to_a_failed_or_unreachable_peer():
    reports = {"ctl1": serving_with("ctl1", 1), "ctl2": new("ctl2"), "ctl3": new("ctl3")}
    assert decide("ctl3", reports, yield_to_earlier=False).action == JOIN
    for ahead in (None, Report(node="ctl2", service="failed")):
        reports["ctl2"] = ahead
        assert decide("ctl3", reports).action == JOIN


def test_a_restarted_controller_joins_at_once_whatever_its_name():
    reports = {"ctl1": new("ctl1"), "ctl2": serving_with("ctl2", 2), "ctl3": serving_with("ctl3", 2)}
    assert decide("ctl1", reports).action == JOIN
    reports = {"ctl1": serving_with("ctl1", 2), "ctl2": serving_with("ctl2", 2), "ctl3": stopped("ctl3", 40)}
    assert decide("ctl3", reports).action == JOIN
