"""The one scheduler (firstboot.graph) that the steps, the run-once phases and the lab checks share: order,
overlap, what a failure stops, conditions other work makes true, and waits that can never end."""

from __future__ import annotations

import threading
import time

import pytest

from firstboot import graph


def test_order_follows_after_and_keeps_the_given_order_otherwise():
    after = {"c": ("b",), "b": ("a",), "x": ("not-here",)}
    assert graph.order(["c", "a", "x", "b", "d"], after) == ["a", "x", "b", "c", "d"]


def test_order_names_a_cycle():
    with pytest.raises(graph.CycleError, match="cycle: a, b"):
        graph.order(["a", "b"], {"a": ("b",), "b": ("a",)})


def test_independent_work_overlaps_and_followers_wait():
    started: dict[str, float] = {}
    ended: dict[str, float] = {}
    both = threading.Barrier(2, timeout=5)

    def work(name: str) -> str:
        started[name] = time.monotonic()
        if name in ("a", "b"):
            both.wait()  # a and b must run at the same time, or this raises
        ended[name] = time.monotonic()
        return name.upper()

    results = graph.run(["a", "b", "c"], {"c": ("a", "b")}, work)
    assert results == {"a": "A", "b": "B", "c": "C"}
    assert started["c"] >= max(ended["a"], ended["b"])


def test_a_stopping_result_starts_nothing_more_but_lets_running_work_end():
    release = threading.Event()
    log: list[str] = []

    def work(name: str) -> str:
        if name == "slow":
            release.wait(5)
            log.append("slow ended")
            return "ok"
        if name == "bad":
            release.set()
            return "failed"
        log.append(name)
        return "ok"

    results = graph.run(["slow", "bad", "after-bad"], {"after-bad": ("bad",)}, work,
                        stops=lambda result: result == "failed")
    assert results == {"bad": "failed", "slow": "ok"}
    assert log == ["slow ended"]


def test_an_exception_is_raised_once_the_running_work_has_ended():
    ended = threading.Event()

    def work(name: str) -> None:
        if name == "boom":
            raise ValueError("boom")
        time.sleep(0.3)
        ended.set()

    with pytest.raises(ValueError, match="boom"):
        graph.run(["long", "boom", "next"], {"next": ("boom",)}, work)
    assert ended.is_set()


def test_a_ready_condition_set_by_running_work_releases_the_waiting_one():
    reached = threading.Event()
    order: list[str] = []

    def work(name: str) -> None:
        order.append(f"{name} start")
        if name == "maker":
            reached.set()
            time.sleep(0.5)
        order.append(f"{name} end")

    graph.run(["user", "maker"], {}, work, ready=lambda name: name != "user" or reached.is_set())
    assert order.index("user start") < order.index("maker end")


def test_work_that_can_never_start_is_reported_not_waited_for():
    with pytest.raises(graph.CycleError, match="wait on each other: a"):
        graph.run(["a"], {}, lambda name: None, ready=lambda name: False, label="checks")


def test_workers_bound_how_many_run_at_once():
    running = 0
    most = 0
    lock = threading.Lock()

    def work(name: str) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.1)
        with lock:
            running -= 1

    graph.run([str(i) for i in range(6)], {}, work, workers=2)
    assert most == 2
