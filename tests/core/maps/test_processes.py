import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from soilcarbon_core.errors import Cancelled, RasterError
from soilcarbon_core.maps import processes
from soilcarbon_core.maps.processes import WindowProcessError, ordered_in_processes

pytestmark = pytest.mark.skipif(not processes.available(), reason="needs fork")


def _describe(n: int) -> str:
    return f"item {n}"


def _quiet(fraction: float, message: str = "") -> None:
    pass


def test_with_one_item_a_process_each_item_runs_in_its_own_and_results_come_back_in_order():
    # Items 0 and 1 must be under way together to pass the barrier; item 0 then finishes last.
    barrier = multiprocessing.get_context("fork").Barrier(2, timeout=20)

    def work(item: int, report) -> np.ndarray:
        if item < 2:
            barrier.wait()
        if item == 0:
            time.sleep(0.3)
        return np.array([os.getpid(), item * item])

    messages = set()
    results = list(
        ordered_in_processes(list(range(5)), work, 2, lambda f, m="": messages.add(m), _describe, 1)
    )
    assert [item for item, _ in results] == list(range(5))
    assert messages == {f"item {n}" for n in range(5)}  # every item reported, even one finished early
    assert [int(r[1]) for _, r in results] == [n * n for n in range(5)]
    pids = {int(r[0]) for _, r in results}
    assert len(pids) == 5 and os.getpid() not in pids


def test_a_process_computes_up_to_its_quota_of_items_then_leaves_and_all_are_reaped():
    def work(item: int, report) -> np.ndarray:
        return np.array([os.getpid(), item])

    results = list(ordered_in_processes(list(range(7)), work, 2, _quiet, _describe, items_per_process=3))
    assert [int(r[1]) for _, r in results] == list(range(7))
    served = np.unique([int(r[0]) for _, r in results], return_counts=True)[1]
    # 7 items, 2 at a time, 3 a process: at least 3 processes, none serving more than 3.
    assert len(served) >= 3 and served.max() == 3 and served.sum() == 7
    for pid in {int(r[0]) for _, r in results}:  # every process has left and been reaped
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_process_that_served_an_item_runs_the_next_without_new_page_faults():
    """What a process's later windows gain: the pages its first one faulted in (with the malloc settings
    of :func:`test_a_window_process_reuses_the_memory_it_freed`)."""

    def work(item: int, report) -> np.ndarray:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        np.ones(2 << 20)  # 16 MiB of float64, written, then freed
        return np.array([resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before])

    faults = [int(r[0]) for _, r in ordered_in_processes([0, 1], work, 1, _quiet, _describe, 2)]
    assert faults[0] > 100 and faults[1] * 10 < faults[0]  # about 570 then 0


def test_a_childs_progress_reaches_the_callers_progress_on_the_calling_thread():
    seen = []

    def work(item: int, report) -> np.ndarray:
        report(0.5)
        time.sleep(1.0)  # the caller polls every 0.25 s
        return np.zeros(3, dtype=np.float32)

    [(_, result)] = ordered_in_processes([0], work, 2, lambda f, m="": seen.append((f, m)), _describe)
    assert result.dtype == np.float32 and result.shape == (3,)
    assert (0.5, "item 0") in seen


def test_a_window_process_reuses_the_memory_it_freed():
    """A 16 MiB buffer allocated again after it was freed touches no fresh pages: it comes from the heap
    that the first one left (by default each comes from a fresh mapping, with as many page faults)."""

    def work(item: int, report) -> np.ndarray:
        faults = []
        for _ in range(2):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            np.ones(2 << 20)  # 16 MiB of float64, written, then freed
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        return np.array(faults)

    [(_, faults)] = ordered_in_processes([0], work, 2, _quiet, _describe)
    assert faults[1] * 10 < faults[0]  # by default: 568 then 519 faults; here 0 the second time


def test_cancelling_kills_the_processes_under_way_and_starts_no_more(tmp_path):
    def work(item: int, report) -> np.ndarray:
        (tmp_path / f"{item}.pid").write_text(str(os.getpid()))
        time.sleep(600)  # only a kill ends it in time
        return np.zeros(1)

    def progress(fraction: float, message: str = "") -> None:
        if len(list(tmp_path.glob("*.pid"))) >= 2:
            raise Cancelled("stop")

    with (
        pytest.raises(Cancelled),
        closing(ordered_in_processes(list(range(10)), work, 2, progress, _describe)) as results,
    ):
        list(results)
    pids = [int(path.read_text()) for path in tmp_path.glob("*.pid")]
    assert sorted(path.stem for path in tmp_path.glob("*.pid")) == ["0", "1"]
    for pid in pids:  # killed and reaped
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_an_error_of_this_package_comes_back_as_itself():
    def work(item: int, report) -> np.ndarray:
        if item == 1:
            raise RasterError("The raster 'dem.tif' has no CRS.", "Assign one.")
        return np.zeros(1)

    with pytest.raises(RasterError) as caught:
        list(ordered_in_processes(list(range(4)), work, 2, _quiet, _describe))
    assert (caught.value.message, caught.value.hint) == ("The raster 'dem.tif' has no CRS.", "Assign one.")


def test_an_unexpected_error_comes_back_with_the_childs_traceback():
    def work(item: int, report) -> np.ndarray:
        raise ValueError("bad window")

    with pytest.raises(WindowProcessError, match=r"(?s)failed in its worker process.*ValueError: bad window"):
        list(ordered_in_processes([0], work, 2, _quiet, _describe))


def test_a_killed_child_is_named_not_awaited_forever():
    def work(item: int, report) -> np.ndarray:
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(WindowProcessError, match="exit code -9"):
        list(ordered_in_processes([0, 1], work, 2, _quiet, _describe))


def _dead(pid: int) -> bool:
    """Ended (a zombie left to an init that does not reap counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_window_processes_die_with_their_caller_even_when_it_is_killed(tmp_path):
    caller = tmp_path / "caller.py"
    caller.write_text(
        "import os, time\n"
        "import numpy as np\n"
        "from soilcarbon_core.maps.processes import ordered_in_processes\n"
        "def work(item, report):\n"
        f"    open(os.path.join({str(tmp_path)!r}, f'{{item}}.pid'), 'w').write(str(os.getpid()))\n"
        "    time.sleep(600)\n"
        "    return np.zeros(1)\n"
        "list(ordered_in_processes([0, 1], work, 2, lambda f, m='': None, str))\n"
    )
    process = subprocess.Popen([sys.executable, str(caller)])
    try:
        for _ in range(600):  # bounded: up to 60 s for the interpreter to start and fork both
            if len(list(tmp_path.glob("*.pid"))) == 2:
                break
            time.sleep(0.1)
        pids = [int(path.read_text()) for path in tmp_path.glob("*.pid")]
        assert len(pids) == 2
    finally:
        process.kill()  # SIGKILL: the caller runs no cleanup of its own
        process.wait()
    for _ in range(100):
        if all(_dead(pid) for pid in pids):
            break
        time.sleep(0.1)
    assert all(_dead(pid) for pid in pids)


def test_a_child_reads_rasters_after_gdal_made_its_thread_pool_in_the_caller(tmp_path):
    """GDAL's thread pool (GDAL_NUM_THREADS), made in the caller, has no threads in a fork: a child that
    used it would wait forever. A read of many deflated tiles makes GDAL use the pool."""
    import rasterio
    import rasterio.transform

    path = tmp_path / "tiled.tif"
    values = np.arange(256 * 256, dtype=np.float32).reshape(256, 256)
    profile = {"driver": "GTiff", "width": 256, "height": 256, "count": 1, "dtype": "float32"}
    profile |= {"tiled": True, "blockxsize": 16, "blockysize": 16, "compress": "deflate", "crs": "EPSG:32618"}
    profile["transform"] = rasterio.transform.from_origin(0.0, 256.0, 1.0, 1.0)

    def work(item: int, report) -> np.ndarray:
        signal.alarm(60)  # bounded: a child that hangs dies instead (the caller then raises)
        with rasterio.open(path) as dataset:
            return dataset.read(1)

    with rasterio.Env(GDAL_NUM_THREADS="2"):
        with rasterio.open(path, "w", **profile) as dataset:
            dataset.write(values, 1)
        with rasterio.open(path) as dataset:
            np.testing.assert_array_equal(dataset.read(1), values)  # the pool now exists here
        [(_, read)] = ordered_in_processes([0], work, 2, _quiet, _describe)
    np.testing.assert_array_equal(read, values)


def test_a_child_forked_while_another_thread_reads_stdin_does_not_hang(tmp_path):
    """The QGIS worker has a thread blocked reading stdin (holding its lock) when it forks windows: a child
    that touched ``sys.stdin`` (as ``multiprocessing``'s start-up does, closing it) would wait forever."""
    caller = tmp_path / "caller.py"
    caller.write_text(
        "import sys, threading, time\n"
        "import numpy as np\n"
        "from soilcarbon_core.maps.processes import ordered_in_processes\n"
        "threading.Thread(target=sys.stdin.readline, daemon=True).start()\n"
        "time.sleep(0.5)  # the thread is now blocked in the read, holding the lock\n"
        "results = list(ordered_in_processes([0, 1, 2], lambda item, report: np.full(2, item), 2,\n"
        "                                    lambda f, m='': None, str))\n"
        "print(sum(int(result.sum()) for _, result in results))\n"
    )
    # stdin stays open (no communicate(), which would close it) so the thread stays blocked in its read;
    # the output goes to a file, as a hung child would hold a pipe open.
    output = tmp_path / "output.txt"
    with output.open("w") as stdout:
        process = subprocess.Popen([sys.executable, str(caller)], stdin=subprocess.PIPE, stdout=stdout)
    try:
        returncode = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        returncode = None
    finally:
        process.kill()
        process.stdin.close()
        process.wait()
    assert returncode == 0, "a window process hung" if returncode is None else output.read_text()
    assert output.read_text().strip() == "6"
