"""The query path's hot spots, each against the way it was done before, on one thread.

    python training/benchmarks/query_path.py --out training/reports/bench_query_path.md

What a 512 x 512 map window does 16 times (16,384 queries at a time) or 128 times (chunks of 2,048):

- attention softmax over each query's 8 slots, 5 members x 4 heads x 2,048 queries: over rows of 8
  contiguous slots (before) against over the slot axis with queries innermost, transposed back to rows
  as ``RelationalAttention.forward_neighbours`` does;
- the 64 elevation candidates of 16,384 grid queries among the 118 La Libertad samples: the KD-tree in
  its leaf order of the queries (before) against ``neighbours._query``'s exhaustive sort (the neighbours
  are checked equal);
- the 8 lowest of 64 candidate scores per query: partition and tie check (before) against
  ``neighbours.smallest``;
- ``log1p`` of (16,384, 8, 3) edge attributes: torch (before) against numpy.

Times are medians of ``--repeats`` after a warm-up; the baseline is measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from soilcarbon_core.graph import neighbours
from soilcarbon_core.io.atomic import atomic_output

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data" / "la_libertad" / "COSha30.csv"


def _median_s(step, repeats: int) -> float:
    step()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def _partition_smallest(scores: np.ndarray, k: int) -> np.ndarray:
    """The k lowest by partition, stable sort for rows tied across the k-th place (the code before)."""
    pick = np.argpartition(scores, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(scores, pick, axis=1).max(axis=1)
    tied = ((scores <= kth[:, None]).sum(axis=1) > k) & np.isfinite(kth)
    if tied.any():
        pick[tied] = np.argsort(scores[tied], axis=1, kind="stable")[:, :k]
    return pick


def _grid_queries(samples: np.ndarray, side: int) -> np.ndarray:
    """``side`` x ``side`` cell centres over the samples' bounding box, row by row (a map window)."""
    (x0, y0), (x1, y1) = samples.min(axis=0), samples.max(axis=0)
    xs, ys = np.meshgrid(np.linspace(x0, x1, side), np.linspace(y1, y0, side))
    return np.column_stack([xs.ravel(), ys.ravel()])


def softmax(repeats: int) -> dict:
    scores = torch.randn(5, 4, 2048, 8, generator=torch.Generator().manual_seed(0))
    by_query = scores.transpose(-1, -2).contiguous()
    before = _median_s(lambda: scores.softmax(-1), repeats)
    after = _median_s(lambda: by_query.softmax(-2).transpose(-1, -2).reshape(-1, 8), repeats)
    return {"before_s": before, "after_s": after}


def search(samples: np.ndarray, repeats: int) -> dict:
    tree = neighbours.tree(samples)
    queries = _grid_queries(samples, 128)
    ordered = queries[neighbours.locality_order(queries)]
    assert neighbours.searches_exhaustively(tree, 64)
    before = _median_s(lambda: tree.query(ordered, k=64, workers=1), repeats)
    after = _median_s(lambda: neighbours._query(tree, queries, 64, np.inf), repeats)
    same = np.array_equal(neighbours._query(tree, queries, 64, np.inf)[1], tree.query(queries, k=64)[1])
    return {"before_s": before, "after_s": after, "same_neighbours": bool(same)}


def lowest(repeats: int) -> dict:
    scores = np.abs(np.random.default_rng(0).normal(size=(16384, 64)) * 50)
    before = _median_s(lambda: _partition_smallest(scores, 8), repeats)
    after = _median_s(lambda: neighbours.smallest(scores, 8), repeats)
    return {"before_s": before, "after_s": after}


def log1p(repeats: int) -> dict:
    values = np.random.default_rng(0).uniform(0, 5, (16384, 8, 3)).astype(np.float32)
    tensor = torch.from_numpy(values)
    before = _median_s(lambda: torch.log1p(tensor), repeats)
    after = _median_s(lambda: torch.from_numpy(np.log1p(values)), repeats)
    return {"before_s": before, "after_s": after}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "training" / "reports" / "bench_query_path.md")
    parser.add_argument("--repeats", type=int, default=25)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    neighbours.set_workers(1)
    samples = pd.read_csv(SAMPLES)[["x", "y"]].to_numpy(dtype=np.float64)
    results = {
        "attention softmax, 5 x 4 x 2,048 x 8 scores": softmax(args.repeats),
        f"64 nearest of {len(samples)} samples, 16,384 grid queries": search(samples, args.repeats),
        "8 lowest of 64 scores, 16,384 rows": lowest(args.repeats),
        "log1p of 16,384 x 8 x 3 edge attributes": log1p(args.repeats),
    }
    command = " ".join(
        ["python training/benchmarks/query_path.py", *(sys.argv[1:] if argv is None else argv)]
    )
    lines = [
        "# Query path: hot spots against the code before",
        "",
        "One thread (torch and the KD-tree); medians of "
        f"{args.repeats} repeats after a warm-up; the baseline (before) in the same run. "
        f"Command: `{command}`.",
        "",
        "| step | before ms | after ms | speed-up |",
        "|---|---:|---:|---:|",
    ]
    for name, r in results.items():
        speed_up = r["before_s"] / r["after_s"]
        lines.append(f"| {name} | {1e3 * r['before_s']:.2f} | {1e3 * r['after_s']:.2f} | {speed_up:.1f} x |")
    same = results[f"64 nearest of {len(samples)} samples, 16,384 grid queries"]["same_neighbours"]
    lines += [
        "",
        f"- The exhaustive search returns the tree's neighbours: {'yes' if same else 'NO'}.",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(args.out) as partial:
        partial.write_text("\n".join(lines) + "\n")
    with atomic_output(args.out.with_suffix(".json")) as partial:
        partial.write_text(json.dumps({"results": results}, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
