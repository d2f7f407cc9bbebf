"""Benchmark: raster sampling throughput, as ratios to baselines measured in the same run.

Baselines: rasterio's ``DatasetReader.sample`` (the usual per-point generator; measured on a subset and
reported per point), and the in-memory floor (whole band already in RAM, one numpy fancy-index), which
only works when the raster fits in memory. ``sample_rasters`` reads tile by tile, so its memory stays
bounded whatever the raster size.

    python training/benchmarks/sampling.py --points 1000000 --out training/reports/bench_sampling.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.crs import CRS

from soilcarbon_core.io.points import SamplePoints
from soilcarbon_core.io.rasters import pixel_coordinates, sample_rasters

ROOT = Path(__file__).resolve().parents[2]
HUNTER = ROOT / "data" / "hunter_valley"


def timed(function, repeats: int = 3) -> float:
    """Best wall time of ``repeats`` runs, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--baseline-points", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=ROOT / "training" / "reports" / "bench_sampling.md")
    args = parser.parse_args()

    rasters = sorted(HUNTER.glob("hunterCovariates_sub_*.tif"))
    with rasterio.open(rasters[0]) as dataset:
        left, bottom, right, top = dataset.bounds
        crs = dataset.crs
    rng = np.random.default_rng(0)
    x = rng.uniform(left, right, args.points)
    y = rng.uniform(bottom, top, args.points)
    points = SamplePoints(
        x=x, y=y, crs=CRS.from_user_input(crs), attributes=pd.DataFrame(index=range(x.size))
    )
    cells = args.points * len(rasters)

    nearest = timed(lambda: sample_rasters(points, rasters, method="nearest"))
    bilinear = timed(lambda: sample_rasters(points, rasters, method="bilinear"))

    def rasterio_sample() -> None:
        subset = list(zip(x[: args.baseline_points], y[: args.baseline_points], strict=True))
        for path in rasters:
            with rasterio.open(path) as dataset:
                for _ in dataset.sample(subset):
                    pass

    per_point_rasterio = timed(rasterio_sample, repeats=1) / (args.baseline_points * len(rasters))

    def in_memory() -> None:
        for path in rasters:
            with rasterio.open(path) as dataset:
                band = dataset.read(1)
                col, row = pixel_coordinates(dataset.transform, x, y)
            band[np.floor(row).astype(np.int64), np.floor(col).astype(np.int64)]

    floor = timed(in_memory)
    rasterio_total = per_point_rasterio * cells
    rows = [
        ("rasterio `sample()` (baseline, extrapolated)", rasterio_total),
        ("in-memory floor (whole band read + numpy index)", floor),
        ("soilcarbon `sample_rasters`, nearest", nearest),
        ("soilcarbon `sample_rasters`, bilinear", bilinear),
    ]
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    lines = [
        "# Raster sampling benchmark",
        "",
        f"{args.points:,} random points x {len(rasters)} Hunter Valley rasters (210 x 249 cells, float32) = "
        f"{cells:,} samples. Best of 3 runs (rasterio `sample()`: one run on {args.baseline_points:,} "
        "points, "
        f"per-sample time extrapolated). Machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, OMP_NUM_THREADS={threads}, GDAL_NUM_THREADS="
        f"{os.environ.get('GDAL_NUM_THREADS', 'unset')}.",
        "",
        "| method | seconds | samples/s | speed vs rasterio `sample()` | time vs in-memory floor |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, seconds in rows:
        lines.append(
            f"| {name} | {seconds:.3f} | {cells / seconds:,.0f} | {rasterio_total / seconds:.1f}x | "
            f"{seconds / floor:.2f}x |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args.out.with_suffix(".json").write_text(
        json.dumps(
            {name: seconds for name, seconds in rows} | {"points": args.points, "rasters": len(rasters)},
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
