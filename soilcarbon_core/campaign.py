r"""Field-campaign planning: where N new samples most reduce the model's epistemic uncertainty.

Criterion: greedy sequential design on a Gaussian approximation of the ensemble's epistemic error,
minimising the area's integrated (mean) variance as in Sacks et al., "Design and analysis of computer
experiments", Statistical Science 4 (1989), chosen one site at a time as in Krause, Singh & Guestrin,
"Near-optimal sensor placements in Gaussian processes", JMLR 9 (2008).

The epistemic error :math:`e(x)` of the map is modelled as a zero-mean Gaussian field whose variance
:math:`v(x)` follows the ensemble's epistemic variance :math:`\sigma_e^2(x)`, its contrasts about the
area's mean :math:`\bar\sigma_e^2` raised to a power :math:`\gamma` (``variance_power``), and whose
correlation falls with distance on the ground and with dissimilarity of the model's inputs (its :math:`p`
spectral-similarity features :math:`z`, standardised):

.. math::
    v(x) = \bar\sigma_e^2 \Big(\frac{\sigma_e^2(x)}{\bar\sigma_e^2}\Big)^{\gamma}, \qquad
    C(x, x') = \sqrt{v(x)\,v(x')}\,
               \exp\!\Big(-\frac{d(x, x')}{L_s}\Big)\,
               \exp\!\Big(-\frac{\lVert z - z' \rVert^2}{2 p L_f^2}\Big)

A new sample at :math:`s` measures the target with noise :math:`\tau_s^2 = r\,\sigma_a^2(s)`, a fraction
:math:`r` (``noise_ratio``) of the aleatoric variance there. Conditioning on it lowers the error variance
at every cell :math:`j` of the area by :math:`C(j, s)^2 / (C(s, s) + \tau_s^2)` (the Kalman / kriging
update), so the expected reduction of the area's mean error variance is

.. math:: G(s) = \frac{1}{|A|} \sum_{j \in A} \frac{C(j, s)^2}{C(s, s) + \tau_s^2}

The field is first conditioned on the existing samples (the model's reference nodes, each a measurement
with noise :math:`\tau^2 = r\,\sigma_a^2` as below), by the same update. Why: the ensemble's members read
the same reference labels, so they disagree about as much next to a sample as far from one, while the
map's error grows with the distance to the nearest sample (the campaign report's table of the initial
models' error against that distance). Conditioning puts that growth into the field: places next to a
sample start with little variance left, whatever the ensemble's disagreement there.

Sites are chosen one at a time by the largest :math:`G`, each time updating :math:`C` by the chosen
site (:math:`C \leftarrow C - c_s c_s^\top / (C_{ss} + \tau_s^2)`). The update is the spatial-spread
term: a cell near a chosen site (in space and in covariates) has lost variance, so the next site goes
where uncertainty remains. Sites where the model is uncertain *and* that resemble much of the area win;
isolated outliers and places the model already knows lose.

Why :math:`r < 1`: :math:`r = 1` is the Bayesian update of the regression function by one noisy label,
but the ensemble's aleatoric variance is everything the model cannot explain from its inputs, much of it
spatially structured residual that a new reference node explains for its neighbours (the network reads
neighbours' labels), and it dwarfs the ensemble's epistemic variance (about 9x on the Africa data). With
:math:`r = 1` a sample then removes only about a tenth of the variance at its own site, the most
uncertain places stay the most attractive, and the plan keeps returning to one dense, uncertain spot
(median spacing of 1-3 km where random sites lie 6-77 km apart). With small :math:`r` a site clears most
of the variance around it; as :math:`r \to 0` the design tends to a space-filling one in the ground x
covariate metric, weighted by the epistemic variance, so sites go where the area's uncertainty mass is.

Why :math:`\gamma = 1` (the ensemble's own variance contrasts): sharpening them (:math:`\gamma > 1`)
helped on one development region and hurt on others; the settings are chosen over three development
regions, never on the evaluation region (the development section of
``training/reports/campaign_africa.md``, made by ``make campaign-report``; ``docs/maps.md``).

A large campaign should be sampled in rounds, each planned with the model retrained on the samples of
the rounds before; the ranks make the rounds. In the campaign reports rounds of 25, 25 and 50 have a
lower mean error than random sampling and cLHS at every N on two of three held-out regions and tie random
sampling on the third (``campaign_pooled.md``), while one plan of 100 sites does worse than random
sampling.

Scales: :math:`L_s` defaults to the median distance from the area's cells to their nearest existing
sample (the size of the current sampling gaps); :math:`L_f` = 0.5 standard deviations (RMS over the
features). Shapes: ``P`` candidates, ``A`` area cells, ``S`` existing samples; :math:`C(P, A)` and
:math:`C(P, P)` are conditioned on the samples by one Cholesky factorisation (O(S^3 + S^2 (P + A))), then
kept and updated in place, O(P (P + A)) memory and O(N P (P + A)) time for N sites. Large areas are
represented by a random subset of cells (``max_area_cells``) and candidates are capped likewise
(``max_candidates``), the samples by those nearest the area (``max_samples``, :func:`samples_near`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from soilcarbon_core.errors import InputError
from soilcarbon_core.graph.geometry import SpatialFrame
from soilcarbon_core.progress import ProgressCallback, scaled, silent
from soilcarbon_core.settings import JsonSettings

#: Fields of a campaign plan's point layer, in order.
PLAN_FIELDS = (
    "rank",
    "expected_reduction",
    "reduction_pct",
    "epistemic_sd",
    "pred_mean",
    "nearest_sample_m",
    "reason",
)


@dataclass
class PlannerSettings(JsonSettings):
    """Scales and limits of the campaign planner (see the module docstring)."""

    spatial_range_m: float = 0.0  #: L_s in metres; 0: median distance from the area to the nearest sample
    feature_range: float = 0.5  #: L_f in standard deviations of the similarity features (RMS)
    noise_ratio: float = 0.05  #: r: a measurement's noise variance = r x the aleatoric variance
    variance_power: float = 1.0  #: gamma: the field's variance contrasts (1: the ensemble's own; 0: flat)
    min_spacing_m: float = 0.0  #: no two sites (nor a site and an existing sample) closer than this
    max_candidates: int = 3000  #: candidates beyond this are a random subset
    max_area_cells: int = 3000  #: the area is represented by at most this many random cells
    max_samples: int = 3000  #: the field is conditioned on at most this many samples, those nearest the area
    seed: int = 0


@dataclass(frozen=True)
class PlanInputs:
    """What the planner needs of a set of places (candidates or area cells), ``n`` of them.

    Attributes:
        coords: ``(n, 2)`` in the model's graph coordinates (lon/lat degrees when geographic, else metres).
        features: ``(n, p)`` standardised similarity features (NaN where unknown), or ``(n, 0)``.
        epistemic_var: ``(n,)`` ensemble epistemic variance (target units squared).
        aleatoric_var: ``(n,)`` aleatoric variance, the noise of a measurement there.
    """

    coords: np.ndarray
    features: np.ndarray
    epistemic_var: np.ndarray
    aleatoric_var: np.ndarray

    @classmethod
    def from_prediction(cls, table, normaliser, prediction) -> PlanInputs:
        """The planner's view of places predicted by a model: a :class:`NodeTable`, the model's
        :class:`Normaliser` and the places' :class:`Prediction` (calibrated sds)."""
        features = normaliser.similarity_features(table)
        return cls(
            coords=table.xy,
            features=np.empty((len(table), 0)) if features is None else features,
            epistemic_var=prediction.epistemic_sd**2,
            aleatoric_var=prediction.aleatoric_sd**2,
        )

    def take(self, index: np.ndarray) -> PlanInputs:
        return PlanInputs(*(np.asarray(getattr(self, f.name))[index] for f in fields(self)))

    def __len__(self) -> int:
        return len(self.epistemic_var)


@dataclass(frozen=True)
class CampaignPlan:
    """N chosen sites in rank order.

    Attributes:
        chosen: ``(N,)`` indices into the candidates.
        reduction: ``(N,)`` expected reduction of the area's mean epistemic variance by each site, given
            the sites ranked before it (target units squared): the share of the field's mean :math:`v`
            it removes (see the module docstring), times the area's mean epistemic variance.
        reduction_pct: that share, in percent.
        nearest_sample_m: ``(N,)`` distance to the nearest existing sample (model reference node).
        area_var_before, area_var_after: the area's mean epistemic variance before and after all N sites.
        spatial_range_m, feature_range: the scales used.
    """

    chosen: np.ndarray
    reduction: np.ndarray
    reduction_pct: np.ndarray
    nearest_sample_m: np.ndarray
    area_var_before: float
    area_var_after: float
    spatial_range_m: float
    feature_range: float


def plan_sites(
    candidates: PlanInputs,
    area: PlanInputs,
    samples: np.ndarray,
    budget: int,
    *,
    geographic: bool,
    measured: PlanInputs | None = None,
    settings: PlannerSettings | None = None,
    progress: ProgressCallback = silent,
) -> CampaignPlan:
    """Choose ``budget`` sites among ``candidates`` by greedy expected reduction of epistemic variance.

    Args:
        candidates: the places a sample may go.
        area: the places whose uncertainty should fall (the map area; may be the candidates themselves).
        samples: ``(m, 2)`` coordinates of the existing samples (the model's reference nodes).
        budget: N, the number of sites.
        geographic: whether coordinates are lon/lat degrees.
        measured: the existing samples the field is conditioned on, as the model sees them (predicted as
            places: :meth:`PlanInputs.from_prediction`); usually those of ``samples`` near the area
            (:func:`samples_near`). None: the field is not conditioned (the ensemble's variance alone).
    """
    settings = settings or PlannerSettings()
    if budget < 1:
        raise InputError(f"The budget must be at least one site, not {budget}.", "Give N >= 1.")
    if len(candidates) == 0:
        raise InputError("There are no candidate places to sample.", "Check the candidate area and mask.")
    if budget > len(candidates):
        raise InputError(
            f"The budget ({budget} sites) exceeds the {len(candidates)} candidate places.",
            "Lower the budget or enlarge the candidate area.",
        )
    rng = np.random.default_rng(settings.seed)
    frame = SpatialFrame(geographic)
    candidate_ids = np.arange(len(candidates))
    if len(candidates) > settings.max_candidates:
        candidate_ids = np.sort(rng.choice(len(candidates), settings.max_candidates, replace=False))
        if budget > candidate_ids.size:
            raise InputError(
                f"The budget ({budget}) exceeds max_candidates ({settings.max_candidates}).",
                "Raise max_candidates.",
            )
    if len(area) > settings.max_area_cells:
        area = area.take(np.sort(rng.choice(len(area), settings.max_area_cells, replace=False)))
    pool = candidates.take(candidate_ids)

    pool_points = frame.embed(pool.coords, "candidate coordinates")
    area_points = frame.embed(area.coords, "area coordinates")
    sample_points = frame.embed(np.asarray(samples, dtype=np.float64).reshape(-1, 2), "sample coordinates")
    nearest = nearest_distance(frame, pool_points, sample_points)
    spatial_range = settings.spatial_range_m or _default_spatial_range(frame, area_points, sample_points)
    mean_var = float(np.mean(np.maximum(area.epistemic_var, 0.0)))

    def field_sd(places: PlanInputs) -> np.ndarray:
        """sqrt(v): the epistemic variance, its ratio to the area's mean raised to gamma."""
        variance = np.maximum(places.epistemic_var, 0.0)
        if mean_var > 0:
            variance = mean_var * (variance / mean_var) ** settings.variance_power
        return np.sqrt(variance)

    def covariance(a: PlanInputs, a_points: np.ndarray, b: PlanInputs, b_points: np.ndarray) -> np.ndarray:
        from scipy.spatial.distance import cdist

        ground = frame.metres(cdist(a_points, b_points))
        correlation = np.exp(-ground / spatial_range)
        if a.features.shape[1]:
            fa, fb = np.nan_to_num(a.features), np.nan_to_num(b.features)
            mean_square = cdist(fa, fb, "sqeuclidean") / a.features.shape[1]
            correlation *= np.exp(-mean_square / (2 * settings.feature_range**2))
        return field_sd(a)[:, None] * correlation * field_sd(b)[None, :]

    pool_area = covariance(pool, pool_points, area, area_points)  # C(P, A), updated in place
    pool_pool = covariance(pool, pool_points, pool, pool_points)  # C(P, P)
    area_var = field_sd(area) ** 2
    if measured is not None and len(measured):
        from scipy.linalg import cho_factor, solve_triangular

        measured_points = frame.embed(measured.coords, "sample coordinates")
        block = covariance(measured, measured_points, measured, measured_points)
        block[np.diag_indices_from(block)] += settings.noise_ratio * np.maximum(measured.aleatoric_var, 0.0)
        # A relative jitter keeps co-located noiseless samples (r = 0) factorisable.
        block[np.diag_indices_from(block)] += 1e-9 * max(float(block.diagonal().mean()), 1e-300)
        lower, _ = cho_factor(block, lower=True)

        def whitened(places: PlanInputs, points: np.ndarray) -> np.ndarray:
            """L^-1 C(S, places): the samples' covariance with the places, whitened."""
            return solve_triangular(lower, covariance(measured, measured_points, places, points), lower=True)

        pool_weights, area_weights = whitened(pool, pool_points), whitened(area, area_points)
        pool_area -= pool_weights.T @ area_weights
        pool_pool -= pool_weights.T @ pool_weights
        area_var = area_var - (area_weights**2).sum(axis=0)
    noise = settings.noise_ratio * np.maximum(pool.aleatoric_var, 0.0)
    before = float(np.mean(area_var))
    available = np.ones(len(pool), dtype=bool)
    if settings.min_spacing_m > 0:
        available &= nearest >= settings.min_spacing_m
    chosen, reductions = [], []
    for step in range(budget):
        progress(step / budget, f"Choosing site {step + 1} of {budget}")
        denominator = np.diag(pool_pool) + noise
        with np.errstate(invalid="ignore", divide="ignore"):
            gain = np.where(denominator > 0, (pool_area**2).sum(axis=1) / denominator, 0.0) / len(area)
        gain[~available] = -np.inf
        best = int(np.argmax(gain))
        if not np.isfinite(gain[best]):
            raise InputError(
                f"Only {step} sites fit at least {settings.min_spacing_m:g} m apart in the candidate area.",
                "Lower the minimum spacing or the budget.",
            )
        chosen.append(best)
        reductions.append(float(gain[best]))
        if denominator[best] > 0:  # condition the field on a measurement at the chosen site (rank-1 update)
            scale = np.sqrt(denominator[best])
            weight = pool_pool[:, best] / scale
            pool_area -= np.outer(weight, pool_area[best] / scale)
            pool_pool -= np.outer(weight, weight)
        available[best] = False
        if settings.min_spacing_m > 0:
            near = frame.metres(np.linalg.norm(pool_points - pool_points[best], axis=1))
            available &= near >= settings.min_spacing_m
    progress(1.0, f"Chose {budget} sites")
    chosen_ids = np.asarray(chosen, dtype=np.int64)
    # The field's reductions, as shares of its mean v, applied to the area's mean epistemic variance: the
    # reported figures stay in the model's own units whatever gamma sharpened the field by.
    share = np.asarray(reductions) / before if before > 0 else np.zeros(len(reductions))
    reduction = share * mean_var
    return CampaignPlan(
        chosen=candidate_ids[chosen_ids],
        reduction=reduction,
        reduction_pct=100.0 * share,
        nearest_sample_m=nearest[chosen_ids],
        area_var_before=mean_var,
        area_var_after=mean_var - float(reduction.sum()),
        spatial_range_m=float(spatial_range),
        feature_range=settings.feature_range,
    )


def nearest_distance(frame: SpatialFrame, points: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Ground distance (m) from each of ``points`` to its nearest of ``samples`` (both tree points of
    ``frame``, :meth:`SpatialFrame.embed`); inf without samples."""
    from scipy.spatial import cKDTree

    if not len(samples):
        return np.full(len(points), np.inf)
    chord, _ = cKDTree(samples).query(points, k=1)
    return frame.metres(chord)


def samples_near(
    frame: SpatialFrame, samples: np.ndarray, places: np.ndarray, limit: int, neighbours: int = 4
) -> np.ndarray:
    """Indices of the samples (tree points of ``frame``) the field is conditioned on: the ``neighbours``
    nearest of every place; beyond ``limit``, those nearest to a place are kept (sorted indices)."""
    from scipy.spatial import cKDTree

    if not len(samples) or not len(places):
        return np.empty(0, dtype=np.int64)
    chord, index = cKDTree(samples).query(places, k=min(neighbours, len(samples)))
    chord, index = chord.reshape(len(places), -1).ravel(), index.reshape(len(places), -1).ravel()
    closest = np.full(len(samples), np.inf)
    np.minimum.at(closest, index, chord)
    near = np.flatnonzero(np.isfinite(closest))
    if near.size > limit:
        near = np.sort(near[np.argsort(closest[near], kind="stable")[:limit]])
    return near


def _default_spatial_range(frame: SpatialFrame, area: np.ndarray, samples: np.ndarray) -> float:
    """L_s: the median distance from the area's cells to their nearest existing sample (at least 1 m)."""
    distances = nearest_distance(frame, area, samples)
    finite = distances[np.isfinite(distances)]
    if finite.size == 0:
        # No existing sample: a tenth of the area's extent.
        extent = frame.metres(np.linalg.norm(area.max(axis=0) - area.min(axis=0)))
        return max(float(extent) / 10.0, 1.0)
    return max(float(np.median(finite)), 1.0)


def reason(sd: float, pct: float, distance_m: float, unit: str) -> str:
    """One line saying why a site was chosen."""
    where = (
        "no existing sample"
        if not np.isfinite(distance_m)
        else f"{distance_m / 1000:.1f} km from the nearest sample"
    )
    cut = f"expected to cut the area's epistemic variance by {pct:.1f} %"
    return f"{cut}; model sd here {sd:.3g} {unit}; {where}"


def plan_campaign(
    model_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    budget: int,
    *,
    candidates: str | os.PathLike[str] | None = None,
    grid=None,
    rasters=(),
    imagery=None,
    mask: str | os.PathLike[str] | None = None,
    date: str | None = None,
    device: str = "auto",
    settings: PlannerSettings | None = None,
    progress: ProgressCallback = silent,
    **read_options: object,
) -> dict:
    """Plan ``budget`` new sampling sites for a model; write them as a ranked point GeoPackage.

    The candidates are the points of ``candidates`` or the cells of ``grid`` (a
    :class:`~soilcarbon_core.maps.grid.GridSpec` or a template raster; cells where ``mask``, a raster,
    is non-zero are inaccessible, as are cells without every input). The area whose uncertainty should
    fall is the candidates themselves. Fields: :data:`PLAN_FIELDS` (distances in metres, variances and
    sds in the model's target unit)."""
    from soilcarbon_core.device import resolve_device
    from soilcarbon_core.io.points import SamplePoints, read_points
    from soilcarbon_core.io.vector_out import write_points_gpkg
    from soilcarbon_core.model import SoilCarbonModel
    from soilcarbon_core.prediction import imagery_encoder, predict_valid, with_date

    if (candidates is None) == (grid is None):
        raise InputError("Give either candidate points or a candidate grid (not both).", "See --help.")
    settings = settings or PlannerSettings()
    progress(0.0, "Loading the model")
    model = SoilCarbonModel.load(model_path)
    predictor = model.predictor(resolve_device(device))
    encoder = imagery_encoder(model, imagery, str(predictor.device))
    if grid is not None:
        points = _grid_candidates(grid, mask, settings, scaled(progress, 0.0, 0.05))
        method = "nearest"
    else:
        points = (
            candidates if isinstance(candidates, SamplePoints) else read_points(candidates, **read_options)
        )
        method = "bilinear"
    points = with_date(points, date)
    prediction, valid, table = predict_valid(
        model, predictor, points, list(rasters), method, scaled(progress, 0.05, 0.65), encoder
    )
    if not valid.any():
        raise InputError(
            "No candidate place has every input the model needs (all are outside the rasters or nodata).",
            "Check that the rasters cover the candidate area.",
        )
    kept = np.flatnonzero(valid)
    inputs = PlanInputs.from_prediction(table.select(kept), model.normaliser, prediction.take(kept))
    frame = SpatialFrame(model.schema.geographic)
    near = samples_near(
        frame, frame.embed(model.reference.xy), frame.embed(inputs.coords), settings.max_samples
    )
    progress(0.65, f"Predicting the {near.size} samples near the candidates")
    reference = model.reference.select(near)
    measured = PlanInputs.from_prediction(reference, model.normaliser, predictor.predict(reference))
    plan = plan_sites(
        inputs,
        inputs,
        model.reference.xy,
        budget,
        geographic=model.schema.geographic,
        measured=measured,
        settings=settings,
        progress=scaled(progress, 0.7, 0.95),
    )
    rows = kept[plan.chosen]
    sd = prediction.epistemic_sd[rows]
    chosen_points = SamplePoints(
        points.x[rows], points.y[rows], points.crs, points.attributes.iloc[rows].reset_index(drop=True)
    )
    columns = {
        "rank": np.arange(1, budget + 1),
        "expected_reduction": plan.reduction,
        "reduction_pct": plan.reduction_pct,
        "epistemic_sd": sd,
        "pred_mean": prediction.mean[rows],
        "nearest_sample_m": np.where(np.isfinite(plan.nearest_sample_m), plan.nearest_sample_m, np.nan),
        "reason": np.array(
            [
                reason(s, p, d, model.unit)
                for s, p, d in zip(sd, plan.reduction_pct, plan.nearest_sample_m, strict=True)
            ],
            dtype=object,
        ),
    }
    write_points_gpkg(output, chosen_points, columns, layer="campaign", progress=scaled(progress, 0.95, 1.0))
    return {
        "output": str(Path(output)),
        "layer": "campaign",
        "target": model.target,
        "unit": model.unit,
        "sites": budget,
        "candidates": int(valid.sum()),
        "area_epistemic_sd_before": float(np.sqrt(plan.area_var_before)),
        "area_epistemic_sd_after": float(np.sqrt(max(plan.area_var_after, 0.0))),
        "spatial_range_m": plan.spatial_range_m,
        "feature_range": plan.feature_range,
        "device": str(predictor.device),
    }


def _grid_candidates(grid, mask, settings: PlannerSettings, progress: ProgressCallback):
    """Candidate points: a random subset of the grid's cells (at most the planner's caps), leaving out
    cells where the ``mask`` raster is non-zero (inaccessible land) or outside it."""
    from soilcarbon_core.io.points import SamplePoints
    from soilcarbon_core.io.rasters import sample_rasters
    from soilcarbon_core.maps.grid import GridSpec

    grid = grid if isinstance(grid, GridSpec) else GridSpec.from_raster(grid)
    rng = np.random.default_rng(settings.seed)
    wanted = max(settings.max_candidates, settings.max_area_cells)
    # Draw extra cells so that masked ones still leave enough candidates.
    count = min(grid.cells, 4 * wanted if mask is not None else wanted)
    cells = np.sort(rng.choice(grid.cells, count, replace=False))
    x, y = grid.centres(*np.divmod(cells, grid.width))
    points = SamplePoints.at(x, y, grid.crs, source="grid")
    if mask is not None:
        sampled = sample_rasters(points, [mask], method="nearest", progress=progress)
        # Non-zero mask cells are inaccessible; nodata and cells outside the mask are not masked.
        accessible = ~(sampled.valid & (sampled.values[:, 0] != 0))
        keep = np.flatnonzero(accessible)[:wanted]
        points = SamplePoints.at(points.x[keep], points.y[keep], grid.crs, source="grid")
    return points
