"""The model's soil graph as a line layer: the edges prediction uses, each drawn between its nodes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import shapely
from pyogrio import read_info
from pyogrio.raw import read
from rasterio.crs import CRS

from soilcarbon_core.cli import main
from soilcarbon_core.errors import Cancelled, OutputError
from soilcarbon_core.graph.export import EDGE_FIELDS, export_graph
from soilcarbon_core.io.points import SamplePoints, read_points
from soilcarbon_core.model import SoilCarbonModel
from soilcarbon_core.nn import SpTGNN
from soilcarbon_core.predictor import attach, reference_graph
from soilcarbon_core.schema import available_features
from soilcarbon_core.worker.protocol import EXIT_OK

from .conftest import LA_LIBERTAD_CRS, LA_LIBERTAD_POINTS, la_libertad_rasters
from .test_worker import request, run


def _layer(path) -> dict[str, np.ndarray]:
    """The layer's fields (NULL as NaN), plus ``start`` and ``end`` ``(E, 2)``: each line's endpoints."""
    meta, _, geometry, values = read(path, layer="graph")
    lines = shapely.from_wkb(geometry)
    assert (shapely.get_num_points(lines) == 2).all()
    ends = shapely.get_coordinates(lines).reshape(-1, 2, 2)
    return {**dict(zip(meta["fields"], values, strict=True)), "start": ends[:, 0], "end": ends[:, 1]}


def _reference_counts(graph) -> dict[str, int]:
    return {name: relation.num_edges // 2 for name, relation in graph.relations.items()}


@pytest.fixture(scope="module")
def model(untrained_model_path) -> SoilCarbonModel:
    return SoilCarbonModel.load(untrained_model_path)


@pytest.fixture(scope="module")
def graph(model):
    """The model's reference graph, built independently of the export."""
    return reference_graph(model.reference, model.normaliser, model.graph_params, geographic=False)


@pytest.fixture(scope="module")
def with_points(untrained_model_path, tmp_path_factory) -> tuple[dict, dict[str, np.ndarray]]:
    """The graph with the La Libertad points attached: (summary, layer)."""
    output = tmp_path_factory.mktemp("graph") / "graph.gpkg"
    summary = export_graph(
        untrained_model_path,
        output,
        points=LA_LIBERTAD_POINTS,
        rasters=la_libertad_rasters(),
        crs=LA_LIBERTAD_CRS,
    )
    return summary, _layer(output)


def test_reference_edges_are_the_graph_s_edges_once_between_their_nodes(
    untrained_model_path, model, graph, tmp_path
):
    output = tmp_path / "graph.gpkg"
    summary = export_graph(untrained_model_path, output)
    layer = _layer(output)
    info = read_info(output, layer="graph")
    assert summary["fields"] == list(info["fields"])
    assert summary["fields"][:5] == list(EDGE_FIELDS) and "distance_m" in summary["fields"][5:]
    assert CRS.from_user_input(info["crs"]) == CRS.from_wkt(summary["crs"]) == CRS.from_wkt(model.schema.crs)
    assert summary["n_query"] == summary["n_query_edges"] == 0 and set(layer["target_kind"]) == {"reference"}
    assert summary["relations"] == _reference_counts(graph) and len(graph.relations) == 3
    for name, relation in graph.relations.items():
        rows = layer["relation"] == name
        source, target = relation.edge_index
        assert rows.sum() == relation.num_edges / 2
        pairs = set(zip(layer["source"][rows], layer["target"][rows], strict=True))
        assert pairs == set(zip(source[source < target], target[source < target], strict=True))
    xy = model.reference.xy
    np.testing.assert_array_equal(layer["start"], xy[layer["source"]])
    np.testing.assert_array_equal(layer["end"], xy[layer["target"]])
    np.testing.assert_allclose(layer["length_m"], np.hypot(*(layer["end"] - layer["start"]).T), rtol=1e-12)
    # Every relation carries distance_m (float32): the same distance.
    np.testing.assert_allclose(layer["distance_m"], layer["length_m"], rtol=1e-6, atol=1e-3)
    spatial, elevation = layer["relation"] == "spatial", layer["relation"] == "elevation"
    assert np.isnan(layer["spectral_distance"][spatial]).all()
    assert np.isnan(layer["elevation_difference_m"][~elevation]).all()
    dz = np.abs(model.reference.elevation[layer["source"]] - model.reference.elevation[layer["target"]])
    np.testing.assert_allclose(layer["elevation_difference_m"][elevation], dz[elevation], rtol=1e-6)


def test_query_edges_are_the_attachment_of_the_points(model, graph, with_points):
    summary, layer = with_points
    points = read_points(LA_LIBERTAD_POINTS, crs=LA_LIBERTAD_CRS)
    table = model.schema.table(points, available_features(points, la_libertad_rasters())[0])
    attached = attach(graph, table, model.normaliser)
    query = layer["target_kind"] == "query"
    assert summary["relations"] == _reference_counts(graph)
    assert summary["n_query"] == summary["n_query_attached"] == len(points) == 118
    assert summary["n_query_edges"] == query.sum() == sum(r.num_edges for r in attached.values())
    for name, relation in attached.items():
        rows = query & (layer["relation"] == name)
        assert rows.sum() == relation.num_edges
        for point in (0, 57, 117):
            expected = relation.edge_index[0, relation.edge_index[1] == point]
            assert sorted(layer["source"][rows & (layer["target"] == point)]) == sorted(expected)
    np.testing.assert_array_equal(layer["start"][query], model.reference.xy[layer["source"][query]])
    np.testing.assert_array_equal(layer["end"][query], table.xy[layer["target"][query]])
    np.testing.assert_allclose(layer["distance_m"], layer["length_m"], rtol=1e-6, atol=1e-3)


def test_points_prediction_skips_get_no_edges_and_keep_their_row(raster_model_path, tmp_path):
    model = SoilCarbonModel.load(raster_model_path)
    inside = model.reference.xy[3]
    # Row 0 lies outside every raster (no prediction there), row 1 on a reference sample.
    points = SamplePoints.at([0.0, inside[0]], [0.0, inside[1]], CRS.from_user_input(LA_LIBERTAD_CRS))
    output = tmp_path / "graph.gpkg"
    summary = export_graph(raster_model_path, output, points=points, rasters=la_libertad_rasters())
    layer = _layer(output)
    query = layer["target_kind"] == "query"
    assert (summary["n_query"], summary["n_query_attached"]) == (2, 1)
    assert summary["n_query_edges"] == query.sum() > 0 and (layer["target"][query] == 1).all()
    at_itself = query & (layer["relation"] == "spatial") & (layer["source"] == 3)
    assert at_itself.sum() == 1 and layer["length_m"][at_itself] == 0


@pytest.mark.parametrize("stage", ["Attaching", "Wrote"])
def test_cancelling_leaves_nothing(untrained_model_path, tmp_path, stage):
    def cancel(fraction: float, message: str = "") -> None:
        if message.startswith(stage):
            raise Cancelled("Stopped.")

    with pytest.raises(Cancelled):
        export_graph(
            untrained_model_path,
            tmp_path / "graph.gpkg",
            points=LA_LIBERTAD_POINTS,
            rasters=la_libertad_rasters(),
            crs=LA_LIBERTAD_CRS,
            progress=cancel,
        )
    assert not any(tmp_path.iterdir())


def test_output_must_be_a_geopackage(untrained_model_path, tmp_path):
    with pytest.raises(OutputError, match="not a GeoPackage"):
        export_graph(untrained_model_path, tmp_path / "graph.shp")
    assert not any(tmp_path.iterdir())


def test_relations_the_network_does_not_use_are_left_out(model, tmp_path):
    config = dataclasses.replace(model.network.config, relations={"spatial": 1})
    path = dataclasses.replace(model, network=SpTGNN(config)).save(tmp_path / "spatial.zip")
    summary = export_graph(path, tmp_path / "graph.gpkg")
    assert list(summary["relations"]) == ["spatial"] and set(summary["skipped"]) == {"spectral", "elevation"}
    assert summary["fields"] == [*EDGE_FIELDS, "distance_m"]
    assert set(_layer(tmp_path / "graph.gpkg")["relation"]) == {"spatial"}


def test_worker_task(untrained_model_path, graph, with_points, tmp_path):
    params = {
        "model": str(untrained_model_path),
        "points": {"path": str(LA_LIBERTAD_POINTS), "crs": LA_LIBERTAD_CRS},
        "rasters": [{"path": str(r.path), "name": r.name} for r in la_libertad_rasters()],
        "device": "cpu",
        "output": str(tmp_path / "graph.gpkg"),
    }
    code, messages, _ = run(request("build_graph", params))
    assert code == EXIT_OK, messages
    outputs = messages[-1]["outputs"]
    assert outputs["relations"] == _reference_counts(graph) and outputs["layer"] == "graph"
    assert outputs["n_query_edges"] == with_points[0]["n_query_edges"] and outputs["n_query_attached"] == 118
    features = read_info(tmp_path / "graph.gpkg", layer="graph")["features"]
    assert features == sum(outputs["relations"].values()) + outputs["n_query_edges"]


def test_command(untrained_model_path, with_points, tmp_path, capsys):
    rasters = [arg for r in la_libertad_rasters() for arg in ("-r", f"{r.path}={r.name}")]
    output = tmp_path / "graph.gpkg"
    points = [str(LA_LIBERTAD_POINTS), "--crs", LA_LIBERTAD_CRS, *rasters, "--device", "cpu"]
    assert main(["graph", str(untrained_model_path), *points, "-o", str(output)]) == 0
    summary = with_points[0]
    printed = capsys.readouterr().out
    assert f"spatial {summary['relations']['spatial']}," in printed
    assert f"{summary['n_query_edges']} edges attach 118 of 118 points" in printed
    features = read_info(output, layer="graph")["features"]
    assert features == sum(summary["relations"].values()) + summary["n_query_edges"]
    assert main(["graph", str(untrained_model_path), "-o", str(tmp_path / "graph.shp")]) == 1
    assert "is not a GeoPackage path" in capsys.readouterr().err
