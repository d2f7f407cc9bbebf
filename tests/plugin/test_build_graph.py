"""'Build soil graph' on the model the worker trained on the La Libertad samples."""

from __future__ import annotations

import csv
from collections import Counter

import pytest
from qgis.core import (
    NULL,
    QgsCategorizedSymbolRenderer,
    QgsProcessingException,
    QgsProcessingFeatureSourceDefinition,
    QgsProject,
    QgsVectorLayer,
    QgsWkbTypes,
)

from .conftest import LA_LIBERTAD_POINTS, LA_LIBERTAD_RASTERS

ALGORITHM = "soilcarbon:buildgraph"
COUNTS = {"spatial": "SPATIAL_EDGES", "spectral": "SPECTRAL_EDGES", "elevation": "ELEVATION_EDGES"}


def run(parameters: dict) -> dict:
    import processing

    return processing.run(ALGORITHM, parameters)


def samples() -> set[tuple[float, float]]:
    with open(LA_LIBERTAD_POINTS, newline="") as handle:
        return {(float(row["x"]), float(row["y"])) for row in csv.DictReader(handle)}


def ends(feature) -> tuple[tuple[float, float], tuple[float, float]]:
    line = feature.geometry().asPolyline()
    assert len(line) == 2
    return (line[0].x(), line[0].y()), (line[1].x(), line[1].y())


def test_reference_graph_lines_join_the_samples(provider, soc_model, tmp_path):
    output = tmp_path / "graph.gpkg"
    result = run({"MODEL": str(soc_model), "OUTPUT": str(output)})
    layer = QgsVectorLayer(result["OUTPUT"], "graph", "ogr")
    assert layer.isValid()
    assert QgsWkbTypes.geometryType(layer.wkbType()) == QgsWkbTypes.LineGeometry
    assert layer.crs().authid() == "EPSG:32618"
    names = layer.fields().names()
    assert names[names.index("relation") : names.index("relation") + 5] == [
        "relation",
        "source",
        "target",
        "target_kind",
        "length_m",
    ]
    assert "query_fid" not in names

    features = list(layer.getFeatures())
    per_relation = Counter(feature["relation"] for feature in features)
    # The model uses the three relations; each sample has several neighbours in each.
    assert per_relation == {relation: result[key] for relation, key in COUNTS.items()}
    assert min(per_relation.values()) > 118
    assert result["QUERY_EDGES"] == 0
    coordinates = samples()
    for feature in features:
        start, end = ends(feature)
        assert start in coordinates and end in coordinates and start != end
        assert feature["target_kind"] == "reference" and feature["source"] < feature["target"]
        assert feature["length_m"] == pytest.approx(feature.geometry().length(), rel=1e-6)
    # The spatial relation links near neighbours: none longer than the study area (about 40 km).
    assert max(f["length_m"] for f in features if f["relation"] == "spatial") < 40_000

    # The .qml beside the file: categorized by relation, one distinct colour per relation.
    assert output.with_suffix(".qml").is_file()
    reloaded = QgsVectorLayer(result["OUTPUT"], "again", "ogr")
    renderer = reloaded.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer)
    assert renderer.classAttribute() == "relation"
    assert [c.value() for c in renderer.categories()] == ["spatial", "spectral", "elevation"]
    assert len({c.symbol().color().name() for c in renderer.categories()}) == 3


def test_selected_query_points_are_attached_with_their_feature_ids(
    provider, la_libertad_layer, soc_model, tmp_path
):
    chosen = sorted(la_libertad_layer.allFeatureIds())[10:13]
    la_libertad_layer.selectByIds(chosen)
    positions = {
        feature.id(): (feature.geometry().asPoint().x(), feature.geometry().asPoint().y())
        for feature in la_libertad_layer.getFeatures(chosen)
    }
    result = run(
        {
            "MODEL": str(soc_model),
            "INPUT": QgsProcessingFeatureSourceDefinition(la_libertad_layer.id(), selectedFeaturesOnly=True),
            "RASTERS": [str(path) for path in LA_LIBERTAD_RASTERS],
            "OUTPUT": str(tmp_path / "query.gpkg"),
        }
    )
    layer = QgsVectorLayer(result["OUTPUT"], "graph", "ogr")
    query = [f for f in layer.getFeatures() if f["target_kind"] == "query"]
    reference = [f for f in layer.getFeatures() if f["target_kind"] == "reference"]
    assert len(query) == result["QUERY_EDGES"] > 0
    assert {f["query_fid"] for f in query} == set(chosen)  # every selected point is attached
    coordinates = samples()
    for feature in query:
        start, end = ends(feature)
        assert end == positions[feature["query_fid"]]
        assert start in coordinates
        assert feature["length_m"] == pytest.approx(feature.geometry().length(), rel=1e-6)
    assert all(f["query_fid"] == NULL for f in reference)
    assert Counter(f["relation"] for f in reference) == {
        relation: result[key] for relation, key in COUNTS.items() if result[key]
    }


@pytest.mark.parametrize("geometry", ["Polygon", "LineString"])
def test_non_point_input_is_refused_naming_the_layer(provider, qgis_new_project, soc_model, geometry):
    layer = QgsVectorLayer(f"{geometry}?crs=EPSG:32618", f"fields_{geometry}", "memory")
    QgsProject.instance().addMapLayer(layer)
    with pytest.raises(QgsProcessingException, match=f"'fields_{geometry}' is not a point layer"):
        run(
            {
                "MODEL": str(soc_model),
                "INPUT": layer,
                "RASTERS": [str(path) for path in LA_LIBERTAD_RASTERS],
                "OUTPUT": "TEMPORARY_OUTPUT",
            }
        )
