"""SpTGNN against tabular and geostatistical baselines, plus ablations: one command, one report.

    python training/benchmarks/sptgnn.py --out training/reports/bench_sptgnn.md

Same folds and same features for every model: 5-fold random and 5-fold spatial-block cross-validation
on Africa (AfSP topsoil organic carbon) and La Libertad (SOC stock). Ablations run on Africa under
random CV on the first ``--ablation-folds`` folds, against the full model on the same folds. Results
are written after every model (JSON), so an interrupted run keeps what it finished.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from soilcarbon_core.graph import RELATIONS, GraphParams
from soilcarbon_core.uncertainty import (
    CALIBRATION_METHODS,
    regression_metrics,
)
from soilcarbon_training.baselines import BASELINES
from soilcarbon_training.crossval import PooledCalibration, cross_validate
from soilcarbon_training.datasets import load_africa, load_la_libertad, node_table
from soilcarbon_training.folds import BLOCK_SIZE_M, random_folds, spatial_block_folds
from soilcarbon_training.jobs import model_config_for
from soilcarbon_training.trainer import TrainConfig

METRICS = ("r2", "rmse", "mape", "picp90", "ece", "crps", "nll")
SPTGNN = "SpTGNN ensemble (5)"
#: Ablations: name -> (model-config overrides, train-config overrides, members, relations or None = all).
ABLATIONS = {
    "no graph (MLP on the same streams)": ({}, {}, 5, ()),
    "spatial relation only": ({}, {}, 5, ("spatial",)),
    "similarity relation only": ({}, {}, 5, ("spectral",)),
    "concatenation instead of MoE": ({"fusion": "concat"}, {}, 5, None),
    "no Moran penalty": ({}, {"moran_weight": 0.0}, 5, None),
    "Gaussian NLL instead of beta-NLL": ({}, {"loss": "gaussian_nll"}, 5, None),
    "ensemble of 1": ({}, {}, 1, None),
}


class _Data:
    """What the models of one data set share: node table, tabular data set, folds."""

    def __init__(self, dataset, seed: int) -> None:
        self.dataset = dataset
        self.table = node_table(dataset)
        self.target = dataset.target
        block = BLOCK_SIZE_M[dataset.name]
        self.block = block
        self.folds = {
            "random": random_folds(len(self.target), 5, seed),
            "spatial": spatial_block_folds(
                dataset.coords, geographic=dataset.geographic, block_size_m=block, seed=seed
            ),
        }

    def config(self, members: int, relations, **overrides):
        chosen = RELATIONS if relations is None else relations
        return model_config_for(self.table, members, chosen, **overrides)


def _sptgnn(data: _Data, cv: str, folds, members, relations, model_overrides, train_config, graph, threads):
    torch.set_num_threads(threads)
    results = cross_validate(
        data.table,
        data.target,
        folds,
        geographic=data.dataset.geographic,
        model_config=data.config(members, relations, **model_overrides),
        train_config=train_config,
        graph_params=graph,
        block_size_m=data.block if cv == "spatial" else None,
    )
    fit_s = sum(r.train_seconds for r in results)
    predict_s = sum(r.predict_seconds for r in results)
    return fit_s, predict_s, results, PooledCalibration(data.target, results, train_config.calibration)


def _calibration_study(target: np.ndarray, results) -> list[dict]:
    """Every calibration method refitted per fold on validation only and applied to its test fold."""
    rows = []
    for method in CALIBRATION_METHODS:
        metrics = PooledCalibration(target, results, method).metrics()
        rows.append({"calibration": method, **{k: metrics[k] for k in ("picp90", "ece", "crps", "nll")}})
    return rows


def _baseline(name: str, data: _Data, folds, threads: int):
    mean = np.full(len(data.target), np.nan)
    sd = np.full(len(data.target), np.nan)
    seconds = 0.0
    for train, test in folds:
        started = time.perf_counter()
        mean[test], sd[test] = BASELINES[name](data.dataset, train, test, seed=0, threads=threads)
        seconds += time.perf_counter() - started
    return np.concatenate([t for _, t in folds]), mean, sd, seconds


def _metrics(y, mean, sd, test) -> dict:
    # A zero sd (kriging on a training location without nugget) is scored as a tiny one: its NLL is
    # then huge, which is the honest verdict, instead of stopping the benchmark.
    return regression_metrics(y[test], mean[test], np.maximum(sd[test], 1e-9))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("training/reports/bench_sptgnn.md"))
    parser.add_argument("--datasets", default="la_libertad,africa")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for SpTGNN")
    parser.add_argument("--baseline-threads", type=int, default=1)
    parser.add_argument("--ablation-folds", type=int, default=2)
    parser.add_argument("--skip-ablations", action="store_true")
    parser.add_argument(
        "--resume", action="store_true", help="keep the rows already in the report's JSON and run the rest"
    )
    parser.add_argument(
        "--ablations-only",
        action="store_true",
        help="keep the main results already in the report's JSON and (re)run only the ablations",
    )
    args = parser.parse_args(argv)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    json_path = args.out.with_suffix(".json")
    report: dict = {
        "command": " ".join(["python", "training/benchmarks/sptgnn.py", *(argv or sys.argv[1:])]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
        "threads": {"sptgnn_torch": args.threads, "baselines": args.baseline_threads},
        "epochs": args.epochs,
        "results": [],
        "ablations": [],
        "calibration": [],
    }
    if args.ablations_only or args.resume:
        previous = json.loads(json_path.read_text())
        for key in ("results", "ablations", "calibration", "ablations_calibration", "calibration_main"):
            if key in previous:
                report[key] = previous[key]
        report["command"] = f"{previous['command']}; then {report['command']}"
    done = {(r["dataset"], r["cv"], r["model"]) for r in report["results"]}

    def save() -> None:
        json_path.write_text(json.dumps(report, indent=2))
        args.out.write_text(render(report))

    train_config = TrainConfig(epochs=args.epochs)
    graph = GraphParams()
    loaders = {"africa": load_africa, "la_libertad": load_la_libertad}
    for name in args.datasets.split(","):
        data = _Data(loaders[name](), seed=0)
        y = data.target
        for cv, folds in data.folds.items() if not args.ablations_only else ():
            if (name, cv, SPTGNN) not in done:
                fit_s, predict_s, results, pooled = _sptgnn(
                    data, cv, folds, 5, None, {}, train_config, graph, args.threads
                )
                row = {"dataset": name, "cv": cv, "model": SPTGNN, "train_s": fit_s, "predict_s": predict_s}
                row.update(pooled.metrics())
                report["results"].append(row)
                report.setdefault("calibration_main", {})[f"{name}, {cv}"] = _calibration_study(y, results)
                title = f"SpTGNN, {name}, 5-fold {cv} CV, {train_config.calibration}"
                stem = args.out.parent / f"bench_sptgnn_{name}_{cv}"
                pooled.plot_calibration(f"{stem}_calibration.png", title)
                pooled.plot_intervals(f"{stem}_intervals.png", title)
                print(row, flush=True)
                save()
            for baseline in BASELINES:
                if (name, cv, baseline) in done:
                    continue
                test, mean, sd, seconds = _baseline(baseline, data, folds, args.baseline_threads)
                row = {"dataset": name, "cv": cv, "model": baseline, "train_s": seconds, "predict_s": None}
                row.update(_metrics(y, mean, sd, test))
                report["results"].append(row)
                print(row, flush=True)
                save()
        if name != "africa" or args.skip_ablations:
            continue
        folds = data.folds["random"][: args.ablation_folds]
        variants = {"full model": ({}, {}, 5, None), **ABLATIONS}
        for variant, (model_overrides, train_overrides, members, relations) in variants.items():
            fit_s, _, results, pooled = _sptgnn(
                data,
                "random",
                folds,
                members,
                relations,
                model_overrides,
                replace(train_config, **train_overrides),
                graph,
                args.threads,
            )
            row = {"variant": variant, "folds": len(folds), "train_s": fit_s}
            row.update(pooled.metrics())
            report["ablations"].append(row)
            if variant == "full model":
                report["calibration"] = _calibration_study(data.target, results)
                report["ablations_calibration"] = train_config.calibration
            print(row, flush=True)
            save()
    save()
    return 0


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def render(report: dict) -> str:
    lines = [
        "# SpTGNN benchmark",
        "",
        f"Command: `{report['command']}`. Machine: {report['machine']['cpus']} CPUs, Python "
        f"{report['machine']['python']}, torch {report['machine']['torch']}; threads: SpTGNN "
        f"{report['threads']['sptgnn_torch']} (torch), baselines {report['threads']['baselines']}. "
        f"SpTGNN: {report['epochs']} epochs at most, early stopping per member.",
        "",
        "Out-of-fold metrics; the same folds and features for every model. Seconds summed over the 5 folds "
        "(for the baselines, train s includes predicting). Time ratio: training time over that of the "
        "5-member bootstrap XGBoost in the same run and CV. SpTGNN's PICP90 and ECE use its calibrated "
        "intervals (each fold's calibrator, fitted on that fold's validation part).",
        "",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in report["results"]):
        for cv in ("random", "spatial"):
            rows = [r for r in report["results"] if r["dataset"] == dataset and r["cv"] == cv]
            rows.sort(key=lambda r: r["model"] != SPTGNN)  # the ensemble first, baselines in run order
            if not rows:
                continue
            xgb = next((r["train_s"] for r in rows if r["model"] == "xgboost_bootstrap"), None)
            lines += [f"## {dataset}, 5-fold {cv} CV", ""]
            lines.append("| model | " + " | ".join(METRICS) + " | train s | predict s | time ratio |")
            lines.append("|---" * (len(METRICS) + 4) + "|")
            for r in rows:
                ratio = r["train_s"] / xgb if xgb else None
                lines.append(
                    f"| {r['model']} | "
                    + " | ".join(_fmt(r[m]) for m in METRICS)
                    + f" | {_fmt(r['train_s'])} | {_fmt(r['predict_s'])} | {_fmt(ratio)} |"
                )
            lines.append("")
            stem = f"bench_sptgnn_{dataset}_{cv}"
            lines += [f"![calibration]({stem}_calibration.png) ![intervals]({stem}_intervals.png)", ""]
    if report["ablations"]:
        folds = report["ablations"][0]["folds"]
        calibration = report.get("ablations_calibration", "sigma_scaling")
        lines += [
            f"## Ablations (Africa, random CV, first {folds} of 5 folds; calibration {calibration})",
            "",
        ]
        lines.append("| variant | " + " | ".join(METRICS) + " | train s |")
        lines.append("|---" * (len(METRICS) + 2) + "|")
        for r in report["ablations"]:
            lines.append(
                f"| {r['variant']} | "
                + " | ".join(_fmt(r[m]) for m in METRICS)
                + f" | {_fmt(r['train_s'])} |"
            )
        lines.append("")
    studies = dict(report.get("calibration_main", {}))
    if report.get("calibration"):
        studies[f"Africa, random CV, ablations' full model ({report['ablations'][0]['folds']} fold)"] = (
            report["calibration"]
        )
    for title, rows in studies.items():
        lines += [
            f"## Calibration methods: {title}",
            "",
            "The same trained ensembles; each method refitted per fold on that fold's validation "
            "predictions only, applied to its test fold. PICP90 and ECE use each method's own intervals.",
            "",
            "| calibration | picp90 | ece | crps | nll |",
            "|---|---|---|---|---|",
        ]
        for r in rows:
            values = " | ".join(_fmt(r[k]) for k in ("picp90", "ece", "crps", "nll"))
            lines.append(f"| {r['calibration']} | {values} |")
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
