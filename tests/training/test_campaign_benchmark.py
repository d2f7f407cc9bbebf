"""Mechanics of the campaign benchmark (training/benchmarks/campaign.py): the split, method names and the
hybrid campaigns' sites, on generated points (no training)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import ttest_1samp

from soilcarbon_core.features import NodeTable
from soilcarbon_training.trainer import TrainConfig

SCRIPT = Path(__file__).resolve().parents[2] / "training" / "benchmarks" / "campaign.py"


@pytest.fixture(scope="module")
def campaign():
    spec = importlib.util.spec_from_file_location("campaign_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture(scope="module")
def setup(campaign):
    """600 random places, half inside a 4 x 4 degree box; one covariate, uniform."""
    rng = np.random.default_rng(3)
    lonlat = np.column_stack([rng.uniform(0.0, 8.0, 600), rng.uniform(0.0, 4.0, 600)])
    covariates = rng.uniform(size=(600, 1))
    table = NodeTable(lonlat, lonlat, covariates, np.empty((600, 0)))
    experiment = campaign.Experiment(table, rng.uniform(size=600), covariates, TrainConfig())
    box = campaign.Box("test box", 0.0, 4.0, 0.0, 4.0)
    design = campaign.Design(outside=50, initial_in_region=10)
    return experiment, campaign.make_split(table, box, design, seed=0), box


def test_split_partitions_the_region(campaign, setup):
    experiment, split, box = setup
    inside = box.contains(experiment.table.xy)
    assert np.array_equal(
        np.sort(np.concatenate([split.test, split.initial_in_region, split.candidates])), split.region
    )
    assert split.initial_in_region.size == 10 and inside[split.initial].sum() == 10
    assert np.array_equal(np.sort(np.concatenate([split.fit, split.validation])), np.sort(split.initial))


def test_method_names_round_trip(campaign):
    names = campaign.variants(["planner", "planner (dev-tuned)"], in_rounds=True, hybrid=True)
    assert names == [
        "planner",
        "planner (dev-tuned)",
        "planner in rounds",
        "planner (dev-tuned) in rounds",
        "planner then random",
        "planner (dev-tuned) then random",
        "planner then cLHS",
        "planner (dev-tuned) then cLHS",
    ]
    assert [campaign.planner_of(name) for name in names] == ["planner", "planner (dev-tuned)"] * 4
    assert campaign.variants(["planner"], in_rounds=False, hybrid=False) == ["planner"]
    assert campaign._forms_text(names) == ", each as one plan, in rounds, then random and then cLHS"
    assert campaign._forms_text(names[:4]) == ", each as one plan and in rounds"


def test_hybrid_then_random_follows_the_random_order(campaign, setup):
    experiment, split, _ = setup
    order = np.random.default_rng(1).permutation(split.candidates)
    first = order[[0, 3, 9, 40, 41]]  # planned sites early in the random order: skipped there
    sites = experiment.hybrid_sites(split, first, "random", order, 20, seed=0)
    assert np.array_equal(sites[:5], first)
    assert np.array_equal(sites[5:], [s for s in order if s not in first][:15])
    assert np.array_equal(experiment.hybrid_sites(split, first, "random", order, 3, seed=0), first[:3])


def test_hybrid_then_clhs_fills_the_strata_the_planned_sites_leave(campaign, setup):
    experiment, split, _ = setup
    values = experiment.covariates[:, 0]
    first = split.candidates[np.argsort(values[split.candidates])[:8]]  # the 8 lowest candidates
    sites = experiment.hybrid_sites(split, first, "cLHS", split.candidates, 20, seed=0)
    rest = sites[8:]
    assert np.array_equal(sites[:8], first) and rest.size == 12
    assert np.isin(rest, split.candidates).all() and not np.isin(rest, first).any()
    # 10 initial + 20 sites: 30 strata at the quantiles of [initial region sites; candidates]. The fixed
    # sites (initial and planned) are part of the sample, so cLHS puts its 12 in strata they leave empty.
    pool = np.concatenate([split.initial_in_region, split.candidates])
    edges = np.quantile(values[pool], np.linspace(0.0, 1.0, 31))
    stratum = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, 29)
    fixed_strata = set(stratum[np.concatenate([split.initial_in_region, first])])
    assert not fixed_strata & set(stratum[rest])
    assert len(set(stratum[rest])) == 12


def test_clhs_without_planned_sites_fixes_the_initial_ones(campaign, setup):
    from soilcarbon_training.clhs import clhs

    experiment, split, _ = setup
    rows = np.concatenate([split.initial_in_region, split.candidates])
    expected = rows[clhs(experiment.covariates[rows], 15, fixed=np.arange(10), seed=4)]
    assert np.array_equal(experiment.clhs_sites(split, 15, seed=4), expected)


def test_pooled_differences_are_relative_to_each_regions_baseline(campaign, tmp_path):
    def report(name: str, planner: list[float], random: list[float]) -> Path:
        seeds = [
            {
                "runs": [
                    {"method": m, "n": 25, "rmse": r} for m, r in zip(campaign.BASELINES, (b, b), strict=True)
                ]
            }
            for b in random
        ]
        for seed, rmse in zip(seeds, planner, strict=True):
            seed["runs"].append({"method": "planner", "n": 25, "rmse": rmse})
        phase = {
            "region": {"name": name},
            "methods": ["planner", *campaign.BASELINES],
            "design": {"budgets": [25]},
        }
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"evaluation": {**phase, "seeds": seeds}}))
        return path

    # Region A: random 10 g/kg, the planner 9 and 11 (-10 %, +10 %); region B: random 20, the planner 19, 19.
    text = campaign.pooled([report("A", [9.0, 11.0], [10.0, 10.0]), report("B", [19.0, 19.0], [20.0, 20.0])])
    row = next(line for line in text.splitlines() if line.startswith("| planner | 25 | random |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    expected_sd = np.std([-10.0, 10.0, -5.0, -5.0], ddof=1)
    assert cells[3:7] == ["+0.00 %", "-5.00 %", f"-2.50 ± {expected_sd:.2f} %", "3 / 4"]
    assert float(cells[7]) == pytest.approx(ttest_1samp([-10.0, 10.0, -5.0, -5.0], 0.0).pvalue, abs=1e-3)
