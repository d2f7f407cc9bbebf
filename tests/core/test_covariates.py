from __future__ import annotations

import numpy as np
import pytest
from pyogrio.raw import read

from soilcarbon_core.covariates import sample_covariates
from soilcarbon_core.errors import NoValidSamplesError
from soilcarbon_core.io.rasters import RasterSource

from .conftest import HUNTER_CRS, HUNTER_POINTS, LA_LIBERTAD, hunter_raster


def test_job_writes_values_flag_and_problem(tmp_path, grid_raster):
    partial = grid_raster(np.ones((4, 4)))  # covers none of the Hunter points
    output = tmp_path / "sampled.gpkg"
    summary = sample_covariates(
        HUNTER_POINTS,
        [RasterSource(hunter_raster("Elevation"), "dem"), RasterSource(partial, "tiny")],
        output,
        crs=HUNTER_CRS,
    )
    assert summary["n_points"] == 506 and summary["n_valid"] == 0
    assert summary["rasters"][1]["n_outside"] == 506
    meta, _, _, data = read(output, layer="samples")
    fields = dict(zip(meta["fields"], data, strict=True))
    assert {"X", "Y", "pH60_100cm", "dem", "tiny", "valid", "problem"} <= set(fields)
    assert (fields["valid"] == 0).all()
    assert set(fields["problem"]) == {"outside: tiny"}
    np.testing.assert_allclose(fields["dem"][:3], fields["Elevation"][:3], rtol=2e-6)


def test_attribute_names_are_never_overwritten(tmp_path):
    raster = RasterSource(hunter_raster("Elevation"), "Elevation")  # the CSV already has 'Elevation'
    summary = sample_covariates(HUNTER_POINTS, [raster], tmp_path / "s.gpkg", crs=HUNTER_CRS)
    assert summary["fields"] == ["Elevation_2"]
    assert summary["valid_field"] == "valid"


def test_points_all_outside_every_raster_write_nothing(tmp_path):
    output = tmp_path / "sampled.gpkg"
    with pytest.raises(NoValidSamplesError, match=r"None of the 118 points lies inside any raster") as info:
        # Colombian points (EPSG:32618) against an Australian raster.
        sample_covariates(LA_LIBERTAD / "COSha30.csv", [hunter_raster("Elevation")], output, crs="EPSG:32618")
    assert "'hunterCovariates_sub_Elevation' covers" in str(info.value)
    assert not any(tmp_path.iterdir())
