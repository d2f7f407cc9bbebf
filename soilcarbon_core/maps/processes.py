"""Windows of a map computed in short-lived forked processes, a few windows each, handed back in order.

Why processes and not threads (:mod:`soilcarbon_core.maps.parallel`): a window's temporaries (the
network's chunks, the neighbour searches) leave holes in glibc's malloc heaps that stay resident, so a
long-running process grows window after window (``docs/maps.md``, "Why windows run in processes"). A
process that computes a few windows and exits hands all of its memory back, so the map's peak memory is
that of the parent plus ``workers`` such processes, whatever the number of windows. Why a few and not
one: a fresh process pays a page fault for every page its first window's buffers touch (about 40,000 for
a 512 x 512 window), its next windows reuse them (about 5,000 faults, 5 % faster), and its resident
memory rises by a few tens of MB over its windows (``training/reports/bench_map_windows.md``).

The children are forked from the caller (``os.fork``), so they share, copy-on-write, everything the
caller computed before: the model and its reference states (computed once, in the caller). A child is
sent the index of an item through a pipe, runs ``work(item, report)``, writes its progress into a shared
page and sends the result (a numpy array) back through another pipe as raw bytes with a JSON header; an
error goes back as its class name, message and hint, and is raised again in the caller (an unexpected
one with the child's traceback). After its quota of items, an error, or when told there are no more, it
leaves with ``os._exit``: no exit handlers, no flushing of buffers it inherited.

Why ``os.fork`` and not :mod:`multiprocessing`: a forked child has only the forking thread, and a lock
another thread held at the fork stays held in the child for ever. ``multiprocessing`` starts its children
by closing ``sys.stdin``, whose lock the QGIS worker's stdin-reading thread holds while it waits for a
line (``soilcarbon_core/worker/__main__.py``): the child would hang there. Here the child touches nothing
but the window's work and its own pipe.

Results come back in the items' order, at most ``2 n`` windows ahead of the caller. The caller's
progress callback is only called from the calling thread, a few times a second. When it raises (cancel)
or a window fails, the children under way are killed at once and nothing more is started.

Only where ``fork`` exists (:func:`available`: Linux); a process that has used CUDA cannot fork safely,
so GPU maps run on the calling process.
"""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from multiprocessing.connection import Connection, wait
from typing import TypeVar

import numpy as np
import rasterio

from soilcarbon_core import errors
from soilcarbon_core.progress import ProgressCallback

Item = TypeVar("Item")

#: Windows a map's window process computes before it leaves (see the module's docstring).
WINDOWS_PER_PROCESS = 8
#: Seconds between progress reports while waiting for a window.
POLL_S = 0.25
#: prctl option: the signal a process gets when its parent dies (linux/prctl.h).
_PR_SET_PDEATHSIG = 1
#: mallopt parameters (malloc.h) and the values a window process sets (see _keep_freed_memory).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 << 20  # glibc's largest
_TRIM_THRESHOLD = 1 << 30  # mallopt takes a C int


def available() -> bool:
    """Whether windows can run in forked processes here (Linux)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


class WindowProcessError(errors.SoilCarbonError):
    """A window's worker process failed for a reason of its own (a bug, or killed: out of memory)."""

    code = "window_process"


class _Worker:
    """One forked process computing items one after another, up to ``quota`` of them, and its pipes."""

    def __init__(self, work: Callable, items: Sequence, slot: int, fractions: np.ndarray, quota: int) -> None:
        self.slot, self.fractions, self.quota, self.served = slot, fractions, quota, 0
        self.item: int | None = None  # the index of the item under way
        command_read, command_write = os.pipe()
        result_read, result_write = os.pipe()
        parent = os.getpid()
        try:
            self.pid = os.fork()
        except OSError:
            for end in (command_read, command_write, result_read, result_write):
                os.close(end)
            raise
        if self.pid == 0:  # the child: never returns
            os.close(command_write)
            os.close(result_read)
            commands = Connection(command_read, writable=False)
            _serve(
                work,
                items,
                commands,
                Connection(result_write, readable=False),
                slot,
                fractions,
                parent,
                quota,
            )
        os.close(command_read)
        os.close(result_write)
        self.commands = Connection(command_write, readable=False)
        self.reader = Connection(result_read, writable=False)
        self.exit_code: int | None = None

    @property
    def idle(self) -> bool:
        """Waiting for an item, and allowed another."""
        return self.item is None and self.served < self.quota

    def start(self, index: int) -> None:
        self.fractions[self.slot] = 0.0
        self.item = index
        self.commands.send_bytes(str(index).encode())

    def result(self) -> np.ndarray:
        """The result of the item under way (the child has sent something or died); raises the child's
        error. A child that has served its quota leaves, and is reaped here."""
        try:
            header = json.loads(self.reader.recv_bytes())
            if "error" not in header:
                data = self.reader.recv_bytes()
        except EOFError:
            self.stop(kill=False)
            raise WindowProcessError(
                f"A map window's worker process ended without a result (exit code {self.exit_code}; "
                "-9 means it was killed, for instance by the system when memory ran out).",
                "Use a smaller --window-size, or fewer threads.",
            ) from None
        if "error" in header:
            self.stop()
            raise _rebuilt(header)
        self.item, self.served = None, self.served + 1
        if self.served == self.quota:
            self.stop(kill=False)
        return np.frombuffer(data, dtype=header["dtype"]).reshape(header["shape"])

    def stop(self, kill: bool = True) -> None:
        """Kill the child, or let it leave (it has sent its last result, or is told to now); reap it."""
        if self.exit_code is not None:
            return
        if kill:
            os.kill(self.pid, signal.SIGKILL)
        elif self.idle:
            with suppress(BrokenPipeError):
                self.commands.send_bytes(b"")  # no more items
        _, status = os.waitpid(self.pid, 0)
        self.exit_code = os.waitstatus_to_exitcode(status)
        self.reader.close()
        self.commands.close()


def _serve(
    work: Callable,
    items: Sequence,
    commands: Connection,
    writer: Connection,
    slot: int,
    fractions: np.ndarray,
    parent: int,
    quota: int,
) -> None:
    """The child's body: compute the items it is sent (their indices), at most ``quota``, sending each
    result, or the first error; then leave."""
    code = 1
    try:
        # Die with the caller, even when it is killed outright: an orphan would go on computing its window
        # and hold the caller's inherited pipes open (the QGIS plugin waits for the worker's stdout to close).
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the caller died before the line above
            os._exit(1)
        _keep_freed_memory(libc)

        def report(fraction: float, message: str = "") -> None:
            fractions[slot] = fraction

        # GDAL's thread pool (GDAL_NUM_THREADS), if the caller made one, has no threads here: a read that
        # used it would wait forever. The child runs on one core anyway.
        with rasterio.Env(GDAL_NUM_THREADS="1"):
            for _ in range(quota):
                command = commands.recv_bytes()
                if not command:
                    break
                try:
                    result = np.ascontiguousarray(work(items[int(command)], report))
                except BaseException as error:  # noqa: BLE001 - everything goes back to the caller, who raises it
                    writer.send_bytes(json.dumps(_described(error)).encode())
                    break
                writer.send_bytes(json.dumps({"dtype": result.dtype.str, "shape": result.shape}).encode())
                writer.send_bytes(result.data)
        writer.close()
        code = 0
    finally:
        os._exit(code)


def _keep_freed_memory(libc: ctypes.CDLL) -> None:
    """Make glibc's malloc keep what the window frees, for its next buffers: every buffer up to 32 MiB
    from the heap instead of a fresh mapping, and no heap trimmed back to the system.

    A fresh mapping costs a page fault per 4 KiB page the window touches (135,000 for one 512 x 512
    window of the map benchmark, 38,000 with these settings: 4.0 against 3.8 s on one thread, medians
    of four, in a throw-away run; the map benchmark cannot resolve the 5 % and the network alone shows
    no difference). With them, the windows after a process's first reuse its pages: about 5,000
    faults each (``training/reports/bench_map_windows.md``). In a long-lived process the heaps could
    still creep window after window; a window process leaves after a few windows, which hands
    everything back. Not glibc (no mallopt): nothing changes.
    """
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)


def _described(error: BaseException) -> dict:
    if isinstance(error, errors.SoilCarbonError):
        return {"error": type(error).__name__, "message": error.message, "hint": error.hint}
    return {"error": None, "message": "".join(traceback.format_exception(error))}


def _rebuilt(header: dict) -> Exception:
    """The child's error as the same class in this process (errors of this package), or as a
    :class:`WindowProcessError` with the child's traceback."""
    kind = getattr(errors, header["error"] or "", None)
    if isinstance(kind, type) and issubclass(kind, errors.SoilCarbonError):
        return kind(header["message"], header["hint"])
    return WindowProcessError(f"A map window failed in its worker process:\n{header['message']}")


def ordered_in_processes(
    items: Sequence[Item],
    work: Callable[[Item, ProgressCallback], np.ndarray],
    workers: int,
    progress: ProgressCallback,
    describe: Callable[[int], str],
    items_per_process: int = WINDOWS_PER_PROCESS,
) -> Iterator[tuple[Item, np.ndarray]]:
    """Yield ``(item, work(item, report))`` for every item, in order, computed in forked processes, up to
    ``workers`` at once, each computing up to ``items_per_process`` items one after another, then leaving.

    ``work`` must return a numpy array; ``report`` is the item's own progress callback (a fraction of that
    item). ``describe(n)`` is the message while the n-th item is awaited. Close the generator
    (``contextlib.closing``) when leaving early: that kills the processes under way."""
    shared = mmap.mmap(-1, 8 * workers)  # anonymous and shared with the children: each writes its slot
    fractions = np.frombuffer(shared, dtype=np.float64)
    total = len(items)
    pool: list[_Worker] = []
    running: dict[int, _Worker] = {}
    finished: dict[int, np.ndarray] = {}
    started = 0
    try:
        for n in range(total):
            while True:  # a report for every item, even one finished already (a cancel is taken there)
                while started < total and started - n < 2 * workers:
                    worker = next((worker for worker in pool if worker.idle), None)
                    if worker is None and len(pool) < workers:
                        slot = min(set(range(workers)) - {worker.slot for worker in pool})
                        worker = _Worker(work, items, slot, fractions, items_per_process)
                        pool.append(worker)
                    if worker is None:
                        break
                    worker.start(started)
                    running[started] = worker
                    started += 1
                under_way = float(sum(fractions[worker.slot] for worker in running.values()))
                progress((n + len(finished) + under_way) / total, describe(n))
                if n in finished:
                    break
                ready = wait([worker.reader for worker in running.values()], timeout=POLL_S)
                for index in [index for index, worker in running.items() if worker.reader in ready]:
                    worker = running.pop(index)
                    finished[index] = worker.result()
                    if worker.exit_code is not None:  # it has served its quota
                        pool.remove(worker)
            yield items[n], finished.pop(n)
    finally:
        for worker in pool:
            worker.stop(kill=worker.item is not None)
