"""train / predict / evaluate end to end through the command line, on the bundled La Libertad data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from soilcarbon_core.cli import main
from soilcarbon_core.errors import SchemaMismatchError
from soilcarbon_core.model import SoilCarbonModel

DATA = Path(__file__).resolve().parents[2] / "data" / "la_libertad"
POINTS = str(DATA / "COSha30.csv")
RASTERS = [
    "--raster",
    f"{DATA}/SRTMGL1_SRTMGL1.2.sdat=elevation",
    "--raster",
    f"{DATA}/SRTMGL1_SRTMGL1.2_slope.sdat=slope",
    "--raster",
    f"{DATA}/SRTMGL1_SRTMGL1.2_twi.sdat=twi",
]
IMAGERY = [f"{DATA}/GlobalForestChange2000-2014_first_{b}L00.tif=landsat_{b}" for b in ("RED", "NIR")]
TRAIN = [
    "--crs",
    "EPSG:32618",
    "--target",
    "COSha30",
    "--unit",
    "t/ha",
    *RASTERS,
    *[arg for path in IMAGERY for arg in ("--imagery", path)],
    "--elevation",
    "elevation",
    "--slope",
    "slope",
    "--members",
    "2",
    "--epochs",
    "3",
    "--device",
    "cpu",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("model") / "soc.zip"
    assert main(["train", POINTS, *TRAIN, "-o", str(output)]) == 0
    return output


def test_train_writes_a_model_that_describes_itself(trained):
    model = SoilCarbonModel.load(trained)
    assert model.schema.covariates == ["elevation", "slope", "twi"]
    assert model.schema.imagery == ["landsat_RED", "landsat_NIR"]
    assert model.network.config.members == 2
    assert sorted(model.network.config.relations) == ["elevation", "spatial", "spectral"]
    assert len(model.reference_target) == 118  # every labelled sample is a reference node
    assert model.training["fit_samples"] + model.training["validation_samples"] == 118
    assert set(model.metrics["validation"]) >= {"r2", "rmse", "picp90", "ece", "crps"}
    assert model.calibrator.to_dict()["method"] == "isotonic"  # the default, fitted on validation only
    lower, upper = model.calibrator.interval(np.zeros(3), np.ones(3), 0.9)
    assert (lower < 0).all() and (upper > 0).all()


def test_predict_points_and_grid_from_the_command_line(trained, tmp_path, capsys):
    rasters = [*RASTERS, *[arg for path in IMAGERY for arg in ("--raster", path)]]
    points = tmp_path / "soc.gpkg"
    assert main(["predict", str(trained), POINTS, "--crs", "EPSG:32618", *rasters, "-o", str(points)]) == 0
    assert "at 118 of 118 places" in capsys.readouterr().out
    grid, png = tmp_path / "soc.tif", tmp_path / "soc.png"
    assert (
        main(
            [
                "predict",
                str(trained),
                "--grid",
                f"{DATA}/SRTMGL1_SRTMGL1.2.sdat",
                *rasters,
                "-o",
                str(grid),
                "--plot",
                str(png),
            ]
        )
        == 0
    )
    assert grid.stat().st_size > 0 and png.read_bytes()[:4] == b"\x89PNG"


def test_predict_without_a_raster_the_model_needs_is_a_one_line_error(trained, tmp_path, capsys):
    assert (
        main(
            ["predict", str(trained), POINTS, "--crs", "EPSG:32618", *RASTERS, "-o", str(tmp_path / "x.gpkg")]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "'landsat_RED' (a raster: give it as PATH=landsat_RED)" in err
    assert "Traceback" not in err
    assert not (tmp_path / "x.gpkg").exists()


def test_train_with_an_unknown_target_names_the_fields(tmp_path, capsys):
    assert (
        main(["train", POINTS, *TRAIN[:2], "--target", "SOC", *RASTERS, "-o", str(tmp_path / "m.zip")]) == 1
    )
    err = capsys.readouterr().err
    assert "no field 'SOC'" in err and "COSha30" in err


def test_evaluate_writes_json_markdown_and_plots(tmp_path):
    output = tmp_path / "report"
    assert (
        main(
            [
                "evaluate",
                POINTS,
                *TRAIN,
                "--cv",
                "spatial",
                "--folds",
                "3",
                "--block-size",
                "600",
                "-o",
                str(output),
            ]
        )
        == 0
    )
    report = json.loads((output / "report.json").read_text())
    assert report["samples"] == 118 and report["folds"] == 3 and report["block_size_m"] == 600
    assert set(report["metrics"]) >= {"r2", "rmse", "mape", "nll", "crps", "picp90", "ece", "ence"}
    assert 0.0 <= report["metrics"]["picp90"] <= 1.0
    assert "calibration.png" in (output / "report.md").read_text()
    for png in ("calibration.png", "intervals.png"):
        assert (output / png).read_bytes()[:4] == b"\x89PNG"


def test_a_multi_band_imagery_raster_feeds_the_imagery_stream_by_its_name(tmp_path):
    import rasterio

    from soilcarbon_core.io.rasters import RasterSource
    from soilcarbon_training.jobs import prepare_data

    stacked = tmp_path / "landsat.tif"
    bands = [DATA / f"GlobalForestChange2000-2014_first_{b}L00.tif" for b in ("RED", "NIR")]
    with rasterio.open(bands[0]) as first:
        profile = {**first.profile, "count": 2, "driver": "GTiff"}
    with rasterio.open(stacked, "w", **profile) as out:
        for index, (path, description) in enumerate(zip(bands, ("RED", "NIR"), strict=True), start=1):
            with rasterio.open(path) as band:
                out.write(band.read(1), index)
            out.set_band_description(index, description)
    data = prepare_data(
        POINTS,
        target="COSha30",
        rasters=[RasterSource(DATA / "SRTMGL1_SRTMGL1.2.sdat", "elevation")],
        imagery=[RasterSource(stacked, "landsat")],
        crs="EPSG:32618",
    )
    assert data.schema.imagery == ["landsat_RED", "landsat_NIR"]
    assert data.schema.covariates == ["elevation"]
    assert data.schema.rasters == {
        "elevation": "elevation",
        "landsat_RED": "landsat",
        "landsat_NIR": "landsat",
    }
    assert data.table.imagery.shape == (118, 2)
    with pytest.raises(SchemaMismatchError, match=r"'landsat_RED' \(a raster: give it as PATH=landsat\)"):
        data.schema.require({"elevation": data.table.covariates[:, 0]}, data.points)


@pytest.fixture(scope="module")
def elevation_data():
    """The La Libertad samples with one covariate, elevation, for train_model called directly."""
    from soilcarbon_core.io.rasters import RasterSource
    from soilcarbon_training.jobs import prepare_data

    return prepare_data(
        POINTS,
        target="COSha30",
        rasters=[RasterSource(DATA / "SRTMGL1_SRTMGL1.2.sdat", "elevation")],
        crs="EPSG:32618",
    )


def test_train_with_plots_writes_validation_and_learning_curve_pngs(elevation_data, tmp_path):
    from soilcarbon_training.jobs import train_model
    from soilcarbon_training.trainer import TrainConfig

    data = elevation_data
    result = train_model(
        data,
        tmp_path / "soc.zip",
        target="COSha30",
        members=2,
        train_config=TrainConfig(epochs=3, batch_size=64),
        device="cpu",
        plots=tmp_path / "plots",
    )
    assert set(result["plots"]) == {"calibration", "intervals", "learning_curve"}
    for name, path in result["plots"].items():
        assert Path(path) == tmp_path / "plots" / f"{name}.png"
        assert Path(path).read_bytes()[:4] == b"\x89PNG"
    assert not list((tmp_path / "plots").glob(".*partial*"))  # written atomically, nothing left over
    # Without the option nothing more is written.
    again = train_model(
        data, tmp_path / "again.zip", target="COSha30", members=1, train_config=TrainConfig(epochs=1)
    )
    assert again["plots"] == {} and sorted(p.name for p in tmp_path.iterdir()) == [
        "again.zip",
        "plots",
        "soc.zip",
    ]


def test_the_run_seed_reaches_the_initial_weights(elevation_data, tmp_path):
    from soilcarbon_training.jobs import train_model
    from soilcarbon_training.trainer import TrainConfig

    output = tmp_path / "seeded.zip"
    train_model(
        elevation_data, output, target="COSha30", members=1, train_config=TrainConfig(epochs=1, seed=7)
    )
    assert SoilCarbonModel.load(output).network.config.seed == 7
