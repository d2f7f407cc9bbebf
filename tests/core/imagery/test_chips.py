"""Chips from the real Sentinel-2 L1C tile 18SVG (uint16, EPSG:32618): exact nearest values, the same ground
from rasters in other CRSs, band naming, units, nodata and extent."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin, rowcol
from rasterio.warp import Resampling, calculate_default_transform, reproject, transform
from rasterio.windows import Window, bounds

from soilcarbon_core.errors import InputError
from soilcarbon_core.imagery import chips as chips_module
from soilcarbon_core.imagery.chips import check_chip_size, chip_centres, extract_chips, utm_crs
from soilcarbon_core.imagery.modalities import MODALITIES, modality
from soilcarbon_core.imagery.sources import modality_rasters

DATA = Path(__file__).resolve().parents[3] / "data"
S2 = DATA / "s2_l1c_sample"
TILE = "EPSG:32618"
#: The bundled bands by TerraMind name, in TerraMind's S2L1C order.
SUBSET = ["COASTAL_AEROSOL", "RED_EDGE_1", "NIR_NARROW", "SWIR_1", "SWIR_2"]
FILES = {b: S2 / f"s2_{i}.tif" for b, i in zip(SUBSET, ("B01", "B05", "B8A", "B11", "B12"), strict=True)}
# UTM points 5 m off the 10 m lattice: the tile's cell edges are multiples of 20 m (60 m for B01), so every
# 10 m chip pixel centre lies 5 m inside a source cell.
POINTS = np.array([[441_235.0, 4_171_005.0], [447_865.0, 4_165_455.0], [452_005.0, 4_176_125.0]])
#: Origin of the generated 10 m rasters (inside the tile's UTM zone): cell (r, c) is centred at
#: (ORIGIN_X + 5 + 10 c, ORIGIN_Y - 5 - 10 r).
ORIGIN_X, ORIGIN_Y = 440_000.0, 4_171_000.0


def lonlat_of(xy: np.ndarray, crs: str = TILE) -> np.ndarray:
    lon, lat = transform(crs, "EPSG:4326", xy[:, 0], xy[:, 1])
    return np.column_stack([lon, lat])


def at_cell(row: int, col: int) -> list[float]:
    """lon/lat of the centre of cell (row, col) of a generated raster."""
    return lonlat_of(np.array([[ORIGIN_X + 5 + 10 * col, ORIGIN_Y - 5 - 10 * row]]))[0].tolist()


def centres(lonlat: np.ndarray, size: int, r: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """UTM 18N centres (N, S, S) of chip pixels as chips.py documents: (x + (j - S/2) r, y - (i - S/2) r)."""
    x, y = transform("EPSG:4326", TILE, lonlat[:, 0], lonlat[:, 1])
    i, j = np.meshgrid((np.arange(size) - size / 2) * r, (np.arange(size) - size / 2) * r, indexing="ij")
    return np.asarray(x)[:, None, None] + j, np.asarray(y)[:, None, None] - i


def source_values(path: Path, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values (as float32) of the cells containing the centres (rasterio's lookup, as ``dataset.index``),
    the cells' ids, and each centre's distance (m) to the nearest cell edge."""
    with rasterio.open(path) as src:
        rows, cols = rowcol(src.transform, xs.ravel(), ys.ravel())  # floor: the cell containing the point
        grid = src.read(1)
        fx = (xs - src.transform.c) / src.res[0]
        fy = (src.transform.f - ys) / src.res[1]
        edge = np.minimum(np.abs(fx - np.round(fx)), np.abs(fy - np.round(fy))) * src.res[0]
    rows, cols = np.reshape(rows, xs.shape), np.reshape(cols, xs.shape)
    return grid[rows, cols].astype(np.float32), rows * 100_000 + cols, edge


def write_raster(path: Path, values: np.ndarray, nodata=None, descriptions=(), crs=TILE, grid=None) -> Path:
    """A GeoTIFF of values (bands, rows, cols), by default on 10 m cells from (ORIGIN_X, ORIGIN_Y)."""
    values = np.asarray(values)
    values = values[None] if values.ndim == 2 else values
    grid = grid or from_origin(ORIGIN_X, ORIGIN_Y, 10.0, 10.0)
    _, height, width = values.shape
    meta = {"count": len(values), "dtype": values.dtype, "crs": crs, "transform": grid, "nodata": nodata}
    with rasterio.open(path, "w", driver="GTiff", height=height, width=width, **meta) as dst:
        dst.write(values)
        for i, text in enumerate(descriptions):
            dst.set_band_description(i + 1, text)
    return path


def test_chip_pixels_are_the_source_cells_under_their_centres(monkeypatch):
    size = 64
    lonlat = lonlat_of(POINTS)
    shuffled = ("SWIR_2", "RED_EDGE_1", "COASTAL_AEROSOL", "SWIR_1", "NIR_NARROW")
    rasters = modality_rasters("S2L1C", [str(FILES[b]) for b in shuffled])
    assert rasters.notes == []  # uint16 reflectance x 10000 is already in TerraMind's units
    chips = extract_chips(lonlat, [rasters], size)
    assert chips.bands == {"S2L1C": SUBSET} and (chips.valid_fraction == 1).all()
    assert chips.values["S2L1C"].shape == (3, 5, size, size)
    xs, ys = centres(lonlat, size)
    crss, got_x, got_y = chip_centres(lonlat, size, 10.0)
    assert all(c == utm_crs(*lonlat[0]) for c in crss) and utm_crs(*lonlat[0]).to_epsg() == 32618
    assert np.abs(got_x - xs).max() < 1e-6 and np.abs(got_y - ys).max() < 1e-6
    for c, band in enumerate(SUBSET):
        expected, cells, edge = source_values(FILES[band], xs, ys)
        assert edge.min() > 1.0  # no centre near a cell edge: nearest has a single right answer
        np.testing.assert_array_equal(chips.values["S2L1C"][:, c], expected, err_msg=band)
        # Pixel centres span 630 m a side: 11-12 cells of 60 m (6 x 6 pixels each) or 32-33 cells of 20 m.
        sides = (11, 12) if band == "COASTAL_AEROSOL" else (32, 33)
        for n in range(3):
            assert np.unique(cells[n]).size in {a * b for a in sides for b in sides}, band
        assert np.unique(expected).size > 50  # real texture, not a constant chip
    # Reading point by point (the path for batches spread over a huge raster) gives the same chips.
    monkeypatch.setattr(chips_module, "_MAX_UNION_CELLS", 100)
    assert np.array_equal(extract_chips(lonlat, [rasters], size).values["S2L1C"], chips.values["S2L1C"])


def reprojected(path: Path, crs: str, resolution: float, out: Path) -> Path:
    """A 3.2 km window of ``path`` warped into ``crs`` (nearest, fine ``resolution``), nodata 0."""
    window = Window(col_off=264, row_off=413, width=160, height=160)  # x 441000-444200, y 4168000-4171200
    with rasterio.open(path) as src:
        data = src.read(1, window=window)
        src_transform, src_crs = src.window_transform(window), src.crs
        box = bounds(window, src.transform)
    dst_transform, w, h = calculate_default_transform(src_crs, crs, 160, 160, *box, resolution=resolution)
    warped = np.zeros((h, w), np.uint16)
    warp = {"src_crs": src_crs, "dst_transform": dst_transform, "dst_crs": crs, "dst_nodata": 0}
    reproject(data, warped, src_transform=src_transform, resampling=Resampling.nearest, **warp)
    return write_raster(out, warped, nodata=0, crs=crs, grid=dst_transform)


@pytest.mark.parametrize(("crs", "resolution"), [("EPSG:4326", 2e-5), ("EPSG:32617", 2.0)])
def test_reprojected_raster_gives_the_same_ground(tmp_path, crs, resolution):
    inside = np.array([[441_805.0, 4_168_805.0], [442_605.0, 4_169_605.0], [443_205.0, 4_170_405.0]])
    size, original = 32, modality_rasters("S2L1C", [str(FILES["RED_EDGE_1"])])
    path = reprojected(FILES["RED_EDGE_1"], crs, resolution, tmp_path / "w_B05.tif")
    warped = modality_rasters("S2L1C", [str(path)])
    assert warped.band_names == ["RED_EDGE_1"]  # from the file name
    native = extract_chips(lonlat_of(inside), [original], size).values["S2L1C"]
    moved = extract_chips(lonlat_of(inside), [warped], size)
    assert moved.present.all() and (moved.valid_fraction == 1).all()
    spread = native.std()
    same = moved.values["S2L1C"] == native
    assert same.mean() >= 0.95, same.mean()  # nearest of nearest at a fine resolution: ~all identical
    assert np.abs(moved.values["S2L1C"] - native).mean() < 0.05 * spread
    # Control: 200 m away the ground differs, so the comparison above can fail.
    shifted = extract_chips(lonlat_of(inside + np.array([200.0, 0.0])), [original], size).values["S2L1C"]
    assert (moved.values["S2L1C"] == shifted).mean() < 0.3
    assert np.abs(moved.values["S2L1C"] - shifted).mean() > 0.2 * spread


def test_band_names_from_files_descriptions_and_specs(tmp_path):
    order = [FILES[b] for b in ("NIR_NARROW", "SWIR_2", "COASTAL_AEROSOL", "SWIR_1", "RED_EDGE_1")]
    for specs in (order, order[::-1]):
        rasters = modality_rasters("S2L1C", [str(p) for p in specs])
        assert rasters.band_names == SUBSET
        assert [(b.path, b.index) for b in rasters.bands] == [(FILES[b], 1) for b in SUBSET]
    unnamed = write_raster(tmp_path / "reflectance.tif", np.full((4, 4), 1000, np.uint16))
    assert modality_rasters("S2L1C", [f"{unnamed}=B05"]).band_names == ["RED_EDGE_1"]
    rng = np.random.default_rng(3)
    stack = rng.integers(100, 5000, (3, 40, 40)).astype(np.uint16)
    described = write_raster(tmp_path / "stack.tif", stack, descriptions=("B11", "B04", "B8A"))
    rasters = modality_rasters("S2L1C", [str(described)])
    assert rasters.band_names == ["RED", "NIR_NARROW", "SWIR_1"]
    assert [b.index for b in rasters.bands] == [2, 3, 1]
    chip = extract_chips(np.array([at_cell(20, 20)]), [rasters], 16).values["S2L1C"][0]
    np.testing.assert_array_equal(chip, stack[[1, 2, 0], 12:28, 12:28])
    bare = write_raster(tmp_path / "bare.tif", stack)
    with pytest.raises(InputError) as err:
        modality_rasters("S2L1C", [str(bare)])
    assert "bare.tif" in err.value.message and "bare.tif=" in err.value.hint
    with pytest.raises(InputError, match="twice"):
        modality_rasters("S2L1C", [str(FILES["RED_EDGE_1"]), f"{unnamed}=rededge1"])
    with pytest.raises(InputError, match="3 band"):
        modality_rasters("S2L1C", [f"{bare}=B04,B08"])
    two = write_raster(tmp_path / "sar.tif", -rng.uniform(5, 20, (2, 8, 8)).astype(np.float32))
    assert modality_rasters("S1GRD", [str(two)]).band_names == ["VV", "VH"]  # full count: TerraMind order


def test_units_are_put_right_and_reported(tmp_path):
    rng = np.random.default_rng(5)
    db = rng.uniform(-25.0, 3.0, (2, 32, 32)).astype(np.float32)  # dB: mostly negative, some bright cells > 0
    linear = write_raster(tmp_path / "s1_linear.tif", (10.0 ** (db / 10.0)).astype(np.float32))
    point = np.array([at_cell(16, 16)])

    def chip(name: str, spec: Path, units: str = "auto"):
        rasters = modality_rasters(name, [str(spec)], units=units)
        return rasters, extract_chips(point, [rasters], 16).values[name][0]

    rasters, values = chip("S1GRD", linear)
    assert [b.conversion for b in rasters.bands] == ["linear_to_db"] * 2
    assert len(rasters.notes) == 2 and all("converted to dB" in n for n in rasters.notes)
    np.testing.assert_allclose(values, db[:, 8:24, 8:24], atol=1e-4)
    rasters, values = chip("S1GRD", write_raster(tmp_path / "s1_db.tif", db))
    assert rasters.notes == [] and np.array_equal(values, db[:, 8:24, 8:24])
    rasters, values = chip("S1GRD", linear, units="db")
    assert rasters.notes == [] and np.allclose(values, 10.0 ** (db[:, 8:24, 8:24] / 10.0))
    reflectance = rng.uniform(0.0, 0.6, (32, 32)).astype(np.float32)
    rasters, values = chip("S2L2A", write_raster(tmp_path / "toa_B04.tif", reflectance))
    assert rasters.band_names == ["RED"] and "x 10000" in rasters.notes[0]
    np.testing.assert_allclose(values[0], reflectance[8:24, 8:24] * 10000.0, rtol=1e-6)
    with pytest.raises(InputError):
        modality_rasters("S1GRD", [str(linear)], units="decibel")


def test_tile_edge_and_outside():
    # The tile's left edge is x = 435720; 16-pixel chip columns j are centred at x + (j - 8) 10. Chips at
    # x = 435745: columns 6-15 inside (10/16 valid); 435715: columns 9-15 (7/16); 430005: outside.
    xs = np.array([435_745.0, 435_715.0, 430_005.0, 445_005.0])
    lonlat = lonlat_of(np.column_stack([xs, np.full(4, 4_170_005.0)]))
    rasters = modality_rasters("S2L1C", [str(FILES["SWIR_1"]), str(FILES["RED_EDGE_1"])])
    chips = extract_chips(lonlat, [rasters], 16)
    np.testing.assert_allclose(chips.valid_fraction[:, 0], [10 / 16, 7 / 16, 0, 1])
    assert chips.present[:, 0].tolist() == [True, False, False, True]
    values = chips.values["S2L1C"]
    assert (values[1:3] == 0).all()
    xs, ys = centres(lonlat[[0, 3]], 16)
    for c, band in enumerate(("RED_EDGE_1", "SWIR_1")):
        expected, _, _ = source_values(FILES[band], xs, ys)
        np.testing.assert_array_equal(values[3, c], expected[1])
        np.testing.assert_array_equal(values[0, c, :, 6:], expected[0, :, 6:])
        np.testing.assert_allclose(values[0, c, :, :6], expected[0, :, 6:].astype(float).mean(), rtol=1e-6)


def test_source_nodata_and_nan_count_as_invalid(tmp_path):
    rng = np.random.default_rng(11)
    values = rng.uniform(-20.0, -5.0, (2, 64, 64)).astype(np.float32)
    values[:, :20] = -9999.0  # rows 0-19 nodata
    values[1, 28, 30] = np.nan  # one band missing: the pixel is invalid in both
    rasters = modality_rasters("S1GRD", [str(write_raster(tmp_path / "s1.tif", values, nodata=-9999.0))])
    chips = extract_chips(np.array([at_cell(24, 32), at_cell(18, 32)]), [rasters], 16)
    # Chip 0 spans rows 16-31: 4 nodata rows + 1 NaN pixel; chip 1 spans rows 10-25: 10 nodata rows.
    np.testing.assert_allclose(chips.valid_fraction[:, 0], [(256 - 65) / 256, 96 / 256])
    assert chips.present[:, 0].tolist() == [True, False] and (chips.values["S1GRD"][1] == 0).all()
    window = values[:, 16:32, 24:40].astype(np.float64)
    valid = (window[0] != -9999.0) & np.isfinite(window).all(axis=0)
    got = chips.values["S1GRD"][0]
    for c in range(2):
        np.testing.assert_array_equal(got[c][valid], window[c][valid])
        np.testing.assert_allclose(got[c][~valid], window[c][valid].mean(), rtol=1e-6)


def test_missing_coordinates_and_points_in_several_utm_zones(tmp_path):
    """A 1 degree EPSG:4326 world raster whose value is its column: (0, 0), where a missing coordinate
    would land if it were not masked, is data; points in zones 31N and 32S are read in one batch."""
    columns = np.broadcast_to(np.arange(360, dtype=np.float32), (180, 360))
    world = write_raster(tmp_path / "dem.tif", columns, crs="EPSG:4326", grid=from_origin(-180, 90, 1, 1))
    lonlat = np.array([[np.nan, np.nan], [0.3, np.nan], [0.3, 0.3], [10.5, -20.5]])
    chips = extract_chips(lonlat, [modality_rasters("DEM", [str(world)])], 16)
    assert chips.present[:, 0].tolist() == [False, False, True, True]
    assert chips.valid_fraction[:, 0].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert (chips.values["DEM"][:2] == 0).all()
    assert (chips.values["DEM"][2] == 180).all() and (chips.values["DEM"][3] == 190).all()


def test_chip_size_and_utm_zone():
    for bad in (0, 8, 65):
        with pytest.raises(InputError, match="multiple of 16"):
            check_chip_size(bad)
    for good in (16, 64, 224):
        check_chip_size(good)
    assert utm_crs(*lonlat_of(POINTS[:1])[0]).to_epsg() == 32618
    assert utm_crs(-75.5, -10.0).to_epsg() == 32718 and utm_crs(151.2, -33.9).to_epsg() == 32756
    assert utm_crs(3.0, 0.0).to_epsg() == 32631 and utm_crs(180.0, 10.0).to_epsg() == 32660


def test_modalities_match_terratorch_pretraining():
    """Band order and statistics equal terratorch's TerraMind v1 tables (read from source: importing
    terratorch takes seconds)."""
    spec = importlib.util.find_spec("terratorch")
    if spec is None:
        pytest.skip("terratorch is not installed")
    register = Path(spec.origin).parent / "models/backbones/terramind/model/terramind_register.py"
    names = ("PRETRAINED_BANDS", "v1_pretraining_mean", "v1_pretraining_std")
    tree = ast.parse(register.read_text()).body
    assigns = [n for n in tree if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") in names]
    tables = {n.targets[0].id: ast.literal_eval(n.value) for n in assigns}
    for name, short in {"S2L2A": "sen2l2a", "S2L1C": "sen2l1c", "S1GRD": "sen1grd", "DEM": "dem"}.items():
        kind, key = MODALITIES[name], f"untok_{short}@224"
        assert list(kind.bands) == tables["PRETRAINED_BANDS"][key], name
        assert list(kind.mean) == tables["v1_pretraining_mean"][key], name
        assert list(kind.std) == tables["v1_pretraining_std"][key], name
    l1c = modality("s2l1c")
    assert l1c.statistics(["SWIR_2", "COASTAL_AEROSOL"]) == ([1838.929, 2357.089], [1160.419, 1624.683])
    expected = ["NIR_NARROW", "NIR_BROAD", "NIR_NARROW", "CIRRUS", "SWIR_1"]
    assert [l1c.band(n) for n in ("B8A", "b08", "nir08", "B10", "swir16")] == expected
    with pytest.raises(InputError):
        modality("S2L2A").band("B10")  # no cirrus band in L2A
    with pytest.raises(InputError):
        modality("S3")
