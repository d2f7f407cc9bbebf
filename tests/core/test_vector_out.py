from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyogrio.raw import read
from rasterio.crs import CRS

from soilcarbon_core.errors import Cancelled, OutputError
from soilcarbon_core.io.atomic import atomic_output
from soilcarbon_core.io.points import SamplePoints
from soilcarbon_core.io.vector_out import write_points_gpkg


def make_points(n: int) -> SamplePoints:
    attributes = pd.DataFrame(
        {
            "site": [f"s{i}" if i % 3 else None for i in range(n)],
            "depth": np.arange(n, dtype=np.int64),
            "ph": np.linspace(4.0, 7.0, n),
        }
    )
    return SamplePoints(
        x=np.arange(n, dtype=float),
        y=np.arange(n, dtype=float) * 2,
        crs=CRS.from_epsg(32756),
        attributes=attributes,
    )


def test_round_trip_with_nulls(tmp_path):
    points = make_points(7)
    value = np.array([1.5, np.nan, 3.0, 4.0, np.nan, 6.0, 7.0])
    path = write_points_gpkg(tmp_path / "out.gpkg", points, {"soc": value}, chunk_size=3)
    meta, _, geometry, data = read(path, layer="samples")
    assert meta["fields"].tolist() == ["site", "depth", "ph", "soc"]
    assert CRS.from_user_input(meta["crs"]).to_epsg() == 32756
    assert len(geometry) == 7
    soc = data[3]
    np.testing.assert_array_equal(np.isnan(soc), np.isnan(value))  # NULL, not 0
    assert data[0][0] is None and data[0][1] == "s1"
    assert list(data[1]) == list(range(7))


def test_cancel_midway_leaves_nothing_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "out.gpkg"
    path.write_bytes(b"previous result")
    calls = []

    def cancel_on_second_chunk(fraction: float, message: str = "") -> None:
        calls.append(fraction)
        if len(calls) == 2:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        write_points_gpkg(
            path, make_points(10), {"v": np.ones(10)}, chunk_size=3, progress=cancel_on_second_chunk
        )
    assert path.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.gpkg"]


def test_atomic_output_refuses_missing_folder(tmp_path):
    with (
        pytest.raises(OutputError, match=r"folder .* does not exist"),
        atomic_output(tmp_path / "no" / "x.gpkg"),
    ):
        pass


def test_result_fields_may_not_replace_attributes(tmp_path):
    with pytest.raises(OutputError, match="ph"):
        write_points_gpkg(tmp_path / "out.gpkg", make_points(2), {"ph": np.ones(2)})
    assert not any(tmp_path.iterdir())
