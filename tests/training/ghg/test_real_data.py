from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from soilcarbon_core.ghg.features import CROPS, FEATURE_NAMES, FERTILISER_SHARES, feature_index
from soilcarbon_training.ghg.real_data import (
    CO2_UNIT,
    DATA,
    N2O_UNIT,
    SRDB_COLUMNS,
    SRDB_FILE,
    crop_from_text,
    fertiliser_form,
    parse_n_rate,
    rh_from_rs,
    write_srdb_subset,
)

SHARES = [feature_index(name) for name in FERTILISER_SHARES]


def test_sesync_rows_groups_and_first_row(sesync):
    assert sesync.features.shape == (563, len(FEATURE_NAMES))
    assert np.unique(sesync.groups).size == 107
    assert sesync.unit == N2O_UNIT and sesync.target_name == "n2o"
    # First CSV row: A, group 14, carbon 2.7, n.input 180, emission 0.62.
    row = sesync.features[0]
    assert row[feature_index("soc")] == 2.7 and row[feature_index("n_rate")] == 180.0
    np.testing.assert_array_equal(row[SHARES], [0.0, 1.0, 0.0, 0.0])
    assert sesync.target[0] == 0.62 and sesync.groups[0] == 14
    # Only soc, n_rate and the shares are ever known.
    known = np.flatnonzero(np.isfinite(sesync.features).any(axis=0))
    assert sorted(known) == sorted([feature_index("soc"), feature_index("n_rate"), *SHARES])


def test_sesync_fertiliser_codes(sesync):
    raw = pd.read_csv(DATA / "n2o_sesync" / "N2OEmission.csv")
    shares = sesync.features[:, SHARES]
    unknown = raw["fertilizer"].eq("unknown").to_numpy()
    assert unknown.sum() == 29 and np.isnan(shares[unknown]).all()
    assert np.allclose(shares[~unknown].sum(axis=1), 1.0)
    expected = {"U": [1, 0, 0, 0], "AN": [0, 0.5, 0.5, 0], "UAN": [0.5, 0.25, 0.25, 0], "M": [0, 0, 0, 1]}
    for code, value in expected.items():
        rows = raw["fertilizer"].eq(code).to_numpy()
        np.testing.assert_array_equal(shares[rows], np.tile(value, (rows.sum(), 1)))
    np.testing.assert_array_equal(sesync.target, raw["emission"].to_numpy())


# Real Manipulation_level strings of the SRDB subset and the N rate (kg N/ha) they state.
N_RATE_CASES = [
    ("150 kg N/ha", 150.0),
    ("300 kgN/ha", 300.0),
    ("200 kg N ha−1 as urea, 150 kg P2O5 ha−1", 200.0),
    ("160 kg N hm^1", 160.0),
    ("67–134 kg N ha-1", 100.5),
    ("1351–1577 kg N ha−1 year−1", 1464.0),
    ("102 kg P ha-1, 102 kg K ha-1,  140 kg N ha-1 (NH4NO3) (5/27), 70 kg N ha-1 (NH4NO3) (6/29)", 210.0),
    (
        "0-15cm., 140.25 kg N ha1 & 60.26 kg P ha1 (10/17/2007); 162.75 kg N ha1, 67.0 mm (4/12/2008); "
        "276 kg N ha1, 60.0 mm (7/22/2008)",
        579.0,
    ),
    ("57cm canal depth; 120–150 kg N, 70–85 kg P & 100–120 kg K ha-1", 135.0),
    ("160 Kg N and 36 Kg P ha-1", 160.0),
    ("30 kg N + 60 kg P2O5/ha", 30.0),
    ("with mineral N fertilizer 315 kg−1 N ha−1 y−1 and no warming", 315.0),
    ("200 kg/ha N, 65 kg/ha P2O5", 200.0),
    ("Water applied when 50% plant available water capacity depleted: 275mm/season, 200 kg-N/ha", 200.0),
    ("56 kg/N/ha-1", 56.0),
    (" 170 N kg Nha^-1, 50%", 170.0),
    ("0 kg N ha-1", 0.0),
    ("15 g/N/m2/yr N", 150.0),
    ("13.5 g N/m2", 135.0),
    ("9.2 gN/m2", 92.0),
    ("105 N, 52 P, 120 K kg/ha/yr", 105.0),
    ("270/59/187 N/P/K kg/ha", 270.0),
    ("100-50-116 kg/ha NPK", 100.0),
    (
        "Biochar, 4.5Mg biochar (65.7%C, 0.91%N, 0.08%P, 1.60%K, 33.5%ash); Inorganic fertilizer= "
        "200kgN/ha/yr, 52.5kgP2O5/ha/yr, 37.5kgK2O/ha/yr",
        200.0,
    ),
    # No N dose (product masses, other nutrients, unknown units): NaN.
    ("120+80 kgN/m2/yr", math.nan),
    ("150 kg Urea ha-1", math.nan),
    ("60 kg NPK/ha", math.nan),
    ("180 kg hg ha-1", math.nan),
    ("4.42 g m-2 yr-1", math.nan),
    ("NPK", math.nan),
    ("2000 kg/ha manure", math.nan),
    (float("nan"), math.nan),
]


@pytest.mark.parametrize(("text", "expected"), N_RATE_CASES)
def test_parse_n_rate_on_real_strings(text, expected):
    got = parse_n_rate(text)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected, abs=1e-9)


def test_parse_n_rate_sums_a_split_written_with_a_plus():
    assert parse_n_rate("120+80 kgN/ha/yr") == 200.0


def test_fertiliser_form_from_words():
    nan4 = (math.nan,) * 4
    cases = {
        "Fertilized; Urea": (1.0, 0.0, 0.0, 0.0),
        "Fertilized; 224 kg N/ha as NH4NO3": (0.0, 0.5, 0.5, 0.0),
        "Fertilized; Ammonium Sulfate": (0.0, 1.0, 0.0, 0.0),
        "Fertilized; Urea Ammonium Sulfate": (0.5, 0.5, 0.0, 0.0),
        "Fertilized; Manure": (0.0, 0.0, 0.0, 1.0),
        "Fertilized; 224 kg N/ha as manure": (0.0, 0.0, 0.0, 1.0),
        "Fertilized; 50 Mg/ha compost": (0.0, 0.0, 0.0, 1.0),
        "Fertilized; 75 kg Urea and 75 kg chicken manure ha-1": (0.5, 0.0, 0.0, 0.5),
        "Fertilized; N and pig manure": nan4,  # mineral N of unnamed form with manure
        "Fertilized; Slurry, mineral": nan4,
        "Fertilized; NPK": nan4,
        "Fertilized; ": nan4,
    }
    for text, expected in cases.items():
        np.testing.assert_array_equal(fertiliser_form(text), expected, err_msg=text)


def test_crop_from_text():
    assert crop_from_text("Zea mays L.; site") == CROPS.index("maize")
    assert crop_from_text("Ttriticum aestivum") == CROPS.index("wheat")
    assert crop_from_text("Oryza sativa; Hordeum vulgare") == CROPS.index("rice")  # barley is not a class
    assert crop_from_text("Glycine max") == CROPS.index("soybean")
    assert crop_from_text("Capsicum annum; Brassica rapa; Lycopersicon esculentum") == CROPS.index(
        "vegetables"
    )
    assert crop_from_text("Festuca pratensis") == CROPS.index("grassland")
    assert math.isnan(crop_from_text("Triticum aestivum; Zea mays"))  # a rotation of two classes
    assert math.isnan(crop_from_text("Elaeis guineensis"))


def test_rh_from_rs_is_bond_lamberty_2004():
    # exp(1.22 + 0.73 ln 100), computed with bc -l.
    assert rh_from_rs(100.0) == pytest.approx(97.68756130767939, rel=1e-12)
    np.testing.assert_allclose(np.log(rh_from_rs(np.array([50.0, 800.0]))), 1.22 + 0.73 * np.log([50, 800]))


def test_srdb_rows_units_and_groups(srdb):
    raw = pd.read_csv(DATA / "co2_srdb" / SRDB_FILE)
    assert len(raw) == 671
    # 313 records with Rs_annual or Rh_annual, one of them flagged Q12 (known problem).
    assert srdb.features.shape == (312, len(FEATURE_NAMES))
    assert srdb.unit == CO2_UNIT and srdb.target_name == "co2"
    assert np.unique(srdb.groups).size == 90
    # Record 111 (Koizumi 1987): measured Rh 1050 g C m-2 yr-1, MAT 13.1, MAP 1202, "Manure".
    assert srdb.target[0] == pytest.approx(10_500.0)
    np.testing.assert_array_equal(
        srdb.features[0, [feature_index("mat"), feature_index("map")]], [13.1, 1202]
    )
    np.testing.assert_array_equal(srdb.features[0, SHARES], [0, 0, 0, 1])
    # Record 168: Rh 170 measured (Rs 230 ignored), "120 kgN/ha/yr", barley (no crop class).
    assert srdb.target[1] == pytest.approx(1_700.0)
    assert srdb.features[1, feature_index("n_rate")] == 120.0
    assert math.isnan(srdb.features[1, feature_index("crop")])
    # Record 455: Rs 346 only; Rh = exp(1.22 + 0.73 ln 346) x 10 (bc -l), clay 11, sand 17.
    assert srdb.target[3] == pytest.approx(2417.4907445192094, rel=1e-12)
    assert srdb.features[3, feature_index("clay")] == 11.0 and srdb.features[3, feature_index("sand")] == 17.0
    assert srdb.groups[3] == srdb.groups[4] == 3796
    assert any("243 converted from Rs_annual" in note for note in srdb.notes)
    assert np.all(srdb.target > 0)
    # Always missing in SRDB: soil carbon, pH, flooding.
    for name in ("soc", "ph", "flooded_days"):
        assert np.isnan(srdb.features[:, feature_index(name)]).all()


def test_bundled_srdb_subset_is_a_fixed_point_of_the_filter(tmp_path):
    bundled = DATA / "co2_srdb" / SRDB_FILE
    out = write_srdb_subset(bundled, tmp_path)
    assert out.read_bytes() == bundled.read_bytes()


def test_write_srdb_subset_filter(tmp_path):
    rows = [
        ("Agriculture", "Fertilized", "1018.350"),
        ("Agriculture ", "No-till, fertilized", "2"),
        ("Agriculture", "Fertilization", "3"),
        ("Agriculture", "mineral fertiliser", "4"),
        ("Agriculture", "Drip irrigation, no fertilization, stubble removed", "5"),
        ("Agriculture", "None", "6"),
        ("Grassland", "Fertilized", "7"),
    ]
    frame = pd.DataFrame({column: [""] * len(rows) for column in (*SRDB_COLUMNS, "Extra")})
    frame["Ecosystem_type"] = [r[0] for r in rows]
    frame["Manipulation"] = [r[1] for r in rows]
    frame["Rs_annual"] = [r[2] for r in rows]
    source = tmp_path / "srdb-data.csv"
    frame.to_csv(source, index=False)
    subset = pd.read_csv(write_srdb_subset(source, tmp_path / "out"), dtype=str, keep_default_na=False)
    assert tuple(subset.columns) == SRDB_COLUMNS
    assert subset["Rs_annual"].tolist() == ["1018.350", "2", "3", "4"]  # text copied unchanged
