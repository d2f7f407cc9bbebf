"""Windows of a map computed on parallel threads, handed back in order.

Map windows are independent, so on a CPU with n threads n windows run at once, each on one core
(:func:`~soilcarbon_core.device.one_thread_each`): every step of a window (reading the rasters,
attaching the cells to the graph, the network, the output bands) then runs in parallel, not only the
network. Results come back in the windows' order, at most ``2 n`` ahead of the caller, so memory stays
bounded by a few windows.

The caller's progress callback is only ever called from the calling thread (callbacks of GUIs and of the
worker are not thread-safe), a few times a second, with the share of the work done (windows under way
counted by their own progress). When it raises (cancel), or any window fails (even one after the
window awaited), the windows under way stop at their next progress report and nothing more is started.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from soilcarbon_core.errors import Cancelled
from soilcarbon_core.progress import ProgressCallback, scaled

Item = TypeVar("Item")
Result = TypeVar("Result")

#: Seconds between progress reports while waiting for a window.
POLL_S = 0.25


def ordered_parallel(
    items: Sequence[Item],
    work: Callable[[Item, ProgressCallback], Result],
    workers: int,
    progress: ProgressCallback,
    describe: Callable[[int], str],
) -> Iterator[tuple[Item, Result]]:
    """Yield ``(item, work(item, report))`` for every item, in order, computing up to ``workers`` at once.

    ``report`` is the item's own progress callback (a fraction of that item). ``describe(n)`` is the
    message while the n-th item is awaited. Close the generator (``contextlib.closing``) when leaving
    early: that stops the items under way and waits for them.
    """
    total = len(items)
    if workers <= 1:
        for n, item in enumerate(items):
            progress(n / total, describe(n))
            yield item, work(item, scaled(progress, n / total, (n + 1) / total))
        return
    stopping = threading.Event()
    fractions = [0.0] * total

    def task(n: int) -> Result:
        def report(fraction: float, message: str = "") -> None:
            if stopping.is_set():
                raise Cancelled("Stopped: another window failed or the run was cancelled.")
            fractions[n] = fraction

        return work(items[n], report)

    pool = ThreadPoolExecutor(workers)
    pending: deque = deque()
    try:
        for n in range(total):
            while len(pending) < 2 * workers and n + len(pending) < total:
                pending.append(pool.submit(task, n + len(pending)))
            future = pending.popleft()
            while True:
                progress(sum(fractions) / total, describe(n))
                try:
                    result = future.result(timeout=POLL_S)
                    break
                except TimeoutError:
                    _raise_failure(pending)
            fractions[n] = 1.0
            yield items[n], result
    finally:
        stopping.set()
        pool.shutdown(wait=True, cancel_futures=True)


def _raise_failure(futures) -> None:
    """Raise the error of a later item that has failed already, rather than wait for the earlier ones."""
    for future in futures:
        if future.done() and not future.cancelled() and (error := future.exception()) is not None:
            raise error
