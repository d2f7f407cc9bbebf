"""The plugin's copies of core definitions (it may not import the core) equal the core's own."""

from __future__ import annotations

import json
import os
import subprocess

from plugin.algorithms import inputs, plan_campaign
from plugin.settings import core_python

from .conftest import ROOT

NAMES = ["SRTMGL1_SRTMGL1.2", "dem v2", "2019-ndvi", "  slope  ", "B8A/red", "ü-band"]

CORE = f"""
import json
from soilcarbon_core.campaign import PLAN_FIELDS, PlannerSettings
from soilcarbon_core.imagery.encoder import BACKBONES
from soilcarbon_core.imagery.inputs import S2_LEVELS
from soilcarbon_core.io.rasters import METHODS, field_name
print(json.dumps({{
    "field_names": [field_name(name) for name in {NAMES!r}],
    "plan_fields": PLAN_FIELDS, "planner": PlannerSettings().to_dict(),
    "backbones": BACKBONES, "s2_levels": S2_LEVELS, "methods": METHODS,
}}))
"""


def test_plugin_mirrors_equal_the_core():
    python, _ = core_python()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [python, "-c", CORE], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    core = json.loads(done.stdout.splitlines()[-1])
    assert [inputs.field_name(name) for name in NAMES] == core["field_names"]
    assert list(plan_campaign.PLAN_FIELDS) == core["plan_fields"]
    defaults = plan_campaign.PLANNER_DEFAULTS
    assert defaults == {name: core["planner"][name] for name in defaults}
    assert list(inputs.BACKBONES) == ["auto", "none", *core["backbones"]]
    assert list(inputs.S2_LEVELS) == core["s2_levels"]
    assert list(inputs.METHODS) == core["methods"]
