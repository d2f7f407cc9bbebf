"""Benchmark: SOC maps of 1 and 10 million cells, against a 5-member XGBoost ensemble and the I/O floor.

The covariates are the nine La Libertad terrain rasters (SRTM 30 m and its SAGA derivatives, data/),
resampled bilinearly to grids of 1 and 10 million cells over the same area (tiled GeoTIFFs, written
once into a scratch folder). Models, trained in this run on the 118 La Libertad SOC stocks with those
nine covariates:

- SpTGNN: a 5-member ensemble, covariates only (no imagery), all three relations;
- XGBoost: 5 bootstrap members of 400 trees (the project's ``XGB_PARAMS``), on the same features.

Each measurement runs in its own process over the same windows of 512 x 512 cells:

- I/O floor: read every window's covariates at the cell centres (what the map job reads), nothing else;
- XGBoost: the same reads, plus the five models' predictions for every cell;
- SpTGNN: ``predict_grid`` end to end (reads, graph attachment, ensemble, calibration, COG with
  overviews, written atomically), its windows in forked processes (the default);
- SpTGNN, windows on threads: the same with ``window_processes=False``.

Peak memory (:class:`PeakMemory`): the largest of the process's own peak RSS and, sampled every 0.1 s,
its RSS plus the private memory of its child processes (the window processes; what they share with it,
copy-on-write, is counted once). Reading a window process's private memory walks its page tables (about 15 ms
for a window process, holding its memory map's lock), which on 2 cores slows the SpTGNN job; so the
timed runs of the job with window processes do not sample them, and its peak memory comes from one more
run per scale that does (the report gives that run's time against the timed runs', not used otherwise).

The jobs run in rounds (``--repeats`` per scale), each round every job once, in turn: on a shared VM
the hypervisor's steal comes and goes, so one run each can favour either side. The report gives per job
the median time over the rounds and the median of the per-round ratios (SpTGNN's time over XGBoost's in
the same round), with their range.

    python training/benchmarks/maps.py --threads 2 --repeats 3,1 --out training/reports/bench_maps.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
LA_LIBERTAD = ROOT / "data" / "la_libertad"
SRTM = "SRTMGL1_SRTMGL1.2"
COVARIATES = {
    "elevation": f"{SRTM}.sdat",
    **{
        g: f"{SRTM}_{g}.sdat" for g in ("slope", "twi", "vbf", "cprof", "devmean", "openn", "openp", "vdepth")
    },
}
MODES = ("io", "xgboost", "sptgnn", "sptgnn_threads")


def upsampled_rasters(folder: Path, cells: int) -> dict[str, Path]:
    """The covariates resampled (bilinear) to about ``cells`` cells over the same extent, tiled GeoTIFFs."""
    import rasterio
    from rasterio.transform import from_bounds
    from rasterio.warp import Resampling, reproject

    paths = {}
    for name, file in COVARIATES.items():
        path = folder / f"{name}_{cells}.tif"
        paths[name] = path
        if path.exists():
            continue
        with rasterio.open(LA_LIBERTAD / file) as source:
            width = round((cells * source.width / source.height) ** 0.5)
            height = round(cells / width)
            transform = from_bounds(*source.bounds, width, height)
            profile = {
                "driver": "GTiff",
                "width": width,
                "height": height,
                "count": 1,
                "dtype": "float32",
                "crs": source.crs,
                "transform": transform,
                "nodata": -9999.0,
                "tiled": True,
                "blockxsize": 256,
                "blockysize": 256,
                "compress": "deflate",
            }
            with rasterio.open(path, "w", **profile) as out:
                for window in out.block_windows(1):
                    block = np.full((window[1].height, window[1].width), -9999.0, dtype=np.float32)
                    reproject(
                        rasterio.band(source, 1),
                        block,
                        src_transform=source.transform,
                        src_crs=source.crs,
                        dst_transform=rasterio.windows.transform(window[1], transform),
                        dst_crs=source.crs,
                        resampling=Resampling.bilinear,
                        dst_nodata=-9999.0,
                    )
                    out.write(block, 1, window=window[1])
    return paths


def train_models(folder: Path, threads: int) -> tuple[Path, Path]:
    """The SpTGNN model file and the XGBoost members (JSON files in a folder), trained on the 118 points."""
    from xgboost import XGBRegressor

    from soilcarbon_core.io.rasters import RasterSource
    from soilcarbon_training.baselines import XGB_PARAMS
    from soilcarbon_training.jobs import prepare_data, train_model

    sources = [RasterSource(LA_LIBERTAD / file, name) for name, file in COVARIATES.items()]
    data = prepare_data(
        LA_LIBERTAD / "COSha30.csv",
        target="COSha30",
        rasters=sources,
        elevation="elevation",
        slope="slope",
        crs="EPSG:32618",
        device="cpu",
    )
    model = folder / "sptgnn.zip"
    train_model(data, model, target="COSha30", unit="t/ha", members=5, device="cpu")
    features = data.table.covariates
    rng = np.random.default_rng(0)
    xgb = folder / "xgboost"
    xgb.mkdir(exist_ok=True)
    for member in range(5):
        rows = rng.integers(0, len(data.target), len(data.target))
        regressor = XGBRegressor(**XGB_PARAMS, n_jobs=threads, random_state=member)
        regressor.fit(features[rows], data.target[rows])
        regressor.save_model(xgb / f"member{member}.json")
    return model, xgb


def _window_features(grid, window, sources) -> np.ndarray:
    """Covariates (cells, 9) at the window's cell centres, as the map job reads them."""
    from soilcarbon_core.io.points import SamplePoints
    from soilcarbon_core.io.rasters import sample_rasters

    xs, ys = grid.cell_centres(window)
    points = SamplePoints.at(xs, ys, grid.crs)
    return sample_rasters(points, sources, method="nearest").values


class PeakMemory:
    """Peak memory of this process and its child processes, in MiB (see the module's docstring)."""

    def __init__(self, interval_s: float = 0.1, children: bool = True) -> None:
        self.samples: list[tuple[float, float]] = []  # (perf_counter seconds, MiB)
        self.interval_s = interval_s
        self.children = children
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def _kib(path: str, keys: tuple[str, ...]) -> int:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:  # a child that has just ended
            return 0
        return sum(int(line.split()[1]) for line in lines if line.split(":")[0] in keys)

    @staticmethod
    def _children() -> list[int]:
        return [
            int(pid)
            for task in Path("/proc/self/task").iterdir()
            for pid in (task / "children").read_text().split()
        ]

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            private = ("Private_Clean", "Private_Dirty")
            kib = self._kib("/proc/self/status", ("VmRSS",))
            if self.children:
                kib += sum(self._kib(f"/proc/{pid}/smaps_rollup", private) for pid in self._children())
            self.samples.append((time.perf_counter(), kib / 1024))

    def peak_mib(self) -> float:
        """The whole run's peak; stops sampling."""
        self._stop.set()
        self._thread.join()
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork and exec.
        return max([self._kib("/proc/self/status", ("VmHWM",)) / 1024] + [mib for _, mib in self.samples])

    def sampled_peak_mib(self, start: float, end: float = float("inf")) -> float:
        """The largest sample taken between two ``perf_counter`` times."""
        return max((mib for at, mib in self.samples if start <= at <= end), default=float("nan"))


def child(mode: str, cells: int, folder: Path, threads: int, memory_run: bool = False) -> dict:
    """One measurement in this process: seconds and peak memory. The window processes' memory is only
    sampled in a ``memory_run`` (module docstring)."""
    from soilcarbon_core.io.rasters import RasterSource
    from soilcarbon_core.maps import GridSpec

    paths = upsampled_rasters(folder, cells)
    sources = [RasterSource(path, name) for name, path in paths.items()]
    grid = GridSpec.from_raster(paths["elevation"])
    # Libraries are imported before the clock starts; loading the models is part of each job.
    if mode.startswith("sptgnn"):
        import torch

        from soilcarbon_core.prediction import predict_grid

        torch.set_num_threads(threads)
    elif mode == "xgboost":
        from xgboost import XGBRegressor
    memory = PeakMemory(children=mode != "sptgnn" or memory_run)
    started = time.perf_counter()
    quarters = {}  # when the map's progress first reached 1/4 and 3/4

    def note_quarters(fraction: float, message: str = "") -> None:
        for mark in (0.25, 0.75):
            if fraction >= mark:
                quarters.setdefault(mark, time.perf_counter())

    if mode.startswith("sptgnn"):
        output = folder / f"map_{cells}.tif"
        summary = predict_grid(
            folder / "sptgnn.zip",
            grid,
            output,
            rasters=sources,
            device="cpu",
            window_processes=mode == "sptgnn",
            progress=note_quarters,
        )
        predicted = summary["n_predicted"]
        output.unlink()
    else:
        members = []
        if mode == "xgboost":
            for path in sorted((folder / "xgboost").glob("member*.json")):
                regressor = XGBRegressor(n_jobs=threads)
                regressor.load_model(path)
                members.append(regressor)
        predicted = 0
        for window in grid.windows():
            features = _window_features(grid, window, sources)
            valid = np.isfinite(features).all(axis=1)
            predicted += int(valid.sum())
            if members:
                rows = features[valid].astype(np.float32)
                np.mean([m.predict(rows) for m in members], axis=0)
    seconds = time.perf_counter() - started
    peak = memory.peak_mib()
    result = {"mode": mode, "cells": grid.cells, "predicted": predicted, "seconds": seconds, "peak_mib": peak}
    result["memory_run"] = memory_run
    if quarters:  # does memory grow window after window? The first quarter's peak against the last's.
        result["peak_first_quarter_mib"] = memory.sampled_peak_mib(started, quarters[0.25])
        result["peak_last_quarter_mib"] = memory.sampled_peak_mib(quarters[0.75])
    return result


def cpu_counters() -> tuple[int, int]:
    """(steal, total) CPU ticks so far, from /proc/stat: time the hypervisor gave this VM's CPUs to others."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return ticks[7], sum(ticks)


def measure(mode: str, cells: int, folder: Path, threads: int, memory_run: bool = False) -> dict:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "GDAL_NUM_THREADS": str(threads),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "training")]),
    }
    command = [sys.executable, __file__, "--child", mode, "--cells", str(cells), "--scratch", str(folder)]
    command += ["--threads", str(threads), *(["--memory-run"] if memory_run else [])]
    steal, total = cpu_counters()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"{mode} at {cells} cells failed:\n{result.stderr[-3000:]}")
    steal_after, total_after = cpu_counters()
    stolen = 100.0 * (steal_after - steal) / max(total_after - total, 1)
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "steal_pct": stolen}


def _rounds(results: list[dict], mode: str, scale: int) -> list[dict]:
    """The timed runs of a job at a scale, by round."""
    runs = (r for r in results if r["mode"] == mode and r["scale"] == scale and not r["memory_run"])
    return sorted(runs, key=lambda r: r["round"])


def _memory_run(results: list[dict], mode: str, scale: int) -> dict | None:
    return next((r for r in results if r["mode"] == mode and r["scale"] == scale and r["memory_run"]), None)


def _ratios(results: list[dict], mode: str, baseline: str, scale: int) -> np.ndarray:
    """``mode``'s time over ``baseline``'s, round by round."""
    pairs = zip(_rounds(results, mode, scale), _rounds(results, baseline, scale), strict=True)
    return np.array([r["seconds"] / b["seconds"] for r, b in pairs])


def _spread(values: np.ndarray, digits: int) -> str:
    """The median, with the range when the values differ."""
    low, high = f"{values.min():.{digits}f}", f"{values.max():.{digits}f}"
    text = f"{np.median(values):.{digits}f}"
    return text if low == high else f"{text} ({low}-{high})"


def report(results: list[dict], threads: int, command: str, load: float) -> str:
    scales = sorted({r["scale"] for r in results})
    rounds = {scale: len(_rounds(results, "io", scale)) for scale in scales}
    lines = [
        "# Map prediction benchmark",
        "",
        f"Command: `{command}`. Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; threads: {threads} (torch, XGBoost, GDAL); load average at start "
        f"{load:.1f} (other jobs on the same cores slow every row alike). Rounds: "
        + ", ".join(f"{rounds[scale]} at {scale:,} cells" for scale in scales)
        + "; a round runs every job once, in turn, each in its own process. Seconds: the median over the "
        "rounds (range); x XGBoost and x I/O floor: the median of the ratios within a round (range). "
        "Peak memory: the largest over the rounds of the process's peak RSS and, sampled "
        "every 0.1 s, its RSS plus the private memory of its child processes (the SpTGNN job's window "
        "processes); for the job with window processes, from a separate run that samples them (reading "
        "their private memory slows them: the timed rounds do not). Covariates: the nine La Libertad "
        "terrain rasters resampled to the grid (tiled GeoTIFFs); models trained in the same run on the 118 "
        "La Libertad SOC stocks. Windows of 512 x 512 cells. CPU steal: the share of the CPUs' time the "
        "hypervisor gave to other machines while the job ran (from /proc/stat; it slows that job), the "
        "mean over the rounds.",
        "",
        "| cells | job | seconds | cells / s | peak memory MiB | x XGBoost | x I/O floor | CPU steal % |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    names = {
        "io": "I/O floor (read windows)",
        "xgboost": "XGBoost 5 x 400 trees",
        "sptgnn": "SpTGNN 5 members",
        "sptgnn_threads": "SpTGNN 5 members, windows on threads",
    }
    summary = {}  # (mode, scale) -> cells, median seconds, peak
    for scale in scales:
        for mode in MODES:
            runs = _rounds(results, mode, scale)
            seconds = np.array([r["seconds"] for r in runs])
            cells = runs[0]["cells"]
            memory = _memory_run(results, mode, scale)
            peak = memory["peak_mib"] if memory else max(r["peak_mib"] for r in runs)
            summary[(mode, scale)] = (cells, float(np.median(seconds)), peak)
            lines.append(
                f"| {cells:,} | {names[mode]} | {_spread(seconds, 1)} | {cells / np.median(seconds):,.0f} | "
                f"{peak:.0f} | {_spread(_ratios(results, mode, 'xgboost', scale), 2)} | "
                f"{_spread(_ratios(results, mode, 'io', scale), 2)} | "
                f"{np.mean([r['steal_pct'] for r in runs]):.0f} |"
            )
    lines.append("")
    for mode in ("sptgnn", "sptgnn_threads"):
        (cells_one, seconds_one, peak_one) = summary[(mode, scales[0])]
        (cells_ten, seconds_ten, peak_ten) = summary[(mode, scales[-1])]
        if len(scales) > 1:
            lines.append(
                f"- {names[mode]}, from {cells_one:,} to {cells_ten:,} cells "
                f"({cells_ten / cells_one:.1f} x the cells): time x {seconds_ten / seconds_one:.2f} "
                f"(medians), peak memory x {peak_ten / peak_one:.2f}."
            )
        memory = _memory_run(results, mode, scales[-1])
        last = memory or _rounds(results, mode, scales[-1])[-1]
        lines.append(
            f"- {names[mode]}, {cells_ten:,} cells ({'the memory run' if memory else 'last round'}): peak "
            f"memory over the first quarter of the run {last['peak_first_quarter_mib']:.0f} MiB, over the "
            f"last quarter (from 3/4 of the windows to the end) {last['peak_last_quarter_mib']:.0f} MiB "
            "(samples every 0.1 s)."
        )
    for scale in scales:
        memory = _memory_run(results, "sptgnn", scale)
        timed = np.median([r["seconds"] for r in _rounds(results, "sptgnn", scale)])
        lines.append(
            f"- {names['sptgnn']}, {memory['cells']:,} cells, the memory run (window processes sampled): "
            f"{memory['seconds']:.1f} s, x {memory['seconds'] / timed:.2f} the timed runs' median "
            f"(CPU steal {memory['steal_pct']:.0f} %)."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scales", default="1000000,10000000", help="cell counts, comma-separated")
    parser.add_argument(
        "--repeats", default="3,1", help="rounds of every job at each scale, comma-separated (as --scales)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "training" / "reports" / "bench_maps.md")
    parser.add_argument(
        "--scratch", type=Path, help="folder for rasters and models (default: a temporary one)"
    )
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--cells", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--memory-run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.cells, args.scratch, args.threads, args.memory_run)))
        return

    from soilcarbon_core.io.atomic import atomic_output

    scales = [int(float(value)) for value in args.scales.split(",")]
    repeats = [int(value) for value in args.repeats.split(",")]
    if len(repeats) != len(scales) or min(repeats) < 1:
        parser.error(f"--repeats: one count of 1 or more per scale ({len(scales)}), got {args.repeats!r}")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.scratch or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        train_models(folder, args.threads)
        results = []
        for scale, rounds in zip(scales, repeats, strict=True):
            upsampled_rasters(folder, scale)
            for round_ in range(rounds):
                for mode in MODES:
                    result = {**measure(mode, scale, folder, args.threads), "scale": scale, "round": round_}
                    print(json.dumps(result), flush=True)
                    results.append(result)
            # The job with window processes once more, sampling their memory (module docstring).
            result = {**measure("sptgnn", scale, folder, args.threads, memory_run=True), "scale": scale}
            print(json.dumps(result), flush=True)
            results.append(result)
    command = "python training/benchmarks/maps.py " + " ".join(sys.argv[1:])
    with atomic_output(args.out) as partial:
        partial.write_text(report(results, args.threads, command, load))
    with atomic_output(args.out.with_suffix(".json")) as partial:
        partial.write_text(
            json.dumps({"threads": args.threads, "load_average": load, "results": results}, indent=1)
        )
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
