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


def _rasters(values: list[tuple[str, str]] | None) -> list:
    from soilcarbon_core.io.rasters import RasterSource

    return [RasterSource(Path(path), name) for path, name in values or []]


def _read_options(args: argparse.Namespace) -> dict:
    return {
        "layer": args.layer,
        "x_field": args.x_field,
        "y_field": args.y_field,
        "crs": args.crs,
        "date_field": args.date_field,
    }


def _training_inputs(args: argparse.Namespace):
    from soilcarbon_training.jobs import prepare_data

    return prepare_data(
        args.points,
        target=args.target,
        rasters=_rasters(args.raster),
        imagery=_rasters(args.imagery),
        covariate_fields=args.covariate or [],
        elevation=args.elevation,
        slope=args.slope,
        method=args.method,
        imagery_inputs=_imagery_inputs(args),
        imagery_settings=_imagery_settings(args),
        device=args.device,
        **_read_options(args),
    )


def _train_config(args: argparse.Namespace):
    from soilcarbon_training.trainer import TrainConfig

    return TrainConfig(
        epochs=args.epochs,
        loss=args.loss,
        beta=args.beta,
        moran_weight=args.moran_weight,
        calibration=args.calibration,
        seed=args.seed,
    )


def _run_training_job(args: argparse.Namespace, job_name: str, title: str, **options) -> dict:
    """Read and sample the labelled points, then run ``soilcarbon_training.jobs.<job_name>`` with a bar."""
    try:
        from soilcarbon_training import jobs
    except ModuleNotFoundError as err:
        raise SoilCarbonError(
            "Training needs the soilcarbon_training package, which is not installed here.",
            "Install the project with 'make setup' (or pip install -e . from the repository).",
        ) from err
    bar, progress = _progress_bar(title)
    with bar:
        return getattr(jobs, job_name)(
            _training_inputs(args),
            args.output,
            target=args.target,
            unit=args.unit,
            members=args.members,
            train_config=_train_config(args),
            device=args.device,
            progress=progress,
            **options,
        )


def _train(args: argparse.Namespace) -> int:
    summary = _run_training_job(args, "train_model", "Training")
    v = summary["validation"]
    print(
        f"Wrote {summary['output']}: {summary['members']} members, {summary['samples']} samples, relations "
        f"{', '.join(summary['relations'])}, {summary['seconds']} s on {summary['device']}.\n"
        f"  validation: R2 {v['r2']:.3f}, RMSE {v['rmse']:.4g}, PICP90 {v['picp90']:.2f}, ECE {v['ece']:.3f}"
    )
    _print_imagery(summary.get("imagery"))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    report = _run_training_job(
        args, "evaluate_model", "Cross-validating", cv=args.cv, folds=args.folds, block_size_m=args.block_size
    )
    m = report["metrics"]
    print(
        f"Wrote {report['report']} (+ report.json, calibration.png, intervals.png).\n"
        f"  {report['folds']}-fold {report['cv']} CV: R2 {m['r2']:.3f}, RMSE {m['rmse']:.4g}, "
        f"PICP90 {m['picp90']:.2f}, ECE {m['ece']:.3f}, CRPS {m['crps']:.4g}"
    )
    return 0


def _grid(args: argparse.Namespace):
    """The prediction grid of ``--grid`` or ``--extent``/``--resolution``/``--grid-crs``, or None."""
    from soilcarbon_core.maps import GridSpec

    if args.grid and args.extent:
        raise SoilCarbonError("Give either --grid TEMPLATE or --extent (not both).", "See --help.")
    if args.extent:
        if args.resolution is None or args.grid_crs is None:
            raise SoilCarbonError(
                "--extent needs --resolution and --grid-crs.", "E.g. --resolution 30 --grid-crs EPSG:32618."
            )
        return GridSpec.from_extent(args.extent, args.resolution, args.grid_crs)
    return args.grid


def _extent_argument(value: str) -> tuple[float, float, float, float]:
    """``XMIN,YMIN,XMAX,YMAX``."""
    parts = value.split(",")
    try:
        xmin, ymin, xmax, ymax = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not XMIN,YMIN,XMAX,YMAX") from None
    return xmin, ymin, xmax, ymax


def _add_grid_options(command: argparse.ArgumentParser, what: str) -> None:
    group = command.add_argument_group(
        "grid", f"{what}: a template raster's grid, or an extent and a resolution"
    )
    group.add_argument("--grid", metavar="TEMPLATE", help="every cell of this raster's grid")
    group.add_argument("--extent", type=_extent_argument, metavar="XMIN,YMIN,XMAX,YMAX", help="in --grid-crs")
    group.add_argument("--resolution", type=float, help="cell size in --grid-crs units")
    group.add_argument("--grid-crs", help="CRS of --extent, e.g. EPSG:32618")


def _predict(args: argparse.Namespace) -> int:
    from soilcarbon_core.prediction import predict_grid, predict_points

    grid = _grid(args)
    if (args.points is None) == (grid is None):
        raise SoilCarbonError(
            "Give either points or a grid (--grid TEMPLATE or --extent), not both.",
            "See soilcarbon predict --help.",
        )
    bar, progress = _progress_bar("Predicting")
    common = {
        "rasters": _rasters(args.raster),
        "imagery": _imagery_inputs(args),
        "date": args.date,
        "device": args.device,
        "progress": progress,
    }
    with bar:
        if grid is not None:
            summary = predict_grid(
                args.model, grid, args.output, plot=args.plot, window_size=args.window_size, **common
            )
        else:
            options = {"method": args.method, **common, **_read_options(args)}
            summary = predict_points(args.model, args.points, args.output, **options)
    count = summary.get("n_points", summary.get("n_cells"))
    print(
        f"Wrote {summary['output']}: {summary['target']} ({summary['unit']}) with uncertainty at "
        f"{summary['n_predicted']} of {count} places, on {summary['device']}."
    )
    if summary.get("resumed_windows"):
        print(
            f"Resumed an interrupted map: {summary['resumed_windows']} of {summary['n_windows']} windows "
            "reused."
        )
    if summary.get("plot"):
        print(f"Map: {summary['plot']}")
    _print_imagery(summary.get("imagery"))
    return 0


def _plan(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from soilcarbon_core.campaign import PlannerSettings, plan_campaign

    grid = _grid(args)
    if (args.candidates is None) == (grid is None):
        raise SoilCarbonError(
            "Give either candidate points or a candidate grid (--grid TEMPLATE or --extent), not both.",
            "See soilcarbon plan --help.",
        )
    # Options not given keep the core's defaults (the options' dest names are the settings' fields).
    given = {field.name: getattr(args, field.name, None) for field in fields(PlannerSettings)}
    settings = PlannerSettings(**{name: value for name, value in given.items() if value is not None})
    bar, progress = _progress_bar("Planning")
    with bar:
        summary = plan_campaign(
            args.model,
            args.output,
            args.budget,
            candidates=args.candidates,
            grid=grid,
            rasters=_rasters(args.raster),
            imagery=_imagery_inputs(args),
            mask=args.mask,
            date=args.date,
            device=args.device,
            settings=settings,
            progress=progress,
            **(_read_options(args) if args.candidates else {}),
        )
    before, after = summary["area_epistemic_sd_before"], summary["area_epistemic_sd_after"]
    cut = 100 * (1 - (after / before) ** 2) if before > 0 else 0.0
    print(
        f"Wrote {summary['output']} (layer '{summary['layer']}'): {summary['sites']} ranked sites among "
        f"{summary['candidates']} candidates.\n  Expected to cut the area's epistemic variance by "
        f"{cut:.2f} % (sd {before:.3g} -> {after:.3g} {summary['unit']}; spatial range "
        f"{summary['spatial_range_m']:.0f} m, feature range {summary['feature_range']:g} sd)."
    )
    return 0


def _graph(args: argparse.Namespace) -> int:
    from soilcarbon_core.graph.export import export_graph

    bar, progress = _progress_bar("Building the graph")
    with bar:
        summary = export_graph(
            args.model,
            args.output,
            points=args.points,
            rasters=_rasters(args.raster),
            imagery=_imagery_inputs(args),
            method=args.method,
            date=args.date,
            device=args.device,
            progress=progress,
            **(_read_options(args) if args.points else {}),
        )
    counts = ", ".join(f"{name} {count}" for name, count in summary["relations"].items())
    print(
        f"Wrote {summary['output']} (layer '{summary['layer']}'): edges among the "
        f"{summary['n_reference']} reference samples: {counts or 'none'}."
    )
    if args.points:
        print(
            f"  {summary['n_query_edges']} edges attach {summary['n_query_attached']} of "
            f"{summary['n_query']} points."
        )
    for name, why in summary["skipped"].items():
        print(f"  no {name} relation: {why}")
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
    _add_read_options(sample, "field with the sampling date")
    sample.add_argument("--no-attributes", action="store_true", help="do not copy the points' attributes")
    sample.add_argument("--plot", help="also write a PNG map of the sampled values")
    sample.set_defaults(run=_sample)

    _add_model_commands(commands)
    _add_ghg_commands(commands)

    env = commands.add_parser("env", help="versions of the core stack and the compute device (JSON)")
    env.set_defaults(run=_environment)
    return parser


def _add_read_options(command: argparse.ArgumentParser, date_help: str | None) -> None:
    command.add_argument("--layer", help="layer of a multi-layer points file")
    command.add_argument("--x-field", help="CSV column with x / longitude (found automatically if omitted)")
    command.add_argument("--y-field", help="CSV column with y / latitude")
    command.add_argument("--crs", help="CRS of CSV coordinates, e.g. EPSG:32618 (lon/lat default EPSG:4326)")
    if date_help:
        command.add_argument("--date-field", help=date_help)


def _add_point_options(command: argparse.ArgumentParser) -> None:
    _add_read_options(command, "field with the sampling date (enables the temporal stream)")
    command.add_argument(
        "-r",
        "--raster",
        action="append",
        type=_raster_argument,
        metavar="PATH[=NAME]",
        help="a covariate raster (repeatable); NAME names its feature, and must be the same at prediction",
    )
    command.add_argument("--method", choices=("nearest", "bilinear"), default="bilinear")
    command.add_argument("--device", default="auto", help="auto (GPU when there is one), cpu or cuda")
    _add_imagery_options(command)


def _add_imagery_options(command: argparse.ArgumentParser) -> None:
    group = command.add_argument_group(
        "imagery chips",
        "Chips around each point from Sentinel-2, Sentinel-1 and a DEM (any CRS, warped on the fly) feed the "
        "imagery stream: TerraMind embeddings with local weights, or chip statistics without them.",
    )
    band_help = "a {} raster (repeatable); BANDS names its bands in order (default: from the file)"
    group.add_argument("--s2", action="append", metavar="PATH[=BANDS]", help=band_help.format("Sentinel-2"))
    group.add_argument("--s2-level", choices=("L2A", "L1C"), default="L2A", help="Sentinel-2 product level")
    group.add_argument(
        "--s1", action="append", metavar="PATH[=VV,VH]", help=band_help.format("Sentinel-1 GRD")
    )
    group.add_argument(
        "--s1-units", choices=("auto", "db", "linear"), default="auto", help="auto: linear if no value is < 0"
    )
    group.add_argument("--dem", action="append", metavar="PATH", help="a DEM raster in metres")
    group.add_argument(
        "--terramind-weights",
        metavar="PATH",
        help="local TerraMind weights (.pt or .safetensors; default: the file in $SOILCARBON_TERRAMIND_DIR)",
    )
    group.add_argument("--embedding-cache", metavar="DIR", help="embedding cache folder")
    group.add_argument("--no-embedding-cache", action="store_true", help="do not read or write the cache")


def _imagery_inputs(args: argparse.Namespace):
    from soilcarbon_core.imagery import default_inputs

    return default_inputs(
        {
            "s2": args.s2 or [],
            "s2_level": args.s2_level,
            "s1": args.s1 or [],
            "s1_units": args.s1_units,
            "dem": args.dem or [],
            "weights": args.terramind_weights,
            "cache_dir": args.embedding_cache,
            "cache": not args.no_embedding_cache,
        }
    )


def _imagery_settings(args: argparse.Namespace):
    from soilcarbon_core.imagery import ImagerySettings

    return ImagerySettings(
        backbone=args.backbone,
        chip_size=args.chip_size,
        pooling=args.pooling,
        finetune=args.finetune,
        blocks=args.finetune_blocks,
    )


def _print_imagery(report: dict | None) -> None:
    if not report:
        return
    masked = ", ".join(f"{name} {count}" for name, count in report["masked"].items())
    print(
        f"  imagery: {report['backbone']}, {report['points']} points ({report['cache_hits']} cached), "
        f"{report['incomplete']} without a usable chip of some modality (mostly nodata or outside)"
        + (f"; masked among the {report['encoded']} cut now: {masked}" if report["encoded"] else "")
    )
    for note in report["notes"]:
        print(f"  imagery: {note}")


def _add_training_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("points", help="labelled sample points (GeoPackage, GeoJSON, Shapefile or CSV)")
    command.add_argument("--target", required=True, help="numeric field to learn, e.g. SOC")
    command.add_argument("--unit", default="", help="unit of the target, e.g. g/kg or t/ha")
    _add_point_options(command)
    command.add_argument(
        "--imagery",
        action="append",
        type=_raster_argument,
        metavar="PATH[=NAME]",
        help="an imagery raster (bands feed the imagery stream and the spectral relation; repeatable)",
    )
    command.add_argument(
        "--covariate", action="append", metavar="FIELD", help="a numeric field used as covariate"
    )
    command.add_argument("--elevation", help="feature (raster NAME or field) for the elevation relation")
    command.add_argument(
        "--slope", help="feature (raster NAME or field) with slope, refines the elevation relation"
    )
    command.add_argument("--members", type=int, default=5, help="ensemble size (default 5)")
    command.add_argument("--epochs", type=int, default=60)
    command.add_argument("--loss", choices=("beta_nll", "gaussian_nll"), default="beta_nll")
    command.add_argument("--beta", type=float, default=0.5, help="beta of beta-NLL (default 0.5)")
    command.add_argument("--moran-weight", type=float, default=0.1, help="weight of the Moran's I penalty")
    command.add_argument(
        "--calibration",
        choices=("isotonic", "sigma_scaling", "sigma_scaling_ece", "none"),
        default="isotonic",
    )
    command.add_argument("--seed", type=int, default=0)
    group = command.add_argument_group("imagery model")
    group.add_argument(
        "--backbone",
        choices=("auto", "none", "terramind_v1_tiny", "terramind_v1_small", "terramind_v1_base"),
        default="auto",
        help="auto: TerraMind tiny when its weights are found, else chip statistics; none: chip statistics",
    )
    group.add_argument("--chip-size", type=int, default=64, help="chip side in 10 m cells, a multiple of 16")
    group.add_argument("--pooling", choices=("mean", "attention"), default="mean", help="token pooling")
    group.add_argument(
        "--finetune",
        choices=("frozen", "last_n", "lora"),
        default="frozen",
        help="frozen backbone, last N blocks trained, or low-rank adapters on the last N blocks",
    )
    group.add_argument("--finetune-blocks", type=int, default=2, help="N for --finetune last_n / lora")


def _add_model_commands(commands) -> None:
    train = commands.add_parser(
        "train",
        help="train an SpTGNN ensemble on labelled points",
        description="Train a deep ensemble of SpTGNN graph networks on labelled soil samples and write a "
        "model (directory, or .zip) with manifest.json and safetensors weights.",
    )
    _add_training_options(train)
    train.add_argument("-o", "--output", required=True, help="model directory or .zip")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="cross-validate SpTGNN on labelled points (report: JSON, Markdown, PNG)",
    )
    _add_training_options(evaluate)
    evaluate.add_argument("-o", "--output", required=True, help="folder for report.json, report.md and plots")
    evaluate.add_argument("--cv", choices=("spatial", "random"), default="spatial")
    evaluate.add_argument("--folds", type=int, default=5)
    evaluate.add_argument("--block-size", type=float, help="spatial block side in metres (default: auto)")
    evaluate.set_defaults(run=_evaluate)

    predict = commands.add_parser(
        "predict",
        help="predict with uncertainty at points (GeoPackage) or on a grid (GeoTIFF)",
    )
    predict.add_argument("model", help="model directory or .zip")
    predict.add_argument("points", nargs="?", help="points to predict at")
    predict.add_argument("-o", "--output", required=True, help="output .gpkg (points) or .tif (grid, a COG)")
    predict.add_argument("--date", help="sampling date for all places (YYYY-MM-DD) when the model uses dates")
    predict.add_argument("--plot", help="with a grid: also write a PNG map")
    predict.add_argument(
        "--window-size", type=int, default=512, help="with a grid: cells on a side of a window (default 512)"
    )
    _add_grid_options(predict, "predict every cell of a grid instead of points")
    _add_point_options(predict)
    predict.set_defaults(run=_predict)

    plan = commands.add_parser(
        "plan",
        help="plan a sampling campaign: N new sites that most reduce the model's epistemic uncertainty",
    )
    plan.add_argument("model", help="model directory or .zip")
    plan.add_argument("candidates", nargs="?", help="candidate points (or give a candidate grid)")
    plan.add_argument("-n", "--budget", type=int, required=True, help="number of new sites")
    plan.add_argument("-o", "--output", required=True, help="output .gpkg: ranked sites with their reasons")
    plan.add_argument("--mask", help="raster whose non-zero cells are inaccessible (with a grid)")
    plan.add_argument(
        "--min-spacing",
        dest="min_spacing_m",
        type=float,
        metavar="METRES",
        help="minimum distance between sites (m; default 0)",
    )
    plan.add_argument(
        "--spatial-range",
        dest="spatial_range_m",
        type=float,
        metavar="METRES",
        help="L_s in m (default: median gap to the nearest sample)",
    )
    plan.add_argument("--feature-range", type=float, help="L_f in covariate sds (default 0.5)")
    plan.add_argument(
        "--noise-ratio",
        type=float,
        help="r: a new sample's noise as a share of the model's aleatoric variance (default 0.05)",
    )
    plan.add_argument(
        "--variance-power",
        type=float,
        help="gamma: sharpening of the epistemic variance's contrasts (default 1: the ensemble's own)",
    )
    plan.add_argument("--seed", type=int, help="seed of the candidate subsets (default 0)")
    plan.add_argument("--date", help="sampling date (YYYY-MM-DD) when the model uses dates")
    _add_grid_options(plan, "candidate cells")
    _add_point_options(plan)
    plan.set_defaults(run=_plan)

    graph = commands.add_parser(
        "graph",
        help="the model's soil graph as lines (GeoPackage), optionally with the edges of query points",
        description="Write the graph prediction builds over the model's reference samples (spatial, "
        "spectral and elevation relations) as a line layer 'graph' in the model's CRS; with points, also "
        "the edges that attach each point to its reference neighbours.",
    )
    graph.add_argument("model", help="model directory or .zip")
    graph.add_argument("points", nargs="?", help="query points whose edges to draw as well")
    graph.add_argument("-o", "--output", required=True, help="output .gpkg (layer 'graph')")
    graph.add_argument("--date", help="sampling date (YYYY-MM-DD) of the points when the model uses dates")
    _add_point_options(graph)
    graph.set_defaults(run=_graph)


def _ghg_predict(args: argparse.Namespace) -> int:
    from soilcarbon_core.ghg.prediction import GHGInputs, predict_ghg

    bar, progress = _progress_bar("GHG fluxes")
    with bar:
        summary = predict_ghg(
            args.points,
            args.output,
            model=args.model,
            inputs=GHGInputs(
                weather=args.weather,
                soc_field=args.soc_field,
                soc_sd_field=args.soc_sd_field,
                soc_unit=args.soc_unit,
            ),
            samples=args.samples,
            seed=args.seed,
            progress=progress,
            layer=args.layer,
            x_field=args.x_field,
            y_field=args.y_field,
            crs=args.crs,
        )
    print(
        f"Wrote {summary['output']}: {summary['points']} points, "
        f"{summary['samples']} predictive samples each."
    )
    print("  units: " + "; ".join(f"{k} {v}" for k, v in summary["units"].items()))
    if summary["points_with_defaults"]:
        print(
            f"  {summary['points_with_defaults']} point(s) used documented defaults (field 'defaults_used')."
        )
    for note in summary["notes"]:
        print(f"  {note}")
    return 0


def _add_ghg_commands(commands) -> None:
    ghg = commands.add_parser("ghg", help="soil N2O, CO2 and CH4 fluxes under fertilisation (KG-FGNN)")
    ghg_commands = ghg.add_subparsers(dest="ghg_command", required=True)
    predict = ghg_commands.add_parser(
        "predict",
        help="flux table per point: N2O-N, CO2-C, CH4-C per season and year with uncertainty, CO2-eq",
        description="Predict fertilisation-driven soil GHG fluxes at points with management fields "
        "(n_rate required; fertiliser, crop, planting_date, harvest_date, irrigated, flooded, soc, clay, "
        "sand, "
        "ph, bulk_density, mat, map optional with documented defaults). See docs/ghg.md.",
    )
    predict.add_argument(
        "points", help="points with management fields (GeoPackage, GeoJSON, Shapefile or CSV)"
    )
    predict.add_argument("-o", "--output", required=True, help="output .gpkg (points + fields) or .csv")
    predict.add_argument(
        "--model", help="GHG model directory or .zip (default: the model shipped with the package)"
    )
    predict.add_argument(
        "--weather", help="daily weather CSV (date, tmin, tmax, precip) for the points' climate"
    )
    predict.add_argument("--soc-field", help="field with SOC from an SpTGNN prediction, e.g. pred_mean")
    predict.add_argument(
        "--soc-sd-field", help="field with its sd, e.g. pred_sd_total (sampled into the fluxes)"
    )
    predict.add_argument("--soc-unit", default="%", help="unit of the SOC fields: % or g/kg (default %%)")
    predict.add_argument(
        "--samples", type=int, default=256, help="predictive samples per point (default 256)"
    )
    predict.add_argument("--seed", type=int, default=0)
    _add_read_options(predict, None)
    predict.set_defaults(run=_ghg_predict)


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
