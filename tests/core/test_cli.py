from __future__ import annotations

import re

import numpy as np
import rasterio
from pyogrio.raw import read

from soilcarbon_core.cli import main

from .conftest import HUNTER_CRS, HUNTER_POINTS, LA_LIBERTAD, hunter_raster, la_libertad_rasters


def test_sample_command_writes_output_and_plot(tmp_path, capsys):
    output, plot = tmp_path / "out.gpkg", tmp_path / "out.png"
    code = main(
        [
            "sample",
            str(HUNTER_POINTS),
            "--crs",
            HUNTER_CRS,
            "-r",
            f"{hunter_raster('TWI')}=wetness",
            "-r",
            str(hunter_raster("Slope")),
            "-o",
            str(output),
            "--plot",
            str(plot),
        ]
    )
    assert code == 0
    assert "506 points, 506 valid" in capsys.readouterr().out
    meta, _, _, data = read(output)
    fields = dict(zip(meta["fields"], data, strict=True))
    assert np.isclose(fields["wetness"], fields["TWI"], rtol=2e-6).sum() >= 500
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_errors_are_one_line_without_traceback(tmp_path, capsys):
    code = main(
        ["sample", str(LA_LIBERTAD / "COSha30.csv"), "-r", "/nowhere/dem.tif", "-o", str(tmp_path / "o.gpkg")]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines()[-1].startswith(
        "soilcarbon: error: The CSV 'COSha30.csv' has coordinates in 'x'/'y' but no CRS."
    )
    assert "Traceback" not in err
    assert not any(tmp_path.iterdir())


def _variance_cut(out: str) -> float:
    """The percentage in "Expected to cut the area's epistemic variance by X %"."""
    return float(re.search(r"epistemic variance by ([0-9.]+) %", out).group(1))


def test_predict_on_an_extent_and_plan_a_campaign(tmp_path, capsys, raster_model_path):
    rasters = [f"{r.path}={r.name}" for r in la_libertad_rasters()]
    grid = ["--extent", "669500,448500,672500,452000", "--resolution", "60", "--grid-crs", "EPSG:32618"]
    options = [arg for r in rasters for arg in ("-r", r)] + ["--device", "cpu"]
    code = main(["predict", str(raster_model_path), *grid, *options, "-o", str(tmp_path / "soc.tif")])
    assert code == 0
    assert "with uncertainty at" in capsys.readouterr().out
    with rasterio.open(tmp_path / "soc.tif") as dataset:
        assert (dataset.width, dataset.height) == (50, 59)
    plan = ["plan", str(raster_model_path), *grid, *options, "-n", "4", "-o", str(tmp_path / "plan.gpkg")]
    assert main(plan) == 0
    out = capsys.readouterr().out
    assert "4 ranked sites among" in out
    # A noisier new sample (r = 1, the regression's Bayesian update) removes less of the variance.
    assert main([*plan, "--noise-ratio", "1", "--variance-power", "2"]) == 0
    sharpened = _variance_cut(capsys.readouterr().out)
    assert sharpened < _variance_cut(out)
    # gamma reaches the planner too: sharper contrasts put more of the area's variance where the sites go.
    assert main([*plan, "--noise-ratio", "1"]) == 0
    assert _variance_cut(capsys.readouterr().out) < sharpened
    code = main(
        ["plan", str(raster_model_path), "--extent", "0,0,1,1", "-n", "4", "-o", str(tmp_path / "x.gpkg")]
    )
    assert code == 1
    assert "--extent needs --resolution and --grid-crs" in capsys.readouterr().err
