"""KG-FGNN end to end: simulations for 47 countries, calibration, pre-training, real-data evaluation, and
the shipped GHG model. One command (``make ghg-model``):

    OMP_NUM_THREADS=2 python training/benchmarks/ghg.py --threads 2

1. Calibrate the simulator's free scalars to IPCC 2019 Tier 1 (:mod:`soilcarbon_training.ghg.calibration`,
   47 x 40 scenarios, seed 101, weather seed 5).
2. Simulate 47 x 1064 scenarios x 2 site-years = 100,016 site-years (seed 0) with the calibrated
   scalars; written to ``out/ghg/simulations.parquet``. Throughput is reported against a baseline
   measured in the same run: the same model run one site at a time (the un-vectorised cost).
3. Pre-train KG-FGNN (autoencoder, then the ensemble) on the simulations.
4. Real data, 5-fold cross-validation grouped by study (seed 0): the N2O meta-analysis table
   (SESYNCBayes, 563 rows) and fertilised cropland heterotrophic respiration (SRDB, 312 rows). In the
   same folds: IPCC Tier 1 (N2O), XGBoost, random forest, MLP, the GNN without pre-training (the same
   network trained on the fold alone), KG-FGNN pre-trained only (zero-shot) and pre-trained then
   fine-tuned on the fold's training studies.
5. The shipped model: the pre-trained network fine-tuned on all real N2O and CO2 rows, saved to
   ``soilcarbon_core/ghg/pretrained/kgfgnn_ghg.zip``.

Writes ``training/reports/ghg_kgfgnn.md`` and ``.json`` with figures (CV metrics, observed vs predicted,
autoencoder feature reliance, pre-training curve).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "training")]

from soilcarbon_core.ghg import targets as tg  # noqa: E402
from soilcarbon_core.ghg.features import FEATURE_NAMES  # noqa: E402
from soilcarbon_core.ghg.graphs import graph_edges_table  # noqa: E402
from soilcarbon_core.ghg.model import PRETRAINED, GHGModel, KGFGNNConfig  # noqa: E402
from soilcarbon_core.ghg.simulator import simulate  # noqa: E402
from soilcarbon_core.nn.feature_autoencoder import feature_sensitivity  # noqa: E402
from soilcarbon_core.uncertainty.metrics import mae, r2, rmse  # noqa: E402
from soilcarbon_training.folds import group_folds  # noqa: E402
from soilcarbon_training.ghg.baselines import run_baselines  # noqa: E402
from soilcarbon_training.ghg.calibration import calibrate  # noqa: E402
from soilcarbon_training.ghg.real_data import RealTable, load_co2_srdb, load_n2o_sesync  # noqa: E402
from soilcarbon_training.ghg.scenarios import TARGET_COLUMNS, run_scenarios, sample_scenarios, write_dataset  # noqa: E402
from soilcarbon_training.ghg.training import (  # noqa: E402
    FinetuneConfig,
    PretrainConfig,
    finetune,
    predictive_mean,
    pretrain,
)

SCRATCH = FinetuneConfig(mode="all", epochs=120, patience=15, learning_rate=3e-3, weight_decay=1e-4)
NAMES = {
    "ipcc_tier1": "IPCC Tier 1 (0.010 x N)",
    "xgboost": "XGBoost",
    "random_forest": "Random forest",
    "mlp": "MLP",
    "gnn_scratch": "GNN, no pre-training",
    "kgfgnn_zero_shot": "KG-FGNN pre-trained only",
    "kgfgnn_finetuned": "KG-FGNN pre-trained + fine-tuned",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def simulation_throughput(scenarios, weather, parameters, sites: int = 64) -> dict:
    """Site-years per second, vectorised over ``sites`` vs one site at a time (baseline), same run."""
    part, daily = scenarios.take(np.arange(sites)), weather.take(np.arange(sites))
    start = time.perf_counter()
    simulate(part.sites, part.management, daily, parameters, years=2)
    vectorised = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(8):
        one = part.take(np.array([i]))
        simulate(one.sites, one.management, daily.take(np.array([i])), parameters, years=2)
    single = (time.perf_counter() - start) / 8 * sites
    return {
        "sites": sites,
        "vectorised_s": vectorised,
        "one_at_a_time_s": single,
        "speedup": single / vectorised,
    }


def evaluate_table(table: RealTable, pretrained: GHGModel, seed: int, scratch_seed_model) -> dict:
    folds = group_folds(table.groups, 5, seed)
    log(f"{table.name}: baselines")
    predictions = run_baselines(table, folds, seed)
    for name in ("gnn_scratch", "kgfgnn_zero_shot", "kgfgnn_finetuned"):
        predictions[name] = np.empty(table.target.size)
    intervals = {
        name: np.empty((table.target.size, 2))
        for name in ("gnn_scratch", "kgfgnn_zero_shot", "kgfgnn_finetuned")
    }
    epochs = {"gnn_scratch": [], "kgfgnn_finetuned": []}
    for k, (train, test) in enumerate(folds):
        log(f"{table.name}: fold {k + 1}/5")
        models = {"kgfgnn_zero_shot": pretrained}
        models["kgfgnn_finetuned"], h = finetune(
            pretrained, table.features[train], table.target[train], table.groups[train], table.target_name
        )
        epochs["kgfgnn_finetuned"].append(h["epochs"])
        models["gnn_scratch"], h = finetune(
            scratch_seed_model(k),
            table.features[train],
            table.target[train],
            table.groups[train],
            table.target_name,
            SCRATCH,
        )
        epochs["gnn_scratch"].append(h["epochs"])
        for name, model in models.items():
            mean, _, low, high = predictive_mean(model, table.features[test], table.target_name)
            predictions[name][test] = mean
            intervals[name][test] = np.column_stack([low, high])
    metrics = {
        name: {"rmse": rmse(table.target, p), "r2": r2(table.target, p), "mae": mae(table.target, p)}
        for name, p in predictions.items()
    }
    for name, bounds in intervals.items():
        metrics[name]["picp90"] = float(
            np.mean((table.target >= bounds[:, 0]) & (table.target <= bounds[:, 1]))
        )
    return {
        "rows": int(table.target.size),
        "studies": int(np.unique(table.groups).size),
        "unit": table.unit,
        "notes": list(table.notes),
        "metrics": metrics,
        "finetune_epochs": epochs,
        "predictions": {name: p.tolist() for name, p in predictions.items()},
        "target": table.target.tolist(),
    }


def plots(report: dict, sensitivity: dict, history: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key in zip(axes, ("n2o", "co2"), strict=True):
        metrics = report["real"][key]["metrics"]
        names = list(metrics)
        ax.barh([NAMES[n] for n in names], [metrics[n]["rmse"] for n in names], color="#4c72b0")
        ax.set_xlabel(f"RMSE ({report['real'][key]['unit']})")
        ax.set_title(f"{key.upper()}: 5-fold CV grouped by study")
        ax.invert_yaxis()
    figure.tight_layout()
    files.append(_save(figure, out / "ghg_kgfgnn_cv.png"))

    figure, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharex=True, sharey=True)
    n2o = report["real"]["n2o"]
    y = np.asarray(n2o["target"])
    for ax, name in zip(axes, ("ipcc_tier1", "xgboost", "kgfgnn_finetuned"), strict=True):
        ax.scatter(y, n2o["predictions"][name], s=8, alpha=0.5)
        top = max(y.max(), 1)
        ax.plot([0, top], [0, top], color="grey", lw=1)
        ax.set_title(f"{NAMES[name]}\nRMSE {n2o['metrics'][name]['rmse']:.2f}")
        ax.set_xlabel("observed N2O-N (kg/ha)")
    axes[0].set_ylabel("predicted")
    figure.tight_layout()
    files.append(_save(figure, out / "ghg_kgfgnn_n2o_scatter.png"))

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    order = np.argsort(list(sensitivity.values()))
    names = np.array(list(sensitivity))[order]
    axes[0].barh(names, np.array(list(sensitivity.values()))[order], color="#55a868")
    axes[0].set_xlabel("reconstruction error of the other features when hidden")
    axes[0].set_title("What the autoencoder relies on")
    axes[1].plot(history["fit"], label="fit (beta-NLL, hidden features)")
    axes[1].plot(history["validation"], label="held-out sites (NLL)")
    axes[1].set_xlabel("epoch")
    axes[1].legend()
    axes[1].set_title("Pre-training on simulations")
    figure.tight_layout()
    files.append(_save(figure, out / "ghg_kgfgnn_pretraining.png"))
    return files


def _save(figure, path: Path) -> str:
    import matplotlib.pyplot as plt

    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path.name


def markdown(report: dict) -> list[str]:
    cal = report["calibration"]
    sim = report["simulations"]
    lines = [
        "# KG-FGNN: simulations, calibration, pre-training and real-data evaluation",
        "",
        f"Command: `{report['command']}` ({report['threads']} thread(s), {report['machine']}); "
        f"total {report['seconds'] / 60:.1f} min.",
        "",
        "## Calibration to IPCC 2019 Tier 1 (direct N2O-N emission factors)",
        "",
        f"Fitted: N2O share of nitrified N = {cal['parameters']['n2o_nitrification_share']:.5f}, "
        f"denitrification scaler = {cal['parameters']['denitrification_scaler']:.4f}, "
        f"rice CH4 scaler = {cal['parameters']['rice_ch4_scaler']:.4f} (upland CH4 scaler kept at 1).",
        "",
        "| class | site-years | simulated EF | Tier 1 |",
        "|---|---:|---:|---:|",
    ]
    for name, value in cal["emission_factors"].items():
        lines.append(
            f"| {name} | {cal['site_years'][name]} | {100 * value:.2f} % | {100 * cal['tier1'][name]:.1f} % |"
        )
    lines += [
        f"| all fertilised (aggregated) | {sum(cal['site_years'].values())} | "
        f"{100 * cal['aggregated']:.2f} % | 1.0 % |",
        "",
        "## Simulations",
        "",
        f"{sim['site_years']:,} site-years ({sim['sites']:,} sites in 47 countries x {sim['years']} years) "
        "in "
        f"{sim['seconds']:.0f} s on one thread ({sim['site_years'] / sim['seconds']:,.0f} site-years/s). "
        f"Vectorised over {sim['throughput']['sites']} sites the model runs "
        f"{sim['throughput']['speedup']:.0f}x faster than one site at a time (baseline, same run).",
        "",
        "| output | median | 5 % | 95 % |",
        "|---|---:|---:|---:|",
    ]
    for name, q in sim["quantiles"].items():
        lines.append(f"| {name} | {q[1]:.3g} | {q[0]:.3g} | {q[2]:.3g} |")
    lines += ["", "## Real data: 5-fold cross-validation grouped by study", ""]
    for key, title in (
        ("n2o", "N2O (SESYNCBayes N2OEmission)"),
        ("co2", "CO2, heterotrophic (SRDB, fertilised cropland)"),
    ):
        real = report["real"][key]
        lines += [
            f"### {title}: {real['rows']} rows, {real['studies']} studies, {real['unit']}",
            "",
            "| model | RMSE | R2 | MAE | PICP 90 % |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, m in real["metrics"].items():
            picp = f"{100 * m['picp90']:.0f} %" if "picp90" in m else ""
            lines.append(f"| {NAMES[name]} | {m['rmse']:.3g} | {m['r2']:.3f} | {m['mae']:.3g} | {picp} |")
        lines.append("")
    lines += report["findings"]
    lines += [
        "",
        "## What the autoencoder relies on",
        "",
        "Increase of the reconstruction error of the other features when a feature is hidden "
        "(standardised units; `feature_sensitivity`):",
        "",
        "| feature | reliance |",
        "|---|---:|",
    ]
    for name, value in sorted(report["autoencoder_sensitivity"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {value:.3f} |")
    lines += [
        "",
        "## Strongest edges of the per-gas feature graphs",
        "",
        "| gas | feature | feature | weight |",
        "|---|---|---|---:|",
    ]
    for edge in report["graph_edges"]:
        if edge["rank"] <= 5:
            lines.append(
                f"| {edge['target']} | {edge['feature_a']} | {edge['feature_b']} | {edge['weight']:.3f} |"
            )
    lines += ["", *[f"![]({name})" for name in report["figures"]]]
    return lines


def findings(real: dict) -> list[str]:
    n2o = real["n2o"]["metrics"]
    best = n2o["kgfgnn_finetuned"]["rmse"]
    lines = ["Findings:", ""]
    for other in ("ipcc_tier1", "xgboost", "gnn_scratch"):
        verdict = "beats" if best < n2o[other]["rmse"] else "does not beat"
        lines.append(
            f"- N2O: pre-trained + fine-tuned KG-FGNN (RMSE {best:.3f}) {verdict} {NAMES[other]} "
            f"(RMSE {n2o[other]['rmse']:.3f})."
        )
    co2 = real["co2"]["metrics"]
    lines.append(
        f"- CO2: KG-FGNN fine-tuned RMSE {co2['kgfgnn_finetuned']['rmse']:.0f} "
        f"vs XGBoost {co2['xgboost']['rmse']:.0f} "
        f"and no pre-training {co2['gnn_scratch']['rmse']:.0f} kg C/ha/yr."
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sites-per-country", type=int, default=1064)
    parser.add_argument("--years", type=int, default=2)
    parser.add_argument("--calibration-sites-per-country", type=int, default=40)
    parser.add_argument("--reports", type=Path, default=REPO / "training" / "reports")
    parser.add_argument("--work", type=Path, default=REPO / "out" / "ghg")
    parser.add_argument("--model", type=Path, default=PRETRAINED)
    parser.add_argument("--pretrain-epochs", type=int, default=PretrainConfig.epochs)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    args.model.parent.mkdir(parents=True, exist_ok=True)

    log("calibration")
    calibration = calibrate(sample_scenarios(args.calibration_sites_per_country, seed=101), seed=5)
    parameters = calibration.parameters
    log(f"calibrated: {parameters.to_dict()} EFs {calibration.emission_factors}")

    log("scenarios")
    scenarios = sample_scenarios(args.sites_per_country, seed=0)
    start = time.perf_counter()
    data, _ = run_scenarios(scenarios, years=args.years, seed=0, parameters=parameters)
    sim_seconds = time.perf_counter() - start
    write_dataset(data, args.work / "simulations.parquet")
    from soilcarbon_core.ghg.weather import generate_weather

    throughput = simulation_throughput(
        scenarios, generate_weather(scenarios.take(np.arange(64)).normals, 4, 0), parameters
    )
    quantiles = {
        name: np.quantile(data.targets[:, i], [0.05, 0.5, 0.95]).tolist()
        for i, name in enumerate(TARGET_COLUMNS)
    }

    log(f"pre-training on {data.features.shape[0]} site-years")
    pretrained, history = pretrain(
        data, KGFGNNConfig(), PretrainConfig(epochs=args.pretrain_epochs), progress=lambda f, m: log(m)
    )
    network = pretrained.network
    sample = np.random.default_rng(0).permutation(data.features.shape[0])[:5000]
    sensitivity = feature_sensitivity(
        network.autoencoder, network.standardise(torch.as_tensor(data.features[sample], dtype=torch.float32))
    )
    sensitivity = {
        name: float(v) for name, v in zip(FEATURE_NAMES, sensitivity, strict=True) if np.isfinite(v)
    }
    edges = graph_edges_table(network.graphs.numpy(), FEATURE_NAMES, tg.TARGETS, top=5)

    def scratch(fold: int) -> GHGModel:
        return GHGModel.build(
            pretrained.config,
            network.graphs.numpy(),
            network.feature_mean.numpy(),
            network.feature_sd.numpy(),
            pretrained.target_mean,
            pretrained.target_sd,
            seed=100 + fold,
        )

    tables = {"n2o": load_n2o_sesync(), "co2": load_co2_srdb()}
    real = {key: evaluate_table(table, pretrained, 0, scratch) for key, table in tables.items()}

    log("shipped model: fine-tune on all real rows")
    shipped = pretrained
    for key, table in tables.items():
        shipped, _ = finetune(shipped, table.features, table.target, table.groups, key)
    report = {
        "command": "make ghg-model",
        "threads": args.threads,
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "calibration": calibration.to_dict(),
        "simulations": {
            "sites": scenarios.count,
            "years": args.years,
            "site_years": int(data.features.shape[0]),
            "seconds": sim_seconds,
            "throughput": throughput,
            "quantiles": quantiles,
        },
        "pretraining": history,
        "autoencoder_sensitivity": sensitivity,
        "graph_edges": edges,
        "real": real,
        "findings": findings(real),
    }
    shipped.training = {
        "simulations": report["simulations"] | {"countries": 47},
        "calibration": report["calibration"],
        "pretraining": {"epochs": len(history["validation"]), "validation_nll": min(history["validation"])},
        "finetuned_on": {
            key: {"rows": t.target.size, "studies": int(np.unique(t.groups).size), "unit": t.unit}
            for key, t in tables.items()
        },
        "cross_validation": {key: real[key]["metrics"] for key in real},
    }
    shipped.save(args.model)
    report["model"] = {"path": os.path.relpath(args.model, REPO), "bytes": args.model.stat().st_size}
    report["seconds"] = time.perf_counter() - began
    report["figures"] = plots(report, sensitivity, history, args.reports)
    args.reports.joinpath("ghg_kgfgnn.json").write_text(json.dumps(report, indent=1))
    args.reports.joinpath("ghg_kgfgnn.md").write_text("\n".join(markdown(report)) + "\n")
    log(f"done in {report['seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
