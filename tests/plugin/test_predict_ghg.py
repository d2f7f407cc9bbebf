"""'Predict GHG fluxes' on real fertilised-cropland records of the Soil Respiration Database (SRDB).

The records whose fertiliser level is a plain N dose ('150 kg N/ha', '80 kg N ha-1') and whose crop is
one the model knows give points (their coordinates, EPSG:4326) with an N rate, a crop, MAT, MAP and, where
measured, clay, sand and bulk density: the management table a user would bring.
"""

from __future__ import annotations

import ast
import csv
import re
from collections import defaultdict
from itertools import pairwise

import pytest
from qgis.core import (
    QgsFeature,
    QgsField,
    QgsGeometry,
    QgsGraduatedSymbolRenderer,
    QgsPointXY,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsStyle,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

from .conftest import DATA, ROOT

ALGORITHM = "soilcarbon:predictghg"
SRDB = DATA / "co2_srdb" / "srdb_agriculture_fertilised.csv"
WEATHER = DATA / "weather_cookfarm" / "cookfarm_weather.csv"
DOSE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*kg\s*N\s*(?:/\s*ha|ha\s*[-−]\s*1)\s*$", re.IGNORECASE)
CROPS = {"Zea mays": "maize", "Triticum aestivum": "wheat", "Oryza sativa": "rice", "Glycine max": "soybean"}
#: Layer field -> SRDB column.
NUMBERS = {"mat": "MAT", "map": "MAP", "clay": "Soil_clay", "sand": "Soil_sand", "bulk_density": "Soil_BD"}
GASES = ("n2o", "co2", "ch4")


def srdb_rows() -> list[dict[str, str]]:
    with SRDB.open(newline="", encoding="utf-8") as handle:
        return [
            row
            for row in csv.DictReader(handle)
            if DOSE.match(row["Manipulation_level"]) and row["Species"] in CROPS and row["Latitude"]
        ]


def number(text: str) -> float | None:
    return float(text) if text.strip() else None


def srdb_layer(rows: list[dict[str, str]], name: str = "srdb", extra: dict | None = None) -> QgsVectorLayer:
    """A memory point layer of SRDB records: record, n_rate, crop, mat, map, clay, sand, bulk_density, and
    ``extra`` fields (name -> list of values)."""
    extra = extra or {}
    layer = QgsVectorLayer("Point?crs=EPSG:4326", name, "memory")
    fields = [QgsField("record", QVariant.Int), QgsField("n_rate", QVariant.Double)]
    fields += [QgsField("crop", QVariant.String)] + [QgsField(f, QVariant.Double) for f in NUMBERS]
    fields += [
        QgsField(f, QVariant.String if isinstance(values[0], str) else QVariant.Double)
        for f, values in extra.items()
    ]
    layer.dataProvider().addAttributes(fields)
    layer.updateFields()
    features = []
    for index, row in enumerate(rows):
        feature = QgsFeature(layer.fields())
        feature.setGeometry(
            QgsGeometry.fromPointXY(QgsPointXY(float(row["Longitude"]), float(row["Latitude"])))
        )
        feature.setAttributes(
            [
                int(row["Record_number"]),
                float(DOSE.match(row["Manipulation_level"]).group(1)),
                CROPS[row["Species"]],
                *(number(row[column]) for column in NUMBERS.values()),
                *(values[index] for values in extra.values()),
            ]
        )
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    QgsProject.instance().addMapLayer(layer)
    return layer


class Messages(QgsProcessingFeedback):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def pushInfo(self, info: str) -> None:
        self.lines.append(info)

    def pushWarning(self, warning: str) -> None:
        self.lines.append(warning)


def run(parameters: dict, feedback=None) -> dict:
    import processing

    return processing.run(ALGORITHM, parameters, feedback=feedback)


def test_field_names_match_the_core():
    """The plugin's driver fields are the core's (read from its source: the plugin cannot import it)."""
    from plugin.algorithms.predict_ghg import FIELD_ALIASES

    source = (ROOT / "soilcarbon_core" / "ghg" / "prediction.py").read_text()
    tree = ast.parse(source)
    node = next(
        n
        for n in tree.body
        if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "FIELD_ALIASES"
    )
    assert ast.literal_eval(node.value) == FIELD_ALIASES


def test_srdb_fluxes_table_and_styled_points(provider, qgis_new_project, tmp_path):
    rows = srdb_rows()
    assert len(rows) > 60
    layer = srdb_layer(rows)
    table_path, points_path = tmp_path / "fluxes.gpkg", tmp_path / "flux_points.gpkg"
    feedback = Messages()
    result = run(
        {"INPUT": layer, "SAMPLES": 128, "OUTPUT": str(table_path), "OUTPUT_POINTS": str(points_path)},
        feedback,
    )
    # No fertiliser type nor dates in SRDB: every point uses defaults, and the log says so.
    assert result["POINTS"] == result["POINTS_WITH_DEFAULTS"] == len(rows)
    assert any("Driver fields read: n_rate ← n_rate, crop ← crop" in line for line in feedback.lines)
    assert any(f"{len(rows)} of {len(rows)} point(s) lack some driver" in line for line in feedback.lines)

    table = QgsVectorLayer(result["OUTPUT"], "table", "ogr")
    points = QgsVectorLayer(result["OUTPUT_POINTS"], "points", "ogr")
    assert table.isValid() and points.isValid()
    assert table.wkbType() == QgsWkbTypes.NoGeometry
    assert QgsWkbTypes.geometryType(points.wkbType()) == QgsWkbTypes.PointGeometry
    assert points.crs().authid() == "EPSG:4326"
    assert table.featureCount() == points.featureCount() == len(rows)
    names = table.fields().names()
    # The points' attributes first, then the fluxes; the point layer holds the same fields.
    own = ["record", "n_rate", "crop", *NUMBERS]
    assert [n for n in names if n != "fid"][: len(own) + 1] == [*own, "n2o_season_mean"]
    assert points.fields().names() == names
    for stem in ("n2o_annual", "co2_season", "ch4_annual"):
        assert {f"{stem}_{s}" for s in ("mean", "sd", "p05", "p95")} <= set(names)
    assert {"co2e_annual_mean", "in_n_rate", "soc_source", "defaults_used"} <= set(names)

    by_record = {f["record"]: f for f in table.getFeatures()}
    srdb = {int(row["Record_number"]): row for row in rows}
    for feature in points.getFeatures():
        same = by_record[feature["record"]]
        assert feature["co2e_annual_mean"] == same["co2e_annual_mean"]  # the table has the same values
        row = srdb[feature["record"]]
        assert feature["in_n_rate"] == float(DOSE.match(row["Manipulation_level"]).group(1))
        if row["MAT"]:
            assert feature["in_mat"] == pytest.approx(float(row["MAT"]))
        assert "fertiliser type unknown" in feature["defaults_used"]
        for gas in GASES:  # (a heavy-tailed predictive distribution may have its mean above p95)
            low, high = feature[f"{gas}_annual_p05"], feature[f"{gas}_annual_p95"]
            assert low < high and feature[f"{gas}_annual_sd"] > 0
        assert feature["n2o_annual_mean"] > 0 and feature["co2_annual_mean"] > 0

    # The N-rate trial at Yangling (China; wheat, records 6375-6379: 0 to 320 kg N/ha, one site): N2O
    # rises with the N applied.
    trial = sorted(
        (f["in_n_rate"], f["n2o_annual_mean"]) for f in table.getFeatures() if 6375 <= f["record"] <= 6379
    )
    assert [rate for rate, _ in trial] == [0, 80, 160, 240, 320]
    assert all(a < b for (_, a), (_, b) in pairwise(trial))
    # Rice stands flooded by default and emits CH4; upland crops take it up or emit far less.
    ch4 = defaultdict(list)
    for feature in table.getFeatures():
        ch4[feature["crop"]].append(feature["ch4_annual_mean"])
    assert min(ch4["rice"]) > max(ch4["wheat"] + ch4["maize"])

    # Styles: units in the aliases (both outputs), the points graduated on the annual CO2-equivalent with
    # YlOrRd (not the SOC ramp) and the unit in the legend; saved beside the files and loaded with them.
    assert table_path.with_suffix(".qml").is_file() and points_path.with_suffix(".qml").is_file()
    reloaded = QgsVectorLayer(result["OUTPUT_POINTS"], "again", "ogr")
    renderer = reloaded.renderer()
    assert isinstance(renderer, QgsGraduatedSymbolRenderer)
    assert renderer.classAttribute() == "co2e_annual_mean"
    classes = renderer.ranges()  # (kept: the symbols belong to these copies)
    assert len(classes) == 5 and classes[-1].label().endswith("kg CO2-eq/ha")
    assert classes[0].symbol().color() == QgsStyle.defaultStyle().colorRamp("YlOrRd").color(0)
    for layer_again in (reloaded, QgsVectorLayer(result["OUTPUT"], "table again", "ogr")):
        fields = layer_again.fields()
        assert fields.field("n2o_annual_mean").alias() == "n2o_annual_mean (kg N2O-N/ha)"
        assert fields.field("co2_season_sd").alias() == "co2_season_sd (kg CO2-C/ha)"
        assert fields.field("co2e_annual_mean").alias() == "co2e_annual_mean (kg CO2-eq/ha)"


def test_weather_and_soc_from_a_prediction(provider, qgis_new_project, tmp_path):
    """The Cook Farm (Pullman, WA) daily weather drives the northern US wheat records; SOC comes from the
    fields a 'Predict SOC at points' run writes (in g/kg) and its sd is sampled."""
    rows = [row for row in srdb_rows() if row["Country"] == "USA" and CROPS[row["Species"]] == "wheat"]
    assert len(rows) >= 3
    soc = {"pred_mean": [18.0 + i for i in range(len(rows))], "pred_sd_total": [4.0] * len(rows)}
    layer = srdb_layer(rows, "us wheat", soc)
    feedback = Messages()
    result = run(
        {
            "INPUT": layer,
            "WEATHER": str(WEATHER),
            "SOC_FIELD": "pred_mean",
            "SOC_SD_FIELD": "pred_sd_total",
            "SOC_UNIT": 1,  # g/kg
            "SAMPLES": 64,
            "OUTPUT": "TEMPORARY_OUTPUT",
            "OUTPUT_POINTS": str(tmp_path / "points.gpkg"),
        },
        feedback,
    )
    assert any("Climate from the daily weather 'cookfarm_weather.csv'" in line for line in feedback.lines)
    assert any("SOC from fields 'pred_mean'/'pred_sd_total' (g/kg)" in line for line in feedback.lines)
    table = result["OUTPUT"]  # a temporary layer: a table without geometry
    assert table.wkbType() == QgsWkbTypes.NoGeometry and table.featureCount() == len(rows)
    climates = set()
    for feature in table.getFeatures():
        assert feature["in_soc"] == pytest.approx(feature["pred_mean"] / 10)  # g/kg -> %
        assert feature["soc_sd_used"] == pytest.approx(0.4)
        assert feature["soc_source"] == "sptgnn: mean and sd sampled"
        assert "climate unknown" not in feature["defaults_used"]
        climates.add((round(feature["in_mat"], 6), round(feature["in_map"], 3)))
    # Pullman's climate over 2011-2012 (about 9 °C, 450-550 mm), the same series for every point.
    ((mat, annual_precip),) = climates
    assert 5 < mat < 13 and 250 < annual_precip < 900


def test_bad_inputs_are_named(provider, qgis_new_project, tmp_path):
    rows = srdb_rows()[:3]
    out = {"OUTPUT": "TEMPORARY_OUTPUT", "OUTPUT_POINTS": "TEMPORARY_OUTPUT", "SAMPLES": 16}
    negative = srdb_layer(rows, "negative")
    negative.dataProvider().changeAttributeValues({2: {1: -20.0}})  # the second feature's n_rate
    guano = srdb_layer(rows, "guano", {"fertiliser": ["urea", "AN", "guano"]})
    no_n = srdb_layer(rows, "no n rate")
    no_n.dataProvider().deleteAttributes([1])
    no_n.updateFields()
    cases = [
        ({"INPUT": negative}, r"The N rate \('n_rate'\) is negative at row\(s\) 2"),
        ({"INPUT": guano}, r"Row 3, field 'fertiliser': Unknown fertiliser type 'guano'"),
        ({"INPUT": no_n}, r"The points layer 'no n rate' has no N rate field \(looked for n_rate, n_input"),
        ({"INPUT": negative, "SOC_SD_FIELD": "mat"}, r"An SOC sd field \('mat'\) needs the SOC field"),
        ({"INPUT": negative, "MODEL": str(SRDB)}, "is not a model file"),
    ]
    for changes, message in cases:
        with pytest.raises(QgsProcessingException, match=message):
            run({**out, **changes})
