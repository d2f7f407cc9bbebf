"""Benchmark: the three-relation soil graph at 1,000,000 nodes, as ratios to a plain KD-tree kNN.

Baseline, measured in the same run on the same points: ``cKDTree(points)`` and one
``query(points, k=8, workers=threads)`` (what a bare spatial 8-NN graph costs). The graph is built twice,
with the global and with the radius-restricted spectral relation, and 100,000 query nodes are attached
to each. The synthetic landscape: uniform points over a 100 km square; 8 spectral bands mixed from three
smooth latent fields (brightness, vegetation, moisture; wavelengths 1-30 km) plus 5 % noise, as real
reflectances are strongly correlated; elevation a smooth field in whole metres (DEM-like, so height
differences tie often) and the slope of that field.

    python training/benchmarks/graph.py --threads 2 --out training/reports/bench_graph.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from soilcarbon_core.graph import GraphParams, ReferenceGraph, set_workers

ROOT = Path(__file__).resolve().parents[2]
SIDE_M = 100_000.0


class Field:
    """A smooth random field: a sum of plane waves, with its analytic gradient."""

    def __init__(self, rng: np.random.Generator, waves: int = 12) -> None:
        wavelength = rng.uniform(1_000, 30_000, waves)
        angle = rng.uniform(0, 2 * np.pi, waves)
        self.k = (2 * np.pi / wavelength)[:, None] * np.column_stack([np.cos(angle), np.sin(angle)])
        self.phase = rng.uniform(0, 2 * np.pi, waves)
        self.amplitude = np.sqrt(wavelength / wavelength.sum())  # long waves carry more variance

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        return np.sin(xy @ self.k.T + self.phase) @ self.amplitude

    def gradient(self, xy: np.ndarray) -> np.ndarray:
        return (np.cos(xy @ self.k.T + self.phase) * self.amplitude) @ self.k


class Landscape:
    """Spectral bands and relief over the square: one set of fields, sampled at any points."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.latent = [Field(rng) for _ in range(3)]
        self.mixing = rng.normal(size=(3, 8))
        self.relief = Field(rng)

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``n`` random nodes: coords (n, 2) m, spectral (n, 8), elevation (n,) whole m, slope (n,) deg."""
        xy = rng.uniform(0, SIDE_M, (n, 2)) + np.array([400_000.0, 6_300_000.0])  # UTM-like magnitudes
        latent = np.column_stack([field(xy) for field in self.latent])
        spectral = latent @ self.mixing + 0.05 * rng.normal(size=(n, 8))
        elevation = np.round(400 + 120 * self.relief(xy))
        slope = np.degrees(np.arctan(120 * np.linalg.norm(self.relief.gradient(xy), axis=1)))
        return {"coords": xy, "spectral": spectral, "elevation": elevation, "slope": slope}


def timed(function):
    """(result, seconds) of one call."""
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=2, help="KD-tree query threads (scipy workers)")
    parser.add_argument("--spectral-radius", type=float, default=500.0, help="metres, restricted variant")
    parser.add_argument("--out", type=Path, default=ROOT / "training" / "reports" / "bench_graph.md")
    args = parser.parse_args()
    set_workers(args.threads)
    load = os.getloadavg()[0]

    rng = np.random.default_rng(0)
    land = Landscape(rng)
    reference, queries = land.sample(args.nodes, rng), land.sample(args.queries, rng)
    points = reference["coords"]

    start = time.perf_counter()
    baseline_tree = cKDTree(points)
    build = time.perf_counter() - start
    baseline_tree.query(points, k=8, workers=args.threads)
    query = time.perf_counter() - start - build
    baseline = build + query
    del baseline_tree

    variants = {
        "global spectral": GraphParams(),
        f"spectral within {args.spectral_radius:g} m": GraphParams(spectral_radius_m=args.spectral_radius),
    }
    results = {}
    for name, params in variants.items():
        graph, total = timed(
            lambda params=params: ReferenceGraph(
                points,
                geographic=False,
                params=params,
                spectral=reference["spectral"],
                elevation=reference["elevation"],
                slope=reference["slope"],
            )
        )
        attached, attach = timed(
            lambda graph=graph: graph.attach(
                queries["coords"],
                spectral=queries["spectral"],
                elevation=queries["elevation"],
                slope=queries["slope"],
            )
        )
        results[name] = {
            "total_s": total,
            "attach_s": attach,
            "stages_s": dict(graph.timings),
            "edges": {r: graph.relations[r].num_edges for r in graph.relations},
            "attached_edges": {r: attached[r].num_edges for r in attached},
        }
        del graph, attached
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    lines = [
        "# Soil graph benchmark",
        "",
        f"{args.nodes:,} reference nodes (uniform over a {SIDE_M / 1000:g} km square, 8 correlated spectral "
        "bands, elevation in whole metres, slope), all three relations with default settings (k = 8, 64 "
        f"candidates); {args.queries:,} query nodes attached. One run. KD-tree threads: {args.threads}. "
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, load average at start {load:.1f} (other jobs share "
        "the cores; the baseline ran under the same load). Peak memory (RSS) of the whole run: "
        f"{peak_gib:.2f} GiB.",
        "",
        f"Baseline: `cKDTree(points)` {build:.2f} s + `query(points, k=8)` {query:.2f} s = {baseline:.2f} s.",
        "",
        "| graph | stage | seconds | x baseline |",
        "|---|---|---:|---:|",
    ]
    for name, result in results.items():
        for stage, seconds in result["stages_s"].items():
            lines.append(f"| {name} | {stage} | {seconds:.2f} | {seconds / baseline:.2f} |")
        lines.append(
            f"| {name} | **total build** | **{result['total_s']:.2f}** | {result['total_s'] / baseline:.2f} |"
        )
        lines.append(
            f"| {name} | attach {args.queries:,} queries | {result['attach_s']:.2f} | "
            f"{result['attach_s'] / baseline:.2f} |"
        )
    lines += [
        "",
        "Stages: fit = input checks, the spatial locality order of the nodes, the spectral standardisation; "
        "trees = the other KD-tree builds; search = "
        "KD-tree queries, shared by the relations named (the spatial relation takes the first 8 of the 64 "
        "spatial candidates); a relation's own row = choosing its neighbours among the candidates, "
        "symmetrising, attributes.",
        "",
        "| graph | relation | edges (reference, symmetric) | edges (attached) |",
        "|---|---|---:|---:|",
    ]
    for name, result in results.items():
        for relation, count in result["edges"].items():
            lines.append(f"| {name} | {relation} | {count:,} | {result['attached_edges'][relation]:,} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = {
        "nodes": args.nodes,
        "queries": args.queries,
        "threads": args.threads,
        "baseline_s": {"build": build, "query_k8": query, "total": baseline},
        "peak_rss_gib": peak_gib,
        "load_average_at_start": load,
        "graphs": results,
    }
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
