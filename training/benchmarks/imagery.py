"""Imagery stream throughput: chips per second from GeoTIFFs to TerraMind embeddings vs the bare forward.

    OMP_NUM_THREADS=2 python training/benchmarks/imagery.py --threads 2 \
        --out training/reports/bench_imagery.md

Baseline (the limit): the encoder's bare forward, ``encoder_tokens`` through all 12 blocks + final norm +
mean pooling, on random tensors of the chips' shape (B, C, S, S) under ``torch.no_grad`` (bf16 autocast on
CUDA), measured in the same run with the same model. Against it, per backbone (tiny, small), chip size
(64, 128, 224) and device (CPU; CUDA when present):

- end to end without cache: ``ImageryEncoder(..., cache_dir=False).features(lonlat)``: chips cut from the
  GeoTIFFs, normalised and encoded;
- end to end with a warm cache: the same with a cache folder, filled by one run (its time is reported as
  "cold cache"), then timed with every point a hit;
- chip extraction alone (``extract_chips`` on the same batches), to show where the time goes.

Inputs: the Sentinel-2 L1C band subset in ``data/s2_l1c_sample`` (B01, B05, B8A, B11, B12 of tile 18SVG;
modality S2L1C), points drawn with a fixed seed uniformly inside the bands' common extent shrunk by half
the largest chip, so that every chip lies inside the rasters: a masked chip skips the encoder and would
inflate the throughput (masked counts are recorded). The encoder has seeded random weights
(``weights="random"``; no pretrained weights offline): the cost is the same as with pretrained ones, the
architecture and the arithmetic being identical whatever the weight values. Points per configuration
(``POINTS``, times ``--scale``, times ``--gpu-scale`` on CUDA) make one end-to-end pass last about a
second on 2 idle CPU threads (the whole run: about 1.5 minutes). Models are built outside the timings.
The machine may be shared: variants are timed in interleaved rounds, the best round of each is kept,
and the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.warp import transform as warp_transform

from soilcarbon_core.imagery.cache import file_sha256
from soilcarbon_core.imagery.chips import extract_chips
from soilcarbon_core.imagery.encoder import DEPTH, encoder_tokens
from soilcarbon_core.imagery.sources import ModalityRasters, modality_rasters
from soilcarbon_core.imagery.stream import ImageryEncoder, ImagerySettings

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "s2_l1c_sample"
MODALITY = "S2L1C"
BACKBONES = ("terramind_v1_tiny", "terramind_v1_small")
SIZES = (64, 128, 224)
#: Points per (backbone, chip size): about 1 s end to end on 2 CPU threads (forward ~3-85 ms per chip).
POINTS = {
    ("terramind_v1_tiny", 64): 128,
    ("terramind_v1_tiny", 128): 64,
    ("terramind_v1_tiny", 224): 32,
    ("terramind_v1_small", 64): 96,
    ("terramind_v1_small", 128): 32,
    ("terramind_v1_small", 224): 16,
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(call: Callable[[], object], device: torch.device, min_seconds: float = 0.0) -> float:
    """Mean wall time of ``call`` in seconds, repeated until ``min_seconds`` have passed (at least once)."""
    _sync(device)
    started, runs = time.perf_counter(), 0
    while True:
        call()
        _sync(device)
        runs += 1
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return elapsed / runs


def draw_points(rasters: ModalityRasters, n: int, margin_m: float, seed: int) -> np.ndarray:
    """(n, 2) lon/lat drawn uniformly inside the bands' common extent shrunk by ``margin_m`` metres."""
    bounds, crs = [], None
    for ref in rasters.bands:
        with rasterio.open(ref.path) as src:
            bounds.append(src.bounds)
            crs = src.crs
    left, bottom = max(b.left for b in bounds) + margin_m, max(b.bottom for b in bounds) + margin_m
    right, top = min(b.right for b in bounds) - margin_m, min(b.top for b in bounds) - margin_m
    rng = np.random.default_rng(seed)
    lon, lat = warp_transform(crs, "EPSG:4326", rng.uniform(left, right, n), rng.uniform(bottom, top, n))
    return np.column_stack([lon, lat])


def _encoder(
    rasters: ModalityRasters, backbone: str, size: int, batch: int, device: torch.device, cache
) -> ImageryEncoder:
    settings = ImagerySettings(backbone=backbone, chip_size=size, batch_size=batch)
    return ImageryEncoder(settings, [rasters], weights="random", cache_dir=cache, device=str(device))


def measure(
    rasters: ModalityRasters,
    lonlat: np.ndarray,
    backbone: str,
    size: int,
    device: torch.device,
    args: argparse.Namespace,
) -> dict:
    """Seconds per pass over the points ``lonlat`` (n, 2) of each variant (best of ``args.repeats`` rounds).

    The model is built before any timing. Rounds alternate the variants so that a load change on a
    shared machine hits all of them; the best round of each is kept, all rounds go to the JSON.
    """
    batch = args.batch_size
    plain = _encoder(rasters, backbone, size, batch, device, False)

    n = len(lonlat)
    plain.features(lonlat[:batch])  # warm-up: first-call allocations, GDAL opening

    # (a) The limit: the same model's bare forward on random chips, in the same batches.
    model = plain.model
    generator = torch.Generator().manual_seed(0)
    channels = len(rasters.bands)
    randoms = [
        torch.randn(min(batch, n - start), channels, size, size, generator=generator).to(device)
        for start in range(0, n, batch)
    ]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")

    def bare() -> None:
        with torch.no_grad(), autocast:
            for x in randoms:
                model.encoder_norm(encoder_tokens(model, {MODALITY: x}, upto=DEPTH)).mean(dim=1)

    # (d) Chip extraction alone, batch by batch as the stream does it.
    def extract() -> None:
        for start in range(0, n, batch):
            extract_chips(lonlat[start : start + batch], [rasters], size)

    # (b) End to end, no cache; rounds of (a), (b), (d).
    features: list[np.ndarray] = []  # the last uncached output, to check the cached one against
    rounds: dict[str, list[float]] = {"limit": [], "no_cache": [], "extraction": [], "warm_cache": []}
    for _ in range(args.repeats):
        rounds["limit"].append(_time(bare, device, args.min_seconds))
        rounds["no_cache"].append(_time(lambda: features.append(plain.features(lonlat)), device))
        rounds["extraction"].append(_time(extract, device, args.min_seconds))
    masked = sum(plain.report.masked.values())

    # (c) End to end with a cache: one filling run (cold), then runs where every point is a hit.
    with tempfile.TemporaryDirectory(prefix="bench_imagery_") as folder:
        cached = _encoder(rasters, backbone, size, batch, device, folder)
        rounds["cold_cache"] = [_time(lambda: cached.features(lonlat), device)]
        for _ in range(args.repeats):
            rounds["warm_cache"].append(_time(lambda: cached.features(lonlat), device, args.min_seconds))
        # One more warm call, untimed, to check it: every point a hit, the same vectors as uncached.
        # (The report's counts add up over calls.)
        hits, encoded = cached.report.cache_hits, cached.report.encoded
        features.append(cached.features(lonlat))
        hits, encoded = cached.report.cache_hits - hits, cached.report.encoded - encoded
    return {
        "device": str(device),
        "backbone": backbone,
        "chip_size": size,
        "points": n,
        "batch_size": batch,
        "masked": masked,  #: chips masked over all uncached runs (0: every chip was encoded)
        "cache_hits": hits,
        "encoded_on_warm_run": encoded,
        "cache_max_abs_diff": float(np.nanmax(np.abs(features[-1] - features[0]))),
        **{f"{name}_s": min(times) for name, times in rounds.items()},
        "rounds": rounds,
    }


def _derived(r: dict) -> dict:
    """Chips per second of each variant, ratios to the limit and to no cache, per-chip breakdown (ms)."""
    n = r["points"]
    per_chip_ms = {k[:-2]: 1e3 * r[k] / n for k in r if k.endswith("_s")}
    return {
        "chips_per_s": {k[:-2]: n / r[k] for k in r if k.endswith("_s")},
        "x_bare_forward": r["no_cache_s"] / r["limit_s"],
        "extraction_share": r["extraction_s"] / r["no_cache_s"],
        "warm_cache_speed_up": r["no_cache_s"] / r["warm_cache_s"],
        "per_chip_ms": per_chip_ms
        | {"other": per_chip_ms["no_cache"] - per_chip_ms["limit"] - per_chip_ms["extraction"]},
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> float | None:
    """The 1-minute load average (the machine may be shared), None where the OS has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _span(values: list[float], fmt: str) -> str:
    low, high = min(values), max(values)
    return format(low, fmt) if format(low, fmt) == format(high, fmt) else f"{low:{fmt}} to {high:{fmt}}"


def interpretation(results: list[dict]) -> list[str]:
    """One line per device and backbone, and one per device on extraction and the cache, from the numbers."""
    lines = []
    for device in dict.fromkeys(r["device"] for r in results):
        rows = [r for r in results if r["device"] == device]
        for backbone in dict.fromkeys(r["backbone"] for r in rows):
            mine = [r for r in rows if r["backbone"] == backbone]
            worst = max(mine, key=lambda r: r["derived"]["x_bare_forward"])
            gap = worst["derived"]["per_chip_ms"]["no_cache"] - worst["derived"]["per_chip_ms"]["limit"]
            lines.append(
                f"- {device}, {backbone}: end to end without cache takes "
                f"{_span([r['derived']['x_bare_forward'] for r in mine], '.2f')}x the bare forward time; "
                f"the ratio is largest at {worst['chip_size']} px ({gap:.1f} ms per chip over the forward)."
            )
        shares = [r["derived"]["extraction_share"] for r in rows]
        others = [r["derived"]["per_chip_ms"]["other"] for r in rows]
        lines.append(
            f"- {device}: chip extraction is {_span([100 * s for s in shares], '.0f')}% of the end-to-end "
            f"time; the rest beyond forward and extraction (normalisation, copies, batching) is "
            f"{_span(others, '.1f')} ms per chip."
        )
        speed_ups = [r["derived"]["warm_cache_speed_up"] for r in rows]
        cold = [r["cold_cache_s"] / r["no_cache_s"] for r in rows]
        served = [r["derived"]["chips_per_s"]["warm_cache"] for r in rows]
        lines.append(
            f"- {device}: a warm cache serves {_span(served, ',.0f')} chips/s, "
            f"{_span(speed_ups, ',.0f')}x the end-to-end rate without cache; "
            f"filling it (cold run) takes {_span(cold, '.2f')}x the uncached time."
        )
        bad = [r for r in rows if r["masked"] or r["encoded_on_warm_run"] or r["cache_max_abs_diff"] > 0]
        if bad:
            lines.append(
                f"- {device}: check: masked chips, cache misses on the warm run or cached vectors differing "
                f"from the encoded ones in {len(bad)} configuration(s) (see the JSON)."
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("training/reports/bench_imagery.md"))
    parser.add_argument("--data", type=Path, default=DATA, help="folder with the s2_*.tif bands")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32, help="ImagerySettings.batch_size")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the points per configuration")
    parser.add_argument("--gpu-scale", type=float, default=4.0, help="and this on CUDA")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds, the best is kept")
    parser.add_argument("--min-seconds", type=float, default=0.3, help="fast variants repeat this long")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rasters = modality_rasters(MODALITY, [str(p) for p in sorted(args.data.glob("s2_*.tif"))])
    counts = {
        (device, key): max(1, round(n * args.scale * (args.gpu_scale if device.type == "cuda" else 1.0)))
        for key, n in POINTS.items()
        for device in devices
    }
    # Half the largest chip plus one coarsest (60 m) cell: every chip pixel falls inside every band.
    points = draw_points(rasters, max(counts.values()), max(SIZES) / 2 * 10.0 + 60.0, args.seed)
    load_before = _load()
    # The cache keys on the rasters' sha256, memoised per process: paid once here, so that every cold
    # run below measures the same thing (encoding + writing).
    started = time.perf_counter()
    for ref in rasters.bands:
        file_sha256(ref.path)
    fingerprint_s = time.perf_counter() - started
    results = []
    for device in devices:
        for backbone in BACKBONES:
            for size in SIZES:
                n = counts[device, (backbone, size)]
                result = measure(rasters, points[:n], backbone, size, device, args)
                result["derived"] = _derived(result)
                result["load_average_1min"] = _load()
                results.append(result)
                print(
                    f"{device} {backbone} {size}: {result['points']} points, "
                    f"{result['derived']['chips_per_s']['no_cache']:.1f} chips/s end to end, "
                    f"{result['derived']['x_bare_forward']:.2f}x the bare forward",
                    file=sys.stderr,
                )

    environment = {
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", ""),
        "cpu": _cpu_name(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
        "torch": torch.__version__,
        "terratorch": version("terratorch"),
        "bands": rasters.band_names,
        "raster_fingerprint_s": fingerprint_s,
        "load_average_1min": {"start": load_before, "end": _load()},
    }
    gpu = f"; GPU {environment['gpu']} (bf16 autocast)" if environment["gpu"] else "; no GPU in this run"
    lines = [
        "# Imagery stream: chips per second against the bare TerraMind forward",
        "",
        f"Sentinel-2 L1C bands {', '.join(rasters.band_names)} (data/s2_l1c_sample, modality {MODALITY}), "
        f"points uniform inside the rasters (seed {args.seed}), batches of {args.batch_size}, 10 m chips. "
        f"CPU {environment['cpu']} ({os.cpu_count()} cores, 1-minute load average {load_before} at the "
        f"start, {environment['load_average_1min']['end']} at the end) with {environment['torch_threads']} "
        f"torch threads{gpu}; torch "
        f"{environment['torch']}, terratorch {environment['terratorch']}. Baseline (the limit): the same "
        "encoder's bare forward (12 blocks + final norm + mean pooling) on random tensors of the chips' "
        "shape, in the same run. Seeded random weights: the cost does not depend on the weight values. "
        "Extraction: `extract_chips` alone; warm cache: every point a hit; cold cache: the run that fills "
        f"it (one run; the rasters' sha256, {fingerprint_s:.2f} s once per process, is paid before). "
        f"Best of {args.repeats} interleaved rounds.",
        "",
        "| device | backbone | chip | points | limit chips/s | no cache chips/s | x bare forward "
        "| extraction chips/s | extraction share | cold cache chips/s | warm cache chips/s "
        "| cache speed-up |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        d, c = r["derived"], r["derived"]["chips_per_s"]
        lines.append(
            f"| {r['device']} | {r['backbone']} | {r['chip_size']} | {r['points']} | {c['limit']:,.1f} "
            f"| {c['no_cache']:,.1f} | {d['x_bare_forward']:.2f}x | {c['extraction']:,.1f} "
            f"| {d['extraction_share']:.0%} | {c['cold_cache']:,.1f} | {c['warm_cache']:,.0f} "
            f"| {d['warm_cache_speed_up']:,.0f}x |"
        )
    lines += [
        "",
        "Per chip, ms (other = end to end without cache - bare forward - extraction):",
        "",
        "| device | backbone | chip | bare forward | extraction | other | end to end | cold cache "
        "| warm cache |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ms = r["derived"]["per_chip_ms"]
        lines.append(
            f"| {r['device']} | {r['backbone']} | {r['chip_size']} | {ms['limit']:.2f} "
            f"| {ms['extraction']:.2f} | {ms['other']:.2f} | {ms['no_cache']:.2f} "
            f"| {ms['cold_cache']:.2f} | {ms['warm_cache']:.3f} |"
        )
    lines += ["", *interpretation(results)]

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    settings = vars(args) | {"out": str(args.out), "data": str(args.data)}
    args.out.with_suffix(".json").write_text(
        json.dumps({"args": settings, "environment": environment, "results": results}, indent=2)
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
