from contextlib import closing

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from soilcarbon_core.device import one_thread_each
from soilcarbon_core.graph import neighbours
from soilcarbon_core.maps import processes


def _blas_threads() -> list[int]:
    np.ones((64, 64)) @ np.ones((64, 64))  # numpy's BLAS is loaded by now
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def test_one_thread_each_limits_torch_blas_and_the_kd_tree_then_restores_them():
    torch_threads = torch.get_num_threads()
    with threadpool_limits(2, user_api="blas"):
        assert set(_blas_threads()) == {2}
        previous_workers = neighbours.set_workers(2)
        try:
            with one_thread_each():
                assert torch.get_num_threads() == 1
                assert neighbours.get_workers() == 1
                # OpenBLAS keeps idle threads spinning after each product: parallel windows would share cores.
                assert set(_blas_threads()) == {1}
            assert set(_blas_threads()) == {2}
            assert neighbours.get_workers() == 2
        finally:
            neighbours.set_workers(previous_workers)
    assert torch.get_num_threads() == torch_threads


@pytest.mark.skipif(not processes.available(), reason="needs fork")
def test_window_processes_forked_inside_one_thread_each_use_one_blas_thread():
    def work(item: int, report) -> np.ndarray:
        return np.array([*_blas_threads(), torch.get_num_threads()])

    with threadpool_limits(2, user_api="blas"), one_thread_each():
        with closing(processes.ordered_in_processes([0], work, 1, lambda *a: None, str)) as results:
            ((_, found),) = list(results)
    assert set(found.tolist()) == {1}
