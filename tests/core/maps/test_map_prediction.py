"""Maps at scale: COG output, windows, nodata, cancel and resume."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import rasterio

from soilcarbon_core.errors import Cancelled, OutputError
from soilcarbon_core.maps import GridSpec, processes
from soilcarbon_core.prediction import NODATA, predict_grid
from soilcarbon_core.predictor import PREDICTION_FIELDS

from ..conftest import LA_LIBERTAD, la_libertad_rasters

TEMPLATE = LA_LIBERTAD / "SRTMGL1_SRTMGL1.2.sdat"


def _extent_grid(resolution: float = 15.0) -> GridSpec:
    """A finer grid than the rasters' that also reaches 300 m past their west and north edges."""
    with rasterio.open(TEMPLATE) as dataset:
        b = dataset.bounds
    return GridSpec.from_extent((b.left - 300, b.bottom, b.right, b.top + 300), resolution, dataset.crs)


def _read(path):
    with rasterio.open(path) as dataset:
        return dataset.read()


def test_map_is_a_cloud_optimised_geotiff_with_named_bands_overviews_and_nodata(tmp_path, raster_model_path):
    grid = _extent_grid()
    output = tmp_path / "soc.tif"
    summary = predict_grid(
        raster_model_path, grid, output, rasters=la_libertad_rasters(), device="cpu", window_size=128
    )
    with rasterio.open(output) as dataset:
        assert dataset.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert dataset.compression == rasterio.enums.Compression.deflate
        assert dataset.descriptions == PREDICTION_FIELDS
        assert (dataset.width, dataset.height, dataset.crs) == (grid.width, grid.height, grid.crs)
        assert dataset.block_shapes[0] == (256, 256)
        assert dataset.overviews(1) == [2]
        assert dataset.nodata == NODATA
        assert dataset.tags()["unit"] == "t/ha"
        values = dataset.read()
    predicted = values[0] != NODATA
    # The first 20 columns (300 m at 15 m) and rows lie outside every covariate raster: nodata there.
    assert not predicted[:, :20].any() and not predicted[:20, :].any()
    assert summary["n_predicted"] == predicted.sum() > 0.8 * predicted[20:, 20:].size
    assert summary["n_windows"] == len(grid.windows(128)) and summary["resumed_windows"] == 0
    mean, aleatoric, epistemic, total, lower, upper = values[:, predicted]
    np.testing.assert_allclose(total**2, aleatoric**2 + epistemic**2, rtol=1e-4)
    assert (lower < mean).all() and (mean < upper).all()
    assert not output.with_name("soc.tif.partial").exists()


def test_cells_do_not_depend_on_the_window_size(tmp_path, raster_model_path):
    """Query cells never interact, so any windowing gives the same map."""
    grid = _extent_grid(30.0)
    small, large = tmp_path / "small.tif", tmp_path / "large.tif"
    for output, size in ((small, 48), (large, 512)):
        predict_grid(
            raster_model_path, grid, output, rasters=la_libertad_rasters(), device="cpu", window_size=size
        )
    np.testing.assert_allclose(_read(small), _read(large), rtol=1e-5)


@pytest.fixture
def two_threads():
    """Two windows at once, whatever OMP_NUM_THREADS says."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.mark.skipif(not processes.available(), reason="needs fork")
def test_windows_in_processes_give_the_map_of_windows_on_threads(tmp_path, raster_model_path, two_threads):
    """Forked window processes (the default on Linux) and threads of one process compute the same cells."""
    grid = _extent_grid(30.0)
    outputs = {mode: tmp_path / f"{mode}.tif" for mode in ("processes", "threads")}
    for mode, output in outputs.items():
        predict_grid(
            raster_model_path,
            grid,
            output,
            rasters=la_libertad_rasters(),
            device="cpu",
            window_size=64,
            window_processes=mode == "processes",
        )
    # Float32 rounding only: the reference states are computed on two threads here, on one there.
    np.testing.assert_allclose(_read(outputs["processes"]), _read(outputs["threads"]), rtol=1e-5)


def test_interrupted_map_resumes_from_finished_windows(tmp_path, raster_model_path):
    grid = _extent_grid(30.0)
    count = len(grid.windows(64))
    reference, output = tmp_path / "reference.tif", tmp_path / "soc.tif"
    predict_grid(
        raster_model_path, grid, reference, rasters=la_libertad_rasters(), device="cpu", window_size=64
    )

    messages = []

    def killed_in_third_window(fraction: float, message: str = "") -> None:
        messages.append(message)
        if message == f"Window 3 of {count}":
            raise KeyboardInterrupt  # stands for a killed process: no cleanup of finished windows

    run = functools.partial(
        predict_grid,
        raster_model_path,
        grid,
        output,
        rasters=la_libertad_rasters(),
        device="cpu",
        window_size=64,
    )
    with pytest.raises(KeyboardInterrupt):
        run(progress=killed_in_third_window)
    assert not output.exists() and output.with_name("soc.tif.partial").is_dir()
    seen = []
    summary = run(progress=lambda fraction, message="": seen.append(message))
    assert summary["resumed_windows"] == 2
    assert f"Resuming: 2 of {count} windows already done" in seen
    assert f"Window 1 of {count}" not in seen and f"Window 3 of {count}" in seen
    np.testing.assert_array_equal(_read(output), _read(reference))
    assert summary["n_predicted"] == int((_read(reference)[0] != NODATA).sum())


def test_changed_inputs_start_the_map_afresh(tmp_path, raster_model_path):
    grid = _extent_grid(30.0)
    count = len(grid.windows(64))
    output = tmp_path / "soc.tif"

    def interrupt(fraction: float, message: str = "") -> None:
        if message == f"Window 2 of {count}":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict_grid(
            raster_model_path, grid, output, rasters=la_libertad_rasters(), window_size=64, progress=interrupt
        )
    # Another window size is another set of windows: nothing is reused.
    summary = predict_grid(raster_model_path, grid, output, rasters=la_libertad_rasters(), window_size=128)
    assert summary["resumed_windows"] == 0


def test_cancelled_map_leaves_nothing(tmp_path, raster_model_path):
    count = len(_extent_grid(30.0).windows(64))

    def cancel(fraction: float, message: str = "") -> None:
        if message == f"Window 2 of {count}":
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        predict_grid(
            raster_model_path,
            _extent_grid(30.0),
            tmp_path / "soc.tif",
            rasters=la_libertad_rasters(),
            window_size=64,
            progress=cancel,
        )
    assert not list(tmp_path.iterdir())


def test_a_missing_output_folder_is_named_and_not_created(tmp_path, raster_model_path):
    output = tmp_path / "missing" / "soc.tif"
    with pytest.raises(OutputError, match=r"the folder .*missing. does not exist"):
        predict_grid(raster_model_path, _extent_grid(30.0), output, rasters=la_libertad_rasters())
    assert not output.parent.exists()
