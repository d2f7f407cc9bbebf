"""Map windows in their processes: numpy's BLAS threads, the chunk size, windows per process.

    python training/benchmarks/map_windows.py --out training/reports/bench_map_windows.md

A 512 x 512 window of the 1-million-cell map benchmark, eight times over (``maps.py``: the same rasters and
model, made in ``--scratch`` or a temporary folder), each the work of a map window (read, attach, network,
calibrate), computed as ``predict_grid`` computes them: in forked window processes
(:func:`soilcarbon_core.maps.processes.ordered_in_processes`), two at once on 2 cores, one core each.
Settings, in rounds (each round every setting once):

- before: numpy's OpenBLAS left at its default thread count (the cores), chunks of 2,048, one window
  per process;
- one BLAS thread per window process (:func:`soilcarbon_core.device.one_thread_each`);
- then chunks of 1,024;
- then up to ``WINDOWS_PER_PROCESS`` (8) windows per process (the default now).

Torch and the KD-tree run on one thread in every setting, as before. Reported: the wall time of the 8
windows (median over the rounds; the baseline in the same run), and from the windows themselves their
seconds and page faults, the first window of a process against its later ones, and how much a process's
resident memory grows from its first window to its last.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from maps import train_models, upsampled_rasters  # noqa: E402

from soilcarbon_core import predictor as predictor_module  # noqa: E402
from soilcarbon_core.graph import neighbours  # noqa: E402
from soilcarbon_core.io.atomic import atomic_output  # noqa: E402
from soilcarbon_core.maps.processes import WINDOWS_PER_PROCESS, ordered_in_processes  # noqa: E402

#: (name, BLAS threads (None: OpenBLAS's default), chunk size, windows per process)
SETTINGS = (
    ("before: default BLAS threads, chunks of 2,048, 1 window a process", None, 2048, 1),
    ("one BLAS thread", 1, 2048, 1),
    ("one BLAS thread, chunks of 1,024", 1, 1024, 1),
    (
        f"one BLAS thread, chunks of 1,024, up to {WINDOWS_PER_PROCESS} windows a process (now)",
        1,
        1024,
        WINDOWS_PER_PROCESS,
    ),
)
WINDOWS = 8


def window_work(scratch: Path, threads: int):
    """``work(item, report)`` computing the first 512 x 512 window of the 1-million-cell map; it returns
    its own seconds, minor page faults, the process's resident memory after it (KiB) and its pid."""
    from soilcarbon_core.io.points import SamplePoints
    from soilcarbon_core.io.rasters import RasterSource
    from soilcarbon_core.maps import GridSpec
    from soilcarbon_core.model import SoilCarbonModel
    from soilcarbon_core.prediction import predict_valid

    model_path, _ = train_models(scratch, threads)
    paths = upsampled_rasters(scratch, 1_000_000)
    rasters = [RasterSource(path, name) for name, path in paths.items()]
    grid = GridSpec.from_raster(paths["elevation"])
    model = SoilCarbonModel.load(model_path)
    predictor = model.predictor(torch.device("cpu"))
    predictor.reference_sources()  # inherited by the window processes, as in predict_grid
    window = grid.windows(512)[0]
    points = SamplePoints.at(*grid.cell_centres(window), grid.crs, source="grid")

    def work(item: int, report) -> np.ndarray:
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        started = time.perf_counter()
        predict_valid(model, predictor, points, rasters, "nearest", report, None, 1)
        seconds = time.perf_counter() - started
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        status = Path("/proc/self/status").read_text().splitlines()
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        return np.array([seconds, faults, rss, os.getpid()], dtype=np.float64)

    return work


def run_windows(work, blas_threads: int | None, chunk: int, per_process: int) -> tuple[float, np.ndarray]:
    """Wall seconds for :data:`WINDOWS` windows, two at a time in forked processes, and each window's
    ``work`` result, in order."""
    predictor_module._CPU_CHUNK = chunk
    with threadpool_limits(blas_threads, user_api="blas"):
        started = time.perf_counter()
        runs = ordered_in_processes(list(range(WINDOWS)), work, 2, lambda *a: None, str, per_process)
        with closing(runs):
            found = np.array([result for _, result in runs])
        return time.perf_counter() - started, found


def process_figures(rounds: list[np.ndarray]) -> dict[str, float]:
    """First windows of their processes against later ones: seconds, faults; resident memory growth.
    ``rounds``: the windows' ``work`` results, one array per round (a pid is unique within a round)."""
    first, growth = [], []
    for found in rounds:
        pids = found[:, 3]
        first.append([pid not in pids[:index] for index, pid in enumerate(pids)])
        growth += [found[pids == pid, 2][-1] - found[pids == pid, 2][0] for pid in np.unique(pids)]
    found, first = np.concatenate(rounds), np.concatenate(first)
    figures = {
        "first_s": float(np.median(found[first, 0])),
        "first_faults": float(np.median(found[first, 1])),
        "rss_growth_mib": float(max(growth)) / 1024,
    }
    if not first.all():
        later = found[~first]
        figures |= {"later_s": float(np.median(later[:, 0])), "later_faults": float(np.median(later[:, 1]))}
    return figures


def measure_settings(work, rounds: int) -> tuple[dict[str, list[float]], dict[str, list[np.ndarray]]]:
    """Every setting once per round: its wall seconds and its windows' ``work`` results."""
    torch.set_num_threads(1)
    neighbours.set_workers(1)
    walls: dict[str, list[float]] = {name: [] for name, *_ in SETTINGS}
    windows: dict[str, list[np.ndarray]] = {name: [] for name, *_ in SETTINGS}
    for _ in range(rounds):
        for name, blas_threads, chunk, per_process in SETTINGS:
            wall, found = run_windows(work, blas_threads, chunk, per_process)
            walls[name].append(wall)
            windows[name].append(found)
    return walls, windows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "training" / "reports" / "bench_map_windows.md")
    parser.add_argument(
        "--scratch", type=Path, help="folder for rasters and models (default: a temporary one)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temporary:
        scratch = args.scratch or Path(temporary)
        scratch.mkdir(parents=True, exist_ok=True)
        walls, windows = measure_settings(window_work(scratch, 2), args.rounds)
    baseline = float(np.median(walls[SETTINGS[0][0]]))
    command = " ".join(
        ["python training/benchmarks/map_windows.py", *(sys.argv[1:] if argv is None else argv)]
    )
    lines = [
        "# Map windows in processes: BLAS threads, chunk size, windows per process",
        "",
        f"{WINDOWS} windows of 512 x 512 cells (the first window of the 1-million-cell map benchmark, "
        f"262,144 cells), two at a time in forked window processes on this machine's {os.cpu_count()} "
        f"cores, one core each; {args.rounds} rounds, the baseline (before) in the same run. Wall: the "
        "median over the rounds. Per window (medians over all windows of all rounds): its seconds and "
        "minor page faults, for the first window of a process and for its later ones; memory growth: the "
        "largest rise of a process's resident memory from its first window to its last. "
        f"Command: `{command}`.",
        "",
        "| setting | wall s | x before | first window of a process s | later windows s | faults first "
        "| faults later | memory growth MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    summary = {}
    for name, *_ in SETTINGS:
        wall = float(np.median(walls[name]))
        figures = process_figures(windows[name])
        summary[name] = {"wall_s": walls[name], **figures}
        later_s = f"{figures['later_s']:.2f}" if "later_s" in figures else "-"
        later_faults = f"{figures['later_faults']:,.0f}" if "later_faults" in figures else "-"
        lines.append(
            f"| {name} | {wall:.2f} | {wall / baseline:.2f} | {figures['first_s']:.2f} | {later_s} | "
            f"{figures['first_faults']:,.0f} | {later_faults} | {figures['rss_growth_mib']:.0f} |"
        )
    with atomic_output(args.out) as partial:
        partial.write_text("\n".join(lines) + "\n")
    with atomic_output(args.out.with_suffix(".json")) as partial:
        partial.write_text(json.dumps(summary, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
