import threading
from contextlib import closing

import pytest

from soilcarbon_core.errors import Cancelled
from soilcarbon_core.maps.parallel import ordered_parallel


def _describe(n: int) -> str:
    return f"item {n}"


def test_results_come_back_in_order_while_items_run_at_once():
    # Both first items must be under way together to pass the barrier; the second finishes first.
    barrier = threading.Barrier(2, timeout=10)
    finished = []

    def work(item: int, report) -> int:
        if item < 2:
            barrier.wait()
        if item == 0:
            threading.Event().wait(0.3)
        finished.append(item)
        report(1.0)
        return item * item

    results = list(ordered_parallel(list(range(5)), work, 2, lambda f, m="": None, _describe))
    assert results == [(n, n * n) for n in range(5)]
    assert finished.index(1) < finished.index(0)


def test_one_worker_runs_on_the_calling_thread_with_scaled_progress():
    caller = threading.get_ident()
    fractions = []

    def work(item: int, report) -> int:
        assert threading.get_ident() == caller
        report(0.5)
        return item

    assert [
        r for _, r in ordered_parallel([0, 1], work, 1, lambda f, m="": fractions.append(f), _describe)
    ] == [0, 1]
    assert fractions == [0.0, 0.25, 0.5, 0.75]


def test_cancelling_stops_the_items_under_way_and_starts_no_more():
    started, stopped = [], []
    release = threading.Event()

    def work(item: int, report) -> int:
        started.append(item)
        try:
            for _ in range(2000):  # bounded: code that never stops items fails below instead of hanging
                report(0.5)  # raises Cancelled once the run is stopping
                release.wait(0.01)
        except Cancelled:
            stopped.append(item)
            raise
        return item

    def progress(fraction: float, message: str = "") -> None:
        if len(started) >= 2:
            raise Cancelled("stop")

    with (
        pytest.raises(Cancelled),
        closing(ordered_parallel(list(range(10)), work, 2, progress, _describe)) as results,
    ):
        list(results)
    assert sorted(stopped) == sorted(started)
    # At most the first 2 x workers items were ever submitted; the queued ones never started.
    assert set(started) <= {0, 1, 2, 3}


def test_a_failing_item_stops_the_others_and_raises():
    """Item 1 fails while item 0 (awaited first) is still running: item 0 is stopped, not awaited."""
    completed = []

    def work(item: int, report) -> int:
        if item == 1:
            raise ValueError("bad window")
        for _ in range(2000):
            report(0.5)
            threading.Event().wait(0.005)
        completed.append(item)
        return item

    with (
        pytest.raises(ValueError, match="bad window"),
        closing(ordered_parallel(list(range(6)), work, 2, lambda f, m="": None, _describe)) as results,
    ):
        list(results)
    assert not completed
