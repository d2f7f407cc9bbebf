"""Windows of a map computed in short-lived forked processes, one window each, handed back in order.

Why processes and not threads (:mod:`soilcarbon_core.maps.parallel`): a window's temporaries (the
network's chunks, the neighbour searches) leave holes in glibc's malloc heaps that stay resident, so a
long-running process grows window after window (``docs/maps.md``, "Why windows run in processes"). A
process that computes one window and exits hands all of its memory back, so the map's peak memory is
that of the parent plus ``workers`` windows, whatever the number of windows.

The children are forked from the caller (``os.fork``), so they share, copy-on-write, everything the
caller computed before: the model and its reference states (computed once, in the caller). A child runs
``work(item, report)``, writes its progress into a shared page and sends the result (a numpy array) back
through a pipe as raw bytes with a JSON header; an error goes back as its class name, message and hint,
and is raised again in the caller (an unexpected one with the child's traceback). Then it leaves with
``os._exit``: no exit handlers, no flushing of buffers it inherited.

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
from multiprocessing.connection import Connection, wait
from typing import TypeVar

import numpy as np
import rasterio

from soilcarbon_core import errors
from soilcarbon_core.progress import ProgressCallback

Item = TypeVar("Item")

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


class _Child:
    """One forked process computing one item, and the read end of its pipe."""

    def __init__(self, work: Callable, item, slot: int, fractions: np.ndarray) -> None:
        self.slot = slot
        fractions[slot] = 0.0
        read_end, write_end = os.pipe()
        parent = os.getpid()
        try:
            self.pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            raise
        if self.pid == 0:  # the child: never returns
            os.close(read_end)
            _run(work, item, Connection(write_end, readable=False), slot, fractions, parent)
        os.close(write_end)
        self.reader = Connection(read_end, writable=False)
        self.exit_code: int | None = None

    def result(self) -> np.ndarray:
        """The child's result (it has sent something or died); raises the child's error."""
        try:
            header = json.loads(self.reader.recv_bytes())
            if "error" not in header:
                data = self.reader.recv_bytes()
                return np.frombuffer(data, dtype=header["dtype"]).reshape(header["shape"])
        except EOFError:
            self.stop(kill=False)
            raise WindowProcessError(
                f"A map window's worker process ended without a result (exit code {self.exit_code}; "
                "-9 means it was killed, for instance by the system when memory ran out).",
                "Use a smaller --window-size, or fewer threads.",
            ) from None
        finally:
            self.stop(kill=False)
        raise _rebuilt(header)

    def stop(self, kill: bool = True) -> None:
        """Wait for the child to end (it has sent its result), or kill it first; then reap it."""
        if self.exit_code is not None:
            return
        if kill:
            os.kill(self.pid, signal.SIGKILL)
        _, status = os.waitpid(self.pid, 0)
        self.exit_code = os.waitstatus_to_exitcode(status)
        self.reader.close()


def _run(work: Callable, item, writer: Connection, slot: int, fractions: np.ndarray, parent: int) -> None:
    """The child's body: compute the item, send the result or the error, and leave."""
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

        try:
            # GDAL's thread pool (GDAL_NUM_THREADS), if the caller made one, has no threads here: a read
            # that used it would wait forever. The child runs on one core anyway.
            with rasterio.Env(GDAL_NUM_THREADS="1"):
                result = np.ascontiguousarray(work(item, report))
        except BaseException as error:  # noqa: BLE001 - everything goes back to the caller, who raises it
            writer.send_bytes(json.dumps(_described(error)).encode())
        else:
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
    no difference). In a
    long-lived process these settings would let the heaps grow window after window; a window process
    exits after one window, which hands everything back. Not glibc (no mallopt): nothing changes.
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
) -> Iterator[tuple[Item, np.ndarray]]:
    """Yield ``(item, work(item, report))`` for every item, in order, each computed in a forked process
    of its own, up to ``workers`` at once.

    ``work`` must return a numpy array; ``report`` is the item's own progress callback (a fraction of that
    item). ``describe(n)`` is the message while the n-th item is awaited. Close the generator
    (``contextlib.closing``) when leaving early: that kills the processes under way."""
    shared = mmap.mmap(-1, 8 * workers)  # anonymous and shared with the children: each writes its slot
    fractions = np.frombuffer(shared, dtype=np.float64)
    total = len(items)
    running: dict[int, _Child] = {}
    finished: dict[int, np.ndarray] = {}
    started = 0
    try:
        for n in range(total):
            while True:  # a report for every item, even one finished already (a cancel is taken there)
                free = sorted(set(range(workers)) - {child.slot for child in running.values()})
                while free and started < total and started - n < 2 * workers:
                    running[started] = _Child(work, items[started], free.pop(0), fractions)
                    started += 1
                under_way = float(sum(fractions[child.slot] for child in running.values()))
                progress((n + len(finished) + under_way) / total, describe(n))
                if n in finished:
                    break
                ready = wait([child.reader for child in running.values()], timeout=POLL_S)
                for index in [index for index, child in running.items() if child.reader in ready]:
                    finished[index] = running.pop(index).result()
            yield items[n], finished.pop(n)
    finally:
        for child in running.values():
            child.stop()
