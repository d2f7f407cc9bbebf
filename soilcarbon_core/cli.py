"""The ``soilcarbon`` command line.

Errors a user can cause end with a one-line message and exit status 1, never a traceback; Ctrl-C stops
cleanly (outputs being written are removed) with status 130.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from soilcarbon_core import __version__
from soilcarbon_core.errors import Cancelled, SoilCarbonError


def _raster_argument(value: str) -> tuple[str, str]:
    """``PATH`` or ``PATH=NAME``."""
    path, _, name = value.partition("=")
    return path, name


def _progress_bar(description: str):
    from tqdm import tqdm

    bar = tqdm(total=100, desc=description, unit="%", file=sys.stderr, bar_format="{l_bar}{bar}| {n:.0f}%")

    def report(fraction: float, message: str = "") -> None:
        bar.n = round(100 * fraction, 1)
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    return bar, report


def _sample(args: argparse.Namespace) -> int:
    from soilcarbon_core.covariates import sample_covariates
    from soilcarbon_core.io.rasters import RasterSource

    rasters = [RasterSource(Path(path), name) for path, name in args.raster]
    bar, progress = _progress_bar("Sampling")
    with bar:
        summary = sample_covariates(
            args.points,
            rasters,
            args.output,
            method=args.method,
            keep_attributes=not args.no_attributes,
            progress=progress,
            layer=args.layer,
            x_field=args.x_field,
            y_field=args.y_field,
            crs=args.crs,
            date_field=args.date_field,
        )
    print(
        f"Wrote {summary['output']} (layer '{summary['layer']}'): {summary['n_points']} points, "
        f"{summary['n_valid']} valid on every raster."
    )
    for raster in summary["rasters"]:
        problems = f"{raster['n_outside']} outside, {raster['n_nodata']} on nodata"
        print(f"  {raster['name']:<40} -> {', '.join(raster['fields'])} ({problems})")
    if args.plot:
        from soilcarbon_core.plots import plot_sampled_points

        print(f"Plot: {plot_sampled_points(summary['output'], args.plot, summary['fields'])}")
    return 0


def _environment(args: argparse.Namespace) -> int:
    from soilcarbon_core.worker.tasks import TaskContext, environment

    info = environment({"probe_device": True}, TaskContext(progress=lambda *_: None, log=print))
    print(json.dumps(info, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soilcarbon", description="Soil organic carbon and soil greenhouse-gas modelling."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    sample = commands.add_parser(
        "sample",
        help="sample rasters at points into a GeoPackage",
        description="Sample every band of every raster at the points; write the points with one field "
        "per band, a 'valid' flag and a 'problem' note (nodata / outside) to a GeoPackage.",
    )
    sample.add_argument("points", help="GeoPackage, GeoJSON, Shapefile or CSV of sample points")
    sample.add_argument(
        "-r",
        "--raster",
        action="append",
        required=True,
        type=_raster_argument,
        metavar="PATH[=NAME]",
        help="a raster to sample (repeatable); NAME names its fields (default: the file name)",
    )
    sample.add_argument("-o", "--output", required=True, help="output GeoPackage (.gpkg)")
    sample.add_argument("--method", choices=("nearest", "bilinear"), default="nearest")
    sample.add_argument("--layer", help="layer of a multi-layer points file")
    sample.add_argument("--x-field", help="CSV column with x / longitude (found automatically if omitted)")
    sample.add_argument("--y-field", help="CSV column with y / latitude")
    sample.add_argument("--crs", help="CRS of CSV coordinates, e.g. EPSG:32618 (lon/lat default EPSG:4326)")
    sample.add_argument("--date-field", help="field with the sampling date")
    sample.add_argument("--no-attributes", action="store_true", help="do not copy the points' attributes")
    sample.add_argument("--plot", help="also write a PNG map of the sampled values")
    sample.set_defaults(run=_sample)

    env = commands.add_parser("env", help="versions of the core stack and the compute device (JSON)")
    env.set_defaults(run=_environment)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (Cancelled, KeyboardInterrupt):
        print("\nsoilcarbon: cancelled; no output was written.", file=sys.stderr)
        return 130
    except SoilCarbonError as err:
        print(f"soilcarbon: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
