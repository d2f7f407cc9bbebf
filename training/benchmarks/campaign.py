"""Field-campaign experiment on Africa: the campaign planner against random sampling and cLHS.

    python training/benchmarks/campaign.py --out training/reports/campaign_africa.md --tune --in-rounds \
        --seeds 32 --dev-seeds 3 --feature-ranges 0.5 --spatial-ranges-km 0 --noise-ratios 0.05 \
        --variance-powers 1,3 --threads 1   # make campaign-report, with OMP_NUM_THREADS=1

A region (a lon/lat box) of the AfSP topsoil data is held out. Per seed its sites (one sample per
location) are split at random into test sites (40 %) and a candidate pool (60 %); the initial sparse
sample is 250 random samples outside the region plus 25 random pool sites. The initial SpTGNN ensemble is
trained on it, then N sites are added from the rest of the pool by (a) the planner
(:func:`soilcarbon_core.campaign.plan_sites`, the map area being every region site, labels unused),
(b) random sampling, (c) cLHS on the covariates (:func:`soilcarbon_training.clhs.clhs`, the initial
region sites fixed); the ensemble is retrained from scratch and scored on the test sites.

The validation split (early stopping, calibration) is drawn once per seed on the initial sample with the
train job's functions; added sites always join the fitting set, so within a seed the methods differ only
by the sites they add. With ``--tune`` a grid of planner settings (L_f x L_s x noise ratio r x variance
power gamma) is first run on development regions (other boxes); the setting with the lowest RMSE there
(averaged over regions) joins the default planner on the evaluation region (unless it is the default),
whose test sites never choose anything. ``--in-rounds`` runs every planner also as a campaign in rounds,
one per N, each planned with the model retrained on the rounds before (candidates for the choice too);
``--hybrid`` runs every planner also as its first round followed by random or cLHS sites (candidates
too); ``--spaced-km`` adds, post hoc, planners with a minimum spacing between sites, chosen the same way.
The report is rewritten after every seed (``--resume`` continues a stopped run; ``--render-only``
rewrites the report from its JSON). ``--region southern-africa`` evaluates on a second held-out region
kept for confirming the choice (``make campaign-confirm``), ``--region ethiopia`` on a third one
(``make campaign-third``); ``--pool`` tabulates the held-out regions of several reports together.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from soilcarbon_core.campaign import PlanInputs, PlannerSettings, nearest_distance, plan_sites, samples_near
from soilcarbon_core.features import NodeTable
from soilcarbon_core.graph import GraphParams
from soilcarbon_core.graph.geometry import SpatialFrame
from soilcarbon_core.io.atomic import atomic_output
from soilcarbon_core.predictor import EnsemblePredictor, Prediction, calibrated_metrics, finish_prediction
from soilcarbon_training.clhs import clhs
from soilcarbon_training.datasets import AFRICA_COVARIATES, load_africa, node_table
from soilcarbon_training.folds import validation_split
from soilcarbon_training.jobs import default_block_size, model_config_for
from soilcarbon_training.trainer import EnsembleTrainer, FitResult, TrainConfig

BASELINES = ("random", "cLHS")
REPORTS = Path("training/reports")
METRICS = ("rmse", "rmse95", "tail_share", "mae", "r2", "crps", "picp90")
OTHER_METRICS = ("rmse95", "mae", "r2", "crps", "picp90")
#: rmse95 leaves out the test sites above this quantile of the test target (organic soils, see the report).
BULK_QUANTILE = 0.95
MEMBERS = 5
#: Edges (km) of the distance bands of the initial models' error table.
DISTANCE_BINS_KM = (0.0, 5.0, 20.0, 50.0, np.inf)


@dataclass(frozen=True)
class Box:
    """A lon/lat box (degrees, west/south edges included)."""

    name: str
    lon_min: float
    lon_max: float
    lat_min: float
    lat_max: float

    def contains(self, lonlat: np.ndarray) -> np.ndarray:
        lon, lat = lonlat[:, 0], lonlat[:, 1]
        return (lon >= self.lon_min) & (lon < self.lon_max) & (lat >= self.lat_min) & (lat < self.lat_max)

    def describe(self) -> str:
        return (
            f"{self.name}: lon {self.lon_min:g} to {self.lon_max:g}, lat {self.lat_min:g} to {self.lat_max:g}"
        )


#: Evaluation region: Kenya and Tanzania, the densest part of AfSP (AfSIS sentinel sites, LDSF plots).
EVALUATION = Box("East Africa (Kenya, Tanzania)", 33.0, 42.0, -12.0, 5.0)
#: Development regions for choosing planner settings, disjoint from EVALUATION and from each other: one
#: where the in-region start is dense (West Africa, a few km from most sites) and two where it is sparse,
#: as on the evaluation region.
DEVELOPMENT = (
    Box("West Africa (Guinea to Ghana)", -10.0, 2.0, 4.0, 12.0),
    Box("Nigeria and Cameroon", 2.0, 16.0, 2.0, 14.0),
    Box("Malawi and Mozambique", 30.0, 42.0, -27.0, -12.0),
)
#: A second held-out region for confirming, once, a planner chosen on DEVELOPMENT and reported on
#: EVALUATION: never used to choose or compare settings. The largest block of AfSP sites left disjoint from
#: the boxes above (east of it lies the Malawi and Mozambique box).
CONFIRMATION = Box("Southern Africa (South Africa to Zambia)", 15.0, 30.0, -35.0, -12.0)
#: A third held-out region, used by no run before the one that tests the hybrid campaigns (``--hybrid``):
#: the largest block of sites left that overlaps none of the boxes above (1,421 sites).
THIRD = Box("Ethiopia and the Horn (South Sudan to Somalia)", 33.0, 48.0, 5.0, 15.0)
REGIONS = {box.name: box for box in (EVALUATION, CONFIRMATION, THIRD, *DEVELOPMENT)}
#: ``--region`` values: the held-out regions a run can evaluate on.
HELD_OUT = {"east-africa": EVALUATION, "southern-africa": CONFIRMATION, "ethiopia": THIRD}


@dataclass(frozen=True)
class Design:
    """Sizes of the experiment."""

    outside: int = 250  #: initial samples drawn outside the region
    initial_in_region: int = 25  #: initial samples drawn from the region's pool
    test_fraction: float = 0.4
    budgets: tuple[int, ...] = (25, 50, 100)


@dataclass(frozen=True)
class Split:
    """One seed's sample indices into the data set."""

    test: np.ndarray
    region: np.ndarray  #: every region site (test and pool): the planner's map area
    initial: np.ndarray  #: outside samples, then the in-region initial sites
    initial_in_region: np.ndarray
    candidates: np.ndarray  #: pool sites not in the initial sample
    fit: np.ndarray  #: initial samples that fit the networks
    validation: np.ndarray  #: initial samples for early stopping and calibration


def region_sites(lonlat: np.ndarray, box: Box) -> np.ndarray:
    """Indices of the samples in ``box``, one per distinct location (the first in file order).

    Topsoil horizons of one profile share a location; keeping one keeps a test site from having a
    training twin at distance zero.
    """
    inside = np.flatnonzero(box.contains(lonlat))
    _, first = np.unique(lonlat[inside], axis=0, return_index=True)
    return np.sort(inside[first])


def make_split(table: NodeTable, box: Box, design: Design, seed: int) -> Split:
    lonlat = table.xy
    rng = np.random.default_rng(seed)
    region = region_sites(lonlat, box)
    outside = np.flatnonzero(~box.contains(lonlat))
    shuffled = rng.permutation(region)
    n_test = round(design.test_fraction * region.size)
    test, pool = np.sort(shuffled[:n_test]), shuffled[n_test:]
    in_region = np.sort(pool[: design.initial_in_region])
    candidates = np.sort(pool[design.initial_in_region :])
    initial = np.concatenate([np.sort(rng.choice(outside, design.outside, replace=False)), in_region])
    fit, validation = validation_split(
        initial,
        lonlat,
        geographic=True,
        block_size_m=default_block_size(table.select(initial), geographic=True),
        seed=seed,
    )
    return Split(test, region, initial, in_region, candidates, fit, validation)


@dataclass
class Trained:
    fit: FitResult
    predictor: EnsemblePredictor
    seconds: float


class Experiment:
    """The data set and the training settings: trains, scores and chooses sites for one seed's split."""

    def __init__(
        self, table: NodeTable, target: np.ndarray, covariates: np.ndarray, train: TrainConfig
    ) -> None:
        self.table = table
        self.target = target
        self.covariates = covariates
        self.train_config = train
        self.graph = GraphParams()

    def train(self, split: Split, added: np.ndarray, seed: int) -> Trained:
        """Train from scratch on the initial sample plus ``added`` (which all join the fitting set)."""
        started = time.perf_counter()
        config = TrainConfig(**{**self.train_config.to_dict(), "seed": seed})
        # The network's initial weights follow the seed too, not only batches and bootstrap weights.
        model_config = model_config_for(self.table, MEMBERS, seed=seed)
        trainer = EnsembleTrainer(
            model_config, config, self.graph, geographic=True, device=torch.device("cpu")
        )
        fit = trainer.fit(self.table, self.target, np.concatenate([split.fit, added]), split.validation)
        reference = np.concatenate([split.initial, added])
        predictor = trainer.predictor(
            fit.network,
            fit.normaliser,
            self.table.select(reference),
            self.target[reference],
            calibrator=fit.calibrator,
        )
        return Trained(fit, predictor, time.perf_counter() - started)

    def score(self, model: Trained, test: np.ndarray) -> tuple[dict[str, float], Prediction]:
        """Test-site metrics (RMSE, MAE, R2 of the mean, RMSE over the sites up to :data:`BULK_QUANTILE`
        of the target and the share of the squared error above it; CRPS and PICP90 of the calibrated
        prediction) and the calibrated prediction."""
        means, variances = model.predictor.member_predictions(self.table.select(test))
        raw = finish_prediction(means, variances, None)
        calibrated = finish_prediction(means, variances, model.fit.calibrator)
        metrics = calibrated_metrics(
            self.target[test], raw.mean, raw.total_sd, calibrated.total_sd, model.fit.calibrator.interval
        )
        observed = self.target[test]
        bulk = observed <= np.quantile(observed, BULK_QUANTILE)
        squared = (raw.mean - observed) ** 2
        metrics["rmse95"] = np.sqrt(np.mean(squared[bulk]))
        metrics["tail_share"] = squared[~bulk].sum() / max(squared.sum(), 1e-300)
        return {k: float(metrics[k]) for k in METRICS}, calibrated

    def error_by_distance(self, prediction: Prediction, split: Split) -> list[dict[str, float]]:
        """The test sites' ``prediction`` by the initial model, binned by the distance to the nearest
        initial sample (:data:`DISTANCE_BINS_KM`): per bin the count and the summed squared error and
        epistemic variance (read after the fact)."""
        frame = SpatialFrame(geographic=True)
        test = self.table.xy[split.test]
        km = nearest_distance(frame, frame.embed(test), frame.embed(self.table.xy[split.initial])) / 1000.0
        squared = (prediction.mean - self.target[split.test]) ** 2
        bins = np.digitize(km, DISTANCE_BINS_KM[1:-1])
        return [
            {
                "n": int((bins == b).sum()),
                "sq_error": float(squared[bins == b].sum()),
                "epistemic_var": float((prediction.epistemic_sd[bins == b] ** 2).sum()),
            }
            for b in range(len(DISTANCE_BINS_KM) - 1)
        ]

    def plan_inputs(self, model: Trained, index: np.ndarray) -> PlanInputs:
        """What the planner reads of sites ``index``: place, covariates, the model's variances; no label."""
        table = self.table.select(index)
        return PlanInputs.from_prediction(table, model.fit.normaliser, model.predictor.predict(table))

    def plans(
        self,
        split: Split,
        model: Trained,
        existing: np.ndarray,
        n: int,
        planners: dict[str, PlannerSettings],
    ) -> dict[str, tuple[np.ndarray, dict]]:
        """Per planner, ``n`` sites planned with ``model`` among the candidates not in ``existing`` (the
        samples so far), the area being every region site; and what the plan saw. The places are
        predicted once for all planners."""
        started = time.perf_counter()
        free = split.candidates[~np.isin(split.candidates, existing)]
        candidates = self.plan_inputs(model, free)
        area = self.plan_inputs(model, split.region)  # the map area; test labels are never read
        frame = SpatialFrame(geographic=True)
        existing_xy = self.table.xy[existing]
        most = max(settings.max_samples for settings in planners.values())
        near = samples_near(frame, frame.embed(existing_xy), frame.embed(area.coords), most)
        measured = self.plan_inputs(model, existing[near])
        predict_s = time.perf_counter() - started
        result = {}
        for name, settings in planners.items():
            started = time.perf_counter()
            plan = plan_sites(
                candidates, area, existing_xy, n, geographic=True, measured=measured, settings=settings
            )
            result[name] = (
                free[plan.chosen],
                {
                    "candidates_epistemic_var": float(candidates.epistemic_var.mean()),
                    "candidates_aleatoric_var": float(candidates.aleatoric_var.mean()),
                    "spatial_range_m": plan.spatial_range_m,
                    "area_epistemic_var_before": plan.area_var_before,
                    "area_epistemic_var_after": plan.area_var_after,
                    "median_nearest_sample_km": float(np.median(plan.nearest_sample_m) / 1000.0),
                    "seconds": predict_s + time.perf_counter() - started,
                },
            )
        return result

    def clhs_sites(self, split: Split, n: int, seed: int, planned: np.ndarray | None = None) -> np.ndarray:
        """cLHS on the covariates of [initial region sites; candidates], the initial ones fixed, and so are
        the candidates ``planned`` already (a hybrid campaign's first round)."""
        planned = np.empty(0, dtype=np.int64) if planned is None else planned
        pool = split.candidates[~np.isin(split.candidates, planned)]
        rows = np.concatenate([split.initial_in_region, planned, pool])
        fixed = np.arange(split.initial_in_region.size + planned.size)
        return rows[clhs(self.covariates[rows], n, fixed=fixed, seed=seed)]

    def hybrid_sites(
        self, split: Split, first: np.ndarray, baseline: str, random_order: np.ndarray, n: int, seed: int
    ) -> np.ndarray:
        """A hybrid campaign of ``n`` sites: the planner's first round ``first``, then ``baseline``'s sites
        (random: the seed's random order without the planned sites; cLHS: with the planned sites fixed)."""
        more = n - first.size
        if more <= 0:
            return first[:n]
        if baseline == "random":
            rest = random_order[~np.isin(random_order, first)][:more]
        else:
            rest = self.clhs_sites(split, more, seed, planned=first)
        return np.concatenate([first, rest])


#: A planner's method name when it runs in rounds: ``planner`` -> ``planner in rounds``.
IN_ROUNDS = " in rounds"
#: A hybrid's method name: ``planner`` -> ``planner then random`` (its first round, then random sites).
THEN = " then "


def variants(planners: Iterable[str], in_rounds: bool, hybrid: bool) -> list[str]:
    """The planners' method names, then their in-rounds names when ``in_rounds``, then their hybrids'
    names (one per baseline) when ``hybrid``."""
    planners = list(planners)
    forms = [IN_ROUNDS] * in_rounds + [f"{THEN}{baseline}" for baseline in BASELINES] * hybrid
    return [*planners, *(f"{name}{form}" for form in forms for name in planners)]


def planner_of(method: str) -> str:
    """The planner a method name is a form of (``planner then cLHS`` -> ``planner``)."""
    return method.split(THEN)[0].removesuffix(IN_ROUNDS)


@dataclass
class CampaignInRounds:
    """A campaign sampled in rounds: each round's sites are measured, the model is retrained on every
    sample so far (:meth:`Experiment.train`), and the next round is planned with that model.

    ``added`` starts as the first round (the initial model's plan, made once for the one-plan planner)."""

    settings: PlannerSettings
    model: Trained  #: the model retrained after the last round
    added: np.ndarray

    def extend(self, experiment: Experiment, split: Split, n: int) -> np.ndarray:
        """Plan a round that brings the added sites to ``n`` (none when they are ``n`` already); all the
        added sites so far."""
        if n > self.added.size:
            existing = np.concatenate([split.initial, self.added])
            plans = experiment.plans(
                split, self.model, existing, n - self.added.size, {"round": self.settings}
            )
            self.added = np.concatenate([self.added, plans["round"][0]])
        return self.added


def planner_label(settings: PlannerSettings) -> str:
    spatial = f"{settings.spatial_range_m / 1000:g} km" if settings.spatial_range_m else "gap"
    return (
        f"planner L_f={settings.feature_range:g} L_s={spatial} r={settings.noise_ratio:g} "
        f"γ={settings.variance_power:g}"
    )


def run_seed(
    experiment: Experiment,
    box: Box,
    design: Design,
    seed: int,
    planners: dict[str, PlannerSettings],
    log: Callable[[str], None],
    in_rounds: bool = False,
    hybrid: bool = False,
) -> dict:
    """One split: the initial model, then every method at every N, each retrained and scored.

    ``in_rounds``: every planner also runs as a campaign in rounds (``"<name> in rounds"``, one round
    per N, :class:`CampaignInRounds`). ``hybrid``: every planner also runs as its first round (the
    smallest N) then each baseline's sites (``"<name> then random"``, :meth:`Experiment.hybrid_sites`)."""
    split = make_split(experiment.table, box, design, seed)
    initial = experiment.train(split, np.empty(0, dtype=np.int64), seed)
    initial_metrics, initial_prediction = experiment.score(initial, split.test)
    result = {
        "seed": seed,
        "sizes": {
            "region_sites": int(split.region.size),
            "test": int(split.test.size),
            "candidates": int(split.candidates.size),
            "initial": int(split.initial.size),
            "fit": int(split.fit.size),
            "validation": int(split.validation.size),
            "validation_in_region": int(np.isin(split.validation, split.region).sum()),
        },
        "initial": {**initial_metrics, "train_s": initial.seconds},
        "by_distance": experiment.error_by_distance(initial_prediction, split),
        "plans": {},
        "runs": [],
    }
    log(f"{box.name}, seed {seed}: initial rmse {result['initial']['rmse']:.3f} ({initial.seconds:.0f} s)")

    seeded = {name: replace(settings, seed=seed) for name, settings in planners.items()}
    # The greedy plan is nested: its first N sites are the N-site plan.
    plans = experiment.plans(split, initial, split.initial, max(design.budgets), seeded)
    orders = {name: order for name, (order, _) in plans.items()}
    result["plans"] = {name: seen for name, (_, seen) in plans.items()}
    orders["random"] = np.random.default_rng([seed, 1]).permutation(split.candidates)
    rounds = {
        f"{name}{IN_ROUNDS}": CampaignInRounds(settings, initial, orders[name][: design.budgets[0]])
        for name, settings in (seeded.items() if in_rounds else ())
    }
    hybrids = {
        f"{name}{THEN}{baseline}": (name, baseline) for name in planners for baseline in BASELINES if hybrid
    }

    for n in design.budgets:
        for method in [*planners, *rounds, *hybrids, *BASELINES]:
            started = time.perf_counter()
            if method in rounds:
                added = rounds[method].extend(experiment, split, n)
            elif method in hybrids:
                name, baseline = hybrids[method]
                first = orders[name][: design.budgets[0]]
                added = experiment.hybrid_sites(split, first, baseline, orders["random"], n, seed)
            elif method == "cLHS":
                added = experiment.clhs_sites(split, n, seed)
            else:
                added = orders[method][:n]
            select_s = time.perf_counter() - started
            model = experiment.train(split, added, seed)
            if method in rounds:
                rounds[method].model = model
            row = {"method": method, "n": n, **experiment.score(model, split.test)[0]}
            row.update(select_s=select_s, train_s=model.seconds, sites=added.tolist())
            result["runs"].append(row)
            log(f"{box.name}, seed {seed}: {method} N={n} rmse {row['rmse']:.3f} ({model.seconds:.0f} s)")
    return result


def run_phase(
    experiment: Experiment,
    box: Box,
    design: Design,
    seeds: int,
    planners: dict[str, PlannerSettings],
    log: Callable[[str], None],
    after_seed: Callable[[dict], None],
    resumed: dict | None = None,
    in_rounds: bool = False,
    hybrid: bool = False,
) -> dict:
    """Every seed on one region; the summary is refreshed (and ``after_seed`` called) after each.

    ``resumed``: the same phase from an interrupted run's JSON; its finished seeds are kept.
    """
    phase = {
        "region": {"name": box.name, "box": box.describe()},
        "design": {**asdict(design), "budgets": list(design.budgets)},
        "planners": {name: settings.to_dict() for name, settings in planners.items()},
        "methods": [*variants(planners, in_rounds, hybrid), *BASELINES],
        "seeds": [],
    }
    if resumed is not None:
        if any(resumed[key] != phase[key] for key in ("region", "design", "planners")):
            raise SystemExit(f"Cannot resume {box.name}: the JSON was made with another design or planners.")
        phase["seeds"] = resumed["seeds"][:seeds]
        log(f"{box.name}: resuming after {len(phase['seeds'])} finished seed(s)")
    for seed in range(len(phase["seeds"]), seeds):
        phase["seeds"].append(run_seed(experiment, box, design, seed, planners, log, in_rounds, hybrid))
        phase["summary"] = summarise(phase)
        after_seed(phase)
    return phase


def planner_methods(phase: dict) -> list[str]:
    """The phase's planner methods: each planner as one plan, and in rounds or as hybrids when the phase
    has them."""
    return [method for method in phase["methods"] if method not in BASELINES]


def summarise(phase: dict) -> dict:
    """Per method and N: metric means and sds over seeds; paired RMSE differences planner - baseline."""
    from scipy.stats import ttest_rel

    seeds, budgets = phase["seeds"], phase["design"]["budgets"]
    table = {}
    for n in budgets:
        for method in phase["methods"]:
            rows = [r for s in seeds for r in s["runs"] if r["method"] == method and r["n"] == n]
            table[f"{method}|{n}"] = {m: _mean_sd([r[m] for r in rows]) for m in METRICS}
    paired = []
    for planner in planner_methods(phase):
        for n in budgets:
            ours = np.array([_rmse(s, planner, n) for s in seeds])
            for other in BASELINES:
                theirs = np.array([_rmse(s, other, n) for s in seeds])
                diff = ours - theirs
                paired.append(
                    {
                        "planner": planner,
                        "n": n,
                        "against": other,
                        "mean_diff": float(diff.mean()),
                        "sd_diff": _sd(diff),
                        "wins": int((diff < 0).sum()),
                        "seeds": len(seeds),
                        "p_paired_t": float(ttest_rel(ours, theirs).pvalue)
                        if len(seeds) > 1
                        else float("nan"),
                    }
                )
    return {
        "table": table,
        "initial": {m: _mean_sd([s["initial"][m] for s in seeds]) for m in METRICS},
        "paired": paired,
    }


def describe_added(phase: dict, table: NodeTable, target: np.ndarray) -> dict:
    """What each method adds, averaged over seeds (labels read after the fact, to explain the RMSEs).

    Per ``method|N``: the mean target of the added sites, the median distance from an added site to the
    nearest other added site (how clustered they are) and the median distance from a test site to its
    nearest training sample (how well they cover the map); ``candidates`` and ``initial`` for reference.
    """
    box = REGIONS[phase["region"]["name"]]
    design = Design(**{**phase["design"], "budgets": tuple(phase["design"]["budgets"])})
    frame = SpatialFrame(geographic=True)

    def nearest_km(points: np.ndarray, to: np.ndarray) -> float:
        return float(np.median(nearest_distance(frame, frame.embed(points), frame.embed(to))) / 1000.0)

    def spacing_km(points: np.ndarray) -> float:
        """Median distance from a site to the nearest other site (k = 2: the first is itself)."""
        chord, _ = cKDTree(frame.embed(points)).query(frame.embed(points), k=2)
        return float(np.median(frame.metres(chord[:, -1])) / 1000.0)

    rows: dict[str, list[dict]] = {}
    for seed_result in phase["seeds"]:
        split = make_split(table, box, design, seed_result["seed"])
        test_xy = table.xy[split.test]
        rows.setdefault("candidates", []).append({"target": float(target[split.candidates].mean())})
        rows.setdefault("initial", []).append({"test_gap_km": nearest_km(test_xy, table.xy[split.initial])})
        for run in seed_result["runs"]:
            added = np.asarray(run["sites"], dtype=np.int64)
            rows.setdefault(f"{run['method']}|{run['n']}", []).append(
                {
                    "target": float(target[added].mean()),
                    "spacing_km": spacing_km(table.xy[added]),
                    "test_gap_km": nearest_km(test_xy, table.xy[np.concatenate([split.initial, added])]),
                }
            )
    return {
        key: {k: float(np.mean([v[k] for v in values])) for k in values[0]} for key, values in rows.items()
    }


def _mean_sd(values) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "sd": _sd(values)}


def _sd(values) -> float:
    """Sample standard deviation over seeds (0 for a single seed)."""
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1)) if values.size > 1 else 0.0


def _rmse(seed_result: dict, method: str, n: int) -> float:
    return next(r["rmse"] for r in seed_result["runs"] if r["method"] == method and r["n"] == n)


def mean_rmse(phase: dict, method: str) -> float:
    """A method's RMSE averaged over seeds and N (the development criterion)."""
    return float(
        np.mean(
            [phase["summary"]["table"][f"{method}|{n}"]["rmse"]["mean"] for n in phase["design"]["budgets"]]
        )
    )


def development_rmse(report: dict, method: str) -> float:
    """A method's RMSE averaged over the development regions (each averaged over seeds and N)."""
    return float(np.mean([mean_rmse(phase, method) for phase in report["development"]]))


def verdict(summary: dict, planner: str, budgets: list[int]) -> str:
    """Whether ``planner`` beats both baselines (lower mean RMSE at every N), and how firmly."""
    rows = [p for p in summary["paired"] if p["planner"] == planner]
    beats = {other: sum(p["mean_diff"] < 0 for p in rows if p["against"] == other) for other in BASELINES}
    significant = sum(p["mean_diff"] < 0 and p["p_paired_t"] < 0.05 for p in rows)
    worse = sum(p["mean_diff"] > 0 and p["p_paired_t"] < 0.05 for p in rows)
    text = (
        f"`{planner}`: lower mean RMSE than random at {beats['random']} of {len(budgets)} N and than "
        f"cLHS at {beats['cLHS']} of {len(budgets)} N; paired comparisons significant at p < 0.05 "
        f"(paired t-test over seeds, not corrected for multiplicity): {significant} of {len(rows)} for it, "
        f"{worse} against it."
    )
    if all(v == len(budgets) for v in beats.values()):
        if significant == len(rows):
            return f"{text} **Target met**: it beats random sampling and cLHS at every N."
        return (
            f"{text} **Target met on the means only**: its mean RMSE is the lowest at every N, but not "
            "every difference stands out from the seed-to-seed spread."
        )
    return f"{text} **Target not met**: it does not beat both baselines at every N."


def pooled(paths: list[Path]) -> str:
    """The held-out regions of several reports together: per planner method that all of them ran and per
    baseline and N, each seed's RMSE difference as a percentage of the baseline's mean RMSE on its region
    (the regions' errors differ threefold), pooled over every seed of every region."""
    from scipy.stats import ttest_1samp

    phases = [json.loads(path.read_text())["evaluation"] for path in paths]
    methods = [
        m for m in phases[0]["methods"] if m not in BASELINES and all(m in p["methods"] for p in phases)
    ]
    budgets = phases[0]["design"]["budgets"]
    lines = [
        "# Field-campaign experiments: the held-out regions pooled",
        "",
        "Made by `python training/benchmarks/campaign.py --pool "
        + " ".join(path.as_posix() for path in paths)
        + "` from the reports' JSON (no training). Regions: "
        + "; ".join(
            f"{p['region']['name']} ({path.name}, {_plural(len(p['seeds']), 'seed')})"
            for path, p in zip(paths, phases, strict=True)
        )
        + ". Per seed: (method RMSE - baseline RMSE) / the baseline's mean RMSE on the region, in %; "
        "negative: the method is better. Pooled over every seed; the p-value is a one-sample t-test of the "
        "pooled differences against 0 (seeds are independent; the regions are not a sample of anything).",
        "",
        "| method | N | against | "
        + " | ".join(p["region"]["name"] for p in phases)
        + " | pooled mean ± sd | wins | p (t) |",
        "|---|---|---|" + "---:|" * (len(phases) + 3),
    ]
    for method in methods:
        for n in budgets:
            for baseline in BASELINES:
                per_region = []
                for phase in phases:
                    theirs = np.array([_rmse(s, baseline, n) for s in phase["seeds"]])
                    ours = np.array([_rmse(s, method, n) for s in phase["seeds"]])
                    per_region.append(100.0 * (ours - theirs) / theirs.mean())
                diff = np.concatenate(per_region)
                lines.append(
                    f"| {method} | {n} | {baseline} | "
                    + " | ".join(f"{d.mean():+.2f} %" for d in per_region)
                    + f" | {diff.mean():+.2f} ± {_sd(diff):.2f} % | {int((diff < 0).sum())} / {diff.size} | "
                    f"{ttest_1samp(diff, 0.0).pvalue:.3f} |"
                )
    return "\n".join([*lines, ""])


def plot(report: dict, path: Path) -> None:
    """Left: RMSE against N per method (mean ± sd over seeds), the initial level dashed. Right: each
    method's RMSE minus random sampling's in the same seed (mean ± standard error), which removes the
    seed-to-seed spread that the left panel's error bars are made of."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phase = report["evaluation"]
    budgets, methods, summary = phase["design"]["budgets"], phase["methods"], phase["summary"]
    seeds = phase["seeds"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.4))
    offsets = np.linspace(-2.0, 2.0, len(methods))  # side by side, so the error bars do not overlap
    for offset, method in zip(offsets, methods, strict=True):
        cells = [summary["table"][f"{method}|{n}"]["rmse"] for n in budgets]
        x = np.array(budgets) + offset
        left.errorbar(x, [c["mean"] for c in cells], yerr=[c["sd"] for c in cells], marker="o", capsize=3)
        diffs = [np.array([_rmse(s, method, n) - _rmse(s, "random", n) for s in seeds]) for n in budgets]
        right.errorbar(
            x,
            [d.mean() for d in diffs],
            yerr=[_sd(d) / np.sqrt(len(d)) for d in diffs],
            marker="o",
            capsize=3,
            label=method,
        )
    left.axhline(summary["initial"]["rmse"]["mean"], color="grey", linestyle="--", label="initial (N = 0)")
    left.set_ylabel(f"test RMSE ({report['unit']})")
    left.set_title(f"{phase['region']['name']}: mean ± sd over {_plural(len(seeds), 'seed')}", fontsize=10)
    left.legend(fontsize=8)
    right.axhline(0.0, color="grey", linewidth=0.8)
    right.set_ylabel(f"RMSE minus random's, same seed ({report['unit']})")
    right.set_title("paired with random sampling: mean ± standard error", fontsize=10)
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.set_xlabel("N added sites")
        ax.set_xticks(budgets)
    fig.tight_layout()
    with atomic_output(path) as partial:
        fig.savefig(partial, dpi=120)
    plt.close(fig)


def _fmt(cell: dict) -> str:
    return f"{cell['mean']:.3f} ± {cell['sd']:.3f}"


def _settings_text(settings: dict, plans: list[dict]) -> str:
    spatial = settings["spatial_range_m"]
    if spatial:
        spatial_text = f"{spatial / 1000:g} km"
    else:
        ranges = [p["spatial_range_m"] / 1000 for p in plans]
        spatial_text = (
            "the median distance from the area to the nearest existing sample (default; "
            f"{min(ranges):.0f}-{max(ranges):.0f} km over the seeds)"
        )
    spacing = settings["min_spacing_m"]
    spacing_text = f", sites at least {spacing / 1000:g} km apart" if spacing else ""
    return (
        f"L_f = {settings['feature_range']:g} sd, L_s = {spatial_text}, r = {settings['noise_ratio']:g}, "
        f"γ = {settings['variance_power']:g}{spacing_text}"
    )


def _results(phase: dict, unit: str, detail: bool = True) -> list[str]:
    """The RMSE table and the verdicts of one phase; with ``detail`` the other metrics and the paired
    comparisons too."""
    budgets, methods, summary = phase["design"]["budgets"], phase["methods"], phase["summary"]
    lines = [
        f"Test RMSE ({unit}), mean ± sd over {_plural(len(phase['seeds']), 'seed')}. Initial model "
        f"(N = 0): RMSE {_fmt(summary['initial']['rmse'])}, R2 {_fmt(summary['initial']['r2'])}.",
        "",
        "| N | " + " | ".join(methods) + " |",
        "|---" * (len(methods) + 1) + "|",
    ]
    for n in budgets:
        lines.append(
            f"| {n} | " + " | ".join(_fmt(summary["table"][f"{m}|{n}"]["rmse"]) for m in methods) + " |"
        )
    verdicts = ["", *(f"- {verdict(summary, planner, budgets)}" for planner in planner_methods(phase))]
    if not detail:
        return lines + verdicts
    lines += [
        "",
        "Other metrics, mean over seeds: RMSE95 (the RMSE over the test sites up to the 95th percentile "
        "of the test target), MAE, R2, CRPS and PICP90 (calibrated 90 % interval). The sites above that "
        "percentile (the most organic soils) hold "
        f"{100 * summary['initial']['tail_share']['mean']:.0f} % of the initial model's squared error, so "
        "the RMSE mostly measures how a handful of them are predicted; RMSE95 is the error on the bulk of "
        "the map.",
        "",
        "| N | method | RMSE95 | MAE | R2 | CRPS | PICP90 |",
        "|---|---|---|---|---|---|---|",
        "| 0 | initial | " + " | ".join(f"{summary['initial'][k]['mean']:.3f}" for k in OTHER_METRICS) + " |",
    ]
    for n in budgets:
        for m in methods:
            cell = summary["table"][f"{m}|{n}"]
            lines.append(
                f"| {n} | {m} | " + " | ".join(f"{cell[k]['mean']:.3f}" for k in OTHER_METRICS) + " |"
            )
    lines += [
        "",
        "Paired comparison (same seed: same split, initial sample and training seed): planner RMSE minus "
        "baseline RMSE (negative: the planner is better); wins: seeds where the planner's RMSE is lower.",
        "",
        "| planner | N | against | mean diff ± sd | wins | p (paired t) |",
        "|---|---|---|---|---|---|",
    ]
    for p in summary["paired"]:
        lines.append(
            f"| {p['planner']} | {p['n']} | {p['against']} | {p['mean_diff']:+.3f} ± {p['sd_diff']:.3f} | "
            f"{p['wins']} / {p['seeds']} | {p['p_paired_t']:.3f} |"
        )
    return lines + verdicts


def render(report: dict) -> str:
    phase, development = report["evaluation"], report.get("development", [])
    design, seeds = phase["design"], phase["seeds"]
    sizes = seeds[0]["sizes"]
    in_region = [s["sizes"]["validation_in_region"] for s in seeds]
    lines = [
        f"# Field-campaign experiment: {phase['region']['name']}",
        "",
        f"Command: `{report['command']}`. Machine: {report['machine']['cpus']} CPUs, Python "
        f"{report['machine']['python']}, torch {report['machine']['torch']}, {report['threads']} torch "
        f"threads. Run time {report['seconds'] / 60:.1f} min.",
        "",
        "## Design",
        "",
        f"- Data: AfSP topsoil ORCDRC ({report['unit']}), {report['samples']:,} samples; covariates "
        f"{', '.join(AFRICA_COVARIATES)} (measured at the sites, so known wherever the map is made).",
        f"- Evaluation region ({phase['region']['box']}): {sizes['region_sites']:,} sites, one sample per "
        "location (horizons of one profile share a location; the first is kept). Per seed the sites are "
        f"split at random into {sizes['test']:,} test sites ({design['test_fraction']:.0%}) and a pool.",
        f"- Initial sparse sample: {design['outside']} random samples outside the region + "
        f"{design['initial_in_region']} random pool sites. Candidates: the other {sizes['candidates']:,} "
        "pool sites.",
        "- Validation (early stopping, calibration): whole spatial blocks (a tenth of the initial sample's "
        "bounding-box diagonal) drawn once per seed on the initial sample by `folds.validation_split`, as "
        f"the train job does: {sizes['validation']} samples, of which {_span(in_region)} in the region "
        "(by seed). "
        "Added sites always join the fitting set, so within a seed the methods differ only by the sites "
        "they add.",
        f"- Model: SpTGNN ensemble of {MEMBERS}, at most {report['train_config']['epochs']} epochs, "
        f"batches of {report['train_config']['batch_size']} (with 300-400 samples the default 1024 makes "
        f"an epoch a single step), patience {report['train_config']['patience']}; retrained from scratch "
        "for every method and N with the seed's training seed (weights, batches, bootstrap). Test sites "
        "are predicted as queries; every training sample is a reference node.",
        f"- N = {', '.join(map(str, design['budgets']))} added sites chosen by:",
        "  - **planner** (`soilcarbon_core/campaign.py`): greedy choice of the candidate that most lowers "
        "the area's mean epistemic variance, modelling the ensemble's error as a Gaussian field (variance = "
        "the epistemic variance with its contrasts about the area's mean raised to the power γ, correlation "
        "decaying with ground distance over L_s and with similarity-feature distance over L_f), a "
        "measurement's noise = r x the aleatoric variance, then a Kalman update of the field. The field is "
        "first conditioned the same way on the initial samples (the 4 nearest of every area site). Area: "
        "every region site (pool and test; covariates and places, never test labels). "
        "Planned once per seed with N = 100; its first N sites are the N-site plan. Settings: "
        + "; ".join(
            f"`{name}`: {_settings_text(settings, [s['plans'][name] for s in seeds])}"
            for name, settings in phase["planners"].items()
        )
        + f"; at most {next(iter(phase['planners'].values()))['max_candidates']} candidates and "
        f"{next(iter(phase['planners'].values()))['max_area_cells']} area cells (random subsets beyond).",
    ]
    if any(m.endswith(IN_ROUNDS) for m in phase["methods"]):
        budgets = design["budgets"]
        lines.append(
            "  - **planner in rounds**: the same planner (same settings) in one round per N, as a campaign "
            "whose sites are measured before the next round is planned: the first "
            f"{budgets[0]} sites are the plan's first {budgets[0]}; then the ensemble is retrained on "
            "every sample so far (as the N-site model above) and plans the next "
            + ", then the next ".join(str(b - a) for a, b in itertools.pairwise(budgets))
            + " with the field conditioned on every sample so far and L_s recomputed from them. Its N-site "
            "campaign is the first rounds up to N."
        )
    if any(THEN in m for m in phase["methods"]):
        first = design["budgets"][0]
        lines.append(
            f"  - **planner then random / then cLHS** (hybrids): the planner's first {first} sites (its "
            f"{first}-site plan, which fills the largest gaps), then a baseline's sites: the seed's random "
            "order without the planned sites, or cLHS with the planned sites fixed too; at "
            f"N = {first} they are the planner's plan."
        )
    lines += [
        "  - **random**: a random permutation of the candidates, its first N.",
        "  - **cLHS** (`soilcarbon_training/clhs.py`, 10,000 annealing iterations): on the raw covariates "
        "of [initial region sites; candidates], the initial region sites fixed; one run per N.",
    ]
    if development:
        lines.append(
            f"- Planner settings were chosen on {_plural(len(development), 'development region')} "
            f"({'; '.join(d['region']['box'] for d in development)}), "
            f"{_plural(len(development[0]['seeds']), 'seed')} each, never on the evaluation region: see the "
            "section after the results."
        )
    if phase["region"]["name"] == CONFIRMATION.name and not development:
        lines.append(
            "- Confirmation region: used in no earlier run and in no choice of settings; the planners run "
            "with the settings above, fixed before this run (the development choice of `campaign_africa.md`)."
        )
    if phase["region"]["name"] == THIRD.name:
        lines.append(
            "- Third held-out region: used in no earlier run and in no choice of settings; the criterion "
            "(the development choice beats random sampling and cLHS at every N) was committed before the run."
        )
    if report.get("chosen_spaced"):
        lines.append(
            "- Post hoc, not part of the target: a first run of this design showed the planner's sites "
            "clustering (see 'What the methods add'), so default planners with a minimum spacing between "
            f"sites ({_listing(report['spaced_km'])} km) were added to the development grid; the best there, "
            f"`{report['chosen_spaced']}`, also runs on the evaluation region. A remedy to test, not a "
            "pre-registered comparison."
        )
    lines += [
        "",
        "## Results",
        "",
        *_results(phase, report["unit"]),
        "",
        f"![RMSE against N]({report['png']})",
        "",
    ]
    if "by_distance" in seeds[0]:
        lines += [
            "## The initial models' error against the distance to the nearest sample",
            "",
            *_by_distance(report),
            "",
        ]
    if development:
        methods = development[0]["methods"]
        lines += [
            "## Development regions: choosing the planner's settings",
            "",
            "Regions: "
            + "; ".join(
                f"{d['region']['box']} ({d['seeds'][0]['sizes']['region_sites']:,} sites, "
                f"{d['seeds'][0]['sizes']['test']:,} test sites, "
                f"{d['seeds'][0]['sizes']['candidates']:,} candidates)"
                for d in development
            )
            + "; the same design and training. "
            f"Grid: L_f in {_listing(report['grid']['feature_range'])} sd, L_s in "
            f"{_listing(report['grid']['spatial_range_km'])} km (0: the default, the median gap), noise "
            f"ratio r in {_listing(report['grid']['noise_ratio'])}, variance power γ in "
            f"{_listing(report['grid']['variance_power'])}. Criterion: the lowest RMSE averaged over "
            "regions, seeds and N (among the L_f x L_s x r x γ grid"
            + (
                "; the spaced planners, post hoc, are compared among themselves"
                if report.get("spaced_km")
                else ""
            )
            + _forms_text(methods)
            + "). Mean RMSE over regions and N per method: "
            + ", ".join(f"`{m}` {development_rmse(report, m):.3f}" for m in methods)
            + f". Chosen: `{report['chosen']}`"
            + (f" and, post hoc, `{report['chosen_spaced']}`." if report.get("chosen_spaced") else "."),
            "",
        ]
        for region in development:
            lines += [
                f"### {region['region']['name']}",
                "",
                *_results(region, report["unit"], detail=False),
                "",
            ]
    if "added" in phase:
        lines += ["## What the methods add (evaluation region)", "", *_added(phase, report["unit"]), ""]
    train_s = [r["train_s"] for p in _phases(report) for s in p["seeds"] for r in s["runs"]]
    train_s += [s["initial"]["train_s"] for p in _phases(report) for s in p["seeds"]]
    plan_s = [plan["seconds"] for p in _phases(report) for s in p["seeds"] for plan in s["plans"].values()]
    clhs_s = [
        r["select_s"] for p in _phases(report) for s in p["seeds"] for r in s["runs"] if r["method"] == "cLHS"
    ]
    lines += [
        "## Time",
        "",
        f"{len(train_s)} ensembles trained, {np.mean(train_s):.1f} s each on average (training and the "
        f"predictor's reference graph); a plan {np.mean(plan_s):.1f} s (predicting the candidates and the "
        f"area included); a cLHS run {np.mean(clhs_s):.1f} s. Total {report['seconds'] / 60:.1f} min.",
        "",
    ]
    return "\n".join(lines)


def _added(phase: dict, unit: str) -> list[str]:
    added = phase["added"]
    epistemic = np.mean([p["candidates_epistemic_var"] for s in phase["seeds"] for p in s["plans"].values()])
    aleatoric = np.mean([p["candidates_aleatoric_var"] for s in phase["seeds"] for p in s["plans"].values()])
    ratio = phase["planners"]["planner"]["noise_ratio"]

    def removed(r: float) -> str:
        """The share of the epistemic variance a sample removes at its own site, with noise r x aleatoric."""
        return f"{epistemic / (epistemic + r * aleatoric):.0%}"

    return [
        "Mean over seeds, read after the fact to explain the RMSEs (no method sees these labels): the mean "
        f"target of the added sites (candidates: {added['candidates']['target']:.1f} {unit}), the median "
        "distance from an added site to the nearest other added site (clustering), and the median distance "
        "from a test site to its nearest training sample (coverage; initial sample: "
        f"{added['initial']['test_gap_km']:.1f} km).",
        "",
        f"| N | method | mean target of added sites ({unit}) | spacing of added sites (km) | "
        "test-site gap (km) |",
        "|---|---|---|---|---|",
        *(
            f"| {n} | {m} | {added[f'{m}|{n}']['target']:.1f} | {added[f'{m}|{n}']['spacing_km']:.1f} | "
            f"{added[f'{m}|{n}']['test_gap_km']:.1f} |"
            for n in phase["design"]["budgets"]
            for m in phase["methods"]
        ),
        "",
        f"At the candidates the initial model's epistemic variance averages {epistemic:.1f} ({unit})² "
        f"against an aleatoric variance of {aleatoric:.1f} ({unit})². With the measurement noise equal to "
        f"the aleatoric variance (r = 1) a sample would remove only {removed(1.0)} of the epistemic variance "
        "at its own site in the planner's Gaussian model (with these average variances; less around it), "
        "so the places that were most uncertain would stay the most attractive after it and the greedy plan "
        f"would keep returning to them; the default planner's r = {ratio:g} removes {removed(ratio)}. The "
        "spacing column shows how clustered the sites are next to random sampling and cLHS.",
    ]


def _by_distance(report: dict) -> list[str]:
    """Test sites pooled over the seeds of each region, by distance band: mean squared error and epistemic
    variance of the initial model (the planner's field is conditioned on the samples because of this)."""
    edges = [
        f"{a:g}-{b:g} km" if np.isfinite(b) else f"> {a:g} km"
        for a, b in itertools.pairwise(DISTANCE_BINS_KM)
    ]
    unit = report["unit"]
    lines = [
        "Test sites of the initial models (N = 0), pooled over seeds, by the distance to the nearest "
        f"training sample: mean squared error / mean epistemic variance, ({unit})². The ensemble's "
        "disagreement is what the planner's field starts from; the error is what a sample should remove.",
        "",
        "| region | " + " | ".join(edges) + " |",
        "|---|" + "---:|" * len(edges),
    ]
    for phase in _phases(report):
        cells = []
        for band in range(len(edges)):
            rows = [s["by_distance"][band] for s in phase["seeds"]]
            count = sum(r["n"] for r in rows)
            error, epistemic = (
                sum(r[key] for r in rows) / max(count, 1) for key in ("sq_error", "epistemic_var")
            )
            cells.append(f"{error:.0f} / {epistemic:.0f} (n = {count:,})" if count else "-")
        lines.append(f"| {phase['region']['name']} | " + " | ".join(cells) + " |")
    return lines


def _forms_text(methods: list[str]) -> str:
    """How the development grid's planners ran besides one plan: in rounds, as hybrids."""
    forms = ["in rounds"] * any(m.endswith(IN_ROUNDS) for m in methods)
    forms += [
        f"then {baseline}" for baseline in BASELINES if any(m.endswith(f"{THEN}{baseline}") for m in methods)
    ]
    if not forms:
        return ""
    *most, last = ["one plan", *forms]
    return f", each as {', '.join(most)} and {last}"


def _span(values: list[int]) -> str:
    return f"{min(values)}" if min(values) == max(values) else f"{min(values)}-{max(values)}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _phases(report: dict) -> list[dict]:
    return [*report.get("development", []), *([report["evaluation"]] if "evaluation" in report else [])]


def _listing(values: list[float]) -> str:
    return "{" + ", ".join(f"{v:g}" for v in values) + "}"


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def write(report: dict, out: Path) -> None:
    """The JSON, and once the evaluation region has a seed, the PNG and the Markdown; each atomically."""
    with atomic_output(out.with_suffix(".json")) as partial:
        partial.write_text(json.dumps(report, indent=1))
    if "evaluation" in report:
        plot(report, out.with_suffix(".png"))
        with atomic_output(out) as partial:
            partial.write_text(render(report))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        help="the report (default: training/reports/campaign_africa.md; with --pool, campaign_pooled.md)",
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds on the evaluation region")
    parser.add_argument(
        "--region",
        choices=HELD_OUT,
        default="east-africa",
        help="the held-out evaluation region (southern-africa, ethiopia: the second and third, for "
        "confirming a choice once)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--epochs", type=int, default=60)
    # 64, not the default 1024: with 300-400 training samples a 1024 batch makes an epoch one step.
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--patience", type=int, default=TrainConfig.patience)
    parser.add_argument("--budgets", default="25,50,100", help="N values, comma-separated")
    parser.add_argument(
        "--tune",
        action="store_true",
        help="first choose the planner's settings on the development regions; the evaluation then runs "
        "the default and the chosen planner (both in rounds too with --in-rounds)",
    )
    parser.add_argument("--dev-seeds", type=int, default=5, help="seeds on each development region")
    parser.add_argument("--feature-ranges", default="0.5", help="L_f grid (sd) for --tune")
    parser.add_argument("--spatial-ranges-km", default="0", help="L_s grid (km; 0: default) for --tune")
    parser.add_argument(
        "--noise-ratios", default="0.05,1", help="r grid (measurement noise / aleatoric variance) for --tune"
    )
    parser.add_argument(
        "--variance-powers", default="1,2", help="γ grid (field variance contrast) for --tune"
    )
    parser.add_argument(
        "--spaced-km",
        default="",
        help="with --tune, post hoc: default planners whose sites keep these minimum spacings (km) run on "
        "the development regions too, and the best of them on the evaluation region",
    )
    parser.add_argument(
        "--in-rounds",
        action="store_true",
        help="every planner also runs as a campaign in rounds, one per N: each round planned with the model "
        "retrained on the sites of the rounds before; with --tune they are candidates too",
    )
    parser.add_argument(
        "--hybrid",
        action="store_true",
        help="every planner also runs as a hybrid per baseline: its first round (the smallest N), then "
        "the baseline's sites (random, or cLHS with the planned sites fixed); with --tune, candidates too",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 seeds (1 dev), N = 5, 10, 3 epochs"
    )
    parser.add_argument(
        "--resume", action="store_true", help="keep the seeds already in the report's JSON and run the rest"
    )
    parser.add_argument(
        "--pool",
        type=Path,
        nargs="+",
        help="no training: pool the held-out regions of these report JSONs (relative RMSE differences) "
        "into the Markdown --out",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="no training: recompute the added-site description and rewrite the report from its JSON",
    )
    args = parser.parse_args(argv)
    if args.out is None:  # so that --pool never writes over a region's report by default
        args.out = REPORTS / ("campaign_pooled.md" if args.pool else "campaign_africa.md")
    if args.pool:
        with atomic_output(args.out) as partial:
            partial.write_text(pooled(args.pool))
        return 0
    if args.render_only:
        report = json.loads(args.out.with_suffix(".json").read_text())
        dataset = load_africa()
        for phase in _phases(report):
            phase["added"] = describe_added(phase, node_table(dataset), dataset.target)
        write(report, args.out)
        return 0
    seeds, dev_seeds, epochs = args.seeds, args.dev_seeds, args.epochs
    budgets = tuple(int(b) for b in args.budgets.split(","))
    if args.quick:
        seeds, dev_seeds, budgets, epochs = 2, 1, (5, 10), 3

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    dataset = load_africa()
    design = Design(budgets=budgets)
    train_config = TrainConfig(epochs=epochs, batch_size=args.batch_size, patience=args.patience)
    experiment = Experiment(
        node_table(dataset), dataset.target, dataset.covariates.to_numpy(np.float64), train_config
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": " ".join(["python", "training/benchmarks/campaign.py", *(argv or sys.argv[1:])]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
        "threads": args.threads,
        "samples": len(dataset.target),
        "unit": dataset.unit,
        "train_config": train_config.to_dict(),
        "png": args.out.with_suffix(".png").name,
    }

    previous = json.loads(args.out.with_suffix(".json").read_text()) if args.resume else {}
    if previous:
        if previous["train_config"] != report["train_config"]:
            raise SystemExit("Cannot resume: the JSON was made with other training settings.")
        report["command"] = f"{previous['command']}; then {report['command']}"
        started -= previous.get("seconds", 0.0)  # the reported run time includes the interrupted run

    def log(message: str) -> None:
        print(f"[{(time.perf_counter() - started) / 60:5.1f} min] {message}", flush=True)

    def saver(key: str) -> Callable[[dict], None]:
        """Write the report with ``phase`` as its ``key``; after every seed, so a stopped run keeps them."""

        def save(phase: dict) -> None:
            report[key] = phase
            report["seconds"] = time.perf_counter() - started
            write(report, args.out)

        return save

    default = PlannerSettings()
    planners = {"planner": default}
    if args.tune:
        report["grid"] = {
            "feature_range": _floats(args.feature_ranges),
            "spatial_range_km": _floats(args.spatial_ranges_km),
            "noise_ratio": _floats(args.noise_ratios),
            "variance_power": _floats(args.variance_powers),
        }
        grid = {
            planner_label(settings): settings
            for settings in (
                PlannerSettings(feature_range=f, spatial_range_m=1000.0 * km, noise_ratio=r, variance_power=g)
                for f, km, r, g in itertools.product(*report["grid"].values())
            )
        }
        spaced = {
            f"planner spaced {km:g} km": PlannerSettings(min_spacing_m=1000.0 * km)
            for km in (_floats(args.spaced_km) if args.spaced_km else [])
        }
        resumed = previous.get("development", [])
        report["development"] = []
        for index, box in enumerate(DEVELOPMENT):

            def save(phase: dict, index: int = index) -> None:
                report["development"][index:] = [phase]
                saver("development")(report["development"])

            save(
                run_phase(
                    experiment,
                    box,
                    design,
                    dev_seeds,
                    {**grid, **spaced},
                    log,
                    save,
                    resumed[index] if index < len(resumed) else None,
                    args.in_rounds,
                    args.hybrid,
                )
            )
        choices = variants(grid, args.in_rounds, args.hybrid)
        report["chosen"] = min(choices, key=lambda name: development_rmse(report, name))
        log(f"chosen on the development regions: {report['chosen']}")
        chosen = grid[planner_of(report["chosen"])]
        if chosen != default:
            planners["planner (dev-tuned)"] = chosen
        if spaced:
            report["spaced_km"] = _floats(args.spaced_km)
            report["chosen_spaced"] = min(spaced, key=lambda name: development_rmse(report, name))
            planners[f"{report['chosen_spaced']} (post hoc)"] = spaced[report["chosen_spaced"]]
    evaluation = previous.get("evaluation")
    report["evaluation"] = run_phase(
        experiment,
        HELD_OUT[args.region],
        design,
        seeds,
        planners,
        log,
        saver("evaluation"),
        evaluation,
        args.in_rounds,
        args.hybrid,
    )
    for phase in _phases(report):
        phase["added"] = describe_added(phase, experiment.table, experiment.target)
    write(report, args.out)
    for planner in planner_methods(report["evaluation"]):
        log(verdict(report["evaluation"]["summary"], planner, list(budgets)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
