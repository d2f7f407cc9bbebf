"""The real GHG tables, loaded once per module that asks for them."""

from __future__ import annotations

import pytest

from soilcarbon_training.ghg.real_data import load_co2_srdb, load_n2o_sesync


@pytest.fixture(scope="module")
def sesync():
    return load_n2o_sesync()


@pytest.fixture(scope="module")
def srdb():
    return load_co2_srdb()
