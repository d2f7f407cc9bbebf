"""Conditioned Latin hypercube sampling (cLHS), the standard sampling design of digital soil mapping.

Minasny B., McBratney A.B. (2006), "A conditioned Latin hypercube method for sampling in the presence
of ancillary information", Computers & Geosciences 32:1378-1388. It is the baseline against which the
uncertainty-driven campaign planner is compared: choose ``n`` new sites among ``P`` candidates, given
the sites already sampled (``fixed``).

Preparation of the ``(P, F)`` covariates of the candidates:

- NaN values are imputed with their column's median over the candidates (a column of NaN only has no
  median and is dropped), so a site with a missing covariate counts as typical for it;
- columns with zero variance are dropped (they have no strata and no correlation);
- columns are standardised, which changes neither the strata nor the correlations but keeps the
  running sums of the annealer well conditioned.

With sample size ``s = n + len(fixed)``, each covariate ``j`` is cut into ``s`` strata at its quantiles
over all candidates, edges ``q_j(0), q_j(1/s), ..., q_j(1)`` (linear interpolation); stratum ``i`` is
``[q_j(i/s), q_j((i+1)/s))``, the last one closed. The objective of a sample is the paper's O1 + O3
(O2, for categorical covariates, does not apply: every covariate here is continuous)::

    O = w1 * sum_j sum_i |eta_ij - 1|  +  w2 * sum_jk |C_jk - T_jk|

where ``eta_ij`` is the number of sample sites in stratum ``i`` of covariate ``j``, ``C`` the ``(F, F)``
Pearson correlation matrix of the sample and ``T`` that of all candidates. A covariate constant over
the sample has no correlation; it counts as uncorrelated (``C_jk = 0`` off the diagonal). O1 = 0 is a
Latin hypercube: every stratum of every covariate holds exactly one site. It is often out of reach:
strata between tied edges (many equal values, e.g. after imputation) cannot be filled, and with many
covariates no subset of the candidates may be a Latin hypercube at all (for 9 independent covariates,
``P = 10,000`` and ``s = 100``, a random subset is one with probability ``(100! / 100^100)^9 ~ 1e-380``
against ``C(10,000, 100) ~ 1e242`` subsets, so none is expected).

The search is the paper's simulated annealing. Each iteration, with probability 1/2 a random non-fixed
sample site is to leave the sample, otherwise the non-fixed site whose strata are the most over-filled
(largest ``sum_j (eta_{i_j(site), j} - 1)``, ties at random). Its replacement is the best (lowest O) of
``CANDIDATES_PER_MOVE`` random unsampled candidates, where the paper draws a single one: late in the
search almost every single draw is worse (a random candidate adds ``+1`` to O1 for each covariate where it
falls in an already filled stratum), and drawing 32 costs little more than one since the moves are
evaluated together. The move is accepted if it lowers O, else with probability ``exp(-delta / T)``
(Metropolis). ``T`` starts at 1 and is multiplied by a constant factor every 10 iterations, as in the
paper, but the factor is set so that ``T`` reaches ``T_END = 0.01`` at the last iteration whatever
``iterations`` is: with the paper's fixed 0.95, ``T`` is below 0.01 after 1,000 iterations and the rest
of a long run is a greedy search. The best sample seen, not the last one, is returned.

Evidence (9 correlated covariates, one log-normal, ``P = 10,000``, ``n = 100``, 10,000 iterations, 3
seeds; random samples: mean O1 659): O1 = 182-200 in about 2 s, against 242-260 drawing one candidate
per move as the paper does, 202-214 with the paper's cooling, and 172-182 with 40,000 iterations.
"""

from __future__ import annotations

import operator
import warnings

import numpy as np

from soilcarbon_core.errors import InputError

#: Temperature at the first iteration (the paper's T0) and at the last one.
T_START = 1.0
T_END = 1e-2
#: Iterations between two coolings (the paper's cycle length).
COOLING_CYCLE = 10
#: Unsampled candidates drawn per move; the best of them is proposed.
CANDIDATES_PER_MOVE = 32


def clhs(
    covariates: np.ndarray,
    n: int,
    *,
    fixed: np.ndarray | None = None,
    iterations: int = 10_000,
    weights: tuple[float, float] = (1.0, 0.5),
    seed: int = 0,
) -> np.ndarray:
    """Choose ``n`` new sites among the candidates by conditioned Latin hypercube sampling.

    Args:
        covariates: ``(P, F)`` continuous covariates of the candidate sites; NaN allowed (imputed with
            the column median), constant columns are dropped (see the module docstring).
        n: number of new sites to choose.
        fixed: indices into ``covariates`` of the sites already sampled: they are part of the sample
            (strata and correlation count them) but never moved, and not returned.
        iterations: annealing iterations.
        weights: ``(w1, w2)``, weights of the strata term and of the correlation term.
        seed: seed of the random start and of the annealer.

    Returns:
        ``(n,)`` sorted, distinct int64 indices into ``covariates``, none of them in ``fixed``: the new
        sites of the best sample seen.
    """
    n = _count(n, "number of new sites")
    iterations = _count(iterations, "number of iterations", minimum=0)
    data = _prepare(covariates)
    fixed_idx = _fixed(fixed, data.shape[0])
    s = n + fixed_idx.size
    if s > data.shape[0]:
        raise InputError(
            f"Cannot choose {n} new site(s) besides {fixed_idx.size} fixed one(s) among only "
            f"{data.shape[0]} candidates.",
            "Ask for fewer sites or give more candidates.",
        )
    w1, w2 = _weights(weights)
    rng = np.random.default_rng(seed)

    # pool[:m] are the fixed sites, pool[m:s] the free sample sites, pool[s:] the unsampled candidates,
    # so a swap is an O(1) exchange of two entries.
    m = fixed_idx.size
    is_fixed = np.zeros(data.shape[0], dtype=bool)
    is_fixed[fixed_idx] = True
    pool = np.concatenate([fixed_idx, rng.permutation(np.flatnonzero(~is_fixed))])
    best = pool[m:s].copy()
    if s == data.shape[0]:  # nothing to swap with
        iterations = 0

    state = _Annealer(data, pool, s, _strata(data, s), _corr(data), w1, w2)
    best_obj = state.objective
    cooling = (T_END / T_START) ** (COOLING_CYCLE / max(iterations, 1))
    temperature = T_START
    for it in range(iterations):
        if it and it % COOLING_CYCLE == 0:
            temperature *= cooling
        if rng.random() < 0.5:
            out_pos = int(rng.integers(m, s))
        else:
            score = state.overfill()[m:]
            out_pos = m + int(rng.choice(np.flatnonzero(score == score.max())))
        # The best of a few random unsampled candidates (the paper draws one; see the module docstring).
        in_pos = rng.integers(s, pool.size, size=CANDIDATES_PER_MOVE)
        objectives, o1 = state.propose(out_pos, in_pos)
        k = int(np.argmin(objectives))
        delta = objectives[k] - state.objective
        if delta < 0 or rng.random() < np.exp(-delta / temperature):
            state.commit(out_pos, int(in_pos[k]), float(objectives[k]), int(o1[k]))
            if state.objective < best_obj:
                best_obj, best = state.objective, pool[m:s].copy()
    return np.sort(best).astype(np.int64)


def clhs_objective(
    covariates: np.ndarray, sample: np.ndarray, weights: tuple[float, float] = (1.0, 0.5)
) -> float:
    """cLHS objective ``O = w1 * O1 + w2 * O3`` (module docstring) of a whole sample, computed from scratch.

    Args:
        covariates: ``(P, F)`` covariates of all candidates, prepared as in :func:`clhs`.
        sample: ``(s,)`` distinct indices into ``covariates``: the whole sample, fixed sites included;
            its size sets the number of strata.
        weights: ``(w1, w2)``; ``(1, 0)`` gives the strata term O1 alone, ``(0, 1)`` the correlation term.
    """
    data = _prepare(covariates)
    sample = _fixed(sample, data.shape[0])
    if sample.size == 0:
        raise InputError("The sample is empty.", "Give the indices of at least one site.")
    w1, w2 = _weights(weights)
    o1 = np.abs(_strata_counts(_strata(data, sample.size)[sample], sample.size) - 1).sum()
    o3 = np.abs(_corr(data[sample]) - _corr(data)).sum()
    return float(w1 * o1 + w2 * o3)


class _Annealer:
    """Running state of the sample ``pool[:s]`` (``pool`` is swapped in place by :meth:`commit`).

    ``counts`` is ``(s, F)``: ``counts[i, j]`` sample sites in stratum ``i`` of covariate ``j``; ``members``
    ``(s, F)`` the strata of the site at each sample position. ``sum1`` ``(F,)`` and ``sum2`` ``(F, F)`` are
    the sums of ``z`` and of ``z z^T`` over the sample. A swap changes one count up and one down per
    covariate and the sums by two rank-one terms, so moves are evaluated in O(F^2) without recounting.
    """

    def __init__(
        self,
        data: np.ndarray,
        pool: np.ndarray,
        s: int,
        strata: np.ndarray,
        target: np.ndarray,
        w1: float,
        w2: float,
    ) -> None:
        self.data, self.pool, self.s, self.strata = data, pool, s, strata
        self.target, self.w1, self.w2 = target, w1, w2
        self.cols = np.arange(data.shape[1])
        self.members = strata[pool[:s]]
        self.counts = _strata_counts(self.members, s)
        z = data[pool[:s]]
        self.sum1, self.sum2 = z.sum(axis=0), z.T @ z
        self.o1 = int(np.abs(self.counts - 1).sum())
        self.objective = self.w1 * self.o1 + self.w2 * float(self._o3(self.sum1, self.sum2))

    def overfill(self) -> np.ndarray:
        """``(s,)`` over-fill of each sample site's strata: ``sum_j (counts[stratum_j(site), j] - 1)``."""
        return (self.counts[self.members, self.cols] - 1).sum(axis=1)

    def propose(self, out_pos: int, in_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(K,)`` objectives and ``(K,)`` strata terms O1 after exchanging the sampled ``pool[out_pos]``
        with each of the unsampled ``pool[in_pos]``.

        Taking site ``a`` out of a stratum with count ``c`` changes ``|c - 1|`` by ``|c - 2| - |c - 1|``;
        putting site ``b`` into a stratum whose count is then ``c`` (after the removal) changes it by
        ``|c| - |c - 1|``.
        """
        a = self.members[out_pos]  # (F,)
        here = self.counts[a, self.cols]
        o1 = self.o1 + int((np.abs(here - 2) - np.abs(here - 1)).sum())
        b = self.strata[self.pool[in_pos]]  # (K, F)
        after = self.counts[b, self.cols] - (b == a)
        o1 = o1 + (np.abs(after) - np.abs(after - 1)).sum(axis=1)
        objective = self.w1 * o1 + self.w2 * self._o3(*self._sums(out_pos, in_pos))
        return objective, o1

    def commit(self, out_pos: int, in_pos: int, objective: float, o1: int) -> None:
        """Make the move that :meth:`propose` evaluated as ``(objective, o1)``."""
        self.sum1, self.sum2 = (x[0] for x in self._sums(out_pos, np.array([in_pos])))
        pool = self.pool
        pool[out_pos], pool[in_pos] = pool[in_pos], pool[out_pos]
        self.counts[self.members[out_pos], self.cols] -= 1  # one entry per column: no lost repeats
        self.members[out_pos] = self.strata[pool[out_pos]]
        self.counts[self.members[out_pos], self.cols] += 1
        self.objective, self.o1 = objective, o1

    def _sums(self, out_pos: int, in_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(K, F)`` and ``(K, F, F)`` sums of ``z`` and ``z z^T`` after each exchange."""
        z_out, z_in = self.data[self.pool[out_pos]], self.data[self.pool[in_pos]]
        sum1 = self.sum1 - z_out + z_in
        sum2 = self.sum2 - np.outer(z_out, z_out) + z_in[:, :, None] * z_in[:, None, :]
        return sum1, sum2

    def _o3(self, sum1: np.ndarray, sum2: np.ndarray) -> np.ndarray:
        """Correlation term ``sum |C - T|`` from the sums, over any leading (batch) axes."""
        mean = sum1 / self.s
        corr = _corr_from_cov(sum2 / self.s - mean[..., :, None] * mean[..., None, :])
        return np.abs(corr - self.target).sum(axis=(-2, -1))


def _corr_from_cov(cov: np.ndarray) -> np.ndarray:
    """``(..., F, F)`` correlations from covariance matrices; a (numerically) constant column gets zero
    correlation with the others and 1 on the diagonal, so the diagonal never adds to O3."""
    var = np.diagonal(cov, axis1=-2, axis2=-1)
    # Standardised columns have variance ~1 over the candidates; 1e-12 is round-off of a constant one.
    sd = np.sqrt(np.where(var > 1e-12, var, np.inf))
    corr = cov / (sd[..., :, None] * sd[..., None, :])
    diag = np.arange(cov.shape[-1])
    corr[..., diag, diag] = 1.0
    return corr


def _corr(z: np.ndarray) -> np.ndarray:
    """``(F, F)`` correlation matrix of the rows of ``z`` ``(N, F)``."""
    centred = z - z.mean(axis=0)
    return _corr_from_cov(centred.T @ centred / z.shape[0])


def _strata(data: np.ndarray, s: int) -> np.ndarray:
    """``(P, F)`` int64 stratum (0..s-1) of each candidate in each covariate.

    The inner edge ``k`` is the quantile ``k / s`` over all candidates by linear interpolation (numpy's
    default), at sorted position ``t = k (P - 1) / s``; ``t`` is computed in integers, so an edge that
    falls on a data value is exactly that value, and that value belongs to the stratum above it.
    """
    p = data.shape[0]
    ordered = np.sort(data, axis=0)
    pos = np.arange(1, s) * (p - 1)  # s * t
    lo, frac = pos // s, (pos % s / s)[:, None]
    edges = ordered[lo] + (ordered[np.minimum(lo + 1, p - 1)] - ordered[lo]) * frac  # (s - 1, F)
    return np.stack(
        [np.searchsorted(edges[:, j], data[:, j], side="right") for j in range(data.shape[1])], axis=1
    ).astype(np.int64)


def _strata_counts(members: np.ndarray, s: int) -> np.ndarray:
    """``(s, F)`` counts ``eta``: sample sites in each stratum of each covariate, from the sample's strata
    ``members`` ``(s, F)``."""
    counts = np.zeros((s, members.shape[1]), dtype=np.int64)
    np.add.at(counts, (members, np.arange(members.shape[1])), 1)
    return counts


def _prepare(covariates: np.ndarray) -> np.ndarray:
    """``(P, F')`` standardised covariates: NaN imputed with the column median, constant columns dropped."""
    x = np.array(covariates, dtype=np.float64)
    if x.ndim != 2:
        raise InputError(
            f"Covariates must be a 2-D (sites, covariates) array, not shape {x.shape}.",
            "Give one row per candidate site and one column per covariate.",
        )
    if np.isinf(x).any():
        raise InputError("The covariates hold infinite values.", "Replace them with NaN (missing).")
    with warnings.catch_warnings():  # an all-NaN column has no median; it is dropped below
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(x, axis=0)
        missing = np.isnan(x)
        x[missing] = np.broadcast_to(median, x.shape)[missing]
        sd = x.std(axis=0)
    keep = np.isfinite(sd) & (sd > 0)
    if not keep.any():
        raise InputError(
            f"No covariate varies across the {x.shape[0]} candidate site(s).",
            "Give at least one covariate with two or more distinct values.",
        )
    return (x[:, keep] - x[:, keep].mean(axis=0)) / sd[keep]


def _fixed(indices: np.ndarray | None, p: int) -> np.ndarray:
    """``(m,)`` int64 site indices, checked to be distinct and in ``0..p-1``."""
    if indices is None:
        return np.zeros(0, dtype=np.int64)
    idx = np.asarray(indices)
    if idx.size == 0:
        return np.zeros(0, dtype=np.int64)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise InputError(
            f"Site indices must be a 1-D integer array, not {idx.dtype} of shape {idx.shape}.",
            "Give the row numbers of the sites in the covariates.",
        )
    idx = idx.astype(np.int64)
    bad = idx[(idx < 0) | (idx >= p)]
    if bad.size:
        raise InputError(
            f"Site index {int(bad[0])} is out of range for {p} candidate sites.",
            f"Use row numbers from 0 to {p - 1}.",
        )
    values, counts = np.unique(idx, return_counts=True)
    if (counts > 1).any():
        raise InputError(
            f"Site index {int(values[counts > 1][0])} is given more than once.", "List each site once."
        )
    return idx


def _count(value: int, what: str, minimum: int = 1) -> int:
    try:
        count = operator.index(value)
    except TypeError:
        raise InputError(f"The {what} must be an integer, not {value!r}.") from None
    if count < minimum:
        raise InputError(
            f"The {what} must be at least {minimum}, not {count}.", f"Ask for {minimum} or more."
        )
    return count


def _weights(weights: tuple[float, float]) -> tuple[float, float]:
    w1, w2 = (float(w) for w in weights)
    if not (w1 >= 0 and w2 >= 0 and w1 + w2 > 0):
        raise InputError(
            f"The weights must be non-negative and not both zero, not {weights}.",
            "Use e.g. (1.0, 0.5) for (strata, correlation).",
        )
    return w1, w2
