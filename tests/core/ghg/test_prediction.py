"""`soilcarbon ghg predict`: the flux table from points with management fields, with the shipped model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import pytest

from soilcarbon_core.cli import main
from soilcarbon_core.errors import InputError, ModelFileError
from soilcarbon_core.ghg.features import FEATURE_NAMES, feature_index
from soilcarbon_core.ghg.model import PRETRAINED, GHGModel
from soilcarbon_core.ghg.prediction import GHGInputs, ghg_table, management_features
from soilcarbon_core.io.points import read_points
from soilcarbon_core.worker.tasks import TaskContext, ghg_predict

REPO = Path(__file__).resolve().parents[3]
WEATHER = REPO / "data" / "weather_cookfarm" / "cookfarm_weather.csv"
# Cook Agronomy Farm, Pullman, Washington (the weather station of the bundled daily series).
FIELDS = """lon,lat,name,n_rate,fertiliser,crop,planting_date,harvest_date,soc,clay,sand,ph,bulk_density
-117.082,46.781,wheat urea,120,urea,wheat,2011-04-20,2011-08-25,1.9,22,12,6.1,1.25
-117.085,46.783,wheat no N,0,,wheat,2011-04-20,2011-08-25,1.9,22,12,6.1,1.25
-117.080,46.779,maize manure,200,manure,maize,2011-05-05,2011-09-30,2.4,25,10,6.4,1.2
-117.083,46.784,unknown management,150,,,,,,,,,
"""


@pytest.fixture(scope="module")
def model():
    return GHGModel.load()


@pytest.fixture
def points_csv(tmp_path):
    path = tmp_path / "fields.csv"
    path.write_text(FIELDS)
    return path


def test_shipped_model_is_small_and_describes_itself(model):
    assert PRETRAINED.stat().st_size < 3_000_000
    manifest = model.manifest()
    assert manifest["predicts"]["units"] == {"n2o": "kg N2O-N/ha", "co2": "kg CO2-C/ha", "ch4": "kg CH4-C/ha"}
    assert [f["name"] for f in manifest["features"]] == list(FEATURE_NAMES)
    assert model.training["simulations"]["site_years"] >= 100_000
    assert model.training["simulations"]["countries"] == 47


def test_cli_writes_the_flux_table(points_csv, tmp_path, capsys):
    out = tmp_path / "fluxes.gpkg"
    assert (
        main(
            ["ghg", "predict", str(points_csv), "--weather", str(WEATHER), "-o", str(out), "--samples", "128"]
        )
        == 0
    )
    table = pyogrio.read_dataframe(out, layer="ghg_fluxes")
    assert len(table) == 4 and list(table["name"]) == [
        "wheat urea",
        "wheat no N",
        "maize manure",
        "unknown management",
    ]
    for gas in ("n2o", "co2", "ch4"):
        for period in ("season", "annual"):
            stem = f"{gas}_{period}"
            assert (table[f"{stem}_p05"] <= table[f"{stem}_mean"] + 1e-9).all()
            assert (table[f"{stem}_mean"] <= table[f"{stem}_p95"] + 1e-9).all()
            assert (table[f"{stem}_sd"] > 0).all()
    assert (table["n2o_annual_mean"] > 0).all() and (table["co2_annual_mean"] > 0).all()
    # Fertilised wheat emits more N2O than the same field without N.
    assert table["n2o_annual_mean"][0] > table["n2o_annual_mean"][1]
    # CO2-eq of N2O: 273 x 44/28 per kg N2O-N (on the samples, so equal on the means).
    np.testing.assert_allclose(table["co2e_n2o_annual"], table["n2o_annual_mean"] * 273 * 44 / 28, rtol=1e-9)
    # Driving values used: the weather's climate (Pullman: about 9 C, 450-550 mm in 2011-2012).
    assert table["in_mat"].between(5, 13).all() and table["in_map"].between(250, 900).all()
    assert table["in_n_rate"].tolist() == [120, 0, 200, 150]
    assert table["defaults_used"][0] == "irrigated defaulted to 0; flooded defaulted to 1 for rice, else 0"
    assert (
        "fertiliser type unknown" in table["defaults_used"][3] and "crop unknown" in table["defaults_used"][3]
    )
    assert "kg N2O-N/ha" in capsys.readouterr().out


def test_soc_uncertainty_propagates(model, points_csv):
    points = read_points(points_csv)
    points.attributes["soc_mean"] = 19.0  # g/kg, as an SpTGNN map of ORCDRC
    points.attributes["soc_sd"] = [0.0, 0.0, 0.0, 0.0]
    fixed, _ = ghg_table(
        model, points, GHGInputs(soc_field="soc_mean", soc_sd_field="soc_sd", soc_unit="g/kg"), samples=512
    )
    points.attributes["soc_sd"] = 8.0
    sampled, summary = ghg_table(
        model, points, GHGInputs(soc_field="soc_mean", soc_sd_field="soc_sd", soc_unit="g/kg"), samples=512
    )
    np.testing.assert_allclose(fixed["in_soc"], 1.9)  # g/kg -> %
    assert (sampled["soc_source"] == "sptgnn: mean and sd sampled").all()
    assert (sampled["soc_sd_used"] == 0.8).all()
    assert any("SOC from fields" in note for note in summary["notes"])
    assert not np.allclose(sampled["n2o_annual_sd"], fixed["n2o_annual_sd"])


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("n_rate", "-20", "negative"),
        ("n_rate", "", "empty"),
        ("fertiliser", "guano", "Unknown fertiliser type 'guano'"),
        ("crop", "banana", "Unknown crop 'banana'"),
        ("planting_date", "spring", "not dates"),
        ("ph", "45", "outside"),
    ],
)
def test_bad_fields_are_named(model, points_csv, column, value, message):
    points = read_points(points_csv)
    points.attributes[column] = points.attributes[column].astype(object)
    points.attributes.loc[0, column] = value if value else None
    with pytest.raises(InputError, match=message):
        ghg_table(model, points)


def test_missing_n_rate_field_and_defaults():
    with pytest.raises(InputError, match="no N rate field"):
        management_features(pd.DataFrame({"crop": ["rice"]}))
    x, flags, _ = management_features(
        pd.DataFrame({"n_input": [100.0], "crop": ["Rice"], "fertilizer": ["AN"]})
    )
    assert x[0, feature_index("flooded_days")] == 120.0  # rice defaults to a flooded paddy
    assert x[0, feature_index("ammonium_share")] == 0.5
    assert "flooded defaulted to 1 for rice, else 0" in flags[0]


def test_no_weather_leaves_climate_unknown_and_flags_it(model, points_csv):
    table, _ = ghg_table(model, read_points(points_csv), samples=64)
    assert table["in_mat"].isna().all()
    assert table["defaults_used"].str.contains("climate unknown").all()
    assert np.isfinite(table["n2o_annual_mean"]).all()


def test_model_kinds_are_not_confused(tmp_path):
    from soilcarbon_core.model_files import save_model_files

    save_model_files(tmp_path / "soc", {"kind": "sptgnn"}, {})
    with pytest.raises(ModelFileError, match="not a GHG model"):
        GHGModel.load(tmp_path / "soc")
    from soilcarbon_core.model import SoilCarbonModel

    with pytest.raises(ModelFileError, match="is a GHG flux model"):
        SoilCarbonModel.load(PRETRAINED)


def test_worker_task_and_csv_output(points_csv, tmp_path):
    messages = []
    out = tmp_path / "fluxes.csv"
    result = ghg_predict(
        {"points": str(points_csv), "output": str(out), "weather": str(WEATHER), "samples": 64},
        TaskContext(progress=lambda f, m: None, log=messages.append),
    )
    table = pd.read_csv(out)
    assert result["points"] == 4 and "n2o_season_mean" in table.columns and "name" in table.columns
