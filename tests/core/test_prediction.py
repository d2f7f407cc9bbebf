"""Prediction jobs: points to GeoPackage, grid to GeoTIFF, chunking, devices, cancel."""

from __future__ import annotations

import numpy as np
import pyogrio.raw
import pytest
import rasterio

from soilcarbon_core import predictor as predictor_module
from soilcarbon_core.errors import Cancelled, InputError, SchemaMismatchError
from soilcarbon_core.io.points import read_points
from soilcarbon_core.model import SoilCarbonModel
from soilcarbon_core.prediction import NODATA, predict_grid, predict_points
from soilcarbon_core.predictor import PREDICTION_FIELDS
from soilcarbon_core.schema import available_features

from .conftest import LA_LIBERTAD, LA_LIBERTAD_CRS, LA_LIBERTAD_POINTS, la_libertad_rasters


def _table(model):
    points = read_points(LA_LIBERTAD_POINTS, crs=LA_LIBERTAD_CRS)
    values, _, _ = available_features(points, la_libertad_rasters())
    return model.schema.table(points, values)


def test_points_output_has_consistent_uncertainty_fields(tmp_path, untrained_model_path):
    output = tmp_path / "soc.gpkg"
    summary = predict_points(
        untrained_model_path,
        LA_LIBERTAD_POINTS,
        output,
        rasters=la_libertad_rasters(),
        crs=LA_LIBERTAD_CRS,
        device="cpu",
    )
    assert summary["n_points"] == summary["n_predicted"] == 118
    meta, _, _, values = pyogrio.raw.read(output)
    fields = dict(zip(meta["fields"], values, strict=True))
    assert list(PREDICTION_FIELDS) == [f for f in meta["fields"] if f.startswith("pred_")]
    assert "COSha30" in fields  # the points' attributes are kept
    mean, aleatoric, epistemic, total = (fields[f].astype(float) for f in PREDICTION_FIELDS[:4])
    lower, upper = fields["pred_lower90"].astype(float), fields["pred_upper90"].astype(float)
    np.testing.assert_allclose(total**2, aleatoric**2 + epistemic**2, rtol=1e-5)
    # Sigma scaling 1.5 of a Gaussian: the 90 % interval is mean -+ 1.645 * total sd (already scaled).
    np.testing.assert_allclose(upper - mean, 1.6448536 * total, rtol=1e-5)
    np.testing.assert_allclose(mean - lower, upper - mean, rtol=1e-5)
    assert (epistemic > 0).all()


def test_predicting_in_chunks_equals_predicting_at_once(untrained_model_path):
    model = SoilCarbonModel.load(untrained_model_path)
    table = _table(model)
    predictor = model.predictor()
    whole = predictor.predict(table, chunk_size=1000)
    chunked = predictor.predict(table, chunk_size=7)
    np.testing.assert_allclose(chunked.mean, whole.mean, rtol=1e-6)
    np.testing.assert_allclose(chunked.total_sd, whole.total_sd, rtol=1e-6)


@pytest.mark.parametrize("threads", [1, 2])
def test_attaching_in_blocks_equals_attaching_at_once(untrained_model_path, monkeypatch, threads):
    """Blocks of 20 queries a thread (split between threads when there are two) give the 118 points'
    prediction made with one block."""
    model = SoilCarbonModel.load(untrained_model_path)
    table = _table(model)
    predictor = model.predictor()
    whole = predictor.member_predictions(table, attach_size=len(table), threads=threads)
    monkeypatch.setattr(predictor_module, "_ATTACH_PART", 20)
    blocks = predictor.member_predictions(table, threads=threads)
    np.testing.assert_allclose(blocks, whole, rtol=1e-6)


def test_predictor_neighbour_tables_equal_the_attached_edges(untrained_model_path):
    """The predictor's fast path (padded tables straight from the graph) predicts what the network
    predicts from the attached edge lists, and the tables hold exactly the attached edges."""
    import torch

    from soilcarbon_core.predictor import attach, attach_tables

    model = SoilCarbonModel.load(untrained_model_path)
    table = _table(model)
    predictor = model.predictor()
    queries = table.select(np.arange(0, 118, 3))
    queries.elevation[0] = np.nan  # no elevation edges for this query: a row of empty slots
    tables = attach_tables(predictor.graph, queries, model.normaliser)
    edges = attach(predictor.graph, queries, model.normaliser)
    assert set(tables) == set(edges) == {"spatial", "spectral", "elevation"}
    for name, relation in edges.items():
        from_table = tables[name].relation()
        np.testing.assert_array_equal(from_table.edge_index, relation.edge_index)
        np.testing.assert_array_equal(from_table.edge_attr, relation.edge_attr)
        assert (tables[name].attr[tables[name].ids < 0] == 0).all()
    assert (tables["elevation"].ids[0] == -1).all() and (tables["elevation"].ids[1:] >= 0).all()
    means, variances = predictor.member_predictions(queries, chunk_size=5)
    with torch.no_grad():
        reference, _ = predictor.network.reference_states(
            model.normaliser.node_inputs(model.reference),
            predictor._edges(predictor.graph.relations),
            predictor._labels,
        )
        expected = predictor.network.predict_queries(
            model.normaliser.node_inputs(queries), predictor._edges(edges), reference
        )
    scale = model.normaliser.target_std
    np.testing.assert_allclose(means, expected.mean.numpy() * scale + model.normaliser.target_mean, rtol=1e-5)
    np.testing.assert_allclose(variances, expected.variance.numpy() * scale**2, rtol=1e-4)


def test_reference_points_predicted_as_queries_see_themselves(untrained_model_path):
    """A query at a reference point attaches to it at distance 0 (its label is a legitimate neighbour)."""
    model = SoilCarbonModel.load(untrained_model_path)
    table = _table(model)
    graph = model.predictor().graph
    attached = graph.attach(
        table.xy[:5],
        spectral=model.normaliser.similarity_features(table.select(np.arange(5))),
        elevation=table.elevation[:5],
        slope=table.slope[:5],
    )
    spatial = attached["spatial"]
    for query in range(5):
        sources = spatial.edge_index[0, spatial.edge_index[1] == query]
        assert query in sources


def test_grid_output_is_a_six_band_geotiff_with_nodata_outside(tmp_path, raster_model_path):
    template = LA_LIBERTAD / "SRTMGL1_SRTMGL1.2.sdat"
    output = tmp_path / "soc.tif"
    summary = predict_grid(
        raster_model_path, template, output, rasters=la_libertad_rasters(), device="cpu", window_size=64
    )
    with rasterio.open(output) as dataset, rasterio.open(template) as grid:
        assert (dataset.count, dataset.height, dataset.width) == (6, grid.height, grid.width)
        assert dataset.crs == grid.crs and dataset.transform == grid.transform
        assert dataset.descriptions == PREDICTION_FIELDS
        values = dataset.read()
        elevation = grid.read(1, masked=True)
    predicted = values[0] != NODATA
    assert summary["n_predicted"] == predicted.sum() > 0.9 * predicted.size
    # No prediction where the DEM has no data.
    assert not predicted[np.ma.getmaskarray(elevation)].any()
    assert (values[3][predicted] > 0).all()
    assert (values[4][predicted] < values[0][predicted]).all() and (
        values[5][predicted] > values[0][predicted]
    ).all()


def test_grid_prediction_matches_point_prediction_at_cell_centres(tmp_path, raster_model_path):
    template = LA_LIBERTAD / "SRTMGL1_SRTMGL1.2.sdat"
    output = tmp_path / "soc.tif"
    predict_grid(raster_model_path, template, output, rasters=la_libertad_rasters(), device="cpu")
    model = SoilCarbonModel.load(raster_model_path)
    with rasterio.open(output) as dataset:
        band = dataset.read(1)
        rows, cols = np.array([60, 70, 80]), np.array([50, 90, 100])
        xs, ys = rasterio.transform.xy(dataset.transform, rows, cols, offset="center")
    import pandas as pd

    from soilcarbon_core.io.points import SamplePoints

    points = SamplePoints(
        np.asarray(xs),
        np.asarray(ys),
        read_points(LA_LIBERTAD_POINTS, crs=LA_LIBERTAD_CRS).crs,
        pd.DataFrame(index=range(3)),
    )
    values, _, _ = available_features(points, la_libertad_rasters(), method="nearest")
    prediction = model.predictor().predict(model.schema.table(points, values))
    np.testing.assert_allclose(band[rows, cols], prediction.mean, rtol=1e-5)


def test_missing_raster_and_unknown_device_are_clear_errors(tmp_path, untrained_model_path):
    with pytest.raises(SchemaMismatchError, match="'nir' \\(a raster: give it as PATH=nir\\)"):
        predict_points(
            untrained_model_path,
            LA_LIBERTAD_POINTS,
            tmp_path / "x.gpkg",
            rasters=la_libertad_rasters()[:3],
            crs=LA_LIBERTAD_CRS,
            device="cpu",
        )
    with pytest.raises(InputError, match="Unknown device 'tpu'"):
        predict_points(
            untrained_model_path, LA_LIBERTAD_POINTS, tmp_path / "x.gpkg", crs=LA_LIBERTAD_CRS, device="tpu"
        )
    assert not list(tmp_path.iterdir())


def test_cancel_leaves_no_output(tmp_path, raster_model_path):
    def cancel_midway(fraction: float, message: str = "") -> None:
        if fraction > 0.5:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        predict_grid(
            raster_model_path,
            LA_LIBERTAD / "SRTMGL1_SRTMGL1.2.sdat",
            tmp_path / "soc.tif",
            rasters=la_libertad_rasters(),
            device="cpu",
            window_size=32,
            progress=cancel_midway,
        )
    assert not list(tmp_path.iterdir())


def test_a_map_needs_every_covariate_as_a_raster(tmp_path, untrained_model_path):
    with pytest.raises(SchemaMismatchError, match=r"'CO30'.*field.*map needs"):
        predict_grid(
            untrained_model_path,
            LA_LIBERTAD / "SRTMGL1_SRTMGL1.2.sdat",
            tmp_path / "soc.tif",
            rasters=la_libertad_rasters(),
            device="cpu",
        )
    assert not list(tmp_path.iterdir())
