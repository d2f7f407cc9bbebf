"""Cross-validation folds shared by every model of the benchmark.

Folds are lists of ``(train_idx, test_idx)`` pairs of sorted int64 index arrays into the data set; every
sample is in exactly one test fold, and its train set is the complement. All functions are deterministic
given ``seed``.

Spatial blocks (:func:`block_ids`) are square cells of side ``block_size_m``:

- projected coordinates (metres): the grid ``floor(x / b), floor(y / b)``, anchored at the CRS origin so
  that it does not depend on the data;
- geographic coordinates (degrees): an equal-area-ish grid on the sphere of radius 6371.0088 km (one
  degree of arc = 111.195 km). Rows are ``dlat = b / 111_195`` degrees of latitude high, counted from the
  south pole; a row with central latitude ``phi_c`` is cut into ``n = max(1, round(360 cos(phi_c) / dlat))``
  columns of ``360 / n`` degrees of longitude, i.e. about ``dlat / cos(phi_c)`` degrees, so each block is
  about ``b`` by ``b`` metres (exactly at the row's centre, up to the rounding of ``n``).

Whole blocks go to folds, so no block is split between a train and a test set: a test sample's nearest
training samples are at least as far away as the edge of its block, which mimics prediction away from
the sampled sites. Blocks are shuffled and each is given to the fold with the fewest samples so far; the
fold sizes then differ by at most the size of the largest block (after any assignment the fold that just
grew exceeds the previous minimum by at most that block's size, and the minimum never decreases).
"""

from __future__ import annotations

import numpy as np

from soilcarbon_core.errors import InputError

#: Metres per degree of arc on the mean-radius (6371.0088 km) sphere.
METRES_PER_DEGREE = 6_371_008.8 * np.pi / 180.0

#: Block sizes (metres) of the benchmark's spatial cross-validation.
#: Africa, 100 km: the semivariogram of topsoil ORCDRC climbs steeply up to 10-25 km (AfSIS sentinel sites
#: and LDSF plots are 10 x 10 km clusters; semivariance 94 below 1 km, 165 at 10-25 km, 171 at 50-100 km,
#: 209 at 100-200 km, variance 295), so 100 km blocks keep those clusters whole and put test samples
#: beyond the short-range structure, while leaving 1,066 blocks so folds balance to within 2 %.
#: La Libertad, 500 m: about twice the typical spacing of its sampling grid (median nearest-neighbour
#: distance 264 m), 55 blocks of at most 6 points for 118 points.
BLOCK_SIZE_M = {"africa": 100_000.0, "la_libertad": 500.0}

Folds = list[tuple[np.ndarray, np.ndarray]]


def random_folds(n: int, n_folds: int = 5, seed: int = 0) -> Folds:
    """Random K-fold split of ``n`` samples: test folds of sizes differing by at most one."""
    if not 2 <= n_folds <= n:
        raise InputError(f"Cannot split {n} samples into {n_folds} folds.", "Use 2 <= n_folds <= n.")
    order = np.random.default_rng(seed).permutation(n)
    return _folds_from_labels(_labels_of(np.array_split(order, n_folds), n), n_folds)


def block_ids(coords: np.ndarray, *, geographic: bool, block_size_m: float) -> np.ndarray:
    """``(N,)`` int64 label of the square spatial block (see the module docstring) of each point.

    Labels are consecutive from 0, in the lexicographic order of the blocks' (row, column).
    """
    coords = _coords(coords)
    if not block_size_m > 0:
        raise InputError(f"The block size must be positive, not {block_size_m}.", "Give it in metres.")
    if geographic:
        lon, lat = coords[:, 0], coords[:, 1]
        dlat = block_size_m / METRES_PER_DEGREE
        row = np.floor((np.clip(lat, -90.0, 90.0) + 90.0) / dlat)
        centre = np.clip(-90.0 + (row + 0.5) * dlat, -90.0, 90.0)
        n_cols = np.maximum(1.0, np.round(360.0 * np.cos(np.radians(centre)) / dlat))
        col = np.floor(np.mod(lon + 180.0, 360.0) / (360.0 / n_cols))
        col = np.minimum(col, n_cols - 1)  # lon + 180 just below 360 may round up to a full turn
    else:
        col = np.floor(coords[:, 0] / block_size_m)
        row = np.floor(coords[:, 1] / block_size_m)
    _, labels = np.unique(np.column_stack([row, col]), axis=0, return_inverse=True)
    return labels.reshape(-1).astype(np.int64)


def spatial_block_folds(
    coords: np.ndarray, *, geographic: bool, block_size_m: float, n_folds: int = 5, seed: int = 0
) -> Folds:
    """K folds of whole spatial blocks, balanced in sample count (see the module docstring).

    Args:
        coords: ``(N, 2)`` lon/lat degrees when ``geographic``, else projected x/y metres.
        block_size_m: side of the square blocks in metres.
    """
    labels = block_ids(coords, geographic=geographic, block_size_m=block_size_m)
    counts = np.bincount(labels)
    if counts.size < n_folds:
        raise InputError(
            f"The points fall into only {counts.size} block(s) of {block_size_m:g} m, fewer than "
            f"the {n_folds} folds.",
            "Use a smaller block size or fewer folds.",
        )
    return _whole_group_folds(labels, n_folds, seed)


def group_folds(groups: np.ndarray, n_folds: int = 5, seed: int = 0) -> Folds:
    """K folds of whole groups (e.g. studies), balanced in sample count like :func:`spatial_block_folds`.

    Groups in random order each go to the fold with the fewest samples so far, so no group is split
    between a train and a test set and fold sizes differ by at most the size of the largest group.

    Args:
        groups: ``(N,)`` group label of each sample (any values ``np.unique`` can sort).
    """
    groups = np.asarray(groups)
    if groups.ndim != 1 or groups.size == 0:
        raise InputError(f"Groups must be a non-empty 1-D array, not shape {groups.shape}.")
    _, labels = np.unique(groups, return_inverse=True)
    n_groups = int(labels.max()) + 1
    if not 2 <= n_folds <= n_groups:
        raise InputError(
            f"Cannot split {n_groups} group(s) into {n_folds} folds.", "Use 2 <= n_folds <= number of groups."
        )
    return _whole_group_folds(labels.reshape(-1), n_folds, seed)


def validation_split(
    train_idx: np.ndarray,
    coords: np.ndarray,
    *,
    geographic: bool,
    block_size_m: float | None,
    fraction: float = 0.15,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Split a training fold into a fitting set and a validation set (early stopping, calibration).

    Args:
        train_idx: indices of the training samples into the whole data set.
        coords: ``(N, 2)`` coordinates of the whole data set (the array ``train_idx`` indexes).
        block_size_m: with a block size, the validation set is made of whole spatial blocks (so that
            validation mimics the spatial test situation): blocks in random order are taken whenever
            they still fit under ``fraction * len(train_idx)``; if none fits, the smallest block. Without
            one, a random ``round(fraction * len(train_idx))`` samples (at least one).

    Returns:
        ``(fit_idx, val_idx)``: disjoint sorted subsets of ``train_idx`` whose union is ``train_idx``.
    """
    train_idx = np.asarray(train_idx, dtype=np.int64)
    coords = _coords(coords)
    n = train_idx.size
    if n < 2 or not 0.0 < fraction < 1.0:
        raise InputError(
            f"Cannot carve a validation share of {fraction} from {n} training samples.",
            "Use 0 < fraction < 1 and at least two training samples.",
        )
    if train_idx.min() < 0 or train_idx.max() >= coords.shape[0]:
        raise InputError(
            "The training indices do not index the coordinates.",
            "Pass the coordinates of the whole data set.",
        )
    rng = np.random.default_rng(seed)
    target = fraction * n
    if block_size_m is None:
        take = rng.permutation(n)[: min(n - 1, max(1, round(target)))]
        is_val = np.zeros(n, dtype=bool)
        is_val[take] = True
    else:
        labels = block_ids(coords[train_idx], geographic=geographic, block_size_m=block_size_m)
        counts = np.bincount(labels)
        if counts.size < 2:
            raise InputError(
                f"The training samples fall into a single block of {block_size_m:g} m.",
                "Use a smaller block size for the validation split, or a random one (no block size).",
            )
        chosen = np.zeros(counts.size, dtype=bool)
        total = 0
        for block in rng.permutation(counts.size):
            if total + counts[block] <= target:
                chosen[block] = True
                total += counts[block]
        if not chosen.any():
            chosen[np.argmin(counts)] = True
        is_val = chosen[labels]
    return np.sort(train_idx[~is_val]), np.sort(train_idx[is_val])


def _coords(coords: np.ndarray) -> np.ndarray:
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 2 or not np.isfinite(coords).all():
        raise InputError(
            f"Coordinates must be a finite (N, 2) array, not shape {coords.shape}.",
            "Drop samples without a location first.",
        )
    return coords


def _labels_of(groups: list[np.ndarray], n: int) -> np.ndarray:
    labels = np.empty(n, dtype=np.int64)
    for fold, members in enumerate(groups):
        labels[members] = fold
    return labels


def _whole_group_folds(labels: np.ndarray, n_folds: int, seed: int) -> Folds:
    """Folds of whole groups: ``labels`` are consecutive group ids 0..G-1; groups in seeded random order
    each go to the fold with the fewest samples so far (ties: the lowest fold index)."""
    counts = np.bincount(labels)
    rng = np.random.default_rng(seed)
    fold_of_group = np.empty(counts.size, dtype=np.int64)
    fold_sizes = np.zeros(n_folds, dtype=np.int64)
    for group in rng.permutation(counts.size):
        fold = int(np.argmin(fold_sizes))
        fold_of_group[group] = fold
        fold_sizes[fold] += counts[group]
    return _folds_from_labels(fold_of_group[labels], n_folds)


def _folds_from_labels(fold_of_sample: np.ndarray, n_folds: int) -> Folds:
    return [
        (np.flatnonzero(fold_of_sample != fold), np.flatnonzero(fold_of_sample == fold))
        for fold in range(n_folds)
    ]
