"""A daemon counts as joined only on a report made since it started: a node back from a kill or a power
loss is still listed up by its daemons' last reports from before."""

from datetime import UTC, datetime

from firstboot.cloud import CLOCK_SKEW_SECONDS, reported_since

STARTED = datetime(2026, 12, 3, 15, 1, 57, tzinfo=UTC).timestamp()


def test_a_report_from_before_the_start_does_not_count():
    assert not reported_since("2026-12-03 15:01:40", STARTED)  # neutron's heartbeat_timestamp
    assert not reported_since("2026-12-03T15:01:40.000000", STARTED)  # nova's and cinder's updated_at


def test_a_report_since_the_start_counts_in_either_format():
    assert reported_since("2026-12-03 15:02:03", STARTED)
    assert reported_since("2026-12-03T15:02:03.000000", STARTED)


def test_clocks_may_differ_by_the_skew_allowed():
    assert reported_since(f"2026-12-03 15:01:{57 - CLOCK_SKEW_SECONDS}", STARTED)
    assert not reported_since(f"2026-12-03 15:01:{57 - CLOCK_SKEW_SECONDS - 1}", STARTED)


def test_no_start_time_or_no_report_yet_counts():
    assert reported_since("2026-12-03 15:01:40", None)  # the unit's start is unknown: any report
    assert reported_since(None, STARTED)  # a record just created by the daemon, before its first report


def test_an_unreadable_stamp_does_not_count():
    assert not reported_since("yesterday", STARTED)
